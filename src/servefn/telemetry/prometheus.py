"""servefn's metrics as Prometheus text (exposition format 0.0.4), for ``GET /metrics``.

Names follow the OpenTelemetry-to-Prometheus rules: dots become underscores, the unit is a
suffix (``_seconds``, ``_ratio``), counters end in ``_total``; attribute names become label
names the same way. Label values are escaped; nothing here reads a request value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from servefn.telemetry.metrics import HistogramValue, Series

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_UNITS = {"s": "seconds", "1": "ratio", "By": "bytes"}
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _name(series: Series) -> str:
    name = _INVALID.sub("_", series.name)
    unit = _UNITS.get(series.unit)
    if unit is not None and not name.endswith(unit):
        name = f"{name}_{unit}"
    return name + ("_total" if series.kind == "counter" else "")


def _escape(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(attributes: Mapping[str, object], extra: str = "") -> str:
    parts = [f'{_INVALID.sub("_", k)}="{_escape(v)}"' for k, v in sorted(attributes.items())]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render(series: list[Series]) -> bytes:
    """The Prometheus text of ``series``."""
    lines: list[str] = []
    for metric in series:
        if not metric.points:
            continue
        name = _name(metric)
        kind = "counter" if metric.kind == "counter" else metric.kind
        lines.append(f"# HELP {name} {_escape(metric.description)}")
        lines.append(f"# TYPE {name} {kind}")
        for attributes, value in metric.points:
            labels = dict(attributes)
            if isinstance(value, HistogramValue):
                running = 0
                for bound, count in zip((*value.bounds, math.inf), value.counts, strict=True):
                    running += count
                    le = f'le="{_number(bound)}"'
                    lines.append(f"{name}_bucket{_labels(labels, le)} {running}")
                lines.append(f"{name}_sum{_labels(labels)} {_number(value.total)}")
                lines.append(f"{name}_count{_labels(labels)} {value.count}")
            else:
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
    return ("\n".join(lines) + "\n").encode()
