"""The app settings that switch telemetry and drift monitoring, read in one place.

Read when first needed, never at import. A value that does not parse is logged once and the
default used: a typo in an app setting must not stop a function app from starting.
"""

from __future__ import annotations

import logging
import math
import os
from typing import NamedTuple

__all__ = [
    "AZURE_CONNECTION_SETTING",
    "DRIFT_THRESHOLD_SETTING",
    "DRIFT_WINDOW_SETTING",
    "OTLP_ENDPOINT_SETTINGS",
    "TELEMETRY_SETTING",
    "TRACES_PER_SECOND_SETTING",
    "WORKER_SETTINGS",
    "DriftSettings",
    "drift_settings",
    "flag",
    "number",
]

TELEMETRY_SETTING = "SERVEFN_TELEMETRY"
"""``auto`` (default: export when a connection string or OTLP endpoint is set), ``off``, or
``console`` (spans and metrics printed, for development)."""
TRACES_PER_SECOND_SETTING = "SERVEFN_TRACES_PER_SECOND"
"""Invocations traced per second and process at most (default 100; 0 traces none)."""
DRIFT_WINDOW_SETTING = "SERVEFN_DRIFT_WINDOW"
"""Rows in the rolling drift window of each model version (default 1000; 0 switches drift off)."""
DRIFT_THRESHOLD_SETTING = "SERVEFN_DRIFT_THRESHOLD"
"""The population stability index over which a feature has drifted (default 0.2)."""
AZURE_CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_ENDPOINT_SETTINGS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
WORKER_SETTINGS = ("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "PYTHON_ENABLE_OPENTELEMETRY")
"""The Functions Python worker's own OpenTelemetry integration: with either on, the worker (or
the app, as the Functions docs ask) configures the providers, and servefn does not."""

DEFAULT_TRACES_PER_SECOND = 100.0
DEFAULT_DRIFT_WINDOW = 1000
DEFAULT_DRIFT_THRESHOLD = 0.2

logger = logging.getLogger("servefn.telemetry")
_warned: set[str] = set()


def flag(name: str) -> bool:
    """True when the setting ``name`` is ``true``, ``1`` or ``yes`` (any case)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def number(name: str, default: float, *, minimum: float = 0.0) -> float:
    """The setting ``name`` as a finite number of at least ``minimum``, else ``default``
    (an unreadable value is logged once)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum:
        if name not in _warned:
            _warned.add(name)
            logger.warning(
                "app setting %s=%r is not a number of at least %g; using %g",
                name,
                text[:40],
                minimum,
                default,
            )
        return default
    return value


class DriftSettings(NamedTuple):
    """How each endpoint watches its inputs: ``window`` rows per model version (0: off)."""

    window: int = DEFAULT_DRIFT_WINDOW
    threshold: float = DEFAULT_DRIFT_THRESHOLD


def drift_settings() -> DriftSettings:
    """The drift settings from ``SERVEFN_DRIFT_WINDOW`` and ``SERVEFN_DRIFT_THRESHOLD``."""
    window = int(number(DRIFT_WINDOW_SETTING, DEFAULT_DRIFT_WINDOW))
    threshold = number(DRIFT_THRESHOLD_SETTING, DEFAULT_DRIFT_THRESHOLD)
    return DriftSettings(window=min(window, 1_000_000), threshold=threshold)
