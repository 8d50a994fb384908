"""The OpenTelemetry providers and exporters: from the app settings, or given (tests).

From the app settings (:func:`from_environment`, what :func:`servefn.telemetry.active` calls
once), or from SDK objects (:func:`build`, what :func:`servefn.telemetry.configure` calls):

- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` (as Azure sets it): spans through
  ``azure-monitor-opentelemetry``'s ``configure_azure_monitor()``, servefn's metrics through
  its Azure Monitor metric exporter.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the per-signal ``..._TRACES_ENDPOINT`` /
  ``..._METRICS_ENDPOINT``): spans and metrics through OTLP/HTTP (``/v1/traces``,
  ``/v1/metrics``); the other ``OTEL_*`` settings (headers, service name, resource) apply.
- ``SERVEFN_TELEMETRY=console`` (or ``servefn serve --telemetry console``): printed.

No double configuration: when the Functions worker's own OpenTelemetry integration is on
(``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` or ``PYTHON_ENABLE_OPENTELEMETRY``) or the app
has already installed an SDK tracer provider, servefn installs none and its spans go to the
global one; its metrics always go through its own exporters (they are not SDK instruments).
Without the ``observability`` extra installed, one warning says so and nothing is exported.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Sequence
from typing import Any

import servefn.telemetry._settings as _settings
from servefn._version import __version__
from servefn.telemetry.core import Telemetry
from servefn.telemetry.metrics import MetricsTable

__all__ = ["EXTRA_MISSING", "build", "from_environment"]

logger = logging.getLogger("servefn.telemetry")
EXTRA_MISSING = (
    "servefn telemetry: {what} is set but {package} is not installed, so nothing is exported; "
    "pip install 'servefn[observability]'"
)
_FUNCTIONS_DETECTOR = "azure_functions"
_CHATTY_LOGGERS = (
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.monitor.opentelemetry.exporter",
)


def build(
    *,
    tracer_provider: Any = None,
    metric_exporters: Sequence[Any] = (),
    delta: bool = False,
    export_interval: float = 60.0,
    traces_per_second: float = _settings.DEFAULT_TRACES_PER_SECOND,
) -> Telemetry:
    """The :class:`Telemetry` of :func:`servefn.telemetry.configure` (which installs it)."""
    table = MetricsTable()
    tracing = None
    resource = getattr(tracer_provider, "resource", None)
    if tracer_provider is not None:
        from servefn.telemetry.tracing import Tracing

        tracing = Tracing(tracer_provider.get_tracer("servefn", __version__))
    closers: tuple[Any, ...] = ()
    if metric_exporters:
        from opentelemetry.sdk.resources import Resource

        from servefn.telemetry.export import MetricExport, Target

        targets = [Target(exporter, delta) for exporter in metric_exporters]
        closers = (MetricExport(table, targets, resource or Resource.create(), export_interval),)
    return Telemetry(table, tracing, traces_per_second=traces_per_second, closers=closers)


def from_environment(*, console: bool = False, prometheus: bool = False) -> Telemetry | None:
    """The telemetry the app settings ask for (see the module's docstring), or None."""
    azure = os.environ.get(_settings.AZURE_CONNECTION_SETTING, "").strip()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    otlp_traces = bool(endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip())
    otlp_metrics = bool(
        endpoint or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip()
    )
    mode = os.environ.get(_settings.TELEMETRY_SETTING, "auto").strip().lower()
    console = console or mode == "console"
    per_second = _settings.number(
        _settings.TRACES_PER_SECOND_SETTING, _settings.DEFAULT_TRACES_PER_SECOND
    )
    if azure or otlp_traces or otlp_metrics or console:
        missing = _missing_package(bool(azure), otlp_traces or otlp_metrics)
        if missing is not None:
            logger.warning(EXTRA_MISSING.format(what=missing[0], package=missing[1]))
        else:
            return _exporting(azure, otlp_traces, otlp_metrics, console, per_second)
    if prometheus:
        telemetry = Telemetry(traces_per_second=0.0, description="metrics at /metrics")
        logger.info("servefn telemetry: %s", telemetry.description)
        return telemetry
    return None


def _missing_package(azure: bool, otlp: bool) -> tuple[str, str] | None:
    """(setting, package) when a package the settings need is not installed."""
    from importlib.util import find_spec

    wanted = [("telemetry", "opentelemetry.sdk", "opentelemetry-sdk")]
    if azure:
        wanted.append(
            (
                _settings.AZURE_CONNECTION_SETTING,
                "azure.monitor.opentelemetry",
                "azure-monitor-opentelemetry",
            )
        )
    if otlp:
        wanted.append(
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "opentelemetry.exporter.otlp.proto.http",
                "opentelemetry-exporter-otlp-proto-http",
            )
        )
    for setting, module, package in wanted:
        try:
            found = find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return setting, package
    return None


