"""SdcaMaximumEntropyClassifier against ML.NET's published iris figures and its own objective.

Reference: docs/sdca.md (the ML.NET algorithm) and dotnet/machinelearning's
IrisPlantClassificationWithStringLabelTests (the figures asserted below).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from servefn.model._metrics import classification_metrics
from servefn.trainers import SdcaMaximumEntropyClassifier
from servefn.trainers import _sdca_kernel as kernel
from servefn.trainers.sdca import _check_schedule, _format_g7, primal_objective
from support.iris import IRIS_DATA

LOGGER = "servefn.trainers.sdca"
SETOSA, VERSICOLOR, VIRGINICA = "Iris-setosa", "Iris-versicolor", "Iris-virginica"


def load_iris() -> tuple[NDArray[np.float64], NDArray[np.str_]]:
    """The UCI file: SL, SW, PL, PW, label; the blank last line is not a row (as in ML.NET)."""
    with IRIS_DATA.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    X = np.array([[float(v) for v in row[:4]] for row in rows])
    y = np.array([row[4] for row in rows])
    return X, y


@pytest.fixture(scope="module")
def iris() -> tuple[NDArray[np.float64], NDArray[np.str_]]:
    return load_iris()


@pytest.fixture(scope="module")
def iris_model(iris: tuple[NDArray[np.float64], NDArray[np.str_]]) -> Pipeline:
    """The blog's pipeline: MinMax (fixZero) normalisation, then SDCA with 2 'threads'."""
    X, y = iris
    model = make_pipeline(
        MaxAbsScaler(), SdcaMaximumEntropyClassifier(check_frequency=2, random_state=0)
    )
    return model.fit(X, y)


def class_index(y: NDArray[Any], classes: NDArray[Any]) -> NDArray[np.int64]:
    position = {c: k for k, c in enumerate(classes)}
    return np.array([position[v] for v in y], dtype=np.int64)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


# --- ML.NET's published figures -------------------------------------------------------------


def test_iris_metrics_match_mlnet(iris: Any, iris_model: Pipeline) -> None:
    X, y = iris
    metrics = classification_metrics(y, iris_model.predict_proba(X), iris_model.classes_)

    assert metrics["confusion_matrix"] == [[50, 0, 0], [0, 48, 2], [0, 1, 49]]
    assert metrics["macro_accuracy"] == pytest.approx(0.98, abs=0.005)
    assert metrics["micro_accuracy"] == pytest.approx(0.98, abs=0.01)
    assert metrics["log_loss"] == pytest.approx(0.06, abs=0.01)
    assert 0.94 <= metrics["log_loss_reduction"] <= 0.96
    assert metrics["per_class_log_loss"] == pytest.approx([0.0, 0.1, 0.1], abs=0.1)


@pytest.mark.parametrize(
    ("features", "expected", "tolerance"),
    [
        ((5.1, 3.3, 1.6, 0.2), [1.0, 0.0, 0.0], [0.01, 0.01, 0.01]),
        ((6.4, 3.1, 5.5, 2.2), [0.0, 0.0, 1.0], [0.01, 0.01, 0.01]),
        ((4.4, 3.1, 2.5, 1.2), [0.2, 0.8, 0.0], [0.1, 0.1, 0.01]),
    ],
)
def test_mlnet_probes(
    iris_model: Pipeline,
    features: tuple[float, ...],
    expected: list[float],
    tolerance: list[float],
) -> None:
    proba = iris_model.predict_proba([features])[0]
    assert np.all(np.abs(proba - expected) <= tolerance), proba


def test_walkthrough_query_is_virginica(iris_model: Pipeline) -> None:
    # The blog reads (3.3, 1.6, 0.2, 5.1) as SL, SW, PL, PW: PetalWidth twice the training max.
    assert iris_model.predict([[3.3, 1.6, 0.2, 5.1]]).tolist() == [VIRGINICA]


def test_classes_follow_first_appearance_in_iris(iris_model: Pipeline) -> None:
    assert iris_model.classes_.tolist() == [SETOSA, VERSICOLOR, VIRGINICA]


# --- the objective ------------------------------------------------------------------------


