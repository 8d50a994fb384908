"""Load a model from any fsspec URL: ``az://``/``abfs://`` (adlfs), ``s3://``, ``gs://``, http(s)...

A check is one metadata call (``info``); the artifact is downloaded only when its etag changed,
and refused without downloading when ``info`` gives a size over the download cap (a file system
that gives none is read as a stream, to at most ``max_bytes + 1`` bytes).
fsspec caches file-system instances and directory listings, and a cached listing keeps serving
an old etag after the blob changes; so each loader owns a private file system
(``skip_instance_cache``) and clears its listing cache before every check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec.asyn import AsyncFileSystem, sync
from fsspec.exceptions import FSTimeoutError
from fsspec.registry import known_implementations
from fsspec.registry import registry as imported_implementations

from servefn.errors import LoaderError
from servefn.loaders.base import (
    Fetched,
    check_max_bytes,
    check_size,
    describe_error,
    display_connection,
    download_cap,
    install_redaction,
    read_capped,
    redact,
    require,
)
from servefn.loaders.connection import AZURE_EXTRA, resolve_connection
from servefn.loaders.schemes import ADLFS_SCHEMES, check_connection

__all__ = ["FsspecLoader"]

logger = logging.getLogger("servefn.loaders")

_DEFAULT_CONNECTION = "AzureWebJobsStorage"
_ADLFS_ENVIRONMENT = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME")

# info() keys that identify a version, best first; then keys that change with each write.
_ETAG_KEYS = ("etag", "ETag", "e_tag")
_CHANGE_KEYS = (
    "version_id", "VersionId", "generation", "md5Hash", "Content-MD5", "Digest", "checksum",
    "mtime", "last_modified", "LastModified", "Last-Modified", "updated", "created", "ino",
)  # fmt: skip


class FsspecLoader:
    """Reads a model through fsspec.

    Parameters
    ----------
    url:
        Any fsspec URL; credentials in it are redacted from :attr:`uri`.
    connection:
        For ``az://``/``abfs://``/``abfss://`` only (else
        :class:`~servefn.loaders.schemes.ConnectionNotApplicable`): an app setting name,
        identity-based settings prefix, connection string or account URL, with the same meaning
        as on a Functions binding (:mod:`servefn.loaders.connection`). Without ``connection``
        and without storage options, ``AzureWebJobsStorage`` is used unless adlfs' own
        ``AZURE_STORAGE_*`` variables are set.
    timeout:
        Seconds allowed for each call to an asynchronous file system (adlfs, http, s3, gcs)
        before it is cancelled; ``None`` waits as long as the file system does.
    max_bytes:
        The download cap (default: the app setting ``SERVEFN_MAX_MODEL_BYTES``, else 512 MiB).
    storage_options:
        Passed to the file system (``account_name=``, ``anon=``...), as for ``fsspec.open``.
    """

    def __init__(
        self,
        url: str,
        *,
        connection: str | None = None,
        timeout: float | None = 30.0,
        max_bytes: int | None = None,
        **storage_options: Any,
    ) -> None:
        self.protocol = _protocol(url)
        _require_implementation(self.protocol)
        check_connection(connection, url, schemes=ADLFS_SCHEMES)  # blob:// is BlobLoader's
        self.url = url
        self.uri = redact(url)
        self.timeout = timeout
        self.max_bytes = check_max_bytes(max_bytes)
        self._connection = connection
        self._options = storage_options
        self._fs: Any = None
        self._path = ""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        extra = ""
        if self._connection is not None:
            extra += f", connection={display_connection(self._connection)!r}"
        if self._options:
            extra += f", storage_options={sorted(self._options)}"
        return f"FsspecLoader({self.uri!r}{extra})"

    @property
    def fs(self) -> Any:
        """This loader's own file-system instance, created on first use and reused."""
        return self._filesystem()[0]

    @property
    def path(self) -> str:
        """The artifact's path inside :attr:`fs`."""
        return self._filesystem()[1]

    @property
    def cache_key(self) -> str:
        """The artifact's location including the storage account for ``az://``/``abfs://``.

        ``az://models/model.zip`` names no account, so ModelSource's disk cache is keyed by the
        account URL the file system actually uses (without its query string).
        """
        client = (
            getattr(self.fs, "service_client", None) if self.protocol in ADLFS_SCHEMES else None
        )
        if client is None:
            return self.uri
        parts = urlsplit(str(client.url))
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/{self.path}"

    def fetch(self, etag: str | None = None) -> Fetched | None:
        """Download the artifact, or return ``None`` when its etag is still ``etag``."""
        fs, path = self._filesystem()
        cap = download_cap(self.max_bytes)
        try:
            fs.invalidate_cache()
            info = self._call(fs, "info", path)
            if info.get("type") == "directory":
                raise LoaderError(f"{self.uri} is a directory; point at the model file itself")
            current = _etag_from_info(info)
            if current is not None and current == etag:
                return None
            size = _size(info)
            if size is None:  # not said (an HTTP server without Content-Length): stream it
                with fs.open(path, "rb") as file:
                    data = read_capped(file.read, self.uri, cap)
            else:
                check_size(self.uri, size, cap)  # before downloading
                data = bytes(self._call(fs, "cat_file", path))
                check_size(self.uri, len(data), cap)
        except LoaderError:
            raise
        except FileNotFoundError:
            raise LoaderError(
                f"{self.uri} does not exist; upload the model there or fix the URL"
            ) from None
        except (FSTimeoutError, TimeoutError):
            limit = f" within {self.timeout:g}s" if self.timeout else ""
            raise LoaderError(f"{self.uri} did not answer{limit}") from None
        except Exception as exc:  # fsspec back ends raise their own types: translate them all
            raise LoaderError(f"could not read {self.uri}: {describe_error(exc)}") from None
        if current is None:  # no version marker from this file system: the content decides
            current = "sha256:" + hashlib.sha256(data).hexdigest()
            if current == etag:
                return None
        return Fetched(data=data, etag=current, uri=self.uri)

    def _filesystem(self) -> tuple[Any, str]:
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    self._fs, self._path = self._open_filesystem()
        return self._fs, self._path

    def _open_filesystem(self) -> tuple[Any, str]:
        install_redaction()  # fsspec, adlfs and aiohttp log URLs, query strings included
        options = dict(self._options)
        connection = self._azure_connection()
        if connection is not None:
            account = resolve_connection(connection)
            logger.info("%s: storage account %s", self.uri, account.describe())
            options.update(account.adlfs_options())
        try:
            fs, path = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **options)
        except Exception as exc:  # a back end's constructor validates its options its own way
            raise LoaderError(f"cannot open {self.uri}: {describe_error(exc)}") from None
        return fs, path

    def _azure_connection(self) -> str | None:
        if self.protocol not in ADLFS_SCHEMES or self._connection is not None:
            return self._connection
        if self._options or "@" in self.url.split("://", 1)[1].split("/", 1)[0]:
            return None
        if any(os.environ.get(name) for name in _ADLFS_ENVIRONMENT):
            return None
        return _DEFAULT_CONNECTION

    def _call(self, fs: Any, method: str, path: str) -> Any:
        """Call ``fs.<method>(path)``, cancelled after ``timeout`` on asynchronous back ends."""
        if isinstance(fs, AsyncFileSystem) and not fs.asynchronous and self.timeout:
            return sync(fs.loop, getattr(fs, "_" + method), path, timeout=self.timeout)
        return getattr(fs, method)(path)


