"""The framework-neutral prediction endpoint: request bytes in, validated prediction bytes out.

:class:`Endpoint` only orchestrates the steps of the HTTP contract (DESIGN.md "HTTP contract"),
each owned by one module of ``servefn.http``: the body or query parsed and validated
(``_parsing``), the feature matrix built and range-checked (``_features``), the model got and
checked, the predictor or the user's handler run (here), the answer encoded for the ``Accept``
header (``_encoding``); all inside the one guard that sync and async requests share
(``_guard``: problem responses, 500s with a logged id, the collector paused for large bodies).

Azure Functions, the local host and any other server adapt their request objects to
:class:`Request` and back from :class:`Response` (see :mod:`servefn.azure`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pydantic_core

from servefn.errors import FeatureValueError, ModelUnavailable, ModelUnusable, ServefnError
from servefn.http._encoding import OutputEncoder
from servefn.http._features import FeatureBuilder, value_problem
from servefn.http._guard import Guard
from servefn.http._messages import Request, Response
from servefn.http._parsing import BodyParser, Parsed
from servefn.http._problems import Problem
from servefn.model._archive import LoadedModel
from servefn.model._records import Predictions, Records
from servefn.schema import layout_of
from servefn.schema._schema import Schema
from servefn.telemetry._hub import active as active_telemetry
from servefn.telemetry.monitor import drift_monitor

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_BODY_BYTES",
    "Endpoint",
    "Handler",
    "ModelProvider",
    "Request",
    "Response",
]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_BATCH = 10_000
_ALLOWED_METHODS = ("GET", "POST")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"})
logger = logging.getLogger("servefn.http")

Handler = Callable[[LoadedModel, Sequence[Any]], Any]
"""A user function ``(model, inputs) -> outputs``; may be ``async``."""


class ModelProvider(Protocol):
    """Where an endpoint gets its model: a :class:`~servefn.loaders.ModelSource` or a fixed one."""

    def get(self) -> LoadedModel: ...

    def info(self) -> dict[str, Any]: ...


class Endpoint:
    """Validates requests against ``input_schema``, predicts, and encodes ``output_schema``.

    ``source`` is where the model comes from: anything with ``get() -> LoadedModel`` and
    ``info()`` (a :class:`~servefn.loaders.ModelSource`, or a fixed model). ``handler`` is an
    optional user function ``(model, inputs) -> outputs`` (inputs are validated input records;
    outputs are output records, dicts, or a mapping of output arrays); without it the model's
    predictor runs directly on the feature matrix, the fastest path.

    Constructing one has no side effect beyond building its validators (garbage-collector
    tuning is a host's choice: :func:`servefn.http.freeze_startup_objects`).
    """

    def __init__(
        self,
        input_schema: type[Schema],
        output_schema: type[Schema],
        source: ModelProvider,
        *,
        handler: Handler | None = None,
        name: str = "predict",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = DEFAULT_MAX_BATCH,
        log_bodies: bool = False,
    ) -> None:
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.source = source
        self.handler = handler
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.log_bodies = log_bodies
        self.is_async = handler is not None and inspect.iscoroutinefunction(handler)
        self._parser = BodyParser(
            input_schema,
            max_body_bytes=max_body_bytes,
            max_batch=max_batch,
            csv_matrix=handler is None,
        )
        self._features = FeatureBuilder(input_schema)
        self._encoder = OutputEncoder(output_schema)
        self._feature_names = layout_of(input_schema).feature_names
        self._checked_versions: set[str] = set()
        self.drift = drift_monitor(name, input_schema)
        """Input drift against the served model's training profile (None: switched off)."""
        telemetry = active_telemetry()
        self.observer = None if telemetry is None else telemetry.observer(name, self.drift)
        """Telemetry hooks: None unless telemetry is configured (:mod:`servefn.telemetry`)."""

    # -- entry points: one guarded path; the async one awaits the handler ------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request (sync handlers and the built-in predictor path)."""
        with Guard(self, request) as guard:
            model, parsed = self._prepare(request)
            if guard.invocation is not None:
                guard.invocation.prepared(model, parsed.size)
            outputs = self._run(model, parsed)
            if self.handler is not None and _is_awaitable(outputs):
                raise ServefnError("the handler returned an awaitable; declare it with async def")
            guard.response = self._encoder.encode(outputs, parsed, request, model.version)
        return guard.response

    async def handle_async(self, request: Request) -> Response:
        """Answer one request, awaiting an async handler; the first model load runs in a thread."""
        import asyncio  # only async apps pay for importing it

        with Guard(self, request) as guard:
            model, parsed = await asyncio.to_thread(self._prepare, request)
            if guard.invocation is not None:
                guard.invocation.prepared(model, parsed.size)
            outputs = self._run(model, parsed)
            if _is_awaitable(outputs):
                try:
                    outputs = await outputs
                except FeatureValueError as exc:  # the handler's model.predict refused a value
                    raise value_problem(parsed, exc, self._feature_names) from None
            guard.response = self._encoder.encode(outputs, parsed, request, model.version)
        return guard.response

    def model_in_memory(self) -> bool:
        """True when answering needs no I/O: the model is loaded and no refresh check is due.

        A host may then call :meth:`handle` on its event loop instead of a thread pool; the
        provider says so with an ``in_memory()`` method (providers without one never do).
        """
        in_memory = getattr(self.source, "in_memory", None)
        return in_memory is not None and bool(in_memory())

    def health(self) -> Response:
        """Model state for probes and people: 200 when a model is loaded, 503 otherwise.

        ``status`` is ``ok`` (a model serves), ``unavailable`` (none yet; storage is retried)
        or ``unusable`` (the model in storage was refused; a new version is needed). While
        something is wrong, even with a model serving (a refused upload), ``reason`` says what.
        """
        info = self.source.info()
        state = info.get("state")
        ready = state in ("ready", "stale") or info.get("version") is not None
        status = "ok" if ready else "unusable" if state == "unusable" else "unavailable"
        body: dict[str, Any] = {"status": status, "endpoint": self.name}
        if info.get("last_error"):
            body["reason"] = info["last_error"]
        body["model"] = info
        drift = self.drift.health() if self.drift is not None else None
        if drift is not None:
            body["drift"] = drift
        return Response(200 if ready else 503, pydantic_core.to_json(body))

    # -- steps ------------------------------------------------------------------------------------

    def _prepare(self, request: Request) -> tuple[LoadedModel, Parsed]:
        """Method, body or query, model: everything before the predictor runs."""
        method = request.method.upper()
        if method not in _ALLOWED_METHODS:
            shown = method if method in _KNOWN_METHODS else "This method"
            raise Problem(
                405,
                f"{shown} is not supported here; use GET with query parameters or POST a body",
                headers={"Allow": ", ".join(_ALLOWED_METHODS)},
            )
        if method == "GET":
            parsed = self._parser.parse_query(request)
        else:
            parsed = self._parser.parse_body(request)
        model = self._model()
        parsed = self._features.attach(parsed, model.predictor)
        if self.drift is not None:
            self.drift.record(model, parsed.row, parsed.matrix)
        return model, parsed

    def _model(self) -> LoadedModel:
        try:
            model = self.source.get()
        except ModelUnusable as exc:  # retrying cannot help: a 500 naming the cause, no Retry-After
            raise Problem(
                500,
                f"{str(exc).rstrip('. ')}; storage is checked again every refresh interval and a "
                "new version is loaded once it is uploaded",
                cause=exc.cause,
            ) from None
        except ModelUnavailable as exc:
            seconds = max(1, round(exc.retry_after))
            raise Problem(
                503,
                "the model is not loaded yet; retry later",
                headers={"Retry-After": str(seconds)},
            ) from None
        if model.version not in self._checked_versions:
            self._check_model(model)
        return model

    def _check_model(self, model: LoadedModel) -> None:
        """Refuse a model whose features differ from what this endpoint validates."""
        declared = self._feature_names
        found = layout_of(model.input_schema).feature_names
        if declared != found and self.handler is None:
            logger.error(
                "model %s expects features %s but endpoint %s declares %s",
                model.version,
                found,
                self.name,
                declared,
            )
            raise Problem(  # permanent for this model: a 503 would invite endless retries
                500,
                "the loaded model does not fit this endpoint's input schema (its features "
                "differ); upload a model trained for this endpoint",
                cause="schema",
            )
        if self.observer is not None:
            self.observer.model_seen(model)
        self._checked_versions.add(model.version)

    def _run(self, model: LoadedModel, parsed: Parsed) -> Any:
        """The predictor's outputs, or what the handler returns (an awaitable if it is async)."""
        if self.handler is None:
            if parsed.row is not None:
                return model.predictor.predict_row(parsed.row)
            matrix = self._features.matrix(parsed, model.predictor.dtype)
            try:
                return model.predictor.predict(matrix)
            except FeatureValueError as exc:  # e.g. a category the model's encoder refuses
                raise value_problem(parsed, exc, self._feature_names) from None
        assert parsed.records is not None
        try:
            return self.handler(model, Records(parsed.records, parsed.matrix, parsed.row))
        except FeatureValueError as exc:  # the handler's model.predict refused a value
            raise value_problem(parsed, exc, self._feature_names) from None


def _is_awaitable(outputs: Any) -> bool:
    return type(outputs) is not Predictions and inspect.isawaitable(outputs)
