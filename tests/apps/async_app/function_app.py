"""An async test app served under a custom route prefix (host.json)."""

import asyncio

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="Greet/{name:alpha}", methods=["GET"])
async def greet(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(f"hello {req.route_params['name']}")


@app.route(route="fail")
async def fail(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    raise ValueError("async failure")
