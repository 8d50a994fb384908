"""Read delimited text into typed numpy columns by index (what ML.NET's TextLoader does).

Blank lines are skipped, quoting follows the csv module, and every malformed value is an error
that names the file, the line and the (0-based) column: nothing is coerced silently.

Records end only at CR, LF or CRLF outside quotes (RFC 4180), never at the other characters
``str.splitlines`` breaks at (VT, FF, the separators 0x1C-0x1E, NEL, U+2028, U+2029): text is
read as ``open(..., newline="")`` reads it. Such a character is part of its field: kept in a
``str`` column, refused in a number or bool column, where only spaces and tabs may surround
the value (``float()`` would skip any Unicode whitespace).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from os import PathLike, fspath
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from servefn.errors import DataFormatError, SchemaError
from servefn.schema._categories import listed
from servefn.schema._integers import int_from_text

if TYPE_CHECKING:
    from servefn.schema._schema import Column, Schema

__all__ = ["is_blank", "numbered_rows", "parse_rows", "read_columns", "read_delimited"]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_BLANK = " \t"
"""What may surround a number or a bool in a field."""
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def read_delimited(
    schema: type[Schema],
    path: str | PathLike[str],
    *,
    sep: str = ",",
    header: bool = False,
    encoding: str = "utf-8",
) -> dict[str, np.ndarray]:
    """Read a delimited text file into typed numpy columns by index (ML.NET's TextLoader).

    One array per column of ``schema`` that has an ``index``, keyed by wire name. Blank lines are
    skipped; a malformed line raises :class:`~servefn.errors.DataFormatError` naming the file,
    line and column. Nothing is coerced silently.
    """
    from servefn.schema._layout import layout_of

    return read_columns(path, layout_of(schema).columns, sep=sep, header=header, encoding=encoding)


def read_columns(
    path: str | PathLike[str],
    columns: Sequence[Column],
    *,
    sep: str = ",",
    header: bool = False,
    encoding: str = "utf-8",
) -> dict[str, np.ndarray]:
    """Read ``path`` into one array per indexed column, keyed by the column's wire name."""
    name = fspath(path)
    with Path(name).open(encoding=encoding, newline="") as fh:
        rows = numbered_rows(fh, sep=sep, header=header, source=name)
        return parse_rows(rows, columns, source=name)


def numbered_rows(
    lines: str | Iterable[str], *, sep: str = ",", header: bool = False, source: str = "<text>"
) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` for each non-blank record, after an optional header line.

    ``lines`` is the whole text, or its lines with their line endings as a file opened with
    ``newline=""`` gives them (never ``str.splitlines()``, which breaks at more characters).
    """
    if isinstance(lines, str):
        lines = io.StringIO(lines, newline="")  # lines end at CR, LF or CRLF only
    reader = csv.reader(lines, delimiter=sep, strict=True)
    skip_header = header
    try:
        for fields in reader:
            if is_blank(fields):
                continue
            if skip_header:
                skip_header = False
                continue
            yield reader.line_num, fields
    except csv.Error as exc:
        raise DataFormatError(
            f"not valid delimited text ({exc})", path=source, line=reader.line_num
        ) from exc


def is_blank(fields: list[str]) -> bool:
    """True for a record of nothing but spaces and tabs: a blank line, skipped. (Other
    whitespace, such as a vertical tab, is a value: the record is read and refused.)"""
    return not fields or (not fields[0].strip(_BLANK) and all(not f.strip(_BLANK) for f in fields))


def parse_rows(
    rows: Iterable[tuple[int, list[str]]],
    columns: Sequence[Column],
    *,
    source: str,
    quote_values: bool = True,
) -> dict[str, np.ndarray]:
    """Typed columns from ``(line number, fields)`` pairs; ``source`` names the input in errors.

    ``quote_values=False`` keeps offending values out of error messages (for client requests).
    """
    indexed = [c for c in columns if c.index is not None]
    unindexed = [c.name for c in columns if c.index is None and c.required]
    if unindexed:
        raise SchemaError(
            f"columns {unindexed} have no index, so they cannot be read from {source}; "
            "declare them with column(<index>)"
        )
    required = [c for c in indexed if c.required]
    width = max((c.end if c.end is not None else 0) for c in required) + 1 if required else 0
    numbers: list[int] = []
    cells: dict[str, list[Any]] = {c.name: [] for c in indexed}
    for line, fields in rows:
        if len(fields) < width:
            raise DataFormatError(
                f"expected at least {width} fields separated by the delimiter, found {len(fields)}",
                path=source,
                line=line,
            )
        numbers.append(line)
        for c in indexed:
            assert c.index is not None and c.end is not None
            if c.end >= len(fields):  # an optional trailing column that this line leaves out
                cell: Any = "" if c.kind != "vector" else [""] * c.size
            else:
                cell = fields[c.index] if c.kind != "vector" else fields[c.index : c.end + 1]
            cells[c.name].append(cell)
    describe = _describe if quote_values else _anonymous
    return {c.name: _convert(c, cells[c.name], numbers, source, describe) for c in indexed}


def _convert(
    col: Column, raw: list[Any], lines: list[int], source: str, describe: Callable[[str], str]
) -> np.ndarray:
    if col.kind in ("float", "vector"):
        return _floats(col, raw, lines, source, describe)
    if col.kind == "str":
        values = [v if v != "" else None for v in raw]
        _check_missing(col, values, lines, source)
        _check_categories(col, values, lines, source)
        return np.array(values, dtype=object)
    parse = int_from_text if col.kind == "int" else _parse_bool
    out: list[Any] = []
    for value, line in zip(raw, lines, strict=True):
        text = value.strip(_BLANK)
        if text == "" and col.nullable:
            out.append(None)
            continue
        try:
            out.append(parse(_plain(text)))
        except ValueError:
            raise DataFormatError(
                f"{col.name}: {describe(text)} is not a valid {col.kind}",
                path=source,
                line=line,
                column=col.index,
            ) from None
    _check_missing(col, out, lines, source)
    _check_categories(col, out, lines, source)
    dtype = object if any(v is None for v in out) else (np.int64 if col.kind == "int" else np.bool_)
    return np.array(out, dtype=dtype)


def _floats(
    col: Column, raw: list[Any], lines: list[int], source: str, describe: Callable[[str], str]
) -> np.ndarray:
    """Parse a float or vector column; fast path through numpy, precise error on failure."""
    if not raw:
        return np.empty((0, col.size) if col.kind == "vector" else (0,), dtype=np.float64)
    try:
        parsed = np.array(raw, dtype=np.float64)
    except ValueError:
        pass  # find the offending cell below, to name it
    else:
        if _all_plain(raw, col.kind == "vector"):
            return parsed
    out = np.empty((len(raw), col.size), dtype=np.float64)
    for row, (cells, line) in enumerate(zip(raw, lines, strict=True)):
        for offset, text in enumerate(cells if col.kind == "vector" else [cells]):
            stripped = text.strip(_BLANK)
            if stripped == "" and col.nullable:
                out[row, offset] = np.nan
                continue
            try:
                out[row, offset] = float(_plain(stripped))
            except ValueError:
                what = "a missing value" if stripped == "" else describe(stripped)
                raise DataFormatError(
                    f"{col.name}: {what} is not a number",
                    path=source,
                    line=line,
                    column=(col.index or 0) + offset,
                ) from None
    return out if col.kind == "vector" else out[:, 0]


def _check_missing(col: Column, values: list[Any], lines: list[int], source: str) -> None:
    if col.nullable:
        return
    for value, line in zip(values, lines, strict=True):
        if value is None:
            raise DataFormatError(
                f"{col.name}: the value is missing and the column is not optional",
                path=source,
                line=line,
                column=col.index,
            )


def _check_categories(col: Column, values: list[Any], lines: list[int], source: str) -> None:
    """Refuse a value outside a categorical column's allowed values (a missing one passes)."""
    if col.categories is None:
        return
    allowed = frozenset(col.categories)
    for value, line in zip(values, lines, strict=True):
        if value is not None and value not in allowed:
            raise DataFormatError(
                f"{col.name}: the value is not one of the allowed values {listed(col.categories)}",
                path=source,
                line=line,
                column=col.index,
            )


def _plain(text: str) -> str:
    """``text`` when it is printable ASCII; ValueError otherwise (``float()`` and ``int()``
    would skip Unicode whitespace and read other scripts' digits)."""
    if text.isascii() and text.isprintable():
        return text
    raise ValueError(text)


def _all_plain(raw: list[Any], vector: bool) -> bool:
    """True when every cell is printable ASCII, spaces and tabs included (one pass over all)."""
    text = "".join(cell for cells in raw for cell in cells) if vector else "".join(raw)
    return text.isascii() and (text.isprintable() or _CONTROL.search(text) is None)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def _anonymous(text: str) -> str:
    return "the value"


def _describe(text: str) -> str:
    """Quote a short offending value; long ones are summarised (files are the user's own data)."""
    return repr(text) if len(text) <= 40 else f"a {len(text)}-character value"
