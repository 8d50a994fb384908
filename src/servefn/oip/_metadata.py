"""Model and server metadata, derived from a model's schemas.

Inputs are one tensor per column a client sends (every feature, and any other column without a
default): FP64 for numbers, INT64 for integers, BOOL, BYTES for text, FP64 ``[-1, size]`` for a
vector column. Outputs follow :data:`~servefn.oip._response.OUTPUT_DATATYPES`. ``-1`` is the
batch dimension (any number of rows). The feature-matrix form a request may use instead is
described in the model's ``parameters`` (the protocol's parameters hold scalars only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from servefn._version import __version__
from servefn.model._archive import LoadedModel
from servefn.oip._inputs import input_plan
from servefn.oip._response import OUTPUT_DATATYPES, output_plan
from servefn.schema._schema import Column

__all__ = ["EXTENSIONS", "PLATFORM", "model_metadata", "server_metadata"]

PLATFORM = "servefn"
EXTENSIONS = ("binary_tensor_data",)
_INPUT_DATATYPES = {
    "float": "FP64",
    "int": "INT64",
    "bool": "BOOL",
    "str": "BYTES",
    "vector": "FP64",
}


def server_metadata() -> dict[str, Any]:
    """``GET v2``: the server's name, version and protocol extensions."""
    return {"name": PLATFORM, "version": __version__, "extensions": list(EXTENSIONS)}


def model_metadata(name: str, versions: Sequence[str], model: LoadedModel) -> dict[str, Any]:
    """``GET v2/models/{name}``: named tensors with datatype and shape, from the schemas."""
    plan = input_plan(model.input_schema)
    document: dict[str, Any] = {"name": name}
    if versions:
        document["versions"] = list(versions)
    document["platform"] = PLATFORM
    document["inputs"] = [_tensor(c, _INPUT_DATATYPES[c.kind], input=True) for c in plan.inputs]
    document["outputs"] = [
        _tensor(c, OUTPUT_DATATYPES[c.kind], input=False)
        for c in output_plan(model.output_schema).columns.values()
    ]
    if plan.numeric:
        document["parameters"] = {
            "feature_matrix": (
                f"one FP32 or FP64 input of shape [-1, {plan.n_features}] (any name that is "
                "not an input's), the features in the order of inputs, may replace them"
            )
        }
    return document


def _tensor(column: Column, datatype: str, *, input: bool) -> dict[str, Any]:
    if column.kind != "vector":
        shape = [-1]
    else:  # an input's width is declared by its index range; an output's is the model's
        shape = [-1, column.size if input and column.end is not None else -1]
    return {"name": column.name, "datatype": datatype, "shape": shape}
