"""The scikit-learn baselines' HTTP contract: the example's wire names in and out, one answer.

``IrisData`` in, ``IrisPrediction`` out (``PredictedLabel``, ``Score``), and :func:`answer`:
one ``predict_proba`` per request, the label taken from its argmax. The FastAPI app and the
LitServe app both answer with it, so they give the same bytes for the same flower.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class IrisData(BaseModel):
    """One flower (the example's wire names)."""

    model_config = ConfigDict(extra="forbid")

    sepal_length: float = Field(alias="SepalLength")
    sepal_width: float = Field(alias="SepalWidth")
    petal_length: float = Field(alias="PetalLength")
    petal_width: float = Field(alias="PetalWidth")
    label: str | None = Field(None, alias="Label")


class IrisPrediction(BaseModel):
    """The species and one probability per species."""

    predicted_label: str = Field(serialization_alias="PredictedLabel")
    score: list[float] = Field(serialization_alias="Score")


def answer(pipeline: Any, flower: IrisData) -> IrisPrediction:
    """``pipeline``'s prediction for ``flower``: the efficient version of what tutorials write."""
    X = np.array(
        [[flower.sepal_length, flower.sepal_width, flower.petal_length, flower.petal_width]]
    )
    proba = pipeline.predict_proba(X)[0]
    label = str(pipeline.classes_[int(proba.argmax())])
    return IrisPrediction(predicted_label=label, score=proba.tolist())
