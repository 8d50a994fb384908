"""The framework-neutral prediction endpoint: request bytes in, validated prediction bytes out.

Contract (DESIGN.md "HTTP contract"):

- POST ``application/json``: one object -> one object; an array -> an array;
  ``{"instances": [...]}`` -> ``{"predictions": [...]}``.
- POST ``text/csv``: rows by the input schema's column indices (``header=present`` to skip one).
- GET: query parameters -> one record.
- ``Accept: text/plain``: the first output column's bare value(s), one per line
  (the original walkthrough's answer, ``Iris-virginica``).
- Errors are RFC 9457 problem+json (:mod:`servefn.problems`) with field paths and never the
  client's values; 500s carry an id that is in the log with the traceback.

Azure Functions, the local host and any other server adapt their request objects to
:class:`Request` and back from :class:`Response` (see :mod:`servefn.azure`).
"""

from __future__ import annotations

import gc
import inspect
import logging
import math
import operator
import os
import re
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, NamedTuple, Protocol

import jiter
import numpy as np
import pydantic_core
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, create_model

from servefn.errors import DataFormatError, ModelUnavailable, SchemaError, ServefnError
from servefn.http._problems import PROBLEM_MEDIA_TYPE, Problem
from servefn.model._archive import LoadedModel
from servefn.model._records import Predictions, Records
from servefn.schema import layout_of
from servefn.schema._delimited import numbered_rows, parse_rows
from servefn.schema._schema import Schema

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_BODY_BYTES",
    "FEATURE_LIMIT",
    "Endpoint",
    "Handler",
    "ModelProvider",
    "Request",
    "Response",
]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_BATCH = 10_000
JSON = "application/json"
_ALLOWED_METHODS = ("GET", "POST")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"})
FEATURE_LIMIT = float(np.finfo(np.float32).max)
"""Largest feature magnitude accepted: features are float32 values (ML.NET's R4)."""
_LOG_BODIES_SETTING = "SERVEFN_LOG_BODIES"
_MAX_LOC_TEXT = 64
_LOGGED_BODY_BYTES = 4096
_IGNORED_QUERY = frozenset({"code"})  # the Functions key travels as ?code=...
logger = logging.getLogger("servefn.http")
_NOTHING: Mapping[str, str] = MappingProxyType({})

Handler = Callable[[LoadedModel, Sequence[Any]], Any]
"""A user function ``(model, inputs) -> outputs``; may be ``async``."""


class ModelProvider(Protocol):
    """Where an endpoint gets its model: a :class:`~servefn.loaders.ModelSource` or a fixed one."""

    def get(self) -> LoadedModel: ...

    def info(self) -> dict[str, Any]: ...


class Request(NamedTuple):
    """An HTTP request as the endpoint needs it; ``headers`` is looked up with lower-case names
    (pass a case-insensitive mapping, or a dict with lower-case keys).

    A named tuple, not a frozen dataclass: as immutable, and built 2x faster on every request.
    """

    method: str
    body: bytes = b""
    headers: Mapping[str, str] = _NOTHING
    query: Mapping[str, str] = _NOTHING


class Response(NamedTuple):
    """An HTTP response: status, body bytes, media type and extra headers."""

    status: int
    body: bytes
    media_type: str = JSON
    headers: Mapping[str, str] = _NOTHING


@dataclass(slots=True)
class _Parsed:
    """A request body turned into rows: records (validated) or a matrix (CSV), and its shape."""

    shape: str  # "one" | "many" | "instances"
    records: list[Schema] | None = None
    matrix: np.ndarray | None = None
    loc: tuple[str | int, ...] = ()
    """Where the rows are in the request, for error locations (``("query",)`` for GET)."""
    row: Sequence[float] | None = None
    """One record's features as Python numbers, instead of a 1-row matrix (numeric schemas)."""


