"""Which schema features feed an ONNX graph's inputs and which graph outputs give the output
columns: the mappings ``save`` takes as ``graph_inputs`` and ``graph_outputs``, checked when
given and inferred when unambiguous (the rules are in :mod:`.onnx_export`'s docstring).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from servefn.errors import PredictorError
from servefn.predictors._onnx_binding import (
    FLOAT_TYPES,
    GraphInput,
    GraphOutput,
    OutputRole,
    describe,
)
from servefn.predictors._onnx_graph import GraphInfo, ValueInfo
from servefn.schema import SchemaLayout

__all__ = ["bind_inputs", "bind_outputs"]

_LABEL_NAMES = ("label", "output_label", "predictedlabel")
_SCORE_NAMES = ("probabilities", "output_probability", "score", "variable")
_LABEL, _SCORE = "PredictedLabel", "Score"


def _columns(layout: SchemaLayout) -> tuple[dict[str, list[int]], set[int]]:
    """Feature name -> its matrix columns (a column's wire name -> all its slots, a slot's name
    ``v[i]`` -> one), and the columns that hold text."""
    lookup: dict[str, list[int]] = {}
    text: set[int] = set()
    start = 0
    for column in layout.features:
        slots = list(range(start, start + column.size))
        lookup[column.name] = slots
        if column.kind == "vector":
            for i, slot in enumerate(slots):
                lookup[f"{column.name}[{i}]"] = [slot]
        if column.kind == "str":
            text.update(slots)
        start += column.size
    return lookup, text


def bind_inputs(
    info: GraphInfo, layout: SchemaLayout, graph_inputs: Mapping[str, Sequence[str]] | None
) -> list[GraphInput]:
    """The graph's inputs with the feature-matrix columns each takes (see the module doc)."""
    lookup, text = _columns(layout)
    declared = {i.name: i for i in info.inputs}
    if graph_inputs is None:
        mapping = _infer_inputs(info, layout, lookup)
    else:
        if isinstance(graph_inputs, (str, bytes)) or not isinstance(graph_inputs, Mapping):
            raise PredictorError("graph_inputs must map graph input names to lists of features")
        mapping = {}
        for name, features in graph_inputs.items():
            if name not in declared:
                raise PredictorError(
                    f"graph_inputs names {name!r}, which is not an input of the graph; its "
                    f"inputs are {describe(info.inputs)}"
                )
            if isinstance(features, str):
                features = [features]
            unknown = [f for f in features if f not in lookup]
            if unknown or not features:
                raise PredictorError(
                    f"graph_inputs[{name!r}] lists {unknown or 'no features'}; the input "
                    f"schema's features are {list(layout.feature_names)[:20]}"
                )
            mapping[name] = [c for f in features for c in lookup[f]]
    bound = []
    for name, columns in mapping.items():
        value = declared[name]
        kind = value.type_name if value.kind == "tensor" else value.describe()
        wants_text = kind == "string"
        holds_text = [c in text for c in columns]
        if not all(holds_text) if wants_text else any(holds_text):
            raise PredictorError(
                f"graph input {value.describe()} takes {'text' if wants_text else 'numbers'}; "
                f"map it to {'text' if wants_text else 'number'} features only"
            )
        bound.append(GraphInput(name, kind, tuple(columns)))
    missing = [name for name in declared if name not in mapping]
    if missing:
        raise PredictorError(
            f"graph_inputs feeds {sorted(mapping)} but the graph also needs {missing}; its "
            f"inputs are {describe(info.inputs)}"
        )
    return bound


def _infer_inputs(
    info: GraphInfo, layout: SchemaLayout, lookup: Mapping[str, list[int]]
) -> dict[str, list[int]]:
    inputs, n = info.inputs, layout.n_features
    if len(inputs) == 1 and _holds_row(inputs[0], n):
        return {inputs[0].name: list(range(n))}
    if inputs and all(i.name in lookup for i in inputs):
        return {i.name: lookup[i.name] for i in inputs}
    example = {inputs[0].name: list(layout.feature_names[:3])} if inputs else {"input": ["..."]}
    raise PredictorError(
        f"cannot tell which of the input schema's {n} features "
        f"({', '.join(layout.feature_names[:10])}{' ...' if n > 10 else ''}) feed the graph's "
        f"inputs {describe(inputs)}; pass graph_inputs={example!r} (every graph input mapped "
        "to the features it takes, in order)"
    )


