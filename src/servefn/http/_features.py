"""Validated records -> the feature matrix, refusing values the model cannot take.

Features are float32 values (ML.NET's R4): a larger magnitude overflows inside a model into NaN
or infinite scores, which are not JSON, so it is a 422 naming each place instead. A missing
optional value (NaN, or None in a text column) is a 422 too where the model cannot impute it
(``model/_inputs.py``). The matrix is built once per request and handed on with the records; one
record of plain floats stays a tuple of Python numbers, checked without numpy (the one-row fast
path). A clean matrix costs one comparison: missing values are looked for only when it fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from servefn.errors import FeatureValueError
from servefn.http._parsing import Parsed
from servefn.http._problems import Problem
from servefn.model._inputs import refused_missing
from servefn.predictors import Predictor
from servefn.schema import layout_of
from servefn.schema._schema import Schema

__all__ = ["FEATURE_LIMIT", "FeatureBuilder", "value_problem"]

FEATURE_LIMIT = float(np.finfo(np.float32).max)
"""Largest feature magnitude accepted: features are float32 values (ML.NET's R4)."""
_MAX_PLACES = 100
_MISSING = "the model cannot impute this feature; send a value"


class FeatureBuilder:
    """Builds and checks the features of ``input_schema`` records for one model."""

    def __init__(self, input_schema: type[Schema]) -> None:
        self._layout = layout_of(input_schema)
        self._numeric_slots = np.array(
            [
                i
                for i, text in enumerate(
                    slot for c in self._layout.features for slot in [c.kind == "str"] * c.size
                )
                if not text
            ],
            dtype=np.intp,
        )

    def attach(self, parsed: Parsed, predictor: Predictor) -> Parsed:
        """Set ``parsed.row`` or ``parsed.matrix``, or raise a 422 for values out of range or
        missing where ``predictor`` cannot take them."""
        records = parsed.records or []
        row = self._layout.feature_row(records[0]) if len(records) == 1 else None
        if row and parsed.matrix is None:  # one row of floats: checked without numpy
            total = sum(row)  # NaN when any value is NaN
            if total == total and min(row) >= -FEATURE_LIMIT and max(row) <= FEATURE_LIMIT:
                parsed.row = row
                return parsed
        try:
            matrix = self.matrix(parsed, predictor.dtype)
        except OverflowError:  # an integer too large for any float
            _refuse(parsed, self._places_over_limit(records), "out_of_range")
            raise
        numbers = matrix if matrix.dtype != object else matrix[:, self._numeric_slots]
        if numbers.dtype == object:
            numbers = numbers.astype(np.float64)
        within = bool(np.abs(numbers).max(initial=0.0) <= FEATURE_LIMIT)
        if not within or matrix.dtype == object:  # NaN compares False either way: caught
            self._check(parsed, matrix, numbers, predictor)
        parsed.matrix = matrix
        return parsed

    def matrix(self, parsed: Parsed, dtype: Any) -> Any:
        """The matrix of ``parsed``, built now when :meth:`attach` left it to the handler."""
        if parsed.matrix is not None:
            return parsed.matrix
        return self._layout.to_matrix(parsed.records or [], dtype)

    def _check(self, parsed: Parsed, matrix: Any, numbers: Any, predictor: Predictor) -> None:
        """The slow path: name every value out of range, then every refused missing one."""
        names = self._layout.feature_names
        with np.errstate(invalid="ignore"):
            over = np.abs(numbers) > FEATURE_LIMIT
        columns = self._numeric_slots if matrix.dtype == object else None
        places = [
            (int(r), names[int(c if columns is None else columns[c])])
            for r, c in np.argwhere(over)[:_MAX_PLACES]
        ]
        _refuse(parsed, places, "out_of_range")
        refused = refused_missing(matrix, predictor)
        places = [(int(r), names[int(c)]) for r, c in np.argwhere(refused)[:_MAX_PLACES]]
        _refuse(parsed, places, "missing")

    def _places_over_limit(self, records: list[Schema]) -> list[tuple[int, str]]:
        """(row, column) of each value beyond the limit, found one by one (an error path)."""
        found = []
        for row, record in enumerate(records):
            for column in self._layout.features:
                if column.kind == "str":
                    continue
                value = getattr(record, column.field)
                values = value if isinstance(value, list) else [value]
                if not all(v is None or abs(v) <= FEATURE_LIMIT for v in values):
                    found.append((row, column.name))
        return found[:_MAX_PLACES]


def value_problem(parsed: Parsed, exc: FeatureValueError, names: tuple[str, ...]) -> Problem:
    """The 422 for a value the model refused as it predicted (an unknown category)."""
    name = names[exc.feature] if 0 <= exc.feature < len(names) else f"feature {exc.feature}"
    many = parsed.shape != "one"
    return Problem(
        422,
        str(exc),
        errors=[
            {
                "type": exc.reason,
                "loc": [*parsed.loc, *([row] if many else []), name],
                "msg": str(exc),
            }
            for row in exc.rows[:_MAX_PLACES]
        ],
    )


def _refuse(parsed: Parsed, places: list[tuple[int, str]], kind: str) -> None:
    if not places:
        return
    rows = parsed.shape != "one"
    if kind == "missing":
        title = f"{len(places)} feature value(s) missing where the model needs them; see errors"
        message = _MISSING
    else:
        title = f"{len(places)} value(s) out of the float32 range; see errors"
        message = f"Input should be a finite number within +/-{FEATURE_LIMIT:.7g}"
    raise Problem(
        422,
        title,
        errors=[
            {"type": kind, "loc": [*parsed.loc, *([row] if rows else []), name], "msg": message}
            for row, name in places
        ],
    )
