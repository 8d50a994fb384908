"""XGBoost boosters as numpy tree ensembles: binary, multiclass, regression and Poisson models,
with and without missing values, predict what XGBoost predicts through ``TreeEnsemble.predict``,
through a saved archive and for records, one row, many rows and more rows x trees than the
ensemble walks at once; from a Booster and from the JSON model (bytes, text, dict, file); dart,
random forests, pruned trees (deleted nodes), early stopping; the rest is refused by name, and a
hostile JSON model raises PredictorError only.

Measured with XGBoost 3.2.0: margins (``output_margin=True``) are bit-exact in every case,
including dart (each of its two rounding orders) and the large-batch path. Labels are equal.
XGBoost applies the link in float32 and the ensemble in float64, so probabilities differ by at
most 1.1e-7 (about one float32 ulp) and Poisson means by a relative 6e-8 (half an ulp);
identity-link values are exact.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from servefn.errors import PredictorError
from servefn.model import LoadedModel, load_model, write_model
from servefn.predictors.trees import TreeEnsemble
from servefn.predictors.trees_xgboost import is_xgboost_model, tree_ensemble_from_xgboost
from support.treedata import BIG_CELLS, IntLabel, Value, features, records, with_missing

PROBABILITY_TOLERANCE = 2.0**-23  # 1.2e-7: XGBoost's float32 sigmoid / softmax, about one ulp
RELATIVE_TOLERANCE = 2.0**-23  # exp(margin) in float32 against float64
RECORDS = 5


@cache
def dataset(task: str, missing: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Training rows, labels, rows to predict and column names: breast cancer (binary), wine
    (multiclass) or diabetes; with ``missing``, NaN in half the columns at training and in every
    column after."""
    loader = {"binary": load_breast_cancer, "multiclass": load_wine}.get(task, load_diabetes)
    bunch = loader()
    X, y = np.asarray(bunch.data, np.float64), bunch.target
    names = [str(n) for n in bunch.feature_names]
    if not missing:
        return X, y, X, names
    train = with_missing(X, 0.1, slice(0, X.shape[1] // 2), seed=1)
    return train, y, with_missing(train, 0.1, slice(None), seed=2), names


def model_for(task: str, **params: Any) -> Any:
    params = {"n_estimators": 20, "max_depth": 4, "random_state": 0, **params}
    if task in ("binary", "multiclass"):
        return xgb.XGBClassifier(**params)
    params.setdefault("objective", "count:poisson" if task == "poisson" else "reg:squarederror")
    return xgb.XGBRegressor(**params)


# -- checks ------------------------------------------------------------------------------------


def reference(model: Any, X: Any) -> dict[str, np.ndarray]:
    if isinstance(model, xgb.XGBClassifier):
        return {"PredictedLabel": model.predict(X), "Score": model.predict_proba(X)}
    return {"Score": model.predict(X)}


def assert_same(got: dict[str, Any], expected: dict[str, np.ndarray], link: str) -> float:
    """Labels equal, scores within XGBoost's float32 rounding; returns the largest difference
    (relative for exp-link values)."""
    assert set(got) == set(expected)
    if "PredictedLabel" in expected:
        assert np.array_equal(np.asarray(got["PredictedLabel"]), expected["PredictedLabel"])
    score = np.asarray(got["Score"], dtype=np.float64)
    want = np.asarray(expected["Score"], dtype=np.float64)
    assert score.shape == want.shape
    if link == "identity":
        assert np.array_equal(score, want)
        return 0.0
    if link == "exp":
        difference = float((np.abs(score - want) / np.abs(want)).max())
        assert difference <= RELATIVE_TOLERANCE
        return difference
    difference = float(np.abs(score - want).max())
    assert difference <= PROBABILITY_TOLERANCE
    return difference


def assert_margins_exact(ensemble: TreeEnsemble, margins: np.ndarray, X: np.ndarray) -> None:
    raw = ensemble.raw(X)
    assert np.array_equal(raw, np.asarray(margins, np.float64).reshape(raw.shape))


def archive(ensemble: TreeEnsemble, names: list[str]) -> LoadedModel:
    output = Value if ensemble.classes is None else IntLabel
    buffer = io.BytesIO()
    write_model(buffer, ensemble, input=features(names), output=output)
    return load_model(buffer.getvalue())


def check_parity(model: Any, X: np.ndarray, names: list[str], frame: bool) -> TreeEnsemble:
    """The converted wrapper predicts as ``model.predict``: one row, all rows and more than
    :data:`BIG_CELLS` cells, in memory, from an archive and for records; margins bit-exact."""
    ensemble = tree_ensemble_from_xgboost(model)
    loaded = archive(ensemble, names)
    assert isinstance(loaded.predictor, TreeEnsemble)

    def given(rows: np.ndarray) -> Any:
        return pd.DataFrame(rows, columns=names) if frame else rows

    big = np.resize(X, (BIG_CELLS // ensemble.n_trees + 1, X.shape[1]))
    assert big.shape[0] * ensemble.n_trees > BIG_CELLS
    for rows in (X[:1], X, big):
        expected = reference(model, given(rows))
        assert_same(ensemble.predict(rows), expected, ensemble.link)
        assert_same(loaded.predictor.predict(rows), expected, ensemble.link)
        assert_margins_exact(ensemble, model.predict(given(rows), output_margin=True), rows)
        assert_margins_exact(loaded.predictor, model.predict(given(rows), output_margin=True), rows)
    for rows in (X[:1], X[:RECORDS]):
        answers = loaded.predict(records(rows, names)).to_dicts()
        expected = reference(model, given(rows))
        assert_same({k: [a[k] for a in answers] for k in expected}, expected, ensemble.link)
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
    ensemble = check_parity(model, evaluate, names, frame)
    assert ensemble.link == LINKS[task]
    assert ensemble.feature_names == (names if frame else None)
    assert ensemble.float32_input and ensemble.float32_sum and ensemble.accepts_missing
    assert ensemble.source.startswith("xgboost ")
    if task in ("binary", "multiclass"):
        assert list(ensemble.classes) == list(model.classes_)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("task", "params"),
    [
        ("regression", {"booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0}),
        ("multiclass", {"booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0}),
        ("regression", {"tree_method": "exact", "gamma": 2000.0, "max_depth": 6}),  # pruned
        ("binary", {"base_score": 0.3}),
        ("multiclass", {"objective": "multi:softmax"}),
        ("multiclass", {"base_score": [0.2, 0.3, 0.5]}),
        ("regression", {"objective": "reg:gamma"}),
        ("regression", {"objective": "reg:tweedie"}),
        ("regression", {"objective": "reg:absoluteerror"}),
        ("regression", {"objective": "reg:quantileerror", "quantile_alpha": 0.3}),
    ],
    ids=lambda p: p if isinstance(p, str) else "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_variants(task: str, params: dict[str, Any]) -> None:
    X, y, evaluate, names = dataset(task, True)
    check_parity(model_for(task, **params).fit(X, y), evaluate, names, frame=False)


@pytest.mark.parametrize("forest", [xgb.XGBRFClassifier, xgb.XGBRFRegressor])
def test_random_forests(forest: Any) -> None:
    task = "binary" if forest is xgb.XGBRFClassifier else "regression"
    X, y, evaluate, names = dataset(task, True)
    check_parity(forest(n_estimators=8, max_depth=4).fit(X, y), evaluate, names, frame=False)


def test_dart_booster_matches_booster_predict() -> None:
    """A dart Booster (or its JSON) rounds as ``Booster.predict`` does, its wrapper as the
    wrapper's ``predict`` (``inplace_predict``): both bit-exact, though they differ."""
    X, y, evaluate, _ = dataset("regression", True)
    model = model_for("regression", booster="dart", rate_drop=0.3, skip_drop=0.0).fit(X, y)
    booster = model.get_booster()
    for form in (booster, bytes(booster.save_raw("json"))):
        margins = booster.predict(xgb.DMatrix(evaluate), output_margin=True)
        assert_margins_exact(tree_ensemble_from_xgboost(form), margins, evaluate)
    wrapped = tree_ensemble_from_xgboost(model).raw(evaluate)[:, 0]
    assert not np.array_equal(wrapped, booster.predict(xgb.DMatrix(evaluate)))


def test_json_forms_predict_as_the_booster(tmp_path: Path) -> None:
    X, y, evaluate, names = dataset("multiclass", True)
    booster = model_for("multiclass").fit(X, y).get_booster()
    raw = bytes(booster.save_raw("json"))
    path = tmp_path / "model.json"
    booster.save_model(str(path))
    expected = booster.predict(xgb.DMatrix(evaluate), output_margin=True)
    for form in (booster, raw, raw.decode(), json.loads(raw), path, str(path)):
        ensemble = tree_ensemble_from_xgboost(form)
        assert_margins_exact(ensemble, expected, evaluate)
        assert list(ensemble.classes) == [0, 1, 2]  # type: ignore[arg-type]
        assert ensemble.feature_names is None
    proba = booster.predict(xgb.DMatrix(evaluate))
    got = archive(tree_ensemble_from_xgboost(raw), names).predictor.predict(evaluate)
    assert np.abs(got["Score"] - proba).max() <= PROBABILITY_TOLERANCE


def test_early_stopping_uses_best_iteration_as_predict_does() -> None:
    X, y, evaluate, names = dataset("binary", True)
    model = model_for("binary", n_estimators=200, early_stopping_rounds=3)
    model.fit(X[:400], y[:400], eval_set=[(X[400:], y[400:])], verbose=False)
    assert model.best_iteration < 150
    ensemble = check_parity(model, evaluate, names, frame=False)
    assert ensemble.n_trees == model.best_iteration + 1
    booster = model.get_booster()
    every = tree_ensemble_from_xgboost(booster)  # Booster.predict uses every tree
    assert every.n_trees == booster.num_boosted_rounds()
    assert_margins_exact(
        every, booster.predict(xgb.DMatrix(evaluate), output_margin=True), evaluate
    )
    best = tree_ensemble_from_xgboost(booster.save_raw("json"), use_best_iteration=True)
    assert_margins_exact(best, model.predict(evaluate, output_margin=True), evaluate)


def test_rankers_predict_their_margin() -> None:
    X, y, evaluate, _ = dataset("regression", True)
    ranker = xgb.XGBRanker(n_estimators=10, max_depth=3).fit(X, y // 60, group=[40] * 11 + [2])
    ensemble = tree_ensemble_from_xgboost(ranker)
    assert ensemble.classes is None
    assert np.array_equal(ensemble.predict(evaluate)["Score"], ranker.predict(evaluate))


# -- refusals ----------------------------------------------------------------------------------


def small(y: np.ndarray | None = None, **params: Any) -> Any:
    X, target, _, _ = dataset("regression", False)
    params = {"n_estimators": 3, "max_depth": 2, **params}
    return xgb.XGBRegressor(**params).fit(X, target if y is None else y)


def categorical_model() -> Any:
    frame = pd.DataFrame({"a": np.arange(60.0), "c": pd.Categorical(list("abc") * 20)})
    model = xgb.XGBRegressor(n_estimators=3, enable_categorical=True, max_cat_to_onehot=1)
    return model.fit(frame, np.arange(60.0) % 7 + (frame["c"] == "b") * 10)


def test_refusals_name_the_problem() -> None:
    X, y, _, _ = dataset("regression", False)
    refusals: list[tuple[Any, str]] = [
        (small(booster="gblinear", max_depth=None), "gblinear"),
        (categorical_model(), "categorical features"),
        (small(y / y.max(), objective="reg:logistic"), "reg:logistic"),
        (
            xgb.XGBClassifier(n_estimators=2, objective="binary:logitraw").fit(X, y > 150),
            "logitraw",
        ),
        (small(missing=0.0), "missing"),
        (small(np.column_stack([y, y])), "multi-target"),
        (small(np.column_stack([y, y]), multi_strategy="multi_output_tree"), "multi-target"),
        (xgb.XGBRegressor(), "not fitted"),
        (bytes(small().get_booster().save_raw("ubj")), "UBJSON"),
        (b"binf\x00\x00", "not XGBoost's JSON"),
        (object(), "not an XGBoost model"),
    ]
    for model, words in refusals:
        with pytest.raises(PredictorError, match=words):
            tree_ensemble_from_xgboost(model)


def test_categorical_splits_are_refused_by_name() -> None:
    doc = json.loads(categorical_model().get_booster().save_raw("json"))
    doc["learner"]["feature_types"] = []  # only the split types say so now
    with pytest.raises(PredictorError, match="XGBoost categorical splits are not supported"):
        tree_ensemble_from_xgboost(doc)


# -- hostile JSON ------------------------------------------------------------------------------


def valid_doc() -> dict[str, Any]:
    return json.loads(small().get_booster().save_raw("json"))  # type: ignore[no-any-return]


def tree0(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["learner"]["gradient_booster"]["model"]["trees"][0]  # type: ignore[no-any-return]


def mutate(path: str, value: Any) -> Any:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is KeyError:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


TREES = "learner/gradient_booster/model/trees"
HOSTILE = {
    "no learner": mutate("learner", KeyError),
    "objective not text": mutate("learner/objective/name", 7),
    "unknown objective": mutate("learner/objective/name", "survival:cox"),
    "num_feature text": mutate("learner/learner_model_param/num_feature", "ten"),
    "num_feature zero": mutate("learner/learner_model_param/num_feature", "0"),
    "base_score garbage": mutate("learner/learner_model_param/base_score", "[a,b]"),
    "base_score nan": mutate("learner/learner_model_param/base_score", "[NaN]"),
    "base_score too many": mutate("learner/learner_model_param/base_score", "[1,2]"),
    "unknown booster": mutate("learner/gradient_booster/name", "gbforest"),
    "trees not a list": mutate(TREES, {"0": 1}),
    "no trees": mutate(TREES, []),
    "tree not an object": mutate(f"{TREES}/0", [1, 2]),
    "tree_info short": mutate("learner/gradient_booster/model/tree_info", [0]),
    "tree_info out of range": mutate("learner/gradient_booster/model/tree_info", [0, 5, 0]),
    "num_nodes huge": mutate(f"{TREES}/0/tree_param/num_nodes", str(1 << 40)),
    "num_nodes mismatch": mutate(f"{TREES}/0/tree_param/num_nodes", "3"),
    "vector leaves": mutate(f"{TREES}/0/tree_param/size_leaf_vector", "2"),
    "children missing": mutate(f"{TREES}/0/left_children", KeyError),
    "child out of range": mutate(f"{TREES}/0/left_children/0", 10**6),
    "child too negative": mutate(f"{TREES}/0/right_children/0", -7),
    "cycle": mutate(f"{TREES}/0/left_children/0", 0),
    "one child": mutate(f"{TREES}/0/right_children/0", -1),
    "ragged children": mutate(f"{TREES}/0/left_children/0", [1, 2]),
    "float children": mutate(f"{TREES}/0/left_children/0", 1.5),
    "huge int child": mutate(f"{TREES}/0/left_children/0", 10**30),
    "text condition": mutate(f"{TREES}/0/split_conditions/0", "0.5"),
    "nan threshold": mutate(f"{TREES}/0/split_conditions/0", float("nan")),
    "infinite leaf": mutate(f"{TREES}/0/split_conditions/6", 1e300),
    "feature out of range": mutate(f"{TREES}/0/split_indices/0", 99),
    "negative feature": mutate(f"{TREES}/0/split_indices/0", -2),
    "dart without weights": mutate("learner/gradient_booster/name", "dart"),
}


@pytest.mark.parametrize("change", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_raises_predictor_error(change: Any) -> None:
    doc = valid_doc()
    assert tree0(doc)["tree_param"]["num_nodes"] == "7"  # the paths above assume depth 2
    change(doc)
    with pytest.raises(PredictorError):
        tree_ensemble_from_xgboost(doc)


def test_hostile_json_text_raises_predictor_error() -> None:
    for text in (b"{" * 100_000, b'{"learner": ', "[1, 2]", b"{\xff}"):
        with pytest.raises(PredictorError):
            tree_ensemble_from_xgboost(text)


def test_deleted_nodes_are_dropped() -> None:
    doc = valid_doc()
    tree = tree0(doc)
    for key, filler in [
        ("left_children", -1),
        ("right_children", -1),
        ("split_indices", 0),
        ("split_conditions", 0.0),
        ("default_left", 0),
        ("split_type", 0),
        ("base_weights", 0.0),
    ]:
        tree[key].append(filler)  # an unreachable node, as pruning leaves them
    tree["tree_param"]["num_nodes"] = "8"
    X, _, _, _ = dataset("regression", False)
    assert np.array_equal(
        tree_ensemble_from_xgboost(doc).raw(X), tree_ensemble_from_xgboost(valid_doc()).raw(X)
    )


# -- detection ---------------------------------------------------------------------------------


def test_is_xgboost_model() -> None:
    model = small()
    assert is_xgboost_model(model) and is_xgboost_model(model.get_booster())
    assert not any(is_xgboost_model(o) for o in ({}, b"{}", "m.json", object(), np.zeros(2)))


def test_no_xgboost_import_to_detect_or_convert_json() -> None:
    code = (
        "import sys, json; from servefn.predictors import trees_xgboost as t\n"
        "assert not t.is_xgboost_model({}) and not t.is_xgboost_model(object())\n"
        "e = t.tree_ensemble_from_xgboost(json.loads(sys.stdin.read()))\n"
        "assert 'xgboost' not in sys.modules, 'xgboost was imported'\n"
    )
    raw = small().get_booster().save_raw("json")
    done = subprocess.run([sys.executable, "-c", code], input=bytes(raw), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