class Endpoint:
    """Validates requests against ``input_schema``, predicts, and encodes ``output_schema``.

    ``model`` is anything with ``get() -> LoadedModel`` and ``info()``. ``handler`` is an
    optional user function ``(model, inputs) -> outputs`` (inputs are validated input records;
    outputs are output records, dicts, or a mapping of output arrays); without it the model's
    predictor runs directly on the feature matrix, the fastest path.
    """

    def __init__(
        self,
        input_schema: type[Schema],
        output_schema: type[Schema],
        model: ModelProvider,
        *,
        handler: Handler | None = None,
        name: str = "predict",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = DEFAULT_MAX_BATCH,
        log_bodies: bool = False,
    ) -> None:
        self.input_schema = input_schema
        self.output_schema = output_schema
        self._input_layout = layout_of(input_schema)
        self._output_layout = layout_of(output_schema)
        self.model = model
        self.handler = handler
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self.log_bodies = log_bodies
        self._numeric_features = all(c.kind != "str" for c in layout_of(input_schema).features)
        self.is_async = handler is not None and inspect.iscoroutinefunction(handler)
        self._one = TypeAdapter(input_schema)
        batch: Any = Annotated[list[input_schema], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
        self._many: TypeAdapter[list[Schema]] = TypeAdapter(batch)
        names = {c.name for c in layout_of(input_schema).columns} | set(input_schema.model_fields)
        self._accepts_instances = "instances" not in names
        self._required_fields = sum(f.is_required() for f in input_schema.model_fields.values())
        self._keys_are_fields = _keys_are_fields(input_schema)
        wrapper = create_model(  # {"instances": [...]}
            "Instances", __config__=ConfigDict(extra="forbid"), instances=(batch, ...)
        )
        self._instances: TypeAdapter[Any] = TypeAdapter(wrapper)
        self._output_names = list(self._output_layout.output_names)
        self._output_columns = self._output_layout.columns
        self._checked_versions: set[str] = set()
        # The imported modules live as long as the worker: take them out of the cyclic
        # collector's scans, which otherwise slow a 10,000-row request by up to 2x. Not the
        # model: one frozen after it loads is never freed once a newer version replaces it.
        gc.freeze()

    # -- entry points -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request (sync handlers and the built-in predictor path)."""
        try:
            if len(request.body) > _LARGE_BODY:
                with _collector_paused():
                    response = self._answer(request)
            else:
                response = self._answer(request)
        except Problem as problem:
            response = _problem_response(problem)
        except Exception as exc:
            response = _problem_response(self._internal_error(exc))
        if self.log_bodies:
            self._log_exchange(request, response)
        return response

    def _answer(self, request: Request) -> Response:
        model, parsed = self._prepare(request)
        outputs = self._run_sync(model, parsed)
        return self._encode(request, model, parsed, outputs)

    async def handle_async(self, request: Request) -> Response:
        """Answer one request, awaiting an async handler; the first model load runs in a thread."""
        try:
            import asyncio  # only async apps pay for importing it

            model, parsed = await asyncio.to_thread(self._prepare, request)
            outputs = await self._run_async(model, parsed)
            response = self._encode(request, model, parsed, outputs)
        except Problem as problem:
            response = _problem_response(problem)
        except Exception as exc:
            response = _problem_response(self._internal_error(exc))
        if self.log_bodies:
            self._log_exchange(request, response)
        return response

    def model_in_memory(self) -> bool:
        """True when answering needs no I/O: the model is loaded and no refresh check is due.

        A host may then call :meth:`handle` on its event loop instead of a thread pool; the
        provider says so with an ``in_memory()`` method (providers without one never do).
        """
        in_memory = getattr(self.model, "in_memory", None)
        return in_memory is not None and bool(in_memory())

    def health(self) -> Response:
        """Model state for probes and people: 200 when a model is loaded, 503 otherwise."""
        info = self.model.info()
        ready = info.get("state") in ("ready", "stale") or info.get("version") is not None
        body = {"status": "ok" if ready else "unavailable", "endpoint": self.name, "model": info}
        return Response(200 if ready else 503, pydantic_core.to_json(body))

    # -- steps --------------------------------------------------------------------------------

    def _prepare(self, request: Request) -> tuple[LoadedModel, _Parsed]:
        method = request.method.upper()
        if method not in _ALLOWED_METHODS:
            shown = method if method in _KNOWN_METHODS else "This method"
            raise Problem(
                405,
                f"{shown} is not supported here; use GET with query parameters or POST a body",
                headers={"Allow": ", ".join(_ALLOWED_METHODS)},
            )
        parsed = self._parse_query(request) if method == "GET" else self._parse_body(request)
        model = self._model()
        return model, self._with_matrix(parsed, model.predictor.dtype)

    def _with_matrix(self, parsed: _Parsed, dtype: Any) -> _Parsed:
        """Build the feature matrix once and refuse values no float32 feature can hold.

        Larger values overflow inside a model into NaN or infinite scores, which are not JSON.
        With a handler, the matrix is built for this check only; text features are left to it.
        """
        if parsed.matrix is None and not self._numeric_features:
            return parsed
        records = parsed.records or []
        row = self._input_layout.feature_row(records[0]) if len(records) == 1 else None
        if row and parsed.matrix is None:  # one row of floats: checked without numpy
            total = sum(row)  # NaN when any value is NaN
            if total == total and min(row) >= -FEATURE_LIMIT and max(row) <= FEATURE_LIMIT:
                parsed.row = row
                return parsed
        try:
            matrix = (
                parsed.matrix
                if parsed.matrix is not None
                else self._input_layout.to_matrix(records, dtype)
            )
        except OverflowError:  # an integer too large for any float
            self._refuse_out_of_range(parsed, self._places_over_limit(records))
            raise
        within = bool(np.abs(matrix).max(initial=0.0) <= FEATURE_LIMIT)
        if not within:  # NaN compares False either way: caught
            bad = ~(np.abs(matrix) <= FEATURE_LIMIT)
            names = self._input_layout.feature_names
            places = [(int(row), names[int(col)]) for row, col in np.argwhere(bad)[:100]]
            self._refuse_out_of_range(parsed, places)
        parsed.matrix = matrix
        return parsed

    def _places_over_limit(self, records: list[Schema]) -> list[tuple[int, str]]:
        """(row, column) of each value beyond the limit, found one by one (an error path)."""
        found = []
        for row, record in enumerate(records):
            for column in self._input_layout.features:
                value = getattr(record, column.field)
                values = value if isinstance(value, list) else [value]
                if not all(abs(v) <= FEATURE_LIMIT for v in values):  # NaN too
                    found.append((row, column.name))
        return found[:100]

    def _refuse_out_of_range(self, parsed: _Parsed, places: list[tuple[int, str]]) -> None:
        if not places:
            return
        rows = parsed.shape != "one"
        raise Problem(
            422,
            f"{len(places)} value(s) out of the float32 range; see errors",
            errors=[
                {
                    "type": "out_of_range",
                    "loc": [*parsed.loc, *([row] if rows else []), name],
                    "msg": f"Input should be a finite number within +/-{FEATURE_LIMIT:.7g}",
                }
                for row, name in places
            ],
        )

    def _model(self) -> LoadedModel:
        try:
            model = self.model.get()
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
        declared = self._input_layout.feature_names
        found = layout_of(model.input_schema).feature_names
        if declared != found and self.handler is None:
            logger.error(
                "model %s expects features %s but endpoint %s declares %s",
                model.version,
                found,
                self.name,
                declared,
            )
            raise Problem(503, "the loaded model does not fit this endpoint's input schema")
        self._checked_versions.add(model.version)

    def _parse_body(self, request: Request) -> _Parsed:
        declared = request.headers.get("content-length") or ""
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        if len(request.body) > self.max_body_bytes:
            raise self._too_large()
        content_type = request.headers.get("content-type", "")
        if content_type == JSON:  # the common case, without parsing parameters
            return self._parse_json(request.body)
        media, params = _media_type(content_type)
        if media == JSON or media.endswith("+json"):
            return self._parse_json(request.body)
        if media == "text/csv":
            return self._parse_csv(request.body, header=params.get("header") == "present")
        raise Problem(
            415,
            "send the body as application/json (or text/csv by column index)"
            + ("; the Content-Type header is missing" if not media else ""),
        )

    def _too_large(self) -> Problem:
        return Problem(
            413,
            f"the body is too large; the limit is {self.max_body_bytes} bytes. Send fewer rows "
            "per request",
        )

    def _parse_json(self, body: bytes) -> _Parsed:
        """Parse and validate in one pass (pydantic-core), refusing duplicate keys.

        Bodies that are not an object or an array, and failed validations, are parsed again by
        jiter first, so that invalid JSON (400) is told apart from invalid fields (422).
        """
        start = _JSON_START.match(body)
        opening = body[start.end() : start.end() + 1] if start else b""
        wrapped = opening == b"{" and self._accepts_instances and bool(_INSTANCES.match(body))
        try:
            if opening == b"[":
                records = self._many.validate_json(body, by_name=False)
                self._refuse_duplicate_keys(body, records, 0)
                return _Parsed("many", records)
            if wrapped:
                instances = self._instances.validate_json(body, by_name=False).instances
                self._refuse_duplicate_keys(body, instances, 1)
                return _Parsed("instances", instances, loc=("instances",))
            if opening == b"{":
                record = self._one.validate_json(body, by_name=False)
                self._refuse_duplicate_keys(body, [record], 0)
                return _Parsed("one", [record])
        except ValidationError as exc:
            document = _parse_strictly(body)  # invalid JSON, duplicate keys: 400 before 422
            if opening == b"[" or wrapped:
                raise self._json_problem(exc, ("instances",) if wrapped else ()) from None
            if (
                self._accepts_instances
                and isinstance(document, dict)
                and set(document) == {"instances"}
            ):  # the key spelled with escapes ("\u0069nstances"), which the pattern misses
                records = self._validate_many(document["instances"], ("instances",))
                return _Parsed("instances", records, loc=("instances",))
            raise _validation_problem(exc, ()) from None
        document = _parse_strictly(body)
        raise Problem(
            422,
            f"the body is a JSON {_json_type(document)}; send an object, an array of objects or "
            '{"instances": [...]}',
            errors=[{"type": "model_type", "loc": [], "msg": "expected an object or an array"}],
        )

    def _refuse_duplicate_keys(
        self, body: bytes, records: Sequence[Schema], wrapper_keys: int
    ) -> None:
        """400 when an object repeats a key (JSON parsers keep the last value silently).

        Every key is followed by a colon, and each key set one field (schemas where that may
        not hold are always parsed): with no more colons than fields set there is no room for
        a repeat, and nothing else is checked. Otherwise (a
        repeat, a colon inside a string, or an ignored key) jiter parses the body and decides.
        """
        if not self._keys_are_fields:  # validators or alias paths: no key count to trust
            _parse_strictly(body)
            return
        required = self._required_fields
        colons = body.count(b":")
        if colons <= wrapper_keys + len(records) * required:  # each record set all required
            return
        if colons > wrapper_keys + sum(map(len, map(_FIELDS_SET, records))):
            _parse_strictly(body)

    def _validate_one(self, document: Any, prefix: tuple[str | int, ...]) -> Schema:
        try:
            return self._one.validate_python(document, by_name=False)
        except ValidationError as exc:
            raise _validation_problem(exc, prefix) from None

    def _validate_many(self, documents: Any, prefix: tuple[str | int, ...]) -> list[Schema]:
        try:
            records: list[Schema] = self._many.validate_python(documents, by_name=False)
        except ValidationError as exc:
            raise self._json_problem(exc, prefix) from None
        return records

    def _json_problem(self, exc: ValidationError, prefix: tuple[str | int, ...]) -> Problem:
        """413/422 for a batch too large/empty, else 422 with the field paths."""
        first = exc.errors(include_input=False, include_url=False)[0]
        whole = first["loc"] == prefix  # the batch itself, not one of its records
        if first["type"] == "too_long" and whole:
            return Problem(
                413,
                f"the batch has too many records; the limit is {self.max_batch}. "
                "Split it into smaller requests",
            )
        if first["type"] == "too_short" and whole:
            return Problem(
                422,
                "the batch is empty; send at least one record",
                errors=[{"type": "too_short", "loc": list(prefix), "msg": "no records"}],
            )
        return _validation_problem(exc, ())

    def _parse_csv(self, body: bytes, *, header: bool) -> _Parsed:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(400, "the CSV body is not valid UTF-8") from None
        try:
            rows = list(numbered_rows(text.splitlines(), header=header, source="body"))
            if len(rows) > self.max_batch:
                raise Problem(413, f"the CSV has {len(rows)} rows; the limit is {self.max_batch}")
            if not rows:
                raise Problem(422, "the CSV body has no rows; send at least one")
            table = parse_rows(rows, self._input_layout.columns, source="body", quote_values=False)
        except DataFormatError as exc:
            loc: list[str | int] = ["line", exc.line]
            if exc.column is not None:
                loc += ["column", exc.column]
            message = str(exc).split(": ", 1)[-1]
            raise Problem(
                422,
                "the CSV body does not match the input columns",
                errors=[{"type": "csv", "loc": loc, "msg": message}],
            ) from None
        except SchemaError as exc:
            raise Problem(422, str(exc)) from None
        if self.handler is None:
            with np.errstate(over="ignore"):  # an overflow is inf, refused as out of range
                matrix = self._input_layout.table_to_matrix(table)
            return _Parsed("many", matrix=matrix)
        columns = list(table)
        rows_as_dicts = [
            dict(zip(columns, values, strict=True)) for values in zip(*table.values(), strict=True)
        ]
        return _Parsed("many", self._validate_many(_plain(rows_as_dicts), ()))

    def _parse_query(self, request: Request) -> _Parsed:
        document: dict[str, Any] = {}
        vectors = {c.name for c in self._input_layout.columns if c.kind == "vector"}
        for key, value in request.query.items():
            if key in _IGNORED_QUERY:
                continue
            document[key] = value.split(",") if key in vectors else value
        try:
            record = self._one.validate_python(document, by_name=False, strict=False)
        except ValidationError as exc:
            raise _validation_problem(exc, ("query",)) from None
        return _Parsed("one", [record], loc=("query",))

    def _run_sync(self, model: LoadedModel, parsed: _Parsed) -> Any:
        if self.handler is None:
            return self._predict(model, parsed)
        result = self.handler(model, self._records(parsed))
        if type(result) is not Predictions and inspect.isawaitable(result):
            raise ServefnError("the handler returned an awaitable; declare it with async def")
        return result

    async def _run_async(self, model: LoadedModel, parsed: _Parsed) -> Any:
        if self.handler is None:
            result: Any = self._predict(model, parsed)
        else:
            result = self.handler(model, self._records(parsed))
        return await result if inspect.isawaitable(result) else result

    def _records(self, parsed: _Parsed) -> Records:
        assert parsed.records is not None
        return Records(parsed.records, parsed.matrix, parsed.row)

    def _predict(self, model: LoadedModel, parsed: _Parsed) -> Mapping[str, Any]:
        if parsed.row is not None:
            return model.predictor.predict_row(parsed.row)
        dtype = model.predictor.dtype
        matrix = (
            parsed.matrix
            if parsed.matrix is not None
            else self._input_layout.to_matrix(self._records(parsed), dtype)
        )
        return model.predictor.predict(matrix)

    def _encode(
        self, request: Request, model: LoadedModel, parsed: _Parsed, outputs: Any
    ) -> Response:
        rows = self._output_rows(outputs)
        expected = len(parsed.records) if parsed.records is not None else len(parsed.matrix)  # type: ignore[arg-type]
        if len(rows) != expected:
            raise ServefnError(f"the handler returned {len(rows)} outputs for {expected} inputs")
        headers = {"X-Model-Version": model.version}
        accept = request.headers.get("accept")
        if accept and "text/plain" in accept and _wants_text(accept):
            first = self._output_names[0]
            text = "\n".join(_plain_text(r[first]) for r in rows)
            return Response(200, text.encode(), "text/plain; charset=utf-8", headers)
        document: Any
        if parsed.shape == "one":
            document = rows[0]
        elif parsed.shape == "instances":
            document = {"predictions": rows}
        else:
            document = rows
        return Response(200, pydantic_core.to_json(document), JSON, headers)

    def _output_rows(self, outputs: Any) -> list[dict[str, Any]]:
        """Normalise what a predictor or handler returned to JSON-ready output dicts."""
        if isinstance(outputs, Predictions):
            outputs = outputs.arrays
        if isinstance(outputs, Mapping) and not self._one_record(outputs):  # arrays by column
            _check_finite(outputs)
            return self._output_layout.records_from_arrays(outputs)
        if isinstance(outputs, (Schema, Mapping)):
            outputs = [outputs]
        if not isinstance(outputs, Sequence):
            raise ServefnError(
                f"the handler returned {type(outputs).__name__}; return output records, dicts "
                "or a mapping of output arrays"
            )
        rows = []
        for item in outputs:
            if isinstance(item, Schema) and not isinstance(item, self.output_schema):
                item = item.model_dump(by_alias=True)  # e.g. the model's own copy of the schema
            record = (
                item
                if isinstance(item, self.output_schema)
                else self.output_schema.model_validate(item, strict=False)
            )
            rows.append(record.model_dump(mode="json", by_alias=True))
        return rows

    def _one_record(self, outputs: Mapping[str, Any]) -> bool:
        """True when a mapping a handler returned is one output record rather than output
        arrays, judged by the first output column it has: a single value of that column (a
        scalar, or a flat list for a vector column) means one record. Other keys are ignored."""
        for column in self._output_columns:
            if column.name not in outputs:
                continue
            value = outputs[column.name]
            if column.kind != "vector":
                return value is None or isinstance(value, _SCALARS)
            if isinstance(value, np.ndarray):
                return value.ndim == 1
            return (
                isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], _SCALARS)
            )
        return False

    def _internal_error(self, exc: Exception) -> Problem:
        """A 500 whose id is in the log with the traceback. Exception messages can hold request
        values, so they are logged only with ``log_bodies``."""
        error_id = uuid.uuid4().hex[:12]
        if self.log_bodies:
            logger.error("prediction failed in %s (error id %s)", self.name, error_id, exc_info=exc)
        else:
            logger.error(
                "prediction failed in %s (error id %s): %s\n%s(exception messages are not logged;"
                " set %s=1 to log them and request bodies)",
                self.name,
                error_id,
                _exception_types(exc),
                "".join(traceback.format_tb(exc.__traceback__)),
                _LOG_BODIES_SETTING,
            )
        return Problem(
            500,
            f"the prediction failed; the error id {error_id} is in the server log",
            error_id=error_id,
        )

    def _log_exchange(self, request: Request, response: Response) -> None:
        """A debugging aid, with ``log_bodies`` only: the request body next to the answer."""
        logger.debug(
            "%s %s -> %d; request body (%d bytes, first %d shown): %r",
            self.name,
            request.method,
            response.status,
            len(request.body),
            _LOGGED_BODY_BYTES,
            request.body[:_LOGGED_BODY_BYTES],
        )


