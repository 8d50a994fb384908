"""The diabetes progression model (gradient-boosted trees) as an Azure Functions HTTP trigger.

The model is servefn's numpy tree ensemble: neither scikit-learn nor SciPy is imported where
this serves. A missing serum measurement is routed as the model routes it; a value outside a
field's bounds is a 422 naming the field.
"""

import os

import azure.functions as func

from servefn import LoadedModel, Predictions, Records, add_health_routes, serve_http

from schema import Patient, Progression

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="Progression", methods=["GET", "POST"])
@serve_http(Patient, Progression, model=os.environ.get("MODEL_URI", "model.zip"))
def progression(model: LoadedModel, inputs: Records) -> Predictions:
    """Predict each patient's disease progression (custom logic can go here)."""
    return model.predict(inputs)


add_health_routes(app)
