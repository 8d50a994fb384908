"""ModelSource: one load, cheap refreshes, last good model on failure, backoff, pin, disk cache.

The loader here is the shipped ``MemoryLoader`` (counting every fetch and download), so these
tests pin the contract exactly; the same behaviour against real storage is in
``loaders/test_loaders_azurite.py``. Time is an injected clock: nothing sleeps.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from servefn.errors import LoaderError, ModelUnavailable
from servefn.loaders import Fetched, MemoryLoader, ModelSource
from support.standins import Clock, parse_text

WAIT = 5.0  # seconds a test waits for another thread before it fails


class GatedLoader(MemoryLoader):
    """A MemoryLoader whose fetches wait until ``gate`` is set: storage that is slow right now."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def fetch(self, etag: str | None = None) -> Fetched | None:
        self.entered.set()
        assert self.gate.wait(WAIT), "test never opened the gate"
        return super().fetch(etag)


def refuse_v2(data: bytes) -> str:
    if data == b"v2":
        raise ValueError("v2 is refused")
    return parse_text(data)


def source_for(loader: MemoryLoader, clock: Clock, **options: Any) -> ModelSource[str]:
    return ModelSource(loader, parse=parse_text, clock=clock, **options)


def run_threads(count: int, target: Callable[[], None]) -> list[threading.Thread]:
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait(WAIT)
        target()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_loads_once_then_serves_from_memory() -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    source = source_for(loader, clock, refresh_after=10)
    assert source.info()["state"] == "idle"

    assert source.get() == "v1"
    for _ in range(1000):
        assert source.get() == "v1"
    assert loader.fetches == 1
    assert source.stats.loads == 1
    info = source.info()
    assert info["state"] == "ready"
    assert info["version"] == hashlib.sha256(b"v1").hexdigest()[:12] == source.version
    assert info["etag"] == loader.etag
    assert info["sha256"] == hashlib.sha256(b"v1").hexdigest()
    assert info["loaded_at"].endswith("+00:00")
    assert info["last_error"] is None


def test_concurrent_first_calls_share_one_load() -> None:
    loader, clock = GatedLoader(b"v1"), Clock()
    source = source_for(loader, clock)
    loader.gate.clear()
    results: list[str] = []
    threads = run_threads(8, lambda: results.append(source.get()))
    assert loader.entered.wait(WAIT)
    assert source.info()["state"] == "loading"
    time.sleep(0.05)  # let the other seven reach get() and queue behind the load
    loader.gate.set()
    for thread in threads:
        thread.join(WAIT)

    assert results == ["v1"] * 8
    assert loader.fetches == 1


def test_no_storage_access_until_refresh_is_due() -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    source = source_for(loader, clock, refresh_after=10)
    source.warm()
    clock.advance(9.999)
    for _ in range(100):
        source.get()
    assert loader.fetches == 1

    clock.advance(0.001)
    assert source.get() == "v1"
    assert (loader.fetches, loader.downloads) == (2, 1)  # one conditional check, no download
    assert source.stats.checks == 2


def test_due_refresh_is_one_check_while_everyone_else_is_served() -> None:
    loader, clock = GatedLoader(b"v1"), Clock()
    source = source_for(loader, clock, refresh_after=10)
    source.warm()
    loader.set(b"v2")
    clock.advance(10)
    loader.gate.clear()  # the check will hang until we open the gate
    loader.entered.clear()

    results: list[str] = []
    threads = run_threads(8, lambda: results.append(source.get()))
    assert loader.entered.wait(WAIT)
    wait_until(lambda: len(results) == 7)  # seven callers served while the check is in flight
    assert results == ["v1"] * 7
    assert loader.fetches == 1  # the in-flight check has not counted yet
    loader.gate.set()
    for thread in threads:
        thread.join(WAIT)

    assert loader.fetches == 2
    assert results[-1] == "v2"  # the checking caller gets the new model
    assert source.get() == "v2"
    assert source.stats.loads == 2


def test_background_refresh_never_makes_a_caller_wait() -> None:
    """With refresh_in_background, the caller that finds a check due gets the current model at
    once; one thread checks, downloads and parses, and the new model follows."""
    loader, clock = GatedLoader(b"v1"), Clock()
    source = source_for(loader, clock, refresh_after=10, refresh_in_background=True)
    assert not source.in_memory()
    assert source.get() == "v1"  # the first load is waited for
    assert source.in_memory()
    loader.set(b"v2")
    clock.advance(10)
    loader.gate.clear()  # storage hangs
    loader.entered.clear()
    assert source.get() == "v1"  # due: answered at once, the check starts in a thread
    assert loader.entered.wait(WAIT)
    assert [source.get() for _ in range(100)] == ["v1"] * 100  # no second check meanwhile
    assert source.in_memory()  # a host may keep calling it on its event loop
    assert not source.wait_for_refresh(0.01)  # still hanging
    loader.gate.set()
    assert source.wait_for_refresh(WAIT)
    assert source.get() == "v2"
    assert (loader.fetches, loader.downloads, source.stats.loads) == (2, 2, 2)


