"""The penguin classifier as an Azure Functions HTTP trigger, done with servefn.

The model's numpy pipeline imputes missing measurements and encodes the island and the sex;
an unknown island or sex is a 422 naming the field and the allowed values, and neither
scikit-learn nor pandas is imported where this serves.
"""

import os

import azure.functions as func

from servefn import LoadedModel, Predictions, Records, add_health_routes, serve_http

from schema import Penguin, SpeciesPrediction

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="Species", methods=["GET", "POST"])
@serve_http(Penguin, SpeciesPrediction, model=os.environ.get("MODEL_URI", "model.zip"))
def species(model: LoadedModel, inputs: Records) -> Predictions:
    """Predict each penguin's species (custom logic can go here)."""
    return model.predict(inputs)


add_health_routes(app)
