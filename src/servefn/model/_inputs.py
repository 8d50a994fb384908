"""Missing feature values against what a model accepts: found once, refused with the field named.

An optional feature (``T | None``) that is null, omitted or an empty CSV field is NaN in the
feature matrix (``None`` in a text column). A predictor says where it can take one
(:attr:`~servefn.predictors.Predictor.accepts_missing`: an imputer, an encoder that knows
"missing", a tree that routes it); elsewhere the row is refused, since a NaN fed to a linear model
comes back as a NaN score. The HTTP layer turns the refusal into a 422 naming each place;
``LoadedModel.predict`` and batch scoring raise :class:`~servefn.errors.FeatureValueError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import FeatureValueError
from servefn.predictors import Predictor

__all__ = ["accepted_missing", "missing_mask", "refuse_missing", "refused_missing"]

_MAX_ROWS = 10


def _is_missing(value: Any) -> bool:
    return value is None or value != value  # NaN is the one value unequal to itself


_missing_cells = np.frompyfunc(_is_missing, 1, 1)


def missing_mask(matrix: NDArray[Any]) -> NDArray[np.bool_]:
    """Where ``matrix`` (a float or object feature matrix) holds a missing value."""
    if matrix.dtype == object:
        return np.asarray(_missing_cells(matrix), dtype=bool)
    mask: NDArray[np.bool_] = np.isnan(matrix)
    return mask


def accepted_missing(predictor: Predictor, n_features: int) -> NDArray[np.bool_]:
    """One flag per feature column: may a missing value reach ``predictor`` there?"""
    accepts = predictor.accepts_missing
    if isinstance(accepts, bool):
        return np.full(n_features, accepts)
    flags = np.asarray(list(accepts), dtype=bool)
    if flags.shape != (n_features,):
        return np.zeros(n_features, dtype=bool)  # a mismatch is refused by the width checks
    return flags


def refused_missing(matrix: NDArray[Any], predictor: Predictor) -> NDArray[np.bool_]:
    """Where ``matrix`` holds a missing value that ``predictor`` does not accept."""
    refused: NDArray[np.bool_] = missing_mask(matrix) & ~accepted_missing(
        predictor, matrix.shape[1]
    )
    return refused


def refuse_missing(
    matrix: NDArray[Any], predictor: Predictor, feature_names: Sequence[str]
) -> None:
    """Raise :class:`FeatureValueError` for the first feature column holding a missing value
    that ``predictor`` does not accept; return quietly when there is none."""
    if matrix.dtype != object and not np.isnan(matrix).any():
        return
    refused = refused_missing(matrix, predictor)
    columns = np.flatnonzero(refused.any(axis=0))
    if not len(columns):
        return
    column = int(columns[0])
    rows = np.flatnonzero(refused[:, column])[:_MAX_ROWS].tolist()
    name = feature_names[column] if column < len(feature_names) else f"feature {column}"
    raise FeatureValueError(
        f"{name} is missing in {int(refused[:, column].sum())} row(s) and the model cannot "
        "impute it; send a value",
        feature=column,
        rows=rows,
        reason="missing",
    )
