"""Missing feature values and categories over a real endpoint.

Two models from ``servefn.save``: a plain LogisticRegression (kind "linear-classifier", which
cannot take a missing value) and a ColumnTransformer pipeline (kind "transformed", SimpleImputer
and OneHotEncoder). A missing optional feature — JSON null, an omitted field, an empty GET value,
an empty CSV field — is a 422 "missing" naming the field for the first and a prediction equal to
``load_model(...).predict`` for the second; an unknown category is a 422 naming the field that
never echoes the value sent. Each request goes through ``serve_http`` (a user function, real
``azure.functions`` objects) and through ``Endpoint`` without a handler (the matrix path).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pytest

import servefn
from servefn import LoadedModel, Records, Schema, column, load_model
from servefn.azure import serve_http
from servefn.http import Endpoint, Request
from servefn.http._openapi import openapi_document
from support.problems import CANARY, check_problem
from support.standins import FixedModel

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}


class Numbers(Schema):
    a: float = column(0)
    b: float | None = column(1, default=None)


class Mixed(Schema):
    a: float = column(0)
    b: float | None = column(1, default=None)
    c: str = column(2)


class Answer(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def frame() -> Any:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {"a": rng.normal(size=80), "b": rng.normal(size=80), "c": rng.choice(["u", "v"], 80)}
    )
    y = np.where(x.a + x.b + (x.c == "u") > 0.5, "yes", "no")
    return x, y


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import LogisticRegression

    x, y = frame()
    path = tmp_path_factory.mktemp("linear") / "model.zip"
    servefn.save(
        LogisticRegression().fit(x[["a", "b"]].to_numpy(), y), path, input=Numbers, output=Answer
    )
    assert load_model(path).manifest["kind"] == "linear-classifier"
    return path


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x, y = frame()
    columns = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), ["a", "b"]),
            ("words", OneHotEncoder(handle_unknown="error"), ["c"]),
        ]
    )
    path = tmp_path_factory.mktemp("transformed") / "model.zip"
    servefn.save(
        make_pipeline(columns, LogisticRegression()).fit(x, y), path, input=Mixed, output=Answer
    )
    assert load_model(path).manifest["kind"] == "transformed"
    return path


Caller = Callable[[str, bytes, dict[str, str], dict[str, str]], tuple[int, str, bytes]]


def through_serve_http(path: Path, schema: type[Schema]) -> Caller:
    @serve_http(schema, Answer, model=str(path))
    def predict(model: LoadedModel, inputs: Records) -> Any:
        return model.predict(inputs)

    def call(
        method: str, body: bytes, headers: dict[str, str], params: dict[str, str]
    ) -> tuple[int, str, bytes]:
        request = func.HttpRequest(
            method, "http://localhost/api/Predict", headers=headers, params=params, body=body
        )
        response: func.HttpResponse = predict(request)
        return response.status_code, str(response.mimetype), response.get_body()

    return call


def through_endpoint(path: Path, schema: type[Schema]) -> Caller:
    endpoint = Endpoint(schema, Answer, FixedModel(load_model(path)))

    def call(
        method: str, body: bytes, headers: dict[str, str], params: dict[str, str]
    ) -> tuple[int, str, bytes]:
        lower = {k.lower(): v for k, v in headers.items()}
        response = endpoint.handle(Request(method, body, lower, params))
        return response.status, response.media_type, response.body

    return call


PATHS = {"serve_http": through_serve_http, "endpoint": through_endpoint}


def missing_b_requests(
    extra: dict[str, str],
) -> dict[str, tuple[str, bytes, dict[str, str], dict[str, str]]]:
    """The four ways of leaving out ``b``: JSON null, omitted, GET empty value, CSV empty field."""
    tail = ",".join(extra.values())
    return {
        "json-null": ("POST", json.dumps({"a": 1.0, "b": None, **extra}).encode(), JSON, {}),
        "json-omitted": ("POST", json.dumps({"a": 1.0, **extra}).encode(), JSON, {}),
        "get-empty": ("GET", b"", {}, {"a": "1.0", "b": "", **extra}),
        "csv-empty": ("POST", f"1.0,{',' + tail if tail else ''}\n".encode(), CSV, {}),
    }


WAYS = ["json-null", "json-omitted", "get-empty", "csv-empty"]


def way_param(way: str, via: str) -> Any:
    return pytest.param(way, via, id=f"{via}-{way}")


@pytest.mark.parametrize(("way", "via"), [way_param(w, v) for v in PATHS for w in WAYS])
def test_missing_value_for_a_linear_model_is_422_missing(linear: Path, way: str, via: str) -> None:
    call = PATHS[via](linear, Numbers)
    method, body, headers, params = missing_b_requests({})[way]
    document = check_problem(call(method, body, headers, params), 422)
    assert [e["type"] for e in document["errors"]] == ["missing"], document
    error = document["errors"][0]
    assert error["loc"][-1] == "b", error
    assert error["msg"] == "the model cannot impute this feature; send a value", error


def test_missing_value_answers_agree_across_the_four_ways(linear: Path) -> None:
    """The same error (bar the loc prefix: a row number, or "query") whichever way it came."""
    call = PATHS["endpoint"](linear, Numbers)
    answers = set()
    for method, body, headers, params in missing_b_requests({}).values():
        document = check_problem(call(method, body, headers, params), 422)
        (error,) = document["errors"]
        answers.add((document["detail"], error["type"], error["loc"][-1], error["msg"]))
    assert len(answers) == 1, answers


def test_missing_value_in_a_batch_names_its_row(linear: Path) -> None:
    call = PATHS["serve_http"](linear, Numbers)
    body = json.dumps([{"a": 1.0, "b": 2.0}, {"a": 1.0}]).encode()
    document = check_problem(call("POST", body, JSON, {}), 422)
    assert document["errors"] == [
        {
            "type": "missing",
            "loc": [1, "b"],
            "msg": "the model cannot impute this feature; send a value",
        }
    ]


@pytest.mark.parametrize(("way", "via"), [way_param(w, v) for v in PATHS for w in WAYS])
def test_missing_value_for_a_transformed_model_is_imputed(
    transformed: Path, way: str, via: str
) -> None:
    call = PATHS[via](transformed, Mixed)
    method, body, headers, params = missing_b_requests({"c": "v"})[way]
    status, _, answer = call(method, body, headers, params)
    assert status == 200, answer[:300]
    got = json.loads(answer)
    got = got[0] if isinstance(got, list) else got
    expected = load_model(transformed).predict([{"a": 1.0, "c": "v"}]).to_dicts()[0]
    assert got["PredictedLabel"] == expected["PredictedLabel"]
    np.testing.assert_allclose(got["Score"], expected["Score"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("via", list(PATHS))
@pytest.mark.parametrize("how", ["json", "get", "csv"])
def test_unknown_category_is_422_naming_the_field(transformed: Path, via: str, how: str) -> None:
    call = PATHS[via](transformed, Mixed)
    requests = {
        "json": ("POST", json.dumps({"a": 1.0, "c": CANARY}).encode(), JSON, {}),
        "get": ("GET", b"", {}, {"a": "1.0", "c": CANARY}),
        "csv": ("POST", f"1.0,2.0,{CANARY}\n".encode(), CSV, {}),
    }
    document = check_problem(call(*requests[how]), 422)
    errors = document["errors"]
    assert len(errors) == 1, document
    assert errors[0]["loc"][-1] == "c", errors
    assert "'u', 'v'" in errors[0]["msg"], errors


def test_known_category_and_all_values_give_the_loaded_models_prediction(
    transformed: Path,
) -> None:
    call = PATHS["serve_http"](transformed, Mixed)
    rows = [{"a": 0.3, "b": -1.0, "c": "u"}, {"a": -2.0, "b": None, "c": "v"}]
    status, _, body = call("POST", json.dumps(rows).encode(), JSON, {})
    assert status == 200, body[:300]
    expected = load_model(transformed).predict(rows).to_dicts()
    got = json.loads(body)
    assert [g["PredictedLabel"] for g in got] == [e["PredictedLabel"] for e in expected]
    np.testing.assert_allclose(
        [g["Score"] for g in got], [e["Score"] for e in expected], rtol=0, atol=1e-6
    )


def test_values_beyond_float32_stay_out_of_range(transformed: Path) -> None:
    call = PATHS["endpoint"](transformed, Mixed)
    body = json.dumps({"a": 1e300, "c": "u"}).encode()
    document = check_problem(call("POST", body, JSON, {}), 422)
    assert [e["type"] for e in document["errors"]] == ["out_of_range"], document


def test_openapi_document_shows_enum_and_nullable(transformed: Path) -> None:
    """The model's manifest schema (categories learned by the encoder) in the OpenAPI document."""
    model = load_model(transformed)
    endpoint = Endpoint(model.input_schema, model.output_schema, FixedModel(model))
    document = json.loads(openapi_document([(endpoint, "Predict", ["GET", "POST"])]))
    schemas = document["components"]["schemas"]
    inputs = [s for s in schemas.values() if "c" in s.get("properties", {})]
    assert len(inputs) == 1, list(schemas)
    properties = inputs[0]["properties"]
    assert properties["c"]["enum"] == ["u", "v"], properties["c"]
    assert {"type": "null"} in properties["b"]["anyOf"], properties["b"]
    assert "b" not in inputs[0].get("required", []) and "c" in inputs[0]["required"]


def test_servefn_openapi_of_the_model_shows_enum(transformed: Path, capsys: Any) -> None:
    from servefn.cli._main import main

    assert main(["openapi", str(transformed)]) == 0
    document = json.loads(capsys.readouterr().out)
    found = [
        s["properties"]["c"]
        for s in document["components"]["schemas"].values()
        if "c" in s.get("properties", {})
    ]
    assert found and found[0]["enum"] == ["u", "v"], found
