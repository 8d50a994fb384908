"""Targets 7 to 10: tree ensembles served by the numpy tree-ensemble kind (issue 13).

7. One row of a 100-tree RandomForest (depth <= 12, 20 features) through ``serve_http``'s
   handler (``func.HttpRequest`` in, ``func.HttpResponse`` out), against scikit-learn's
   ``predict_proba`` on that row, and against a bare onnxruntime ``InferenceSession.run`` on the
   same forest (converted by skl2onnx, one intra-op thread, float32 tensor in).
8. 10,000 rows of a 500-tree LightGBM model (31 leaves, 20 features): servefn's predictor
   (matrix in, scores out) against LightGBM's own ``predict`` (all cores, its default), rows/s.
9. Cold start, a fresh process that imports an app, loads its ``model.zip`` and answers one
   request: the forest of target 7 against the iris linear model (the same app code); peak RSS.
10. The 500-tree model's ``model.zip`` size and ``load_model`` time, reported.

The engine question (numpy traversal, onnxruntime or treelite) is answered by rows for context:
the same forest and LightGBM model through onnxruntime, and each engine's import time.
Every candidate's answer is checked against the source model before anything is timed.
Run ``.venv/bin/python benchmarks/bench_trees.py [--quick]``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np

from measure import Row, interleaved, median, row, spread_of

N_FEATURES = 20
APP = """
import azure.functions as func
from servefn import Schema, column, serve_http, LoadedModel, Records, Predictions

class Row(Schema):
{fields}

class Answer(Schema):
{answer}

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

@app.route(route="predict", methods=["POST"])
@serve_http(Row, Answer, model={model!r})
def predict(model: LoadedModel, inputs: Records) -> Predictions:
    return model.predict(inputs)
"""
CLASSIFIER_ANSWER = (
    '    label: int = column(name="PredictedLabel")\n    score: list[float] = column(name="Score")'
)
COLD = """
import sys
sys.path.insert(0, {folder!r})
import azure.functions as func
import function_app
functions = {{f.get_function_name(): f for f in function_app.app.get_functions()}}
handler = functions["predict"].get_user_function()
request = func.HttpRequest("POST", "http://localhost/api/predict",
    headers={{"content-type": "application/json"}}, body={body!r})
response = handler(request)
assert response.status_code == 200, response.get_body()
with open("/proc/self/status") as status:
    print(next(line for line in status if line.startswith("VmHWM:")).split()[1])
