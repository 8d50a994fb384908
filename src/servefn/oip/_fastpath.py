"""The common request, decoded in one pass: one row of plain float features.

A tabular model's typical request sends each input as one FP16/FP32/FP64 value, in JSON or in
binary form. For a model whose features are plain floats (``InputPlan.plain``: nothing to
validate beyond finite numbers), a validator built once per model's schemas parses and checks
that whole header in pydantic-core, in one pass, instead of walking it in Python. Whatever it
does not accept (another form or shape, a NaN, a parameter, a repeated key...) goes to the
general path, which decides and names the problem: the fast path changes no answer, only the
time it takes to give one (``tests/oip`` compares both paths).
"""

from __future__ import annotations

import struct
from typing import Any

from pydantic_core import SchemaValidator, ValidationError, core_schema

from servefn.http._features import FEATURE_LIMIT
from servefn.oip._inputs import InputPlan, input_plan
from servefn.oip._request import MAX_ID_LENGTH
from servefn.oip._response import output_plan
from servefn.oip._tensors import InferenceRequest, RequestedOutput
from servefn.schema._schema import Schema

__all__ = ["FastRow", "fast_row"]

_ONE = ([1], [1, 1])
_FLOATS = {"FP16": struct.Struct("<e"), "FP32": struct.Struct("<f"), "FP64": struct.Struct("<d")}


def fast_row(input_schema: type[Schema], output_schema: type[Schema]) -> FastRow | None:
    """The fast path for a model's schemas, or None when its inputs are not plain floats."""
    plan = input_plan(input_schema)
    if not plan.plain:
        return None
    return FastRow(plan, tuple(output_plan(output_schema).columns))


class FastRow:
    """Decodes one row of ``plan``'s features from a header, or says it cannot (None)."""

    def __init__(self, plan: InputPlan, outputs: tuple[str, ...]) -> None:
        self._index = {c.name: i for i, c in enumerate(plan.features)}
        self._width = plan.n_features
        self._validator = _request_validator(tuple(self._index), outputs, plan.n_features)

    def decode(
        self, header: bytes, binary: memoryview | None
    ) -> tuple[list[float], InferenceRequest] | None:
        """(the row, the request's output choices) or None: the general path decides."""
        try:
            document = self._validator.validate_json(header)
        except ValidationError:
            return None
        row: list[Any] = [None] * self._width
        index = self._index
        if binary is None:  # JSON: every input {name, shape, datatype, data}
            for item in document["inputs"]:
                i = index[item["name"]]
                data = item.get("data")
                if data is None or row[i] is not None or len(item) != 4:
                    return None
                if item["shape"] not in _ONE:
                    return None
                row[i] = data[0]
        else:  # binary: every input {name, shape, datatype, parameters: {binary_data_size}}
            offset, end = 0, len(binary)
            for item in document["inputs"]:
                i = index[item["name"]]
                parameters = item.get("parameters")
                if parameters is None or row[i] is not None or len(item) != 4:
                    return None
                layout = _FLOATS[item["datatype"]]
                size = layout.size
                if item["shape"] not in _ONE or parameters["binary_data_size"] != size:
                    return None
                if offset + size > end:
                    return None
                row[i] = layout.unpack_from(binary, offset)[0]
                offset += size
            if offset != end:
                return None
        total = sum(row)  # floats (validated or unpacked): NaN or infinite when one is
        if total - total != 0 or min(row) < -FEATURE_LIMIT or max(row) > FEATURE_LIMIT:
            return None
        keys = len(document) + (4 if binary is None else 5) * self._width
        if len(document) == 1:  # inputs only: every output, in JSON
            request = InferenceRequest([], None, False, None)
        else:
            request = _request(document)
            keys += _keys(document)
        if header.count(b":") > keys:  # room for a repeated key: the general path checks
            return None
        return row, request


def _request(document: dict[str, Any]) -> InferenceRequest:
    outputs = None
    if document.get("outputs"):
        outputs = [
            RequestedOutput(o["name"], o.get("parameters", {}).get("binary_data"), position)
            for position, o in enumerate(document["outputs"])
        ]
    binary = document.get("parameters", {}).get("binary_data_output", False)
    return InferenceRequest([], outputs, binary, document.get("id"))


def _keys(document: dict[str, Any]) -> int:
    """Keys of the request's parameters and outputs (the inputs' are counted as they are read)."""
    keys = len(document.get("parameters", ()))
    for output in document.get("outputs", ()):
        keys += len(output) + len(output.get("parameters", ()))
    return keys


def _request_validator(names: tuple[str, ...], outputs: tuple[str, ...], width: int) -> Any:
    """A strict pydantic-core validator of the requests the fast path takes."""

    boolean = core_schema.bool_schema(strict=True)
    number = core_schema.float_schema(strict=True, allow_inf_nan=False)
    integers = core_schema.list_schema(core_schema.int_schema(strict=True), strict=True)
    one_input = _typed_dict(
        {
            "name": (core_schema.literal_schema(list(names)), True),
            "shape": (integers, True),
            "datatype": (core_schema.literal_schema(list(_FLOATS)), True),
            "data": (
                core_schema.list_schema(number, min_length=1, max_length=1, strict=True),
                False,
            ),
            "parameters": (
                _typed_dict({"binary_data_size": (core_schema.int_schema(strict=True), True)}),
                False,
            ),
        }
    )
    one_output = _typed_dict(
        {
            "name": (core_schema.literal_schema(list(outputs)), True),
            "parameters": (_typed_dict({"binary_data": (boolean, False)}), False),
        }
    )
    request = _typed_dict(
        {
            "id": (core_schema.str_schema(strict=True, max_length=MAX_ID_LENGTH), False),
            "parameters": (_typed_dict({"binary_data_output": (boolean, False)}), False),
            "inputs": (
                core_schema.list_schema(one_input, min_length=width, max_length=width, strict=True),
                True,
            ),
            "outputs": (
                core_schema.list_schema(one_output, max_length=len(outputs), strict=True),
                False,
            ),
        }
    )
    return SchemaValidator(request)


def _typed_dict(fields: dict[str, tuple[Any, bool]]) -> Any:
    """A strict JSON object of exactly these fields: name -> (schema, required)."""
    return core_schema.typed_dict_schema(
        {
            name: core_schema.typed_dict_field(schema, required=required)
            for name, (schema, required) in fields.items()
        },
        extra_behavior="forbid",
        strict=True,
    )
