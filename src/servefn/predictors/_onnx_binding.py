"""How an ONNX graph meets servefn's schemas: which feature-matrix columns feed each graph input,
which graph output gives each output column, and the checks and conversions between them.

:class:`~.onnx.OnnxPredictor` holds a list of :class:`GraphInput` and :class:`GraphOutput`;
this module checks them against the graph's declared inputs and outputs (from
:func:`~._onnx_graph.read_graph`), reads and writes them as manifest parameters (column indices
as ``[start, stop)`` runs, so 784 pixel columns are one pair), and turns a feature matrix into
the tensors each input takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors._onnx_graph import Dim, GraphInfo, ValueInfo

__all__ = [
    "FLOAT_TYPES",
    "INPUT_TYPES",
    "MAX_FEATURES",
    "ROLES",
    "GraphInput",
    "GraphOutput",
    "OutputRole",
    "check_inputs",
    "check_outputs",
    "describe",
    "feed",
    "missing_flags",
    "parse_inputs",
    "parse_outputs",
    "ranges",
    "shown",
]

OutputRole = Literal["label", "scores", "values", "argmax"]
ROLES: tuple[str, ...] = ("label", "scores", "values", "argmax")
INPUT_TYPES: dict[str, type[np.generic]] = {
    "float": np.float32,
    "double": np.float64,
    "float16": np.float16,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "bool": np.bool_,
    "string": np.object_,
}
"""Graph input element types a feature matrix can feed, and the numpy type each is given as."""
FLOAT_TYPES = ("float", "double", "float16")
MAX_FEATURES = 1 << 18  # the manifest's cap on a schema's features (model/_limits.py)


@dataclass(frozen=True)
class GraphInput:
    """A graph input, its element type and the feature-matrix ``columns`` it takes, in order.

    The graph's declared shape says how the columns are fed: rank 1 takes one column as
    ``[N]``, rank 2 ``[N, len(columns)]``, a higher rank reshapes each row into its fixed
    trailing dimensions (an image ``[N, 1, 28, 28]`` from 784 columns); a fixed batch dimension
    of 1 is fed one row at a time.
    """

    name: str
    type: str
    columns: tuple[int, ...]


@dataclass(frozen=True)
class GraphOutput:
    """An output column (``name``, its wire name) taken from the graph output ``source``."""

    name: str
    source: str
    role: OutputRole


def check_inputs(
    info: GraphInfo, inputs: Sequence[GraphInput], n_features: int
) -> dict[str, tuple[Dim, ...] | None]:
    """Every graph input fed once, with columns that exist, in a shape and type it takes;
    returns each input's declared shape."""
    declared = {i.name: i for i in info.inputs}
    fed = [i.name for i in inputs]
    missing = [name for name in declared if name not in fed]
    unknown = [name for name in fed if name not in declared]
    if missing or unknown or len(set(fed)) != len(fed):
        raise PredictorError(
            f"the inputs bound to the graph ({fed}) must be its inputs, each once; it has "
            f"{describe(info.inputs)}"
        )
    for spec in inputs:
        graph_input = declared[spec.name]
        where = f"graph input {spec.name!r}"
        if graph_input.kind != "tensor" or graph_input.type_name != spec.type:
            raise PredictorError(
                f"{where} is {graph_input.describe()}, not a tensor of {spec.type}"
            )
        if spec.type not in INPUT_TYPES:
            raise PredictorError(
                f"{where} takes {spec.type}; a feature matrix feeds {sorted(INPUT_TYPES)}"
            )
        if not spec.columns or not all(0 <= c < n_features for c in spec.columns):
            raise PredictorError(f"{where} must take columns 0 to {n_features - 1}")
        _check_shape(where, graph_input.shape, len(spec.columns))
    return {name: declared[name].shape for name in fed}


def shown(shape: tuple[Dim, ...] | None) -> str:
    return (
        "?" if shape is None else "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
    )


def _check_shape(where: str, shape: tuple[Dim, ...] | None, width: int) -> None:
    if shape is None:
        return
    text = shown(shape)
    if not shape:
        raise PredictorError(f"{where} is a scalar; it cannot take rows of features")
    batch = shape[0]
    if isinstance(batch, int) and batch != 1:
        raise PredictorError(
            f"{where} has a fixed batch of {batch} rows (shape {text}); export it with a "
            "dynamic first dimension (torch.onnx.export(..., dynamic_axes={name: {0: 'N'}}))"
        )
    tail = shape[1:]
    if len(tail) == 0 and width == 1:
        return
    if len(tail) == 1 and (not isinstance(tail[0], int) or tail[0] == width):
        return
    static = [d for d in tail if isinstance(d, int)]
    if len(static) == len(tail) and len(tail) > 1 and math.prod(static) == width:
        return
    raise PredictorError(
        f"{where} has shape {text}, which {width} feature(s) per row cannot fill; map it to "
        "as many features as its row holds"
    )


