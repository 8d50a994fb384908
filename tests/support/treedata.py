"""What the tree converters' parity tests share: output schemas, an input schema built from
column names, missing values injected into a block of columns, and rows as records."""

from __future__ import annotations

from typing import Any

import numpy as np

from servefn import Schema, column

BIG_CELLS = 40_000
"""Rows x trees above the ensemble's all-trees-at-once limit (32,768): the tree-by-tree path."""


class IntLabel(Schema):
    predicted_label: int = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class StrLabel(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Value(Schema):
    score: float = column(name="Score")


def features(names: list[str]) -> type[Schema]:
    """An input schema of optional floats whose wire names are ``names``, in order."""
    columns = {f"f{i}": column(i, name=name, default=None) for i, name in enumerate(names)}
    namespace: dict[str, Any] = {"__annotations__": dict.fromkeys(columns, float | None)}
    return type("Features", (Schema,), {**namespace, **columns})


def with_missing(X: np.ndarray, rate: float, columns: slice, seed: int) -> np.ndarray:
    """``X`` with about ``rate`` of the cells in ``columns`` set to NaN."""
    X = X.copy()
    block = X[:, columns]
    block[np.random.default_rng(seed).random(block.shape) < rate] = np.nan
    X[:, columns] = block
    return X


def records(X: np.ndarray, names: list[str]) -> list[dict[str, float | None]]:
    """Rows as records by wire name, NaN as None (a missing field)."""
    return [
        {name: None if np.isnan(v) else float(v) for name, v in zip(names, row, strict=True)}
        for row in X
    ]
