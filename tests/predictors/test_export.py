"""scikit-learn pipelines export to numpy-only linear predictors with identical outputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from servefn import PredictorError
from servefn.predictors.sklearn_linear import linear_from_sklearn

CLASSIFIERS: list[tuple[str, Any]] = [
    ("logreg", lambda: LogisticRegression(max_iter=2000)),
    ("sgd-log", lambda: SGDClassifier(loss="log_loss", random_state=0)),
    ("sgd-hinge", lambda: SGDClassifier(loss="hinge", random_state=0)),
    ("linear-svc", lambda: LinearSVC()),
    ("ridge", lambda: RidgeClassifier()),
]
SCALERS: list[tuple[str, Any]] = [
    ("none", lambda: []),
    ("maxabs", lambda: [MaxAbsScaler()]),
    ("minmax", lambda: [MinMaxScaler()]),
    ("standard", lambda: [StandardScaler()]),
    ("chain", lambda: [StandardScaler(), MaxAbsScaler(), MinMaxScaler((-1, 2))]),
]


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """These fits are small (300 x 6): a second BLAS thread only adds synchronisation, which
    costs seconds per fit when the CPUs are busy (an unscaled LogisticRegression makes 2000
    lbfgs steps). The results do not depend on it."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _data(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=n_classes, random_state=n_classes
    )
    labels = np.array(["ant", "bee", "cat", "dog"])[y]
    return X * np.array([1, 10, 100, 0.1, 5, 3]) + 2, labels


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize(("scaler_name", "scalers"), SCALERS)
@pytest.mark.parametrize(("clf_name", "classifier"), CLASSIFIERS)
def test_exported_predictions_and_scores_match_sklearn(
    n_classes: int, scaler_name: str, scalers: Any, clf_name: str, classifier: Any
) -> None:
    X, y = _data(n_classes)
    pipeline = make_pipeline(*scalers(), classifier()).fit(X, y)
    exported = linear_from_sklearn(pipeline)
    X_new = X + np.random.default_rng(0).normal(scale=0.5, size=X.shape)
    out = exported.predict(X_new)
    np.testing.assert_array_equal(out["PredictedLabel"], pipeline.predict(X_new))
    if hasattr(pipeline, "predict_proba"):
        expected = pipeline.predict_proba(X_new)
    else:
        expected = pipeline.decision_function(X_new)
        expected = expected.reshape(len(X_new), -1)
    np.testing.assert_allclose(out["Score"], expected, atol=1e-6, rtol=0)
    assert exported.classes.tolist() == pipeline.classes_.tolist()
    for i in range(20):  # one row at a time takes the plain-Python path: same answers
        one = exported.predict(X_new[i : i + 1])
        assert list(one["PredictedLabel"]) == [out["PredictedLabel"][i]]
        np.testing.assert_allclose(one["Score"], out["Score"][i : i + 1], rtol=1e-12, atol=1e-15)


def test_unsupported_steps_are_named() -> None:
    X, y = _data(2)
    for estimator, name in [
        (make_pipeline(MaxAbsScaler(), SVC()).fit(X, y), "SVC"),
        (DecisionTreeClassifier().fit(X, y), "DecisionTreeClassifier"),
    ]:
        with pytest.raises(PredictorError, match=f"^{name} cannot be exported"):
            linear_from_sklearn(estimator)
    with pytest.raises(PredictorError, match="clip=True"):
        linear_from_sklearn(make_pipeline(MinMaxScaler(clip=True), LinearSVC()).fit(X, y))


def test_unfitted_models_are_refused_clearly() -> None:
    with pytest.raises(PredictorError, match="LogisticRegression is not fitted"):
        linear_from_sklearn(LogisticRegression())
