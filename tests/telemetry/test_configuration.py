"""What the app settings configure, each in a fresh process: nothing at all without them (no
``opentelemetry`` module imported), and never a second tracer provider when the Functions
worker's integration, or the app, has one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import ROOT
from support.telemetry import Receiver

pytestmark = pytest.mark.integration

APP = """
import json, sys
sys.path.insert(0, {tests!r})
import azure.functions as func
{before}
from servefn import serve_http
from support.iris import FLOWER, IrisData, IrisPrediction

@serve_http(IrisData, IrisPrediction, model={model!r})
def predict(model, inputs):
    return model.predict(inputs)

headers = {{"content-type": "application/json"}}
for body in (FLOWER, [FLOWER] * 3, {{"nope": 1}}):
    predict(func.HttpRequest("POST", "http://x/api/Predict", headers=headers,
                             body=json.dumps(body).encode()))
from opentelemetry import trace  # only now, to look
from servefn.telemetry import active
telemetry = active()
print(json.dumps({{
    "opentelemetry": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
    "active": telemetry is not None,
    "description": telemetry.description if telemetry else None,
    "provider": type(trace.get_tracer_provider()).__name__,
    {after}
}}))
"""

_SETTINGS = (
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "SERVEFN_TELEMETRY",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
    "PYTHON_ENABLE_OPENTELEMETRY",
)


def _run(model: Path, env: dict[str, str], before: str = "", after: str = "") -> dict[str, object]:
    code = APP.format(tests=str(ROOT / "tests"), model=str(model), before=before, after=after)
    environment = {k: v for k, v in os.environ.items() if k not in _SETTINGS} | env
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_without_settings_nothing_is_imported_or_configured(trained_model: Path) -> None:
    code = APP.format(tests=str(ROOT / "tests"), model=str(trained_model), before="", after="")
    code = code.replace("from opentelemetry import trace  # only now, to look", "")
    code = code.replace('"provider": type(trace.get_tracer_provider()).__name__,', "")
    environment = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["opentelemetry"] == [] and seen["active"] is False


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    served = Receiver()
    yield served
    served.close()


def test_the_workers_integration_keeps_its_provider(
    trained_model: Path, receiver: Receiver
) -> None:
    seen = _run(
        trained_model,
        {
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        },
    )
    assert seen["active"] is True
    assert seen["provider"] == "ProxyTracerProvider"  # servefn set none: the worker's job
    assert (
        "configured by the Functions worker (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY)"
        in str(seen["description"])
    )


def test_an_app_that_configured_opentelemetry_first_keeps_its_provider(
    trained_model: Path, receiver: Receiver
) -> None:
    before = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
MINE = TracerProvider(); SPANS = InMemorySpanExporter()
MINE.add_span_processor(SimpleSpanProcessor(SPANS)); trace.set_tracer_provider(MINE)
"""
    after = """"same": trace.get_tracer_provider() is MINE,
    "spans": sorted({s.name for s in SPANS.get_finished_spans()}),"""
    seen = _run(
        trained_model,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}"},
        before=before,
        after=after,
    )
    assert seen["same"] is True and "configured by the app" in str(seen["description"])
    assert seen["spans"] == [
        "POST predict",
        "servefn.model.load",
        "servefn.predict",
        "servefn.validate",
    ]


def test_settings_without_the_extra_warn_and_export_nothing(
    trained_model: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('opentelemetry', 'azure') and 'monitor' in name:\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    code = APP.format(tests=str(ROOT / "tests"), model=str(trained_model), before="", after="")
    code = code.replace("from opentelemetry import trace  # only now, to look", "")
    code = code.replace('"provider": type(trace.get_tracer_provider()).__name__,', "")
    environment = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    environment["APPLICATIONINSIGHTS_CONNECTION_STRING"] = "InstrumentationKey=0"
    environment["PYTHONPATH"] = str(blocker)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["active"] is False
    assert "pip install 'servefn[observability]'" in done.stderr
