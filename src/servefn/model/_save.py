"""``save``: turn a fitted model into a ``model.zip`` with its schemas and training record."""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from os import PathLike, fspath
from pathlib import Path
from typing import Any

import numpy as np

from servefn.errors import PredictorError
from servefn.model._archive import LoadedModel, read_manifest, write_model
from servefn.model._export import (
    CONVERTED_TOLERANCE,
    TOLERANCE,
    Form,
    GraphOptions,
    Kind,
    check_parity,
    evaluation_matrix,
    export,
)
from servefn.model._inputs import refuse_missing
from servefn.model._probe import check_outputs, probe
from servefn.model._vocabulary import with_vocabularies
from servefn.predictors import Predictor
from servefn.predictors.transformed import TransformedPredictor
from servefn.predictors.trees import TreeEnsemble
from servefn.predictors.trees_export import threshold_rows
from servefn.schema import SchemaLayout, layout_of, schema_from_spec
from servefn.schema._schema import Schema

__all__ = ["save"]


def save(
    model: Any,
    path: str | PathLike[str] | io.BufferedIOBase,
    *,
    input: type[Schema],
    output: type[Schema],
    evaluate_on: tuple[Any, Any] | None = None,
    data_file: str | PathLike[str] | None = None,
    training: Mapping[str, Any] | None = None,
    allow_pickle: bool = False,
    form: Form = "auto",
    kind: Kind | None = None,
    graph_inputs: Mapping[str, Sequence[str]] | None = None,
    graph_outputs: Mapping[str, str] | None = None,
    classes: Sequence[Any] | None = None,
    profile_rows: Any = None,
) -> str:
    """Save ``model`` (a servefn predictor or a fitted scikit-learn estimator) to ``path``.

    A scikit-learn linear classifier or regressor (after affine scalers) becomes a numpy-only
    linear predictor, and a preprocessing pipeline (a ColumnTransformer of imputers, encoders and
    scalers, then a linear model) a numpy transform stage in front of one: serving needs neither
    scikit-learn nor pickle. Any other fitted classifier or regressor becomes a
    :class:`~servefn.predictors.sklearn.SklearnPredictor` persisted with skops, or, only with
    ``allow_pickle=True`` and when skops cannot persist it, with pickle (with a warning); a
    preprocessing pipeline with a step servefn cannot reproduce exactly is refused, naming the
    step, unless ``form="sklearn"`` asks for that form (``form="numpy"`` refuses any model
    without a numpy form). The training record says which form was used and why.
    ``evaluate_on=(X, y)`` (X a DataFrame with the schema's column names, or an array in feature
    order) adds metrics computed with the saved predictor (what will be served) to the training
    record and, for an exported model, checks that it predicts the rows as the source model does
    (labels equal, scores within 1e-6); ``data_file`` adds the training file's sha256. Returns
    the archive's sha256.

    Before anything is written, the predictor's outputs for the evaluation rows, and for the
    probe records built from ``input`` (the end-to-end check a model passes before it serves),
    must fit ``output``: a column of the wrong type or shape is an
    :class:`~servefn.errors.ArtifactError` naming it, what was declared and what was found.

    Tree models (scikit-learn trees, forests, gradient boosting and histogram gradient
    boosting; XGBoost and LightGBM boosters) become a numpy-only tree ensemble. ``kind`` forces
    a kind (``"linear"``, ``"tree-ensemble"``, ``"onnx"``, ``"sklearn"``); by default the
    lightest exact one is chosen. ``model`` may also be an ONNX graph (a ``.onnx`` path, its
    bytes or an ``onnx.ModelProto``), served by onnxruntime; ``graph_inputs`` (graph input ->
    the schema features it takes) and ``graph_outputs`` (output column -> graph output) say
    how it meets the schemas where that cannot be inferred, and ``classes`` labels a graph
    that outputs probabilities only. ``kind="onnx"`` converts a scikit-learn, XGBoost or
    LightGBM model (``pip install 'servefn[convert]'``). Every tree ensemble and ONNX model is
    checked for parity with its source (labels equal, scores within 1e-5) on the evaluation
    rows, and a tree ensemble also on rows at its split thresholds when none are given.

    The manifest also records a small training profile of the inputs (quantile bins, ranges
    and missing rates of numeric features, frequencies of text ones:
    :mod:`servefn.telemetry.profile`), which a served model's drift is measured against.
    ``profile_rows`` are the rows it is computed from (a DataFrame or an array in feature
    order, like ``evaluate_on``'s X): give the training rows; by default ``evaluate_on``'s X
    is used, and ``profile_rows=False`` records no profile.
    """
    record: dict[str, Any] = {}
    evaluated: Mapping[str, Any] | None = None
    layout = layout_of(input)
    if isinstance(model, Predictor):
        predictor = model
    else:
        wanted = [c.name for c in layout_of(output).columns if c.role != "ignore"]
        predictor, chosen = export(
            model,
            layout,
            form=form,
            allow_pickle=allow_pickle,
            kind=kind,
            outputs=wanted,
            graph=GraphOptions(graph_inputs, graph_outputs, classes),
            sample=None if evaluate_on is None else evaluate_on[0],
        )
        record = {**_describe_estimator(model, chosen["form"]), **chosen}
    _check_text(layout, predictor)
    input = with_vocabularies(input, predictor)
    exported = record.get("form") in ("numpy", "onnx") and not _is_graph(model, record)
    if evaluate_on is not None:
        X, y = evaluate_on
        matrix = evaluation_matrix(X, layout)
        refuse_missing(matrix, predictor, layout.feature_names)
        evaluated = predictor.predict(matrix)
        record["rows"] = int(matrix.shape[0])
        record["metrics"] = _evaluate(predictor, evaluated, y)
        if exported:
            record["parity"] = _parity(model, predictor, X, evaluated)
        if data_file is None:
            cells = matrix.tobytes() if matrix.dtype != object else repr(matrix.tolist()).encode()
            digest = hashlib.sha256(cells + repr(list(np.asarray(y))).encode())
            record["data_sha256"] = digest.hexdigest()
    if exported and isinstance(predictor, TreeEnsemble):  # where a rounding slip shows
        edges = threshold_rows(predictor)
        at_edges = _parity(model, predictor, edges, predictor.predict(edges))
        at_edges["rows_from"] = "split thresholds"
        if "parity" in record:
            record["parity"]["split_thresholds"] = at_edges
        else:
            record["parity"] = at_edges
    if data_file is not None:
        record["data_file"] = Path(fspath(data_file)).name
        record["data_sha256"] = hashlib.sha256(Path(fspath(data_file)).read_bytes()).hexdigest()
    record.update(training or {})
    if profile_rows is None and evaluate_on is not None:
        profile_rows = evaluate_on[0]
    profiled = None if profile_rows is False or profile_rows is None else profile_rows
    buffer = io.BytesIO()
    sha256 = write_model(
        buffer,
        predictor,
        input=input,
        output=output,
        training=record,
        profile=None if profiled is None else _profile(profiled, layout),
    )
    data = buffer.getvalue()
    manifest = read_manifest(data)
    output_schema = schema_from_spec(manifest["output"])  # what load_model rebuilds
    if evaluate_on is not None and evaluated is not None:
        rows = len(evaluate_on[0])
        classes = getattr(predictor, "classes", None)
        check_outputs(output_schema, classes, evaluated, rows, "the evaluation rows")
    probe(  # the check every load runs before serving: nothing is written that would fail it
        LoadedModel(
            predictor=predictor,
            input_schema=schema_from_spec(manifest["input"]),
            output_schema=output_schema,
            manifest=manifest,
            sha256=sha256,
            size=len(data),
        )
    )
    if not isinstance(path, (str, PathLike)):  # a binary file object, as write_model takes
        path.write(data)
        return sha256
    target = Path(fspath(path))
    partial = target.with_name(target.name + ".tmp")
    partial.write_bytes(data)
    partial.replace(target)
    return sha256


