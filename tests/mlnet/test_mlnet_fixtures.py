"""Real ML.NET model.zip files load as they are, predict their test data as ML.NET does, and
every parameter decoded from them is consistent with the rest of the archive.

Accuracy and R² are held to what the samples' models can reach: iris classifies its test rows
(and the sample's three flowers) correctly; bike-sharing and taxi reach nearly the R² a
least-squares fit of the same features reaches on the same rows (a wrong decode falls far
below, a permuted one below zero), and FastTree far above the linear model. The decoded
vocabularies and normalizers are checked against the text files ML.NET writes beside them, and
FastTree's scores against an independent walk of its trees with ML.NET's own rule.
"""

from __future__ import annotations

import io
import re
import zipfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from servefn import load_model
from servefn.cli import main
from servefn.mlnet import read_mlnet
from servefn.mlnet._context import open_root
from servefn.mlnet._fasttree import FastTree, TreeModel
from servefn.mlnet._repository import Repository
from servefn.mlnet._transforms import decode_chain
from servefn.model import LoadedModel
from support.mlnet import (
    BIKE_FEATURES,
    FASTTREE,
    IRIS,
    SAMPLE_FLOWERS,
    SDCA,
    TAXI,
    bike_rows,
    fixture,
    iris_rows,
    least_squares_r2,
    r2,
    taxi_design,
    taxi_rows,
)

ALL = (IRIS, SDCA, FASTTREE, TAXI)


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    return {name: load_model(fixture(name)) for name in ALL}


def _scores(model: LoadedModel, records: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray(model.predict(records).arrays["Score"], dtype=np.float64)


def test_iris_classifies_its_test_rows_and_the_sample_flowers(
    models: dict[str, LoadedModel],
) -> None:
    model = models[IRIS]
    records, truth = iris_rows()
    predicted = np.asarray(model.predict(records).arrays["PredictedLabel"])
    assert (predicted == truth).mean() == 1.0  # ML.NET's sample reports 30 of 30
    for flower, species in SAMPLE_FLOWERS:
        answer = model.predict(
            [
                dict(
                    zip(
                        ("SepalLength", "SepalWidth", "PetalLength", "PetalWidth"),
                        flower,
                        strict=True,
                    )
                )
            ]
        )
        assert answer.arrays["PredictedLabel"][0] == species
    assert model.manifest["kind"] == "linear-classifier"
    assert model.predictor.classes.tolist() == [0.0, 1.0, 2.0]  # the label's terms, key order


def test_regressions_reach_what_least_squares_reaches(models: dict[str, LoadedModel]) -> None:
    records, truth = bike_rows()
    features = np.array([[r[k] for k in BIKE_FEATURES] for r in records])
    reference = least_squares_r2(features, truth)  # about 0.38 on these 3,430 rows
    sdca, fasttree = (r2(truth, _scores(models[n], records)) for n in (SDCA, FASTTREE))
    assert reference - 0.15 < sdca <= reference  # about 0.28: SDCA on raw features
    assert fasttree > reference + 0.4 and fasttree > sdca + 0.5  # about 0.91
    taxi, fares = taxi_rows()
    taxi_reference = least_squares_r2(taxi_design(taxi), fares)  # about 0.93
    assert taxi_reference - 0.05 < r2(fares, _scores(models[TAXI], taxi)) <= taxi_reference


def test_a_wrong_decode_would_score_far_below(models: dict[str, LoadedModel]) -> None:
    records, truth = bike_rows()
    shuffled = [dict(zip(r, reversed(list(r.values())), strict=True)) for r in records]
    assert r2(truth, _scores(models[SDCA], shuffled)) < 0.0


def test_linear_scores_match_the_decoded_weights_in_float32(models: dict[str, LoadedModel]) -> None:
    records, _ = bike_rows()
    weights = models[SDCA].predictor.weights[:, 0].astype(np.float32)
    x = np.array([[r[k] for k in BIKE_FEATURES] for r in records], dtype=np.float32)
    expected = x @ weights + np.float32(models[SDCA].predictor.bias[0])
    np.testing.assert_allclose(_scores(models[SDCA], records), expected, rtol=1e-4, atol=1e-3)


def _fasttree_leaf(tree: FastTree, x: np.ndarray) -> float:
    """ML.NET's GetLeafCore on dense float32 features: ``x <= threshold`` goes to lte."""
    node = 0
    while node >= 0:
        value = x[tree.feature[node]]
        if np.isnan(value) and tree.default is not None:
            value = tree.default[node]
        node = int(tree.lte[node] if value <= tree.threshold[node] else tree.gt[node])
    return float(tree.leaf[~node])


def test_fasttree_scores_match_an_independent_walk_of_its_trees(
    models: dict[str, LoadedModel],
) -> None:
    model = _decoded(FASTTREE)
    assert isinstance(model, TreeModel) and len(model.trees) == 100 and model.n_features == 11
    assert all(t.n_leaves == 20 for t in model.trees)
    records, _ = bike_rows()
    x = np.array([[r[k] for k in BIKE_FEATURES] for r in records[:300]], dtype=np.float32)
    x[::7, 3] = np.nan  # missing hours go to the gt side, as in ML.NET
    walked = np.array([sum(_fasttree_leaf(t, row) for t in model.trees) for row in x])
    served = models[FASTTREE].predictor.predict(x.astype(np.float64))["Score"]
    np.testing.assert_allclose(served, walked, rtol=1e-12)


def _decoded(name: str) -> Any:
    repository = Repository(fixture(name).read_bytes(), max_unpacked=1 << 30)
    steps = decode_chain(open_root(repository, "TransformerChain"))
    return next(s for s in steps if s.op == "predict").model.model


def _member(name: str, suffix: str) -> dict[str, str]:
    with zipfile.ZipFile(fixture(name)) as archive:
        return {
            info.filename.replace("\\", "/"): archive.read(info).decode()
            for info in archive.infolist()
            if info.filename.endswith(suffix)
        }


def test_vocabularies_match_the_terms_files_ml_net_writes() -> None:
    steps = {s["component"]: s for s in read_mlnet(fixture(TAXI)).training["mlnet"]}
    for path, text in _member(TAXI, "Terms.txt").items():
        terms = [line.split("\t", 1)[1] for line in text.splitlines()[1:] if "\t" in line]
        component = path.removesuffix("/Vocabulary/Terms.txt").replace("/", "\\")
        decoded = next(v for k, v in steps[component].items() if k.startswith("terms of"))
        assert decoded.startswith(f"{len(terms)} text: ")
        assert decoded.endswith(", ".join(repr(t) for t in terms))
    iris = {s["component"]: s for s in read_mlnet(fixture(IRIS)).training["mlnet"]}
    assert iris["TransformerChain\\Transform_000"]["terms of KeyColumn"] == "3 float32: 0, 1, 2"


def test_normalizers_match_the_text_files_ml_net_writes() -> None:
    repository = Repository(fixture(TAXI).read_bytes(), max_unpacked=1 << 30)
    steps = {
        s.path: s for s in decode_chain(open_root(repository, "TransformerChain")) if s.functions
    }
    files = _member(TAXI, "AffineNormalizer.txt")
    assert len(files) == len(steps) == 3
    for path, text in files.items():
        _, offset, scale = text.splitlines()[1].split("\t")
        (function,) = steps[path.removesuffix("/Normalizer_000/AffineNormalizer.txt")].functions
        assert function.scale.tolist() == pytest.approx([float(scale)], rel=1e-6)
        assert function.offset.tolist() == pytest.approx([float(offset)], abs=1e-12)


def test_decoded_models_are_consistent() -> None:
    iris = _decoded(IRIS)
    assert (iris.loader, iris.weights.shape, iris.softmax) == ("MulticlassLinear", (4, 3), False)
    taxi = _decoded(TAXI)
    assert taxi.loader == "LinearRegressionExec" and taxi.weights.shape == (16, 1)  # 2 + 6 + 5 + 3
    sdca = _decoded(SDCA)
    assert sdca.weights.shape == (11, 1) and np.isfinite(sdca.weights).all()
    model = read_mlnet(fixture(TAXI))
    inputs = {c["name"]: c for c in model.input["columns"]}
    assert inputs["VendorId"]["type"] == "str" and inputs["FareAmount"]["role"] == "label"
    assert [c["name"] for c in model.output["columns"]] == ["Score"]


def test_unknown_categories_encode_as_zeros_like_ml_net(models: dict[str, LoadedModel]) -> None:
    records, _ = taxi_rows()
    base = dict(records[0])
    unseen = _scores(models[TAXI], [{**base, "VendorId": "never-seen"}])[0]
    transform = models[TAXI].predictor.transform  # type: ignore[attr-defined]
    z = transform(np.array([list({**base, "VendorId": "never-seen"}.values())], dtype=object))
    assert z[0, :2].tolist() == [0.0, 0.0] and np.isfinite(unseen)


def _inspect(path: Path) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["inspect", str(path)]) == 0
    return out.getvalue()


