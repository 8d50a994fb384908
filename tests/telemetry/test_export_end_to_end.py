"""``servefn serve`` exporting for real: to Application Insights (the Azure Monitor exporter
pointed at a local ingestion endpoint), to an OTLP/HTTP receiver, as Prometheus text at
``/metrics`` and to the console. What arrives carries the caller's trace id and the model
version, and no request value."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from servefn import load_model
from support.iris import example_app
from support.servehost import ServeProcess
from support.telemetry import TRACE_ID, TRACEPARENT, Receiver

pytestmark = pytest.mark.integration

MARKED = {
    "SepalLength": 7.123456,
    "SepalWidth": 3.654321,
    "PetalLength": 5.987654,
    "PetalWidth": 2.123987,
}
FAST = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRIC_EXPORT_INTERVAL": "300"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


def _serve(app: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> ServeProcess:
    host = ServeProcess(app, app / "serve.log", env={**FAST, **env}, args=args)
    host.wait()
    return host


def _call(host: ServeProcess) -> None:
    with httpx.Client(base_url=host.base, timeout=10) as client:
        headers = {"traceparent": TRACEPARENT}
        for _ in range(2):  # the first loads the model (thread pool), the second runs inline
            assert client.post("/Predict", json=MARKED, headers=headers).status_code == 200
        assert client.post("/Predict", json={"SepalLength": "7.654321"}).status_code == 422


def _until(found: Callable[[], bool], host: ServeProcess, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if found():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} never arrived:\n{host.output()[-3000:]}")


def _no_request_value(bodies: list[bytes]) -> None:
    text = b"".join(bodies)
    for value in (*MARKED.values(), "7.654321"):
        assert str(value).encode() not in text


def _envelopes(receiver: Receiver) -> list[dict[str, Any]]:
    found = []
    for body in receiver.bodies("/v2.1/track"):
        found.extend(json.loads(body))
    return found


def test_application_insights_receives_spans_and_metrics(
    receiver: Receiver, trained_model: Path, tmp_path: Path
) -> None:
    local = f"http://127.0.0.1:{receiver.port}/"
    env = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint={local};LiveEndpoint={local}"
        ),
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
        # the distro samples 5 traces a second by default, at random at first: keep them all
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    version = load_model(trained_model).version
    host = _serve(example_app(tmp_path / "app", trained_model), env)
    try:
        _call(host)

        def requests() -> list[dict[str, Any]]:
            return [e for e in _envelopes(receiver) if e["name"].endswith(".Request")]

        def metrics() -> list[dict[str, Any]]:
            return [
                m
                for e in _envelopes(receiver)
                if e["name"].endswith(".Metric")
                for m in e["data"]["baseData"]["metrics"]
                if m["name"] == "servefn.requests"
            ]

        _until(lambda: len(requests()) >= 3 and bool(metrics()), host, "requests and metrics")
        traced = [r for r in requests() if r["tags"].get("ai.operation.id") == TRACE_ID]
        assert len(traced) == 2
        properties = traced[0]["data"]["baseData"]["properties"]
        assert properties["servefn.model.version"] == version
        assert traced[0]["data"]["baseData"]["responseCode"] == "200"
        dimensions = [
            e["data"]["baseData"]["properties"]
            for e in _envelopes(receiver)
            if e["name"].endswith(".Metric")
            and e["data"]["baseData"]["metrics"][0]["name"] == "servefn.requests"
        ]
        assert any(d.get("servefn.model.version") == version for d in dimensions)
        _no_request_value(receiver.bodies(""))
    finally:
        host.stop()


def test_otlp_receives_spans_and_metrics(
    receiver: Receiver, trained_model: Path, tmp_path: Path
) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"}
    version = load_model(trained_model).version
    host = _serve(example_app(tmp_path / "app", trained_model), env)
    try:
        _call(host)

        def spans() -> list[Any]:
            return [
                span
                for body in receiver.bodies("/v1/traces")
                for resource in ExportTraceServiceRequest.FromString(body).resource_spans
                for scope in resource.scope_spans
                for span in scope.spans
            ]

        def metrics() -> list[Any]:
            return [
                metric
                for body in receiver.bodies("/v1/metrics")
                for resource in ExportMetricsServiceRequest.FromString(body).resource_metrics
                for scope in resource.scope_metrics
                for metric in scope.metrics
            ]

        _until(
            lambda: (
                len([s for s in spans() if s.name == "POST predict"]) >= 3
                and any(m.name == "servefn.requests" for m in metrics())
            ),
            host,
            "spans and metrics",
        )
        traced = [s for s in spans() if s.trace_id.hex() == TRACE_ID]
        assert {s.name for s in traced} >= {"POST predict", "servefn.validate", "servefn.predict"}
        invocation = next(s for s in traced if s.name == "POST predict")
        attributes = {a.key: a.value for a in invocation.attributes}
        assert attributes["servefn.model.version"].string_value == version
        requests = next(m for m in metrics() if m.name == "servefn.requests")
        labels = [
            {a.key: a.value.string_value for a in p.attributes} for p in requests.sum.data_points
        ]
        assert any(label.get("servefn.model.version") == version for label in labels)
        _no_request_value(receiver.bodies(""))
    finally:
        host.stop()


def test_serve_metrics_and_console_telemetry(trained_model: Path, tmp_path: Path) -> None:
    version = load_model(trained_model).version
    host = _serve(
        example_app(tmp_path / "app", trained_model),
        {},
        args=("--metrics", "--telemetry", "console"),
    )
    try:
        _call(host)
        metrics = httpx.get(f"http://127.0.0.1:{host.port}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        line = (
            'servefn_requests_total{http_response_status_code="200",'
            f'servefn_function="predict",servefn_model_version="{version}"}} 2'
        )
        assert line in metrics.text.splitlines()
        assert "servefn_request_duration_seconds_bucket{" in metrics.text
        assert "servefn_model_loads_total{" in metrics.text
        _until(lambda: TRACE_ID in host.output(), host, "the console spans")
        assert '"name": "POST predict"' in host.output()
        _no_request_value([metrics.content, host.output().encode()])
    finally:
        output = host.stop()
    assert f"Metrics: http://127.0.0.1:{host.port}/metrics" in output
