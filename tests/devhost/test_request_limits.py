"""``servefn serve`` reads no more of a request body than the function will accept.

A ``serve_http`` function's own limit (its endpoint's ``max_body_bytes``, 10 MB by default)
applies in the host, within ``--max-body-size``: a body declared larger by Content-Length is
refused with the endpoint's own 413 before a byte of it is read (the client need not send it),
and a chunked body is refused as soon as it passes the limit. The subprocess tests measure the
server's memory (VmRSS / VmHWM of ``/proc/<pid>/status``) while clients push up to 99 MiB each.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from servefn import column
from servefn.devhost import DevHost
from servefn.http import Endpoint, Request
from servefn.http._endpoint import DEFAULT_MAX_BODY_BYTES
from servefn.model._archive import write_model
from servefn.predictors.linear import LinearClassifier
from servefn.schema._schema import Schema
from support.servehost import ServeProcess

MiB = 1024 * 1024
LIMIT = DEFAULT_MAX_BODY_BYTES
DECLARED = 99 * MiB
ONE = b'{"Length": 1, "Width": 2}'


class Visit(Schema):
    length: float = column(0, name="Length")
    width: float = column(1, name="Width")


class Verdict(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def predictor() -> LinearClassifier:
    return LinearClassifier(np.array([[1.0, -1.0], [1.0, -1.0]]), np.zeros(2), ["big", "small"])


def model_zip() -> bytes:
    buffer = io.BytesIO()
    write_model(buffer, predictor(), input=Visit, output=Verdict)
    return buffer.getvalue()


def padded(size: int) -> bytes:
    """A valid one-record JSON body of exactly ``size`` bytes (trailing whitespace)."""
    return ONE + b" " * (size - len(ONE))


def endpoint_413(limit: int) -> dict[str, Any]:
    """What the endpoint itself answers for a body over ``limit``."""
    endpoint = Endpoint(Visit, Verdict, object(), max_body_bytes=limit)  # type: ignore[arg-type]
    response = endpoint.handle(Request("POST", b" " * (limit + 1), {"content-type": "x"}))
    assert response.status == 413
    document: dict[str, Any] = json.loads(response.body)
    return document


# -- in process: which limit, and how much is read ----------------------------------------------

APP = """
from pathlib import Path

import azure.functions as func
import numpy as np

from servefn import Schema, column
from servefn import load_model
from servefn.azure import serve_http

LOADED = load_model(Path(__file__).with_name("model.zip"))  # no refresh thread in the tests
from servefn.predictors.linear import LinearClassifier


class Visit(Schema):
    length: float = column(0, name="Length")
    width: float = column(1, name="Width")


class Verdict(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


MODEL = LinearClassifier(np.array([[1.0, -1.0], [1.0, -1.0]]), np.zeros(2), ["big", "small"])
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="small", methods=["POST"])
@serve_http(Visit, Verdict, model=LOADED, max_body_bytes=4096)
def small(model, inputs):
    return model.predict(inputs)


app.route(route="default", methods=["POST"])(serve_http(Visit, Verdict)(MODEL))


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(len(req.get_body())))
"""


@pytest.fixture(scope="module")
def app_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("limits-app")
    (folder / "function_app.py").write_text(textwrap.dedent(APP))
    (folder / "host.json").write_text('{"version": "2.0"}')
    (folder / "model.zip").write_bytes(model_zip())
    return folder


class Upload:
    """An ASGI ``receive`` that hands out ``body`` in chunks and counts what was taken."""

    def __init__(self, body: bytes, chunk: int = 1024) -> None:
        self.pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.taken = 0
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        piece = self.pieces.pop(0)
        self.taken += len(piece)
        return {"type": "http.request", "body": piece, "more_body": bool(self.pieces)}


def call(
    host: DevHost, path: str, upload: Upload, headers: Iterable[tuple[str, str]] = ()
) -> tuple[int, dict[str, str], bytes]:
    """One request straight into the host's ASGI app: status, headers, body."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (k.encode(), v.encode()) for k, v in [("content-type", "application/json"), *headers]
        ],
    }
    asyncio.run(host.asgi_app(scope, upload, send))  # type: ignore[arg-type]
    start, body = sent
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], head, body["body"]


@pytest.mark.parametrize(
    ("path", "limit"), [("/api/small", 4096), ("/api/default", LIMIT)], ids=["small", "default"]
)
def test_a_declared_body_over_the_functions_limit_is_refused_unread(
    app_folder: Path, path: str, limit: int
) -> None:
    host = DevHost(app_folder, port=0)
    for declared in (limit + 1, DECLARED, 10**30):
        upload = Upload(padded(limit + 1))
        status, headers, body = call(host, path, upload, [("content-length", str(declared))])
        assert status == 413 and upload.calls == 0  # answered before the body was asked for
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        assert json.loads(body) == endpoint_413(limit)  # the endpoint's own answer


