"""Validated records -> the feature matrix, refusing values no float32 feature can hold.

Features are float32 values (ML.NET's R4): a larger magnitude overflows inside a model into NaN
or infinite scores, which are not JSON, so it is a 422 naming each place instead. The matrix is
built once per request and handed on with the records; one record of plain floats stays a tuple
of Python numbers, checked without numpy (the one-row fast path).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from servefn.http._parsing import Parsed
from servefn.http._problems import Problem
from servefn.schema import layout_of
from servefn.schema._schema import Schema

__all__ = ["FEATURE_LIMIT", "FeatureBuilder"]

FEATURE_LIMIT = float(np.finfo(np.float32).max)
"""Largest feature magnitude accepted: features are float32 values (ML.NET's R4)."""
_MAX_PLACES = 100


class FeatureBuilder:
    """Builds and range-checks the features of ``input_schema`` records."""

    def __init__(self, input_schema: type[Schema]) -> None:
        self._layout = layout_of(input_schema)
        self._numeric = all(c.kind != "str" for c in self._layout.features)

    def attach(self, parsed: Parsed, dtype: Any) -> Parsed:
        """Set ``parsed.row`` or ``parsed.matrix``, or raise a 422 for out-of-range values.

        With a handler, the matrix is built for this check only; text features are left to it.
        """
        if parsed.matrix is None and not self._numeric:
            return parsed
        records = parsed.records or []
        row = self._layout.feature_row(records[0]) if len(records) == 1 else None
        if row and parsed.matrix is None:  # one row of floats: checked without numpy
            total = sum(row)  # NaN when any value is NaN
            if total == total and min(row) >= -FEATURE_LIMIT and max(row) <= FEATURE_LIMIT:
                parsed.row = row
                return parsed
        try:
            matrix = self.matrix(parsed, dtype)
        except OverflowError:  # an integer too large for any float
            _refuse_out_of_range(parsed, self._places_over_limit(records))
            raise
        within = bool(np.abs(matrix).max(initial=0.0) <= FEATURE_LIMIT)
        if not within:  # NaN compares False either way: caught
            bad = ~(np.abs(matrix) <= FEATURE_LIMIT)
            names = self._layout.feature_names
            places = [(int(r), names[int(c)]) for r, c in np.argwhere(bad)[:_MAX_PLACES]]
            _refuse_out_of_range(parsed, places)
        parsed.matrix = matrix
        return parsed

    def matrix(self, parsed: Parsed, dtype: Any) -> Any:
        """The matrix of ``parsed``, built now when :meth:`attach` left it to the handler."""
        if parsed.matrix is not None:
            return parsed.matrix
        return self._layout.to_matrix(parsed.records or [], dtype)

    def _places_over_limit(self, records: list[Schema]) -> list[tuple[int, str]]:
        """(row, column) of each value beyond the limit, found one by one (an error path)."""
        found = []
        for row, record in enumerate(records):
            for column in self._layout.features:
                value = getattr(record, column.field)
                values = value if isinstance(value, list) else [value]
                if not all(abs(v) <= FEATURE_LIMIT for v in values):  # NaN too
                    found.append((row, column.name))
        return found[:_MAX_PLACES]


def _refuse_out_of_range(parsed: Parsed, places: list[tuple[int, str]]) -> None:
    if not places:
        return
    rows = parsed.shape != "one"
    raise Problem(
        422,
        f"{len(places)} value(s) out of the float32 range; see errors",
        errors=[
            {
                "type": "out_of_range",
                "loc": [*parsed.loc, *([row] if rows else []), name],
                "msg": f"Input should be a finite number within +/-{FEATURE_LIMIT:.7g}",
            }
            for row, name in places
        ],
    )
