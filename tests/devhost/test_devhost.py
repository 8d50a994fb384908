"""``servefn serve``'s local host: real function apps, real uvicorn, real HTTP, real func objects.

The sync test app is served by uvicorn on a free 127.0.0.1 port in a background thread for the
whole module; behaviour that a socket adds nothing to goes through httpx's ASGITransport.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from servefn.devhost import _inline as devhost_inline
from servefn.devhost._host import AppNotFoundError, DevHost, DevHostError
from servefn.devhost._indexing import apply_local_settings
from servefn.devhost._routes import RouteTable, RouteTemplateError, compile_route
from support import APPS
from support.iris import FLOWER
from support.problems import check_problem

SYNC_SETTINGS = ("FUNCTIONS_WORKER_RUNTIME", "DEVHOST_GREETING", "DEVHOST_PRESET", "DEVHOST_NUMBER")
GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
JSON_TYPE = {"Content-Type": "application/json"}


@contextmanager
def serving(host: DevHost) -> Iterator[str]:
    """Run ``host`` with uvicorn in a thread; yield its base URL; stop it on exit."""
    server, sock = host.server()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def sync_url() -> Iterator[str]:
    """The sync app on a real socket; DEVHOST_PRESET is set before its settings are read."""
    with pytest.MonkeyPatch.context() as env:
        for name in SYNC_SETTINGS:  # record them so they are removed again afterwards
            env.setenv(name, "placeholder")
            env.delenv(name)
        env.setenv("DEVHOST_PRESET", "from the environment")
        with serving(DevHost(APPS / "sync_app", port=0)) as url:
            yield url


@pytest.fixture
def client(sync_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sync_url, timeout=10) as http:
        yield http


def asgi_request(host: DevHost, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request through httpx's ASGITransport (no socket)."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=host.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(call())


def copy_app(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(APPS / name, tmp_path / name))


# --- over a real socket ---------------------------------------------------------------------


@pytest.mark.integration
def test_request_reaches_the_function_as_the_host_builds_it(
    client: httpx.Client, sync_url: str
) -> None:
    response = client.post(
        "/API/Echo/5/bob?a=1&A=2&blank=&c=x+y",
        headers=[("X-Multi", "1"), ("X-Multi", "2")],
        content=b"hello",
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["url"] == f"{sync_url}/API/Echo/5/bob?a=1&A=2&blank=&c=x+y"
    assert seen["params"] == {"a": "1,2", "c": "x y"}  # host: keys case-insensitive, joined
    assert seen["route_params"] == {"id": "5", "name": "bob"}
    assert seen["headers"]["x-multi"] == "1,2"
    assert seen["body_length"] == 5


@pytest.mark.integration
def test_optional_route_parameter_may_be_absent(client: httpx.Client) -> None:
    seen = client.get("/api/echo/7").json()
    assert seen["route_params"] == {"id": "7"}
    assert seen["body_length"] == 0


@pytest.mark.integration
def test_unknown_route_is_404_problem_that_does_not_echo_the_path(client: httpx.Client) -> None:
    for path in ("/api/no-such-route-xyz", "/api/echo/not-an-int", "/echo/5"):
        response = client.get(path)
        problem = check_problem(response, 404)
        assert set(problem) == {"type", "title", "status", "detail"}
        assert "xyz" not in response.text and "not-an-int" not in response.text


@pytest.mark.integration
def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    response = client.delete("/api/items/new")
    check_problem(response, 405)
    assert response.headers["allow"] == "POST"
    assert client.put("/api/echo/1").headers["allow"] == "GET, POST"


@pytest.mark.integration
def test_literal_segment_wins_over_parameter_and_routes_ignore_case(client: httpx.Client) -> None:
    assert client.post("/api/items/new").status_code == 201
    assert client.get(f"/API/ITEMS/{GUID.upper()}").text == f"item {GUID.upper()}"
    check_problem(client.get("/api/items/new"), 405)  # only the POST route matches "new"


@pytest.mark.integration
def test_declared_oversized_body_is_refused_before_it_is_sent(sync_url: str) -> None:
    port = int(sync_url.rsplit(":", 1)[1])
    request = (
        b"POST /api/echo/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 200000000\r\nContent-Type: application/json\r\n\r\n{}"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert time.monotonic() - started < 2
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["status"] == 413


@pytest.mark.integration
def test_failure_is_500_without_traceback_and_logged_with_its_id(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="servefn.devhost"):
        response = client.get("/api/boom")
    problem = check_problem(response, 500)
    assert "hunter2" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if problem["error_id"] in r.getMessage()]
    # the traceback is in the message, its exception messages bounded (servefn._logtext)
    assert len(logged) == 1 and "Traceback (most recent call last)" in logged[0].getMessage()
    assert "hunter2" in logged[0].getMessage()


@pytest.mark.integration
def test_response_status_content_type_and_headers(client: httpx.Client) -> None:
    as_json = client.get("/api/content/json")
    assert as_json.status_code == 201
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["x-custom"] == "yes"
    assert as_json.headers["content-length"] == "12"  # the function's wrong one is replaced
    html = client.get("/api/content/html")
    assert html.headers["content-type"] == "text/html; charset=latin-1"
    assert html.content == "<p>é</p>".encode("latin-1")
    raw = client.get("/api/content/bytes")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == b"\x00\x01\x02"
    explicit = client.get("/api/content/explicit")
    assert (explicit.status_code, explicit.headers["content-type"]) == (418, "text/csv")
    empty = client.get("/api/content/empty")
    assert (empty.status_code, empty.content) == (204, b"")


@pytest.mark.integration
def test_str_return_is_plain_text_and_other_returns_are_500(client: httpx.Client) -> None:
    text = client.get("/api/content/text")
    assert (text.status_code, text.text) == (200, "plain string")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    check_problem(client.get("/api/content/other"), 500)


@pytest.mark.integration
def test_repeated_response_headers_survive(client: httpx.Client) -> None:
    response = client.get("/api/cookies")
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


@pytest.mark.integration
def test_local_settings_fill_the_environment_without_overriding_it(client: httpx.Client) -> None:
    assert client.get("/api/settings").json() == {
        "DEVHOST_GREETING": "hello from local.settings.json",
        "DEVHOST_PRESET": "from the environment",
        "DEVHOST_NUMBER": "5",
    }


@pytest.mark.integration
def test_keys_are_accepted_and_ignored_and_catch_all_takes_the_rest(client: httpx.Client) -> None:
    response = client.get("/api/files/a/b.txt?code=k", headers={"x-functions-key": "k"})
    assert (response.status_code, response.text) == (200, "a/b.txt")
    assert client.get("/api/files").text == "<root>"


@pytest.mark.integration
def test_context_parameter_and_http_out_binding(client: httpx.Client) -> None:
    name, invocation_id = client.get("/api/context").text.split()
    assert name == "whoami" and len(invocation_id) == 36
    out = client.get("/api/out")
    assert (out.status_code, out.text) == (202, "set through func.Out")


# --- in process ------------------------------------------------------------------------------


def test_async_handler_and_custom_route_prefix(caplog: pytest.LogCaptureFixture) -> None:
    host = DevHost(APPS / "async_app")
    assert host.route_prefix == "v1"
    assert [f.is_async for f in host.functions] == [True, True]
    assert asgi_request(host, "GET", "/v1/GREET/Ada").text == "hello Ada"
    check_problem(asgi_request(host, "GET", "/api/greet/Ada"), 404)
    with caplog.at_level(logging.ERROR, logger="servefn.devhost"):
        problem = check_problem(asgi_request(host, "POST", "/v1/fail"), 500)
    assert any(
        problem["error_id"] in r.getMessage() and "ValueError: async failure" in r.getMessage()
        for r in caplog.records
    )


def test_streamed_body_over_the_limit_is_413() -> None:
    host = DevHost(APPS / "async_app", max_body_size=1000)

    async def chunks() -> Any:
        for _ in range(5):
            yield b"x" * 400

    response = asgi_request(host, "POST", "/v1/fail", content=chunks())
    assert "1000 bytes" in check_problem(response, 413)["detail"]


def test_asgi_function_app_with_empty_route_prefix() -> None:
    host = DevHost(APPS / "asgi_app")
    assert host.route_prefix == ""
    assert asgi_request(host, "PATCH", "/some/where").text == "asgi saw PATCH /some/where"


def test_lifespan_events_are_answered() -> None:
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    app = DevHost(APPS / "async_app").asgi_app
    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_startup_text_lists_functions_skipped_ones_and_the_auth_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SYNC_SETTINGS:
        monkeypatch.setenv(name, "already set")
    host = DevHost(APPS / "sync_app", port=7071)
    lines = host.describe(port=8123).splitlines()
    assert lines[0] == "Functions:"
    assert "  echo: [GET,POST] http://127.0.0.1:8123/api/echo/{id:int}/{name?}" in lines
    assert "  boom: http://127.0.0.1:8123/api/boom" in lines
    assert "  hourly: timerTrigger: servefn serve runs HTTP-triggered functions only" in lines
    assert lines[-1].startswith(
        "Auth: echo, files, boom, content, cookies, settings, whoami, via_out need a key on Azure"
    )
    assert "does not check keys locally" in lines[-1]
    assert host.urls()["new_item"] == "http://127.0.0.1:7071/api/items/new"
    everywhere = DevHost(APPS / "async_app", host="0.0.0.0", port=80)
    assert everywhere.urls() == {
        "greet": "http://localhost:80/v1/Greet/{name:alpha}",
        "fail": "http://localhost:80/v1/fail",
    }


def test_function_with_an_unavailable_binding_is_listed_not_served() -> None:
    host = DevHost(APPS / "unsupported_bindings")
    assert [f.name for f in host.functions] == ["ping"]
    (skipped,) = host.skipped
    assert skipped.name == "model" and "'model' (blob)" in skipped.reason
    check_problem(asgi_request(host, "GET", "/api/model"), 404)
    assert asgi_request(host, "GET", "/api/ping").text == "pong"


def test_the_same_app_can_be_loaded_twice() -> None:
    first, second = DevHost(APPS / "async_app"), DevHost(APPS / "async_app" / "function_app.py")
    assert first.app_file == second.app_file == APPS / "async_app" / "function_app.py"
    assert [f.name for f in first.functions] == [f.name for f in second.functions]
    assert first.functions[0].handler is not second.functions[0].handler


# --- errors that stop the host --------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("two_apps", r"2 top-level function apps \(app, other\)"),
        ("no_app", "defines no FunctionApp"),
        ("import_error", "ModuleNotFoundError: No module named 'servefn_no_such_module'"),
    ],
)
def test_bad_apps_fail_with_a_precise_error(app: str, expected: str) -> None:
    with pytest.raises(DevHostError, match=expected) as raised:
        DevHost(APPS / app).load()
    assert str(APPS / app / "function_app.py") in str(raised.value)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text("import azure.functions as func\napp = (\n")
    with pytest.raises(DevHostError, match=r"function_app\.py, line \d+: syntax error"):
        DevHost(tmp_path).load()


def test_missing_app_is_an_app_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(AppNotFoundError, match=r"no function_app\.py in"):
        DevHost(tmp_path).load()
    with pytest.raises(AppNotFoundError, match="does not exist"):
        DevHost(tmp_path / "nope.py").load()


def test_invalid_host_json_names_the_file(tmp_path: Path) -> None:
    app = copy_app(tmp_path, "async_app")
    (app / "host.json").write_text('{"version": "2.0",')
    with pytest.raises(DevHostError, match=r"host\.json is not valid JSON \(line 1"):
        DevHost(app).load()


def test_encrypted_local_settings_are_refused(tmp_path: Path) -> None:
    app = copy_app(tmp_path, "async_app")
    (app / "local.settings.json").write_text('{"IsEncrypted": true, "Values": {"A": "x"}}')
    with pytest.raises(DevHostError, match="encrypted"):
        DevHost(app).load()


def test_local_settings_never_override_and_stringify_scalars(tmp_path: Path) -> None:
    settings = {"Values": {"KEEP": "file", "NEW": "file", "N": 5, "FLAG": True}}
    (tmp_path / "local.settings.json").write_text(json.dumps(settings))
    environ = {"KEEP": "env"}
    applied, kept = apply_local_settings(tmp_path, environ)
    assert environ == {"KEEP": "env", "NEW": "file", "N": "5", "FLAG": "true"}
    assert (applied, kept) == (["NEW", "N", "FLAG"], ["KEEP"])


def test_parameters_must_match_the_bindings_like_the_worker(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\napp = func.FunctionApp()\n\n"
        "@app.route(route='x/{id}')\ndef x(req, id):\n    return 'x'\n"
    )
    with pytest.raises(DevHostError, match=r"parameters \['id'\] are declared in Python"):
        DevHost(tmp_path).load()


def test_unknown_route_constraint_fails_at_startup(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\napp = func.FunctionApp()\n\n"
        "@app.route(route='x/{id:number}')\ndef x(req):\n    return 'x'\n"
    )
    with pytest.raises(DevHostError) as raised:
        DevHost(tmp_path).load()
    assert "function 'x' has an invalid route 'x/{id:number}'" in str(raised.value)
    assert "unknown route constraint 'number'" in str(raised.value)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        host = DevHost(APPS / "async_app", port=busy.getsockname()[1])
        with pytest.raises(DevHostError, match="the port is in use"):
            host.server()


def test_servefn_serve_freezes_startup_objects_once_before_loading_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Freezing is the serving process's choice, made once at startup before the app (and any
    model) is imported; DevHost.server, for embedding, leaves the collector alone (a plain
    app's import here: serve_http's own startup call is tested in test_http)."""
    import gc
    import io

    from servefn.http import _collector

    calls: list[str] = []
    monkeypatch.setattr(_collector, "_frozen", False)
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    _, sock = DevHost(APPS / "async_app", port=0).server()
    sock.close()
    assert calls == []

    class Stopped:
        config = SimpleNamespace(loop="asyncio", http="h11")  # what the start-up line reads

        def run(self, sockets: list[socket.socket]) -> None:
            calls.append("served")

    def serve_without_uvicorn(host: DevHost) -> tuple[Stopped, socket.socket]:
        host.load()
        calls.append("loaded")
        bound = socket.socket()
        bound.bind(("127.0.0.1", 0))
        return Stopped(), bound

    monkeypatch.setattr(DevHost, "server", serve_without_uvicorn)
    for _ in range(2):
        DevHost(APPS / "inline_app", port=0).run(out=io.StringIO())
    assert calls == ["freeze", "loaded", "served", "loaded", "served"]


