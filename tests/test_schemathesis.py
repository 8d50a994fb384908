"""schemathesis against the OpenAPI document that ``servefn serve`` serves for the iris example.

The example app is trained into a temporary folder and served by ``servefn serve`` in a
subprocess; schemathesis loads ``/api/openapi.json`` from it and generates valid and invalid
requests for every operation. Checks: no 5xx; status codes, content types, headers and bodies
as documented; schema-invalid requests refused (413 for a batch over ``maxItems`` counts);
schema-valid JSON requests accepted. The keys
the document declares are not checked locally (like ``func host start``), so ``ignored_auth``
is not run; ``text/csv`` is a free-form string in the document, so "valid data is accepted" is
checked for JSON bodies only.

Derandomized; ``SERVEFN_SCHEMATHESIS_EXAMPLES`` sets the examples per operation and mode
(default 100).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from support.iris import example_app
from support.servehost import ServeProcess

# servefn serve in a subprocess; test_schemathesis_really_ran checks what the others sent.
pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("SERVEFN_SCHEMATHESIS_EXAMPLES", "100"))
OPERATIONS = ["POST /api/Predict", "GET /api/Predict"]
CALLS: Counter[str] = Counter()


def json_positive_data_acceptance(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' "schema-valid data is accepted", for JSON bodies and query strings."""
    if case.media_type == "text/csv":
        return None
    result: bool | None = positive_data_acceptance(ctx, response, case)
    return result


def negative_data_rejection(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' "schema-invalid data is refused", with 413 counted as a refusal: it is the
    documented answer to a batch over ``maxItems``."""
    if response.status_code == 413:
        return None
    result: bool | None = checks.negative_data_rejection(ctx, response, case)
    return result


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    negative_data_rejection,
    checks.unsupported_method,
    json_positive_data_acceptance,
]


@pytest.fixture(scope="module")
def example_host(
    tmp_path_factory: pytest.TempPathFactory, trained_model: Path
) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("schemathesis")
    host = ServeProcess(example_app(folder / "iris", trained_model), folder / "serve.log")
    host.wait()
    yield host
    output = host.stop()
    assert "Traceback" not in output, output[-3000:]


@pytest.fixture(scope="module")
def openapi(example_host: ServeProcess) -> Any:
    return schemathesis.openapi.from_url(f"{example_host.base}/openapi.json")


def check(case: Any) -> None:
    """Send ``case`` to the server and run every check on the answer."""
    response = case.call(timeout=30)
    CALLS[f"{case.method} {response.status_code}"] += 1
    case.validate_response(response, checks=CHECKS)


def test_the_document_has_the_operations_tested_here(openapi: Any) -> None:
    labels = {result.ok().label for result in openapi.get_all_operations()}
    assert labels == set(OPERATIONS)


# schemathesis' pytest plugin (schema.parametrize) does not run on pytest 9 yet; its strategies
# and coverage cases are driven directly instead.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests_conform_to_the_document(
    openapi: Any, label: str, mode: GenerationMode
) -> None:
    operation = openapi.find_operation_by_label(label)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        check(case)

    run()


@pytest.mark.parametrize("label", OPERATIONS)
def test_coverage_cases_conform_to_the_document(openapi: Any, label: str) -> None:
    """schemathesis' boundary and "one thing wrong" cases, unexpected methods included."""
    operation = openapi.find_operation_by_label(label)
    cases = list(
        openapi.iter_coverage_cases(
            operation,
            generation_modes=list(GenerationMode),
            generation_config=openapi.config.generation_for(operation=operation),
        )
    )
    assert len(cases) >= 20
    for case in cases:
        check(case)


def test_schemathesis_really_ran() -> None:
    """Runs last in this file: the tests above sent requests and got both kinds of answer."""
    total = sum(CALLS.values())
    print(f"schemathesis: {total} requests, {dict(sorted(CALLS.items()))}")
    assert total >= 4 * EXAMPLES
    assert any(key.endswith(" 200") for key in CALLS)
    assert any(key.endswith(" 422") for key in CALLS)
