"""Every client value that reaches a log line is bounded and escaped (:mod:`servefn._logtext`).

A 100,000-character method, path, query, Content-Type or User-Agent, and an exception message
that quotes a 100,000-character field (with ``log_bodies`` on), must each leave log records of
about a kilobyte at most, with no raw line break from the client: a value can neither flood the
log nor forge a line of it. Checked with ``caplog`` through the endpoint and the dev host's ASGI
app, and on the stderr of a real ``servefn serve``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servefn._logtext import bounded, exception_text
from servefn.devhost import DevHost
from servefn.devhost._server import server_stack
from servefn.http import Endpoint, Request
from servefn.model._archive import LoadedModel
from support.servehost import ServeProcess
from support.visits import Fixed, Verdict, Visit, model_zip

HUGE = 100_000
FORGED = "FORGED servefn.devhost: everything is fine"
"""What a client would like a log line to say: it must never start a line."""
MAX_RECORD = 1024
"""Characters one log record may take (message, traceback and all)."""


def hostile(size: int = HUGE) -> str:
    """``size`` characters with line breaks, separators and an escape sequence, then a forged
    line."""
    unit = "a\r\n\x1b[2J\u2028\x85"
    return (unit * (size // len(unit)))[: size - len(FORGED) - 1] + "\n" + FORGED


def csv_body(*fields: str) -> bytes:
    """One CSV record, quoted as RFC 4180 quotes it (line breaks inside a field included)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(fields)
    return out.getvalue().encode()


def echo_note(model: LoadedModel, inputs: Any) -> Any:
    """Fails with the client's own value in the message, as careless code does."""
    raise ValueError(f"cannot use note {inputs[0].note}")


def without_frames(text: str) -> str:
    """``text`` less the frames of a traceback (lines indented by two spaces): server code,
    whose length depends on the call depth, never on the client (whose line breaks are
    escaped, so it cannot start an indented line)."""
    return "\n".join(line for line in text.split("\n") if not line.startswith("  "))


def check_records(records: list[logging.LogRecord], handler: logging.Handler) -> None:
    """Each record formats to at most MAX_RECORD characters besides traceback frames, and no
    line break, escape sequence or separator of the client's is in it."""
    assert records, "nothing was logged"
    for record in records:
        text = handler.format(record)
        kept = without_frames(text)
        assert len(kept) <= MAX_RECORD, f"{len(kept)} characters: {kept[:300]!r}"
        assert max(map(len, text.split("\n"))) <= MAX_RECORD
        assert "\n" + FORGED not in text and "\r" not in text and "\x1b" not in text
        assert "\u2028" not in text and "\x85" not in text


# -- the helper --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("GET", "GET"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("x\u2028y\u2029z\x85", "x\\u2028y\\u2029z\\x85"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("é ü 漢字", "é ü 漢字"),
        (b"bytes", "b'bytes'"),
        (None, "None"),
    ],
)
def test_bounded_escapes_what_could_forge_or_disguise_a_line(value: object, expected: str) -> None:
    assert bounded(value) == expected


def test_bounded_cuts_long_values_and_says_how_much() -> None:
    assert bounded("x" * HUGE) == "x" * 200 + f"…(+{HUGE - 200} chars)"
    assert bounded("x" * 10, limit=10) == "x" * 10
    cut = bounded("\n" * HUGE, limit=50)
    assert cut == "\\n" * 25 + f"…(+{HUGE - 25} chars)"  # escapes count towards the limit
    assert len(bounded(hostile(), limit=200)) < 200 + len("…(+100000 chars)")


def test_exception_text_bounds_every_message_of_the_chain() -> None:
    def fail() -> None:
        try:
            raise KeyError(hostile())
        except KeyError as exc:
            raise ValueError(hostile()) from exc

    with pytest.raises(ValueError) as failure:
        fail()
    text = exception_text(failure.value)
    assert text.count("Traceback (most recent call last):") == 2
    assert "direct cause" in text and "in fail" in text
    assert "\n" + FORGED not in text and len(text) < 2 * MAX_RECORD


