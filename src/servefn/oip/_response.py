"""A model's outputs -> the protocol's response: named tensors, in JSON or in binary form.

Each output column of the output schema is one tensor: text as BYTES, integers as INT64,
booleans as BOOL, numbers as FP64 ``[N]`` and vector columns (class scores) as FP64 ``[N, k]``.
An output goes in binary form when the request asks (``binary_data_output``, or the output's own
``binary_data``): the JSON header then says its ``binary_data_size`` and the bytes follow the
header, whose length the ``Inference-Header-Content-Length`` response header gives.
A model output that cannot be sent as declared (wrong row count, NaN, infinity) is a model
failure: an exception for the caller to answer as a 500.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic_core

from servefn.errors import ServefnError
from servefn.http._messages import JSON, Response
from servefn.oip._binary import encode_bytes
from servefn.oip._tensors import InferenceError, InferenceRequest, cached_on
from servefn.schema import layout_of
from servefn.schema._schema import Column, Schema

__all__ = [
    "BINARY_MEDIA_TYPE",
    "OUTPUT_DATATYPES",
    "OutputPlan",
    "OutputTensor",
    "encode_response",
    "output_plan",
]

BINARY_MEDIA_TYPE = "application/octet-stream"
OUTPUT_DATATYPES = {
    "str": "BYTES",
    "int": "INT64",
    "bool": "BOOL",
    "float": "FP64",
    "vector": "FP64",
}
"""The datatype of an output column, by its kind."""
_PLAIN = {"str": str, "int": int, "bool": bool, "float": float}
_STRUCT_CODES = {"FP64": "d", "INT64": "q", "BOOL": "?"}
_STRUCT_LIMIT = 256


@dataclass(slots=True)
class OutputTensor:
    """One output: ``values`` is a numpy array, or a flat list of Python values (BYTES, and
    one row as a predictor's ``predict_row`` gives it)."""

    name: str
    datatype: str
    shape: list[int]
    values: Any
    binary: bool

    def data(self) -> list[Any]:
        """The elements, flat and row-major, as JSON values."""
        return self.values if type(self.values) is list else self.values.ravel().tolist()

    def raw(self) -> bytes:
        """The elements in the binary form."""
        if self.datatype == "BYTES":
            return encode_bytes(self.values)
        code = _STRUCT_CODES[self.datatype]
        if type(self.values) is list and len(self.values) <= _STRUCT_LIMIT:
            return struct.pack(f"<{len(self.values)}{code}", *self.values)
        array: np.ndarray = np.ascontiguousarray(self.values, dtype=f"<{code}")
        return array.tobytes()


def output_plan(schema: type[Schema]) -> OutputPlan:
    """The plan for ``schema``, built once per schema class (and kept on it)."""
    return cached_on(schema, "__servefn_oip_outputs__", lambda: OutputPlan(schema))


class OutputPlan:
    """Which tensors an output schema answers with, and how its columns become them."""

    def __init__(self, schema: type[Schema]) -> None:
        layout = layout_of(schema)
        self.columns = {c.name: c for c in layout.columns if c.role != "ignore"}

    def tensors(
        self, outputs: Mapping[str, Any], rows: int, request: InferenceRequest
    ) -> list[OutputTensor]:
        """The outputs the request asks for (all by default), in the order it asks."""
        default = request.binary_output
        if request.outputs is None:
            return [_tensor(c, outputs, rows, default) for c in self.columns.values()]
        wanted = []
        for asked in request.outputs:
            column = self.columns.get(asked.name)
            if column is None:
                raise InferenceError(
                    400,
                    f"output #{asked.position} is not one of the model's outputs "
                    f"({', '.join(self.columns)})",
                )
            wanted.append((column, default if asked.binary is None else asked.binary))
        return [_tensor(column, outputs, rows, binary) for column, binary in wanted]


def _tensor(column: Column, outputs: Mapping[str, Any], rows: int, binary: bool) -> OutputTensor:
    values = outputs.get(column.name)
    if values is None:
        raise ServefnError(f"the model produced no {column.name} output")
    kind = column.kind
    if rows == 1 and type(values) is list and len(values) == 1:  # one row of Python values
        value = values[0]
        if kind == "vector":
            if type(value) is list and value and all(type(v) is float for v in value):
                total = sum(value)
                if total - total == 0:  # every score finite
                    return OutputTensor(column.name, "FP64", [1, len(value)], value, binary)
        elif type(value) is _PLAIN[kind] and (kind != "float" or _finite(value)):
            return OutputTensor(column.name, OUTPUT_DATATYPES[kind], [1], values, binary)
    return _array_tensor(column, values, rows, binary)


def _finite(value: Any) -> bool:
    return bool(value - value == 0)  # False for NaN and infinities


def _array_tensor(column: Column, values: Any, rows: int, binary: bool) -> OutputTensor:
    """A column of any rows, as numpy arrays (or a list of str), checked."""
    datatype = OUTPUT_DATATYPES[column.kind]
    if column.kind == "str":
        texts = values.tolist() if isinstance(values, np.ndarray) else list(values)
        _check_rows(column, len(texts), rows)
        texts = [v if type(v) is str else _text(column, v) for v in texts]
        return OutputTensor(column.name, datatype, [rows], texts, binary)
    array = np.asarray(values)
    if column.kind == "bool":
        if array.dtype.kind != "b":
            raise ServefnError(f"the model's {column.name} output is not boolean")
    elif column.kind == "int":
        array = _integers(column, array)
    else:
        array = array.astype(np.float64, copy=False)
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            raise ServefnError(f"the model returned non-finite {column.name} values")
    expected = 2 if column.kind == "vector" else 1
    if array.ndim != expected:
        raise ServefnError(f"the model's {column.name} output has {array.ndim} dimensions")
    _check_rows(column, len(array), rows)
    return OutputTensor(column.name, datatype, list(array.shape), array, binary)


def _integers(column: Column, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind in "iub":
        return array.astype(np.int64, copy=False)
    if array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all():
        return array.astype(np.int64)
    raise ServefnError(f"the model's {column.name} output is not integral")


def _text(column: Column, value: Any) -> str:
    if value is None:
        raise ServefnError(f"the model returned a missing {column.name} value")
    return str(value)


def _check_rows(column: Column, found: int, rows: int) -> None:
    if found != rows:
        raise ServefnError(f"the model returned {found} {column.name} values for {rows} rows")


def encode_response(
    model_name: str,
    model_version: str,
    sha256_prefix: str,
    request: InferenceRequest,
    tensors: Sequence[OutputTensor],
) -> Response:
    """The 200 answer: JSON, or a JSON header and binary outputs after it; ``X-Model-Version``
    is the model's ``sha256_prefix``, as servefn's other routes report it."""
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        document["id"] = request.id
    outputs = []
    raw = []
    for tensor in tensors:
        item: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if tensor.binary:
            data = tensor.raw()
            item["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            item["data"] = tensor.data()
        outputs.append(item)
    document["outputs"] = outputs
    header = pydantic_core.to_json(document)
    headers = {"X-Model-Version": sha256_prefix}
    if not raw:
        return Response(200, header, JSON, headers)
    headers["Inference-Header-Content-Length"] = str(len(header))
    return Response(200, b"".join([header, *raw]), BINARY_MEDIA_TYPE, headers)
