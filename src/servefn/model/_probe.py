"""The end-to-end check a model passes before it may serve: :func:`probe`.

A model can verify (hashes, caps, schemas rebuilt, predictor built) and still be unable to
answer: weights of the wrong shape, NaN or infinite weights, classes that do not match the
scores, an output schema asking for a column the predictor does not produce or in another shape,
a custom predictor that raises. :func:`probe` finds these once, when a model is loaded, by
predicting a few records built from the input schema through :meth:`LoadedModel.predict` (the
batch path and the one-row path) and validating what comes out against the output schema.
``ModelSource`` runs it before any model is swapped in (the first load included) and
``servefn upload`` before anything is sent; requests never run it.

The probe records hold zeros, ones and values inside each column's declared bounds. They never
hold a missing value: a NaN feature is refused by the HTTP layer (422) before any predictor
sees it, so a model is not asked to answer one here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pydantic

from servefn.errors import ArtifactError
from servefn.model._archive import LoadedModel, _check_compatible
from servefn.schema import layout_of
from servefn.schema._schema import Column, Schema

__all__ = ["PROBE_ROWS", "check_outputs", "probe"]

PROBE_ROWS = 3
"""Records in the probe batch: zeros, ones, and values inside each column's bounds."""
_BASE = (0.0, 1.0, 0.5)
_PREFIX = "the model fails its end-to-end check"
_LABEL = "PredictedLabel"
_SCORE = "Score"


def probe(model: LoadedModel) -> None:
    """Raise :class:`ArtifactError` (one line) unless ``model`` turns records of its input
    schema into valid, finite records of its output schema."""
    try:
        _check_structure(model)
        records = _probe_records(model.input_schema)
        _check_predictions(model, records, f"a batch of {len(records)} records")
        _check_predictions(model, records[:1], "one record")
    except _Failed as failed:
        raise ArtifactError(f"{_PREFIX}: {failed}") from None
    except ArtifactError as exc:
        raise ArtifactError(f"{_PREFIX}: {_one_line(str(exc))}") from None
    except Exception as exc:  # the predictor is third-party code: any failure refuses it
        raise ArtifactError(f"{_PREFIX}: {type(exc).__name__}: {_one_line(str(exc))}") from None


class _Failed(Exception):
    """One line saying what the check found."""


def _check_structure(model: LoadedModel) -> None:
    """The schemas against the predictor, before anything is predicted."""
    inputs, outputs = layout_of(model.input_schema), layout_of(model.output_schema)
    if inputs.n_features == 0:
        raise _Failed(f"the input schema {model.input_schema.__name__} declares no features")
    if not outputs.output_names:
        raise _Failed(f"the output schema {model.output_schema.__name__} declares no outputs")
    if np.dtype(model.predictor.dtype).kind != "f":
        raise _Failed(f"the predictor's dtype {model.predictor.dtype!r} is not a float type")
    _check_compatible(model.predictor, model.input_schema, model.output_schema)
    params = model.manifest.get("predictor")
    declared = params.get("classes") if isinstance(params, Mapping) else None
    if declared is not None and not isinstance(declared, list):
        raise _Failed(f"the manifest's classes are a {type(declared).__name__}, not a list")
    classes = _classes(model)
    if classes is not None and len(set(classes)) != len(classes):
        raise _Failed(f"the model's {len(classes)} classes are not distinct")


def _classes(model: LoadedModel) -> list[Any] | None:
    """The predictor's classes (``classes`` attribute), checked to be a 1-D sequence."""
    classes = getattr(model.predictor, "classes", None)
    if classes is None:
        return None
    array = np.asarray(classes)
    if array.ndim != 1 or len(array) == 0:
        raise _Failed(f"the model's classes are not a list of labels (shape {array.shape})")
    return list(array.tolist())


def _probe_records(schema: type[Schema]) -> list[Schema]:
    """:data:`PROBE_ROWS` records of ``schema``: every feature and required column set."""
    columns = [c for c in layout_of(schema).columns if c.role == "feature" or c.required]
    rows = [{c.name: _value(c, base) for c in columns} for base in _BASE[:PROBE_ROWS]]
    try:
        return [schema.model_validate(row) for row in rows]
    except pydantic.ValidationError as exc:
        raise _Failed(
            f"the input schema {schema.__name__} refuses its probe records ({_first_error(exc)})"
        ) from None


