"""Column-wise preprocessing ops in numpy alone: the base :class:`Op`, imputation, scaling.

Each op replays what one fitted scikit-learn transformer does at ``transform`` time
(SimpleImputer, StandardScaler, MinMaxScaler, MaxAbsScaler) with the same arithmetic in the same
order, so its output matches scikit-learn's to the last bit. Ops are column-wise (every output
column comes from one input column): that is what lets a transform name the raw feature a bad
value came from, and work out which features may arrive missing. Encoders are in
:mod:`servefn.predictors._encoders`; :mod:`servefn.predictors._transform` chains them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError

__all__ = ["Affine", "Array", "Impute", "Op", "is_missing", "to_float"]

Array = NDArray[Any]
"""A 2-D block of cells: float64, or object (text as ``str``, missing as ``None``/NaN)."""
Scalar = str | float | None
"""A JSON-able cell value: text, a finite number, or ``None`` for missing (NaN)."""


def is_missing(X: Array) -> NDArray[np.bool_]:
    """Missing cells: NaN in a float array; ``None`` or NaN in an object array."""
    if X.dtype.kind == "f":
        return np.isnan(X)
    if X.dtype.kind != "O":
        return np.zeros(X.shape, dtype=bool)
    flat = [v is None or (type(v) is not str and v != v) for v in X.ravel().tolist()]
    return np.array(flat, dtype=bool).reshape(X.shape)


def to_float(X: Array, where: Sequence[str]) -> NDArray[np.float64]:
    """``X`` as float64 (a copy); ``where`` names each column for the error a text cell raises."""
    if X.dtype.kind in "fiub":
        return np.array(X, dtype=np.float64)
    out = np.empty(X.shape, dtype=np.float64)
    for j in range(X.shape[1]):
        column = X[:, j].tolist()
        if any(isinstance(v, (str, bytes)) for v in column):
            raise PredictorError(
                f"feature {where[j]!r} holds text, but the pipeline treats it as a number; "
                "declare it as a number in the schema or encode it in the pipeline"
            )
        out[:, j] = [math.nan if v is None else v for v in column]
    return out


class Op(ABC):
    """One fitted transformer over ``n_in`` columns. ``where`` names the raw feature behind
    each input column and ``origins`` its index; :meth:`bind` sets them."""

    name: ClassVar[str]

    def __init__(self, n_in: int) -> None:
        self.n_in = n_in
        self.origins: tuple[int, ...] = tuple(range(n_in))
        self.where: tuple[str, ...] = tuple(f"column {i}" for i in range(n_in))

    def bind(self, origins: Sequence[int], names: Sequence[str]) -> None:
        """Record the raw feature (index and name) behind each input column, for errors."""
        self.origins = tuple(origins)
        self.where = tuple(names[i] for i in origins)

    @property
    def n_out(self) -> int:
        return len(self.sources())

    @abstractmethod
    def sources(self) -> list[int]:
        """For each output column, the input column it is computed from."""

    @abstractmethod
    def apply(self, X: Array) -> Array:
        """Transform a block of ``n_in`` columns (``X`` may be changed in place)."""

    @abstractmethod
    def flow(self, missing: Sequence[bool]) -> list[bool] | None:
        """Given which input columns may hold a missing value, which output columns may;
        None when a missing value in one of them makes :meth:`apply` raise."""

    @abstractmethod
    def dump(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able parameters (with ``"op"``) and named arrays, under ``prefix``."""

    @classmethod
    @abstractmethod
    def load(
        cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str, n_in: int
    ) -> Op:
        """Rebuild from :meth:`dump`'s output, validating it (:class:`PredictorError`)."""


