"""Write predictions: CSV with a header line, or JSONL with one object per input row.

CSV spreads a vector output over one column per slot, named like feature slots are
(``Score[0]``, ``Score[1]``...), so the file opens as a plain table anywhere; JSONL keeps it as
a list. Numbers are written in their shortest round-trip form by the same encoder in both
formats (pydantic-core's, several times faster than ``repr``), so the same model and input give
byte-identical files wherever they are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TextIO

import numpy as np
import pydantic_core

from servefn.batch.options import Format

__all__ = ["Columns", "CsvWriter", "JsonlWriter", "Writer", "writer_for"]

Columns = Sequence[tuple[str, Any]]
"""``(name, values)`` in output order; values are a list or a 1-d or 2-d numpy array."""


class Writer(Protocol):
    """Appends scored rows to one output stream."""

    def write(self, columns: Columns) -> None:
        """Append one chunk of rows."""
        ...

    def close(self) -> None:
        """Finish the output (the stream itself stays open)."""
        ...


def writer_for(output_format: Format, stream: TextIO, names: Sequence[str]) -> Writer:
    """The writer for ``output_format``; ``names`` are the columns it will be given."""
    if output_format == "jsonl":
        return JsonlWriter(stream)
    return CsvWriter(stream, names)


class CsvWriter:
    """Comma-separated, ``\\n``-terminated, quoted only where needed (RFC 4180).

    ``None`` is an empty cell; booleans, lists and objects are written as JSON text.
    """

    def __init__(self, stream: TextIO, names: Sequence[str]) -> None:
        self._stream = stream
        self._names = list(names)
        self._header_written = False

    def write(self, columns: Columns) -> None:
        header: list[str] = []
        cells: list[list[str]] = []
        for name, values in columns:
            if isinstance(values, np.ndarray) and values.ndim == 2:
                header.extend(f"{name}[{i}]" for i in range(values.shape[1]))
                cells.extend(_text(values[:, i]) for i in range(values.shape[1]))
            else:
                header.append(name)
                cells.append(_text(values))
        if not self._header_written:
            self._write_header(header)
        if cells and cells[0]:
            self._stream.write("\n".join(map(",".join, zip(*cells, strict=True))) + "\n")

    def close(self) -> None:
        """Write the header of an output with no rows (vector outputs then have one column)."""
        if not self._header_written:
            self._write_header(self._names)

    def _write_header(self, names: list[str]) -> None:
        self._stream.write(",".join(_quote(n) for n in names) + "\n")
        self._header_written = True


class JsonlWriter:
    """One JSON object per line, keyed by output name."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, columns: Columns) -> None:
        names = [name for name, _ in columns]
        lists = [v.tolist() if isinstance(v, np.ndarray) else list(v) for _, v in columns]
        encode = pydantic_core.to_json
        self._stream.writelines(
            encode(dict(zip(names, row, strict=True)), inf_nan_mode="constants").decode() + "\n"
            for row in zip(*lists, strict=True)
        )

    def close(self) -> None:
        """Nothing to finish: every line is complete when written."""


def _text(values: Any) -> list[str]:
    """One CSV cell per value; a numeric column is encoded in one call."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        if not len(values):
            return []
        encoded = pydantic_core.to_json(values.tolist(), inf_nan_mode="constants").decode()
        return encoded[1:-1].split(",")
    plain = values.tolist() if isinstance(values, np.ndarray) else values
    cells = [_cell(v) for v in plain]
    if _needs_quotes("\x00".join(cells)):  # one scan per column; quoting is rare
        return [_quote(c) for c in cells]
    return cells


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return pydantic_core.to_json(value, inf_nan_mode="constants").decode()


def _needs_quotes(text: str) -> bool:
    return "," in text or '"' in text or "\n" in text or "\r" in text


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if _needs_quotes(text) else text
