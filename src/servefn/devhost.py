"""``servefn serve``: run a function app's HTTP functions locally, like ``func host start``.

``DevHost`` is the configuration object; the CLI only builds one and calls :meth:`DevHost.run`.
Loading (settings, host.json, import, indexing) happens on first use of ``functions``,
``skipped``, ``asgi_app`` or :meth:`DevHost.load`, never in ``__init__``. Auth keys are not
checked, exactly as ``func host start`` does not check them: an ``x-functions-key`` header or a
``code`` query parameter is accepted and passed through to the function untouched.

Example
-------
>>> host = DevHost("examples/iris", port=0)      # doctest: +SKIP
>>> host.run()                                    # doctest: +SKIP
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .devhost_asgi import DEFAULT_MAX_BODY_SIZE, FunctionsAsgiApp
from .devhost_index import (
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
from .devhost_routes import RouteTable, RouteTemplateError, compile_route

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

_KEYED_AUTH_LEVELS = ("FUNCTION", "ADMIN")

logger = logging.getLogger("servefn.devhost")


@dataclass(frozen=True)
class _LoadedApp:
    app_file: Path
    route_prefix: str
    functions: tuple[HttpFunction, ...]
    skipped: tuple[SkippedFunction, ...]
    asgi_app: FunctionsAsgiApp


def _full_route(prefix: str, route: str) -> str:
    return f"{prefix}/{route}" if prefix else route


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
    """

    def __init__(
        self,
        app_path: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        log_level: str = "info",
    ) -> None:
        self.app_path = app_path
        self.host = host
        self.port = port
        self.max_body_size = max_body_size
        self.log_level = log_level
        self._loaded: _LoadedApp | None = None

    def __repr__(self) -> str:
        return f"DevHost({str(self.app_path)!r}, host={self.host!r}, port={self.port})"

    def load(self) -> None:
        """Apply local settings, import the app and index it; later calls do nothing.

        Raises :class:`DevHostError` (:class:`AppNotFoundError` for a wrong path) with a
        message that says what to fix.
        """
        if self._loaded is not None:
            return
        app_file = resolve_app_file(self.app_path)
        route_prefix = read_route_prefix(app_file.parent)
        apply_local_settings(app_file.parent)
        functions, skipped = index_functions(import_function_app(app_file), app_file)
        entries = []
        for function in functions:
            try:
                route = compile_route(_full_route(route_prefix, function.route))
            except RouteTemplateError as exc:
                raise DevHostError(
                    f"{app_file}: function {function.name!r} has an invalid route "
                    f"{function.route!r}: {exc}"
                ) from exc
            entries.append((route, function.methods, function))
        asgi_app = FunctionsAsgiApp(
            RouteTable(entries),
            max_body_size=self.max_body_size,
            function_directory=str(app_file.parent),
        )
        self._loaded = _LoadedApp(
            app_file, route_prefix, tuple(functions), tuple(skipped), asgi_app
        )

    @property
    def _app(self) -> _LoadedApp:
        self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def app_file(self) -> Path:
        """The ``function_app.py`` that was loaded."""
        return self._app.app_file

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

    def urls(self, port: int | None = None) -> dict[str, str]:
        """Function name -> URL (route template as declared), like Core Tools prints them."""
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        base = f"http://{host}:{self.port if port is None else port}"
        return {f.name: f"{base}/{_full_route(self.route_prefix, f.route)}" for f in self.functions}

    def describe(self, port: int | None = None) -> str:
        """The startup text: served functions with methods and URLs, skipped ones, auth note."""
        urls = self.urls(port)
        lines = ["Functions:"]
        for function in self.functions:
            methods = f"[{','.join(function.methods)}] " if function.methods else ""
            lines.append(f"  {function.name}: {methods}{urls[function.name]}")
        if self.skipped:
            lines.append("Not served:")
            lines.extend(f"  {s.name}: {s.reason}" for s in self.skipped)
        keyed = [f.name for f in self.functions if f.auth_level in _KEYED_AUTH_LEVELS]
        if keyed:
            lines.append(
                f"Auth: {', '.join(keyed)} need a key on Azure (authLevel FUNCTION/ADMIN); "
                "like func host start, servefn serve does not check keys locally "
                "(x-functions-key or ?code= are accepted and ignored)."
            )
        return "\n".join(lines)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise DevHostError(
                f"cannot listen on {self.host}:{self.port}: {why}; choose another --port "
                "(0 picks a free one)"
            ) from exc
        return sock

    def server(self) -> tuple[uvicorn.Server, socket.socket]:
        """A uvicorn server for this app and its bound, listening socket (port 0 resolved).

        Run it with ``server.run(sockets=[sock])``; set ``server.should_exit`` to stop it.
        """
        try:
            import uvicorn
        except ImportError as exc:
            raise DevHostError("servefn serve needs uvicorn: pip install 'servefn[serve]'") from exc
        self.load()
        config = uvicorn.Config(
            self.asgi_app,
            log_level=self.log_level,
            access_log=False,
            lifespan="on",
            ws="none",
            interface="asgi3",
        )
        return uvicorn.Server(config), self._bind()

    def run(self, out: TextIO | None = None) -> None:
        """Load the app, listen, print the startup text to ``out`` (stdout) and serve until
        stopped. Ctrl+C shuts down gracefully and returns, as ``uvicorn.run`` does; uvicorn
        re-raises a SIGTERM after its graceful shutdown."""
        server, sock = self.server()
        with sock:
            port = int(sock.getsockname()[1])
            print(self.describe(port), file=out or sys.stdout, flush=True)
            try:
                server.run(sockets=[sock])
            except KeyboardInterrupt:
                logger.info("Stopped by Ctrl+C")
