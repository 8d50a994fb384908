"""Schema classes rebuilt from the portable spec a model manifest carries.

The rebuilt classes are cached by spec so that a model reloaded with the same manifest reuses its
classes; the cache is bounded, since a refresh loop can feed it specs without end. A spec comes
from a file, so its field names are held to what a schema class can declare: a Python identifier,
each once, never one of pydantic's own names (``model_config``, ``model_fields``, ...), which
would silently drop or shadow the column. Wire names are checked with every schema class's, by
its layout. Any other spec pydantic cannot build is a :class:`SchemaError`.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import ConfigDict
from pydantic_core import PydanticUndefined
from pydantic_core import SchemaError as CoreSchemaError

from servefn.errors import SchemaError
from servefn.schema._categories import categorical
from servefn.schema._schema import Schema, column, reserved_name

__all__ = ["SPEC_CACHE_SIZE", "schema_from_spec"]

SPEC_CACHE_SIZE = 64
"""How many rebuilt schema classes are kept (two per model: input and output)."""
_KIND_TYPES: dict[str, Any] = {"float": float, "int": int, "bool": bool, "str": str}


def schema_from_spec(spec: Mapping[str, Any]) -> type[Schema]:
    """Rebuild a schema class from ``layout_of(cls).spec()`` output (e.g. a model manifest)."""
    return _schema_from_spec(_freeze(spec))


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


@lru_cache(maxsize=SPEC_CACHE_SIZE)
def _schema_from_spec(frozen: Any) -> type[Schema]:
    spec = _thaw(frozen)
    try:
        title = str(spec.get("title") or "Record")
        fields: dict[str, Any] = {}
        for col in spec["columns"]:
            _check_field_name(col["field"], fields)
            kind = col["type"]
            annotation: Any = list[float] if kind == "vector" else _KIND_TYPES[kind]
            categories = col.get("categories")
            if categories is not None:
                annotation = _vocabulary(col["field"], kind, categories)
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
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise SchemaError(
            f"schema spec is malformed ({_clip(exc)}); expected layout_of(schema).spec() output"
        ) from exc
    namespace: dict[str, Any] = {
        "__annotations__": {name: ann for name, (ann, _) in fields.items()},
        **{name: info for name, (_, info) in fields.items()},
        "model_config": ConfigDict(extra=spec.get("extra", "forbid")),
        "__module__": "servefn.schema",
    }
    try:
        return type(title, (Schema,), namespace)
    except SchemaError:
        raise
    except (TypeError, ValueError, CoreSchemaError) as exc:  # a constraint pydantic refuses
        raise SchemaError(f"schema spec {title!r} cannot be built ({_clip(exc)})") from exc


def _vocabulary(field: str, kind: str, categories: Any) -> Any:
    """The type of a categorical column listed with its ``categories``."""
    base = {"str": str, "int": int}.get(kind)
    if base is None or not isinstance(categories, list) or not categories:
        raise SchemaError(
            f"schema spec field {field!r}: categories need a str or int column and a non-empty list"
        )
    if not all(type(value) is base for value in categories):
        raise SchemaError(f"schema spec field {field!r}: every category must be a {kind}")
    if len(set(categories)) != len(categories):
        raise SchemaError(f"schema spec field {field!r} lists a category twice")
    return categorical(base, categories)


def _check_field_name(name: Any, fields: Mapping[str, Any]) -> None:
    """Refuse a field name a schema class cannot declare, or one already used."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SchemaError(f"schema spec field {_clip(name)} is not a Python identifier")
    if name.startswith("_"):
        raise SchemaError(f"schema spec field {name!r} starts with '_', which pydantic ignores")
    if reserved_name(name):
        raise SchemaError(
            f"schema spec field {name!r} is one of pydantic's own names; a schema cannot declare it"
        )
    if name in fields:
        raise SchemaError(f"schema spec declares field {name!r} twice")


def _clip(value: Any, limit: int = 120) -> str:
    """A value for a message: repr (control characters escaped), clipped."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
