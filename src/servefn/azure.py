"""Azure Functions adapter: ``serve_http`` and the health/OpenAPI routes.

``serve_http(InputSchema, OutputSchema, model=...)`` turns a function ``(model, inputs) ->
outputs``, or a :class:`~servefn.predictors.Predictor` class or instance, into a real
``(req: func.HttpRequest) -> func.HttpResponse`` function that the Functions worker indexes:
its name is the decorated object's name, its only parameter is ``req``, and it is ``async``
exactly when the decorated callable is. Place ``@app.route(...)`` above it (outermost).

This module deliberately avoids ``from __future__ import annotations``: the worker reads the
wrapper's annotations as real classes.
"""

import functools
import hashlib
import inspect
import os
import re
import sys
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import azure.functions as func

from servefn._compat import builder_function, header_dict, registered_functions
from servefn._redact import install_redaction
from servefn.errors import ServefnError
from servefn.http._collector import freeze_startup_objects
from servefn.http._endpoint import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    Endpoint,
    ModelProvider,
    Request,
    Response,
)
from servefn.http._guard import log_bodies_from_environment
from servefn.loaders import ModelLoader, ModelSource, loader_for
from servefn.model._archive import LoadedModel, load_model
from servefn.predictors import Predictor
from servefn.predictors.base import trusted_types
from servefn.schema._schema import Schema

__all__ = [
    "add_health_routes",
    "endpoint_of",
    "function_for",
    "model_parser",
    "serve_http",
    "to_request",
    "to_response",
]

ModelSpec = Union[str, "os.PathLike[str]", ModelLoader, ModelProvider, LoadedModel, None]


def serve_http(
    input_schema: type[Schema],
    output_schema: type[Schema],
    *,
    model: ModelSpec = None,
    connection: str | None = None,
    refresh_after: float = 300.0,
    sha256: str | None = None,
    cache_dir: str | None = None,
    warm: bool = False,
    trusted: Sequence[str] = (),
    allow_pickle: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
    log_bodies: bool | None = None,
) -> Callable[[Any], Callable[..., Any]]:
    """Decorate a handler or a Predictor so it answers Azure Functions HTTP requests.

    ``model`` is a path (relative paths are resolved against the decorated code's folder),
    a URL (``blob://``, ``az://``, any fsspec URL), a loader, a ``ModelSource`` or a loaded
    model. ``connection`` names the app setting (or identity-based prefix) for Azure URLs, as
    on a Functions binding. The model is loaded once, on the first request (or at import with
    ``warm=True``), and checked for a new version at most every ``refresh_after`` seconds, in
    a background thread: requests keep the current model until a new one is ready.
    ``trusted`` names extra types a scikit-learn (skops) model may contain, in addition to
    those of the app setting ``SERVEFN_TRUSTED`` (comma-separated); ``allow_pickle``
    admits a model saved with pickle. Both are off by default: a model file never runs code.

    Request bodies, and exception messages that may quote them, are never logged unless
    ``log_bodies=True`` (default: the app setting ``SERVEFN_LOG_BODIES=1``), a debugging switch
    that also needs the ``servefn.http`` logger at DEBUG.

    The first ``serve_http`` of a process is the Functions worker's startup: unless ``model``
    is loaded already, it freezes the objects alive then, once, before any model loads
    (:func:`servefn.http.freeze_startup_objects`, which says why).
    """
    body_logging = log_bodies_from_environment() if log_bodies is None else log_bodies
    install_redaction()  # every log line of the app, the storage SDKs' included

    def decorate(target: Any) -> Callable[..., Any]:
        is_predictor = isinstance(target, Predictor) or (
            isinstance(target, type) and issubclass(target, Predictor)
        )
        if is_predictor:
            provider: ModelProvider = _PredictorProvider(target, input_schema, output_schema)
            handler = None
            name = _snake(target.__name__ if isinstance(target, type) else type(target).__name__)
            is_async = inspect.iscoroutinefunction(getattr(target, "predict", None))
        else:
            if not callable(target):
                raise TypeError(f"serve_http decorates a function or a Predictor, not {target!r}")
            if model is None:
                raise ServefnError(
                    f"serve_http on {target.__name__} needs model=...: a path, a URL or a loader"
                )
            provider = _provider(
                model,
                connection=connection,
                refresh_after=refresh_after,
                sha256=sha256,
                cache_dir=cache_dir,
                base=_folder_of(target),
                parse=model_parser(trusted, allow_pickle),
            )
            handler, name = target, target.__name__
            is_async = inspect.iscoroutinefunction(target)
        if provider.info().get("version") is None:  # the worker's startup: no model loaded yet
            freeze_startup_objects()
        if warm and isinstance(provider, ModelSource):
            provider.warm()
        endpoint = Endpoint(
            input_schema,
            output_schema,
            provider,
            handler=handler,
            name=name,
            max_body_bytes=max_body_bytes,
            max_batch=max_batch,
            log_bodies=body_logging,
        )
        wrapper = function_for(endpoint, name, is_async=is_async)
        wrapper.__module__ = getattr(target, "__module__", __name__)
        wrapper.__doc__ = getattr(target, "__doc__", None)
        return wrapper

    return decorate


