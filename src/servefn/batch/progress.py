"""A one-line progress display on a terminal: rows processed, rows per second, elapsed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressLine"]

_INTERVAL = 0.2


class ProgressLine:
    """Counts rows as they are processed and redraws one status line at most every 0.2 s.

    Call the instance with each increment (it is an ``on_rows`` callback); ``finish()`` draws
    the final figures and ends the line.
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._drawn = self._started
        self.rows = 0

    def __call__(self, rows: int) -> None:
        self.rows += rows
        now = self._clock()
        if now - self._drawn >= _INTERVAL:
            self._drawn = now
            self._draw(now, end="")

    def finish(self) -> None:
        self._draw(self._clock(), end="\n")

    def _draw(self, now: float, *, end: str) -> None:
        elapsed = now - self._started
        rate = self.rows / elapsed if elapsed > 0 else 0.0
        text = f"{self.rows:,} rows  {rate:,.0f} rows/s  {elapsed:.1f} s"
        self._stream.write(f"\r\x1b[K{text}{end}")
        self._stream.flush()
