"""Caps on what a model manifest may declare, checked before anything is built from it.

A manifest is a few KB of JSON that says how big everything else is: a vector column's index
range becomes that many feature names, ``classes`` becomes a label array, a column list becomes
a pydantic class. None of it is trusted. :func:`check_manifest` holds the parsed manifest against
the named caps below and against what the payload really holds (its verified byte size) before
any schema class is built or any array allocated; ``read_manifest``, ``load_model`` and
``write_model`` all run it, so a model that saves also loads. The rest of the chain is bounded
where the data is read: the manifest's bytes and nesting as it is parsed (``_archive.py``),
``.npy`` headers against their member's size before an array is allocated, and every zip
member's compression against :data:`MAX_INFLATE_RATIO` (``predictors/_npz.py``). Field names
and wire names are checked as the schema classes are built (``schema/``).

Each cap is far above what a real model declares and low enough that a hostile manifest costs
a few tens of MB and well under a second before it is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from servefn.errors import ArtifactError
from servefn.predictors._npz import MAX_INFLATE_RATIO
from servefn.schema._categories import MAX_CATEGORIES

__all__ = [
    "MAX_CATEGORIES",
    "MAX_CLASSES",
    "MAX_COLUMNS",
    "MAX_COLUMN_INDEX",
    "MAX_DEPTH",
    "MAX_FEATURES",
    "MAX_INFLATE_RATIO",
    "MAX_MANIFEST_BYTES",
    "MAX_NAME_CHARS",
    "MAX_STRING_CHARS",
    "MIN_FEATURE_BUDGET",
    "check_manifest",
]

MAX_MANIFEST_BYTES = 4 << 20
"""``servefn.json`` unpacked (4 MiB); parsing the worst JSON of that size costs about 100 MB."""
MAX_DEPTH = 32
"""Nesting of the manifest's objects and arrays (servefn writes 5 levels)."""
MAX_STRING_CHARS = 64 << 10
"""Any string in the manifest, keys included (64 Ki characters)."""
MAX_NAME_CHARS = 1024
"""A model kind, a schema title, a column's field or wire name."""
MAX_COLUMNS = 4096
"""Columns of one schema: each becomes a pydantic field (4096 build in about 0.3 s)."""
MAX_FEATURES = 1 << 18
"""Feature-matrix columns of one schema, vector slots included (262,144: a 512 x 512 image)."""
MIN_FEATURE_BUDGET = 4096
"""Features every model may declare; beyond it each feature needs a byte of payload."""
MAX_COLUMN_INDEX = 1 << 24
"""The largest source-file column index a column may declare."""
MAX_CLASSES = 1 << 16
"""Labels in a predictor's ``classes`` (65,536)."""
MAX_INT = 1 << 63
"""Integers in the manifest stay within 64 bits, so no conversion overflows."""

# tuples, not sets: a manifest value may be unhashable (a list), and `in` must not raise
_KINDS = ("float", "int", "bool", "str", "vector")
_ROLES = ("feature", "label", "ignore")
_EXTRA = ("forbid", "ignore", "allow")
_SCALARS = (str, int, float, bool)


def check_manifest(manifest: Mapping[str, Any], payload_sizes: Mapping[str, int]) -> None:
    """Raise :class:`ArtifactError` (one line) unless ``manifest`` is within every cap.

    ``payload_sizes`` are the verified sizes of the payload files: a schema may declare
    :data:`MIN_FEATURE_BUDGET` features, and beyond that no more features than payload bytes
    (a linear model holds 8 per feature and class), so a tiny archive cannot declare a huge one.
    """
    _check_tree(manifest if isinstance(manifest, dict) else dict(manifest))
    kind = manifest.get("kind")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_NAME_CHARS:
        raise ArtifactError(f"the manifest's kind must be a name, not {_show(kind)}")
    for key in ("predictor", "training"):
        if not isinstance(manifest.get(key, {}), Mapping):
            raise ArtifactError(f"the manifest's {key!r} must be an object")
    budget = min(MAX_FEATURES, max(MIN_FEATURE_BUDGET, sum(payload_sizes.values())))
    for key in ("input", "output"):
        _check_spec(key, manifest[key], budget)
    classes = manifest.get("predictor", {}).get("classes")
    if classes is not None:
        if not isinstance(classes, list):
            raise ArtifactError(
                f"the predictor's classes must be a list of labels, not a {type(classes).__name__}"
            )
        if len(classes) > MAX_CLASSES:
            raise ArtifactError(
                f"the predictor declares {len(classes)} classes, over the cap of {MAX_CLASSES}"
            )
        if not all(isinstance(c, _SCALARS) for c in classes):
            raise ArtifactError("the predictor's classes must be strings or numbers")


