"""scikit-learn, XGBoost and LightGBM models converted to ONNX at save time (skl2onnx, onnxmltools)
and served by onnxruntime: labels equal to the source model's and scores within 1e-5 (relative
for regression values) through ``OnnxPredictor.predict`` and through a saved model.zip; the
precision each converter reached is recorded; missing values are accepted exactly where the
conversion answers them as the source does; a model no converter handles, or a converter that is
not installed, is refused with advice; and a fresh process serves a converted forest without
scikit-learn, XGBoost, LightGBM or the converters."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from servefn import Schema, column
from servefn.errors import PredictorError
from servefn.model import LoadedModel, load_model, write_model
from servefn.predictors import register_predictor, registry
from servefn.predictors.onnx import OnnxPredictor
from servefn.predictors.onnx_export import onnx_predictor
from servefn.schema import layout_of

TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _onnx_kind() -> None:
    if "onnx" not in registry:
        register_predictor("onnx", "servefn.predictors.onnx:OnnxPredictor")
    warnings.filterwarnings("ignore", category=UserWarning)  # LightGBM's feature names


class Six(Schema):
    a: float | None = column(0, default=None)
    b: float | None = column(1, default=None)
    c: float | None = column(2, default=None)
    d: float | None = column(3, default=None)
    e: float | None = column(4, default=None)
    f: float | None = column(5, default=None)


class Label(Schema):
    predicted_label: int = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Named(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Value(Schema):
    score: float = column(name="Score")


def _classification(n_classes: int, nan: bool = False) -> tuple[NDArray[Any], NDArray[Any]]:
    X, y = make_classification(
        600, 6, n_informative=4, n_classes=n_classes, n_clusters_per_class=1, random_state=n_classes
    )
    if nan:
        X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    return X, y


def _regression() -> tuple[NDArray[Any], NDArray[Any]]:
    return make_regression(600, 6, n_informative=4, noise=5.0, random_state=1)


def _records(X: NDArray[Any]) -> list[dict[str, Any]]:
    names = layout_of(Six).feature_names
    return [
        {n: (None if v != v else v) for n, v in zip(names, row, strict=True)} for row in X.tolist()
    ]


def _saved(
    predictor: OnnxPredictor, output: type[Schema], input: type[Schema] = Six
) -> LoadedModel:
    buffer = io.BytesIO()
    write_model(buffer, predictor, input=input, output=output)
    return load_model(buffer.getvalue())


def _check_classifier(model: Any, X: NDArray[Any], output: type[Schema]) -> dict[str, Any]:
    predictor = onnx_predictor(model, layout_of(Six), ["PredictedLabel", "Score"], sample=X)
    parity = predictor.info["parity"]
    assert parity["labels_equal"] and parity["max_score_difference"] <= TOLERANCE
    out = predictor.predict(X)
    assert list(out["PredictedLabel"]) == list(model.predict(X))
    assert np.abs(out["Score"] - model.predict_proba(X)).max() <= TOLERANCE
    served = _saved(predictor, output)
    rows = served.predict(_records(X))
    assert [r.predicted_label for r in rows] == list(model.predict(X))
    assert np.abs(np.array([r.score for r in rows]) - model.predict_proba(X)).max() <= TOLERANCE
    assert np.array_equal(served.predictor.predict(X)["Score"], out["Score"])
    return dict(predictor.info)


def test_logistic_regression_converts_in_double_exactly() -> None:
    X, y = _classification(3)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    info = _check_classifier(model, X, Label)
    assert info["source"]["converter"].endswith(", double")
    assert info["parity"]["max_score_difference"] < 1e-12
    assert info["score"] == "probability"


def test_string_labels_come_from_the_graphs_label_output() -> None:
    X, y = load_iris(return_X_y=True)
    X = np.column_stack([X, X[:, :2] * 0.5])
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=1000).fit(X, names)
    predictor = onnx_predictor(model, layout_of(Six), ["PredictedLabel", "Score"], sample=X)
    assert [o.role for o in predictor.output_specs] == ["label", "scores"]
    assert list(predictor.classes) == ["setosa", "versicolor", "virginica"]  # type: ignore[arg-type]
    rows = _saved(predictor, Named).predict(_records(X))
    assert [r.predicted_label for r in rows] == list(model.predict(X))


def test_a_random_forest_converts_within_tolerance() -> None:
    X, y = _classification(2)
    model = RandomForestClassifier(40, max_depth=10, random_state=0).fit(X, y)
    info = _check_classifier(model, X, Label)
    assert info["parity"]["max_score_difference"] < 1e-6


def test_a_random_forest_regressor_converts_within_tolerance() -> None:
    X, y = _regression()
    model = RandomForestRegressor(30, max_depth=8, random_state=0).fit(X, y)
    predictor = onnx_predictor(model, layout_of(Six), ["Score"], sample=X)
    assert predictor.info["parity"]["max_relative_difference"] <= TOLERANCE
    rows = _saved(predictor, Value).predict(_records(X))
    expected = model.predict(X)
    gap = np.abs(np.array([r.score for r in rows]) - expected) / np.maximum(1, np.abs(expected))
    assert gap.max() <= TOLERANCE


def test_histogram_gradient_boosting_converts_or_is_refused_with_the_cause() -> None:
    X, y = _classification(2)
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    try:
        info = _check_classifier(model, X, Label)
    except PredictorError as exc:  # skl2onnx 1.20 with scikit-learn 1.9 and protobuf 7
        message = str(exc)
        assert message.startswith("HistGradientBoostingClassifier cannot be converted to ONNX")
        assert "skl2onnx" in message and "caused by" in message
        assert "kind='tree-ensemble'" in message
    else:
        assert info["parity"]["labels_equal"]


@pytest.mark.parametrize("n_classes", [2, 3])
def test_xgboost_classifiers_convert_and_route_missing_values(n_classes: int) -> None:
    X, y = _classification(n_classes, nan=True)
    model = xgboost.XGBClassifier(n_estimators=40, max_depth=4, random_state=0, n_jobs=1).fit(X, y)
    info = _check_classifier(model, X, Label)
    assert info["source"]["converter"].endswith(", float")
    predictor = onnx_predictor(model, layout_of(Six), ["PredictedLabel", "Score"], sample=X)
    assert predictor.accepts_missing is True  # NaN answered as XGBoost answers it


@pytest.mark.parametrize("n_classes", [2, 3])
def test_lightgbm_classifiers_convert_and_route_missing_values(n_classes: int) -> None:
    X, y = _classification(n_classes, nan=True)
    model = lightgbm.LGBMClassifier(n_estimators=40, verbose=-1, random_state=0, n_jobs=1).fit(X, y)
    info = _check_classifier(model, X, Label)
    assert info["source"]["library"] == "lightgbm"


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosted_regressors_convert_within_relative_tolerance(library: str) -> None:
    X, y = _regression()
    model = (
        xgboost.XGBRegressor(n_estimators=40, random_state=0, n_jobs=1)
        if library == "xgboost"
        else lightgbm.LGBMRegressor(n_estimators=40, verbose=-1, random_state=0, n_jobs=1)
    ).fit(X, y)
    predictor = onnx_predictor(model, layout_of(Six), ["Score"], sample=X)
    parity = predictor.info["parity"]
    assert parity["max_relative_difference"] <= TOLERANCE
    assert parity["max_score_difference"] < 1e-3  # float32 sums of values near 500
    precision = "float" if library == "xgboost" else "double"  # onnxmltools' double XGBoost is off
    assert predictor.info["source"]["converter"].endswith(precision)
    served = _saved(predictor, Value)
    assert np.array_equal(served.predictor.predict(X)["Score"], predictor.predict(X)["Score"])


def test_a_logistic_regression_refusing_nan_accepts_none() -> None:
    X, y = _classification(2)
    model = LogisticRegression().fit(X, y)
    predictor = onnx_predictor(model, layout_of(Six), ["PredictedLabel", "Score"], sample=X)
    assert predictor.accepts_missing is False  # scikit-learn refuses NaN: so does the model


class Garden(Schema):
    a: float = column(0, name="a")
    b: float = column(1, name="b")
    grade: str = column(2, name="grade")


def test_a_pipeline_with_a_text_column_becomes_one_input_per_column() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=300),
            "b": rng.normal(size=300),
            "grade": rng.choice(["low", "mid", "high"], size=300),
        }
    )
    y = (frame["a"] + (frame["grade"] == "high") > 0.5).astype(int)
    encode = ColumnTransformer(
        [("num", StandardScaler(), ["a", "b"]), ("cat", OneHotEncoder(), ["grade"])]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(frame, y)
    predictor = onnx_predictor(model, layout_of(Garden), ["PredictedLabel", "Score"], sample=frame)
    assert [(i.name, i.type, i.columns) for i in predictor.inputs] == [
        ("a", "double", (0,)),
        ("b", "double", (1,)),
        ("grade", "string", (2,)),
    ]
    assert predictor.info["parity"]["max_score_difference"] < 1e-12
    rows = _saved(predictor, Label, input=Garden).predict(frame.to_dict("records"))
    assert [r.predicted_label for r in rows] == list(model.predict(frame))


def test_a_model_fitted_on_reordered_columns_takes_them_by_name() -> None:
    X, y = _classification(2)
    frame = pd.DataFrame(X[:, ::-1], columns=list("fedcba"))
    model = LogisticRegression().fit(frame, y)
    predictor = onnx_predictor(model, layout_of(Six), ["PredictedLabel", "Score"], sample=frame)
    assert predictor.inputs[0].columns == (5, 4, 3, 2, 1, 0)
    assert predictor.info["parity"]["max_score_difference"] < 1e-12
    rows = _saved(predictor, Label).predict(_records(X))
    assert [r.predicted_label for r in rows] == list(model.predict(frame))


def test_a_missing_converter_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _classification(2)
    model = LogisticRegression().fit(X, y)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(PredictorError, match=r"needs skl2onnx: pip install 'servefn\[convert\]'"):
        onnx_predictor(model, layout_of(Six), ["PredictedLabel", "Score"])
    monkeypatch.setitem(sys.modules, "onnxmltools", None)
    booster = xgboost.XGBClassifier(n_estimators=2, n_jobs=1).fit(X, y)
    with pytest.raises(
        PredictorError, match=r"needs onnxmltools: pip install 'servefn\[convert\]'"
    ):
        onnx_predictor(booster, layout_of(Six), ["PredictedLabel", "Score"])


def test_something_that_is_not_a_model_is_refused() -> None:
    with pytest.raises(PredictorError, match=r"kind='onnx' takes an ONNX graph"):
        onnx_predictor({"weights": [1, 2]}, layout_of(Six), ["Score"])


SERVE = textwrap.dedent(
    """
    import json, sys
    from servefn.predictors import register_predictor, registry
    if "onnx" not in registry:
        register_predictor("onnx", "servefn.predictors.onnx:OnnxPredictor")
    from servefn.model import load_model
    model = load_model(sys.argv[1])
    answers = model.predict(json.loads(sys.argv[2]))
    forbidden = ["onnx", "skl2onnx", "onnxmltools", "sklearn", "scipy", "xgboost", "lightgbm",
                 "pandas", "skops"]
    print(json.dumps({
        "loaded": [name for name in forbidden if name in sys.modules],
        "labels": [a.predicted_label for a in answers],
        "scores": [a.score for a in answers],
    }))
    """
)


@pytest.mark.parametrize("library", ["sklearn", "xgboost"])
def test_a_fresh_process_serves_a_converted_model_without_its_library(
    library: str, tmp_path: Path
) -> None:
    X, y = _classification(3)
    model = (
        RandomForestClassifier(20, max_depth=6, random_state=0).fit(X, y)
        if library == "sklearn"
        else xgboost.XGBClassifier(n_estimators=20, n_jobs=1).fit(X, y)
    )
    predictor = onnx_predictor(model, layout_of(Six), ["PredictedLabel", "Score"], sample=X)
    path = tmp_path / "model.zip"
    write_model(path, predictor, input=Six, output=Label)
    done = subprocess.run(
        [sys.executable, "-c", SERVE, str(path), json.dumps(_records(X[:5]))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["loaded"] == []
    assert found["labels"] == model.predict(X[:5]).tolist()
    assert np.abs(np.array(found["scores"]) - model.predict_proba(X[:5])).max() <= TOLERANCE
