"""``servefn serve``: run a function app's HTTP functions locally, like ``func host start``.

``DevHost`` is the configuration object; the CLI only builds one and calls :meth:`DevHost.run`.
Loading (settings, host.json, import, indexing) happens on first use of ``functions``,
``skipped``, ``asgi_app`` or :meth:`DevHost.load`, never in ``__init__``. Auth keys are not
checked by default, exactly as ``func host start`` does not check them: an ``x-functions-key``
header or a ``code`` query parameter is accepted and passed through to the function untouched;
``auth="keys"`` checks them against the app setting ``SERVEFN_KEYS`` (:mod:`._keys`).

Given a model (``model.zip``, ``az://...``, any loader URI) or a repository of models
(:mod:`._repoapp`) instead of an app, it serves that with no user code (:mod:`._modelapp`),
reading ``local.settings.json`` from the current folder for the storage connection. Either way
``/api/docs`` is an interactive docs page (:mod:`servefn.docs`) when there is an OpenAPI
document to show.

Example
-------
>>> host = DevHost("examples/iris", port=0)      # doctest: +SKIP
>>> host.run()                                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from servefn.devhost._appdoc import app_openapi, serve_http_routes
from servefn.devhost._asgi import DEFAULT_MAX_BODY_SIZE, FunctionsAsgiApp
from servefn.devhost._indexing import (
    AppNotFoundError,
    DevHostError,
    HttpFunction,
    SkippedFunction,
    apply_local_settings,
    import_function_app,
    index_functions,
    read_route_prefix,
    resolve_app_file,
)
from servefn.devhost._keys import AUTH_MODES, KeyCheck, auth_note
from servefn.devhost._metrics import METRICS_PATH, MetricsRoute
from servefn.devhost._modelapp import ROUTE_PREFIX, ModelApp, is_model_location
from servefn.devhost._repoapp import RepositoryApp, is_repository_location
from servefn.devhost._routes import CompiledRoute, RouteTable, RouteTemplateError, compile_route
from servefn.devhost._server import bind, stack_line, uvicorn_server
from servefn.devhost._swagger import DOCS_ROUTE, SWAGGER_UI_MISSING, DocsPage, swagger_ui_folder
from servefn.http import freeze_startup_objects
from servefn.predictors.base import TRUSTED_SETTING, trusted_types
from servefn.telemetry._hub import prefer

if TYPE_CHECKING:
    import uvicorn


__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "AppNotFoundError",
    "DevHost",
    "DevHostError",
    "HttpFunction",
    "SkippedFunction",
]

logger = logging.getLogger("servefn.devhost")


@dataclass(frozen=True)
class _LoadedApp:
    app_file: Path | None
    model: ModelApp | RepositoryApp | None
    route_prefix: str
    functions: tuple[HttpFunction, ...]
    skipped: tuple[SkippedFunction, ...]
    docs: HttpFunction | None
    asgi_app: FunctionsAsgiApp


def _full_route(prefix: str, route: str) -> str:
    return f"{prefix}/{route}" if prefix else route


def _compile(prefix: str, function: HttpFunction, route: str | None = None) -> CompiledRoute:
    try:
        return compile_route(_full_route(prefix, function.route if route is None else route))
    except RouteTemplateError as exc:
        raise DevHostError(
            f"function {function.name!r} has an invalid route {function.route!r}: {exc}"
        ) from exc


class DevHost:
    """A local Functions host for one ``function_app.py``.

    Parameters
    ----------
    app_path
        A ``function_app.py`` file, or the folder that contains one.
    host, port
        Address to listen on; port 0 picks a free port when :meth:`run` binds.
    max_body_size
        Largest request body in bytes (the Functions host's limit, 100 MB, by default).
    log_level
        uvicorn's log level ("critical", "error", "warning", "info", "debug").
    connection
        For a model in Azure Storage (``blob://``, ``az://``, ``abfs://``): the app setting or
        identity-based prefix that reaches the account, as on a Functions binding.
    trusted
        Extra types a scikit-learn (skops) model may hold. For a function app they are added
        to the app setting ``SERVEFN_TRUSTED``, which its ``serve_http`` functions read.
    auth
        ``"none"`` (keys are not checked, as by ``func host start``) or ``"keys"``
        (:mod:`._keys`: each function's authLevel enforced with the app setting SERVEFN_KEYS).
    memory_budget, max_models
        For a repository: what stays loaded (:class:`~servefn.repository.ModelRepository`).
    access_log
        False: no "Executed 'Functions.NAME' (Succeeded, ...)" line per invocation
        (:mod:`._accesslog`); failures are logged either way.
    telemetry, metrics
        ``telemetry="console"`` prints spans and metrics, ``"off"`` exports nothing whatever
        the app settings say (:mod:`servefn.telemetry`); ``metrics=True`` serves Prometheus
        text at ``GET /metrics`` (:mod:`._metrics`).
    """

    def __init__(
        self,
        app_path: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        log_level: str = "info",
        connection: str | None = None,
        trusted: Sequence[str] = (),
        auth: str = "none",
        memory_budget: int | str | None = None,
        max_models: int | None = None,
        access_log: bool = True,
        telemetry: str | None = None,
        metrics: bool = False,
    ) -> None:
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}, not {auth!r}")
        if isinstance(trusted, str):
            raise TypeError(f"trusted must be a list of type names, not the string {trusted!r}")
        self.app_path = app_path
        self.trusted = tuple(trusted)
        self.host = host
        self.port = port
        self.max_body_size = max_body_size
        self.log_level = log_level
        self.connection = connection
        self.auth = auth
        self.memory_budget, self.max_models = memory_budget, max_models
        self.access_log = access_log
        self.telemetry, self.metrics = telemetry, metrics
        self._keys: KeyCheck | None = None
        self._loaded: _LoadedApp | None = None
        self._docs_note: str | None = None

    def __repr__(self) -> str:
        return f"DevHost({str(self.app_path)!r}, host={self.host!r}, port={self.port})"

    def load(self) -> None:
        """Apply local settings, import the app and index it (or load the model); later calls
        do nothing.

        Raises :class:`DevHostError` (:class:`AppNotFoundError` for a wrong path) with a
        message that says what to fix.
        """
        if self._loaded is not None:
            return
        if self.telemetry or self.metrics:  # before the app builds its endpoints
            prefer(
                console=self.telemetry == "console",
                prometheus=self.metrics,
                off=self.telemetry == "off",
            )
        if is_repository_location(self.app_path):
            self._loaded = self._load_model(repository=True)
        elif is_model_location(self.app_path):
            self._loaded = self._load_model()
        elif self.connection is not None:
            raise AppNotFoundError(
                "--connection applies to a model URL; a function app names its connection in "
                "its code (serve_http(..., connection=...))"
            )
        else:
            self._loaded = self._load_function_app()

    def _load_function_app(self) -> _LoadedApp:
        app_file = resolve_app_file(self.app_path)
        route_prefix = read_route_prefix(app_file.parent)
        apply_local_settings(app_file.parent)
        if self.trusted:  # the app's serve_http functions read the setting at import
            os.environ[TRUSTED_SETTING] = ",".join(trusted_types(self.trusted))
        functions, skipped = index_functions(import_function_app(app_file), app_file)
        entries = []
        for function in functions:
            try:
                route = _compile(route_prefix, function)
            except DevHostError as exc:
                raise DevHostError(f"{app_file}: {exc}") from exc
            entries.append((route, function.methods, function))
        docs = self._docs_page(route_prefix, tuple(functions), app_file.parent.name)
        if docs is not None:
            entries.extend(self._docs_entries(route_prefix, docs))
        asgi_app = FunctionsAsgiApp(
            RouteTable(entries),
            max_body_size=self.max_body_size,
            function_directory=str(app_file.parent),
            keys=self._key_check(),
            access_log=self.access_log,
        )
        return _LoadedApp(
            app_file, None, route_prefix, tuple(functions), tuple(skipped), docs, asgi_app
        )

    def _load_model(self, repository: bool = False) -> _LoadedApp:
        apply_local_settings(Path.cwd())
        model: ModelApp | RepositoryApp
        if repository:
            model = RepositoryApp.load(
                self.app_path, connection=self.connection, trusted=self.trusted,
                memory_budget=self.memory_budget, max_models=self.max_models,
            )  # fmt: skip
        else:
            model = ModelApp.load(self.app_path, connection=self.connection, trusted=self.trusted)
        functions = model.functions()
        entries = [(_compile(ROUTE_PREFIX, f), f.methods, f) for f in functions]
        docs = None
        if swagger_ui_folder() is None or repository:
            self._docs_note = (
                "a repository has no single OpenAPI document" if repository else SWAGGER_UI_MISSING
            )
        else:
            page = DocsPage(
                route_prefix=ROUTE_PREFIX, openapi_route="openapi.json", title=Path(model.uri).name
            )
            docs = page.function()
            entries.extend(self._docs_entries(ROUTE_PREFIX, docs))
        asgi_app = FunctionsAsgiApp(
            RouteTable(entries),
            max_body_size=self.max_body_size,
            function_directory=".",
            keys=self._key_check(),
            access_log=self.access_log,
        )
        return _LoadedApp(None, model, ROUTE_PREFIX, tuple(functions), (), docs, asgi_app)

    def _key_check(self) -> KeyCheck | None:
        """With ``auth="keys"``, the keys of the app settings (read after local settings)."""
        if self.auth == "keys" and self._keys is None:
            self._keys = KeyCheck.from_settings()
        return self._keys

    def _docs_page(
        self, route_prefix: str, functions: tuple[HttpFunction, ...], title: str
    ) -> HttpFunction | None:
        """The docs page for an app with serve_http functions, unless its routes clash."""
        if swagger_ui_folder() is None:
            self._docs_note = SWAGGER_UI_MISSING
            return None
        docs_path = "/" + _full_route(route_prefix, DOCS_ROUTE)
        for function in functions:
            if _compile(route_prefix, function).match(docs_path) is not None:
                self._docs_note = f"the app's function {function.name!r} serves {docs_path}"
                return None
        openapi = next(
            (
                f.route
                for f in functions
                if f.route.lower() == "openapi.json" and (not f.methods or "GET" in f.methods)
            ),
            None,
        )
        if openapi is None and not serve_http_routes(functions):
            return None
        page = DocsPage(
            route_prefix=route_prefix,
            openapi_route=openapi,
            document=lambda: app_openapi(functions, route_prefix),
            title=title,
        )
        return page.function()

    @staticmethod
    def _docs_entries(
        route_prefix: str, docs: HttpFunction
    ) -> list[tuple[CompiledRoute, tuple[str, ...], HttpFunction]]:
        """The page at ``docs`` and its files at ``docs/{asset}``."""
        return [
            (_compile(route_prefix, docs), docs.methods, docs),
            (_compile(route_prefix, docs, f"{DOCS_ROUTE}/{{asset}}"), docs.methods, docs),
        ]

    def openapi_document(self) -> bytes:
        """The OpenAPI 3.1 document of what is served: the model's, or the one built from the
        app's serve_http functions (as ``add_health_routes`` would serve it)."""
        loaded = self._app
        if loaded.model is not None:
            return loaded.model.openapi()
        return app_openapi(loaded.functions, loaded.route_prefix)

    @property
    def _app(self) -> _LoadedApp:
        self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def app_file(self) -> Path | None:
        """The ``function_app.py`` that was loaded (None when serving a model)."""
        return self._app.app_file

    @property
    def model(self) -> ModelApp | RepositoryApp | None:
        """The model or repository served without user code (None for a function app)."""
        return self._app.model

    @property
    def functions(self) -> tuple[HttpFunction, ...]:
        """The HTTP functions served, in declaration order."""
        return self._app.functions

    @property
    def skipped(self) -> tuple[SkippedFunction, ...]:
        """Functions not served (other triggers, bindings unavailable locally), with reasons."""
        return self._app.skipped

    @property
    def route_prefix(self) -> str:
        """host.json's route prefix ("api" unless configured; "" means none)."""
        return self._app.route_prefix

    @property
    def asgi_app(self) -> FunctionsAsgiApp:
        """The ASGI application; serve it with any ASGI server."""
        return self._app.asgi_app

    def _base_url(self, port: int | None) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port if port is None else port}"

    def urls(self, port: int | None = None) -> dict[str, str]:
        """Function name -> URL (route template as declared), like Core Tools prints them."""
        base = self._base_url(port)
        return {f.name: f"{base}/{_full_route(self.route_prefix, f.route)}" for f in self.functions}

    def docs_url(self, port: int | None = None) -> str | None:
        """The interactive docs page's URL (None when there is no page)."""
        if self._app.docs is None:
            return None
        return f"{self._base_url(port)}/{_full_route(self.route_prefix, DOCS_ROUTE)}"

    def describe(self, port: int | None = None) -> str:
        """The startup text: served functions with methods and URLs, skipped ones, auth note."""
        urls = self.urls(port)
        model = self.model
        lines = [] if model is None else [f"Model: {model.uri}"]
        if isinstance(model, RepositoryApp):
            lines = [model.heading()]
        lines.append("Functions:")
        for function in self.functions:
            methods = f"[{','.join(function.methods)}] " if function.methods else ""
            lines.append(f"  {function.name}: {methods}{urls[function.name]}")
        docs_url = self.docs_url(port)
        if docs_url is not None:
            lines.append(f"Docs: {docs_url} (try the API in a browser)")
        skipped = [(s.name, s.reason) for s in self.skipped]
        if self._docs_note is not None:
            skipped.append(("docs", self._docs_note))
        if skipped:
            lines.append("Not served:")
            lines.extend(f"  {name}: {reason}" for name, reason in skipped)
        if self.metrics:
            lines.append(f"Metrics: {self._base_url(port)}{METRICS_PATH} (Prometheus text)")
        lines.append(auth_note(self.functions, self._keys))
        return "\n".join(lines)

    def server(self) -> tuple[uvicorn.Server, socket.socket]:
        """A uvicorn server for this app and its bound, listening socket (port 0 resolved).

        Run it with ``server.run(sockets=[sock])``; set ``server.should_exit`` to stop it.
        """
        app = MetricsRoute(self.asgi_app) if self.metrics else self.asgi_app
        return uvicorn_server(app, self.log_level), bind(self.host, self.port)

    def run(self, out: TextIO | None = None) -> None:
        """Load the app, listen, print the startup text to ``out`` (stdout) and serve until
        stopped. Ctrl+C shuts down gracefully and returns, as ``uvicorn.run`` does; uvicorn
        re-raises a SIGTERM after its graceful shutdown. First, unless the app is loaded, it
        freezes what is alive, before any model loads (:mod:`servefn.http._collector`)."""
        if self._loaded is None:
            freeze_startup_objects()
        server, sock = self.server()
        with sock:
            port = int(sock.getsockname()[1])
            text = f"{self.describe(port)}\n{stack_line(server.config)}"
            print(text, file=out or sys.stdout, flush=True)
            try:
                server.run(sockets=[sock])
            except KeyboardInterrupt:
                logger.info("Stopped by Ctrl+C")
