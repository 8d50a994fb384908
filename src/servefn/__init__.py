"""servefn: serve a trained model from an Azure Functions HTTP trigger.

Everything a user imports lives here, and is imported on first use: ``import servefn`` costs
only its version string, and ``from servefn import serve_http, Schema, column, save, load_model``
imports pydantic, numpy and azure.functions, never a storage SDK, scikit-learn or a web server.

Layers, each importing only those below it (``docs/architecture.md`` draws them)::

    cli/ -> devhost/ -> repository/, oip/ -> azure.py -> http/ -> loaders/ -> model/ -> ...
                                                         batch/ ----^
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from servefn._version import __version__

if TYPE_CHECKING:
    from servefn.azure import add_health_routes, serve_http
    from servefn.errors import (
        ArtifactError,
        DataFormatError,
        FeatureValueError,
        LoaderError,
        ModelUnavailable,
        PredictorError,
        SchemaError,
        ServefnError,
        UsageError,
    )
    from servefn.loaders import ModelSource, loader_for
    from servefn.model import LoadedModel, Predictions, Records, load_model, read_manifest
    from servefn.model._save import save
    from servefn.oip import add_inference_routes
    from servefn.predictors import Predictor
    from servefn.repository import serve_models
    from servefn.schema import Column, Schema, column

# public name -> "module:attribute", imported on first access (PEP 562)
_EXPORTS: dict[str, str] = {
    "add_health_routes": "servefn.azure:add_health_routes",
    "serve_http": "servefn.azure:serve_http",
    "ArtifactError": "servefn.errors:ArtifactError",
    "DataFormatError": "servefn.errors:DataFormatError",
    "FeatureValueError": "servefn.errors:FeatureValueError",
    "LoaderError": "servefn.errors:LoaderError",
    "ModelUnavailable": "servefn.errors:ModelUnavailable",
    "PredictorError": "servefn.errors:PredictorError",
    "SchemaError": "servefn.errors:SchemaError",
    "ServefnError": "servefn.errors:ServefnError",
    "UsageError": "servefn.errors:UsageError",
    "ModelSource": "servefn.loaders:ModelSource",
    "loader_for": "servefn.loaders:loader_for",
    "LoadedModel": "servefn.model:LoadedModel",
    "Predictions": "servefn.model:Predictions",
    "Records": "servefn.model:Records",
    "load_model": "servefn.model:load_model",
    "read_manifest": "servefn.model:read_manifest",
    "save": "servefn.model._save:save",
    "add_inference_routes": "servefn.oip:add_inference_routes",
    "Predictor": "servefn.predictors:Predictor",
    "serve_models": "servefn.repository:serve_models",
    "Column": "servefn.schema:Column",
    "Schema": "servefn.schema:Schema",
    "column": "servefn.schema:column",
}

__all__ = [
    "ArtifactError",
    "Column",
    "DataFormatError",
    "FeatureValueError",
    "LoadedModel",
    "LoaderError",
    "ModelSource",
    "ModelUnavailable",
    "Predictions",
    "Predictor",
    "PredictorError",
    "Records",
    "Schema",
    "SchemaError",
    "ServefnError",
    "UsageError",
    "__version__",
    "add_health_routes",
    "add_inference_routes",
    "column",
    "load_model",
    "loader_for",
    "read_manifest",
    "save",
    "serve_http",
    "serve_models",
]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'servefn' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
