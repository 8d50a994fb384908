"""examples/penguins end to end: train a copy in tmp, check its manifest, serve it over HTTP.

The model is trained once per session (``train(model_path)`` of the copied ``train.py``); the
copy is served by ``servefn serve`` in a subprocess (stopped by its pid) and imported by a fresh
``python -c`` process that must not import scikit-learn, SciPy or pandas to answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servefn import read_manifest
from support import ROOT
from support.iris import import_file
from support.problems import check_problem
from support.servehost import ServeProcess

pytestmark = pytest.mark.integration
pytest.importorskip("sklearn")
pytest.importorskip("pandas")

EXAMPLE = ROOT / "examples" / "penguins"
SPECIES = {"Adelie", "Chinstrap", "Gentoo"}
PENGUIN = {"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0, "sex": "male"}
CSV_BODY = ",Dream,46.5,17.9,,,female,2008\n,Torgersen,39.1,18.7,181,3750,,2007"


@pytest.fixture(scope="session")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example (without its model.zip) with a model.zip trained there."""
    folder = tmp_path_factory.mktemp("penguins") / "penguins"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("model.zip", "__pycache__"))
    module = import_file(folder / "train.py", "penguins_train_copy")
    assert folder / "model.zip" == module.MODEL
    module.train(folder / "model.zip")
    assert (folder / "model.zip").is_file()
    return folder


@pytest.fixture(scope="module")
def served(penguins: Path) -> Iterator[ServeProcess]:
    host = ServeProcess(penguins, env={"MODEL_URI": str(penguins / "model.zip")}, cwd=penguins)
    try:
        host.wait()
        yield host
    finally:
        host.stop()


def test_manifest_of_the_trained_copy(penguins: Path) -> None:
    manifest = read_manifest(penguins / "model.zip")
    assert manifest["kind"] == "transformed"
    parity = manifest["training"]["parity"]
    assert parity["rows"] > 0 and parity["max_score_difference"] <= 1e-6, parity
    columns = {c["field"]: c for c in manifest["input"]["columns"]}
    assert columns["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert columns["sex"]["categories"] == ["female", "male"]
    assert columns["sex"]["nullable"] and columns["bill_length_mm"]["nullable"]


def test_post_of_the_readme_penguin(served: ServeProcess) -> None:
    response = httpx.post(f"{served.base}/Species", json=PENGUIN, timeout=10)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["PredictedLabel"] in SPECIES
    assert len(answer["Score"]) == 3 and abs(sum(answer["Score"]) - 1) < 1e-6


def test_get_with_empty_values(served: ServeProcess) -> None:
    params = {"island": "Dream", "bill_length_mm": "", "sex": ""}
    response = httpx.get(f"{served.base}/Species", params=params, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["PredictedLabel"] in SPECIES


def test_csv_body_from_the_readme(served: ServeProcess) -> None:
    response = httpx.post(
        f"{served.base}/Species",
        content=CSV_BODY.encode(),
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    rows = response.json()
    assert len(rows) == 2 and all(r["PredictedLabel"] in SPECIES for r in rows)


def test_unknown_island_lists_the_allowed_islands(served: ServeProcess) -> None:
    response = httpx.post(
        f"{served.base}/Species", json={**PENGUIN, "island": "Anvers"}, timeout=10
    )
    document = check_problem(response, 422, canaries=("Anvers",))
    text = json.dumps(document)
    for island in ("Biscoe", "Dream", "Torgersen"):
        assert island in text, document
    assert any(e["loc"][-1] == "island" for e in document["errors"]), document


def test_unknown_sex_lists_the_learned_vocabulary(served: ServeProcess) -> None:
    response = httpx.post(
        f"{served.base}/Species", json={**PENGUIN, "sex": "c4n4ry-sex"}, timeout=10
    )
    document = check_problem(response, 422, canaries=("c4n4ry-sex",))
    assert "'female', 'male'" in json.dumps(document), document


def test_serving_imports_neither_sklearn_scipy_nor_pandas(penguins: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import azure.functions as func
        import function_app
        functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
        species = functions["species"].get_user_function()
        body = json.dumps({"island": "Dream", "bill_length_mm": 40.0, "sex": None}).encode()
        request = func.HttpRequest(
            "POST", "http://localhost/api/Species",
            headers={"Content-Type": "application/json"}, body=body,
        )
        response = species(request)
        assert response.status_code == 200, response.get_body()
        heavy = sorted(m for m in ("sklearn", "scipy", "pandas") if m in sys.modules)
        label = json.loads(response.get_body())["PredictedLabel"]
        print(json.dumps({"label": label, "heavy": heavy}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=penguins,
        env={**_clean_env(), "MODEL_URI": str(penguins / "model.zip")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["label"] in SPECIES, result


def _clean_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_URI", "AzureWebJobsStorage")}
    env["PYTHONPATH"] = "."
    return env
