"""Shared pieces of the reliability tests (hostile requests, fuzzing, faults, secrets, soak).

- Small real models (``model.zip`` bytes, with the iris example's wire format) that answer in a
  known way.
- ``BlobApp``: a real FunctionApp (predict + health routes) over a ``blob://`` model whose
  source runs on an injected ``Clock``, so "the next check is due" is a step of a test.

The iris schemas and flowers are in :mod:`support.iris`; what every error answer must be is
:func:`support.problems.check_problem`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import azure.functions as func
import numpy as np

from servefn import Schema
from servefn.azure import add_health_routes, serve_http
from servefn.loaders import ModelSource
from servefn.loaders.blob import BlobLoader
from servefn.model._archive import LoadedModel, write_model
from servefn.predictors.linear import LinearClassifier
from support import standins
from support.azurite import ACCOUNT, ACCOUNT_KEY
from support.iris import CLASSES, FLOWER, IrisData, IrisPrediction
from support.problems import strict_json

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

REFRESH = 60.0
"""``refresh_after`` of a :class:`BlobApp`'s source: a check is due after ``Clock.advance()``."""


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
    write_model(buffer, predictor, input=IrisData, output=IrisPrediction, created=created)
    return buffer.getvalue()


def constant_model_bytes(label: str, *, serial: int = 0) -> bytes:
    """A model that answers ``label`` for every input (the other class never wins)."""
    predictor = LinearClassifier(np.zeros((4, 2)), np.array([1.0, -1.0]), [label, f"not-{label}"])
    return model_bytes(predictor, serial=serial)


class Clock(standins.Clock):
    """The shared test clock, advancing one refresh interval by default."""

    def advance(self, seconds: float = REFRESH) -> None:
        super().advance(seconds)


class BlobApp:
    """The predict and health functions of a real FunctionApp over one ModelSource."""

    def __init__(self, source: ModelSource[LoadedModel]) -> None:
        app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

        @app.route(route="Predict", methods=["GET", "POST"])
        @serve_http(IrisData, IrisPrediction, model=source)
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


def rewrite(
    data: bytes,
    *,
    manifest: Callable[[dict[str, Any]], None] = lambda m: None,
    files: Mapping[str, bytes] | None = None,
) -> bytes:
    """``data`` with its manifest edited in place and payload files replaced; hashes are redone,
    so the archive verifies as if servefn had written it."""
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        members = {name: opened.read(name) for name in opened.namelist()}
    document = json.loads(members.pop("servefn.json"))
    members.update(files or {})
    manifest(document)
    document["files"] = {
        name: {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
        for name, body in members.items()
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("servefn.json", json.dumps(document))
        for name, body in members.items():
            zipped.writestr(name, body)
    return buffer.getvalue()