# -- the endpoint (servefn.http) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(Request(hostile(), b"{}", {"content-type": "application/json"}), id="method"),
        pytest.param(Request("POST", b"1,2", {"content-type": hostile()}), id="content_type"),
        pytest.param(
            Request("POST", b"1,2", {"content-type": "text/csv", "user-agent": hostile()}),
            id="user_agent",
        ),
        pytest.param(
            Request("GET", b"", query={"Length": "1", "Width": "2", "Note": hostile()}), id="query"
        ),
        pytest.param(
            Request("POST", csv_body("1", "2", hostile()), {"content-type": "text/csv"}),
            id="body_error_message",
        ),
        pytest.param(
            Request("POST", hostile().encode(), {"content-type": "text/csv"}), id="body_itself"
        ),
    ],
)
def test_endpoint_log_records_stay_small_with_log_bodies_on(
    request_: Request, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Endpoint(Visit, Verdict, Fixed(), handler=echo_note, log_bodies=True)
    with caplog.at_level(logging.DEBUG, logger="servefn.http"):
        response = endpoint.handle(request_)
    assert response.status >= 400
    check_records(caplog.records, caplog.handler)


def test_the_failure_stays_findable_in_the_bounded_log(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = Endpoint(Visit, Verdict, Fixed(), handler=echo_note, log_bodies=True)
    body = csv_body("1", "2", hostile())
    with caplog.at_level(logging.DEBUG, logger="servefn.http"):
        response = endpoint.handle(Request("POST", body, {"content-type": "text/csv"}))
    error_id = json.loads(response.body)["error_id"]
    (failure,) = [r for r in caplog.records if error_id in r.getMessage()]
    message = failure.getMessage()
    assert "ValueError: cannot use note a\\r\\n\\x1b[2J\\u2028" in message and "chars)" in message
    assert "in echo_note" in message  # the traceback is still there


# -- the dev host (servefn.devhost) ------------------------------------------------------------

APP = """
from pathlib import Path

import azure.functions as func

from servefn import Schema, column
from servefn import load_model
from servefn.azure import serve_http

LOADED = load_model(Path(__file__).with_name("model.zip"))  # no refresh thread in the tests


class Visit(Schema):
    length: float = column(0, name="Length")
    width: float = column(1, name="Width")
    note: str | None = column(2, name="Note", role="label", default=None)


class Verdict(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="predict", methods=["GET", "POST"])
@serve_http(Visit, Verdict, model=LOADED, log_bodies=True)
def predict(model, inputs):
    raise ValueError(f"cannot use note {inputs[0].note}")


@app.route(route="any")
def any_method(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="plain", methods=["POST"])
def plain(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("cannot use " + req.get_body().decode())
"""


@pytest.fixture(scope="module")
def app_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("log-bounds-app")
    (folder / "function_app.py").write_text(textwrap.dedent(APP))
    (folder / "host.json").write_text('{"version": "2.0"}')
    (folder / "model.zip").write_bytes(model_zip())
    return folder


def asgi(host: DevHost, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    """One request straight into the host's ASGI app (no server validates the values)."""
    sent: list[dict[str, Any]] = []
    path, _, query = path.partition("?")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query.encode("utf-8", "surrogateescape"),
        "headers": [(k.encode(), v.encode("utf-8")) for k, v in headers.items()],
    }
    asyncio.run(host.asgi_app(scope, receive, send))  # type: ignore[arg-type]
    status: int = sent[0]["status"]
    return status


CSV = {"content-type": "text/csv"}
NOTE = csv_body("1", "2", hostile())


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        pytest.param(hostile(), "/api/predict", CSV, b"1,2", 405, id="method_on_a_route"),
        pytest.param(hostile(), "/api/nowhere", CSV, b"", 404, id="method_no_route"),
        pytest.param("GET", "/api/" + hostile(), CSV, b"", 404, id="path"),
        pytest.param("POST", "/api/predict", {"content-type": hostile()}, b"1,2", 415, id="ctype"),
        pytest.param("POST", "/api/predict", {**CSV, "user-agent": hostile()}, NOTE, 500, id="ua"),
        pytest.param("POST", "/api/predict", CSV, NOTE, 500, id="body_error_message"),
        pytest.param("POST", "/api/plain", CSV, hostile().encode(), 500, id="plain_function"),
        pytest.param(
            "GET", "/api/predict?Length=1&Width=2&Note=" + hostile(), {}, b"", 500, id="q"
        ),
        pytest.param(
            hostile(), "/api/any", {"content-length": str(HUGE**3)}, b"", 413, id="413_method"
        ),
    ],
)
def test_dev_host_log_records_stay_small(
    app_folder: Path,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    host = DevHost(app_folder, port=0)
    with caplog.at_level(logging.DEBUG):
        assert asgi(host, method, path, headers, body) == status
    check_records(
        [r for r in caplog.records if r.name.startswith("servefn")] or caplog.records,
        caplog.handler,
    )


def test_a_refused_body_logs_a_bounded_method(
    app_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = DevHost(app_folder, port=0, max_body_size=10)
    with caplog.at_level(logging.INFO, logger="servefn.devhost"):
        assert asgi(host, hostile(), "/api/any", {"content-length": "99"}, b"") == 413
    check_records(caplog.records, caplog.handler)
    assert "-> 413" in caplog.text


# -- a real servefn serve: its stderr ----------------------------------------------------------


@pytest.fixture(scope="module")
def served(app_folder: Path) -> Iterator[ServeProcess]:
    host = ServeProcess(app_folder, app_folder / "serve.log", args=("--log-level", "debug"))
    try:
        host.wait()
        yield host
    finally:
        host.stop()


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply and (data := sock.recv(65536)):
            reply += data
    return reply


@pytest.mark.integration
def test_servefn_serve_writes_bounded_lines(served: ServeProcess) -> None:
    """Real requests (h11 bounds a request head to 16 KiB: values of 12,000 characters; with
    httptools, uvicorn refuses the 12,000-letter method itself, 400 before servefn sees it)."""
    long = "x" * 12_000
    body = json.dumps({"Length": 1, "Width": 2, "Note": hostile()}).encode()
    requests = [
        f"{'M' * 12_000} /api/predict HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n".encode(),
        f"GET /api/{long} HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
        f"GET /api/predict?Length=1&Width=2&Note={long} HTTP/1.1\r\nHost: h\r\n\r\n".encode(),
        (
            f"POST /api/predict HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
            f"User-Agent: {long}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body,
        (
            f"POST /api/predict HTTP/1.1\r\nHost: h\r\nContent-Type: {long}\r\n"
            f"Content-Length: 3\r\n\r\n1,2"
        ).encode(),
        (f"POST /api/plain HTTP/1.1\r\nHost: h\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        + body,
    ]
    statuses = [raw(served.port, request).split(b" ", 2)[1] for request in requests]
    method = b"400" if server_stack()[1] == "httptools" else b"405"
    assert statuses == [method, b"404", b"500", b"500", b"415", b"500"]
    output = served.output()
    assert "cannot use note" in output and "cannot use {" in output  # the failures are logged
    lines = output.splitlines()
    assert max(map(len, lines)) <= MAX_RECORD, max(lines, key=len)[:300]
    assert not [line for line in lines if line.startswith("FORGED")]
