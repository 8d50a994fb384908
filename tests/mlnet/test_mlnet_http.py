"""ML.NET model.zip files served over HTTP as they are: ``serve_http`` with real
``azure.functions.HttpRequest`` objects, ``servefn serve MODEL`` as a subprocess, and
``servefn predict`` over a JSONL file, each checked against the models' test data.

The input and output classes are what a team moving from ML.NET writes: the C# classes' fields
with their column names (``IrisData``/``IrisPrediction``, ``TaxiTrip``/``TaxiTripFarePrediction``).
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import numpy as np
import pytest

from servefn import Schema, column, serve_http
from servefn.cli import main
from servefn.model import LoadedModel
from support.mlnet import (
    BIKE_FEATURES,
    FASTTREE,
    IRIS,
    SAMPLE_FLOWERS,
    SDCA,
    TAXI,
    bike_rows,
    fixture,
    iris_rows,
    r2,
    taxi_rows,
)
from support.problems import check_problem
from support.servehost import ServeProcess


class IrisData(Schema):
    label: float | None = column(0, name="Label", role="label", default=None)
    sepal_length: float = column(1, name="SepalLength")
    sepal_width: float = column(2, name="SepalWidth")
    petal_length: float = column(3, name="PetalLength")
    petal_width: float = column(4, name="PetalWidth")


class IrisPrediction(Schema):
    predicted_label: float = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class TaxiTrip(Schema):
    vendor_id: str = column(0, name="VendorId")
    rate_code: str = column(1, name="RateCode")
    passenger_count: float = column(2, name="PassengerCount")
    trip_time: float = column(3, name="TripTime")
    trip_distance: float = column(4, name="TripDistance")
    payment_type: str = column(5, name="PaymentType")


class BikeDemand(Schema):
    season: float = column(0, name="Season")
    year: float = column(1, name="Year")
    month: float = column(2, name="Month")
    hour: float = column(3, name="Hour")
    holiday: float = column(4, name="Holiday")
    weekday: float = column(5, name="Weekday")
    weather: float = column(7, name="Weather")
    temperature: float = column(8, name="Temperature")
    normalized_temperature: float = column(9, name="NormalizedTemperature")
    humidity: float = column(10, name="Humidity")
    windspeed: float = column(11, name="Windspeed")


class Fare(Schema):
    score: float = column(name="Score")


def _handler(model: str, inputs: type[Schema], outputs: type[Schema]) -> Any:
    @serve_http(inputs, outputs, model=model)
    def predict(model: LoadedModel, records: list[Schema]) -> Any:
        return model.predict(records)

    return predict


def _post(handler: Any, payload: Any) -> func.HttpResponse:
    request = func.HttpRequest(
        "POST",
        "http://localhost/api/predict",
        body=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    response: func.HttpResponse = handler(request)
    return response


def test_iris_over_serve_http_classifies_the_test_rows() -> None:
    handler = _handler(str(fixture(IRIS)), IrisData, IrisPrediction)
    records, truth = iris_rows()
    response = _post(handler, {"instances": records})
    assert response.status_code == 200
    labels = [p["PredictedLabel"] for p in json.loads(response.get_body())["predictions"]]
    assert (np.array(labels) == truth).mean() == 1.0
    for flower, species in SAMPLE_FLOWERS:
        names = ("SepalLength", "SepalWidth", "PetalLength", "PetalWidth")
        one = _post(handler, dict(zip(names, flower, strict=True)))
        body = json.loads(one.get_body())
        assert body["PredictedLabel"] == species and len(body["Score"]) == 3
        assert one.headers["X-Model-Version"]


@pytest.mark.parametrize(("name", "floor"), [(SDCA, 0.2), (FASTTREE, 0.85)])
def test_bike_sharing_over_serve_http(name: str, floor: float) -> None:
    handler = _handler(str(fixture(name)), BikeDemand, Fare)
    records, truth = bike_rows()
    payload = [{k: r[k] for k in BIKE_FEATURES} for r in records]
    response = _post(handler, payload)
    assert response.status_code == 200
    scores = np.array([p["Score"] for p in json.loads(response.get_body())])  # an array answers one
    assert r2(truth, scores) > floor


def test_taxi_over_serve_http_takes_text_categories() -> None:
    handler = _handler(str(fixture(TAXI)), TaxiTrip, Fare)
    records, truth = taxi_rows()
    response = _post(handler, {"instances": records})
    assert response.status_code == 200
    scores = np.array([p["Score"] for p in json.loads(response.get_body())["predictions"]])
    assert r2(truth, scores) > 0.88
    unseen = _post(handler, {**records[0], "PaymentType": "BITCOIN"})  # ML.NET: all zeros
    assert unseen.status_code == 200 and np.isfinite(json.loads(unseen.get_body())["Score"])
    wrong = _post(handler, {**records[0], "TripTime": "long"})
    assert wrong.status_code == 422


@pytest.fixture(scope="module")
def served_iris() -> Any:
    server = ServeProcess(fixture(IRIS), args=("--log-level", "warning"))
    server.wait()
    yield server
    server.stop()


@pytest.mark.integration
def test_servefn_serve_answers_from_the_ml_net_file(served_iris: ServeProcess) -> None:
    with httpx.Client(base_url=served_iris.base, timeout=10) as client:
        names = ("SepalLength", "SepalWidth", "PetalLength", "PetalWidth")
        for flower, species in SAMPLE_FLOWERS:
            answer = client.post("/predict", json=dict(zip(names, flower, strict=True)))
            assert answer.status_code == 200 and answer.json()["PredictedLabel"] == species
        typo = check_problem(client.post("/predict", json={"SepalLenght": 1.0}), 422)
        assert typo["errors"]
        spec = client.get("/openapi.json").json()
        assert "ModelInput" in json.dumps(spec)


@pytest.mark.integration
def test_servefn_predict_scores_a_jsonl_file(tmp_path: Path) -> None:
    records, truth = taxi_rows()
    source = tmp_path / "trips.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    target = tmp_path / "fares.jsonl"
    with redirect_stdout(io.StringIO()):
        code = main(["predict", str(fixture(TAXI)), "-i", str(source), "-o", str(target)])
    assert code == 0
    scores = np.array([json.loads(line)["Score"] for line in target.read_text().splitlines()])
    assert len(scores) == len(truth) and r2(truth, scores) > 0.88


def test_a_model_repository_serves_ml_net_files(tmp_path: Path) -> None:
    from servefn.repository import ModelRepository

    for name, source in (("iris", IRIS), ("taxi", TAXI)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.zip").write_bytes(fixture(source).read_bytes())
    repository = ModelRepository(str(tmp_path))
    assert sorted(repository.names()) == ["iris", "taxi"]
    records, truth = taxi_rows()
    scores = np.asarray(repository.get("taxi").predict(records).arrays["Score"])
    assert r2(truth, scores) > 0.88
