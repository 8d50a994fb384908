"""Spans, with OpenTelemetry: imported only once tracing is configured.

One span per traced invocation, named ``{method} {function}`` (kind SERVER, OpenTelemetry's
HTTP server conventions: ``http.request.method``, ``http.route``,
``http.response.status_code``, ``error.type``), parented on the invocation's W3C trace context
(on Azure the ``traceparent`` the host passes in ``func.Context.trace_context``; elsewhere the
request's own header), and current while the request is answered, so spans the handler makes,
and a model load it waits for, are its children. Its children ``servefn.validate`` (parsing,
validation, the model) and ``servefn.predict`` (prediction and encoding) are written when it
ends, with their measured times. Attributes name the function, the model version and kind,
rows, status and problem type: never a request value.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from servefn.telemetry.observer import Invocation

__all__ = ["TracedInvocation", "Tracing"]

_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """Makes servefn's spans with ``tracer`` (from the configured or the global provider)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def start(self, function: str, method: str, carrier: Mapping[str, str]) -> TracedInvocation:
        """Begin the span of one invocation, child of the trace context in ``carrier``, and
        make it current."""
        parent = _PROPAGATOR.extract(carrier)
        started_ns = time.time_ns()
        span = self.tracer.start_span(
            f"{method} {function}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=started_ns,
            attributes={
                "http.request.method": method,
                "http.route": function,
                "faas.trigger": "http",
                "servefn.function": function,
            },
        )
        context = trace.set_span_in_context(span, parent)
        return TracedInvocation(self, span, context, otel_context.attach(context), started_ns)

    def model_check(
        self, operation: str, outcome: str, seconds: float, version: str | None
    ) -> None:
        """A span for a model load or refresh check that just ended (a child of the current
        span: the invocation that waited for it, if any)."""
        ended_ns = time.time_ns()
        span = self.tracer.start_span(
            f"servefn.model.{operation}",
            start_time=ended_ns - int(seconds * 1e9),
            attributes={
                "servefn.model.operation": operation,
                "servefn.model.outcome": outcome,
                **({"servefn.model.version": version} if version else {}),
            },
        )
        if outcome == "failed":
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=ended_ns)


class TracedInvocation:
    """The span of one invocation under way."""

    __slots__ = ("_context", "_started_ns", "_token", "_tracing", "span")

    def __init__(
        self, tracing: Tracing, span: trace.Span, context: Any, token: Any, started_ns: int
    ) -> None:
        self._tracing = tracing
        self.span = span
        self._context = context
        self._token = token
        self._started_ns = started_ns

    def finish(
        self,
        invocation: Invocation,
        status: int,
        error: str | None,
        started: float,
        prepared: float | None,
        ended: float,
    ) -> None:
        """Write the child spans and end the invocation's span (times are perf_counter's)."""
        try:
            tracer = self._tracing.tracer

            def at(moment: float) -> int:
                return self._started_ns + int((moment - started) * 1e9)

            version_id = invocation.version
            version = {"servefn.model.version": version_id} if version_id else {}
            if prepared is not None:
                validate = tracer.start_span(
                    "servefn.validate",
                    context=self._context,
                    start_time=self._started_ns,
                    attributes={"servefn.rows": invocation.rows},
                )
                validate.end(end_time=at(prepared))
                predict = tracer.start_span(
                    "servefn.predict",
                    context=self._context,
                    start_time=at(prepared),
                    attributes={
                        **version,
                        "servefn.model.kind": invocation.kind,
                        "servefn.rows": invocation.rows,
                    },
                )
                if status >= 500:
                    predict.set_status(Status(StatusCode.ERROR))
                predict.end(end_time=at(ended))
            span = self.span
            span.set_attributes(
                {
                    **version,
                    "http.response.status_code": status,
                    "servefn.rows": invocation.rows,
                    **({"servefn.model.kind": invocation.kind} if invocation.kind else {}),
                }
            )
            if error is not None:
                span.set_attribute("error.type", error)
                span.set_attribute("servefn.problem.type", error)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=at(ended))
        finally:
            otel_context.detach(self._token)
