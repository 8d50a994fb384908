"""Load a model from Azure Blob Storage with azure-storage-blob, as a Functions binding would.

One conditional request per check: the blob's properties with ``If-None-Match``, so an
unchanged blob costs a 304 and no bytes. A changed blob's size is checked against the download
cap before any byte is downloaded, then the blob is downloaded with ``If-Match`` on the etag
just seen (a blob replaced in between is looked at again). azure-storage-blob is imported on
first use; every Azure exception is translated here, once, into a :class:`LoaderError` whose
message names the container and blob but never a key or SAS (Azure's own messages can contain
the request URL with its SAS, so they are not chained).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any

from servefn.errors import LoaderError
from servefn.loaders.base import (
    Fetched,
    check_max_bytes,
    check_size,
    describe_error,
    display_connection,
    download_cap,
    install_redaction,
    redact,
    require,
)
from servefn.loaders.connection import AZURE_EXTRA, AzureConnection, resolve_connection

if TYPE_CHECKING:
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobClient, BlobServiceClient

__all__ = ["BlobLoader", "service_client"]

logger = logging.getLogger("servefn.loaders")

_SCHEME = "blob://"


class BlobLoader:
    """Reads ``container/blob`` from the storage account named by ``connection``.

    Parameters
    ----------
    path:
        ``"container/path/to/model.zip"`` (a binding path), or ``"blob://container/path"``.
    connection:
        An app setting name, identity-based settings prefix, connection string or account URL;
        see :mod:`servefn.loaders.connection`. Resolved on the first fetch, so settings loaded
        after import (``local.settings.json``) count.
    timeout:
        Seconds allowed to connect and for each read; with ``retries``, a check against an
        unreachable account gives up after about ``(retries + 1) * timeout`` seconds plus
        ``retries`` backoffs of at most 2 seconds (the SDK default would wait a minute or more).
    retries:
        Retries of a failed request (connection errors, 5xx).
    max_bytes:
        The download cap: a larger blob is refused from its properties, before downloading.
        Default: the app setting ``SERVEFN_MAX_MODEL_BYTES``, else 512 MiB.
    client_options:
        Passed to ``BlobServiceClient`` (``transport``, ``proxies``, ``raw_response_hook``...).
    """

    def __init__(
        self,
        path: str,
        connection: str = "AzureWebJobsStorage",
        *,
        timeout: float = 10.0,
        retries: int = 2,
        max_bytes: int | None = None,
        **client_options: Any,
    ) -> None:
        require("azure.storage.blob", f"BlobLoader needs azure-storage-blob: {AZURE_EXTRA}")
        self.container, self.blob = _split(path)
        self.uri = f"{_SCHEME}{self.container}/{self.blob}"
        self.timeout = timeout
        self.retries = retries
        self.max_bytes = check_max_bytes(max_bytes)
        self._connection = connection
        self._client_options = client_options
        self._account: AzureConnection | None = None
        self._client: BlobClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BlobLoader({self.uri!r}, connection={display_connection(self._connection)!r})"

    @property
    def account(self) -> AzureConnection:
        """The resolved storage account and authentication (no network access)."""
        if self._account is None:
            self._account = resolve_connection(self._connection)
        return self._account

    @property
    def cache_key(self) -> str:
        """The blob's URL without credentials: what ModelSource's disk cache is keyed by."""
        return f"{self.account.display_url}/{self.container}/{self.blob}"

    @property
    def client(self) -> BlobClient:
        """The ``BlobClient`` for this blob, built on first use and reused."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._build_client()
                    except (ValueError, TypeError) as exc:
                        problem = describe_error(exc)
                        raise LoaderError(
                            f"cannot use the storage connection for {self.uri}: {problem}"
                        ) from None
        return self._client

    def fetch(self, etag: str | None = None) -> Fetched | None:
        """Download the blob, or return ``None`` when its etag is still ``etag`` (HTTP 304).

        Raises :class:`~servefn.loaders.base.ArtifactTooLarge` for a blob over the download
        cap, without downloading it.
        """
        client = self.client
        cap = download_cap(self.max_bytes)
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, HttpResponseError

        timeout = math.ceil(self.timeout)
        condition: dict[str, Any] = {}
        if etag is not None:
            condition = {"etag": etag, "match_condition": MatchConditions.IfModified}
        for _ in range(3):
            try:
                properties = client.get_blob_properties(timeout=timeout, **condition)
                check_size(self.uri, properties.size, cap)  # before downloading
                current = str(properties.etag)
                downloader = client.download_blob(
                    timeout=timeout, etag=current, match_condition=MatchConditions.IfNotModified
                )
                check_size(self.uri, downloader.size, cap)
                data = downloader.readall()
            except HttpResponseError as exc:
                if exc.status_code == 304:
                    return None
                if exc.status_code == 412:  # replaced since its properties were read
                    continue
                raise LoaderError(redact(self._describe(exc))) from None
            except AzureError as exc:
                raise LoaderError(redact(self._describe(exc))) from None
            return Fetched(data=data, etag=current, uri=self.uri)
        raise LoaderError(
            f"{self.uri} changed during each of 3 downloads; the next check will try again"
        )

    def _build_client(self) -> BlobClient:
        account = self.account
        service = service_client(account, self.timeout, self.retries, **self._client_options)
        logger.info("%s: storage account %s", self.uri, account.describe())
        return service.get_blob_client(self.container, self.blob)

    def _describe(self, exc: AzureError) -> str:
        """A message for ``exc`` that says what to do and carries no secret."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            ServiceRequestError,
            ServiceResponseError,
        )

        account = self.account
        url = account.display_url
        where = f"blob {self.blob!r} in container {self.container!r} of {url}"
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "error_code", None)
        if status == 404 and code == "ContainerNotFound":
            return (
                f"container {self.container!r} does not exist in {url}; "
                f"create it and upload the model as {self.blob!r}"
            )
        if status == 404:
            return f"{where} does not exist; upload the model there or fix the path"
        if status in (401, 403):
            return (
                f"access denied to {where} (HTTP {status} {code}); check the key or SAS in "
                f"{account.source}, or give the identity the Storage Blob Data Reader role"
            )
        if isinstance(exc, ClientAuthenticationError):
            return (
                f"could not get a token for {url} ({account.auth} from "
                f"{account.source}): {describe_error(exc)}"
            )
        if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
            return (
                f"could not reach {url} for {where} "
                f"(timeout {self.timeout:g}s, {self.retries} retries): {describe_error(exc)}"
            )
        return f"storage error reading {where}: HTTP {status} {code or type(exc).__name__}"


def service_client(
    account: AzureConnection, timeout: float, retries: int, **client_options: Any
) -> BlobServiceClient:
    """A ``BlobServiceClient`` for ``account`` with servefn's timeouts and retries (see
    :class:`BlobLoader`); also what a model repository on ``blob://`` lists with."""
    from azure.storage.blob import BlobServiceClient, LinearRetry

    install_redaction()  # the SDK and its HTTP transport log request URLs
    options: dict[str, Any] = {
        "connection_timeout": timeout,
        "read_timeout": timeout,
        "retry_policy": LinearRetry(backoff=1, retry_total=retries, random_jitter_range=1),
        **client_options,
    }
    if account.connection_string is not None:
        return BlobServiceClient.from_connection_string(account.connection_string, **options)
    if account.sas_token is not None:
        return BlobServiceClient(account.account_url, account.sas_token, **options)
    return BlobServiceClient(account.account_url, account.credential(), **options)


def _split(path: str) -> tuple[str, str]:
    text = path[len(_SCHEME) :] if path.startswith(_SCHEME) else path
    container, _, blob = text.strip("/").partition("/")
    if not container or not blob:
        raise ValueError(
            f"blob path {path!r} must be 'container/path/to/model.zip' (as on a Functions binding)"
        )
    return container, blob
