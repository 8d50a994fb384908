"""Input tensors -> the validated features a model predicts, through servefn's own validation.

A request sends one tensor per input column (shape ``[N]`` or ``[N, 1]``; ``[N, size]`` for a
vector column), or one FP32/FP64 tensor ``[N, n_features]`` under any other name: the feature
matrix. Either way the rows meet the same rules as a JSON body: the columns become records
validated by the input schema (constraints, categories, integer rule, missing values), then the
feature matrix is built and checked by :class:`~servefn.http._features.FeatureBuilder` (float32
range, missing values where the model cannot impute them). A schema of plain float features
(no constraints, categories or validators) skips the records: its matrix is built from the
tensors and checked for what pydantic would check there, finite numbers and missing values
only where a column is optional, as the CSV path does. Refusals are 400s naming the input and
the row, never a value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from servefn.http._features import FEATURE_LIMIT, FeatureBuilder
from servefn.http._parsing import Parsed
from servefn.http._problems import Problem
from servefn.oip._tensors import InferenceError, InferenceRequest, Tensor, cached_on
from servefn.schema import layout_of
from servefn.schema._schema import Column, Schema

__all__ = ["InputPlan", "input_plan", "one_row", "problem_error"]

_FITS = {
    "float": ("float", "int", "uint"),
    "int": ("float", "int", "uint"),
    "vector": ("float", "int", "uint"),
    "bool": ("bool",),
    "str": ("bytes",),
}
_NUMBERS = frozenset({"float", "int", "uint"})
_ONE = frozenset({(1,), (1, 1)})
_SENT_AS = {"float": "a number type", "int": "an integer type", "vector": "a number type"}
_MAX_LISTED = 3


def input_plan(schema: type[Schema]) -> InputPlan:
    """The plan for ``schema``, built once per schema class (and kept on it)."""
    return cached_on(schema, "__servefn_oip_inputs__", lambda: InputPlan(schema))


class InputPlan:
    """How the tensors of a request become validated rows of one input schema."""

    def __init__(self, schema: type[Schema]) -> None:
        layout = layout_of(schema)
        self.schema = schema
        self.columns = {c.name: c for c in layout.columns}
        self.features = layout.features
        self.n_features = layout.n_features
        self.inputs = tuple(c for c in layout.columns if c.role == "feature" or c.required)
        """The columns a client sends: every feature, and other columns without a default."""
        self.numeric = all(c.kind in ("float", "int", "vector") for c in self.features)
        decorators = schema.__pydantic_decorators__
        self.plain = (
            all(
                c.kind == "float"
                and not c.constraints
                and c.categories is None
                and not schema.model_fields[c.field].metadata
                for c in self.features
            )
            and len(self.inputs) == len(self.features)
            and not (decorators.field_validators or decorators.model_validators)
        )
        """Float features only, nothing to validate beyond finite numbers: no records needed."""
        self._nullable = np.array([c.nullable for c in self.features], dtype=bool)
        self._index = {c.name: i for i, c in enumerate(self.features)}
        self._records: TypeAdapter[list[Schema]] = TypeAdapter(list[schema])  # type: ignore[valid-type]
        self.builder = FeatureBuilder(schema)

    def parse(self, request: InferenceRequest, *, max_batch: int) -> Parsed:
        """The request's rows, validated: a checked one-row ``row``, or records or a matrix
        whose features the caller checks for its predictor (``builder.attach``)."""
        tensors = request.inputs
        if self.plain and len(tensors) == self.n_features:  # one row of columns, the common case
            row = self._one_row(tensors)
            if row is not None:
                return Parsed("many", row=row)
        if len(tensors) == 1 and tensors[0].name not in self.columns:
            return self._from_matrix(tensors[0], max_batch)
        columns, rows = self._columns(tensors, max_batch)
        if (
            self.plain
            and len(columns) == len(self.features)
            and all(c.name in columns for c in self.features)
        ):
            if rows == 1:
                row = one_row([columns[c.name][0] for c in self.features])
                if row is not None:
                    return Parsed("many", row=row)
            matrix = np.column_stack([_array(columns[c.name]) for c in self.features])
            return self._plain(matrix.reshape(rows, self.n_features))
        return self._validated(columns, rows)

    # -- the two request forms --------------------------------------------------------------

    def _one_row(self, tensors: Sequence[Tensor]) -> list[float] | None:
        """One row of a plain schema's columns, each ``[1]`` or ``[1, 1]`` of numbers, as
        checked Python floats; None for anything else (the general path then decides)."""
        row: list[Any] = [None] * self.n_features
        index = self._index
        for tensor in tensors:
            i = index.get(tensor.name)
            if (
                i is None
                or row[i] is not None
                or tensor.shape not in _ONE
                or tensor.datatype.family not in _NUMBERS
            ):
                return None
            row[i] = tensor.values[0]
        return one_row(row)

    def _from_matrix(self, tensor: Tensor, max_batch: int) -> Parsed:
        where = f"input #{tensor.position}"
        if tensor.datatype.name not in ("FP32", "FP64"):
            raise InferenceError(
                400,
                f"{where} is not one of the model's inputs ({_names(self.inputs)}); a single "
                "feature-matrix input must be FP32 or FP64",
            )
        if len(tensor.shape) != 2 or tensor.shape[1] != self.n_features:
            raise InferenceError(
                400,
                f"{where} is read as the feature matrix: its shape must be [rows, "
                f"{self.n_features}] ({', '.join(_feature_names(self.features))})",
            )
        if not self.numeric:
            raise InferenceError(
                400,
                "this model has text or boolean inputs: send one tensor per input "
                f"({_names(self.inputs)})",
            )
        rows = _rows(tensor.shape[0], max_batch)
        if self.plain and rows == 1:
            row = one_row(list(tensor.values))
            if row is not None:
                return Parsed("many", row=row)
        matrix = _array(tensor.values).reshape(rows, self.n_features)
        if self.plain:
            return self._plain(matrix)
        columns, start = {}, 0
        for column in self.features:
            columns[column.name] = matrix[:, start : start + column.size].reshape(-1)
            start += column.size
        return self._validated(columns, rows)

    def _columns(self, tensors: Sequence[Tensor], max_batch: int) -> tuple[dict[str, Any], int]:
        """Each tensor checked against its column: datatype, shape, one row count."""
        columns: dict[str, Any] = {}
        rows = None
        for tensor in tensors:
            column = self.columns.get(tensor.name)
            where = f"input #{tensor.position}"
            if column is None:
                raise InferenceError(
                    400, f"{where} is not one of the model's inputs ({_names(self.inputs)})"
                )
            if column.name in columns:
                raise InferenceError(400, f"input {column.name} is sent twice")
            if tensor.datatype.family not in _FITS[column.kind]:
                wanted = _SENT_AS.get(column.kind, "BOOL" if column.kind == "bool" else "BYTES")
                raise InferenceError(
                    400, f"input {column.name} is {tensor.datatype.name}; send it as {wanted}"
                )
            size = column.size if column.kind == "vector" else 1
            shape = tensor.shape
            if not ((len(shape) == 1 and size == 1) or (len(shape) == 2 and shape[1] == size)):
                expected = f"[rows, {size}]" if size > 1 else "[rows] or [rows, 1]"
                raise InferenceError(400, f"input {column.name} must have the shape {expected}")
            if rows is not None and shape[0] != rows:
                raise InferenceError(400, f"input {column.name} has a different number of rows")
            rows = shape[0]
            columns[column.name] = tensor.values
        absent = [c for c in self.inputs if c.name not in columns and c.required]
        if absent:
            raise InferenceError(400, f"input {_names(absent)} is missing; send every input")
        assert rows is not None  # the request has at least one input
        return columns, _rows(rows, max_batch)

    # -- validation ---------------------------------------------------------------------------

    def _plain(self, matrix: Any) -> Parsed:
        """Float features with nothing to validate but finite numbers (NaN: missing, allowed
        where the column is optional; the model decides whether it can impute it)."""
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(matrix)
        if not finite.all():
            refused = ~finite & (~np.isnan(matrix) | ~self._nullable)
            if refused.any():
                row, column = (int(i) for i in np.argwhere(refused)[0])
                name = self.features[column].name
                raise InferenceError(
                    400,
                    f"input {name}, row {row}: send a finite number (NaN means missing, and "
                    f"{name} is {'optional' if self._nullable[column] else 'required'}; "
                    "infinity is never a value)",
                )
        return Parsed("many", matrix=matrix)

    def _validated(self, columns: dict[str, Any], rows: int) -> Parsed:
        """Records validated by the input schema, as a JSON body's are."""
        names = list(columns)
        values = [self._python(self.columns[n], columns[n], rows) for n in names]
        documents = [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
        try:
            records = self._records.validate_python(documents, by_name=False)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        return Parsed("many", records)

    @staticmethod
    def _python(column: Column, values: Any, rows: int) -> list[Any]:
        """One column's values as pydantic validates them from JSON: None where missing."""
        if column.kind in ("str", "bool"):
            return list(values)
        numbers: list[Any] = values.tolist() if isinstance(values, np.ndarray) else values
        numbers = [None if v is None or v != v else v for v in numbers]  # NaN: missing
        if column.kind == "vector":
            size = len(numbers) // rows
            return [numbers[i : i + size] for i in range(0, len(numbers), size)]
        if column.kind == "int":  # integral floats as ints: categorical int columns are strict
            return [int(v) if type(v) is float and v.is_integer() else v for v in numbers]
        return numbers


def one_row(values: list[Any]) -> list[float] | None:
    """One row of numbers as Python floats when all are finite and within the float32 range
    (checked without numpy), else None: the matrix path then finds and names the problem."""
    try:
        row = [float(v) for v in values]  # None (missing) raises: the matrix path handles it
    except (TypeError, OverflowError):
        return None
    total = sum(row)  # NaN or infinite when any value is
    if total - total == 0 and min(row) >= -FEATURE_LIMIT and max(row) <= FEATURE_LIMIT:
        return row
    return None


def _array(values: Any) -> Any:
    """Numeric tensor values (a list from JSON, None where missing) as a float64 array."""
    if isinstance(values, np.ndarray):
        return values
    if None in values:
        values = [math.nan if v is None else v for v in values]
    return np.array(values, dtype=np.float64)


def problem_error(problem: Problem) -> InferenceError:
    """A 422 of servefn's feature checks as the protocol's 400, naming the input and row."""
    errors = problem.errors or []
    if not errors:
        return InferenceError(400, problem.detail)
    return InferenceError(400, _described(errors))


def _validation_error(exc: ValidationError) -> InferenceError:
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    return InferenceError(400, _described(errors))


def _described(errors: Sequence[Any]) -> str:
    """``input X, row 3: message`` for the first few errors, the rest counted."""
    parts = []
    for error in errors[:_MAX_LISTED]:
        loc = [p for p in error["loc"] if not isinstance(p, int)]
        rows = [p for p in error["loc"] if isinstance(p, int)]
        name = str(loc[0])[:64] if loc else "the request"
        where = f"input {name}" + (f", row {rows[0]}" if rows else "")
        parts.append(f"{where}: {error['msg']}")
    more = len(errors) - _MAX_LISTED
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _rows(rows: int, max_batch: int) -> int:
    if rows == 0:
        raise InferenceError(400, "the inputs have no rows; send at least one")
    if rows > max_batch:
        raise InferenceError(
            413, f"the batch has too many rows; the limit is {max_batch}. Send fewer per request"
        )
    return rows


def _names(columns: Sequence[Column]) -> str:
    shown = ", ".join(c.name for c in columns[:20])
    return shown + (f" and {len(columns) - 20} more" if len(columns) > 20 else "")


def _feature_names(columns: Sequence[Column]) -> list[str]:
    names = [c.name if c.kind != "vector" else f"{c.name}[{c.size}]" for c in columns]
    return names[:20] + (["..."] if len(names) > 20 else [])
