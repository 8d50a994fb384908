"""A soak: two models swapped back and forth in Blob Storage while 8 threads send requests.

For ``SERVEFN_SOAK_SECONDS`` (default 60, the issue's minute), a ``serve_http`` function over a
``blob://`` model in Azurite is called from 8 threads, as the Functions worker's thread pool
calls a sync function, while a ninth thread uploads an "alpha" and a "beta" model in turn, 60
times in all, each upload a new version (its own sha256). Every answer must be a 200 whose
labels are the ones the model named by its ``X-Model-Version`` gives; at least 50 swaps must
really be served; no replaced model may stay in memory (a weak reference to every model
loaded), and the process's resident memory must stay flat from the 10th swap to the last.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import threading
import time
import weakref
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import pytest

from servefn.azure import serve_http
from servefn.loaders import ModelSource
from servefn.loaders.blob import BlobLoader
from servefn.model._archive import LoadedModel, load_model
from servefn.schema._schema import Schema
from support.azurite import Azurite
from support.iris import IrisData, IrisPrediction
from support.problems import strict_json
from support.reliability import constant_model_bytes

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

# A minute of load against Azurite.
pytestmark = [pytest.mark.soak, pytest.mark.integration]

SECONDS = float(os.environ.get("SERVEFN_SOAK_SECONDS", "60"))
SWAPS = 60
THREADS = 8
MAX_RSS_GROWTH = 32 * 1024 * 1024
"""Allowed growth of resident memory from the 10th swap to the last (allocator noise; a leaked
model per swap, or a few bytes per request, would exceed it)."""
BODY = json.dumps(
    [
        {"SepalLength": 1.0, "SepalWidth": 2.0, "PetalLength": 3.0, "PetalWidth": 4.0},
        {"SepalLength": 6.0, "SepalWidth": 3.0, "PetalLength": 5.0, "PetalWidth": 2.0},
    ]
).encode()


def resident_bytes() -> int:
    """This process's resident set size (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_swapping_models_under_load_for_a_minute(
    azurite: Azurite, blob_container: ContainerClient
) -> None:
    # every upload is another version (its own sha256): 61 versions, alpha and beta in turn
    blobs = [constant_model_bytes("beta" if i % 2 else "alpha", serial=i) for i in range(SWAPS + 1)]
    label_of = {
        load_model(data).version: "beta" if i % 2 else "alpha" for i, data in enumerate(blobs)
    }
    blob_container.upload_blob("model.zip", blobs[0])
    loaded: list[weakref.ref[LoadedModel]] = []

    def parse(data: bytes) -> LoadedModel:
        model = load_model(data)
        loaded.append(weakref.ref(model))
        return model

    loader = BlobLoader(
        f"{blob_container.container_name}/model.zip",
        connection=azurite.connection_string,
        timeout=5,
        retries=0,
    )
    source = ModelSource(loader, parse=parse, refresh_after=0.02)

    @serve_http(IrisData, IrisPrediction, model=source)
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    stop = threading.Event()
    rss: list[int] = []

    def swapper() -> None:
        interval = SECONDS / (SWAPS + 1)
        started = time.monotonic()
        try:
            for swap in range(1, SWAPS + 2):  # on a schedule, however long an upload takes
                time.sleep(max(0.0, started + swap * interval - time.monotonic()))
                if swap <= SWAPS:
                    blob_container.upload_blob("model.zip", blobs[swap], overwrite=True)
                    rss.append(resident_bytes())
        finally:
            stop.set()

    def client() -> tuple[Counter[str], list[str]]:
        served: Counter[str] = Counter()
        problems: list[str] = []
        while not stop.is_set():
            request = func.HttpRequest(
                "POST",
                "http://localhost/api/Predict",
                headers={"Content-Type": "application/json"},
                body=BODY,
            )
            response = predict(request)
            version = response.headers.get("X-Model-Version", "")
            if response.status_code != 200:
                problems.append(f"{response.status_code}: {response.get_body()[:200]!r}")
                continue
            labels = {row["PredictedLabel"] for row in strict_json(response.get_body())}
            if labels != {label_of.get(version)}:
                problems.append(f"version {version} answered {labels}")
            served[label_of.get(version, "?")] += 1
        return served, problems

    swapping = threading.Thread(target=swapper)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(client) for _ in range(THREADS)]
        swapping.start()
        results = [future.result() for future in futures]
    swapping.join()

    served = sum((counts for counts, _ in results), Counter())
    problems = [problem for _, found in results for problem in found]
    assert problems == []
    assert set(served) == {"alpha", "beta"}
    assert source.stats.loads >= 50  # the swaps were really picked up and served

    gc.collect()
    alive = [ref() for ref in loaded if ref() is not None]
    assert len(alive) <= 1, f"{len(alive)} models still in memory after {len(loaded)} loads"
    baseline = statistics.median(rss[8:12])
    growth = max(rss[-5:]) - baseline
    print(
        f"soak: {SECONDS:g}s, {THREADS} threads, {sum(served.values())} requests served "
        f"({dict(served)}), {source.stats.loads} models loaded in {len(rss)} swaps, errors 0, "
        f"resident memory {baseline / 2**20:.1f} MiB at swap 10, growth to the last swap "
        f"{growth / 2**20:+.1f} MiB"
    )
    assert growth < MAX_RSS_GROWTH
