"""A tree ensemble's raw sums as servefn outputs: the link, then the label rule."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from servefn.predictors.base import Outputs

__all__ = ["LABEL_RULES", "LINKS", "LabelRule", "Link", "tree_outputs"]

Link = Literal["identity", "exp", "logistic", "softmax"]
LINKS: tuple[str, ...] = ("identity", "exp", "logistic", "softmax")
LabelRule = Literal["score", "margin>0", "margin>=0"]
LABEL_RULES: tuple[str, ...] = ("score", "margin>0", "margin>=0")


def tree_outputs(
    raw: NDArray[np.float64], link: str, classes: NDArray[Any] | None, label_rule: str
) -> Outputs:
    """``Score`` (the prediction, or class probabilities) and, for a classifier,
    ``PredictedLabel``: the first class of highest probability, or decided on the raw margin
    (``raw > 0`` or ``raw >= 0`` for one output, its first maximum for several) as scikit-learn's
    gradient boosting decides, where a probability of exactly 0.5 can hide the margin's sign."""
    if classes is None:
        return {"Score": np.exp(raw[:, 0]) if link == "exp" else raw[:, 0]}
    index: NDArray[np.intp] | None = None
    if label_rule != "score":
        if raw.shape[1] > 1:
            index = np.argmax(raw, axis=1)
        else:
            positive = raw[:, 0] >= 0 if label_rule == "margin>=0" else raw[:, 0] > 0
            index = positive.astype(np.intp)
    if link == "logistic":
        p = _sigmoid(raw[:, 0])
        proba = np.column_stack((1.0 - p, p))
    elif link == "softmax":
        proba = raw - raw.max(axis=1, keepdims=True)
        np.exp(proba, out=proba)
        proba /= proba.sum(axis=1, keepdims=True)
    else:
        proba = raw
    if index is None:
        index = np.argmax(proba, axis=1)
    return {"PredictedLabel": classes[index], "Score": proba}


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(-np.abs(z))  # the two-sided form: no overflow
    out: NDArray[np.float64] = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out
