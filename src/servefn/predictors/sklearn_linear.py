"""Convert fitted scikit-learn linear pipelines to numpy-only servefn predictors.

A supported pipeline is any chain of affine scalers (MaxAbsScaler, MinMaxScaler without
clipping, StandardScaler) ending in a linear classifier (LogisticRegression, SGDClassifier,
LinearSVC, RidgeClassifier, the SDCA trainer) or a linear regressor whose ``predict`` is exactly
``X @ coef_.T + intercept_`` in scikit-learn 1.9 (:data:`SUPPORTED_REGRESSORS`; others, such as
TransformedTargetRegressor or a GLM with a link function, are refused by class name). The
scalers are folded into the weights:
``(X * a + c) @ W + b == X @ (a[:, None] * W) + (c @ W + b)``. Training-time only: this module
imports scikit-learn. (``servefn.save`` calls it; ``write_model`` then writes the archive.)
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors.linear import LinearClassifier, ScoreKind
from servefn.predictors.linear_regression import LinearRegressor

__all__ = [
    "SUPPORTED_REGRESSORS",
    "SUPPORTED_STEPS",
    "describe_steps",
    "linear_from_sklearn",
    "linear_regressor_from_sklearn",
]

SUPPORTED_STEPS = (
    "MaxAbsScaler",
    "MinMaxScaler",
    "StandardScaler",
    "LogisticRegression",
    "SGDClassifier",
    "LinearSVC",
    "RidgeClassifier",
    "RidgeClassifierCV",
    "SdcaMaximumEntropyClassifier",
)
SUPPORTED_REGRESSORS = (
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "SGDRegressor",
    "BayesianRidge",
    "ARDRegression",
    "HuberRegressor",
    "LinearSVR",
)
"""Regressors whose ``predict`` is ``X @ coef_.T + intercept_`` (scikit-learn 1.9)."""


def describe_steps(estimator: Any) -> list[str]:
    """Class names of a pipeline's steps (or of a single estimator), for the manifest."""
    return [type(step).__name__ for step in _steps(estimator)]


def linear_from_sklearn(estimator: Any) -> LinearClassifier:
    """A :class:`LinearClassifier` that predicts exactly as the fitted ``estimator`` does.

    Raises :class:`~servefn.errors.PredictorError` naming the first unsupported step.
    """
    steps = _steps(estimator)
    if not steps:
        raise PredictorError("the pipeline is empty; fit a classifier first")
    *scalers, final = steps
    W, b, classes, score = _linear(final)
    W, b = _fold(scalers, W, b, "classifier")
    return LinearClassifier(W, b, classes, score=score)


def linear_regressor_from_sklearn(estimator: Any) -> LinearRegressor:
    """A :class:`LinearRegressor` that predicts exactly as the fitted ``estimator`` (a
    regressor, or a Pipeline of affine scalers then a regressor) does.

    Raises :class:`~servefn.errors.PredictorError` naming the first unsupported step.
    """
    steps = _steps(estimator)
    if not steps:
        raise PredictorError("the pipeline is empty; fit a regressor first")
    *scalers, final = steps
    W, b = linear_regressor_weights(final)
    W, b = _fold(scalers, W, b, "regressor")
    return LinearRegressor(W, b)


