"""The Open Inference Protocol's routes in the OpenAPI document (``servefn.oip`` serves them).

The paths are the protocol's REST form under the route prefix; request and response bodies
are described in their JSON form, and the binary tensor data extension (a JSON header, then
raw tensor bytes, sized by ``Inference-Header-Content-Length``) as ``application/octet-stream``.
A function that serves one of these routes carries the attribute :data:`INFERENCE_MARK`, so a
host can tell that an app serves the protocol, and which models.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["INFERENCE_MARK", "INFERENCE_SCHEMAS", "inference_models", "inference_paths"]

INFERENCE_MARK = "__servefn_inference__"
"""The attribute of every function that serves an Open Inference Protocol route: the model
names it serves when they are fixed, else an empty tuple."""

_REF = "#/components/schemas/{name}"
_SCALAR = {"type": ["string", "number", "boolean"]}
_PARAMETERS = {"type": "object", "additionalProperties": _SCALAR}
_SHAPE = {"type": "array", "items": {"type": "integer"}, "maxItems": 8}
_DATATYPE = {
    "type": "string",
    "enum": [
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
        "FP16", "FP32", "FP64", "BYTES",
    ],
}  # fmt: skip
_TENSOR_META = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "datatype": _DATATYPE, "shape": _SHAPE},
    "required": ["name", "datatype", "shape"],
}
_TENSOR = {
    "type": "object",
    "description": "data: row-major, flat or nested; or parameters.binary_data_size bytes of "
    "the binary data after the JSON header",
    "properties": {
        "name": {"type": "string"},
        "datatype": _DATATYPE,
        "shape": _SHAPE,
        "parameters": _PARAMETERS,
        "data": {"type": "array"},
    },
    "required": ["name", "datatype", "shape"],
}
INFERENCE_SCHEMAS: dict[str, Any] = {
    "InferenceError": {
        "type": "object",
        "description": "The protocol's error; never contains the request's values.",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
    "InferenceTensor": _TENSOR,
    "InferenceRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "maxLength": 256},
            "parameters": _PARAMETERS,
            "inputs": {"type": "array", "items": {"$ref": _REF.format(name="InferenceTensor")}},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
                    "required": ["name"],
                },
            },
        },
        "required": ["inputs"],
    },
    "InferenceResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"$ref": _REF.format(name="InferenceTensor")}},
        },
        "required": ["model_name", "outputs"],
    },
    "ModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_META},
            "outputs": {"type": "array", "items": _TENSOR_META},
            "parameters": _PARAMETERS,
        },
        "required": ["name", "platform", "inputs", "outputs"],
    },
    "ServerMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "version", "extensions"],
    },
}
"""Component schemas the paths refer to."""


def inference_models(functions: Iterable[Any]) -> list[str] | None:
    """The model names of the inference routes among ``functions`` (user functions), ``[]``
    when they are not fixed, or None when none of them serves the protocol."""
    found: list[str] | None = None
    for function in functions:
        names = getattr(function, INFERENCE_MARK, None)
        if isinstance(names, tuple):
            found = found or []
            found.extend(n for n in names if n not in found)
    return found


def inference_paths(route_prefix: str, models: Sequence[str] = ()) -> dict[str, Any]:
    """The protocol's paths under ``route_prefix``; ``models`` (when known) lists the model
    names a path accepts."""
    base = "/" + "/".join(p for p in (route_prefix.strip("/"), "v2") if p)
    model: dict[str, Any] = {"name": "model_name", "in": "path", "required": True}
    model["schema"] = {"type": "string", **({"enum": list(models)} if models else {})}
    version = {
        "name": "model_version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    paths: dict[str, Any] = {
        f"{base}/health/live": {"get": _get("v2_health_live", "The server is live", None)},
        f"{base}/health/ready": {
            "get": _get("v2_health_ready", "The server is ready", None, not_ready=True)
        },
        base: {"get": _get("v2_server_metadata", "Server metadata", "ServerMetadata")},
    }
    versioned = ("/versions/{model_version}", [model, version], "model_version")
    for suffix, params, tag in (("", [model], "model"), versioned):
        path = f"{base}/models/{{model_name}}{suffix}"
        paths[path] = {
            "get": _get(f"v2_{tag}_metadata", "Model metadata", "ModelMetadata", params=params)
        }
        paths[f"{path}/ready"] = {
            "get": _get(
                f"v2_{tag}_ready", "The model is ready", None, params=params, not_ready=True
            )
        }
        paths[f"{path}/infer"] = {"post": _infer(f"v2_{tag}_infer", params)}
    return paths


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": _REF.format(name="InferenceError")}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _get(
    operation: str,
    summary: str,
    schema: str | None,
    *,
    params: Sequence[dict[str, Any]] = (),
    not_ready: bool = False,
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": summary}
    if schema is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": _REF.format(name=schema)}}}
    responses: dict[str, Any] = {"200": ok}
    if params:
        responses["404"] = _error("No model of that name or version is served.")
    if not_ready or schema == "ModelMetadata":
        responses["503"] = {"description": "Not ready (a model loads on its first request)."}
    return {
        "operationId": operation,
        "summary": f"Open Inference Protocol: {summary.lower()}",
        "parameters": list(params),
        "responses": responses,
    }


def _infer(operation: str, params: Sequence[dict[str, Any]]) -> dict[str, Any]:
    request = {"$ref": _REF.format(name="InferenceRequest")}
    response = {"$ref": _REF.format(name="InferenceResponse")}
    binary = {
        "schema": {"type": "string", "format": "binary"},
        "description": "The JSON header (its length in the Inference-Header-Content-Length "
        "header), then the inputs' raw little-endian tensor bytes; BYTES elements each "
        "prefixed by a 4-byte little-endian length.",
    }
    return {
        "operationId": operation,
        "summary": "Open Inference Protocol: inference on named tensors",
        "parameters": [
            *params,
            {
                "name": "Inference-Header-Content-Length",
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 1},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": request},
                "application/octet-stream": binary,
            },
        },
        "responses": {
            "200": {
                "description": "Output tensors; binary when the request asks "
                "(binary_data_output, or an output's binary_data).",
                "headers": {"X-Model-Version": {"schema": {"type": "string"}}},
                "content": {
                    "application/json": {"schema": response},
                    "application/octet-stream": binary,
                },
            },
            "400": _error("The request does not fit the protocol or the model's inputs."),
            "404": _error("No model of that name or version is served."),
            "413": _error("The body or the batch is larger than the limit."),
            "415": _error("The Content-Encoding is not gzip or deflate."),
            "500": _error("The inference failed; the error id is in the server log."),
            "503": _error("The model is not loaded yet; retry after Retry-After seconds."),
        },
    }
