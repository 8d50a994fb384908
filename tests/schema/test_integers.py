"""The one integer rule: a field typed ``int`` accepts an integral number (``100.0`` as well as
``100``) and refuses ``100.5``, a bool, a float too large to be exact and, from JSON, a string,
the same way in every path: JSON, GET, CSV, ``servefn predict`` (JSONL, CSV) and
``LoadedModel.predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pytest

from servefn import LoadedModel, Schema, column, load_model
from servefn.azure import serve_http
from servefn.batch import BatchOptions, predict_batch
from servefn.errors import DataFormatError
from servefn.model._archive import write_model
from servefn.predictors.linear import LinearClassifier
from servefn.schema import layout_of, schema_from_spec


class Wine(Schema):
    alcohol: float = column(0, name="Alcohol")
    magnesium: int = column(1, name="Magnesium")


class WinePrediction(Schema):
    label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


# (JSON value, accepted from JSON and Python dicts, accepted as text: GET and CSV)
CASES: list[tuple[Any, bool, bool]] = [
    (100, True, True),
    (100.0, True, True),
    (100.5, False, False),
    ("100", False, True),  # a JSON string is refused; text is all strings, and "100" is 100
    (True, False, False),
    (1e20, False, False),  # integral, but beyond 2**53 a float is not one exact integer
]
IDS = ["100", "100.0", "100.5", "string-100", "true", "1e20"]


def text(value: Any) -> str:
    """The value as it is written in a query string or a CSV field."""
    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    weights = np.array([[0.0, 0.0, 0.0], [-0.1, 0.0, 0.1]])
    path = tmp_path_factory.mktemp("wine") / "model.zip"
    classes = ["low", "mid", "high"]
    write_model(
        path,
        LinearClassifier(weights, np.array([10.0, 0.0, -9.0]), classes),
        input=Wine,
        output=WinePrediction,
    )
    return path


@pytest.fixture(scope="module")
def handler(model_path: Path) -> Any:
    @serve_http(Wine, WinePrediction, model=str(model_path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    return predict


def call(handler: Any, method: str, body: str = "", **kwargs: Any) -> tuple[int, Any]:
    request = func.HttpRequest(method, "http://localhost/api/Predict", body=body.encode(), **kwargs)
    response = handler(request)
    return response.status_code, json.loads(response.get_body())


def refused(status: int, answer: Any) -> None:
    assert status == 422
    assert "Magnesium" in json.dumps(answer["errors"])


def record(value: Any) -> dict[str, Any]:
    return {"Alcohol": 13.0, "Magnesium": value}


@pytest.mark.parametrize(("value", "from_json", "from_text"), CASES, ids=IDS)
def test_json_one_array_and_instances_follow_the_rule(
    handler: Any, value: Any, from_json: bool, from_text: bool
) -> None:
    headers = {"Content-Type": "application/json"}
    bodies = [record(value), [record(120), record(value)], {"instances": [record(value)]}]
    for body in bodies:
        status, answer = call(handler, "POST", json.dumps(body), headers=headers)
        if from_json:
            assert status == 200, answer
        else:
            refused(status, answer)


@pytest.mark.parametrize(("value", "from_json", "from_text"), CASES, ids=IDS)
def test_query_strings_and_csv_bodies_follow_the_rule(
    handler: Any, value: Any, from_json: bool, from_text: bool
) -> None:
    get = call(handler, "GET", params={"Alcohol": "13.0", "Magnesium": text(value)})
    csv = call(handler, "POST", f"13.0,{text(value)}\n", headers={"Content-Type": "text/csv"})
    if from_text:
        assert get[0] == csv[0] == 200
        assert [get[1]] == csv[1]
    else:
        refused(*get)
        assert csv[0] == 422 and "Magnesium" in json.dumps(csv[1])


@pytest.mark.parametrize(("value", "from_json", "from_text"), CASES, ids=IDS)
def test_loaded_model_predict_with_dicts_follows_the_rule(
    model_path: Path, value: Any, from_json: bool, from_text: bool
) -> None:
    model = load_model(model_path)
    if from_json:
        assert model.predict([record(value)])[0].label == "high"  # type: ignore[attr-defined]
    else:
        with pytest.raises(ValueError, match="Magnesium"):
            model.predict([record(value)])


@pytest.mark.parametrize(("value", "from_json", "from_text"), CASES, ids=IDS)
def test_servefn_predict_jsonl_and_csv_follow_the_rule(
    model_path: Path, tmp_path: Path, value: Any, from_json: bool, from_text: bool
) -> None:
    jsonl, csv = tmp_path / "in.jsonl", tmp_path / "in.csv"
    jsonl.write_text(json.dumps(record(value)) + "\n")
    csv.write_text(f"13.0,{text(value)}\n")
    for source, accepted in ((jsonl, from_json), (csv, from_text)):
        out = tmp_path / f"{source.suffix[1:]}-out.jsonl"
        if accepted:
            predict_batch(str(model_path), str(source), str(out))
            assert json.loads(out.read_text())["PredictedLabel"] == "high"
        else:
            with pytest.raises(DataFormatError, match="Magnesium"):
                predict_batch(str(model_path), str(source), str(out))


def test_http_and_batch_answer_the_same_rows_identically(
    handler: Any, model_path: Path, tmp_path: Path
) -> None:
    rows = [(12.5, 100.0), (13.0, 99), (14.1, 101.0), (11.0, -3.0), (13.3, 100)]
    source = tmp_path / "rows.csv"
    source.write_text("".join(f"{a},{text(m)}\n" for a, m in rows))
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps(record(m) | {"Alcohol": a}) + "\n" for a, m in rows))
    answers = []
    for path in (source, jsonl):
        out = tmp_path / f"{path.suffix[1:]}-scores.jsonl"
        predict_batch(str(model_path), str(path), str(out), options=BatchOptions(chunk_size=2))
        answers.append([json.loads(line) for line in out.read_text().splitlines()])
    body = json.dumps([record(m) | {"Alcohol": a} for a, m in rows])
    status, posted = call(handler, "POST", body, headers={"Content-Type": "application/json"})
    csv_status, csv_answer = call(
        handler, "POST", source.read_text(), headers={"Content-Type": "text/csv"}
    )
    assert status == csv_status == 200
    assert answers[0] == answers[1] == posted == csv_answer
    assert [a["PredictedLabel"] for a in posted] == ["high", "high", "high", "low", "high"]


def test_bools_are_not_ints_and_int_fields_keep_their_json_schema() -> None:
    assert Wine.model_validate(record(7.0)).magnesium == 7
    with pytest.raises(ValueError, match="Magnesium"):
        Wine.model_validate(record(False))
    properties = Wine.model_json_schema(by_alias=True)["properties"]
    assert properties["Magnesium"]["type"] == "integer"
    rebuilt = schema_from_spec(layout_of(Wine).spec())  # the manifest's copy has the rule too
    assert rebuilt.model_validate(record(100.0)).model_dump(by_alias=True)["Magnesium"] == 100
    with pytest.raises(ValueError, match="Magnesium"):
        rebuilt.model_validate(record(100.5))