def test_a_failed_background_refresh_keeps_the_model_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    source = ModelSource(
        loader, parse=refuse_v2, clock=clock, refresh_after=10, refresh_in_background=True
    )
    assert source.get() == "v1"
    loader.set(b"v2")  # refused by the parser
    clock.advance(10)
    with caplog.at_level(logging.WARNING, logger="servefn.loaders"):
        assert source.get() == "v1"
        assert source.wait_for_refresh(WAIT)
    assert source.stats.failures == 1 and "keeping version" in caplog.text
    assert source.info()["state"] == "stale"
    assert source.get() == "v1"  # backing off: no new check right away
    assert source.wait_for_refresh(WAIT)
    assert loader.fetches == 2
    clock.advance(10)
    assert source.get() == "v1" and source.wait_for_refresh(WAIT)
    assert loader.fetches == 3


def test_changed_artifact_is_swapped_in_after_refresh() -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    source = source_for(loader, clock, refresh_after=5)
    assert source.get() == "v1"
    first_version = source.version
    loader.set(b"v2")
    assert source.get() == "v1"  # not due yet
    clock.advance(5)
    assert source.get() == "v2"
    assert source.version != first_version
    assert source.info()["etag"] == loader.etag


def test_same_bytes_under_a_new_etag_are_not_parsed_again() -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    source = source_for(loader, clock, refresh_after=1)
    model = source.get()
    loader.set(b"v1")
    clock.advance(1)
    assert source.get() is model
    assert source.stats.loads == 1
    assert source.info()["etag"] == loader.etag


