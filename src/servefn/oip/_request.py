"""An inference request's JSON header -> :class:`InferenceRequest`, its tensors decoded.

The header is parsed strictly (no NaN literals, no duplicate keys) and held against the
protocol: known fields only, each of its type; shapes of non-negative integers; datatypes of
the protocol; ``data`` (flat or nested, row-major) or ``parameters.binary_data_size`` for each
input, never both. JSON elements must be of their datatype's kind (no number from a string, no
bool for a number); ``null`` is a missing value. Parameters servefn does not honour are refused
by name, so a client never mistakes an ignored option for an honoured one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import chain
from typing import Any

import jiter

from servefn.oip._binary import decode_binary
from servefn.oip._tensors import (
    DATATYPES,
    Datatype,
    InferenceError,
    InferenceRequest,
    RequestedOutput,
    Tensor,
    parameter_name,
)

__all__ = ["MAX_DIMENSIONS", "MAX_ID_LENGTH", "MAX_TENSORS", "read_request"]

MAX_TENSORS = 4096
"""Inputs or outputs one request may name (a model has at most that many columns)."""
MAX_DIMENSIONS = 8
MAX_ID_LENGTH = 256
MAX_NAME_LENGTH = 1024
_REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_FIELDS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_FIELDS = frozenset({"name", "parameters"})
_REQUEST_PARAMETERS = {"binary_data_output": bool}
_INPUT_PARAMETERS = {"binary_data_size": int}
_OUTPUT_PARAMETERS = {"binary_data": bool}
_NONE = type(None)
_JSON_TYPES = {  # None: a missing value
    "float": frozenset({int, float, _NONE}),
    "int": frozenset({int, _NONE}),
    "uint": frozenset({int, _NONE}),
    "bool": frozenset({bool, _NONE}),
    "bytes": frozenset({str, _NONE}),
}
_JSON_KINDS = {
    "float": "numbers (or null)",
    "int": "integers (or null)",
    "uint": "integers (or null)",
    "bool": "true or false (or null)",
    "bytes": "strings (or null)",
}
_INT_BOUND = 1 << 64
_FLOAT_BOUND = 1 << 1024  # the first integer a float64 cannot hold
_ABSENT = object()


def read_request(
    header: bytes, binary: memoryview | None, *, max_elements: int
) -> InferenceRequest:
    """Decode a request's JSON header (and the binary data after it) into tensors.

    ``max_elements`` bounds every tensor's element count (a shape is checked before anything
    of its size is allocated).
    """
    document = _parse(header, catch_duplicate_keys=False)
    request, keys = _read(document, binary, max_elements)
    if header.count(b":") > keys:  # room for a repeated key (or a colon inside a string)
        _parse(header, catch_duplicate_keys=True)
    return request


def _parse(header: bytes, *, catch_duplicate_keys: bool) -> dict[str, Any]:
    """The JSON header as a dict, or a 400 saying why it is not one."""
    try:
        document = jiter.from_json(
            header, allow_inf_nan=False, catch_duplicate_keys=catch_duplicate_keys
        )
    except ValueError as exc:
        reason = str(exc).split("\n", 1)[0]
        if reason.startswith("Detected duplicate key"):
            reason = "an object has a duplicate key at line " + reason.rpartition(" at line ")[2]
        raise InferenceError(400, f"the request is not valid JSON: {reason[:200]}") from None
    if not isinstance(document, dict):
        raise InferenceError(400, "the request must be a JSON object with an 'inputs' list")
    return document


def _read(
    document: dict[str, Any], binary: memoryview | None, max_elements: int
) -> tuple[InferenceRequest, int]:
    """The request, and how many keys its objects hold (for the duplicate-key check)."""
    _known_fields(document, _REQUEST_FIELDS, "the request")
    keys = len(document)
    request_id = document.get("id")
    if request_id is not None and not (
        type(request_id) is str and len(request_id) <= MAX_ID_LENGTH
    ):
        raise InferenceError(400, f"'id' must be a string of at most {MAX_ID_LENGTH} characters")
    binary_output = False
    parameters = document.get("parameters")
    if parameters is not None:
        parameters = _parameters(parameters, _REQUEST_PARAMETERS, "the request")
        keys += len(parameters)
        binary_output = parameters.get("binary_data_output", False)
    inputs = document.get("inputs")
    if type(inputs) is not list or not inputs or len(inputs) > MAX_TENSORS:
        inputs = _list(inputs, "inputs", required=True)  # raises, saying why
    offset = 0
    tensors = []
    for position, item in enumerate(inputs):
        tensor, used, held = _input(item, position, binary, offset, max_elements)
        tensors.append(tensor)
        offset += used
        keys += held
    if binary is not None and offset != len(binary):
        raise InferenceError(
            400,
            f"the binary data after the JSON header is {len(binary)} bytes but the inputs' "
            f"binary_data_size add up to {offset}",
        )
    outputs = None
    if "outputs" in document:  # an empty list, like none, asks for every output
        asked = _list(document["outputs"], "outputs")
        outputs = [_output(item, i) for i, item in enumerate(asked)] or None
        keys += sum(len(item) + len(item.get("parameters") or ()) for item in asked)
    return InferenceRequest(tensors, outputs, binary_output, request_id), keys


def _input(
    item: Any, position: int, binary: memoryview | None, offset: int, max_elements: int
) -> tuple[Tensor, int, int]:
    """One input tensor, how many binary bytes it took and how many keys it holds."""
    try:
        name, shape = item["name"], item["shape"]
        datatype = DATATYPES[item["datatype"]]
    except (TypeError, KeyError):  # not an object, a field missing, an unknown datatype
        raise _input_error(item, position) from None
    if not (
        item.keys() <= _INPUT_FIELDS
        and type(name) is str
        and 0 < len(name) <= MAX_NAME_LENGTH
        and type(shape) is list
        and (
            (len(shape) == 1 and type(shape[0]) is int and shape[0] >= 0)
            or (0 < len(shape) <= MAX_DIMENSIONS and all(type(d) is int and d >= 0 for d in shape))
        )
    ):
        raise _input_error(item, position)
    count = shape[0] if len(shape) == 1 else math.prod(shape)
    if count > max_elements:
        raise InferenceError(
            413,
            f"input #{position} has more elements than the body size limit allows; send fewer rows",
        )
    data = item.get("data", _ABSENT)
    if type(data) is list and len(data) == count and "parameters" not in item:
        found = set(map(type, data))  # flat data of plain values: the common case, done here
        if int not in found and found <= _JSON_TYPES[datatype.family]:
            return Tensor(name, datatype, tuple(shape), data, position), 0, len(item)
    if data is _ABSENT or "parameters" in item:
        return _binary_input(item, position, datatype, tuple(shape), binary, offset)
    values = _json_values(data, datatype, count, position)
    return Tensor(name, datatype, tuple(shape), values, position), 0, len(item)


def _input_error(item: Any, position: int) -> InferenceError:
    """What is wrong with an input that failed :func:`_input`'s checks."""
    where = f"input #{position}"
    if type(item) is not dict:
        return InferenceError(400, f"{where} must be an object with name, shape and datatype")
    if not item.keys() <= _INPUT_FIELDS:
        return _unknown_field(_INPUT_FIELDS, where)
    name = item.get("name")
    if type(name) is not str or not 0 < len(name) <= MAX_NAME_LENGTH:
        return InferenceError(400, f"{where} needs a 'name' (a non-empty string)")
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:
        return InferenceError(
            400, f"{where}: 'datatype' must be one of {', '.join(DATATYPES)} (BF16 is not read)"
        )
    return InferenceError(
        400, f"{where}: 'shape' must be a list of 1 to {MAX_DIMENSIONS} non-negative integers"
    )


