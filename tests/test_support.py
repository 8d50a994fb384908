"""The shared test helpers hold what the tests rely on them for.

- support.iris's schemas are the example's (examples/iris/schema.py), column for column;
- support.markers puts every test that uses Azurite in the ``integration`` tier, whether it asks
  for ``azurite`` or for a fixture built on it, before ``-m`` selects;
- support.problems.check_problem refuses each way an error answer can be wrong.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import httpx
import pytest

from servefn.schema import layout_of
from support.iris import EXAMPLE, IrisData, IrisPrediction, import_file
from support.markers import INTEGRATION_FIXTURES
from support.problems import CANARY, MAX_PROBLEM_BYTES, PROBLEM_MEDIA_TYPE, check_problem


def test_the_iris_schemas_are_the_examples() -> None:
    example = import_file(EXAMPLE / "schema.py", "iris_example_schema")
    assert layout_of(IrisData).spec() == layout_of(example.IrisData).spec()
    assert layout_of(IrisPrediction).spec() == layout_of(example.IrisPrediction).spec()
    assert list(IrisData.model_fields) == list(example.IrisData.model_fields)
    assert list(IrisPrediction.model_fields) == list(example.IrisPrediction.model_fields)


TIERS = """
import pytest

pytest_plugins = ["support.markers"]


@pytest.fixture(scope="session")
def azurite():
    return "a stand-in: only the fixture's name matters"


@pytest.fixture
def blob_container(azurite):
    return azurite


@pytest.fixture
def uploaded(blob_container):
    return blob_container


@pytest.fixture
def hung_port():
    return 0
"""


def test_a_test_using_azurite_is_integration_without_a_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\naddopts = --strict-markers\nmarkers =\n    integration: real components\n"
    )
    pytester.makeconftest(TIERS)
    pytester.makepyfile(
        test_tiers="""
        def test_asks_for_azurite(azurite): pass
        def test_asks_for_a_container(blob_container): pass
        def test_two_fixtures_away(uploaded): pass
        def test_a_hung_server(hung_port): pass
        def test_unit(tmp_path): pass
        """
    )
    unit = pytester.runpytest("-m", "not integration", "-v")
    unit.assert_outcomes(passed=1, deselected=4)
    unit.stdout.fnmatch_lines(["*::test_unit PASSED*"])
    integration = pytester.runpytest("-m", "integration")
    integration.assert_outcomes(passed=4, deselected=1)


def test_every_collected_azurite_test_is_marked_integration(request: pytest.FixtureRequest) -> None:
    unmarked = [
        item.nodeid
        for item in request.session.items
        if INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("integration") is None
    ]
    assert not unmarked


def problem_bytes(**changes: Any) -> bytes:
    document = {"type": "about:blank", "title": "Unprocessable Content", "status": 422}
    document["detail"] = "The request did not validate."
    document["errors"] = [{"type": "float_type", "loc": ["SepalLength"], "msg": "not a number"}]
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def test_check_problem_takes_each_kind_of_answer() -> None:
    body = problem_bytes()
    httpx_answer = httpx.Response(422, headers={"content-type": PROBLEM_MEDIA_TYPE}, content=body)
    worker_answer = func.HttpResponse(body, status_code=422, mimetype=PROBLEM_MEDIA_TYPE)
    for answer in (httpx_answer, worker_answer, (422, PROBLEM_MEDIA_TYPE, body)):
        assert check_problem(answer, 422)["errors"][0]["loc"] == ["SepalLength"]
        assert check_problem(answer)["status"] == 422


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        pytest.param(422, PROBLEM_MEDIA_TYPE, problem_bytes(), 400, id="another_status"),
        pytest.param(200, PROBLEM_MEDIA_TYPE, problem_bytes(status=200), None, id="not_an_error"),
        pytest.param(422, "application/json", problem_bytes(), None, id="plain_json"),
        pytest.param(
            422, f"{PROBLEM_MEDIA_TYPE}; charset=utf-8", problem_bytes(), None, id="parameters"
        ),
        pytest.param(422, PROBLEM_MEDIA_TYPE, problem_bytes(status=400), None, id="status_differs"),
        pytest.param(422, PROBLEM_MEDIA_TYPE, problem_bytes(type="urn:x"), None, id="other_type"),
        pytest.param(422, PROBLEM_MEDIA_TYPE, problem_bytes(title=""), None, id="no_title"),
        pytest.param(422, PROBLEM_MEDIA_TYPE, problem_bytes(detail=None), None, id="no_detail"),
        pytest.param(
            422,
            PROBLEM_MEDIA_TYPE,
            problem_bytes(detail=f"'{CANARY}' is not a number"),
            None,
            id="echo",
        ),
        pytest.param(
            500,
            PROBLEM_MEDIA_TYPE,
            problem_bytes(status=500, detail='Traceback: File "x.py", line 1'),
            None,
            id="traceback",
        ),
        pytest.param(
            422,
            PROBLEM_MEDIA_TYPE,
            problem_bytes(errors=[{"type": "t", "loc": [], "msg": "m", "input": "x"}]),
            None,
            id="input_in_errors",
        ),
        pytest.param(
            422,
            PROBLEM_MEDIA_TYPE,
            problem_bytes(detail="x" * MAX_PROBLEM_BYTES),
            None,
            id="too_big",
        ),
        pytest.param(
            422,
            PROBLEM_MEDIA_TYPE,
            problem_bytes(detail="NaN").replace(b'"NaN"', b"NaN"),
            None,
            id="not_strict_json",
        ),
    ],
)
def test_check_problem_refuses_a_wrong_answer(
    status: int, content_type: str, body: bytes, expected: int | None
) -> None:
    with pytest.raises((AssertionError, KeyError, ValueError)):
        check_problem((status, content_type, body), expected)
