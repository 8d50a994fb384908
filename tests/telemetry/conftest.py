"""Every telemetry test starts and ends with no process telemetry configured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servefn.telemetry import reset


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "SERVEFN_TELEMETRY",
        "SERVEFN_DRIFT_WINDOW",
        "SERVEFN_DRIFT_THRESHOLD",
    ):
        monkeypatch.delenv(name, raising=False)
    reset()
    yield
    reset()
