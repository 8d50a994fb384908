"""The training profile: what the inputs looked like when the model was trained.

``save`` computes it from the training rows and stores it in the manifest under ``profile``;
it is small and capped: per numeric feature (vector slots included) up to :data:`BINS`
quantile bins with the share of training values in each, the minimum, the maximum and the
missing rate; per categorical (text) feature the shares of its :data:`MAX_CATEGORIES` most
frequent values, the share of the rest and the missing rate; at most :data:`MAX_FEATURES`
features. That is a few KB for a typical model and about 200 KB at the cap.

A manifest comes from a file and nothing in it is trusted: :func:`read_profile` checks every
field against the bounds below (lengths, finite numbers in range, strictly increasing edges,
shares that add up) and ignores a profile that breaks one, saying why in one line that quotes
no manifest string. The model still loads and serves; only drift is not computed.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BINS",
    "FORMAT",
    "MAX_CATEGORIES",
    "MAX_FEATURES",
    "MAX_VALUE_CHARS",
    "CategoricalFeature",
    "NumericFeature",
    "Profile",
    "build_profile",
    "read_profile",
]

FORMAT = "servefn.profile/1"
BINS = 10
"""Quantile bins per numeric feature (deciles); fewer when values repeat."""
MAX_FEATURES = 256
"""Features profiled: the first ones of a wider input (each vector slot is one)."""
MAX_CATEGORIES = 50
"""Values listed per categorical feature; the rest are counted together as ``other``."""
MAX_VALUE_CHARS = 100
"""A longer categorical value is counted as ``other``, not listed."""
_MAX_EDGES = 64  # read bound: a manifest may hold at most this many edges per feature
_MAX_READ_CATEGORIES = 256
_MAX_NAME_CHARS = 1024
_TOLERANCE = 1e-3  # shares written with 6 decimals still add up to 1 within this


@dataclass(frozen=True)
class NumericFeature:
    """Bins of a numeric feature: ``edges`` split it (a value equal to an edge falls in the
    bin above it) and ``fractions`` holds the share of the training values in each bin."""

    name: str
    edges: tuple[float, ...]
    fractions: tuple[float, ...]
    minimum: float
    maximum: float
    missing: float

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "numeric",
            "min": self.minimum,
            "max": self.maximum,
            "missing": self.missing,
            "edges": list(self.edges),
            "fractions": list(self.fractions),
        }


@dataclass(frozen=True)
class CategoricalFeature:
    """Shares of a text feature's most frequent values, of the rest (``other``), and of
    missing values (``missing``, of all rows; the other shares are of the present values)."""

    name: str
    frequencies: Mapping[str, float]
    other: float
    missing: float

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "categorical",
            "missing": self.missing,
            "other": self.other,
            "values": [[value, share] for value, share in self.frequencies.items()],
        }


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class Profile:
    """The profile of ``rows`` training rows: one entry per profiled feature."""

    rows: int
    features: tuple[Feature, ...]

    def spec(self) -> dict[str, Any]:
        """The manifest form (plain JSON)."""
        return {"format": FORMAT, "rows": self.rows, "features": [f.spec() for f in self.features]}

    def columns(
        self, feature_names: Sequence[str], text: Sequence[bool]
    ) -> list[tuple[int, Feature]]:
        """(matrix column, feature) for each profiled feature the model still takes, of the
        same kind: a profile written for other features is matched by name, never by place."""
        where = {name: i for i, name in enumerate(feature_names)}
        found = []
        for feature in self.features:
            index = where.get(feature.name)
            if index is not None and text[index] == isinstance(feature, CategoricalFeature):
                found.append((index, feature))
        return found


def build_profile(names: Sequence[str], text: Sequence[bool], matrix: Any) -> Profile:
    """The profile of ``matrix`` (rows x features; text columns hold ``str`` or None, numeric
    ones numbers with NaN for missing). Features with no value at all are left out."""
    rows = len(matrix)
    features: list[Feature] = []
    for j, name in enumerate(names[:MAX_FEATURES]):
        column = np.asarray(matrix)[:, j]
        feature = _categorical(name, column, rows) if text[j] else _numeric(name, column, rows)
        if feature is not None:
            features.append(feature)
    return Profile(rows, tuple(features))


def _numeric(name: str, column: Any, rows: int) -> NumericFeature | None:
    values = np.asarray(
        [np.nan if v is None else v for v in column] if column.dtype == object else column,
        dtype=np.float64,
    )
    present = values[~np.isnan(values)]
    if present.size == 0:
        return None
    edges = _edges(present)
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
    return NumericFeature(
        name=name,
        edges=tuple(float(e) for e in edges),
        fractions=tuple(round(float(c) / present.size, 6) for c in counts),
        minimum=float(present.min()),
        maximum=float(present.max()),
        missing=round(1.0 - present.size / rows, 6) if rows else 0.0,
    )


def _edges(present: np.ndarray) -> np.ndarray:
    """Decile edges placed halfway between two distinct training values, never on one: a
    served value that differs from a training value by rounding (float32 vs float64) then
    falls in the same bin."""
    distinct = np.unique(present)
    quantiles = np.quantile(present, np.linspace(0.0, 1.0, BINS + 1)[1:-1])
    above = np.unique(np.searchsorted(distinct, quantiles, side="left"))
    above = above[(above > 0) & (above < distinct.size)]
    edges: np.ndarray = (distinct[above - 1] + distinct[above]) / 2.0
    return edges


def _categorical(name: str, column: Any, rows: int) -> CategoricalFeature | None:
    present = [v for v in column if v is not None and not (isinstance(v, float) and v != v)]
    if not present:
        return None
    counts = Counter(str(v) for v in present)
    listed = sorted(
        ((value, n) for value, n in counts.items() if len(value) <= MAX_VALUE_CHARS),
        key=lambda item: (-item[1], item[0]),
    )[:MAX_CATEGORIES]
    total = len(present)
    frequencies = {value: round(n / total, 6) for value, n in listed}
    other = round(1.0 - sum(n for _, n in listed) / total, 6)
    return CategoricalFeature(name, frequencies, max(other, 0.0), round(1.0 - total / rows, 6))


# -- reading a manifest's profile, defensively -----------------------------------------------


class _Refused(Exception):
    """Why a profile is ignored (one line, no manifest string in it)."""


def read_profile(raw: Any) -> tuple[Profile | None, str | None]:
    """``(profile, None)``, or ``(None, why)`` when ``raw`` (a manifest's ``profile`` value)
    is absent or breaks a bound; ``why`` is None when there is simply no profile."""
    if raw is None:
        return None, None
    try:
        return _read(raw), None
    except _Refused as exc:
        return None, f"the training profile is ignored: {exc}"


def _read(raw: Any) -> Profile:
    if not isinstance(raw, Mapping):
        raise _Refused("it is not an object")
    if raw.get("format") != FORMAT:
        raise _Refused(f"its format is not {FORMAT}")
    rows = raw.get("rows")
    if type(rows) is not int or rows < 0:
        raise _Refused("its row count is not a whole number")
    listed = raw.get("features")
    if not isinstance(listed, list) or len(listed) > MAX_FEATURES:
        raise _Refused(f"its features are not a list of at most {MAX_FEATURES}")
    features: list[Feature] = []
    seen: set[str] = set()
    for position, item in enumerate(listed):
        try:
            feature = _read_feature(item)
        except _Refused as exc:
            raise _Refused(f"feature {position + 1}: {exc}") from None
        if feature.name in seen:
            raise _Refused(f"feature {position + 1} repeats a name")
        seen.add(feature.name)
        features.append(feature)
    return Profile(rows, tuple(features))


def _read_feature(item: Any) -> Feature:
    if not isinstance(item, Mapping):
        raise _Refused("not an object")
    name = item.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME_CHARS:
        raise _Refused("its name is not a name")
    missing = _share(item.get("missing"), "missing")
    kind = item.get("type")
    if kind == "numeric":
        edges = _numbers(item.get("edges"), "edges", _MAX_EDGES)
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise _Refused("its edges do not increase")
        fractions = _numbers(item.get("fractions"), "fractions", _MAX_EDGES + 1)
        if len(fractions) != len(edges) + 1 or not all(0.0 <= f <= 1.0 for f in fractions):
            raise _Refused("its fractions do not match its edges")
        _adds_up(sum(fractions))
        low, high = _number(item.get("min"), "min"), _number(item.get("max"), "max")
        if low > high:
            raise _Refused("its min is above its max")
        return NumericFeature(name, tuple(edges), tuple(fractions), low, high, missing)
    if kind == "categorical":
        pairs = item.get("values")
        if not isinstance(pairs, list) or len(pairs) > _MAX_READ_CATEGORIES:
            raise _Refused(f"its values are not a list of at most {_MAX_READ_CATEGORIES}")
        frequencies: dict[str, float] = {}
        for pair in pairs:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not isinstance(pair[0], str)
                or len(pair[0]) > MAX_VALUE_CHARS
                or pair[0] in frequencies
            ):
                raise _Refused("a value is not a [text, share] pair of a new short text")
            frequencies[pair[0]] = _share(pair[1], "a value's share")
        other = _share(item.get("other"), "other")
        _adds_up(sum(frequencies.values()) + other)
        return CategoricalFeature(name, frequencies, other, missing)
    raise _Refused("its type is neither numeric nor categorical")


def _number(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise _Refused(f"{what} is not a finite number")
    return float(value)


def _numbers(value: Any, what: str, limit: int) -> list[float]:
    if not isinstance(value, list) or len(value) > limit:
        raise _Refused(f"its {what} are not a list of at most {limit} numbers")
    return [_number(v, what) for v in value]


def _share(value: Any, what: str) -> float:
    share = _number(value, what)
    if not 0.0 <= share <= 1.0:
        raise _Refused(f"{what} is not between 0 and 1")
    return share


def _adds_up(total: float) -> None:
    if abs(total - 1.0) > _TOLERANCE:
        raise _Refused("its shares do not add up to 1")
