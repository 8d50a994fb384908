"""Many models behind one app: a model repository served under ``models/{name}``.

A repository is a folder, a ``blob://container/prefix`` or any fsspec URL holding
``NAME/model.zip`` and ``NAME/VERSION/model.zip`` files with optional ``NAME/current`` aliases
(``_layout``). :class:`ModelRepository` lists it (``_stores``, cached and refreshed by
``_catalog``), loads each model on its first request through a
:class:`~servefn.loaders.ModelSource` of its own, and keeps the loaded ones in an LRU bounded
by a memory budget and a count (``_cache``); it is also the Open Inference Protocol's model
resolver. :func:`serve_models` adds its routes to a FunctionApp (``_functions``).

Layer: beside ``servefn.azure``, whose request adapters it uses; it may import ``azure.py``,
``servefn.oip`` (whose routes it adds, on demand), ``http/``,
``loaders/``, ``model/``, ``predictors/``, ``schema/`` and ``errors``; ``devhost/`` and ``cli/``
import it, and nothing else does.
"""

from servefn.repository._cache import (
    DEFAULT_MAX_MODELS,
    DEFAULT_MEMORY_BUDGET,
    MEMORY_BUDGET_SETTING,
    ModelOverBudget,
    memory_budget,
)
from servefn.repository._functions import serve_models
from servefn.repository._layout import ALIAS_FILE, MODEL_FILE, ModelNotFound
from servefn.repository._repository import ModelRepository
from servefn.repository._stores import RepositoryStore, StoredFile, store_for

__all__ = [
    "ALIAS_FILE",
    "DEFAULT_MAX_MODELS",
    "DEFAULT_MEMORY_BUDGET",
    "MEMORY_BUDGET_SETTING",
    "MODEL_FILE",
    "ModelNotFound",
    "ModelOverBudget",
    "ModelRepository",
    "RepositoryStore",
    "StoredFile",
    "memory_budget",
    "serve_models",
    "store_for",
]
