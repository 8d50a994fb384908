"""Observability: the training profile, input drift, and OpenTelemetry traces and metrics.

``profile`` computes the small training profile ``save`` stores in the manifest and reads it
back defensively; ``drift`` compares rows with it (population stability index, out-of-range
rate) over a rolling window or a whole batch. The rest is the request path's telemetry:
``_hub`` holds the process's one configuration (``active()``, configured from the app settings
on first use), ``observer`` the per-endpoint hooks (cheap: counters, and spans only for the
invocations the rate limit lets through), ``metrics`` the in-process counters and histograms,
``prometheus`` their text form, and ``tracing``, ``export`` and ``providers`` the OpenTelemetry
side, imported only when a setting asks for it: with none, no ``opentelemetry`` module is ever
imported. This package imports ``servefn.errors`` and ``servefn.schema`` only; ``model/``,
``loaders/`` and ``http/`` call into it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from servefn.telemetry._hub import active, configure, reset
    from servefn.telemetry.core import Telemetry

__all__ = ["Telemetry", "active", "configure", "reset"]

_EXPORTS = {
    "Telemetry": "servefn.telemetry.core",
    "active": "servefn.telemetry._hub",
    "configure": "servefn.telemetry._hub",
    "reset": "servefn.telemetry._hub",
}


def __getattr__(name: str) -> Any:  # PEP 562: importing the package costs nothing
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'servefn.telemetry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
