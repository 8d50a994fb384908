"""Serve a ``model.zip`` with no user code: the routes come from the model's own manifest.

``servefn serve model.zip`` (or ``az://models/model.zip``, ``blob://...``, any loader URI) loads
the model once at start-up to read its input and output schemas, then answers like a
``serve_http`` function would: ``/api/Predict`` (GET, POST) with validation and the whole HTTP
contract, ``/api/health`` and ``/api/openapi.json``; and the Open Inference Protocol's routes
(``/api/v2/...``, :mod:`servefn.oip`), where the model is named ``predict``, as the function
is. The model is kept fresh by a :class:`~servefn.loaders.ModelSource`, exactly as in a
function app.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servefn.devhost._indexing import APP_FILE_NAME, HttpFunction
from servefn.errors import AppNotFoundError, DevHostError, ServefnError
from servefn.http import Endpoint, Response
from servefn.http._openapi import openapi_document
from servefn.loaders import ModelLoader, ModelSource, loader_for, redact
from servefn.loaders.schemes import check_connection, scheme_of

if TYPE_CHECKING:
    import azure.functions as func

    from servefn.model._archive import LoadedModel

__all__ = ["ROUTE_PREFIX", "ModelApp", "is_model_location", "manifest_openapi", "model_loader"]

PREDICT_ROUTE = "Predict"
PREDICT_NAME = "predict"
"""The function's name, and the model's name on the Open Inference Protocol's routes."""
ROUTE_PREFIX = "api"
KEYED = "FUNCTION"
"""The authLevel of the prediction routes (as in a default FunctionApp): ``servefn serve
--auth keys`` asks for a key there; health, openapi.json and the docs page stay ANONYMOUS."""


def is_model_location(location: str | os.PathLike[str]) -> bool:
    """True when ``location`` names a model (a URL, or a file that is not Python source).

    A folder or a ``.py`` file is a function app; anything that does not exist locally and has
    no URL scheme is neither (:class:`AppNotFoundError`).
    """
    text = os.fspath(location)
    if scheme_of(text) not in (None, "file"):
        return True
    path = Path(text.removeprefix("file://")).expanduser()
    if path.is_dir() or path.suffix == ".py":
        return False
    if path.is_file():
        return True
    raise AppNotFoundError(
        f"{text} does not exist; pass a {APP_FILE_NAME}, the folder holding one, a model.zip "
        "or a model URL (az://, blob://, ...)"
    )


def model_loader(location: str, connection: str | None = None) -> ModelLoader:
    """The loader for a path or URL; ``connection`` only for Azure URLs.

    Raises :class:`~servefn.loaders.schemes.ConnectionNotApplicable` (a usage mistake: exit
    code 2) for a connection given with another kind of location, :class:`DevHostError` for a
    storage package that is not installed.
    """
    check_connection(connection, location, option="--connection")  # loader_for's rule, CLI words
    try:
        return loader_for(location, connection)
    except ImportError as exc:
        raise DevHostError(str(exc)) from None
    except ValueError as exc:
        raise DevHostError(f"cannot read a model from {redact(location)}: {exc}") from None


class ModelApp:
    """The HTTP functions that serve one model, built from its manifest.

    Build one with :meth:`load`: ``location`` is a model file or any loader URL; for
    ``blob://``/``az://``/``abfs://``, ``connection`` is the app setting (or identity-based
    prefix) that reaches the storage account, as on a Functions binding (default
    ``AzureWebJobsStorage``).
    """

    def __init__(self, source: ModelSource[LoadedModel], endpoint: Endpoint) -> None:
        self.source = source
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"ModelApp({self.source.uri!r})"

    @classmethod
    def load(
        cls,
        location: str | os.PathLike[str],
        *,
        connection: str | None = None,
        trusted: Sequence[str] = (),
    ) -> ModelApp:
        """Load the model now (its schemas shape the routes); :class:`DevHostError` if it
        cannot be loaded, with the reason. ``trusted`` names extra types a scikit-learn (skops)
        model may hold, in addition to the app setting ``SERVEFN_TRUSTED``."""
        from servefn.azure import model_parser

        source = ModelSource(
            model_loader(os.fspath(location), connection),
            parse=model_parser(trusted),
            refresh_in_background=True,
        )
        try:
            model = source.warm()
        except ServefnError:
            reason = source.info()["last_error"] or "unknown error"
            raise DevHostError(f"cannot load the model: {reason}") from None
        return cls(source, Endpoint(model.input_schema, model.output_schema, source))

    @property
    def uri(self) -> str:
        """Where the model comes from, without credentials."""
        return self.source.uri

    def openapi(self) -> bytes:
        """The OpenAPI 3.1 document of the Predict route (no key needed: served locally)."""
        return _openapi(self.endpoint, self.uri)

    def functions(self) -> list[HttpFunction]:
        """Predict, health, openapi.json and the Open Inference Protocol's routes as HTTP
        functions for the local host (under :data:`ROUTE_PREFIX`)."""
        from servefn.azure import function_for
        from servefn.oip import InferenceService, ProvidedModels, inference_functions

        endpoint = self.endpoint
        predict = function_for(endpoint, PREDICT_NAME)  # recognised by the host: inline
        service = InferenceService(
            ProvidedModels({PREDICT_NAME: self.source}),
            max_body_bytes=endpoint.max_body_bytes,
            max_batch=endpoint.max_batch,
        )
        return [
            HttpFunction.builtin(PREDICT_NAME, PREDICT_ROUTE, ("GET", "POST"), predict, KEYED),
            _function("health", "health", ("GET",), lambda _: endpoint.health()),
            _function("openapi", "openapi.json", ("GET",), lambda _: Response(200, self.openapi())),
            *(
                HttpFunction.builtin(f.name, f.route, (f.method,), f.handler, KEYED)
                for f in inference_functions(service, (PREDICT_NAME,))
            ),
        ]


def manifest_openapi(location: str, connection: str | None = None) -> bytes:
    """The document :meth:`ModelApp.openapi` serves, from the model's manifest alone: the
    predictor is never built, so no trusted type or optional package is needed."""
    from servefn.model._archive import read_manifest
    from servefn.schema import schema_from_spec

    loader = model_loader(location, connection)
    fetched = loader.fetch()
    if fetched is None:  # only a loader given an etag answers "unchanged"
        raise DevHostError(f"{loader.uri} returned no content")
    manifest = read_manifest(fetched.data)
    endpoint = Endpoint(
        schema_from_spec(manifest["input"]), schema_from_spec(manifest["output"]), _NoModel()
    )
    return _openapi(endpoint, loader.uri)


class _NoModel:
    """The provider of a document-only endpoint: it never answers a request."""

    def get(self) -> LoadedModel:
        raise DevHostError("this endpoint only describes a model; it does not serve it")

    def info(self) -> dict[str, Any]:
        return {}


def _openapi(endpoint: Endpoint, uri: str) -> bytes:
    return openapi_document(
        [(endpoint, PREDICT_ROUTE, ("GET", "POST"))],
        route_prefix=ROUTE_PREFIX,
        key_required=False,
        title=f"{Path(uri).name} predictions",
        inference=[PREDICT_NAME],
    )


def _function(
    name: str,
    route: str,
    methods: tuple[str, ...],
    answer: Callable[..., Response],
) -> HttpFunction:
    from servefn.azure import to_request, to_response

    def handler(req: func.HttpRequest) -> func.HttpResponse:
        return to_response(answer(to_request(req)))

    handler.__name__ = name
    return HttpFunction.builtin(name, route, methods, handler)
