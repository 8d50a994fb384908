"""Read input rows in chunks: CSV by the schema's column indices, JSONL by wire name.

Records end only at CR, LF or CRLF outside quotes in CSV, at LF (or CRLF) in JSON Lines: the
stream is opened with ``newline=""``, never split with ``str.splitlines()``. Each chunk holds
the feature matrix of its good rows, their line numbers, the values of the
``keep`` fields, and the bad rows found in it. A bad row is one that does not fit the schema:
unparseable CSV, a missing or malformed value, NaN or infinity, a value outside a column's
bounds, invalid JSON, or a JSON object that fails validation. With ``on_error="fail"`` the
first one raises :class:`~servefn.errors.DataFormatError`.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import pydantic_core
from numpy.typing import NDArray
from pydantic import ValidationError

from servefn.batch.options import BatchOptions
from servefn.batch.report import BadRow
from servefn.errors import DataFormatError
from servefn.schema import layout_of
from servefn.schema._delimited import is_blank, parse_rows
from servefn.schema._schema import Column, Schema

__all__ = ["Chunk", "read_chunks"]

_Row = tuple[int, list[str]]
_JSON_WS = " \t\r\n"  # a line of nothing else is blank; any other character makes it a record
_BOUNDS: tuple[tuple[str, Callable[[Any, Any], Any], str], ...] = (
    ("ge", np.less, ">="),
    ("gt", np.less_equal, ">"),
    ("le", np.greater, "<="),
    ("lt", np.greater_equal, "<"),
)


@dataclass(frozen=True)
class Chunk:
    """Up to ``chunk_size`` input rows: the good ones as a matrix, the bad ones reported."""

    lines: list[int]
    matrix: NDArray[np.floating[Any]]
    kept: dict[str, Any]
    """Values of the ``keep`` fields, one per good row (a list or a numpy array)."""
    bad: list[BadRow]

    @property
    def size(self) -> int:
        """Rows read, good and bad."""
        return len(self.lines) + len(self.bad)


def read_chunks(
    stream: TextIO,
    schema: type[Schema],
    *,
    source: str,
    options: BatchOptions,
    sep: str,
    dtype: type[np.floating[Any]] = np.float32,
) -> Iterator[Chunk]:
    """Chunks of ``stream`` in the resolved ``options.input_format``, matrices in ``dtype``."""
    if options.input_format == "jsonl":
        return _jsonl_chunks(stream, schema, source, options, dtype)
    return _csv_chunks(stream, schema, source, options, sep, dtype)


# -- CSV --------------------------------------------------------------------------------------


def _csv_chunks(
    stream: TextIO,
    schema: type[Schema],
    source: str,
    options: BatchOptions,
    sep: str,
    dtype: type[np.floating[Any]],
) -> Iterator[Chunk]:
    columns = layout_of(schema).columns
    fail = options.on_error == "fail"
    records = _csv_records(stream, sep=sep, header=options.header, source=source)
    while batch := list(itertools.islice(records, options.chunk_size)):
        rows = [r for r in batch if not isinstance(r, BadRow)]
        broken = [r for r in batch if isinstance(r, BadRow)]
        table, rows, unparsed = _parse(rows, columns, source)
        good, invalid = _check_values(table, rows, columns, source)
        bad = sorted([*broken, *unparsed, *invalid], key=lambda b: b.line)
        if bad and fail:
            raise bad[0].to_error()
        if invalid:
            table = {name: values[good] for name, values in table.items()}
            rows = [rows[i] for i in np.flatnonzero(good)]
        yield Chunk(
            lines=[line for line, _ in rows],
            matrix=layout_of(schema).table_to_matrix(table, dtype),
            kept={k: table[k] for k in options.keep},
            bad=bad,
        )


def _csv_records(stream: TextIO, *, sep: str, header: bool, source: str) -> Iterator[_Row | BadRow]:
    """``(line, fields)`` per non-blank record, or a :class:`BadRow` where the CSV is broken.

    Like :func:`servefn.schema._delimited.numbered_rows`, but it goes on after a malformed record so
    that bad rows can be skipped.
    """
    reader = csv.reader(stream, delimiter=sep, strict=True)
    skip_header = header
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRow(source, reader.line_num, f"not valid delimited text ({exc})")
            continue
        if is_blank(fields):
            continue
        if skip_header:
            skip_header = False
            continue
        yield reader.line_num, fields


def _parse(
    rows: list[_Row], columns: Sequence[Column], source: str
) -> tuple[dict[str, np.ndarray], list[_Row], list[BadRow]]:
    """Typed columns of ``rows``; when some do not parse, row by row to find them all.

    ``parse_rows`` stops at the first bad cell column by column, which is not always the
    first bad line: the row-by-row pass finds every bad row in line order.
    """
    try:
        return parse_rows(rows, columns, source=source), rows, []
    except DataFormatError:
        pass
    good: list[_Row] = []
    bad: list[BadRow] = []
    for row in rows:
        try:
            parse_rows([row], columns, source=source)
        except DataFormatError as exc:
            bad.append(BadRow.from_error(exc))
        else:
            good.append(row)
    return parse_rows(good, columns, source=source), good, bad


def _check_values(
    table: dict[str, np.ndarray], rows: list[_Row], columns: Sequence[Column], source: str
) -> tuple[NDArray[np.bool_], list[BadRow]]:
    """Rows whose numbers are NaN, infinite or out of bounds (what JSON validation refuses)."""
    ok = np.ones(len(rows), dtype=bool)
    reasons: dict[int, BadRow] = {}
    for c in columns:
        values = table.get(c.name)
        if values is None or c.kind not in ("float", "int", "vector") or values.dtype == object:
            continue
        problems: list[tuple[NDArray[np.bool_], str]] = []
        if c.kind != "int" and not c.nullable:
            finite = np.isfinite(values)
            problems.append(
                (
                    ~(finite if finite.ndim == 1 else finite.all(axis=1)),
                    "NaN or infinity is not allowed",
                )
            )
        if c.kind != "vector":
            for key, outside, symbol in _BOUNDS:
                if key in c.constraints:
                    bound = c.constraints[key]
                    problems.append((outside(values, bound), f"the value must be {symbol} {bound}"))
        for mask, reason in problems:
            for i in np.flatnonzero(mask & ok):
                reasons[int(i)] = BadRow(source, rows[i][0], f"{c.name}: {reason}", c.index)
            ok &= ~mask
    return ok, [reasons[i] for i in sorted(reasons)]


# -- JSONL ------------------------------------------------------------------------------------


def _jsonl_chunks(
    stream: TextIO,
    schema: type[Schema],
    source: str,
    options: BatchOptions,
    dtype: type[np.floating[Any]],
) -> Iterator[Chunk]:
    names = {c.name for c in layout_of(schema).columns}
    outside = [k for k in options.keep if k not in names]  # e.g. an id: removed before validation
    fail = options.on_error == "fail"
    lines = ((n, text) for n, text in enumerate(_lf_lines(stream), start=1) if text.strip(_JSON_WS))
    while batch := list(itertools.islice(lines, options.chunk_size)):
        numbers: list[int] = []
        records: list[Schema] = []
        kept: dict[str, list[Any]] = {k: [] for k in options.keep}
        bad: list[BadRow] = []
        for number, text in batch:
            parsed = _parse_object(text, schema, outside)
            if isinstance(parsed, str):
                row = BadRow(source, number, parsed)
                if fail:
                    raise row.to_error()
                bad.append(row)
                continue
            record, values = parsed
            numbers.append(number)
            records.append(record)
            for k in options.keep:
                kept[k].append(values.get(k))
        matrix = (
            layout_of(schema).to_matrix(records, dtype)
            if records
            else np.empty((0, layout_of(schema).n_features), dtype=dtype)
        )
        yield Chunk(lines=numbers, matrix=matrix, kept=dict(kept), bad=bad)


def _lf_lines(stream: TextIO) -> Iterator[str]:
    """The lines of a JSON Lines stream: ending at LF (or CRLF) only. The stream, opened with
    ``newline=""``, also ends a line at a lone CR, which in JSON is whitespace inside a line."""
    pending = ""
    for piece in stream:
        if piece.endswith("\r"):
            pending += piece
            continue
        yield pending + piece if pending else piece
        pending = ""
    if pending:
        yield pending


def _parse_object(
    text: str, schema: type[Schema], outside: list[str]
) -> tuple[Schema, dict[str, Any]] | str:
    """A validated record and the raw object, or why the line is bad (never its values)."""
    try:
        document = pydantic_core.from_json(text, allow_inf_nan=False)
    except ValueError as exc:
        return f"not valid JSON ({str(exc).splitlines()[0][:200]})"
    if not isinstance(document, dict):
        return f"expected a JSON object, found {type(document).__name__}"
    fields = {k: v for k, v in document.items() if k not in outside} if outside else document
    try:
        return schema.model_validate(fields, by_name=False), document
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "the object"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{where}: {first['msg']}{more}"
