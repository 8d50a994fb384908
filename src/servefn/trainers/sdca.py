"""ML.NET's ``SdcaMaximumEntropy`` multiclass trainer as a scikit-learn classifier.

A faithful re-implementation of ``SdcaMulticlassTrainerBase`` (ML.NET 0.1 to today), documented
in docs/sdca.md: pairwise log-loss primal, per-row dual coordinate ascent, the
bias as a regularised constant feature, ML.NET's auto-tuned iteration budget and L2, relative
duality-gap convergence checks and the best model seen at a check. Training only: nothing on
servefn's serving path imports this module.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

import servefn.trainers._sdca_kernel as kernel

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import (
        check_consistent_length,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "servefn's SDCA trainer needs scikit-learn: pip install 'servefn[train]'"
    ) from exc

__all__ = ["SdcaMaximumEntropyClassifier", "primal_objective"]

logger = logging.getLogger(__name__)

Float64Array = NDArray[np.float64]
Int64Array = NDArray[np.int64]


def primal_objective(
    coef: ArrayLike,
    intercept: ArrayLike,
    X: ArrayLike,
    y_index: ArrayLike,
    l2: float,
    l1_threshold: float = 0.0,
    sample_weight: ArrayLike | None = None,
) -> float:
    """ML.NET's SDCA primal objective (sdca.md 1.2) of a linear model on ``X``.

    ``(1/n) Σ_i weight_i Σ_{c≠y_i} ℓ(s_{i,y_i} − s_{i,c}) + (λ/2)(‖W‖² + ‖b‖²)
    + t·λ(‖W‖₁ + ‖b‖₁)`` with ``ℓ(z) = −log(max(σ(z), 1e−8))``. ``y_index`` holds class
    positions (0..K−1); ``n`` is the row count, not the weight sum, as in ML.NET. The whole
    intercept is regularised, which is what the trainer does with ``bias_learning_rate=0``.
    """
    W = np.asarray(coef, dtype=np.float64)
    b = np.asarray(intercept, dtype=np.float64)
    features = np.asarray(X, dtype=np.float64)
    labels = np.asarray(y_index, dtype=np.int64)
    n_rows = len(features)
    weights = np.ones(n_rows) if sample_weight is None else np.asarray(sample_weight, float)
    scores = features @ W.T + b
    rows = np.arange(n_rows)
    margins = scores[rows, labels][:, np.newaxis] - scores
    with np.errstate(over="ignore"):
        losses = np.where(
            margins < kernel.LOSS_CLAMP_MARGIN,
            kernel.LOSS_CLAMP_VALUE,
            np.logaddexp(0.0, -margins),
        )
    losses[rows, labels] = 0.0
    data_term = float(losses.sum(axis=1) @ weights) / n_rows
    l2_term = 0.5 * l2 * float(np.sum(W**2) + np.sum(b**2))
    l1_term = l1_threshold * l2 * float(np.sum(np.abs(W)) + np.sum(np.abs(b)))
    return data_term + l2_term + l1_term


class SdcaMaximumEntropyClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Multiclass SDCA with a softmax on the scores, as ML.NET's ``SdcaMaximumEntropy``.

    Trains one weight vector and bias per class by stochastic dual coordinate ascent on ML.NET's
    pairwise log-loss with L2 (and optional L1) regularisation. Scale the features first (ML.NET
    requires normalisation; ``MaxAbsScaler`` is its default MinMax transform). Runs sequentially:
    ``check_frequency`` stands for ML.NET's thread count wherever that count changes the result.

    Parameters
    ----------
    l2_regularization : float or None, default=None
        L2 constant λ. None: ML.NET's rule ``max(1e-6, 20 / (expected_iterations · n))``.
    l1_threshold : float or None, default=None
        Soft threshold t (the L1 constant is t·λ). None: 0 below 100 features, else 0.25 to 1.
    max_iterations : int or None, default=None
        Maximum number of epochs. None: ``max(1, 500000 // n) · 3`` rounded to a multiple of
        ``check_frequency``.
    check_frequency : int or None, default=None
        Check convergence every this many epochs; also ML.NET's thread count for the auto-tuning
        and the damping of large dual steps. None: ``min(8, max(1, os.cpu_count() // 2))``.
    convergence_tolerance : float, default=0.1
        Stop when the relative duality gap ``(P − D) / P`` falls below this.
    shuffle : bool, default=True
        Visit the rows in a fresh random permutation every epoch.
    bias_learning_rate : float, default=0.0
        0: the bias is a regularised constant feature. Above 0: ML.NET's over-relaxation
        that adds an unregularised bias part.
    random_state : int, numpy.random.Generator or None, default=None
        Source of one seed per epoch for that epoch's permutation, as ML.NET seeds a ``Random``
        per epoch from its host generator (``numpy.random.default_rng(random_state)``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels in order of first appearance in ``y`` (ML.NET's ValueToKey order).
    coef_ : ndarray of shape (n_classes, n_features)
    intercept_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    tuned_params_ : dict
        ``max_iterations``, ``l2_regularization``, ``l1_threshold``, ``check_frequency`` used.
    best_iteration_ : int
        Epoch of the returned model (lowest primal at a check); 0 means the last model.
    n_iter_ : int
        Epochs run.
    converged_ : bool
    duality_gap_ : float
        Relative duality gap at the last check (nan if no check ran).
    objective_ : float
        Primal objective of the returned model.
    n_skipped_ : int
        Rows left out for a missing label, a non-finite feature or a zero weight.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MaxAbsScaler
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(MaxAbsScaler(), SdcaMaximumEntropyClassifier(random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.95
    True
    """

    def __init__(
        self,
        l2_regularization: float | None = None,
        l1_threshold: float | None = None,
        max_iterations: int | None = None,
        check_frequency: int | None = None,
        convergence_tolerance: float = 0.1,
        shuffle: bool = True,
        bias_learning_rate: float = 0.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.l2_regularization = l2_regularization
        self.l1_threshold = l1_threshold
        self.max_iterations = max_iterations
        self.check_frequency = check_frequency
        self.convergence_tolerance = convergence_tolerance
        self.shuffle = shuffle
        self.bias_learning_rate = bias_learning_rate
        self.random_state = random_state

    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> SdcaMaximumEntropyClassifier:
        """Train on ``X`` and labels ``y``; rows with a missing label or feature are skipped."""
        self._check_params()
        features = validate_data(self, X, dtype=np.float64, ensure_all_finite=False)
        labels = column_or_1d(y, warn=True)
        check_consistent_length(features, labels)
        weights = _check_sample_weight(sample_weight, features.shape[0])
        self.classes_, y_index = _encode_labels(labels)

        good = (y_index >= 0) & np.isfinite(features).all(axis=1) & (weights > 0)
        self.n_skipped_ = int(good.size - np.count_nonzero(good))
        if self.n_skipped_:
            logger.warning(
                "Skipped %d instances with missing features/label during training", self.n_skipped_
            )
        n_rows = int(np.count_nonzero(good))
        if n_rows == 0:
            raise ValueError(
                "Training set has 0 instances, aborting training: every row has a missing label, "
                "a non-finite feature or a zero sample weight."
            )

        self.tuned_params_ = self._tune(n_rows, features.shape[1])
        params = self.tuned_params_
        coef, intercept, n_iter, best_iter, converged, gap, objective = kernel.train(
            features[good],
            y_index[good],
            weights[good],
            len(self.classes_),
            self._epoch_seeds(params["max_iterations"]),
            params["max_iterations"],
            _check_schedule(params["max_iterations"], params["check_frequency"]),
            float(self.convergence_tolerance),
            params["l2_regularization"],
            params["l1_threshold"],
            float(self.bias_learning_rate),
            params["check_frequency"],
        )
        if best_iter > 0:
            logger.info("Using best model from iteration %d.", best_iter)
        else:
            logger.info("Using model from last iteration.")
        self.coef_: Float64Array = coef
        self.intercept_: Float64Array = intercept
        self.n_iter_ = int(n_iter)
        self.best_iteration_ = int(best_iter)
        self.converged_ = bool(converged)
        self.duality_gap_ = float(gap)
        self.objective_ = float(objective)
        return self

    def decision_function(self, X: ArrayLike) -> Float64Array:
        """Class scores ``X @ coef_.T + intercept_``, shape (n_samples, n_classes).

        One column per class even for two classes (ML.NET's model), unlike scikit-learn's
        binary ``(n_samples,)`` margin. Non-finite inputs raise: only ``fit`` skips them.
        """
        check_is_fitted(self)
        features = validate_data(self, X, dtype=np.float64, reset=False)
        scores: Float64Array = features @ self.coef_.T + self.intercept_
        return scores

    def predict_proba(self, X: ArrayLike) -> Float64Array:
        """Softmax of the class scores (ML.NET's ``Score`` column)."""
        scores = self.decision_function(X)
        exp = np.exp(scores - scores.max(axis=1, keepdims=True))
        proba: Float64Array = exp / exp.sum(axis=1, keepdims=True)
        return proba

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """The class with the highest score; a tie goes to the class seen first."""
        best = np.argmax(self.decision_function(X), axis=1)
        return np.asarray(self.classes_[best])

    def _epoch_seeds(self, max_iterations: int) -> NDArray[np.uint64]:
        """One seed per epoch from ``random_state`` (none without shuffling)."""
        if not self.shuffle:
            return np.empty(0, dtype=np.uint64)
        rng = np.random.default_rng(self.random_state)
        return rng.integers(0, 2**64, size=max_iterations, dtype=np.uint64, endpoint=False)

    def _check_params(self) -> None:
        checks = {
            "l2_regularization": self.l2_regularization is None or self.l2_regularization > 0,
            "l1_threshold": self.l1_threshold is None or self.l1_threshold >= 0,
            "max_iterations": self.max_iterations is None or self.max_iterations >= 1,
            "check_frequency": self.check_frequency is None or self.check_frequency >= 1,
            "convergence_tolerance": self.convergence_tolerance > 0,
            "bias_learning_rate": self.bias_learning_rate >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"Invalid parameters: {', '.join(bad)}. l2_regularization and "
                "convergence_tolerance must be > 0; l1_threshold and bias_learning_rate >= 0; "
                "max_iterations and check_frequency >= 1 (or None to auto-tune)."
            )

    def _tune(self, n_rows: int, n_features: int) -> dict[str, Any]:
        """Fill in the parameters left at None with ML.NET's rules, logging each as ML.NET does."""
        check_frequency = self.check_frequency
        if check_frequency is None:
            check_frequency = _default_thread_count()
            logger.info("Automatically choosing a check frequency of %d.", check_frequency)
        max_iterations = self.max_iterations
        if max_iterations is None:
            max_iterations = _tune_max_iterations(n_rows, check_frequency)
            logger.info("Auto-tuning parameters: maxIterations = %d.", max_iterations)
        l2 = self.l2_regularization
        if l2 is None:
            l2 = _tune_l2(max_iterations, n_rows, check_frequency)
            logger.info("Auto-tuning parameters: L2 = %s.", _format_g7(l2))
        l1 = self.l1_threshold
        if l1 is None:
            l1 = _tune_l1_threshold(n_features)
            logger.info("Auto-tuning parameters: L1Threshold (L1/L2) = %s.", _format_g7(l1))
        return {
            "max_iterations": int(max_iterations),
            "l2_regularization": float(l2),
            "l1_threshold": float(l1),
            "check_frequency": int(check_frequency),
        }


def _default_thread_count() -> int:
    """ML.NET's ``ComputeNumThreads``: half the processors, between 1 and 8."""
    return min(8, max(1, (os.cpu_count() or 1) // 2))


def _tune_max_iterations(n_rows: int, n_threads: int) -> int:
    """``TuneDefaultMaxIterations`` with C# integer division."""
    max_iterations = max(1, 500000 // n_rows) * 3
    return max(2, max(1, max_iterations // n_threads) * n_threads)


def _tune_l2(max_iterations: int, n_rows: int, n_threads: int) -> float:
    """``TuneDefaultL2``: a float32 computation, returned widened to float64."""
    expected_iterations = max(2, max_iterations // 2 // n_threads) * n_threads
    l2 = np.float32(20.0) / np.float32(expected_iterations * n_rows)
    return float(max(np.float32(1e-6), l2))


def _tune_l1_threshold(n_features: int) -> float:
    """``TuneDefaultL1``: sparser models for wider inputs."""
    if n_features < 100:
        return 0.0
    if n_features < 1000:
        return 0.25
    return 0.5 if n_features < 10000 else 1.0


def _check_schedule(max_iterations: int, check_frequency: int) -> Int64Array:
    """Epochs after which ML.NET checks convergence (``TrainCore``).

    One thread checks after every ``check_frequency``-th epoch. Several threads check before
    each cycle of ``check_frequency`` epochs but the first, before the remainder, and at
    ``max_iterations`` only if an earlier check ran.
    """
    if check_frequency == 1:
        return np.arange(1, max_iterations + 1, dtype=np.int64)
    cycles = np.arange(1, max_iterations // check_frequency + 1, dtype=np.int64) * check_frequency
    checks = cycles[cycles < max_iterations]
    return np.append(checks, max_iterations) if checks.size else checks


def _format_g7(value: float) -> str:
    """A float32 as C# prints it with ``ToString()`` ("G7"): ``2.667734E-05``, ``0.25``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return format(float(np.float32(value)), ".7G")


def _check_sample_weight(sample_weight: ArrayLike | None, n_rows: int) -> Float64Array:
    if sample_weight is None:
        return np.ones(n_rows)
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n_rows,):
        raise ValueError(
            f"sample_weight.shape == {weights.shape}, expected {(n_rows,)}: one weight per row."
        )
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError("sample_weight must be finite and non-negative.")
    return weights


def _missing_labels(labels: NDArray[Any]) -> NDArray[np.bool_]:
    """None or NaN: ML.NET's missing key."""
    if labels.dtype.kind == "f":
        nan: NDArray[np.bool_] = np.isnan(labels)
        return nan
    if labels.dtype.kind == "O":
        return np.fromiter(
            (v is None or (isinstance(v, float | np.floating) and math.isnan(v)) for v in labels),
            dtype=bool,
            count=labels.size,
        )
    return np.zeros(labels.shape, dtype=bool)


def _encode_labels(labels: NDArray[Any]) -> tuple[NDArray[Any], Int64Array]:
    """Classes in order of first appearance, and each row's class index (-1 if missing)."""
    missing = _missing_labels(labels)
    present = labels[~missing]
    check_classification_targets(present)
    unique, first_seen, inverse = np.unique(present, return_index=True, return_inverse=True)
    if unique.size < 2:
        raise ValueError(
            f"SDCA needs at least 2 classes in y; got {unique.size} class(es): {unique.tolist()}."
        )
    by_appearance = np.argsort(first_seen, kind="stable")
    rank = np.empty_like(by_appearance)
    rank[by_appearance] = np.arange(by_appearance.size)
    index = np.full(labels.shape[0], -1, dtype=np.int64)
    index[~missing] = rank[inverse.ravel()]
    return unique[by_appearance], index