def _binary_input(
    item: dict[str, Any],
    position: int,
    datatype: Datatype,
    shape: tuple[int, ...],
    binary: memoryview | None,
    offset: int,
) -> tuple[Tensor, int, int]:
    """An input with parameters: its binary data (or its JSON data, when the parameters do
    not say binary_data_size)."""
    where = f"input #{position}"
    parameters = _parameters(item.get("parameters"), _INPUT_PARAMETERS, where)
    keys = len(item) + len(parameters)
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in item:
            raise InferenceError(400, f"{where} has neither 'data' nor binary_data_size")
        values = _json_values(item["data"], datatype, math.prod(shape), position)
        return Tensor(item["name"], datatype, shape, values, position), 0, keys
    if "data" in item:
        raise InferenceError(400, f"{where} has both 'data' and binary_data_size; send one")
    if binary is None:
        raise InferenceError(
            400,
            f"{where} has binary_data_size but the request has no "
            "Inference-Header-Content-Length header",
        )
    if size < 0 or size > len(binary) - offset:
        raise InferenceError(
            400, f"{where}: binary_data_size is larger than the binary data that is left"
        )
    values = decode_binary(binary[offset : offset + size], datatype, math.prod(shape), where)
    return Tensor(item["name"], datatype, shape, values, position), size, keys


