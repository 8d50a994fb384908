"""Model repositories for the tests: two kinds of small real models, a folder or blob prefix
laid out as ``NAME/model.zip``, and a real FunctionApp serving one with ``serve_models``.

- ``iris_model(label)``: the iris wire format (``support.iris``), answering ``label`` always.
- ``price_model(slope)``: another schema (``Area``, ``Rooms`` -> ``Price``), a regressor.
- ``ModelsApp``: ``serve_models`` on a fresh ``func.FunctionApp``; ``predict(name, ...)`` and
  ``health()`` call its functions as the worker does.
- ``CountingStore``: a real store whose loaders count their fetches and can be slowed down, so
  concurrent first requests overlap for sure.
"""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np

from servefn import Schema, column
from servefn.loaders import Fetched, ModelLoader
from servefn.model._archive import write_model
from servefn.predictors.linear import LinearClassifier
from servefn.predictors.linear_regression import LinearRegressor
from servefn.repository import ModelRepository, serve_models
from servefn.repository._stores import LocalStore
from support.iris import FLOWER, IrisPrediction
from support.problems import strict_json
from support.reliability import constant_model_bytes, model_bytes

HOUSE = {"Area": 100.0, "Rooms": 3.0}


class HouseData(Schema):
    """A house: floor area in square metres and its number of rooms."""

    area: float = column(0, name="Area")
    rooms: float = column(1, name="Rooms")


class HousePrice(Schema):
    """The predicted price."""

    price: float = column(name="Score")


def iris_model(label: str, *, serial: int = 0) -> bytes:
    """An iris ``model.zip`` that answers ``label`` for every flower."""
    return constant_model_bytes(label, serial=serial)


def price_model(slope: float, *, serial: int = 0) -> bytes:
    """A house-price ``model.zip``: ``slope * Area + Rooms``."""
    predictor = LinearRegressor(np.array([[slope], [1.0]]), np.zeros(1))
    buffer = io.BytesIO()
    created = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=serial)
    write_model(buffer, predictor, input=HouseData, output=HousePrice, created=created)
    return buffer.getvalue()


def big_iris_model(classes: int) -> bytes:
    """An iris ``model.zip`` with ``classes`` classes: 32 bytes of weights per class."""
    labels = [f"class-{i}" for i in range(classes)]
    return model_bytes(LinearClassifier(np.zeros((4, classes)), np.zeros(classes), labels))


def put(root: Path, path: str, data: bytes) -> None:
    """Write ``root/path`` atomically (a temporary name, then a rename), as a deploy should."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".uploading")
    temporary.write_bytes(data)
    temporary.replace(target)


class ModelsApp:
    """A real FunctionApp with ``serve_models`` over ``repository``, called like the worker."""

    def __init__(self, repository: ModelRepository, **options: Any) -> None:
        app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
        self.repository = serve_models(app, repository=repository, **options)
        self.functions = {f.get_function_name(): f for f in app.get_functions()}

    def call(self, function: str, request: func.HttpRequest) -> func.HttpResponse:
        response: func.HttpResponse = self.functions[function].get_user_function()(request)
        return response

    def predict(
        self, name: str, version: str | None = None, body: dict[str, Any] | None = None
    ) -> func.HttpResponse:
        params = {"name": name} | ({"version": version} if version is not None else {})
        url = f"http://localhost/api/models/{name}" + (f"/versions/{version}" if version else "")
        request = func.HttpRequest(
            "POST",
            url,
            headers={"Content-Type": "application/json"},
            route_params=params,
            body=json.dumps(FLOWER if body is None else body).encode(),
        )
        return self.call("models_version_predict" if version else "models_predict", request)

    def label(self, name: str, version: str | None = None) -> str:
        """The label an iris model answers (asserting a 200)."""
        response = self.predict(name, version)
        assert response.status_code == 200, response.get_body()[:300]
        label: str = strict_json(response.get_body())["PredictedLabel"]
        return label

    def health(self) -> tuple[int, dict[str, Any]]:
        request = func.HttpRequest("GET", "http://localhost/api/health", body=b"")
        response = self.call("models_health", request)
        document: dict[str, Any] = strict_json(response.get_body())
        return response.status_code, document

    def states(self) -> dict[str, str]:
        """Each listed model's state, by name, from health."""
        return {m["name"]: m["state"] for m in self.health()[1]["models"]}


class _CountingLoader:
    """A real loader whose fetches are counted and take at least ``delay`` seconds."""

    def __init__(self, loader: ModelLoader, store: CountingStore) -> None:
        self.uri = loader.uri
        self._loader = loader
        self._store = store

    def fetch(self, etag: str | None = None) -> Fetched | None:
        with self._store.lock:
            self._store.fetches[self.uri] = self._store.fetches.get(self.uri, 0) + 1
        time.sleep(self._store.delay)
        return self._loader.fetch(etag)


class CountingStore(LocalStore):
    """A folder store whose loaders count fetches per artifact and wait ``delay`` in each."""

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        super().__init__(root)
        self.delay = delay
        self.lock = threading.Lock()
        self.fetches: dict[str, int] = {}

    def loader(self, path: str) -> ModelLoader:
        return _CountingLoader(super().loader(path), self)


__all__ = [
    "HOUSE",
    "CountingStore",
    "HouseData",
    "HousePrice",
    "IrisPrediction",
    "ModelsApp",
    "big_iris_model",
    "iris_model",
    "price_model",
    "put",
]