@pytest.mark.integration
def test_uvicorn_is_imported_only_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys, servefn.cli, servefn.devhost; print('uvicorn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the serve extra were missing
    with pytest.raises(DevHostError, match=re.escape("pip install 'servefn[serve]'")):
        DevHost(APPS / "async_app").server()


# --- route templates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("api/n/{v:int}", "/api/n/-42", {"v": "-42"}),
        ("api/n/{v:int}", "/api/n/2147483648", None),
        ("api/n/{v:long}", "/api/n/2147483648", {"v": "2147483648"}),
        ("api/n/{v:alpha}", "/api/n/abcXYZ", {"v": "abcXYZ"}),
        ("api/n/{v:alpha}", "/api/n/abc1", None),
        ("api/n/{v:bool}", "/api/n/TRUE", {"v": "TRUE"}),
        ("api/n/{v:bool}", "/api/n/yes", None),
        ("api/n/{v:guid}", f"/api/n/{{{GUID}}}", {"v": f"{{{GUID}}}"}),
        ("api/n/{v:guid}", "/api/n/3f2504e0", None),
        ("api/n/{v:float}", "/api/n/1.5e3", {"v": "1.5e3"}),
        ("api/n/{v:double}", "/api/n/abc", None),
        ("api/n/{v:decimal}", "/api/n/1e3", None),
        ("api/n/{v:datetime}", "/api/n/2024-05-01", {"v": "2024-05-01"}),
        ("api/n/{v:range(1,10)}", "/api/n/11", None),
        ("api/n/{v:min(3):max(5)}", "/api/n/4", {"v": "4"}),
        ("api/n/{v:length(2,3)}", "/api/n/abcd", None),
        ("api/n/{v:minlength(2)}", "/api/n/ab", {"v": "ab"}),
        ("api/n/{v:regex(^\\d{{3}}$)}", "/api/n/123", {"v": "123"}),
        ("api/n/{v:regex(^\\d{{3}}$)}", "/api/n/1234", None),
        ("api/n/{v=dflt}", "/api/n", {"v": "dflt"}),
        ("api/n/{v?}", "/api/n/", {}),
        ("api/{file}.{ext}", "/api/a.tar.gz", {"file": "a.tar", "ext": "gz"}),
        ("api/{*rest}", "/api/a/b/c/", {"rest": "a/b/c/"}),
        ("api/Literal", "/API/literal/", {}),
        ("api/{{x}}", "/api/{x}", {}),
        ("", "/", {}),
    ],
)
def test_route_templates_match_like_aspnet(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert compile_route(template).match(path) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("api/{v:nope}", "unknown route constraint 'nope'"),
        ("api/{v:min(a)}", "takes 1 integer argument"),
        ("api/{*rest}/more", "catch-all must be the last segment"),
        ("api/{v?}/more", "only trailing segments can be optional"),
        ("api/{v}/{V}", "uses {V} twice"),
        ("api/{v", "unclosed '{'"),
        ("api//x", "empty segment"),
    ],
)
def test_invalid_route_templates_are_rejected(template: str, message: str) -> None:
    with pytest.raises(RouteTemplateError, match=re.escape(message)):
        compile_route(template)


