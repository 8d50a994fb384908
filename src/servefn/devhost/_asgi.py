"""The ASGI application behind ``servefn serve``: one HTTP request, one function invocation.

Each request is routed like the Functions host routes it, turned into a real
``func.HttpRequest`` the way the host builds its RPC message (lower-case header names, repeated
headers and query keys joined with ``","``, empty query values dropped, query keys matched
case-insensitively, full URL), handed to the function under its trigger argument name (sync
functions in a thread pool, async ones awaited), and the returned ``func.HttpResponse`` is sent
back with the Content-Type the worker derives from mimetype and charset.

One exception, for speed: a function that ``serve_http`` made, whose model is in memory, is
answered on the event loop by calling its endpoint with the same request data
(:mod:`servefn.devhost._inline`).

Errors are RFC 9457 ``application/problem+json`` bodies that never echo request values: 404 no
route, 405 wrong method (with ``Allow``), 413 body over the limit (a ``serve_http`` function's
own limit; refused from Content-Length before reading, or as soon as a chunked body passes it:
:mod:`servefn.devhost._body`), 500 function failure (generic text plus the invocation id that
the log carries with the traceback). Client values in log lines are bounded and escaped
(:mod:`servefn._logtext`). A ``str`` return value is sent as 200 ``text/plain; charset=utf-8`` (the
real host content-negotiates strings; return ``func.HttpResponse`` for an exact contract); any
other return value fails the invocation, as ``unable to encode outgoing TypedData`` does in the
worker.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import azure.functions as func

from servefn._logtext import bounded
from servefn.devhost._accesslog import AccessLog
from servefn.devhost._body import (
    BodyTooLarge,
    ClientDisconnected,
    body_limits,
    read_body,
    too_large,
)
from servefn.devhost._indexing import HttpFunction
from servefn.devhost._inline import InlineCalls
from servefn.devhost._keys import KeyCheck
from servefn.devhost._routes import RouteTable
from servefn.http import PROBLEM_MEDIA_TYPE, Problem, Request, Response

__all__ = ["DEFAULT_MAX_BODY_SIZE", "FunctionsAsgiApp", "InvocationContext"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024
"""The Functions host's request body limit (100 MB)."""

logger = logging.getLogger("servefn.devhost")

_DROPPED_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class TraceContext:
    """W3C trace context of the invocation, from the request's traceparent/tracestate."""

    trace_parent: str
    trace_state: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryContext:
    """HTTP invocations are never retried by the host."""

    retry_count: int = 0
    max_retry_count: int = 0
    exception: None = None


@dataclass(frozen=True)
class InvocationContext:
    """What the worker passes as ``context`` to a function that declares it."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: TraceContext
    retry_context: RetryContext = field(default_factory=RetryContext)
    thread_local_storage: threading.local = field(default_factory=threading.local)


class _HttpOut(func.Out[func.HttpResponse]):
    """The ``func.Out`` given for an HTTP output binding that is not ``$return``."""

    def __init__(self) -> None:
        self._value: func.HttpResponse | None = None

    def set(self, val: func.HttpResponse) -> None:
        self._value = val

    def get(self) -> func.HttpResponse:
        if self._value is None:
            raise TypeError("the function never set its HTTP output binding")
        return self._value


def _problem(problem: Problem) -> tuple[int, RawHeaders, bytes]:
    body = problem.to_bytes()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in problem.headers.items()),
        (b"content-length", str(len(body)).encode()),
    ]
    return problem.status, headers, body


def _request_headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased, repeated headers joined with "," (ASP.NET StringValues)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _query_params(query_string: bytes) -> dict[str, str]:
    """Query parameters as the host passes them: keys case-insensitive (first spelling kept),
    repeated values joined with ",", empty values dropped."""
    if not query_string:
        return {}
    grouped: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        grouped.setdefault(spelling.setdefault(key.lower(), key), []).append(value)
    joined = {key: ",".join(values) for key, values in grouped.items()}
    return {key: value for key, value in joined.items() if value}


def _request_url(scope: Scope, headers: dict[str, str]) -> str:
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    host = headers.get("host") or (f"{server[0]}:{server[1]}" if server else "localhost")
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def _response_parts(function: HttpFunction, result: Any) -> tuple[int, RawHeaders, bytes]:
    """Status, headers and body of a function's return value, as the worker encodes them."""
    if isinstance(result, str):
        result = func.HttpResponse(result, mimetype="text/plain", charset="utf-8")
    if not isinstance(result, func.HttpResponse):
        if inspect.iscoroutine(result):
            result.close()
            raise TypeError(
                f"function {function.name!r} returned a coroutine: make it `async def` "
                "(a wrapper must be async exactly when the function it wraps is)"
            )
        raise TypeError(
            f"function {function.name!r} returned {type(result).__name__}; return "
            "func.HttpResponse (or str) - the Functions host fails this invocation too"
        )
    return _wire_parts(
        int(result.status_code),
        result.headers.items(),
        str(result.mimetype),
        str(result.charset),
        result.get_body() or b"",
    )


