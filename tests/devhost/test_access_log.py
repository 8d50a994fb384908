"""``servefn serve``'s line per invocation and its start-up line about uvicorn's stack.

The Functions host ends every invocation with "Executed 'Functions.NAME' (Succeeded, Id=GUID,
Duration=Nms)"; ``servefn serve`` writes the same line, batched per event-loop iteration, unless
``--no-access-log``. It also says which event loop and HTTP parser uvicorn runs, and runs
without uvloop and httptools when they are missing.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from servefn.devhost._accesslog import LOG_FORMAT, AccessLog, guids
from servefn.devhost._host import DevHost
from servefn.devhost._server import server_stack, stack_line
from support import APPS
from support.servehost import ServeProcess

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
LINE = re.compile(
    r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] INFO servefn\.devhost: "
    rf"Executed 'Functions\.(\w+)' \(Succeeded, Id=({GUID}), Duration=\d+ms\)"
)


def asgi_request(host: DevHost, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request through httpx's ASGITransport (no socket)."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=host.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(call())


def executed_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Executed 'Functions." in line]


def test_every_success_writes_the_hosts_line_with_its_own_id(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    host = DevHost(APPS / "inline_app", port=0)
    with caplog.at_level(logging.INFO, logger="servefn.devhost"):
        for seconds in (0, 1, 2):  # the first call loads the model (pool), the others inline
            response = asgi_request(host, "POST", "/api/double", json={"seconds": seconds})
            assert response.status_code == 200
        assert asgi_request(host, "GET", "/api/plain").status_code == 200
    lines = executed_lines(capsys.readouterr().err)
    found = [LINE.fullmatch(line) for line in lines]
    assert all(found), lines
    assert [m.group(1) for m in found if m] == ["double", "double", "double", "plain"]
    assert len({m.group(2) for m in found if m}) == 4
    assert not [r for r in caplog.records if "Executed" in r.getMessage()]  # not log records


def test_no_line_when_the_access_log_is_off_or_info_is_not_logged(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    quiet = DevHost(APPS / "inline_app", port=0, access_log=False)
    with caplog.at_level(logging.INFO, logger="servefn.devhost"):
        for seconds in (0, 1):
            asgi_request(quiet, "POST", "/api/double", json={"seconds": seconds})
    with caplog.at_level(logging.WARNING, logger="servefn.devhost"):
        asgi_request(DevHost(APPS / "inline_app", port=0), "GET", "/api/plain")
    assert executed_lines(capsys.readouterr().err) == []


def test_a_failure_is_logged_with_its_id_even_without_the_access_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = DevHost(APPS / "async_app", access_log=False)
    with caplog.at_level(logging.ERROR, logger="servefn.devhost"):
        problem = asgi_request(host, "POST", "/v1/fail").json()
    (record,) = [r for r in caplog.records if problem["error_id"] in r.getMessage()]
    assert re.match(
        rf"Executed 'Functions\.\w+' \(Failed, Id={GUID}, Duration=", record.getMessage()
    )


def test_the_line_is_what_logging_makes_of_it_in_servefn_serves_format(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="servefn.devhost")
    stream = io.StringIO()
    log = AccessLog(stream=stream)
    now = 1_700_000_000.25
    with monkeypatch.context() as patched:
        patched.setattr(time, "time", lambda: now)
        log.succeeded("predict", time.perf_counter() - 0.0123, "the-id")  # no loop: written now
    (line,) = stream.getvalue().splitlines()
    message = line.split(": ", 1)[1]
    expected = r"Executed 'Functions\.predict' \(Succeeded, Id=the-id, Duration=1\dms\)"
    assert re.fullmatch(expected, message)
    record = logging.LogRecord("servefn.devhost", logging.INFO, __file__, 1, message, None, None)
    record.created, record.msecs = now, 250.0
    assert line == logging.Formatter(LOG_FORMAT).format(record)


def test_lines_are_written_once_per_event_loop_iteration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="servefn.devhost")
    stream = io.StringIO()
    log = AccessLog(stream=stream)

    async def three_invocations() -> str:
        for _ in range(3):
            log.succeeded("predict", time.perf_counter())
        written = stream.getvalue()
        await asyncio.sleep(0)  # the loop's next iteration
        return written

    assert asyncio.run(three_invocations()) == ""
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(LINE.fullmatch(line) for line in lines), lines


def test_ids_are_random_version_4_guids() -> None:
    ids = guids(500)
    assert len(set(ids)) == 500
    for text in ids:
        parsed = uuid.UUID(text)
        assert (str(parsed), parsed.version, parsed.variant) == (text, 4, uuid.RFC_4122)


# --- uvicorn's stack -----------------------------------------------------------------------


def test_the_start_up_line_names_the_stack_and_how_to_get_the_fast_one() -> None:
    class Config:
        loop, http = "uvloop", "httptools"

    fast = stack_line(Config)
    assert re.fullmatch(
        r"Server: uvicorn [\d.]+, event loop uvloop [\d.]+, HTTP parser httptools [\d.]+", fast
    )
    Config.loop, Config.http = "asyncio", "h11"
    slow = stack_line(Config)
    assert slow.startswith("Server: uvicorn ") and "event loop asyncio, HTTP parser h11 " in slow
    assert "uvloop and httptools not installed; pip install 'servefn[serve]'" in slow


@contextmanager
def running(host: DevHost) -> Iterator[tuple[Any, str]]:
    """``host``'s uvicorn server in a thread: (server, base URL); stopped on exit."""
    server, sock = host.server()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield server, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_serve_falls_back_to_asyncio_and_h11_without_uvloop_and_httptools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as where they have no wheels
    monkeypatch.setitem(sys.modules, "httptools", None)
    assert server_stack() == ("asyncio", "h11")
    with running(DevHost(APPS / "async_app", port=0)) as (server, url):
        assert (server.config.loop, server.config.http) == ("asyncio", "h11")
        assert httpx.get(f"{url}/v1/greet/Ada", timeout=10).text == "hello Ada"
        made_up = httpx.request("BREW", f"{url}/v1/greet/Ada", timeout=10)
        assert made_up.status_code == 405  # servefn's problem: h11 passes any method on


