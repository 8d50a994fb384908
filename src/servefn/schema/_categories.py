"""Categorical columns: a closed set of allowed values, checked as a record is validated.

A feature typed ``Literal[...]`` or an ``Enum`` is categorical by its type, and pydantic checks
it. A ``str`` (or ``int``) column rebuilt from a model manifest that lists the column's
``categories`` (the vocabulary an encoder learned at export) gets :func:`categorical`: one set
lookup per value, a 422 message that names a bounded number of the allowed values, and an
OpenAPI ``enum``. A vocabulary larger than :data:`MAX_CATEGORIES` is refused with the manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from servefn.errors import SchemaError

__all__ = ["MAX_CATEGORIES", "MAX_LISTED", "categorical", "categories_of", "listed"]

MAX_CATEGORIES = 1 << 16
"""Values one categorical column may list (65,536), in a manifest or a type."""
MAX_LISTED = 20
"""Allowed values quoted in one error message; the rest are counted."""
_CATEGORY_TYPES = (str, int)


def categories_of(annotation: Any) -> tuple[type, tuple[Any, ...]] | None:
    """``(str or int, values)`` for a ``Literal`` or ``Enum`` annotation, else None."""
    if get_origin(annotation) is Literal:
        values = get_args(annotation)
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        values = tuple(member.value for member in annotation)
    else:
        return None
    for base in _CATEGORY_TYPES:
        if values and all(type(v) is base for v in values):
            return base, values
    raise SchemaError(
        f"{annotation!r}: a categorical column's values must all be strings or all integers"
    )


def categorical(base: type, categories: Sequence[Any]) -> Any:
    """``base`` (str or int) restricted to ``categories``, listed as an OpenAPI ``enum``."""
    if len(categories) > MAX_CATEGORIES:
        raise SchemaError(
            f"a categorical column lists {len(categories)} values, over the cap of {MAX_CATEGORIES}"
        )
    allowed = frozenset(categories)
    text = listed(categories).replace("{", "{{").replace("}", "}}")  # a message template
    message = f"Input should be one of {text}"

    def check(value: Any) -> Any:
        if value not in allowed:
            raise PydanticCustomError("enum", message)
        return value

    kind = "string" if base is str else "integer"
    schema = {"type": kind, "enum": list(categories)}
    return Annotated[base, AfterValidator(check), WithJsonSchema(schema)]


def listed(categories: Sequence[Any]) -> str:
    """The allowed values for a message: the first :data:`MAX_LISTED`, the rest counted."""
    shown = ", ".join(repr(c)[:40] for c in categories[:MAX_LISTED])
    more = len(categories) - MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")
