"""uvicorn for ``servefn serve``: its fastest stack when installed, and the listening socket.

uvicorn runs on uvloop's event loop and parses HTTP with httptools when both are installed (the
``serve`` extra brings them where they have wheels; uvloop has none for Windows), and on
asyncio's loop with h11 otherwise, at about 60 % of the request rate (BENCHMARKS.md).
:func:`uvicorn_server` names the two it picks to uvicorn, so the line :func:`stack_line` prints
at start-up says what runs.
"""

from __future__ import annotations

import errno
import importlib
import socket
from importlib import metadata
from typing import TYPE_CHECKING, Any

from servefn._redact import install_redaction
from servefn.errors import DevHostError

if TYPE_CHECKING:
    import uvicorn

__all__ = ["bind", "server_stack", "stack_line", "uvicorn_server"]

_FAST = (("uvloop", "asyncio"), ("httptools", "h11"))
"""(fast, fallback) for uvicorn's ``loop`` and ``http`` options."""


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def server_stack() -> tuple[str, str]:
    """uvicorn's ``loop`` and ``http`` options: uvloop and httptools when they import."""
    loop, http = (fast if _importable(fast) else fallback for fast, fallback in _FAST)
    return loop, http


def uvicorn_server(app: Any, log_level: str) -> uvicorn.Server:
    """A uvicorn server for ``app`` on :func:`server_stack`, logging at ``log_level``
    (uvicorn's access log off: the host writes a line per invocation), every record redacted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise DevHostError("servefn serve needs uvicorn: pip install 'servefn[serve]'") from exc
    loop, http = server_stack()
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        ws="none",
        interface="asgi3",
        loop=loop,
        http=http,
    )
    install_redaction()  # after uvicorn's logging config: every log line is redacted
    return uvicorn.Server(config)


def _version(name: str) -> str:
    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:  # asyncio: part of Python
        return name


def stack_line(config: Any) -> str:
    """The start-up line naming the server, event loop and HTTP parser of a uvicorn config,
    and how to get the fast ones when they are missing."""
    line = (
        f"Server: {_version('uvicorn')}, event loop {_version(str(config.loop))}, "
        f"HTTP parser {_version(str(config.http))}"
    )
    used = {str(config.loop), str(config.http)}
    missing = [fast for fast, _ in _FAST if fast not in used]
    if missing:
        line += (
            f" ({' and '.join(missing)} not installed; pip install 'servefn[serve]' brings them "
            "where the platform has wheels: about 1.6x the request rate)"
        )
    return line


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (port 0: a free one), with TCP_NODELAY."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets created with it, and
    # without TCP_NODELAY every response waits ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise DevHostError(
            f"cannot listen on {host}:{port}: {why}; choose another --port (0 picks a free one)"
        ) from exc
    return sock
