"""Typed records with column mappings: the input and output schemas of a model.

The schema layer is the bottom of servefn: it may import ``servefn.errors`` and nothing else of
servefn. Delimited text is read here too, by column index, as ML.NET's TextLoader does.
"""

from servefn.schema._schema import Column, Schema, column

__all__ = ["Column", "Schema", "column"]
