"""``servefn serve --auth keys``: the key check itself, in process (the end-to-end tests are in
test_serve_repository.py).

Real components: the host's own ``HttpFunction`` records, logging with servefn's redaction
installed, and ``DevHost`` over a real repository folder driven through its ASGI app with httpx.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path

import httpx
import pytest

from servefn._redact import install_redaction
from servefn.devhost._host import DevHost
from servefn.devhost._indexing import HttpFunction
from servefn.devhost._keys import KeyCheck, auth_note
from servefn.errors import DevHostError
from support.iris import FLOWER
from support.problems import check_problem
from support.repositories import iris_model, put

KEY, OTHER, MASTER = "f1rst-k3y-0123", "s3cond-k3y-4567", "m4ster-k3y-89ab"


def function(level: str) -> HttpFunction:
    return HttpFunction.builtin("f", "f", ("GET",), lambda req: None, level)


def test_each_auth_level_asks_for_what_the_host_asks_for() -> None:
    keys = KeyCheck([KEY, OTHER], MASTER)

    def refused(level: str, headers: dict[str, str], query: bytes = b"") -> bool:
        return keys.refuse(function(level), "GET", "/api/f", headers, query) is not None

    assert not refused("ANONYMOUS", {})
    assert refused("FUNCTION", {}) and refused("ADMIN", {})
    assert not refused("FUNCTION", {"x-functions-key": OTHER})
    assert not refused("FUNCTION", {}, f"a=1&code={KEY}".encode())
    assert not refused("FUNCTION", {}, f"Code={KEY}".encode())  # any case, as the host
    assert refused("FUNCTION", {"x-functions-key": KEY + "x"})
    assert refused("FUNCTION", {}, b"code=")
    assert refused("ADMIN", {"x-functions-key": KEY})  # ADMIN: the master key only
    assert not refused("ADMIN", {"x-functions-key": MASTER})
    assert not refused("FUNCTION", {}, f"code={MASTER}".encode())
    locked = KeyCheck([KEY])
    assert locked.refuse(function("ADMIN"), "GET", "/", {"x-functions-key": KEY}, b"")


def test_every_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    keys = KeyCheck([KEY, OTHER], MASTER)
    keys.refuse(function("FUNCTION"), "GET", "/", {"x-functions-key": KEY}, b"")
    assert {b for _, b in compared} == {KEY.encode(), OTHER.encode(), MASTER.encode()}


def test_keys_come_from_the_app_settings_and_never_show() -> None:
    keys = KeyCheck.from_settings({"SERVEFN_KEYS": f" {KEY}, ,{OTHER} "})
    assert KEY not in repr(keys) and repr(keys) == "KeyCheck(2 keys, no master key)"
    with pytest.raises(DevHostError, match="--auth keys needs the app setting SERVEFN_KEYS"):
        KeyCheck.from_settings({"SERVEFN_KEYS": " , "})


def test_a_refusal_logs_the_path_and_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    keys = KeyCheck([KEY])
    with caplog.at_level(logging.INFO, logger="servefn.devhost"):
        keys.refuse(function("FUNCTION"), "GET", "/api/f", {"x-functions-key": OTHER}, b"")
        keys.refuse(function("FUNCTION"), "GET", "/api/f", {}, f"code={OTHER}".encode())
        logging.getLogger("servefn.devhost").info("GET /api/f?x=1&code=%s -> 200", OTHER)
    text = caplog.text
    assert "GET /api/f -> 401: a key that is not valid here (authLevel FUNCTION)" in text
    assert OTHER not in text and KEY not in text
    assert "code=***" in text  # a URL logged with its key is masked


def test_the_startup_line_says_whether_keys_are_checked() -> None:
    functions = [function("FUNCTION"), function("ANONYMOUS")]
    assert "does not check keys locally" in auth_note(functions, None)
    assert "--auth keys checks them" in auth_note(functions, None)
    assert auth_note(functions, KeyCheck([KEY])).startswith("Auth: keys checked (--auth keys)")
    admin = auth_note([function("ADMIN")], KeyCheck([KEY]))
    assert "SERVEFN_MASTER_KEY is not set" in admin
    assert "every function is ANONYMOUS" in auth_note([function("ANONYMOUS")], None)


def test_a_keyed_host_answers_401_without_a_key_and_keeps_health_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path, "iris/model.zip", iris_model("iris"))
    monkeypatch.setenv("SERVEFN_KEYS", KEY)
    host = DevHost(tmp_path, auth="keys")

    async def exchange() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=host.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api") as client:
            return [
                await client.post("/models/iris", json=FLOWER),
                await client.post("/models/iris", json=FLOWER, headers={"x-functions-key": KEY}),
                await client.get("/health"),
            ]

    refused, answered, health = asyncio.run(exchange())
    check_problem(refused, 401)
    assert answered.json()["PredictedLabel"] == "iris"
    assert health.status_code == 200
    with pytest.raises(ValueError, match="auth must be one of"):
        DevHost(tmp_path, auth="key")
