"""servefn: serve a trained model from an Azure Functions HTTP trigger.

Importing ``servefn`` is light (pydantic, numpy); training and scikit-learn export are imported
only when used, so the serving path keeps its cold start short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .artifact import LoadedModel, read_manifest, read_model
from .errors import (
    ArtifactError,
    DataFormatError,
    LoaderError,
    ModelUnavailable,
    PredictorError,
    SchemaError,
    ServefnError,
)
from .predictors import Predictor
from .schema import Column, Schema, column

if TYPE_CHECKING:
    from .persistence import save

__all__ = [
    "ArtifactError",
    "Column",
    "DataFormatError",
    "LoadedModel",
    "LoaderError",
    "ModelUnavailable",
    "Predictor",
    "PredictorError",
    "Schema",
    "SchemaError",
    "ServefnError",
    "__version__",
    "column",
    "load_model",
    "read_manifest",
    "read_model",
    "save",
]

load_model = read_model


def __getattr__(name: str) -> Any:
    if name == "save":
        from .persistence import save

        return save
    raise AttributeError(f"module 'servefn' has no attribute {name!r}")
