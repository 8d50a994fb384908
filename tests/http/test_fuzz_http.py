"""Property-based fuzzing of request bodies, headers, methods and query strings.

Hypothesis generates requests and sends them to real handlers: ``serve_http`` functions (with a
user handler, and over a bare predictor) called with ``azure.functions.HttpRequest``, and the
ASGI application behind ``servefn serve`` for the iris example app. Whatever arrives, the answer
is never a 5xx, no exception escapes, a 200 is strict JSON (no NaN) or text, and every error is
a small problem+json document without traceback or echo.

Runs are derandomized (the same examples on every machine); ``SERVEFN_FUZZ_EXAMPLES`` scales
the number of examples per test (default 500).
"""

from __future__ import annotations

import asyncio
import json
import os
import string
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from servefn.azure import serve_http
from servefn.devhost._host import DevHost
from servefn.model._archive import LoadedModel
from servefn.schema._schema import Schema
from support.iris import FLOWER, IrisData, IrisPrediction, example_app
from support.problems import CANARY, check_problem, strict_json
from support.reliability import model_bytes, petal_model

EXAMPLES = int(os.environ.get("SERVEFN_FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WIRE = ["SepalLength", "SepalWidth", "PetalLength", "PetalWidth", "Label"]
MEDIA = [
    "application/json",
    "application/json; charset=utf-8",
    "application/problem+json",
    "application/vnd.x+json",
    "text/csv",
    "text/csv; header=present",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

# -- strategies -------------------------------------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -0.0, 1e-320, 3.4e38, 3.5e38, 1.7976931348623157e308]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=12), st.just(CANARY))
keys = st.one_of(st.sampled_from([*WIRE, "instances", "label", "Extra"]), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=8,
)
records = st.fixed_dictionaries(
    {name: st.one_of(numbers, scalars, values) for name in WIRE[:4]},
    optional={"Label": st.one_of(st.text(max_size=8), values), "Extra": values},
)
documents = st.one_of(
    records,
    st.lists(records, max_size=4),
    st.builds(lambda rows: {"instances": rows}, st.lists(records, max_size=4)),
    values,
)


def _encode(document: Any) -> bytes:
    return json.dumps(document, allow_nan=True).encode()


@st.composite
def mutated(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    """A body with a slice removed, repeated or replaced: truncations, duplicate keys, junk."""
    data = draw(source)
    if not data:
        return data
    start = draw(st.integers(0, len(data) - 1))
    end = draw(st.integers(start, len(data)))
    action = draw(st.sampled_from(["cut", "repeat", "replace", "truncate"]))
    if action == "cut":
        return data[:start] + data[end:]
    if action == "repeat":
        return data[:end] + data[start:end] + data[end:]
    if action == "truncate":
        return data[:start]
    return data[:start] + draw(st.binary(max_size=8)) + data[end:]


json_bodies = documents.map(_encode)
csv_cells = st.one_of(
    numbers.map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", '"', ""]),
    st.text(max_size=6),
)
csv_bodies = st.lists(st.lists(csv_cells, max_size=7), max_size=4).map(
    lambda rows: "\n".join(",".join(row) for row in rows).encode("utf-8", "surrogatepass")
)
bodies = st.one_of(json_bodies, mutated(json_bodies), csv_bodies, st.binary(max_size=64))
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.one_of(st.sampled_from(MEDIA), header_text),
        "Accept": st.one_of(
            st.sampled_from(["text/plain", "application/json, text/plain;q=0.5", "*/*;q=x"]),
            header_text,
        ),
        "Content-Length": st.one_of(st.integers(-5, 2**70).map(str), header_text),
        "X-Functions-Key": header_text,
    },
)
query_values = st.one_of(
    st.floats(-10, 10).map(repr), numbers.map(repr), st.text(max_size=10), st.just(CANARY)
)
queries = st.one_of(
    st.fixed_dictionaries(
        {name: query_values for name in WIRE[:4]},
        optional={"Label": st.text(max_size=8), "code": st.text(max_size=8), "Extra": query_values},
    ),
    st.dictionaries(
        st.one_of(st.sampled_from([*WIRE, "code", "Extra"]), st.text(max_size=6)),
        query_values,
        max_size=6,
    ),
)
FIXED_BODIES = [
    json.dumps(FLOWER).encode(),
    json.dumps([FLOWER, FLOWER]).encode(),
    b"3.3,1.6,0.2,5.1\n",
    b"",
    b"{not json",
]
methods = st.sampled_from(["POST"] * 6 + ["GET"] * 2 + METHODS + ["BREW", "post", "M-SEARCH"])


# -- targets ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handlers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Callable[..., Any]]:
    path = tmp_path_factory.mktemp("fuzz") / "model.zip"
    path.write_bytes(model_bytes())

    @serve_http(IrisData, IrisPrediction, model=str(path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    return {"function": predict, "predictor": serve_http(IrisData, IrisPrediction)(petal_model())}


def check_answer(status: int, content_type: str, body: bytes) -> None:
    """What every answer must be, whatever the request was."""
    assert status < 500, body[:300]
    if status >= 400:
        check_problem((status, content_type, body))
    elif content_type.startswith("application/json"):
        strict_json(body)
    else:
        assert content_type.startswith("text/plain"), content_type
        body.decode("utf-8")


def call(handler: Callable[..., Any], request: func.HttpRequest) -> func.HttpResponse:
    response: func.HttpResponse = handler(request)  # an exception here fails the example
    content_type = response.headers.get("Content-Type") or str(response.mimetype)
    check_answer(response.status_code, content_type, response.get_body())
    return response


@pytest.mark.parametrize("kind", ["function", "predictor"])
def test_fuzzed_bodies(handlers: dict[str, Callable[..., Any]], kind: str) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(body=bodies, content_type=st.sampled_from(MEDIA))
    def run(body: bytes, content_type: str) -> None:
        request = func.HttpRequest(
            "POST",
            "http://localhost/api/Predict",
            headers={"Content-Type": content_type} if content_type else {},
            body=body,
        )
        statuses[call(handlers[kind], request).status_code] += 1

    run()
    report(f"bodies/{kind}", statuses)


@pytest.mark.parametrize("kind", ["function", "predictor"])
def test_fuzzed_headers_and_methods(handlers: dict[str, Callable[..., Any]], kind: str) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(method=methods, headers=headers, body=st.sampled_from(FIXED_BODIES))
    def run(method: str, headers: dict[str, str], body: bytes) -> None:
        request = func.HttpRequest(
            method, "http://localhost/api/Predict", headers=headers, body=body
        )
        statuses[call(handlers[kind], request).status_code] += 1

    run()
    report(f"headers/{kind}", statuses)


@pytest.mark.parametrize("kind", ["function", "predictor"])
def test_fuzzed_query_strings(handlers: dict[str, Callable[..., Any]], kind: str) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(params=queries, accept=st.sampled_from(["", "text/plain", "application/json"]))
    def run(params: dict[str, str], accept: str) -> None:
        request = func.HttpRequest(
            "GET",
            "http://localhost/api/Predict",
            headers={"Accept": accept} if accept else {},
            params=params,
            body=b"",
        )
        statuses[call(handlers[kind], request).status_code] += 1

    run()
    report(f"query/{kind}", statuses)


# -- the local host's ASGI application, raw ---------------------------------------------------


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture(scope="module")
def example_asgi(
    tmp_path_factory: pytest.TempPathFactory, trained_model: Path, loop: asyncio.AbstractEventLoop
) -> Any:
    """The example app's ASGI application, its model loaded (so health answers 200)."""
    folder = example_app(tmp_path_factory.mktemp("fuzz-app") / "iris", trained_model)
    host = DevHost(folder, port=0)
    host.load()
    headers = [(b"content-type", b"application/json")]
    status, _, _ = loop.run_until_complete(
        asgi_call(host.asgi_app, "POST", "/api/Predict", b"", headers, json.dumps(FLOWER).encode())
    )
    assert status == 200
    return host.asgi_app


raw_paths = st.one_of(
    st.just("/api/Predict"),
    st.sampled_from(["/api/predict", "/api/health", "/api/openapi.json", "/", "/api/Predict/"]),
    st.text(max_size=20).map(lambda text: "/api/" + text),
)
raw_header_names = st.one_of(
    st.sampled_from([b"content-type", b"content-length", b"accept", b"host"]),
    st.text(string.ascii_lowercase + "-", min_size=1, max_size=12).map(str.encode),
)
raw_header_values = st.one_of(
    st.sampled_from([m.encode() for m in MEDIA]),
    st.sampled_from([b"\xb2", b"-1", b"1e3", b" 12 ", b"99999999999999999999999"]),
    header_text.map(lambda text: text.encode("latin-1")),
)
raw_headers = st.lists(st.tuples(raw_header_names, raw_header_values), max_size=6)


def query_string(params: dict[str, str]) -> bytes:
    return urlencode(params).encode()


async def asgi_call(
    app: Any, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through the ASGI interface, exactly as uvicorn hands it over."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7071),
    }
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *chunks = sent
    return start["status"], dict(start["headers"]), b"".join(c.get("body", b"") for c in chunks)


def test_fuzzed_raw_requests_to_the_local_host(
    example_asgi: Any, loop: asyncio.AbstractEventLoop
) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ
    @example(  # found by review: "²" passes str.isdigit() and fails int()
        method="POST",
        path="/api/Predict",
        query=b"",
        headers=[(b"content-type", b"application/json"), (b"content-length", b"\xb2")],
        body=json.dumps(FLOWER).encode(),
    )
    @given(
        method=methods,
        path=raw_paths,
        query=st.one_of(st.binary(max_size=40), queries.map(query_string)),
        headers=raw_headers,
        body=bodies,
    )
    def run(
        method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        status, response_headers, content = loop.run_until_complete(
            asgi_call(example_asgi, method, path, query, headers, body)
        )
        check_answer(status, response_headers.get(b"content-type", b"").decode(), content)
        statuses[status] += 1

    run()
    report("raw/local-host", statuses)


def report(name: str, statuses: Counter[int]) -> None:
    """Say how many examples ran and what they got (shown with ``pytest -s`` or ``-rA``)."""
    total = sum(statuses.values())
    print(f"fuzz {name}: {total} examples, statuses {dict(sorted(statuses.items()))}")
    assert total >= min(EXAMPLES, 100)  # hypothesis really ran, not an empty strategy
