"""Request bodies and query strings -> validated input records (or, for CSV, a feature matrix).

The contract's input half (DESIGN.md "HTTP contract"): one JSON object, an array, or
``{"instances": [...]}``; ``text/csv`` by the schema's column indices; GET query parameters.
Body and batch limits (413), media types (415), invalid JSON and duplicate keys (400) and schema
violations (422, with field paths and never the client's values) are all decided here.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import jiter
import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, create_model

from servefn.errors import DataFormatError, SchemaError
from servefn.http._messages import JSON, Request, media_type
from servefn.http._problems import Problem
from servefn.schema import layout_of
from servefn.schema._delimited import numbered_rows, parse_rows
from servefn.schema._integers import number_from_text
from servefn.schema._schema import Schema

__all__ = ["BodyParser", "Parsed", "body_too_large", "declared_over"]

_IGNORED_QUERY = frozenset({"code"})  # the Functions key travels as ?code=...
_MAX_LOC_TEXT = 64
_JSON_START = re.compile(rb"[ \t\r\n]*")
_INSTANCES = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"instances"[ \t\r\n]*:')
_FIELDS_SET = operator.attrgetter("__pydantic_fields_set__")
_MAX_LENGTH_DIGITS = 18  # more digits than any body could have: no int() of a huge string


def declared_over(content_length: str, limit: int) -> bool:
    """True when a Content-Length value declares more than ``limit`` bytes."""
    declared = content_length.strip()
    # isascii: str.isdigit() also accepts digits such as '²' that int() refuses
    if not (declared.isascii() and declared.isdigit()):
        return False
    if len(declared) > _MAX_LENGTH_DIGITS:
        declared = declared.lstrip("0") or "0"
        if len(declared) > _MAX_LENGTH_DIGITS:
            return True
    return int(declared) > limit


def body_too_large(limit: int, *, rows: bool = True) -> Problem:
    """The 413 for a body over ``limit`` bytes (``rows``: advise sending fewer rows)."""
    return Problem(
        413,
        f"the body is too large; the limit is {limit} bytes"
        + (". Send fewer rows per request" if rows else ""),
    )


@dataclass(slots=True)
class Parsed:
    """A request body turned into rows: records (validated) or a matrix (CSV), and its shape."""

    shape: str  # "one" | "many" | "instances"
    records: list[Schema] | None = None
    matrix: np.ndarray | None = None
    loc: tuple[str | int, ...] = ()
    """Where the rows are in the request, for error locations (``("query",)`` for GET)."""
    row: Sequence[float] | None = None
    """One record's features as Python numbers, instead of a 1-row matrix (numeric schemas)."""

    @property
    def size(self) -> int:
        """How many rows the request sent."""
        return len(self.records) if self.records is not None else len(self.matrix)  # type: ignore[arg-type]


