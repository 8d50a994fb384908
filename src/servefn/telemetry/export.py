"""servefn's metrics handed to OpenTelemetry metric exporters, every export interval.

A background thread reads the :class:`~servefn.telemetry.metrics.MetricsTable` every
``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (60 s by default), builds the SDK's
``MetricsData`` from it (sums, histograms with their buckets, gauges) and gives it to each
exporter: Azure Monitor's, OTLP's, the console's, or one a test passes. Counters and
histograms are cumulative, or deltas since the last export for an exporter that wants them
(Azure Monitor). The thread is a daemon; :meth:`MetricExport.shutdown` (at exit) exports once
more and shuts the exporters down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from servefn._version import __version__
from servefn.telemetry.metrics import HistogramValue, MetricsTable, Series

__all__ = ["MetricExport", "Target", "metrics_data"]

logger = logging.getLogger("servefn.telemetry")
_SCOPE = InstrumentationScope("servefn", __version__)


@dataclass
class Target:
    """An exporter, whether it wants deltas, and what it was last sent (for deltas)."""

    exporter: MetricExporter
    delta: bool = False
    last: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = field(default_factory=dict)
    last_ns: int = 0


def metrics_data(
    series: Sequence[Series],
    resource: Resource,
    start_ns: int,
    now_ns: int,
    target: Target | None = None,
) -> MetricsData:
    """The SDK's form of ``series``; deltas since ``target``'s last export when it wants them."""
    delta = target is not None and target.delta
    temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
    since = target.last_ns if delta and target is not None and target.last_ns else start_ns
    metrics = []
    for s in series:
        points: list[Any] = []
        for attributes, value in s.points:
            key = (s.name, tuple(sorted(attributes.items())))
            previous = target.last.get(key) if delta and target is not None else None
            if delta and target is not None:
                target.last[key] = value
            if s.kind == "gauge":
                points.append(NumberDataPoint(dict(attributes), since, now_ns, float(value)))  # type: ignore[arg-type]
            elif isinstance(value, HistogramValue):
                point = _histogram_point(dict(attributes), value, previous, since, now_ns)
                if point is not None:
                    points.append(point)
            else:
                amount = float(value) - (float(previous) if previous is not None else 0.0)
                if not delta or amount > 0:
                    points.append(NumberDataPoint(dict(attributes), since, now_ns, amount))
        if not points:
            continue
        data: Any
        if s.kind == "counter":
            data = Sum(points, temporality, is_monotonic=True)
        elif s.kind == "histogram":
            data = Histogram(points, temporality)
        else:
            data = Gauge(points)
        metrics.append(Metric(s.name, s.description, s.unit, data))
    return MetricsData(
        [ResourceMetrics(resource, [ScopeMetrics(_SCOPE, metrics, "")], resource.schema_url)]
    )


def _histogram_point(
    attributes: dict[str, Any],
    value: HistogramValue,
    previous: HistogramValue | None,
    since: int,
    now_ns: int,
) -> HistogramDataPoint | None:
    counts, total, count = list(value.counts), value.total, value.count
    if previous is not None:
        counts = [a - b for a, b in zip(counts, previous.counts, strict=True)]
        total -= previous.total
        count -= previous.count
        if count <= 0:
            return None
    if count == 0:
        return None
    low = value.minimum if math.isfinite(value.minimum) else 0.0
    high = value.maximum if math.isfinite(value.maximum) else 0.0
    return HistogramDataPoint(
        attributes, since, now_ns, count, total, counts, list(value.bounds), low, high
    )


class MetricExport:
    """Exports ``table`` to each target every ``interval`` seconds, from a daemon thread."""

    def __init__(
        self, table: MetricsTable, targets: Sequence[Target], resource: Resource, interval: float
    ) -> None:
        self.table = table
        self.targets = list(targets)
        self.resource = resource
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="servefn-metric-export", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.export()

    def export(self) -> None:
        """Export now, to every target (a failing exporter is logged, the others still run)."""
        with self._lock:
            series = self.table.snapshot()
            now = time.time_ns()
            for target in self.targets:
                data = metrics_data(series, self.resource, self.table.started_ns, now, target)
                target.last_ns = now
                try:
                    target.exporter.export(data)
                except Exception as exc:  # an exporter is another library: never fail a request
                    logger.warning(
                        "servefn metrics: %s failed: %s", type(target.exporter).__name__, exc
                    )

    def shutdown(self) -> None:
        """Export once more, then stop the thread and the exporters."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self.export()
        for target in self.targets:
            try:
                target.exporter.shutdown()
            except Exception as exc:  # shutting down must not raise at exit
                logger.debug("servefn metrics: shutting %s down: %s", target.exporter, exc)
