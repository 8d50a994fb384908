"""Where a repository's files are: a local folder, a ``blob://`` prefix, or any fsspec URL.

A store lists the files under its root that can belong to the layout (depth three at most),
reads a small file (an alias), and makes the loader of one ``model.zip``: the same loaders a
single model uses (:func:`servefn.loaders.loader_for`), so every model of a repository is
fetched, capped, checked and refreshed exactly as a single ``serve_http`` model is. Listing
costs one paged request on Blob Storage (``list_blobs`` under the prefix), one ``find`` on
fsspec and a few ``scandir`` calls locally. Failures are :class:`~servefn.errors.LoaderError`
with a redacted message.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from servefn.errors import LoaderError
from servefn.loaders import ModelLoader, loader_for, redact
from servefn.loaders.base import describe_error, require
from servefn.loaders.connection import AZURE_EXTRA
from servefn.loaders.schemes import check_connection, scheme_of

__all__ = ["MAX_LISTED_FILES", "RepositoryStore", "StoredFile", "store_for"]

MAX_LISTED_FILES = 100_000
"""Files a listing looks at, at most; the rest are left out with a warning."""

logger = logging.getLogger("servefn.repository")

_LAYOUT_FILES = ("model.zip", "current")


@dataclass(frozen=True)
class StoredFile:
    """One file under the root: its ``/``-separated relative path, a marker that changes
    whenever the file does (an etag, or inode, size and mtime), and its size when known."""

    path: str
    marker: str
    size: int | None = None


class RepositoryStore(Protocol):
    """The files of one repository."""

    uri: str
    """The root, without credentials."""

    def list_files(self) -> list[StoredFile]:
        """The files that may belong to the layout (``NAME/...``, at most three deep)."""
        ...

    def read_small(self, file: StoredFile, limit: int) -> bytes:
        """The bytes of ``file``; :class:`LoaderError` when it is over ``limit`` bytes."""
        ...

    def loader(self, path: str) -> ModelLoader:
        """The loader of the artifact at ``path`` (relative to the root)."""
        ...


def store_for(
    location: str | os.PathLike[str], connection: str | None = None, **options: Any
) -> RepositoryStore:
    """The store for a folder, ``blob://container/prefix`` or fsspec URL; ``connection`` (Azure
    Storage only) and ``options`` (storage options) are passed on to the loaders."""
    text = os.fspath(location)
    check_connection(connection, text)
    scheme = scheme_of(text)
    if scheme is None or scheme == "file":
        return LocalStore(text.removeprefix("file://"))
    if scheme == "blob":
        return BlobStore(text, connection or "AzureWebJobsStorage", **options)
    return FsspecStore(text, connection, **options)


def _too_large(uri: str, limit: int) -> LoaderError:
    return LoaderError(f"{uri} is over {limit} bytes; an alias file holds one version name")


class LocalStore:
    """A folder on this machine."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.uri!r})"

    def list_files(self) -> list[StoredFile]:
        found: list[StoredFile] = []
        try:
            names = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        except FileNotFoundError:
            raise LoaderError(f"repository folder not found: {self.uri}") from None
        except OSError as exc:
            raise LoaderError(f"cannot list {self.uri}: {exc.strerror}") from None
        for name in names[:MAX_LISTED_FILES]:
            folder = self.root / name
            for leaf in _LAYOUT_FILES:
                self._add(found, folder / leaf, f"{name}/{leaf}")
            try:
                versions = sorted(e.name for e in os.scandir(folder) if e.is_dir())
            except OSError:  # removed or unreadable since the listing: not a model now
                continue
            for version in versions:
                self._add(found, folder / version / "model.zip", f"{name}/{version}/model.zip")
        return found

    @staticmethod
    def _add(found: list[StoredFile], path: Path, relative: str) -> None:
        try:
            status = path.stat()
        except OSError:
            return
        if stat.S_ISREG(status.st_mode):
            marker = f"{status.st_ino:x}-{status.st_size:x}-{status.st_mtime_ns:x}"
            found.append(StoredFile(relative, marker, status.st_size))

    def read_small(self, file: StoredFile, limit: int) -> bytes:
        path = self.root / file.path
        try:
            with path.open("rb") as opened:
                data = opened.read(limit + 1)
        except OSError as exc:
            raise LoaderError(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > limit:
            raise _too_large(str(path), limit)
        return data

    def loader(self, path: str) -> ModelLoader:
        return loader_for(self.root / path)


class BlobStore:
    """A container, or a prefix in one, read with azure-storage-blob (``blob://``)."""

    def __init__(
        self, location: str, connection: str, *, timeout: float = 10.0, retries: int = 2
    ) -> None:
        text = location.removeprefix("blob://")
        container, _, prefix = text.partition("/")
        if not container:
            raise ValueError(f"{location!r} names no container: use blob://container/prefix")
        self.container_name = container
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"blob://{container}/{self.prefix}"
        self.timeout, self.retries = timeout, retries
        self._connection = connection
        require(
            "azure.storage.blob", f"blob:// repositories need azure-storage-blob: {AZURE_EXTRA}"
        )
        self._container: Any = None

    def __repr__(self) -> str:
        return f"BlobStore({self.uri!r})"

    def _client(self) -> Any:
        if self._container is None:
            from servefn.loaders.blob import service_client
            from servefn.loaders.connection import resolve_connection

            account = resolve_connection(self._connection)
            service = service_client(account, self.timeout, self.retries)
            logger.info("repository %s: storage account %s", self.uri, account.describe())
            self._container = service.get_container_client(self.container_name)
        return self._container

    def list_files(self) -> list[StoredFile]:
        from azure.core.exceptions import AzureError

        found: list[StoredFile] = []
        try:
            blobs = self._client().list_blobs(
                name_starts_with=self.prefix or None, timeout=int(self.timeout) + 1
            )
            for seen, blob in enumerate(blobs):
                if seen >= MAX_LISTED_FILES:
                    logger.warning("repository %s: listing stopped at %d blobs", self.uri, seen)
                    break
                relative = str(blob.name)[len(self.prefix) :]
                if relative.count("/") <= 2 and relative.rpartition("/")[2] in _LAYOUT_FILES:
                    found.append(StoredFile(relative, str(blob.etag), int(blob.size)))
        except AzureError as exc:
            raise LoaderError(self._describe(exc)) from None
        return found

    def read_small(self, file: StoredFile, limit: int) -> bytes:
        from azure.core.exceptions import AzureError

        if file.size is not None and file.size > limit:
            raise _too_large(f"{self.uri}{file.path}", limit)
        try:
            blob = self._client().get_blob_client(self.prefix + file.path)
            data: bytes = blob.download_blob(timeout=int(self.timeout) + 1).readall()
        except AzureError as exc:
            raise LoaderError(self._describe(exc)) from None
        if len(data) > limit:
            raise _too_large(f"{self.uri}{file.path}", limit)
        return data

    def loader(self, path: str) -> ModelLoader:
        from servefn.loaders.blob import BlobLoader

        return BlobLoader(
            f"{self.container_name}/{self.prefix}{path}",
            self._connection,
            timeout=self.timeout,
            retries=self.retries,
        )

    def _describe(self, exc: Exception) -> str:
        status = getattr(exc, "status_code", None)
        if status == 404:
            return (
                f"container {self.container_name!r} does not exist; create it and upload "
                "models as NAME/model.zip"
            )
        if status in (401, 403):
            return (
                f"access denied listing {self.uri} (HTTP {status}); the identity needs the "
                "Storage Blob Data Reader role, or check the key or SAS"
            )
        return redact(f"could not list {self.uri}: {describe_error(exc)}")


class FsspecStore:
    """Any fsspec URL (``az://``, ``abfs://``, ``s3://``, ``gs://``, ``memory://``...).

    The file system is opened with the rules of :class:`~servefn.loaders.FsspecLoader` (the
    same ``connection`` meaning for Azure URLs); its listing cache is cleared before each
    listing, so a changed file is seen.
    """

    def __init__(self, url: str, connection: str | None = None, **options: Any) -> None:
        from servefn.loaders.remote import FsspecLoader

        self.url = url.rstrip("/")
        self.uri = redact(self.url) + "/"
        self._connection = connection
        self._options: Mapping[str, Any] = options
        self._root = FsspecLoader(self.url, connection=connection, **options)  # no I/O yet

    def __repr__(self) -> str:
        return f"FsspecStore({self.uri!r})"

    def _filesystem(self) -> tuple[Any, str]:
        return self._root.fs, str(self._root.path).rstrip("/")

    def list_files(self) -> list[StoredFile]:
        try:
            fs, root = self._filesystem()
            fs.invalidate_cache()
            found = fs.find(root, maxdepth=3, detail=True)
        except LoaderError:
            raise
        except FileNotFoundError:
            return []
        except Exception as exc:  # fsspec back ends raise their own types: translate them all
            raise LoaderError(f"could not list {self.uri}: {describe_error(exc)}") from None
        files = []
        for path, info in list(found.items())[:MAX_LISTED_FILES]:
            relative = str(path).removeprefix(root).lstrip("/")
            if relative.count("/") <= 2 and relative.rpartition("/")[2] in _LAYOUT_FILES:
                files.append(StoredFile(relative, _marker(info), info.get("size")))
        return files

    def read_small(self, file: StoredFile, limit: int) -> bytes:
        if file.size is not None and file.size > limit:
            raise _too_large(f"{self.uri}{file.path}", limit)
        try:
            fs, root = self._filesystem()
            data = bytes(fs.cat_file(f"{root}/{file.path}", start=0, end=limit + 1))
        except Exception as exc:  # as in list_files
            where = f"{self.uri}{file.path}"
            raise LoaderError(f"could not read {where}: {describe_error(exc)}") from None
        if len(data) > limit:
            raise _too_large(f"{self.uri}{file.path}", limit)
        return data

    def loader(self, path: str) -> ModelLoader:
        return loader_for(f"{self.url}/{path}", self._connection, **self._options)


def _marker(info: Mapping[str, Any]) -> str:
    """What changes when a file does, from an fsspec ``info`` dict."""
    for key in ("etag", "ETag", "version_id", "generation", "md5Hash"):
        if info.get(key):
            return str(info[key])
    changes = ("mtime", "last_modified", "LastModified", "updated", "created")
    return "|".join(f"{info.get(key)}" for key in (*changes, "size"))
