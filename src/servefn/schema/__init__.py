"""Typed records with column mappings: the input and output schemas of a model.

The schema layer is the bottom of servefn: it may import ``servefn.errors`` and nothing else of
servefn. A :class:`Schema` subclass is a plain pydantic model; what servefn derives from it (the
ordered feature columns, record/array conversions, the manifest spec) is its
:class:`SchemaLayout` (``layout_of(cls)``). Delimited text is read by column index, as ML.NET's
TextLoader does (``read_delimited``).
"""

from servefn.schema._delimited import read_delimited
from servefn.schema._layout import SchemaLayout, layout_of
from servefn.schema._schema import Column, Schema, column
from servefn.schema._spec import schema_from_spec

__all__ = [
    "Column",
    "Schema",
    "SchemaLayout",
    "column",
    "layout_of",
    "read_delimited",
    "schema_from_spec",
]
