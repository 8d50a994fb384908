"""A repository of 200 small models: memory stays within the budget while requests cycle
through all of them; the first request of a model (its load) and the hit path, timed.

200 models (512 features -> 32 classes, a ``LinearClassifier``: 128 KiB of weights each, about
196 KiB as the repository accounts them) are written to a temporary folder and served by
``serve_models`` on a real FunctionApp, whose ``models/{name}`` function is called as the worker
calls it, in a new interpreter that reports its own resident set size (``/proc/self/statm``;
Linux). After a warm-up (imports, the listing, two models) requests cycle through all 200 models
in order: with a budget that holds about 40 of them, every request of the cycle is a first
request (a cycle longer than an LRU misses every time: the worst case), so each one loads its
model and evicts the least recently used one. The RSS growth over the warm-up is sampled after
every request; its peak must stay within the budget (evicted models' schema classes are
reference cycles: the repository runs a full collection once a quarter of the budget has been
evicted, and the loads that do are counted). For contrast, the same cycle with a budget
that holds every model shows what 200 of them take. The hit path is one model requested again
and again, beside the same model behind a ``serve_http`` function (``function_for`` over a
``ModelSource``: what ``serve_http`` builds for a Predictor-less endpoint).

    .venv/bin/python benchmarks/bench_repository.py           # about 30 seconds
    .venv/bin/python benchmarks/bench_repository.py --quick
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from measure import Row, format_table, median, row, spread_of

MODELS = 200
FEATURES = 512
CLASSES = 32
BUDGET = 8 * 1024**2
HOLD_ALL = 1024**3


def write_repository(root: Path, count: int = MODELS) -> None:
    """``count`` models named ``m000``... under ``root``, each with its own weights."""
    import numpy as np

    from servefn import Schema, column
    from servefn.model._archive import write_model
    from servefn.predictors.linear import LinearClassifier

    class Signal(Schema):
        features: list[float] = column((0, FEATURES - 1), name="Features")

    class Kind(Schema):
        predicted_label: str = column(name="PredictedLabel")
        score: list[float] = column((0, CLASSES - 1), name="Score")

    rng = np.random.default_rng(0)
    labels = [f"kind-{i}" for i in range(CLASSES)]
    for index in range(count):
        folder = root / f"m{index:03d}"
        folder.mkdir(parents=True)
        predictor = LinearClassifier(
            rng.normal(size=(FEATURES, CLASSES)), rng.normal(size=CLASSES), labels
        )
        write_model(folder / "model.zip", predictor, input=Signal, output=Kind)


def child(root: str, budget: int, rounds: int, hits: int) -> dict[str, Any]:
    """What the measured interpreter does and reports (see the module)."""
    import gc
    import os
    import time

    import azure.functions as func

    from servefn.azure import function_for
    from servefn.http import Endpoint
    from servefn.loaders import ModelSource
    from servefn.repository import serve_models

    page = os.sysconf("SC_PAGE_SIZE")
    statm = Path("/proc/self/statm")

    def rss() -> int:
        return int(statm.read_text().split()[1]) * page

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    repository = serve_models(app, repository=root, memory_budget=budget, max_models=MODELS)
    predict = next(f for f in app.get_functions() if f.get_function_name() == "models_predict")
    function = predict.get_user_function()
    body = json.dumps({"Features": [0.25] * FEATURES}).encode()
    headers = {"Content-Type": "application/json"}

    def ask(name: str) -> None:
        request = func.HttpRequest(
            "POST", f"http://localhost/api/models/{name}", headers=headers,
            route_params={"name": name}, body=body,
        )  # fmt: skip
        response = function(request)
        if response.status_code != 200:
            raise RuntimeError(f"{name}: {response.status_code} {response.get_body()[:300]!r}")

    names = repository.names()
    for name in names[:2]:  # warm-up: imports, validators, the listing
        ask(name)
    gc.collect()
    base = rss()
    peak, accounted, loads = base, 0, []
    for _ in range(rounds):
        for name in names:
            cold = not repository.is_ready(name)
            started = time.perf_counter()
            ask(name)
            if cold:
                loads.append(time.perf_counter() - started)
            peak = max(peak, rss())
            accounted = max(accounted, repository.cache.info()["memory_used"])
    last = names[-1]
    ask(last)
    source = ModelSource(Path(root) / last / "model.zip", refresh_in_background=True)
    model = source.warm()
    endpoint = Endpoint(model.input_schema, model.output_schema, source, name="predict")
    single = function_for(endpoint, "predict")

    def ask_single() -> None:  # the same request as ask() builds, to the one-model function
        request = func.HttpRequest(
            "POST", f"http://localhost/api/models/{last}", headers=headers,
            route_params={"name": last}, body=body,
        )  # fmt: skip
        if single(request).status_code != 200:
            raise RuntimeError("the serve_http function did not answer 200")

    gc.collect()
    hit, baseline = [], []
    for _ in range(5):  # interleaved, so both meet the same machine
        for call, times in ((lambda: ask(last), hit), (ask_single, baseline)):
            started = time.perf_counter()
            for _ in range(hits):
                call()
            times.append((time.perf_counter() - started) / hits)
    info = repository.cache.info()
    return {
        "growth": peak - base,
        "accounted": accounted,
        "loads": loads,
        "hit": hit,
        "baseline": baseline,
        "evictions": info["evictions"],
        "collections": info["collections"],
        "loaded": info["loaded"],
    }


def measure(root: Path, budget: int, rounds: int, hits: int) -> dict[str, Any]:
    """:func:`child` in a new interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(root), str(budget), str(rounds), str(hits)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the repository benchmark failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool = False) -> list[Row]:
    """Memory within the budget over cycles of 200 models; load and hit-path times."""
    folder = Path(tempfile.mkdtemp(prefix="servefn-bench-repository-"))
    try:
        write_repository(folder)
        rounds, hits = (1, 300) if quick else (3, 2000)
        bounded = measure(folder, BUDGET, rounds, hits)
        unbounded = measure(folder, HOLD_ALL, 1, 50)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    mib = 1024**2
    loads = sorted(bounded["loads"])
    return [
        row(
            f"repository, {MODELS} models cycled: RSS growth",
            bounded["growth"] / mib,
            "MiB",
            baseline=f"every model held ({MODELS})",
            baseline_value=unbounded["growth"] / mib,
            target=f"<= budget ({BUDGET / mib:.0f} MiB)",
            met=bounded["growth"] <= BUDGET,
        ),
        row(
            "  accounted memory, peak",
            bounded["accounted"] / mib,
            "MiB",
            target=f"<= {BUDGET / mib:.0f} MiB",
            met=bounded["accounted"] <= BUDGET,
        ),
        row("  models loaded at the end", bounded["loaded"], "models"),
        row("  evictions", bounded["evictions"], "evictions"),
        row(
            "repository: first request of a model (load)",
            median(loads),
            "s",
            spread=spread_of(loads),
        ),
        row("  of which ran a full garbage collection", bounded["collections"], "loads"),
        row(
            "repository: hit path (model in memory)",
            median(bounded["hit"]),
            "s",
            baseline="serve_http function, same model",
            baseline_value=median(bounded["baseline"]),
            spread=spread_of(bounded["hit"]),
            baseline_spread=spread_of(bounded["baseline"]),
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        root, budget, rounds, hits = sys.argv[2], *map(int, sys.argv[3:6])
        print(json.dumps(child(root, budget, rounds, hits)))
    else:
        print(format_table(run(quick="--quick" in sys.argv)))
