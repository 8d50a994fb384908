"""A blob input binding cannot be provided locally: the function is listed, not served."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="model")
@app.blob_input(arg_name="model", path="models/model.zip", connection="AzureWebJobsStorage")
def model(req: func.HttpRequest, model: bytes) -> func.HttpResponse:
    return func.HttpResponse(str(len(model)))


@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")
