"""A sync test app: routes with constraints, methods, a custom trigger name, failures."""

import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="echo/{id:int}/{name?}", methods=["GET", "POST"], trigger_arg_name="request")
def echo(request: func.HttpRequest) -> func.HttpResponse:
    """Report what the function received, so tests can compare it with what they sent."""
    seen = {
        "method": request.method,
        "url": request.url,
        "params": dict(request.params),
        "route_params": dict(request.route_params),
        "headers": dict(request.headers),
        "body_length": len(request.get_body()),
    }
    return func.HttpResponse(json.dumps(seen), mimetype="application/json")


@app.route(route="Items/{item:guid}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {req.route_params['item']}")


@app.route(route="items/new", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def new_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("created", status_code=201)


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", "<root>"))


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("database password is hunter2")


@app.route(route="content/{kind:alpha}")
def content(req: func.HttpRequest):
    """Answer with the content type, status and headers that ``kind`` names."""
    kind = req.route_params["kind"]
    if kind == "json":
        return func.HttpResponse(
            '{"ok": true}',
            status_code=201,
            mimetype="application/json",
            headers={"X-Custom": "yes", "Content-Length": "999"},
        )
    if kind == "html":
        return func.HttpResponse("<p>é</p>", mimetype="text/html", charset="latin-1")
    if kind == "bytes":
        return func.HttpResponse(b"\x00\x01\x02", mimetype="application/octet-stream")
    if kind == "explicit":
        return func.HttpResponse("x", headers={"Content-Type": "text/csv"}, status_code=418)
    if kind == "empty":
        return func.HttpResponse(status_code=204)
    if kind == "text":
        return "plain string"
    return 42


@app.route(route="cookies")
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse("cookies")
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    return response


@app.route(route="settings")
def settings(req: func.HttpRequest) -> func.HttpResponse:
    names = ("DEVHOST_GREETING", "DEVHOST_PRESET", "DEVHOST_NUMBER")
    return func.HttpResponse(
        json.dumps({name: os.environ.get(name) for name in names}), mimetype="application/json"
    )


@app.route(route="context")
def whoami(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(f"{context.function_name} {context.invocation_id}")


@app.route(route="out", binding_arg_name="res")
def via_out(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("set through func.Out", status_code=202))


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer")
def hourly(timer: func.TimerRequest) -> None:
    """Not served: servefn serve runs HTTP triggers only."""
