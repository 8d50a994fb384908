"""Categorical features' vocabularies, from the model's encoders into the input schema.

An encoder that refuses unknown values (scikit-learn's OneHotEncoder or OrdinalEncoder with
``handle_unknown="error"``) fixes the values a text feature may take. ``save`` writes them into
the manifest's input spec as the column's ``categories``, so the served schema validates them
(a 422 naming the field and the allowed values), OpenAPI lists them as an ``enum`` and the load
probe uses them. A ``Literal`` or ``Enum`` feature keeps its own values, which must all be known
to the encoder. An encoder that ignores unknown values leaves the column open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servefn.errors import PredictorError
from servefn.predictors import Predictor
from servefn.schema import layout_of, schema_from_spec
from servefn.schema._categories import MAX_CATEGORIES, listed
from servefn.schema._schema import Schema

__all__ = ["with_vocabularies"]


def with_vocabularies(schema: type[Schema], predictor: Predictor) -> type[Schema]:
    """``schema``, with each text feature's closed vocabulary (from ``predictor``) as its
    categories; ``schema`` itself when there is none to add."""
    found = getattr(predictor, "vocabularies", None)
    vocabularies: Mapping[int, list[Any]] = found() if callable(found) else {}
    if not vocabularies:
        return schema
    layout = layout_of(schema)
    spec = layout.spec()
    by_field = {c["field"]: c for c in spec["columns"]}
    changed = False
    start = 0
    for column in layout.features:
        known = vocabularies.get(start) if column.kind == "str" and column.size == 1 else None
        start += column.size
        if known is None:
            continue
        if column.categories is not None:
            unknown = [v for v in column.categories if v not in set(known)]
            if unknown:
                raise PredictorError(
                    f"{schema.__name__}.{column.field} allows {listed(unknown)}, which the "
                    f"model's encoder never saw and refuses; it knows {listed(known)}"
                )
            continue
        if len(known) <= MAX_CATEGORIES and all(type(v) is str for v in known):
            by_field[column.field]["categories"] = list(known)
            changed = True
    return schema_from_spec(spec) if changed else schema