def _value(column: Column, base: float) -> Any:
    """A value of ``column``'s kind near ``base``, inside its declared bounds."""
    kind = column.kind
    if column.categories:  # a categorical column: one of its values
        return column.categories[int(base) % len(column.categories)]
    if kind == "bool":
        return base >= 1.0
    if kind == "str":  # a digit string (any text, for an encoder that ignores unknown values)
        length = int(column.constraints.get("min_length", 1) or 1)
        return str(int(base)) * max(1, length)
    number = _bounded(column, base, integer=kind == "int")
    if kind == "vector":
        return [number] * column.size
    return number


def _bounded(column: Column, base: float, *, integer: bool) -> Any:
    """``base`` clamped into the column's ``ge``/``gt``/``le``/``lt`` bounds."""
    bounds = {k: float(v) for k, v in column.constraints.items() if k in ("ge", "gt", "le", "lt")}
    lows, highs = [-math.inf], [math.inf]
    if "ge" in bounds:
        lows.append(math.ceil(bounds["ge"]) if integer else bounds["ge"])
    if "gt" in bounds:
        gt = bounds["gt"]
        lows.append(math.floor(gt) + 1 if integer else math.nextafter(gt, math.inf))
    if "le" in bounds:
        highs.append(math.floor(bounds["le"]) if integer else bounds["le"])
    if "lt" in bounds:
        lt = bounds["lt"]
        highs.append(math.ceil(lt) - 1 if integer else math.nextafter(lt, -math.inf))
    low, high = max(lows), min(highs)
    if low > high:
        raise _Failed(f"column {column.name!r} has bounds that admit no value")
    value = min(max(base, low), high)
    if math.isinf(value):  # e.g. ge=1e400: no finite number fits
        raise _Failed(f"column {column.name!r} has bounds that admit no finite value")
    return int(value) if integer else float(value)


def _check_predictions(model: LoadedModel, records: list[Schema], what: str) -> None:
    """Predict ``records`` and check the outputs' columns, shapes, values and records."""
    predictions = model.predict(records)
    _check_outputs(model.output_schema, _classes(model), predictions.arrays, len(records), what)


def check_outputs(
    output_schema: type[Schema], classes: Any, arrays: Any, n: int, what: str
) -> None:
    """Raise :class:`ArtifactError` (one line naming the column, what the output schema
    expects and what the model gives) unless ``arrays``, predicted for ``n`` rows, fit
    ``output_schema``. ``save`` runs it on the evaluation rows: the rule :func:`probe` applies."""
    try:
        listed = None if classes is None else list(np.asarray(classes).tolist())
        _check_outputs(output_schema, listed, arrays, n, what)
    except _Failed as failed:
        raise ArtifactError(f"{_PREFIX}: {failed}") from None


def _check_outputs(
    output_schema: type[Schema], classes: list[Any] | None, arrays: Any, n: int, what: str
) -> None:
    if not isinstance(arrays, Mapping):
        raise _Failed(f"predicting {what} gave a {type(arrays).__name__}, not output columns")
    layout = layout_of(output_schema)
    for column in layout.columns:
        if column.role == "ignore":
            continue
        if column.name not in arrays:
            raise _Failed(
                f"the output column {column.name!r} is not produced (predicting {what} gave "
                f"{sorted(map(str, arrays))[:10]})"
            )
        _check_column(column, arrays[column.name], n, what)
    if classes is not None:
        _check_classes(classes, arrays, what)
    try:
        records_out = layout.from_arrays(arrays)
    except pydantic.ValidationError as exc:
        raise _Failed(
            f"predicting {what} gave output records that {output_schema.__name__} "
            f"refuses ({_first_error(exc)})"
        ) from None
    if len(records_out) != n:
        raise _Failed(f"predicting {what} gave {len(records_out)} output records")


