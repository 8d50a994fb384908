"""The scikit-learn baseline model: ``make_pipeline(MaxAbsScaler(), LogisticRegression())`` on iris.

The same data and scaling as the example's SDCA pipeline; LogisticRegression is the same kind of
model (multinomial logistic) from scikit-learn itself. Used in process by the benchmarks and by
the FastAPI app, which is why it needs nothing but numpy and scikit-learn.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler

DATA = Path(__file__).resolve().parents[2] / "examples" / "iris" / "data" / "iris.txt"


def load_iris() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Features (150 x 4, float64) and species labels from the example's iris.txt."""
    with DATA.open(newline="") as file:
        rows = [r for r in csv.reader(file) if r]
    return np.array([[float(v) for v in r[:4]] for r in rows]), np.array([r[4] for r in rows])


def fit_pipeline() -> Pipeline:
    """The fitted baseline pipeline."""
    X, y = load_iris()
    return make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
