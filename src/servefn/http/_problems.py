"""RFC 9457 problem details: the one shape every servefn error response takes.

Errors carry a status, a short title, a detail that says what to do, and for validation
failures a list of ``{type, loc, msg}`` items (pydantic's shape, without the input: client values
are never echoed). The detail and other text fields are redacted (:func:`servefn._redact.redact`):
a storage error quoted in a problem never carries a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_core import to_json

from servefn._redact import redact

__all__ = ["PROBLEM_MEDIA_TYPE", "Problem"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An error answered to the client as ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type: str = "about:blank",
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        self.extra = extra

    @property
    def title(self) -> str:
        return _TITLES.get(self.status, "Error")

    def body(self) -> dict[str, Any]:
        """The problem document as a dict."""
        doc: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": redact(self.detail),
        }
        if self.errors is not None:
            doc["errors"] = self.errors
        doc.update(
            (key, redact(value) if isinstance(value, str) else value)
            for key, value in self.extra.items()
        )
        return doc

    def to_bytes(self) -> bytes:
        return to_json(self.body())

    def __repr__(self) -> str:
        return f"Problem(status={self.status}, detail={self.detail!r})"
