"""Multiclass metrics with the semantics of ML.NET's ``MulticlassClassificationEvaluator``.

numpy only: the result goes into a model manifest, so every value is a plain Python float, int or
list (JSON-serialisable, no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["classification_metrics"]

_PROBABILITY_FLOOR = 1e-15  # ML.NET's Epsilon: the log-loss of a row is at most -ln(1e-15)


def classification_metrics(
    y_true: Sequence[Any] | NDArray[Any], proba: ArrayLike, classes: Sequence[Any] | NDArray[Any]
) -> dict[str, Any]:
    """Score predicted class probabilities against true labels, as ML.NET evaluates them.

    ``proba[i, k]`` is the probability of ``classes[k]`` for row i; the predicted class is the
    first column with the highest probability. Rows whose label is missing (None/NaN) or whose
    probabilities are not finite are left out. A label not in ``classes`` counts as wrong, with
    the maximal log-loss ``-ln(1e-15)``, and outside the confusion matrix and per-class figures.

    Returns ``micro_accuracy`` (fraction of rows right), ``macro_accuracy`` (mean recall over the
    classes present in ``y_true``), ``log_loss`` (mean ``-ln(max(p_true, 1e-15))``),
    ``log_loss_reduction`` (``(prior - log_loss) / prior`` where ``prior`` is the entropy of the
    label frequencies in ``y_true``; None when that entropy is 0), ``per_class_log_loss`` (0 for
    an absent class), ``confusion_matrix`` (rows are true classes, columns predicted ones) and
    ``n_rows`` (rows counted).
    """
    class_list = list(classes)
    scores = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(y_true, dtype=object)
    if scores.ndim != 2 or scores.shape != (labels.shape[0], len(class_list)):
        raise ValueError(
            f"proba has shape {scores.shape}; expected ({labels.shape[0]}, {len(class_list)}): "
            "one row per label and one column per class."
        )
    keep = ~_is_missing(labels) & np.isfinite(scores).all(axis=1)
    scores = scores[keep]
    index = _class_index(labels[keep], class_list)
    return _metrics(index, scores, len(class_list))


def _metrics(
    index: NDArray[np.int64], scores: NDArray[np.float64], n_classes: int
) -> dict[str, Any]:
    n_rows = index.shape[0]
    known = index >= 0
    rows = np.arange(n_rows)
    p_true = np.where(known, scores[rows, np.where(known, index, 0)], 0.0)
    row_log_loss = -np.log(np.clip(p_true, _PROBABILITY_FLOOR, 1.0))
    predicted = np.argmax(scores, axis=1) if n_rows else np.zeros(0, dtype=np.int64)

    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (index[known], predicted[known]), 1)
    class_counts = confusion.sum(axis=1)
    class_log_loss = np.bincount(index[known], row_log_loss[known], minlength=n_classes)
    present = class_counts > 0

    log_loss = float(row_log_loss.mean()) if n_rows else 0.0
    frequencies = class_counts[present] / n_rows if n_rows else np.zeros(0)
    prior = float(-(frequencies * np.log(frequencies)).sum())
    return {
        "micro_accuracy": float(np.trace(confusion) / n_rows) if n_rows else 0.0,
        "macro_accuracy": float(np.mean(np.diag(confusion)[present] / class_counts[present]))
        if present.any()
        else 0.0,
        "log_loss": log_loss,
        "log_loss_reduction": (prior - log_loss) / prior if prior > 0 else None,
        "per_class_log_loss": [
            float(total / count) if count else 0.0
            for total, count in zip(class_log_loss, class_counts, strict=True)
        ],
        "confusion_matrix": confusion.tolist(),
        "n_rows": int(n_rows),
    }


def _is_missing(labels: NDArray[Any]) -> NDArray[np.bool_]:
    return np.fromiter(
        (v is None or (isinstance(v, float | np.floating) and math.isnan(v)) for v in labels),
        dtype=bool,
        count=labels.shape[0],
    )


def _class_index(labels: NDArray[Any], classes: list[Any]) -> NDArray[np.int64]:
    """Position of each label in ``classes``; -1 for a label the model does not know."""
    position = {c: k for k, c in enumerate(classes)}  # numpy scalars hash as Python values
    return np.fromiter((position.get(v, -1) for v in labels), dtype=np.int64, count=labels.shape[0])