def test_route_table_prefers_constrained_parameters_and_falls_back_to_catch_all() -> None:
    table = RouteTable(
        [
            (compile_route("api/{*rest}"), (), "catch-all"),
            (compile_route("api/items/{name}"), ["GET"], "by-name"),
            (compile_route("api/items/{id:int}"), ["GET"], "by-id"),
        ]
    )
    found = table.match("GET", "/api/items/5")
    assert found is not None and (found.target, dict(found.route_params)) == ("by-id", {"id": "5"})
    named = table.match("GET", "/api/items/five")
    assert named is not None and named.target == "by-name"
    other = table.match("DELETE", "/api/items/5")
    assert other is not None and other.target == "catch-all"
    assert table.match("GET", "/elsewhere") is None


def test_literal_route_lookup_finds_what_the_full_scan_finds() -> None:
    """Parameterless routes are looked up by path before the scan; same answers as the scan."""
    entries = [
        (compile_route("api/Predict"), ["POST"], "predict"),
        (compile_route("api/predict"), ["GET"], "predict-get"),  # same path, other method
        (compile_route("api/health"), ["GET"], "health"),
        (compile_route("api/{name:alpha}"), ["PUT"], "by-name"),
        (compile_route("api/items/{*rest}"), (), "catch-all"),
        (compile_route("api/items/list"), [], "list"),
        (compile_route(""), ["GET"], "root"),
    ]
    table = RouteTable(entries)
    scan_only = RouteTable(entries)
    scan_only._literal = {}
    paths = ["/api/Predict", "/API/PREDICT/", "/api/predict//", "/api/health", "/api/Health/",
             "/api/items/list", "/api/items/list/", "/api/items/other", "/api/other", "/", "",
             "/api/predic", "/api/predict/x", "/api/K", "/api/heal\u212at"]  # fmt: skip
    for method in ("GET", "POST", "PUT", "DELETE", "get"):
        for path in paths:
            assert table.match(method, path) == scan_only.match(method, path), (method, path)
    assert table._literal  # the lookup is in use


