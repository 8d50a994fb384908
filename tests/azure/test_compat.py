"""servefn._compat: every private attribute of asyncio and azure.functions servefn reads.

These tests fail, never skip, when an installed release no longer has one: servefn would keep
working through the public fallback, only slower or with less, and nobody would notice. Each
failure names the attribute; update ``servefn/_compat.py`` (and its table) for the new release.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import servefn
from servefn import _compat
from servefn._compat import (
    HIDES_RUNNING_LOOP,
    PRIVATE_ATTRIBUTES,
    builder_function,
    call_without_running_loop,
    header_dict,
    registered_functions,
)

SOURCE = Path(servefn.__file__).parent


def _routed_app() -> tuple[func.FunctionApp, Any]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    def predict(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    return app, app.route(methods=["POST"])(predict)


def _instance(owner: str) -> Any:
    """A real object of the azure.functions class ``owner``, built as an app builds it."""
    if owner == "HttpRequestHeaders":
        return func.HttpRequest("GET", "http://x/api/a", headers={"X-A": "1"}, body=b"").headers
    app, builder = _routed_app()
    return app if owner == "FunctionApp" else builder


@pytest.mark.parametrize(
    ("module", "owner", "attribute"),
    PRIVATE_ATTRIBUTES,
    ids=[f"{owner or module}.{attribute}" for module, owner, attribute in PRIVATE_ATTRIBUTES],
)
def test_each_private_attribute_is_still_there(
    module: str, owner: str | None, attribute: str
) -> None:
    imported = importlib.import_module(module)
    if owner is None:
        found = hasattr(imported, attribute)
    else:
        instance = _instance(owner)
        assert type(instance) is getattr(imported, owner), f"{module}.{owner} moved"
        found = hasattr(instance, attribute)
    assert found, (
        f"{owner or module}.{attribute} is gone in the installed release: servefn now takes the "
        "slower public path; update servefn/_compat.py for this release"
    )


def test_request_headers_are_the_dict_azure_functions_keeps() -> None:
    request = func.HttpRequest("GET", "http://x/api/a", headers={"X-Key": "v"}, body=b"")
    headers = header_dict(request.headers)
    assert type(headers) is dict and headers == {"x-key": "v"}
    assert headers is header_dict(request.headers), "a copy per request: __http_headers__ gone?"
    assert header_dict({"X-Key": "v"}) == {"x-key": "v"}  # the fallback


def test_registered_functions_are_read_without_building_them() -> None:
    app, builder = _routed_app()
    functions = registered_functions(app)
    assert [f.get_function_name() for f in functions] == ["predict"]
    assert builder_function(builder) is functions[0]
    assert getattr(functions[0].get_trigger(), "route", None) is None, "built (validated) early"

    class OnlyPublic:
        def get_functions(self) -> list[str]:
            return ["built"]

    assert registered_functions(OnlyPublic()) == ["built"]  # the fallback


def test_a_sync_call_on_the_loop_thread_sees_no_running_loop() -> None:
    assert HIDES_RUNNING_LOOP, "asyncio.events._get/_set_running_loop are gone"

    async def twice(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    async def on_the_loop() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        answer = call_without_running_loop(lambda: asyncio.run(twice(21)))
        return answer, asyncio.get_running_loop() is loop

    assert asyncio.run(on_the_loop()) == (42, True)


def test_only_the_compat_module_reaches_these_attributes() -> None:
    names = {attribute for _, _, attribute in PRIVATE_ATTRIBUTES}
    alternatives = "|".join(map(re.escape, sorted(names)))
    pattern = re.compile(rf"""(\.|["'])({alternatives})\b""")
    compat = Path(_compat.__file__).resolve()
    found = [
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path.resolve() != compat
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