def smooth_objective(
    X: NDArray[np.float64], y_index: NDArray[np.int64], n_classes: int, l2: float
) -> Callable[[NDArray[np.float64]], tuple[float, NDArray[np.float64]]]:
    """sdca.md 1.2 with L1 = 0 over θ = [W | b] (the 1e-8 loss floor does not bind here)."""
    n_rows = X.shape[0]
    X1 = np.hstack([X, np.ones((n_rows, 1))])
    rows = np.arange(n_rows)

    def value_and_gradient(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        T = theta.reshape(n_classes, -1)
        scores = X1 @ T.T
        margins = scores[rows, y_index][:, None] - scores
        loss = np.logaddexp(0.0, -margins)
        slope = np.exp(-np.logaddexp(0.0, margins))  # σ(−z) = −dℓ/dz
        loss[rows, y_index] = 0.0
        slope[rows, y_index] = 0.0
        d_scores = slope.copy()
        d_scores[rows, y_index] = -slope.sum(axis=1)
        value = loss.sum() / n_rows + 0.5 * l2 * float(theta @ theta)
        gradient = (d_scores.T @ X1) / n_rows + l2 * T
        return value, gradient.ravel()

    return value_and_gradient


def test_primal_is_within_a_tenth_of_a_percent_of_the_optimum(
    iris: Any, iris_model: Pipeline
) -> None:
    X, y = iris
    Xs = iris_model[0].transform(X)
    sdca = iris_model[-1]
    y_index = class_index(y, sdca.classes_)
    l2 = sdca.tuned_params_["l2_regularization"]
    objective = smooth_objective(Xs, y_index, 3, l2)

    result = minimize(
        objective,
        np.zeros(3 * 5),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100_000, "maxfun": 200_000, "gtol": 1e-12, "ftol": 0.0},
    )
    gradient_norm = float(np.linalg.norm(result.jac))
    # λ-strong convexity: f(θ) − f* ≤ ‖∇f(θ)‖² / 2λ, so the optimum is certified.
    assert gradient_norm**2 / (2 * l2) < 1e-12 * result.fun
    optimum = result.fun

    coef_opt = result.x.reshape(3, 5)
    assert primal_objective(coef_opt[:, :4], coef_opt[:, 4], Xs, y_index, l2) == pytest.approx(
        optimum, rel=1e-12
    )
    assert optimum <= sdca.objective_ <= optimum * 1.001


def test_reported_objective_is_the_primal_of_the_returned_model(
    iris: Any, iris_model: Pipeline
) -> None:
    X, y = iris
    sdca = iris_model[-1]
    recomputed = primal_objective(
        sdca.coef_,
        sdca.intercept_,
        iris_model[0].transform(X),
        class_index(y, sdca.classes_),
        sdca.tuned_params_["l2_regularization"],
    )
    assert sdca.objective_ == pytest.approx(recomputed, rel=1e-12)


def test_converges_to_the_tolerance_and_keeps_the_best_even_check(iris_model: Pipeline) -> None:
    sdca = iris_model[-1]
    assert sdca.converged_
    assert sdca.duality_gap_ < 0.1
    assert sdca.n_iter_ % 2 == 0
    assert sdca.best_iteration_ > 0
    assert sdca.best_iteration_ % 2 == 0
    assert sdca.best_iteration_ <= sdca.n_iter_ < sdca.tuned_params_["max_iterations"]


# --- ML.NET's auto-tuning and log lines ---------------------------------------------------