def _fold(
    scalers: list[Any], W: NDArray[np.float64], b: NDArray[np.float64], what: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(W, b)`` with the affine ``scalers`` (applied before the model) folded in."""
    a: NDArray[np.float64] | None = None
    c: NDArray[np.float64] | None = None
    for step in scalers:
        step_a, step_c = _affine(step)
        a, c = (step_a, step_c) if a is None or c is None else (a * step_a, c * step_a + step_c)
    if a is None or c is None:
        return W, b
    if a.shape[0] != W.shape[0]:
        raise PredictorError(f"the scalers see {a.shape[0]} features but the {what} {W.shape[0]}")
    return a[:, None] * W, c @ W + b


def linear_regressor_weights(step: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(W, b)`` of a fitted supported regressor, W as (n_features, n_targets)."""
    name = type(step).__name__
    if name not in SUPPORTED_REGRESSORS or not _from_sklearn(step):
        raise PredictorError(
            f"{name} cannot be exported to a numpy-only linear regressor; supported: "
            f"{', '.join(SUPPORTED_REGRESSORS)} (after MaxAbsScaler, MinMaxScaler, "
            "StandardScaler). Other estimators need the scikit-learn predictor."
        )
    _check_fitted(step)
    coef = np.asarray(step.coef_, dtype=np.float64)
    W = np.ascontiguousarray(coef.reshape(1, -1).T if coef.ndim == 1 else coef.T)
    intercept = np.asarray(step.intercept_, dtype=np.float64).reshape(-1)
    b = np.broadcast_to(intercept, (W.shape[1],)).copy()
    return W, b


def _from_sklearn(step: Any) -> bool:
    """Whether ``step`` is one of scikit-learn's own classes (not a subclass elsewhere)."""
    from sklearn import linear_model, svm

    cls = type(step)
    return cls is getattr(linear_model, cls.__name__, None) or cls is getattr(
        svm, cls.__name__, None
    )


def _steps(estimator: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        return [s for _, s in estimator.steps if s is not None and s != "passthrough"]
    return [estimator]


def _affine(step: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(a, c)`` with ``step.transform(X) == X * a + c``."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    _check_fitted(step)
    if type(step) is MaxAbsScaler:
        a = 1.0 / np.asarray(step.scale_, dtype=np.float64)
        return a, np.zeros_like(a)
    if type(step) is MinMaxScaler:
        if step.clip:
            raise PredictorError("MinMaxScaler(clip=True) is not affine; export needs clip=False")
        return np.asarray(step.scale_, np.float64), np.asarray(step.min_, np.float64)
    if type(step) is StandardScaler:
        n = int(step.n_features_in_)
        scale = np.ones(n) if step.scale_ is None else np.asarray(step.scale_, np.float64)
        mean = np.zeros(n) if step.mean_ is None else np.asarray(step.mean_, np.float64)
        return 1.0 / scale, -mean / scale
    raise _unsupported(step)


def _linear(step: Any) -> tuple[NDArray[np.float64], NDArray[np.float64], list[Any], ScoreKind]:
    """``(W, b, classes, score)`` of a fitted linear classifier, W as (n_features, n_outputs)."""
    from sklearn.linear_model import (
        LogisticRegression,
        RidgeClassifier,
        RidgeClassifierCV,
        SGDClassifier,
    )
    from sklearn.svm import LinearSVC

    _check_fitted(step)
    kind = type(step)
    score: ScoreKind
    if _is_sdca(step):
        score = "softmax"
    elif kind is LogisticRegression:
        multinomial = getattr(step, "multi_class", "multinomial") in ("multinomial", "auto")
        score = "logistic" if len(step.classes_) == 2 else ("softmax" if multinomial else "ovr")
    elif kind is SGDClassifier:
        if step.loss == "log_loss":
            score = "logistic" if len(step.classes_) == 2 else "ovr"
        else:
            score = "decision"
    elif kind in (LinearSVC, RidgeClassifier, RidgeClassifierCV):
        score = "decision"
    else:
        raise _unsupported(step)
    W = np.atleast_2d(np.asarray(step.coef_, dtype=np.float64)).T
    b = np.broadcast_to(np.asarray(step.intercept_, dtype=np.float64), (W.shape[1],)).copy()
    return np.ascontiguousarray(W), b, list(np.asarray(step.classes_).tolist()), score


def _is_sdca(step: Any) -> bool:
    """Whether ``step`` is servefn's SDCA trainer, without importing it (and numba) if unused."""
    module = sys.modules.get("servefn.trainers.sdca")
    return module is not None and type(step) is module.SdcaMaximumEntropyClassifier


def _check_fitted(step: Any) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(step)
    except NotFittedError as exc:
        raise PredictorError(f"{type(step).__name__} is not fitted; call fit() first") from exc


def _unsupported(step: Any) -> PredictorError:
    return PredictorError(
        f"{type(step).__name__} cannot be exported to a numpy-only linear model; supported steps: "
        f"{', '.join(SUPPORTED_STEPS)}. Other estimators need the scikit-learn predictor."
    )