class BodyParser:
    """Parses and validates what one request sends, against ``input_schema``.

    ``csv_matrix``: CSV bodies become a feature matrix directly (the built-in predictor path)
    rather than validated records (what a custom handler receives).
    """

    def __init__(
        self, input_schema: type[Schema], *, max_body_bytes: int, max_batch: int, csv_matrix: bool
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch
        self._csv_matrix = csv_matrix
        self._layout = layout_of(input_schema)
        self._nullable_floats = frozenset(
            c.name for c in self._layout.columns if c.nullable and c.kind == "float"
        )
        self._one = TypeAdapter(input_schema)
        batch: Any = Annotated[list[input_schema], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
        self._many: TypeAdapter[list[Schema]] = TypeAdapter(batch)
        wrapper = create_model(  # {"instances": [...]}
            "Instances", __config__=ConfigDict(extra="forbid"), instances=(batch, ...)
        )
        self._instances: TypeAdapter[Any] = TypeAdapter(wrapper)
        names = {c.name for c in self._layout.columns} | set(input_schema.model_fields)
        self._accepts_instances = "instances" not in names
        self._required_fields = sum(f.is_required() for f in input_schema.model_fields.values())
        self._keys_are_fields = _keys_are_fields(input_schema)
        self._vectors = frozenset(c.name for c in self._layout.columns if c.kind == "vector")
        self._integers = frozenset(c.name for c in self._layout.columns if c.kind == "int")
        self._nullable = frozenset(c.name for c in self._layout.columns if c.nullable)

    def parse_body(self, request: Request) -> Parsed:
        """A POST body, by its Content-Type, within the size limits."""
        declared = request.headers.get("content-length")
        if declared and declared_over(declared, self.max_body_bytes):
            raise body_too_large(self.max_body_bytes)
        if len(request.body) > self.max_body_bytes:
            raise body_too_large(self.max_body_bytes)
        content_type = request.headers.get("content-type", "")
        if content_type == JSON:  # the common case, without parsing parameters
            return self._parse_json(request.body)
        media, params = media_type(content_type)
        if media == JSON or media.endswith("+json"):
            return self._parse_json(request.body)
        if media == "text/csv":
            return self._parse_csv(request.body, header=params.get("header") == "present")
        raise Problem(
            415,
            "send the body as application/json (or text/csv by column index)"
            + ("; the Content-Type header is missing" if not media else ""),
        )

    def parse_query(self, request: Request) -> Parsed:
        """GET query parameters as one record (vector columns comma-separated)."""
        document: dict[str, Any] = {}
        vectors, integers = self._vectors, self._integers
        for key, value in request.query.items():
            if key in _IGNORED_QUERY:
                continue
            if value == "" and key in self._nullable:  # "?BloodPressure=": missing, as in CSV
                document[key] = None
            elif key in vectors:
                document[key] = value.split(",")
            elif key in integers:  # "100.0" as JSON's 100.0: the one integer rule
                document[key] = number_from_text(value)
            else:
                document[key] = value
        try:
            record = self._one.validate_python(document, by_name=False, strict=False)
        except ValidationError as exc:
            raise _validation_problem(exc, ("query",)) from None
        return Parsed("one", [record], loc=("query",))

    def _parse_json(self, body: bytes) -> Parsed:
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
                return Parsed("many", records)
            if wrapped:
                instances = self._instances.validate_json(body, by_name=False).instances
                self._refuse_duplicate_keys(body, instances, 1)
                return Parsed("instances", instances, loc=("instances",))
            if opening == b"{":
                record = self._one.validate_json(body, by_name=False)
                self._refuse_duplicate_keys(body, [record], 0)
                return Parsed("one", [record])
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
                return Parsed("instances", records, loc=("instances",))
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

    def _parse_csv(self, body: bytes, *, header: bool) -> Parsed:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(400, "the CSV body is not valid UTF-8") from None
        try:
            rows = list(numbered_rows(text, header=header, source="body"))  # CR/LF/CRLF only
            if len(rows) > self.max_batch:
                raise Problem(413, f"the CSV has {len(rows)} rows; the limit is {self.max_batch}")
            if not rows:
                raise Problem(422, "the CSV body has no rows; send at least one")
            table = parse_rows(rows, self._layout.columns, source="body", quote_values=False)
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
        if self._csv_matrix:
            with np.errstate(over="ignore"):  # an overflow is inf, refused as out of range
                matrix = self._layout.table_to_matrix(table)
            return Parsed("many", matrix=matrix)
        columns = list(table)
        rows_as_dicts = [
            dict(zip(columns, values, strict=True)) for values in zip(*table.values(), strict=True)
        ]
        return Parsed("many", self._validate_many(_plain(rows_as_dicts, self._nullable_floats), ()))


def _parse_strictly(body: bytes) -> Any:
    """jiter's parse, refusing duplicate keys: a 400 naming the problem and its place."""
    try:
        return jiter.from_json(body, catch_duplicate_keys=True)
    except ValueError as exc:
        raise Problem(400, f"the body is not valid JSON: {_json_reason(exc)}") from None


def _json_reason(exc: ValueError) -> str:
    """jiter names the problem and its position; a duplicate key's name is left out."""
    message = str(exc).split("\n", 1)[0]
    if message.startswith("Detected duplicate key"):
        return "an object has a duplicate key at line " + message.rpartition(" at line ")[2]
    return message[:200]


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


def _plain(rows: list[dict[str, Any]], nullable_floats: frozenset[str]) -> list[dict[str, Any]]:
    """numpy scalars from a parsed CSV table -> Python values pydantic validates strictly; an
    empty field of an optional float column (NaN in the table) is None, as it is in JSON."""
    return [{k: _python_value(k, v, nullable_floats) for k, v in r.items()} for r in rows]


def _python_value(name: str, value: Any, nullable_floats: frozenset[str]) -> Any:
    if not isinstance(value, np.generic):
        return value
    plain = value.item()
    if name in nullable_floats and plain != plain:  # NaN: the field was empty
        return None
    return plain


def _json_type(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
