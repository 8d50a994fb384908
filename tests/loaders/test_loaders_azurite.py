"""BlobLoader and FsspecLoader(az://) against real Blob Storage (Azurite), under ModelSource.

Storage traffic is counted, not assumed: BlobLoader's HTTP responses through the SDK's
``raw_response_hook``; FsspecLoader's metadata and download calls by wrapping its adlfs file
system's ``_info`` and ``_cat_file`` (each one is a request to storage).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest

from servefn.errors import LoaderError, ModelUnavailable
from servefn.loaders import ModelLoader, ModelSource
from servefn.loaders.blob import BlobLoader
from servefn.loaders.remote import FsspecLoader
from support.azurite import ACCOUNT_KEY, Azurite, free_port
from support.standins import Clock, parse_text

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

MODEL = "model.zip"
KINDS = ["blob", "fsspec"]


class Traffic:
    """Requests a loader made to storage: ``requests`` in all, ``downloads`` that carried data."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1

    def response_hook(self, response: Any) -> None:
        """azure-core ``raw_response_hook``: one call per HTTP response received."""
        self.record(f"{response.http_request.method} {response.http_response.status_code}")

    def wrap(self, fs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Count adlfs' metadata (``_info``) and download (``_cat_file``) calls."""
        for name in ("_info", "_cat_file"):
            original = getattr(fs, name)

            async def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
                self.record(_name)
                return await _original(*args)

            monkeypatch.setattr(fs, name, counted)

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    @property
    def downloads(self) -> int:
        return self.calls["GET 200"] + self.calls["GET 206"] + self.calls["_cat_file"]


@pytest.fixture
def storage_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Functions default: AzureWebJobsStorage holds the connection string."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)


def make_loader(
    kind: str,
    container: ContainerClient,
    traffic: Traffic,
    monkeypatch: pytest.MonkeyPatch,
    *,
    timeout: float = 5,
) -> ModelLoader:
    """A loader for ``container/model.zip`` through the default connection setting."""
    if kind == "blob":
        return BlobLoader(
            f"{container.container_name}/{MODEL}",
            timeout=timeout,
            retries=0,
            raw_response_hook=traffic.response_hook,
        )
    loader = FsspecLoader(f"az://{container.container_name}/{MODEL}", timeout=timeout)
    traffic.wrap(loader.fs, monkeypatch)
    return loader


def upload(container: ContainerClient, data: bytes) -> str:
    container.upload_blob(MODEL, data, overwrite=True)
    return str(container.get_blob_client(MODEL).get_blob_properties().etag)


@pytest.mark.integration
@pytest.mark.usefixtures("storage_env")
@pytest.mark.parametrize("kind", KINDS)
def test_loads_once_then_only_conditional_checks(
    kind: str, blob_container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    etag = upload(blob_container, b"v1")
    traffic, clock = Traffic(), Clock()
    loader = make_loader(kind, blob_container, traffic, monkeypatch)
    source = ModelSource(loader, parse=parse_text, refresh_after=10, clock=clock)

    assert source.get() == "v1"
    assert source.info()["etag"] == etag
    assert traffic.downloads == 1
    after_warm_up = traffic.requests
    for _ in range(200):
        assert source.get() == "v1"
    assert traffic.requests == after_warm_up  # nothing per request

    clock.advance(10)
    assert source.get() == "v1"
    assert traffic.requests == after_warm_up + 1  # one conditional check...
    assert traffic.downloads == 1  # ...that downloaded nothing
    if kind == "blob":
        assert traffic.calls["HEAD 304"] == 1  # the properties: sized before any download


@pytest.mark.integration
@pytest.mark.usefixtures("storage_env")
@pytest.mark.parametrize("kind", KINDS)
def test_replaced_blob_is_picked_up_after_refresh(
    kind: str, blob_container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_etag = upload(blob_container, b"v1")
    traffic, clock = Traffic(), Clock()
    loader = make_loader(kind, blob_container, traffic, monkeypatch)
    source = ModelSource(loader, parse=parse_text, refresh_after=10, clock=clock)
    assert source.get() == "v1"
    if isinstance(loader, FsspecLoader):  # a cached listing that still has the old etag
        listing = loader.fs.ls(blob_container.container_name, detail=True)
        assert [entry["etag"] for entry in listing] == [first_etag]

    second_etag = upload(blob_container, b"v2")
    assert source.get() == "v1"  # not due yet
    clock.advance(10)
    assert source.get() == "v2"
    assert source.info()["etag"] == second_etag != first_etag
    assert traffic.downloads == 2


@pytest.mark.integration
@pytest.mark.usefixtures("storage_env")
@pytest.mark.parametrize("kind", KINDS)
def test_deleted_blob_is_an_error_and_the_last_good_model_stays(
    kind: str, blob_container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(blob_container, b"v1")
    clock = Clock()
    loader = make_loader(kind, blob_container, Traffic(), monkeypatch)
    source = ModelSource(loader, parse=parse_text, refresh_after=10, clock=clock)
    assert source.get() == "v1"

    blob_container.delete_blob(MODEL)
    with pytest.raises(LoaderError) as raised:
        loader.fetch()
    assert blob_container.container_name in str(raised.value)
    assert MODEL in str(raised.value)

    clock.advance(10)
    assert source.get() == "v1"
    info = source.info()
    assert info["state"] == "stale"
    assert "does not exist" in info["last_error"]


@pytest.mark.integration
@pytest.mark.usefixtures("storage_env")
def test_missing_container_is_named(azurite: Azurite) -> None:
    with pytest.raises(LoaderError, match="container 'no-such-container' does not exist"):
        BlobLoader(f"no-such-container/{MODEL}", retries=0).fetch()
    with pytest.raises(LoaderError, match=f"az://no-such-container/{MODEL} does not exist"):
        FsspecLoader(f"az://no-such-container/{MODEL}").fetch()


@pytest.mark.integration
@pytest.mark.usefixtures("storage_env")
def test_storage_outage_serves_last_good_and_cold_starts_recover(
    azurite: Azurite, blob_container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One Azurite restart for both loaders: warm sources keep serving, cold ones get 503s."""
    upload(blob_container, b"v1")
    clock = Clock()
    options: dict[str, Any] = {"parse": parse_text, "refresh_after": 10, "clock": clock}
    warm, cold = {}, {}
    for kind in KINDS:
        warm[kind] = ModelSource(
            make_loader(kind, blob_container, Traffic(), monkeypatch, timeout=1), **options
        )
        assert warm[kind].get() == "v1"
        cold[kind] = ModelSource(
            make_loader(kind, blob_container, Traffic(), monkeypatch, timeout=1), **options
        )

    with azurite.stopped():
        clock.advance(10)
        for kind in KINDS:
            assert warm[kind].get() == "v1"
            assert warm[kind].info()["state"] == "stale"
            with pytest.raises(ModelUnavailable) as raised:
                cold[kind].get()
            assert raised.value.retry_after == 1
            with pytest.raises(ModelUnavailable):
                cold[kind].get()  # within the backoff window: no second attempt
            assert cold[kind].stats.checks == 1
            assert cold[kind].info()["state"] == "unavailable"

    # Azurite is back (empty: it keeps blobs in memory); the same sources recover on their own
    azurite.service_client().create_container(blob_container.container_name)
    upload(blob_container, b"v1")
    clock.advance(10)
    for kind in KINDS:
        assert cold[kind].get() == "v1"
        assert warm[kind].get() == "v1"
        assert warm[kind].info()["state"] == cold[kind].info()["state"] == "ready"


@pytest.mark.integration
def test_connection_string_app_settings(
    azurite: Azurite, blob_container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(blob_container, b"v1")
    name = blob_container.container_name
    monkeypatch.setenv("ServefnModels", azurite.connection_string)
    monkeypatch.setenv("AzureWebJobsServefnOther", azurite.connection_string)
    loaders: list[ModelLoader] = [
        BlobLoader(f"{name}/{MODEL}", connection="ServefnModels"),
        BlobLoader(
            f"{name}/{MODEL}", connection="ServefnOther"
        ),  # AzureWebJobs<name>, as Functions
        BlobLoader(f"{name}/{MODEL}", connection=azurite.connection_string),  # literal
        FsspecLoader(f"az://{name}/{MODEL}", connection="ServefnModels"),
        FsspecLoader(f"abfs://{name}/{MODEL}", connection=azurite.connection_string),
    ]
    for loader in loaders:
        fetched = loader.fetch()
        assert fetched is not None, loader
        assert fetched.data == b"v1"


def sas_token(container: ContainerClient) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        account_name="devstoreaccount1",
        container_name=container.container_name,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


@pytest.mark.integration
def test_sas_connections(azurite: Azurite, blob_container: ContainerClient) -> None:
    upload(blob_container, b"v1")
    sas = sas_token(blob_container)
    name = blob_container.container_name
    with_sas = f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"
    loaders: list[ModelLoader] = [
        BlobLoader(f"{name}/{MODEL}", connection=with_sas),
        BlobLoader(f"{name}/{MODEL}", connection=f"{azurite.blob_endpoint}?{sas}"),  # account URL
        FsspecLoader(f"az://{name}/{MODEL}", connection=with_sas),
    ]
    for loader in loaders:
        fetched = loader.fetch()
        assert fetched is not None, loader
        assert fetched.data == b"v1"
        assert loader.fetch(fetched.etag) is None


IDENTITY_CASES = [
    pytest.param(
        {"accountName": "acct"},
        "https://acct.blob.core.windows.net",
        "DefaultAzureCredential",
        id="accountName",
    ),
    pytest.param(
        {
            "accountName": "acct",
            "serviceUri": "https://other.blob.core.windows.net",
            "blobServiceUri": "https://explicit.blob.core.windows.net/",
        },
        "https://explicit.blob.core.windows.net",
        "DefaultAzureCredential",
        id="blobServiceUri-wins",
    ),
    pytest.param(
        {"serviceUri": "https://svc.blob.core.windows.net"},
        "https://svc.blob.core.windows.net",
        "DefaultAzureCredential",
        id="serviceUri",
    ),
    pytest.param(
        {"accountName": "acct", "credential": "managedidentity"},
        "https://acct.blob.core.windows.net",
        "ManagedIdentityCredential",
        id="system-assigned",
    ),
    pytest.param(
        {"accountName": "acct", "credential": "managedidentity", "clientId": "1111-2222"},
        "https://acct.blob.core.windows.net",
        "ManagedIdentityCredential",
        id="user-assigned-clientId",
    ),
    pytest.param(
        {"accountName": "acct", "managedIdentityResourceId": "/subscriptions/s/rg/id"},
        "https://acct.blob.core.windows.net",
        "ManagedIdentityCredential",
        id="user-assigned-resourceId",
    ),
    pytest.param(
        {"accountName": "acct", "tenantId": "t", "clientId": "c", "clientSecret": "SECRET-VALUE"},
        "https://acct.blob.core.windows.net",
        "ClientSecretCredential",
        id="service-principal",
    ),
]


@pytest.mark.parametrize(("settings", "account_url", "credential"), IDENTITY_CASES)
def test_identity_based_settings_choose_account_and_credential(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], account_url: str, credential: str
) -> None:
    # No managed identity or Entra ID exists here, so no token can be fetched: building the
    # clients needs none, and these tests assert the account URL and credential class chosen.
    for suffix, value in settings.items():
        monkeypatch.setenv(f"ServefnIdentity__{suffix}", value)

    blob = BlobLoader(f"models/{MODEL}", connection="ServefnIdentity")
    assert blob.client.url == f"{account_url}/models/{MODEL}"
    assert type(blob.client.credential).__name__ == credential
    assert type(blob.client.credential).__module__.startswith("azure.identity")

    fsspec_loader = FsspecLoader(f"az://models/{MODEL}", connection="ServefnIdentity")
    assert fsspec_loader.fs.account_url == account_url
    assert type(fsspec_loader.fs.credential).__name__ == credential
    assert type(fsspec_loader.fs.credential).__module__.startswith("azure.identity.aio")
    for text in (repr(blob), repr(blob.account), repr(fsspec_loader)):
        assert "SECRET-VALUE" not in text


def test_identity_settings_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("servefnidentity__ACCOUNTNAME", "acct")
    loader = BlobLoader(f"models/{MODEL}", connection="ServefnIdentity")
    assert loader.account.account_url == "https://acct.blob.core.windows.net"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "set app setting ServefnIdentity to a connection string, or ServefnIdentity__acc"),
        (
            {"accountName": "a", "clientId": "c", "managedIdentityResourceId": "/r"},
            "both set; set only one",
        ),
        ({"accountName": "a", "credential": "certificate"}, "only supported value"),
    ],
)
def test_bad_connection_settings_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], message: str
) -> None:
    for suffix, value in settings.items():
        monkeypatch.setenv(f"ServefnIdentity__{suffix}", value)
    for loader in (
        BlobLoader(f"models/{MODEL}", connection="ServefnIdentity"),
        FsspecLoader(f"az://models/{MODEL}", connection="ServefnIdentity"),
    ):
        with pytest.raises(LoaderError, match=message):
            loader.fetch()


@pytest.mark.integration
@pytest.mark.parametrize("kind", KINDS)
def test_slow_storage_cannot_hang_a_check(kind: str, hung_port: int) -> None:
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{hung_port}/devstoreaccount1;"
    )
    loader: ModelLoader
    if kind == "blob":
        loader = BlobLoader(f"models/{MODEL}", connection=connection, timeout=0.5, retries=0)
        expected = "could not reach"
    else:
        loader = FsspecLoader(f"az://models/{MODEL}", connection=connection, timeout=0.5)
        expected = "did not answer within 0.5s"
    with pytest.raises(LoaderError, match=expected) as raised:
        loader.fetch()
    assert ACCOUNT_KEY not in str(raised.value)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "adlfs", "fsspec", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


@pytest.mark.integration
@pytest.mark.parametrize("kind", KINDS)
def test_secrets_never_appear(
    kind: str,
    azurite: Azurite,
    blob_container: ContainerClient,
    all_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload(blob_container, b"v1")
    name = blob_container.container_name
    sas = sas_token(blob_container)
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    secrets = [ACCOUNT_KEY, signature, unquote(signature)]
    with_sas = f"BlobEndpoint={azurite.blob_endpoint};SharedAccessSignature={sas}"
    closed = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    unreachable = f"BlobEndpoint={closed};SharedAccessSignature={sas}"
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)

    def build(path: str, connection: str, timeout: float = 2) -> ModelLoader:
        if kind == "blob":
            return BlobLoader(f"{name}/{path}", connection=connection, retries=0, timeout=timeout)
        return FsspecLoader(f"az://{name}/{path}", connection=connection, timeout=timeout)

    shown: list[str] = []
    for connection in ("AzureWebJobsStorage", azurite.connection_string, with_sas):
        loader = build(MODEL, connection)
        source = ModelSource(loader, parse=parse_text, refresh_after=0)
        assert source.get() == "v1"
        assert source.get() == "v1"  # a conditional check
        missing = ModelSource(build("missing.zip", connection), parse=parse_text)
        with pytest.raises(ModelUnavailable) as raised:
            missing.get()
        shown += [loader.uri, repr(loader), repr(source), str(source.info())]
        shown += [str(raised.value), str(missing.info())]
    for connection in (with_sas, unreachable):
        with pytest.raises(LoaderError) as failure:
            build("missing.zip", connection, timeout=0.5).fetch()
        shown.append(str(failure.value))
    shown.append(all_logs.text)

    assert any("azure" in record.name for record in all_logs.records)  # SDK logs were captured
    for text in shown:
        for secret in secrets:
            assert secret not in text


@pytest.mark.integration
@pytest.mark.usefixtures("storage_env")
@pytest.mark.parametrize("kind", KINDS)
def test_disk_cache_spares_a_new_process_the_download(
    kind: str,
    azurite: Azurite,
    blob_container: ContainerClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    upload(blob_container, b"v1")
    first_traffic, second_traffic = Traffic(), Traffic()
    first = make_loader(kind, blob_container, first_traffic, monkeypatch)
    assert ModelSource(first, parse=parse_text, cache_dir=tmp_path).get() == "v1"
    assert first_traffic.downloads == 1

    second = make_loader(kind, blob_container, second_traffic, monkeypatch)  # "a new process"
    source = ModelSource(second, parse=parse_text, cache_dir=tmp_path)
    assert source.get() == "v1"
    assert second_traffic.requests == 1  # one conditional check...
    assert second_traffic.downloads == 0  # ...and the bytes came from the disk cache
    assert source.stats.cache_hits == 1
    # keyed by the account actually used, so another account's blob of the same name differs
    expected = f"{azurite.blob_endpoint}/{blob_container.container_name}/{MODEL}"
    assert second.cache_key == expected  # type: ignore[attr-defined]
