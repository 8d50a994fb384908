"""The Open Inference Protocol's routes as Azure Functions HTTP functions.

``add_inference_routes(app)`` registers one function per route of the protocol's REST form,
under the app's route prefix (the Functions host adds ``api/``):

=====================================================  ======  ============================
route                                                  method  answer
=====================================================  ======  ============================
``v2/health/live``, ``v2/health/ready``                GET     200 live / ready (503 not)
``v2``                                                 GET     server metadata
``v2/models/{model_name}[/versions/{model_version}]``  GET     model metadata
``.../ready``                                          GET     200 ready, 503 not loaded
``.../infer``                                          POST    inference, JSON or binary
=====================================================  ======  ============================

Each function is a plain ``(req: func.HttpRequest) -> func.HttpResponse`` the worker indexes,
and ``servefn serve`` runs as any other (the zero-code model app uses the same functions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from servefn._compat import registered_functions
from servefn.azure import endpoint_of, to_request, to_response
from servefn.errors import ServefnError
from servefn.http._endpoint import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, Endpoint
from servefn.http._inference_openapi import INFERENCE_MARK
from servefn.oip._resolver import ModelResolver, ProvidedModels
from servefn.oip._service import InferenceService

__all__ = ["INFERENCE_ROUTES", "InferenceFunction", "add_inference_routes", "inference_functions"]

_MODEL = "v2/models/{model_name}"
_VERSION = _MODEL + "/versions/{model_version}"
INFERENCE_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("v2_health_live", "v2/health/live", "GET", "live"),
    ("v2_health_ready", "v2/health/ready", "GET", "ready"),
    ("v2_server_metadata", "v2", "GET", "server_metadata"),
    ("v2_model_metadata", _MODEL, "GET", "model_metadata"),
    ("v2_model_version_metadata", _VERSION, "GET", "model_metadata"),
    ("v2_model_ready", _MODEL + "/ready", "GET", "model_ready"),
    ("v2_model_version_ready", _VERSION + "/ready", "GET", "model_ready"),
    ("v2_model_infer", _MODEL + "/infer", "POST", "infer"),
    ("v2_model_version_infer", _VERSION + "/infer", "POST", "infer"),
)
"""(function name, route, method, :class:`InferenceService` method) of every route."""


@dataclass(frozen=True)
class InferenceFunction:
    """One route of the protocol as an HTTP function: its name, route, method and handler."""

    name: str
    route: str
    method: str
    handler: Callable[[func.HttpRequest], func.HttpResponse]


def add_inference_routes(
    app: func.FunctionApp,
    *,
    models: ModelResolver | None = None,
    auth_level: func.AuthLevel | None = None,
    max_body_bytes: int | None = None,
    max_batch: int | None = None,
) -> None:
    """Serve the Open Inference Protocol (KServe V2, REST) on ``app``.

    ``models`` resolves model names; by default they are the app's ``serve_http`` functions
    registered so far (add this after them): each model's name is its function's name, and
    its version the model's sha256 prefix (``X-Model-Version``). The routes run the model's
    predictor on the validated inputs; a custom handler's own logic is not part of them.
    ``auth_level`` defaults to the app's. ``max_body_bytes`` and ``max_batch`` default to the
    largest of the functions' own limits (``serve_http``'s defaults for a resolver).
    """
    service = inference_service(app, models, max_body_bytes=max_body_bytes, max_batch=max_batch)
    level = auth_level if auth_level is not None else _default_auth(app)
    named = models is None  # the app's own functions: their names are known now
    for function in inference_functions(service, service.models.names() if named else ()):
        app.route(route=function.route, methods=[function.method], auth_level=level)(
            function.handler
        )


def inference_service(
    app: func.FunctionApp | None,
    models: ModelResolver | None,
    *,
    max_body_bytes: int | None = None,
    max_batch: int | None = None,
) -> InferenceService:
    """The service behind the routes: over ``models``, or the app's serve_http functions."""
    endpoints: dict[str, Endpoint] = {}
    if models is None:
        endpoints = _app_endpoints(app)
        if not endpoints:
            raise ServefnError(
                "add_inference_routes found no serve_http functions on the app; add it after "
                "them, or pass models=..."
            )
        models = ProvidedModels({name: e.source for name, e in endpoints.items()})
    values = list(endpoints.values())
    body = max([e.max_body_bytes for e in values], default=DEFAULT_MAX_BODY_BYTES)
    batch = max([e.max_batch for e in values], default=DEFAULT_MAX_BATCH)
    return InferenceService(
        models,
        max_body_bytes=body if max_body_bytes is None else max_body_bytes,
        max_batch=batch if max_batch is None else max_batch,
    )


def inference_functions(
    service: InferenceService, models: Sequence[str] = ()
) -> list[InferenceFunction]:
    """Every route of the protocol as a function answering with ``service``; ``models`` are
    the model names when they are fixed (for the OpenAPI document)."""
    return [
        InferenceFunction(name, route, method, _handler(name, getattr(service, answer), models))
        for name, route, method, answer in INFERENCE_ROUTES
    ]


def _handler(
    name: str, answer: Callable[..., Any], models: Sequence[str]
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    takes_model = answer.__name__ in ("model_metadata", "model_ready", "infer")

    def handler(req: func.HttpRequest) -> func.HttpResponse:
        if not takes_model:
            return to_response(answer(to_request(req)))
        params = req.route_params
        model = params.get("model_name", "")
        version = params.get("model_version") or None
        return to_response(answer(to_request(req), model, version))

    handler.__name__ = handler.__qualname__ = name
    setattr(handler, INFERENCE_MARK, tuple(models))  # the OpenAPI document's model names
    return handler


def _app_endpoints(app: Any) -> dict[str, Endpoint]:
    """The serve_http functions registered on ``app``, by function name."""
    found = {}
    for function in registered_functions(app):
        try:
            endpoint = endpoint_of(function.get_user_function())
        except ServefnError:
            continue
        found[function.get_function_name()] = endpoint
    return found


def _default_auth(app: func.FunctionApp) -> func.AuthLevel:
    level = getattr(app, "auth_level", None)
    return level if isinstance(level, func.AuthLevel) else func.AuthLevel.FUNCTION