def _profile(rows: Any, layout: SchemaLayout) -> dict[str, Any]:
    """The training profile of ``rows``, in the manifest's form."""
    from servefn.telemetry.profile import build_profile

    text = [c.kind == "str" for c in layout.features for _ in range(c.size)]
    return build_profile(layout.feature_names, text, evaluation_matrix(rows, layout)).spec()


def _check_text(layout: SchemaLayout, predictor: Predictor) -> None:
    """Refuse text features for a predictor that takes numbers only."""
    text = [c.name for c in layout.features if c.kind == "str"]
    if text and not predictor.accepts_text:
        raise PredictorError(
            f"the input schema's features {text} are text, but a {predictor.kind} model takes "
            "numbers only; fit a pipeline whose ColumnTransformer encodes them (OneHotEncoder or "
            "OrdinalEncoder), or declare them as numbers"
        )


def _parity(model: Any, predictor: Predictor, X: Any, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Parity with the source model, within the tolerance of the served kind."""
    linear = predictor.kind in ("linear-classifier", "linear-regressor") or (
        isinstance(predictor, TransformedPredictor)
        and predictor.final.kind in ("linear-classifier", "linear-regressor")
    )
    advice = (
        "save(..., kind='sklearn') keeps it as it is"
        if type(model).__module__.startswith("sklearn")
        else "report the model to servefn's issue tracker"
    )
    return check_parity(
        model,
        _as_fitted(model, X),
        outputs,
        getattr(predictor, "score", None),
        tolerance=TOLERANCE if linear else CONVERTED_TOLERANCE,
        classes=getattr(predictor, "classes", None),
        advice=advice,
    )


def _as_fitted(model: Any, X: Any) -> Any:
    """Rows the way ``model`` was fitted: a DataFrame with its column names when it was fitted
    on one (as its ``feature_names_in_`` says) and ``X`` is a bare array."""
    names = getattr(model, "feature_names_in_", None)
    if names is None or not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != len(names):
        return X
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError:
        return X
    return pd.DataFrame(X, columns=list(names))


def _is_graph(model: Any, record: Mapping[str, Any]) -> bool:
    """An ONNX graph given as such: served as it is, with no source model to compare."""
    return record.get("trainer") == "ONNX graph"


def _describe_estimator(estimator: Any, form: str) -> dict[str, Any]:
    if form == "onnx" and _is_onnx_file(estimator):
        return {"trainer": "ONNX graph"}
    final, steps = estimator, [type(estimator).__name__]
    if _is_sklearn(estimator):
        from servefn.predictors.sklearn_linear import _steps, describe_steps

        final, steps = _steps(estimator)[-1], describe_steps(estimator)
    record: dict[str, Any] = {
        "trainer": type(final).__name__,
        "steps": steps,
        "params": _json_safe(final.get_params(deep=False)) if hasattr(final, "get_params") else {},
    }
    for attr, key in (
        ("tuned_params_", "tuned"),
        ("best_iteration_", "best_iteration"),
        ("n_iter_", "iterations"),
        ("converged_", "converged"),
        ("duality_gap_", "duality_gap"),
        ("objective_", "objective"),
    ):
        if hasattr(final, attr):
            record[key] = _json_safe(getattr(final, attr))
    return record


def _is_sklearn(estimator: Any) -> bool:
    return type(estimator).__module__.split(".")[0] == "sklearn"


def _is_onnx_file(model: Any) -> bool:
    return isinstance(model, (bytes, bytearray, memoryview, str, PathLike)) or (
        type(model).__name__ == "ModelProto"
    )


def _evaluate(predictor: Predictor, outputs: Mapping[str, Any], y: Any) -> dict[str, Any]:
    from servefn.model._metrics import classification_metrics

    if "PredictedLabel" not in outputs:  # a regressor: Score is the prediction
        return _regression_metrics(np.asarray(y, dtype=np.float64), outputs["Score"])
    classes = getattr(predictor, "classes", None)
    if classes is None or getattr(predictor, "score", None) in ("decision", None):
        accuracy = float(np.mean(np.asarray(outputs["PredictedLabel"]) == np.asarray(y)))
        return {"micro_accuracy": accuracy}
    metrics: dict[str, Any] = classification_metrics(
        np.asarray(y), outputs["Score"], list(classes.tolist())
    )
    return metrics


def _regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """ML.NET's regression metrics: mean absolute and squared error, RMSE, and R squared
    (left out when the targets are constant, where it is undefined)."""
    error = np.asarray(predicted, dtype=np.float64).reshape(y.shape) - y
    mse = float(np.mean(error**2))
    metrics = {
        "mean_absolute_error": float(np.mean(np.abs(error))),
        "mean_squared_error": mse,
        "root_mean_squared_error": math.sqrt(mse),
    }
    spread = float(np.sum((y - y.mean(axis=0)) ** 2))
    if spread > 0:
        metrics["r_squared"] = 1.0 - float(np.sum(error**2)) / spread
    return metrics


def _json_safe(value: Any) -> Any:
    """Plain JSON values only: numpy scalars/arrays unwrapped, other objects by name."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__
