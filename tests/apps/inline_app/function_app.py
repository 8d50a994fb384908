"""A test app that reports which thread ran each invocation (``servefn serve``'s inline path).

Imported by the tests only (``standins`` is in tests/).
"""

import asyncio
import threading
import time
from typing import Any

import azure.functions as func
import numpy as np

from servefn import Schema, column
from servefn.azure import serve_http
from servefn.model._archive import LoadedModel
from servefn.predictors.base import Outputs
from support.standins import StatelessPredictor

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


class Pause(Schema):
    seconds: float = column(0, name="seconds")


class Where(Schema):
    thread: str = column(name="thread")


class ThreadName(StatelessPredictor):
    """Sleeps the requested seconds (blocking, like a database call), answers its thread."""

    kind = "test-thread-name"

    def predict(self, X: Any) -> Outputs:
        time.sleep(float(X[:, 0].max()))
        return {"thread": np.array([threading.current_thread().name] * len(X))}


app.route(route="where", methods=["POST"])(serve_http(Pause, Where)(ThreadName))


@app.route(route="plain", methods=["GET"])
def plain(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(threading.current_thread().name)


class Doubled(Schema):
    twice: float = column(name="twice")


class Double(StatelessPredictor):
    kind = "test-double"

    def predict(self, X: Any) -> Outputs:
        return {"twice": X[:, 0] * 2}


app.route(route="double", methods=["GET", "POST", "PUT"])(serve_http(Pause, Doubled)(Double))


async def _twice(value: float) -> float:
    await asyncio.sleep(0)
    return value * 2


def _run_own_loop(model: Any, inputs: Any) -> Any:
    """A sync handler that drives a coroutine with asyncio.run, as code calling an async SDK
    from sync code does; in the worker it runs in a pool thread."""
    return [{"twice": asyncio.run(_twice(record.seconds))} for record in inputs]


app.route(route="own_loop", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)(
    serve_http(Pause, Doubled, model=LoadedModel(Double(), Pause, Doubled, {}, "0" * 64, 0))(
        _run_own_loop
    )
)
