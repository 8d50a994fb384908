"""Loaders without Azure: redaction, local files, fsspec URLs, the registry and lazy imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest

from servefn import Schema, column
from servefn.errors import LoaderError, UsageError
from servefn.loaders import (
    Fetched,
    LocalLoader,
    MemoryLoader,
    ModelLoader,
    ModelSource,
    loader_for,
    redact,
    register_loader,
    registry,
    takes_connection,
)
from servefn.loaders.remote import FsspecLoader
from servefn.loaders.schemes import ConnectionNotApplicable, check_connection

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
    # all the user info is masked: a token may be the user name (https://TOKEN:x@host)
    assert loader.uri.startswith("https://***@example.invalid/models/model.zip")


@pytest.mark.integration
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


def test_predictor_registry_has_the_same_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kinds map to ("module:Class", missing) like schemes do; entry points add kinds lazily."""
    from importlib.metadata import EntryPoint

    from servefn.errors import PredictorError
    from servefn.predictors import _registry, predictor_class, register_predictor
    from servefn.predictors import registry as kinds
    from servefn.predictors.linear import LinearClassifier

    assert kinds["sklearn"].missing == (
        "this model needs scikit-learn and skops: pip install 'servefn[sklearn]'"
    )
    with pytest.raises(TypeError):
        kinds["x"] = kinds["sklearn"]  # type: ignore[index]
    try:
        register_predictor("servefn-test", LinearClassifier)
        register_predictor("servefn-test", "servefn.predictors.linear:LinearClassifier")  # same
        assert predictor_class("servefn-test") is LinearClassifier
        with pytest.raises(PredictorError, match="already served by"):
            register_predictor("servefn-test", "servefn.predictors.sklearn:SklearnPredictor")
        register_predictor(
            "servefn-test", "servefn_no_such_package:P", missing="pip install x", clobber=True
        )
        with pytest.raises(PredictorError, match=r"^pip install x$"):
            predictor_class("servefn-test")
    finally:
        _registry.pop("servefn-test")

    plugin = EntryPoint(
        "servefn-plugin", "servefn.predictors.linear:LinearClassifier", "servefn.predictors"
    )
    monkeypatch.setattr(
        "importlib.metadata.entry_points",
        lambda group: [plugin] if group == "servefn.predictors" else [],
    )
    try:
        assert predictor_class("servefn-plugin") is LinearClassifier
        assert kinds["servefn-plugin"].target == "servefn.predictors.linear:LinearClassifier"
    finally:
        _registry.pop("servefn-plugin")
    with pytest.raises(PredictorError, match="no predictor is registered for model kind 'nope'"):
        predictor_class("nope")


# --- connection= applies to Azure Storage only ------------------------------------------------

AZURE_ONLY = re.escape("applies to blob://, az://, abfs://, abfss:// URLs (Azure Storage)")


@pytest.mark.parametrize(
    "location",
    [
        "model.zip",
        "C:\\models\\model.zip",
        "file:///srv/models/model.zip",
        "s3://bucket/model.zip",
        "memory://bucket/model.zip",
    ],
)
def test_loader_for_refuses_a_connection_outside_azure_storage(location: str) -> None:
    assert not takes_connection(location)
    with pytest.raises(ConnectionNotApplicable, match=f"^connection= {AZURE_ONLY}") as refused:
        loader_for(location, connection="AzureWebJobsStorage")
    assert isinstance(refused.value, UsageError)  # the CLI's exit code 2
    assert f"not to {location}; drop it" in str(refused.value)


def test_azure_storage_urls_take_a_connection() -> None:
    for url in ("blob://m/model.zip", "az://m/model.zip", "ABFS://m/model.zip", "abfss://m/x"):
        assert takes_connection(url)
    # a run's connection is fine when any of its locations is in Azure Storage
    check_connection("AzureWebJobsStorage", "model.zip", "az://data/in.csv")
    check_connection(None, "model.zip")
    with pytest.raises(ConnectionNotApplicable, match=r"not to model\.zip or in\.csv;"):
        check_connection("AzureWebJobsStorage", "model.zip", "in.csv")


