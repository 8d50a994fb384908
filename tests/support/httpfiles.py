"""A real HTTP file server on 127.0.0.1 for fsspec's ``http://`` loader.

``with serve_files() as server:`` serves files set with ``server.put(path, data, framing=...)``:
with a ``Content-Length`` (the size is known up front) or chunked with no length at all (fsspec
then reports no size). It records every request line (query string included) and counts the
body bytes it sent, so a test can tell whether a loader downloaded anything.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Framing = Literal["length", "chunked"]
_CHUNK = 64 * 1024


@dataclass
class _File:
    data: bytes
    framing: Framing
    repeat: int = 1
    """The data is sent this many times in a row (a large body without holding it)."""


@dataclass
class FileServer:
    port: int
    files: dict[str, _File] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    sent: int = 0
    """Body bytes written to clients (GET), all requests together."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def put(self, path: str, data: bytes, *, framing: Framing = "length", repeat: int = 1) -> str:
        """Serve ``data`` (``repeat`` times over) at ``path``; returns its URL."""
        self.files["/" + path.lstrip("/")] = _File(data, framing, repeat)
        return self.url(path)

    def gets(self) -> int:
        return sum(line.startswith("GET ") for line in self.requests)

    def _count(self, sent: int) -> None:
        with self._lock:
            self.sent += sent


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self, body: bool) -> None:
        files = self.server.files
        files.requests.append(self.requestline)
        served = files.files.get(self.path.split("?", 1)[0])
        if served is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", f'"{len(served.data) * served.repeat}-{hash(served.data)}"')
        if served.framing == "length":
            self.send_header("Content-Length", str(len(served.data) * served.repeat))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not body:
            return
        with contextlib.suppress(OSError):  # the client may stop reading (a refusal)
            for _ in range(served.repeat):
                for start in range(0, len(served.data), _CHUNK):
                    chunk = served.data[start : start + _CHUNK]
                    if served.framing == "chunked":
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    else:
                        self.wfile.write(chunk)
                    files._count(len(chunk))
            if served.framing == "chunked":
                self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: FileServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-answer (a refusal) is expected: no traceback."""


@contextmanager
def serve_files() -> Iterator[FileServer]:
    """A :class:`FileServer` running inside the block."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.files = FileServer(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.files
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
