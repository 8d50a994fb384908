"""The HTTP floor: a bare ASGI app that reads the request body and returns a constant JSON.

Served by uvicorn exactly like ``servefn serve`` serves a function app (same server, same
options), so the request-rate ratio measures what servefn adds on top of the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]

# the size and shape of servefn's answer for the benchmark's flower
BODY = (
    b'{"PredictedLabel":"Iris-virginica",'
    b'"Score":[0.0009713457906245946,0.1378839724253981,0.8611446817839773]}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Answer every HTTP request with ``BODY``; handle lifespan like servefn's host does."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body", False))
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
