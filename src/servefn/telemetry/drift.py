"""Input drift against the training profile: the population stability index and range checks.

For each profiled feature, rows are counted into the profile's bins (numeric: its quantile
bins; categorical: its listed values and ``other``), with missing values as one more bin, and
compared with the training shares:

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with each share floored at :data:`SHARE_FLOOR` so an empty bin counts without dividing by
zero. Below 0.1 a feature looks as in training, 0.1-0.2 has moved, over 0.2 (the default
threshold) has shifted. The out-of-range rate is the share of present values outside the
training minimum and maximum (numeric), or not among the training values (categorical, when
the profile lists them all). :class:`DriftCounts` add up chunk by chunk, so a batch of any size
is measured in one pass (``servefn predict --report``); the endpoint's rolling window is
:mod:`servefn.telemetry.monitor`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servefn.telemetry.profile import CategoricalFeature, Feature, NumericFeature, Profile

__all__ = [
    "SHARE_FLOOR",
    "BatchDrift",
    "DriftCounts",
    "DriftReport",
    "FeatureDrift",
    "population_stability",
]

SHARE_FLOOR = 1e-4
_RANGE_SLACK = 1e-6


def population_stability(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI of two distributions over the same bins (each adds up to 1)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), SHARE_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class FeatureDrift:
    """One feature over some rows: its PSI, out-of-range rate (None when the profile cannot
    tell) and missing rate."""

    name: str
    psi: float
    out_of_range: float | None
    missing: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": round(self.psi, 4),
            "out_of_range": None if self.out_of_range is None else round(self.out_of_range, 4),
            "missing": round(self.missing, 4),
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of ``rows`` rows, per profiled feature."""

    rows: int
    features: tuple[FeatureDrift, ...]

    def over(self, threshold: float) -> list[FeatureDrift]:
        """The features whose PSI is over ``threshold``."""
        return [f for f in self.features if f.psi > threshold]


class DriftCounts:
    """Rows counted into a profile's bins, feature by feature; :meth:`add` is vectorised."""

    def __init__(self, profile: Profile, columns: list[tuple[int, Feature]]) -> None:
        self.profile = profile
        self.columns = columns
        self.rows = 0
        self._bins = [np.zeros(_bin_count(f) + 1, dtype=np.int64) for _, f in columns]
        self._outside = [0] * len(columns)

    def add(self, matrix: Any) -> None:
        """Count a chunk of rows (a 2-D array: numbers, or objects with text and None)."""
        if len(matrix) == 0:
            return
        self.rows += len(matrix)
        for k, (j, feature) in enumerate(self.columns):
            column = matrix[:, j]
            if isinstance(feature, NumericFeature):
                self._outside[k] += _count_numeric(feature, column, self._bins[k])
            else:
                self._outside[k] += _count_categorical(feature, column, self._bins[k])

    def report(self) -> DriftReport:
        """PSI, out-of-range and missing rates of everything counted so far."""
        features = []
        for k, (_, feature) in enumerate(self.columns):
            counts = self._bins[k]
            total = int(counts.sum())
            if total == 0:
                continue
            missing = counts[-1] / total
            present = total - int(counts[-1])
            expected = [*(s * (1.0 - feature.missing) for s in _shares(feature)), feature.missing]
            actual = (counts / total).tolist()
            outside: float | None = self._outside[k] / present if present else 0.0
            if isinstance(feature, CategoricalFeature) and feature.other > 0:
                outside = None  # the profile lists the most frequent values only
            features.append(
                FeatureDrift(
                    feature.name, population_stability(expected, actual), outside, float(missing)
                )
            )
        return DriftReport(self.rows, tuple(features))


def _bin_count(feature: Feature) -> int:
    if isinstance(feature, NumericFeature):
        return len(feature.edges) + 1
    return len(feature.frequencies) + 1  # listed values, then "other"


def _shares(feature: Feature) -> list[float]:
    if isinstance(feature, NumericFeature):
        return list(feature.fractions)
    return [*feature.frequencies.values(), feature.other]


def _count_numeric(feature: NumericFeature, column: Any, bins: np.ndarray) -> int:
    """Add ``column``'s values to ``bins`` (the last bin counts missing ones); returns how many
    present values lie outside the training range."""
    if column.dtype == object:
        column = np.asarray([math.nan if v is None else v for v in column], dtype=np.float64)
    values = np.asarray(column, dtype=np.float64)
    missing = np.isnan(values)
    present = values[~missing]
    bins[-1] += int(missing.sum())
    edges = np.asarray(feature.edges, dtype=np.float64)
    bins[:-1] += np.bincount(
        np.searchsorted(edges, present, side="right"), minlength=edges.size + 1
    )
    low, high = feature.minimum, feature.maximum  # with room for float32 rounding
    low -= _RANGE_SLACK * max(1.0, abs(low))
    high += _RANGE_SLACK * max(1.0, abs(high))
    return int(np.count_nonzero((present < low) | (present > high)))


def _count_categorical(feature: CategoricalFeature, column: Any, bins: np.ndarray) -> int:
    """Add ``column``'s values to ``bins`` (listed values, other, missing); returns how many
    present values the profile does not list."""
    index = {value: i for i, value in enumerate(feature.frequencies)}
    other = len(index)
    unlisted = 0
    for value in column:
        if value is None or (isinstance(value, float) and value != value):
            bins[-1] += 1
            continue
        i = index.get(value if isinstance(value, str) else str(value), other)
        bins[i] += 1
        unlisted += i == other
    return unlisted


class BatchDrift:
    """A batch's drift against its model's training profile, chunk by chunk (what
    ``servefn predict --report`` passes as ``on_matrix``); :attr:`counts` is None until the
    first chunk, and stays None when the model has no usable profile (:attr:`why` says so)."""

    def __init__(self) -> None:
        self.counts: DriftCounts | None = None
        self.why: str | None = None
        self._opened = False

    def __call__(self, model: Any, matrix: Any) -> None:
        if not self._opened:
            self._opened = True
            self.counts, self.why = _counts_for(model)
        if self.counts is not None:
            self.counts.add(matrix)


def _counts_for(model: Any) -> tuple[DriftCounts | None, str | None]:
    from servefn.schema import layout_of
    from servefn.telemetry.profile import read_profile

    manifest = model.manifest if isinstance(model.manifest, Mapping) else {}
    profile, why = read_profile(manifest.get("profile"))
    if profile is None:
        return None, why or "the model was saved without a training profile"
    layout = layout_of(model.input_schema)
    text = [c.kind == "str" for c in layout.features for _ in range(c.size)]
    columns = profile.columns(layout.feature_names, text)
    if not columns:
        return None, "the training profile names none of the model's features"
    return DriftCounts(profile, columns), None
