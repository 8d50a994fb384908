"""Inference, metadata and health over the protocol, in process, against servefn's own answers.

Real ``azure.functions`` requests to a real app (``add_inference_routes`` over ``serve_http``
functions): the iris classifier, a regressor, a classifier with integer classes, one with text,
optional and bounded inputs. Every form a client may send (JSON or binary; one tensor per
column or one feature matrix; FP64, FP32 or integers; flat or nested data) must answer what
servefn's own JSON endpoint answers for the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import servefn
from servefn import LoadedModel, Schema, column, load_model
from servefn.oip import ModelNotFound
from support.iris import CLASSES, FLOWER, SETOSA
from support.oip import (
    HOUSES,
    InferenceApp,
    binary_body,
    check_error,
    json_body,
    outputs_of,
    save_regressor,
)
from support.problems import CANARY

pd = pytest.importorskip("pandas")

FLOWERS = [FLOWER, SETOSA, {**SETOSA, "PetalLength": 4.5}]
COLUMNS = {name: np.array([f[name] for f in FLOWERS]) for name in FLOWER}


class Mixed(Schema):
    size: float = column(0, name="Size", ge=0)
    weight: float | None = column(1, name="Weight", default=None)
    colour: str = column(2, name="Colour")


class Answer(Schema):
    predicted_label: int = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Text, an optional and a bounded input; integer classes; imputed and one-hot encoded."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    x = pd.DataFrame(
        {
            "Size": rng.uniform(0, 5, 90),
            "Weight": rng.normal(size=90),
            "Colour": rng.choice(["red", "green", "blue"], 90),
        }
    )
    y = (x.Size + x.Weight + (x.Colour == "red") > 3).astype(int) + (x.Size > 4)
    columns = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), ["Size", "Weight"]),
            ("words", OneHotEncoder(handle_unknown="error"), ["Colour"]),
        ]
    )
    path = tmp_path_factory.mktemp("mixed") / "model.zip"
    servefn.save(
        make_pipeline(columns, LogisticRegression()).fit(x, y), path, input=Mixed, output=Answer
    )
    return path


@pytest.fixture(scope="module")
def served(
    trained_model: Path, mixed: Path, tmp_path_factory: pytest.TempPathFactory
) -> InferenceApp:
    regressor = save_regressor(tmp_path_factory.mktemp("regressor") / "model.zip")
    return InferenceApp({"iris": trained_model, "houses": regressor, "mixed": mixed})


def same_as_own(
    served: InferenceApp, model: str, answer: dict[str, np.ndarray], rows: list[dict]
) -> None:
    """``answer`` (output tensors) equals servefn's own JSON endpoint's for ``rows``."""
    own = served.predict(model, rows)
    for name, values in answer.items():
        expected = np.array([r[name] for r in own], dtype=values.dtype)
        if values.dtype.kind == "f":
            np.testing.assert_allclose(values, expected, rtol=1e-6, atol=1e-12)
        else:
            assert values.tolist() == expected.tolist(), name


def forms(columns: dict[str, np.ndarray]) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """Every way of sending the same rows: (form, body, headers)."""
    yield "json", json_body(columns), {}
    yield "binary", *binary_body(columns)
    yield "fp32", *binary_body(columns, "FP32")
    yield "column [N, 1]", json_body({k: v.reshape(-1, 1) for k, v in columns.items()}), {}
    matrix = np.column_stack(list(columns.values()))
    yield "matrix json", json_body({"features": matrix}), {}
    yield "matrix binary", *binary_body({"features": matrix}, "FP32")


@pytest.mark.parametrize("rows", [1, 3])
def test_every_form_answers_what_servefns_json_endpoint_answers(
    served: InferenceApp, rows: int
) -> None:
    columns = {k: v[:rows] for k, v in COLUMNS.items()}
    for form, body, headers in forms(columns):
        answer = outputs_of(served.infer("iris", body, headers))
        assert answer["PredictedLabel"].shape == (rows,), form
        assert answer["Score"].shape == (rows, len(CLASSES)), form
        same_as_own(served, "iris", answer, FLOWERS[:rows])


def test_fp64_json_answers_are_exactly_servefns(served: InferenceApp) -> None:
    for rows in (1, 3):
        columns = {k: v[:rows] for k, v in COLUMNS.items()}
        document = json.loads(served.infer("iris", json_body(columns)).get_body())
        own = served.predict("iris", FLOWERS[:rows])
        scores = document["outputs"][1]["data"]
        assert scores == [s for r in own for s in r["Score"]]  # bit for bit, row-major
        assert document["outputs"][0]["data"] == [r["PredictedLabel"] for r in own]


def test_the_one_pass_path_and_the_general_path_agree(served: InferenceApp) -> None:
    fast = served.infer("iris", json_body({k: v[:1] for k, v in COLUMNS.items()}))
    nested = {
        "inputs": [
            {"name": k, "shape": [1, 1], "datatype": "FP64", "data": [[float(v[0])]]}
            for k, v in COLUMNS.items()
        ]
    }
    general = served.infer("iris", json.dumps(nested).encode())
    assert fast.get_body() == general.get_body()
    integers = {k: [int(v[0] * 10)] for k, v in COLUMNS.items()}
    as_floats = {k: [float(v[0])] for k, v in integers.items()}
    assert (
        served.infer("iris", json_body(integers)).get_body()
        == served.infer("iris", json_body(as_floats)).get_body()
    )
    ints = served.infer("iris", json_body(integers, "INT64"))
    assert (
        outputs_of(ints)["PredictedLabel"].tolist()
        == outputs_of(served.infer("iris", json_body(as_floats)))["PredictedLabel"].tolist()
    )
    one = {k: v[:1] for k, v in COLUMNS.items()}
    body, headers = binary_body(one, parameters={"binary_data_output": True})
    length = int(headers["inference-header-content-length"])
    mixed = json.loads(body[:length])  # the first input in JSON, the others binary: general
    mixed["inputs"][0] = json.loads(json_body(one))["inputs"][0]
    header = json.dumps(mixed).encode()
    rest = body[length + 8 :]
    general = served.infer(
        "iris", header + rest, {"inference-header-content-length": str(len(header))}
    )
    fast = served.infer("iris", body, headers)
    assert fast.get_body() == general.get_body() and fast.headers == general.headers
    from servefn.azure import endpoint_of
    from servefn.oip._fastpath import fast_row

    model = endpoint_of(served.functions["iris"]).source.get()
    decoder = fast_row(model.input_schema, model.output_schema)
    assert decoder is not None
    assert decoder.decode(body[:length], memoryview(body)[length:]) is not None
    assert decoder.decode(header, memoryview(header + rest)[len(header) :]) is None
    assert decoder.decode(json_body(one), None) is not None
    assert decoder.decode(json.dumps(nested).encode(), None) is None  # nested: the general path
    for refused in (b"NaN", b"true", b'"3.3"', b"null", b"1e400"):
        assert decoder.decode(json_body(one).replace(b"3.3", refused, 1), None) is None


def test_outputs_asked_for_in_json_or_binary(served: InferenceApp) -> None:
    columns = {k: v[:2] for k, v in COLUMNS.items()}
    asked = {
        "outputs": [
            {"name": "Score", "parameters": {"binary_data": True}},
            {"name": "PredictedLabel"},
        ]
    }
    response = served.infer("iris", json_body(columns, id="request-7", **asked))
    assert response.mimetype == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.get_body()[:length])
    assert header["id"] == "request-7" and header["model_name"] == "iris"
    assert header["model_version"] == response.headers["x-model-version"]
    assert [o["name"] for o in header["outputs"]] == ["Score", "PredictedLabel"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 2 * 3 * 8}
    assert header["outputs"][1]["data"] == ["Iris-virginica", "Iris-setosa"]
    answer = outputs_of(response)
    same_as_own(served, "iris", answer, FLOWERS[:2])
    everything = served.infer("iris", json_body(columns, parameters={"binary_data_output": True}))
    assert set(outputs_of(everything)) == {"PredictedLabel", "Score"}
    overridden = {
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "Score", "parameters": {"binary_data": False}}],
    }
    plain = served.infer("iris", json_body(columns, **overridden))
    assert (
        plain.mimetype == "application/json"
        and "inference-header-content-length" not in plain.headers
    )


def test_a_regressor_answers_fp64_scores(served: InferenceApp) -> None:
    rows = [dict(zip(HOUSES, values, strict=True)) for values in zip(*HOUSES.values(), strict=True)]
    for _, body, headers in forms({k: np.array(v) for k, v in HOUSES.items()}):
        answer = outputs_of(served.infer("houses", body, headers))
        assert answer["Score"].shape == (2,) and answer["Score"].dtype == np.float64
        same_as_own(served, "houses", answer, rows)


def test_text_optional_and_integer_class_columns(served: InferenceApp) -> None:
    rows = [
        {"Size": 4.5, "Weight": 0.3, "Colour": "red"},
        {"Size": 1.0, "Weight": None, "Colour": "blue"},
    ]
    columns = {"Size": [4.5, 1.0], "Weight": [0.3, None], "Colour": ["red", "blue"]}
    document = {
        "inputs": [
            {"name": "Size", "shape": [2], "datatype": "FP64", "data": columns["Size"]},
            {"name": "Weight", "shape": [2], "datatype": "FP32", "data": columns["Weight"]},
            {"name": "Colour", "shape": [2], "datatype": "BYTES", "data": columns["Colour"]},
        ]
    }
    answer = outputs_of(served.infer("mixed", json.dumps(document).encode()))
    assert answer["PredictedLabel"].dtype == np.int64
    same_as_own(served, "mixed", answer, rows)
    body, headers = binary_body({"Colour": np.array(["red", "blue"], dtype=object)}, "BYTES")
    numbers = json.loads(
        json_body({"Size": [4.5, 1.0], "Weight": [0.3, float("nan")]}, "FP64").replace(
            b"NaN", b"null"
        )
    )
    header = json.loads(body[: int(headers["inference-header-content-length"])])
    header["inputs"] = numbers["inputs"] + header["inputs"]
    raw = json.dumps(header).encode()
    binary = body[int(headers["inference-header-content-length"]) :]
    both = served.infer("mixed", raw + binary, {"inference-header-content-length": str(len(raw))})
    same_as_own(served, "mixed", outputs_of(both), rows)
    without = served.infer("mixed", json.dumps({"inputs": document["inputs"][::2]}).encode())
    same_as_own(
        served,
        "mixed",
        outputs_of(without),
        [{k: v for k, v in r.items() if k != "Weight"} for r in rows],
    )


def test_the_schema_still_validates_every_value(served: InferenceApp) -> None:
    def send(size: float, colour: str) -> str:
        document = {
            "inputs": [
                {"name": "Size", "shape": [2], "datatype": "FP64", "data": [1.0, size]},
                {"name": "Colour", "shape": [2], "datatype": "BYTES", "data": ["red", colour]},
            ]
        }
        return check_error(served.infer("mixed", json.dumps(document).encode()), 400)

    assert send(-1.0, "red").startswith(
        "input Size, row 1: Input should be greater than or equal to 0"
    )
    unknown = send(1.0, CANARY)
    assert unknown.startswith("input Colour, row 1:") and "'blue'" in unknown
    missing = json.loads(json_body({"Size": [1.0], "Colour": ["red"]}).replace(b"1.0", b"null"))
    missing["inputs"][1]["datatype"] = "BYTES"
    assert "input Size, row 0" in check_error(
        served.infer("mixed", json.dumps(missing).encode()), 400
    )
    matrix = check_error(served.infer("mixed", json_body({"features": np.ones((1, 3))})), 400)
    assert "text or boolean inputs" in matrix
    iris_nan, headers = binary_body(
        {**{k: v[:1] for k, v in COLUMNS.items()}, "SepalLength": np.array([np.nan])}
    )
    message = check_error(served.infer("iris", iris_nan, headers), 400)
    assert (
        message.startswith("input SepalLength, row 0: send a finite number")
        and "required" in message
    )
    beyond = check_error(
        served.infer(
            "iris", json_body({**{k: v[:1] for k, v in COLUMNS.items()}, "PetalWidth": [1e39]})
        ),
        400,
    )
    assert beyond.startswith("input PetalWidth, row 0:") and "within +/-3.402823e+38" in beyond


def test_metadata_comes_from_the_schemas(served: InferenceApp, trained_model: Path) -> None:
    version = load_model(trained_model).version
    response = served.call("v2_model_metadata", model_name="iris")
    assert response.status_code == 200
    document = json.loads(response.get_body())
    assert document["name"] == "iris" and document["platform"] == "servefn"
    assert document["versions"] == [version]
    assert document["inputs"] == [{"name": n, "datatype": "FP64", "shape": [-1]} for n in FLOWER]
    assert document["outputs"] == [
        {"name": "PredictedLabel", "datatype": "BYTES", "shape": [-1]},
        {"name": "Score", "datatype": "FP64", "shape": [-1, -1]},
    ]
    assert "[-1, 4]" in document["parameters"]["feature_matrix"]
    by_version = served.call("v2_model_version_metadata", model_name="iris", model_version=version)
    assert json.loads(by_version.get_body()) == document
    mixed = json.loads(served.call("v2_model_metadata", model_name="mixed").get_body())
    assert [(t["name"], t["datatype"]) for t in mixed["inputs"]] == [
        ("Size", "FP64"),
        ("Weight", "FP64"),
        ("Colour", "BYTES"),
    ]
    assert mixed["outputs"][0] == {"name": "PredictedLabel", "datatype": "INT64", "shape": [-1]}
    assert "parameters" not in mixed
    houses = json.loads(served.call("v2_model_metadata", model_name="houses").get_body())
    assert houses["outputs"] == [{"name": "Score", "datatype": "FP64", "shape": [-1]}]


def test_health_readiness_and_server_metadata(served: InferenceApp, trained_model: Path) -> None:
    assert served.call("v2_health_live").status_code == 200
    assert json.loads(served.call("v2_health_ready").get_body()) == {"ready": True}
    server = json.loads(served.call("v2_server_metadata").get_body())
    assert server == {
        "name": "servefn",
        "version": servefn.__version__,
        "extensions": ["binary_tensor_data"],
    }
    served.call("v2_model_metadata", model_name="iris")  # loads it
    ready = served.call("v2_model_ready", model_name="iris")
    assert ready.status_code == 200 and json.loads(ready.get_body()) == {
        "name": "iris",
        "ready": True,
    }
    version = load_model(trained_model).version
    assert (
        served.call("v2_model_version_ready", model_name="iris", model_version=version).status_code
        == 200
    )
    check_error(
        served.call("v2_model_version_ready", model_name="iris", model_version="0" * 12), 404
    )
    assert served.infer("iris", json_body(COLUMNS), version=version).status_code == 200


def test_a_model_loads_on_its_first_request_and_is_ready_after(trained_model: Path) -> None:
    fresh = InferenceApp({"lazy": trained_model})
    assert fresh.call("v2_model_ready", model_name="lazy").status_code == 503
    assert fresh.infer("lazy", json_body(COLUMNS)).status_code == 200
    assert fresh.call("v2_model_ready", model_name="lazy").status_code == 200


def test_the_openapi_document_describes_the_routes(trained_model: Path) -> None:
    from servefn.devhost._modelapp import ModelApp

    app = InferenceApp({"iris": trained_model}, health=True)
    document = json.loads(app.call("openapi").get_body())
    paths = document["paths"]
    assert {"/api/iris", "/api/v2/health/live", "/api/v2/models/{model_name}/infer"} <= set(paths)
    infer = paths["/api/v2/models/{model_name}/versions/{model_version}/infer"]["post"]
    assert infer["parameters"][0]["schema"] == {"type": "string", "enum": ["iris"]}
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert "InferenceRequest" in document["components"]["schemas"]
    model = json.loads(ModelApp.load(trained_model).openapi())
    assert (
        "/api/v2/models/{model_name}/infer" in model["paths"] and "/api/Predict" in model["paths"]
    )


class Versioned:
    """A resolver with named versions, as a repository's: "1" and "2" (current)."""

    def __init__(self, path: Path) -> None:
        self.model = load_model(path)
        self.loaded: set[str] = set()

    def names(self) -> list[str]:
        return ["flowers"]

    def versions(self, name: str) -> list[str]:
        if name != "flowers":
            raise ModelNotFound("no model by that name")
        return ["1", "2"]

    def get(self, name: str, version: str | None) -> LoadedModel:
        if version not in (None, *self.versions(name)):
            raise ModelNotFound("the model has no version by that name")
        self.loaded.add(version or "2")
        return self.model

    def is_ready(self, name: str, version: str | None) -> bool:
        return (version or "2") in self.loaded


def test_a_resolver_with_named_versions(trained_model: Path) -> None:
    from servefn.http import Request
    from servefn.oip import InferenceService, ModelResolver

    resolver = Versioned(trained_model)
    assert isinstance(resolver, ModelResolver)
    service = InferenceService(resolver)
    assert service.model_ready(Request("GET"), "flowers", "1").status == 503
    metadata = json.loads(service.model_metadata(Request("GET"), "flowers").body)
    assert metadata["versions"] == ["1", "2"]
    answer = service.infer(Request("POST", json_body(COLUMNS)), "flowers", "1")
    assert json.loads(answer.body)["model_version"] == "1"
    assert answer.headers["X-Model-Version"] == resolver.model.version
    current = json.loads(service.infer(Request("POST", json_body(COLUMNS)), "flowers").body)
    assert current["model_version"] == resolver.model.version  # unnamed: the sha256 prefix
    assert service.model_ready(Request("GET"), "flowers", "1").status == 200
    assert service.model_ready(Request("GET"), "flowers", "3").status == 404
    assert service.infer(Request("POST", json_body(COLUMNS)), "flowers", "3").status == 404
