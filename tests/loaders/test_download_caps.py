"""Every loader caps what it downloads (issue 11, item 3).

The cap is a loader's ``max_bytes=``, else the app setting ``SERVEFN_MAX_MODEL_BYTES``, else
512 MiB. An artifact whose size storage says up front (``os.stat``, blob properties, fsspec's
``info()``) is refused before a byte of it is read; one whose size nobody says (a pipe, an HTTP
server without ``Content-Length``) is read to at most ``cap + 1`` bytes. Real components only:
sparse files made with ``truncate`` (no disk cost), FIFOs, Azurite (a blob just over a 1 MiB
cap, and a 2 GiB page blob that holds no data), fsspec's ``memory://`` and ``file://``, an
HTTP server; and peak memory measured in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import pytest

from servefn.errors import LoaderError
from servefn.loaders import LocalLoader, MemoryLoader, ModelSource
from servefn.loaders.base import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_SETTING,
    ArtifactTooLarge,
    check_max_bytes,
    download_cap,
)
from servefn.loaders.blob import BlobLoader
from servefn.loaders.remote import FsspecLoader
from support.azurite import Azurite
from support.httpfiles import FileServer, serve_files
from support.standins import Clock, parse_text

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

MiB = 1024 * 1024
GiB = 1024 * MiB
CAP = 1 * MiB
"""The small cap the tests set, so that "over the cap" costs little."""


@pytest.fixture(autouse=True)
def no_cap_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_BYTES_SETTING, raising=False)


@pytest.fixture
def http_files() -> Iterator[FileServer]:
    with serve_files() as server:
        yield server


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (``truncate``)."""
    with path.open("wb") as file:
        file.truncate(size)
    return path


def assert_refusal(error: BaseException, cap: int, size: int | None) -> None:
    """One line that names the size (when known), the cap and how to raise it."""
    message = str(error)
    assert isinstance(error, ArtifactTooLarge) and isinstance(error, LoaderError)
    assert "\n" not in message
    assert f"{cap:,} bytes" in message and "download cap" in message
    assert "max_bytes=" in message and MAX_BYTES_SETTING in message
    if size is not None:
        assert f"{size:,} bytes" in message
    assert (error.cap, error.size) == (cap, size)


# -- the setting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "cap"),
    [
        ("1048576", MiB),
        ("600_000_000", 600_000_000),
        ("1MiB", MiB),
        ("1 mib", MiB),
        ("600MB", 600_000_000),
        ("2GiB", 2 * GiB),
        ("1g", 10**9),
        ("  4096  ", 4096),
    ],
)
def test_the_app_setting_sets_the_cap(
    setting: str, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert download_cap() == DEFAULT_MAX_BYTES == 512 * MiB
    monkeypatch.setenv(MAX_BYTES_SETTING, setting)
    assert download_cap() == cap
    assert download_cap(5) == 5  # the loader's own max_bytes= wins


@pytest.mark.parametrize("setting", ["abc", "0", "-5", "1iB", "1.5GB", "12 parsecs", "0MiB"])
def test_a_malformed_setting_is_a_loader_error_naming_it(
    setting: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MAX_BYTES_SETTING, setting)
    with pytest.raises(LoaderError, match=f"app setting {MAX_BYTES_SETTING}=") as failure:
        download_cap()
    assert "\n" not in str(failure.value)
    (tmp_path / "model.zip").write_bytes(b"v1")
    with pytest.raises(LoaderError, match=MAX_BYTES_SETTING):  # ...and what a fetch says
        LocalLoader(tmp_path / "model.zip").fetch()


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "1MiB"])
def test_max_bytes_must_be_a_positive_int(value: Any) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        check_max_bytes(value)
    with pytest.raises(ValueError, match="max_bytes"):
        LocalLoader("model.zip", max_bytes=value)


# -- LocalLoader ----------------------------------------------------------------------------------


def test_a_2_gib_sparse_file_is_refused_from_its_size(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "model.zip", 2 * GiB)
    started = time.perf_counter()
    with pytest.raises(ArtifactTooLarge) as failure:
        LocalLoader(path).fetch()
    assert time.perf_counter() - started < 1.0  # from os.stat, nothing read
    assert_refusal(failure.value, DEFAULT_MAX_BYTES, 2 * GiB)
    assert "2.0 GiB" in str(failure.value) and "512.0 MiB" in str(failure.value)


