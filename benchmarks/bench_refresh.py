"""Target 5: model refresh, counted and timed through ``serve_http`` in process.

Storage reads: the example's handler logic served from a ``ModelSource`` over a
``MemoryLoader`` (servefn's in-memory loader, which counts every fetch as a storage round trip
and every download) with a short ``refresh_after``; two threads send requests for a few
seconds. After the warm-up load there must be no download, and at most one conditional check
per refresh interval.

Swap: a real ~100 MB ``model.zip`` (a ``LinearClassifier`` over a 2,048-wide vector column and
6,400 classes: 2048 x 6400 float64 weights, random so they do not compress) is served while
two client threads send requests; a new version of the same size is put in the loader and
taken up by the next check, which ``serve_http`` runs in a background thread. Swap time runs
from the start of the fetch that returned the new bytes to the end of the first request
answered by the new version; beside it, ``load_model`` of the same bytes in an idle process.
The slowest request while the swap is under way (every one of them kept the old model: none
waits for the check) is reported beside the steady-state median. Every request multiplies a
105 MB weight matrix, so the two clients keep both cores and the memory bus busy while the
swap runs.
"""

from __future__ import annotations

import io
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import azure.functions as func
import numpy as np
import orjson

import iris_app
from measure import Row, median, row, spread_of

REFRESH_AFTER = 0.25
WIDE_FEATURES = 2048
WIDE_CLASSES = 6400  # 2048 x 6400 x 8 bytes = 105 MB of weights


def predict(model: Any, inputs: Any) -> Any:
    """The example app's handler logic."""
    return model.predict(inputs)


