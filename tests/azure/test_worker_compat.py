"""The iris app under the real Azure Functions worker library, on Python 3.13.

``make worker313`` builds ``.worker313/`` (Python 3.13, azure-functions 2.x,
azure-functions-runtime, this servefn); ``scripts/check_worker.py run`` indexes a copy of
``examples/iris`` with the worker's own loader and calls the indexed function with real
``func.HttpRequest`` objects. This suite itself runs on the machine's Python (azure-functions
1.x). Without Python 3.13 or the venv the test is skipped with the reason, or fails under
CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import ROOT
from support.iris import APP_FILES, example_app, import_file

# Both tests run the Python 3.13 worker venv in a subprocess.
pytestmark = pytest.mark.integration

SCRIPT = ROOT / "scripts" / "check_worker.py"


@pytest.fixture(scope="module")
def worker_python() -> Path:
    """The 3.13 venv's interpreter, or a skip (a failure under CI=true) saying what is missing."""
    check_worker = import_file(SCRIPT, "check_worker")
    reason = check_worker.missing_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    python: Path = check_worker.venv_python()
    return python


@pytest.fixture(scope="module")
def iris_app(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/iris with a model.zip trained by its own train.py."""
    app = tmp_path_factory.mktemp("worker") / "iris"
    return example_app(app, trained_model, files=(*APP_FILES, "requirements.txt"))


def test_the_worker_indexes_and_calls_the_iris_app(worker_python: Path, iris_app: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if k not in ("MODEL_URI", "PYTHONPATH")}
    done = subprocess.run(
        [str(worker_python), str(SCRIPT), "run", str(iris_app)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["python"].startswith("3.13.")
    assert seen["azure_functions"].startswith("2.")
    assert seen["worker_library"]
    assert seen["functions"] == ["health", "openapi", "predict"]
    assert (seen["route"], seen["methods"]) == ("Predict", ["GET", "POST"])
    assert seen["is_http_func"] and not seen["is_async"]
    assert (seen["text_status"], seen["text_body"]) == (200, "Iris-virginica")
    assert seen["json_status"] == 200
    assert seen["json_body"]["PredictedLabel"] == "Iris-virginica"
    assert seen["json_body"]["Score"][2] > 0.99


COMPAT_PROBE = """
import json

import azure.functions as func

from servefn import _compat

app = func.FunctionApp()


def predict(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


builder = app.route()(predict)
request = func.HttpRequest("GET", "http://x/api/a", headers={"X-A": "1"}, body=b"")
print(json.dumps({
    "azure_functions": func.__version__,
    "headers_not_copied": _compat.header_dict(request.headers) is _compat.header_dict(
        request.headers
    ),
    "builders_read": hasattr(app, "_function_builders")
    and _compat.registered_functions(app) == [_compat.builder_function(builder)],
    "loop_hidden": _compat.HIDES_RUNNING_LOOP,
}))
"""


def test_the_private_attributes_servefn_reads_are_in_the_newer_worker_release(
    worker_python: Path,
) -> None:
    """servefn._compat's private paths against azure-functions 2.x on Python 3.13 (the main
    suite's tests/azure/test_compat.py checks the release installed here)."""
    done = subprocess.run(
        [str(worker_python), "-c", COMPAT_PROBE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "azure_functions": seen["azure_functions"],
        "headers_not_copied": True,
        "builders_read": True,
        "loop_hidden": True,
    }
    assert seen["azure_functions"].startswith("2.")
