"""Categorical encoders in numpy alone: one-hot and ordinal codes from learned categories.

They replay scikit-learn's fitted OneHotEncoder and OrdinalEncoder. Categories are text or
numbers (never both in one column) plus at most one missing marker (``None``; NaN in
scikit-learn). Text matches exactly as ``str`` through a dict; numbers match as floats through a
sorted array and ``searchsorted``, so a column is coded in one pass for 1 row or 10,000. A value
the encoder cannot take raises :class:`~servefn.errors.FeatureValueError` naming the feature and
the allowed categories, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import FeatureValueError, PredictorError
from servefn.predictors._ops import Array, Op, Scalar, is_missing, is_number, is_scalar

__all__ = ["MAX_CATEGORIES", "Categories", "OneHot", "Ordinal"]

MAX_CATEGORIES = 65_536
"""Most categories one column may hold in a payload."""
_MAX_ALLOWED = 50  # categories listed in an error
_MAX_ROWS = 10  # rows listed in an error


class Categories:
    """The learned categories of one column, in scikit-learn's order (their codes)."""

    def __init__(self, values: Sequence[Scalar]) -> None:
        self.values = list(values)
        if len(self.values) > MAX_CATEGORIES:
            raise PredictorError(
                f"a column holds {len(self.values)} categories; at most "
                f"{MAX_CATEGORIES} are allowed"
            )
        if not all(is_scalar(v) for v in self.values):
            raise PredictorError("categories must be strings, finite numbers or null")
        known = [v for v in self.values if v is not None]
        self.text = any(isinstance(v, str) for v in known)
        if self.text and not all(isinstance(v, str) for v in known):
            raise PredictorError("a column's categories mix text and numbers")
        if len(known) + 1 < len(self.values) or len(set(known)) != len(known):
            raise PredictorError("a column's categories repeat a value")
        self.missing = self.values.index(None) if None in self.values else -1
        """The code of a missing value, or -1 when none was learned."""
        index = [i for i, v in enumerate(self.values) if v is not None]
        self._table = {str(self.values[i]): i for i in index} if self.text else {}
        numbers = np.array([] if self.text else [float(v) for v in known])
        order = np.argsort(numbers, kind="stable")
        self._sorted = numbers[order]
        self._codes = np.array(index, dtype=np.intp)[order] if len(index) else np.zeros(0, int)

    def codes(self, column: Array, missing: NDArray[np.bool_]) -> NDArray[np.intp]:
        """The code of each cell: -1 where unknown, :attr:`missing` where missing."""
        n = len(column)
        if self.text:
            table = self._table
            cells = column.tolist()
            found = np.fromiter(
                (table.get(v, -1) if type(v) is str else -1 for v in cells), np.intp, n
            )
        else:
            found = np.full(n, -1, dtype=np.intp)
            if column.dtype.kind == "f":
                values, numeric = column, ~missing
            else:
                cells = column.tolist()
                numeric = np.array([type(v) in (int, float) for v in cells], bool) & ~missing
                values = np.array(
                    [v if ok else 0.0 for v, ok in zip(cells, numeric, strict=True)], np.float64
                )
            if len(self._sorted):
                at = np.minimum(np.searchsorted(self._sorted, values), len(self._sorted) - 1)
                hit = numeric & (self._sorted[at] == values)
                found[hit] = self._codes[at[hit]]
        found[missing] = self.missing
        return found

    def allowed(self) -> list[Scalar]:
        """The categories an error lists (the first 50)."""
        return self.values[:_MAX_ALLOWED]


class _Encoder(Op):
    """What both encoders share: categories per column, and how a cell is refused."""

    def __init__(self, categories: Sequence[Categories]) -> None:
        super().__init__(len(categories))
        self.categories = list(categories)

    def _codes(self, X: Array, j: int, missing: NDArray[np.bool_]) -> NDArray[np.intp]:
        return self.categories[j].codes(X[:, j], missing[:, j])

    def _refuse(self, j: int, bad: NDArray[np.bool_], missing: NDArray[np.bool_]) -> None:
        """Raise :class:`FeatureValueError` for the cells of column ``j`` flagged in ``bad``."""
        rows = np.flatnonzero(bad)[:_MAX_ROWS].tolist()
        name, allowed = self.where[j], self.categories[j].allowed()
        clipped = ", ".join(map(repr, allowed)) + (
            ", …" if len(allowed) < len(self.categories[j].values) else ""
        )
        if missing[rows[0]]:
            message = f"feature {name!r} is missing, and the model cannot take a missing value"
            reason = "missing"
        else:
            message = f"feature {name!r} has a value the model does not know"
            reason = "unknown_category"
        raise FeatureValueError(
            f"{message}; allowed values: {clipped}",
            feature=self.origins[j],
            rows=rows,
            reason=reason,
            allowed=allowed,
        )

    def _dump_categories(self) -> list[list[Scalar]]:
        return [c.values for c in self.categories]


def load_categories(params: Mapping[str, Any], n_in: int) -> list[Categories]:
    """The ``categories`` parameter: ``n_in`` lists of strings, finite numbers or null."""
    values = params.get("categories")
    if not isinstance(values, list) or len(values) != n_in:
        raise PredictorError(f"an encoder needs categories as {n_in} lists")
    if not all(isinstance(v, list) for v in values):
        raise PredictorError("an encoder's categories must be lists")
    return [Categories(v) for v in values]


