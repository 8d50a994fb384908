"""Linear regressors export to a numpy-only LinearRegressor that predicts as scikit-learn does."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn import linear_model
from sklearn.datasets import load_diabetes
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVR

from servefn.errors import PredictorError
from servefn.predictors._npz import dump_arrays
from servefn.predictors.linear_regression import LinearRegressor
from servefn.predictors.sklearn_linear import (
    SUPPORTED_REGRESSORS,
    linear_regressor_from_sklearn,
)
from support.preprocessing import reload

X, Y = load_diabetes(return_X_y=True)
X = X * np.arange(1, 11) + 3  # scales differ, so the folded scalers matter


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _model(name: str) -> Any:
    cls = LinearSVR if name == "LinearSVR" else getattr(linear_model, name)
    kwargs: dict[str, Any] = {"random_state": 0} if name in ("SGDRegressor", "LinearSVR") else {}
    return cls(**kwargs)


@pytest.mark.parametrize("name", SUPPORTED_REGRESSORS)
def test_every_supported_regressor_matches_after_folded_scalers(name: str) -> None:
    pipeline = make_pipeline(StandardScaler(), MinMaxScaler(), _model(name)).fit(X, Y)
    exported = linear_regressor_from_sklearn(pipeline)
    out = exported.predict(X)["Score"]
    assert out.shape == (len(X),)
    np.testing.assert_allclose(out, pipeline.predict(X), atol=1e-6, rtol=0)
    one = exported.predict_row(X[3].tolist())["Score"]
    assert len(one) == 1 and abs(one[0] - out[3]) < 1e-9
    np.testing.assert_array_equal(reload(exported).predict(X)["Score"], out)


def test_multi_target_scores_are_a_matrix() -> None:
    targets = np.column_stack((Y, -2 * Y + 1))
    model = linear_model.Ridge().fit(X, targets)
    exported = linear_regressor_from_sklearn(model)
    out = exported.predict(X)["Score"]
    assert out.shape == (len(X), 2)
    np.testing.assert_allclose(out, model.predict(X), atol=1e-6, rtol=0)
    np.testing.assert_allclose(exported.predict_row(X[0].tolist())["Score"][0], out[0], atol=1e-9)
    np.testing.assert_allclose(exported.predict(X[:1])["Score"], out[:1], atol=1e-9)


def test_unsupported_regressors_are_named() -> None:
    for model in (linear_model.PoissonRegressor(), linear_model.TheilSenRegressor()):
        with pytest.raises(PredictorError, match=type(model).__name__):
            linear_regressor_from_sklearn(model.fit(X[:50], Y[:50]))


def test_bad_weights_and_payloads_are_refused() -> None:
    with pytest.raises(PredictorError, match="weights must be"):
        LinearRegressor(np.ones((3, 2)), np.ones(3))
    with pytest.raises(PredictorError, match="finite"):
        LinearRegressor(np.array([1.0, np.nan]), 0.0)
    with pytest.raises(PredictorError, match=r"needs weights\.npz"):
        LinearRegressor.from_payload({}, {})
    files = {"weights.npz": dump_arrays({"weights": np.ones((3, 1))})}
    with pytest.raises(PredictorError, match="lacks 'bias'"):
        LinearRegressor.from_payload({}, files)
    files = {"weights.npz": dump_arrays({"weights": np.ones((3, 1)), "bias": np.ones(1)})}
    with pytest.raises(PredictorError, match="say 2 targets"):
        LinearRegressor.from_payload({"n_targets": 2}, files)
    with pytest.raises(PredictorError, match="3 feature columns"):
        LinearRegressor(np.ones(3), 0.0).predict(np.ones((2, 4)))