def test_corrupt_refresh_keeps_last_good_and_is_checked_at_the_refresh_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused artifact is a permanent failure (the same bytes would be refused again): the
    last good model stays, storage is asked every refresh interval (no growing backoff, no
    download of the same etag), and the next version is loaded."""
    loader, clock = MemoryLoader(b"v1"), Clock()
    source = source_for(loader, clock, refresh_after=2, backoff_initial=1, backoff_max=8)
    source.warm()
    loader.set(b"corrupt!")
    caplog.set_level(logging.WARNING, logger="servefn.loaders")

    clock.advance(2)
    assert source.get() == "v1"
    info = source.info()
    assert info["state"] == "stale"
    assert info["failure"] == "permanent"
    assert "refused" in info["last_error"]
    assert "ValueError: not a model archive" in info["last_error"]
    assert "keeping version" in caplog.text
    assert "not a model archive" in caplog.text

    # checks come every 2 s (the refresh interval, not 1, 2, 4, 8 s of backoff), and the
    # refused artifact is downloaded once
    checks = loader.fetches
    for delay in (2, 2, 2, 2, 2):
        assert source.info()["next_check_in"] == delay
        clock.advance(delay - 0.01)
        assert source.get() == "v1"
        assert loader.fetches == checks
        clock.advance(0.01)
        assert source.get() == "v1"
        checks += 1
        assert loader.fetches == checks
    assert loader.downloads == 2

    loader.set(b"v3")
    clock.advance(2)
    assert source.get() == "v3"
    assert source.info()["state"] == "ready"
    assert source.info()["last_error"] is None
    assert source.info()["next_check_in"] == 2


def test_cold_failure_is_unavailable_with_retry_after_then_recovers() -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    loader.fail(LoaderError("storage account unreachable"))
    source = source_for(loader, clock, backoff_initial=1, backoff_max=60)

    with pytest.raises(ModelUnavailable, match="storage account unreachable") as raised:
        source.get()
    assert raised.value.retry_after == 1
    assert source.info()["state"] == "unavailable"

    errors: list[float] = []

    def call() -> None:
        with pytest.raises(ModelUnavailable) as failure:
            source.get()
        errors.append(failure.value.retry_after)

    clock.advance(0.5)
    for thread in run_threads(8, call):
        thread.join(WAIT)
    assert errors == [0.5] * 8
    assert loader.fetches == 1  # inside the backoff window nobody touches storage

    clock.advance(0.5)
    with pytest.raises(ModelUnavailable) as raised:
        source.get()
    assert raised.value.retry_after == 2  # exponential
    assert loader.fetches == 2

    loader.fail(None)
    clock.advance(1.9)
    with pytest.raises(ModelUnavailable):
        source.get()
    clock.advance(0.1)
    assert source.get() == "v1"
    assert loader.fetches == 3
    assert source.info()["state"] == "ready"


def test_sha256_pin_accepts_only_that_artifact_and_stops_checking() -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    pinned = source_for(loader, clock, refresh_after=1, sha256=hashlib.sha256(b"v1").hexdigest())
    assert pinned.get() == "v1"
    loader.set(b"v2")
    clock.advance(3600)
    assert pinned.get() == "v1"
    assert loader.fetches == 1
    assert pinned.info()["next_check_in"] is None

    wrong = source_for(loader, clock, sha256="ab" * 32)
    with pytest.raises(ModelUnavailable, match="is not the pinned abab"):
        wrong.get()
    assert wrong.stats.loads == 0
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        source_for(loader, clock, sha256="abc")


def test_disk_cache_lets_a_new_process_skip_the_download(tmp_path: Path) -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    first = source_for(loader, clock, cache_dir=tmp_path)
    assert first.get() == "v1"
    assert loader.downloads == 1

    second = source_for(loader, clock, cache_dir=tmp_path)  # a new worker on the same instance
    assert second.get() == "v1"
    assert (loader.fetches, loader.downloads) == (2, 1)  # asked storage, downloaded nothing
    assert second.stats.cache_hits == 1
    assert second.info()["origin"] == "disk cache, confirmed by storage"

    loader.set(b"v2")  # changed since the cache was written: downloaded, and cached anew
    third = source_for(loader, clock, cache_dir=tmp_path)
    assert third.get() == "v2"
    assert loader.downloads == 2
    assert source_for(loader, clock, cache_dir=tmp_path).get() == "v2"
    assert loader.downloads == 2


def test_disk_cache_serves_while_storage_is_down_at_start(tmp_path: Path) -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    source_for(loader, clock, cache_dir=tmp_path).warm()
    loader.fail(LoaderError("storage account unreachable"))

    restarted = source_for(loader, clock, cache_dir=tmp_path)
    assert restarted.get() == "v1"
    info = restarted.info()
    assert info["state"] == "stale"
    assert "unreachable" in info["last_error"]

    loader.fail(None)
    clock.advance(300)
    assert restarted.get() == "v1"
    assert restarted.info()["state"] == "ready"


def test_damaged_disk_cache_entry_is_ignored(tmp_path: Path) -> None:
    loader, clock = MemoryLoader(b"v1"), Clock()
    source_for(loader, clock, cache_dir=tmp_path).warm()
    (entry,) = tmp_path.glob("*.model")
    entry.write_bytes(entry.read_bytes()[:-1] + b"X")

    assert source_for(loader, clock, cache_dir=tmp_path).get() == "v1"
    assert loader.downloads == 2  # verified, found damaged, downloaded again
    assert len(list(tmp_path.iterdir())) == 1  # rewritten in place, no temporary files left


def test_info_and_errors_never_show_credentials(caplog: pytest.LogCaptureFixture) -> None:
    uri = "https://acct.blob.core.windows.net/models/model.zip?sv=2024-05-04&sp=r&sig=SIGSECRET"
    loader, clock = MemoryLoader(b"v1", uri=uri), Clock()
    loader.fail(LoaderError("refused: AccountName=acct;AccountKey=KEYSECRET;EndpointSuffix=x"))
    source = source_for(loader, clock)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ModelUnavailable) as raised:
        source.get()
    shown = [str(raised.value), repr(source), str(source.info()), caplog.text]
    for text in shown:
        assert "SIGSECRET" not in text
        assert "KEYSECRET" not in text
    assert "AccountKey=***" in source.info()["last_error"]
    assert source.info()["uri"].endswith("sig=***")


def test_any_parse_or_loader_exception_is_contained() -> None:
    clock = Clock()
    loader = MemoryLoader(b"v1")
    source = ModelSource(loader, parse=lambda data: {"model": data}["missing"], clock=clock)
    with pytest.raises(ModelUnavailable, match="KeyError"):
        source.get()

    loader.fail(OSError(5, "Input/output error"))
    failing = source_for(loader, clock)
    with pytest.raises(ModelUnavailable, match="OSError"):
        failing.get()


def test_default_parse_is_servefn_read_model() -> None:
    source = ModelSource(MemoryLoader(b"not a zip file"))
    with pytest.raises(ModelUnavailable, match="ArtifactError"):
        source.get()


def test_accepts_a_path(tmp_path: Path) -> None:
    (tmp_path / "model.zip").write_bytes(b"v1")
    source = ModelSource(str(tmp_path / "model.zip"), parse=parse_text)
    assert source.get() == "v1"
    assert source.uri == str(tmp_path / "model.zip")


def test_a_model_archive_is_hashed_once_per_load(
    monkeypatch: pytest.MonkeyPatch, trained_model: Path
) -> None:
    """ModelSource hashes the archive (version, pin, same-bytes check) and hands the digest to
    load_model, which would otherwise hash the same bytes again."""
    data = trained_model.read_bytes()
    real = hashlib.sha256
    whole_archive: list[int] = []

    def counting(value: bytes = b"", **options: Any) -> Any:
        if len(value) == len(data):
            whole_archive.append(1)
        return real(value, **options)

    monkeypatch.setattr(hashlib, "sha256", counting)
    model = ModelSource(MemoryLoader(data)).get()
    assert model.sha256 == real(data).hexdigest()
    assert len(whole_archive) == 1
