"""The OpenAPI document of a function app served by ``servefn serve``, from its ``serve_http``
functions: the one ``add_health_routes`` would serve, and what the docs page shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from servefn.devhost._indexing import HttpFunction
from servefn.errors import DevHostError, ServefnError

if TYPE_CHECKING:
    from servefn.http._endpoint import Endpoint

__all__ = ["KEYED_AUTH_LEVELS", "app_openapi", "serve_http_routes"]

KEYED_AUTH_LEVELS = ("FUNCTION", "ADMIN")
"""The authLevels that need a key on Azure."""


def serve_http_routes(
    functions: Sequence[HttpFunction],
) -> list[tuple[Endpoint, str, tuple[str, ...]]]:
    """(endpoint, route, methods) of the functions made by ``serve_http``."""
    from servefn.azure import endpoint_of

    found = []
    for function in functions:
        try:
            endpoint = endpoint_of(function.handler)
        except ServefnError:
            continue
        found.append((endpoint, function.route, function.methods or ("GET", "POST")))
    return found


def app_openapi(functions: Sequence[HttpFunction], route_prefix: str) -> bytes:
    """The document of ``functions``' serve_http routes; :class:`DevHostError` without any."""
    from servefn.http._inference_openapi import inference_models
    from servefn.http._openapi import openapi_document

    routes = serve_http_routes(functions)
    if not routes:
        raise DevHostError(
            "the app has no serve_http functions, so there is no OpenAPI document to show"
        )
    keyed = any(
        f.auth_level in KEYED_AUTH_LEVELS
        for f in functions
        if any(f.route == route for _, route, _ in routes)
    )
    inference = inference_models(f.handler for f in functions)  # servefn.oip's routes, if any
    return openapi_document(
        routes, route_prefix=route_prefix, key_required=keyed, inference=inference
    )
