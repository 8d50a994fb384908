"""The usual way to serve a scikit-learn model: FastAPI, a pydantic body, ``predict_proba``.

A sync endpoint (FastAPI runs it in its thread pool, as scikit-learn calls block), one
``predict_proba`` per request with the label taken from its argmax (``iris_wire.answer``): the
efficient version of what tutorials write.
Run: ``uvicorn --app-dir benchmarks/apps --loop uvloop --http httptools fastapi_sklearn:app``.
"""

from __future__ import annotations

from fastapi import FastAPI
from iris_wire import IrisData, IrisPrediction, answer
from sklearn_iris import fit_pipeline

pipeline = fit_pipeline()
app = FastAPI()


@app.post("/api/Predict", response_model=IrisPrediction, response_model_by_alias=True)
def predict(flower: IrisData) -> IrisPrediction:
    """Predict the species of one flower."""
    return answer(pipeline, flower)