"""


def fields(n: int) -> str:
    return "\n".join(f'    f{j}: float = column({j}, name="f{j}")' for j in range(n))


def write_app(folder: Path, model: Path, answer: str, n_features: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    code = APP.format(fields=fields(n_features), answer=answer, model=str(model))
    (folder / "function_app.py").write_text(code)


def load_app(folder: Path, name: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, folder / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    functions = {f.get_function_name(): f for f in module.app.get_functions()}
    return functions["predict"].get_user_function()


def forest_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=5000, n_features=N_FEATURES, n_informative=12, n_classes=3, random_state=0
    )


def ort_session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def forest_rows(folder: Path, repeat: int, budget: float) -> list[Row]:
    """Target 7: one row of the forest through the handler, against sklearn and onnxruntime."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    import servefn
    from servefn import Schema, column

    X, y = forest_data()
    forest = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0).fit(X, y)
    namespace: dict[str, Any] = {"Schema": Schema, "column": column}
    exec(  # the same classes the app defines, for save()
        "class Row(Schema):\n" + fields(N_FEATURES) + "\nclass Answer(Schema):\n"
        + CLASSIFIER_ANSWER,
        namespace,
    )  # fmt: skip
    path = folder / "forest" / "model.zip"
    path.parent.mkdir(parents=True)
    servefn.save(forest, path, input=namespace["Row"], output=namespace["Answer"])
    write_app(path.parent, path, CLASSIFIER_ANSWER, N_FEATURES)
    handler = load_app(path.parent, "servefn_bench_forest_app")
    x = X[7:8]
    body = json.dumps({f"f{j}": float(x[0, j]) for j in range(N_FEATURES)}).encode()
    request = func.HttpRequest(
        "POST", "http://localhost/api/predict", headers={"content-type": "application/json"},
        body=body,
    )  # fmt: skip
    answer = json.loads(handler(request).get_body())
    expected = forest.predict_proba(x)[0]
    assert answer["PredictedLabel"] == int(forest.predict(x)[0])
    assert np.allclose(answer["Score"], expected, atol=1e-12, rtol=0)
    onnx = to_onnx(forest, X[:1].astype(np.float32), options={id(forest): {"zipmap": False}})
    session = ort_session(onnx.SerializeToString())
    x32 = x.astype(np.float32)
    ort_proba = session.run(None, {"X": x32})[1]
    assert np.allclose(ort_proba, expected, atol=1e-5)
    loaded = servefn.load_model(path)
    t = interleaved(
        {
            "handler": lambda: handler(request),
            "predictor": lambda: loaded.predictor.predict(x),
            "sklearn": lambda: forest.predict_proba(x),
            "onnxruntime": lambda: session.run(None, {"X": x32}),
        },
        repeat=repeat,
        budget=budget,
    )
    served, sk, ort_ = (median(t[k]) for k in ("handler", "sklearn", "onnxruntime"))
    nodes = loaded.manifest["predictor"]["n_nodes"]
    return [
        row(
            "T7 1 row, 100-tree forest, serve_http handler vs scikit-learn",
            served,
            "s",
            baseline="sklearn predict_proba",
            baseline_value=sk,
            target="<= 0.05x",
            met=served <= 0.05 * sk,
            spread=spread_of(t["handler"]),
            baseline_spread=spread_of(t["sklearn"]),
        ),
        row(
            "T7 1 row, 100-tree forest, serve_http handler vs onnxruntime",
            served,
            "s",
            baseline="bare InferenceSession.run",
            baseline_value=ort_,
            target="<= 2x",
            met=served <= 2 * ort_,
            spread=spread_of(t["handler"]),
            baseline_spread=spread_of(t["onnxruntime"]),
        ),
        row(
            f"   1 row, the numpy predictor alone ({nodes:,} nodes)",
            median(t["predictor"]),
            "s",
            baseline="bare InferenceSession.run",
            baseline_value=ort_,
            spread=spread_of(t["predictor"]),
            baseline_spread=spread_of(t["onnxruntime"]),
        ),
    ]


