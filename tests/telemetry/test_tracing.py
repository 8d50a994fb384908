"""Spans and metrics of serve_http functions, caught with the OpenTelemetry SDK's in-memory
span exporter and an in-memory metric exporter: names, the parent taken from the invocation's
traceparent, attributes, metrics; never a request value."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from servefn import load_model, serve_http
from servefn.telemetry import Telemetry, configure
from support.iris import FLOWER, IrisData, IrisPrediction
from support.problems import CANARY
from support.telemetry import (
    PARENT_SPAN,
    TRACE_ID,
    TRACEPARENT,
    MemoryMetricExporter,
    invocation_context,
)

MARKED = {"SepalLength": 7.123456, "SepalWidth": 3.654321, "PetalLength": 5.5, "PetalWidth": 2.1}


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def metrics() -> MemoryMetricExporter:
    return MemoryMetricExporter()


@pytest.fixture
def telemetry(spans: InMemorySpanExporter, metrics: MemoryMetricExporter) -> Iterator[Telemetry]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield configure(tracer_provider=provider, metric_exporters=[metrics], export_interval=3600)


def _request(body: Any, traceparent: str | None = None) -> func.HttpRequest:
    headers = {"content-type": "application/json"}
    if traceparent:
        headers["traceparent"] = traceparent
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return func.HttpRequest("POST", "http://x/api/Predict", headers=headers, body=data)


def _by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in finished:
        found.setdefault(span.name, []).append(span)
    return found


def _everything_recorded(spans: InMemorySpanExporter, metrics: MemoryMetricExporter) -> str:
    recorded = [
        {"name": s.name, "attributes": dict(s.attributes or {}), "events": len(s.events)}
        for s in spans.get_finished_spans()
    ]
    return json.dumps(recorded) + "".join(d.to_json() for d in metrics.exported)


def test_one_span_per_invocation_parented_on_the_hosts_trace_context(
    telemetry: Telemetry,
    spans: InMemorySpanExporter,
    metrics: MemoryMetricExporter,
    trained_model: Path,
) -> None:
    @serve_http(IrisData, IrisPrediction, model=str(trained_model))
    def predict(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    version = load_model(trained_model).version
    # the worker passes the context: its traceparent, not the request header's, is the parent
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    answer = predict(_request(MARKED, traceparent=other), invocation_context(TRACEPARENT))
    assert answer.status_code == 200
    found = _by_name(spans.get_finished_spans())
    assert set(found) == {
        "POST predict",
        "servefn.validate",
        "servefn.predict",
        "servefn.model.load",
    }
    invocation = found["POST predict"][0]
    assert invocation.kind is SpanKind.SERVER
    assert f"{invocation.context.trace_id:032x}" == TRACE_ID
    assert invocation.parent is not None and f"{invocation.parent.span_id:016x}" == PARENT_SPAN
    assert invocation.parent.is_remote
    for child in ("servefn.validate", "servefn.predict", "servefn.model.load"):
        span = found[child][0]
        assert span.parent is not None and span.parent.span_id == invocation.context.span_id
        assert span.context.trace_id == invocation.context.trace_id
    assert dict(invocation.attributes or {}) == {
        "http.request.method": "POST",
        "http.route": "predict",
        "faas.trigger": "http",
        "servefn.function": "predict",
        "servefn.model.version": version,
        "servefn.model.kind": "linear-classifier",
        "servefn.rows": 1,
        "http.response.status_code": 200,
    }
    validate, prediction = found["servefn.validate"][0], found["servefn.predict"][0]
    assert invocation.start_time == validate.start_time
    assert validate.end_time == prediction.start_time and prediction.end_time == invocation.end_time
    load = found["servefn.model.load"][0]
    assert load.attributes is not None and load.attributes["servefn.model.outcome"] == "loaded"
    text = _everything_recorded(spans, metrics)
    for value in MARKED.values():
        assert str(value) not in text


def test_the_request_header_is_the_parent_without_a_host_context(
    telemetry: Telemetry, spans: InMemorySpanExporter, trained_model: Path
) -> None:
    @serve_http(IrisData, IrisPrediction, model=str(trained_model))
    def predict(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    assert predict(_request(FLOWER, traceparent=TRACEPARENT)).status_code == 200
    invocation = _by_name(spans.get_finished_spans())["POST predict"][0]
    assert f"{invocation.context.trace_id:032x}" == TRACE_ID
    spans.clear()
    assert predict(_request(FLOWER)).status_code == 200  # no trace context: a new trace
    invocation = _by_name(spans.get_finished_spans())["POST predict"][0]
    assert invocation.parent is None


def test_errors_have_a_problem_type_and_no_request_value(
    telemetry: Telemetry,
    spans: InMemorySpanExporter,
    metrics: MemoryMetricExporter,
    trained_model: Path,
) -> None:
    @serve_http(IrisData, IrisPrediction, model=str(trained_model))
    def predict(model: Any, inputs: Any) -> Any:
        if inputs[0].sepal_length > 100:
            raise RuntimeError(f"cannot score {CANARY}")
        return model.predict(inputs)

    context = invocation_context(TRACEPARENT)
    assert predict(_request({**FLOWER, "SepalWidth": CANARY}), context).status_code == 422
    assert predict(_request(b"{" + CANARY.encode()), context).status_code == 400
    assert predict(_request({**FLOWER, "SepalLength": 500.0}), context).status_code == 500
    invocations = _by_name(spans.get_finished_spans())["POST predict"]
    assert [s.attributes["http.response.status_code"] for s in invocations] == [422, 400, 500]  # type: ignore[index]
    assert [s.attributes["error.type"] for s in invocations] == [  # type: ignore[index]
        "unprocessable-content",
        "bad-request",
        "internal-error",
    ]
    assert invocations[2].status.status_code is StatusCode.ERROR
    telemetry.shutdown()  # exports the metrics once more
    errors = metrics.points()["servefn.errors"]
    assert {(a["error.type"], p.value) for a, p in errors} == {
        ("unprocessable-content", 1),
        ("bad-request", 1),
        ("internal-error", 1),
    }
    assert CANARY not in _everything_recorded(spans, metrics)


def test_metrics_count_requests_rows_latency_loads_and_model_age(
    telemetry: Telemetry, metrics: MemoryMetricExporter, trained_model: Path
) -> None:
    @serve_http(IrisData, IrisPrediction, model=str(trained_model))
    def predict(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    version = load_model(trained_model).version
    for _ in range(3):
        assert predict(_request([FLOWER] * 4)).status_code == 200
    assert predict(_request({"nope": 1})).status_code == 422
    telemetry.shutdown()
    points = metrics.points()
    ok = {"servefn.function": "predict", "servefn.model.version": version,
          "http.response.status_code": 200}  # fmt: skip
    requests = {tuple(sorted(a.items())): p.value for a, p in points["servefn.requests"]}
    assert requests[tuple(sorted(ok.items()))] == 3
    rows = {tuple(sorted(a.items())): p.value for a, p in points["servefn.rows"]}
    assert rows[tuple(sorted(ok.items()))] == 12
    durations = [p for a, p in points["servefn.request.duration"] if a == ok]
    assert durations[0].count == 3 and sum(durations[0].bucket_counts) == 3
    assert 0 < durations[0].sum < 3 and tuple(durations[0].explicit_bounds)[:1] == (0.0005,)
    loads = points["servefn.model.loads"]
    assert [
        (a["servefn.model.operation"], a["servefn.model.outcome"], p.value) for a, p in loads
    ] == [("load", "loaded", 1)]
    age = points["servefn.model.age"]
    assert age[0][0] == {"servefn.function": "predict", "servefn.model.version": version}
    assert age[0][1].value > 0


def test_async_handlers_are_traced_too(
    telemetry: Telemetry, spans: InMemorySpanExporter, trained_model: Path
) -> None:
    @serve_http(IrisData, IrisPrediction, model=str(trained_model))
    async def predict(model: Any, inputs: Any) -> Any:
        await asyncio.sleep(0)
        return model.predict(inputs)

    answer = asyncio.run(predict(_request(FLOWER), invocation_context(TRACEPARENT)))
    assert answer.status_code == 200
    found = _by_name(spans.get_finished_spans())
    invocation = found["POST predict"][0]
    assert f"{invocation.context.trace_id:032x}" == TRACE_ID
    load = found["servefn.model.load"][0]  # loaded in a worker thread: still a child
    assert load.parent is not None and load.parent.span_id == invocation.context.span_id


def test_the_rate_limit_bounds_spans_but_every_request_is_counted(
    spans: InMemorySpanExporter, metrics: MemoryMetricExporter, trained_model: Path
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = configure(tracer_provider=provider, metric_exporters=[metrics], traces_per_second=2)
    model = load_model(trained_model)

    @serve_http(IrisData, IrisPrediction, model=model)
    def predict(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    for _ in range(20):
        assert predict(_request(FLOWER)).status_code == 200
    traced = _by_name(spans.get_finished_spans())["POST predict"]
    assert 1 <= len(traced) <= 3
    telemetry.shutdown()
    assert sum(p.value for _, p in metrics.points()["servefn.requests"]) == 20


def test_user_spans_in_a_handler_are_children_of_the_invocation(
    telemetry: Telemetry, spans: InMemorySpanExporter, trained_model: Path
) -> None:
    from opentelemetry import trace

    tracer = telemetry.tracing.tracer if telemetry.tracing else trace.get_tracer("t")

    @serve_http(IrisData, IrisPrediction, model=load_model(trained_model))
    def predict(model: Any, inputs: Any) -> Any:
        with tracer.start_as_current_span("my.lookup"):
            return model.predict(inputs)

    assert predict(_request(FLOWER), invocation_context(TRACEPARENT)).status_code == 200
    found = _by_name(spans.get_finished_spans())
    mine, invocation = found["my.lookup"][0], found["POST predict"][0]
    assert mine.parent is not None and mine.parent.span_id == invocation.context.span_id
