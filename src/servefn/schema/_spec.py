"""Schema classes rebuilt from the portable spec a model manifest carries.

The rebuilt classes are cached by spec so that a model reloaded with the same manifest reuses its
classes; the cache is bounded, since a refresh loop can feed it specs without end.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from pydantic import ConfigDict
from pydantic_core import PydanticUndefined

from servefn.errors import SchemaError
from servefn.schema._schema import Schema, column

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
            f"schema spec is malformed ({exc!r}); expected layout_of(schema).spec() output"
        ) from exc
    namespace: dict[str, Any] = {
        "__annotations__": {name: ann for name, (ann, _) in fields.items()},
        **{name: info for name, (_, info) in fields.items()},
        "model_config": ConfigDict(extra=spec.get("extra", "forbid")),
        "__module__": "servefn.schema",
    }
    return type(title, (Schema,), namespace)
