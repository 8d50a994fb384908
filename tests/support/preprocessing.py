"""Shared data for the preprocessing-export tests: scikit-learn's bundled datasets as DataFrames
with missing numbers and synthetic categorical columns, and the raw matrix servefn predicts from."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from servefn.predictors import LoadOptions, predictor_class
from servefn.predictors.base import Predictor

NUMERIC = ["n0", "n1", "n2", "n3", "n4"]
MISSING = ["n0", "n2"]  # numeric columns with ~10% NaN
TEXT = "grade"  # strings, ~10% missing
BUCKET = "bucket"  # small integers, one-hot encoded by value
LOADERS = {"wine": load_wine, "cancer": load_breast_cancer, "diabetes": load_diabetes}


@functools.cache
def frame(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """``(X, y)``: five numeric columns (two with NaN), ``grade`` (text) and ``bucket`` (int)."""
    data = LOADERS[name](as_frame=True)
    source = data.data.iloc[:, :5].to_numpy(dtype=float)
    rng = np.random.default_rng(len(name))
    df = pd.DataFrame(source, columns=NUMERIC)
    grade = np.array(["low", "mid", "high"], dtype=object)[
        np.digitize(source[:, 1], np.quantile(source[:, 1], [0.33, 0.66]))
    ]
    grade[rng.random(len(df)) < 0.1] = None
    df[TEXT] = pd.Series(list(grade))  # pandas' default: a None becomes NaN, as in a CSV
    df[BUCKET] = np.digitize(source[:, 3], np.quantile(source[:, 3], [0.25, 0.5, 0.75]))
    for column in MISSING:
        df.loc[rng.random(len(df)) < 0.1, column] = np.nan
    return df, np.asarray(data.target)


def raw(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The raw feature matrix of the input contract: float64, or object when text is present
    (numbers as floats, NaN when missing; text as str, None when missing)."""
    text = [c for c in columns if df[c].dtype.kind not in "fiub"]
    if not text:
        return df[columns].to_numpy(dtype=np.float64)
    out = np.empty((len(df), len(columns)), dtype=object)
    for j, c in enumerate(columns):
        if c in text:
            out[:, j] = [None if pd.isna(v) else str(v) for v in df[c]]
        else:
            out[:, j] = [float(v) for v in df[c].to_numpy(dtype=np.float64)]
    return out


def reload(predictor: Predictor) -> Predictor:
    """``predictor`` through its payload and the registry (parameters through JSON)."""
    payload = predictor.to_payload()
    params = json.loads(json.dumps(payload.params, allow_nan=False))
    return predictor_class(predictor.kind).load_payload(params, payload.files, LoadOptions())


def expected(pipeline: Any, X: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """scikit-learn's ``(labels, scores)`` (labels None for a regressor)."""
    if not hasattr(pipeline, "classes_"):
        return None, np.asarray(pipeline.predict(X), dtype=np.float64)
    labels = np.asarray(pipeline.predict(X))
    if hasattr(pipeline, "predict_proba"):
        return labels, pipeline.predict_proba(X)
    return labels, np.asarray(pipeline.decision_function(X)).reshape(len(X), -1)


def assert_parity(pipeline: Any, predictor: Predictor, data: Any, X: np.ndarray) -> None:
    """The predictor's outputs from the raw matrix ``X`` equal scikit-learn's from ``data`` (the
    same rows as the pipeline takes them), and so do one row at a time and a reloaded copy's."""
    labels, scores = expected(pipeline, data)
    out = predictor.predict(X)
    if labels is not None:
        np.testing.assert_array_equal(out["PredictedLabel"], labels)
    np.testing.assert_allclose(out["Score"], scores, atol=1e-6, rtol=0)
    for i in range(0, len(X), max(1, len(X) // 7)):
        one = predictor.predict_row(list(X[i]))
        if labels is not None:
            assert one["PredictedLabel"] == [labels[i]]
        np.testing.assert_allclose(np.asarray(one["Score"])[0], scores[i], atol=1e-9, rtol=0)
    again = reload(predictor).predict(X)
    for key, value in out.items():
        np.testing.assert_array_equal(again[key], value)
