"""scikit-learn tree models as numpy tree ensembles: decision and extra trees, random and
extra-trees forests, gradient boosting and histogram gradient boosting, for binary, multiclass
and regression tasks, with and without missing values, and with categorical features, predict
what scikit-learn predicts (labels equal, scores within 1e-9) through ``TreeEnsemble.predict``,
through a saved archive, and for records; the rest is refused by name.

Measured with scikit-learn 1.9.1: single trees are bit-exact; probabilities differ by at most
3.4e-16 (forests divide the same sum by n_trees where the ensemble multiplies by 1 / n_trees;
boosting adds the same terms in another order); regression values by at most 3.5e-13 (gamma
loss; 6e-14 for forests) on diabetes targets of 25 to 346, a relative 1e-15.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_wine,
    make_classification,
    make_regression,
)
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
)
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)
from threadpoolctl import threadpool_limits

from servefn import Schema
from servefn.errors import FeatureValueError, PredictorError
from servefn.model import LoadedModel, load_model, write_model
from servefn.predictors.trees import TreeEnsemble
from servefn.predictors.trees_sklearn import is_sklearn_tree_model, tree_ensemble_from_sklearn
from support.treedata import BIG_CELLS, IntLabel, StrLabel, Value, features, records, with_missing

TOLERANCE = 1e-9
RECORDS = 5


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """HistGradientBoosting's OpenMP threads on tiny data only contend with other processes."""
    with threadpool_limits(1):
        yield


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    """Training rows, the rows predicted (unseen missing values and categories among them) and
    how scikit-learn is given a matrix (the ensemble always gets the float matrix)."""

    X: np.ndarray
    y: np.ndarray
    evaluate: np.ndarray
    names: list[str]
    frame: Callable[[np.ndarray], Any] | None = field(default=None, compare=False)

    def fit_input(self) -> Any:
        return self.X if self.frame is None else self.frame(self.X)

    def sklearn_input(self, estimator: Any, X: np.ndarray) -> Any:
        if self.frame is not None:
            return self.frame(X)
        if hasattr(estimator, "feature_names_in_"):
            return pd.DataFrame(X, columns=self.names)
        return X


