"""One ``Model.key`` stream: ML.NET's ModelHeader, string table and model block (ModelLoadContext).

The 256-byte header (``src/Microsoft.ML.Core/Data/ModelHeader.cs``) is validated as
``ModelHeader.TryValidate`` does, every offset and size against the stream's length: the model
block right after the header, the string table right after it (``n`` cumulative byte ends of
UTF-16 strings), the assembly name, then the tail signature. A :class:`Context` hands the model
block to a component's decoder, resolves string ids, opens sub-models (``dir/Model.key``) and
binary streams beside it, and finally checks the block was read to its last byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from servefn.mlnet._binary import MlnetError, Reader
from servefn.mlnet._repository import Repository

__all__ = ["MAX_DEPTH", "MAX_STRINGS", "Context", "open_root"]

MAX_DEPTH = 24
"""Deepest nesting of sub-models (chains in chains): real pipelines nest 3 or 4 levels."""
MAX_STRINGS = 1 << 20
"""Most strings one stream's table may hold (text term maps keep their terms there)."""
MAX_STRING_CHARS = 1 << 16
"""Longest string in a table (a column name or a term)."""
_HEADER = struct.Struct("<QII qq qq qq 8s II 24s 24s qq qI")
_SIGNATURE = 0x4C45444F4D004C4D
_TAIL = 0x4D4C004D4F44454C
_HEADER_SIZE = 0x100


class Context:
    """A decoder's view of one stream: header fields, strings, the block's :attr:`reader`."""

    def __init__(self, repository: Repository, directory: str, data: bytes, depth: int) -> None:
        self.repository = repository
        self.directory = directory
        self.depth = depth
        self.path = f"{directory}\\Model.key".replace("/", "\\")
        if depth > MAX_DEPTH:
            raise MlnetError(f"ML.NET model nests sub-models over {MAX_DEPTH} levels deep")
        head = Reader(data, self.path)
        if head.left < _HEADER_SIZE:
            raise head.fail(f"the stream is {len(data)} bytes, shorter than its 256-byte header")
        fields = _HEADER.unpack(head.raw(_HEADER.size))
        (sig, ver_written, ver_readable, fp_model, cb_model, fp_table, cb_table, fp_chars,
         cb_chars, model_sig, model_written, model_readable, loader, loader_alt, fp_tail,
         fp_lim, fp_asm, cb_asm) = fields  # fmt: skip
        if sig != _SIGNATURE:
            raise head.fail("not an ML.NET model stream (its signature is not ML\\0MODEL)")
        if not (
            ver_written >= 0x00010001 and ver_readable <= ver_written and ver_readable <= 0x00010002
        ):
            raise head.fail(
                f"header version {ver_written:#x} / {ver_readable:#x} is not one servefn reads"
            )
        size = len(data)
        end_model = fp_model + cb_model
        if fp_model != _HEADER_SIZE or not 0 <= cb_model <= size - _HEADER_SIZE:
            raise head.fail("the model block lies outside the stream")
        if fp_table == 0:
            if cb_table or fp_chars or cb_chars:
                raise head.fail("a string table is declared without an offset")
            end_strings = end_model
        else:
            if (
                fp_table != end_model
                or cb_table <= 0
                or cb_table % 8
                or fp_chars != fp_table + cb_table
            ):
                raise head.fail("the string table does not follow the model block")
            if cb_chars < 0 or cb_chars % 2 or fp_chars + cb_chars > size:
                raise head.fail("the string characters lie outside the stream")
            end_strings = fp_chars + cb_chars
        if fp_asm == 0:
            if cb_asm:
                raise head.fail("an assembly name is declared without an offset")
            end_asm = end_strings
        else:
            if fp_asm != end_strings or cb_asm % 2 or fp_asm + cb_asm > size:
                raise head.fail("the assembly name lies outside the stream")
            end_asm = fp_asm + cb_asm
        if fp_tail != end_asm or fp_lim != fp_tail + 8 or fp_lim > size:
            raise head.fail("the tail does not follow the blocks (a truncated or altered stream)")
        tail = Reader(data, self.path, fp_tail, fp_lim)
        if tail.u64() != _TAIL:
            raise head.fail("the tail signature is wrong (a truncated or altered stream)")
        self.strings = _strings(data, self.path, fp_table, cb_table, fp_chars, cb_chars)
        self.model_signature: bytes = model_sig
        self.version_written: int = model_written
        self.version_readable: int = model_readable
        self.loader = _ascii(loader)
        self.loader_alt = _ascii(loader_alt)
        self.reader = Reader(data, self.path, fp_model, end_model)

    # -- versions and strings ----------------------------------------------------------------

    def check_version(self, signature: str, newest: int, oldest: int = 0x00010001) -> None:
        """ML.NET's CheckVersionInfo: this model signature, versions servefn decodes."""
        expected = signature.replace(" ", "\x00").encode("ascii")
        if self.model_signature != expected:
            shown = self.model_signature.replace(b"\x00", b" ").decode("ascii", "replace")
            raise self.reader.fail(
                f"{self.loader} has model signature {shown!r}, not {signature!r}"
            )
        if self.version_readable > self.version_written:
            raise self.reader.fail("its model version header is corrupt")
        if self.version_readable > newest or self.version_written < oldest:
            raise self.reader.fail(
                f"{self.loader} version {self.version_written:#010x} is not one servefn reads "
                f"({oldest:#010x} to {newest:#010x})"
            )

    def string(self) -> str:
        index = self.reader.i32()
        if not 0 <= index < len(self.strings):
            raise self.reader.fail(
                f"a string id {index} is outside the {len(self.strings)} strings"
            )
        return self.strings[index]

    def string_or_none(self) -> str | None:
        index = self.reader.i32()
        if index == -1:
            return None
        if not 0 <= index < len(self.strings):
            raise self.reader.fail(
                f"a string id {index} is outside the {len(self.strings)} strings"
            )
        return self.strings[index]

    def name(self) -> str:
        """A non-empty string (a column name)."""
        text = self.string()
        if not text:
            raise self.reader.fail("a column name is empty")
        return text

    # -- sub-models and streams --------------------------------------------------------------

    def sub(self, name: str) -> Context | None:
        """The sub-model in folder ``name`` beside this stream, or None when there is none."""
        directory = f"{self.directory}/{name}"
        data = self.repository.read(f"{directory}/Model.key")
        return None if data is None else Context(self.repository, directory, data, self.depth + 1)

    def need(self, name: str) -> Context:
        sub = self.sub(name)
        if sub is None:
            raise self.reader.fail(f"its sub-model {name} is missing")
        return sub

    def stream(self, name: str) -> bytes | None:
        """A binary stream stored beside this one (``TrainSchema``, ``LabelNames``)."""
        return self.repository.read(f"{self.directory}/{name}")

    def done(self) -> None:
        self.reader.expect_end(f"{self.loader}'s block")