def test_auto_tuning_with_two_threads_logs_like_mlnet(
    iris: Any, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = iris
    caplog.set_level(logging.INFO, logger=LOGGER)
    sdca = SdcaMaximumEntropyClassifier(check_frequency=2, random_state=1)
    sdca.fit(MaxAbsScaler().fit_transform(X), y)

    assert sdca.tuned_params_ == {
        "max_iterations": 9998,
        "l2_regularization": float(np.float32(20 / (4998 * 150))),
        "l1_threshold": 0.0,
        "check_frequency": 2,
    }
    assert messages(caplog) == [
        "Auto-tuning parameters: maxIterations = 9998.",
        "Auto-tuning parameters: L2 = 2.667734E-05.",
        "Auto-tuning parameters: L1Threshold (L1/L2) = 0.",
        f"Using best model from iteration {sdca.best_iteration_}.",
    ]


def test_auto_tuning_with_one_thread(iris: Any, caplog: pytest.LogCaptureFixture) -> None:
    X, y = iris
    caplog.set_level(logging.INFO, logger=LOGGER)
    sdca = SdcaMaximumEntropyClassifier(check_frequency=1, random_state=0)
    sdca.fit(MaxAbsScaler().fit_transform(X), y)

    assert sdca.tuned_params_["max_iterations"] == 9999
    assert sdca.tuned_params_["l2_regularization"] == float(np.float32(20 / (4999 * 150)))
    # C#'s float.ToString() drops trailing zeros: 2.667200E-05 prints as 2.6672E-05.
    assert "Auto-tuning parameters: L2 = 2.6672E-05." in messages(caplog)
    assert sdca.converged_


@pytest.mark.parametrize(("cpu_count", "expected"), [(None, 1), (1, 1), (4, 2), (5, 2), (64, 8)])
def test_default_check_frequency_is_mlnets_thread_count(
    iris: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    cpu_count: int | None,
    expected: int,
) -> None:
    X, y = iris
    monkeypatch.setattr("servefn.trainers.sdca.os.cpu_count", lambda: cpu_count)
    caplog.set_level(logging.INFO, logger=LOGGER)
    sdca = SdcaMaximumEntropyClassifier(max_iterations=4, random_state=0).fit(X, y)

    assert sdca.tuned_params_["check_frequency"] == expected
    assert messages(caplog)[0] == f"Automatically choosing a check frequency of {expected}."


def test_given_parameters_are_used_and_not_logged(
    iris: Any, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = iris
    caplog.set_level(logging.INFO, logger=LOGGER)
    params: dict[str, Any] = {"max_iterations": 6, "l2_regularization": 0.01, "l1_threshold": 0.0}
    sdca = SdcaMaximumEntropyClassifier(check_frequency=3, random_state=0, **params).fit(X, y)

    assert sdca.tuned_params_ == {**params, "check_frequency": 3}
    assert not any("Auto" in m for m in messages(caplog))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.6677337e-05, "2.667734E-05"),
        (0.0, "0"),
        (0.25, "0.25"),
        (1.0, "1"),
        (1e-6, "1E-06"),
        (0.0001, "0.0001"),
        (123456789.0, "1.234568E+08"),
        (1234567.0, "1234567"),
    ],
)
def test_floats_print_as_csharp_g7(value: float, text: str) -> None:
    assert _format_g7(value) == text


# --- the check schedule and the best model --------------------------------------------------


@pytest.mark.parametrize(
    ("max_iterations", "check_frequency", "expected"),
    [
        (5, 1, [1, 2, 3, 4, 5]),  # one thread: after every epoch
        (1, 1, [1]),
        (8, 2, [2, 4, 6, 8]),  # cycles 1..3 check before running; final check at maxIter
        (9, 2, [2, 4, 6, 8, 9]),  # a check before the residue, then at maxIter
        (3, 2, [2, 3]),
        (2, 2, []),  # one cycle and no residue: no check ever runs
        (1, 2, []),
        (10, 4, [4, 8, 10]),
    ],
)
def test_checks_follow_mlnets_schedule(
    max_iterations: int, check_frequency: int, expected: list[int]
) -> None:
    assert _check_schedule(max_iterations, check_frequency).tolist() == expected


def test_without_a_check_the_last_model_is_used(
    iris: Any, caplog: pytest.LogCaptureFixture
) -> None:
    X, y = iris
    caplog.set_level(logging.INFO, logger=LOGGER)
    sdca = SdcaMaximumEntropyClassifier(max_iterations=2, check_frequency=2, random_state=0)
    sdca.fit(X, y)

    assert (sdca.n_iter_, sdca.best_iteration_, sdca.converged_) == (2, 0, False)
    assert math.isnan(sdca.duality_gap_)
    assert messages(caplog)[-1] == "Using model from last iteration."


