"""``servefn.save`` picks the lightest exact kind for tree models and proves it predicts the same.

Linear models stay linear; scikit-learn, XGBoost and LightGBM tree models become the numpy
tree-ensemble kind (also behind a preprocessing ColumnTransformer); ``kind=`` forces a kind or
refuses with the reason; every export is checked for parity with its source on the evaluation
rows, or on rows at its split thresholds when none are given, and a converter that got a
single split wrong is refused. ``servefn inspect`` shows the kind, the engine and the parity
figures; a fresh process serving the model imports none of scikit-learn, SciPy, skops, XGBoost
or LightGBM.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

import servefn
from servefn import Schema, column, load_model
from servefn.cli import main as cli
from servefn.errors import PredictorError
from servefn.predictors import trees_export

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")


def schema(n: int, name: str = "Row") -> type[Schema]:
    namespace: dict[str, Any] = {"__annotations__": {}}
    for j in range(n):
        namespace["__annotations__"][f"f{j}"] = float
        namespace[f"f{j}"] = column(j, name=f"f{j}")
    return type(name, (Schema,), namespace)


class Label(Schema):
    predicted_label: int = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Value(Schema):
    score: float = column(name="Score")


def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X[:, :8], y


def saved(model: Any, output: type[Schema], **options: Any) -> dict[str, Any]:
    buffer = io.BytesIO()
    n = model.n_features_in_
    servefn.save(model, buffer, input=schema(n), output=output, **options)
    return servefn.read_manifest(buffer.getvalue())


def test_each_family_gets_the_lightest_exact_kind() -> None:
    X, y = cancer()
    linear = LogisticRegression(max_iter=5000).fit(X, y)
    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    boosted = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y)
    xgb = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    kinds = {
        name: saved(model, Label)["kind"]
        for name, model in [("linear", linear), ("forest", forest), ("lgb", boosted), ("xgb", xgb)]
    }
    assert kinds == {
        "linear": "linear-classifier",
        "forest": "tree-ensemble",
        "lgb": "tree-ensemble",
        "xgb": "tree-ensemble",
    }


def test_a_tree_export_without_rows_is_checked_at_its_split_thresholds() -> None:
    X, y = cancer()
    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    manifest = saved(forest, Label)
    parity = manifest["training"]["parity"]
    assert parity["rows_from"] == "split thresholds" and parity["rows"] == 256
    assert parity["labels_equal"] and parity["max_score_difference"] <= 1e-12
    assert manifest["training"]["form"] == "numpy"
    assert manifest["predictor"]["engine"] == "numpy"


def test_evaluation_rows_give_metrics_and_parity() -> None:
    X, y = load_diabetes(return_X_y=True)
    model = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(X[:300], y[:300])
    buffer = io.BytesIO()
    servefn.save(model, buffer, input=schema(10), output=Value, evaluate_on=(X[300:], y[300:]))
    training = load_model(buffer.getvalue()).manifest["training"]
    assert training["parity"]["rows"] == len(X) - 300
    assert training["parity"]["max_score_difference"] <= 1e-9
    assert training["metrics"]["r_squared"] > 0.2


def test_a_converter_that_misroutes_one_split_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = cancer()
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    right = trees_export.tree_ensemble_from

    def off_by_one(model: Any) -> Any:
        exported = right(model)
        nodes = exported.nodes
        split = np.flatnonzero(nodes.left != np.arange(len(nodes.left)))[0]
        arrays = {
            name: getattr(nodes, name).copy()
            for name in (
                "feature", "threshold", "left", "right", "missing_left", "category", "value",
                "roots", "tree_target", "left_sets", "known_sets", "base",
            )
        }  # fmt: skip
        arrays["threshold"][split] = np.nextafter(np.float32(arrays["threshold"][split]), -1)
        params = exported.to_payload().params
        return type(exported)(
            arrays,
            n_features=params["n_features"],
            link=params["link"],
            scale=params["scale"],
            classes=params["classes"],
            float32_input=params["float32_input"],
            accepts_missing=params["accepts_missing"],
        )

    monkeypatch.setattr(trees_export, "tree_ensemble_from", off_by_one)
    with pytest.raises(PredictorError, match=r"differ|different label"):
        saved(forest, Label, evaluate_on=(X, y))


def test_kind_forces_or_refuses_with_the_reason() -> None:
    X, y = cancer()
    linear = LogisticRegression(max_iter=5000).fit(X, y)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    assert saved(forest, Label, kind="sklearn")["kind"] == "sklearn"
    with pytest.raises(PredictorError, match="not a tree model"):
        saved(linear, Label, kind="tree-ensemble")
    with pytest.raises(PredictorError, match="kind must be one of"):
        saved(forest, Label, kind="forest")
    with pytest.raises(PredictorError, match="give form= or kind="):
        saved(forest, Label, kind="tree-ensemble", form="numpy")


class Patient(Schema):
    age: float = column(0)
    sex: Literal["female", "male"] = column(1)
    bmi: float = column(2)
    bp: float | None = column(3, default=None)


def test_a_column_transformer_before_a_tree_model_exports_and_routes_missing_values() -> None:
    X, y = load_diabetes(return_X_y=True, scaled=False)
    frame = pd.DataFrame(
        {
            "age": X[:, 0],
            "sex": np.where(X[:, 1] == 1, "female", "male"),
            "bmi": X[:, 2],
            "bp": np.where(np.arange(len(X)) % 9 == 0, np.nan, X[:, 3]),
        }
    )
    encode = ColumnTransformer([("sex", OrdinalEncoder(), ["sex"])], remainder="passthrough")
    model = make_pipeline(
        encode, HistGradientBoostingRegressor(max_iter=30, categorical_features=[0])
    ).fit(frame, y)
    buffer = io.BytesIO()
    servefn.save(model, buffer, input=Patient, output=Value, evaluate_on=(frame, y))
    loaded = load_model(buffer.getvalue())
    assert loaded.manifest["kind"] == "transformed"
    assert loaded.manifest["predictor"]["final"]["kind"] == "tree-ensemble"
    assert loaded.manifest["training"]["parity"]["max_score_difference"] <= 1e-9
    rows = [
        {"age": 50, "sex": "male", "bmi": 30.0},
        {"age": 50, "sex": "male", "bmi": 30.0, "bp": None},
    ]
    answers = loaded.predict(rows).to_dicts()
    expected = model.predict(
        pd.DataFrame({"age": [50.0], "sex": ["male"], "bmi": [30.0], "bp": [np.nan]})
    )
    assert answers[0]["Score"] == answers[1]["Score"] == pytest.approx(expected[0], abs=1e-9)


def test_inspect_shows_kind_engine_and_parity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    X, y = cancer()
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
    path = tmp_path / "model.zip"
    servefn.save(model, path, input=schema(8), output=Label)
    assert cli(["inspect", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "tree-ensemble" in shown and "engine numpy" in shown
    assert "parity with the source model" in shown and "split thresholds" in shown


SERVE_ONLY = """
import sys, json
from servefn import load_model
model = load_model(sys.argv[1])
print(json.dumps(model.predict([dict((f"f{j}", 0.5) for j in range(8))]).to_dicts()))
heavy = ("sklearn", "scipy", "skops", "xgboost", "lightgbm", "pandas", "onnxruntime")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


@pytest.mark.parametrize("family", ["forest", "xgboost", "lightgbm"])
def test_serving_a_tree_model_imports_no_training_library(family: str, tmp_path: Path) -> None:
    X, y = cancer()
    model = {
        "forest": lambda: RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y),
        "xgboost": lambda: xgboost.XGBClassifier(n_estimators=3).fit(X, y),
        "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y),
    }[family]()
    path = tmp_path / "model.zip"
    servefn.save(model, path, input=schema(8), output=Label)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SERVE_ONLY), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    answer, imported = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert answer[0]["PredictedLabel"] in (0, 1)
    assert imported == []
