"""Request bodies in ``servefn serve``: each function's size limit, and reading within it.

A ``serve_http`` function refuses a body over its endpoint's ``max_body_bytes`` (10 MB by
default) with 413; the host applies that same limit before it reads a byte, not its own 100 MB
(``--max-body-size``), which stays the limit of every other function. A body declared larger by
``Content-Length`` is refused without reading it (the client may not have sent it yet), and a
chunked body is read only up to the limit: a refused upload costs at most the limit in memory.
The 413 is the endpoint's own problem document, so both ways give the same answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from servefn.devhost._indexing import HttpFunction
from servefn.errors import ServefnError
from servefn.http import Problem
from servefn.http._parsing import body_too_large, declared_over

__all__ = ["BodyTooLarge", "ClientDisconnected", "body_limits", "read_body", "too_large"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class BodyTooLarge(Exception):
    """The request body is over the limit (or is declared to be)."""


class ClientDisconnected(Exception):
    """The client went away before its body arrived."""


def body_limits(functions: Iterable[HttpFunction], host_limit: int) -> dict[str, int]:
    """The body limit of each ``serve_http`` function, by name: its endpoint's, within the
    host's. Other functions have the host's limit."""
    from servefn.azure import endpoint_of

    limits = {}
    for function in functions:
        try:
            endpoint = endpoint_of(function.handler)
        except ServefnError:
            continue
        limits[function.name] = min(host_limit, endpoint.max_body_bytes)
    return limits


def too_large(limit: int, *, serve_http: bool) -> Problem:
    """The 413 for a body over ``limit``: the endpoint's own for a ``serve_http`` function.
    The connection is closed after it, since the body was left unread."""
    problem = body_too_large(limit, rows=serve_http)
    problem.headers["Connection"] = "close"
    return problem


async def read_body(content_length: str | None, receive: Receive, limit: int) -> bytes:
    """Read the whole body, refusing it (:class:`BodyTooLarge`) as soon as it is, or is
    declared to be, over ``limit`` bytes; nothing over the limit is kept."""
    if declared_over(content_length or "", limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
