"""The ASGI application behind ``servefn serve``: one HTTP request, one function invocation.

Each request is routed like the Functions host routes it, turned into a real
``func.HttpRequest`` the way the host builds its RPC message (lower-case header names, repeated
headers and query keys joined with ``","``, empty query values dropped, query keys matched
case-insensitively, full URL), handed to the function under its trigger argument name (sync
functions in a thread pool, async ones awaited), and the returned ``func.HttpResponse`` is sent
back with the Content-Type the worker derives from mimetype and charset.

One exception, for speed: a function that is ``serve_http``'s own sync wrapper, whose model is
in memory, is answered on the event loop by calling its endpoint with the same request data
(the same bytes go out; the thread-pool hand-off cost a third of the request rate). If its calls
wait (blocking I/O in a custom handler) three times within a minute, that function goes to the
pool for good.

Errors are RFC 9457 ``application/problem+json`` bodies that never echo request values: 404 no
route, 405 wrong method (with ``Allow``), 413 body over the limit (refused from Content-Length
before reading), 500 function failure (generic text plus the invocation id that the log carries
with the traceback). A ``str`` return value is sent as 200 ``text/plain; charset=utf-8`` (the
real host content-negotiates strings; return ``func.HttpResponse`` for an exact contract); any
other return value fails the invocation, as ``unable to encode outgoing TypedData`` does in the
worker.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import azure.functions as func

from servefn.devhost._indexing import HttpFunction
from servefn.devhost._routes import RouteTable
from servefn.http._problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["DEFAULT_MAX_BODY_SIZE", "FunctionsAsgiApp", "InvocationContext"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024
"""The Functions host's request body limit (100 MB)."""
INLINE_WAIT_LIMIT = 0.020
"""Seconds an inline call may spend not running (waiting) without counting as a wait."""
INLINE_WAITS_ALLOWED = 2
"""Waits a function may have on the event loop within ``INLINE_WAIT_WINDOW``; one more sends
it to the pool for good. A lone wait can be the machine descheduling the server, or a model
being parsed in the background holding the GIL, not the function blocking."""
INLINE_WAIT_WINDOW = 60.0
"""Seconds over which waits are counted; an older wait is forgotten."""

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


class _BodyTooLarge(Exception):
    """The request body is over the configured limit."""


