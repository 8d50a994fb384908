"""The tree-ensemble kind's own semantics and its defences, on hand-built trees.

Splits (``x <= threshold``, NaN to the missing side), categorical bitsets (negative, unknown,
non-integral and missing values), float32 rounding of inputs and float32 sums, the links, and
both traversal paths (all trees at once for small batches, tree by tree for large ones) give
the answers worked out here by hand. Hostile node arrays (cycles, shared or orphan nodes,
indices out of range, depth bombs, NaN thresholds, bad bitsets) are refused when the model is
built, and through a ``ModelSource`` a refused archive never replaces the model serving.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import servefn.predictors.trees as trees_module
from servefn.errors import PredictorError
from servefn.loaders import MemoryLoader, ModelSource
from servefn.model import load_model, write_model
from servefn.predictors._npz import dump_arrays
from servefn.predictors.trees import MAX_DEPTH, Tree, TreeEnsemble
from servefn.predictors.trees_export import threshold_rows
from support.iris import CLASSES, IrisData, IrisPrediction
from support.reliability import REFRESH, Clock, rewrite


def stump(feature: int, threshold: float, low: Any, high: Any, *, missing_left: bool) -> Tree:
    """One split: ``x[feature] <= threshold`` gives ``low``, else ``high``."""
    return Tree(
        feature=np.array([feature, 0, 0]),
        threshold=np.array([threshold, 0.0, 0.0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        missing_left=np.array([missing_left, False, False]),
        value=np.array([[0.0], [low], [high]], dtype=np.float64),
    )


def regressor(*trees: Tree, **params: Any) -> TreeEnsemble:
    return TreeEnsemble.from_trees(list(trees), base=[params.pop("base", 0.0)], **params)


def test_a_split_sends_equal_values_left_and_missing_ones_to_their_side() -> None:
    model = regressor(
        stump(0, 1.5, 10.0, 20.0, missing_left=True),
        stump(1, -2.0, 1.0, 2.0, missing_left=False),
        n_features=2,
        base=100.0,
    )
    X = np.array([[1.5, -2.0], [1.6, -1.9], [np.nan, np.nan], [np.nan, -5.0]])
    assert model.predict(X)["Score"].tolist() == [111.0, 122.0, 112.0, 111.0]


def test_float32_input_rounds_before_comparing() -> None:
    threshold = float(np.float32(0.1)) + 1e-12  # between float32(0.1) and the next float32
    just_above = threshold + 1e-12  # rounds to float32(0.1) in float32, so goes left there
    exact = regressor(stump(0, threshold, 0.0, 1.0, missing_left=True), n_features=1)
    rounded = regressor(
        stump(0, threshold, 0.0, 1.0, missing_left=True), n_features=1, float32_input=True
    )
    X = np.array([[just_above]])
    assert (just_above > threshold) and exact.predict(X)["Score"][0] == 1.0
    assert rounded.predict(X)["Score"][0] == 0.0


def test_float32_sums_run_from_the_base_tree_by_tree() -> None:
    big, small = 2.0**24, 1.0  # in float32, 2**24 + 1 == 2**24: order and precision show
    trees = [stump(0, 0.0, small, small, missing_left=True) for _ in range(3)]
    model = regressor(*trees, n_features=1, base=big, float32_sum=True)
    assert model.predict(np.zeros((1, 1)))["Score"][0] == big  # each + 1 is lost in float32
    plain = regressor(*trees, n_features=1, base=big)
    assert plain.predict(np.zeros((1, 1)))["Score"][0] == big + 3


def categorical_model() -> TreeEnsemble:
    """One categorical split: categories {1, 3} go left (value 1), known {0, 1, 2, 3}; a
    missing or unknown category goes right (value 2)."""
    tree = Tree(
        feature=np.array([0, 0, 0]),
        threshold=np.array([np.nan, 0.0, 0.0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        missing_left=np.array([False, False, False]),
        value=np.array([[0.0], [1.0], [2.0]]),
        category=np.array([0, -1, -1]),
    )
    left = np.array([[0b1010]], dtype=np.uint32)
    known = np.array([[0b1111]], dtype=np.uint32)
    return TreeEnsemble.from_trees(
        [tree], base=[0.0], left_sets=left, known_sets=known, n_features=1
    )


def test_categorical_splits_truncate_and_treat_unknown_values_as_missing() -> None:
    model = categorical_model()
    values = [1.0, 3.0, 0.0, 2.0, 1.9, 3.99, np.nan, -1.0, -0.5, 4.0, 40.0, 1e9]
    expected = [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    got = model.predict(np.array(values).reshape(-1, 1))["Score"].tolist()
    assert got == expected


def classifier(link: str, n_outputs: int, classes: list[Any]) -> TreeEnsemble:
    trees = [stump(0, 0.5, -1.0, 1.0, missing_left=True) for _ in range(n_outputs)]
    for target, tree in enumerate(trees):
        tree.target = target
        tree.value = tree.value * (target + 1)
    return TreeEnsemble.from_trees(
        trees, base=np.zeros(n_outputs), n_features=4, link=link, classes=classes
    )


def test_links_turn_raw_sums_into_scores() -> None:
    X = np.array([[0.0, 0, 0, 0], [1.0, 0, 0, 0]])
    binary = classifier("logistic", 1, ["no", "yes"]).predict(X)
    p = 1 / (1 + np.exp(-np.array([-1.0, 1.0])))
    np.testing.assert_allclose(binary["Score"], np.column_stack((1 - p, p)), rtol=1e-15)
    assert binary["PredictedLabel"].tolist() == ["no", "yes"]
    multi = classifier("softmax", 3, CLASSES).predict(X)
    z = np.array([[-1.0, -2.0, -3.0], [1.0, 2.0, 3.0]])
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(multi["Score"], expected, rtol=1e-15)
    assert multi["PredictedLabel"].tolist() == [CLASSES[0], CLASSES[2]]
    counts = regressor(stump(0, 0.5, 0.0, 1.0, missing_left=True), n_features=1, link="exp")
    assert counts.predict(np.array([[0.0], [1.0]]))["Score"].tolist() == [1.0, float(np.e)]


def forest(seed: int = 0, n_trees: int = 30, depth: int = 6) -> TreeEnsemble:
    """Random full trees of ``depth`` over 4 features with NaN routing and vector leaves."""
    rng = np.random.default_rng(seed)
    built = []
    for _ in range(n_trees):
        n_inner = 2**depth - 1
        n = 2 * n_inner + 1
        inner = np.arange(n_inner)
        left = np.full(n, -1)
        right = np.full(n, -1)
        left[inner], right[inner] = 2 * inner + 1, 2 * inner + 2
        value = rng.dirichlet(np.ones(3), n)
        built.append(
            Tree(
                feature=rng.integers(0, 4, n),
                threshold=rng.normal(size=n),
                left=left,
                right=right,
                missing_left=rng.random(n) < 0.5,
                value=value,
            )
        )
    return TreeEnsemble.from_trees(
        built, base=np.zeros(3), n_features=4, scale=1 / n_trees, classes=CLASSES
    )


@pytest.mark.parametrize("rows", [1, 7, 5000])
def test_both_traversals_agree_with_a_plain_python_walk(
    rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = forest()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(rows, 4))
    X[rng.random(X.shape) < 0.2] = np.nan
    expected = np.array([python_walk(model, x) for x in X])
    for cells in (0, 1 << 40):  # tree by tree, then all trees at once
        monkeypatch.setattr(trees_module, "_ALL_TREES_CELLS", cells)
        got = model.predict(X)
        np.testing.assert_allclose(got["Score"], expected, rtol=0, atol=1e-15)
        assert got["PredictedLabel"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]


def python_walk(model: TreeEnsemble, x: NDArray[Any]) -> NDArray[Any]:
    a = model.nodes
    total = np.zeros(3)
    for root in a.roots:
        node = int(root)
        while a.left[node] != node:
            v = x[a.feature[node]]
            go_left = bool(a.missing_left[node]) if np.isnan(v) else v <= a.threshold[node]
            node = int(a.left[node] if go_left else a.right[node])
        total += a.value[node]
    return total / len(a.roots)


def test_a_saved_ensemble_loads_and_predicts_the_same() -> None:
    model = forest(seed=3)
    buffer = io.BytesIO()
    write_model(buffer, model, input=IrisData, output=IrisPrediction)
    loaded = load_model(buffer.getvalue())
    assert loaded.manifest["kind"] == "tree-ensemble"
    assert loaded.manifest["predictor"]["engine"] == "numpy"
    X = np.random.default_rng(2).normal(size=(50, 4))
    np.testing.assert_array_equal(loaded.predictor.predict(X)["Score"], model.predict(X)["Score"])
    answer = loaded.predict(
        [{"SepalLength": 0.1, "SepalWidth": -1, "PetalLength": 2, "PetalWidth": 0}]
    )
    assert answer[0].predicted_label in CLASSES


def test_threshold_rows_sit_on_the_split_thresholds() -> None:
    model = forest(seed=4)
    rows = threshold_rows(model, n=200)
    a = model.nodes
    split = a.left != np.arange(len(a.left))
    cuts = set(a.threshold[split].tolist())
    finite = rows[~np.isnan(rows)]
    on_or_above = [v in cuts or float(np.nextafter(v, -np.inf)) in cuts for v in finite]
    assert np.mean(on_or_above) > 0.95  # columns never split on stay 0.0
    assert np.isnan(rows).any()  # the model routes missing values: rows hold some


# -- hostile arrays ------------------------------------------------------------------------------


def arrays_of(model: TreeEnsemble) -> dict[str, NDArray[Any]]:
    a = model.nodes
    return {
        "feature": a.feature.copy(),
        "threshold": a.threshold.copy(),
        "left": a.left.copy(),
        "right": a.right.copy(),
        "missing_left": a.missing_left.copy(),
        "category": a.category.copy(),
        "value": a.value.copy(),
        "roots": a.roots.copy(),
        "tree_target": a.tree_target.copy(),
        "left_sets": a.left_sets.copy(),
        "known_sets": a.known_sets.copy(),
        "base": a.base.copy(),
    }


def edited(change: Callable[[dict[str, NDArray[Any]]], Any]) -> dict[str, NDArray[Any]]:
    arrays = arrays_of(forest(n_trees=3, depth=3))
    change(arrays)
    return arrays


def chain(length: int) -> dict[str, NDArray[Any]]:
    """One tree that is a single path ``length`` splits deep: a depth bomb."""
    n = 2 * length + 1
    left, right = np.arange(n), np.arange(n)
    inner = np.arange(length)
    left[inner], right[inner] = inner + 1, length + inner  # right children are leaves
    left[length - 1] = 2 * length  # the last split's left child: the final leaf
    return {
        "feature": np.zeros(n, np.int32),
        "threshold": np.zeros(n),
        "left": left,
        "right": right,
        "missing_left": np.zeros(n, bool),
        "category": np.full(n, -1),
        "value": np.ones((n, 3)),
        "roots": np.array([0]),
        "tree_target": np.array([0]),
        "left_sets": np.zeros((0, 1), np.uint32),
        "known_sets": np.zeros((0, 1), np.uint32),
        "base": np.zeros(3),
    }


def _set(name: str, index: Any, value: Any) -> Callable[[dict[str, NDArray[Any]]], None]:
    def change(arrays: dict[str, NDArray[Any]]) -> None:
        arrays[name][index] = value

    return change


HOSTILE = [
    pytest.param(lambda: edited(_set("left", 0, 0)), "reached twice", id="self_cycle_at_root"),
    pytest.param(lambda: edited(_set("left", 1, 0)), "reached twice", id="cycle_to_root"),
    pytest.param(lambda: edited(_set("right", 1, 3)), "reached twice", id="shared_child"),
    pytest.param(lambda: edited(_set("left", 2, 10**6)), "points outside", id="child_out_of_range"),
    pytest.param(lambda: edited(_set("right", 2, -3)), "points outside", id="negative_child"),
    pytest.param(lambda: edited(_set("roots", 1, 10**9)), "points outside", id="root_out_of_range"),
    pytest.param(lambda: edited(_set("roots", 1, 0)), "reached twice", id="two_roots_one_tree"),
    pytest.param(lambda: edited(_set("feature", 0, 4)), "feature outside", id="feature_too_high"),
    pytest.param(lambda: edited(_set("feature", 0, -1)), "feature outside", id="negative_feature"),
    pytest.param(lambda: edited(_set("threshold", 0, np.nan)), "threshold is NaN", id="nan_cut"),
    pytest.param(lambda: edited(_set("value", -1, np.inf)), "NaN or infinite", id="inf_leaf"),
    pytest.param(lambda: edited(_set("base", 0, np.nan)), "finite numbers", id="nan_base"),
    pytest.param(lambda: edited(_set("tree_target", 0, 2)), "outside the 3 outputs",
                 id="target_shifted"),
    pytest.param(lambda: edited(_set("category", 0, 5)), "outside the 0 bitsets",
                 id="bitset_index"),
    pytest.param(lambda: edited(_set("category", 0, -7)), "below -1", id="category_below"),
    pytest.param(lambda: edited(lambda a: a.update(left=a["left"][:-1])), "one entry per node",
                 id="short_left"),
    pytest.param(lambda: edited(lambda a: a.update(value=a["value"][:, :2])),
                 "cover every output", id="value_too_narrow"),
    pytest.param(lambda: edited(lambda a: a.pop("threshold")), "lacks the array 'threshold'",
                 id="missing_array"),
    pytest.param(lambda: edited(lambda a: a.update(feature=a["feature"].astype(float))),
                 "must be 1-dimensional of kind", id="float_features"),
    pytest.param(lambda: edited(lambda a: a.update(roots=np.zeros(0, int))), "one root",
                 id="no_trees"),
    pytest.param(lambda: edited(lambda a: a.update(known_sets=np.zeros((2, 1), np.uint32))),
                 "two equal arrays", id="bitsets_unequal"),
    pytest.param(lambda: chain(MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}", id="depth_bomb"),
]  # fmt: skip


@pytest.mark.parametrize(("arrays", "reason"), HOSTILE)
def test_hostile_arrays_are_refused_with_the_reason(
    arrays: Callable[[], dict[str, NDArray[Any]]], reason: str
) -> None:
    with pytest.raises(PredictorError, match=None) as raised:
        TreeEnsemble(arrays(), n_features=4, scale=1 / 3, classes=CLASSES)
    assert reason in str(raised.value), str(raised.value)


def test_orphan_nodes_are_refused() -> None:
    arrays = edited(lambda a: None)
    n = len(arrays["feature"])
    for name in ("feature", "threshold", "left", "right", "missing_left", "category", "value"):
        arrays[name] = np.concatenate((arrays[name], arrays[name][-1:]))
    arrays["left"][-1] = arrays["right"][-1] = n  # a leaf no root reaches
    with pytest.raises(PredictorError, match="1 node\\(s\\) belong to no tree"):
        TreeEnsemble(arrays, n_features=4, scale=1 / 3, classes=CLASSES)


def test_a_deep_but_legal_chain_loads() -> None:
    model = TreeEnsemble(chain(200), n_features=4, scale=1.0, classes=CLASSES)
    assert model.max_depth == 200
    assert model.predict(np.zeros((2, 4)))["Score"].shape == (2, 3)


def archive(model: TreeEnsemble, *, serial: int = 0) -> bytes:
    from datetime import datetime, timedelta, timezone

    buffer = io.BytesIO()
    created = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=serial)
    write_model(buffer, model, input=IrisData, output=IrisPrediction, created=created)
    return buffer.getvalue()


@pytest.mark.parametrize(("arrays", "reason"), HOSTILE[:8] + HOSTILE[-1:])
def test_a_hostile_tree_archive_never_replaces_the_serving_model(
    arrays: Callable[[], dict[str, NDArray[Any]]], reason: str
) -> None:
    good = archive(forest(n_trees=3, depth=3))
    bad = rewrite(good, files={"weights.npz": dump_arrays(arrays())})
    loader, clock = MemoryLoader(good), Clock()
    source = ModelSource(loader, refresh_after=REFRESH, clock=clock)
    version = source.get().version
    loader.set(bad)
    clock.advance()
    assert source.get().version == version
    info = source.info()
    assert info["state"] == "stale" and reason in info["last_error"], info["last_error"]
