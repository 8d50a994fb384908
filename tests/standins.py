"""Stand-ins shared by the model-cache tests: an injectable clock and a trivial artifact parser."""

from __future__ import annotations


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def parse_text(data: bytes) -> str:
    """A stand-in for read_model: the text of the artifact, refusing a corrupt one."""
    if data.startswith(b"corrupt"):
        raise ValueError("not a model archive")
    return data.decode()
