"""Save-time dispatch to the tree converters: scikit-learn, XGBoost or LightGBM, by the model's
package. Each converter imports its library only when given one of its models."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors.trees import TreeEnsemble

__all__ = [
    "is_tree_model",
    "threshold_rows",
    "tree_ensemble_from",
]


def is_tree_model(model: Any) -> bool:
    """Whether ``model`` is a tree model one of the converters knows (cheap: no import)."""
    from servefn.predictors.trees_lightgbm import is_lightgbm_model
    from servefn.predictors.trees_sklearn import is_sklearn_tree_model
    from servefn.predictors.trees_xgboost import is_xgboost_model

    return is_sklearn_tree_model(model) or is_xgboost_model(model) or is_lightgbm_model(model)


def tree_ensemble_from(model: Any) -> TreeEnsemble:
    """``model`` as a :class:`TreeEnsemble`, or :class:`PredictorError` saying why not."""
    from servefn.predictors.trees_lightgbm import is_lightgbm_model, tree_ensemble_from_lightgbm
    from servefn.predictors.trees_sklearn import is_sklearn_tree_model, tree_ensemble_from_sklearn
    from servefn.predictors.trees_xgboost import is_xgboost_model, tree_ensemble_from_xgboost

    if is_xgboost_model(model):
        return tree_ensemble_from_xgboost(model)
    if is_lightgbm_model(model):
        return tree_ensemble_from_lightgbm(model)
    if is_sklearn_tree_model(model):
        return tree_ensemble_from_sklearn(model)
    raise PredictorError(
        f"{type(model).__name__} is not a tree model servefn exports (scikit-learn decision "
        "trees, random forests, extra trees, gradient boosting and histogram gradient "
        "boosting; XGBoost and LightGBM boosters)"
    )


def threshold_rows(model: TreeEnsemble, n: int = 256, seed: int = 0) -> NDArray[np.float64]:
    """Rows whose every feature sits on one of the model's split thresholds or just above it
    (in the precision the model compares in), with missing values where the model takes them
    and categories around its bitsets: where a converter that is off by one rounding or one
    direction predicts differently. ``save`` checks parity on them when given no rows."""
    a = model.nodes
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, model.n_features))
    split = (a.left != np.arange(a.feature.shape[0])) & (a.category < 0)
    limit = float(np.finfo(np.float32).max) / 2 if model.float32_input else 1e300
    categorical = set(a.feature[a.category >= 0].tolist())
    for j in range(model.n_features):
        if j in categorical:
            top = 32 * a.left_sets.shape[1]
            rows[:, j] = rng.integers(-1, min(top, 64) + 1, n)
            continue
        cuts = a.threshold[split & (a.feature == j)]
        cuts = cuts[np.abs(cuts) <= limit]
        if not cuts.size:
            continue
        picked = rng.choice(cuts, n)
        if model.float32_input:
            at = picked.astype(np.float32)
            above = np.nextafter(at, np.float32(np.inf)).astype(np.float64)
            at64 = at.astype(np.float64)
        else:
            at64, above = picked, np.nextafter(picked, np.inf)
        rows[:, j] = np.where(rng.random(n) < 0.5, at64, above)
    if model.accepts_missing:
        rows[rng.random(rows.shape) < 0.1] = np.nan
    return rows