def test_servefn_endpoints_run_on_the_event_loop_until_one_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A serve_http call with its model in memory runs inline; three calls that blocked (here a
    50 ms sleep) send its function to the thread pool, where plain sync functions always run."""
    host = DevHost(APPS / "inline_app", port=0)
    host.load()
    loop_thread = threading.current_thread().name  # asyncio.run runs the loop in this thread

    def ran_in(seconds: float) -> str:
        response = asgi_request(host, "POST", "/api/where", json={"seconds": seconds})
        assert response.status_code == 200, response.text
        thread: str = response.json()["thread"]
        return thread

    assert ran_in(0) != loop_thread  # the first call loads the model: in the pool
    assert ran_in(0) == loop_thread
    assert ran_in(0) == loop_thread
    assert asgi_request(host, "GET", "/api/plain").text != loop_thread
    with caplog.at_level(logging.WARNING, logger="servefn.devhost"):
        assert [ran_in(0.05) for _ in range(2)] == [loop_thread] * 2  # could be the machine
        assert ran_in(0) == loop_thread and not caplog.text
        assert ran_in(0.05) == loop_thread  # the third wait
    assert "'thread_name' waited" in caplog.text and "thread pool from now on" in caplog.text
    assert ran_in(0) != loop_thread


def test_waits_far_apart_do_not_send_a_function_to_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wait now and then (the machine, a background model parse) is forgiven after a minute;
    only three within a minute mean a handler that blocks."""
    host = DevHost(APPS / "inline_app", port=0)
    host.load()
    app = host.asgi_app
    now = [1000.0]
    monkeypatch.setattr(devhost_inline.time, "monotonic", lambda: now[0])
    for _ in range(5):
        app.inline.count_wait("thread_name", 0.05)
        now[0] += devhost_inline.INLINE_WAIT_WINDOW + 1
    assert not app.inline.pooled
    for _ in range(3):
        app.inline.count_wait("thread_name", 0.05)
        now[0] += 1
    assert app.inline.pooled == {"thread_name"}


