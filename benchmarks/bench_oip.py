"""Issue 16's target: the Open Inference Protocol's infer of one iris row, in process, against
servefn's own JSON endpoint (target <= 1.3x).

Both are the example app's functions called as the Functions worker calls them,
``func.HttpRequest`` in and ``func.HttpResponse`` out: its ``predict`` (one JSON object) and
``v2/models/predict/infer`` from ``add_inference_routes(app)`` on the same app, with the same
flower as four FP64 tensors of shape [1] in the protocol's JSON form (the target), and for
context in the binary form tritonclient sends by default (binary inputs, binary outputs) and as
one FP32 feature matrix [1, 4]; and 1,000 rows both ways. Every answer is checked against the
JSON endpoint's before anything is timed.

Run ``.venv/bin/python benchmarks/bench_oip.py [--quick]``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import azure.functions as func
import numpy as np
import orjson

import iris_app
from measure import Row, format_table, interleaved, median, row, spread_of

Function = Callable[[func.HttpRequest], func.HttpResponse]
ROWS = 1_000
URL = "http://localhost:7071/api/v2/models/predict/infer"


def app_functions() -> dict[str, Function]:
    """The example app, imported afresh, with the protocol's routes added, as indexed."""
    from servefn import add_inference_routes

    module = iris_app.import_app(iris_app.app_folder(), "servefn_bench_oip_app")
    add_inference_routes(module.app)
    return {f.get_function_name(): f.get_user_function() for f in module.app.get_functions()}


def infer_request(
    columns: dict[str, Any], *, binary: bool = False, datatype: str = "FP64"
) -> func.HttpRequest:
    """``POST v2/models/predict/infer`` with ``columns`` (name -> array) as input tensors."""
    inputs, raw = [], []
    for name, values in columns.items():
        array = np.asarray(values)
        tensor: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype}
        if binary:
            data = np.ascontiguousarray(array, dtype="<f8" if datatype == "FP64" else "<f4")
            tensor["parameters"] = {"binary_data_size": data.nbytes}
            raw.append(data.tobytes())
        else:
            tensor["data"] = array.ravel().tolist()
        inputs.append(tensor)
    document: dict[str, Any] = {"inputs": inputs}
    if binary:
        document["parameters"] = {"binary_data_output": True}
    header = json.dumps(document).encode()
    headers = {"content-length": str(len(header) + sum(map(len, raw)))}
    if binary:
        headers["inference-header-content-length"] = str(len(header))
    return func.HttpRequest(
        "POST",
        URL,
        headers=headers,
        params={},
        route_params={"model_name": "predict"},
        body=header + b"".join(raw),
    )


def labels_and_scores(response: func.HttpResponse) -> tuple[list[str], np.ndarray]:
    """The labels and scores of a 200 answer: servefn's JSON, or the protocol's (any form)."""
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.get_body()[:300]!r}")
    body = response.get_body()
    length = response.headers.get("inference-header-content-length")
    if length is None and not body.startswith(b'{"model_name"'):  # servefn's own JSON
        document = orjson.loads(body)
        rows = document if isinstance(document, list) else [document]
        return [r["PredictedLabel"] for r in rows], np.array([r["Score"] for r in rows])
    header = orjson.loads(body[: int(length)] if length else body)
    outputs = {o["name"]: o for o in header["outputs"]}
    if length is None:
        scores = np.array(outputs["Score"]["data"]).reshape(outputs["Score"]["shape"])
        return outputs["PredictedLabel"]["data"], scores
    label_bytes = outputs["PredictedLabel"]["parameters"]["binary_data_size"]
    rest = body[int(length) :]
    labels, offset = [], 0
    while offset < label_bytes:
        size = int.from_bytes(rest[offset : offset + 4], "little")
        labels.append(rest[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    scores = np.frombuffer(rest[label_bytes:], dtype="<f8").reshape(outputs["Score"]["shape"])
    return labels, scores


def same_answer(reference: func.HttpResponse, *others: func.HttpResponse) -> None:
    labels, scores = labels_and_scores(reference)
    for other in others:
        found, found_scores = labels_and_scores(other)
        if found != labels or not np.allclose(found_scores, scores, rtol=1e-5, atol=1e-9):
            raise RuntimeError("the protocol's answer differs from the JSON endpoint's")


def run(quick: bool = False) -> list[Row]:
    """Time one row and 1,000 rows through servefn's JSON endpoint and the protocol's infer."""
    repeat, budget = (3, 0.05) if quick else (9, 0.2)
    functions = app_functions()
    predict, infer = functions["predict"], functions["v2_model_infer"]
    one = {name: [value] for name, value in iris_app.FLOWER.items()}
    own = iris_app.json_request(orjson.dumps(iris_app.FLOWER))
    requests = {
        "json": infer_request(one),
        "binary": infer_request(one, binary=True),
        "matrix": infer_request({"features": [list(iris_app.FLOWER.values())]}, datatype="FP32"),
    }
    same_answer(predict(own), *(infer(r) for r in requests.values()))
    t = interleaved(
        {
            "servefn": lambda: predict(own),
            **{name: (lambda r=r: infer(r)) for name, r in requests.items()},
        },
        repeat=repeat,
        budget=budget,
    )
    flowers = iris_app.flowers(ROWS)
    many_own = iris_app.json_request(orjson.dumps(flowers))
    many = infer_request({k: [f[k] for f in flowers] for k in iris_app.FEATURES})
    same_answer(predict(many_own), infer(many))
    batch = interleaved(
        {"servefn": lambda: predict(many_own), "oip": lambda: infer(many)},
        repeat=repeat,
        budget=budget,
    )
    base = median(t["servefn"])
    rows = [
        row(
            "T  OIP infer, 1 iris row, JSON form (HttpRequest->HttpResponse)",
            median(t["json"]),
            "s",
            baseline="servefn JSON endpoint",
            baseline_value=base,
            target="<= 1.3x",
            met=median(t["json"]) <= 1.3 * base,
            spread=spread_of(t["json"]),
            baseline_spread=spread_of(t["servefn"]),
        )
    ]
    for name, label in (
        ("binary", "binary form (tritonclient's default)"),
        ("matrix", "one FP32 [1, 4] feature matrix"),
    ):
        rows.append(
            row(
                f"   OIP infer, 1 iris row, {label}",
                median(t[name]),
                "s",
                baseline="servefn JSON endpoint",
                baseline_value=base,
                spread=spread_of(t[name]),
                baseline_spread=spread_of(t["servefn"]),
            )
        )
    rows.append(
        row(
            f"   OIP infer, {ROWS:,} rows, JSON form",
            median(batch["oip"]),
            "s",
            baseline="servefn JSON endpoint",
            baseline_value=median(batch["servefn"]),
            spread=spread_of(batch["oip"]),
            baseline_spread=spread_of(batch["servefn"]),
        )
    )
    return rows


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv)))