class Impute(Op):
    """SimpleImputer: missing cells take their column's fill; columns whose fill is ``None``
    (a NaN statistic: never seen during fit) are dropped; ``indicator`` columns (MissingIndicator)
    are appended as 0/1 flags.

    scikit-learn's imputer takes only NaN as missing, so a ``None`` in an object column (pandas
    before 3) passes through it to the encoder, which learns ``None`` as a category. The columns
    in ``none_passes`` replay that: ``None`` is left for the encoder's missing category."""

    name = "impute"

    def __init__(
        self,
        fills: Sequence[Scalar],
        indicator: Sequence[int] = (),
        none_passes: Sequence[int] = (),
    ) -> None:
        super().__init__(len(fills))
        self.fills = list(fills)
        self.keep = [j for j, f in enumerate(self.fills) if f is not None]
        self.indicator = [int(j) for j in indicator]
        self.none_passes = sorted({int(j) for j in none_passes})
        self._numeric = all(not isinstance(self.fills[j], str) for j in self.keep)
        if any(not 0 <= j < self.n_in for j in (*self.indicator, *self.none_passes)):
            raise PredictorError(f"impute columns must be within 0..{self.n_in - 1}")

    def sources(self) -> list[int]:
        return [*self.keep, *self.indicator]

    def apply(self, X: Array) -> Array:
        mask = is_missing(X)
        if self.none_passes and X.dtype.kind == "O":
            cells = X[:, self.none_passes].tolist()
            mask[:, self.none_passes] &= np.array([[v is not None for v in r] for r in cells], bool)
        numeric = self._numeric and X.dtype.kind == "f"
        out = np.array(X[:, self.keep], dtype=np.float64 if numeric else object)
        for k, j in enumerate(self.keep):
            if mask[:, j].any():
                out[mask[:, j], k] = self.fills[j]
        if not self.indicator:
            return out
        flags = mask[:, self.indicator].astype(np.float64)
        return np.hstack((out, flags if numeric else flags.astype(object)))

    def flow(self, missing: Sequence[bool]) -> list[bool] | None:
        passes = set(self.none_passes)
        return [j in passes and missing[j] for j in self.keep] + [False] * len(self.indicator)

    def dump(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"op": self.name, "fills": self.fills, "indicator": self.indicator}
        return {**params, "none_passes": self.none_passes}, {}

    @classmethod
    def load(
        cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str, n_in: int
    ) -> Impute:
        fills, indicator = params.get("fills"), params.get("indicator", [])
        if not isinstance(fills, list) or len(fills) != n_in:
            raise PredictorError(f"impute needs fills as a list of {n_in} values")
        if not all(is_scalar(f) for f in fills):
            raise PredictorError("impute fills must be strings, finite numbers or null")
        indicator = int_list(indicator, "impute indicator")
        return cls(fills, indicator, int_list(params.get("none_passes", []), "impute none_passes"))


class Affine(Op):
    """The fitted scalers: ``((x - sub) / div) * mul + add``, then clipped to ``clip``.

    StandardScaler sets ``sub`` and ``div``, MaxAbsScaler ``div``, MinMaxScaler ``mul``, ``add``
    and maybe ``clip``; the other terms are 0 or 1, which change nothing, bit for bit. NaN passes
    through, as it does in scikit-learn.
    """

    name = "affine"
    _TERMS = ("sub", "div", "mul", "add")

    def __init__(
        self,
        terms: Mapping[str, NDArray[np.floating[Any]]],
        clip: tuple[float, float] | None = None,
    ) -> None:
        sub = np.asarray(terms["sub"], dtype=np.float64)
        super().__init__(sub.shape[0] if sub.ndim == 1 else -1)
        self.terms = {t: np.ascontiguousarray(terms[t], dtype=np.float64) for t in self._TERMS}
        for t, a in self.terms.items():
            if a.shape != (self.n_in,) or not np.isfinite(a).all():
                raise PredictorError(f"affine {t} must be {self.n_in} finite numbers")
        if (self.terms["div"] == 0).any():
            raise PredictorError("affine div must not hold zeros")
        self.clip = clip

    def sources(self) -> list[int]:
        return list(range(self.n_in))

    def apply(self, X: Array) -> Array:
        out = to_float(X, self.where)
        out -= self.terms["sub"]
        out /= self.terms["div"]
        out *= self.terms["mul"]
        out += self.terms["add"]
        if self.clip is not None:
            np.clip(out, self.clip[0], self.clip[1], out=out)
        return out

    def flow(self, missing: Sequence[bool]) -> list[bool] | None:
        return list(missing)

    def dump(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        clip = None if self.clip is None else [float(self.clip[0]), float(self.clip[1])]
        return {"op": self.name, "clip": clip}, {prefix + t: a for t, a in self.terms.items()}

    @classmethod
    def load(
        cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str, n_in: int
    ) -> Affine:
        missing = [t for t in cls._TERMS if prefix + t not in arrays]
        if missing:
            raise PredictorError(f"affine op lacks arrays {[prefix + t for t in missing]}")
        clip = params.get("clip")
        if clip is not None and not (
            isinstance(clip, list) and len(clip) == 2 and all(is_number(c) for c in clip)
        ):
            raise PredictorError("affine clip must be null or two finite numbers")
        op = cls({t: arrays[prefix + t] for t in cls._TERMS}, None if clip is None else tuple(clip))
        if op.n_in != n_in:
            raise PredictorError(f"affine op covers {op.n_in} columns where {n_in} arrive")
        return op


def is_number(v: Any) -> bool:
    """A finite JSON number (not a bool)."""
    return type(v) in (int, float) and math.isfinite(v)


def is_scalar(v: Any) -> bool:
    """A JSON-able cell value: a string, a finite number or null."""
    return v is None or isinstance(v, str) or is_number(v)


def int_list(value: Any, what: str) -> list[int]:
    """``value`` as a list of non-negative ints, or :class:`PredictorError` naming ``what``."""
    if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
        raise PredictorError(f"{what} must be a list of non-negative integers")
    return list(value)
