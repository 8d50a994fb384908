"""``servefn serve --metrics``: Prometheus text at ``GET /metrics``, for container deployments.

An ASGI wrapper in front of the host's app: ``GET /metrics`` (outside the route prefix, where
Prometheus looks by default) answers servefn's metrics (:mod:`servefn.telemetry.prometheus`);
every other request goes to the app unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from servefn.telemetry._hub import active
from servefn.telemetry.prometheus import CONTENT_TYPE, render

__all__ = ["METRICS_PATH", "MetricsRoute"]

METRICS_PATH = "/metrics"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class MetricsRoute:
    """``app`` with ``GET /metrics`` answered from the process's telemetry."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != METRICS_PATH:
            await self.app(scope, receive, send)
            return
        telemetry = active()
        if scope["method"] not in ("GET", "HEAD") or telemetry is None:
            status, body, media = 405 if telemetry else 404, b"", b"text/plain"
        else:
            status, body, media = 200, render(telemetry.metrics.snapshot()), CONTENT_TYPE.encode()
        headers = [(b"content-type", media), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""}
        )
