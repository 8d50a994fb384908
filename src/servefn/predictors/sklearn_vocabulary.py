"""The closed vocabularies of a fitted scikit-learn estimator's encoders.

A model saved in the scikit-learn form (skops) may start with a OneHotEncoder or OrdinalEncoder
that refuses unknown values (``handle_unknown="error"``), at the top of a Pipeline, inside a
ColumnTransformer, or after an imputer in a nested Pipeline. The values it knows are the only
ones such a model can answer, so ``save`` writes them into the input schema, as it does for the
numpy form (:meth:`servefn.predictors._transform.Transform.vocabularies`): the served schema
refuses any other value with a 422 naming the field, and the load probe sends known values.
Only the input columns an encoder reads unchanged (directly or through an imputer) are followed;
anything else leaves its columns open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["closed_vocabularies"]

_ENCODERS = ("OneHotEncoder", "OrdinalEncoder")


def closed_vocabularies(estimator: Any) -> dict[int, list[str]]:
    """Input column -> the text values the estimator's encoders know (several encoders of one
    column: the values all of them know, in the first one's order)."""
    n = getattr(estimator, "n_features_in_", None)
    if n is None:
        return {}
    found: dict[int, list[str]] = {}
    _walk(estimator, list(range(int(n))), found)
    return found


def _walk(step: Any, columns: Sequence[int], found: dict[int, list[str]]) -> None:
    """Follow ``step``, whose input column j is the estimator's input column ``columns[j]``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            if inner is None or (isinstance(inner, str) and inner == "passthrough"):
                continue
            _walk(inner, columns, found)
            if not _keeps_columns(inner):
                return  # later steps read derived columns
    elif isinstance(step, ColumnTransformer):
        for name, inner in step.named_transformers_.items():
            indices = step._transformer_to_input_indices.get(name, [])
            _walk(inner, [columns[int(i)] for i in indices], found)
    elif _is_closed_encoder(step):
        for j, raw in enumerate(step.categories_):
            values = np.asarray(raw, dtype=object).tolist()
            text = [v for v in values if isinstance(v, str)]
            if j >= len(columns) or not text:
                continue
            origin = columns[j]
            known = found.get(origin)
            found[origin] = text if known is None else [v for v in known if v in set(text)]


def _is_closed_encoder(step: Any) -> bool:
    return (
        type(step).__name__ in _ENCODERS
        and type(step).__module__.startswith("sklearn.")
        and getattr(step, "handle_unknown", None) == "error"
        and hasattr(step, "categories_")
    )


def _keeps_columns(step: Any) -> bool:
    """An imputer that writes each input column to the same output column."""
    if type(step).__name__ != "SimpleImputer" or getattr(step, "add_indicator", True):
        return False
    statistics = np.asarray(getattr(step, "statistics_", []), dtype=object)
    dropped = any(isinstance(s, float) and s != s for s in statistics.tolist())
    return not dropped or bool(getattr(step, "keep_empty_features", False))