@pytest.mark.parametrize(
    ("path", "limit"), [("/api/small", 4096), ("/api/default", LIMIT)], ids=["small", "default"]
)
def test_an_undeclared_body_is_read_only_up_to_the_limit(
    app_folder: Path, path: str, limit: int
) -> None:
    host = DevHost(app_folder, port=0)
    chunk = 64 * 1024
    upload = Upload(b"x" * (limit + 5 * chunk), chunk)
    status, _, body = call(host, path, upload)
    assert status == 413 and json.loads(body) == endpoint_413(limit)
    assert upload.taken <= limit + chunk  # it stopped at the first chunk past the limit
    exact = Upload(padded(limit), chunk)
    assert call(host, path, exact)[0] == 200 and exact.taken == limit


def test_other_functions_keep_the_hosts_limit_and_the_host_limit_caps_all(
    app_folder: Path,
) -> None:
    host = DevHost(app_folder, port=0)
    big = b"x" * (LIMIT + 1)
    status, _, body = call(host, "/api/echo", Upload(big, MiB), [("content-length", str(len(big)))])
    assert (status, body) == (200, str(len(big)).encode())
    tight = DevHost(app_folder, port=0, max_body_size=1000)
    for path in ("/api/echo", "/api/small", "/api/default"):
        upload = Upload(padded(2000))
        status, _, body = call(tight, path, upload, [("content-length", "2000")])
        assert status == 413 and upload.calls == 0
        assert "1000 bytes" in json.loads(body)["detail"]
    assert call(tight, "/api/small", Upload(ONE))[0] == 200


def test_the_endpoint_itself_refuses_a_huge_declared_length() -> None:
    """A Content-Length of hundreds of digits is a 413, never a ValueError from int()."""
    endpoint = Endpoint(Visit, Verdict, object())  # type: ignore[arg-type]
    for declared in ("9" * 5000, "0" * 30 + "1" * 30, str(DECLARED)):
        answer = endpoint.handle(Request("POST", ONE, {"content-length": declared}))
        assert answer.status == 413, answer.body
    leading_zeros = Request("POST", ONE, {"content-length": "0" * 40 + str(len(ONE))})
    assert endpoint.handle(leading_zeros).status != 413


