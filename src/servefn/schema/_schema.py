"""Typed input/output records with column mappings, after ML.NET's ``[Column]``/``[ColumnName]``.

A :class:`Schema` is a pydantic model whose fields are declared with :func:`column`: ``index`` is
the position in a delimited source file, ``name`` the wire name (the JSON key, ML.NET's column
name) and ``role`` says whether the column feeds the model (``feature``), is the training target
(``label``) or is carried along unused (``ignore``). The class knows its ordered feature columns,
turns validated records into the float32 matrix a model expects, turns output arrays back into
records, reads delimited text files by index, and describes itself as a portable JSON spec that
goes into the model manifest.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain
from operator import attrgetter
from os import PathLike
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

from servefn.errors import SchemaError

__all__ = ["Column", "ColumnKind", "Role", "Schema", "column"]

Role = Literal["feature", "label", "ignore"]
ColumnKind = Literal["float", "int", "bool", "str", "vector"]
_ROLES: tuple[str, ...] = ("feature", "label", "ignore")
_CONSTRAINTS = ("ge", "gt", "le", "lt", "min_length", "max_length")
_META_INDEX = "x-column"
_META_ROLE = "x-role"
_SCALAR_TYPES: dict[type, ColumnKind] = {float: "float", int: "int", bool: "bool", str: "str"}
_KIND_TYPES: dict[str, Any] = {"float": float, "int": int, "bool": bool, "str": str}


def column(
    index: int | str | tuple[int, int] | None = None,
    *,
    name: str | None = None,
    role: Role = "feature",
    default: Any = PydanticUndefined,
    description: str | None = None,
    **constraints: Any,
) -> Any:
    """Declare a schema field mapped to a source column.

    ``index`` is an int (``column(0)``, ML.NET's ``[Column("0")]``), or an inclusive range for a
    vector column: ``column((0, 3))`` or ``column("0-3")`` on a ``list[float]`` field.
    ``name`` is the wire name (ML.NET's ``[ColumnName]``); it defaults to the attribute name.
    ``constraints`` are pydantic's numeric/length bounds (ge, gt, le, lt, min_length, max_length).
    """
    if role not in _ROLES:
        raise SchemaError(f"column role {role!r} is not one of {', '.join(_ROLES)}")
    unknown = sorted(set(constraints) - set(_CONSTRAINTS))
    if unknown:
        raise SchemaError(
            f"column() got unsupported arguments {unknown}; allowed constraints: {_CONSTRAINTS}"
        )
    start, end = _parse_index(index)
    extra: dict[str, Any] = {} if role == "feature" else {_META_ROLE: role}
    if start is not None:
        extra[_META_INDEX] = start if start == end else f"{start}-{end}"
    if start is not None and end is not None and end > start:
        size = end - start + 1
        constraints.setdefault("min_length", size)
        constraints.setdefault("max_length", size)
    return Field(
        default,
        alias=name,
        description=description,
        json_schema_extra=extra,
        **constraints,
    )


def _parse_index(index: int | str | tuple[int, int] | None) -> tuple[int | None, int | None]:
    """Normalise a column index to an inclusive (start, end) pair."""
    if index is None:
        return None, None
    if isinstance(index, bool):
        raise SchemaError(f"column index must be an int, a (start, end) pair or 'a-b', not {index}")
    if isinstance(index, int):
        start = end = index
    elif isinstance(index, tuple) and len(index) == 2:
        start, end = int(index[0]), int(index[1])
    elif isinstance(index, str) and (m := re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", index)):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
    else:
        raise SchemaError(f"column index {index!r} is not an int, a (start, end) pair or 'a-b'")
    if start < 0 or end < start:
        raise SchemaError(f"column index range {start}-{end} is empty or negative")
    return start, end


@dataclass(frozen=True)
class Column:
    """One declared column: attribute, wire name, source index range, role and value kind."""

    field: str
    name: str
    kind: ColumnKind
    role: Role
    index: int | None
    end: int | None
    required: bool
    nullable: bool
    default: Any
    description: str | None
    constraints: Mapping[str, Any]

    @property
    def size(self) -> int:
        """Number of values the column contributes to a feature matrix."""
        if self.index is None or self.end is None:
            return 1
        return self.end - self.index + 1

    def spec(self) -> dict[str, Any]:
        """The column as a JSON-serialisable dict (see :meth:`Schema.spec`)."""
        out: dict[str, Any] = {"field": self.field, "name": self.name, "type": self.kind}
        if self.index is not None:
            out["index"] = self.index if self.kind != "vector" else [self.index, self.end]
        out["role"] = self.role
        out["required"] = self.required
        out["nullable"] = self.nullable
        if not self.required:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        if self.constraints:
            out["constraints"] = dict(self.constraints)
        return out


class Schema(BaseModel):
    """Base class of input and output records.

    Unknown fields are refused (typos surface as errors), numbers are not parsed from strings,
    and NaN/Infinity are refused; set ``model_config`` on a subclass to change that.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    __servefn_columns__: ClassVar[tuple[Column, ...]] = ()
    __servefn_features__: ClassVar[tuple[Column, ...]] = ()
    __servefn_feature_names__: ClassVar[tuple[str, ...]] = ()
    __servefn_output_names__: ClassVar[tuple[str, ...]] = ()
    __servefn_getter__: ClassVar[Callable[[Any], Sequence[Any]]]
    __servefn_flat__: ClassVar[bool] = True

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        columns = tuple(_column_of(cls, f) for f in cls.model_fields)
        features = tuple(c for c in columns if c.role == "feature")
        names: list[str] = []
        for c in features:
            names.extend(
                [c.name] if c.kind != "vector" else [f"{c.name}[{i}]" for i in range(c.size)]
            )
        cls.__servefn_columns__ = columns
        cls.__servefn_features__ = features
        cls.__servefn_feature_names__ = tuple(names)
        cls.__servefn_output_names__ = tuple(c.name for c in columns if c.role != "ignore")
        cls.__servefn_flat__ = all(c.kind in ("float", "int", "bool") for c in features)
        fields = [c.field for c in features]
        cls.__servefn_getter__ = staticmethod(
            attrgetter(*fields) if len(fields) > 1 else lambda r: [getattr(r, f) for f in fields]
        )

    # -- column views -----------------------------------------------------------------------

    @classmethod
    def columns(cls) -> tuple[Column, ...]:
        """Every declared column, in declaration order."""
        return cls.__servefn_columns__

    @classmethod
    def feature_columns(cls) -> tuple[Column, ...]:
        """The feature columns in the order they are concatenated (ML.NET's ColumnConcatenator)."""
        return cls.__servefn_features__

    @classmethod
    def label_column(cls) -> Column | None:
        """The label column, if the schema declares one."""
        labels = [c for c in cls.__servefn_columns__ if c.role == "label"]
        if len(labels) > 1:
            raise SchemaError(f"{cls.__name__} declares {len(labels)} label columns; keep one")
        return labels[0] if labels else None

    @classmethod
    def feature_row(cls, record: Any) -> Sequence[float] | None:
        """A record's features as a tuple of Python floats, or None when they are not all
        floats (vectors, text, ints, a missing optional value): callers then build a matrix."""
        if not cls.__servefn_flat__:
            return None
        row = cls.__servefn_getter__(record)
        for value in row:
            if type(value) is not float:
                return None
        return row

    @classmethod
    def has_flat_features(cls) -> bool:
        """True when every feature is one number (no vector or text columns), so that the
        tuple of a record's features is its feature-matrix row."""
        return cls.__servefn_flat__

    @classmethod
    def n_features(cls) -> int:
        """Width of the feature matrix (vector columns count their size)."""
        return len(cls.__servefn_feature_names__)

    @classmethod
    def feature_names(cls) -> list[str]:
        """One name per feature-matrix column (``Name[i]`` for vector slots)."""
        return list(cls.__servefn_feature_names__)

    # -- records <-> arrays -----------------------------------------------------------------

    @classmethod
    def to_matrix(
        cls, records: Sequence[Schema], dtype: type[np.floating[Any]] = np.float32
    ) -> NDArray[Any]:
        """Validated records -> feature matrix (rows x :meth:`n_features`), float32 by default.

        Predictors that compute in float64 ask for it, to save a conversion.
        """
        features = cls.__servefn_getter__
        if cls.__servefn_flat__:  # one number per feature: straight into the array, no rows
            n, k = len(records), len(cls.__servefn_feature_names__)
            values = chain.from_iterable(map(features, records))
            return np.fromiter(values, dtype, count=n * k).reshape(n, k)
        return _matrix(cls, [features(r) for r in records], dtype)

    @classmethod
    def dicts_to_matrix(
        cls, rows: Sequence[Mapping[str, Any]], dtype: type[np.floating[Any]] = np.float32
    ) -> NDArray[Any]:
        """Validated rows keyed by wire name (e.g. ``model_dump()``) -> feature matrix."""
        return _matrix(cls, [[r[c.name] for c in cls.feature_columns()] for r in rows], dtype)

    @classmethod
    def table_to_matrix(
        cls, table: Mapping[str, np.ndarray], dtype: type[np.floating[Any]] = np.float32
    ) -> NDArray[Any]:
        """Columns read by :meth:`read_delimited` (keyed by wire name) -> feature matrix."""
        parts = []
        for c in cls.feature_columns():
            if c.name not in table:
                raise SchemaError(f"table has no column {c.name!r}; it has {sorted(table)}")
            values = np.asarray(table[c.name], dtype=dtype)
            parts.append(values.reshape(len(values), -1))
        if not parts:
            raise SchemaError(f"{cls.__name__} declares no feature columns")
        return np.ascontiguousarray(np.hstack(parts), dtype=dtype)

    @classmethod
    def records_from_arrays(cls, outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Predictor outputs (wire name -> array, one entry per row) -> JSON-ready dicts."""
        names = cls.__servefn_output_names__
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
                f"{cls.__name__} expects outputs {missing} that the model does not produce; "
                f"it produces {sorted(outputs)}"
            )
        lists = [_to_list(outputs[n]) for n in names]
        return [dict(zip(names, values)) for values in zip(*lists, strict=True)]  # noqa: B905

    @classmethod
    def from_arrays(cls, outputs: Mapping[str, Any]) -> list[Schema]:
        """Predictor outputs -> validated instances of this schema."""
        return [cls.model_validate(r, strict=False) for r in cls.records_from_arrays(outputs)]

    # -- delimited text ---------------------------------------------------------------------

    @classmethod
    def read_delimited(
        cls,
        path: str | PathLike[str],
        *,
        sep: str = ",",
        header: bool = False,
        encoding: str = "utf-8",
    ) -> dict[str, np.ndarray]:
        """Read a delimited text file into typed numpy columns by index (ML.NET's TextLoader).

        Blank lines are skipped; a malformed line raises :class:`~servefn.errors.DataFormatError`
        naming the file, line and column. Nothing is coerced silently.
        """
        from servefn.schema._delimited import read_columns

        return read_columns(path, cls.columns(), sep=sep, header=header, encoding=encoding)

    # -- portable spec ----------------------------------------------------------------------

    @classmethod
    def spec(cls) -> dict[str, Any]:
        """A JSON-serialisable description that :meth:`from_spec` turns back into a schema."""
        return {
            "title": cls.__name__,
            "extra": cls.model_config.get("extra", "forbid"),
            "columns": [c.spec() for c in cls.columns()],
        }

    @staticmethod
    def from_spec(spec: Mapping[str, Any]) -> type[Schema]:
        """Rebuild a schema class from :meth:`spec` output (e.g. a model manifest)."""
        return _schema_from_spec(_freeze(spec))


def _column_of(cls: type[BaseModel], field_name: str) -> Column:
    info = cls.model_fields[field_name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    raw_index = extra.get(_META_INDEX)
    start, end = _parse_index(raw_index if isinstance(raw_index, (int, str)) else None)
    role = extra.get(_META_ROLE, "feature")
    kind, nullable = _kind_of(cls.__name__, field_name, info.annotation)
    if kind == "vector" and start is not None and start == end:
        end = start
    if kind != "vector" and start != end:
        raise SchemaError(
            f"{cls.__name__}.{field_name}: an index range needs a list[float] field, "
            f"not {info.annotation}"
        )
    constraints = {
        k: v
        for m in info.metadata
        for k in _CONSTRAINTS
        if (v := getattr(m, k, None)) is not None
        and not (kind == "vector" and k.endswith("length"))
    }
    required = info.is_required()
    return Column(
        field=field_name,
        name=info.alias or field_name,
        kind=kind,
        role=role,  # type: ignore[arg-type]
        index=start,
        end=end if kind == "vector" else start,
        required=required,
        nullable=nullable,
        default=None if required else info.get_default(call_default_factory=True),
        description=info.description,
        constraints=constraints,
    )


def _kind_of(owner: str, field: str, annotation: Any) -> tuple[ColumnKind, bool]:
    """Map a field annotation to a column kind and whether None is allowed."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        if len(args) == 1:
            annotation = args[0]
    if annotation in _SCALAR_TYPES:
        return _SCALAR_TYPES[annotation], nullable
    if get_origin(annotation) in (list, Sequence) and get_args(annotation) in ((float,), (int,)):
        return "vector", nullable
    raise SchemaError(
        f"{owner}.{field}: type {annotation!r} is not supported; use float, int, bool, str, "
        "list[float] or an optional of one of them"
    )


def _matrix(cls: type[Schema], rows: Sequence[Sequence[Any]], dtype: Any) -> NDArray[Any]:
    if len(cls.__servefn_features__) != len(cls.__servefn_feature_names__):  # has vectors
        rows = [
            [v for cell in row for v in (cell if isinstance(cell, list) else [cell])]
            for row in rows
        ]
    out = np.array(rows, dtype=dtype)
    return out.reshape(len(rows), cls.n_features())


def _to_list(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        return values.tolist()  # type: ignore[no-any-return]
    return list(values)


def _freeze(value: Any) -> Any:
    """Turn a JSON-like value into a hashable one so rebuilt schema classes can be cached."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("__list__", *(_freeze(v) for v in value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == "__list__":
        return [_thaw(v) for v in value[1:]]
    if isinstance(value, tuple):
        return {k: _thaw(v) for k, v in value}
    return value


@cache
def _schema_from_spec(frozen: Any) -> type[Schema]:
    spec = _thaw(frozen)
    try:
        title = str(spec.get("title") or "Record")
        fields: dict[str, Any] = {}
        for col in spec["columns"]:
            kind = col["type"]
            annotation: Any = list[float] if kind == "vector" else _KIND_TYPES[kind]
            if col.get("nullable"):
                annotation = annotation | None
            index = col.get("index")
            fields[col["field"]] = (
                annotation,
                column(
                    tuple(index) if isinstance(index, list) else index,
                    name=col["name"],
                    role=col.get("role", "feature"),
                    default=PydanticUndefined if col.get("required", True) else col.get("default"),
                    description=col.get("description"),
                    **col.get("constraints", {}),
                ),
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise SchemaError(
            f"schema spec is malformed ({exc!r}); expected Schema.spec() output"
        ) from exc
    namespace: dict[str, Any] = {
        "__annotations__": {name: ann for name, (ann, _) in fields.items()},
        **{name: info for name, (_, info) in fields.items()},
        "model_config": ConfigDict(extra=spec.get("extra", "forbid")),
        "__module__": __name__,
    }
    return type(title, (Schema,), namespace)
