"""What servefn derives from a schema class, computed once per class and cached on it.

A :class:`SchemaLayout` holds the ordered columns, the feature-matrix names and the conversions
between validated records, tables and arrays. Keeping them here rather than as classmethods of
:class:`~servefn.schema.Schema` leaves a user's record class with pydantic's namespace only: a
field may be called ``spec`` or ``columns``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import SchemaError

if TYPE_CHECKING:
    from servefn.schema._schema import Column, Schema

__all__ = ["SchemaLayout", "layout_of"]

_NAN = float("nan")


class SchemaLayout:
    """Columns, feature names and record/array conversions of one schema class."""

    __slots__ = (
        "_getter",
        "_text_slots",
        "columns",
        "feature_names",
        "features",
        "flat",
        "label",
        "n_features",
        "output_names",
        "schema",
        "text",
    )

    def __init__(self, schema: type[Schema], columns: tuple[Column, ...]) -> None:
        self.schema = schema
        self.columns = columns
        """Every declared column, in declaration order."""
        _check_wire_names(schema, columns)
        labels = [c for c in columns if c.role == "label"]
        if len(labels) > 1:
            raise SchemaError(
                f"{schema.__name__} declares {len(labels)} label columns "
                f"({', '.join(c.name for c in labels)}); keep one"
            )
        self.label = labels[0] if labels else None
        """The label column (the training target), if the schema declares one."""
        self.features = tuple(c for c in columns if c.role == "feature")
        """The feature columns in concatenation order (ML.NET's ColumnConcatenator)."""
        names: list[str] = []
        for c in self.features:
            names.extend(
                [c.name] if c.kind != "vector" else [f"{c.name}[{i}]" for i in range(c.size)]
            )
        self.feature_names = tuple(names)
        """One name per feature-matrix column (``Name[i]`` for vector slots)."""
        self.n_features = len(names)
        self.output_names = tuple(c.name for c in columns if c.role != "ignore")
        """Wire names a predictor must produce when this schema describes outputs."""
        self.flat = all(c.kind in ("float", "int", "bool") for c in self.features)
        """True when every feature is one number: a record's feature tuple is its matrix row."""
        self.text = any(c.kind == "str" for c in self.features)
        """True when a feature is text (categorical): matrices are then object arrays, numbers
        as floats (NaN when missing) and text as ``str`` (``None`` when missing)."""
        slots = []
        for c in self.features:
            slots.extend([c.kind == "str"] * c.size)
        self._text_slots = tuple(slots)
        fields = [c.field for c in self.features]
        self._getter: Callable[[Any], Sequence[Any]] = (
            attrgetter(*fields) if len(fields) > 1 else lambda r: [getattr(r, f) for f in fields]
        )

    def feature_row(self, record: Any) -> Sequence[float] | None:
        """A record's features as a tuple of Python floats, or None when they are not all
        floats (vectors, text, ints, a missing optional value): callers then build a matrix."""
        if not self.flat:
            return None
        row = self._getter(record)
        for value in row:
            if type(value) is not float:
                return None
        return row

    def to_matrix(
        self, records: Sequence[Schema], dtype: type[np.floating[Any]] = np.float32
    ) -> NDArray[Any]:
        """Validated records -> feature matrix (rows x ``n_features``), float32 by default.

        Predictors that compute in float64 ask for it, to save a conversion. A missing optional
        value is NaN; a schema with a text feature gives an object matrix (see :attr:`text`).
        """
        features = self._getter
        if self.flat:  # one number per feature: straight into the array, no rows
            n, k = len(records), self.n_features
            values = chain.from_iterable(map(features, records))
            try:
                return np.fromiter(values, dtype, count=n * k).reshape(n, k)
            except TypeError:  # a missing optional value (None) or an Enum member
                pass
        rows = [self._cells(features(r)) for r in records]
        if self.text:
            matrix = np.empty((len(rows), self.n_features), dtype=object)
            if rows:
                matrix[:] = rows
            return matrix
        return np.array(rows, dtype=dtype).reshape(len(rows), self.n_features)

    def _cells(self, row: Sequence[Any]) -> list[Any]:
        """One record's feature values as matrix cells: vectors flattened, Enum members as their
        values, numbers as floats, a missing number NaN and missing text None."""
        cells: list[Any] = []
        for value in row:
            if isinstance(value, list):
                cells.extend(value)
            elif isinstance(value, Enum):
                cells.append(value.value)
            else:
                cells.append(value)
        return [
            value if text else (_NAN if value is None else float(value))
            for value, text in zip(cells, self._text_slots, strict=True)
        ]

    def table_to_matrix(
        self, table: Mapping[str, np.ndarray], dtype: type[np.floating[Any]] = np.float32
    ) -> NDArray[Any]:
        """Columns read by ``read_delimited`` (keyed by wire name) -> feature matrix (an object
        matrix when a feature is text; a missing value is NaN, or None in a text column)."""
        parts = []
        for c in self.features:
            if c.name not in table:
                raise SchemaError(f"table has no column {c.name!r}; it has {sorted(table)}")
            values = np.asarray(table[c.name])
            if c.kind == "str":
                parts.append(values.astype(object).reshape(len(values), -1))
                continue
            if values.dtype == object:  # an optional int or bool column: None where missing
                values = np.array([_NAN if v is None else v for v in values], dtype=np.float64)
            values = values.astype(np.float64 if self.text else dtype, copy=False)
            parts.append(values.reshape(len(values), -1))
        if not parts:
            raise SchemaError(f"{self.schema.__name__} declares no feature columns")
        if self.text:
            return np.hstack([p.astype(object) for p in parts])
        return np.ascontiguousarray(np.hstack(parts), dtype=dtype)

    def records_from_arrays(self, outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Predictor outputs (wire name -> array, one entry per row) -> JSON-ready dicts."""
        names = self.output_names
        if len(names) == 2:  # the usual label + scores: a dict display is 3x faster than dict()
            first, second = names
            if first in outputs and second in outputs:
                a, b = outputs[first], outputs[second]
                if type(a) is list and type(b) is list and len(a) == len(b) == 1:  # one row
                    return [{first: a[0], second: b[0]}]
                return [
                    {first: x, second: y} for x, y in zip(_to_list(a), _to_list(b), strict=True)
                ]
        missing = [n for n in names if n not in outputs]
        if missing:
            raise SchemaError(
                f"{self.schema.__name__} expects outputs {missing} that the model does not "
                f"produce; it produces {sorted(outputs)}"
            )
        lists = [_to_list(outputs[n]) for n in names]
        return [dict(zip(names, values)) for values in zip(*lists, strict=True)]  # noqa: B905

    def from_arrays(self, outputs: Mapping[str, Any]) -> list[Schema]:
        """Predictor outputs -> validated instances of the schema."""
        validate = self.schema.model_validate
        return [validate(r, strict=False) for r in self.records_from_arrays(outputs)]

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description that ``schema_from_spec`` turns back into a schema."""
        return {
            "title": self.schema.__name__,
            "extra": self.schema.model_config.get("extra", "forbid"),
            "columns": [c.spec() for c in self.columns],
        }


def _check_wire_names(schema: type[Schema], columns: Sequence[Column]) -> None:
    """Refuse two fields that answer to the same key: a record would then set both from one
    value, or the last of two values would silently win, with no duplicate-key error.

    A field answers to its wire name, and to its attribute name when the schema validates by
    name (servefn's default), so an alias equal to another field's name collides too.
    """
    by_name = bool(schema.model_config.get("validate_by_name"))
    owners: dict[str, Column] = {}
    for column in columns:
        keys = {column.name, column.field} if by_name else {column.name}
        for key in sorted(keys):
            other = owners.setdefault(key, column)
            if other is not column:
                raise SchemaError(
                    f"{schema.__name__}.{other.field} and {schema.__name__}.{column.field} both "
                    f"answer to the key {key!r}; give each field its own wire name"
                )


def layout_of(schema: type[Schema]) -> SchemaLayout:
    """The cached :class:`SchemaLayout` of a :class:`~servefn.schema.Schema` subclass."""
    layout = getattr(schema, "__servefn_layout__", None)
    if not isinstance(layout, SchemaLayout) or layout.schema is not schema:
        raise SchemaError(f"{schema!r} is not a subclass of servefn.Schema")
    return layout


def _to_list(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        return values.tolist()  # type: ignore[no-any-return]
    return list(values)
