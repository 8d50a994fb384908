"""The iris example as the benchmarks use it: a trained copy of the app, its handler, payloads.

The example app is copied into a temporary folder and its model is trained there by the
example's own ``train(path)``, so a benchmark never touches ``examples/iris/model.zip``. The
scikit-learn baseline is ``make_pipeline(MaxAbsScaler(), LogisticRegression())`` fitted on the
same data (``apps/sklearn_iris.py``, shared with the FastAPI app).
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
DATA = EXAMPLE / "data" / "iris.txt"
APP_FILES = ("function_app.py", "schema.py", "host.json")
FEATURES = ("SepalLength", "SepalWidth", "PetalLength", "PetalWidth")
FLOWER = {"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}
URL = "http://localhost:7071/api/Predict"


def _import_file(path: Path, name: str) -> Any:
    """Import ``path`` as module ``name`` (registered, as the worker's import registers it),
    with its folder first on ``sys.path`` meanwhile."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@cache
def app_folder() -> Path:
    """A temporary copy of the example app with a freshly trained ``model.zip`` (once per run)."""
    folder = Path(tempfile.mkdtemp(prefix="servefn-bench-app-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in APP_FILES:
        shutil.copy(EXAMPLE / name, folder / name)
    _import_file(EXAMPLE / "train.py", "servefn_bench_train").train(folder / "model.zip")
    return folder


def import_app(folder: Path, name: str = "function_app") -> Any:
    """Import ``folder/function_app.py`` as the worker does (its model: the local model.zip)."""
    saved = os.environ.pop("MODEL_URI", None)
    try:
        return _import_file(folder / "function_app.py", name)
    finally:
        if saved is not None:
            os.environ["MODEL_URI"] = saved


@cache
def function_app() -> Any:
    """The trained copy's ``function_app`` module, imported in this process."""
    return import_app(app_folder(), "servefn_bench_function_app")


def app_function(
    name: str = "predict", module: Any = None
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """The user function the Functions worker would call for ``name`` (as indexed) in
    ``module`` (default: :func:`function_app`)."""
    functions = {f.get_function_name(): f for f in _indexed(module or function_app())}
    return functions[name].get_user_function()  # type: ignore[no-any-return]


@cache
def _indexed(module: Any) -> tuple[Any, ...]:
    return tuple(module.app.get_functions())  # the worker indexes an app once


def schemas() -> tuple[Any, Any]:
    """The example's ``IrisData`` and ``IrisPrediction`` classes (as its app imports them)."""
    module = function_app()
    return module.IrisData, module.IrisPrediction


def flowers(n: int) -> list[dict[str, float]]:
    """``n`` records cycling through iris.txt, keyed by wire name."""
    rows = [line.split(",") for line in DATA.read_text().splitlines() if line.strip()]
    records = [dict(zip(FEATURES, map(float, r[:4]), strict=True)) for r in rows]
    return list(itertools.islice(itertools.cycle(records), n))


def json_request(body: bytes, url: str = URL) -> func.HttpRequest:
    """A POST request as the Functions worker hands it to a function."""
    return func.HttpRequest(
        "POST",
        url,
        headers={"content-type": "application/json", "content-length": str(len(body))},
        params={},
        route_params={},
        body=body,
    )
