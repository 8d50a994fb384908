"""Resolve an Azure Functions ``connection`` setting to a storage account and a credential.

``connection`` means what it means on a Functions blob binding:

1. the name of an app setting (an environment variable) holding a connection string; as in
   Functions, ``"MyStorage"`` also finds ``AzureWebJobsMyStorage``;
2. otherwise the prefix of identity-based settings: ``<NAME>__blobServiceUri`` (wins), alias
   ``<NAME>__serviceUri``, or ``<NAME>__accountName`` (``https://<name>.blob.core.windows.net``),
   authenticated by ``<NAME>__credential=managedidentity`` (with optional ``__clientId`` or
   ``__managedIdentityResourceId``, not both), by ``__tenantId`` + ``__clientId`` +
   ``__clientSecret`` (a service principal, for local development), or else by
   ``DefaultAzureCredential``.

Where unambiguous, the value may be given literally instead of a setting name: anything
containing ``=`` is a connection string (setting names cannot contain ``=``), and anything
starting with ``http://`` or ``https://`` is an account URL, with a SAS token as its query string
or, without one, authenticated by ``DefaultAzureCredential``.

Resolution reads settings only; azure-identity is imported when a credential is built.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from servefn.errors import LoaderError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = ["AZURE_EXTRA", "AzureConnection", "resolve_connection"]

AZURE_EXTRA = "pip install 'servefn[azure]'"
"""What to run when an Azure SDK package is missing."""

AuthKind = Literal["connection string", "sas", "managed identity", "client secret", "default"]


@dataclass(frozen=True)
class AzureConnection:
    """A storage account URL and how to authenticate to it; secrets are kept out of ``repr``."""

    account_url: str
    auth: AuthKind
    source: str
    """Where the settings came from, for messages (never a secret)."""
    connection_string: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    resource_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)

    @property
    def account_name(self) -> str:
        """The account name: the first label of the host, or the first path segment (Azurite)."""
        parts = urlsplit(self.account_url)
        host = parts.hostname or ""
        path_style = host == "localhost" or _is_ip_address(host)
        if path_style and parts.path.strip("/"):
            return parts.path.strip("/").split("/", 1)[0]
        return host.split(".", 1)[0]

    @property
    def display_url(self) -> str:
        """:attr:`account_url` as messages show it: no user info, no query string (a SAS
        token may ride on a connection string's ``BlobEndpoint``)."""
        parts = urlsplit(self.account_url)
        netloc = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")

    def __repr__(self) -> str:
        return f"AzureConnection({self.display_url!r}, auth={self.auth!r}, source={self.source!r})"

    def describe(self) -> str:
        """One line for logs: the account URL and the kind of authentication, no secrets."""
        return f"{self.display_url} ({self.auth} from {self.source})"

    def credential(self) -> TokenCredential | None:
        """A synchronous azure-identity credential, or ``None`` for connection strings and SAS."""
        if self.auth in ("connection string", "sas"):
            return None
        return cast("TokenCredential", self._build_credential(_import("azure.identity")))

    def async_credential(self) -> AsyncTokenCredential | None:
        """The asyncio flavour of :meth:`credential` (what adlfs needs)."""
        if self.auth in ("connection string", "sas"):
            return None
        identity = _import("azure.identity.aio")
        return cast("AsyncTokenCredential", self._build_credential(identity))

    def adlfs_options(self) -> dict[str, Any]:
        """Storage options for adlfs' ``AzureBlobFileSystem`` that reach this account."""
        if self.connection_string is not None:
            return {"connection_string": self.connection_string}
        host = urlsplit(self.account_url).netloc
        options: dict[str, Any] = {"account_name": self.account_name, "account_host": host}
        if self.sas_token is not None:
            options["sas_token"] = self.sas_token
        else:
            options["credential"] = self.async_credential()
        return options

    def _build_credential(self, identity: Any) -> Any:
        if self.auth == "managed identity":
            if self.resource_id:
                return identity.ManagedIdentityCredential(
                    identity_config={"resource_id": self.resource_id}
                )
            return identity.ManagedIdentityCredential(client_id=self.client_id)
        if self.auth == "client secret":
            return identity.ClientSecretCredential(
                self.tenant_id, self.client_id, self.client_secret
            )
        if self.client_id:
            return identity.DefaultAzureCredential(managed_identity_client_id=self.client_id)
        return identity.DefaultAzureCredential()


def resolve_connection(
    connection: str, environ: Mapping[str, str] | None = None
) -> AzureConnection:
    """Resolve ``connection`` (a setting name, prefix, connection string or URL); see module doc.

    Raises :class:`LoaderError` naming the settings to add when nothing usable is configured.
    """
    if "=" in connection:
        return _from_value(connection, "the connection string given")
    if connection.startswith(("http://", "https://")):
        return _from_value(connection, "the account URL given")
    settings = _Settings(os.environ if environ is None else environ)
    for name in (connection, "AzureWebJobs" + connection):
        value = settings.get(name)
        if value:
            return _from_value(value, f"app setting {name!r}")
    return _from_identity_settings(connection, settings)


class _Settings:
    """App settings, looked up exactly and then case-insensitively (as Functions does)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._folded: dict[str, str] | None = None

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is not None:
            return value.strip()
        if self._folded is None:
            self._folded = {key.lower(): val for key, val in self._environ.items()}
        value = self._folded.get(name.lower())
        return value.strip() if value is not None else None


def _from_value(value: str, source: str) -> AzureConnection:
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        account_url = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        if parts.query:
            return AzureConnection(account_url, "sas", source, sas_token=parts.query)
        return AzureConnection(account_url, "default", source)
    fields = _parse_connection_string(value, source)
    auth: AuthKind = "sas" if "sharedaccesssignature" in fields else "connection string"
    return AzureConnection(
        _blob_endpoint(fields, source), auth, source, connection_string=value.strip()
    )


def _parse_connection_string(value: str, source: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, val = part.strip().partition("=")
        if sep and key:
            fields[key.strip().lower()] = val.strip()
    if not fields:
        raise LoaderError(f"{source} is not a storage connection string")
    return fields


def _blob_endpoint(fields: Mapping[str, str], source: str) -> str:
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return "http://127.0.0.1:10000/devstoreaccount1"
    if "blobendpoint" in fields:
        return fields["blobendpoint"].rstrip("/")
    account = fields.get("accountname")
    if not account:
        raise LoaderError(
            f"{source} is not a usable storage connection string: it has neither AccountName "
            "nor BlobEndpoint; copy the connection string from the storage account's "
            "Access keys page"
        )
    protocol = fields.get("defaultendpointsprotocol", "https")
    suffix = fields.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{account}.blob.{suffix}"


def _from_identity_settings(prefix: str, settings: _Settings) -> AzureConnection:
    def setting(suffix: str) -> str | None:
        return settings.get(f"{prefix}__{suffix}") or None

    source = f"app settings {prefix}__*"
    account_url = setting("blobServiceUri") or setting("serviceUri")
    if account_url is None and (account := setting("accountName")):
        account_url = f"https://{account}.blob.core.windows.net"
    if account_url is None:
        raise LoaderError(
            f"no storage connection {prefix!r}: set app setting {prefix} to a connection string, "
            f"or {prefix}__accountName / {prefix}__blobServiceUri for an identity-based "
            "connection (locally: in local.settings.json Values)"
        )
    client_id, resource_id = setting("clientId"), setting("managedIdentityResourceId")
    if client_id and resource_id:
        raise LoaderError(
            f"{prefix}__clientId and {prefix}__managedIdentityResourceId are both set; "
            "set only one of them to choose the user-assigned identity"
        )
    tenant_id, secret = setting("tenantId"), setting("clientSecret")
    kind = (setting("credential") or "").lower()
    if kind and kind != "managedidentity":
        raise LoaderError(
            f"{prefix}__credential is {kind!r}; the only supported value is 'managedidentity'"
        )
    auth: AuthKind
    if kind == "managedidentity" or resource_id:
        auth = "managed identity"
    elif tenant_id and client_id and secret:
        auth = "client secret"
    else:
        auth = "default"
    return AzureConnection(
        account_url.rstrip("/"),
        auth,
        source,
        client_id=client_id,
        resource_id=resource_id,
        tenant_id=tenant_id,
        client_secret=secret if auth == "client secret" else None,
    )


def _is_ip_address(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (Azurite's path-style account URLs)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LoaderError(
            f"an identity-based storage connection needs azure-identity: {AZURE_EXTRA}"
        ) from None