def test_a_call_descheduled_by_a_busy_machine_is_not_a_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Time not running counts only when the call gave up the CPU itself (a voluntary context
    switch: I/O, a sleep, a lock); a server preempted by other processes keeps its functions
    on the loop."""
    host = DevHost(APPS / "inline_app", port=0)
    host.load()
    inline = host.asgi_app.inline
    (function,) = [f for f in host.functions if f.name == "thread_name"]
    wall = iter([0.0, 0.05] * 6)  # each call takes 50 ms, none of it on the CPU
    clock = SimpleNamespace(perf_counter=lambda: next(wall), monotonic=lambda: 1000.0)
    monkeypatch.setattr(devhost_inline, "time", clock)
    switches = [0]
    monkeypatch.setattr(devhost_inline, "_thread_usage", lambda: (0.0, switches[0]))
    for _ in range(3):
        inline.call(function, lambda: None)  # preempted: no switch of its own
    assert not inline.pooled

    def blocks() -> None:
        switches[0] += 1

    for _ in range(3):
        inline.call(function, blocks)
    assert inline.pooled == {"thread_name"}


def test_inline_answers_are_byte_for_byte_the_worker_path_answers() -> None:
    """The inline path calls the endpoint without func.HttpRequest/HttpResponse in between;
    every kind of answer must be what the function itself returns through the worker path."""
    host = DevHost(APPS / "inline_app", port=0)
    host.load()
    app = host.asgi_app
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/double", {"json": {"seconds": 1.5}}),
        ("POST", "/api/double", {"json": [{"seconds": 1}, {"seconds": 2}]}),
        ("POST", "/api/double", {"json": {"seconds": 1}, "headers": {"Accept": "text/plain"}}),
        ("POST", "/api/double", {"json": {"seconds": "x"}}),  # 422
        ("POST", "/api/double", {"content": b"{", "headers": {"Content-Type": "text/xml"}}),
        ("POST", "/api/double", {"content": b'{"seconds": 1', "headers": JSON_TYPE}),
        ("GET", "/api/double?seconds=4&code=key", {}),
        ("PUT", "/api/double", {"json": {"seconds": 1}}),  # the endpoint's own 405
    ]

    def answers() -> list[tuple[int, list[tuple[str, str]], bytes]]:
        found = []
        for method, path, options in requests:
            response = asgi_request(host, method, path, **options)
            headers = sorted(response.headers.items())
            found.append((response.status_code, headers, response.content))
        return found

    asgi_request(host, "POST", "/api/double", json={"seconds": 0})  # loads the model
    inline = answers()
    assert "double" not in app.inline.pooled and "double" in app.inline.endpoints
    app.inline.pooled.add("double")  # as after a call that waited: the worker path from now on
    assert inline == answers()
    assert [status for status, _, _ in inline] == [200, 200, 200, 422, 415, 400, 200, 405]


def test_sync_handlers_may_run_their_own_event_loop_on_the_inline_path() -> None:
    """asyncio.run() in a sync handler works in the worker's pool threads; it must work when
    servefn serve calls the function on its event loop's thread too."""
    host = DevHost(APPS / "inline_app", port=0)
    host.load()
    for seconds in (1, 2, 3):  # the first call may load; the later ones run inline
        response = asgi_request(host, "POST", "/api/own_loop", json={"seconds": seconds})
        assert response.status_code == 200, response.text
        assert response.json() == {"twice": seconds * 2}
    assert "_run_own_loop" in host.asgi_app.inline.endpoints and not host.asgi_app.inline.pooled


def test_a_served_model_file_is_answered_on_the_event_loop_too(trained_model: Path) -> None:
    """`servefn serve model.zip` runs only servefn's own code: its predict function is
    recognised, and answers the same inline as through the worker path."""
    host = DevHost(trained_model, port=0)
    host.load()
    app = host.asgi_app
    assert set(app.inline.endpoints) == {"predict"}
    inline = asgi_request(host, "POST", "/api/Predict", json=FLOWER)
    app.inline.pooled.add("predict")
    pooled = asgi_request(host, "POST", "/api/Predict", json=FLOWER)
    assert inline.status_code == pooled.status_code == 200
    assert inline.json()["PredictedLabel"] == "Iris-virginica"
    assert (sorted(inline.headers.items()), inline.content) == (
        sorted(pooled.headers.items()),
        pooled.content,
    )
