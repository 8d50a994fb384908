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
schemes with :func:`register_loader`.
"""

from __future__ import annotations

import importlib
import os
import re
from os import PathLike
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from servefn.loaders.base import Fetched, ModelLoader, redact
from servefn.loaders.local import LocalLoader
from servefn.loaders.memory import MemoryLoader
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
]


class LoaderSpec(NamedTuple):
    """A registry entry: the loader class as ``"module:Class"``, imported when first needed."""

    target: str
    missing: str = ""
    """What to tell the user when the class cannot be imported."""


_AZURE = "the Azure loaders need azure-storage-blob and adlfs: pip install 'servefn[azure]'"
_FSSPEC = "servefn.loaders.remote:FsspecLoader"

_registry: dict[str, LoaderSpec] = {
    "file": LoaderSpec("servefn.loaders.local:LocalLoader"),
    "blob": LoaderSpec("servefn.loaders.blob:BlobLoader", _AZURE),
    "az": LoaderSpec(_FSSPEC, _AZURE),
    "abfs": LoaderSpec(_FSSPEC, _AZURE),
    "abfss": LoaderSpec(_FSSPEC, _AZURE),
}
registry = MappingProxyType(_registry)
"""Scheme -> :class:`LoaderSpec` (read-only). Schemes not listed go to fsspec."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters or more: "C:\\" is a path


def register_loader(scheme: str, target: str, *, clobber: bool = False, missing: str = "") -> None:
    """Serve ``scheme://`` URLs with the loader class at ``target`` (``"module:Class"``).

    The class is imported on first use and called as ``Class(uri, **options)``. Replacing an
    existing scheme with a different target needs ``clobber=True``.
    """
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    existing = _registry.get(scheme)
    if existing is not None and existing.target != target and not clobber:
        raise ValueError(
            f"scheme {scheme!r} is already served by {existing.target}; pass clobber=True"
        )
    _registry[scheme] = LoaderSpec(target, missing)


def loader_for(uri_or_path: str | PathLike[str], **options: Any) -> ModelLoader:
    """Build the loader for a path or URL; ``options`` go to the loader's constructor."""
    text = os.fspath(uri_or_path)
    match = _SCHEME.match(text)
    if match is None:
        return LocalLoader(text, **options)
    spec = _registry.get(match.group(1).lower(), LoaderSpec(_FSSPEC))
    loader: ModelLoader = _import(spec)(text, **options)
    return loader


def _import(spec: LoaderSpec) -> Any:
    module_name, _, attribute = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(spec.missing or f"cannot import {spec.target}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"{module_name} has no loader class {attribute!r}") from None


def __getattr__(name: str) -> Any:
    """Import the SDK-backed loaders only when asked for by name."""
    if name == "BlobLoader":
        return _import(LoaderSpec("servefn.loaders.blob:BlobLoader", _AZURE))
    if name == "FsspecLoader":
        return _import(LoaderSpec(_FSSPEC))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
