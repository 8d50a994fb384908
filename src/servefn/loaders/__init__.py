"""Where models come from: loaders by URL scheme, and :class:`ModelSource`, the cached model.

::

    loader_for("model.zip")                       LocalLoader     (a path, or file://)
    loader_for("blob://models/model.zip")         BlobLoader      (azure-storage-blob)
    loader_for("az://models/model.zip")           FsspecLoader    (adlfs; also abfs://)
    loader_for("s3://bucket/model.zip")           FsspecLoader    (any other fsspec URL)

``blob://container/path`` is servefn's own scheme for :class:`BlobLoader`: one conditional GET
per check and no aiohttp, so it is the lighter choice on Azure. Both Azure loaders take
``connection=`` with the meaning it has on a Functions binding (default
``AzureWebJobsStorage``).

Like fsspec's registry, :data:`registry` maps a scheme to ``"module:Class"`` and the class is
imported on first use, so importing this package imports no storage SDK. Third parties add
schemes with :func:`register_loader`. ``connection`` applies to Azure Storage URLs only
(:func:`takes_connection`); :func:`loader_for` refuses it with any other location. Both rules
live in :mod:`servefn.loaders.schemes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from servefn._registry import Entry, import_target
from servefn.loaders.base import Fetched, ModelLoader, redact
from servefn.loaders.local import LocalLoader
from servefn.loaders.memory import MemoryLoader
from servefn.loaders.schemes import (
    _BLOB,
    _FSSPEC,
    loader_for,
    register_loader,
    registry,
    takes_connection,
)
from servefn.loaders.schemes import _registry as _registry  # undoes register_loader: .pop(name)
from servefn.loaders.source import ModelSource, SourceStats

if TYPE_CHECKING:
    from servefn.loaders.blob import BlobLoader
    from servefn.loaders.remote import FsspecLoader

__all__ = [
    "BlobLoader",
    "Fetched",
    "FsspecLoader",
    "LoaderSpec",
    "LocalLoader",
    "MemoryLoader",
    "ModelLoader",
    "ModelSource",
    "SourceStats",
    "loader_for",
    "redact",
    "register_loader",
    "registry",
    "takes_connection",
]

LoaderSpec = Entry
"""A :data:`registry` entry: ``(target, missing)``, the loader class as ``"module:Class"`` and
what to tell the user when it cannot be imported."""


def __getattr__(name: str) -> Any:
    """Import the SDK-backed loaders only when asked for by name."""
    if name == "BlobLoader":
        return import_target(_BLOB)
    if name == "FsspecLoader":
        return import_target(_FSSPEC)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