def _wire_parts(
    status: int, headers: Iterable[tuple[str, Any]], mimetype: str, charset: str, body: bytes
) -> tuple[int, RawHeaders, bytes]:
    """Raw response parts as the worker sends them: header names lower-cased, framing headers
    dropped, a Content-Type from mimetype (with the charset for text/*) unless one is set."""
    raw = [
        (name.lower().encode("latin-1"), str(value).encode("latin-1"))
        for name, value in headers
        if name.lower() not in _DROPPED_RESPONSE_HEADERS
    ]
    if not any(name == b"content-type" for name, _ in raw):
        content_type = (
            f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
        )
        raw.append((b"content-type", content_type.encode("latin-1")))
    raw.append((b"content-length", str(len(body)).encode()))
    return status, raw, body


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class FunctionsAsgiApp:
    """ASGI 3 application serving the HTTP functions of one function app.

    Parameters
    ----------
    routes
        Route table (route prefix already applied) mapping to the functions.
    max_body_size
        Largest request body accepted, in bytes; larger ones get 413. A ``serve_http``
        function's own ``max_body_bytes`` applies when it is smaller.
    function_directory
        The app's folder, reported as ``context.function_directory``.
    keys
        With ``servefn serve --auth keys``: the keys each function's authLevel asks for
        (:mod:`servefn.devhost._keys`); None checks no key, as ``func host start`` does.
    access_log
        False: no line for an invocation that succeeds (:mod:`._accesslog`).

    Attributes
    ----------
    inline
        The ``serve_http`` functions answered on the event loop (:mod:`._inline`).
    log
        The line per invocation (:mod:`._accesslog`).
    """

    def __init__(
        self,
        routes: RouteTable[HttpFunction],
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        function_directory: str = ".",
        keys: KeyCheck | None = None,
        access_log: bool = True,
    ) -> None:
        self._routes = routes
        self._keys = keys
        self._max_body_size = max_body_size
        self._function_directory = function_directory
        self.inline = InlineCalls(routes.targets())
        self.log = AccessLog(access_log)
        self._body_limits = body_limits(routes.targets(), max_body_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            status, headers, body = await self._respond(scope, receive)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)
            self.log.flush()
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _respond(self, scope: Scope, receive: Receive) -> tuple[int, RawHeaders, bytes]:
        method: str = scope["method"]
        match = self._routes.match(method, scope["path"])
        if match is None:
            logger.info(
                "%s %s -> 404: no function matches the path",
                bounded(method),
                bounded(scope["path"]),
            )
            return _problem(Problem(404, "No function is registered for this route."))
        if match.target is None:
            logger.info(
                "%s %s -> 405: the route does not accept this method",
                bounded(method),
                bounded(scope["path"]),
            )
            detail = (
                "This route does not accept this method; the Allow header lists the ones it does."
            )
            allow = ", ".join(match.allowed_methods)
            return _problem(Problem(405, detail, headers={"Allow": allow}))
        headers = _request_headers(scope)
        if self._keys is not None:  # --auth keys: before the body is read, as the host does
            query = scope.get("query_string", b"")
            refused = self._keys.refuse(match.target, method, scope["path"], headers, query)
            if refused is not None:
                return _problem(refused)
        name = match.target.name
        limit = self._body_limits.get(name, self._max_body_size)
        try:
            body = await read_body(headers.get("content-length"), receive, limit)
        except BodyTooLarge:
            logger.info("%s %s -> 413: request body over %d bytes", bounded(method), name, limit)
            return _problem(too_large(limit, serve_http=name in self._body_limits))
        except ClientDisconnected:
            return _problem(Problem(400, "The client disconnected before sending its body."))
        params = _query_params(scope.get("query_string", b""))
        endpoint = self.inline.endpoint(match.target)
        if endpoint is not None:
            inline = Request(method.upper(), body, headers, params)
            return self._answer_inline(match.target, endpoint.handle, inline)
        request = func.HttpRequest(
            method,
            _request_url(scope, headers),
            headers=headers,
            params=params,
            route_params=dict(match.route_params),
            body=body,
        )
        return await self._invoke(match.target, request)

    def _answer_inline(
        self, function: HttpFunction, handle: Callable[[Request], Response], request: Request
    ) -> tuple[int, RawHeaders, bytes]:
        """A serve_http function with its model in memory, answered on the event loop.

        The function is serve_http's own wrapper, ``to_response(endpoint.handle(to_request(
        req)))``; calling its endpoint with the same request data skips building the
        ``func.HttpRequest`` and ``func.HttpResponse`` in between, and the bytes sent are the
        same (tests compare both ways).
        """
        started = time.perf_counter()
        try:
            parts = _endpoint_parts(self.inline.call(function, handle, request))
        except Exception as exc:  # as in _invoke: a 500 with a logged id, never a crash
            return self._failed(function, str(uuid.uuid4()), started, exc)
        self.log.succeeded(function.name, started)  # its id is drawn with the line's
        return parts

    async def _invoke(
        self, function: HttpFunction, request: func.HttpRequest
    ) -> tuple[int, RawHeaders, bytes]:
        """Call the function like the worker does; a failure becomes a 500 with a logged id."""
        invocation_id: str | None = None  # drawn now only for a context that shows it
        kwargs: dict[str, Any] = {function.trigger_arg: request}
        context = None
        if function.wants_context:  # only a function that declares it can see the context
            invocation_id = str(uuid.uuid4())
            context = InvocationContext(
                invocation_id,
                function.name,
                self._function_directory,
                TraceContext(
                    request.headers.get("traceparent", ""), request.headers.get("tracestate", "")
                ),
            )
            kwargs["context"] = context
        output = _HttpOut() if function.output_arg else None
        if function.output_arg:
            kwargs[function.output_arg] = output
        started = time.perf_counter()
        try:
            if function.is_async:
                result = await function.handler(**kwargs)
            else:
                call = functools.partial(_call_in_thread, function.handler, kwargs, context)
                result = await asyncio.get_running_loop().run_in_executor(None, call)
            parts = _response_parts(function, result if output is None else output.get())
        except Exception as exc:  # a failing function must become a 500, never crash the host
            return self._failed(function, invocation_id or str(uuid.uuid4()), started, exc)
        self.log.succeeded(function.name, started, invocation_id)
        return parts

    def _failed(
        self, function: HttpFunction, invocation_id: str, started: float, exc: Exception
    ) -> tuple[int, RawHeaders, bytes]:
        self.log.failed(function.name, invocation_id, started, exc)
        detail = "The function failed. The server log has the details under this id."
        return _problem(Problem(500, detail, error_id=invocation_id))


def _endpoint_parts(response: Response) -> tuple[int, RawHeaders, bytes]:
    """Status, headers and body of a servefn ``Response``, exactly as ``_response_parts``
    makes them from the ``func.HttpResponse`` that ``servefn.azure.to_response`` builds."""
    media, _, charset = response.media_type.partition("; charset=")
    return _wire_parts(
        int(response.status), response.headers.items(), media, charset or "utf-8", response.body
    )


def _call_in_thread(
    handler: Callable[..., Any], kwargs: dict[str, Any], context: InvocationContext | None
) -> Any:
    """Run a sync function in a pool thread, with the invocation id in thread-local storage."""
    if context is not None:
        context.thread_local_storage.invocation_id = context.invocation_id
    return handler(**kwargs)