def _holds_row(value: ValueInfo, n: int) -> bool:
    """A tensor input whose row takes ``n`` features: ``[N, n]``, ``[N, ?]``, ``[N]`` for one
    feature, or fixed trailing dimensions holding ``n`` values."""
    if value.kind != "tensor" or value.shape is None:
        return value.kind == "tensor"
    if not value.shape:
        return False
    tail = value.shape[1:]
    if not tail:
        return n == 1
    if len(tail) == 1:
        return not isinstance(tail[0], int) or tail[0] == n
    static = [d for d in tail if isinstance(d, int)]
    return len(static) == len(tail) and math.prod(static) == n


def _norm(name: str) -> str:
    lowered = name.lower()
    return lowered[: -len(".output")] if lowered.endswith(".output") else lowered


def bind_outputs(
    info: GraphInfo,
    outputs: Sequence[str],
    graph_outputs: Mapping[str, str] | None,
    classes: Sequence[Any] | None,
) -> list[GraphOutput]:
    """Each output column with the graph output it comes from and how (see the module doc)."""
    declared = {o.name: o for o in info.outputs}
    explicit = dict(graph_outputs or {})
    for column, source in explicit.items():
        if column not in outputs:
            raise PredictorError(
                f"graph_outputs maps {column!r}, which is not a column of the output schema "
                f"({list(outputs)})"
            )
        if source not in declared:
            raise PredictorError(
                f"graph_outputs[{column!r}] is {source!r}, which is not an output of the graph; "
                f"its outputs are {describe(info.outputs)}"
            )
    classifier = _LABEL in outputs or classes is not None
    bound = []
    for column in outputs:
        source = explicit.get(column) or _infer_output(info, column, explicit, classes)
        value = declared[source]
        numeric = value.kind == "tensor" and value.type_name in FLOAT_TYPES
        role: OutputRole
        if column == _LABEL:
            role = "argmax" if numeric and classes is not None else "label"
            if numeric and classes is None:
                raise PredictorError(
                    f"PredictedLabel would come from {value.describe()}, which holds scores, "
                    "not labels; pass classes=[...] (in score order) to label the highest score"
                )
        elif column == _SCORE and classifier:
            role = "scores"
        else:
            role = "values"
        bound.append(GraphOutput(column, source, role))
    return bound


def _infer_output(
    info: GraphInfo, column: str, explicit: Mapping[str, str], classes: Sequence[Any] | None
) -> str:
    by_name: dict[str, list[str]] = {}
    for value in info.outputs:
        by_name.setdefault(_norm(value.name), []).append(value.name)

    def named(candidates: Sequence[str]) -> str | None:
        for candidate in candidates:
            found = by_name.get(candidate, [])
            if len(found) > 1:
                raise PredictorError(
                    f"the graph has several outputs named like {candidate!r} ({found}); pass "
                    f"graph_outputs={{{column!r}: <one of them>}}"
                )
            if found:
                return found[0]
        return None

    if column == _LABEL:
        found = named(_LABEL_NAMES)
        if found is None and classes is not None:
            found = explicit.get(_SCORE) or _infer_output(info, _SCORE, explicit, None)
    elif column == _SCORE:
        found = named(_SCORE_NAMES)
        if found is None:
            floats = [
                v.name for v in info.outputs if v.kind == "tensor" and v.type_name in FLOAT_TYPES
            ]
            found = floats[0] if len(floats) == 1 else None
    else:
        found = named([_norm(column)])
    if found is None:
        hint = " (or classes=[...] to label the highest score)" if column == _LABEL else ""
        raise PredictorError(
            f"cannot tell which graph output gives the output column {column!r}; the graph's "
            f"outputs are {describe(info.outputs)}; pass graph_outputs={{{column!r}: "
            f"<output name>}}{hint}"
        )
    return found
