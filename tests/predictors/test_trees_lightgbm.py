"""LightGBM boosters as numpy tree ensembles: binary, multiclass (text labels), regression and
Poisson models, with and without missing values, and with categorical features (integer codes
and pandas categories, unseen and negative codes at predict time), predict what LightGBM
predicts through ``TreeEnsemble.predict``, through a saved archive and for records, one row,
many rows and more rows x trees than the ensemble walks at once; from a Booster and from the
``dump_model()`` JSON (dict, text, file) or a text model file; random forests, the binary
``sigmoid`` parameter and early stopping; the rest is refused by name, and a hostile dump raises
PredictorError only.

Measured with LightGBM 4.7.0: labels are equal; probabilities differ by at most 2.3e-16, raw
scores by 1.2e-13 and regression values by a relative 3.6e-15 (the ensemble adds the same float64
leaves in another order; random forests multiply by 1 / iterations where LightGBM divides)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine, make_classification

from servefn import Schema
from servefn.errors import PredictorError
from servefn.model import LoadedModel, load_model, write_model
from servefn.predictors.trees import MAX_DEPTH, TreeEnsemble
from servefn.predictors.trees_lightgbm import is_lightgbm_model, tree_ensemble_from_lightgbm
from support.treedata import BIG_CELLS, IntLabel, StrLabel, Value, features, records, with_missing

TOLERANCE = 1e-9
RECORDS = 5


@cache
def dataset(task: str, missing: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Training rows, labels, rows to predict and column names: breast cancer (binary), wine
    (multiclass, text labels) or diabetes; with ``missing``, NaN in half the columns at
    training and in every column after."""
    loader = {"binary": load_breast_cancer, "multiclass": load_wine}.get(task, load_diabetes)
    bunch = loader()
    X, y = np.asarray(bunch.data, np.float64), bunch.target
    if task == "multiclass":
        y = bunch.target_names[y]
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]  # as LightGBM keeps them
    if not missing:
        return X, y, X, names
    train = with_missing(X, 0.1, slice(0, X.shape[1] // 2), seed=1)
    return train, y, with_missing(train, 0.1, slice(None), seed=2), names


def model_for(task: str, **params: Any) -> Any:
    params = {"n_estimators": 20, "num_leaves": 8, "random_state": 0, "verbose": -1, **params}
    if task in ("binary", "multiclass"):
        return lgb.LGBMClassifier(**params)
    params.setdefault("objective", "poisson" if task == "poisson" else "regression")
    return lgb.LGBMRegressor(**params)


# -- checks ------------------------------------------------------------------------------------


def reference(model: Any, X: Any) -> dict[str, Any]:
    if isinstance(model, lgb.LGBMClassifier):
        return {"PredictedLabel": model.predict(X), "Score": model.predict_proba(X)}
    return {"Score": model.predict(X)}


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> float:
    """Labels equal, scores within :data:`TOLERANCE` (relative for values above 1); returns the
    largest difference."""
    assert set(got) == set(expected)
    if "PredictedLabel" in expected:
        assert np.array_equal(np.asarray(got["PredictedLabel"]), expected["PredictedLabel"])
    score = np.asarray(got["Score"], dtype=np.float64)
    want = np.asarray(expected["Score"], dtype=np.float64)
    assert score.shape == want.shape
    difference = float((np.abs(score - want) / np.maximum(np.abs(want), 1.0)).max())
    assert difference <= TOLERANCE
    return difference


def archive(ensemble: TreeEnsemble, names: list[str]) -> LoadedModel:
    if ensemble.classes is None:
        output: type[Schema] = Value
    else:
        output = StrLabel if ensemble.classes.dtype.kind == "U" else IntLabel
    buffer = io.BytesIO()
    write_model(buffer, ensemble, input=features(names), output=output)
    return load_model(buffer.getvalue())


def check_parity(
    model: Any,
    X: np.ndarray,
    names: list[str],
    given: Any = None,
    ensemble: TreeEnsemble | None = None,
) -> TreeEnsemble:
    """The converted model predicts as ``model.predict`` (given ``given(rows)``, default the
    matrix): one row, all rows and more than :data:`BIG_CELLS` cells, in memory, from an
    archive and for records."""
    ensemble = tree_ensemble_from_lightgbm(model) if ensemble is None else ensemble
    loaded = archive(ensemble, names)
    assert isinstance(loaded.predictor, TreeEnsemble)
    given = given or (lambda rows: rows)
    big = np.resize(X, (BIG_CELLS // ensemble.n_trees + 1, X.shape[1]))
    assert big.shape[0] * ensemble.n_trees > BIG_CELLS
    for rows in (X[:1], X, big):
        expected = reference(model, given(rows))
        assert_same(ensemble.predict(rows), expected)
        assert_same(loaded.predictor.predict(rows), expected)
    for rows in (X[:1], X[:RECORDS]):
        answers = loaded.predict(records(rows, names)).to_dicts()
        expected = reference(model, given(rows))
        assert_same({k: [a[k] for a in answers] for k in expected}, expected)
    return ensemble


# -- parity ------------------------------------------------------------------------------------

TASKS = ("binary", "multiclass", "regression", "poisson")
LINKS = {"binary": "logistic", "multiclass": "softmax", "regression": "identity", "poisson": "exp"}


@pytest.mark.parametrize("missing", [False, True], ids=["clean", "nan"])
@pytest.mark.parametrize("task", TASKS)
def test_parity(task: str, missing: bool) -> None:
    X, y, evaluate, names = dataset(task, missing)
    frame = not missing  # clean: fitted on a DataFrame (feature names); with NaN: a matrix
    model = model_for(task).fit(pd.DataFrame(X, columns=names) if frame else X, y)
    given = (lambda rows: pd.DataFrame(rows, columns=names)) if frame else None
    ensemble = check_parity(model, evaluate, names, given=given)
    assert ensemble.link == LINKS[task]
    assert ensemble.feature_names == (names if frame else None)
    assert not ensemble.float32_input and not ensemble.float32_sum and ensemble.accepts_missing
    assert ensemble.source.startswith("lightgbm ")
    if task in ("binary", "multiclass"):
        assert list(ensemble.classes) == list(model.classes_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task", "params"),
    [
        ("binary", {"sigmoid": 0.7}),
        ("binary", {"boosting_type": "rf", "bagging_freq": 1, "bagging_fraction": 0.6}),
        ("multiclass", {"boosting_type": "rf", "bagging_freq": 1, "bagging_fraction": 0.6}),
        ("regression", {"boosting_type": "rf", "bagging_freq": 1, "bagging_fraction": 0.6}),
        ("regression", {"boosting_type": "dart"}),
        ("regression", {"objective": "gamma"}),
        ("regression", {"objective": "tweedie"}),
        ("regression", {"objective": "regression_l1"}),
        ("regression", {"objective": "huber"}),
        ("regression", {"objective": "quantile", "alpha": 0.3}),
        ("regression", {"objective": "mape"}),
        ("regression", {"objective": "fair"}),
        ("binary", {"use_missing": False}),
    ],
    ids=lambda p: p if isinstance(p, str) else "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_variants(task: str, params: dict[str, Any]) -> None:
    X, y, evaluate, names = dataset(task, True)
    check_parity(model_for(task, **params).fit(X, y), evaluate, names)


# -- categorical features ------------------------------------------------------------------


CATEGORICAL = [1, 5]


@cache
def categorical_data(task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four numbers and two integer-coded categorical columns (1: codes 0-39, 5: 0-4), 5%
    NaN; the rows predicted add unseen codes (40-299, 5000), negative ones and infinities."""
    rng = np.random.default_rng(3)
    n = 1500
    k = {"binary": 2, "multiclass": 3}.get(task, 2)
    numbers, y = make_classification(
        n, 4, n_informative=3, n_redundant=0, n_classes=k, random_state=0
    )
    wide, narrow = rng.integers(0, 40, n), rng.integers(0, 5, n)
    y = np.where(wide % 3 == 0, (y + 1) % k, y)
    if task == "regression":
        y = y * 10.0 + numbers[:, 0] + 5.0 * (narrow == 2)
    X = np.column_stack([numbers[:, :1], wide, numbers[:, 1:], narrow]).astype(np.float64)
    X = with_missing(X, 0.05, slice(None), seed=4)
    evaluate = X.copy()
    evaluate[::7, 1] = rng.integers(40, 300, evaluate[::7].shape[0])
    evaluate[::11, 1] = -1
    evaluate[::13, 5] = -3
    evaluate[::17, 5] = 5000
    evaluate[::19, 1] = np.inf
    evaluate[::23, 1] = 2.7  # truncated to 2
    return X, y, evaluate


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_categorical_codes(task: str) -> None:
    X, y, evaluate = categorical_data(task)
    model = model_for(task, min_data_per_group=5, cat_smooth=1.0, max_cat_to_onehot=4)
    model.fit(X, y, categorical_feature=CATEGORICAL)
    ensemble = check_parity(model, evaluate, [f"c{i}" for i in range(6)])
    assert (ensemble.nodes.category >= 0).any()


def test_pandas_categories() -> None:
    """A model fitted on pandas categories; the ensemble gets their training codes, NaN for a
    missing or unseen category (as LightGBM recodes a frame)."""
    X, y, evaluate = categorical_data("binary")
    levels = [f"level-{i}" for i in range(40)]

    def frame(rows: np.ndarray) -> pd.DataFrame:
        codes = np.where(np.isfinite(rows[:, 1]), rows[:, 1], -1).astype(int)
        text = [levels[c] if 0 <= c < 40 else ("unseen" if c >= 40 else None) for c in codes]
        data = pd.DataFrame(rows[:, [0, 2, 3, 4, 5]], columns=["a", "b", "c", "d", "e"])
        data.insert(1, "kind", pd.Categorical(text, categories=levels))
        return data

    model = model_for("binary", min_data_per_group=5, cat_smooth=1.0).fit(frame(X), y)
    assert model.booster_.pandas_categorical == [levels]
    as_codes = evaluate.copy()
    as_codes[:, 1] = np.where((evaluate[:, 1] >= 0) & (evaluate[:, 1] < 40), evaluate[:, 1], np.nan)
    as_codes[:, 1] = np.floor(as_codes[:, 1])
    ensemble = tree_ensemble_from_lightgbm(model)
    check_parity(model, as_codes, ["a", "kind", "b", "c", "d", "e"], given=frame, ensemble=ensemble)


def test_categorical_values_between_minus_one_and_zero() -> None:
    X, y, evaluate = categorical_data("binary")
    model = model_for("binary", min_data_per_group=5, cat_smooth=1.0)
    model.fit(X, y, categorical_feature=CATEGORICAL)
    ensemble = tree_ensemble_from_lightgbm(model)
    rows = evaluate.copy()
    rows[:, CATEGORICAL] = -0.5
    assert_same(ensemble.predict(rows), reference(model, rows))


# -- forms ---------------------------------------------------------------------------------


def test_json_forms_predict_as_the_booster(tmp_path: Path) -> None:
    X, y, evaluate, _ = dataset("multiclass", True)
    booster = model_for("multiclass").fit(X, y).booster_
    dump = booster.dump_model()
    text, dump_path, model_path = json.dumps(dump), tmp_path / "dump.json", tmp_path / "m.txt"
    dump_path.write_text(text)
    booster.save_model(str(model_path))
    expected = booster.predict(evaluate)
    for form in (booster, dump, text, text.encode(), dump_path, str(model_path)):
        ensemble = tree_ensemble_from_lightgbm(form)
        assert list(ensemble.classes) == [0, 1, 2]  # type: ignore[arg-type]
        assert ensemble.feature_names is None
        assert np.abs(ensemble.predict(evaluate)["Score"] - expected).max() <= TOLERANCE


def test_early_stopping_uses_best_iteration_as_predict_does() -> None:
    X, y, evaluate, names = dataset("regression", True)
    model = model_for("regression", n_estimators=300, learning_rate=0.3)
    stop = [lgb.early_stopping(3, verbose=False)]
    model.fit(X[:300], y[:300], eval_X=X[300:], eval_y=y[300:], callbacks=stop)
    assert 0 < model.best_iteration_ < 300
    ensemble = check_parity(model, evaluate, names)
    assert ensemble.n_trees == model.best_iteration_


def test_rankers_predict_their_score() -> None:
    X, y, evaluate, _ = dataset("regression", True)
    ranker = lgb.LGBMRanker(n_estimators=10, verbose=-1).fit(X, y // 60, group=[40] * 11 + [2])
    got = tree_ensemble_from_lightgbm(ranker).predict(evaluate)["Score"]
    assert np.abs(got - ranker.predict(evaluate)).max() <= TOLERANCE


# -- refusals ----------------------------------------------------------------------------------


def test_refusals_name_the_problem() -> None:
    X, y, _, _ = dataset("regression", False)
    zeroed = np.where(np.abs(X) < 0.01, 0.0, X)
    labels = np.arange(len(y)) % 3

    def fit(model: Any, target: Any = y, data: Any = X) -> Any:
        return model.fit(data, target)

    refusals: list[tuple[Any, str]] = [
        (fit(model_for("regression", linear_tree=True)), "linear trees"),
        (fit(model_for("multiclass", objective="multiclassova"), labels), "multiclassova"),
        (fit(model_for("regression", objective="cross_entropy"), y / y.max()), "cross_entropy"),
        (fit(model_for("regression", reg_sqrt=True)), "reg_sqrt"),
        (fit(model_for("regression", zero_as_missing=True), y, zeroed), "zero_as_missing"),
        (fit(model_for("regression", objective=lambda t, p: (p - t, np.ones_like(p)))), "custom"),
        (lgb.LGBMRegressor(), "not fitted"),
        (object(), "not a LightGBM model"),
        ("{not json", "does not parse"),
    ]
    for model, words in refusals:
        with pytest.raises(PredictorError, match=words):
            tree_ensemble_from_lightgbm(model)


# -- hostile dumps ------------------------------------------------------------------------------


@cache
def valid_text() -> str:
    X, y, _, _ = dataset("regression", False)
    model = model_for("regression", n_estimators=3, num_leaves=4)
    return json.dumps(model.fit(X, y).booster_.dump_model())


def valid_dump() -> dict[str, Any]:
    return json.loads(valid_text())  # type: ignore[no-any-return]


def root(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tree_info"][0]["tree_structure"]  # type: ignore[no-any-return]


def set_root(key: str, value: Any) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        root(doc)[key] = value

    return apply


def set_top(key: str, value: Any) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        doc[key] = value

    return apply


def first_leaf(doc: dict[str, Any]) -> dict[str, Any]:
    node = root(doc)
    while "left_child" in node:
        node = node["left_child"]
    return node


def deep_chain(doc: dict[str, Any]) -> None:
    """A tree deeper than MAX_DEPTH, built without recursion."""
    leaf: dict[str, Any] = {"leaf_value": 1.0}
    node = leaf
    for _ in range(MAX_DEPTH + 5):
        node = {**{k: v for k, v in root(doc).items() if "child" not in k}, "left_child": node}
        node["right_child"] = {"leaf_value": 0.0}
    doc["tree_info"][0]["tree_structure"] = node


HOSTILE = {
    "no objective": set_top("objective", None),
    "unknown objective": set_top("objective", "survival"),
    "bad sigmoid": set_top("objective", "binary sigmoid:-1"),
    "no tree_info": set_top("tree_info", {"0": 1}),
    "empty tree_info": set_top("tree_info", []),
    "tree_info not objects": set_top("tree_info", [1, 2, 3]),
    "too many trees per iteration": set_top("num_tree_per_iteration", 2),
    "max_feature_idx negative": set_top("max_feature_idx", -1),
    "max_feature_idx text": set_top("max_feature_idx", "9"),
    "linear flag": lambda d: d["tree_info"][0].__setitem__("is_linear", True),
    "structure not an object": lambda d: d["tree_info"][0].__setitem__("tree_structure", []),
    "feature out of range": set_root("split_feature", 99),
    "feature negative": set_root("split_feature", -1),
    "feature bool": set_root("split_feature", True),
    "decision type": set_root("decision_type", "<"),
    "threshold text": set_root("threshold", "0.5"),
    "threshold nan": set_root("threshold", float("nan")),
    "threshold huge int": set_root("threshold", 10**400),
    "missing type": set_root("missing_type", "Sometimes"),
    "default_left not bool": set_root("default_left", 1),
    "child not an object": set_root("left_child", [1]),
    "child missing": set_root("right_child", None),
    "leaf value missing": lambda d: first_leaf(d).pop("leaf_value"),
    "leaf value infinite": lambda d: first_leaf(d).__setitem__("leaf_value", float("inf")),
    "categories text": lambda d: root(d).update(decision_type="==", threshold="a||b"),
    "categories negative": lambda d: root(d).update(decision_type="==", threshold="-1||3"),
    "category huge": lambda d: root(d).update(decision_type="==", threshold="1||999999999"),
    "categories list": lambda d: root(d).update(decision_type="==", threshold=[1, 2]),
    "too deep": deep_chain,
}


@pytest.mark.parametrize("change", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_dump_raises_predictor_error(change: Any) -> None:
    doc = valid_dump()
    tree_ensemble_from_lightgbm(valid_dump())  # the untouched dump converts
    change(doc)
    with pytest.raises(PredictorError):
        tree_ensemble_from_lightgbm(doc)


def test_hostile_text_raises_predictor_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    for text in ("{" * 100_000, '{"tree_info": ', b"{\xff}", "[1]", missing):
        with pytest.raises(PredictorError):
            tree_ensemble_from_lightgbm(text)


def test_zero_missing_splits_a_threshold_expresses_are_kept() -> None:
    """A ``Zero`` missing type is exact where the threshold already sends zero the default way:
    default left with a threshold >= 1e-35, default right with one below -1e-35."""
    X, _, _, _ = dataset("regression", False)
    expected = tree_ensemble_from_lightgbm(valid_dump()).predict(X)["Score"]
    doc = valid_dump()
    node = root(doc)
    while abs(node["threshold"]) < 1e-30:  # a split at zero is the same either way: skip it
        node = node["left_child"]
    node.update(missing_type="Zero", default_left=node["threshold"] >= 0)
    assert np.array_equal(tree_ensemble_from_lightgbm(doc).predict(X)["Score"], expected)
    node.update(default_left=not node["default_left"])
    with pytest.raises(PredictorError, match="zero_as_missing"):
        tree_ensemble_from_lightgbm(doc)


# -- detection ---------------------------------------------------------------------------------


def test_is_lightgbm_model() -> None:
    model = model_for("regression", n_estimators=2).fit(*dataset("regression", False)[:2])
    assert is_lightgbm_model(model) and is_lightgbm_model(model.booster_)
    assert not any(is_lightgbm_model(o) for o in ({}, "{}", "m.txt", object(), np.zeros(2)))


def test_no_lightgbm_import_to_detect_or_convert_a_dump() -> None:
    code = (
        "import sys; from servefn.predictors import trees_lightgbm as t\n"
        "assert not t.is_lightgbm_model({}) and not t.is_lightgbm_model(object())\n"
        "e = t.tree_ensemble_from_lightgbm(sys.stdin.read())\n"
        "assert 'lightgbm' not in sys.modules, 'lightgbm was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=valid_text().encode(), capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def test_values_within_lightgbms_zero_threshold_are_read_as_zero() -> None:
    """LightGBM reads |x| <= 1e-35 (as float32) as 0.0 before any split: a split at a threshold
    between -1e-35 and 0 must see such a value as 0, as ``threshold_rows`` found."""
    X, y = load_diabetes(return_X_y=True)
    X = np.where(np.random.default_rng(0).random(X.shape) < 0.3, 0.0, X)
    model = lgb.LGBMRegressor(n_estimators=20, num_leaves=7, verbose=-1, n_jobs=1).fit(X, y)
    tiny = float(np.float32(1e-35))
    rows = np.tile(X[:8], (4, 1))
    for k, value in enumerate((tiny, -tiny, 1e-36, -np.nextafter(tiny, 1))):
        rows[8 * k : 8 * (k + 1), :] = np.where(rows[8 * k : 8 * (k + 1), :] == 0, value, 0.5)
    ensemble = tree_ensemble_from_lightgbm(model)
    np.testing.assert_allclose(ensemble.predict(rows)["Score"], model.predict(rows), rtol=1e-12)