def _entry_points() -> dict[str, Callable[[Path, str], object]]:
    """Each way a location and a connection meet, called with a local model."""
    from servefn.azure import serve_http
    from servefn.batch import BatchOptions, predict_batch
    from servefn.devhost._modelapp import ModelApp, model_loader
    from servefn.model import Records

    def handler(model: object, inputs: Records) -> object:
        return inputs

    return {
        "loader_for": lambda model, setting: loader_for(model, setting),
        "serve_http": lambda model, setting: serve_http(
            _Features, _Label, model=str(model), connection=setting
        )(handler),
        "model_loader": lambda model, setting: model_loader(str(model), setting),
        "ModelApp.load": lambda model, setting: ModelApp.load(model, connection=setting),
        "predict_batch": lambda model, setting: predict_batch(
            model,
            str(model.with_name("in.csv")),
            str(model.with_name("out.jsonl")),
            options=BatchOptions(connection=setting),
        ),
    }


@pytest.mark.parametrize("entry_point", sorted(_entry_points()))
def test_every_entry_point_refuses_a_misapplied_connection(
    entry_point: str, tmp_path: Path
) -> None:
    """The one rule of servefn.loaders.schemes, wherever a connection meets a location."""
    model = tmp_path / "model.zip"
    model.write_bytes(b"not read: the connection is refused first")
    with pytest.raises(ConnectionNotApplicable, match=AZURE_ONLY) as refused:
        _entry_points()[entry_point](model, "AzureWebJobsStorage")
    assert f"not to {model}" in str(refused.value)


@pytest.mark.parametrize(
    ("command", "option"),
    [(["serve"], "--connection"), (["inspect"], "--connection"), (["predict"], "--connection")],
)
def test_the_cli_refuses_a_misapplied_connection(
    command: list[str], option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from servefn.cli._main import EXIT_USAGE, main

    model = tmp_path / "model.zip"
    model.write_bytes(b"not read: the connection is refused first")
    data = ["-i", str(tmp_path / "in.csv")] if command == ["predict"] else []
    argv = [*command, str(model), *data, "--connection", "AzureWebJobsStorage"]
    assert main(argv) == EXIT_USAGE
    assert re.search(f"{re.escape(option)} {AZURE_ONLY}", capsys.readouterr().err)


class _Features(Schema):
    x: float = column(0, name="X")


class _Label(Schema):
    label: str = column(name="Label")


def test_serve_http_uses_its_connection_for_a_model_in_azure_storage(tmp_path: Path) -> None:
    """A model in Azure Storage reads the connection given; a local one takes none (the
    default, AzureWebJobsStorage, applies only to Azure URLs)."""
    from servefn.azure import endpoint_of, serve_http

    def sources(model: str, connection: str | None = "Mine") -> ModelSource[object]:
        def predict(model: object, inputs: object) -> object:
            return inputs

        wrapper = serve_http(_Features, _Label, model=model, connection=connection)(predict)
        source = endpoint_of(wrapper)
        assert isinstance(source.source, ModelSource)
        return source.source

    assert isinstance(sources(str(tmp_path / "model.zip"), None).loader, LocalLoader)
    assert "connection='AzureWebJobsStorage'" in repr(sources("blob://m/model.zip", None).loader)
    assert "connection='Mine'" in repr(sources("blob://models/model.zip").loader)
    assert "connection='Mine'" in repr(sources("az://models/model.zip").loader)


@pytest.mark.integration
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
        "takes_connection",
    ]
    for name in loaders.__all__:
        assert getattr(loaders, name) is not None
    assert loaders.FsspecLoader is FsspecLoader


def test_upload_without_the_azure_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, trained_model: Path
) -> None:
    from servefn.loaders.upload import upload_model

    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)
    with pytest.raises(LoaderError, match=r"servefn upload needs .*pip install 'servefn\[azure\]'"):
        upload_model(trained_model, "blob://models/model.zip")
