"""The Open Inference Protocol in tests: a regressor to serve, an app serving models by name,
requests in the protocol's JSON and binary forms, and the one check of its error answers.

- ``House``/``Estimate`` and :func:`save_regressor`: a scikit-learn ``LinearRegression`` saved
  with ``servefn.save`` (kind ``linear-regressor``), the regressor beside the iris classifier.
- :class:`InferenceApp`: a real ``func.FunctionApp`` with one ``serve_http`` function per model
  and ``add_inference_routes``, called as the Functions worker calls its functions.
- :func:`json_body`, :func:`binary_body`: an inference request from named numpy columns.
- :func:`check_error`: an ``{"error": ...}`` answer, small, with no traceback or echoed value.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np

from servefn import (
    LoadedModel,
    Records,
    Schema,
    add_health_routes,
    column,
    load_model,
    serve_http,
)
from servefn.oip import add_inference_routes
from support.problems import CANARY, MAX_PROBLEM_BYTES, strict_json

HOUSES = {"Rooms": [3.0, 5.0], "Age": [20.0, 3.5], "Distance": [1.2, 8.0]}
"""Two rows for the regressor, by input name."""


class House(Schema):
    """The regressor's inputs."""

    rooms: float = column(0, name="Rooms")
    age: float = column(1, name="Age")
    distance: float = column(2, name="Distance")


class Estimate(Schema):
    """The regressor's output."""

    score: float = column(name="Score")


def save_regressor(path: Path) -> Path:
    """A fitted ``LinearRegression`` over :class:`House`, saved by ``servefn.save``."""
    from sklearn.linear_model import LinearRegression

    import servefn

    rng = np.random.default_rng(7)
    x = rng.uniform(0, 10, size=(60, 3))
    y = x @ np.array([30.0, -1.5, -4.0]) + 100.0 + rng.normal(size=60)
    servefn.save(LinearRegression().fit(x, y), path, input=House, output=Estimate)
    assert load_model(path).manifest["kind"] == "linear-regressor"
    return path


class InferenceApp:
    """A function app serving ``models`` (name -> model.zip), with the protocol's routes
    (``options`` go to ``add_inference_routes``) and, with ``health``, add_health_routes'."""

    def __init__(self, models: Mapping[str, Path], *, health: bool = False, **options: Any) -> None:
        self.app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
        for name, path in models.items():
            loaded = load_model(path)

            def handler(model: LoadedModel, inputs: Records) -> Any:
                return model.predict(inputs)

            handler.__name__ = name
            function = serve_http(loaded.input_schema, loaded.output_schema, model=str(path))
            self.app.route(route=name, methods=["GET", "POST"])(function(handler))
        add_inference_routes(self.app, **options)
        if health:  # GET health and openapi.json
            add_health_routes(self.app)
        self.functions = {
            f.get_function_name(): f.get_user_function() for f in self.app.get_functions()
        }

    def call(
        self, function: str, method: str = "GET", body: bytes = b"", **route: str
    ) -> func.HttpResponse:
        """``function`` called as the worker calls it, with ``route`` parameters."""
        return self.request(function, method, body, {}, route)

    def request(
        self,
        function: str,
        method: str,
        body: bytes,
        headers: Mapping[str, str],
        route: Mapping[str, str],
    ) -> func.HttpResponse:
        request = func.HttpRequest(
            method,
            f"http://localhost/api/{function}",
            headers={"content-length": str(len(body)), **headers},
            params={},
            route_params=dict(route),
            body=body,
        )
        response: func.HttpResponse = self.functions[function](request)
        return response

    def infer(
        self,
        model: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        version: str | None = None,
    ) -> func.HttpResponse:
        """``POST v2/models/{model}[/versions/{version}]/infer``."""
        route = {"model_name": model, **({"model_version": version} if version else {})}
        function = "v2_model_version_infer" if version else "v2_model_infer"
        return self.request(function, "POST", body, headers or {}, route)

    def predict(self, model: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """servefn's own JSON endpoint's answer for ``records``."""
        body = json.dumps({"instances": records}).encode()
        answer = self.request(model, "POST", body, {"content-type": "application/json"}, {})
        assert answer.status_code == 200, answer.get_body()
        predictions: list[dict[str, Any]] = json.loads(answer.get_body())["predictions"]
        return predictions


def json_body(columns: Mapping[str, Any], datatype: str = "FP64", **extra: Any) -> bytes:
    """An inference request in the JSON form: one input per column."""
    inputs = []
    for name, values in columns.items():
        array = np.asarray(values)
        data = array.tolist()
        inputs.append(
            {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}
        )
    return json.dumps({"inputs": inputs, **extra}).encode()


def binary_body(
    columns: Mapping[str, Any], datatype: str = "FP64", **extra: Any
) -> tuple[bytes, dict[str, str]]:
    """An inference request with the binary tensor data extension: (body, headers)."""
    dtype = {"FP64": "<f8", "FP32": "<f4", "FP16": "<f2", "INT64": "<i8"}
    inputs, raw = [], []
    for name, values in columns.items():
        array = np.asarray(values)
        if datatype == "BYTES":
            data = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in array.ravel())
        else:
            data = np.ascontiguousarray(array, dtype=dtype[datatype]).tobytes()
        raw.append(data)
        inputs.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(data)},
            }
        )
    header = json.dumps({"inputs": inputs, **extra}).encode()
    return header + b"".join(raw), {"inference-header-content-length": str(len(header))}


def outputs_of(response: func.HttpResponse) -> dict[str, np.ndarray]:
    """The output tensors of a 200 answer, JSON or binary, as numpy arrays (BYTES as str)."""
    assert response.status_code == 200, response.get_body()
    body = response.get_body()
    length = response.headers.get("inference-header-content-length")
    header = json.loads(body[: int(length)] if length else body)
    binary, offset = body[int(length) :] if length else b"", 0
    found = {}
    for output in header["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values = np.array(
                output["data"], dtype=object if output["datatype"] == "BYTES" else None
            )
        else:
            chunk = binary[offset : offset + size]
            offset += size
            values = _from_binary(chunk, output["datatype"])
        found[output["name"]] = values.reshape(output["shape"])
    return found


def _from_binary(chunk: bytes, datatype: str) -> np.ndarray:
    if datatype != "BYTES":
        return np.frombuffer(chunk, dtype={"FP64": "<f8", "INT64": "<i8", "BOOL": "|b1"}[datatype])
    texts, offset = [], 0
    while offset < len(chunk):
        (size,) = struct.unpack_from("<I", chunk, offset)
        texts.append(chunk[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    return np.array(texts, dtype=object)


def check_error(
    response: func.HttpResponse, status: int, *, canaries: tuple[str, ...] = (CANARY,)
) -> str:
    """Assert ``response`` is the protocol's error with ``status``: ``{"error": message}`` as
    ``application/json``, small, with no traceback, file path or echoed value. Returns the
    message."""
    body = response.get_body()
    assert response.status_code == status, (response.status_code, body[:300])
    assert response.mimetype == "application/json", response.mimetype
    assert len(body) <= MAX_PROBLEM_BYTES, f"{len(body)} bytes: the request was reflected"
    text = body.decode("utf-8")
    for needle in ("Traceback", 'File "', "site-packages", *canaries):
        assert needle not in text, f"{needle!r} in the error body"
    document = strict_json(body)
    assert set(document) == {"error"} and isinstance(document["error"], str), document
    assert document["error"], document
    message: str = document["error"]
    return message
