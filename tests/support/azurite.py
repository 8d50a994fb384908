"""Azurite, the Blob Storage emulator, as a pytest plugin (``support.azurite`` in conftest.py).

Fixtures:

- ``azurite`` (session): a running ``azurite-blob`` on a free 127.0.0.1 port, in-memory, with
  ``stop()``/``start()`` (same port) and ``stopped()`` for "storage down" tests. Without the
  emulator (``make azurite``) the tests that use it are skipped, or fail when ``CI=true``.
- ``hung_port``: a port that accepts connections and never answers (a hung storage endpoint).
- ``blob_container``: a fresh, uniquely named container in it (an azure-storage-blob
  ``ContainerClient``); Azurite is started again first if an earlier test left it stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import ROOT

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

BINARY = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented); tests treat it as a secret.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT = 30.0


class AzuriteError(RuntimeError):
    """Azurite could not be started."""


class Azurite:
    """One ``azurite-blob`` process on a fixed port; stop and start it at will."""

    def __init__(self, binary: Path, location: Path, port: int) -> None:
        self.binary = binary
        self.location = location
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start Azurite (empty: it keeps blobs in memory) and wait until it accepts connections."""
        if self.running:
            return
        log = self.location / "azurite.log"
        with log.open("ab") as stderr:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.port),
                    "--inMemoryPersistence",
                    "--silent",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                ],
                cwd=self.location,  # --location cannot be combined with --inMemoryPersistence
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace")[-2000:].strip()
                raise AzuriteError(
                    f"Azurite did not start on port {self.port}: {tail or 'no output'}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process (by its pid) and wait until the port is closed."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        while _accepts(self.port):
            time.sleep(0.02)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Storage is down inside the block; Azurite is running (and empty) again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def service_client(self) -> BlobServiceClient:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A running Azurite for the whole session, stopped at the end."""
    if not BINARY.exists():
        _unavailable(f"Azurite is not installed at {BINARY}; run `make azurite`")
    if shutil.which("node") is None:
        _unavailable("Azurite needs Node.js, and `node` is not on PATH")
    server = Azurite(BINARY, tmp_path_factory.mktemp("azurite"), free_port())
    try:
        server.start()
    except (AzuriteError, OSError) as exc:
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def blob_container(azurite: Azurite) -> Iterator[ContainerClient]:
    """A new empty container, deleted afterwards when Azurite still has it."""
    azurite.start()
    container = azurite.service_client().create_container(f"models-{uuid.uuid4().hex[:12]}")
    yield container
    if azurite.running:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            container.delete_container()


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte back."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    done.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()
