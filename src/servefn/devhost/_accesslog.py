"""``servefn serve``'s line per invocation, as the Functions host writes it, at little cost.

Every invocation ends with the host's line, in the format of servefn serve's other log lines
(:data:`LOG_FORMAT`)::

    [2026-05-01 10:00:00,123] INFO servefn.devhost: Executed 'Functions.predict' (Succeeded,
    Id=6f1c...-..., Duration=0ms)

A success costs the request one ``list.append``: the line's time, function name and duration.
The lines are formatted and written to stderr in one piece once per event-loop iteration
(``loop.call_soon``), their ids drawn for the whole batch with one ``os.urandom`` call: about
8 us of server CPU per request. Made through :mod:`logging` they cost about 60 us, half as much
as the rest of a one-row request: a record per line, its redaction, the formatter, one ``write``
per line, and a ``uuid4()`` per request (BENCHMARKS.md, "HTTP at the server's limit").

The success lines are the host's own output, as on Azure, where the host writes them and the
worker's :mod:`logging` never sees them: they are written to ``sys.stderr``, not made into log
records. They hold no request value (a function name from the app's code, a GUID and a
duration), so they need no redaction. They are written while ``servefn.devhost`` logs INFO
(``--log-level info``, the default) and the access log is on (``--no-access-log`` turns them
off). A failure is always logged, through :mod:`logging` (an ERROR record with the traceback,
redacted like every record), after the lines written before it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import TextIO

from servefn._logtext import exception_text

__all__ = ["LOG_FORMAT", "AccessLog", "guids"]

LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
"""The format of ``servefn serve``'s log lines (set by the command line for :mod:`logging`)."""

logger = logging.getLogger("servefn.devhost")

_Entry = tuple[float, str, float, str | None]  # time.time(), function, seconds, id or None
_FIELDS = ("\0asctime\0", "\0function\0", "\0id\0", "\0ms\0")  # placeholders, in line order


def _line_parts() -> list[str]:
    """The success line's text around its four fields (asctime, function, id, milliseconds):
    :data:`LOG_FORMAT` filled in as :mod:`logging` fills it for an INFO record."""
    asctime, function, invocation_id, ms = _FIELDS
    message = f"Executed 'Functions.{function}' (Succeeded, Id={invocation_id}, Duration={ms}ms)"
    rest = LOG_FORMAT % {
        "asctime": asctime, "levelname": "INFO", "name": logger.name, "message": message,
    }  # fmt: skip
    parts = []
    for field in _FIELDS:
        before, rest = rest.split(field)
        parts.append(before)
    return [*parts, rest]


_VERSION_4 = bytes(byte & 0x0F | 0x40 for byte in range(256))
_VARIANT_10 = bytes(byte & 0x3F | 0x80 for byte in range(256))


def guids(count: int) -> list[str]:
    """``count`` random GUIDs, as ``str(uuid.uuid4())`` makes them (version 4, RFC 4122
    variant), from one ``os.urandom`` call instead of one per GUID."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = raw[6::16].translate(_VERSION_4)
    raw[8::16] = raw[8::16].translate(_VARIANT_10)
    text = raw.hex()
    found = []
    for start in range(0, 32 * count, 32):
        h = text[start : start + 32]
        found.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return found


class AccessLog:
    """The "Executed 'Functions.NAME' (...)" lines of one host.

    Parameters
    ----------
    enabled
        False writes no line for a success (``--no-access-log``); failures are still logged.
    stream
        Where the lines go; ``sys.stderr`` as it is when they are written, by default.
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream
        self._pending: list[_Entry] = []
        self._second = -1
        self._stamp = ""
        self._parts = _line_parts()

    def succeeded(self, function: str, started: float, invocation_id: str | None = None) -> None:
        """Note that ``function``, started at ``started`` (``time.perf_counter()``), succeeded;
        its line is written at the end of this event-loop iteration. Without
        ``invocation_id`` (no one saw it), one is drawn when the line is written."""
        if not self.enabled or not logger.isEnabledFor(logging.INFO):
            return
        pending = self._pending
        pending.append((time.time(), function, time.perf_counter() - started, invocation_id))
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on an event loop's thread: nothing to batch with
                self.flush()

    def failed(self, function: str, invocation_id: str, started: float, exc: Exception) -> None:
        """Log the failure of ``function`` with its id and traceback, at ERROR."""
        self.flush()
        logger.error(  # the traceback's messages bounded: they can quote request values
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%.0fms)\n%s",
            function,
            invocation_id,
            (time.perf_counter() - started) * 1000,
            exception_text(exc),
        )

    def flush(self) -> None:
        """Write the pending lines now, in one piece."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        p0, p1, p2, p3, p4 = self._parts
        asctime = self._asctime
        ids = guids(len(batch))
        lines = [
            f"{p0}{asctime(created)}{p1}{name}{p2}{given or drawn}{p3}{seconds * 1e3:.0f}{p4}\n"
            for (created, name, seconds, given), drawn in zip(batch, ids, strict=True)
        ]
        stream = self._stream or sys.stderr
        try:
            stream.write("".join(lines))
            stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: the lines are lost, not requests
            pass

    def _asctime(self, created: float) -> str:
        """``logging.Formatter``'s default time, ``2026-05-01 10:00:00,123`` (local time)."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        return f"{self._stamp},{int((created - second) * 1000):03d}"
