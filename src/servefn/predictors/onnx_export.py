"""Building an :class:`~servefn.predictors.onnx.OnnxPredictor` at save time: an ONNX graph given as
a file, bytes or ``onnx.ModelProto``, or a scikit-learn, XGBoost or LightGBM model converted to
one (:mod:`._onnx_convert`, which imports the converters).

The graph meets the schemas through two mappings (:mod:`._onnx_mapping`), inferred when
unambiguous:

- ``graph_inputs`` (graph input -> the schema features it takes, in order): one tensor input
  whose last dimension is ``n_features`` (or dynamic, or whose fixed row holds ``n_features``
  values) takes every feature; inputs each named after a schema column take that column;
- ``graph_outputs`` (output column -> graph output): ``PredictedLabel`` from an output named
  ``label``, ``output_label`` or ``PredictedLabel``, or the argmax of the scores when
  ``classes`` is given; ``Score`` from ``probabilities``, ``output_probability``, ``Score``,
  ``variable``, or the only float output; any other column from the output of its name. ML.NET's
  ``.output`` suffix is ignored and names compare case-insensitively.

Anything else is a :class:`~servefn.errors.PredictorError` naming the graph's inputs or outputs
and the argument to pass. This module never runs where a model is served.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from os import PathLike, fspath
from pathlib import Path
from typing import Any

from servefn.errors import PredictorError
from servefn.predictors._onnx_convert import converted_predictor, sample_matrix
from servefn.predictors._onnx_graph import looks_like_onnx, read_graph
from servefn.predictors._onnx_mapping import bind_inputs, bind_outputs
from servefn.predictors.onnx import OnnxPredictor
from servefn.schema import SchemaLayout

__all__ = ["is_onnx_source", "onnx_predictor"]


def is_onnx_source(obj: Any) -> bool:
    """True for an ONNX graph: bytes that start as a ModelProto, a path ending in ``.onnx``, or
    an ``onnx.ModelProto``."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return looks_like_onnx(obj)
    if isinstance(obj, (str, PathLike)):
        return fspath(obj).lower().endswith(".onnx")
    onnx = sys.modules.get("onnx")  # a ModelProto exists only once onnx is imported
    return onnx is not None and isinstance(obj, onnx.ModelProto)


def onnx_predictor(
    model: Any,
    layout: SchemaLayout,
    outputs: Sequence[str],
    *,
    graph_inputs: Mapping[str, Sequence[str]] | None = None,
    graph_outputs: Mapping[str, str] | None = None,
    classes: Sequence[Any] | None = None,
    sample: Any = None,
    accepts_missing: bool | Sequence[bool] | None = None,
) -> OnnxPredictor:
    """The predictor serving ``model`` for the input schema ``layout`` and the output columns
    ``outputs`` (wire names).

    ``model`` is an ONNX graph (``.onnx`` path, bytes, ``onnx.ModelProto``) or a fitted
    scikit-learn estimator or pipeline, XGBoost or LightGBM model to convert (``pip install
    'servefn[convert]'``). ``sample`` (rows in feature order, or a DataFrame by column names)
    is predicted by the result to check that the binding works; for a conversion it also picks
    the first precision (double, then float) whose labels equal the source model's and whose
    scores are within 1e-5 (relative for regression values), refusing the model when none is,
    and finds the features where a missing value gives the source model's answer: those accept
    NaN unless ``accepts_missing`` says otherwise (a graph given as such accepts none by
    default).
    """
    wanted = [str(name) for name in outputs]
    if not wanted:
        raise PredictorError("the output schema declares no outputs for the ONNX graph to give")
    if is_onnx_source(model):
        return _from_graph(
            _graph_bytes(model),
            layout,
            wanted,
            graph_inputs,
            graph_outputs,
            classes,
            sample,
            accepts_missing,
        )
    return converted_predictor(
        model,
        layout,
        wanted,
        graph_inputs=graph_inputs,
        graph_outputs=graph_outputs,
        classes=classes,
        sample=sample,
        accepts_missing=accepts_missing,
    )


def _from_graph(
    graph: bytes,
    layout: SchemaLayout,
    outputs: Sequence[str],
    graph_inputs: Mapping[str, Sequence[str]] | None,
    graph_outputs: Mapping[str, str] | None,
    classes: Sequence[Any] | None,
    sample: Any,
    accepts_missing: bool | Sequence[bool] | None,
) -> OnnxPredictor:
    info = read_graph(graph)
    predictor = OnnxPredictor(
        graph,
        n_features=layout.n_features,
        inputs=bind_inputs(info, layout, graph_inputs),
        outputs=bind_outputs(info, outputs, graph_outputs, classes),
        classes=classes,
        accepts_missing=False if accepts_missing is None else accepts_missing,
        info={"source": {"format": "onnx", "producer": info.producer[:200]}},
    )
    if sample is not None:
        predictor.predict(sample_matrix(sample, layout))
    return predictor


def _graph_bytes(model: Any) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, PathLike)):
        path = Path(fspath(model))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PredictorError(f"cannot read the ONNX file {path}: {exc.strerror}") from exc
    data: bytes = model.SerializeToString()
    return data