def test_stops_at_max_iterations_when_not_converged(iris: Any) -> None:
    X, y = iris
    # A small λ: left to ML.NET's rule, 10 iterations would give λ = 20 / (4·150), easy to reach.
    sdca = SdcaMaximumEntropyClassifier(
        max_iterations=10, l2_regularization=1e-4, check_frequency=2, random_state=0
    )
    sdca.fit(MaxAbsScaler().fit_transform(X), y)

    assert (sdca.n_iter_, sdca.converged_) == (10, False)
    assert sdca.duality_gap_ >= 0.1
    assert sdca.best_iteration_ in {2, 4, 6, 8, 10}


def test_same_seed_same_model_other_seed_other_path(iris: Any) -> None:
    X, y = iris
    Xs = MaxAbsScaler().fit_transform(X)

    def fit(seed: int) -> SdcaMaximumEntropyClassifier:
        return SdcaMaximumEntropyClassifier(check_frequency=2, random_state=seed).fit(Xs, y)

    first, again, other = fit(7), fit(7), fit(8)
    np.testing.assert_array_equal(first.coef_, again.coef_)
    assert first.best_iteration_ == again.best_iteration_
    assert not np.array_equal(first.coef_, other.coef_)
    assert other.objective_ == pytest.approx(first.objective_, rel=1e-3)


def test_without_shuffle_the_seed_does_not_matter(iris: Any) -> None:
    X, y = iris
    fits = [
        SdcaMaximumEntropyClassifier(shuffle=False, max_iterations=20, random_state=s).fit(X, y)
        for s in (0, 1)
    ]
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)


def test_shuffle_gives_a_permutation() -> None:
    order = np.zeros(1000, dtype=np.int64)
    kernel.shuffle_rows(order, np.uint64(12345))
    assert sorted(order.tolist()) == list(range(1000))
    assert order.tolist() != list(range(1000))


# --- the update rule ------------------------------------------------------------------------


def one_row_epoch(n_threads: int) -> float:
    """One dual step on a row whose rival class already outscores its label by 1."""
    X = np.zeros((1, 1))
    duals = np.zeros((1, 2))
    bias_reg = np.array([0.0, 1.0])
    kernel.run_epoch(
        X, np.array([0]), np.ones(1), np.ones(1), np.ones(1), duals, np.zeros((2, 1)), bias_reg,
        np.zeros(2), np.zeros((2, 1)), np.zeros(2), 1.0, n_threads, 0.0, 0.0,
    )  # fmt: skip
    return float(duals[0, 1])


def test_large_dual_steps_are_damped_by_the_thread_count() -> None:
    full_step = 1.0 / (1.0 + math.exp(-1.0))  # σ(−output) − 0 with output = 0 − 1
    assert one_row_epoch(n_threads=1) == pytest.approx(full_step)
    assert one_row_epoch(n_threads=2) == pytest.approx(full_step / 2)
    assert one_row_epoch(n_threads=4) == pytest.approx(full_step / 4)


def test_l1_threshold_soft_thresholds_to_exact_zeros(iris: Any) -> None:
    X, y = iris
    Xs = MaxAbsScaler().fit_transform(X)
    dense = SdcaMaximumEntropyClassifier(check_frequency=2, random_state=0).fit(Xs, y)
    sparse = SdcaMaximumEntropyClassifier(check_frequency=2, random_state=0, l1_threshold=2.0)
    sparse.fit(Xs, y)

    assert np.count_nonzero(dense.coef_) == dense.coef_.size
    assert 0 < np.count_nonzero(sparse.coef_) < sparse.coef_.size
    y_index = class_index(y, sparse.classes_)
    l2 = sparse.tuned_params_["l2_regularization"]
    assert sparse.objective_ == pytest.approx(
        primal_objective(sparse.coef_, sparse.intercept_, Xs, y_index, l2, l1_threshold=2.0),
        rel=1e-12,
    )


def test_bias_learning_rate_trains_an_unregularised_bias_part(iris: Any) -> None:
    X, y = iris
    Xs = MaxAbsScaler().fit_transform(X)
    plain = SdcaMaximumEntropyClassifier(max_iterations=200, check_frequency=2, random_state=0)
    relaxed = clone(plain).set_params(bias_learning_rate=1.0)
    plain.fit(Xs, y)
    relaxed.fit(Xs, y)

    assert relaxed.score(Xs, y) >= 0.95
    assert not np.allclose(relaxed.intercept_, plain.intercept_)


