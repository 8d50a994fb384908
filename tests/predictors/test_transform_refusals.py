"""What cannot be exported or loaded is refused, in one line that names what and where."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    PolynomialFeatures,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier

from servefn.errors import PredictorError
from servefn.predictors import LoadOptions, predictor_class
from servefn.predictors._encoders import MAX_CATEGORIES
from servefn.predictors.base import Payload
from servefn.predictors.sklearn_transform import (
    is_preprocessing_pipeline,
    transformed_from_sklearn,
)
from support.preprocessing import NUMERIC, TEXT, frame

COLUMNS = [*NUMERIC, TEXT]


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _fit(*steps: Any) -> Any:
    df, y = frame("wine")
    return make_pipeline(*steps).fit(df[COLUMNS], y)


def _num(*steps: Any) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), *steps), NUMERIC),
            (
                "text",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                [TEXT],
            ),
        ]
    )


def _export(pipeline: Any, names: list[str] = COLUMNS) -> Any:
    return transformed_from_sklearn(pipeline, names, names)


@pytest.mark.parametrize(
    ("step", "path"),
    [
        (KBinsDiscretizer(n_bins=3), "step 'kbinsdiscretizer' (KBinsDiscretizer)"),
        (PolynomialFeatures(), "step 'polynomialfeatures' (PolynomialFeatures)"),
        (FunctionTransformer(np.log1p), "step 'functiontransformer' (FunctionTransformer)"),
    ],
)
def test_unsupported_steps_are_named_with_their_path(step: Any, path: str) -> None:
    pipeline = _fit(_num(step), LogisticRegression())
    with pytest.raises(PredictorError) as caught:
        _export(pipeline)
    message = str(caught.value)
    assert f"step 'columntransformer' → transformer 'num' → {path}" in message
    assert "cannot be exported to numpy; supported: ColumnTransformer" in message


def test_unsupported_finals_and_top_level_steps_are_named() -> None:
    neighbours = _fit(_num(), KNeighborsClassifier(n_neighbors=3))
    with pytest.raises(PredictorError, match=r"step 'kneighborsclassifier'.*KNeighbors"):
        _export(neighbours)
    scaled_tree = _fit(_num(), StandardScaler(), DecisionTreeClassifier(max_depth=2))
    with pytest.raises(PredictorError, match=r"step 'standardscaler' scales the columns of"):
        _export(scaled_tree)
    poly = _fit(_num(), PolynomialFeatures(), LogisticRegression())
    with pytest.raises(PredictorError, match=r"^step 'polynomialfeatures' \(PolynomialFeatures\)"):
        _export(poly)
    df, y = frame("diabetes")
    target = make_pipeline(
        _num(), TransformedTargetRegressor(LinearRegression(), func=np.log1p, inverse_func=np.expm1)
    ).fit(df[COLUMNS], y)
    with pytest.raises(PredictorError, match="TransformedTargetRegressor"):
        _export(target)
    assert is_preprocessing_pipeline(target)
    assert not is_preprocessing_pipeline(make_pipeline(StandardScaler(), LinearRegression()))
    assert not is_preprocessing_pipeline(LinearRegression())


def test_columns_are_matched_by_name_or_refused_and_by_count() -> None:
    pipeline = _fit(_num(), LogisticRegression())
    with pytest.raises(PredictorError, match=r"columns the schema lacks: 'n3', 'grade'"):
        _export(pipeline, [n for n in COLUMNS if n not in ("n3", TEXT)] + ["other"])
    renamed = [f"Wire{i}" for i in range(len(COLUMNS))]
    exported = transformed_from_sklearn(pipeline, renamed, COLUMNS)  # by field name
    assert exported.feature_names == renamed
    df, y = frame("wine")
    numbers = make_pipeline(SimpleImputer(), LogisticRegression()).fit(df[NUMERIC].to_numpy(), y)
    with pytest.raises(PredictorError, match="fitted on 5 columns but the schema has 6"):
        _export(numbers)


def test_encoder_and_imputer_settings_that_cannot_be_replayed() -> None:
    df, y = frame("wine")
    grouped = ColumnTransformer([("text", OneHotEncoder(min_frequency=0.3), [TEXT])])
    pipeline = make_pipeline(grouped, LogisticRegression()).fit(df[[TEXT]].fillna("x"), y)
    with pytest.raises(PredictorError, match=r"grouped infrequent categories \(grade: \["):
        _export(pipeline, [TEXT])
    marker = make_pipeline(SimpleImputer(missing_values=-1.0), LogisticRegression())
    with pytest.raises(PredictorError, match=r"missing_values=-1.0 is not supported"):
        _export(marker.fit(df[NUMERIC].fillna(0), y), NUMERIC)


def _payload() -> Payload:
    return _export(_fit(_num(StandardScaler()), LogisticRegression())).to_payload()


def _load(params: dict[str, Any], files: dict[str, bytes]) -> Any:
    return predictor_class("transformed").load_payload(params, files, LoadOptions())


def _tampered(change: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    payload = _payload()
    params = copy.deepcopy(payload.params)
    change(params["transform"]["steps"][0]["blocks"])
    return params, payload.files


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b[0]["ops"][0].update(op="pickle"), "is 'pickle', not one of"),
        (lambda b: b[0]["columns"].__setitem__(0, 99), "reads a column outside 0..5"),
        (lambda b: b[0]["columns"].__setitem__(0, -1), "columns must be a list of non-negative"),
        (lambda b: b[1]["ops"][1]["categories"][0].extend(["a"] * 2), "repeat a value"),
        (
            lambda b: b[1]["ops"][1]["categories"].__setitem__(0, list(range(MAX_CATEGORIES + 1))),
            "at most 65536",
        ),
        (lambda b: b[1]["ops"][1]["categories"][0].append([1]), "strings, finite numbers or null"),
        (lambda b: b[1]["ops"][0].update(fills=["x", "y"]), "needs fills as a list of 1"),
        (lambda b: b[1]["columns"].append(0), "needs fills as a list of 2"),
    ],
)
def test_tampered_payloads_are_refused_in_one_line(change: Any, message: str) -> None:
    params, files = _tampered(change)
    with pytest.raises(PredictorError, match="the transform payload is invalid") as caught:
        _load(params, files)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_too_many_categories_in_total_and_missing_files_are_refused() -> None:
    payload = _payload()
    params = copy.deepcopy(payload.params)
    width = 16  # 16 x 65,536 > 1,000,000
    params["transform"]["steps"][0]["blocks"].append(
        {
            "columns": [0] * width,
            "ops": [
                {
                    "op": "onehot",
                    "categories": [list(range(MAX_CATEGORIES))] * width,
                    "drop": [None] * width,
                    "ignore": True,
                }
            ],
        }
    )
    with pytest.raises(PredictorError, match="over 1000000 categories"):
        _load(params, payload.files)
    files = {k: v for k, v in payload.files.items() if k != "transform.npz"}
    with pytest.raises(PredictorError, match=r"needs transform\.npz"):
        _load(payload.params, files)
    with pytest.raises(PredictorError, match="lacks arrays"):
        _load(payload.params, {**payload.files, "transform.npz": _empty_npz()})
    wrong = {**payload.params, "final": {"kind": "transformed", "params": {}}}
    with pytest.raises(PredictorError, match="cannot wrap another"):
        _load(wrong, payload.files)


def _empty_npz() -> bytes:
    from servefn.predictors._npz import dump_arrays

    return dump_arrays({})
