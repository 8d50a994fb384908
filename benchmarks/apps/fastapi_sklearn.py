"""The usual way to serve a scikit-learn model: FastAPI, a pydantic body, ``predict_proba``.

A sync endpoint (FastAPI runs it in its thread pool, as scikit-learn calls block), one
``predict_proba`` per request with the label taken from its argmax: the efficient version of
what tutorials write. Run: ``uvicorn --app-dir benchmarks/apps fastapi_sklearn:app``.
"""

from __future__ import annotations

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from sklearn_iris import fit_pipeline

pipeline = fit_pipeline()
app = FastAPI()


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


@app.post("/api/Predict", response_model=IrisPrediction, response_model_by_alias=True)
def predict(flower: IrisData) -> IrisPrediction:
    """Predict the species of one flower."""
    X = np.array(
        [[flower.sepal_length, flower.sepal_width, flower.petal_length, flower.petal_width]]
    )
    proba = pipeline.predict_proba(X)[0]
    label = str(pipeline.classes_[int(proba.argmax())])
    return IrisPrediction(predicted_label=label, score=proba.tolist())
