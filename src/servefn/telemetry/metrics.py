"""servefn's metrics, counted in process: a dict lookup and a few additions per request.

OpenTelemetry's SDK instruments cost about 13 µs per measurement here, half a one-row request;
so requests are counted in plain cumulative tables under one lock, and turned into
OpenTelemetry metric data (:mod:`servefn.telemetry.export`) or Prometheus text
(:mod:`servefn.telemetry.prometheus`) only when read. Gauges (model age, drift) are computed
by callbacks at that moment.

=============================  =========  ===========================================
name                           kind       attributes
=============================  =========  ===========================================
servefn.requests               counter    function, model version, status code
servefn.rows                   counter    function, model version, status code
servefn.request.duration       histogram  function, model version, status code (s)
servefn.errors                 counter    function, status code, ``error.type``
servefn.model.loads            counter    operation (load, refresh), outcome
servefn.model.load.duration    histogram  operation, outcome (s)
servefn.model.age              gauge      function, model version (s since created)
servefn.drift.psi              gauge      function, model version, feature
servefn.drift.out_of_range     gauge      function, model version, feature
servefn.drift.rows             gauge      function, model version
=============================  =========  ===========================================
"""

from __future__ import annotations

import bisect
import inspect
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FUNCTION",
    "LATENCY_BOUNDS",
    "LOAD_BOUNDS",
    "STATUS",
    "VERSION",
    "HistogramValue",
    "MetricsTable",
    "Series",
]

FUNCTION = "servefn.function"
VERSION = "servefn.model.version"
STATUS = "http.response.status_code"
ERROR_TYPE = "error.type"
LATENCY_BOUNDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
LOAD_BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Attributes = Mapping[str, str | int | float]


@dataclass(frozen=True)
class HistogramValue:
    """Cumulative histogram: ``counts[i]`` values up to ``bounds[i]`` (the last: above all)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float
    count: int
    minimum: float
    maximum: float


@dataclass(frozen=True)
class Series:
    """One metric and its points, each an attribute set with a value."""

    name: str
    description: str
    unit: str
    kind: Literal["counter", "histogram", "gauge"]
    points: tuple[tuple[Attributes, float | HistogramValue], ...]


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "maximum", "minimum", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0
        self.minimum = float("inf")
        self.maximum = float("-inf")

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value

    def value(self) -> HistogramValue:
        return HistogramValue(
            self.bounds, tuple(self.counts), self.total, self.count, self.minimum, self.maximum
        )


class _Requests:
    __slots__ = ("count", "latency", "rows")

    def __init__(self) -> None:
        self.count = 0
        self.rows = 0
        self.latency = _Histogram(LATENCY_BOUNDS)


GaugeSource = Callable[[], Iterable[Series]]


class MetricsTable:
    """The process's servefn metrics, cumulative since :attr:`started_ns`; thread-safe."""

    def __init__(self) -> None:
        self.started_ns = time.time_ns()
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], _Requests] = {}
        self._errors: dict[tuple[str, int, str], int] = {}
        self._loads: dict[tuple[str, str], _Histogram] = {}
        self._gauges: list[Callable[[], GaugeSource | None]] = []

    def request(
        self,
        function: str,
        version: str,
        status: int,
        rows: int,
        seconds: float,
        error_type: str | None,
    ) -> None:
        """One answered request."""
        key = (function, version, status)
        with self._lock:
            stats = self._requests.get(key)
            if stats is None:
                stats = self._requests[key] = _Requests()
            stats.count += 1
            stats.rows += rows
            latency = stats.latency  # _Histogram.add, inlined: this runs on every request
            latency.counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
            latency.total += seconds
            latency.count += 1
            if seconds < latency.minimum:
                latency.minimum = seconds
            if seconds > latency.maximum:
                latency.maximum = seconds
            if error_type is not None:
                error = (function, status, error_type)
                self._errors[error] = self._errors.get(error, 0) + 1

    def model_check(self, operation: str, outcome: str, seconds: float) -> None:
        """One model load or refresh check, its outcome and how long it took."""
        with self._lock:
            histogram = self._loads.get((operation, outcome))
            if histogram is None:
                histogram = self._loads[(operation, outcome)] = _Histogram(LOAD_BOUNDS)
            histogram.add(seconds)

    def add_gauges(self, source: GaugeSource) -> None:
        """Call ``source`` at every read for gauge series (model age, drift). A bound method
        is held weakly: the gauges of an endpoint that is gone (a repository's evicted model)
        stop, and keep nothing alive."""
        reference: Callable[[], GaugeSource | None] = (
            weakref.WeakMethod(source) if inspect.ismethod(source) else lambda: source
        )
        with self._lock:
            self._gauges.append(reference)

    def snapshot(self) -> list[Series]:
        """Every metric now: counters and histograms cumulative, gauges freshly computed."""
        with self._lock:
            requests = [(k, v.count, v.rows, v.latency.value()) for k, v in self._requests.items()]
            errors = list(self._errors.items())
            loads = [(k, h.value()) for k, h in self._loads.items()]
            gauges = [source for source in (ref() for ref in self._gauges) if source is not None]
            self._gauges = [ref for ref in self._gauges if ref() is not None]
        series = [
            Series(
                "servefn.requests",
                "requests answered",
                "{request}",
                "counter",
                tuple((_request_attributes(k), float(n)) for k, n, _, _ in requests),
            ),
            Series(
                "servefn.rows",
                "rows (records) predicted or refused",
                "{row}",
                "counter",
                tuple((_request_attributes(k), float(rows)) for k, _, rows, _ in requests),
            ),
            Series(
                "servefn.request.duration",
                "time to answer a request",
                "s",
                "histogram",
                tuple((_request_attributes(k), latency) for k, _, _, latency in requests),
            ),
            Series(
                "servefn.errors",
                "error answers by problem type",
                "{request}",
                "counter",
                tuple(
                    ({FUNCTION: f, STATUS: status, ERROR_TYPE: kind}, float(n))
                    for (f, status, kind), n in errors
                ),
            ),
            Series(
                "servefn.model.loads",
                "model loads and refresh checks by outcome",
                "{check}",
                "counter",
                tuple((_load_attributes(k), float(h.count)) for k, h in loads),
            ),
            Series(
                "servefn.model.load.duration",
                "time a model load or refresh check took",
                "s",
                "histogram",
                tuple((_load_attributes(k), h) for k, h in loads),
            ),
        ]
        merged: dict[str, Series] = {}
        for source in gauges:
            for gauge in source():
                seen = merged.get(gauge.name)
                merged[gauge.name] = (
                    gauge
                    if seen is None
                    else Series(
                        seen.name,
                        seen.description,
                        seen.unit,
                        seen.kind,
                        seen.points + gauge.points,
                    )
                )
        return series + list(merged.values())


def _request_attributes(key: tuple[str, str, int]) -> Attributes:
    return {FUNCTION: key[0], VERSION: key[1], STATUS: key[2]}


def _load_attributes(key: tuple[str, str]) -> Attributes:
    return {"servefn.model.operation": key[0], "servefn.model.outcome": key[1]}
