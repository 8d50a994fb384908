"""An OpenAPI 3.1 document for serve_http endpoints, generated from their schemas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pydantic_core

from servefn._version import __version__
from servefn.http._features import FEATURE_LIMIT
from servefn.http._inference_openapi import INFERENCE_SCHEMAS, inference_paths
from servefn.http._problems import PROBLEM_MEDIA_TYPE
from servefn.schema import layout_of

if TYPE_CHECKING:
    from servefn.http._endpoint import Endpoint

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; never contains the request's values.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "error_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
                "required": ["type", "loc", "msg"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}
_ERRORS = {
    "400": "The body is not valid JSON or UTF-8.",
    "405": "Only GET and POST are served.",
    "413": "The body or the batch is larger than the limit.",
    "415": "The Content-Type is not application/json or text/csv.",
    "422": "The records do not match the input schema (see errors).",
    "500": "The prediction failed; error_id is in the server log.",
    "503": "No model is loaded yet; retry after Retry-After seconds.",
}


def openapi_document(
    routes: Sequence[tuple[Endpoint, str, Sequence[str]]],
    *,
    route_prefix: str = "api",
    key_required: bool = True,
    title: str = "servefn predictions",
    inference: Sequence[str] | None = None,
) -> bytes:
    """The OpenAPI 3.1 document (JSON bytes) for ``(endpoint, route, methods)`` triples.

    ``inference`` (the model names, or an empty list when they are not known) adds the Open
    Inference Protocol's routes (``servefn.oip``); None leaves them out.
    """
    schemas: dict[str, Any] = {"Problem": _PROBLEM}
    paths: dict[str, Any] = {}
    for endpoint, route, methods in routes:
        in_name = _add_schema(schemas, endpoint.input_schema, features=True)
        out_name = _add_schema(schemas, endpoint.output_schema)
        path = "/" + "/".join(p for p in (route_prefix.strip("/"), route.strip("/")) if p)
        item: dict[str, Any] = {}
        upper = {m.upper() for m in methods}
        if "POST" in upper:
            item["post"] = _post(endpoint, in_name, out_name)
        if "GET" in upper:
            item["get"] = _get(endpoint, in_name, out_name)
        paths[path] = item
    if inference is not None:
        paths.update(inference_paths(route_prefix, inference))
        schemas.update(INFERENCE_SCHEMAS)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if key_required:
        document["components"]["securitySchemes"] = {
            "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
            "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
        }
        document["security"] = [{"functionKey": []}, {"functionKeyQuery": []}]
    return pydantic_core.to_json(document, indent=2)


def _add_schema(schemas: dict[str, Any], model: Any, *, features: bool = False) -> str:
    generated = model.model_json_schema(by_alias=True, ref_template=_REF, mode="validation")
    schemas.update(generated.pop("$defs", {}))
    if features:
        _bound_features(model, generated["properties"])
    schemas[model.__name__] = generated
    return str(model.__name__)


def _bound_features(model: Any, properties: dict[str, Any]) -> None:
    """Say that numeric features are float32 values, as the endpoint enforces (422 beyond)."""
    for column in layout_of(model).features:
        schema = properties.get(column.name, {})
        targets = [schema.get("items", {})] if column.kind == "vector" else [schema]
        for target in [*targets, *schema.get("anyOf", [])]:
            if target.get("type") in ("number", "integer"):
                target.setdefault("minimum", -FEATURE_LIMIT)
                target.setdefault("maximum", FEATURE_LIMIT)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _responses(endpoint: Endpoint, out: str, *, batch: bool) -> dict[str, Any]:
    one, many = _ref(out), {"type": "array", "items": _ref(out)}
    ok_schema = (
        {
            "oneOf": [
                one,
                many,
                {
                    "type": "object",
                    "properties": {"predictions": many},
                    "required": ["predictions"],
                },
            ]
        }
        if batch
        else one
    )
    first = layout_of(endpoint.output_schema).columns[0].name
    responses: dict[str, Any] = {
        "200": {
            "description": "Predictions, in the shape of the request.",
            "headers": {"X-Model-Version": {"schema": {"type": "string"}}},
            "content": {
                "application/json": {"schema": ok_schema},
                "text/plain": {
                    "schema": {"type": "string"},
                    "description": f"With Accept: text/plain, the {first} value(s), one per line.",
                },
            },
        }
    }
    for status, description in _ERRORS.items():
        responses[status] = {
            "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")}},
        }
    return responses


def _post(endpoint: Endpoint, in_name: str, out_name: str) -> dict[str, Any]:
    one, many = _ref(in_name), {"type": "array", "items": _ref(in_name), "minItems": 1}
    many["maxItems"] = endpoint.max_batch
    instances = {
        "type": "object",
        "properties": {"instances": many},
        "required": ["instances"],
        "additionalProperties": False,
    }
    return {
        "operationId": f"{endpoint.name}_post",
        "summary": f"Predict {out_name} from one or more {in_name} records",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [one, many, instances]}},
                "text/csv": {
                    "schema": {"type": "string"},
                    "description": "Rows by column index; add ;header=present to skip a header.",
                },
            },
        },
        "responses": _responses(endpoint, out_name, batch=True),
    }


def _get(endpoint: Endpoint, in_name: str, out_name: str) -> dict[str, Any]:
    properties = endpoint.input_schema.model_json_schema(by_alias=True)["properties"]
    _bound_features(endpoint.input_schema, properties)
    parameters = [
        {
            "name": column.name,
            "in": "query",
            "required": column.required,
            "schema": properties.get(column.name, {}),
            **({"style": "form", "explode": False} if column.kind == "vector" else {}),
        }
        for column in layout_of(endpoint.input_schema).columns
    ]
    return {
        "operationId": f"{endpoint.name}_get",
        "summary": f"Predict {out_name} from one {in_name} given as query parameters",
        "parameters": parameters,
        "responses": _responses(endpoint, out_name, batch=False),
    }