# --- data handling --------------------------------------------------------------------------


def test_classes_are_keyed_by_first_appearance() -> None:
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0], [0.9, 0.0], [0.0, 0.9]])
    y = np.array(["b", "a", "b", "a", "b", "a"])
    sdca = SdcaMaximumEntropyClassifier(random_state=0).fit(X, y)

    assert sdca.classes_.tolist() == ["b", "a"]
    assert sdca.predict(X).tolist() == y.tolist()
    assert sdca.predict_proba([[1.0, 0.0]])[0, 0] > 0.5


def test_rows_with_missing_values_are_skipped(iris: Any, caplog: pytest.LogCaptureFixture) -> None:
    X, y = iris
    Xs = MaxAbsScaler().fit_transform(X)
    X_bad = np.vstack([[np.nan, 0.5, 0.5, 0.5], Xs, [0.5, np.inf, 0.5, 0.5], Xs[:1]])
    y_bad = np.array([SETOSA, *y, VIRGINICA, None], dtype=object)
    params: dict[str, Any] = {"check_frequency": 2, "max_iterations": 40, "random_state": 3}

    caplog.set_level(logging.WARNING, logger=LOGGER)
    skipped = SdcaMaximumEntropyClassifier(**params).fit(X_bad, y_bad)
    clean = SdcaMaximumEntropyClassifier(**params).fit(Xs, y)

    assert skipped.n_skipped_ == 3
    assert clean.n_skipped_ == 0
    assert messages(caplog) == ["Skipped 3 instances with missing features/label during training"]
    np.testing.assert_array_equal(skipped.coef_, clean.coef_)
    assert skipped.tuned_params_ == clean.tuned_params_


def test_nan_labels_in_a_float_target_are_missing() -> None:
    X = np.array([[0.0], [1.0], [0.1], [0.9], [0.5]])
    sdca = SdcaMaximumEntropyClassifier(random_state=0).fit(X, [0.0, 1.0, 0.0, 1.0, np.nan])
    assert sdca.classes_.tolist() == [0.0, 1.0]
    assert sdca.n_skipped_ == 1


def test_only_missing_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="0 instances"):
        SdcaMaximumEntropyClassifier().fit([[np.nan], [np.nan]], ["a", "b"])


def test_one_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        SdcaMaximumEntropyClassifier().fit([[0.0], [1.0]], ["a", "a"])


# --- sample weights -------------------------------------------------------------------------


def test_weight_two_counts_like_a_duplicated_row_in_the_objective(
    iris: Any, iris_model: Pipeline
) -> None:
    X, y = iris
    sdca = iris_model[-1]
    Xs = iris_model[0].transform(X)
    y_index = class_index(y, sdca.classes_)
    weights = np.ones(len(y))
    weights[60] = 2.0
    X_dup = np.vstack([Xs, Xs[60:61]])
    y_dup = np.append(y_index, y_index[60])

    # ML.NET divides the loss sum by the row count, so compare loss sums (λ = 0).
    weighted = primal_objective(sdca.coef_, sdca.intercept_, Xs, y_index, 0.0, 0.0, weights)
    duplicated = primal_objective(sdca.coef_, sdca.intercept_, X_dup, y_dup, 0.0)
    assert weighted * len(y) == pytest.approx(duplicated * (len(y) + 1), rel=1e-12)


def test_unit_weights_change_nothing_and_zero_weight_removes_a_row(iris: Any) -> None:
    X, y = iris
    Xs = MaxAbsScaler().fit_transform(X)
    params: dict[str, Any] = {"check_frequency": 2, "max_iterations": 30, "random_state": 5}

    def fit(X_: Any, y_: Any, weights: Any = None) -> NDArray[np.float64]:
        sdca = SdcaMaximumEntropyClassifier(**params).fit(X_, y_, sample_weight=weights)
        return np.asarray(sdca.coef_)

    np.testing.assert_array_equal(fit(Xs, y, np.ones(len(y))), fit(Xs, y))
    weights = np.ones(len(y))
    weights[10] = 0.0
    np.testing.assert_array_equal(fit(Xs, y, weights), fit(np.delete(Xs, 10, 0), np.delete(y, 10)))


