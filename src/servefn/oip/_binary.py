"""The binary tensor data extension: a JSON header followed by raw little-endian tensor bytes.

A request's body is split at ``Inference-Header-Content-Length``; each input whose parameters
carry ``binary_data_size`` takes that many bytes of what follows, in the order of ``inputs``.
Every length is checked against the bytes that are really there before anything is allocated:
a numeric tensor is read in place (``np.frombuffer``), and a BYTES tensor's 4-byte element
lengths are each held against what is left of its own slice.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from servefn.oip._tensors import Datatype, InferenceError

__all__ = [
    "HEADER_LENGTH",
    "bytes_elements",
    "decode_binary",
    "encode_bytes",
    "split_body",
]

HEADER_LENGTH = "inference-header-content-length"
"""The header (lower-case, as servefn's requests carry them) that sizes the JSON part."""
_LENGTH = struct.Struct("<I")
_MAX_DIGITS = 18


def split_body(body: bytes, declared: str | None) -> tuple[bytes, memoryview | None]:
    """(JSON header, binary part or None) of a body, split at ``declared`` (the value of
    ``Inference-Header-Content-Length``, if the request has one)."""
    if declared is None:
        return body, None
    text = declared.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        raise InferenceError(
            400, "the Inference-Header-Content-Length header must be a number of bytes"
        )
    length = int(text)
    if length == 0 or length > len(body):
        raise InferenceError(
            400,
            f"Inference-Header-Content-Length must be between 1 and the body's length "
            f"({len(body)} bytes)",
        )
    view = memoryview(body)
    return body[:length], view[length:]


def decode_binary(data: memoryview, datatype: Datatype, count: int, where: str) -> Any:
    """The ``count`` elements of ``datatype`` in ``data`` (one input's own slice), decoded as
    :class:`~servefn.oip._tensors.Tensor` values hold them."""
    if datatype.family == "bytes":
        return bytes_elements(data, count, where)
    expected = count * datatype.itemsize
    if len(data) != expected:
        raise InferenceError(
            400,
            f"{where}: binary_data_size is {len(data)} bytes but its shape and datatype "
            f"{datatype.name} need {expected}",
        )
    if datatype.family == "bool":
        flags: list[Any] = (np.frombuffer(data, dtype=np.uint8) != 0).tolist()
        return flags
    assert datatype.dtype is not None
    return np.frombuffer(data, dtype=datatype.dtype).astype(np.float64)


def bytes_elements(data: memoryview, count: int, where: str) -> list[str | None]:
    """``count`` BYTES elements, each a 4-byte little-endian length then that many bytes of
    UTF-8 text, filling ``data`` exactly."""
    if count * _LENGTH.size > len(data):  # every element needs its length prefix at least
        raise InferenceError(
            400, f"{where}: binary_data_size is too small for {count} BYTES elements"
        )
    values: list[str | None] = []
    offset, end = 0, len(data)
    unpack = _LENGTH.unpack_from
    for _ in range(count):
        if offset + _LENGTH.size > end:
            raise InferenceError(400, f"{where}: the BYTES data ends inside an element's length")
        (size,) = unpack(data, offset)
        offset += _LENGTH.size
        if size > end - offset:
            raise InferenceError(
                400, f"{where}: a BYTES element is longer than the data that is left"
            )
        try:
            values.append(str(data[offset : offset + size], "utf-8"))
        except UnicodeDecodeError:
            raise InferenceError(400, f"{where}: a BYTES element is not UTF-8 text") from None
        offset += size
    if offset != end:
        raise InferenceError(
            400, f"{where}: binary_data_size is larger than its {count} BYTES elements"
        )
    return values


def encode_bytes(values: Sequence[str]) -> bytes:
    """BYTES elements in the binary form: each a 4-byte little-endian length, then UTF-8."""
    parts = []
    pack = _LENGTH.pack
    for value in values:
        encoded = value.encode("utf-8")
        parts.append(pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)