def open_root(repository: Repository, directory: str) -> Context:
    data = repository.read(f"{directory}/Model.key")
    if data is None:
        raise MlnetError(f"ML.NET model has no {directory}\\Model.key")
    return Context(repository, directory, data, 0)


def _ascii(raw: bytes) -> str:
    text = raw.rstrip(b"\x00")
    if not all(32 <= b < 127 for b in text):
        return text.decode("latin-1").encode("unicode_escape").decode("ascii")
    return text.decode("ascii")


def _strings(
    data: bytes, where: str, fp_table: int, cb_table: int, fp_chars: int, cb_chars: int
) -> Sequence[str]:
    """The string table: ``n`` cumulative byte ends, then the UTF-16 characters."""
    if fp_table == 0:
        return ()
    reader = Reader(data, where, fp_table, fp_table + cb_table)
    n = reader.check_count(cb_table // 8, "the string table", 8, limit=MAX_STRINGS)
    ends = reader.array("i8", n, "the string table")
    if n and (ends[-1] != cb_chars or (ends < 0).any() or (ends % 2).any()):
        raise reader.fail("the string table's ends do not match its characters")
    starts = [0, *ends[:-1].tolist()]
    if any(
        e < s or e - s > 2 * MAX_STRING_CHARS for s, e in zip(starts, ends.tolist(), strict=True)
    ):
        raise reader.fail("the string table's ends are not increasing, or a string is too long")
    chars = bytes(data[fp_chars : fp_chars + cb_chars])
    try:
        return [chars[s:e].decode("utf-16-le") for s, e in zip(starts, ends.tolist(), strict=True)]
    except UnicodeDecodeError:
        raise reader.fail("a string is not valid UTF-16") from None
