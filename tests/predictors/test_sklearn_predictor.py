"""Any fitted scikit-learn model: saved with skops, served with scikit-learn's own predictions."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import Birch
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    OneHotEncoder,
    StandardScaler,
)
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

import servefn
from servefn import ArtifactError, PredictorError, Schema, column
from servefn.predictors.sklearn import PickleWarning
from servefn.schema import layout_of

TREE = "sklearn.tree._tree.Tree"
HIST_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
KD_TREE = ["sklearn.metrics._dist_metrics.EuclideanDistance64", "sklearn.neighbors._kd_tree.KDTree"]


class Features(Schema):
    f0: float = column(0, name="F0")
    f1: float = column(1, name="F1")
    f2: float = column(2, name="F2")
    f3: float = column(3, name="F3")
    kind: float = column(4, name="Kind")  # a small integer code, one-hot encoded by a pipeline


class Prediction(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Value(Schema):
    score: float = column(name="Score")


class Doubler(TransformerMixin, BaseEstimator):
    """A user's own transformer: skops does not trust its type unless the loader names it."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X) * 2.0


def _data(n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features exact in float32 too, so a float32 or float64 matrix predicts the same."""
    X, y = make_classification(
        n_samples=240, n_features=5, n_informative=3, n_redundant=1, n_classes=n_classes,
        random_state=seed,
    )  # fmt: skip
    X[:, 4] = np.clip(np.floor(np.abs(X[:, 4]) * 2), 0, 3)
    return X.astype(np.float32).astype(np.float64), np.array(["ant", "bee", "cat"])[y]


def _records(X: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(layout_of(Features).feature_names, row.tolist(), strict=True)) for row in X]


def _scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    if hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(X))
    return np.asarray(estimator.decision_function(X)).reshape(len(X), -1)


CLASSIFIERS: list[tuple[str, int, Callable[[], Any], list[str]]] = [
    ("decision-tree", 3, lambda: DecisionTreeClassifier(random_state=0), [TREE]),
    ("random-forest", 3, lambda: RandomForestClassifier(n_estimators=15, random_state=0), [TREE]),
    (
        "gradient-boosting",
        3,
        lambda: GradientBoostingClassifier(n_estimators=15, random_state=0),
        [TREE],
    ),
    (
        "hist-gradient-boosting",
        3,
        lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0),
        [HIST_TREE],
    ),
    ("svc-probability", 3, lambda: SVC(probability=True, random_state=0), []),
    ("svc-decision", 3, lambda: SVC(), []),
    ("svc-binary-decision", 2, lambda: SVC(), []),
    ("k-neighbors", 3, lambda: KNeighborsClassifier(algorithm="kd_tree"), KD_TREE),
    (
        "column-transformer",
        3,
        lambda: make_pipeline(
            ColumnTransformer(
                [
                    ("scaled", StandardScaler(), [0, 1, 2, 3]),
                    ("one-hot", OneHotEncoder(handle_unknown="ignore"), [4]),
                ]
            ),
            LogisticRegression(max_iter=1000),
        ),
        [],
    ),
]


@pytest.mark.filterwarnings("ignore:The `probability` parameter was deprecated:FutureWarning")
@pytest.mark.parametrize(
    ("name", "n_classes", "make", "trusted"), CLASSIFIERS, ids=[c[0] for c in CLASSIFIERS]
)
def test_served_predictions_equal_scikit_learns(
    tmp_path: Path, name: str, n_classes: int, make: Callable[[], Any], trusted: list[str]
) -> None:
    X, y = _data(n_classes)
    estimator = make().fit(X, y)
    path = tmp_path / "model.zip"
    servefn.save(estimator, path, input=Features, output=Prediction, form="sklearn")

    model = servefn.load_model(path, trusted=trusted)
    X_new, _ = _data(n_classes, seed=1)
    out = model.predictor.predict(X_new.astype(np.float32))
    np.testing.assert_array_equal(out["PredictedLabel"], estimator.predict(X_new))
    np.testing.assert_array_equal(out["Score"], _scores(estimator, X_new))
    assert out["Score"].shape == (len(X_new), 1 if name == "svc-binary-decision" else 3)
    X_raw = X_new[:5] + 0.1  # not exact in float32: records are served in float64
    served = model.predict(_records(X_raw))
    assert [r.predicted_label for r in served] == estimator.predict(X_raw).tolist()  # type: ignore[attr-defined]
    np.testing.assert_array_equal(served.arrays["Score"], _scores(estimator, X_raw))
    assert model.manifest["kind"] == "sklearn"
    assert model.manifest["predictor"]["untrusted_types"] == trusted


def test_regressor_serves_its_prediction_as_score(tmp_path: Path) -> None:
    X, y = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
    X = X.astype(np.float32).astype(np.float64)
    forest = RandomForestRegressor(n_estimators=15, random_state=0).fit(X, y)
    path = tmp_path / "model.zip"
    servefn.save(forest, path, input=Features, output=Value, evaluate_on=(X, y), kind="sklearn")

    model = servefn.load_model(path, trusted=[TREE])
    assert model.predictor.outputs == ("Score",)
    out = model.predictor.predict(X[:50].astype(np.float32))
    np.testing.assert_array_equal(out["Score"], forest.predict(X[:50]))
    assert model.predict(_records(X[:1]))[0].score == forest.predict(X[:1])[0]  # type: ignore[attr-defined]
    metrics = model.manifest["training"]["metrics"]
    assert metrics["r_squared"] == pytest.approx(forest.score(X, y), abs=1e-12)
    assert metrics["root_mean_squared_error"] == pytest.approx(
        np.sqrt(np.mean((forest.predict(X) - y) ** 2)), rel=1e-12
    )
    with pytest.raises(ArtifactError, match=r"asks for \['PredictedLabel'\].*produces \['Score'\]"):
        servefn.save(
            forest, tmp_path / "bad.zip", input=Features, output=Prediction, kind="sklearn"
        )


def test_save_picks_the_linear_form_when_it_can_and_skops_otherwise(tmp_path: Path) -> None:
    X, y = _data(3)
    linear = make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    neighbours = KNeighborsClassifier(n_neighbors=3).fit(X, y)
    servefn.save(linear, tmp_path / "linear.zip", input=Features, output=Prediction)
    servefn.save(
        neighbours, tmp_path / "knn.zip", input=Features, output=Prediction, evaluate_on=(X, y)
    )

    linear_manifest = servefn.read_manifest(tmp_path / "linear.zip")
    assert linear_manifest["kind"] == "linear-classifier"
    assert linear_manifest["training"]["form"] == "numpy"
    assert "reason" not in linear_manifest["training"]
    knn_manifest = servefn.read_manifest(tmp_path / "knn.zip")
    assert knn_manifest["kind"] == "sklearn"
    assert set(knn_manifest["files"]) == {"model.skops"}
    assert knn_manifest["predictor"]["format"] == "skops"
    assert knn_manifest["training"]["form"] == "sklearn"
    assert knn_manifest["training"]["reason"].startswith("KNeighborsClassifier cannot be")
    assert knn_manifest["training"]["metrics"]["micro_accuracy"] == neighbours.score(X, y)

    with pytest.raises(PredictorError, match="DecisionTreeClassifier is not fitted"):
        servefn.save(DecisionTreeClassifier(), tmp_path / "m.zip", input=Features, output=Value)


def test_save_without_skops_names_the_extra_for_a_model_with_no_numpy_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = _data(3)
    neighbours = KNeighborsClassifier(n_neighbors=3).fit(X, y)
    monkeypatch.delitem(sys.modules, "servefn.predictors.sklearn", raising=False)
    monkeypatch.setitem(sys.modules, "skops", None)
    with pytest.raises(PredictorError, match=r"needs skops: pip install 'servefn\[sklearn\]'"):
        servefn.save(neighbours, tmp_path / "knn.zip", input=Features, output=Prediction)
    assert not (tmp_path / "knn.zip").exists()


def test_untrusted_types_are_refused_by_name_and_admitted_when_named(tmp_path: Path) -> None:
    X, y = _data(3)
    pipeline = make_pipeline(Doubler(), SVC()).fit(X, y)
    path = tmp_path / "model.zip"
    servefn.save(pipeline, path, input=Features, output=Prediction)
    doubler = f"{Doubler.__module__}.Doubler"

    with pytest.raises(ArtifactError, match="does not trust by default") as refused:
        servefn.load_model(path)
    assert f"load_model(..., trusted=['{doubler}'])" in str(refused.value)
    with pytest.raises(TypeError, match="list of type names"):
        servefn.load_model(path, trusted=doubler)
    model = servefn.load_model(path, trusted=[doubler])
    out = model.predictor.predict(X.astype(np.float32))
    np.testing.assert_array_equal(out["PredictedLabel"], pipeline.predict(X))
    np.testing.assert_array_equal(out["Score"], pipeline.decision_function(X))


def test_a_model_that_could_not_load_where_it_serves_is_refused_at_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = _data(3)
    with_lambda = make_pipeline(FunctionTransformer(lambda v: v * 2.0), SVC()).fit(X, y)
    with pytest.raises(PredictorError, match="skops wrote Pipeline but cannot read it back"):
        servefn.save(with_lambda, tmp_path / "m.zip", input=Features, output=Prediction)
    monkeypatch.setattr(Doubler, "__module__", "__main__")  # as if defined in a training script
    from_script = make_pipeline(Doubler(), SVC()).fit(X, y)
    with pytest.raises(PredictorError, match=r"uses \['__main__\.Doubler'\].*Move them"):
        servefn.save(from_script, tmp_path / "m.zip", input=Features, output=Prediction)
    assert not (tmp_path / "m.zip").exists()


def test_a_tree_needs_its_node_storage_named_and_says_why(tmp_path: Path) -> None:
    X, y = _data(2)
    path = tmp_path / "tree.zip"
    tree = DecisionTreeClassifier().fit(X, y)
    servefn.save(tree, path, input=Features, output=Prediction, kind="sklearn")
    with pytest.raises(ArtifactError, match=r"by default: \['sklearn\.tree\._tree\.Tree'\]") as e:
        servefn.load_model(path)
    assert "out-of-bounds" in str(e.value)  # skops' own reason, passed on
    assert servefn.load_model(path, trusted=[TREE]).predictor.kind == "sklearn"


def test_pickle_only_when_skops_cannot_and_both_sides_opt_in(tmp_path: Path) -> None:
    X, y = _data(3)
    pipeline = make_pipeline(Birch(n_clusters=3), DecisionTreeClassifier(random_state=0)).fit(X, y)
    path = tmp_path / "model.zip"
    with pytest.raises(PredictorError, match=r"skops cannot persist Pipeline.*allow_pickle=True"):
        servefn.save(pipeline, path, input=Features, output=Prediction)
    with pytest.warns(PickleWarning, match="saved with pickle because skops cannot persist"):
        servefn.save(pipeline, path, input=Features, output=Prediction, allow_pickle=True)
    manifest = servefn.read_manifest(path)
    assert set(manifest["files"]) == {"model.pkl"}
    assert manifest["predictor"]["format"] == "pickle"

    with pytest.raises(ArtifactError, match=r"saved with pickle.*allow_pickle=True"):
        servefn.load_model(path)
    model = servefn.load_model(path, allow_pickle=True)
    out = model.predictor.predict(X.astype(np.float32))
    np.testing.assert_array_equal(out["PredictedLabel"], pipeline.predict(X))
    np.testing.assert_array_equal(out["Score"], pipeline.predict_proba(X))


def test_a_tampered_skops_payload_is_refused_before_it_is_read(tmp_path: Path) -> None:
    X, y = _data(3)
    path = tmp_path / "model.zip"
    servefn.save(SVC().fit(X, y), path, input=Features, output=Prediction)
    with zipfile.ZipFile(path) as original:
        members = {name: original.read(name) for name in original.namelist()}
    payload = bytearray(members["model.skops"])
    payload[len(payload) // 2] ^= 0xFF
    members["model.skops"] = bytes(payload)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as tampered:
        for name, data in members.items():
            tampered.writestr(name, data)
    with pytest.raises(ArtifactError, match=r"model\.skops does not match the sha256"):
        servefn.load_model(bad)


@pytest.mark.integration
def test_only_an_sklearn_model_imports_skops(tmp_path: Path) -> None:
    X, y = _data(3)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    servefn.save(linear, tmp_path / "linear.zip", input=Features, output=Prediction)
    servefn.save(SVC().fit(X, y), tmp_path / "svc.zip", input=Features, output=Prediction)
    code = textwrap.dedent(
        f"""
        import sys
        import servefn
        heavy = ("sklearn", "skops")
        servefn.load_model({str(tmp_path / "linear.zip")!r})
        print(sorted(m for m in heavy if m in sys.modules))
        servefn.load_model({str(tmp_path / "svc.zip")!r})
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "['sklearn', 'skops']"]