def _check_column(column: Column, values: Any, n: int, what: str) -> None:
    """One output column: one entry per record, 1-D for a scalar, 2-D for a vector, finite,
    and values of the declared type."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged rows
        raise _Failed(f"the output column {column.name!r} has rows of different widths") from None
    name = f"the output column {column.name!r}"
    if array.ndim == 0 or array.shape[0] != n:
        shape = "a single value" if array.ndim == 0 else f"{array.shape[0]} entries"
        raise _Failed(f"{name} has {shape} for {what}")
    declared = _declared(column)
    if column.kind == "vector":
        if array.ndim != 2 or array.shape[1] == 0:
            raise _Failed(f"{name}: expected {declared}, found {_found(array)} ({what})")
        if column.index is not None and array.shape[1] != column.size:
            raise _Failed(f"{name}: expected {declared}, found {_found(array)} ({what})")
    elif array.ndim != 1:
        raise _Failed(f"{name}: expected {declared}, found {_found(array)} ({what})")
    found = _value_type(array)
    if found != "object" and found not in _ACCEPTS[column.kind]:  # objects: the records decide
        raise _Failed(f"{name}: expected {declared}, found {_found(array)} ({what})")
    if column.kind in ("float", "vector"):
        try:
            finite = bool(np.isfinite(array.astype(np.float64)).all())
        except (TypeError, ValueError):
            raise _Failed(f"{name} holds values that are not numbers") from None
        if not finite:
            raise _Failed(f"{name} holds NaN or infinite values for {what}")


_ACCEPTS: dict[str, tuple[str, ...]] = {  # what each declared type takes; the records decide
    "float": ("float", "int", "bool"),  # the rest (an int column given 0.5 is refused there)
    "vector": ("float", "int", "bool"),
    "int": ("int", "float", "bool"),
    "bool": ("bool", "int"),
    "str": ("str",),
}


def _declared(column: Column) -> str:
    """What the output schema declares for a column, per row."""
    if column.kind != "vector":
        return f"one {column.kind} per row ({column.field}: {column.kind})"
    size = f"{column.size} " if column.index is not None else ""
    return f"a list of {size}numbers per row ({column.field}: list[float])"


def _found(array: np.ndarray) -> str:
    """What the model gives per row."""
    kind = _value_type(array)
    if array.ndim == 1:
        return f"one {kind} per row"
    if array.ndim == 2:
        return f"{array.shape[1]} {kind} values per row"
    return f"an array of shape {array.shape[1:]} per row"


def _value_type(array: np.ndarray) -> str:
    """The type of an output array's values: float, int, bool, str or object."""
    kind = array.dtype.kind
    if kind in "US":
        return "str"
    if kind == "O":
        values: list[Any] = array.ravel().tolist()
        types = {type(v).__name__ for v in values}
        plain = len(types) == 1 and types <= {"str", "int", "float", "bool"}
        return types.pop() if plain else "object"  # None, numpy scalars: the records decide
    name: str = array.dtype.name
    return {"f": "float", "i": "int", "u": "int", "b": "bool"}.get(kind, name)


def _check_classes(classes: list[Any], arrays: Mapping[str, Any], what: str) -> None:
    """Scores one per class (one column for two classes: a binary decision); labels known."""
    if _SCORE in arrays:
        scores = np.asarray(arrays[_SCORE])
        width = scores.shape[1] if scores.ndim == 2 else None
        fits = width == len(classes) or (width == 1 and len(classes) == 2)
        if width is not None and not fits:
            raise _Failed(f"the model has {len(classes)} classes but {width} scores per row")
    if _LABEL in arrays:
        known = set(classes)
        unknown = [v for v in np.asarray(arrays[_LABEL]).tolist() if v not in known]
        if unknown:
            raise _Failed(f"predicting {what} gave labels that are not among the model's classes")


def _first_error(exc: pydantic.ValidationError) -> str:
    """pydantic's first error as ``loc: msg``, without the input value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return _one_line(f"{where}: {error['msg']}" if where else error["msg"])


def _one_line(text: str, limit: int = 240) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
