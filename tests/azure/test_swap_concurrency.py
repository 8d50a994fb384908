"""Models swapped while 8 threads send requests: no error, every answer from one model version."""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
import numpy as np

from servefn import Schema, column
from servefn.azure import serve_http
from servefn.loaders import MemoryLoader, ModelSource
from servefn.model._archive import LoadedModel, load_model, write_model
from servefn.predictors.linear import LinearClassifier


class In(Schema):
    x: float = column(0, name="X")


class Out(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def _model_bytes(label: str) -> bytes:
    """A model that always answers ``label`` (the other class never wins)."""
    classes = [label, f"not-{label}"]
    buffer = io.BytesIO()
    predictor = LinearClassifier(np.zeros((1, 2)), np.array([1.0, -1.0]), classes)
    write_model(buffer, predictor, input=In, output=Out)
    return buffer.getvalue()


def test_every_answer_matches_the_version_it_carries_during_swaps() -> None:
    blobs = {label: _model_bytes(label) for label in ("alpha", "beta")}
    expected = {load_model(data).version: label for label, data in blobs.items()}
    loader = MemoryLoader(blobs["alpha"])
    source = ModelSource(loader, refresh_after=0)

    @serve_http(In, Out, model=source)
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        for i in range(50):
            loader.set(blobs["beta" if i % 2 == 0 else "alpha"])
            swaps += 1
            stop.wait(0.004)
        stop.set()

    def client() -> list[tuple[int, str, str]]:
        seen = []
        body = json.dumps([{"X": 1.0}, {"X": 2.0}]).encode()
        while not stop.is_set():
            request = func.HttpRequest(
                "POST",
                "http://x/api/Predict",
                headers={"Content-Type": "application/json"},
                body=body,
            )
            response = predict(request)
            answers = {a["PredictedLabel"] for a in json.loads(response.get_body())}
            assert len(answers) == 1
            seen.append((response.status_code, response.headers["X-Model-Version"], answers.pop()))
        return seen

    thread = threading.Thread(target=swapper)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client) for _ in range(8)]
        thread.start()
        results = [r for f in futures for r in f.result()]
    thread.join()
    assert swaps == 50
    assert len(results) > 100
    assert {status for status, _, _ in results} == {200}
    assert all(expected[version] == label for _, version, label in results)
    assert {label for _, _, label in results} == {"alpha", "beta"}  # both really served