def log_bodies_from_environment() -> bool:
    """True when the app setting ``SERVEFN_LOG_BODIES`` is 1, true or yes (debugging only)."""
    return os.environ.get(_LOG_BODIES_SETTING, "").strip().lower() in ("1", "true", "yes")


# -- helpers ----------------------------------------------------------------------------------

_LARGE_BODY = 64 * 1024
_JSON_START = re.compile(rb"[ \t\r\n]*")
_INSTANCES = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"instances"[ \t\r\n]*:')
_FIELDS_SET = operator.attrgetter("__pydantic_fields_set__")


def _parse_strictly(body: bytes) -> Any:
    """jiter's parse, refusing duplicate keys: a 400 naming the problem and its place."""
    try:
        return jiter.from_json(body, catch_duplicate_keys=True)
    except ValueError as exc:
        raise Problem(400, f"the body is not valid JSON: {_json_reason(exc)}") from None


_paused = 0
_resume = True
_paused_lock = threading.Lock()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large batch is handled.

    A 10,000-row request allocates tens of thousands of acyclic objects (records, dicts, floats)
    and would trigger collections that find nothing to collect but cost up to a third of the
    request. Reference counting still frees everything; the collector resumes when the last
    concurrent large request ends.
    """
    global _paused, _resume
    with _paused_lock:
        _paused += 1
        if _paused == 1:
            _resume = gc.isenabled()  # an app that turned the collector off keeps it off
            gc.disable()
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()


def _problem_response(problem: Problem) -> Response:
    return Response(problem.status, problem.to_bytes(), PROBLEM_MEDIA_TYPE, problem.headers)


def _validation_problem(exc: ValidationError, prefix: tuple[str | int, ...]) -> Problem:
    errors = [
        {"type": e["type"], "loc": _loc((*prefix, *e["loc"])), "msg": e["msg"]}
        for e in exc.errors(include_input=False, include_url=False, include_context=False)
    ]
    count = len(errors)
    return Problem(
        422,
        f"{count} field{'s' if count != 1 else ''} did not validate; see errors",
        errors=errors[:100],
    )


def _loc(parts: Sequence[str | int]) -> list[str | int]:
    """A field path with long client-chosen names (unknown keys) cut short: no bulk echo."""
    return [
        p if isinstance(p, int) or len(p) <= _MAX_LOC_TEXT else p[: _MAX_LOC_TEXT - 3] + "..."
        for p in parts
    ]


_SCALARS = (str, bytes, int, float, np.generic)


def _keys_are_fields(schema: type[Schema]) -> bool:
    """True when each JSON key can set at most one field and every field set came from its own
    key: no model validators, and aliases that are plain names (not paths or choices)."""
    decorators = schema.__pydantic_decorators__
    if decorators.model_validators or decorators.root_validators:
        return False
    return all(
        info.validation_alias is None or isinstance(info.validation_alias, str)
        for info in schema.model_fields.values()
    )


def _check_finite(outputs: Mapping[str, Any]) -> None:
    """A NaN or infinite model output is a model failure (500), never a JSON ``NaN``."""
    for name, values in outputs.items():
        if isinstance(values, list) and len(values) == 1:  # one row as Python values
            finite = _finite_values(values[0])
        else:
            array = np.asarray(values)
            finite = array.dtype.kind != "f" or bool(np.isfinite(array).all())
        if not finite:
            raise ServefnError(f"the model returned non-finite {name} values")


def _finite_values(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        try:  # a finite sum means finite items; otherwise look at each (overflow, text...)
            if math.isfinite(sum(value)):
                return True
        except (TypeError, OverflowError):
            pass
        return all(_finite_values(v) for v in value)
    return True


def _exception_types(exc: BaseException) -> str:
    """``"KeyError <- ValueError"``: an exception chain by type only."""
    types: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(types) < 10:
        types.append(type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(types)


def _json_reason(exc: ValueError) -> str:
    """jiter names the problem and its position; a duplicate key's name is left out."""
    message = str(exc).split("\n", 1)[0]
    if message.startswith("Detected duplicate key"):
        return "an object has a duplicate key at line " + message.rpartition(" at line ")[2]
    return message[:200]


def _media_type(header: str) -> tuple[str, dict[str, str]]:
    media, _, rest = header.partition(";")
    params = {}
    for part in rest.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip().strip('"').lower()
    return media.strip().lower(), params


def _wants_text(accept: str) -> bool:
    """True when ``Accept`` prefers text/plain over JSON (q-values honoured, JSON by default)."""
    if "text/plain" not in accept:
        return False
    best: dict[str, float] = {}
    for item in accept.split(","):
        media, params = _media_type(item)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        best[media] = max(best.get(media, 0.0), q)
    text = best.get("text/plain", 0.0)
    json_q = max(best.get(JSON, 0.0), best.get("application/*", 0.0), best.get("*/*", 0.0))
    return (text > 0 and text > json_q) or (text > 0 and text == json_q and _first(accept))


def _first(accept: str) -> bool:
    return accept.strip().lower().startswith("text/plain")


def _plain_text(value: Any) -> str:
    return value if isinstance(value, str) else pydantic_core.to_json(value).decode()


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """numpy scalars from a parsed CSV table -> Python values pydantic validates strictly."""
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in rows]


def _json_type(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
