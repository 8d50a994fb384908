"""Which loader serves a location, and which locations take a ``connection``.

The one place that reads a URL scheme out of a location and owns two rules:

- scheme -> loader: :data:`registry` (``"module:Class"``, imported on first use) and
  :func:`loader_for`; a plain path or ``file://`` is a :class:`LocalLoader`, a scheme not
  registered goes to fsspec;
- ``connection`` (an app setting, as on a Functions binding) applies to Azure Storage URLs only
  (:data:`CONNECTION_SCHEMES`); given with anything else (a path, ``s3://``, ``memory://``) it is
  a usage mistake, :class:`ConnectionNotApplicable`, never silently ignored.

``servefn.loaders`` re-exports the public names; this module exists so that the loaders and
:class:`~servefn.loaders.ModelSource` can use the rules without importing the package.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from os import PathLike
from typing import Any

from servefn._registry import Entry, LazyRegistry
from servefn.errors import UsageError
from servefn.loaders.base import ModelLoader, redact
from servefn.loaders.local import LocalLoader

__all__ = [
    "ADLFS_SCHEMES",
    "CONNECTION_SCHEMES",
    "ConnectionNotApplicable",
    "check_connection",
    "loader_for",
    "register_loader",
    "registry",
    "scheme_of",
    "takes_connection",
]

ADLFS_SCHEMES = ("az", "abfs", "abfss")
"""adlfs' protocols for Azure Storage, read by :class:`~servefn.loaders.FsspecLoader`."""
CONNECTION_SCHEMES = ("blob", *ADLFS_SCHEMES)
"""The schemes whose loaders take ``connection=``: Azure Storage."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters or more: "C:\\" is a path
_AZURE = "the Azure loaders need azure-storage-blob and adlfs: pip install 'servefn[azure]'"
_BLOB = Entry("servefn.loaders.blob:BlobLoader", _AZURE)
_FSSPEC = Entry("servefn.loaders.remote:FsspecLoader")

_registry = LazyRegistry(
    "scheme",
    {
        "file": Entry("servefn.loaders.local:LocalLoader"),
        "blob": _BLOB,
        **{scheme: _FSSPEC._replace(missing=_AZURE) for scheme in ADLFS_SCHEMES},
    },
)
registry = _registry.view
"""Scheme -> ``Entry(target, missing)`` (read-only). Schemes not listed go to fsspec."""


def scheme_of(location: str | PathLike[str]) -> str | None:
    """The lower-case URL scheme of ``location``; None for a path (``C:\\`` included)."""
    match = _SCHEME.match(os.fspath(location))
    return match.group(1).lower() if match else None


def takes_connection(location: str | PathLike[str]) -> bool:
    """True when ``location`` is an Azure Storage URL, whose loader takes ``connection=``."""
    return scheme_of(location) in CONNECTION_SCHEMES


class ConnectionNotApplicable(UsageError, ValueError):
    """A ``connection`` was given with locations that take none (a path, ``s3://``...).

    A :class:`~servefn.errors.UsageError` (CLI exit code 2); also a :class:`ValueError`, as a
    constructor argument that does not fit.
    """


def check_connection(
    connection: str | None,
    *locations: str | PathLike[str],
    option: str = "connection=",
    schemes: Sequence[str] = CONNECTION_SCHEMES,
) -> None:
    """Raise :class:`ConnectionNotApplicable` when ``connection`` is given and no location
    takes one; ``option`` is how the caller spells the argument (``"--connection"``)."""
    if connection is None or any(scheme_of(where) in schemes for where in locations):
        return
    shown = " or ".join(redact(os.fspath(where)) for where in locations)
    raise ConnectionNotApplicable(
        f"{option} applies to {', '.join(s + '://' for s in schemes)} URLs (Azure Storage), "
        f"not to {shown}; drop it, or point at Azure Storage instead"
    )


def register_loader(scheme: str, target: str, *, clobber: bool = False, missing: str = "") -> None:
    """Serve ``scheme://`` URLs with the loader class at ``target`` (``"module:Class"``).

    The class is imported on first use and called as ``Class(uri, **options)``; ``missing`` is
    shown when that import fails. Replacing an existing scheme with a different target needs
    ``clobber=True``.
    """
    _registry.register(scheme.lower(), target, missing=missing, clobber=clobber)


def loader_for(
    uri_or_path: str | PathLike[str], connection: str | None = None, **options: Any
) -> ModelLoader:
    """Build the loader for a path or URL; ``options`` go to the loader's constructor.

    ``connection`` is for Azure Storage URLs only (:class:`ConnectionNotApplicable` otherwise).
    """
    text = os.fspath(uri_or_path)
    check_connection(connection, text)
    if connection is not None:
        options["connection"] = connection
    scheme = scheme_of(text)
    if scheme is None:
        return LocalLoader(text, **options)
    loader: ModelLoader = _registry.load(scheme, _FSSPEC)(text, **options)
    return loader
