"""Redaction: the one mechanism that keeps credentials out of everything servefn shows.

:func:`redact` masks, in any text:

- URL user info with a password (``https://user:password@host`` -> ``https://***@host``);
- the values of SAS query parameters (``sig``, ``se``, ``sp``, ``sv``, ``skoid``... every one
  Azure defines), of ``code=`` (function keys) and of other secret-named query parameters, plain
  or percent-encoded;
- ``AccountKey=``, ``SharedAccessSignature=`` and other secret-valued fields of connection
  strings, ``key=value`` text and JSON or dict reprs (``'client_secret': '...'``);
- ``Bearer`` tokens, ``SharedKey account:signature`` and the values of secret headers
  (``Authorization``, ``x-functions-key``, ``x-ms-...-key``, ``...-signature``, cookies).

It is applied at every exit: exception messages (:func:`describe_error`, loader errors), the
CLI's error line, problem bodies, health, and logs. :func:`install_redaction` makes every log
record of the process pass through :class:`RedactingFilter` when it is created (so the records
of azure-core, azure-storage, azure-identity, urllib3, fsspec, adlfs and aiohttp, whose loggers
are children that a filter on a parent logger never sees, are masked too) and adds the filter to
the root logger's handlers and to those libraries' loggers; ``servefn serve``, ``serve_http``
and the storage loaders call it.

Imports nothing of servefn (the bottom layer), so every layer can use it.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = [
    "MASK",
    "REDACTED_LOGGERS",
    "RedactingFilter",
    "describe_error",
    "install_redaction",
    "redact",
    "redact_logger",
    "redact_record",
]

MASK = "***"
"""What a masked credential is replaced by."""

REDACTED_LOGGERS = (
    "servefn",
    "azure",
    "azure.core",
    "azure.storage",
    "azure.identity",
    "urllib3",
    "fsspec",
    "adlfs",
    "aiohttp",
    "uvicorn",
)
"""The loggers :func:`install_redaction` adds the filter to (besides the root handlers)."""

# Secret-valued fields of connection strings and key=value text ("AccountKey=...;").
_SECRET_FIELDS = (
    r"AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd|ClientSecret|"
    r"account_key|client_secret|sas_token|credential|secret|access_token|refresh_token|api_key"
)
# Keys of JSON objects and dict reprs whose string value is a secret ("'sas_token': '...'").
_SECRET_KEYS = rf"{_SECRET_FIELDS}|connection_string|sig|signature|token|apikey"
# Query parameters whose value is a secret: every SAS field Azure defines (the values of a SAS
# are masked wholesale), function keys (code) and other tokens; also AWS and GCS signed URLs.
_QUERY_KEYS = (
    r"sig|se|sp|sv|st|spr|sr|srt|ss|si|sip|sdd|ses|skoid|sktid|skt|ske|sks|skv|skdutid|saoid|"
    r"suoid|scid|sduoid|rscc|rscd|rsce|rscl|rsct|signature|code|token|access_token|key|"
    r"password|sas|api_key|apikey|client_secret|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|x-goog-signature|x-goog-credential"
)
# Headers whose value is a secret, as "Name: value" lines or "'Name': 'value'" reprs.
_SECRET_HEADERS = (
    r"(?:proxy-)?authorization|x-functions-key|ocp-apim-subscription-key|x-api-key|api-key|"
    r"set-cookie|cookie|x-ms-[a-z0-9-]*(?:key|signature|authorization|token|secret)[a-z0-9-]*"
)

_WORDS = ("key", "sharedaccess", "pwd", "password", "secret", "token", "credential")
"""Lower-case words in every secret field and key name: text without them skips those rules."""

# (any of these lower-case needles, and this character, must be in the text; pattern; mask)
_RULES: tuple[tuple[tuple[str, ...], str, re.Pattern[str], str], ...] = (
    # scheme://user:password@host: all the user info (the password may even hold "/" or "@")
    (
        ("://",),
        "@",
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s'\"<>@:/]*:[^\s'\"<>]*@"),
        rf"\g<1>{MASK}@",
    ),
    # Authorization: Bearer ..., 'x-functions-key': '...', x-ms-encryption-key: ...
    (
        ("authorization", "key", "cookie", "x-ms-"),
        "",
        re.compile(rf"(?i)\b({_SECRET_HEADERS})(['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n,}}]+"),
        rf"\g<1>\g<2>{MASK}",
    ),
    # AccountKey=...; SharedAccessSignature=sv=..&sig=..; "AccountKey = ..." (to ';', a quote
    # or whitespace)
    (
        _WORDS,
        "=",
        re.compile(rf"(?i)\b({_SECRET_FIELDS})\s*=\s*[^;\s'\"]+"),
        rf"\g<1>={MASK}",
    ),
    # "account_key": "...", 'sas_token': '...', password: "..."
    (
        (*_WORDS, "sig", "connection_string"),
        ":",
        re.compile(rf"(?i)\b((?:{_SECRET_KEYS})['\"]?\s*:\s*['\"])[^'\"]*"),
        rf"\g<1>{MASK}",
    ),
    # ?sv=..&se=..&sig=.., ?code=..; also after ";" (a SAS pasted into a connection string)
    (
        ("?", "&", ";"),
        "=",
        re.compile(rf"(?i)([?&;](?:{_QUERY_KEYS})=)[^&#\s'\"<>;]*"),
        rf"\g<1>{MASK}",
    ),
    # the same, percent-encoded inside another URL's query (%3Fsig%3D...%26...)
    (
        ("%3d",),
        "",
        re.compile(rf"(?i)((?:%3F|%26)(?:{_QUERY_KEYS})%3D)(?:(?!%26|%23)[^&#\s'\"<>;])*"),
        rf"\g<1>{MASK}",
    ),
    # bare bearer tokens (long enough not to be a word)
    (
        ("bearer",),
        "",
        re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{16,}=*"),
        rf"\g<1>{MASK}",
    ),
    # SharedKey account:signature (a request signature)
    (
        ("sharedkey",),
        ":",
        re.compile(r"(?i)\b(SharedKey(?:Lite)?\s+[^:\s'\"]+:)[A-Za-z0-9+/]+=*"),
        rf"\g<1>{MASK}",
    ),
)


def redact(text: str) -> str:
    """Return ``text`` with credentials masked (see the module doc for what is covered).

    Idempotent: ``redact(redact(t)) == redact(t)``. Each rule runs only when the text holds
    a word it needs, so ordinary log lines cost a few substring searches.
    """
    lowered = text.lower()
    for needles, required, pattern, replacement in _RULES:
        if required in lowered and any(needle in lowered for needle in needles):
            text = pattern.sub(replacement, text)
    return text


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """``"Type: first line of the message"``, redacted and capped: safe to log or show."""
    lines = str(exc).strip().splitlines()
    text = redact(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_DONE: weakref.WeakKeyDictionary[logging.LogRecord, tuple[object, object]] = (
    weakref.WeakKeyDictionary()
)
"""Records already redacted, with the message they had then (kept off the record itself, whose
attributes some handlers export)."""


def redact_record(record: logging.LogRecord) -> None:
    """Mask credentials in ``record`` in place: its message (with its arguments), its
    traceback and its stack. Done once per record, unless its message was replaced since
    (``logging.makeLogRecord`` fills in a record made empty); a record whose arguments cannot be
    formatted is left for logging to report."""
    done = _DONE.get(record)
    if done is not None and done[0] is record.msg and done[1] is record.args:
        return
    try:
        message = record.getMessage()
    except Exception:  # logging itself reports a bad format string when the record is emitted
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    _DONE[record] = (record.msg, record.args)


class RedactingFilter(logging.Filter):
    """Masks credentials in every record it sees (:func:`redact_record`); drops none."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_FILTER = RedactingFilter()
