"""A tiny two-feature model with a text column, for tests that need free text in records
(CSV line breaks, log bounds): its schemas, its archive and a provider that always has it."""

from __future__ import annotations

import io

import numpy as np

from servefn import Schema, column
from servefn.model import load_model, write_model
from servefn.predictors.linear import LinearClassifier
from support.standins import FixedModel


class Visit(Schema):
    length: float = column(0, name="Length")
    width: float = column(1, name="Width")
    note: str | None = column(2, name="Note", role="label", default=None)


class Verdict(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def model_zip() -> bytes:
    predictor = LinearClassifier(
        np.array([[1.0, -1.0], [1.0, -1.0]]), np.zeros(2), ["big", "small"]
    )
    buffer = io.BytesIO()
    write_model(buffer, predictor, input=Visit, output=Verdict)
    return buffer.getvalue()


MODEL = load_model(model_zip())


class Fixed(FixedModel):
    """The model, always ready (the endpoint's model provider)."""

    def __init__(self) -> None:
        super().__init__(MODEL)
