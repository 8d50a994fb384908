"""What the XGBoost and LightGBM converters share: their JSON model given as data, a booster's
class labels and its feature names, checked (save time only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from servefn.errors import PredictorError
from servefn.predictors.trees import Link

__all__ = ["booster_classes", "document_of", "feature_names_of", "read_capped"]


def booster_classes(
    wrapper: Any, link: Link, n_outputs: int, objective: str, family: str
) -> list[Any] | None:
    """A booster's class labels: its scikit-learn wrapper's ``classes_``, ``0 .. k-1`` for a
    bare booster, None for a regressor; refuses a wrapper whose kind contradicts the objective
    (``family`` is ``"XGB"`` or ``"LGBM"``, the wrappers' prefix)."""
    is_classifier = link in ("logistic", "softmax")
    if wrapper is not None and hasattr(wrapper, "classes_") != is_classifier:
        raise PredictorError(
            f"{type(wrapper).__name__} with objective {objective[:40]!r}: use {family}Classifier "
            f"for classification objectives and {family}Regressor for the others"
        )
    if not is_classifier:
        return None
    expected = 2 if link == "logistic" else n_outputs
    if wrapper is None:
        return list(range(expected))
    classes = list(np.asarray(wrapper.classes_).tolist())
    if len(classes) != expected:
        raise PredictorError(f"the classifier has {len(classes)} classes but {expected} outputs")
    return classes


def feature_names_of(names: Any, n_features: int) -> list[str] | None:
    """``names`` when they are ``n_features`` plain names (1 to 1000 characters), else None."""
    if not (isinstance(names, list) and len(names) == n_features):
        return None
    return names if all(isinstance(n, str) and 0 < len(n) <= 1000 for n in names) else None


def document_of(
    model: Any, parse: Callable[[bytes], Mapping[str, Any]], read: Callable[[Path], bytes]
) -> Mapping[str, Any] | None:
    """The JSON model when ``model`` is data (a parsed dict, bytes, JSON text or a file path),
    parsed and read with the converter's own limits; None for a library object."""
    if isinstance(model, Mapping):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        return parse(bytes(model))
    if isinstance(model, str) and model.lstrip().startswith("{"):
        return parse(model.encode("utf-8"))
    if isinstance(model, (str, PathLike)):
        return parse(read(Path(model)))
    return None


def read_capped(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path``, refused beyond ``max_bytes`` before they are read."""
    try:
        if path.stat().st_size > max_bytes:
            raise PredictorError(f"{path.name} is larger than {max_bytes} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise PredictorError(f"cannot read the {what} {path.name}: {exc.strerror}") from exc
