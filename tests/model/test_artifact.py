"""model.zip: round trip, determinism, and refusal of unsafe or damaged archives."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import servefn
from servefn import ArtifactError, Schema, column
from servefn.model._archive import MANIFEST_NAME, load_model, read_manifest, write_model
from servefn.predictors.linear import LinearClassifier
from servefn.schema import layout_of


class In(Schema):
    a: float = column(0, name="A")
    b: float = column(1, name="B")


class Out(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def _predictor() -> LinearClassifier:
    rng = np.random.default_rng(0)
    return LinearClassifier(rng.normal(size=(2, 3)), rng.normal(size=3), ["x", "y", "z"])


def _archive(tmp_path: Path) -> Path:
    path = tmp_path / "model.zip"
    write_model(path, _predictor(), input=In, output=Out, training={"rows": 3})
    return path


def _rewrite(src: Path, dst: Path, members: dict[str, bytes]) -> Path:
    """Copy an archive, replacing or adding members (an attacker's or a damaged upload)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename not in members:
                zout.writestr(info.filename, zin.read(info.filename))
        for name, data in members.items():
            zout.writestr(name, data)
    return dst


def test_round_trip_gives_identical_predictions_and_schemas(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    model = load_model(path)
    X = np.random.default_rng(1).normal(size=(50, 2))
    expected, got = _predictor().predict(X), model.predictor.predict(X)
    np.testing.assert_array_equal(got["Score"], expected["Score"])
    np.testing.assert_array_equal(got["PredictedLabel"], expected["PredictedLabel"])
    assert (
        layout_of(model.input_schema).spec() == layout_of(In).spec()
        and layout_of(model.output_schema).spec() == layout_of(Out).spec()
    )
    assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.version == model.sha256[:12] and model.size == path.stat().st_size
    assert model.manifest["training"] == {"rows": 3}
    assert model.manifest["kind"] == "linear-classifier"
    assert model.manifest["servefn_version"] == servefn.__version__
    one = model.predict([{"A": 1.0, "B": -2.0}])[0]
    assert one.predicted_label in {"x", "y", "z"}  # type: ignore[attr-defined]


def test_archives_are_reproducible_byte_for_byte(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first, second = io.BytesIO(), io.BytesIO()
    write_model(first, _predictor(), input=In, output=Out, created=when)
    write_model(second, _predictor(), input=In, output=Out, created=when)
    assert first.getvalue() == second.getvalue()


def test_tampered_payload_is_refused(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    with zipfile.ZipFile(path) as z:
        weights = bytearray(z.read("weights.npz"))
    weights[-9] ^= 0xFF
    bad = _rewrite(path, tmp_path / "bad.zip", {"weights.npz": bytes(weights)})
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        load_model(bad)


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil", "sub/dir.txt", "..\\x", "C:evil"])
def test_unsafe_member_names_are_refused(tmp_path: Path, name: str) -> None:
    bad = _rewrite(_archive(tmp_path), tmp_path / "bad.zip", {name: b"x"})
    with pytest.raises(ArtifactError, match="unsafe member name"):
        load_model(bad)


def test_oversized_members_are_refused_before_reading(tmp_path: Path) -> None:
    bomb = _rewrite(_archive(tmp_path), tmp_path / "bomb.zip", {"pad.bin": b"\0" * 3_000_000})
    assert bomb.stat().st_size < 100_000  # compresses ~1000x: a small zip bomb
    with pytest.raises(ArtifactError, match="over the limit of 1000000"):
        load_model(bomb, max_unpacked=1_000_000)
    with pytest.raises(ArtifactError, match="do not match its manifest"):
        load_model(bomb)  # under the default cap, an undeclared member is still refused


def test_lying_size_header_cannot_unpack_more_than_declared(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    manifest = json.loads(zipfile.ZipFile(path).read(MANIFEST_NAME))
    real = manifest["files"]["weights.npz"]["size"]
    manifest["files"]["weights.npz"]["size"] = real - 10
    bad = _rewrite(path, tmp_path / "bad.zip", {MANIFEST_NAME: json.dumps(manifest).encode()})
    with pytest.raises(ArtifactError, match="larger than"):
        load_model(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip", "not a zip file"),
        (b"PK\x03\x04" + b"\0" * 40, "not a zip file"),
    ],
)
def test_garbage_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        load_model(data)


def test_manifest_problems_are_named(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    for content, message in [
        (b"{", "not valid JSON"),
        (json.dumps({"format": "other/9"}).encode(), "format 'other/9'"),
    ]:
        bad = _rewrite(path, tmp_path / "bad.zip", {MANIFEST_NAME: content})
        with pytest.raises(ArtifactError, match=message):
            read_manifest(bad)
    truncated = path.read_bytes()[:-40]
    with pytest.raises(ArtifactError):
        load_model(truncated)


def test_pickled_payloads_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.array([{"evil": 1}], dtype=object), bias=np.zeros(3))
    payload = buffer.getvalue()
    path = _archive(tmp_path)
    manifest = json.loads(zipfile.ZipFile(path).read(MANIFEST_NAME))
    manifest["files"]["weights.npz"] = {
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload),
    }
    bad = _rewrite(
        path,
        tmp_path / "bad.zip",
        {MANIFEST_NAME: json.dumps(manifest).encode(), "weights.npz": payload},
    )
    with pytest.raises(ArtifactError, match="needs pickle"):
        load_model(bad)


def test_schemas_that_do_not_fit_the_model_cannot_be_saved(tmp_path: Path) -> None:
    class Three(Schema):
        a: float = column(0)
        b: float = column(1)
        c: float = column(2)

    class WantsMore(Schema):
        predicted_label: str = column(name="PredictedLabel")
        probability: float = column(name="Probability")

    with pytest.raises(ArtifactError, match="3 features but the model expects 2"):
        write_model(tmp_path / "m.zip", _predictor(), input=Three, output=Out)
    with pytest.raises(ArtifactError, match=r"\['Probability'\]"):
        write_model(tmp_path / "m.zip", _predictor(), input=In, output=WantsMore)


@pytest.mark.integration
def test_loading_and_predicting_a_linear_model_never_imports_sklearn_or_scipy(
    tmp_path: Path,
) -> None:
    path = _archive(tmp_path)
    code = textwrap.dedent(
        f"""
        import sys
        import servefn
        model = servefn.load_model({str(path)!r})
        print(model.predict([{{"A": 0.5, "B": 1.5}}])[0].predicted_label)
        heavy = sorted(m for m in ("sklearn", "scipy", "skops", "numba") if m in sys.modules)
        print("heavy:", heavy)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] in {"x", "y", "z"}
    assert out[1] == "heavy: []"
