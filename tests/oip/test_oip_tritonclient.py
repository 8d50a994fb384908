"""tritonclient's HTTP client against ``servefn serve``: a function app, ``servefn serve MODEL``
and ``servefn serve REPOSITORY``.

Real components: ``servefn serve`` in a subprocess on a free 127.0.0.1 port, serving (1) a
function app with two ``serve_http`` functions (the iris classifier and a scikit-learn
``LinearRegression``) and ``add_inference_routes(app)``, (2, 3) each model.zip with no code, and
(4) a repository folder holding both (``NAME/model.zip``);
``tritonclient.http.InferenceServerClient`` with its defaults (binary tensor data) and with
``binary_data=False``. Its answers must equal servefn's own JSON endpoint's.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from servefn import load_model
from support.iris import EXAMPLE, FLOWER, SETOSA
from support.oip import HOUSES, save_regressor
from support.servehost import ServeProcess

http = pytest.importorskip("tritonclient.http")
utils = pytest.importorskip("tritonclient.utils")
pytestmark = pytest.mark.integration

APP = """
import azure.functions as func

from servefn import (
    LoadedModel, Records, Schema, add_health_routes, add_inference_routes, column, serve_http,
)
from schema import IrisData, IrisPrediction


class House(Schema):
    rooms: float = column(0, name="Rooms")
    age: float = column(1, name="Age")
    distance: float = column(2, name="Distance")


class Estimate(Schema):
    score: float = column(name="Score")


app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="Predict", methods=["GET", "POST"])
@serve_http(IrisData, IrisPrediction, model="model.zip")
def iris(model: LoadedModel, inputs: Records):
    return model.predict(inputs)


@app.route(route="Estimate", methods=["POST"])
@serve_http(House, Estimate, model="houses.zip")
def houses(model: LoadedModel, inputs: Records):
    return model.predict(inputs)


