"""``servefn serve REPOSITORY`` and ``servefn serve --auth keys``, end to end.

Real components: model archives written by servefn in a folder or under a blob prefix on
Azurite, the ``servefn`` console script in a subprocess on a free 127.0.0.1 port (its whole
output captured in a file), httpx as the client.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from servefn.cli._main import EXIT_FAILURE, EXIT_USAGE, main
from servefn.devhost._host import DevHost
from servefn.devhost._repoapp import is_repository_location
from support.azurite import Azurite
from support.iris import FLOWER, example_app
from support.problems import check_problem
from support.repositories import HOUSE, iris_model, price_model, put
from support.servehost import ServeProcess

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

KEYS = ("k3y-0ne-5ecret-a1b2", "k3y-tw0-5ecret-c3d4")
WRONG = "wr0ng-k3y-c4n4ry-e5f6"
ROUTE_VALUES = {"name": "iris", "version": "1", "model_name": "iris", "model_version": "1"}
INFER = {
    "inputs": [
        {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in FLOWER.items()
    ]
}


def stock(root: Path) -> Path:
    put(root, "iris/model.zip", iris_model("iris"))
    put(root, "iris/1/model.zip", iris_model("iris-1"))
    put(root, "house/model.zip", price_model(2.0))
    return root


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stock(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="module")
def served(repository: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(repository)
    server.wait()
    yield server
    server.stop()


def test_what_counts_as_a_repository(tmp_path: Path) -> None:
    assert is_repository_location(stock(tmp_path / "repo"))
    assert is_repository_location("blob://models/") and is_repository_location("blob://models")
    assert is_repository_location("az://models/prod/") and is_repository_location("s3://b/m/")
    assert not is_repository_location("blob://models/iris/model.zip")
    assert not is_repository_location("https://example.com/model")
    (tmp_path / "repo" / "function_app.py").write_text("")
    assert not is_repository_location(tmp_path / "repo")  # a function app wins
    assert not is_repository_location(tmp_path / "empty-folder-that-is-missing")


@pytest.mark.integration
def test_serve_a_repository_with_no_code(served: ServeProcess, repository: Path) -> None:
    with httpx.Client(base_url=served.base, timeout=10) as client:
        one = client.post("/models/iris", json=FLOWER)
        assert one.status_code == 200 and one.json()["PredictedLabel"] == "iris"
        assert client.post("/models/iris/versions/1", json=FLOWER).json()["PredictedLabel"] == (
            "iris-1"
        )
        by_get = client.get("/models/house", params={k: str(v) for k, v in HOUSE.items()})
        assert by_get.json() == {"Score": 203.0}
        csv = client.post("/models/house", content=b"100,3\n50,1\n", headers={
            "Content-Type": "text/csv"})  # fmt: skip
        assert csv.status_code == 200 and csv.json() == [{"Score": 203.0}, {"Score": 101.0}]
        text = client.post("/models/iris", json=FLOWER, headers={"Accept": "text/plain"})
        assert text.text == "iris" and "x-model-version" in text.headers
        check_problem(client.post("/models/nothing", json=FLOWER), 404)
        check_problem(client.post("/models/house", json=FLOWER), 422)
        infer = client.post("/v2/models/iris/infer", json=INFER)
        assert infer.status_code == 200, infer.text
        labels = next(o for o in infer.json()["outputs"] if o["name"] == "PredictedLabel")
        assert labels["data"] == ["iris"]
        health = client.get("/health").json()
    assert health["status"] == "ok" and health["repository"]["uri"] == str(repository)
    states = {m["name"]: m["state"] for m in health["models"]}
    assert states == {"house": "ready", "iris": "ready"}


@pytest.mark.integration
def test_startup_text_names_the_repository_and_says_keys_are_not_checked(
    served: ServeProcess, repository: Path
) -> None:
    output = served.output()
    assert f"Repository: {repository} (2 models: house, iris;" in output
    assert f"  models_predict: [GET,POST] http://127.0.0.1:{served.port}/api/models/{{name}}" in (
        output
    )
    auth = next(line for line in output.splitlines() if line.startswith("Auth: "))
    assert "does not check keys locally" in auth and "--auth keys" in auth


@pytest.mark.integration
def test_serve_a_blob_prefix(
    tmp_path: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    blob_container.upload_blob("prod/iris/model.zip", iris_model("iris"))
    blob_container.upload_blob("prod/house/model.zip", price_model(2.0))
    server = ServeProcess(
        f"blob://{blob_container.container_name}/prod/",
        args=("--connection", "ModelStorage", "--memory-budget", "8MiB"),
        env={"ModelStorage": azurite.connection_string},
    )
    try:
        server.wait()
        answer = httpx.post(f"{server.base}/models/iris", json=FLOWER, timeout=10)
        assert answer.json()["PredictedLabel"] == "iris"
        health = httpx.get(f"{server.base}/health", timeout=10).json()
        assert health["memory_budget"] == 8 * 1024**2
    finally:
        output = server.stop()
    assert f"Repository: blob://{blob_container.container_name}/prod/ (2 models" in output
    assert "AccountKey=" not in output and azurite.connection_string not in output


# -- --auth keys ---------------------------------------------------------------------------------


def keyed_routes(host: DevHost) -> list[tuple[str, str, str]]:
    """(auth level, method, concrete path) of every route ``host`` serves."""
    routes = []
    for function in host.functions:
        path = re.sub(r"\{(\w+)[^}]*\}", lambda m: ROUTE_VALUES[m.group(1)], function.route)
        method = "POST" if function.methods and "GET" not in function.methods else "GET"
        routes.append((function.auth_level, method, f"/{host.route_prefix}/{path}"))
    return routes


def assert_keys_enforced(server: ServeProcess, routes: list[tuple[str, str, str]]) -> None:
    base = server.base.removesuffix("/api")
    keyed = [(m, p) for level, m, p in routes if level != "ANONYMOUS"]
    assert keyed
    with httpx.Client(base_url=base, timeout=10) as client:
        for method, path in keyed:
            body = INFER if "/infer" in path else FLOWER
            problem = check_problem(client.request(method, path, json=body), 401)
            assert "x-functions-key" in problem["detail"]
            wrong = client.request(method, path, json=body, headers={"x-functions-key": WRONG})
            check_problem(wrong, 401, canaries=(WRONG,))
            coded = client.request(method, path, json=body, params={"code": WRONG})
            check_problem(coded, 401, canaries=(WRONG,))
            for given in ({"headers": {"x-functions-key": KEYS[0]}}, {"params": {"code": KEYS[0]}}):
                answer = client.request(method, path, json=body, **given)  # type: ignore[arg-type]
                assert answer.status_code != 401, (method, path, answer.text)
        for level, method, path in routes:
            if level == "ANONYMOUS":
                assert client.request(method, path).status_code != 401, path


@pytest.mark.integration
def test_auth_keys_on_a_repository_leaves_only_health_open(repository: Path) -> None:
    host = DevHost(repository)
    routes = keyed_routes(host)
    assert [p for level, _, p in routes if level == "ANONYMOUS"] == ["/api/health"]
    server = ServeProcess(
        repository,
        args=("--auth", "keys", "--log-level", "debug"),
        env={"SERVEFN_KEYS": ",".join(KEYS)},
    )
    try:
        server.wait()
        assert_keys_enforced(server, routes)
        assert httpx.get(f"{server.base}/health", timeout=10).status_code == 200
    finally:
        output = server.stop()
    assert "Auth: keys checked (--auth keys)" in output
    assert "-> 401: no key" in output and "-> 401: a key that is not valid here" in output
    for secret in (*KEYS, WRONG):
        assert secret not in output


@pytest.mark.integration
def test_auth_keys_on_a_function_app_keys_its_health_too(
    tmp_path: Path, trained_model: Path
) -> None:
    folder = example_app(tmp_path / "app", trained_model)
    routes = keyed_routes(DevHost(folder))
    assert {p for level, _, p in routes if level == "FUNCTION"} >= {"/api/Predict", "/api/health"}
    server = ServeProcess(
        folder,
        args=("--auth", "keys", "--log-level", "debug"),
        env={"SERVEFN_KEYS": ",".join(KEYS)},
    )
    try:
        server.wait()
        assert_keys_enforced(server, routes)
        check_problem(httpx.get(f"{server.base}/health", timeout=10), 401)
        headers = {"x-functions-key": KEYS[1]}
        predicted = httpx.post(f"{server.base}/Predict", json=FLOWER, headers=headers, timeout=10)
        assert predicted.json()["PredictedLabel"] == "Iris-virginica"
        keyed = httpx.get(f"{server.base}/health", params={"code": KEYS[1]}, timeout=10)
        assert keyed.status_code == 200 and keyed.json()["status"] == "ok", keyed.text
    finally:
        output = server.stop()
    for secret in (*KEYS, WRONG):
        assert secret not in output


def test_auth_keys_without_keys_refuses_to_start(
    repository: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVEFN_KEYS", raising=False)
    assert main(["serve", str(repository), "--port", "0", "--auth", "keys"]) == EXIT_FAILURE
    error = capsys.readouterr().err
    assert "--auth keys needs the app setting SERVEFN_KEYS" in error


@pytest.mark.integration
def test_auth_keys_on_a_model_keys_its_prediction_routes(trained_model: Path) -> None:
    routes = keyed_routes(DevHost(trained_model))
    open_routes = {p for level, _, p in routes if level == "ANONYMOUS"}
    assert {"/api/health", "/api/openapi.json"} <= open_routes
    assert "/api/Predict" not in open_routes
    server = ServeProcess(
        trained_model, args=("--auth", "keys"), env={"SERVEFN_KEYS": ",".join(KEYS)}
    )
    try:
        server.wait()
        assert_keys_enforced(server, [r for r in routes if "/docs" not in r[2]])
        keyed = httpx.post(f"{server.base}/Predict", json=FLOWER, params={"code": KEYS[0]})
        assert keyed.json()["PredictedLabel"] == "Iris-virginica"
    finally:
        output = server.stop()
    for secret in (*KEYS, WRONG):
        assert secret not in output


APP_WITH_MODELS = """
import azure.functions as func

from servefn import serve_models

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
serve_models(app, repository="models", max_models=1)
"""


def test_a_function_app_serves_its_repository_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "app"
    stock(folder / "models")
    (folder / "function_app.py").write_text(APP_WITH_MODELS)
    monkeypatch.chdir(tmp_path)  # not the app's folder
    host = DevHost(folder)
    assert [f.name for f in host.functions] == ["models_predict", "models_version_predict", (
        "models_health")]  # fmt: skip

    async def exchange() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=host.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test/api") as client:
            return [
                await client.post("/models/iris", json=FLOWER),
                await client.get("/models/house", params={"Area": "1", "Rooms": "1"}),
                await client.get("/health"),
            ]

    iris, house, health = asyncio.run(exchange())
    assert iris.json()["PredictedLabel"] == "iris" and house.json() == {"Score": 3.0}
    assert health.json()["repository"]["uri"] == str(folder / "models")
    assert health.json()["evictions"] == 1  # max_models=1


def test_a_wrong_memory_budget_is_a_usage_error(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", str(repository), "--port", "0", "--memory-budget", "lots"])
    assert code == EXIT_USAGE
    assert "memory_budget='lots' is not a size" in capsys.readouterr().err
