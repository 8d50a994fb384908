"""``serve_models``: a repository's models as Azure Functions HTTP routes.

::

    models/{name}                      GET, POST   the model NAME (its alias, model.zip, or
                                                   its highest version)
    models/{name}/versions/{version}   GET, POST   one version of it
    health                             GET         the listing, the budget, every model's state

Each model answers with the whole contract of a ``serve_http`` endpoint (JSON objects, arrays
and ``{"instances": [...]}``, query strings, ``text/csv``, ``Accept: text/plain``,
``X-Model-Version``, problem+json errors), validated against the schemas in its own manifest:
an :class:`~servefn.http.Endpoint` is built for each model version as it is first served.
Before it, a name or version the repository does not have is a 404 problem, a model not
loaded yet a 503 with Retry-After, and a model whose artifact was refused a 500 naming the
cause (``over-budget`` for one larger than the whole memory budget); a client's name is never
echoed back.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import azure.functions as func
import pydantic_core

from servefn._redact import install_redaction
from servefn.azure import to_request, to_response
from servefn.errors import ModelUnavailable, ModelUnusable
from servefn.http import Endpoint, Problem, Response
from servefn.http._endpoint import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES
from servefn.http._guard import log_bodies_from_environment
from servefn.http._messages import problem_response
from servefn.loaders import ModelSource
from servefn.loaders.schemes import scheme_of
from servefn.model._archive import LoadedModel
from servefn.repository._cache import DEFAULT_MAX_MODELS, Entry
from servefn.repository._catalog import RepositoryUnavailable
from servefn.repository._layout import MODEL_FILE, ModelNotFound
from servefn.repository._repository import ModelRepository

__all__ = ["ModelRoutes", "serve_models"]

_METHODS = ("GET", "POST")


def serve_models(
    app: func.FunctionApp,
    *,
    repository: str | os.PathLike[str] | ModelRepository,
    connection: str | None = None,
    memory_budget: int | str | None = None,
    max_models: int = DEFAULT_MAX_MODELS,
    refresh_after: float = 300.0,
    list_after: float = 60.0,
    trusted: Sequence[str] = (),
    allow_pickle: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = DEFAULT_MAX_BATCH,
    log_bodies: bool | None = None,
    auth_level: func.AuthLevel | None = None,
    health_route: str | None = "health",
    health_auth_level: func.AuthLevel | None = None,
    inference: bool = False,
    **storage_options: Any,
) -> ModelRepository:
    """Serve every model of ``repository`` from ``app`` under ``models/{name}``.

    ``repository`` is a folder (a relative path is relative to the folder of the module that
    calls ``serve_models``: the app's), ``blob://container/prefix``, any fsspec URL, or a
    :class:`ModelRepository` (then the repository options here are not used; the remaining
    keyword arguments are storage options for its loaders). ``connection`` names the app setting
    (or identity-based prefix) for Azure Storage, as on a Functions binding. Nothing is read
    at import: the listing is made by the first request, and each model is loaded by its own
    first request. ``memory_budget`` (default: the app setting ``SERVEFN_MEMORY_BUDGET``, else
    512 MiB) and ``max_models`` bound what stays loaded; ``list_after`` and ``refresh_after``
    are the seconds between listings and between each model's checks. ``auth_level`` applies
    to the model routes (default: the app's), ``health_auth_level`` to ``health_route``
    (default: the same; None as route adds none). ``inference=True`` also adds the Open
    Inference Protocol routes (``v2/...``) for the repository's models. Returns the repository.
    """
    install_redaction()
    if not isinstance(repository, ModelRepository):
        repository = ModelRepository(
            _beside_caller(repository, inspect.currentframe()),
            connection=connection,
            memory_budget=memory_budget,
            max_models=max_models,
            refresh_after=refresh_after,
            list_after=list_after,
            trusted=trusted,
            allow_pickle=allow_pickle,
            cache_dir=cache_dir,
            **storage_options,
        )
    body_logging = log_bodies_from_environment() if log_bodies is None else log_bodies
    routes = ModelRoutes(
        repository, max_body_bytes=max_body_bytes, max_batch=max_batch, log_bodies=body_logging
    )
    level = auth_level if auth_level is not None else _default_auth(app)

    @app.route(route="models/{name}", methods=list(_METHODS), auth_level=level)
    def models_predict(req: func.HttpRequest) -> func.HttpResponse:
        return to_response(routes.answer(req.route_params.get("name", ""), None, req))

    @app.route(route="models/{name}/versions/{version}", methods=list(_METHODS), auth_level=level)
    def models_version_predict(req: func.HttpRequest) -> func.HttpResponse:
        params = req.route_params
        return to_response(routes.answer(params.get("name", ""), params.get("version", ""), req))

    if health_route is not None:
        health_level = health_auth_level if health_auth_level is not None else level

        @app.route(route=health_route, methods=["GET"], auth_level=health_level)
        def models_health(req: func.HttpRequest) -> func.HttpResponse:
            return to_response(routes.health())

    if inference:  # the protocol's package is imported only when its routes are wanted
        from servefn.oip import add_inference_routes

        add_inference_routes(app, models=repository, auth_level=level)
    return repository


class ModelRoutes:
    """Answers the model routes and health of one repository."""

    def __init__(
        self,
        repository: ModelRepository,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = DEFAULT_MAX_BATCH,
        log_bodies: bool = False,
    ) -> None:
        self.repository = repository
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.log_bodies = log_bodies

    def answer(self, name: str, version: str | None, req: func.HttpRequest) -> Response:
        """One request to ``models/{name}`` (``version`` None) or to one of its versions."""
        request = to_request(req)
        try:
            entry, model = self.repository.resolve(name, version)
        except ModelNotFound as exc:
            return _problem(404, f"{exc}; GET health lists the models and their versions")
        except ModelUnusable as exc:
            detail = f"{str(exc).rstrip('. ')}; a new version is loaded once it is uploaded"
            return _problem(500, detail, cause=exc.cause)
        except ModelUnavailable as exc:
            seconds = str(max(1, round(exc.retry_after)))
            detail = (
                "the repository could not be listed yet; retry later"
                if isinstance(exc, RepositoryUnavailable)
                else "the model is not loaded yet; retry later"
            )
            return problem_response(Problem(503, detail, headers={"Retry-After": seconds}))
        return self._endpoint(entry, model).handle(request)

    def health(self) -> Response:
        """200 with every model's state once the repository is listed; 503 before."""
        info = self.repository.info()
        listed = info["repository"]["listed_at"] is not None
        body = {"status": "ok" if listed else "unavailable", **info}
        return Response(200 if listed else 503, pydantic_core.to_json(body))

    def _endpoint(self, entry: Entry, model: LoadedModel) -> Endpoint:
        """The endpoint of the model ``entry`` serves now, built on its first request."""
        built = entry.endpoint
        if built is not None and built[0] is model:
            endpoint: Endpoint = built[1]
            return endpoint
        endpoint = Endpoint(
            model.input_schema,
            model.output_schema,
            _Serving(model, entry.source),
            name="models/" + entry.path.removesuffix("/" + MODEL_FILE),
            max_body_bytes=self.max_body_bytes,
            max_batch=self.max_batch,
            log_bodies=self.log_bodies,
        )
        entry.endpoint = (model, endpoint)
        return endpoint


class _Serving:
    """The provider of one model version's endpoint: that model, with its source's state.

    It holds the source, not the cache entry (which holds the endpoint): no reference cycle
    keeps an evicted model in memory until the collector runs.
    """

    def __init__(self, model: LoadedModel, source: ModelSource[LoadedModel]) -> None:
        self.model = model
        self.source = source

    def get(self) -> LoadedModel:
        return self.model

    def in_memory(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return self.source.info()


def _beside_caller(location: str | os.PathLike[str], frame: FrameType | None) -> str:
    """``location``, a relative folder made relative to the calling module's folder."""
    text = os.fspath(location)
    caller = frame.f_back if frame is not None else None
    module_file = caller.f_globals.get("__file__") if caller is not None else None
    if scheme_of(text) is not None or Path(text).is_absolute() or not module_file:
        return text
    return str(Path(module_file).resolve().parent / text)


def _problem(status: int, detail: str, **extra: Any) -> Response:
    return problem_response(Problem(status, detail, **extra))


def _default_auth(app: func.FunctionApp) -> func.AuthLevel:
    level = getattr(app, "auth_level", None)
    return level if isinstance(level, func.AuthLevel) else func.AuthLevel.FUNCTION
