"""Storage faults and bad uploads against real Blob Storage (Azurite), seen through HTTP.

A function app with ``serve_http`` over a ``blob://`` model and ``add_health_routes`` is called
the way the Functions worker calls it. Storage goes down before and after the first load, bad
models are uploaded over a good one, the blob is deleted, and storage hangs behind a proxy.
Every prediction request is answered: 503 + Retry-After before any model could be loaded, the
last good model otherwise; health says why; recovery needs no restart.

The model source's clock is injected so that "the next check is due" is a step of the test,
not a sleep; the storage timeouts are real.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import socket
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import azure.functions as func
import numpy as np
import pytest

from servefn.model._archive import load_model
from servefn.predictors.linear import LinearClassifier
from support.azurite import Azurite
from support.problems import check_problem
from support.reliability import Clock, blob_app, model_bytes, petal_model

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

# Every test runs against Azurite (and some through a TCP proxy in a thread).
pytestmark = pytest.mark.integration

BLOB = "model.zip"
GOOD = model_bytes()
GOOD_VERSION = load_model(GOOD).version


def report(name: str, **figures: int) -> None:
    """The figures behind README's reliability section (shown with ``pytest -rA``)."""
    print(f"faults {name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


# -- outages ----------------------------------------------------------------------------------


def test_cold_start_with_storage_down_is_503_then_recovers_without_restart(
    azurite: Azurite, blob_container: ContainerClient
) -> None:
    clock = Clock()
    app = blob_app(blob_container, azurite.port, clock)
    answered = 0
    with azurite.stopped():
        for _ in range(20):
            response = app.predict()
            problem = check_problem(response)
            assert response.status_code == 503 and problem["status"] == 503
            retry_after = int(response.headers["Retry-After"])
            assert retry_after >= 1
            answered += 1
        status, health = app.health()
        assert status == 503 and health["state"] == "unavailable"
        assert "could not reach" in health["last_error"]
        assert app.source.stats.checks == 1  # one attempt, then backoff: storage not hammered

    # storage is back (Azurite restarts empty); the same process recovers on its own
    azurite.service_client().create_container(blob_container.container_name)
    blob_container.upload_blob(BLOB, GOOD)
    clock.advance(retry_after)
    app.served(GOOD_VERSION)
    status, health = app.health()
    assert status == 200 and health["state"] == "ready" and health["last_error"] is None
    report("cold start, storage down", requests_answered=answered, errors=0)


def test_warm_with_storage_down_answers_every_request(
    azurite: Azurite, blob_container: ContainerClient
) -> None:
    blob_container.upload_blob(BLOB, GOOD)
    clock = Clock()
    app = blob_app(blob_container, azurite.port, clock)
    app.served(GOOD_VERSION)
    statuses: list[int] = []

    def client() -> None:
        for _ in range(50):
            response = app.predict()
            assert response.headers["X-Model-Version"] == GOOD_VERSION
            statuses.append(response.status_code)

    with azurite.stopped():
        for _ in range(5):  # five failed checks while eight clients keep sending
            clock.advance()
            with ThreadPoolExecutor(8) as pool:
                for future in [pool.submit(client) for _ in range(8)]:
                    future.result()
        status, health = app.health()
        assert status == 200 and health["state"] == "stale"
        assert "could not reach" in health["last_error"]
        failed_checks = app.source.stats.failures

    assert statuses == [200] * 2000
    assert failed_checks == 5
    azurite.service_client().create_container(blob_container.container_name)
    blob_container.upload_blob(BLOB, GOOD)
    clock.advance()
    app.served(GOOD_VERSION)
    assert app.health()[1]["state"] == "ready"
    report("warm, storage down", failed_checks=failed_checks, requests_served=len(statuses))


# -- bad uploads --------------------------------------------------------------------------------


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip written by hand: ``(name, deflate stream, unpacked size, crc32)`` per member."""
    out = io.BytesIO()
    central = []
    for name, data, size, crc in members:
        offset, encoded = out.tell(), name.encode()
        out.write(
            struct.pack(
                "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0
            )
        )
        out.write(encoded + data)
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0x21,
                crc,
                len(data),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + encoded
        )
    start = out.tell()
    out.write(b"".join(central))
    size = out.tell() - start
    out.write(
        struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), size, start, 0)
    )
    return out.getvalue()


def _deflated(name: str, data: bytes) -> tuple[str, bytes, int, int]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return name, compressor.compress(data) + compressor.flush(), len(data), zlib.crc32(data)


def _members(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def zip_bomb() -> bytes:
    """The good model with weights.npz replaced by 1.1 GiB of zeros in a 1 MB deflate stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(1100):
        crc = zlib.crc32(chunk, crc)
    stream = block * 1100 + b"\x03\x00"  # full flushes make every block identical; then "end"
    manifest = _deflated("servefn.json", _members(GOOD)["servefn.json"])
    return _zip([manifest, ("weights.npz", stream, 1100 << 20, crc)])


def lying_zip_bomb() -> bytes:
    """weights.npz declares the size in the manifest but inflates to 64 MiB: read no further."""
    members = _members(GOOD)
    name, stream, _, _ = _deflated("weights.npz", bytes(64 << 20))
    declared = len(members["weights.npz"])
    return _zip([_deflated("servefn.json", members["servefn.json"]), (name, stream, declared, 0)])


def hash_mismatch() -> bytes:
    """A well-formed archive whose weights are not the ones its manifest's sha256 names."""
    other = LinearClassifier(np.ones((4, 3)), np.zeros(3), ["a", "b", "c"])
    members = _members(GOOD)
    members["weights.npz"] = _members(model_bytes(other))["weights.npz"]
    return _zip([_deflated(name, data) for name, data in members.items()])


def with_member(name: str) -> bytes:
    members = _members(GOOD)
    return _zip([*(_deflated(n, d) for n, d in members.items()), _deflated(name, b"evil")])


def unknown_kind() -> bytes:
    members = _members(GOOD)
    manifest = json.loads(members["servefn.json"])
    manifest["kind"] = "no-such-kind"
    members["servefn.json"] = json.dumps(manifest).encode()
    return _zip([_deflated(name, data) for name, data in members.items()])


BAD_UPLOADS = [
    pytest.param(lambda: random.Random(0).randbytes(4096), "not a zip file", id="corrupt"),
    pytest.param(lambda: GOOD[: len(GOOD) // 2], "not a zip file", id="truncated"),
    pytest.param(lambda: b"", "not a zip file", id="empty"),
    pytest.param(hash_mismatch, "does not match the sha256", id="hash_mismatch"),
    pytest.param(zip_bomb, "would unpack to", id="zip_bomb"),
    pytest.param(lying_zip_bomb, "damaged", id="zip_bomb_lying_about_its_size"),
    pytest.param(lambda: with_member("../evil.py"), "unsafe member name", id="dot_dot_member"),
    pytest.param(lambda: with_member("/etc/cron.d/x"), "unsafe member name", id="absolute_member"),
    pytest.param(
        lambda: _zip([_deflated("weights.npz", b"x")]), "no servefn.json", id="no_manifest"
    ),
    pytest.param(unknown_kind, "no predictor is registered", id="unknown_kind"),
    pytest.param(None, "does not exist", id="blob_deleted"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_UPLOADS)
def test_bad_upload_is_refused_and_the_last_good_model_kept(
    azurite: Azurite,
    blob_container: ContainerClient,
    bad: Callable[[], bytes] | None,
    reason: str,
) -> None:
    blob_container.upload_blob(BLOB, GOOD)
    clock = Clock()
    app = blob_app(blob_container, azurite.port, clock)
    app.served(GOOD_VERSION)

    if bad is None:
        blob_container.delete_blob(BLOB)
    else:
        blob_container.upload_blob(BLOB, bad(), overwrite=True)
    clock.advance()
    for _ in range(20):
        app.served(GOOD_VERSION)
    status, health = app.health()
    assert status == 200 and health["state"] == "stale" and health["version"] == GOOD_VERSION
    assert reason in health["last_error"], health["last_error"]

    newer = model_bytes(
        LinearClassifier(petal_model().weights * 2, np.zeros(3), petal_model().classes)
    )
    blob_container.upload_blob(BLOB, newer, overwrite=True)
    clock.advance()
    app.served(load_model(newer).version)
    assert app.health()[1]["state"] == "ready"
    report(f"bad upload {reason!r}", requests_served=20, errors=0)


# -- slow storage -------------------------------------------------------------------------------


class StorageProxy:
    """A TCP proxy in front of Azurite that can stop forwarding requests (storage that hangs).

    While ``hang`` is set, what clients send is read and dropped, so no answer ever comes,
    on new and already pooled connections alike; ``held`` is set once that happened.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.hang = threading.Event()
        self.held = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._server]
        self.port: int = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, requests: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if requests and self.hang.is_set():
                    self.held.set()
                    continue
                target.sendall(data)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[StorageProxy]:
    server = StorageProxy(azurite.port)
    yield server
    server.close()


def test_slow_storage_is_bounded_by_a_timeout_and_blocks_no_other_request(
    proxy: StorageProxy, blob_container: ContainerClient
) -> None:
    blob_container.upload_blob(BLOB, GOOD)
    clock = Clock()
    app = blob_app(blob_container, proxy.port, clock, timeout=2.0)
    app.served(GOOD_VERSION)

    proxy.hang.set()
    clock.advance()
    checker_answer: list[func.HttpResponse] = []
    checker = threading.Thread(target=lambda: checker_answer.append(app.predict()))
    checker.start()  # this request takes the due check, which now waits on storage
    assert proxy.held.wait(30), "the check never reached storage"
    for _ in range(50):
        app.served(GOOD_VERSION)  # answered from memory while the check is still waiting
    assert checker.is_alive(), "the check ended before the others were served"
    checker.join(30)
    assert not checker.is_alive(), "the storage timeout did not bound the check"
    assert checker_answer[0].status_code == 200
    assert checker_answer[0].headers["X-Model-Version"] == GOOD_VERSION
    status, health = app.health()
    assert status == 200 and health["state"] == "stale"
    assert "could not reach" in health["last_error"] and "timeout 2s" in health["last_error"]
    report("slow storage, warm", requests_served=51, errors=0)


def test_cold_start_against_hanging_storage_is_one_bounded_attempt(
    proxy: StorageProxy, blob_container: ContainerClient
) -> None:
    blob_container.upload_blob(BLOB, GOOD)
    proxy.hang.set()
    clock = Clock()
    app = blob_app(blob_container, proxy.port, clock, timeout=1.0)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: app.predict(), range(8)))
    assert {a.status_code for a in answers} == {503}  # every waiting request is answered
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers)
    assert app.source.stats.checks == 1  # they shared one bounded attempt
    proxy.hang.clear()
    clock.advance()
    app.served(GOOD_VERSION)
    report("slow storage, cold", requests_answered=8, errors=0)