def lightgbm_rows(folder: Path, repeat: int, budget: float) -> list[Row]:
    """Targets 8 and 10: 10,000 rows of a 500-tree LightGBM regressor; archive size and load."""
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    from sklearn.datasets import make_regression

    import servefn
    from servefn import Schema, column

    X, y = make_regression(n_samples=20_000, n_features=N_FEATURES, noise=5.0, random_state=0)
    booster = lightgbm.LGBMRegressor(n_estimators=500, num_leaves=31, verbose=-1).fit(X, y)
    namespace: dict[str, Any] = {"Schema": Schema, "column": column}
    answer = '    score: float = column(name="Score")'
    exec("class Row(Schema):\n" + fields(N_FEATURES) + "\nclass Answer(Schema):\n" + answer,
         namespace)  # fmt: skip
    buffer = io.BytesIO()
    servefn.save(booster, buffer, input=namespace["Row"], output=namespace["Answer"])
    data = buffer.getvalue()
    loads = []
    for _ in range(repeat):
        start = time.perf_counter()
        model = servefn.load_model(data)
        loads.append(time.perf_counter() - start)
    rows = X[:10_000].copy()
    ours = model.predictor.predict(rows)["Score"]
    theirs = booster.predict(rows)
    assert np.max(np.abs(ours - theirs)) <= 1e-9, np.max(np.abs(ours - theirs))
    onnx = convert_lightgbm(
        booster.booster_, initial_types=[("X", FloatTensorType([None, N_FEATURES]))]
    )
    session = ort_session(onnx.SerializeToString())
    rows32 = rows.astype(np.float32)
    t = interleaved(
        {
            "servefn": lambda: model.predictor.predict(rows),
            "lightgbm": lambda: booster.predict(rows),
            "onnxruntime": lambda: session.run(None, {"X": rows32}),
        },
        repeat=max(3, repeat // 2),
        budget=budget * 5,
    )
    n = len(rows)
    rate = {name: [n / s for s in times] for name, times in t.items()}
    ours_rate, lgb_rate = median(rate["servefn"]), median(rate["lightgbm"])
    return [
        row(
            "T8 10,000 rows, 500-tree LightGBM, servefn predictor",
            ours_rate,
            "rows/s",
            baseline="LightGBM predict",
            baseline_value=lgb_rate,
            target=">= 0.5x",
            met=ours_rate >= 0.5 * lgb_rate,
            spread=spread_of(rate["servefn"]),
            baseline_spread=spread_of(rate["lightgbm"]),
        ),
        row(
            "   10,000 rows, 500-tree LightGBM, onnxruntime (1 thread)",
            median(rate["onnxruntime"]),
            "rows/s",
            baseline="LightGBM predict",
            baseline_value=lgb_rate,
            spread=spread_of(rate["onnxruntime"]),
            baseline_spread=spread_of(rate["lightgbm"]),
        ),
        row("T10 500-tree LightGBM model.zip size", len(data) / 1e6, "MB"),
        row("T10 500-tree LightGBM load_model", median(loads), "s", spread=spread_of(loads)),
    ]


def cold_rows(folder: Path, repeat: int) -> list[Row]:
    """Target 9: cold start of the forest app against the iris linear model's."""
    import iris_app

    iris_folder = iris_app.app_folder()
    forest_folder = folder / "forest"
    x = forest_data()[0][7]
    forest_body = json.dumps({f"f{j}": float(x[j]) for j in range(N_FEATURES)}).encode()
    iris_body = json.dumps(iris_app.FLOWER).encode()
    iris_code = COLD.format(folder=str(iris_folder), body=iris_body)
    candidates = {
        "forest": (COLD.format(folder=str(forest_folder), body=forest_body), forest_folder),
        "iris": (iris_code, iris_folder),
    }
    imports = {
        "numpy tree engine": "import servefn.predictors.trees",
        "onnxruntime": "import onnxruntime",
    }
    wall: dict[str, list[float]] = {name: [] for name in [*candidates, *imports]}
    rss: dict[str, list[float]] = {name: [] for name in candidates}
    for code, cwd in candidates.values():  # warm caches, not counted
        _run(code, cwd)
    for _ in range(repeat):
        for name, (code, cwd) in candidates.items():
            seconds, megabytes = _run(code, cwd)
            wall[name].append(seconds)
            rss[name].append(megabytes)
        for name, code in imports.items():
            seconds, _ = _run(code + "\nprint(0)", folder)
            wall[name].append(seconds)
    base, base_rss = median(wall["iris"]), median(rss["iris"])
    rows = [
        row(
            "T9 cold start, 100-tree forest app (import, load, 1 answer)",
            median(wall["forest"]),
            "s",
            baseline="iris linear app",
            baseline_value=base,
            target="<= 1.3x",
            met=median(wall["forest"]) <= 1.3 * base,
            spread=spread_of(wall["forest"]),
            baseline_spread=spread_of(wall["iris"]),
        ),
        row(
            "T9 cold start peak RSS, forest app",
            median(rss["forest"]),
            "MB",
            baseline="iris linear app",
            baseline_value=base_rss,
            target="<= 1.5x",
            met=median(rss["forest"]) <= 1.5 * base_rss,
            spread=spread_of(rss["forest"]),
            baseline_spread=spread_of(rss["iris"]),
        ),
    ]
    for name in imports:
        rows.append(
            row(
                f"   python -c 'import ...' with {name}",
                median(wall[name]),
                "s",
                spread=spread_of(wall[name]),
            )
        )
    return rows


def _run(code: str, cwd: Path) -> tuple[float, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"cold-start process failed: {done.stderr[-800:]}")
    last = done.stdout.split()[-1] if done.stdout.split() else "0"
    return wall, int(last) / 1024


def run(quick: bool = False) -> list[Row]:
    repeat, budget = (3, 0.05) if quick else (7, 0.2)
    with tempfile.TemporaryDirectory(prefix="servefn-bench-trees-") as scratch:
        folder = Path(scratch)
        rows = forest_rows(folder, repeat, budget)
        rows += lightgbm_rows(folder, repeat, budget)
        rows += cold_rows(folder, 3 if quick else 7)
    return rows


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