@cache
def dataset(task: str, missing: bool) -> Data:
    """Breast cancer (binary, int labels), wine (multiclass, text labels) or diabetes. With
    ``missing``, NaN in the first half of the columns at training and in every column after."""
    if task == "binary":
        bunch = load_breast_cancer()
        y = bunch.target
    elif task == "multiclass":
        bunch = load_wine()
        y = bunch.target_names[bunch.target]
    else:
        bunch = load_diabetes()
        y = bunch.target
    X = np.asarray(bunch.data, dtype=np.float64)
    names = [str(n) for n in bunch.feature_names]
    if not missing:
        return Data(X, y, X, names)
    half = slice(0, X.shape[1] // 2)
    train = with_missing(X, 0.1, half, seed=1)
    evaluate = with_missing(train, 0.1, slice(None), seed=2)
    return Data(train, y, evaluate, names)


CATEGORICAL = [2, 6]
SMALL_CATEGORIES = np.arange(12)
SPARSE_CATEGORIES = np.array([3, 40, 77, 300, 1000])  # integers above 255: 32-word bitsets


@cache
def categorical_dataset(task: str) -> Data:
    """Five numbers and two integer categorical columns (2: codes 0-11; 6: five values up to
    1000), 5% NaN; the rows predicted add categories never seen (13, 259, 5000) and negative
    ones, which scikit-learn treats as missing."""
    rng = np.random.default_rng(7)
    n = 400
    if task == "regression":
        numbers, y = make_regression(n, 5, n_informative=4, noise=1.0, random_state=0)
    else:
        k = 2 if task == "binary" else 3
        numbers, y = make_classification(
            n, 5, n_informative=3, n_redundant=0, n_classes=k, random_state=0
        )
    small = rng.choice(SMALL_CATEGORIES, n)
    sparse = rng.choice(SPARSE_CATEGORIES, n)
    if task == "regression":
        y = y + 40.0 * (small % 3) + 0.05 * sparse
    else:
        y = np.where((small % 4 == 0) | (sparse == 300), (y + 1) % k, y)
    X = np.column_stack([numbers[:, :2], small, numbers[:, 2:], sparse]).astype(np.float64)
    X = with_missing(X, 0.05, slice(None), seed=3)
    evaluate = X.copy()
    evaluate[::7, 2] = 13
    evaluate[::11, 2] = -1
    evaluate[::13, 6] = 259
    evaluate[::17, 6] = 5000
    evaluate[::19, 6] = -3
    names = ["a", "b", "small", "c", "d", "e", "sparse"]
    return Data(X, y, evaluate, names)


# -- checks ----------------------------------------------------------------------------------


def reference(estimator: Any, X: Any) -> dict[str, np.ndarray]:
    if hasattr(estimator, "predict_proba"):
        return {"PredictedLabel": estimator.predict(X), "Score": estimator.predict_proba(X)}
    return {"Score": estimator.predict(X)}


def assert_same(got: dict[str, Any], expected: dict[str, np.ndarray]) -> float:
    """Labels equal, scores within :data:`TOLERANCE`; returns the largest score difference."""
    assert set(got) == set(expected)
    if "PredictedLabel" in expected:
        assert np.array_equal(np.asarray(got["PredictedLabel"]), expected["PredictedLabel"])
    score = np.asarray(got["Score"], dtype=np.float64)
    assert score.shape == expected["Score"].shape
    difference = float(np.abs(score - expected["Score"]).max())
    assert difference <= TOLERANCE
    return difference


def archive(ensemble: TreeEnsemble, names: list[str], classes: Any) -> LoadedModel:
    if classes is None:
        output: type[Schema] = Value
    else:
        output = StrLabel if np.asarray(classes).dtype.kind in "UO" else IntLabel
    buffer = io.BytesIO()
    write_model(buffer, ensemble, input=features(names), output=output)
    return load_model(buffer.getvalue())


def payload_arrays(ensemble: TreeEnsemble) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(ensemble.to_payload().files["weights.npz"])) as npz:
        return {name: npz[name] for name in npz.files}


