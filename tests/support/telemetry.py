"""Telemetry test helpers: a model with a known training distribution, an in-memory metric
exporter, an HTTP receiver for exporters, and a stand-in for the worker's invocation context.

- ``GaugeData``: a two-feature regression trained on N(0, 1) inputs (``train_rows``), saved with
  its training profile; ``shifted_rows`` draws from N(1.5, 1) instead.
- ``MemoryMetricExporter``: an SDK ``MetricExporter`` keeping what it is given (the SDK ships an
  in-memory span exporter, and an in-memory metric *reader* that only reads SDK instruments;
  servefn exports its own metric data, so a test needs an exporter).
- ``Receiver``: a small HTTP server on 127.0.0.1 that stores every POST (Application Insights'
  ``/v2.1/track``, OTLP's ``/v1/traces`` and ``/v1/metrics``) and answers as the real
  services do.
- ``invocation_context(traceparent)``: ``servefn serve``'s own ``InvocationContext``, the shape
  of the ``func.Context`` the worker passes.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from servefn import Schema, column, save
from servefn.devhost._asgi import InvocationContext, TraceContext

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


class Gauge(Schema):
    """Two readings of a gauge."""

    pressure: float = column(0, name="Pressure")
    flow: float = column(1, name="Flow")


class Level(Schema):
    score: float = column(name="Score")


def train_rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(n, 2))


def shifted_rows(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.5, 1.0, size=(n, 2))


def gauge_model(path: Path) -> Path:
    """A linear regressor saved with the profile of 2,000 N(0, 1) rows."""
    from sklearn.linear_model import Ridge

    X = train_rows(2000)
    y = X @ np.array([2.0, -1.0]) + 0.5
    save(Ridge().fit(X, y), path, input=Gauge, output=Level, evaluate_on=(X, y))
    return path


def records(rows: np.ndarray) -> list[dict[str, float]]:
    return [{"Pressure": float(a), "Flow": float(b)} for a, b in rows]


class MemoryMetricExporter(MetricExporter):
    """Keeps every ``MetricsData`` it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.exported: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name -> (attributes, data point) of the last export."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for resource in self.exported[-1].resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = [
                        (dict(p.attributes or {}), p) for p in metric.data.data_points
                    ]
        return found


def invocation_context(traceparent: str, tracestate: str = "") -> InvocationContext:
    return InvocationContext("invocation-1", "predict", ".", TraceContext(traceparent, tracestate))


class Receiver:
    """An HTTP server on 127.0.0.1 keeping (path, body) of every POST, gunzipped."""

    def __init__(self) -> None:
        received: list[tuple[str, bytes]] = []
        self.received = received
        self.lock = threading.Lock()
        lock = self.lock

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                with lock:
                    received.append((self.path, body))
                if self.path.endswith("/track"):
                    items = body.count(b'"iKey"') or 1
                    answer = json.dumps(
                        {"itemsReceived": items, "itemsAccepted": items, "errors": []}
                    ).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                else:
                    answer = b""
                    self.send_response(200)
                    self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [body for path, body in self.received if path.endswith(suffix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
