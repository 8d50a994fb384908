"""classification_metrics against hand-computed values and ML.NET's evaluator rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from servefn.model._metrics import classification_metrics

CLASSES = ["a", "b", "c"]
MAX_LOG_LOSS = -math.log(1e-15)


def test_hand_computed_example() -> None:
    y_true = ["a", "a", "a", "b"]
    proba = [
        [0.7, 0.2, 0.1],  # a, right
        [0.6, 0.3, 0.1],  # a, right
        [0.2, 0.5, 0.3],  # b, wrong
        [0.4, 0.4, 0.2],  # tie between a and b: a (first) wins, wrong
    ]
    metrics = classification_metrics(y_true, proba, CLASSES)

    log_losses = [-math.log(p) for p in (0.7, 0.6, 0.2, 0.4)]
    prior = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    log_loss = sum(log_losses) / 4
    assert metrics["micro_accuracy"] == pytest.approx(0.5)
    assert metrics["macro_accuracy"] == pytest.approx((2 / 3 + 0) / 2)  # c is absent
    assert metrics["log_loss"] == pytest.approx(log_loss)
    assert metrics["log_loss_reduction"] == pytest.approx((prior - log_loss) / prior)
    assert metrics["per_class_log_loss"] == pytest.approx(
        [sum(log_losses[:3]) / 3, log_losses[3], 0.0]
    )
    assert metrics["confusion_matrix"] == [[2, 1, 0], [1, 0, 0], [0, 0, 0]]
    assert metrics["n_rows"] == 4


def test_perfect_predictions_remove_all_the_prior_log_loss() -> None:
    y_true = ["a", "b", "c", "a"]
    metrics = classification_metrics(y_true, np.eye(3)[[0, 1, 2, 0]], CLASSES)
    assert metrics["log_loss"] == 0.0
    assert metrics["log_loss_reduction"] == 1.0
    assert metrics["micro_accuracy"] == metrics["macro_accuracy"] == 1.0


def test_the_prior_itself_has_no_reduction() -> None:
    y_true = ["a", "b", "c"] * 2
    metrics = classification_metrics(y_true, np.full((6, 3), 1 / 3), CLASSES)
    assert metrics["log_loss"] == pytest.approx(math.log(3))
    assert metrics["log_loss_reduction"] == pytest.approx(0.0, abs=1e-12)


def test_zero_probability_for_the_true_class_is_floored() -> None:
    metrics = classification_metrics(["a"], [[0.0, 1.0, 0.0]], CLASSES)
    assert metrics["log_loss"] == pytest.approx(MAX_LOG_LOSS)


def test_missing_labels_and_non_finite_scores_are_left_out() -> None:
    y_true = ["a", None, float("nan"), "b"]
    proba = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [np.nan, 0.5, 0.5]]
    metrics = classification_metrics(y_true, proba, CLASSES)
    assert metrics["n_rows"] == 1
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_an_unknown_label_is_wrong_with_the_maximal_log_loss() -> None:
    y_true = ["a", "z"]
    metrics = classification_metrics(y_true, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], CLASSES)

    assert metrics["micro_accuracy"] == 0.5
    assert metrics["macro_accuracy"] == 1.0  # only class a is present among known labels
    assert metrics["log_loss"] == pytest.approx(MAX_LOG_LOSS / 2)
    assert metrics["per_class_log_loss"] == [0.0, 0.0, 0.0]
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    prior = -0.5 * math.log(0.5)  # frequencies over all counted rows, unknown included
    assert metrics["log_loss_reduction"] == pytest.approx((prior - MAX_LOG_LOSS / 2) / prior)


def test_one_class_has_no_log_loss_reduction() -> None:
    metrics = classification_metrics(["b", "b"], [[0.1, 0.9, 0.0]] * 2, CLASSES)
    assert metrics["log_loss_reduction"] is None


def test_no_rows_gives_zeros() -> None:
    metrics = classification_metrics([], np.zeros((0, 3)), CLASSES)
    assert metrics["micro_accuracy"] == metrics["macro_accuracy"] == metrics["log_loss"] == 0.0
    assert metrics["n_rows"] == 0


def test_numpy_labels_and_classes_match_python_values() -> None:
    metrics = classification_metrics(np.array([0, 1]), [[0.9, 0.1], [0.2, 0.8]], np.array([0, 1]))
    assert metrics["micro_accuracy"] == 1.0


def test_result_is_plain_json() -> None:
    metrics = classification_metrics(
        np.array(["a", "b"]), np.array([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1]]), np.array(CLASSES)
    )
    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics
    assert all(type(v) is float for v in metrics["per_class_log_loss"])
    assert all(type(v) is int for row in metrics["confusion_matrix"] for v in row)


def test_probabilities_must_match_labels_and_classes() -> None:
    with pytest.raises(ValueError, match="expected"):
        classification_metrics(["a", "b"], [[1.0, 0.0]], CLASSES)
