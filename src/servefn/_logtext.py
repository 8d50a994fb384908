"""Client-supplied text made safe for one log line: bounded in length, control characters escaped.

A request's method, path, query, header values and exception messages that echo them reach log
lines; :func:`bounded` cuts such a value to ``limit`` characters (``…(+N chars)`` says how many
were left out) and escapes control characters, line and paragraph separators and bidirectional
overrides, so that a value can neither flood the log nor forge or disguise a line.
:func:`exception_text` is a traceback whose exception messages went through :func:`bounded`.
Imports nothing of servefn.
"""

from __future__ import annotations

import traceback

__all__ = ["LOG_VALUE_LIMIT", "bounded", "exception_text"]

LOG_VALUE_LIMIT = 200
"""Characters of one client value a log line shows, by default."""

_CHAIN_LIMIT = 10

_ESCAPED = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    **{code: f"\\u{code:04x}" for code in (0x2028, 0x2029, 0x200E, 0x200F, 0x061C)},
    **{code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}
"""C0 and C1 controls and DEL, line/paragraph separators, bidirectional marks and overrides."""


def bounded(value: object, limit: int = LOG_VALUE_LIMIT) -> str:
    """``value`` as text for a log line: at most ``limit`` characters of it, escaped.

    >>> bounded("GET")
    'GET'
    >>> bounded("a\\nb")
    'a\\\\nb'
    >>> bounded("x" * 250, limit=8)
    'xxxxxxxx…(+242 chars)'
    """
    text = value if type(value) is str else _text(value)
    if len(text) <= limit and text.isprintable():  # the common case: nothing to do
        return text
    head = text[:limit].translate(_ESCAPED)
    kept = min(len(text), limit)
    if len(head) > limit:  # escapes made it longer: keep fewer characters
        head, kept = _escaped_prefix(text, limit)
    return head if kept == len(text) else f"{head}…(+{len(text) - kept} chars)"


def exception_text(exc: BaseException, limit: int = LOG_VALUE_LIMIT) -> str:
    """The traceback of ``exc`` and its chain, as the interpreter prints it, except that each
    exception's message (which can quote request values) is :func:`bounded`."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < _CHAIN_LIMIT:
        seen.add(id(current))
        chain.append(current)
        cause = current.__cause__
        current = (
            cause if cause is not None or current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for position, error in enumerate(reversed(chain)):
        if position:
            direct = error.__cause__ is not None
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if direct
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(error.__traceback__))
        message = _text(error)
        name = type(error).__qualname__
        parts.append(f"{name}: {bounded(message, limit)}\n" if message else f"{name}\n")
    return "".join(parts).rstrip("\n")


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break the log line
        return f"<{type(value).__name__} that cannot be shown>"


def _escaped_prefix(text: str, limit: int) -> tuple[str, int]:
    """The longest escaped prefix of ``text`` within ``limit`` characters, and its length in
    characters of ``text``."""
    pieces: list[str] = []
    size = 0
    for kept, char in enumerate(text):
        piece = _ESCAPED.get(ord(char), char)
        if size + len(piece) > limit:
            return "".join(pieces), kept
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces), len(text)
