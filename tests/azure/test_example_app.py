"""The iris example end to end: trained by its train.py, served by ``servefn serve`` over HTTP.

Real components only: the example's own files in a temporary app folder, the ``servefn``
console entry point in a subprocess on a free 127.0.0.1 port, httpx as the client, and Azurite
for the Blob Storage variant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from support.azurite import Azurite
from support.iris import FLOWER, SETOSA, example_app, import_file
from support.problems import check_problem
from support.servehost import ServeProcess

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


@pytest.fixture(scope="module")
def host(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    app = example_app(tmp_path_factory.mktemp("app") / "iris", trained_model)
    server = ServeProcess(app)
    server.wait()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(host: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.base, timeout=10) as c:
        yield c


@pytest.mark.integration
def test_walkthrough_answer_as_plain_text(client: httpx.Client) -> None:
    response = client.post("/Predict", json=FLOWER, headers={"Accept": "text/plain"})
    assert response.status_code == 200
    assert response.text == "Iris-virginica"
    assert len(response.headers["x-model-version"]) == 12


@pytest.mark.integration
def test_json_get_arrays_instances_and_csv(client: httpx.Client, trained_model: Path) -> None:
    from servefn import load_model

    one = client.post("/Predict", json=FLOWER).json()
    assert one["PredictedLabel"] == "Iris-virginica" and one["Score"][2] > 0.99
    by_get = client.get("/predict", params={k: str(v) for k, v in FLOWER.items()})  # any case
    assert by_get.json() == one
    many = client.post("/Predict", json=[FLOWER, SETOSA]).json()
    assert [m["PredictedLabel"] for m in many] == ["Iris-virginica", "Iris-setosa"]
    assert client.post("/Predict", json={"instances": [FLOWER, SETOSA]}).json() == {
        "predictions": many
    }
    csv = client.post(
        "/Predict",
        content="3.3,1.6,0.2,5.1\n5.1,3.5,1.4,0.2,Iris-setosa\n",
        headers={"Content-Type": "text/csv"},
    )
    assert csv.json() == many
    expected = load_model(trained_model)
    assert one["Score"] == pytest.approx(
        expected.predict([FLOWER])[0].score,  # type: ignore[attr-defined]
        abs=1e-12,
    )
    assert client.post("/Predict", json=FLOWER).headers["x-model-version"] == expected.version


@pytest.mark.integration
def test_every_client_error_is_problem_json(client: httpx.Client) -> None:
    json_headers = {"Content-Type": "application/json"}
    check_problem(client.post("/Predict", content=b"{not json", headers=json_headers), 400)
    check_problem(client.put("/Predict", json=FLOWER), 405)
    too_big = client.post(
        "/Predict", content=b"[" + b" " * (10 * 1024 * 1024) + b"]", headers=json_headers
    )
    check_problem(too_big, 413)
    check_problem(
        client.post("/Predict", content=b"<a/>", headers={"Content-Type": "text/xml"}), 415
    )
    invalid = check_problem(client.post("/Predict", json={**FLOWER, "SepalLength": "tall"}), 422)
    assert invalid["errors"][0]["loc"] == ["SepalLength"] and "tall" not in json.dumps(invalid)
    check_problem(client.get("/NoSuchRoute"), 404)


@pytest.mark.integration
def test_health_and_openapi(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["state"] == "ready"
    assert health["model"]["uri"].endswith("model.zip")
    spec = client.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0" and "/api/Predict" in spec["paths"]
    assert spec["components"]["schemas"]["IrisData"]["required"] == [
        "SepalLength",
        "SepalWidth",
        "PetalLength",
        "PetalWidth",
    ]


@pytest.mark.integration
def test_no_model_yet_is_503_with_retry_after(tmp_path: Path) -> None:
    server = ServeProcess(example_app(tmp_path / "empty", model=None))
    try:
        server.wait()
        response = httpx.post(f"{server.base}/Predict", json=FLOWER, timeout=10)
        check_problem(response, 503)
        assert int(response.headers["retry-after"]) >= 1
        health = httpx.get(f"{server.base}/health", timeout=10)
        assert health.status_code == 503 and health.json()["model"]["last_error"]
    finally:
        server.stop()


def test_function_app_indexes_as_the_worker_expects(trained_model: Path, tmp_path: Path) -> None:
    app_dir = example_app(tmp_path / "indexed", trained_model)
    module = import_file(app_dir / "function_app.py", "iris_function_app_indexed")
    functions = {f.get_function_name(): f for f in module.app.get_functions()}
    bindings = [json.loads(b) for b in functions["predict"].get_raw_bindings()]
    trigger = next(b for b in bindings if b["type"] == "httpTrigger")
    assert trigger["name"] == "req" and trigger["route"] == "Predict"
    assert sorted(trigger["methods"]) == ["GET", "POST"] and trigger["authLevel"] == "FUNCTION"
    assert {"direction": "OUT", "type": "http", "name": "$return"} in bindings


@pytest.mark.integration
def test_serving_the_blob_through_azurite(
    trained_model: Path, tmp_path: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    blob_container.upload_blob("model.zip", trained_model.read_bytes())
    settings = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": azurite.connection_string,
        "MODEL_URI": f"blob://{blob_container.container_name}/model.zip",
    }
    server = ServeProcess(example_app(tmp_path / "blob", model=None, settings=settings))
    try:
        server.wait()
        answer = httpx.post(
            f"{server.base}/Predict", json=FLOWER, headers={"Accept": "text/plain"}, timeout=10
        )
        assert answer.text == "Iris-virginica"
        health = httpx.get(f"{server.base}/health", timeout=10).json()
        assert health["model"]["uri"].startswith("blob://") or "127.0.0.1" in health["model"]["uri"]
        with azurite.stopped():  # storage down after warm-up: still answered
            again = httpx.post(f"{server.base}/Predict", json=SETOSA, timeout=10)
            assert again.json()["PredictedLabel"] == "Iris-setosa"
    finally:
        output = server.stop()
    assert "AccountKey" not in output and azurite.connection_string not in output
