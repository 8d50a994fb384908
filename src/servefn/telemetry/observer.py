"""The request path's telemetry hooks: one :class:`Invocation` per request.

The endpoint's guard calls :meth:`EndpointObserver.begin` when a request comes in, the
endpoint :meth:`Invocation.prepared` once the request is validated and its model known, and
the guard :meth:`Invocation.finish` with the status. Every request is counted
(:class:`~servefn.telemetry.metrics.MetricsTable`: a lock and a few additions); spans are made
for the invocations a rate limit lets through (``SERVEFN_TRACES_PER_SECOND``), since one
OpenTelemetry span costs about as much as answering a one-row request. What is recorded:
function, model version and kind, rows, status, problem type, durations; never a request value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any

from servefn.telemetry.metrics import FUNCTION, VERSION, Series

if TYPE_CHECKING:
    from servefn.telemetry._hub import Telemetry
    from servefn.telemetry.monitor import DriftMonitor, ServedModel
    from servefn.telemetry.tracing import TracedInvocation

__all__ = ["EndpointObserver", "Invocation", "RateLimit", "problem_type"]

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "unprocessable-content",
    500: "internal-error",
    503: "model-unavailable",
}


def problem_type(status: int, exc: BaseException | None) -> str | None:
    """A short, stable name for what went wrong (None for a success): the problem's own
    ``type`` or ``cause`` when it has one, else one per status (``unprocessable-content``)."""
    if status < 400:
        return None
    kind = getattr(exc, "type", None)
    if isinstance(kind, str) and kind != "about:blank" and len(kind) <= 100:
        return kind
    extra = getattr(exc, "extra", None)
    cause = extra.get("cause") if isinstance(extra, Mapping) else None
    if isinstance(cause, str) and len(cause) <= 40:
        return f"model-unusable-{cause}"
    if type(exc).__name__ == "FeatureValueError":
        return "feature-value"
    return _SLUGS.get(status, f"status-{status}")


_BURST = 0.1  # seconds' worth of yeses a rate limit may give at once after a quiet spell


class RateLimit:
    """At most about ``per_second`` yeses a second, in bursts of up to a tenth of a second's
    worth (at least one): a spike of traffic after a quiet spell is not all traced at once.

    One clock read and a comparison per call. Not locked: two threads may both pass at the
    same moment, so the limit holds to within the number of threads; a lock would cost every
    request more than that error is worth."""

    __slots__ = ("_burst", "_interval", "_next", "per_second")

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self._interval = 1.0 / per_second if per_second > 0 else math.inf
        self._burst = max(_BURST, self._interval) if per_second > 0 else 0.0
        self._next = time.monotonic() - self._burst if per_second > 0 else math.inf

    def allow(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = max(self._next, now - self._burst) + self._interval
        return True


class Invocation:
    """One request under way: when it started and, once known, its model and rows."""

    __slots__ = ("_observer", "_prepared", "_started", "model", "rows", "trace")

    def __init__(self, observer: EndpointObserver, trace: TracedInvocation | None) -> None:
        self._observer = observer
        self.trace = trace
        self.model: Any = None
        self.rows = 0
        self._prepared: float | None = None
        self._started = perf_counter()

    @property
    def version(self) -> str:
        """The version of the model that answered, else the one the endpoint served last."""
        return self.model.version if self.model is not None else self._observer.version

    @property
    def kind(self) -> str:
        return self.model.predictor.kind if self.model is not None else ""

    def prepared(self, model: Any, rows: int) -> None:
        """The request is parsed and validated, and ``model`` will answer its ``rows``."""
        if self.trace is not None:
            self._prepared = perf_counter()
        self.model = model
        self.rows = rows

    def finish(self, status: int | None, exc: BaseException | None) -> None:
        """Answered with ``status`` (None: abandoned, e.g. cancelled) after ``exc`` if any."""
        ended = perf_counter()
        code = 499 if status is None else status
        error = None if code < 400 else problem_type(code, exc)
        observer = self._observer
        model = self.model
        if model is not None:
            version = observer.version = model.version
        else:
            version = observer.version
        observer.metrics.request(
            observer.function, version, code, self.rows, ended - self._started, error
        )
        if self.trace is not None:
            self.trace.finish(self, code, error, self._started, self._prepared, ended)


class EndpointObserver:
    """The telemetry of one endpoint (function ``function``), and its gauges."""

    def __init__(
        self, telemetry: Telemetry, function: str, drift: DriftMonitor | None = None
    ) -> None:
        self.telemetry = telemetry
        self.metrics = telemetry.metrics
        self.function = function
        self.version = ""
        """The model version the endpoint served last (errors before a model is known)."""
        self.drift = drift
        self._limit = RateLimit(telemetry.traces_per_second)
        self._tracing = telemetry.tracing
        self._created: dict[str, float] = {}
        telemetry.metrics.add_gauges(self._gauges)

    def begin(self, request: Any) -> Invocation:
        """A request came in (a :class:`servefn.http.Request`: its method, and the W3C trace
        context of the invocation, ``trace_context``, else of its headers)."""
        tracing = self._tracing
        if tracing is None or not self._limit.allow():
            return Invocation(self, None)
        context = request.trace_context
        carrier = context if context is not None else request.headers
        return Invocation(self, tracing.start(self.function, request.method.upper(), carrier))

    def model_seen(self, model: ServedModel) -> None:
        """A model version answers for the first time: remember when it was created."""
        manifest = model.manifest if isinstance(model.manifest, Mapping) else {}
        created = manifest.get("created")
        try:
            stamp = datetime.fromisoformat(str(created)).timestamp()
        except ValueError:
            stamp = time.time()
        self._created[model.version] = stamp
        while len(self._created) > 4:
            self._created.pop(next(iter(self._created)))

    def _gauges(self) -> Iterable[Series]:
        now = time.time()
        version = self.version
        if version in self._created:
            yield Series(
                "servefn.model.age",
                "seconds since the model being served was created (saved)",
                "s",
                "gauge",
                (({FUNCTION: self.function, VERSION: version}, now - self._created[version]),),
            )
        if self.drift is None:
            return
        gauges = list(self.drift.gauges())
        base = {FUNCTION: self.function}
        yield Series(
            "servefn.drift.psi",
            "population stability index of a feature over the drift window",
            "",
            "gauge",
            tuple(({**base, VERSION: v, "servefn.feature": f}, psi) for v, f, psi, _, _ in gauges),
        )
        yield Series(
            "servefn.drift.out_of_range",
            "share of a feature's values outside the training range over the drift window",
            "1",
            "gauge",
            tuple(
                ({**base, VERSION: v, "servefn.feature": f}, rate)
                for v, f, _, rate, _ in gauges
                if rate is not None
            ),
        )
        rows = {v: n for v, _, _, _, n in gauges}
        yield Series(
            "servefn.drift.rows",
            "rows in the drift window",
            "{row}",
            "gauge",
            tuple(({**base, VERSION: v}, float(n)) for v, n in rows.items()),
        )
