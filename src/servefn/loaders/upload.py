"""Upload a verified ``model.zip`` to Azure Blob Storage without clobbering anyone's model.

The Python equivalent of ``az storage blob upload``, for models: the file is verified with
:func:`~servefn.load_model` and checked end to end as a ``ModelSource`` checks it before a swap
(:func:`servefn.model._probe.probe`: it must predict records of its input schema into valid
outputs) before anything is sent, so a model that could not serve is never uploaded. An
existing blob is replaced only with ``overwrite=True``, or with ``if_match=ETAG`` only while it
still has the etag the caller last saw, so two people cannot silently overwrite each other's
upload.

Destinations: ``blob://container/path`` or ``container/path`` (azure-storage-blob), and
``az://``/``abfs://``/``abfss://`` URLs (adlfs), reached through ``connection`` with its
Functions-binding meaning (default ``AzureWebJobsStorage``). Messages never carry a key or SAS.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servefn.errors import ArtifactError, LoaderError, ServefnError
from servefn.loaders.base import describe_error, redact, require
from servefn.loaders.connection import AZURE_EXTRA
from servefn.loaders.schemes import ADLFS_SCHEMES, CONNECTION_SCHEMES, scheme_of
from servefn.model._archive import load_model
from servefn.model._probe import probe

if TYPE_CHECKING:
    from azure.core.exceptions import AzureError

__all__ = ["UploadRefused", "Uploaded", "upload_model"]

MEDIA_TYPE = "application/zip"


class UploadRefused(ServefnError):
    """The destination exists, or changed since the etag given: nothing was uploaded."""


@dataclass(frozen=True)
class Uploaded:
    """Where a model went, and the blob's new etag and the archive's sha256."""

    uri: str
    etag: str
    sha256: str
    size: int


def upload_model(
    source: str | PathLike[str],
    destination: str,
    *,
    connection: str | None = None,
    overwrite: bool = False,
    if_match: str | None = None,
    timeout: float = 30.0,
) -> Uploaded:
    """Verify the model at ``source`` and upload it to ``destination``.

    ``overwrite`` replaces an existing blob; ``if_match`` replaces it only while its etag is
    still that value (``"*"``: only if it exists). Raises :class:`UploadRefused` (exists, or
    changed), :class:`~servefn.errors.ArtifactError` (not a usable model) or
    :class:`~servefn.errors.LoaderError` (storage unreachable, container missing, access denied).
    """
    data = _verified(source)
    scheme = scheme_of(destination) or ""  # none: container/path, for blob://
    if scheme not in ("", *CONNECTION_SCHEMES):
        raise ServefnError(
            f"cannot upload to {redact(destination)}: use blob://container/path, "
            "container/path, az://container/path or abfs://container/path"
        )
    try:
        require("azure.storage.blob", f"servefn upload needs azure-storage-blob: {AZURE_EXTRA}")
    except ImportError as exc:
        raise LoaderError(str(exc)) from None
    options: dict[str, Any] = {"overwrite": overwrite or if_match is not None}
    if if_match is not None:
        options.update(_match(if_match))
    upload = _upload_fsspec if scheme in ADLFS_SCHEMES else _upload_blob
    uri, etag = upload(data, destination, connection, timeout, options, if_match)
    return Uploaded(uri, etag, hashlib.sha256(data).hexdigest(), len(data))


def _verified(source: str | PathLike[str]) -> bytes:
    path = Path(os.fspath(source))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror}; nothing was uploaded") from None
    try:
        probe(load_model(data))
    except ArtifactError as exc:
        raise ArtifactError(f"{path} is not a usable model ({exc}); nothing was uploaded") from None
    return data


def _match(if_match: str) -> dict[str, Any]:
    from azure.core import MatchConditions

    if if_match.strip() == "*":
        return {"match_condition": MatchConditions.IfPresent}
    etag = if_match.strip()
    if not etag.startswith(('"', "W/")):
        etag = f'"{etag}"'  # a shell strips the quotes Azure puts around etags
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def _upload_blob(
    data: bytes,
    destination: str,
    connection: str | None,
    timeout: float,
    options: dict[str, Any],
    if_match: str | None,
) -> tuple[str, str]:
    from azure.core.exceptions import AzureError, ResourceExistsError
    from azure.storage.blob import ContentSettings

    from servefn.loaders.blob import BlobLoader

    try:
        loader = BlobLoader(destination, connection or "AzureWebJobsStorage", timeout=timeout)
    except ImportError as exc:
        raise LoaderError(str(exc)) from None
    client = loader.client
    try:
        result = client.upload_blob(
            data,
            content_settings=ContentSettings(content_type=MEDIA_TYPE),
            timeout=int(timeout),
            **options,
        )
    except ResourceExistsError:
        raise UploadRefused(_exists(loader.uri)) from None
    except AzureError as exc:
        raise _storage_error(exc, loader.uri, loader.container, if_match) from None
    return loader.uri, str(result["etag"])


def _upload_fsspec(
    data: bytes,
    destination: str,
    connection: str | None,
    timeout: float,
    options: dict[str, Any],
    if_match: str | None,
) -> tuple[str, str]:
    from azure.core.exceptions import AzureError
    from fsspec.asyn import sync
    from fsspec.exceptions import FSTimeoutError

    from servefn.loaders.remote import FsspecLoader

    try:
        loader = FsspecLoader(destination, connection=connection)
    except ImportError as exc:
        raise LoaderError(str(exc)) from None
    fs, path = loader.fs, loader.path
    container = path.split("/", 1)[0]
    try:
        result = sync(
            fs.loop,
            fs._pipe_file,
            path,
            data,
            content_settings={"content_type": MEDIA_TYPE},
            timeout=timeout,
            **options,
        )
    except FileExistsError:
        raise UploadRefused(_exists(loader.uri)) from None
    except AzureError as exc:
        raise _storage_error(exc, loader.uri, container, if_match) from None
    except (FSTimeoutError, TimeoutError):
        raise LoaderError(f"{loader.uri} did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise LoaderError(f"could not upload to {loader.uri}: {describe_error(exc)}") from None
    return loader.uri, str(result["etag"])


def _exists(uri: str) -> str:
    return (
        f"{uri} already exists; nothing was uploaded. Replace it with --overwrite, or with "
        f"--if-match ETAG to replace only the version you expect (servefn inspect {uri} "
        "shows its etag)"
    )


def _storage_error(exc: AzureError, uri: str, container: str, if_match: str | None) -> ServefnError:
    """A message for a failed upload that says what to do and carries no secret."""
    status = getattr(exc, "status_code", None)
    code = str(getattr(exc, "error_code", None) or "")
    if status == 412 or (status == 404 and if_match is not None and code == "BlobNotFound"):
        return UploadRefused(
            f"{uri} is no longer at etag {if_match} (someone else uploaded, or it was deleted); "
            f"nothing was uploaded. Look at the current model (servefn inspect {uri}) and "
            "upload again with --if-match set to its etag"
        )
    if status == 404 and code == "ContainerNotFound":
        return LoaderError(
            f"container {container!r} does not exist; create it (az storage container create "
            f"--name {container}) and upload again"
        )
    if status in (401, 403):
        return LoaderError(
            f"access denied uploading to {uri} (HTTP {status} {code}); check the key or SAS of "
            "the connection, or give the identity the Storage Blob Data Contributor role"
        )
    return LoaderError(f"could not upload to {uri}: {describe_error(exc)}")