def _json_values(data: Any, datatype: Datatype, count: int, position: int) -> list[Any]:
    """JSON ``data`` (flat or nested) as a flat list, each element of the datatype's kind:
    numbers for FP (integers for INT/UINT, within 64 bits), bools for BOOL, strings for
    BYTES; ``null`` (None) is a missing value."""
    if type(data) is not list:
        raise InferenceError(400, f"input #{position}: 'data' must be a list")
    flat = data if not data or type(data[0]) is not list else _flatten(data, position)
    if len(flat) != count:
        raise InferenceError(
            400, f"input #{position} has {len(flat)} data elements but its shape holds {count}"
        )
    found = set(map(type, flat))
    if not found <= _JSON_TYPES[datatype.family]:
        kinds = _JSON_KINDS[datatype.family]
        raise InferenceError(400, f"input #{position}: {datatype.name} data must be {kinds}")
    bound = _FLOAT_BOUND if datatype.family == "float" else _INT_BOUND
    if int in found and not all(-bound < v < bound for v in flat if type(v) is int):
        raise InferenceError(400, f"input #{position}: a value is out of the {datatype.name} range")
    return flat


def _flatten(data: list[Any], position: int) -> list[Any]:
    """Row-major elements of nested lists (a level that mixes lists and values is refused by
    the element check that follows)."""
    flat = data
    for _ in range(MAX_DIMENSIONS):
        if not flat or type(flat[0]) is not list:
            return flat
        if not all(type(v) is list for v in flat):
            raise InferenceError(
                400, f"input #{position}: 'data' mixes lists and values at one level"
            )
        flat = list(chain.from_iterable(flat))
    raise InferenceError(
        400, f"input #{position}: 'data' is nested more than {MAX_DIMENSIONS} levels"
    )


def _output(item: Any, position: int) -> RequestedOutput:
    where = f"output #{position}"
    if not isinstance(item, dict):
        raise InferenceError(400, f"{where} must be an object with a name")
    _known_fields(item, _OUTPUT_FIELDS, where)
    name = item.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
        raise InferenceError(400, f"{where} needs a 'name' (a non-empty string)")
    parameters = _parameters(item.get("parameters"), _OUTPUT_PARAMETERS, where)
    return RequestedOutput(name, parameters.get("binary_data"), position)


def _parameters(value: Any, allowed: Mapping[str, type], where: str) -> dict[str, Any]:
    """A ``parameters`` object holding only ``allowed`` names, each of its type."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InferenceError(400, f"{where}: 'parameters' must be an object")
    for key, item in value.items():
        kind = allowed.get(key)
        if kind is None:
            supported = ", ".join(allowed)
            raise InferenceError(
                400,
                f"{where}: the parameter {parameter_name(key)} is not supported; "
                f"servefn honours {supported} here",
            )
        if type(item) is not kind:
            raise InferenceError(400, f"{where}: the parameter '{key}' must be a {kind.__name__}")
    return value


def _list(value: Any, name: str, *, required: bool = False) -> list[Any]:
    if not isinstance(value, list) or (required and not value):
        raise InferenceError(400, f"'{name}' must be a {'non-empty ' if required else ''}list")
    if len(value) > MAX_TENSORS:
        raise InferenceError(400, f"'{name}' has more than {MAX_TENSORS} entries")
    return value


def _known_fields(document: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    if not document.keys() <= allowed:
        raise _unknown_field(allowed, where)


def _unknown_field(allowed: frozenset[str], where: str) -> InferenceError:
    return InferenceError(
        400,
        f"{where} has a field the protocol does not define; its fields are "
        f"{', '.join(sorted(allowed))}",
    )
