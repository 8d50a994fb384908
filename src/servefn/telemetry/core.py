"""``Telemetry``: what one process reports, once configured (:mod:`servefn.telemetry._hub`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import servefn.telemetry._settings as _settings
from servefn.telemetry.metrics import MetricsTable

if TYPE_CHECKING:
    from servefn.telemetry.monitor import DriftMonitor
    from servefn.telemetry.observer import EndpointObserver
    from servefn.telemetry.tracing import Tracing

__all__ = ["Telemetry"]


class Telemetry:
    """What this process reports: its :class:`MetricsTable`, and its spans when tracing is
    configured (``tracing``; at most ``traces_per_second`` invocations traced per second)."""

    def __init__(
        self,
        metrics: MetricsTable | None = None,
        tracing: Tracing | None = None,
        *,
        traces_per_second: float = _settings.DEFAULT_TRACES_PER_SECOND,
        closers: tuple[Any, ...] = (),
        description: str = "",
    ) -> None:
        self.metrics = metrics or MetricsTable()
        self.tracing = tracing
        self.traces_per_second = traces_per_second
        self.description = description
        self._closers = closers

    def observer(self, function: str, drift: DriftMonitor | None = None) -> EndpointObserver:
        """The hooks of the endpoint ``function`` (drift gauges included when it has some)."""
        from servefn.telemetry.observer import EndpointObserver

        return EndpointObserver(self, function, drift)

    def model_checked(
        self, operation: str, outcome: str, started: float, version: str | None
    ) -> None:
        """A model load or refresh check that began at ``started`` (perf_counter) ended now."""
        seconds = time.perf_counter() - started
        self.metrics.model_check(operation, outcome, seconds)
        if self.tracing is not None:
            self.tracing.model_check(operation, outcome, seconds, version)

    def shutdown(self) -> None:
        """Export what is pending and stop the exporters (at exit, or between tests)."""
        for closer in self._closers:
            closer.shutdown()
