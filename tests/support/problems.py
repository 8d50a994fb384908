"""The one check of an RFC 9457 problem response, used by every test that gets an error answer.

:func:`check_problem` takes what the test has: an ``httpx.Response`` (``servefn serve`` over a
socket, or an ASGI app in process), an ``azure.functions.HttpResponse`` (a ``serve_http``
function called as the worker calls it), or a ``(status, content_type, body)`` tuple.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import httpx

CANARY = "c4n4ry-8d1f0e"
"""A marker put into request values: it must never come back in a response or a log line."""
MAX_PROBLEM_BYTES = 16 * 1024
"""An error answer is small whatever the request was: nothing is reflected back in bulk."""
PROBLEM_MEDIA_TYPE = "application/problem+json"

Answer = httpx.Response | func.HttpResponse | tuple[int, str, bytes]


def strict_json(body: bytes) -> Any:
    """Parse ``body`` as RFC 8259 JSON: NaN and Infinity are not JSON and fail here."""

    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(body, parse_constant=refuse)


def _parts(answer: Answer) -> tuple[int, str, bytes]:
    if isinstance(answer, httpx.Response):
        return answer.status_code, answer.headers.get("content-type", ""), answer.content
    if isinstance(answer, func.HttpResponse):
        return answer.status_code, str(answer.mimetype), answer.get_body()
    status, content_type, body = answer
    return status, content_type, body


def check_problem(
    answer: Answer, status: int | None = None, *, canaries: tuple[str, ...] = (CANARY,)
) -> dict[str, Any]:
    """Assert ``answer`` is an error (``status`` when given) whose body is a small RFC 9457
    problem document: exactly ``application/problem+json``, strict JSON, ``type`` about:blank,
    its ``status`` the response's, a title and a detail, validation errors as ``{type, loc,
    msg}`` only, and no traceback, file path or echoed value (``canaries``). Returns the
    document."""
    code, content_type, body = _parts(answer)
    if status is not None:
        assert code == status, (code, body[:300])
    assert 400 <= code < 600, (code, body[:300])
    assert content_type == PROBLEM_MEDIA_TYPE, content_type
    assert len(body) <= MAX_PROBLEM_BYTES, f"{len(body)} bytes: the request was reflected"
    text = body.decode("utf-8")
    for needle in ("Traceback", 'File "', "site-packages", *canaries):
        assert needle not in text, f"{needle!r} in the problem body"
    document: dict[str, Any] = strict_json(body)
    assert document["type"] == "about:blank", document
    assert document["status"] == code, document
    assert document["title"] and document["detail"], document
    for error in document.get("errors", []):
        assert set(error) == {"type", "loc", "msg"}, error  # never "input" or "ctx"
    return document
