"""Targets 1 and 2: the example app's handler in process against hand-written baselines.

1. One row, ``func.HttpRequest`` in, ``func.HttpResponse`` out (parse, validation, prediction,
   encoding) through the example's ``predict`` function, against a minimal hand-written handler
   doing the same with the same libraries (pydantic-core parses and validates the same schema,
   numpy predicts with the same weights, pydantic-core serialises), and against scikit-learn's
   ``Pipeline.predict`` on the same row (a numpy array: no parsing, no encoding).
2. 10,000 rows in one request, rows/s, against the floor: orjson parse, numpy predict with the
   same weights, orjson serialisation of the same payload, no validation. The target figure
   is taken in a fresh process that holds what a worker holds (the app, its model, the floor)
   with the garbage collector on, as in a worker: a 10,000-row request allocates enough
   objects to trigger collections, whose cost grows with the process's heap. The same pair
   with the collector off (as ``timeit`` does) is shown for context.

Every baseline's answer is checked against servefn's before anything is timed.
Run ``.venv/bin/python benchmarks/bench_handler.py [--quick]``.
"""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import orjson
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

import iris_app
from measure import Row, interleaved, median, row, spread_of

BATCH = 10_000
Function = Callable[[func.HttpRequest], func.HttpResponse]


class Flower(BaseModel):
    """The example's input schema, written as plain pydantic (same fields, aliases, strictness)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    sepal_length: float = Field(alias="SepalLength")
    sepal_width: float = Field(alias="SepalWidth")
    petal_length: float = Field(alias="PetalLength")
    petal_width: float = Field(alias="PetalWidth")
    label: str | None = Field(None, alias="Label")


_FLOWERS = TypeAdapter(list[Flower])


class LinearModel:
    """The served model's weights, bias and classes, used by the hand-written baselines."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, classes: Sequence[str]) -> None:
        self.weights, self.bias, self.classes = weights, bias, np.asarray(classes)

    def scores(self, X: np.ndarray) -> np.ndarray:
        z = X @ self.weights + self.bias
        e: np.ndarray = np.exp(z - z.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        return e


def _problem(exc: ValidationError) -> func.HttpResponse:
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    return func.HttpResponse(
        pydantic_core.to_json({"errors": errors}), status_code=422, mimetype="application/json"
    )


def minimal_handler(model: LinearModel) -> Function:
    """One flower: validate the JSON body, predict, serialise. Nothing else."""

    def handle(req: func.HttpRequest) -> func.HttpResponse:
        try:
            f = Flower.model_validate_json(req.get_body())
        except ValidationError as exc:
            return _problem(exc)
        scores = model.scores(
            np.array([f.sepal_length, f.sepal_width, f.petal_length, f.petal_width])
        )
        label = model.classes[int(scores.argmax())].item()
        body = pydantic_core.to_json({"PredictedLabel": label, "Score": scores.tolist()})
        return func.HttpResponse(body, mimetype="application/json")

    return handle


def minimal_batch_handler(model: LinearModel) -> Function:
    """A JSON array of flowers, validated by pydantic, predicted at once, serialised."""

    def handle(req: func.HttpRequest) -> func.HttpResponse:
        try:
            flowers = _FLOWERS.validate_json(req.get_body())
        except ValidationError as exc:
            return _problem(exc)
        X = np.array(
            [(f.sepal_length, f.sepal_width, f.petal_length, f.petal_width) for f in flowers]
        )
        return _encode(model, X, pydantic_core.to_json)

    return handle


def floor_handler(model: LinearModel) -> Function:
    """The fastest way to the same answer: orjson in, numpy, orjson out; no validation."""
    features = operator.itemgetter(*iris_app.FEATURES)

    def handle(req: func.HttpRequest) -> func.HttpResponse:
        X = np.array([features(r) for r in orjson.loads(req.get_body())])
        return _encode(model, X, orjson.dumps)

    return handle


def _encode(model: LinearModel, X: np.ndarray, dumps: Callable[[Any], bytes]) -> func.HttpResponse:
    scores = model.scores(X)
    labels = model.classes[scores.argmax(axis=1)].tolist()
    out = [{"PredictedLabel": a, "Score": s} for a, s in zip(labels, scores.tolist(), strict=True)]
    return func.HttpResponse(dumps(out), mimetype="application/json")


def builtin_path_handler() -> Function:
    """servefn's endpoint with no custom handler (the predictor runs on the matrix directly)."""
    from servefn.azure import to_request, to_response
    from servefn.http import Endpoint
    from servefn.loaders import ModelSource

    data, prediction = iris_app.schemas()
    endpoint = Endpoint(data, prediction, ModelSource(iris_app.app_folder() / "model.zip"))
    return lambda req: to_response(endpoint.handle(to_request(req)))


def served_model(path: Path | None = None) -> LinearModel:
    """The weights servefn serves, read from ``path`` (default: the trained model.zip)."""
    import servefn

    predictor = servefn.load_model(path or iris_app.app_folder() / "model.zip").predictor
    return LinearModel(predictor.weights, predictor.bias, predictor.classes.tolist())  # type: ignore[attr-defined]


def same_answer(*responses: func.HttpResponse) -> None:
    """Raise unless every response is a 200 with the same labels and (nearly) the same scores."""
    documents = []
    for response in responses:
        if response.status_code != 200:
            raise RuntimeError(
                f"a handler answered {response.status_code}: {response.get_body()[:300]!r}"
            )
        document = orjson.loads(response.get_body())
        documents.append(document if isinstance(document, list) else [document])
    first = documents[0]
    for other in documents[1:]:
        if [r["PredictedLabel"] for r in other] != [r["PredictedLabel"] for r in first]:
            raise RuntimeError("the handlers disagree on labels: the comparison would be unfair")
        gap = np.abs(np.array([r["Score"] for r in other]) - np.array([r["Score"] for r in first]))
        if gap.max() > 1e-5:
            raise RuntimeError(f"the handlers' scores differ by {gap.max():.2g}")


def run(quick: bool = False) -> list[Row]:
    """Time one row and 10,000 rows through servefn and the baselines, taking turns."""
    from apps.sklearn_iris import fit_pipeline

    repeat, budget = (3, 0.05) if quick else (7, 0.2)
    servefn_handler = iris_app.app_function()
    model = served_model()
    minimal = minimal_handler(model)
    builtin = builtin_path_handler()
    pipeline = fit_pipeline()
    one = iris_app.json_request(orjson.dumps(iris_app.FLOWER))
    x = np.array([[iris_app.FLOWER[f] for f in iris_app.FEATURES]])
    same_answer(servefn_handler(one), minimal(one), builtin(one))

    t = interleaved(
        {
            "servefn": lambda: servefn_handler(one),
            "minimal": lambda: minimal(one),
            "sklearn": lambda: pipeline.predict(x),
            "builtin": lambda: builtin(one),
        },
        repeat=repeat,
        budget=budget,
    )
    servefn_one, minimal_one, sklearn_one = (
        median(t[k]) for k in ("servefn", "minimal", "sklearn")
    )
    rows = [
        row(
            "T1 1 row, example app handler (HttpRequest->HttpResponse)",
            servefn_one,
            "s",
            baseline="hand-written handler",
            baseline_value=minimal_one,
            target="<= 1.5x",
            met=servefn_one <= 1.5 * minimal_one,
            spread=spread_of(t["servefn"]),
            baseline_spread=spread_of(t["minimal"]),
        ),
        row(
            "T1 1 row, example app handler vs scikit-learn",
            servefn_one,
            "s",
            baseline="sklearn Pipeline.predict",
            baseline_value=sklearn_one,
            target="<= 0.1x",
            met=servefn_one <= 0.1 * sklearn_one,
            spread=spread_of(t["servefn"]),
            baseline_spread=spread_of(t["sklearn"]),
        ),
        row(
            "   1 row, servefn Endpoint without custom handler",
            median(t["builtin"]),
            "s",
            baseline="hand-written handler",
            baseline_value=minimal_one,
            spread=spread_of(t["builtin"]),
            baseline_spread=spread_of(t["minimal"]),
        ),
    ]
    return rows + batch_rows(servefn_handler, model, repeat, budget)


def batch_rows(
    servefn_handler: Function, model: LinearModel, repeat: int, budget: float
) -> list[Row]:
    """10,000 rows in one request: rows/s of servefn, the floor and a validating baseline."""
    worker = _rates(worker_batch_in_child(repeat, budget))
    request = iris_app.json_request(orjson.dumps(iris_app.flowers(BATCH)))
    floor = floor_handler(model)
    minimal = minimal_batch_handler(model)
    same_answer(servefn_handler(request), floor(request), minimal(request))
    here = _rates(
        interleaved(
            {
                "servefn": lambda: servefn_handler(request),
                "floor": lambda: floor(request),
                "minimal": lambda: minimal(request),
            },
            repeat=repeat,
            budget=budget,
        )
    )
    floor_name = "floor: orjson+numpy"
    return [
        _rate_row(
            "T2 10,000 rows in one request, example app (worker-like process, GC on)",
            worker["servefn"],
            worker["floor"],
            floor_name,
            target=0.5,
        ),
        _rate_row(
            "   10,000 rows, example app, GC off", here["servefn"], here["floor"], floor_name
        ),
        _rate_row(
            "   10,000 rows, hand-written handler with pydantic validation, GC off",
            here["minimal"],
            here["floor"],
            floor_name,
        ),
    ]


def _rates(times: dict[str, list[float]]) -> dict[str, list[float]]:
    return {name: [BATCH / seconds for seconds in found] for name, found in times.items()}


def _rate_row(
    name: str, rates: list[float], floor: list[float], floor_name: str, target: float | None = None
) -> Row:
    value, baseline = median(rates), median(floor)
    return row(
        name,
        value,
        "rows/s",
        baseline=floor_name,
        baseline_value=baseline,
        target=f">= {target}x" if target is not None else None,
        met=value >= target * baseline if target is not None else None,
        spread=spread_of(rates),
        baseline_spread=spread_of(floor),
    )


def worker_batch_in_child(repeat: int, budget: float) -> dict[str, list[float]]:
    """Seconds per 10,000-row request of servefn and the floor, in a fresh worker-like process."""
    folder = iris_app.app_folder()
    command = [sys.executable, __file__, "--worker-batch", str(folder), str(repeat), str(budget)]
    env = {k: v for k, v in os.environ.items() if k != "MODEL_URI"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)
    if done.returncode != 0:
        raise RuntimeError(f"the worker-like process failed: {done.stderr[-800:]}")
    times: dict[str, list[float]] = json.loads(done.stdout.splitlines()[-1])
    return times


def worker_batch(folder: Path, repeat: int, budget: float) -> dict[str, list[float]]:
    """In this (fresh) process: import the app as the worker does, then time 10,000-row
    requests through it and through the floor, garbage collector on."""
    handler = iris_app.app_function(module=iris_app.import_app(folder))
    request = iris_app.json_request(orjson.dumps(iris_app.flowers(BATCH)))
    floor = floor_handler(served_model(folder / "model.zip"))
    same_answer(handler(request), floor(request))
    return interleaved(
        {"servefn": lambda: handler(request), "floor": lambda: floor(request)},
        repeat=repeat,
        budget=budget,
        keep_gc=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker-batch"]:
        folder, repeat, budget = Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(worker_batch(folder, repeat, budget)))
    else:
        from measure import format_table

        print(format_table(run(quick="--quick" in sys.argv)))
