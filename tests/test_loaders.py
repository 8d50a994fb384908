"""Loaders without Azure: redaction, local files, fsspec URLs, the registry and lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest

from servefn.errors import LoaderError
from servefn.loaders import (
    Fetched,
    LocalLoader,
    MemoryLoader,
    ModelLoader,
    loader_for,
    redact,
    register_loader,
    registry,
)
from servefn.loaders.remote import FsspecLoader

# --- redact -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S3cr3t+/Key==;", "S3cr3t+/Key=="),
        ("BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1&sig=SIG", "SIG"),
        ("BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1&sig=SIG", "sv=1"),
        ("GET https://a.blob.core.windows.net/m/model.zip?sv=2024&sp=r&sig=abc%2Bdef", "abc%2Bdef"),
        ("https://user:hunter2@example.com/model.zip", "hunter2"),
        ("https://example.com/api/predict?code=FUNCTIONKEY&x=1", "FUNCTIONKEY"),
        ("{'account_key': 'k3y', 'client_secret': \"s3c\"}", "k3y"),
        ("{'account_key': 'k3y', 'client_secret': \"s3c\"}", "s3c"),
        ("Authorization: SharedKey devstoreaccount1:c2lnbmF0dXJl", "c2lnbmF0dXJl"),
        ("headers={'Authorization': 'Bearer eyJ0eXAi'}", "eyJ0eXAi"),
    ],
)
def test_redact_removes_secrets(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert "***" in redacted
    assert redact(redacted) == redacted


def test_redact_keeps_what_is_not_secret() -> None:
    text = "blob 'model.zip' in container 'models' of https://acct.blob.core.windows.net: 404"
    assert redact(text) == text
    assert redact("AccountName=acct;AccountKey=x") == "AccountName=acct;AccountKey=***"


# --- LocalLoader ------------------------------------------------------------------------------


def test_local_loader_fetches_and_reports_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(b"v1")
    loader = LocalLoader(path)

    first = loader.fetch()
    assert first is not None
    assert (first.data, first.uri) == (b"v1", str(path))
    assert loader.fetch(first.etag) is None

    path.write_bytes(b"version 2")
    second = loader.fetch(first.etag)
    assert second is not None
    assert second.data == b"version 2"
    assert second.etag != first.etag
    assert isinstance(loader, ModelLoader)


def test_local_loader_accepts_file_urls_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.zip").write_bytes(b"v1")
    monkeypatch.chdir(tmp_path)
    assert LocalLoader("model.zip").uri == str(tmp_path / "model.zip")
    fetched = LocalLoader((tmp_path / "model.zip").as_uri()).fetch()
    assert fetched is not None
    assert fetched.data == b"v1"


def test_local_loader_with_hash_ignores_a_touch(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(b"v1")
    loader = LocalLoader(path, hash=True)
    first = loader.fetch()
    assert first is not None
    assert first.etag.startswith("sha256:")

    os.utime(path, ns=(1, 1))  # new metadata, same content
    assert loader.fetch(first.etag) is None
    path.write_bytes(b"v2")
    second = loader.fetch(first.etag)
    assert second is not None
    assert second.data == b"v2"


def test_local_loader_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match=r"model file not found: .*missing\.zip.*save a model"):
        LocalLoader(tmp_path / "missing.zip").fetch()
    with pytest.raises(LoaderError, match="is a directory"):
        LocalLoader(tmp_path).fetch()


# --- MemoryLoader -----------------------------------------------------------------------------


def test_memory_loader_versions_failures_and_counts() -> None:
    loader = MemoryLoader(b"v1")
    fetched = loader.fetch()
    assert isinstance(fetched, Fetched)
    assert loader.fetch(fetched.etag) is None

    loader.set(b"v1")  # same bytes, new version
    assert loader.fetch(fetched.etag) is not None
    loader.fail(LoaderError("down"))
    with pytest.raises(LoaderError, match="down"):
        loader.fetch()
    loader.fail(None)
    loader.delete()
    with pytest.raises(LoaderError, match="does not exist"):
        loader.fetch()
    assert (loader.fetches, loader.downloads) == (5, 2)


# --- FsspecLoader -----------------------------------------------------------------------------


@pytest.fixture
def memory_url() -> Iterator[str]:
    url = f"memory://servefn-tests/{uuid.uuid4().hex}/model.zip"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url)


def test_fsspec_loader_memory_url(memory_url: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(memory_url, b"v1")
    loader = FsspecLoader(memory_url)

    first = loader.fetch()
    assert first is not None
    assert (first.data, first.uri) == (b"v1", memory_url)
    assert loader.fetch(first.etag) is None

    fs.ls(memory_url.rsplit("/", 1)[0], detail=True)  # a listing fsspec may cache
    time.sleep(0.001)  # the memory file system dates files to the microsecond
    fs.pipe(memory_url, b"v2")
    second = loader.fetch(first.etag)
    assert second is not None
    assert second.data == b"v2"
    assert second.etag != first.etag


def test_fsspec_loader_file_url(tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(b"v1")
    assert isinstance(loader_for(path.as_uri()), LocalLoader)  # file:// goes to LocalLoader...
    direct = FsspecLoader(path.as_uri())  # ...but fsspec's local file system works as well
    fetched = direct.fetch()
    assert fetched is not None
    assert direct.fetch(fetched.etag) is None


def test_fsspec_loader_missing_file(memory_url: str) -> None:
    with pytest.raises(LoaderError, match=r"memory://.*model\.zip does not exist"):
        FsspecLoader(memory_url).fetch()


def test_fsspec_loader_redacts_credentials_in_uri_and_repr() -> None:
    url = "https://reader:hunter2@example.invalid/models/model.zip?sv=2024&sig=SIGNATURE"
    loader = FsspecLoader(url, client_kwargs={"headers": {"x-api-key": "APIKEY"}})
    for text in (loader.uri, repr(loader)):
        assert "hunter2" not in text
        assert "SIGNATURE" not in text
        assert "APIKEY" not in text
    assert loader.uri.startswith("https://reader:***@example.invalid/models/model.zip")


def test_fsspec_loader_times_out_on_a_hung_server(hung_port: int) -> None:
    loader = FsspecLoader(f"http://127.0.0.1:{hung_port}/model.zip", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(LoaderError, match=r"did not answer within 0.5s"):
        loader.fetch()
    assert time.monotonic() - started < 3


def test_fsspec_loader_rejects_connection_for_other_schemes() -> None:
    with pytest.raises(ValueError, match="connection= applies to az://"):
        FsspecLoader("memory://x/model.zip", connection="AzureWebJobsStorage")
    with pytest.raises(ValueError, match="no file system for nosuch://"):
        FsspecLoader("nosuch://x/model.zip")


# --- loader_for and the registry --------------------------------------------------------------


def test_loader_for_picks_the_loader_by_scheme(tmp_path: Path) -> None:
    from servefn.loaders.blob import BlobLoader

    assert isinstance(loader_for(tmp_path / "model.zip"), LocalLoader)
    assert isinstance(loader_for(str(tmp_path / "model.zip")), LocalLoader)
    assert isinstance(loader_for((tmp_path / "model.zip").as_uri()), LocalLoader)
    assert isinstance(loader_for("C:\\models\\model.zip"), LocalLoader)
    assert isinstance(loader_for("memory://bucket/model.zip"), FsspecLoader)
    for url in ("az://models/model.zip", "abfs://models/model.zip"):
        loader = loader_for(url, connection="AzureWebJobsStorage")
        assert isinstance(loader, FsspecLoader)
        assert loader.uri == url
    blob = loader_for("blob://models/sub/model.zip", connection="MyStorage", timeout=3)
    assert isinstance(blob, BlobLoader)
    assert (blob.container, blob.blob) == ("models", "sub/model.zip")
    assert blob.uri == "blob://models/sub/model.zip"
    assert blob.timeout == 3


class StaticLoader(MemoryLoader):
    """A third-party loader as the registry builds it: ``StaticLoader(uri, **options)``."""

    def __init__(self, uri: str, *, content: bytes) -> None:
        super().__init__(content, uri=uri)


def test_registry_is_read_only_and_extensible() -> None:
    with pytest.raises(TypeError):
        registry["x"] = registry["file"]  # type: ignore[index]

    register_loader("servefn-test", f"{__name__}:StaticLoader")
    try:
        loader = loader_for("servefn-test://model.zip", content=b"v1")
        assert isinstance(loader, StaticLoader)
        fetched = loader.fetch()
        assert fetched is not None
        assert (fetched.uri, fetched.data) == ("servefn-test://model.zip", b"v1")
        register_loader("servefn-test", f"{__name__}:StaticLoader")  # same target: fine
        with pytest.raises(ValueError, match="already served by"):
            register_loader("servefn-test", "servefn.loaders.local:LocalLoader")
        register_loader("servefn-test", "servefn.loaders.local:LocalLoader", clobber=True)
        assert registry["servefn-test"].target == "servefn.loaders.local:LocalLoader"
    finally:
        from servefn.loaders import _registry

        _registry.pop("servefn-test", None)

    register_loader("servefn-missing", "servefn_no_such_package:Loader", missing="pip install x")
    try:
        with pytest.raises(ImportError, match="pip install x"):
            loader_for("servefn-missing://model.zip")
    finally:
        from servefn.loaders import _registry

        _registry.pop("servefn-missing", None)


def test_importing_loaders_imports_no_storage_sdk() -> None:
    code = textwrap.dedent(
        """
        import sys
        import servefn.loaders as loaders
        loaders.loader_for("blob://models/model.zip")
        loaders.loader_for("az://models/model.zip")
        loaders.ModelSource(loaders.MemoryLoader(b"x"), parse=bytes.decode).get()
        heavy = ("azure.storage.blob", "azure.identity", "adlfs", "aiohttp")
        print(sorted(m for m in sys.modules if m.startswith(heavy)))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "build"),
    [
        ("azure.storage.blob", lambda: loader_for("blob://models/model.zip")),
        ("adlfs", lambda: loader_for("az://models/model.zip")),
    ],
)
def test_missing_azure_packages_name_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, build: Callable[[], object]
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what find_spec sees when it is absent
    with pytest.raises(ImportError, match=r"pip install 'servefn\[azure\]'"):
        build()


def test_public_surface() -> None:
    import servefn.loaders as loaders

    assert sorted(loaders.__all__) == [
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
    for name in loaders.__all__:
        assert getattr(loaders, name) is not None
    assert loaders.FsspecLoader is FsspecLoader
