"""Choosing the served form of a fitted scikit-learn model, and proving it predicts the same.

``save`` calls :func:`export`: a linear classifier or regressor (after affine scalers) becomes a
numpy-only linear predictor; a preprocessing pipeline (a ColumnTransformer of imputers, encoders
and scalers, then a linear model) becomes a numpy transform stage in front of one; anything else
is persisted with skops. A preprocessing pipeline that cannot be reproduced exactly is refused
with the step named unless the caller asks for the scikit-learn form (``form="sklearn"``), since
serving it then needs scikit-learn. :func:`check_parity` predicts the evaluation rows with the
source model and with what will be served and refuses any difference beyond :data:`TOLERANCE`.
Save time only: this module imports scikit-learn's side of servefn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError, SchemaError
from servefn.predictors import Predictor
from servefn.schema import SchemaLayout

__all__ = [
    "CONVERTED_TOLERANCE",
    "TOLERANCE",
    "Form",
    "GraphOptions",
    "Kind",
    "check_parity",
    "evaluation_matrix",
    "export",
]

Form = Literal["auto", "numpy", "sklearn"]
Kind = Literal["linear", "tree-ensemble", "onnx", "sklearn"]
TOLERANCE = 1e-6
"""Largest difference allowed between the source model's scores and the served ones, for the
linear kinds (exact arithmetic up to rounding)."""
CONVERTED_TOLERANCE = 1e-5
"""The same for tree ensembles and ONNX graphs (float32 arithmetic in XGBoost and ONNX)."""
_FORMS = ("auto", "numpy", "sklearn")
_KINDS = ("linear", "tree-ensemble", "onnx", "sklearn")
_NUMPY_KINDS = ("linear", "tree-ensemble")


@dataclass(frozen=True)
class GraphOptions:
    """How an ONNX graph's named inputs and outputs meet the schemas (``save``'s arguments)."""

    inputs: Mapping[str, Sequence[str]] | None = None
    outputs: Mapping[str, str] | None = None
    classes: Sequence[Any] | None = None


def export(
    estimator: Any,
    layout: SchemaLayout,
    *,
    form: Form,
    allow_pickle: bool,
    kind: Kind | None = None,
    outputs: Sequence[str] = (),
    graph: GraphOptions = GraphOptions(),
    sample: Any = None,
) -> tuple[Predictor, dict[str, Any]]:
    """The predictor to serve for ``estimator`` and the training record's ``form`` entries.

    ``kind`` forces one kind; otherwise the lightest exact one wins: linear, then
    tree-ensemble, then (not for XGBoost and LightGBM models) skops. An ONNX graph is served as one.
    """
    if form not in _FORMS:
        raise PredictorError(f"form must be one of {_FORMS}, not {form!r}")
    if kind is not None and kind not in _KINDS:
        raise PredictorError(f"kind must be one of {_KINDS} or None (automatic), not {kind!r}")
    if kind is not None and form != "auto":
        raise PredictorError("give form= or kind=, not both; kind= alone picks the served form")
    if kind == "onnx" or (kind is None and _is_onnx_source(estimator)):
        return _onnx_form(estimator, layout, outputs, graph, sample), {"form": "onnx"}
    if _is_onnx_source(estimator):
        raise PredictorError(f"an ONNX graph is served by kind 'onnx', not {kind!r}")
    if kind == "sklearn":
        form = "sklearn"
    reason = ""
    if form != "sklearn":
        try:
            return _numpy_form(estimator, layout, kind), {"form": "numpy"}
        except PredictorError as exc:
            reason = str(exc)
        if form == "numpy" or kind is not None or _is_booster(estimator):
            raise PredictorError(f"{reason}{_advice(estimator, form, kind)}")
        if _is_preprocessing(estimator):
            raise PredictorError(
                f"{reason}; save(..., kind='sklearn') keeps it as it is with skops (serving "
                "it then needs scikit-learn)"
            )
    try:
        from servefn.predictors.sklearn import SklearnPredictor
    except ImportError as exc:
        raise PredictorError(
            f"{type(estimator).__name__} has no numpy-only form ({reason}); saving it in its "
            f"scikit-learn form needs skops: pip install 'servefn[sklearn]' ({exc})"
        ) from None
    record = {"form": "sklearn"} | ({"reason": reason} if reason else {})
    return SklearnPredictor(estimator, allow_pickle=allow_pickle), record


def _advice(estimator: Any, form: Form, kind: Kind | None) -> str:
    """What to try when no numpy form fits."""
    if form == "numpy" or kind in _NUMPY_KINDS:
        return "; save(..., kind='onnx') converts it to an ONNX graph instead"
    if _is_booster(estimator):
        return (
            "; save(..., kind='onnx') converts it to an ONNX graph (pip install 'servefn[convert]')"
        )
    return ""


def _numpy_form(estimator: Any, layout: SchemaLayout, kind: Kind | None = None) -> Predictor:
    from servefn.predictors.sklearn_linear import linear_from_sklearn, linear_regressor_from_sklearn
    from servefn.predictors.sklearn_transform import transformed_from_sklearn
    from servefn.predictors.trees_export import is_tree_model, tree_ensemble_from

    if _is_preprocessing(estimator):
        fields = [c.field for c in layout.features for _ in range(c.size)]
        return transformed_from_sklearn(estimator, layout.feature_names, fields)
    if kind != "linear" and is_tree_model(estimator):
        return tree_ensemble_from(estimator)
    if kind == "tree-ensemble":
        return tree_ensemble_from(estimator)  # refuses, naming what trees it exports
    try:
        return linear_from_sklearn(estimator)
    except PredictorError as exc:
        first = str(exc)
    try:
        return linear_regressor_from_sklearn(estimator)
    except PredictorError:
        raise PredictorError(first) from None


def _onnx_form(
    model: Any, layout: SchemaLayout, outputs: Sequence[str], graph: GraphOptions, sample: Any
) -> Predictor:
    try:
        from servefn.predictors.onnx_export import onnx_predictor
    except ImportError as exc:
        raise PredictorError(
            f"serving an ONNX graph needs onnxruntime: pip install 'servefn[onnx]' ({exc})"
        ) from None
    return onnx_predictor(
        model,
        layout,
        outputs,
        graph_inputs=graph.inputs,
        graph_outputs=graph.outputs,
        classes=graph.classes,
        sample=sample,
    )


def _is_onnx_source(model: Any) -> bool:
    try:
        from servefn.predictors.onnx_export import is_onnx_source
    except ImportError:
        return False
    return bool(is_onnx_source(model))


def _is_booster(model: Any) -> bool:
    """An XGBoost or LightGBM model: served as trees or ONNX, never through skops."""
    return type(model).__module__.split(".")[0] in ("xgboost", "lightgbm")


def _is_preprocessing(estimator: Any) -> bool:
    from servefn.predictors.sklearn_transform import is_preprocessing_pipeline

    return bool(is_preprocessing_pipeline(estimator))


def evaluation_matrix(X: Any, layout: SchemaLayout) -> NDArray[Any]:
    """Evaluation rows (a DataFrame by column names, or an array in feature order) as the raw
    feature matrix the served predictor takes: float64 with NaN, or, for a schema with a text
    feature, an object matrix of floats and ``str`` with None where text is missing."""
    names = layout.feature_names
    columns = getattr(X, "columns", None)
    if columns is not None:  # a pandas DataFrame: pick the features by wire or field name
        fields = [c.field for c in layout.features for _ in range(c.size)]
        present = [str(c) for c in columns]
        picked = []
        for name, field in zip(names, fields, strict=True):
            key = name if name in present else field if field in present else None
            if key is None:
                raise SchemaError(
                    f"the evaluation DataFrame has no column {name!r}; it has {present[:20]}"
                )
            picked.append(X[key].to_numpy())
        raw: NDArray[Any] = np.column_stack(picked) if picked else np.empty((len(X), 0))
    else:
        raw = np.asarray(X)
    if raw.ndim != 2 or raw.shape[1] != len(names):
        raise SchemaError(
            f"the evaluation rows have shape {raw.shape}; expected {len(names)} feature columns "
            f"({', '.join(names[:10])})"
        )
    if not layout.text:
        return np.asarray(raw, dtype=np.float64)
    text = [c.kind == "str" for c in layout.features for _ in range(c.size)]
    out = np.empty(raw.shape, dtype=object)
    for j, is_text in enumerate(text):
        column = raw[:, j]
        out[:, j] = [
            (None if _missing(v) else str(v)) if is_text else (np.nan if v is None else float(v))
            for v in column
        ]
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def check_parity(
    estimator: Any,
    X: Any,
    outputs: Mapping[str, Any],
    score: str | None,
    *,
    tolerance: float = TOLERANCE,
    classes: Any = None,
    advice: str = "save(..., kind='sklearn') keeps it as it is",
) -> dict[str, Any]:
    """Compare the served ``outputs`` for rows ``X`` with ``estimator``'s own predictions; raise
    :class:`PredictorError` on a label that differs or a score beyond ``tolerance``. Returns the
    figures for the training record. ``score`` is the served predictor's score kind:
    ``"decision"`` scores are held against ``decision_function``, others against
    ``predict_proba``; a bare XGBoost or LightGBM booster is asked through its own ``predict``
    (probabilities, labelled by the served model's ``classes``)."""
    labels = "PredictedLabel" in outputs
    record: dict[str, Any] = {"rows": len(X), "tolerance": tolerance}
    theirs, expected = _source_predictions(estimator, X, labels, score, classes)
    if labels and theirs is not None:
        ours = np.asarray(outputs["PredictedLabel"])
        differ = int(np.sum(ours.astype(str) != np.asarray(theirs).astype(str)))
        if differ:
            raise PredictorError(
                f"the exported model predicts a different label than the source model for "
                f"{differ} of {len(X)} evaluation rows; {advice}"
            )
        record["labels_equal"] = True
    if expected is not None and "Score" in outputs:
        served = np.asarray(outputs["Score"], dtype=np.float64).reshape(len(X), -1)
        error = np.abs(served - expected)
        gap = float(np.max(error, initial=0.0))
        # a regressor's values carry their own scale: beyond 1, the difference is relative
        # (a float32 library predicting 250.0 is exact to about 1.5e-5 there)
        scaled = error if labels else error / np.maximum(1.0, np.abs(expected))
        worst = float(np.max(scaled, initial=0.0))
        if not worst <= tolerance:
            what = "scores" if labels else "values (relative beyond 1)"
            raise PredictorError(
                f"the exported model's {what} differ from the source model's by up to "
                f"{worst:.3g} on the evaluation rows (tolerance {tolerance:g}); {advice}"
            )
        record["max_score_difference"] = gap
        if not labels:
            record["max_relative_difference"] = worst
    return record


def _source_predictions(
    estimator: Any, X: Any, labels: bool, score: str | None, classes: Any
) -> tuple[Any, NDArray[np.float64] | None]:
    """The source model's labels (None for a regressor) and scores for rows ``X``."""
    n = len(X)
    booster = type(estimator).__name__ == "Booster" and _is_booster(estimator)
    if booster:
        raw = np.asarray(_booster_predict(estimator, X), dtype=np.float64)
        if not labels:
            return None, raw.reshape(n, -1)
        if raw.ndim == 1 and classes is not None and len(classes) > 2:  # multi:softmax: labels
            return np.asarray(classes)[raw.astype(np.intp)], None
        proba = np.column_stack((1.0 - raw, raw)) if raw.ndim == 1 else raw.reshape(n, -1)
        found = None if classes is None else np.asarray(classes)[np.argmax(proba, axis=1)]
        return found, proba
    if not labels:
        return None, np.asarray(estimator.predict(X), dtype=np.float64).reshape(n, -1)
    found = np.asarray(estimator.predict(X))
    method = "decision_function" if score == "decision" else "predict_proba"
    if score is None or not hasattr(estimator, method):
        return found, None
    return found, np.asarray(getattr(estimator, method)(X), dtype=np.float64).reshape(n, -1)


def _booster_predict(booster: Any, X: Any) -> Any:
    if type(booster).__module__.startswith("xgboost"):
        import xgboost

        return booster.predict(xgboost.DMatrix(X))
    return booster.predict(X)