_LOCK = threading.Lock()


def _add_filter(target: logging.Filterer) -> None:
    if not any(isinstance(existing, RedactingFilter) for existing in target.filters):
        target.addFilter(_FILTER)


def redact_logger(name: str) -> None:
    """Add the :class:`RedactingFilter` to logger ``name`` and its handlers (idempotent).

    A logger's filter sees only records logged on that very logger, not on its children:
    :func:`install_redaction` is what covers a whole library.
    """
    target = logging.getLogger(name)
    _add_filter(target)
    for handler in target.handlers:
        _add_filter(handler)


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., Any]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    factory._servefn_redacts = True  # type: ignore[attr-defined]
    return factory


def install_redaction() -> None:
    """Make every log record of this process redacted (idempotent, thread-safe).

    Wraps the log record factory, so a record is masked when it is created, whichever logger
    (``azure.core.pipeline.policies.http_logging_policy``, ``urllib3.connectionpool``,
    ``fsspec.http``...) and whichever handler, even one added later; and adds
    :class:`RedactingFilter` to the root logger's handlers and to :data:`REDACTED_LOGGERS` and
    their handlers, for records made some other way. ``servefn serve``, ``serve_http`` and the
    storage loaders call it.
    """
    with _LOCK:
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "_servefn_redacts", False):
            logging.setLogRecordFactory(_redacting_factory(factory))
        for handler in logging.getLogger().handlers:
            _add_filter(handler)
        for name in REDACTED_LOGGERS:
            redact_logger(name)
