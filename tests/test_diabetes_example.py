"""examples/diabetes end to end: train a copy in tmp, check its manifest, serve it over HTTP with
``servefn serve``, and through the Functions app in a fresh process that imports no training
library (scikit-learn, SciPy, pandas, skops, XGBoost, LightGBM) to answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from servefn import load_model, read_manifest
from support import ROOT
from support.iris import import_file
from support.problems import check_problem
from support.servehost import ServeProcess

pytestmark = pytest.mark.integration
pytest.importorskip("sklearn")

EXAMPLE = ROOT / "examples" / "diabetes"
PATIENT = {"age": 50, "sex": 2, "bmi": 32.1, "bp": 101.0, "s1": 157, "s5": 4.86}


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example (without its model.zip) with a model.zip trained there."""
    folder = tmp_path_factory.mktemp("diabetes") / "diabetes"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("model.zip", "__pycache__"))
    module = import_file(folder / "train.py", "diabetes_train_copy")
    module.train(folder / "model.zip")
    return folder


@pytest.fixture(scope="module")
def served(diabetes: Path) -> Iterator[ServeProcess]:
    host = ServeProcess(diabetes, env={"MODEL_URI": str(diabetes / "model.zip")}, cwd=diabetes)
    try:
        host.wait()
        yield host
    finally:
        host.stop()


def test_the_trained_copy_is_a_checked_tree_ensemble(diabetes: Path) -> None:
    manifest = read_manifest(diabetes / "model.zip")
    assert manifest["kind"] == "tree-ensemble"
    assert manifest["predictor"]["engine"] == "numpy" and manifest["predictor"]["n_trees"] == 300
    parity = manifest["training"]["parity"]
    assert parity["rows"] > 100 and parity["max_score_difference"] <= 1e-9
    assert parity["split_thresholds"]["max_score_difference"] <= 1e-9
    columns = {c["field"]: c for c in manifest["input"]["columns"]}
    assert columns["s1"]["nullable"] and not columns["bmi"]["nullable"]


def test_post_get_and_the_model_agree_with_scikit_learn(
    served: ServeProcess, diabetes: Path
) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import train_test_split

    posted = httpx.post(f"{served.base}/Progression", json=PATIENT, timeout=10)
    got = httpx.get(f"{served.base}/Progression", params=PATIENT, timeout=10)
    assert posted.status_code == got.status_code == 200, posted.text
    assert posted.json() == got.json()
    X, y = load_diabetes(return_X_y=True, scaled=False)  # refit as train.py does
    X_train, _, y_train, _ = train_test_split(X, y, test_size=0.25, random_state=0)
    model = HistGradientBoostingRegressor(
        max_iter=300, learning_rate=0.02, max_leaf_nodes=4, min_samples_leaf=30,
        categorical_features=[1], random_state=0,
    ).fit(X_train, y_train)  # fmt: skip
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    row = np.array([[PATIENT.get(n, np.nan) for n in names]], dtype=float)
    assert posted.json()["Score"] == pytest.approx(model.predict(row)[0], abs=1e-9)
    served_copy = load_model(diabetes / "model.zip").predict([PATIENT]).to_dicts()[0]
    assert served_copy["Score"] == posted.json()["Score"]


def test_a_sex_out_of_bounds_is_a_422_naming_the_field(served: ServeProcess) -> None:
    response = httpx.post(f"{served.base}/Progression", json={**PATIENT, "sex": 3}, timeout=10)
    document = check_problem(response, 422)
    assert [e["loc"][-1] for e in document["errors"]] == ["sex"], document


def test_the_functions_app_serves_without_any_training_library(diabetes: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import azure.functions as func
        import function_app
        functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
        handler = functions["progression"].get_user_function()
        body = json.dumps({"age": 61, "sex": 1, "bmi": 25.0, "bp": 90.0}).encode()
        request = func.HttpRequest(
            "POST", "http://localhost/api/Progression",
            headers={"Content-Type": "application/json"}, body=body,
        )
        response = handler(request)
        assert response.status_code == 200, response.get_body()
        libraries = ("sklearn", "scipy", "pandas", "skops", "xgboost", "lightgbm", "onnxruntime")
        heavy = sorted(m for m in libraries if m in sys.modules)
        print(json.dumps({"score": json.loads(response.get_body())["Score"], "heavy": heavy}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_URI", "AzureWebJobsStorage")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=diabetes,
        env={**env, "PYTHONPATH": "."},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and 25 <= result["score"] <= 346, result