class _ClientDisconnected(Exception):
    """The client went away before its body arrived."""


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
        Largest request body accepted, in bytes; larger ones get 413.
    function_directory
        The app's folder, reported as ``context.function_directory``.
    """

    def __init__(
        self,
        routes: RouteTable[HttpFunction],
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        function_directory: str = ".",
    ) -> None:
        self._routes = routes
        self._max_body_size = max_body_size
        self._function_directory = function_directory
        self._endpoints = _servefn_endpoints(routes)
        # servefn.http.Request, imported by the app already when it has endpoints
        self._endpoint_request: Any = getattr(sys.modules.get("servefn.http"), "Request", None)
        self._pooled: set[str] = set()
        self._waits: dict[str, tuple[int, float]] = {}  # count, time of the first one
        self._invocation_ids = _invocation_ids()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            status, headers, body = await self._respond(scope, receive)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _respond(self, scope: Scope, receive: Receive) -> tuple[int, RawHeaders, bytes]:
        method: str = scope["method"]
        match = self._routes.match(method, scope["path"])
        if match is None:
            logger.info("%s -> 404: no function matches the path", method)
            return _problem(Problem(404, "No function is registered for this route."))
        if match.target is None:
            logger.info("%s -> 405: the route does not accept this method", method)
            detail = (
                "This route does not accept this method; the Allow header lists the ones it does."
            )
            allow = ", ".join(match.allowed_methods)
            return _problem(Problem(405, detail, headers={"Allow": allow}))
        headers = _request_headers(scope)
        try:
            body = await self._read_body(headers.get("content-length"), receive)
        except _BodyTooLarge:
            logger.info("%s -> 413: request body over %d bytes", method, self._max_body_size)
            detail = f"The request body is larger than the limit of {self._max_body_size} bytes."
            return _problem(Problem(413, detail, headers={"Connection": "close"}))
        except _ClientDisconnected:
            return _problem(Problem(400, "The client disconnected before sending its body."))
        params = _query_params(scope.get("query_string", b""))
        endpoint = self._endpoints.get(match.target.name)
        if endpoint is not None and self._runs_inline(match.target):
            return self._answer_inline(match.target, endpoint, method, body, headers, params)
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
        self,
        function: HttpFunction,
        endpoint: Any,
        method: str,
        body: bytes,
        headers: dict[str, str],
        params: dict[str, str],
    ) -> tuple[int, RawHeaders, bytes]:
        """A serve_http function with its model in memory, answered on the event loop.

        The function is serve_http's own wrapper, ``to_response(endpoint.handle(to_request(
        req)))``; calling its endpoint with the same request data skips building the
        ``func.HttpRequest`` and ``func.HttpResponse`` in between, and the bytes sent are the
        same (tests compare both ways).
        """
        invocation_id = next(self._invocation_ids)
        started = time.perf_counter()
        request = self._endpoint_request(method.upper(), body, headers, params)
        try:
            answer = self._call_inline(function, endpoint.handle, request, started=started)
            parts = _endpoint_parts(answer)
        except Exception as exc:  # as in _invoke: a 500 with a logged id, never a crash
            return self._failed(function, invocation_id, started, exc)
        self._log_success(function, invocation_id, started)
        return parts

    async def _read_body(self, content_length: str | None, receive: Receive) -> bytes:
        """Read the whole body, refusing early when it is (or is declared to be) too large."""
        declared = (content_length or "").strip()
        # isascii: str.isdigit() also accepts digits such as '²' that int() refuses
        if declared.isascii() and declared.isdigit() and int(declared) > self._max_body_size:
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientDisconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_size:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _invoke(
        self, function: HttpFunction, request: func.HttpRequest
    ) -> tuple[int, RawHeaders, bytes]:
        """Call the function like the worker does; a failure becomes a 500 with a logged id."""
        invocation_id = next(self._invocation_ids)
        kwargs: dict[str, Any] = {function.trigger_arg: request}
        context = None
        if function.wants_context:  # only a function that declares it can see the context
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
            elif self._runs_inline(function):
                result = self._call_inline(
                    function, _call_in_thread, function.handler, kwargs, context, started=started
                )
            else:
                call = functools.partial(_call_in_thread, function.handler, kwargs, context)
                result = await asyncio.get_running_loop().run_in_executor(None, call)
            parts = _response_parts(function, result if output is None else output.get())
        except Exception as exc:  # a failing function must become a 500, never crash the host
            return self._failed(function, invocation_id, started, exc)
        self._log_success(function, invocation_id, started)
        return parts

    @staticmethod
    def _failed(
        function: HttpFunction, invocation_id: str, started: float, exc: Exception
    ) -> tuple[int, RawHeaders, bytes]:
        logger.error(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)",
            function.name,
            invocation_id,
            (time.perf_counter() - started) * 1000,
            exc_info=exc,
        )
        detail = "The function failed. The server log has the details under this id."
        return _problem(Problem(500, detail, error_id=invocation_id))

    @staticmethod
    def _log_success(function: HttpFunction, invocation_id: str, started: float) -> None:
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%.0fms)",
                function.name,
                invocation_id,
                (time.perf_counter() - started) * 1000,
            )

    def _runs_inline(self, function: HttpFunction) -> bool:
        """True for a serve_http function whose model is in memory (and that never waited).

        Such a call is CPU work of microseconds; handing it to the thread pool, as the worker
        does with every sync function, cost a third of the request rate in GIL and thread
        hand-offs. A call that may load or re-check its model still goes to the pool.
        """
        endpoint = self._endpoints.get(function.name)
        return (
            endpoint is not None
            and function.name not in self._pooled
            and endpoint.model_in_memory()
        )

    def _call_inline(
        self, function: HttpFunction, call: Callable[..., Any], *args: Any, started: float
    ) -> Any:
        """Call on the event loop's thread, as if from a pool thread: the loop is hidden from
        the call, so sync code that runs its own event loop (``asyncio.run``) works as it does
        in the worker. Calls that wait (I/O, sleep, a lock) send the function to the pool."""
        cpu_started = time.thread_time()
        loop = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(None)
        try:
            return call(*args)
        finally:
            asyncio.events._set_running_loop(loop)
            waited = (time.perf_counter() - started) - (time.thread_time() - cpu_started)
            if waited > INLINE_WAIT_LIMIT:
                self._count_wait(function.name, waited)

    def _count_wait(self, name: str, waited: float) -> None:
        now = time.monotonic()
        waits, since = self._waits.get(name, (0, now))
        if now - since > INLINE_WAIT_WINDOW:
            waits, since = 0, now
        waits += 1
        self._waits[name] = (waits, since)
        if waits <= INLINE_WAITS_ALLOWED:
            return
        self._pooled.add(name)
        logger.warning(
            "function %r waited %.0f ms while running on the event loop, %d times in %.0f s "
            "(blocking I/O in its handler?); it runs in the thread pool from now on",
            name,
            waited * 1000,
            waits,
            now - since,
        )


def _servefn_endpoints(routes: RouteTable[HttpFunction]) -> dict[str, Any]:
    """The endpoints of the routed functions that are serve_http's own sync wrapper, by name.

    Only an exact wrapper counts (a decorator around it may add behaviour the host must run).
    Nothing is imported for an app that does not use serve_http.
    """
    azure = sys.modules.get("servefn.azure")
    if azure is None:
        return {}
    found = {}
    for function in routes.targets():
        endpoint = azure.plain_wrapper_endpoint(function.handler)
        if endpoint is not None:
            found[function.name] = endpoint
    return found


def _endpoint_parts(response: Any) -> tuple[int, RawHeaders, bytes]:
    """Status, headers and body of a servefn ``Response``, exactly as ``_response_parts``
    makes them from the ``func.HttpResponse`` that ``servefn.azure.to_response`` builds."""
    media, _, charset = response.media_type.partition("; charset=")
    return _wire_parts(
        int(response.status), response.headers.items(), media, charset or "utf-8", response.body
    )


def _invocation_ids() -> Iterator[str]:
    """Random version-4 GUIDs, as the host's invocation ids, from a generator seeded once
    (``uuid4()`` asks the OS for randomness on every request: 3 % of the host's time). Not
    secret, but not a counter either: a 500's id does not tell a client how many came before."""
    draw = random.Random(uuid.uuid4().int).getrandbits
    while True:
        h = f"{draw(128):032x}"
        yield f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _call_in_thread(
    handler: Callable[..., Any], kwargs: dict[str, Any], context: InvocationContext | None
) -> Any:
    """Run a sync function in a pool thread, with the invocation id in thread-local storage."""
    if context is not None:
        context.thread_local_storage.invocation_id = context.invocation_id
    return handler(**kwargs)