@pytest.mark.parametrize(("size", "accepted"), [(CAP, True), (CAP + 1, False), (3 * CAP, False)])
def test_local_files_at_and_over_the_cap(size: int, accepted: bool, tmp_path: Path) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(b"m" * size)
    for loader in (LocalLoader(path, max_bytes=CAP), LocalLoader(path, max_bytes=CAP, hash=True)):
        if accepted:
            fetched = loader.fetch()
            assert fetched is not None and len(fetched.data) == size
        else:
            with pytest.raises(ArtifactTooLarge) as failure:
                loader.fetch()
            assert_refusal(failure.value, CAP, size)


def test_the_setting_counts_when_the_fetch_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set after the loader was built (local.settings.json is applied late): it still counts."""
    path = tmp_path / "model.zip"
    path.write_bytes(b"m" * (CAP + 1))
    loader = LocalLoader(path)
    assert loader.fetch() is not None
    monkeypatch.setenv(MAX_BYTES_SETTING, "1MiB")
    with pytest.raises(ArtifactTooLarge) as failure:
        loader.fetch()
    assert_refusal(failure.value, CAP, CAP + 1)


def fifo_writer(path: Path, total: int) -> tuple[threading.Thread, list[int]]:
    """A thread writing ``total`` bytes into the FIFO at ``path``; the count it managed."""
    written = [0]

    def write() -> None:
        block = b"z" * (256 * 1024)
        try:
            with path.open("wb") as pipe:
                while written[0] < total:
                    written[0] += pipe.write(block[: total - written[0]])
        except BrokenPipeError:  # the reader stopped: what a refusal looks like
            pass

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, written


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize(("total", "accepted"), [(CAP, True), (CAP + 1, False), (64 * CAP, False)])
def test_a_stream_of_unknown_size_is_read_to_the_cap_only(
    total: int, accepted: bool, tmp_path: Path
) -> None:
    path = tmp_path / "model.pipe"
    os.mkfifo(path)
    thread, written = fifo_writer(path, total)
    loader = LocalLoader(path, max_bytes=CAP)
    if accepted:
        fetched = loader.fetch()
        assert fetched is not None and len(fetched.data) == total
    else:
        with pytest.raises(ArtifactTooLarge) as failure:
            loader.fetch()
        assert_refusal(failure.value, CAP, None)
        assert "is larger than that" in str(failure.value)
    thread.join(10)
    assert written[0] <= CAP + 1 + 512 * 1024  # stopped at the cap (plus what a pipe buffers)


def test_memory_loader_has_the_cap_too() -> None:
    loader = MemoryLoader(b"m" * (CAP + 1), max_bytes=CAP)
    with pytest.raises(ArtifactTooLarge) as failure:
        loader.fetch()
    assert_refusal(failure.value, CAP, CAP + 1)
    assert loader.downloads == 0
    loader.set(b"m" * CAP)
    assert loader.fetch() is not None


def test_a_disk_cache_entry_over_the_cap_is_discarded_unread(tmp_path: Path) -> None:
    from servefn.loaders.cache import DiskCache

    data = b"m" * (2 * CAP)
    DiskCache(tmp_path, "blob://models/model.zip").write(
        '"e1"', data, hashlib.sha256(data).hexdigest()
    )
    roomy = DiskCache(tmp_path, "blob://models/model.zip", max_bytes=4 * CAP)
    cached = roomy.read()
    assert cached is not None and cached.data == data
    tight = DiskCache(tmp_path, "blob://models/model.zip", max_bytes=CAP)
    assert tight.read() is None and not tight.path.exists()


# -- fsspec ---------------------------------------------------------------------------------------


class CountedDownloads:
    """Wraps a loader's file system so that reading the artifact is counted."""

    def __init__(self, loader: FsspecLoader, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        fs = loader.fs
        for name in ("cat_file", "open"):
            original = getattr(fs, name)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.calls += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(fs, name, counted)


@pytest.mark.parametrize(("size", "accepted"), [(CAP, True), (CAP + 1, False)])
def test_fsspec_memory_urls(size: int, accepted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"memory://caps-{size}-{time.monotonic_ns()}/model.zip"
    with fsspec.open(url, "wb") as file:
        file.write(b"m" * size)
    loader = FsspecLoader(url, max_bytes=CAP)
    downloads = CountedDownloads(loader, monkeypatch)
    if accepted:
        fetched = loader.fetch()
        assert fetched is not None and len(fetched.data) == size
        assert downloads.calls == 1
    else:
        with pytest.raises(ArtifactTooLarge) as failure:
            loader.fetch()
        assert_refusal(failure.value, CAP, size)
        assert downloads.calls == 0  # refused from info(), before reading


def test_fsspec_file_urls_are_refused_from_their_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sparse_file(tmp_path / "model.zip", 2 * GiB)
    loader = FsspecLoader(path.as_uri())
    downloads = CountedDownloads(loader, monkeypatch)
    started = time.perf_counter()
    with pytest.raises(ArtifactTooLarge) as failure:
        loader.fetch()
    assert time.perf_counter() - started < 1.0
    assert_refusal(failure.value, DEFAULT_MAX_BYTES, 2 * GiB)
    assert downloads.calls == 0


def test_http_content_length_over_the_cap_is_refused_before_the_download(
    http_files: FileServer,
) -> None:
    url = http_files.put("model.zip", b"m" * MiB, repeat=5)  # Content-Length: 5 MiB
    loader = FsspecLoader(url, max_bytes=CAP, timeout=10)
    with pytest.raises(ArtifactTooLarge) as failure:
        loader.fetch()
    assert_refusal(failure.value, CAP, 5 * MiB)
    assert http_files.gets() == 0 and http_files.sent == 0  # a HEAD, no body


@pytest.mark.parametrize(("repeat", "accepted"), [(1, True), (200, False)])
def test_http_without_content_length_is_read_to_the_cap_only(
    repeat: int, accepted: bool, http_files: FileServer
) -> None:
    """A chunked answer (no size up front): 200 MiB offered, at most about the cap taken."""
    url = http_files.put("model.zip", b"m" * MiB, framing="chunked", repeat=repeat)
    loader = FsspecLoader(url, max_bytes=CAP, timeout=10)
    if accepted:
        fetched = loader.fetch()
        assert fetched is not None and len(fetched.data) == MiB
        return
    with pytest.raises(ArtifactTooLarge) as failure:
        loader.fetch()
    assert_refusal(failure.value, CAP, None)
    time.sleep(0.2)  # the server notices the closed connection
    assert http_files.sent < 40 * MiB  # not 200 MiB: the reader stopped (socket buffers aside)


# -- Azure Blob Storage (Azurite) -----------------------------------------------------------------


class Responses:
    """azure-core's ``raw_response_hook``: every response's method, status and body size."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def __call__(self, response: Any) -> None:
        self.seen.append((response.http_request.method, response.http_response.status_code))

    def gets(self) -> list[tuple[str, int]]:
        return [item for item in self.seen if item[0] == "GET"]


@pytest.fixture
def storage_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("storage_env")
@pytest.mark.parametrize("how", ["option", "app setting"])
def test_a_blob_just_over_the_cap_is_refused_from_its_properties(
    how: str, blob_container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = blob_container.container_name
    blob_container.upload_blob("over.zip", b"m" * (CAP + 1))
    blob_container.upload_blob("at.zip", b"m" * CAP)
    options: dict[str, Any] = {"max_bytes": CAP} if how == "option" else {}
    if how == "app setting":
        monkeypatch.setenv(MAX_BYTES_SETTING, "1MiB")
    responses = Responses()
    over = BlobLoader(f"{name}/over.zip", retries=0, raw_response_hook=responses, **options)
    with pytest.raises(ArtifactTooLarge) as failure:
        over.fetch()
    assert_refusal(failure.value, CAP, CAP + 1)
    assert responses.seen == [("HEAD", 200)]  # the properties, no download

    at = BlobLoader(f"{name}/at.zip", retries=0, **options)
    fetched = at.fetch()
    assert fetched is not None and len(fetched.data) == CAP
    with pytest.raises(ArtifactTooLarge):
        FsspecLoader(f"az://{name}/over.zip", **options).fetch()
    fetched = FsspecLoader(f"az://{name}/at.zip", **options).fetch()
    assert fetched is not None and len(fetched.data) == CAP


@pytest.mark.usefixtures("storage_env")
def test_a_2_gib_page_blob_is_refused_without_downloading(
    blob_container: ContainerClient,
) -> None:
    """A page blob declares its size and holds no data: 2 GiB in storage, nothing on disk."""
    blob_container.get_blob_client("big.zip").create_page_blob(size=2 * GiB)
    responses = Responses()
    loader = BlobLoader(
        f"{blob_container.container_name}/big.zip", retries=0, raw_response_hook=responses
    )
    started = time.perf_counter()
    with pytest.raises(ArtifactTooLarge) as failure:
        loader.fetch()
    assert time.perf_counter() - started < 5
    assert_refusal(failure.value, DEFAULT_MAX_BYTES, 2 * GiB)
    assert responses.gets() == []
    with pytest.raises(ArtifactTooLarge) as failure:
        FsspecLoader(f"az://{blob_container.container_name}/big.zip").fetch()
    assert_refusal(failure.value, DEFAULT_MAX_BYTES, 2 * GiB)


@pytest.mark.usefixtures("storage_env")
def test_an_oversized_new_version_keeps_the_last_good_model(
    blob_container: ContainerClient,
) -> None:
    blob_container.upload_blob("model.zip", b"v1")
    responses = Responses()
    loader = BlobLoader(
        f"{blob_container.container_name}/model.zip",
        retries=0,
        max_bytes=CAP,
        raw_response_hook=responses,
    )
    clock = Clock()
    source = ModelSource(loader, parse=parse_text, refresh_after=10, clock=clock)
    assert source.get() == "v1"
    blob_container.upload_blob("model.zip", b"m" * (2 * CAP), overwrite=True)
    before = len(responses.gets())
    for _ in range(3):
        clock.advance(60)
        assert source.get() == "v1"
    info = source.info()
    assert info["state"] == "stale" and "download cap" in info["last_error"]
    assert len(responses.gets()) == before  # each check asked for the size only


# -- peak memory, in a subprocess -----------------------------------------------------------------

MEASURE = textwrap.dedent(
    """
    import json, os, resource, sys, threading, time

    from servefn.errors import LoaderError
    from servefn.loaders import LocalLoader, loader_for

    kind, location = sys.argv[1], sys.argv[2]
    if kind == "fifo":  # 1.5 GB offered through a pipe: the size is unknown
        os.mkfifo(location)

        def write():
            block = bytes(1024 * 1024)
            try:
                with open(location, "wb") as pipe:
                    for _ in range(1536):
                        pipe.write(block)
            except BrokenPipeError:
                pass

        threading.Thread(target=write, daemon=True).start()
    started = time.perf_counter()
    try:
        loader = LocalLoader(location) if kind != "blob" else loader_for(location)
        fetched = loader.fetch()
        outcome = f"accepted {len(fetched.data)} bytes"
    except LoaderError as exc:
        outcome = str(exc)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"outcome": outcome, "seconds": seconds, "peak": peak}))
    """
)


def measure(kind: str, location: str, **environment: str) -> dict[str, Any]:
    """Run MEASURE in a fresh Python and return what it prints.

    Linux carries ``ru_maxrss`` across ``exec`` from the memory the process had before: a
    Python started straight from pytest would report pytest's own peak. So a shell starts it
    (and stays, so that it forks rather than execs): the child then starts from the shell's
    few megabytes.
    """
    done = subprocess.run(
        ["sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-c", MEASURE, kind, location],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **environment},
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{kind}: {result['peak'] / MiB:.0f} MiB peak, {result['seconds']:.2f}s")
    return result


@pytest.mark.integration
def test_refusing_a_1_5_gb_file_takes_little_memory(tmp_path: Path) -> None:
    path = sparse_file(tmp_path / "model.zip", 1536 * MiB)
    result = measure("file", str(path), **{MAX_BYTES_SETTING: ""})
    assert "over the download cap of 536,870,912 bytes" in result["outcome"]
    assert result["peak"] < 200 * MiB and result["seconds"] < 2


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_refusing_a_1_5_gb_stream_takes_the_cap_at_most(tmp_path: Path) -> None:
    result = measure("fifo", str(tmp_path / "model.pipe"), **{MAX_BYTES_SETTING: "64MiB"})
    assert "is larger than that, over the download cap of 67,108,864" in result["outcome"]
    assert result["peak"] < 200 * MiB


@pytest.mark.integration
def test_refusing_a_2_gib_blob_takes_little_memory(
    azurite: Azurite, blob_container: ContainerClient
) -> None:
    blob_container.get_blob_client("big.zip").create_page_blob(size=2 * GiB)
    result = measure(
        "blob",
        f"blob://{blob_container.container_name}/big.zip",
        AzureWebJobsStorage=azurite.connection_string,
        **{MAX_BYTES_SETTING: ""},
    )
    assert "over the download cap" in result["outcome"]
    assert result["peak"] < 200 * MiB
