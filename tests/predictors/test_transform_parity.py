"""Preprocessing pipelines export to a numpy-only predictor that predicts as scikit-learn does,
from the raw feature matrix, missing values and categories included."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    ElasticNet,
    LinearRegression,
    LogisticRegression,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from servefn.errors import FeatureValueError
from servefn.predictors.sklearn_transform import (
    is_preprocessing_pipeline,
    transformed_from_sklearn,
)
from servefn.predictors.transformed import TransformedPredictor
from support.preprocessing import BUCKET, MISSING, NUMERIC, TEXT, assert_parity, frame, raw

FITTED = [*NUMERIC, TEXT, BUCKET]
SCHEMA = [BUCKET, TEXT, *NUMERIC[::-1], "extra"]  # another order, and a column nobody reads
FIELDS = [f"field_{n}" for n in SCHEMA]


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    """One BLAS thread for these tiny fits; scikit-learn's convergence chatter silenced."""
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _split(name: str) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    df, y = frame(name)
    train = np.arange(len(df)) % 4 != 0
    return df[FITTED][train], y[train], df[FITTED]


def _export(pipeline: Any, schema: list[str] = SCHEMA) -> TransformedPredictor:
    return transformed_from_sklearn(pipeline, schema, [f"field_{n}" for n in schema])


def _raw(df: pd.DataFrame, schema: list[str] = SCHEMA) -> np.ndarray:
    return raw(df.assign(extra=0.0), schema)


def _standard(text: Any = None) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            (
                "text",
                text or make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
                [TEXT],
            ),
            ("bucket", OneHotEncoder(), [BUCKET]),
        ]
    )


PREPROCESSORS: dict[str, Callable[[], list[Any]]] = {
    "impute-scale-onehot": lambda: [_standard()],
    "ordinal": lambda: [
        _standard(
            OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-2, encoded_missing_value=-1
            )
        )
    ],
    "nan-category-indicator": lambda: [
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(add_indicator=True), MaxAbsScaler()), NUMERIC),
                ("text", OneHotEncoder(handle_unknown="ignore"), [TEXT]),
                ("bucket", OrdinalEncoder(), [BUCKET]),
            ]
        )
    ],
    "drop-first-if-binary": lambda: [
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), MinMaxScaler(clip=True)), NUMERIC),
                (
                    "text",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="none"),
                        OneHotEncoder(drop="first"),
                    ),
                    [TEXT],
                ),
                ("bucket", OneHotEncoder(drop="if_binary"), [BUCKET]),
            ]
        )
    ],
    "remainder-passthrough": lambda: [
        ColumnTransformer(
            [("text", OneHotEncoder(handle_unknown="ignore"), [TEXT])], remainder="passthrough"
        ),
        SimpleImputer(),
        StandardScaler(),
    ],
    "remainder-pipeline-drop-block": lambda: [
        ColumnTransformer(
            [("text", OneHotEncoder(), [TEXT]), ("gone", "drop", ["n1"])],
            remainder=make_pipeline(SimpleImputer(), StandardScaler()),
        ),
    ],
}
FINALS: dict[str, tuple[str, Callable[[], Any]]] = {
    "logreg-multinomial": ("wine", lambda: LogisticRegression(max_iter=1000)),
    "logreg-binary": ("cancer", lambda: LogisticRegression(max_iter=1000)),
    "linear-svc": ("wine", lambda: LinearSVC()),
    "ridge-classifier": ("cancer", lambda: RidgeClassifier()),
    "sgd-log": ("wine", lambda: SGDClassifier(loss="log_loss", random_state=0)),
    "ridge": ("diabetes", lambda: Ridge()),
    "linear-regression": ("diabetes", lambda: LinearRegression()),
    "elastic-net": ("diabetes", lambda: ElasticNet(alpha=0.01)),
}


@pytest.mark.parametrize("pre", sorted(PREPROCESSORS))
def test_each_preprocessing_shape_matches_sklearn(pre: str) -> None:
    X, y, evaluate = _split("wine")
    pipeline = make_pipeline(*PREPROCESSORS[pre](), LogisticRegression(max_iter=1000)).fit(X, y)
    assert is_preprocessing_pipeline(pipeline)
    assert_parity(pipeline, _export(pipeline), evaluate, _raw(evaluate))


@pytest.mark.parametrize("final", sorted(FINALS))
def test_each_final_estimator_matches_sklearn(final: str) -> None:
    dataset, model = FINALS[final]
    X, y, evaluate = _split(dataset)
    pipeline = make_pipeline(_standard(), StandardScaler(), model()).fit(X, y)
    exported = _export(pipeline)
    assert_parity(pipeline, exported, evaluate, _raw(evaluate))
    assert exported.outputs == exported.final.outputs
    if dataset != "diabetes":
        assert exported.classes.tolist() == pipeline.classes_.tolist()


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
@pytest.mark.parametrize("keep_empty", [False, True])
def test_every_imputer_strategy_matches(strategy: str, keep_empty: bool) -> None:
    X, y, evaluate = _split("cancer")
    columns = [*NUMERIC, "empty"]
    X = X.assign(empty=np.nan)[columns]  # never seen: dropped, or 0 with keep_empty_features
    evaluate = evaluate.assign(empty=np.nan)
    imputer = SimpleImputer(strategy=strategy, keep_empty_features=keep_empty, add_indicator=True)
    pipeline = make_pipeline(
        ColumnTransformer([("num", imputer, columns)]), LogisticRegression(max_iter=2000)
    ).fit(X, y)
    schema = [*columns, TEXT]
    exported = _export(pipeline, schema)
    assert_parity(pipeline, exported, evaluate[columns], raw(evaluate, schema))
    assert list(exported.accepts_missing) == [True] * len(schema)


