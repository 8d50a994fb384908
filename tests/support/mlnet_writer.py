"""A minimal writer of ML.NET's model.zip format, for tests: synthetic pipelines of the kinds
the fixtures do not hold, and hostile variants of the fixtures.

:class:`Stream` is ModelSaveContext's dual of servefn's reader: a model block, a string pool,
then ModelHeader's layout (header, block, string table, UTF-16 characters, assembly name, tail).
:class:`Archive` collects streams by ``/``-separated folder and zips them with ML.NET's
backslash names. :func:`schema` writes a zero-row binary DataView schema. :func:`rewrite`
replaces one member of an existing archive (re-zipped, so the CRC stays valid).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable, Sequence

_HEADER = struct.Struct("<QII qq qq qq 8s II 24s 24s qq qI")


class Stream:
    """One ``Model.key`` stream: write its block with the typed methods, then :meth:`build`."""

    def __init__(self, signature: str, loader: str, version: int = 0x00010001) -> None:
        self.signature = signature.replace(" ", "\x00").encode("ascii")
        self.loader = loader
        self.version = version
        self.block = bytearray()
        self.strings: list[str] = []

    def i32(self, *values: int) -> Stream:
        self.block += struct.pack(f"<{len(values)}i", *values)
        return self

    def u8(self, value: int) -> Stream:
        self.block.append(value)
        return self

    def f32(self, *values: float) -> Stream:
        self.block += struct.pack(f"<{len(values)}f", *values)
        return self

    def f64(self, *values: float) -> Stream:
        self.block += struct.pack(f"<{len(values)}d", *values)
        return self

    def raw(self, data: bytes) -> Stream:
        self.block += data
        return self

    def ints(self, values: Sequence[int]) -> Stream:
        return self.i32(len(values), *values)

    def floats(self, values: Sequence[float]) -> Stream:
        return self.i32(len(values)).f32(*values)

    def doubles(self, values: Sequence[float]) -> Stream:
        return self.i32(len(values)).f64(*values)

    def string(self, text: str | None) -> Stream:
        if text is None:
            return self.i32(-1)
        if text not in self.strings:
            self.strings.append(text)
        return self.i32(self.strings.index(text))

    def build(self, assembly: str = "Microsoft.ML.Data") -> bytes:
        block = bytes(self.block)
        fp_model, cb_model = 0x100, len(block)
        chars = b"".join(s.encode("utf-16-le") for s in self.strings)
        ends, total = [], 0
        for s in self.strings:
            total += 2 * len(s)
            ends.append(total)
        table = struct.pack(f"<{len(ends)}q", *ends)
        fp_table = fp_model + cb_model if self.strings else 0
        fp_chars = fp_table + len(table) if self.strings else 0
        name = assembly.encode("utf-16-le")
        fp_asm = fp_model + cb_model + len(table) + len(chars)
        fp_tail = fp_asm + len(name)
        header = _HEADER.pack(
            0x4C45444F4D004C4D, 0x00010002, 0x00010002, fp_model, cb_model, fp_table,
            len(table), fp_chars, len(chars), self.signature, self.version, self.version,
            self.loader.encode("ascii"), b"", fp_tail, fp_tail + 8, fp_asm, len(name),
        )  # fmt: skip
        body = header.ljust(0x100, b"\x00") + block + table + chars + name
        return body + struct.pack("<Q", 0x4D4C004D4F44454C)


class Archive:
    """Streams by folder (``TransformerChain/Transform_000``), zipped with backslash names."""

    def __init__(self) -> None:
        self.members: dict[str, bytes] = {}

    def put(self, folder: str, stream: Stream) -> Archive:
        self.members[f"{folder}/Model.key"] = stream.build()
        return self

    def raw(self, path: str, data: bytes) -> Archive:
        self.members[path] = data
        return self

    def zip(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path, data in self.members.items():
                archive.writestr(path.replace("/", "\\"), data)
        return buffer.getvalue()


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def codec(name: str, params: bytes = b"") -> bytes:
    encoded = name.encode()
    return _leb(len(encoded)) + encoded + _leb(len(params)) + params


def vector(item: str, size: int) -> bytes:
    return codec("VBuffer", codec(item) + struct.pack("<ii", 1, size))


def key(count: int) -> bytes:
    return codec("Key2", codec("UInt32") + struct.pack("<Q", count))


def schema(columns: Sequence[tuple[str, bytes]]) -> bytes:
    """A zero-row binary DataView holding ``(name, codec)`` columns."""
    toc = bytearray()
    for name, kind in columns:
        toc += _leb(len(name.encode())) + name.encode() + kind + b"\x01\x01"
        toc += struct.pack("<qq", 0x100, 0)
    version = 0x0001000100010006
    header = struct.pack(
        "<8sQQqqqi", b"CML\x00DVB\x00", version, version, 0x100, 0x100 + len(toc), 0, len(columns)
    )
    return header.ljust(0x100, b"\x00") + bytes(toc) + b"\x00BVD\x00LMC"


def rewrite(data: bytes, member: str, change: Callable[[bytes], bytes]) -> bytes:
    """``data`` with member ``member`` (``/``-separated) replaced by ``change(its bytes)``."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            content = source.read(info)
            if info.filename.replace("\\", "/") == member:
                content = change(content)
            out.writestr(info.filename, content)
    return buffer.getvalue()