def check_parity(estimator: Any, data: Data) -> TreeEnsemble:
    """The converted ``estimator`` predicts as scikit-learn: one row, all rows and more than
    :data:`BIG_CELLS` cells (the tree-by-tree path), in memory, from an archive and for records."""
    ensemble = tree_ensemble_from_sklearn(estimator)
    model = archive(ensemble, data.names, getattr(estimator, "classes_", None))
    assert isinstance(model.predictor, TreeEnsemble)
    X = data.evaluate
    big = np.resize(X, (BIG_CELLS // ensemble.n_trees + 1, X.shape[1]))
    assert big.shape[0] * ensemble.n_trees > BIG_CELLS
    for rows in (X[:1], X, big):
        expected = reference(estimator, data.sklearn_input(estimator, rows))
        assert_same(ensemble.predict(rows), expected)
        assert_same(model.predictor.predict(rows), expected)
    for rows in (X[:1], X[:RECORDS]):
        expected = reference(estimator, data.sklearn_input(estimator, rows))
        answers = model.predict(records(rows, data.names)).to_dicts()
        got = {key: [answer[key] for answer in answers] for key in expected}
        assert_same(got, expected)
    return ensemble


# -- parity: every family x task x {clean, missing} -------------------------------------------


FAMILIES: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "DecisionTree": (
        lambda: DecisionTreeClassifier(max_depth=8, random_state=0),
        lambda: DecisionTreeRegressor(max_depth=8, random_state=0),
    ),
    "ExtraTree": (
        lambda: ExtraTreeClassifier(max_depth=8, random_state=0),
        lambda: ExtraTreeRegressor(max_depth=8, random_state=0),
    ),
    "RandomForest": (
        lambda: RandomForestClassifier(n_estimators=7, max_depth=8, random_state=0),
        lambda: RandomForestRegressor(n_estimators=7, max_depth=8, random_state=0),
    ),
    "ExtraTrees": (
        lambda: ExtraTreesClassifier(n_estimators=7, max_depth=8, random_state=0),
        lambda: ExtraTreesRegressor(n_estimators=7, max_depth=8, random_state=0),
    ),
    "GradientBoosting": (
        lambda: GradientBoostingClassifier(n_estimators=8, max_depth=3, random_state=0),
        lambda: GradientBoostingRegressor(n_estimators=8, max_depth=3, random_state=0),
    ),
    "HistGradientBoosting": (
        lambda: HistGradientBoostingClassifier(max_iter=8, random_state=0),
        lambda: HistGradientBoostingRegressor(max_iter=8, random_state=0),
    ),
}
TASKS = ("binary", "multiclass", "regression")
CASES = [
    pytest.param(family, task, missing, id=f"{family}-{task}-{'nan' if missing else 'clean'}")
    for family in FAMILIES
    for task in TASKS
    for missing in (False, True)
    if not (family == "GradientBoosting" and missing)  # it refuses NaN at predict time
]


def build(family: str, task: str) -> Any:
    classifier, regressor = FAMILIES[family]
    return regressor() if task == "regression" else classifier()


@pytest.mark.parametrize(("family", "task", "missing"), CASES)
def test_parity(family: str, task: str, missing: bool) -> None:
    data = dataset(task, missing)
    estimator = build(family, task)
    # clean: fitted on a DataFrame (feature names); with NaN: on a matrix (none)
    estimator.fit(pd.DataFrame(data.X, columns=data.names) if not missing else data.X, data.y)
    ensemble = check_parity(estimator, data)
    assert ensemble.feature_names == (None if missing else data.names)
    assert ensemble.source == f"scikit-learn {type(estimator).__name__}"
    assert ensemble.accepts_missing is (family != "GradientBoosting")
    if task != "regression":
        assert list(ensemble.classes) == list(estimator.classes_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "estimator",
    [
        GradientBoostingRegressor(n_estimators=6, loss="absolute_error", random_state=0),
        GradientBoostingRegressor(n_estimators=6, loss="huber", alpha=0.8, random_state=0),
        GradientBoostingRegressor(n_estimators=6, loss="quantile", alpha=0.3, random_state=0),
        GradientBoostingRegressor(n_estimators=6, init="zero", random_state=0),
        GradientBoostingRegressor(
            n_estimators=6, init=DummyRegressor(strategy="median"), random_state=0
        ),
        HistGradientBoostingRegressor(max_iter=6, loss="absolute_error"),
        HistGradientBoostingRegressor(max_iter=6, loss="quantile", quantile=0.3),
        HistGradientBoostingRegressor(max_iter=6, loss="poisson"),
        HistGradientBoostingRegressor(max_iter=6, loss="gamma"),
    ],
    ids=lambda e: f"{type(e).__name__}-{e.loss}-{e.get_params().get('init')}",
)
def test_regression_losses(estimator: Any) -> None:
    data = dataset("regression", False)
    check_parity(estimator.fit(data.X, data.y), data)


@pytest.mark.parametrize(
    "estimator",
    [
        GradientBoostingClassifier(n_estimators=6, loss="exponential", random_state=0),
        GradientBoostingClassifier(n_estimators=6, init="zero", random_state=0),
        GradientBoostingClassifier(
            n_estimators=6, init=DummyClassifier(strategy="uniform"), random_state=0
        ),
    ],
    ids=["exponential", "init-zero", "init-uniform"],
)
def test_classification_losses_and_inits(estimator: Any) -> None:
    data = dataset("binary", False)
    ensemble = check_parity(estimator.fit(data.X, data.y), data)
    assert ensemble.link == "logistic"


def test_extra_tree_without_nan_support_refuses_missing_values() -> None:
    """An extra tree with ``splitter="best"`` refuses NaN in scikit-learn (its allow_nan tag),
    so the ensemble and the served model do too."""
    data = dataset("binary", False)
    estimator = ExtraTreeClassifier(splitter="best", random_state=0).fit(data.X, data.y)
    assert estimator.__sklearn_tags__().input_tags.allow_nan is False
    ensemble = check_parity(estimator, data)
    assert ensemble.accepts_missing is False
    model = archive(ensemble, data.names, estimator.classes_)
    row = records(data.X[:1], data.names)[0]
    row[data.names[3]] = None
    with pytest.raises(FeatureValueError, match="missing"):
        model.predict([row])


def test_class_counts_before_1_4_1_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before scikit-learn 1.4.1 a classifier tree kept weighted class counts in ``tree_.value``
    and ``predict_proba`` divided each leaf by its total (an all-zero leaf stayed zero)."""
    import sklearn

    data = dataset("multiclass", False)
    estimator = DecisionTreeClassifier(max_depth=4, random_state=0).fit(data.X, data.y)
    expected = estimator.predict_proba(data.X)
    leaves = estimator.apply(data.X)
    empty = leaves[0]
    value = estimator.tree_.value
    value *= 7.0  # counts, as 1.4.0 stored them
    value[empty] = 0.0
    expected[leaves == empty] = 0.0
    monkeypatch.setattr(sklearn, "__version__", "1.4.0")
    score = tree_ensemble_from_sklearn(estimator).predict(data.X)["Score"]
    assert np.abs(score - expected).max() <= TOLERANCE


def test_gradient_boosting_refuses_missing_values() -> None:
    data = dataset("regression", True)
    with pytest.raises(ValueError, match="NaN"):
        GradientBoostingRegressor(n_estimators=2).fit(data.X, data.y)
    clean = dataset("regression", False)
    ensemble = tree_ensemble_from_sklearn(
        GradientBoostingRegressor(n_estimators=2).fit(clean.X, clean.y)
    )
    assert ensemble.accepts_missing is False


# -- categorical features (HistGradientBoosting) ----------------------------------------------


def _forms(task: str) -> Any:
    """``categorical_features`` as indices, a boolean mask or column names (then on a frame)."""
    if task == "binary":
        return CATEGORICAL
    mask = np.zeros(7, dtype=bool)
    mask[CATEGORICAL] = True
    return mask if task == "multiclass" else ["small", "sparse"]


@pytest.mark.parametrize("task", TASKS)
def test_categorical_parity(task: str) -> None:
    data = categorical_dataset(task)
    if task == "regression":
        names = data.names
        data = Data(data.X, data.y, data.evaluate, names, lambda X: pd.DataFrame(X, columns=names))
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    estimator = cls(max_iter=10, categorical_features=_forms(task), random_state=0)
    estimator.fit(data.fit_input(), data.y)
    arrays = payload_arrays(check_parity(estimator, data))
    assert arrays["left_sets"].shape[1] == 1000 // 32 + 1  # words up to the largest category
    assert (arrays["category"] >= 0).any()


def test_categorical_from_dtype_with_integer_categories() -> None:
    """pandas categorical columns of integers (``categorical_features="from_dtype"``): the
    served input is the category value; values outside the dtype are missing in both."""
    base = categorical_dataset("binary")
    names = base.names

    def frame(X: np.ndarray) -> pd.DataFrame:
        df = pd.DataFrame(X, columns=names)
        for j, categories in ((2, np.arange(20.0)), (6, SPARSE_CATEGORIES.astype(float))):
            values = np.where(np.isin(X[:, j], categories), X[:, j], np.nan)
            df[names[j]] = pd.Categorical(values, categories=categories)  # 12-19: never seen
        return df

    evaluate = base.evaluate.copy()
    evaluate[::5, 2] = 15  # in the dtype, unknown to the model: missing in both
    data = Data(base.X, base.y, evaluate, names, frame)
    estimator = HistGradientBoostingClassifier(max_iter=10, random_state=0)
    estimator.fit(data.fit_input(), data.y)
    assert list(np.flatnonzero(estimator.is_categorical_)) == CATEGORICAL
    ensemble = check_parity(estimator, data)
    assert ensemble.feature_names == names
    assert (payload_arrays(ensemble)["category"] >= 0).any()


def test_categorical_text_categories_are_refused() -> None:
    data = categorical_dataset("binary")
    df = pd.DataFrame(data.X, columns=data.names)
    df["small"] = pd.Categorical(np.array(list("abc"))[np.nan_to_num(data.X[:, 2]).astype(int) % 3])
    estimator = HistGradientBoostingClassifier(max_iter=3).fit(df, data.y)
    with pytest.raises(PredictorError, match=r"HistGradientBoostingClassifier.*'small'.*'a'"):
        tree_ensemble_from_sklearn(estimator)


def test_categorical_negative_categories_are_refused() -> None:
    data = categorical_dataset("binary")
    X = data.X.copy()
    X[::3, 2] = -2.0
    estimator = HistGradientBoostingClassifier(max_iter=3, categorical_features=[2])
    estimator.fit(X, data.y)
    with pytest.raises(PredictorError, match=r"categorical feature 2 .*-2\.0"):
        tree_ensemble_from_sklearn(estimator)


def test_categorical_non_integral_value_is_missing() -> None:
    data = categorical_dataset("binary")
    estimator = HistGradientBoostingClassifier(max_iter=10, categorical_features=CATEGORICAL)
    estimator.fit(data.X, data.y)
    X = data.X.copy()
    X[:, 2] += 0.5
    assert_same(tree_ensemble_from_sklearn(estimator).predict(X), reference(estimator, X))


def test_gradient_boosting_zero_margin_label() -> None:
    X = np.array([[0.0], [0.0], [1.0], [1.0]])
    estimator = GradientBoostingClassifier(n_estimators=1, max_depth=1).fit(X, [0, 1, 0, 1])
    assert np.array_equal(estimator.decision_function(X), np.zeros(4))
    assert_same(tree_ensemble_from_sklearn(estimator).predict(X), reference(estimator, X))


# -- refusals and the kind check --------------------------------------------------------------


class SubclassedTree(DecisionTreeClassifier):
    pass


@cache
def iris_like() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(60, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=0)
    return X, y


def _refused() -> list[Any]:
    X, y = iris_like()
    y2 = np.column_stack([y, y])
    return [
        pytest.param(lambda: make_pipeline(DecisionTreeClassifier()).fit(X, y), "Pipeline"),
        pytest.param(
            lambda: VotingClassifier([("t", DecisionTreeClassifier())]).fit(X, y),
            "VotingClassifier",
        ),
        pytest.param(lambda: IsolationForest(n_estimators=2).fit(X), "IsolationForest"),
        pytest.param(
            lambda: SubclassedTree().fit(X, y), "SubclassedTree subclasses DecisionTreeClassifier"
        ),
        pytest.param(lambda: object(), "object"),
        pytest.param(lambda: RandomForestClassifier(), "RandomForestClassifier is not fitted"),
        pytest.param(
            lambda: HistGradientBoostingRegressor(), "HistGradientBoostingRegressor is not fitted"
        ),
        pytest.param(
            lambda: DecisionTreeRegressor().fit(X, y2), "DecisionTreeRegressor is multi-output"
        ),
        pytest.param(
            lambda: ExtraTreesClassifier(n_estimators=2).fit(X, y2),
            "ExtraTreesClassifier is multi-output",
        ),
        pytest.param(
            lambda: GradientBoostingRegressor(n_estimators=2, init=LinearRegression()).fit(X, y),
            "init estimator is LinearRegression",
        ),
        pytest.param(
            lambda: GradientBoostingClassifier(
                n_estimators=2, init=DummyClassifier(strategy="stratified")
            ).fit(X, y),
            "DummyClassifier \\(strategy='stratified'\\)",
        ),
    ]


@pytest.mark.parametrize(("make", "message"), _refused())
def test_unsupported_models_are_refused_by_name(make: Callable[[], Any], message: str) -> None:
    with pytest.raises(PredictorError, match=message):
        tree_ensemble_from_sklearn(make())


def test_is_sklearn_tree_model() -> None:
    assert is_sklearn_tree_model(RandomForestClassifier())  # unfitted: the kind, not the state
    assert is_sklearn_tree_model(HistGradientBoostingRegressor())
    assert not is_sklearn_tree_model(make_pipeline(DecisionTreeClassifier()))
    assert not is_sklearn_tree_model(SubclassedTree())
    assert not is_sklearn_tree_model(IsolationForest())
    assert not is_sklearn_tree_model("RandomForestClassifier")


def test_module_imports_without_scikit_learn() -> None:
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import servefn.predictors.trees_sklearn as m\n"
        "assert not m.is_sklearn_tree_model(object())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