def _exporting(
    azure: str, otlp_traces: bool, otlp_metrics: bool, console: bool, per_second: float
) -> Telemetry:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from servefn.telemetry.export import MetricExport
    from servefn.telemetry.tracing import Tracing

    owner = _provider_owner(trace.get_tracer_provider(), TracerProvider)
    if owner is None:
        _install_tracer_provider(azure, otlp_traces, console)
    provider = trace.get_tracer_provider()
    resource = provider.resource if isinstance(provider, TracerProvider) else Resource.create()
    tracing = Tracing(trace.get_tracer("servefn", __version__))
    targets = _metric_targets(azure, otlp_metrics, console)
    default_interval = 10_000.0 if console and not (azure or otlp_metrics) else 60_000.0
    interval = _settings.number("OTEL_METRIC_EXPORT_INTERVAL", default_interval, minimum=1.0)
    table = MetricsTable()
    export = MetricExport(table, targets, resource, interval / 1000.0)
    where = [
        *(["Application Insights"] if azure else []),
        *(["OTLP"] if otlp_traces or otlp_metrics else []),
        *(["the console"] if console else []),
    ]
    description = (
        f"spans and metrics to {' and '.join(where)}; spans through the tracer provider "
        f"{'servefn configured' if owner is None else 'configured by ' + owner}, at most "
        f"{per_second:g} traced invocations a second"
    )
    telemetry = Telemetry(
        table, tracing, traces_per_second=per_second, closers=(export,), description=description
    )
    atexit.register(telemetry.shutdown)
    logger.info("servefn telemetry: %s", description)
    return telemetry


def _provider_owner(provider: Any, sdk_provider: type) -> str | None:
    """Who configured the global tracer provider already (None: nobody, servefn may)."""
    for setting in _settings.WORKER_SETTINGS:
        if _settings.flag(setting):
            return f"the Functions worker ({setting})"
    if isinstance(provider, sdk_provider):
        return "the app"
    return None


def _install_tracer_provider(azure: str, otlp: bool, console: bool) -> None:
    """Set the global tracer provider: Azure Monitor's distro, or an SDK provider."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    processors: list[SpanProcessor] = []
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if console:
        processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    if azure:
        from azure.monitor.opentelemetry import configure_azure_monitor

        # As the Functions worker does: the distro's default detectors include the Azure VM
        # one, which asks the instance metadata service and waits for its timeout off Azure.
        os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", _FUNCTIONS_DETECTOR)
        # The host already sends the worker's log lines to Application Insights; the distro's
        # logging handler would send each a second time (the distro reads only this setting
        # for it, not its disable_logging argument).
        os.environ.setdefault("OTEL_LOGS_EXPORTER", "none")
        for chatty in _CHATTY_LOGGERS:  # a line per upload, at INFO, unless the app says
            if logging.getLogger(chatty).level == logging.NOTSET:
                logging.getLogger(chatty).setLevel(logging.WARNING)
        configure_azure_monitor(connection_string=azure, span_processors=processors)
        return
    provider = TracerProvider(resource=Resource.create())
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


def _metric_targets(azure: str, otlp: bool, console: bool) -> list[Any]:
    from servefn.telemetry.export import Target

    targets = []
    if azure:
        from azure.monitor.opentelemetry.exporter import AzureMonitorMetricExporter

        targets.append(Target(AzureMonitorMetricExporter(connection_string=azure), delta=True))
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        preference = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "")
        delta = preference.strip().lower() in ("delta", "lowmemory")
        targets.append(Target(OTLPMetricExporter(), delta=delta))
    if console:
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        targets.append(Target(ConsoleMetricExporter()))
    return targets