class OneHot(_Encoder):
    """OneHotEncoder: one 0/1 column per category, except each column's ``drop`` code; an unknown
    value is all zeros when ``ignore`` (scikit-learn's "ignore" and "infrequent_if_exist" without
    infrequent categories), refused otherwise."""

    name = "onehot"

    def __init__(
        self, categories: Sequence[Categories], drop: Sequence[int | None], *, ignore: bool
    ) -> None:
        super().__init__(categories)
        if len(drop) != self.n_in or any(
            d is not None and not 0 <= d < len(c.values)
            for d, c in zip(drop, self.categories, strict=True)
        ):
            raise PredictorError("onehot drop must give each column null or one of its codes")
        self.drop = list(drop)
        self.ignore = ignore
        self._columns: list[NDArray[np.intp]] = []  # per input column: code -> output col or -1
        self._sources: list[int] = []
        for j, (c, d) in enumerate(zip(self.categories, self.drop, strict=True)):
            out = np.full(len(c.values) + 1, -1, dtype=np.intp)  # slot -1: unknown
            kept = [i for i in range(len(c.values)) if i != d]
            out[kept] = np.arange(len(self._sources), len(self._sources) + len(kept))
            self._sources += [j] * len(kept)
            self._columns.append(out)

    def sources(self) -> list[int]:
        return list(self._sources)

    def apply(self, X: Array) -> Array:
        missing = is_missing(X)
        out = np.zeros((X.shape[0], len(self._sources)), dtype=np.float64)
        for j in range(self.n_in):
            codes = self._codes(X, j, missing)
            unknown = codes < 0
            if not self.ignore and unknown.any():
                self._refuse(j, unknown, missing[:, j])
            target = self._columns[j][codes]
            rows = np.flatnonzero(target >= 0)
            out[rows, target[rows]] = 1.0
        return out

    def flow(self, missing: Sequence[bool]) -> list[bool] | None:
        for j, flag in enumerate(missing):
            if flag and not self.ignore and self.categories[j].missing < 0:
                return None
        return [False] * self.n_out

    def dump(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        params = {"op": self.name, "categories": self._dump_categories(), "drop": self.drop}
        return {**params, "ignore": self.ignore}, {}

    @classmethod
    def load(
        cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str, n_in: int
    ) -> OneHot:
        categories = load_categories(params, n_in)
        drop, ignore = params.get("drop"), params.get("ignore")
        if not isinstance(drop, list) or not all(d is None or type(d) is int for d in drop):
            raise PredictorError("onehot drop must be a list of null or integer codes")
        if not isinstance(ignore, bool):
            raise PredictorError("onehot ignore must be true or false")
        return cls(categories, drop, ignore=ignore)


class Ordinal(_Encoder):
    """OrdinalEncoder: each category's code as a float; a missing value learned as a category
    becomes ``missing_value`` (scikit-learn's encoded_missing_value, NaN by default); an unknown
    one becomes ``unknown_value`` (scikit-learn's "use_encoded_value") or is refused (None)."""

    name = "ordinal"

    def __init__(
        self,
        categories: Sequence[Categories],
        missing_value: NDArray[np.floating[Any]],
        unknown_value: float | None,
    ) -> None:
        super().__init__(categories)
        self.missing_value = np.asarray(missing_value, dtype=np.float64)
        if self.missing_value.shape != (self.n_in,):
            raise PredictorError(f"ordinal missing_value must hold {self.n_in} numbers")
        self.unknown_value = unknown_value

    def sources(self) -> list[int]:
        return list(range(self.n_in))

    def apply(self, X: Array) -> Array:
        missing = is_missing(X)
        out = np.empty(X.shape, dtype=np.float64)
        for j in range(self.n_in):
            codes = self._codes(X, j, missing)
            unknown = codes < 0
            out[:, j] = codes
            if self.categories[j].missing >= 0:
                out[missing[:, j], j] = self.missing_value[j]
            if unknown.any():
                if self.unknown_value is None:
                    self._refuse(j, unknown, missing[:, j])
                out[unknown, j] = self.unknown_value
        return out

    def flow(self, missing: Sequence[bool]) -> list[bool] | None:
        out = []
        for j, flag in enumerate(missing):
            if not flag:
                out.append(False)
            elif self.categories[j].missing >= 0:
                out.append(bool(np.isnan(self.missing_value[j])))
            elif self.unknown_value is None:
                return None
            else:
                out.append(bool(np.isnan(self.unknown_value)))
        return out

    def dump(self, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        unknown = self.unknown_value
        params = {
            "op": self.name,
            "categories": self._dump_categories(),
            "unknown": "error" if unknown is None else ("nan" if np.isnan(unknown) else unknown),
        }
        return params, {prefix + "missing_value": self.missing_value}

    @classmethod
    def load(
        cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray], prefix: str, n_in: int
    ) -> Ordinal:
        categories = load_categories(params, n_in)
        unknown = params.get("unknown")
        if unknown == "error":
            unknown_value = None
        elif unknown == "nan":
            unknown_value = float("nan")
        elif isinstance(unknown, (int, float)) and is_number(unknown):
            unknown_value = float(unknown)
        else:
            raise PredictorError('ordinal unknown must be "error", "nan" or a finite number')
        if prefix + "missing_value" not in arrays:
            raise PredictorError(f"ordinal op lacks array {prefix + 'missing_value'!r}")
        return cls(categories, arrays[prefix + "missing_value"], unknown_value)
