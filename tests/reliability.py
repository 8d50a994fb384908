"""Shared pieces of the reliability tests (hostile requests, fuzzing, faults, secrets, soak).

- ``IrisRecord``/``IrisAnswer``: the example app's wire format, so one request corpus fits both
  in-process handlers and the example app served over HTTP.
- Small real models (``model.zip`` bytes) that answer in a known way.
- ``check_problem``: what every error answer must be (RFC 9457, no echo, no traceback).
- ``BlobApp``: a real FunctionApp (predict + health routes) over a ``blob://`` model whose
  source runs on an injected ``Clock``, so "the next check is due" is a step of a test.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import numpy as np

import standins
from azurite import ACCOUNT, ACCOUNT_KEY
from servefn import Schema, column
from servefn.azure import add_health_routes, serve_http
from servefn.loaders import ModelSource
from servefn.loaders.blob import BlobLoader
from servefn.model._archive import LoadedModel, write_model
from servefn.predictors.linear import LinearClassifier

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
APP_FILES = ("function_app.py", "schema.py", "host.json")
CANARY = "c4n4ry-8d1f0e"
"""A marker put into request values: it must never come back in a response or a log line."""
MAX_PROBLEM_BYTES = 16 * 1024
"""An error answer is small whatever the request was: nothing is reflected back in bulk."""
FLOWER = {"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}
SETOSA = {"SepalLength": 5.1, "SepalWidth": 3.5, "PetalLength": 1.4, "PetalWidth": 0.2}
CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
REFRESH = 60.0
"""``refresh_after`` of a :class:`BlobApp`'s source: a check is due after ``Clock.advance()``."""


class IrisRecord(Schema):
    sepal_length: float = column(0, name="SepalLength")
    sepal_width: float = column(1, name="SepalWidth")
    petal_length: float = column(2, name="PetalLength")
    petal_width: float = column(3, name="PetalWidth")
    label: str | None = column(4, name="Label", role="label", default=None)


class IrisAnswer(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def petal_model() -> LinearClassifier:
    """Every feature counts; a wide petal means virginica, a narrow one setosa."""
    weights = np.array(
        [[0.1, 0.0, -0.1], [0.1, 0.0, -0.1], [0.5, 0.0, -0.5], [-4.0, 0.0, 4.0]], dtype=np.float64
    )
    return LinearClassifier(weights, np.array([4.0, 0.0, -4.0]), CLASSES)


def model_bytes(predictor: LinearClassifier | None = None, *, serial: int = 0) -> bytes:
    """A ``model.zip`` (bytes) for ``predictor`` (default :func:`petal_model`); another
    ``serial`` gives another archive (its creation time), so another version."""
    buffer = io.BytesIO()
    created = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=serial)
    predictor = predictor or petal_model()
    write_model(buffer, predictor, input=IrisRecord, output=IrisAnswer, created=created)
    return buffer.getvalue()


def constant_model_bytes(label: str, *, serial: int = 0) -> bytes:
    """A model that answers ``label`` for every input (the other class never wins)."""
    predictor = LinearClassifier(np.zeros((4, 2)), np.array([1.0, -1.0]), [label, f"not-{label}"])
    return model_bytes(predictor, serial=serial)


def strict_json(body: bytes) -> Any:
    """Parse ``body`` as RFC 8259 JSON: NaN and Infinity are not JSON and fail here."""

    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(body, parse_constant=refuse)


def check_problem(
    status: int, content_type: str, body: bytes, *, canaries: tuple[str, ...] = (CANARY,)
) -> dict[str, Any]:
    """Assert an error answer is a small RFC 9457 document without traceback or echo."""
    assert 400 <= status < 600
    assert content_type.split(";")[0].strip() == "application/problem+json", content_type
    assert len(body) <= MAX_PROBLEM_BYTES, f"{len(body)} bytes: the request was reflected"
    text = body.decode("utf-8")
    for needle in ("Traceback", 'File "', "site-packages", *canaries):
        assert needle not in text, f"{needle!r} in the problem body"
    document: dict[str, Any] = strict_json(body)
    assert document["status"] == status
    assert document["title"] and document["detail"] and document["type"]
    for error in document.get("errors", []):
        assert set(error) == {"type", "loc", "msg"}, error  # never "input" or "ctx"
    return document


def example_app(folder: Path, model: Path) -> Path:
    """The iris example app's files in ``folder``, with ``model`` (the session's
    ``trained_model``) as its model.zip."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        shutil.copy(EXAMPLE / name, folder / name)
    shutil.copy(model, folder / "model.zip")
    return folder


def write_settings(folder: Path, values: dict[str, str]) -> None:
    """``local.settings.json`` with ``values``, as ``func host start`` reads it."""
    document = {"IsEncrypted": False, "Values": values}
    (folder / "local.settings.json").write_text(json.dumps(document))


class Clock(standins.Clock):
    """The shared test clock, advancing one refresh interval by default."""

    def advance(self, seconds: float = REFRESH) -> None:
        super().advance(seconds)


class BlobApp:
    """The predict and health functions of a real FunctionApp over one ModelSource."""

    def __init__(self, source: ModelSource[LoadedModel]) -> None:
        app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

        @app.route(route="Predict", methods=["GET", "POST"])
        @serve_http(IrisRecord, IrisAnswer, model=source)
        def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
            return model.predict(inputs)

        add_health_routes(app)
        functions = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
        self.source = source
        self._predict: Callable[[func.HttpRequest], func.HttpResponse] = functions["predict"]
        self._health: Callable[[func.HttpRequest], func.HttpResponse] = functions["health"]

    def predict(self) -> func.HttpResponse:
        request = func.HttpRequest(
            "POST",
            "http://localhost/api/Predict",
            headers={"Content-Type": "application/json"},
            body=json.dumps(FLOWER).encode(),
        )
        return self._predict(request)

    def health(self) -> tuple[int, dict[str, Any]]:
        response = self._health(func.HttpRequest("GET", "http://localhost/api/health", body=b""))
        document: dict[str, Any] = strict_json(response.get_body())
        return response.status_code, document["model"]

    def served(self, version: str) -> None:
        """One request answered 200 by the model ``version``."""
        response = self.predict()
        assert response.status_code == 200, response.get_body()[:300]
        assert response.headers["X-Model-Version"] == version
        assert strict_json(response.get_body())["PredictedLabel"] == "Iris-virginica"


def storage_connection(port: int) -> str:
    """A connection string with Azurite's account key for an endpoint on ``port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def blob_app(
    container: ContainerClient, port: int, clock: Clock, *, timeout: float = 1.0
) -> BlobApp:
    """A :class:`BlobApp` over ``container/model.zip``, reached on ``port``, no retries."""
    loader = BlobLoader(
        f"{container.container_name}/model.zip",
        connection=storage_connection(port),
        timeout=timeout,
        retries=0,
    )
    return BlobApp(ModelSource(loader, refresh_after=REFRESH, clock=clock))
