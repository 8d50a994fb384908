"""Issue 15: what telemetry costs a request, in process.

The example app's function (one row, ``func.HttpRequest`` in, ``func.HttpResponse`` out) is
built three times in one process and timed in turns:

- ``off``: drift monitoring off (``SERVEFN_DRIFT_WINDOW=0``) and no telemetry: the request
  path as it was before issue 15, the baseline;
- ``unconfigured``: what a user gets with no setting: drift monitoring on (the model carries a
  training profile), no telemetry; target: the same as ``off`` within noise (1.05x);
- ``configured``: telemetry configured with the OpenTelemetry SDK (a tracer provider with a
  batch span processor and a no-op span exporter, a no-op metric exporter), at the default
  rate limit of 100 traced invocations a second; target: at most 1.2x ``off``.

Every candidate makes the same number of calls a turn (see ``_turns``). For context, the
same with every invocation traced (a span tree per request), and a
100-row request. A fresh process, built like a worker with no setting, checks that no
``opentelemetry`` module is imported unconfigured, and times the import of ``servefn.telemetry``.
Run ``.venv/bin/python benchmarks/bench_telemetry.py [--quick]``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import orjson

import iris_app
from measure import Row, calls_for, median, per_call, row, spread_of

Function = Callable[[func.HttpRequest], func.HttpResponse]

_FRESH = """
import json, sys, time
sys.path.insert(0, {bench!r})
import logging, numpy, servefn.schema  # what the serving path imports anyway
started = time.perf_counter()
import servefn.telemetry._hub, servefn.telemetry.monitor  # what the endpoint adds
imported = time.perf_counter() - started
import iris_app, orjson
function = iris_app.app_function()
request = iris_app.json_request(orjson.dumps(iris_app.FLOWER))
for _ in range(200):
    assert function(request).status_code == 200
print(json.dumps({{"opentelemetry": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
                  "import": imported}}))
"""


def _function(model: Any) -> Function:
    from servefn import serve_http

    data, prediction = iris_app.schemas()

    @serve_http(data, prediction, model=model)
    def predict(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    return predict


class _NoSpans:
    """A span exporter that drops what it is given (the cost measured is servefn's and the
    SDK's, not a network's)."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _no_metrics() -> Any:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class NoMetrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 0, **kw: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kw: Any) -> None:
            pass

    return NoMetrics()


def _configured(model: Any, per_second: float) -> Function:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from servefn.telemetry import configure, reset

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_NoSpans(), max_queue_size=1 << 16))  # type: ignore[arg-type]
    configure(
        tracer_provider=provider,
        metric_exporters=[_no_metrics()],
        export_interval=5.0,
        traces_per_second=per_second,
    )
    function = _function(model)
    reset()  # the endpoint keeps its observer; later endpoints are unconfigured again
    return function


def _fresh_process() -> dict[str, Any]:
    """A worker-like process with no setting, run twice with a bytecode cache of its own (as a
    deployed app has one): the second run's figures."""
    names = (
        "APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_EXPORTER_OTLP_ENDPOINT",
        "SERVEFN_TELEMETRY", "PYTHONDONTWRITEBYTECODE",
    )  # fmt: skip
    code = _FRESH.format(bench=str(Path(__file__).resolve().parent))
    with tempfile.TemporaryDirectory(prefix="servefn-pycache-") as cache:
        environment = {k: v for k, v in os.environ.items() if k not in names}
        environment["PYTHONPYCACHEPREFIX"] = cache
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                env=environment,
                check=True,
            )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _turns(candidates: dict[str, Callable[[], object]], repeat: int, budget: float) -> Any:
    """``measure.interleaved``, with every candidate making the same number of calls a turn
    (what the baseline makes in ``budget`` seconds). ``interleaved`` sizes each candidate's
    turn from one call, and the first call of a traced candidate can be a traced one, hundreds
    of microseconds: its turns would be a few hundred calls, each opening with the burst of
    spans the rate limit allows after a pause, so it would measure bursts, not steady load."""
    calls = calls_for(next(iter(candidates.values())), budget)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, function in candidates.items():
            times[name].append(per_call(function, calls))
    return times


def run(quick: bool = False) -> list[Row]:
    from servefn import load_model

    model = load_model(iris_app.app_folder() / "model.zip")
    assert "profile" in model.manifest, "the example's model has no training profile"
    os.environ["SERVEFN_DRIFT_WINDOW"] = "0"
    try:
        off = _function(model)
    finally:
        del os.environ["SERVEFN_DRIFT_WINDOW"]
    unconfigured = _function(model)
    configured = _configured(model, 100.0)
    every = _configured(model, math.inf)
    one = iris_app.json_request(orjson.dumps(iris_app.FLOWER))
    batch = iris_app.json_request(orjson.dumps([iris_app.FLOWER] * 100))
    functions = {"off": off, "unconfigured": unconfigured, "configured": configured,
                 "every": every}  # fmt: skip
    for function in functions.values():
        assert function(one).status_code == 200 and function(batch).status_code == 200
    repeat, budget = (5, 0.3) if quick else (15, 0.6)
    times = _turns({name: (lambda f=f: f(one)) for name, f in functions.items()}, repeat, budget)
    batches = _turns(
        {name: (lambda f=f: f(batch)) for name, f in functions.items() if name != "every"},
        max(3, repeat // 3),
        budget,
    )
    fresh = _fresh_process()
    base = median(times["off"])
    noise = (max(times["off"]) - min(times["off"])) / base
    unconfigured_ratio = median(times["unconfigured"]) / base
    configured_ratio = median(times["configured"]) / base
    return [
        row("T15a one-row request, telemetry off (baseline)", base, "s",
            spread=spread_of(times["off"])),
        row("T15b one-row request, unconfigured (drift on)", median(times["unconfigured"]), "s",
            baseline="off", baseline_value=base, target="<= 1.05x (noise)",
            met=unconfigured_ratio <= max(1.05, 1 + noise),
            spread=spread_of(times["unconfigured"])),
        row("T15c one-row request, telemetry configured", median(times["configured"]), "s",
            baseline="off", baseline_value=base, target="<= 1.2x",
            met=configured_ratio <= 1.2, spread=spread_of(times["configured"])),
        row("T15d unconfigured: opentelemetry modules imported", len(fresh["opentelemetry"]),
            "modules", target="0", met=not fresh["opentelemetry"]),
        row("  one-row request, every invocation traced", median(times["every"]), "s",
            baseline="off", baseline_value=base, spread=spread_of(times["every"])),
        row("  100-row request, telemetry configured", median(batches["configured"]), "s",
            baseline="off", baseline_value=median(batches["off"]),
            spread=spread_of(batches["configured"])),
        row("  100-row request, unconfigured (drift on)", median(batches["unconfigured"]), "s",
            baseline="off", baseline_value=median(batches["off"]),
            spread=spread_of(batches["unconfigured"])),
        row("  import of what the endpoint adds (servefn.telemetry)", fresh["import"], "s"),
    ]  # fmt: skip


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
