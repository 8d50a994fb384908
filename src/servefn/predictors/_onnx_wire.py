"""The protobuf wire format, read within bounds: the layer under :mod:`._onnx_graph`.

:class:`WireReader` lists the fields of one message span that a caller wants and skips the rest:
every varint is at most 10 bytes and 64 bits, every length is held against the message that
holds it, and runs of small unwanted fields (a tree ensemble's attribute lists, unknown fields)
are skipped by one regular-expression match per 1024 fields rather than a Python step each.
Fields read one at a time count against :data:`MAX_FIELDS`, so a crafted file costs seconds at
most. Failures are :class:`~servefn.errors.ArtifactError` naming the byte offset.
"""

from __future__ import annotations

import re

from servefn.errors import ArtifactError

__all__ = ["LEN", "MAX_FIELDS", "MAX_MESSAGE_DEPTH", "VARINT", "Field", "WireReader"]

MAX_FIELDS = 1 << 22
"""Fields read one at a time (nodes, attributes, names, large tensors): a transformer has a few
hundred thousand. Runs of small fields count once per run of up to 1024, so 512 MiB of them
cost seconds at worst."""
MAX_MESSAGE_DEPTH = 100
"""Protobuf messages nested in one another: protobuf's own default recursion limit."""
VARINT, _I64, LEN, _I32 = 0, 1, 2, 5
_RUN = 1024  # small fields skipped per regular-expression match

Field = tuple[int, int, int, int]
"""(field number, wire type, a, b): a varint's value and its offset, or a byte string's span."""

_VALUES = {
    VARINT: rb"[\x80-\xff]{0,9}[\x00-\x7f]",
    _I64: b".{8}",
    _I32: b".{4}",
    LEN: b"(?:" + b"|".join(re.escape(bytes([n])) + b".{%d}" % n for n in range(128)) + b")",
}
_SKIPS: dict[frozenset[int], tuple[re.Pattern[bytes] | None, ...]] = {}


def _skips(wanted: frozenset[int]) -> tuple[re.Pattern[bytes] | None, ...]:
    """Per wire type, a pattern matching up to :data:`_RUN` consecutive fields of that wire type
    whose numbers are not in ``wanted``: scalars, and byte strings under 128 bytes. Tags match
    in their canonical encoding only (an overlong tag goes the slow way, where it decodes as
    protobuf decodes it), so no wanted field can hide in a skipped run."""
    patterns = _SKIPS.get(wanted)
    if patterns is None:
        found: list[re.Pattern[bytes] | None] = [None] * 8
        for wire, value in _VALUES.items():
            one = bytes(n << 3 | wire for n in range(1, 16) if n not in wanted)
            first = bytes(0x80 | k << 3 | wire for k in range(16))
            excluded = b"|".join(re.escape(_tag(n, wire)) for n in sorted(wanted) if n >= 16)
            longer = (b"(?!" + excluded + b")" if excluded else b"") + _charset(first)
            tag = b"(?:" + _charset(one) + b"|" + longer + rb"[\x80-\xff]{0,2}[\x01-\x7f])"
            found[wire] = re.compile(b"(?:" + tag + value + b"){1,%d}" % _RUN, re.DOTALL)
        patterns = _SKIPS[wanted] = tuple(found)
    return patterns


def _charset(values: bytes) -> bytes:
    return b"[" + b"".join(re.escape(bytes([v])) for v in values) + b"]"


def _tag(number: int, wire: int) -> bytes:
    """The canonical varint encoding of a field's tag."""
    value, out = number << 3 | wire, bytearray()
    while value >= 0x80:
        out.append(0x80 | value & 0x7F)
        value >>= 7
    out.append(value)
    return bytes(out)


class WireReader:
    """Reads message spans of ``data``; ``source`` names the file in messages."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.budget = MAX_FIELDS

    def fail(self, message: str) -> ArtifactError:
        return ArtifactError(f"{self.source}: {message}")

    def malformed(self, message: str, at: int | None = None) -> ArtifactError:
        where = "" if at is None else f" at byte {at}"
        return ArtifactError(
            f"{self.source} is not a valid ONNX model: {message}{where} (a truncated or "
            "damaged file, or not ONNX at all)"
        )

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        data = self.data
        result = shift = 0
        start = pos
        while True:
            if pos >= end:
                raise self.malformed("a number runs past the end of its message", start)
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                if result >> 64:
                    raise self.malformed("a number over 64 bits", start)
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.malformed("a number longer than 10 bytes", start)

    def fields(self, pos: int, end: int, wanted: frozenset[int]) -> list[Field]:
        """The ``wanted`` fields of the message in ``data[pos:end]``; the rest are skipped, in
        runs where they are small."""
        data, skips = self.data, _skips(wanted)
        out: list[Field] = []
        while pos < end:
            self.budget -= 1
            if self.budget < 0:
                raise self.fail(
                    f"the model has over {MAX_FIELDS} protobuf fields to read one by one "
                    "(nodes, attributes, names); refusing it"
                )
            skip = skips[data[pos] & 7]
            run = skip.match(data, pos, end) if skip is not None else None
            if run is not None:
                pos = run.end()
                continue
            start = pos
            tag, pos = self.varint(pos, end)
            number, wire = tag >> 3, tag & 7
            if number == 0:
                raise self.malformed("field number 0", start)
            if wire == LEN:
                size, pos = self.varint(pos, end)
                if size > end - pos:
                    raise self.malformed(
                        f"a field of {size} bytes runs past the end of its message", start
                    )
                if number in wanted:
                    out.append((number, LEN, pos, pos + size))
                pos += size
            elif wire == VARINT:
                value, pos = self.varint(pos, end)
                if number in wanted:
                    out.append((number, VARINT, value, start))
            elif wire in (_I32, _I64):
                if number in wanted:
                    raise self.malformed(f"field {number} has wire type {wire}", start)
                pos += 4 if wire == _I32 else 8
                if pos > end:
                    raise self.malformed("a fixed-size number runs past its message", start)
            else:
                raise self.malformed(f"wire type {wire} (field {number})", start)
        return out

    def span(self, f: Field, what: str) -> tuple[int, int]:
        number, wire, a, b = f
        if wire != LEN:
            raise self.malformed(f"{what} (field {number}) is not length-delimited")
        return a, b

    def text(self, f: Field, what: str) -> str:
        a, b = self.span(f, what)
        return self.data[a:b].decode("utf-8", "replace")

    def number(self, f: Field, what: str) -> int:
        number, wire, value, _ = f
        if wire != VARINT:
            raise self.malformed(f"{what} (field {number}) is not a number")
        return value - (1 << 64) if value >> 63 else value

    def check_depth(self, depth: int, at: int) -> None:
        if depth > MAX_MESSAGE_DEPTH:
            raise self.fail(
                f"messages are nested over {MAX_MESSAGE_DEPTH} levels deep (at byte {at}); "
                "refusing it"
            )
