"""Column types, and the DataView schema of ML.NET's binary data format (``CML\\0DVB\\0``).

An archive's ``Schema`` entry (the input schema) and each prediction transformer's
``TrainSchema`` are zero-row ``.idv`` files (``docs/code/IdvFileFormat.md``): a 256-byte header,
then a table of contents of one entry per column: its name, its value codec (``Single``,
``TextSpan``, ``VBuffer`` of an item codec and dimensions, ``Key2`` of an integer codec and a
count), compression, rows per block and two offsets. Only names and types are read; metadata
blocks (slot names, key values) are located and bounds-checked but never inflated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from servefn.mlnet._binary import Reader
from servefn.model._limits import MAX_COLUMNS, MAX_FEATURES

__all__ = ["ColumnType", "read_schema"]

_SIMPLE = {
    "Single": "float32", "Double": "float64", "SByte": "int8", "Byte": "uint8",
    "Int16": "int16", "UInt16": "uint16", "Int32": "int32", "UInt32": "uint32",
    "Int64": "int64", "UInt64": "uint64", "Boolean": "bool", "TextSpan": "text",
    "TimeSpan": "timespan", "DateTime": "datetime", "DateTimeZone": "datetimeoffset",
    "UInt128": "rowid", "DataViewRowId": "rowid",
}  # fmt: skip
_INTEGERS = frozenset({"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"})
_SIGNATURE = b"CML\x00DVB\x00"
_TAIL = b"\x00BVD\x00LMC"
_OLDEST, _NEWEST = 0x0001000100010004, 0x0001000100010006


@dataclass(frozen=True)
class ColumnType:
    """A column's type: ``item`` (float32, float64, int32, ..., bool, text, key, or another
    name), ``size`` (0 for a scalar, the slot count for a vector, -1 for a vector of unknown
    size) and, for keys, ``count`` (the key's cardinality, 0 when unknown)."""

    item: str
    size: int = 0
    count: int = 0

    @property
    def numeric(self) -> bool:
        return self.item in ("float32", "float64")

    @property
    def integer(self) -> bool:
        return self.item in _INTEGERS

    @property
    def width(self) -> int:
        return 1 if self.size == 0 else self.size

    def __str__(self) -> str:
        item = f"key<{self.count}>" if self.item == "key" else self.item
        return item if self.size == 0 else f"{item}[{self.size if self.size > 0 else '?'}]"


def read_codec(reader: Reader, depth: int = 0) -> ColumnType:
    """A codec definition (name, LEB128 length, parameters) as a type; parameters are read in
    a sub-reader of exactly their declared length."""
    name = reader.text("a codec name")
    length = reader.leb128("a codec's parameters", reader.left)
    params = Reader(reader.raw(length), reader.where)
    if name in _SIMPLE:
        kind = ColumnType(_SIMPLE[name])
    elif name == "VBuffer" and depth == 0:
        item = read_codec(params, depth + 1)
        dims = params.counted("i4", "vector dimensions", limit=8).tolist()
        if any(d < 0 for d in dims):
            raise params.fail("a vector dimension is negative")
        size = math.prod(dims) if dims and all(dims) else -1
        if size > MAX_FEATURES:
            raise params.fail(f"a vector of {size} slots is over the cap of {MAX_FEATURES}")
        kind = ColumnType(item.item, size, item.count)
    elif name in ("Key", "Key2") and depth < 2:
        item = read_codec(params, depth + 1)
        if not item.integer:
            raise params.fail(f"a key codec over {item.item}")
        if name == "Key":
            params.boolean()  # contiguous
            params.u64()  # min
            count = params.i32()
        else:
            count = params.u64()
        if count < 0 or count > 1 << 31:
            raise params.fail(f"a key of {count} values")
        kind = ColumnType("key", 0, count)
    else:
        params.skip(params.left)  # an unknown codec: its column is refused if it is ever used
        kind = ColumnType(name if name.isidentifier() else "unknown")
    params.expect_end(f"the {name} codec's parameters")
    return kind


def read_schema(data: bytes, where: str) -> list[tuple[str, ColumnType]]:
    """The (name, type) of each column of a binary DataView stream."""
    reader = Reader(data, where)
    if reader.left < 256 + len(_TAIL) or reader.raw(8) != _SIGNATURE:
        raise reader.fail("not an ML.NET binary DataView schema (no CML\\0DVB\\0 header)")
    version, compatible = reader.u64(), reader.u64()
    toc, tail, _rows, n = reader.i64(), reader.i64(), reader.i64(), reader.i32()
    if not (version >= _OLDEST and compatible <= _NEWEST):
        raise reader.fail(f"DataView format {version:#x} is not one servefn reads")
    if not (256 <= toc <= tail and tail + len(_TAIL) == len(data)):
        raise reader.fail("its table of contents or tail lies outside the stream")
    if bytes(data[tail:]) != _TAIL:
        raise reader.fail("its tail signature is wrong (a truncated or altered stream)")
    if not 0 <= n <= MAX_COLUMNS:
        raise reader.fail(f"it declares {n} columns (the cap is {MAX_COLUMNS})")
    entries = Reader(data, where, toc, tail)
    columns: list[tuple[str, ColumnType]] = []
    for _ in range(n):
        name = entries.text("a column name")
        kind = read_codec(entries)
        if entries.u8() > 2:
            raise entries.fail(f"column {name!r} has an unknown compression kind")
        entries.leb128("rows per block")
        lookup, metadata = entries.i64(), entries.i64()
        if not (0 <= lookup <= tail and (metadata == 0 or 256 <= metadata < tail)):
            raise entries.fail(f"column {name!r} points outside the stream")
        if not name:
            raise entries.fail("a column has an empty name")
        columns.append((name, kind))
    return columns