def test_numpy_fitted_pipelines_match_by_position() -> None:
    df, y, evaluate = _split("wine")
    numbers = df[NUMERIC].to_numpy()
    pipeline = make_pipeline(
        ColumnTransformer(
            [("a", make_pipeline(SimpleImputer(), StandardScaler()), [0, 1, 2])],
            remainder=make_pipeline(SimpleImputer(strategy="median"), MaxAbsScaler()),
        ),
        LinearSVC(),
    ).fit(numbers, y)
    exported = _export(pipeline, NUMERIC)
    X = evaluate[NUMERIC].to_numpy()
    assert exported.transform(X).dtype == np.float64
    assert_parity(pipeline, exported, X, X)
    bare = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(numbers, y)
    assert_parity(bare, _export(bare, NUMERIC), X, X)


def test_numpy_object_matrix_with_text_by_position_and_numeric_categories() -> None:
    df, y, evaluate = _split("cancer")
    as_object = lambda d: raw(d, FITTED)  # noqa: E731
    mask = np.array([True] * 5 + [False, False])
    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), mask),
                ("text", OneHotEncoder(handle_unknown="ignore"), slice(5, 6)),
                ("bucket", OneHotEncoder(), [6]),
            ]
        ),
        LogisticRegression(max_iter=1000),
    ).fit(as_object(df), y)
    exported = _export(pipeline, FITTED)
    assert_parity(pipeline, exported, as_object(evaluate), as_object(evaluate))


def test_handle_unknown_ignore_gives_zeros_and_error_names_the_feature() -> None:
    X, y, evaluate = _split("wine")
    evaluate = evaluate.copy()
    evaluate.loc[evaluate.index[:3], TEXT] = "unseen-value"
    ignore = make_pipeline(_standard(OneHotEncoder(handle_unknown="ignore")), LogisticRegression())
    ignore.fit(X, y)
    assert_parity(ignore, _export(ignore), evaluate, _raw(evaluate))

    strict = make_pipeline(
        _standard(make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder())),
        LogisticRegression(),
    ).fit(X, y)
    exported = _export(strict)
    with pytest.raises(FeatureValueError) as caught:
        exported.predict(_raw(evaluate))
    error = caught.value
    assert error.feature == SCHEMA.index(TEXT)
    assert error.rows == [0, 1, 2]
    assert error.reason == "unknown_category"
    assert error.allowed == ["high", "low", "mid"]
    assert "grade" in str(error) and "'mid'" in str(error) and "unseen" not in str(error)
    with pytest.raises(FeatureValueError):
        exported.predict_row(list(_raw(evaluate)[0]))


def test_missing_without_a_missing_category_is_refused_and_flagged() -> None:
    X, y, evaluate = _split("wine")
    known = X[TEXT].notna().to_numpy()
    X, y = X[known], y[known]
    pipeline = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), ["n1"]), ("text", OneHotEncoder(), [TEXT])],
            remainder="drop",
        ),
        LogisticRegression(),
    ).fit(X, y)
    exported = _export(pipeline)
    flags = dict(zip(SCHEMA, exported.accepts_missing, strict=True))
    # scaler-only path: NaN would reach the model; no missing category: refused; unread: fine
    assert flags == {**dict.fromkeys(SCHEMA, True), "n1": False, TEXT: False}
    evaluate = evaluate.assign(n1=evaluate["n1"].fillna(0.0))
    rows = _raw(evaluate)
    missing_row = int(np.flatnonzero(evaluate[TEXT].isna().to_numpy())[0])
    with pytest.raises(FeatureValueError) as caught:
        exported.predict(rows)
    assert caught.value.reason == "missing"
    assert caught.value.rows[0] == missing_row


def test_accepts_missing_follows_each_columns_path() -> None:
    X, y, _ = _split("wine")
    exported = _export(make_pipeline(_standard(), LogisticRegression()).fit(X, y))
    refused = lambda p: [n for n, ok in zip(SCHEMA, p.accepts_missing, strict=True) if not ok]  # noqa: E731
    assert refused(exported) == [BUCKET]  # OneHotEncoder(handle_unknown="error"), no NaN seen
    nan_code = make_pipeline(_standard(make_pipeline(OrdinalEncoder(), SimpleImputer())), Ridge())
    assert refused(_export(nan_code.fit(X, y))) == [BUCKET]  # NaN coded NaN, then imputed
    known = X[TEXT].notna().to_numpy()
    no_nan = make_pipeline(_standard(OrdinalEncoder()), LogisticRegression())
    assert refused(_export(no_nan.fit(X[known], y[known]))) == [BUCKET, TEXT]


def test_a_ten_thousand_row_matrix_and_the_schema_order() -> None:
    X, y, evaluate = _split("wine")
    pipeline = make_pipeline(_standard(), LogisticRegression(max_iter=1000)).fit(X, y)
    exported = _export(pipeline)
    assert exported.feature_names == SCHEMA and exported.n_features == len(SCHEMA)
    big = pd.concat([evaluate] * (10_000 // len(evaluate) + 1)).iloc[:10_000]
    assert_parity(pipeline, exported, big, _raw(big))
    assert set(MISSING) <= set(NUMERIC)