add_inference_routes(app)
add_health_routes(app)
"""
FLOWERS = {name: [FLOWER[name], SETOSA[name], 6.0] for name in FLOWER}


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_regressor(tmp_path_factory.mktemp("houses") / "houses.zip")


@pytest.fixture(scope="module")
def servers(
    trained_model: Path, regressor: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServeProcess]]:
    folder = tmp_path_factory.mktemp("oip-app")
    shutil.copy(EXAMPLE / "schema.py", folder / "schema.py")
    shutil.copy(trained_model, folder / "model.zip")
    shutil.copy(regressor, folder / "houses.zip")
    (folder / "function_app.py").write_text(APP)
    repository = tmp_path_factory.mktemp("oip-repository")
    for name, source in (("iris", trained_model), ("houses", regressor)):
        (repository / name).mkdir()
        shutil.copy(source, repository / name / "model.zip")
    started = {
        "app": ServeProcess(folder, args=("--log-level", "warning")),
        "iris.zip": ServeProcess(trained_model, args=("--log-level", "warning")),
        "houses.zip": ServeProcess(regressor, args=("--log-level", "warning")),
        "repository": ServeProcess(repository, args=("--log-level", "warning")),
    }
    try:
        for server in started.values():
            server.wait()
        yield started
    finally:
        for server in started.values():
            server.stop()


# (server, OIP model name, servefn's own JSON route, the rows sent)
TARGETS = [
    ("app", "iris", "Predict", FLOWERS),
    ("app", "houses", "Estimate", HOUSES),
    ("iris.zip", "predict", "Predict", FLOWERS),
    ("houses.zip", "predict", "Predict", HOUSES),
    ("repository", "iris", "models/iris", FLOWERS),
    ("repository", "houses", "models/houses", HOUSES),
]


def client_for(server: ServeProcess) -> Any:
    return http.InferenceServerClient(url=f"127.0.0.1:{server.port}/api")


def own_answer(server: ServeProcess, route: str, columns: dict[str, list[float]]) -> list[Any]:
    rows = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    response = httpx.post(f"{server.base}/{route}", json={"instances": rows}, timeout=10)
    assert response.status_code == 200, response.text
    predictions: list[Any] = response.json()["predictions"]
    return predictions


def inputs_for(
    metadata: dict[str, Any], columns: dict[str, list[float]], binary: bool
) -> list[Any]:
    inputs = []
    for tensor in metadata["inputs"]:
        values = np.array(columns[tensor["name"]], dtype=np.float64)
        item = http.InferInput(tensor["name"], list(values.shape), tensor["datatype"])
        item.set_data_from_numpy(values, binary_data=binary)
        inputs.append(item)
    return inputs


@pytest.mark.parametrize(
    ("where", "model", "route", "columns"), TARGETS, ids=[f"{t[0]}:{t[1]}" for t in TARGETS]
)
def test_tritonclient_live_ready_metadata_and_infer(
    servers: dict[str, ServeProcess],
    where: str,
    model: str,
    route: str,
    columns: dict[str, list[float]],
) -> None:
    server = servers[where]
    client = client_for(server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    metadata = client.get_model_metadata(model)
    assert metadata["name"] == model and metadata["platform"] == "servefn"
    assert [t["name"] for t in metadata["inputs"]] == list(columns)
    assert client.is_model_ready(model)
    version = metadata["versions"][0]
    assert client.get_model_metadata(model, model_version=version) == metadata
    assert client.is_model_ready(model, model_version=version)
    own = own_answer(server, route, columns)
    for binary in (True, False):
        inputs = inputs_for(metadata, columns, binary)
        if binary:  # tritonclient's defaults: binary inputs, every output in binary
            result = client.infer(model, inputs)
        else:
            outputs = [
                http.InferRequestedOutput(t["name"], binary_data=False) for t in metadata["outputs"]
            ]
            result = client.infer(model, inputs, outputs=outputs, model_version=version)
        response = result.get_response()
        assert response["model_name"] == model and response["model_version"] == version
        in_binary = ["parameters" in o for o in response["outputs"]]
        assert in_binary == [binary] * len(metadata["outputs"])
        for tensor in metadata["outputs"]:
            name = tensor["name"]
            values = result.as_numpy(name)
            expected = np.array([row[name] for row in own])
            if tensor["datatype"] == "BYTES":
                texts = [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
                assert texts == expected.tolist()  # bytes in binary form, str in JSON
            else:
                np.testing.assert_array_equal(values, expected)


def test_tritonclient_sees_the_protocols_errors(servers: dict[str, ServeProcess]) -> None:
    client = client_for(servers["app"])
    values = np.array([1.0])
    item = http.InferInput("Rooms", [1], "FP64")
    item.set_data_from_numpy(values)
    with pytest.raises(utils.InferenceServerException) as unknown:
        client.infer("nobody", [item])
    assert unknown.value.status() == "404" and "iris" in unknown.value.message()
    with pytest.raises(utils.InferenceServerException) as missing:
        client.infer("houses", [item])
    assert missing.value.status() == "400" and "is missing" in missing.value.message()
    assert not client.is_model_ready("nobody")
    text = http.InferInput("Rooms", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"three"], dtype=object))
    age, distance = (http.InferInput(n, [1], "FP64") for n in ("Age", "Distance"))
    age.set_data_from_numpy(values)
    distance.set_data_from_numpy(values)
    with pytest.raises(utils.InferenceServerException) as wrong:
        client.infer("houses", [text, age, distance])
    assert wrong.value.status() == "400" and "Rooms is BYTES" in wrong.value.message()


def test_a_model_served_with_no_code_is_named_predict(
    servers: dict[str, ServeProcess], trained_model: Path
) -> None:
    client = client_for(servers["iris.zip"])
    assert client.get_model_metadata("predict")["versions"] == [load_model(trained_model).version]
    document = httpx.get(f"{servers['iris.zip'].base}/openapi.json", timeout=10).json()
    assert "/api/v2/models/{model_name}/infer" in document["paths"]