def _check_tree(value: dict[str, Any] | list[Any], depth: int = 1) -> None:
    """Nesting depth, string lengths and number ranges of the whole manifest.

    Recursive, and cut off at :data:`MAX_DEPTH`: the parser has already bounded the real depth.
    """
    if depth > MAX_DEPTH:
        raise ArtifactError(f"the manifest is nested over {MAX_DEPTH} levels deep")
    if type(value) is dict:
        for key in value:
            if len(key) > MAX_STRING_CHARS:
                raise ArtifactError(f"the manifest has a key of {len(key)} characters")
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str:
            if len(item) > MAX_STRING_CHARS:
                raise ArtifactError(
                    f"the manifest has a string of {len(item)} characters, over the cap of "
                    f"{MAX_STRING_CHARS}"
                )
        elif kind is dict or kind is list:
            _check_tree(item, depth + 1)
        elif kind is int:
            if not -MAX_INT <= item < MAX_INT:
                raise ArtifactError("the manifest has an integer beyond 64 bits")
        elif kind is float and not math.isfinite(item):
            raise ArtifactError("the manifest has a number too large for a float")


def _check_spec(key: str, spec: Any, budget: int) -> None:
    """One schema spec: its columns, their names, kinds, index ranges and total width."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("columns"), list):
        raise ArtifactError(f"the manifest's {key!r} schema must be an object with a column list")
    title = spec.get("title", "Record")
    if not isinstance(title, str) or len(title) > MAX_NAME_CHARS:
        raise ArtifactError(f"the {key} schema's title must be a name, not {_show(title)}")
    if spec.get("extra", "forbid") not in _EXTRA:
        raise ArtifactError(f"the {key} schema's extra must be one of {_EXTRA}")
    columns = spec["columns"]
    if len(columns) > MAX_COLUMNS:
        raise ArtifactError(
            f"the {key} schema declares {len(columns)} columns, over the cap of {MAX_COLUMNS}"
        )
    width = 0
    for column in columns:
        if not isinstance(column, Mapping):
            raise ArtifactError(f"a column of the {key} schema is not an object")
        width += _check_column(key, column)
        if width > budget:
            raise ArtifactError(
                f"the {key} schema declares over {budget} features, more than the model's "
                f"payload can hold (cap {MAX_FEATURES}); refusing it"
            )


def _check_column(key: str, column: Mapping[str, Any]) -> int:
    """One column's names, kind, role and index; returns its feature-matrix width."""
    for part in ("field", "name"):
        name = column.get(part)
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
            raise ArtifactError(
                f"a column of the {key} schema has a {part} that is not a name: {_show(name)}"
            )
    where = f"column {_show(column['name'])} of the {key} schema"
    kind = column.get("type")
    if kind not in _KINDS:
        raise ArtifactError(f"{where} has type {_show(kind)}; expected one of {_KINDS}")
    if column.get("role", "feature") not in _ROLES:
        raise ArtifactError(f"{where} has role {_show(column.get('role'))}")
    for flag in ("required", "nullable"):
        if not isinstance(column.get(flag, False), bool):
            raise ArtifactError(f"{where}: {flag!r} must be true or false")
    if not isinstance(column.get("constraints", {}), Mapping):
        raise ArtifactError(f"{where}: 'constraints' must be an object")
    if not isinstance(column.get("description", ""), (str, type(None))):
        raise ArtifactError(f"{where}: 'description' must be a string")
    categories = column.get("categories")
    if categories is not None and (
        not isinstance(categories, list) or len(categories) > MAX_CATEGORIES
    ):
        size = len(categories) if isinstance(categories, list) else _show(categories)
        raise ArtifactError(
            f"{where} lists {size} categories; expected a list of at most {MAX_CATEGORIES}"
        )
    index = column.get("index")
    if index is None:
        return 1
    pair = index if kind == "vector" and type(index) is not int else [index, index]
    if (
        not isinstance(pair, list)
        or len(pair) != 2
        or not all(type(i) is int and 0 <= i <= MAX_COLUMN_INDEX for i in pair)
        or pair[1] < pair[0]
    ):
        expected = "[start, end]" if kind == "vector" else "a column number"
        raise ArtifactError(
            f"{where} has index {_show(index)}; expected {expected} within 0-{MAX_COLUMN_INDEX}"
        )
    width: int = pair[1] - pair[0] + 1
    if width > MAX_FEATURES:
        raise ArtifactError(
            f"{where} declares {width} values per row, over the cap of {MAX_FEATURES}"
        )
    return width if column.get("role", "feature") == "feature" else 1


def _show(value: Any, limit: int = 60) -> str:
    """A manifest value for a message: repr (control characters escaped), clipped."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