_ENDPOINTS: "weakref.WeakKeyDictionary[Callable[..., Any], Endpoint]" = weakref.WeakKeyDictionary()
"""Each function :func:`function_for` made -> the endpoint it answers with."""


def function_for(endpoint: Endpoint, name: str, *, is_async: bool = False) -> Callable[..., Any]:
    """The ``(req: func.HttpRequest) -> func.HttpResponse`` function that answers with
    ``endpoint``, named ``name``: what ``serve_http`` returns. It is registered, so that
    :func:`endpoint_of` finds its endpoint (hosts, health and OpenAPI routes use that)."""
    wrapper = _async_wrapper(endpoint) if is_async else _sync_wrapper(endpoint)
    wrapper.__name__ = wrapper.__qualname__ = name
    _ENDPOINTS[wrapper] = endpoint
    return wrapper


# The wrappers declare ``context`` (annotated exactly func.Context, as the worker requires) so
# the worker passes it: its trace context is the parent of the invocation's span. It defaults
# to None for direct calls, and is read only when the endpoint has telemetry.


def _sync_wrapper(endpoint: Endpoint) -> Callable[..., Any]:
    traced = endpoint.observer is not None

    def handler(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:  # type: ignore[assignment]
        return to_response(endpoint.handle(to_request(req, context if traced else None)))

    return handler


def _async_wrapper(endpoint: Endpoint) -> Callable[..., Any]:
    traced = endpoint.observer is not None

    async def handler(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:  # type: ignore[assignment]
        request = to_request(req, context if traced else None)
        return to_response(await endpoint.handle_async(request))

    return handler


def to_request(req: func.HttpRequest, context: func.Context | None = None) -> Request:
    """``func.HttpRequest`` -> :class:`~servefn.http.Request`, without copying headers; with
    the invocation's ``context``, its W3C trace context (``traceparent``) comes along."""
    return Request(
        req.method,
        req.get_body(),
        header_dict(req.headers),
        req.params,
        None if context is None else _trace_context(context),
    )


def _trace_context(context: Any) -> dict[str, str] | None:
    """The host's trace context of an invocation (None when it passed none)."""
    trace = getattr(context, "trace_context", None)
    parent = getattr(trace, "trace_parent", None)
    if not isinstance(parent, str) or not parent:
        return None
    state = getattr(trace, "trace_state", None)
    return {"traceparent": parent, "tracestate": state if isinstance(state, str) else ""}


def to_response(response: Response) -> func.HttpResponse:
    """:class:`~servefn.http.Response` -> ``func.HttpResponse``."""
    media, _, charset = response.media_type.partition("; charset=")
    return func.HttpResponse(
        body=response.body,
        status_code=response.status,
        headers=dict(response.headers),
        mimetype=media,
        charset=charset or "utf-8",
    )


def endpoint_of(function: Any, *, exact: bool = False) -> Endpoint:
    """The :class:`Endpoint` behind a ``serve_http`` function.

    ``function`` may also be its ``@app.route`` builder, or a decorator around it made with
    ``functools.wraps`` (followed through ``__wrapped__``). With ``exact=True`` only the
    function ``serve_http`` made counts: a host that calls the endpoint in its place needs
    that, since a decorator around it may add behaviour that must run.
    """
    candidate = function
    if not exact:
        built = builder_function(function)  # azure.functions' FunctionBuilder
        if built is not None and hasattr(built, "get_user_function"):
            candidate = built.get_user_function()
    for _ in range(100):  # a __wrapped__ chain, never a loop
        try:
            endpoint = _ENDPOINTS.get(candidate)
        except TypeError:  # not weak-referenceable or not hashable: not one of ours
            endpoint = None
        if endpoint is not None:
            return endpoint
        candidate = None if exact else getattr(candidate, "__wrapped__", None)
        if candidate is None:
            break
    raise ServefnError(f"{function!r} was not made by serve_http")


def add_health_routes(
    app: func.FunctionApp,
    *functions: Any,
    route_prefix: str = "api",
    auth_level: func.AuthLevel | None = None,
) -> None:
    """Add ``GET health`` and ``GET openapi.json`` to ``app`` for its serve_http functions.

    With no ``functions`` given, every serve_http function already registered on ``app`` is
    covered. The document also describes the Open Inference Protocol's routes when the app
    serves them (``servefn.oip.add_inference_routes``, before or after this).
    ``route_prefix`` is host.json's ``extensions.http.routePrefix`` (default ``api``); it only
    affects the paths written into the OpenAPI document.
    """
    from servefn.http._inference_openapi import inference_models
    from servefn.http._openapi import openapi_document

    routes = _registered_routes(app)
    endpoints = [endpoint_of(f) for f in functions] or [e for e, _, _ in routes]
    if not endpoints:
        raise ServefnError(
            "add_health_routes found no serve_http functions on the app; add it last"
        )
    paths = {id(e): (route, methods) for e, route, methods in routes}
    level = auth_level if auth_level is not None else _default_auth(app)

    @app.route(route="health", methods=["GET"], auth_level=level)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        answers = [e.health() for e in endpoints]
        status = max(a.status for a in answers)
        if len(answers) == 1:
            return to_response(answers[0])
        body = b"[" + b",".join(a.body for a in answers) + b"]"
        return to_response(Response(status, body))

    @app.route(route="openapi.json", methods=["GET"], auth_level=level)
    def openapi(req: func.HttpRequest) -> func.HttpResponse:
        document = openapi_document(
            [(e, *paths.get(id(e), (e.name, ("GET", "POST")))) for e in endpoints],
            route_prefix=route_prefix,
            key_required=level != func.AuthLevel.ANONYMOUS,
            inference=inference_models(f.get_user_function() for f in registered_functions(app)),
        )
        return to_response(Response(200, document))


# -- model providers ----------------------------------------------------------------------------


def _provider(
    model: ModelSpec,
    *,
    connection: str | None,
    refresh_after: float,
    sha256: str | None,
    cache_dir: str | None,
    base: Path | None,
    parse: Callable[[bytes], LoadedModel] | None,
) -> ModelProvider:
    if isinstance(model, LoadedModel):
        return _Fixed(model)
    if isinstance(model, ModelSource) or (hasattr(model, "get") and hasattr(model, "info")):
        return model  # type: ignore[return-value]
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if "://" not in text and base is not None and not Path(text).is_absolute():
            text = str(base / text)
        model = loader_for(text, connection)  # the one connection rule: Azure Storage only
    if model is None:
        raise ServefnError("serve_http needs model=...: a path, a URL or a loader")
    return ModelSource(
        model,
        parse=parse,
        refresh_after=refresh_after,
        sha256=sha256,
        cache_dir=cache_dir,
        refresh_in_background=True,  # no request waits for a check once a model is loaded
    )


def model_parser(
    trusted: Sequence[str] = (), allow_pickle: bool = False
) -> Callable[[bytes], LoadedModel] | None:
    """``load_model`` with the caller's trust settings plus the app setting ``SERVEFN_TRUSTED``
    (read now), or None for the default (trust nothing)."""
    if isinstance(trusted, str):
        raise TypeError("trusted= takes a list of type names, not one string")
    types = trusted_types(trusted)
    if not types and not allow_pickle:
        return None
    parse = functools.partial(load_model, trusted=types, allow_pickle=allow_pickle)
    parse.accepts_sha256 = True  # type: ignore[attr-defined]  # ModelSource passes its digest
    return parse


class _Fixed:
    """A model given directly: always ready, never refreshed."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def get(self) -> LoadedModel:
        return self.model

    def in_memory(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return {"state": "ready", "version": self.model.version, "sha256": self.model.sha256}


class _PredictorProvider:
    """A user Predictor class (instantiated on first use) or instance, as a loaded model."""

    def __init__(self, target: Any, input_schema: type[Schema], output_schema: type[Schema]):
        self._target = target
        self._schemas = (input_schema, output_schema)
        self._model: LoadedModel | None = None

    def get(self) -> LoadedModel:
        if self._model is None:
            predictor = self._target() if isinstance(self._target, type) else self._target
            digest = hashlib.sha256(type(predictor).__qualname__.encode()).hexdigest()
            self._model = LoadedModel(predictor, *self._schemas, {}, digest, 0)
        return self._model

    def in_memory(self) -> bool:
        return self._model is not None

    def info(self) -> dict[str, Any]:
        model = self._model
        return {"state": "ready" if model else "idle", "version": model.version if model else None}


# -- helpers ------------------------------------------------------------------------------------


def _folder_of(target: Any) -> Path | None:
    module = sys.modules.get(getattr(target, "__module__", ""), None)
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent if file else None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _default_auth(app: func.FunctionApp) -> func.AuthLevel:
    level = getattr(app, "auth_level", None)
    return level if isinstance(level, func.AuthLevel) else func.AuthLevel.FUNCTION


def _registered_routes(app: func.FunctionApp) -> list[tuple[Endpoint, str, tuple[str, ...]]]:
    """(endpoint, route, methods) of the serve_http functions registered on ``app`` so far."""
    found = []
    for function in registered_functions(app):
        try:
            endpoint = endpoint_of(function.get_user_function())
        except ServefnError:
            continue
        trigger = function.get_trigger()
        route = getattr(trigger, "route", None) or endpoint.name
        methods = tuple(
            str(getattr(m, "value", m)) for m in (getattr(trigger, "methods", None) or [])
        )
        found.append((endpoint, route, methods or ("GET", "POST")))
    return found
