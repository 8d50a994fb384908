"""Hostile vocabularies in a model manifest, and the pipelines ``servefn.save`` refuses.

A manifest's ``categories`` list becomes a membership-checked pydantic type: a huge one, one
that is not a list, mixes types or repeats a value is refused by ``load_model`` as a one-line
``ArtifactError`` before any class is built. ``save`` refuses a pipeline step it cannot export
(naming it), a ``Literal`` value the encoder never saw, a text feature for a numbers-only model,
and ``form="numpy"`` for a model without a numpy form. (A tampered transform payload is covered
by tests/predictors/test_transform_refusals.py.)
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

import servefn
from servefn import ArtifactError, PredictorError, Schema, column, load_model, read_manifest
from servefn.model._limits import MAX_CATEGORIES, check_manifest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

MANIFEST = "servefn.json"


class Visit(Schema):
    a: float = column(0)
    b: float = column(1)
    c: str = column(2)


class Numbers(Schema):
    a: float = column(0)
    b: float = column(1)


class Unseen(Schema):
    a: float = column(0)
    b: float = column(1)
    c: Literal["u", "v", "w"] = column(2)


class Known(Schema):
    a: float = column(0)
    b: float = column(1)
    c: Literal["u", "v"] = column(2)


class Answer(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def data() -> tuple[Any, Any]:
    rng = np.random.default_rng(1)
    x = pd.DataFrame(
        {"a": rng.normal(size=60), "b": rng.normal(size=60), "c": rng.choice(["u", "v"], 60)}
    )
    return x, np.where(x.a > 0, "yes", "no")


def encoded(transformer: Any = None) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer(
        [
            ("numbers", transformer or "passthrough", ["a", "b"]),
            ("words", OneHotEncoder(handle_unknown="error"), ["c"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    x, y = data()
    path = tmp_path_factory.mktemp("vocab") / "model.zip"
    servefn.save(encoded().fit(x, y), path, input=Visit, output=Answer)
    manifest = read_manifest(path)
    assert manifest["kind"] == "transformed"
    assert manifest["input"]["columns"][2]["categories"] == ["u", "v"]
    return path.read_bytes()


def members(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return {name: z.read(name) for name in z.namelist()}


def edited(archive: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """``archive`` with its manifest edited and re-hashed, as a forger would write it."""
    files = members(archive)
    manifest = json.loads(files[MANIFEST])
    edit(manifest)
    manifest["files"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in files.items()
        if name != MANIFEST
    }
    files[MANIFEST] = json.dumps(manifest).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in files.items():
            z.writestr(name, payload)
    return out.getvalue()


def with_categories(archive: bytes, categories: Any) -> bytes:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["input"]["columns"][2]["categories"] = categories

    return edited(archive, edit)


def refused(archive: bytes, match: str | None = None) -> str:
    with pytest.raises(ArtifactError, match=match) as caught:
        load_model(archive)
    message = str(caught.value)
    assert message.isprintable() and "\n" not in message, message
    return message


def test_base_archive_loads(base: bytes) -> None:
    model = load_model(base)
    assert model.predict([{"a": 0.5, "b": 0.0, "c": "u"}]).to_dicts()[0]["PredictedLabel"]


def test_huge_vocabulary_is_refused_fast(base: bytes) -> None:
    huge = [f"w{i}" for i in range(70_000)]
    assert len(huge) > MAX_CATEGORIES
    archive = with_categories(base, huge)
    started = time.perf_counter()
    message = refused(archive, "categories")
    assert time.perf_counter() - started < 5
    assert "70000" in message and str(MAX_CATEGORIES) in message
    assert len(message) < 500, message  # the values themselves are not listed


def test_check_manifest_refuses_a_huge_vocabulary_directly(base: bytes) -> None:
    manifest = json.loads(members(base)[MANIFEST])
    manifest["input"]["columns"][2]["categories"] = list(range(MAX_CATEGORIES + 1))
    with pytest.raises(ArtifactError, match="categories"):
        check_manifest(manifest, {"model.npz": 10_000})


def test_vocabulary_at_the_cap_is_not_refused_by_check_manifest(base: bytes) -> None:
    manifest = json.loads(members(base)[MANIFEST])
    manifest["input"]["columns"][2]["categories"] = [f"w{i}" for i in range(MAX_CATEGORIES)]
    check_manifest(manifest, {"model.npz": 10_000})


@pytest.mark.parametrize(
    "categories",
    [
        pytest.param("uv", id="a-string"),
        pytest.param({"u": 1}, id="an-object"),
        pytest.param(7, id="a-number"),
        pytest.param(["u", 1], id="mixed-types"),
        pytest.param(["u", "v", "u"], id="duplicates"),
        pytest.param(["u", None], id="a-null"),
        pytest.param([["u"], ["v"]], id="nested-lists"),
        pytest.param([1.5, 2.5], id="floats-for-a-str-column"),
        pytest.param([1, 2], id="ints-for-a-str-column"),
        pytest.param([True, False], id="bools"),
    ],
)
def test_malformed_vocabulary_is_refused(base: bytes, categories: Any) -> None:
    refused(with_categories(base, categories))


def test_categories_on_a_float_column_are_refused(base: bytes) -> None:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["input"]["columns"][0]["categories"] = [1.0, 2.0]

    refused(edited(base, edit))


def test_refusal_never_lists_a_long_category(base: bytes) -> None:
    long = "x" * 60_000
    message = refused(with_categories(base, [long, long]))
    assert long[:200] not in message


# -- save refusals -------------------------------------------------------------------------------


def save_to(tmp_path: Path, model: Any, schema: type[Schema], **options: Any) -> Path:
    path = tmp_path / "model.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        servefn.save(model, path, input=schema, output=Answer, **options)
    return path


def test_unsupported_step_is_refused_by_name(tmp_path: Path) -> None:
    from sklearn.preprocessing import KBinsDiscretizer

    x, y = data()
    model = encoded(KBinsDiscretizer(n_bins=3, encode="ordinal")).fit(x, y)
    with pytest.raises(PredictorError, match="KBinsDiscretizer") as caught:
        save_to(tmp_path, model, Visit)
    assert "form" in str(caught.value) or "scikit-learn" in str(caught.value)
    assert not (tmp_path / "model.zip").exists()
    kept = save_to(tmp_path, model, Known, form="sklearn")  # the vocabulary in the type
    assert read_manifest(kept)["kind"] == "sklearn"


def test_form_sklearn_keeps_an_encoder_over_a_plain_str_field(tmp_path: Path) -> None:
    x, y = data()
    kept = save_to(tmp_path, encoded().fit(x, y), Visit, form="sklearn")
    manifest = read_manifest(kept)
    assert manifest["kind"] == "sklearn"
    spec = {c["field"]: c for c in manifest["input"]["columns"]}
    assert spec["c"]["categories"] == ["u", "v"]  # the encoder's vocabulary, as in numpy form
    assert "categories" not in spec["a"]


def test_form_sklearn_vocabulary_behind_an_imputer_in_a_nested_pipeline(tmp_path: Path) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    x, y = data()
    words = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OrdinalEncoder(handle_unknown="error")
    )
    model = encoded().set_params(columntransformer__words=words).fit(x, y)
    kept = save_to(tmp_path, model, Visit, form="sklearn")
    spec = {c["field"]: c for c in read_manifest(kept)["input"]["columns"]}
    assert spec["c"]["categories"] == ["u", "v"]


def test_form_sklearn_leaves_a_column_open_when_its_encoder_ignores_unknowns(
    tmp_path: Path,
) -> None:
    from sklearn.preprocessing import OneHotEncoder

    x, y = data()
    model = (
        encoded()
        .set_params(columntransformer__words=OneHotEncoder(handle_unknown="ignore"))
        .fit(x, y)
    )
    kept = save_to(tmp_path, model, Visit, form="sklearn")
    spec = {c["field"]: c for c in read_manifest(kept)["input"]["columns"]}
    assert "categories" not in spec["c"]


def test_literal_value_unknown_to_the_encoder_is_refused(tmp_path: Path) -> None:
    x, y = data()
    with pytest.raises(PredictorError) as caught:
        save_to(tmp_path, encoded().fit(x, y), Unseen)
    message = str(caught.value)
    assert "'w'" in message and "'u', 'v'" in message, message
    assert not (tmp_path / "model.zip").exists()


def test_text_feature_for_a_numbers_only_model_is_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = data()
    model = LogisticRegression().fit(x[["a", "b"]].to_numpy(), y)
    with pytest.raises(PredictorError, match="text") as caught:
        save_to(tmp_path, model, Visit)
    assert "'c'" in str(caught.value)


def test_form_numpy_refuses_a_model_without_a_numpy_form(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    x, y = data()
    model = KNeighborsClassifier(n_neighbors=3).fit(x[["a", "b"]].to_numpy(), y)
    with pytest.raises(PredictorError, match="KNeighborsClassifier"):
        save_to(tmp_path, model, Numbers, form="numpy")
    assert not (tmp_path / "model.zip").exists()
