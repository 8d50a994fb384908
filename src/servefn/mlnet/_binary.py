"""A bounded little-endian reader over one stream of an ML.NET archive, as .NET's BinaryReader.

Every read checks the bytes left before it touches them, and every array's count is checked
against the bytes left before anything is allocated: a count can never ask for more memory than
the stream holds. A failure is an :class:`MlnetError` naming the stream, one line.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import ArtifactError

__all__ = ["MAX_TEXT_BYTES", "MlnetError", "Reader"]

MAX_TEXT_BYTES = 1 << 16
"""Longest length-prefixed UTF-8 string (a codec or column name) a stream may hold."""

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_DTYPES = {"i4": "<i4", "u4": "<u4", "f4": "<f4", "f8": "<f8", "i8": "<i8", "u1": "u1"}


class MlnetError(ArtifactError):
    """An ML.NET model.zip that cannot be read or served as it is (one line)."""


class Reader:
    """Reads ``data[start:end]`` front to back; ``where`` names the stream in errors."""

    __slots__ = ("_data", "end", "pos", "where")

    def __init__(
        self, data: bytes | memoryview, where: str, start: int = 0, end: int | None = None
    ):
        self._data = memoryview(data)
        self.where = where
        self.end = len(self._data) if end is None else end
        if not 0 <= start <= self.end <= len(self._data):
            raise MlnetError(f"{where}: a block lies outside its stream")
        self.pos = start

    @property
    def left(self) -> int:
        return self.end - self.pos

    def fail(self, what: str) -> MlnetError:
        return MlnetError(f"ML.NET model: {self.where}: {what}")

    def _take(self, n: int) -> memoryview:
        if n < 0 or n > self.end - self.pos:
            raise self.fail(f"the stream ends early (needs {n} bytes at offset {self.pos})")
        view = self._data[self.pos : self.pos + n]
        self.pos += n
        return view

    def skip(self, n: int) -> None:
        self._take(n)

    def raw(self, n: int) -> bytes:
        return bytes(self._take(n))

    def u8(self) -> int:
        return int(self._take(1)[0])

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise self.fail(f"a boolean holds {value}")
        return value == 1

    def i32(self) -> int:
        value: int = _I32.unpack(self._take(4))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def i64(self) -> int:
        value: int = _I64.unpack(self._take(8))[0]
        return value

    def u64(self) -> int:
        value: int = _U64.unpack(self._take(8))[0]
        return value

    def f32(self) -> float:
        value: float = _F32.unpack(self._take(4))[0]
        return value

    def f64(self) -> float:
        value: float = _F64.unpack(self._take(8))[0]
        return value

    def count(self, what: str, item_size: int, *, limit: int | None = None) -> int:
        """An int32 count of ``item_size``-byte items that must fit in the bytes left."""
        return self.check_count(self.i32(), what, item_size, limit=limit)

    def check_count(self, n: int, what: str, item_size: int, *, limit: int | None = None) -> int:
        if n < 0:
            raise self.fail(f"{what}: a negative count ({n})")
        if limit is not None and n > limit:
            raise self.fail(f"{what}: {n} is over the limit of {limit}")
        if n * item_size > self.left:
            raise self.fail(f"{what}: {n} items cannot fit in the {self.left} bytes left")
        return n

    def array(self, kind: str, n: int, what: str) -> NDArray[Any]:
        """``n`` little-endian values of ``kind`` (i4, u4, f4, f8, i8, u1), as a new array."""
        dtype = np.dtype(_DTYPES[kind])
        self.check_count(n, what, dtype.itemsize)
        return np.frombuffer(self._take(n * dtype.itemsize), dtype=dtype).astype(
            dtype.newbyteorder("=")
        )

    def counted(self, kind: str, what: str, *, limit: int | None = None) -> NDArray[Any]:
        """An int32 count, then that many values (.NET's ``ReadIntArray()`` and kin)."""
        size = np.dtype(_DTYPES[kind]).itemsize
        return self.array(kind, self.count(what, size, limit=limit), what)

    def leb128(self, what: str, limit: int = (1 << 31) - 1) -> int:
        """An unsigned LEB128 integer of at most ``limit`` (at most 10 bytes are read)."""
        value = shift = 0
        for _ in range(10):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if value > limit:
                    raise self.fail(f"{what}: {value} is over the limit of {limit}")
                return value
            shift += 7
        raise self.fail(f"{what}: a variable-length integer runs over 10 bytes")

    def text(self, what: str) -> str:
        """.NET's ``BinaryWriter.Write(string)``: a LEB128 byte length, then UTF-8."""
        n = self.leb128(what, MAX_TEXT_BYTES)
        try:
            return bytes(self._take(n)).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8 text") from None

    def expect_end(self, what: str) -> None:
        if self.pos != self.end:
            raise self.fail(f"{what}: {self.end - self.pos} bytes are left over (a misread block)")
