"""The protocol's vocabulary: datatypes, decoded tensors, a parsed request, and its errors.

Every tensor datatype of the Open Inference Protocol maps to a little-endian numpy dtype
(``BYTES`` to none: its elements are length-prefixed strings). A decoded input keeps its values
as they came: JSON ``data`` as a flat Python list (None where a value is missing), binary
numbers as a float64 array, binary ``BOOL`` and ``BYTES`` as lists of bool and str.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

__all__ = [
    "DATATYPES",
    "KNOWN_PARAMETERS",
    "Datatype",
    "InferenceError",
    "InferenceRequest",
    "RequestedOutput",
    "Tensor",
    "cached_on",
    "parameter_name",
]

T = TypeVar("T")

Family = Literal["float", "int", "uint", "bool", "bytes"]


@dataclass(frozen=True)
class Datatype:
    """One tensor datatype: its name, numpy dtype (little-endian) and family."""

    name: str
    dtype: np.dtype[Any] | None
    family: Family

    @property
    def itemsize(self) -> int:
        """Bytes per element in the binary form (0 for BYTES: each element says its size)."""
        return 0 if self.dtype is None else self.dtype.itemsize

    @property
    def numeric(self) -> bool:
        return self.family in ("float", "int", "uint")


def _types() -> dict[str, Datatype]:
    table = {"BOOL": Datatype("BOOL", np.dtype("|b1"), "bool")}
    table["BYTES"] = Datatype("BYTES", None, "bytes")
    for bits in (8, 16, 32, 64):
        table[f"INT{bits}"] = Datatype(f"INT{bits}", np.dtype(f"<i{bits // 8}"), "int")
        table[f"UINT{bits}"] = Datatype(f"UINT{bits}", np.dtype(f"<u{bits // 8}"), "uint")
    for bits in (16, 32, 64):
        table[f"FP{bits}"] = Datatype(f"FP{bits}", np.dtype(f"<f{bits // 8}"), "float")
    return table


DATATYPES: Mapping[str, Datatype] = _types()
"""Every datatype servefn reads and writes, by protocol name (BF16 is not among them)."""

KNOWN_PARAMETERS = frozenset(
    {
        "binary_data",
        "binary_data_output",
        "binary_data_size",
        "classification",
        "content_type",
        "headers",
        "priority",
        "sequence_end",
        "sequence_id",
        "sequence_start",
        "shared_memory_byte_size",
        "shared_memory_offset",
        "shared_memory_region",
        "timeout",
    }
)
"""Parameter names of the protocol and its common extensions: an error may name one of these;
any other name a client sent is a client value, and is never echoed."""


def cached_on(owner: type, attribute: str, build: Callable[[], T]) -> T:
    """``build()``, kept on the class ``owner`` itself (a schema class): it lives as long as
    the class does, so no cache keeps the schemas of a model that was evicted alive."""
    found: T | None = owner.__dict__.get(attribute)
    if found is None:
        found = build()
        setattr(owner, attribute, found)
    return found


def parameter_name(name: str) -> str:
    """``name`` quoted when it is a known protocol parameter, else a neutral description."""
    return f"'{name}'" if name in KNOWN_PARAMETERS else "(a name this server does not know)"


class InferenceError(Exception):
    """A request the protocol answers with ``{"error": message}`` and ``status``.

    The message names inputs, outputs and parameters by the model's own names or by position,
    never by a value the client sent.
    """

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"InferenceError({self.status}, {self.message!r})"


@dataclass(slots=True)
class Tensor:
    """One decoded input tensor.

    ``values`` holds ``prod(shape)`` elements in row-major order: a Python list (from JSON,
    None where missing), or a float64 array for numbers sent in binary form.
    ``position`` is its index in the request's ``inputs``, for messages.
    """

    name: str
    datatype: Datatype
    shape: tuple[int, ...]
    values: Any
    position: int


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """An entry of the request's ``outputs``: a name, and its ``binary_data`` choice if given."""

    name: str
    binary: bool | None
    position: int


@dataclass(slots=True)
class InferenceRequest:
    """A decoded inference request: inputs, the outputs asked for (None: all), the
    request-level ``binary_data_output`` and the request's ``id`` (echoed in the answer)."""

    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None
    binary_output: bool
    id: str | None = None