def _protocol(url: str) -> str:
    outer = url.split("::", 1)[0]
    return outer.split("://", 1)[0] if "://" in outer else "file"


def _require_implementation(protocol: str) -> None:
    if protocol in ADLFS_SCHEMES:
        require("adlfs", f"{protocol}:// URLs need adlfs: {AZURE_EXTRA}")
        return
    if protocol in imported_implementations:
        return
    known: Mapping[str, str] | None = known_implementations.get(protocol)
    if known is None:
        raise ValueError(f"fsspec has no file system for {protocol}:// URLs")
    require(known["class"].rsplit(".", 1)[0], known.get("err") or f"{protocol}:// is unavailable")


def _size(info: Mapping[str, Any]) -> int | None:
    """The size ``info`` gives, or None when it gives none usable."""
    try:
        size = int(info["size"])
    except (KeyError, TypeError, ValueError):
        return None
    return size if size >= 0 else None


def _etag_from_info(info: Mapping[str, Any]) -> str | None:
    for key in _ETAG_KEYS:
        if info.get(key):
            return str(info[key])
    parts = [f"{key}={info[key]}" for key in _CHANGE_KEYS if info.get(key) is not None]
    if not parts:
        return None
    parts.append(f"size={info.get('size')}")
    return "fsspec:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