def check_outputs(
    info: GraphInfo, outputs: Sequence[GraphOutput], classes: NDArray[Any] | None
) -> None:
    declared = {o.name: o for o in info.outputs}
    names = [o.name for o in outputs]
    if not outputs or len(set(names)) != len(names):
        raise PredictorError(f"the output columns {names} must be named once each")
    for spec in outputs:
        graph_output = declared.get(spec.source)
        if graph_output is None:
            raise PredictorError(
                f"output column {spec.name!r} comes from {spec.source!r}, which the graph does "
                f"not have; its outputs are {describe(info.outputs)}"
            )
        if spec.role not in ROLES:
            raise PredictorError(f"output column {spec.name!r}: 'as' must be one of {ROLES}")
        if graph_output.kind != "tensor":
            raise PredictorError(
                f"output column {spec.name!r} comes from {graph_output.describe()}, which is "
                "not a tensor; a converted classifier's ZipMap output (a list of maps) cannot be "
                "served: convert it without ZipMap (skl2onnx options={'zipmap': False}, "
                "onnxmltools zipmap=False) and map its probabilities tensor"
            )
        if spec.role == "argmax" and classes is None:
            raise PredictorError(
                f"output column {spec.name!r} is the argmax of {spec.source!r}, which needs "
                "the classes in score order: pass classes=[...]"
            )


def missing_flags(
    accepts: bool | Sequence[bool], inputs: Sequence[GraphInput], n_features: int
) -> tuple[bool, ...]:
    """One flag per feature; False where a column feeds an input that cannot hold NaN."""
    if isinstance(accepts, bool):
        flags = [accepts] * n_features
    else:
        flags = [bool(a) for a in accepts]
        if len(flags) != n_features:
            raise PredictorError(
                f"accepts_missing lists {len(flags)} flags for {n_features} features"
            )
    for spec in inputs:
        if spec.type not in FLOAT_TYPES:
            for c in spec.columns:
                flags[c] = False
    return tuple(flags)


def feed(X: NDArray[Any], spec: GraphInput, shape: tuple[Dim, ...] | None) -> NDArray[Any]:
    """The columns of ``X`` an input takes, as its element type and shape."""
    columns = spec.columns
    first, count = columns[0], len(columns)
    contiguous = columns == tuple(range(first, first + count))
    part = X[:, first : first + count] if contiguous else X[:, list(columns)]
    n = X.shape[0]
    if spec.type == "string":
        if part.dtype != object or not all(type(v) is str for v in part.flat):
            raise PredictorError(
                f"graph input {spec.name!r} takes text; its features must be text columns"
            )
        values = part
    elif spec.type in FLOAT_TYPES:
        values = part.astype(INPUT_TYPES[spec.type], copy=False)
    else:
        numbers = part.astype(np.float64, copy=False)
        if not np.isfinite(numbers).all() or (numbers != np.trunc(numbers)).any():
            raise PredictorError(
                f"graph input {spec.name!r} takes {spec.type}; its features must be whole numbers"
            )
        values = numbers.astype(INPUT_TYPES[spec.type])
    if shape is None or len(shape) == 2:
        return np.ascontiguousarray(values)
    if len(shape) == 1:
        return np.ascontiguousarray(values.reshape(n))
    return np.ascontiguousarray(values.reshape(n, *(int(d) for d in shape[1:] if d is not None)))


def describe(values: Sequence[ValueInfo]) -> str:
    """A graph's inputs or outputs for a message: names, types and shapes."""
    return "[" + ", ".join(v.describe() for v in values) + "]" if values else "none"


def ranges(columns: Sequence[int]) -> list[list[int]]:
    """Column indices as ``[start, stop)`` runs: 784 pixel columns are one pair."""
    runs: list[list[int]] = []
    for c in columns:
        if runs and runs[-1][1] == c:
            runs[-1][1] = c + 1
        else:
            runs.append([c, c + 1])
    return runs


def parse_inputs(raw: Any, n_features: int) -> list[GraphInput]:
    if not isinstance(raw, list) or not raw:
        raise PredictorError("onnx parameters need inputs: a list of graph inputs")
    inputs = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise PredictorError("onnx parameters: each input needs a name")
        kind, runs = item.get("type"), item.get("columns")
        if kind not in INPUT_TYPES:
            raise PredictorError(f"onnx parameters: input {item['name']!r} has an unknown type")
        columns: list[int] = []
        if not isinstance(runs, list):
            runs = None
        for run in runs or [None]:
            if not (
                isinstance(run, list)
                and len(run) == 2
                and all(type(c) is int for c in run)
                and 0 <= run[0] < run[1] <= n_features
                and len(columns) + run[1] - run[0] <= n_features
            ):
                raise PredictorError(
                    f"onnx parameters: input {item['name']!r} needs columns as [start, stop) "
                    f"runs within 0-{n_features}"
                )
            columns.extend(range(run[0], run[1]))
        inputs.append(GraphInput(item["name"], kind, tuple(columns)))
    return inputs


def parse_outputs(raw: Any) -> list[GraphOutput]:
    if not isinstance(raw, list) or not raw:
        raise PredictorError("onnx parameters need outputs: a list of output columns")
    outputs = []
    for item in raw:
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("from"), str)
            and item.get("as") in ROLES
        ):
            raise PredictorError(
                f"onnx parameters: each output needs a name, 'from' (a graph output) and 'as' "
                f"(one of {ROLES})"
            )
        outputs.append(GraphOutput(item["name"], item["from"], item["as"]))
    return outputs