def test_inspect_shows_the_decoded_pipeline() -> None:
    text = _inspect(fixture(IRIS))
    assert "ML.NET pipeline" in text and "MulticlassLinear" in text
    assert re.search(r"terms of KeyColumn\s+3 float32: 0, 1, 2", text)
    assert re.search(r"weights\s+4 x 3, 12 non-zero", text)
    tree = _inspect(fixture(FASTTREE))
    assert re.search(r"trees\s+100", tree) and "x <= raw threshold (float32)" in tree
    taxi = _inspect(fixture(TAXI))
    assert re.search(r"scale of TripTime\s+0.00119257", taxi)


@pytest.mark.parametrize("name", ALL)
def test_convert_writes_the_equivalent_servefn_model(
    name: str, tmp_path: Path, models: dict[str, LoadedModel]
) -> None:
    out = tmp_path / "model.zip"
    with redirect_stdout(io.StringIO()):
        assert main(["convert", str(fixture(name)), str(out)]) == 0
    converted = load_model(out)
    assert converted.manifest["kind"] == models[name].manifest["kind"]
    assert converted.manifest["input"] == models[name].manifest["input"]
    records = iris_rows()[0] if name == IRIS else taxi_rows()[0] if name == TAXI else bike_rows()[0]
    np.testing.assert_array_equal(
        _scores(converted, records[:50]), _scores(models[name], records[:50])
    )


def test_convert_refuses_a_file_that_is_not_ml_net(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "not.zip"
    path.write_bytes(b"PK\x05\x06" + bytes(18))
    assert main(["convert", str(path), str(tmp_path / "out.zip")]) == 1
    err = capsys.readouterr().err
    assert "is not an ML.NET model.zip" in err and err.count("\n") == 1
