"""The process's one telemetry configuration, resolved from the app settings on first use.

:func:`active` answers None, importing nothing, unless an app setting asks for telemetry
(``APPLICATIONINSIGHTS_CONNECTION_STRING``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``SERVEFN_TELEMETRY=console``) or ``servefn serve`` asked (:func:`prefer`); then the first call
configures it (:mod:`servefn.telemetry.providers`), once, and later calls return the same
:class:`Telemetry`. Endpoints ask when they are built, and a model load asks when it ends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import servefn.telemetry._settings as _settings

if TYPE_CHECKING:
    from servefn.telemetry.core import Telemetry

__all__ = ["Telemetry", "active", "configure", "install", "model_checked", "prefer", "reset"]


_lock = threading.Lock()
_current: Telemetry | None = None
_resolved = False
_preferences: dict[str, bool] = {}


def prefer(*, console: bool = False, prometheus: bool = False, off: bool = False) -> None:
    """What ``servefn serve`` asks for, on top of the app settings (before the app loads)."""
    _preferences.update(console=console, prometheus=prometheus, off=off)


def _wanted() -> bool:
    mode = os.environ.get(_settings.TELEMETRY_SETTING, "auto").strip().lower()
    if mode == "off" or _preferences.get("off"):
        return False
    return bool(
        mode == "console"
        or _preferences.get("console")
        or _preferences.get("prometheus")
        or os.environ.get(_settings.AZURE_CONNECTION_SETTING, "").strip()
        or any(os.environ.get(name, "").strip() for name in _settings.OTLP_ENDPOINT_SETTINGS)
    )


def active() -> Telemetry | None:
    """The process's telemetry, configured from the app settings on the first call; None
    (and nothing imported) when no setting asks for any."""
    global _current, _resolved
    if _resolved:
        return _current
    with _lock:
        if not _resolved:
            if _wanted():
                from servefn.telemetry.providers import from_environment  # imports OpenTelemetry

                _current = from_environment(
                    console=_preferences.get("console", False),
                    prometheus=_preferences.get("prometheus", False),
                )
            _resolved = True
    return _current


def configure(
    *,
    tracer_provider: Any = None,
    metric_exporters: Sequence[Any] = (),
    delta: bool = False,
    export_interval: float = 60.0,
    traces_per_second: float = _settings.DEFAULT_TRACES_PER_SECOND,
) -> Telemetry:
    """Make this process report to the given OpenTelemetry SDK objects, and return its
    :class:`Telemetry` (what tests and hosts other than Functions use; the app settings are
    then not read).

    ``tracer_provider`` (an SDK ``TracerProvider``) receives the spans, without becoming the
    global provider; each of ``metric_exporters`` (SDK ``MetricExporter``) receives the
    metrics every ``export_interval`` seconds, as deltas with ``delta=True``. Endpoints built
    from now on report to it.
    """
    from servefn.telemetry.providers import build

    telemetry = build(
        tracer_provider=tracer_provider,
        metric_exporters=metric_exporters,
        delta=delta,
        export_interval=export_interval,
        traces_per_second=traces_per_second,
    )
    install(telemetry)
    return telemetry


def install(telemetry: Telemetry | None) -> None:
    """Make ``telemetry`` the process's; endpoints built from now on use it."""
    global _current, _resolved
    with _lock:
        _current, _resolved = telemetry, True


def reset() -> None:
    """Shut the current telemetry down and forget it and the preferences (tests)."""
    global _current, _resolved
    with _lock:
        current, _current, _resolved = _current, None, False
        _preferences.clear()
    if current is not None:
        current.shutdown()


def model_checked(operation: str, outcome: str, started: float, version: str | None) -> None:
    """Report a model load or refresh check to the active telemetry, if any."""
    telemetry = active()
    if telemetry is not None:
        telemetry.model_checked(operation, outcome, started, version)