# -- servefn serve in a subprocess: real sockets, the server's memory ---------------------------


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def reset_peak(pid: int) -> bool:
    """Start VmHWM again from the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Served:
    """``servefn serve model.zip`` and its memory since :meth:`mark`."""

    def __init__(self, folder: Path) -> None:
        (folder / "model.zip").write_bytes(model_zip())
        self.host = ServeProcess(folder / "model.zip", folder / "serve.log")
        self.host.wait()
        self.port = self.host.port
        self.pid = self.host.process.pid
        self.base_rss = 0
        self.peak_reset = False

    def mark(self) -> None:
        """Warm up (one request), then take the baseline."""
        assert httpx.post(f"{self.host.base}/Predict", content=ONE, headers=JSON).status_code == 200
        self.peak_reset = reset_peak(self.pid)
        self.base_rss = memory(self.pid)["VmRSS"]

    def growth(self) -> int:
        """The highest RSS since :meth:`mark`, over the RSS then."""
        now = memory(self.pid)
        peak = now["VmHWM"] if self.peak_reset else max(now["VmHWM"], now["VmRSS"])
        return peak - self.base_rss


JSON = {"Content-Type": "application/json"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        yield server
    finally:
        server.host.stop()


def head(length: int | None, *, extra: str = "") -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /api/Predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n{extra}\r\n"
    ).encode()


def body_of(size: int, *, chunked: bool, piece: int = MiB) -> Iterator[bytes]:
    """A valid JSON body of ``size`` bytes in pieces (chunk-encoded when ``chunked``)."""
    block = b" " * piece
    for start in range(0, size, piece):
        data = block[: min(piece, size - start)]
        if start == 0:
            data = ONE + data[len(ONE) :]
        yield f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data
    if chunked:
        yield b"0\r\n\r\n"


class Exchange:
    """What one raw connection sent and got back."""

    def __init__(self) -> None:
        self.reply = b""
        self.sent = 0
        self.sent_when_answered: int | None = None

    @property
    def status(self) -> int:
        line = self.reply.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else 0

    def document(self) -> dict[str, Any]:
        _, _, body = self.reply.partition(b"\r\n\r\n")
        parsed: dict[str, Any] = json.loads(body)
        return parsed

    def header(self, name: str) -> str | None:
        top, _, _ = self.reply.partition(b"\r\n\r\n")
        for line in top.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name:
                return value.strip()
        return None


async def exchange(
    port: int, request_head: bytes, body: Iterable[bytes] = (), *, timeout: float = 30.0
) -> Exchange:
    """Send ``request_head`` then ``body`` while reading the answer, until the server closes
    the connection (or a whole answer arrived and the body is sent).

    A raw non-blocking socket, not asyncio streams: when the server answers and closes while
    the body is still coming, the failed send must not discard the answer already received.
    """
    result = Exchange()
    loop = asyncio.get_running_loop()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setblocking(False)

        async def push() -> None:
            try:
                await loop.sock_sendall(sock, request_head)
                for piece in body:
                    await loop.sock_sendall(sock, piece)
                    result.sent += len(piece)
            except OSError:
                pass  # the server answered and closed: stop sending

        pusher = asyncio.create_task(push())
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        data = await loop.sock_recv(sock, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    if not result.reply:
                        result.sent_when_answered = result.sent
                    result.reply += data
                    if _complete(result.reply) and pusher.done():
                        break
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
    return result


def _complete(reply: bytes) -> bool:
    top, found, body = reply.partition(b"\r\n\r\n")
    for line in top.split(b"\r\n"):
        if found and line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def run(*coroutines: Any) -> list[Exchange]:
    async def together() -> list[Exchange]:
        return list(await asyncio.gather(*coroutines))

    return asyncio.run(together())


def check_refused(answer: Exchange) -> None:
    assert answer.status == 413, answer.reply[:300]
    assert answer.header("content-type") == "application/problem+json"
    assert answer.document() == endpoint_413(LIMIT)


@pytest.mark.integration
def test_a_declared_99_mib_body_is_refused_before_the_client_sends_it(served: Served) -> None:
    served.mark()
    (answer,) = run(exchange(served.port, head(DECLARED), timeout=10))
    check_refused(answer)
    assert answer.sent == 0 and answer.header("connection") == "close"
    (waiting,) = run(exchange(served.port, head(DECLARED, extra="Expect: 100-continue\r\n")))
    check_refused(waiting)  # no "100 Continue" first: the client is told not to send
    assert served.growth() < 20 * MiB


@pytest.mark.integration
def test_a_chunked_body_is_refused_once_it_passes_the_limit(served: Served) -> None:
    served.mark()
    (answer,) = run(exchange(served.port, head(None), body_of(DECLARED, chunked=True)))
    check_refused(answer)
    # the server read about the limit; the rest of what was sent sat in socket buffers
    assert answer.sent_when_answered is not None
    assert answer.sent_when_answered < LIMIT + 32 * MiB < DECLARED
    assert served.growth() < LIMIT + 40 * MiB


@pytest.mark.integration
def test_sixteen_concurrent_99_mib_uploads_keep_the_server_small(served: Served) -> None:
    served.mark()
    answers = run(
        *(
            exchange(served.port, head(DECLARED), body_of(DECLARED, chunked=False))
            for _ in range(16)
        )
    )
    assert [a.status for a in answers] == [413] * 16
    growth = served.growth()
    assert growth < 100 * MiB, f"the server grew by {growth / MiB:.0f} MiB"


@pytest.mark.integration
def test_sixteen_concurrent_chunked_uploads_stop_at_the_limit(served: Served) -> None:
    """Each is read up to the limit at most: 16 x 10 MiB at worst, never 16 x 99 MiB."""
    served.mark()
    answers = run(
        *(exchange(served.port, head(None), body_of(DECLARED, chunked=True)) for _ in range(16))
    )
    assert [a.status for a in answers] == [413] * 16
    growth = served.growth()
    assert growth < 16 * LIMIT + 40 * MiB, f"the server grew by {growth / MiB:.0f} MiB"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("request_head", "body"),
    [
        pytest.param(head(1000), b" " * (20 * MiB), id="declares_less_than_it_sends"),
        pytest.param(
            head(DECLARED, extra="Transfer-Encoding: chunked\r\n"),
            b"5\r\nhello\r\n" * 1000,
            id="two_framings",
        ),
        pytest.param(head(None, extra=f"Content-Length: {DECLARED}\r\n"), b"", id="both_ways"),
        pytest.param(head(10**40), b" " * MiB, id="forty_digit_length"),
    ],
)
def test_lying_framing_is_a_client_error_with_bounded_memory(
    served: Served, request_head: bytes, body: bytes
) -> None:
    served.mark()
    pieces = [body[i : i + MiB] for i in range(0, len(body), MiB)]
    (answer,) = run(exchange(served.port, request_head, pieces, timeout=20))
    assert 400 <= answer.status < 500, answer.reply[:300]
    assert served.growth() < 40 * MiB


@pytest.mark.integration
def test_normal_requests_still_work(served: Served) -> None:
    served.mark()
    with httpx.Client(base_url=served.host.base, timeout=30) as client:
        assert client.post("/Predict", content=ONE, headers=JSON).status_code == 200
        at_limit = client.post("/Predict", content=padded(LIMIT), headers=JSON)
        assert at_limit.status_code == 200, at_limit.text
        over = client.post("/Predict", content=padded(LIMIT + 1), headers=JSON)
        assert over.status_code == 413 and over.json() == endpoint_413(LIMIT)
        streamed = client.post("/Predict", content=iter([ONE, b" " * 1000]), headers=JSON)
        assert streamed.status_code == 200, streamed.text  # chunked, under the limit
        assert client.get("/Predict", params={"Length": 1, "Width": 2}).status_code == 200
    (chunked,) = run(exchange(served.port, head(None), body_of(LIMIT, chunked=True)))
    assert chunked.status == 200, chunked.reply[:300]
