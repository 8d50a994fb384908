"""The iris walkthrough's HTTP function, done with servefn.

By default the model is the local ``model.zip`` next to this file (run ``python train.py``), so
nothing needs the cloud. Set the app setting ``MODEL_URI`` to ``blob://models/model.zip`` to
serve the blob through the ``AzureWebJobsStorage`` connection, as the walkthrough did; the
model is loaded once per worker and re-checked at most every five minutes.
"""

import os

import azure.functions as func

from servefn import LoadedModel, Predictions, Records, add_health_routes, serve_http

from schema import IrisData, IrisPrediction

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="Predict", methods=["GET", "POST"])
@serve_http(
    IrisData,
    IrisPrediction,
    model=os.environ.get("MODEL_URI", "model.zip"),  # a blob:// URL reads AzureWebJobsStorage
)
def predict(model: LoadedModel, inputs: Records) -> Predictions:
    """Predict the species of each flower (custom logic can go here)."""
    return model.predict(inputs)


add_health_routes(app)