def test_weights_change_the_model(iris: Any) -> None:
    X, y = iris
    Xs = MaxAbsScaler().fit_transform(X)
    weights = np.where(y == VERSICOLOR, 5.0, 1.0)
    params: dict[str, Any] = {"check_frequency": 2, "random_state": 0}
    plain = SdcaMaximumEntropyClassifier(**params).fit(Xs, y)
    weighted = SdcaMaximumEntropyClassifier(**params).fit(Xs, y, sample_weight=weights)

    predicted_versicolor = np.sum(weighted.predict(Xs) == VERSICOLOR)
    assert predicted_versicolor > np.sum(plain.predict(Xs) == VERSICOLOR)


@pytest.mark.parametrize("weights", [[-1.0, 1.0, 1.0, 1.0], [np.inf, 1.0, 1.0, 1.0], [1.0, 1.0]])
def test_bad_sample_weights_are_rejected(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="sample_weight"):
        SdcaMaximumEntropyClassifier().fit(np.eye(4), ["a", "b", "a", "b"], sample_weight=weights)


# --- scikit-learn integration ---------------------------------------------------------------


def test_composes_with_scikit_learn(iris: Any) -> None:
    X, y = iris
    estimator = SdcaMaximumEntropyClassifier(l2_regularization=1e-3, random_state=0)
    copy = clone(estimator)
    assert copy.get_params() == estimator.get_params()
    assert copy.get_params()["l2_regularization"] == 1e-3
    assert not hasattr(copy, "coef_")

    pipeline = make_pipeline(MaxAbsScaler(), copy)
    pipeline.set_params(sdcamaximumentropyclassifier__max_iterations=200)
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.min() > 0.8


def test_predict_ties_go_to_the_first_class(iris: Any) -> None:
    X, y = iris
    sdca = SdcaMaximumEntropyClassifier(max_iterations=2, random_state=0).fit(X, y)
    sdca.coef_ = np.zeros_like(sdca.coef_)
    sdca.intercept_ = np.zeros_like(sdca.intercept_)

    assert set(sdca.predict(X).tolist()) == {SETOSA}
    np.testing.assert_allclose(sdca.predict_proba(X[:2]), np.full((2, 3), 1 / 3))


def test_predicting_with_nan_is_an_error(iris_model: Pipeline) -> None:
    with pytest.raises(ValueError, match="NaN"):
        iris_model.predict([[5.0, np.nan, 1.0, 0.2]])


@pytest.mark.parametrize(
    "params",
    [
        {"l2_regularization": 0.0},
        {"l1_threshold": -1.0},
        {"max_iterations": 0},
        {"check_frequency": 0},
        {"convergence_tolerance": 0.0},
        {"bias_learning_rate": -0.5},
    ],
)
def test_invalid_parameters_are_rejected_at_fit(params: dict[str, Any]) -> None:
    estimator = SdcaMaximumEntropyClassifier(**params)  # __init__ only stores
    name = next(iter(params))
    with pytest.raises(ValueError, match=name):
        estimator.fit(np.eye(2), ["a", "b"])


EXPECTED_FAILED_CHECKS = {
    "check_classifiers_train": (
        "decision_function has one column per class even for two classes (ML.NET's model, and"
        " coef_ has n_classes rows), not scikit-learn's (n_samples,) binary margin"
    ),
    "check_classifiers_classes": (
        "the same binary decision_function shape; classes_ also follow first appearance in y"
        " (ML.NET's ValueToKey), not sorted order"
    ),
    "check_estimators_nan_inf": (
        "fit skips rows with NaN or infinite features, as ML.NET does, instead of raising"
    ),
    "check_sample_weight_equivalence_on_dense_data": (
        "ML.NET divides the loss by the row count, not the weight sum, so weight 2 is not a"
        " duplicated row (weight 0 is a removed row, and that part holds)"
    ),
}


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [SdcaMaximumEntropyClassifier(random_state=0)],
    expected_failed_checks=lambda _: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_conventions(estimator: Any, check: Any) -> None:
    check(estimator)
