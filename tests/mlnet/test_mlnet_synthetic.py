"""ML.NET components the sample fixtures do not hold, written in ML.NET's format and served.

Binary linear models (uncalibrated, with the logistic regressions' Platt calibrator, with a
trained Platt or PAV calibrator), MaximumEntropy with sparse weights, Poisson regression,
FastForest's averaging, FastTree's default values for missing and categorical splits, binary
FastTree with its Platt calibrator, vector and chained normalizers, numeric vocabularies, and
refusals by name. Each is checked against the arithmetic ML.NET's source defines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servefn import load_model
from servefn.errors import ArtifactError
from servefn.mlnet import is_mlnet_archive
from support.mlnet_pipelines import (
    concat,
    copy,
    floats,
    linear,
    model_zip,
    multiclass,
    normalize,
    pav,
    platt,
    predict,
    texts,
    to_key,
    to_value,
    to_vector,
    trees,
    unknown,
    wrapped,
)
from support.mlnet_writer import rewrite

X = np.array([[0.5, -1.0, 2.0], [-2.0, 0.25, 0.0], [1.5, 1.5, -0.5], [0.0, 0.0, 0.0]])
NAMES = ("A", "B", "C")


def _records(x: np.ndarray = X) -> list[dict[str, float]]:
    return [dict(zip(NAMES, map(float, row), strict=True)) for row in x]


def _binary(model: object) -> bytes:
    return model_zip(
        [concat("Features", NAMES), predict("binary", "Features", 3, model)], floats(*NAMES)
    )  # type: ignore[arg-type]


W, B = [0.5, -1.0, 0.25], 0.125
Z = X @ np.array(W, np.float32) + B


def test_binary_linear_with_the_logistic_regression_calibrator_serves_probabilities() -> None:
    model = load_model(_binary(linear(W, B, "Linear2CExec", platt(-1.0, 0.0))))
    out = model.predict(_records()).arrays
    np.testing.assert_allclose(np.asarray(out["Score"])[:, 1], 1 / (1 + np.exp(-Z)), rtol=1e-6)
    assert np.asarray(out["PredictedLabel"]).tolist() == (Z > 0).tolist()
    assert model.manifest["training"]["score"] == "probability"


@pytest.mark.parametrize(
    "calibrator",
    [None, platt(-2.0, 0.5), pav([(-1, 0, 0.2), (0.5, 3, 0.9)])],
    ids=["none", "platt", "pav"],
)
def test_other_binary_linear_models_serve_ml_net_margin_and_label(calibrator: object) -> None:
    model = load_model(_binary(linear(W, B, "Linear2CExec", calibrator)))  # type: ignore[arg-type]
    out = model.predict(_records()).arrays
    np.testing.assert_allclose(np.asarray(out["Score"])[:, 0], Z, rtol=1e-6)
    assert np.asarray(out["PredictedLabel"]).tolist() == (Z > 0).tolist()  # Score > 0, not p > 0.5
    assert model.manifest["training"]["score"] == "margin"


def test_a_calibrated_wrapper_and_a_threshold_other_than_zero() -> None:
    wrapper = wrapped(
        "PMIXCALP", "PMixCaliPredExec", linear(W, B, "Linear2CExec"), platt(-1.0, 0.0)
    )
    out = load_model(_binary(wrapper)).predict(_records()).arrays
    np.testing.assert_allclose(np.asarray(out["Score"])[:, 1], 1 / (1 + np.exp(-Z)), rtol=1e-6)
    shifted = model_zip(
        [
            concat("Features", NAMES),
            predict("binary", "Features", 3, linear(W, B, "Linear2CExec"), threshold=0.5),
        ],
        floats(*NAMES),
    )
    with pytest.raises(ArtifactError, match=r"binary threshold \(Score > 0.5\) is not supported"):
        load_model(shifted)


def test_maximum_entropy_with_sparse_weights_is_a_softmax_over_the_labels() -> None:
    weights = np.array([[1.0, 0.0, -0.5], [0.0, 0.0, 2.0], [-1.0, 0.5, 0.0]], np.float32)
    biases = [0.1, -0.2, 0.3]
    data = model_zip(
        [
            to_key("Label", "Species", ["setosa", "versicolor", "virginica"]),
            concat("Features", NAMES),
            predict(
                "multiclass",
                "Features",
                3,
                multiclass(weights, biases, softmax=True, sparse=True),
                label="Label",
            ),
            to_value("PredictedLabel"),
        ],
        [*floats(*NAMES), *texts("Species")],
    )
    model = load_model(data)
    out = model.predict(_records()).arrays
    z = X @ weights.T + np.array(biases, np.float32)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out["Score"], p / p.sum(axis=1, keepdims=True), rtol=1e-5)
    names = np.array(["setosa", "versicolor", "virginica"])
    assert np.asarray(out["PredictedLabel"]).tolist() == names[z.argmax(axis=1)].tolist()
    species = next(c for c in model.manifest["input"]["columns"] if c["name"] == "Species")
    assert species["role"] == "label" and not species["required"]


def test_a_label_map_unlike_the_class_count_is_refused() -> None:
    weights = np.ones((2, 3), np.float32)
    data = model_zip(
        [
            to_key("Label", "Species", ["a", "b", "c"]),
            concat("Features", NAMES),
            predict(
                "multiclass",
                "Features",
                3,
                multiclass(weights, [0, 0], softmax=False, sparse=False),
                label="Label",
            ),
        ],
        [*floats(*NAMES), *texts("Species")],
    )
    with pytest.raises(
        ArtifactError, match=r"the label 'Label' has 3 values but the model .* scores 2"
    ):
        load_model(data)


def test_poisson_regression_scores_the_exponential() -> None:
    data = model_zip(
        [
            concat("Features", NAMES),
            predict("regression", "Features", 3, linear(W, B, "PoissonRegressionExec")),
        ],
        floats(*NAMES),
    )
    model = load_model(data)
    np.testing.assert_allclose(model.predict(_records()).arrays["Score"], np.exp(Z), rtol=1e-6)
    one = model.predict(_records()[:1]).arrays["Score"]
    np.testing.assert_allclose(one, np.exp(Z[:1]), rtol=1e-6)
    assert model.manifest["predictor"]["link"] == "exp"


STUMP = {"lte": [-1], "gt": [-2], "feature": [0], "threshold": [0.5], "leaf": [1.0, 3.0]}
DEEP = {
    "lte": [1, -1],
    "gt": [-3, -2],
    "feature": [1, 2],
    "threshold": [0.0, 1.0],
    "leaf": [10.0, 20.0, 30.0],
}


def _tree_model(loader: str, spec: list[dict[str, object]], calibrator: object = None) -> bytes:
    task = "binary" if "Binary" in loader else "regression"
    component = trees(loader, spec, 3, calibrator)  # type: ignore[arg-type]
    return model_zip(
        [concat("Features", NAMES), predict(task, "Features", 3, component)], floats(*NAMES)
    )


def test_fastforest_regression_averages_its_trees() -> None:
    model = load_model(_tree_model("FastForestRegressionExec", [STUMP, DEEP]))
    got = model.predict(_records()).arrays["Score"]
    stump = np.where(X[:, 0] <= 0.5, 1.0, 3.0)
    deep = np.where(X[:, 1] <= 0, np.where(X[:, 2] <= 1.0, 10.0, 20.0), 30.0)
    np.testing.assert_allclose(got, (stump + deep) / 2)


def test_fasttree_missing_values_follow_its_default_values() -> None:
    with_default = {**STUMP, "default": [0.0]}  # all zero: ML.NET drops them, NaN goes right
    shifted = {**DEEP, "default": [-1.0, 5.0]}  # NaN at node 0 -> -1 (left), at node 1 -> 5 (right)
    x = np.array([[np.nan, np.nan, np.nan]])
    model = load_model(_tree_model("FastTreeRegressionExec", [with_default, shifted]))
    got = model.predictor.predict(x)["Score"]
    assert got.tolist() == [3.0 + 20.0]


def test_fasttree_categorical_splits_go_right_when_any_indicator_is_positive() -> None:
    tree = {
        "lte": [-1],
        "gt": [-2],
        "feature": [0],
        "threshold": [0.5],
        "leaf": [-1.0, 1.0],
        "categorical": {0: [1, 2]},
    }
    model = load_model(_tree_model("FastTreeRegressionExec", [tree, DEEP]))
    x = np.array([[9, 0, 0], [9, 0, 1], [9, 1, 0], [9, np.nan, -1], [9, 0.5, np.nan]], float)
    deep = np.where(
        np.nan_to_num(x[:, 1], nan=1) <= 0,
        np.where(np.nan_to_num(x[:, 2], nan=9) <= 1.0, 10.0, 20.0),
        30.0,
    )
    expected = np.array([-1.0, 1.0, 1.0, -1.0, 1.0]) + deep
    np.testing.assert_allclose(model.predictor.predict(x)["Score"], expected)


def test_binary_fasttree_with_its_platt_calibrator_serves_probabilities() -> None:
    model = load_model(_tree_model("FastTreeBinaryExec", [STUMP, DEEP], platt(-2.0, 0.0)))
    raw = np.where(X[:, 0] <= 0.5, 1.0, 3.0) + np.where(
        X[:, 1] <= 0, np.where(X[:, 2] <= 1.0, 10.0, 20.0), 30.0
    )
    out = model.predict(_records()).arrays
    np.testing.assert_allclose(np.asarray(out["Score"])[:, 1], 1 / (1 + np.exp(-2 * raw)))
    uncalibrated = load_model(_tree_model("FastForestBinaryExec", [{**STUMP, "leaf": [-1.0, 2.0]}]))
    got = uncalibrated.predict(_records()).arrays
    margin = np.where(X[:, 0] <= 0.5, -1.0, 2.0)
    assert np.asarray(got["Score"])[:, 1].tolist() == margin.tolist()
    assert np.asarray(got["PredictedLabel"]).tolist() == (margin > 0).tolist()


def test_vector_and_chained_normalizers_compose_exactly() -> None:
    scales, offsets = [0.5, 2.0, 0.25], [1.0, -1.0, 0.0]
    data = model_zip(
        [
            normalize("A", [4.0], [0.5]),
            concat("Features", NAMES),
            normalize("Features", scales, offsets),
            predict("regression", "Features", 3, linear(W, B)),
        ],
        floats(*NAMES),
    )
    x = X.copy()
    x[:, 0] = (x[:, 0] - 0.5) * 4.0
    z = ((x - offsets) * scales) @ np.array(W) + B
    np.testing.assert_allclose(load_model(data).predict(_records()).arrays["Score"], z, rtol=1e-6)


def test_numeric_vocabularies_one_hot_encode_and_unknown_values_are_zeros() -> None:
    data = model_zip(
        [
            to_key("Code", "A", [0.5, -2.0, 1.5]),
            to_vector("Code"),
            copy("Other", "B"),
            concat("Features", ["Code", "Other"]),
            predict("regression", "Features", 4, linear([1.0, 10.0, 100.0, 1000.0], 0.0)),
        ],
        floats(*NAMES),
    )
    model = load_model(data)
    got = model.predict(_records()).arrays["Score"]
    assert got.tolist() == [1.0 - 1000.0, 10.0 + 250.0, 100.0 + 1500.0, 0.0]  # 0.0 is unknown
    assert [c["role"] for c in model.manifest["input"]["columns"]] == [
        "feature",
        "feature",
        "ignore",
    ]


@pytest.mark.parametrize(
    ("components", "message"),
    [
        (
            [unknown("HashTransform")],
            r"transform 'HashTransform' in TransformerChain\\Transform_000 is not supported",
        ),
        (
            [normalize("A", [1.0], [0.0], loader="CdfNormExec")],
            "normalizer 'CdfNormExec' in .* is not supported",
        ),
    ],
    ids=["transform", "normalizer"],
)
def test_unsupported_components_are_refused_by_name(components: list[object], message: str) -> None:
    data = model_zip(
        [
            *components,
            concat("Features", NAMES),
            predict("regression", "Features", 3, linear(W, B)),
        ],
        floats(*NAMES),
    )  # type: ignore[list-item]
    with pytest.raises(ArtifactError, match=message):
        load_model(data)


def test_an_unused_branch_servefn_cannot_compute_does_not_refuse_the_model() -> None:
    data = model_zip(
        [
            to_key("K", "B", [1.0]),
            to_value("K"),
            concat("Features", NAMES),
            predict("regression", "Features", 3, linear(W, B)),
        ],
        floats(*NAMES),
    )
    np.testing.assert_allclose(
        load_model(data).predict(_records()).arrays["Score"], X @ np.array(W) + B, rtol=1e-6
    )


def test_trees_with_bin_thresholds_alone_are_refused() -> None:
    binned = {**STUMP, "threshold": []}  # only the training bins could place these splits
    with pytest.raises(ArtifactError, match="holds no raw thresholds"):
        load_model(_tree_model("FastTreeRegressionExec", [binned]))


def test_archives_are_recognised_by_their_entries_and_headers_not_their_names(
    tmp_path: Path,
) -> None:
    data = _binary(linear(W, B, "Linear2CExec"))
    assert is_mlnet_archive(data)
    odd = tmp_path / "not-a-model.bin"  # any name: the bytes decide
    odd.write_bytes(data)
    assert load_model(odd).manifest["kind"] == "linear-classifier"
    assert not is_mlnet_archive(b"PK\x05\x06" + bytes(18))
    headless = rewrite(data, "TransformerChain/Model.key", lambda d: b"XX" + d[2:])
    assert not is_mlnet_archive(headless)
    with pytest.raises(ArtifactError, match="model archive"):
        load_model(headless)