def _frame_pipeline(tmp_path: Path) -> tuple[Any, Path]:
    """A pipeline fitted on a DataFrame, selecting columns by name, saved with ``Features``."""
    pd = pytest.importorskip("pandas")
    X, y = _data(3)
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("scaled", StandardScaler(), ["F0", "F1", "F2", "F3"]),
                ("one-hot", OneHotEncoder(handle_unknown="ignore"), ["Kind"]),
            ]
        ),
        LogisticRegression(max_iter=1000),
    ).fit(pd.DataFrame(X, columns=layout_of(Features).feature_names), y)
    path = tmp_path / "model.zip"  # kept as it is: the numpy form matches columns by name
    servefn.save(pipeline, path, input=Features, output=Prediction, form="sklearn")
    return pipeline, path


def test_a_model_fitted_on_a_dataframe_gets_its_columns_by_name(tmp_path: Path) -> None:
    pipeline, path = _frame_pipeline(tmp_path)
    import pandas as pd

    model = servefn.load_model(path)
    assert model.predictor.feature_names == list(layout_of(Features).feature_names)
    X_new, _ = _data(3, seed=1)
    frame = pd.DataFrame(X_new, columns=layout_of(Features).feature_names)
    out = model.predictor.predict(X_new.astype(np.float32))
    np.testing.assert_array_equal(out["PredictedLabel"], pipeline.predict(frame))
    np.testing.assert_array_equal(out["Score"], pipeline.predict_proba(frame))


def test_schema_names_must_match_the_dataframe_columns(tmp_path: Path) -> None:
    pipeline, _ = _frame_pipeline(tmp_path)

    class Renamed(Features):
        kind: float = column(4, name="Category")

    class Reordered(Schema):
        f1: float = column(1, name="F1")
        f0: float = column(0, name="F0")
        f2: float = column(2, name="F2")
        f3: float = column(3, name="F3")
        kind: float = column(4, name="Kind")

    with pytest.raises(ArtifactError, match=r"missing: \['Kind'\]; unexpected: \['Category'\]"):
        servefn.save(pipeline, tmp_path / "m.zip", input=Renamed, output=Prediction, form="sklearn")
    with pytest.raises(ArtifactError, match="reordered: feature 0 is 'F1', the model expects 'F0'"):
        servefn.save(
            pipeline, tmp_path / "m.zip", input=Reordered, output=Prediction, form="sklearn"
        )


def test_serving_a_dataframe_model_without_pandas_says_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = _frame_pipeline(tmp_path)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as on a host without pandas
    with pytest.raises(ArtifactError, match="needs pandas: pip install pandas"):
        servefn.load_model(path)
