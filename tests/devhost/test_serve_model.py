"""``servefn serve MODEL``: a model served with no user code, end to end through the console script.

Real components: the iris model trained by the example's train.py, the ``servefn`` console
script in a subprocess on a free 127.0.0.1 port, httpx as the client, Azurite for blob:// and
az:// (adlfs) models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from servefn import load_model
from servefn.cli._main import EXIT_FAILURE, EXIT_USAGE, main
from support.azurite import Azurite
from support.iris import EXAMPLE, FLOWER, SETOSA
from support.problems import check_problem
from support.servehost import ServeProcess

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


@pytest.fixture(scope="module")
def served(trained_model: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(trained_model, args=("--log-level", "warning"))
    server.wait()
    yield server
    server.stop()


@pytest.mark.integration
def test_predict_answers_like_the_walkthrough(served: ServeProcess, trained_model: Path) -> None:
    with httpx.Client(base_url=served.base, timeout=10) as client:
        text = client.post("/Predict", json=FLOWER, headers={"Accept": "text/plain"})
        assert text.status_code == 200 and text.text == "Iris-virginica"
        one = client.post("/Predict", json=FLOWER).json()
        assert one["PredictedLabel"] == "Iris-virginica" and len(one["Score"]) == 3
        by_get = client.get("/predict", params={k: str(v) for k, v in FLOWER.items()})
        assert by_get.json() == one
        many = client.post("/Predict", json={"instances": [FLOWER, SETOSA]}).json()
        labels = [p["PredictedLabel"] for p in many["predictions"]]
        assert labels == ["Iris-virginica", "Iris-setosa"]
        version = text.headers["x-model-version"]
    assert version == load_model(trained_model).version


@pytest.mark.integration
def test_the_manifest_schema_validates_requests(served: ServeProcess) -> None:
    with httpx.Client(base_url=served.base, timeout=10) as client:
        typo = check_problem(client.post("/Predict", json={**FLOWER, "SepalLenght": 1.0}), 422)
        assert ["SepalLenght"] in [e["loc"] for e in typo["errors"]]
        wrong = check_problem(client.post("/Predict", json={**FLOWER, "PetalWidth": "wide"}), 422)
        assert wrong["errors"][0]["loc"] == ["PetalWidth"] and "wide" not in json.dumps(wrong)
        check_problem(client.put("/Predict", json=FLOWER), 405)
        check_problem(client.get("/nothing"), 404)


@pytest.mark.integration
def test_health_openapi_and_docs_are_served(served: ServeProcess, trained_model: Path) -> None:
    with httpx.Client(base_url=served.base, timeout=10) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["model"]["uri"] == str(trained_model)
        spec = client.get("/openapi.json").json()
        docs = client.get("/docs")
    assert spec["openapi"] == "3.1.0" and "/api/Predict" in spec["paths"]
    assert {p for p in spec["paths"] if not p.startswith("/api/v2")} == {"/api/Predict"}
    assert "/api/v2/models/{model_name}/infer" in spec["paths"]  # the Open Inference Protocol
    assert set(spec["paths"]["/api/Predict"]) == {"get", "post"} and "security" not in spec
    assert spec["components"]["schemas"]["IrisData"]["required"] == list(FLOWER)
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")


@pytest.mark.integration
def test_startup_text_names_the_model_routes_and_docs(trained_model: Path) -> None:
    server = ServeProcess(trained_model)
    try:
        server.wait()
    finally:
        output = server.stop()
    assert f"Model: {trained_model}" in output
    assert f"  predict: [GET,POST] http://127.0.0.1:{server.port}/api/Predict" in output
    assert f"Docs: http://127.0.0.1:{server.port}/api/docs" in output
    assert "Traceback" not in output


@pytest.mark.integration
def test_models_in_blob_storage_are_served_through_a_connection(
    trained_model: Path,
    tmp_path: Path,
    azurite: Azurite,
    blob_container: ContainerClient,
) -> None:
    blob_container.upload_blob("iris/model.zip", trained_model.read_bytes())
    name = blob_container.container_name
    settings = {"Values": {"AzureWebJobsStorage": azurite.connection_string}}
    (tmp_path / "local.settings.json").write_text(json.dumps(settings))
    servers = [
        # the connection from local.settings.json in the current folder, like func does
        ServeProcess(f"blob://{name}/iris/model.zip", cwd=tmp_path),
        # adlfs, with the connection named explicitly and read from the environment
        ServeProcess(
            f"az://{name}/iris/model.zip",
            args=("--connection", "ModelStorage"),
            env={"ModelStorage": azurite.connection_string},
        ),
    ]
    try:
        for server in servers:
            server.wait()
            answer = httpx.post(
                f"{server.base}/Predict", json=FLOWER, headers={"Accept": "text/plain"}, timeout=10
            )
            assert answer.text == "Iris-virginica"
            health = httpx.get(f"{server.base}/health", timeout=10).json()
            assert health["model"]["state"] == "ready"
    finally:
        outputs = [server.stop() for server in servers]
    for output in outputs:
        assert f"/{name}/iris/model.zip" in output
        assert "AccountKey=" not in output and azurite.connection_string not in output


@pytest.mark.integration
def test_a_model_that_cannot_load_stops_the_host_with_exit_1(
    tmp_path: Path,
    azurite: Azurite,
    blob_container: ContainerClient,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    missing = f"blob://{blob_container.container_name}/none.zip"
    assert main(["serve", missing, "--port", "0"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("servefn serve: error: cannot load the model: ")
    assert "none.zip' in container" in err and "does not exist" in err
    assert err.count("\n") == 1 and "AccountKey" not in err
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    assert main(["serve", str(broken), "--port", "0"]) == EXIT_FAILURE
    assert "not a model archive" in capsys.readouterr().err


def test_path_and_option_mistakes_exit_2(
    trained_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path / "missing.zip")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "missing.zip does not exist" in err and "a model.zip or a model URL" in err
    assert main(["serve", str(trained_model), "--connection", "AzureWebJobsStorage"]) == EXIT_USAGE
    assert "--connection applies to blob://, az://" in capsys.readouterr().err
    assert main(["serve", str(EXAMPLE), "--connection", "AzureWebJobsStorage"]) == EXIT_USAGE
    assert "a function app names its connection in its code" in capsys.readouterr().err
