"""Typed input/output records with column mappings, after ML.NET's ``[Column]``/``[ColumnName]``.

A :class:`Schema` is a pydantic model whose fields are declared with :func:`column`: ``index`` is
the position in a delimited source file, ``name`` the wire name (the JSON key, ML.NET's column
name) and ``role`` says whether the column feeds the model (``feature``), is the training target
(``label``) or is carried along unused (``ignore``). What servefn derives from a class (ordered
feature columns, the float32 matrix a model expects, output records, the portable JSON spec that
goes into the model manifest) lives in its :class:`~servefn.schema.SchemaLayout`, so a user's
class keeps pydantic's namespace only.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticUndefined

from servefn.errors import SchemaError
from servefn.schema._integers import INTEGRAL
from servefn.schema._layout import SchemaLayout

__all__ = ["Column", "ColumnKind", "Role", "Schema", "column", "reserved_name"]

Role = Literal["feature", "label", "ignore"]
ColumnKind = Literal["float", "int", "bool", "str", "vector"]
_ROLES: tuple[str, ...] = ("feature", "label", "ignore")
_CONSTRAINTS = ("ge", "gt", "le", "lt", "min_length", "max_length")
_META_INDEX = "x-column"
_META_ROLE = "x-role"
_SCALAR_TYPES: dict[type, ColumnKind] = {float: "float", int: "int", bool: "bool", str: "str"}
_KIND_TYPES: dict[str, Any] = {"float": float, "int": int, "bool": bool, "str": str}
_PROTECTED = ("model_validate", "model_dump")  # pydantic's protected namespaces


def reserved_name(name: str) -> bool:
    """True for a field name that is pydantic's own: ``model_config``, an attribute of
    ``BaseModel`` such as ``model_fields``, or a protected namespace. pydantic only warns about
    most of them, and the field then shadows, or (``model_config``) silently replaces, its own."""
    return name.startswith("model_") and (hasattr(BaseModel, name) or name.startswith(_PROTECTED))


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

    __servefn_layout__: ClassVar[SchemaLayout]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        columns = tuple(_column_of(cls, f) for f in cls.model_fields)
        cls.__servefn_layout__ = SchemaLayout(cls, columns)
        _accept_integral_floats(cls, columns)


def _accept_integral_floats(cls: type[Schema], columns: tuple[Column, ...]) -> None:
    """Give each ``int`` field the one integer rule (``schema/_integers.py``): an integral
    float such as ``100.0`` is its int, ``100.5`` is refused. Classes without one are untouched."""
    fields = [cls.model_fields[c.field] for c in columns if c.kind == "int"]
    missing = [info for info in fields if INTEGRAL not in info.metadata]
    if not missing:
        return
    for info in missing:
        info.metadata.append(INTEGRAL)
    cls.model_rebuild(force=True)


def _column_of(cls: type[BaseModel], field_name: str) -> Column:
    if reserved_name(field_name):
        raise SchemaError(
            f"{cls.__name__}.{field_name}: the name is pydantic's own; rename the field and keep "
            "the wire name with column(name=...)"
        )
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