def test_httptools_refuses_a_method_http_does_not_register_before_the_app() -> None:
    """The one answer that changes with the parser: servefn never sees such a request."""
    if server_stack() != ("uvloop", "httptools"):
        pytest.skip("uvloop and httptools are not installed")
    with running(DevHost(APPS / "async_app", port=0)) as (server, url):
        assert (server.config.loop, server.config.http) == ("uvloop", "httptools")
        assert httpx.get(f"{url}/v1/greet/Ada", timeout=10).text == "hello Ada"
        made_up = httpx.request("BREW", f"{url}/v1/greet/Ada", timeout=10)
        assert (made_up.status_code, made_up.text) == (400, "Invalid HTTP request received.")


@pytest.mark.integration
def test_servefn_serve_prints_its_stack_and_a_line_per_invocation(tmp_path: Any) -> None:
    host = ServeProcess(APPS / "sync_app", tmp_path / "serve.log")
    try:
        host.wait()
        for _ in range(3):
            assert httpx.get(f"{host.base}/settings", timeout=10).status_code == 200
        assert httpx.get(f"{host.base}/boom", timeout=10).status_code == 500
    finally:
        output = host.stop()
    loop, http = server_stack()
    stack = rf"^Server: uvicorn [\d.]+, event loop {loop}\b.*HTTP parser {http}\b"
    assert re.search(stack, output, re.MULTILINE)
    settings = [m.group(1) for m in map(LINE.fullmatch, executed_lines(output)) if m]
    assert settings.count("settings") == 3
    assert re.search(rf"Executed 'Functions\.boom' \(Failed, Id={GUID}, Duration=\d+ms\)", output)


@pytest.mark.integration
def test_servefn_serve_no_access_log_keeps_failures_only(tmp_path: Any) -> None:
    host = ServeProcess(APPS / "sync_app", tmp_path / "serve.log", args=("--no-access-log",))
    try:
        host.wait()
        assert httpx.get(f"{host.base}/settings", timeout=10).status_code == 200
        assert httpx.get(f"{host.base}/boom", timeout=10).status_code == 500
    finally:
        output = host.stop()
    assert [line for line in executed_lines(output) if "(Succeeded" in line] == []
    assert "Executed 'Functions.boom' (Failed, Id=" in output
