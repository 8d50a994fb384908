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
from enum import Enum
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError, PydanticUndefined

from servefn.errors import SchemaError
from servefn.schema._categories import categories_of, listed
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
    categories: tuple[Any, ...] | None = None
    """The allowed values of a categorical column (``Literal``, ``Enum``, or a vocabulary from a
    model manifest); None when any value of the type is allowed."""

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
        if self.categories is not None:
            out["categories"] = list(self.categories)
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
        _accept_plain_values(cls, columns)


def _accept_plain_values(cls: type[Schema], columns: tuple[Column, ...]) -> None:
    """Give each ``int`` field the one integer rule (``schema/_integers.py``): an integral
    float such as ``100.0`` is its int, ``100.5`` is refused; and each ``Enum`` field its
    members' values, which strict validation takes only from JSON. Other classes are untouched."""
    added = False
    for c in columns:
        info = cls.model_fields[c.field]
        rule = INTEGRAL if c.kind == "int" and c.categories is None else _enum_rule(info)
        if rule is not None and rule not in info.metadata:
            info.metadata.append(rule)
            added = True
    if added:
        cls.model_rebuild(force=True)


@cache
def _member_of(enum: type[Enum]) -> BeforeValidator:
    """A value of ``enum`` -> its member (other values go on to be refused by pydantic)."""
    members = {member.value: member for member in enum}
    text = listed(list(members)).replace("{", "{{").replace("}", "}}")  # a message template
    message = f"Input should be one of {text}"

    def to_member(value: Any) -> Any:
        if isinstance(value, enum):
            return value
        if type(value) in (str, int):
            if value in members:
                return members[value]
            raise PydanticCustomError("enum", message)
        return value

    return BeforeValidator(to_member)


def _enum_rule(info: Any) -> BeforeValidator | None:
    annotation = info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _member_of(annotation)
    return None


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
    kind, nullable, categories = _kind_of(cls.__name__, field_name, info.annotation)
    categories = _vocabulary(info.metadata) or categories
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
        categories=categories,
    )


def _vocabulary(metadata: Sequence[Any]) -> tuple[Any, ...] | None:
    """A vocabulary set by ``schema_from_spec`` (the enum of the type's JSON schema)."""
    for item in metadata:
        schema = getattr(item, "json_schema", None)
        if isinstance(schema, dict) and isinstance(schema.get("enum"), list):
            return tuple(schema["enum"])
    return None


def _kind_of(
    owner: str, field: str, annotation: Any
) -> tuple[ColumnKind, bool, tuple[Any, ...] | None]:
    """Map a field annotation to a column kind, whether None is allowed and, for a
    ``Literal`` or ``Enum`` (a categorical column), its allowed values."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        if len(args) == 1:
            annotation = args[0]
    vocabulary = None
    if get_origin(annotation) is Annotated:  # e.g. a vocabulary from schema_from_spec
        annotation, *metadata = get_args(annotation)
        vocabulary = _vocabulary(metadata)
    if annotation in _SCALAR_TYPES:
        return _SCALAR_TYPES[annotation], nullable, vocabulary
    try:
        found = categories_of(annotation)
    except SchemaError as exc:
        raise SchemaError(f"{owner}.{field}: {exc}") from None
    if found is not None:
        base, values = found
        return _SCALAR_TYPES[base], nullable, values
    if get_origin(annotation) in (list, Sequence) and get_args(annotation) in ((float,), (int,)):
        return "vector", nullable, None
    raise SchemaError(
        f"{owner}.{field}: type {annotation!r} is not supported; use float, int, bool, str, "
        "a Literal or Enum of strings or integers, list[float], or an optional of one of them"
    )
