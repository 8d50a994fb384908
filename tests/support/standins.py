"""Stand-ins shared by the tests: an injectable clock, a trivial artifact parser, a model
provider that always has its model, and a base for test predictors that have nothing to save."""

from __future__ import annotations

from typing import Any

import numpy as np

from servefn.model import LoadedModel
from servefn.predictors import Predictor
from servefn.predictors.base import Payload


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FixedModel:
    """An endpoint's model provider that always has ``model``, ready."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def get(self) -> LoadedModel:
        return self.model

    def info(self) -> dict[str, Any]:
        return {"state": "ready", "version": self.model.version}


def parse_text(data: bytes) -> str:
    """A stand-in for load_model: the text of the artifact, refusing a corrupt one."""
    if data.startswith(b"corrupt"):
        raise ValueError("not a model archive")
    return data.decode()


class StatelessPredictor(Predictor):
    """A test predictor with no parameters: subclasses set ``kind`` and write ``predict``."""

    dtype = np.float64

    def to_payload(self) -> Payload:
        return Payload({}, {})

    @classmethod
    def from_payload(cls, params: Any, files: Any) -> StatelessPredictor:
        return cls()