def storage_rows(quick: bool) -> list[Row]:
    """Requests from two threads over a few refresh intervals; count fetches and downloads."""
    from servefn.azure import serve_http
    from servefn.loaders import MemoryLoader

    data, prediction = iris_app.schemas()
    loader = MemoryLoader((iris_app.app_folder() / "model.zip").read_bytes())
    handler = serve_http(data, prediction, model=loader, refresh_after=REFRESH_AFTER)(predict)
    request = iris_app.json_request(orjson.dumps(iris_app.FLOWER))
    if handler(request).status_code != 200:  # warm-up: the one load
        raise RuntimeError("the refresh benchmark's handler did not answer 200")
    fetches, downloads = loader.fetches, loader.downloads
    seconds = 1.0 if quick else 3.0
    counts = [0, 0]
    start = time.perf_counter()

    def client(slot: int) -> None:
        while time.perf_counter() - start < seconds:
            handler(request)
            counts[slot] += 1

    threads = [threading.Thread(target=client, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    requests = sum(counts)
    checks = loader.fetches - fetches
    reads = loader.downloads - downloads
    intervals = math.ceil(elapsed / REFRESH_AFTER)
    return [
        row(
            f"T5 storage reads per request after warm-up ({requests} requests)",
            reads / requests,
            "",
            target="0",
            met=reads == 0,
        ),
        row(
            f"T5 conditional checks in {elapsed:.1f} s, refresh_after={REFRESH_AFTER} s",
            float(checks),
            "",
            baseline="refresh intervals",
            baseline_value=float(intervals),
            target="<= 1 per interval",
            met=checks <= intervals,
        ),
    ]


def wide_model(seed: int, classes: int) -> bytes:
    """A valid model.zip of a linear classifier with random float64 weights."""
    from servefn.model._archive import write_model
    from servefn.predictors.linear import LinearClassifier

    wide_input, wide_output = wide_schemas()
    rng = np.random.default_rng(seed)
    predictor = LinearClassifier(
        rng.standard_normal((WIDE_FEATURES, classes)),
        rng.standard_normal(classes),
        [f"class-{i}" for i in range(classes)],
    )
    buffer = io.BytesIO()
    write_model(buffer, predictor, input=wide_input, output=wide_output)
    return buffer.getvalue()


def wide_schemas() -> tuple[Any, Any]:
    """Input: one 2,048-wide vector column; output: the predicted label only (small answers)."""
    from servefn import Schema, column

    class WideInput(Schema):
        features: list[float] = column((0, WIDE_FEATURES - 1), name="Features")

    class WideOutput(Schema):
        predicted_label: str = column(name="PredictedLabel")

    return WideInput, WideOutput


class _TimedLoader:
    """A MemoryLoader that notes when each fetch that returns new bytes started."""

    def __init__(self, data: bytes) -> None:
        from servefn.loaders import MemoryLoader

        self.inner = MemoryLoader(data)
        self.uri = self.inner.uri
        self.download_started: list[float] = []

    def fetch(self, etag: str | None = None) -> Any:
        started = time.perf_counter()
        fetched = self.inner.fetch(etag)
        if fetched is not None:
            self.download_started.append(started)
        return fetched


@dataclass(frozen=True)
class SwapTiming:
    """One swap: its duration, the slowest request meanwhile, and the usual request."""

    swap: float
    slowest: float
    steady: float


def swap_rows(quick: bool) -> list[Row]:
    """Swap ~100 MB models under load from two threads; time the swap and the slowest request."""
    from servefn.azure import serve_http
    from servefn.model._archive import load_model

    classes = WIDE_CLASSES // 10 if quick else WIDE_CLASSES
    swaps = 1 if quick else 3
    versions = [wide_model(seed, classes) for seed in (1, 2)]
    idle = []
    for _ in range(swaps):
        started = time.perf_counter()
        load_model(versions[1])
        idle.append(time.perf_counter() - started)
    loader = _TimedLoader(versions[0])
    wide_input, wide_output = wide_schemas()
    handler = serve_http(wide_input, wide_output, model=loader, refresh_after=REFRESH_AFTER)(
        predict
    )
    body = orjson.dumps({"Features": np.linspace(-1, 1, WIDE_FEATURES).tolist()})
    request = iris_app.json_request(body)
    if handler(request).status_code != 200:
        raise RuntimeError("the swap benchmark's handler did not answer 200")
    log: list[tuple[float, float, str]] = []  # (start, end, model version) per request
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            response = handler(request)
            end = time.perf_counter()
            with lock:
                log.append((start, end, _version(response)))

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    timings = []
    try:
        for n in range(swaps):
            time.sleep(1.0)
            with lock:
                before = len(log)
                old = log[-1][2]
            loader.inner.set(versions[(n + 1) % 2])
            timings.append(_wait_for_swap(log, lock, loader, old, before))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    label = f"{len(versions[0]) / 1e6:.0f} MB model.zip"
    swap = [t.swap for t in timings]
    steady = [t.steady for t in timings]
    slowest = [t.slowest for t in timings]
    return [
        row(
            f"T5 swap in a {label} while serving (2 client threads)",
            median(swap),
            "s",
            baseline="load_model, idle process",
            baseline_value=median(idle),
            target="report",
            spread=spread_of(swap),
            baseline_spread=spread_of(idle),
        ),
        row(
            "T5 slowest request during the swap (the check runs in a background thread)",
            median(slowest),
            "s",
            baseline="steady-state median request",
            baseline_value=median(steady),
            target="report",
            spread=spread_of(slowest),
            baseline_spread=spread_of(steady),
        ),
    ]


def _version(response: func.HttpResponse) -> str:
    if response.status_code != 200:
        raise RuntimeError(f"a request failed during the swap: {response.status_code}")
    return str(response.headers.get("X-Model-Version"))


def _wait_for_swap(
    log: list[tuple[float, float, str]],
    lock: threading.Lock,
    loader: _TimedLoader,
    old: str,
    before: int,
) -> SwapTiming:
    """Wait until a request is answered by the new version, then time what happened."""
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        time.sleep(0.05)
        with lock:
            if any(entry[2] != old for entry in log[before:]):
                break
    else:
        raise RuntimeError("the new model was not served within 60 s")
    time.sleep(0.3)  # let the requests that overlapped the swap finish
    with lock:
        entries = list(log)
    fetch_start = loader.download_started[-1]
    first_new = min((e for e in entries[before:] if e[2] != old), key=lambda e: e[1])
    during = [e for e in entries if e[1] >= fetch_start and e[0] <= first_new[1]]
    steady = [end - start for start, end, _ in entries[:before][-200:]]
    return SwapTiming(
        swap=first_new[1] - fetch_start,
        slowest=max(end - start for start, end, _ in during),
        steady=median(steady),
    )


def run(quick: bool = False) -> list[Row]:
    """Storage reads per request, checks per interval, and a large model swapped in live."""
    return storage_rows(quick) + swap_rows(quick)


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
