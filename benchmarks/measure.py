"""What every benchmark module shares: result rows, repeated interleaved timing, the table.

A bench module's ``run(quick=False)`` returns a list of rows made by :func:`row`; ``run.py``
prints them as one table. Times are seconds (unit ``"s"``) and are shown in ns/us/ms/s; rates
and counts carry their own unit. ``spread`` is the (min, max) of the repetitions whose median
is ``value``.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

Row = dict[str, object]
Spread = tuple[float, float]


def row(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: str | None = None,
    baseline_value: float | None = None,
    target: str | None = None,
    met: bool | None = None,
    spread: Spread | None = None,
    baseline_spread: Spread | None = None,
) -> Row:
    """One measurement; ``ratio`` is ``value / baseline_value`` when there is a baseline."""
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": value / baseline_value if baseline_value else None,
        "target": target,
        "met": met,
        "spread": spread,
        "baseline_spread": baseline_spread,
    }


def spread_of(values: Sequence[float]) -> Spread:
    return (min(values), max(values))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def calls_for(function: Callable[[], object], budget: float) -> int:
    """How many calls of ``function`` fill about ``budget`` seconds (at least one)."""
    start = time.perf_counter()
    function()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(budget / once))


def per_call(function: Callable[[], object], calls: int, *, keep_gc: bool = False) -> float:
    """Mean seconds per call over ``calls`` back-to-back calls.

    As in ``timeit``, the cyclic garbage collector is off while timing unless ``keep_gc``: a
    collection's cost depends on everything else the process holds, not only on the code
    measured, so figures with it on are taken in a process that holds what a worker holds.
    """
    gc.collect()
    if not keep_gc:
        gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(calls):
            function()
        return (time.perf_counter() - start) / calls
    finally:
        gc.enable()


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    *,
    repeat: int,
    budget: float,
    keep_gc: bool = False,
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, ``repeat`` times, taking turns.

    Turns spread background load over all candidates alike; each turn lasts about ``budget``
    seconds. A warm-up call of each comes first.
    """
    calls = {name: calls_for(function, budget) for name, function in candidates.items()}
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, function in candidates.items():
            times[name].append(per_call(function, calls[name], keep_gc=keep_gc))
    return times


# -- the table ---------------------------------------------------------------------------------


def _scale(value: float, unit: str) -> tuple[float, str]:
    """(multiplier, unit text) that shows ``value`` readably."""
    if unit == "s":
        for limit, factor, suffix in ((1e-6, 1e9, "ns"), (1e-3, 1e6, "us"), (1.0, 1e3, "ms")):
            if abs(value) < limit:
                return factor, suffix
        return 1.0, "s"
    return 1.0, unit


def _digits(x: float, unit: str) -> str:
    """Three significant digits without an exponent; rates as whole numbers with commas."""
    if unit in ("req/s", "rows/s"):
        return f"{x:,.0f}"
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def format_number(value: object, unit: str, spread: object = None) -> str:
    """A value in its unit (seconds scaled to ns/us/ms/s), with ``[min-max]`` when given."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    factor, suffix = _scale(value, unit)
    text = _digits(value * factor, unit)
    if isinstance(spread, tuple):
        low, high = (_digits(v * factor, unit) for v in spread)
        text += f" [{low}-{high}]"
    return f"{text} {suffix}" if suffix else text


def _cells(r: Row) -> list[str]:
    unit = str(r["unit"])
    ratio = r["ratio"]
    met = r["met"]
    baseline = format_number(r["baseline_value"], unit, r.get("baseline_spread"))
    return [
        str(r["name"]),
        format_number(r["value"], unit, r.get("spread")),
        f"{r['baseline']}: {baseline}" if r["baseline"] and baseline else str(r["baseline"] or ""),
        f"{ratio:.3g}" if isinstance(ratio, float) else "",
        str(r["target"] or ""),
        "" if met is None else ("yes" if met else "NO"),
    ]


HEADER = ["benchmark", "median [min-max]", "baseline (same run)", "ratio", "target", "met"]


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    table = [HEADER, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = []
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if line is HEADER:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (for BENCHMARKS.md)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = [cell.replace("|", "\\|") for cell in _cells(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
