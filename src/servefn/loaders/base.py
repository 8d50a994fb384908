"""What every loader returns and promises, and the redaction used wherever a location is shown."""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

__all__ = [
    "Fetched",
    "ModelLoader",
    "RedactingFilter",
    "describe_error",
    "display_connection",
    "redact",
    "redact_logger",
    "require",
]


@dataclass(frozen=True)
class Fetched:
    """The bytes of one artifact version, its etag, and where they came from (redacted)."""

    data: bytes
    etag: str
    uri: str

    def __repr__(self) -> str:
        return f"Fetched(uri={self.uri!r}, etag={self.etag!r}, size={len(self.data)})"


@runtime_checkable
class ModelLoader(Protocol):
    """Fetches a model artifact from one location.

    ``uri`` is a display form with every credential removed. ``fetch(etag)`` returns ``None``
    when the artifact is unchanged since ``etag`` (a cheap conditional check), the artifact
    otherwise, and raises :class:`~servefn.errors.LoaderError` when it cannot be fetched.
    """

    uri: str

    def fetch(self, etag: str | None = None) -> Fetched | None:
        """Return the artifact, or ``None`` when it still has ``etag``."""
        ...


_MASK = "***"

# Secret-valued keys of connection strings ("AccountKey=...;") and of key=value or JSON text.
_SECRET_NAMES = (
    r"AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd|ClientSecret|"
    r"account_key|client_secret|sas_token|credential|secret|access_token"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@host in any URL
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), rf"\g<1>{_MASK}@"),
    # AccountKey=...; SharedAccessSignature=sv=..&sig=..; also "AccountKey = ..." (value runs
    # to ';', a quote or whitespace)
    (re.compile(rf"(?i)\b({_SECRET_NAMES})\s*=\s*[^;\s'\"]+"), rf"\g<1>={_MASK}"),
    # "account_key": "...", 'client_secret': '...', password: "..."
    (
        re.compile(rf"(?i)(['\"]?\b(?:{_SECRET_NAMES})['\"]?\s*:\s*['\"])[^'\"]*"),
        rf"\g<1>{_MASK}",
    ),
    # SAS signatures, function keys and tokens in query strings
    (
        re.compile(
            r"(?i)([?&;](?:sig|signature|code|token|access_token|key|password)=)[^&#\s'\"]*"
        ),
        rf"\g<1>{_MASK}",
    ),
    # Authorization: Bearer ... / SharedKey account:signature
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n,}]+"), rf"\g<1>{_MASK}"),
)


def redact(text: str) -> str:
    """Return ``text`` with account keys, SAS signatures, tokens and URL passwords masked.

    Used on every URI, error message and log line that could carry a credential; applying it
    twice is harmless.
    """
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def display_connection(connection: str) -> str:
    """How to show a loader's ``connection`` argument: a setting name as given; a literal
    connection string or account URL reduced to what cannot be a credential.

    Masking by pattern (:func:`redact`) cannot know every field a pasted connection string may
    carry a key in, so a literal one is never shown at all.
    """
    text = connection.strip()
    if text.lower().startswith(("http://", "https://")):
        if "@" in text:  # user info, whose password may even hold a "/": show none of it
            return "<account URL with user info>"
        parts = urlsplit(text)
        query = "?<SAS token>" if parts.query else ""
        return f"{parts.scheme}://{parts.netloc}{parts.path}{query}"
    if "=" in text:
        return "<connection string>"
    return text


class RedactingFilter(logging.Filter):
    """Masks credentials in the records of a logger servefn does not own."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_logger(name: str) -> None:
    """Attach one :class:`RedactingFilter` to logger ``name`` (idempotent).

    urllib3 logs every request line at DEBUG, SAS token included; azure-core's own logging
    already masks it.
    """
    target = logging.getLogger(name)
    if not any(isinstance(existing, RedactingFilter) for existing in target.filters):
        target.addFilter(RedactingFilter())


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """``"Type: first line of the message"``, redacted and capped: safe to log or show."""
    lines = str(exc).strip().splitlines()
    text = redact(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require(module: str, message: str) -> None:
    """Raise ``ImportError(message)`` unless ``module`` is installed, without importing it.

    Loaders call this when constructed, so a missing optional package is reported at startup
    with the extra to install, while the package itself is imported only on first use.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        raise ImportError(message)
