"""Target 3: cold start of a worker process, wall time and peak RSS, against bare imports.

Each candidate runs in a fresh ``python`` process (this venv's interpreter), one after the
other, several times in turns; wall time is measured around the whole process. Python's
bytecode and the OS page cache are warm (a discarded first round), as on a worker instance
that starts a second time; a container's very first start also reads the files from disk.
Peak RSS is the process's own ``VmHWM`` read from ``/proc/self/status`` as its last statement:
``ru_maxrss`` of a child would include the memory of this (large) parent it was forked from.

- servefn: import the example ``function_app`` (a trained copy), index it as the worker does
  (``app.get_functions()``), and answer one POST: the local ``model.zip`` is loaded then.
- baseline: ``python -c "import numpy, pydantic, azure.functions"``.
- for reference: a hand-written worker (the imports, a pydantic model of the input, the
  weights from an ``.npz``, one answer): ``import pydantic`` alone is lazy and does not load
  pydantic's model machinery, which any handler that validates with pydantic pays for; and
  ``import sklearn`` alone, and a scikit-learn worker (import sklearn, unpickle a fitted
  pipeline, predict one row).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import iris_app
from apps.sklearn_iris import fit_pipeline
from bench_handler import served_model
from measure import Row, median, row, spread_of

BASELINE = "import numpy, pydantic, azure.functions"

SERVEFN = """
import sys
sys.path.insert(0, {folder!r})
import azure.functions as func
import function_app
functions = {{f.get_function_name(): f for f in function_app.app.get_functions()}}
predict = functions["predict"].get_user_function()
request = func.HttpRequest(
    "POST", "http://localhost:7071/api/Predict",
    headers={{"content-type": "application/json"}}, body={body!r},
)
response = predict(request)
assert response.status_code == 200, response.get_body()
"""

HAND_WRITTEN_WORKER = """
import numpy as np
import azure.functions as func
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

class Flower(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    sepal_length: float = Field(alias="SepalLength")
    sepal_width: float = Field(alias="SepalWidth")
    petal_length: float = Field(alias="PetalLength")
    petal_width: float = Field(alias="PetalWidth")

with np.load({path!r}) as npz:
    weights, bias, classes = npz["weights"], npz["bias"], npz["classes"]
request = func.HttpRequest(
    "POST", "http://localhost:7071/api/Predict",
    headers={{"content-type": "application/json"}}, body={body!r},
)
f = Flower.model_validate_json(request.get_body())
z = np.array([f.sepal_length, f.sepal_width, f.petal_length, f.petal_width]) @ weights + bias
e = np.exp(z - z.max())
e /= e.sum()
answer = {{"PredictedLabel": str(classes[int(e.argmax())]), "Score": e.tolist()}}
response = func.HttpResponse(pydantic_core.to_json(answer), mimetype="application/json")
assert response.status_code == 200
"""

SKLEARN_WORKER = """
import pickle
import numpy
with open({path!r}, "rb") as f:
    pipeline = pickle.load(f)
assert pipeline.predict(numpy.array([[3.3, 1.6, 0.2, 5.1]])).shape == (1,)
"""


PEAK_RSS = """
with open("/proc/self/status") as status:
    print(next(line for line in status if line.startswith("VmHWM:")).split()[1])
"""


def measure(code: str, cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``python -c code`` in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "MODEL_URI"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code + PEAK_RSS], cwd=cwd, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"cold-start process failed ({done.returncode}): {done.stderr[-500:]}")
    return wall, int(done.stdout.split()[-1]) / 1024


def run(quick: bool = False) -> list[Row]:
    """Start each candidate process several times in turns; report medians.

    The target pair (servefn, baseline) runs ``repeat`` rounds; the references,
    slower and only shown for comparison, run in the first few rounds.
    """
    repeat, reference_rounds = (3, 1) if quick else (9, 3)
    folder = iris_app.app_folder()
    body = b'{"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}'
    with tempfile.TemporaryDirectory(prefix="servefn-bench-cold-") as scratch:
        pickled = Path(scratch) / "pipeline.pkl"
        pickled.write_bytes(pickle.dumps(fit_pipeline()))
        weights = Path(scratch) / "weights.npz"
        model = served_model(folder / "model.zip")
        np.savez(weights, weights=model.weights, bias=model.bias, classes=model.classes)
        candidates = {
            "servefn": SERVEFN.format(folder=str(folder), body=body),
            "baseline": BASELINE,
            "hand-written": HAND_WRITTEN_WORKER.format(path=str(weights), body=body),
            "sklearn": "import sklearn",
            "sklearn worker": SKLEARN_WORKER.format(path=str(pickled)),
        }
        for code in candidates.values():  # warm bytecode and page caches; not counted
            measure(code, folder)
        wall: dict[str, list[float]] = {name: [] for name in candidates}
        rss: dict[str, list[float]] = {name: [] for name in candidates}
        for round_ in range(repeat):
            for name, code in candidates.items():
                if name not in ("servefn", "baseline") and round_ >= reference_rounds:
                    continue
                seconds, megabytes = measure(code, folder)
                wall[name].append(seconds)
                rss[name].append(megabytes)
    base_wall, base_rss = median(wall["baseline"]), median(rss["baseline"])
    baseline = "import numpy, pydantic, azure.functions"
    rows = [
        row(
            "T3 cold start: import app, load model.zip, answer 1 request",
            median(wall["servefn"]),
            "s",
            baseline=baseline,
            baseline_value=base_wall,
            target="<= 1.5x",
            met=median(wall["servefn"]) <= 1.5 * base_wall,
            spread=spread_of(wall["servefn"]),
            baseline_spread=spread_of(wall["baseline"]),
        ),
        row(
            "T3 cold start peak RSS",
            median(rss["servefn"]),
            "MB",
            baseline=baseline,
            baseline_value=base_rss,
            target="<= 1.3x",
            met=median(rss["servefn"]) <= 1.3 * base_rss,
            spread=spread_of(rss["servefn"]),
            baseline_spread=spread_of(rss["baseline"]),
        ),
    ]
    references = (
        ("hand-written", "hand-written worker", "pydantic model, npz weights, 1 answer"),
        ("sklearn", "import sklearn", "alone"),
        ("sklearn worker", "sklearn worker", "unpickle pipeline, predict 1 row"),
    )
    for name, label, what in references:
        rows.append(
            row(
                f"   cold start, {label} ({what})",
                median(wall[name]),
                "s",
                baseline=baseline,
                baseline_value=base_wall,
                spread=spread_of(wall[name]),
                baseline_spread=spread_of(wall["baseline"]),
            )
        )
        rows.append(
            row(
                f"   peak RSS, {label}",
                median(rss[name]),
                "MB",
                baseline=baseline,
                baseline_value=base_rss,
                spread=spread_of(rss[name]),
                baseline_spread=spread_of(rss["baseline"]),
            )
        )
    return rows


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
