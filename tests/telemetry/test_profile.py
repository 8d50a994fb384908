"""The training profile: computed by save, small and capped, read defensively, shown by
``servefn inspect``, and a batch's drift against it by ``servefn predict --report``."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import servefn
from servefn.cli import main
from servefn.telemetry.drift import DriftCounts, population_stability
from servefn.telemetry.profile import (
    BINS,
    MAX_CATEGORIES,
    MAX_FEATURES,
    CategoricalFeature,
    NumericFeature,
    build_profile,
    read_profile,
)
from support.telemetry import gauge_model, shifted_rows, train_rows


@pytest.fixture(scope="module")
def gauge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gauge_model(tmp_path_factory.mktemp("gauge") / "model.zip")


def test_save_records_the_training_profile_in_the_manifest(gauge: Path) -> None:
    manifest = servefn.read_manifest(gauge)
    profile, why = read_profile(manifest["profile"])
    assert why is None and profile is not None
    assert profile.rows == 2000
    assert [f.name for f in profile.features] == ["Pressure", "Flow"]
    pressure = profile.features[0]
    assert isinstance(pressure, NumericFeature)
    assert len(pressure.fractions) == BINS and math.isclose(sum(pressure.fractions), 1.0)
    assert all(0.09 < f < 0.11 for f in pressure.fractions)  # deciles of continuous data
    assert pressure.minimum == train_rows(2000)[:, 0].min() and pressure.missing == 0.0
    assert len(json.dumps(manifest["profile"])) < 2_000


def test_profile_rows_false_records_none(tmp_path: Path) -> None:
    from sklearn.linear_model import Ridge

    from support.telemetry import Gauge, Level

    X = train_rows(100)
    y = X.sum(axis=1)
    servefn.save(Ridge().fit(X, y), tmp_path / "m.zip", input=Gauge, output=Level,
                 evaluate_on=(X, y), profile_rows=False)  # fmt: skip
    assert "profile" not in servefn.read_manifest(tmp_path / "m.zip")


def test_edges_sit_between_training_values_so_rounding_keeps_a_value_in_its_bin() -> None:
    values = np.repeat(np.arange(1.0, 11.0) / 10, 20).astype(np.float32)  # 0.1 .. 1.0, ties
    profile = build_profile(["x"], [False], values.reshape(-1, 1))
    feature = profile.features[0]
    assert isinstance(feature, NumericFeature)
    assert not set(feature.edges) & {float(v) for v in values}
    counts = DriftCounts(profile, profile.columns(["x"], [False]))
    counts.add((np.arange(1.0, 11.0) / 10).repeat(20).reshape(-1, 1))  # the same in float64
    assert counts.report().features[0].psi < 1e-9
    assert counts.report().features[0].out_of_range == 0.0


def test_categorical_profile_is_capped_and_counts_the_rest_as_other() -> None:
    column = np.array([f"v{i % 80}" for i in range(800)] + [None] * 200, dtype=object)
    profile = build_profile(["colour"], [True], column.reshape(-1, 1))
    feature = profile.features[0]
    assert isinstance(feature, CategoricalFeature)
    assert len(feature.frequencies) == MAX_CATEGORIES
    assert math.isclose(feature.other, 30 / 80, abs_tol=1e-6)
    assert math.isclose(feature.missing, 0.2)


def test_wide_inputs_profile_their_first_features_only() -> None:
    names = [f"x[{i}]" for i in range(MAX_FEATURES + 10)]
    profile = build_profile(names, [False] * len(names), np.ones((5, len(names))))
    assert len(profile.features) == MAX_FEATURES


def test_population_stability_is_zero_for_the_same_shares_and_grows_with_a_shift() -> None:
    assert population_stability([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert (
        population_stability([0.5, 0.5], [0.6, 0.4])
        < 0.1
        < population_stability([0.5, 0.5], [0.9, 0.1])
    )


def _hostile(profile: dict[str, Any], change: str) -> Any:
    spoiled = copy.deepcopy(profile)
    first = spoiled["features"][0]
    if change == "not an object":
        return ["features"]
    if change == "unknown format":
        spoiled["format"] = "servefn.profile/99"
    elif change == "rows":
        spoiled["rows"] = -1
    elif change == "too many features":
        spoiled["features"] = [first] * (MAX_FEATURES + 1)
    elif change == "repeated name":
        spoiled["features"] = [first, first]
    elif change == "name with control characters is fine but too long":
        first["name"] = "\x1b[2J" * 2000
    elif change == "edges not increasing":
        first["edges"] = list(reversed(first["edges"]))
    elif change == "too many edges":
        first["edges"] = list(range(10_000))
    elif change == "fractions mismatch":
        first["fractions"] = first["fractions"][:-1]
    elif change == "shares do not add up":
        first["fractions"] = [1.0] * len(first["fractions"])
    elif change == "a string for a number":
        first["min"] = "0"
    elif change == "a boolean for a number":
        first["max"] = True
    elif change == "min above max":
        first["min"], first["max"] = first["max"], first["min"]
    elif change == "missing out of range":
        first["missing"] = 2.0
    elif change == "unknown type":
        first["type"] = "exotic"
    return spoiled


HOSTILE = [
    "not an object", "unknown format", "rows", "too many features", "repeated name",
    "name with control characters is fine but too long", "edges not increasing",
    "too many edges", "fractions mismatch", "shares do not add up", "a string for a number",
    "a boolean for a number", "min above max", "missing out of range", "unknown type",
]  # fmt: skip


@pytest.mark.parametrize("change", HOSTILE)
def test_a_hostile_profile_is_ignored_with_one_line_that_quotes_nothing(
    gauge: Path, change: str
) -> None:
    raw = _hostile(servefn.read_manifest(gauge)["profile"], change)
    profile, why = read_profile(raw)
    assert profile is None and why is not None
    assert why.startswith("the training profile is ignored: ") and "\n" not in why
    assert "\x1b" not in why and len(why) < 200


def test_a_model_with_a_hostile_profile_still_loads_serves_and_says_why(
    gauge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    with zipfile.ZipFile(gauge) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    manifest = json.loads(files["servefn.json"])
    manifest["profile"]["features"][0]["edges"] = [float("1e308")] * 3
    files["servefn.json"] = json.dumps(manifest).encode()
    spoiled = tmp_path / "spoiled.zip"
    with zipfile.ZipFile(spoiled, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    model = servefn.load_model(spoiled)
    assert model.predict([{"Pressure": 0.1, "Flow": 0.2}])
    assert main(["inspect", str(spoiled)]) == 0
    shown = capsys.readouterr().out
    assert (
        "Training profile\n  the training profile is ignored: feature 1: its edges do not" in shown
    )


def test_inspect_shows_the_profile(gauge: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(gauge)]) == 0
    shown = capsys.readouterr().out
    section = shown[shown.index("Training profile") :]
    assert section.startswith("Training profile (2,000 rows;")
    assert "Pressure" in section and "numeric" in section and "10 bins" in section


def _csv(path: Path, rows: np.ndarray) -> Path:
    path.write_text("".join(f"{a},{b}\n" for a, b in rows))
    return path


def test_predict_report_shows_a_batch_drift(
    gauge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = _csv(tmp_path / "same.csv", train_rows(1000, seed=7))
    assert main(["predict", str(gauge), "-i", str(same), "-o", str(tmp_path / "a.csv"),
                 "--report"]) == 0  # fmt: skip
    report = capsys.readouterr().err
    assert report.startswith("Drift of 1,000 rows against the training profile (2,000 rows)")
    assert "no feature drifted" in report
    moved = _csv(tmp_path / "moved.csv", shifted_rows(1000))
    assert main(["predict", str(gauge), "-i", str(moved), "-o", str(tmp_path / "b.csv"),
                 "--report"]) == 0  # fmt: skip
    report = capsys.readouterr().err
    assert "drifted: Pressure, Flow" in report
    pressure = next(line for line in report.splitlines() if line.strip().startswith("Pressure"))
    assert float(pressure.split()[1]) > 0.2 and pressure.rstrip().endswith("drifted")


def test_predict_report_without_a_profile_says_so(
    trained_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    with zipfile.ZipFile(trained_model) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    manifest = json.loads(files["servefn.json"])
    manifest.pop("profile", None)
    files["servefn.json"] = json.dumps(manifest).encode()
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(bare, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    rows = tmp_path / "rows.csv"
    rows.write_text("5.1,3.5,1.4,0.2,Iris-setosa\n")
    assert main(["predict", str(bare), "-i", str(rows), "-o", str(tmp_path / "o.csv"),
                 "--report"]) == 0  # fmt: skip
    assert "no drift report: the model was saved without a training profile" in (
        capsys.readouterr().err
    )
