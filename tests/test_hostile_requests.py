"""A corpus of hostile and malformed requests, each answered with a precise client error.

Every case runs against three real targets:

- ``function``: a ``serve_http`` function with a user handler, called with real
  ``azure.functions.HttpRequest`` objects (what the Functions worker does);
- ``predictor``: ``serve_http`` over a predictor with no handler (the fastest path, where the
  feature matrix goes straight to the model);
- ``http``: the iris example app, trained into a temporary folder and served by
  ``servefn serve`` in a subprocess, over a real socket.

Each answer must have the expected 4xx status and an RFC 9457 problem body that is small,
carries no traceback and does not echo the request's values
(:func:`support.problems.check_problem`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import numpy as np
import pytest

from servefn import column
from servefn.azure import serve_http
from servefn.devhost._server import server_stack
from servefn.model._archive import LoadedModel, load_model, write_model
from servefn.predictors.linear import LinearClassifier
from servefn.schema._schema import Schema
from support.iris import FLOWER, IrisData, IrisPrediction, example_app
from support.problems import CANARY, check_problem, strict_json
from support.reliability import model_bytes, petal_model
from support.servehost import ServeProcess

MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}
CSV = {"Content-Type": "text/csv"}
IN_PROCESS = ("function", "predictor")
HTTPTOOLS = server_stack()[1] == "httptools"
EVERYWHERE = ("function", "predictor", "http")
DEEP = 100_000


@dataclass(frozen=True)
class Case:
    """One hostile request and the status it must get."""

    name: str
    status: int
    body: bytes | Callable[[], bytes] = b""
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)
    targets: tuple[str, ...] = EVERYWHERE
    error: str | None = None
    """The ``type`` of the first item in ``errors``, when the answer must have one."""

    def payload(self) -> bytes:
        return self.body() if callable(self.body) else self.body


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def flower(**changes: Any) -> dict[str, Any]:
    return {**FLOWER, **changes}


def without(*names: str) -> dict[str, Any]:
    return {k: v for k, v in FLOWER.items() if k not in names}


def query(**changes: str) -> dict[str, str]:
    return {**{k: str(v) for k, v in FLOWER.items()}, **changes}


@cache
def nested_arrays() -> bytes:
    return b"[" * DEEP + b"]" * DEEP


@cache
def nested_objects() -> bytes:
    return b'{"a":' * DEEP + b"1" + b"}" * DEEP


@cache
def nested_in_field() -> bytes:
    return b'{"SepalLength": ' + nested_arrays() + b', "SepalWidth": 1}'


@cache
def nested_in_instances() -> bytes:
    return b'{"instances": [' + nested_objects() + b"]}"


@cache
def ten_mb_string() -> bytes:
    return js(flower(SepalLength=CANARY + "x" * (10_000_000 - 200)))


@cache
def huge_unknown_key() -> bytes:
    return js({**FLOWER, "k" * MiB: 1})


@cache
def many_unknown_fields() -> bytes:
    return js({**FLOWER, **{f"extra{i}": CANARY for i in range(10_000)}})


@cache
def batch_over_limit() -> bytes:
    return js([FLOWER] * 10_001)


@cache
def instances_over_limit() -> bytes:
    return js({"instances": [FLOWER] * 10_001})


@cache
def body_over_limit() -> bytes:
    return b"[" + b" " * (10 * MiB) + b"]"


@cache
def csv_over_limit() -> bytes:
    return b"3.3,1.6,0.2,5.1\n" * 10_001


VALID = js(FLOWER)
DOUBLE_MAX = 1.7976931348623157e308

CASES = [
    # -- not JSON at all --------------------------------------------------------------------
    Case("empty_body", 400),
    Case("whitespace_only", 400, b" \r\n\t "),
    Case("invalid_utf8_bytes", 400, b"\xff\xfe\xfa\xfb"),
    Case("invalid_utf8_in_string", 400, b'{"SepalLength": "\xff\xfe"}'),
    Case("utf16_encoded_json", 400, VALID.decode().encode("utf-16")),
    Case("utf8_byte_order_mark", 400, b"\xef\xbb\xbf" + VALID),
    Case("nul_bytes", 400, b"\x00" * 32),
    Case("truncated_object", 400, VALID[:-7]),
    Case("truncated_array", 400, js([FLOWER, FLOWER])[:-30]),
    Case("unterminated_string", 400, b'{"SepalLength": "3.3'),
    Case("trailing_garbage", 400, VALID + b" trailing"),
    Case("two_documents", 400, VALID + VALID),
    Case("single_quotes", 400, VALID.replace(b'"', b"'")),
    Case("trailing_comma", 400, VALID[:-1] + b",}"),
    Case("javascript_comment", 400, b"/* x */" + VALID),
    Case("lone_surrogate_escape", 400, b'{"SepalLength": "\\ud800"}'),
    Case("nested_100000_arrays", 400, nested_arrays),
    Case("nested_100000_objects", 400, nested_objects),
    Case("nested_100000_inside_a_field", 400, nested_in_field),
    Case("nested_100000_inside_instances", 400, nested_in_instances),
    Case(
        "duplicate_keys",
        400,
        b'{"SepalLength": 1, "SepalLength": 3.3, "SepalWidth": 1.6, '
        b'"PetalLength": 0.2, "PetalWidth": 5.1}',
    ),
    Case(
        "duplicate_keys_in_a_batch",
        400,
        b"[" + VALID + b', {"SepalLength": 1, "SepalWidth": 1, '
        b'"PetalLength": 1, "PetalWidth": 1, "PetalWidth": 2}]',
    ),
    Case("duplicate_instances_key", 400, b'{"instances": [], "instances": [' + VALID + b"]}"),
    # -- JSON, but values of the wrong kind ---------------------------------------------------
    Case("ten_mb_string_field", 422, ten_mb_string, error="float_type"),
    Case("text_for_a_number", 422, js(flower(PetalWidth=CANARY)), error="float_type"),
    Case("number_as_a_string", 422, js(flower(PetalWidth="5.1")), error="float_type"),
    Case("boolean_for_a_number", 422, js(flower(PetalWidth=True)), error="float_type"),
    Case("object_for_a_number", 422, js(flower(PetalWidth={"v": CANARY})), error="float_type"),
    Case("array_for_a_number", 422, js(flower(PetalWidth=[5.1])), error="float_type"),
    Case("null_for_a_number", 422, js(flower(PetalWidth=None)), error="float_type"),
    Case("number_for_a_string", 422, js(flower(Label=7)), error="string_type"),
    Case("exponent_overflow_1e400", 422, VALID.replace(b"5.1", b"1e400"), error="finite_number"),
    Case("negative_overflow", 422, VALID.replace(b"5.1", b"-1e400"), error="finite_number"),
    Case("integer_with_400_digits", 422, VALID.replace(b"5.1", b"9" * 400)),
    Case("largest_double", 422, js(flower(PetalWidth=DOUBLE_MAX))),
    Case("largest_double_in_a_batch", 422, js([FLOWER, flower(PetalWidth=-DOUBLE_MAX)])),
    Case("nan_literal", 422, VALID.replace(b"5.1", b"NaN"), error="finite_number"),
    Case("infinity_literal", 422, VALID.replace(b"5.1", b"Infinity"), error="finite_number"),
    Case("negative_infinity_literal", 422, VALID.replace(b"5.1", b"-Infinity")),
    # -- JSON of the wrong shape --------------------------------------------------------------
    Case("unknown_field", 422, js(flower(Extra=CANARY)), error="extra_forbidden"),
    Case("field_name_in_another_case", 422, js({**without("PetalWidth"), "petalwidth": 5.1})),
    Case("missing_field", 422, js(without("SepalWidth")), error="missing"),
    Case("empty_object", 422, b"{}", error="missing"),
    Case("huge_unknown_key", 422, huge_unknown_key, error="extra_forbidden"),
    Case("ten_thousand_unknown_fields", 422, many_unknown_fields, error="extra_forbidden"),
    Case("top_level_string", 422, js(CANARY)),
    Case("top_level_number", 422, b"42"),
    Case("top_level_null", 422, b"null"),
    Case("top_level_boolean", 422, b"true"),
    Case("empty_array", 422, b"[]"),
    Case("array_of_arrays", 422, js([[FLOWER]])),
    Case("array_with_a_null", 422, js([FLOWER, None])),
    Case("array_of_strings", 422, js([CANARY])),
    Case("empty_instances", 422, js({"instances": []})),
    Case("instances_not_an_array", 422, js({"instances": FLOWER})),
    Case("instances_with_another_key", 422, js({"instances": [FLOWER], "x": CANARY})),
    # -- too large ----------------------------------------------------------------------------
    Case("batch_over_the_limit", 413, batch_over_limit),
    Case("instances_over_the_limit", 413, instances_over_limit),
    Case("body_over_the_limit", 413, body_over_limit),
    Case(
        "declared_length_over_the_limit_is_refused_before_parsing",
        413,
        b"{not json at all " + CANARY.encode(),
        headers={**JSON, "Content-Length": str(20 * MiB)},
        targets=IN_PROCESS,  # a real client sends the length it sends; see test_devhost
    ),
    # -- media types --------------------------------------------------------------------------
    Case("missing_content_type", 415, VALID, headers={}),
    Case("xml_content_type", 415, VALID, headers={"Content-Type": "text/xml"}),
    Case(
        "form_content_type",
        415,
        b"SepalLength=3.3",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    Case(
        "multipart_content_type",
        415,
        VALID,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    ),
    Case("plain_text_content_type", 415, VALID, headers={"Content-Type": "text/plain"}),
    Case("garbage_content_type", 415, VALID, headers={"Content-Type": ";;;=;"}),
    # -- CSV ----------------------------------------------------------------------------------
    Case("csv_too_few_columns", 422, b"3.3,1.6\n", headers=CSV),
    Case("csv_text_for_a_number", 422, f"3.3,{CANARY},0.2,5.1\n".encode(), headers=CSV),
    Case("csv_unterminated_quote", 422, b'"3.3,1.6,0.2,5.1\n', headers=CSV),
    Case("csv_invalid_utf8", 400, b"3.3,\xff,0.2,5.1\n", headers=CSV),
    Case("csv_nul_byte", 422, b"3.3\x00,1.6,0.2,5.1\n", headers=CSV),
    Case("csv_empty", 422, b"", headers=CSV),
    Case(
        "csv_header_only", 422, b"a,b,c,d\n", headers={"Content-Type": "text/csv; header=present"}
    ),
    Case("csv_nan", 422, b"3.3,1.6,0.2,nan\n", headers=CSV),
    Case("csv_infinity", 422, b"3.3,1.6,0.2,-inf\n", headers=CSV),
    Case("csv_exponent_overflow", 422, b"3.3,1.6,0.2,1e400\n", headers=CSV),
    Case("csv_largest_double", 422, f"3.3,1.6,0.2,{DOUBLE_MAX!r}\n".encode(), headers=CSV),
    Case("csv_over_the_batch_limit", 413, csv_over_limit, headers=CSV),
    # -- query strings (GET) ------------------------------------------------------------------
    Case("get_without_parameters", 422, method="GET", headers={}, error="missing"),
    Case("get_text_for_a_number", 422, method="GET", headers={}, query=query(PetalWidth=CANARY)),
    Case("get_unknown_parameter", 422, method="GET", headers={}, query=query(Extra=CANARY)),
    Case("get_nan", 422, method="GET", headers={}, query=query(PetalWidth="nan")),
    Case("get_infinity", 422, method="GET", headers={}, query=query(PetalWidth="inf")),
    Case("get_overflow", 422, method="GET", headers={}, query=query(PetalWidth="1e400")),
    Case(
        "get_largest_double",
        422,
        method="GET",
        headers={},
        query=query(PetalWidth=repr(DOUBLE_MAX)),
    ),
    # -- methods ------------------------------------------------------------------------------
    Case("put", 405, VALID, method="PUT"),
    Case("delete", 405, method="DELETE", headers={}),
    Case("patch", 405, VALID, method="PATCH"),
    Case("options", 405, method="OPTIONS", headers={}),
    Case("head", 405, method="HEAD", headers={}, targets=IN_PROCESS),  # HEAD answers have no body
    # servefn serve's httptools (when installed) refuses a method HTTP does not register: uvicorn
    # answers 400 before the app sees it (tests/devhost/test_access_log.py); h11 lets it through
    Case(
        "made_up_method", 405, VALID, method="BREW", targets=IN_PROCESS if HTTPTOOLS else EVERYWHERE
    ),
]


# -- targets ----------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    content_type: str
    headers: dict[str, str]
    body: bytes


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "model.zip"
    path.write_bytes(model_bytes())
    return path


def in_process(
    handler: Callable[[func.HttpRequest], func.HttpResponse],
) -> Callable[[Case], Answer]:
    def send(case: Case) -> Answer:
        request = func.HttpRequest(
            case.method,
            "http://localhost/api/Predict",
            headers=case.headers,
            params=case.query,
            body=case.payload(),
        )
        response = handler(request)
        content_type = response.headers.get("Content-Type") or str(response.mimetype)
        return Answer(
            response.status_code, content_type, dict(response.headers), response.get_body()
        )

    return send


@pytest.fixture(scope="module")
def function_target(model_path: Path) -> Callable[[Case], Answer]:
    @serve_http(IrisData, IrisPrediction, model=str(model_path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    return in_process(predict)


@pytest.fixture(scope="module")
def predictor_target() -> Callable[[Case], Answer]:
    return in_process(serve_http(IrisData, IrisPrediction)(petal_model()))


@pytest.fixture(scope="module")
def example_host(
    tmp_path_factory: pytest.TempPathFactory, trained_model: Path
) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("hostile-app")
    host = ServeProcess(example_app(folder / "iris", trained_model), folder / "serve.log")
    host.wait()
    yield host
    host.stop()


@pytest.fixture(scope="module")
def http_target(example_host: ServeProcess) -> Iterator[Callable[[Case], Answer]]:
    with httpx.Client(base_url=example_host.base, timeout=30) as client:

        def send(case: Case) -> Answer:
            response = client.request(
                case.method,
                "/Predict",
                content=case.payload(),
                headers=case.headers,
                params=case.query,
            )
            return Answer(
                response.status_code,
                response.headers.get("content-type", ""),
                dict(response.headers),
                response.content,
            )

        yield send


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Callable[[Case], Answer]:
    send: Callable[[Case], Answer] = request.getfixturevalue(f"{request.param}_target")
    return send


PARAMS = [
    pytest.param(
        target,
        case,
        id=f"{target}-{case.name}",
        # the http target is the example app served by servefn serve in a subprocess
        marks=[pytest.mark.integration] if target == "http" else [],
    )
    for case in CASES
    for target in EVERYWHERE
    if target in case.targets
]


def test_the_corpus_is_large_and_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 50


@pytest.mark.parametrize(("target", "case"), PARAMS, indirect=["target"])
def test_hostile_request_gets_a_precise_problem(
    target: Callable[[Case], Answer], case: Case
) -> None:
    answer = target(case)
    assert answer.status == case.status, answer.body[:300]
    document = check_problem((answer.status, answer.content_type, answer.body))
    if case.error is not None:
        assert document["errors"][0]["type"] == case.error, document
    if case.status == 405:
        assert {
            m.strip()
            for m in answer.headers.get("Allow", answer.headers.get("allow", "")).split(",")
        } == {"GET", "POST"}


# -- requests only a real HTTP server sees ------------------------------------------------------

RAW_PATHS = [
    pytest.param("/api/NoSuchRoute", 404, id="unknown_route"),
    pytest.param("/api/Predict/extra/segments", 404, id="extra_path_segments"),
    pytest.param("/api/" + "a" * 4000, 404, id="very_long_unknown_route"),
    pytest.param("/api/%2e%2e/api/Predict", 404, id="encoded_dot_dot_segment"),
    pytest.param("/Predict", 404, id="missing_route_prefix"),
    pytest.param(
        f"/api/Predict?SepalLength=%zz{CANARY}&SepalWidth=1", 422, id="bad_percent_escape"
    ),
    pytest.param("/api/Predict?&&&==&=x&", 422, id="empty_query_pairs"),
    pytest.param(
        "/api/Predict?SepalLength=1&SepalLength=2&SepalWidth=1&PetalLength=1&PetalWidth=1",
        422,
        id="repeated_query_parameter",
    ),
    pytest.param("/api/Predict?" + "x=1&" * 2000, 422, id="two_thousand_query_parameters"),
    pytest.param(
        f"/api/Predict?SepalLength={CANARY}%00&SepalWidth=1&PetalLength=1&PetalWidth=1",
        422,
        id="nul_in_query_value",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("path", "status"), RAW_PATHS)
def test_hostile_paths_and_query_strings(
    example_host: ServeProcess, path: str, status: int
) -> None:
    root = example_host.base.removesuffix("/api")
    with httpx.Client(timeout=30) as client:
        request = client.build_request("GET", root)
        request.url = httpx.URL(root + path)
        response = client.send(request)
    assert response.status_code == status, response.text[:300]
    check_problem(response, status)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Content-Length": "²"}, id="superscript_digit_length"),
        pytest.param({"Content-Length": "-1"}, id="negative_length"),
        pytest.param({"Content-Length": "twelve"}, id="word_length"),
        pytest.param({"Content-Length": "1" * 400}, id="400_digit_length"),
        pytest.param({"Accept": "text/plain;q=nan, */*;q=abc"}, id="unparseable_q_values"),
        pytest.param({"Accept": ",,,;;;"}, id="garbage_accept"),
        pytest.param({"Content-Type": "application/json; charset=ebcdic"}, id="odd_charset"),
    ],
)
@pytest.mark.parametrize("kind", IN_PROCESS)
def test_odd_headers_never_cause_a_server_error(
    request: pytest.FixtureRequest, kind: str, headers: dict[str, str]
) -> None:
    send: Callable[[Case], Answer] = request.getfixturevalue(f"{kind}_target")
    answer = send(Case("odd", 200, VALID, headers={**JSON, **headers}))
    assert answer.status < 500, answer.body[:300]
    if answer.status == 200:
        assert strict_json(answer.body)["PredictedLabel"] == "Iris-virginica"
    else:
        check_problem((answer.status, answer.content_type, answer.body))


class Visits(Schema):
    visits: int = column(0, name="Visits")


class City(Schema):
    city: str = column(0, name="City")


def visits_model() -> LinearClassifier:
    return LinearClassifier(np.ones((1, 2)), np.zeros(2), ["few", "many"])


def test_an_integer_beyond_any_float_is_a_client_error() -> None:
    buffer = io.BytesIO()
    write_model(buffer, visits_model(), input=Visits, output=IrisPrediction)

    @serve_http(Visits, IrisPrediction, model=load_model(buffer.getvalue()))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    for handler in (predict, serve_http(Visits, IrisPrediction)(visits_model())):
        send = in_process(handler)
        answer = send(Case("int", 422, b'{"Visits": 1' + b"0" * 400 + b"}"))
        assert answer.status == 422, answer.body[:300]
        document = check_problem((answer.status, answer.content_type, answer.body))
        assert document["errors"][0]["loc"] == ["Visits"]
        assert send(Case("int", 200, b'{"Visits": 12}')).status == 200


def test_text_features_still_reach_a_handler() -> None:
    """Range checks apply to numbers; a handler that takes text gets it as before."""

    @serve_http(City, IrisPrediction, model=load_model(model_bytes()))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return [{"PredictedLabel": record.city, "Score": [1.0]} for record in inputs]  # type: ignore[attr-defined]

    answer = in_process(predict)(Case("text", 200, b'{"City": "Paris"}'))
    assert answer.status == 200 and strict_json(answer.body)["PredictedLabel"] == "Paris"
