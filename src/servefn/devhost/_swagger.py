"""The interactive docs page of ``servefn serve``: Swagger UI at ``/api/docs``, from local files.

Swagger UI's JavaScript and CSS come from the ``swagger-ui-py`` package (part of the ``serve``
extra), never from a CDN: the page works offline and its Content-Security-Policy allows this
origin only, so "Try it out" can call nothing but the local host. The page shows one OpenAPI
document: the app's own ``openapi.json`` route when it has one (``add_health_routes``), else a
document servefn builds from the app's ``serve_http`` functions and serves beside the page.
"""

from __future__ import annotations

import html
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from servefn.devhost._indexing import HttpFunction
from servefn.http._endpoint import Response
from servefn.http._problems import PROBLEM_MEDIA_TYPE, Problem

if TYPE_CHECKING:
    import azure.functions as func

__all__ = ["DOCS_ROUTE", "SWAGGER_UI_MISSING", "DocsPage", "swagger_ui_folder"]

DOCS_ROUTE = "docs"
SWAGGER_UI_MISSING = "the docs page needs swagger-ui-py: pip install 'servefn[serve]'"
GENERATED_DOCUMENT = "openapi.json"
"""The asset name of the document servefn builds when the app serves none itself."""

_SWAGGER_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
_STARTER_NAME = "servefn-docs.js"
_STARTER = b"""\
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    validatorUrl: null
  });
});
"""
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def swagger_ui_folder() -> Path | None:
    """Swagger UI's files from the installed ``swagger-ui-py`` (None when it is missing).

    Found without importing the package, which would import its web-framework glue.
    """
    try:
        spec = importlib.util.find_spec("swagger_ui")
    except ImportError:
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "static"
        if all((folder / name).is_file() for name in _SWAGGER_FILES):
            return folder
    return None


class DocsPage:
    """Swagger UI for one OpenAPI document, served at ``/<prefix>/docs``.

    Parameters
    ----------
    route_prefix
        host.json's route prefix ("api"; "" for none).
    openapi_route
        The app's route that serves the OpenAPI document, or None to serve ``document``.
    document
        Builds the OpenAPI document when the app has no route for it.
    title
        The page title.
    assets
        Swagger UI's files (default: :func:`swagger_ui_folder`).
    """

    def __init__(
        self,
        *,
        route_prefix: str,
        openapi_route: str | None,
        document: Callable[[], bytes] | None = None,
        title: str = "servefn",
        assets: Path | None = None,
    ) -> None:
        if openapi_route is None and document is None:
            raise ValueError("DocsPage needs the app's openapi route or a document to serve")
        self.base = "/" + "/".join(p for p in (route_prefix.strip("/"), DOCS_ROUTE) if p)
        prefix = f"/{route_prefix.strip('/')}" if route_prefix.strip("/") else ""
        self.openapi_url = (
            f"{prefix}/{openapi_route.lstrip('/')}"
            if openapi_route is not None
            else f"{self.base}/{GENERATED_DOCUMENT}"
        )
        self.title = title
        self._document = document if openapi_route is None else None
        self._assets = assets
        self._cache: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"DocsPage({self.base!r}, openapi_url={self.openapi_url!r})"

    def page(self) -> bytes:
        """The HTML page: Swagger UI pointed at :attr:`openapi_url`, no inline script."""
        title = html.escape(self.title)
        base = html.escape(self.base)
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - API docs</title>
<link rel="stylesheet" href="{base}/swagger-ui.css">
<link rel="icon" type="image/png" href="{base}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{html.escape(self.openapi_url)}"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script src="{base}/{_STARTER_NAME}"></script>
</body>
</html>
""".encode()

    def answer(self, asset: str | None) -> Response:
        """The page (``asset`` None or empty), one of its files, or a 404 problem."""
        headers = {"X-Content-Type-Options": "nosniff"}
        if not asset:
            headers.update({"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"})
            return Response(200, self.page(), "text/html; charset=utf-8", headers)
        if asset == _STARTER_NAME:
            return Response(200, _STARTER, "text/javascript; charset=utf-8", headers)
        if asset == GENERATED_DOCUMENT and self._document is not None:
            return Response(200, self._document(), "application/json", headers)
        if asset not in _SWAGGER_FILES:
            return _not_found("The docs page has no such file.")
        content = self._read(asset)
        if content is None:
            return _not_found(f"The docs page is unavailable: {SWAGGER_UI_MISSING}.")
        headers["Cache-Control"] = "public, max-age=3600"
        return Response(200, content, _SWAGGER_FILES[asset], headers)

    def _read(self, name: str) -> bytes | None:
        if name not in self._cache:
            folder = self._assets or swagger_ui_folder()
            if folder is None:
                return None
            self._cache[name] = (folder / name).read_bytes()
        return self._cache[name]

    def function(self) -> HttpFunction:
        """The page as an HTTP function; route it at ``docs`` and ``docs/{asset}``."""
        from servefn.azure import to_response

        def docs(req: func.HttpRequest) -> func.HttpResponse:
            return to_response(self.answer(req.route_params.get("asset")))

        return HttpFunction.builtin("docs", DOCS_ROUTE, ("GET",), docs)


def _not_found(detail: str) -> Response:
    problem = Problem(404, detail)
    return Response(404, problem.to_bytes(), PROBLEM_MEDIA_TYPE, problem.headers)
