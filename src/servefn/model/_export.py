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

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError, SchemaError
from servefn.predictors import Predictor
from servefn.schema import SchemaLayout

__all__ = ["TOLERANCE", "Form", "check_parity", "evaluation_matrix", "export"]

Form = Literal["auto", "numpy", "sklearn"]
TOLERANCE = 1e-6
"""Largest difference allowed between the source model's scores and the served ones."""
_FORMS = ("auto", "numpy", "sklearn")


def export(
    estimator: Any, layout: SchemaLayout, *, form: Form, allow_pickle: bool
) -> tuple[Predictor, dict[str, Any]]:
    """The predictor to serve for ``estimator`` and the training record's ``form`` entries."""
    if form not in _FORMS:
        raise PredictorError(f"form must be one of {_FORMS}, not {form!r}")
    reason = ""
    if form != "sklearn":
        try:
            return _numpy_form(estimator, layout), {"form": "numpy"}
        except PredictorError as exc:
            reason = str(exc)
        if form == "numpy" or _is_preprocessing(estimator):
            advice = (
                ""
                if form == "numpy"
                else "; save(..., form='sklearn') keeps it as it is with "
                "skops (serving it then needs scikit-learn)"
            )
            raise PredictorError(f"{reason}{advice}")
    try:
        from servefn.predictors.sklearn import SklearnPredictor
    except ImportError as exc:
        raise PredictorError(
            f"{type(estimator).__name__} has no numpy-only form ({reason}); saving it in its "
            f"scikit-learn form needs skops: pip install 'servefn[sklearn]' ({exc})"
        ) from None
    record = {"form": "sklearn"} | ({"reason": reason} if reason else {})
    return SklearnPredictor(estimator, allow_pickle=allow_pickle), record


def _numpy_form(estimator: Any, layout: SchemaLayout) -> Predictor:
    from servefn.predictors.sklearn_linear import linear_from_sklearn, linear_regressor_from_sklearn
    from servefn.predictors.sklearn_transform import transformed_from_sklearn

    if _is_preprocessing(estimator):
        fields = [c.field for c in layout.features for _ in range(c.size)]
        return transformed_from_sklearn(estimator, layout.feature_names, fields)
    try:
        return linear_from_sklearn(estimator)
    except PredictorError as exc:
        first = str(exc)
    try:
        return linear_regressor_from_sklearn(estimator)
    except PredictorError:
        raise PredictorError(first) from None


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
) -> dict[str, Any]:
    """Compare the served ``outputs`` for rows ``X`` with ``estimator``'s own predictions; raise
    :class:`PredictorError` on a label that differs or a score beyond ``tolerance``. Returns the
    figures for the training record. ``score`` is the served predictor's score kind:
    ``"decision"`` scores are held against ``decision_function``, others against
    ``predict_proba``."""
    labels = "PredictedLabel" in outputs
    record: dict[str, Any] = {"rows": len(X), "tolerance": tolerance}
    if labels:
        theirs = np.asarray(estimator.predict(X))
        ours = np.asarray(outputs["PredictedLabel"])
        differ = int(np.sum(ours.astype(str) != theirs.astype(str)))
        if differ:
            raise PredictorError(
                f"the exported model predicts a different label than scikit-learn for {differ} "
                f"of {len(X)} evaluation rows; save(..., form='sklearn') keeps it as it is"
            )
        record["labels_equal"] = True
    expected = _expected_scores(estimator, X, labels, score)
    if expected is not None and "Score" in outputs:
        served = np.asarray(outputs["Score"], dtype=np.float64)
        gap = float(np.max(np.abs(served.reshape(len(X), -1) - expected), initial=0.0))
        if not gap <= tolerance:
            raise PredictorError(
                f"the exported model's scores differ from scikit-learn's by up to {gap:.3g} on "
                f"the evaluation rows (tolerance {tolerance:g}); save(..., form='sklearn') keeps "
                "it as it is"
            )
        record["max_score_difference"] = gap
    return record


def _expected_scores(
    estimator: Any, X: Any, labels: bool, score: str | None
) -> NDArray[np.float64] | None:
    if not labels:
        return np.asarray(estimator.predict(X), dtype=np.float64).reshape(len(X), -1)
    method = "decision_function" if score == "decision" else "predict_proba"
    if score is None or not hasattr(estimator, method):
        return None
    return np.asarray(getattr(estimator, method)(X), dtype=np.float64).reshape(len(X), -1)
