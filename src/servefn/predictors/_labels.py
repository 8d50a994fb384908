"""Class labels as a classifier predictor keeps them: a flat array of strings or numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError

__all__ = ["class_labels"]

_LABEL_KINDS = "biufU"  # classes are strings or numbers; never objects, bytes or nested lists


def class_labels(classes: Sequence[Any] | NDArray[Any]) -> NDArray[Any]:
    """``classes`` as a flat numpy array of strings or numbers, or :class:`PredictorError`."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
        raise PredictorError(f"classes must be a list of labels, not {type(classes).__name__}")
    try:
        labels = np.asarray(classes)
        if labels.dtype.kind == "O":  # an object array of strings (scikit-learn's classes_)
            labels = np.asarray(labels.tolist())
    except ValueError:  # ragged nesting
        labels = np.asarray([[]])
    if labels.ndim != 1 or labels.dtype.kind not in _LABEL_KINDS:
        raise PredictorError("classes must be a flat list of strings or numbers")
    return labels
