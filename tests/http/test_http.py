"""The HTTP contract through serve_http, with real azure.functions request/response objects."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pydantic
import pytest

from servefn import Schema, column, load_model
from servefn.azure import add_health_routes, endpoint_of, serve_http
from servefn.http import Request
from servefn.loaders import Fetched, MemoryLoader, ModelSource
from servefn.model._archive import LoadedModel, write_model
from servefn.predictors.base import Outputs
from servefn.predictors.linear import LinearClassifier
from support.iris import CLASSES, FLOWER, SETOSA, IrisData, IrisPrediction
from support.problems import check_problem
from support.standins import FixedModel, StatelessPredictor

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear model whose class is decided by PetalWidth: small -> setosa, large -> virginica."""
    weights = np.zeros((4, 3))
    weights[3] = [-4.0, 0.0, 4.0]
    path = tmp_path_factory.mktemp("model") / "model.zip"
    write_model(
        path,
        LinearClassifier(weights, np.array([4.0, 0.0, -4.0]), CLASSES),
        input=IrisData,
        output=IrisPrediction,
    )
    return path


def make_handler(model_path: Path | MemoryLoader, **options: Any) -> Any:
    model = model_path if isinstance(model_path, MemoryLoader) else str(model_path)

    @serve_http(IrisData, IrisPrediction, model=model, **options)
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    return predict


def call(
    handler: Any,
    method: str = "POST",
    body: bytes | str | dict[str, Any] | list[Any] = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> func.HttpResponse:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    request = func.HttpRequest(
        method,
        "http://localhost/api/Predict",
        headers=headers or {},
        params=params or {},
        body=body,
    )
    response: func.HttpResponse = handler(request)
    return response


def test_single_object_answers_one_object_with_model_version(model_path: Path) -> None:
    handler = make_handler(model_path)
    response = call(handler, body=FLOWER, headers=JSON_HEADERS)
    assert response.status_code == 200 and response.mimetype == "application/json"
    answer = json.loads(response.get_body())
    assert answer["PredictedLabel"] == "Iris-virginica"
    assert len(answer["Score"]) == 3 and abs(sum(answer["Score"]) - 1) < 1e-9
    assert response.headers["X-Model-Version"] == load_model(model_path).version


def test_arrays_instances_csv_and_query_agree(model_path: Path) -> None:
    handler = make_handler(model_path)
    array = json.loads(call(handler, body=[FLOWER, SETOSA], headers=JSON_HEADERS).get_body())
    wrapped = json.loads(
        call(handler, body={"instances": [FLOWER, SETOSA]}, headers=JSON_HEADERS).get_body()
    )
    csv = call(
        handler,
        body="SL,SW,PL,PW,Label\n3.3,1.6,0.2,5.1\n5.1,3.5,1.4,0.2,Iris-setosa\n",
        headers={"Content-Type": "text/csv; header=present"},
    )
    query = call(handler, "GET", params={**{k: str(v) for k, v in FLOWER.items()}, "code": "key"})
    assert [a["PredictedLabel"] for a in array] == ["Iris-virginica", "Iris-setosa"]
    assert wrapped == {"predictions": array}
    assert json.loads(csv.get_body()) == array
    assert json.loads(query.get_body()) == array[0]


def test_accept_text_plain_returns_the_bare_label(model_path: Path) -> None:
    handler = make_handler(model_path)
    one = call(handler, body=FLOWER, headers={**JSON_HEADERS, "Accept": "text/plain"})
    assert (one.status_code, one.mimetype, one.get_body()) == (200, "text/plain", b"Iris-virginica")
    many = call(handler, body=[FLOWER, SETOSA], headers={**JSON_HEADERS, "accept": "text/plain"})
    assert many.get_body() == b"Iris-virginica\nIris-setosa"
    prefers_json = call(
        handler,
        body=FLOWER,
        headers={**JSON_HEADERS, "Accept": "application/json, text/plain;q=0.5"},
    )
    assert prefers_json.mimetype == "application/json"


@pytest.mark.parametrize(
    ("method", "body", "headers", "status", "needle"),
    [
        ("POST", b"{bad", JSON_HEADERS, 400, "not valid JSON"),
        ("POST", b"\xff\xfe", JSON_HEADERS, 400, "not valid JSON"),
        ("POST", b'{"SepalLength": NaN}', JSON_HEADERS, 422, "did not validate"),
        ("POST", b"[]", JSON_HEADERS, 422, "empty"),
        ("POST", b'"text"', JSON_HEADERS, 422, "JSON string"),
        ("POST", json.dumps(FLOWER).encode(), {}, 415, "Content-Type header is missing"),
        (
            "POST",
            json.dumps(FLOWER).encode(),
            {"Content-Type": "text/xml"},
            415,
            "application/json",
        ),
        ("PUT", json.dumps(FLOWER).encode(), JSON_HEADERS, 405, "PUT is not supported"),
        ("DELETE", b"", {}, 405, "DELETE is not supported"),
        ("POST", b"1,2,3\n", {"Content-Type": "text/csv"}, 422, "CSV body"),
        ("POST", b"1,x,3,4\n", {"Content-Type": "text/csv"}, 422, "CSV body"),
    ],
)
def test_bad_requests_get_precise_problems_without_echo(
    model_path: Path, method: str, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    response = call(make_handler(model_path), method, body=body, headers=headers)
    assert response.status_code == status
    doc = check_problem(response)
    assert needle in doc["detail"]
    if status == 405:
        assert response.headers["Allow"] == "GET, POST"


def test_validation_errors_have_field_paths_and_never_echo_values(model_path: Path) -> None:
    secret = "s3cr3t-value-that-must-not-be-echoed"
    handler = make_handler(model_path)
    bodies = [
        ({**FLOWER, "SepalLength": secret}, ["SepalLength"], "float_type"),
        ([FLOWER, {**FLOWER, "Extra": secret}], [1, "Extra"], "extra_forbidden"),
        (
            {"instances": [FLOWER, FLOWER, {**FLOWER, "PetalWidth": None}]},
            ["instances", 2, "PetalWidth"],
            None,
        ),
        ({k: v for k, v in FLOWER.items() if k != "SepalWidth"}, ["SepalWidth"], "missing"),
    ]
    for body, loc, error_type in bodies:
        response = call(handler, body=body, headers=JSON_HEADERS)
        assert response.status_code == 422
        doc = check_problem(response)
        assert secret not in response.get_body().decode()
        assert doc["errors"][0]["loc"] == loc
        assert error_type is None or doc["errors"][0]["type"] == error_type
    bad_query = call(
        handler, "GET", params={**{k: str(v) for k, v in FLOWER.items()}, "PetalWidth": secret}
    )
    assert bad_query.status_code == 422
    assert check_problem(bad_query)["errors"][0]["loc"] == ["query", "PetalWidth"]
    assert secret not in bad_query.get_body().decode()


def test_body_and_batch_limits_answer_413(model_path: Path) -> None:
    handler = make_handler(model_path, max_body_bytes=1000, max_batch=3)
    big = call(handler, body=[FLOWER] * 20, headers=JSON_HEADERS)
    assert big.status_code == 413 and "limit is 1000" in check_problem(big)["detail"]
    declared = call(handler, body=FLOWER, headers={**JSON_HEADERS, "Content-Length": "99999"})
    assert declared.status_code == 413
    batch = call(handler, body=[FLOWER] * 4, headers=JSON_HEADERS)
    assert batch.status_code == 413 and "limit is 3" in check_problem(batch)["detail"]
    csv = call(handler, body="3,1,2,5\n" * 4, headers={"Content-Type": "text/csv"})
    assert csv.status_code == 413


def test_missing_model_answers_503_with_retry_after(tmp_path: Path) -> None:
    handler = make_handler(tmp_path / "nowhere.zip")
    response = call(handler, body=FLOWER, headers=JSON_HEADERS)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert "nowhere" not in check_problem(response)["detail"]


def test_a_failing_handler_is_a_500_whose_id_is_logged(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @serve_http(IrisData, IrisPrediction, model=str(model_path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        raise RuntimeError("internal detail: database password=hunter2")

    with caplog.at_level(logging.ERROR, logger="servefn.http"):
        response = call(predict, body=FLOWER, headers=JSON_HEADERS)
    assert response.status_code == 500
    doc = check_problem(response)
    assert "hunter2" not in response.get_body().decode()
    assert doc["error_id"] in caplog.text and "RuntimeError" in caplog.text


def handler_returning(model_path: Path, value: Any) -> Any:
    """A serve_http function whose handler returns ``value(model, inputs)``."""

    @serve_http(IrisData, IrisPrediction, model=str(model_path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return value(model, inputs)

    return predict


def test_handler_outputs_may_be_dicts_records_or_arrays(model_path: Path) -> None:
    def returning(value: Any) -> Any:
        return handler_returning(model_path, value)

    variants = [
        lambda m, i: [{"PredictedLabel": "x", "Score": [1.0]} for _ in i],
        lambda m, i: [IrisPrediction(predicted_label="x", score=[1.0]) for _ in i],
        lambda m, i: {"PredictedLabel": np.array(["x"] * len(i)), "Score": np.ones((len(i), 1))},
    ]
    for variant in variants:
        response = call(returning(variant), body=[FLOWER, FLOWER], headers=JSON_HEADERS)
        assert json.loads(response.get_body()) == [{"PredictedLabel": "x", "Score": [1.0]}] * 2
    one = {"PredictedLabel": "x", "Score": [0.25, 0.75]}  # one record, not arrays
    for value in (one, IrisPrediction.model_validate(one)):
        response = call(returning(lambda m, i, v=value: v), body=FLOWER, headers=JSON_HEADERS)
        assert json.loads(response.get_body()) == one
    broken = call(returning(lambda m, i: [{"Wrong": 1}]), body=FLOWER, headers=JSON_HEADERS)
    assert broken.status_code == 500


class NonFinite(StatelessPredictor):
    """Answers NaN scores for rows whose PetalWidth is negative, finite ones otherwise."""

    kind = "test-non-finite"

    def predict(self, X: Any) -> Outputs:
        scores = np.where(X[:, 3:4] < 0, np.nan, 0.5) * np.ones((len(X), 2))
        return {"PredictedLabel": np.array(["a"] * len(X)), "Score": scores}


@pytest.mark.parametrize("custom_handler", [False, True], ids=["built_in", "handler"])
@pytest.mark.parametrize("rows", [1, 3])
def test_non_finite_model_outputs_are_a_500_never_invalid_json(
    custom_handler: bool, rows: int
) -> None:
    model = LoadedModel(NonFinite(), IrisData, IrisPrediction, {}, "0" * 64, 0)
    if custom_handler:

        @serve_http(IrisData, IrisPrediction, model=model)
        def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
            return model.predict(inputs)  # Predictions straight from the model

    else:
        predict = serve_http(IrisData, IrisPrediction, model=model)(NonFinite())
    good = [FLOWER] * rows
    bad = [*good[:-1], {**FLOWER, "PetalWidth": -1.0}]
    body: Any = good[0] if rows == 1 else good
    assert json.loads(call(predict, body=body, headers=JSON_HEADERS).get_body())
    body = bad[0] if rows == 1 else bad
    response = call(predict, body=body, headers=JSON_HEADERS)
    assert response.status_code == 500
    assert b"NaN" not in response.get_body()


def test_duplicate_keys_are_refused_wherever_they_are_and_colons_in_text_are_not(
    model_path: Path,
) -> None:
    """Keys are counted against the fields they set; a doubt is settled by a strict parse."""
    handler = make_handler(model_path)
    flower = json.dumps({**FLOWER, "Label": "a: b"})  # a colon inside a string value
    duplicate = flower[:-1] + ', "PetalWidth": 0.1}'
    accepted = [flower, f"[{flower}, {flower}]", f'{{"instances": [{flower}]}}']
    for body in accepted:
        response = call(handler, body=body, headers=JSON_HEADERS)
        assert response.status_code == 200, (body, response.get_body())
    refused = [
        duplicate,
        f"[{flower}, {duplicate}]",
        f'{{"instances": [{duplicate}]}}',
        duplicate.replace("5.1", '"not a number"'),  # 400 for the JSON before 422 for a field
        '{"SepalLength": 1, "sepal_length": 2, "SepalWidth": 1, "PetalLength": 1, '
        '"PetalWidth": 1, "PetalWidth": 1}',  # a field by alias and by name, then a repeat
    ]
    for body in refused:
        response = call(handler, body=body, headers=JSON_HEADERS)
        assert response.status_code == 400, (body, response.get_body())
        assert "duplicate key" in check_problem(response)["detail"]


def test_one_row_matches_the_same_row_in_a_batch(model_path: Path) -> None:
    """One row is predicted in plain Python floats, many rows with numpy: the same answers."""
    handler = make_handler(model_path)
    rng = np.random.default_rng(3)
    flowers = [dict(zip(FLOWER, rng.uniform(-2, 8, 4).tolist(), strict=True)) for _ in range(30)]
    batch = json.loads(call(handler, body=flowers, headers=JSON_HEADERS).get_body())
    for flower, expected in zip(flowers, batch, strict=True):
        one = json.loads(call(handler, body=flower, headers=JSON_HEADERS).get_body())
        assert one["PredictedLabel"] == expected["PredictedLabel"]
        assert one["Score"] == pytest.approx(expected["Score"], rel=1e-12, abs=1e-15)


class HangingLoader(MemoryLoader):
    """Storage that hangs on every check after the first until ``gate`` opens."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.gate, self.entered, self.done = threading.Event(), threading.Event(), threading.Event()

    def fetch(self, etag: str | None = None) -> Fetched | None:
        if self.fetches:
            self.entered.set()
            assert self.gate.wait(30)
        try:
            return super().fetch(etag)
        finally:
            if self.entered.is_set():
                self.done.set()


def test_serve_http_checks_for_new_models_without_making_requests_wait(model_path: Path) -> None:
    loader = HangingLoader(model_path.read_bytes())
    handler = make_handler(loader, refresh_after=0)  # a check is due on every request
    assert call(handler, body=FLOWER, headers=JSON_HEADERS).status_code == 200  # the first load
    answers = [call(handler, body=FLOWER, headers=JSON_HEADERS).status_code for _ in range(20)]
    assert answers == [200] * 20
    assert loader.entered.wait(30) and not loader.done.is_set()  # the check still hangs
    assert loader.fetches == 1  # one check under way, no pile-up behind it
    loader.gate.set()
    assert loader.done.wait(30)


def test_wrapper_is_indexable_by_the_functions_worker(model_path: Path) -> None:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="Predict", methods=["GET", "POST"])
    @serve_http(IrisData, IrisPrediction, model=str(model_path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    add_health_routes(app)
    functions = {f.get_function_name(): f for f in app.get_functions()}
    assert set(functions) == {"predict", "health", "openapi"}
    trigger = json.loads(functions["predict"].get_raw_bindings()[0])
    assert trigger == {
        "direction": "IN",
        "type": "httpTrigger",
        "name": "req",
        "methods": ["GET", "POST"],
        "authLevel": "FUNCTION",
        "route": "Predict",
    }
    user = functions["predict"].get_user_function()
    import inspect

    # the trigger, and the invocation context the worker passes to a function declaring it
    # (its trace context parents the invocation's span); a direct call may leave it out
    parameters = inspect.signature(user).parameters
    assert list(parameters) == ["req", "context"]
    assert parameters["context"].annotation is func.Context
    assert parameters["context"].default is None
    assert call(user, body=FLOWER, headers=JSON_HEADERS).status_code == 200
    health = functions["health"].get_user_function()(
        func.HttpRequest("GET", "http://x/api/health", body=b"")
    )
    info = json.loads(health.get_body())
    assert health.status_code == 200 and info["model"]["state"] == "ready"
    assert info["model"]["version"] == load_model(model_path).version
    spec = json.loads(
        functions["openapi"]
        .get_user_function()(func.HttpRequest("GET", "http://x/api/openapi.json", body=b""))
        .get_body()
    )
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]["/api/Predict"]) == {"get", "post"}
    assert spec["components"]["schemas"]["IrisData"]["additionalProperties"] is False
    assert endpoint_of(functions["predict"].get_user_function()).name == "predict"


def test_health_is_503_before_a_model_could_be_loaded(tmp_path: Path) -> None:
    handler = make_handler(tmp_path / "missing.zip")
    call(handler, body=FLOWER, headers=JSON_HEADERS)
    health = endpoint_of(handler).health()
    doc = json.loads(health.body)
    assert health.status == 503 and doc["model"]["state"] == "unavailable"
    assert doc["model"]["last_error"]


class Doubler(StatelessPredictor):
    """A user predictor: the class is decided by whether PetalWidth > 1."""

    kind = "test-doubler"
    dtype = np.float32
    outputs = ("PredictedLabel", "Score")

    def predict(self, X: np.ndarray) -> Outputs:
        wide = X[:, 3] > 1
        return {"PredictedLabel": np.where(wide, "wide", "narrow"), "Score": X[:, 3:4] * 2}


class AsyncDoubler(Doubler):
    async def predict(self, X: np.ndarray) -> Outputs:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().predict(X)


def test_predictor_classes_and_instances_serve_directly() -> None:
    by_class = serve_http(IrisData, IrisPrediction)(Doubler)
    by_instance = serve_http(IrisData, IrisPrediction)(Doubler())
    assert by_class.__name__ == "doubler"
    for handler in (by_class, by_instance):
        answer = json.loads(call(handler, body=FLOWER, headers=JSON_HEADERS).get_body())
        assert answer == {"PredictedLabel": "wide", "Score": [pytest.approx(10.2)]}


def test_async_predictors_make_async_functions() -> None:
    import inspect

    handler = serve_http(IrisData, IrisPrediction)(AsyncDoubler)
    assert inspect.iscoroutinefunction(handler) and handler.__name__ == "async_doubler"
    request = func.HttpRequest(
        "POST", "http://x/api/Predict", headers=JSON_HEADERS, body=json.dumps(SETOSA).encode()
    )
    answer = json.loads(asyncio.run(handler(request)).get_body())
    assert answer["PredictedLabel"] == "narrow"


def test_async_handlers_make_async_functions(model_path: Path) -> None:
    @serve_http(IrisData, IrisPrediction, model=str(model_path))
    async def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        await asyncio.sleep(0)
        return model.predict(inputs)

    import inspect

    assert inspect.iscoroutinefunction(predict)
    request = func.HttpRequest(
        "POST", "http://x/api/Predict", headers=JSON_HEADERS, body=json.dumps(FLOWER).encode()
    )
    response = asyncio.run(predict(request))
    assert json.loads(response.get_body())["PredictedLabel"] == "Iris-virginica"


def test_sklearn_models_need_their_types_trusted_by_the_endpoint(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    import servefn

    X = np.array([[5.1, 3.5, 1.4, 0.2], [6.4, 3.1, 5.5, 2.2], [5.0, 3.4, 1.5, 0.2]] * 5)
    y = ["Iris-setosa", "Iris-virginica", "Iris-setosa"] * 5
    path = tmp_path / "tree.zip"
    servefn.save(
        DecisionTreeClassifier(random_state=0).fit(X, y),
        path,
        input=IrisData,
        output=IrisPrediction,
        kind="sklearn",  # skops, whose tree type must be trusted
    )

    refused = make_handler(path)
    response = call(refused, body=FLOWER, headers=JSON_HEADERS)
    assert response.status_code == 500  # permanent: retrying cannot help, so no 503
    assert "sklearn.tree._tree.Tree" in check_problem(response, 500)["detail"]
    health = json.loads(endpoint_of(refused).health().body)
    assert "sklearn.tree._tree.Tree" in health["model"]["last_error"]

    trusting = make_handler(path, trusted=["sklearn.tree._tree.Tree"])
    answer = json.loads(call(trusting, body=SETOSA, headers=JSON_HEADERS).get_body())
    assert answer["PredictedLabel"] == "Iris-setosa"


def test_large_batches_pause_the_collector_and_restore_it(model_path: Path) -> None:
    import gc

    seen: list[bool] = []

    @serve_http(IrisData, IrisPrediction, model=str(model_path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        seen.append(gc.isenabled())
        return model.predict(inputs)

    assert gc.isenabled()
    call(predict, body=[FLOWER] * 2000, headers=JSON_HEADERS)  # over 64 KB
    call(predict, body=FLOWER, headers=JSON_HEADERS)
    assert seen == [False, True] and gc.isenabled()
    gc.disable()
    try:
        call(predict, body=[FLOWER] * 2000, headers=JSON_HEADERS)
        assert not gc.isenabled()  # an app that turned it off keeps it off
    finally:
        gc.enable()


def test_sync_and_async_handlers_answer_alike_and_both_pause_the_collector(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """handle and handle_async share one guarded path: the same answers, headers and problems
    (500 ids aside, each in the log), and the collector paused for large bodies in both."""
    import gc

    seen: dict[str, list[bool]] = {"sync": [], "async": []}
    limits = {"max_body_bytes": 300_000, "max_batch": 2500}

    def answer(kind: str, model: LoadedModel, inputs: list[Schema]) -> Any:
        seen[kind].append(gc.isenabled())
        if getattr(inputs[0], "petal_width", None) == 99:
            raise RuntimeError("internal detail: password=hunter2")
        return model.predict(inputs)

    @serve_http(IrisData, IrisPrediction, model=str(model_path), **limits)
    def sync_predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return answer("sync", model, inputs)

    @serve_http(IrisData, IrisPrediction, model=str(model_path), **limits)
    async def async_predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        await asyncio.sleep(0)
        return answer("async", model, inputs)

    text = {**JSON_HEADERS, "Accept": "text/plain"}
    requests: list[tuple[str, Any, dict[str, str], dict[str, str]]] = [
        ("POST", FLOWER, JSON_HEADERS, {}),
        ("POST", [FLOWER, SETOSA], JSON_HEADERS, {}),
        ("POST", {"instances": [SETOSA]}, JSON_HEADERS, {}),
        ("POST", [FLOWER] * 2000, JSON_HEADERS, {}),  # over 64 KB: the collector is paused
        ("POST", FLOWER, text, {}),
        ("POST", "3.3,1.6,0.2,5.1\n", {"Content-Type": "text/csv"}, {}),
        (
            "GET",
            b"",
            {},
            {"SepalLength": "5.1", "SepalWidth": "3.5", "PetalLength": "1.4", "PetalWidth": "0.2"},
        ),
        ("POST", '{"SepalLength": 3.3', JSON_HEADERS, {}),  # 400
        ("POST", '{"SepalLength": 1, "SepalLength": 2}', JSON_HEADERS, {}),  # 400
        ("POST", {**FLOWER, "SepalLength": "wide"}, JSON_HEADERS, {}),  # 422
        ("POST", [FLOWER] * 3000, JSON_HEADERS, {}),  # 413: batch
        ("POST", [FLOWER] * 4000, JSON_HEADERS, {}),  # 413: body
        ("POST", FLOWER, {**JSON_HEADERS, "Content-Length": "999999"}, {}),  # 413: declared
        ("POST", FLOWER, {"Content-Type": "text/xml"}, {}),  # 415
        ("PUT", FLOWER, JSON_HEADERS, {}),  # 405
        ("POST", {**FLOWER, "PetalWidth": 99}, JSON_HEADERS, {}),  # 500
        ("POST", [{**FLOWER, "PetalWidth": 99}] * 2000, JSON_HEADERS, {}),  # 500, paused
    ]

    def outcome(response: func.HttpResponse) -> tuple[Any, ...]:
        body: Any = response.get_body()
        if response.status_code == 500:
            body = check_problem(response)
            error_id = body.pop("error_id")
            assert error_id in body.pop("detail") and error_id in caplog.text
            assert "hunter2" not in response.get_body().decode()
        return response.status_code, response.mimetype, dict(response.headers), body

    with caplog.at_level(logging.ERROR, logger="servefn.http"):
        for method, body, headers, params in requests:
            seen["sync"].clear()
            seen["async"].clear()
            synced = call(sync_predict, method, body, headers, params)
            request = func.HttpRequest(
                method,
                "http://localhost/api/Predict",
                headers=headers,
                params=params,
                body=call_body(body),
            )
            awaited = asyncio.run(async_predict(request))
            assert outcome(synced) == outcome(awaited), (method, headers, str(body)[:80])
            assert seen["sync"] == seen["async"], (method, headers, str(body)[:80])
            assert gc.isenabled()
    statuses = [call(sync_predict, m, b, h, p).status_code for m, b, h, p in requests]
    assert statuses == [200] * 7 + [400, 400, 422, 413, 413, 413, 415, 405, 500, 500]
    seen["sync"].clear()
    seen["async"].clear()
    call(sync_predict, body=[FLOWER] * 2000, headers=JSON_HEADERS)
    asyncio.run(async_predict(json_request([FLOWER] * 2000)))
    call(sync_predict, body=FLOWER, headers=JSON_HEADERS)
    asyncio.run(async_predict(json_request(FLOWER)))
    assert seen == {"sync": [False, True], "async": [False, True]}


def call_body(body: Any) -> bytes:
    """A request body as :func:`call` encodes it."""
    text = json.dumps(body) if isinstance(body, (dict, list)) else body
    return text.encode() if isinstance(text, str) else text


def json_request(body: Any) -> func.HttpRequest:
    return func.HttpRequest(
        "POST", "http://localhost/api/Predict", headers=JSON_HEADERS, body=call_body(body)
    )


def test_constructing_an_endpoint_leaves_the_garbage_collector_alone(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building an endpoint is no process-wide act: freezing is a host's choice."""
    import gc

    from servefn.http import Endpoint, _collector

    monkeypatch.setattr(_collector, "_frozen", False)  # as in a fresh process
    touched: list[str] = []
    for name in ("collect", "freeze", "unfreeze", "disable", "enable", "set_threshold"):
        monkeypatch.setattr(gc, name, lambda *args, _name=name: touched.append(_name))
    before = (gc.isenabled(), gc.get_threshold())
    frozen = gc.get_freeze_count()
    endpoint = Endpoint(IrisData, IrisPrediction, FixedModel(load_model(model_path)))
    request = Request("POST", json.dumps(FLOWER).encode(), {"content-type": "application/json"})
    assert endpoint.handle(request).status == 200
    assert touched == []
    assert (gc.isenabled(), gc.get_threshold()) == before
    # nothing was frozen; the count may drop when an object frozen earlier in the run dies
    assert gc.get_freeze_count() <= frozen


def test_serve_http_freezes_startup_objects_once_before_its_model_loads(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first serve_http is the Functions worker's startup: it freezes what is alive then,
    before the model loads (warm=True here), and never when it is handed a loaded model."""
    import gc

    from servefn.http import _collector

    calls: list[str] = []
    monkeypatch.setattr(_collector, "_frozen", False)  # as in a fresh process
    monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect") or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))

    class Recording(MemoryLoader):
        def fetch(self, etag: str | None = None) -> Fetched | None:
            calls.append("load")
            return super().fetch(etag)

    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    serve_http(IrisData, IrisPrediction, model=load_model(model_path))(predict)
    assert calls == []  # a model in memory already: freezing it would keep it for good
    for _ in range(2):
        loader = Recording(model_path.read_bytes())
        serve_http(IrisData, IrisPrediction, model=ModelSource(loader), warm=True)(predict)
    assert calls == ["freeze", "load", "load"]  # no collect: it costs cold start


class Mixed(Schema):
    """Features of every scalar kind, one of them optional."""

    a: float = column(0, name="a")
    n: int = column(1, name="n")
    b: float | None = column(2, name="b", default=None)


class Nothing(Schema):
    """No feature at all: a handler works from the label alone."""

    tag: str | None = column(0, name="tag", role="label", default=None)


class Counted(Schema):
    rows: float = column(name="rows")


class CountRows(StatelessPredictor):
    """Answers, for every row, the number of rows in the batch (features are not used)."""

    kind = "test-count-rows"

    def predict(self, X: Any) -> Outputs:
        return {"rows": np.full(len(X), float(len(X)))}


def test_one_row_and_a_batch_of_one_get_the_same_answer_for_every_feature_kind() -> None:
    """The one-row shortcut (plain floats) must not change any answer: ints, a missing
    optional value, an int beyond any float, and a schema without features."""
    built_in = serve_http(Mixed, Counted)(CountRows())
    model = LoadedModel(CountRows(), Nothing, Counted, {}, "0" * 64, 0)

    @serve_http(Nothing, Counted, model=model)
    def no_features(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    cases: list[tuple[Any, dict[str, Any], int]] = [
        (built_in, {"a": 1.5, "n": 2, "b": 0.5}, 200),
        (built_in, {"a": 1.5, "n": 2}, 422),  # b is missing: NaN is refused, one row or many
        (built_in, {"a": 1.5, "n": 2, "b": None}, 422),
        (built_in, {"a": 1.5, "n": 10**400, "b": 0.5}, 422),  # out of the float32 range
        (no_features, {"tag": "x"}, 200),
    ]
    for handler, record, status in cases:
        one = call(handler, body=json.dumps(record), headers=JSON_HEADERS)
        many = call(handler, body=json.dumps([record]), headers=JSON_HEADERS)
        assert (one.status_code, many.status_code) == (status, status), record
        if status == 200:
            assert [json.loads(one.get_body())] == json.loads(many.get_body())
        else:
            assert (
                check_problem(one)["errors"][0]["loc"][-1]
                == check_problem(many)["errors"][0]["loc"][-1]
            )


def test_handler_outputs_are_counted_and_extra_keys_ignored(model_path: Path) -> None:
    def returning(value: Any) -> Any:
        return handler_returning(model_path, value)

    with_metadata = returning(lambda m, i: {**m.predict(i).arrays, "n_rows": len(i)})
    response = call(with_metadata, body=[FLOWER, SETOSA], headers=JSON_HEADERS)
    assert [r["PredictedLabel"] for r in json.loads(response.get_body())] == [
        "Iris-virginica",
        "Iris-setosa",
    ]
    one_for_three = returning(lambda m, i: {"PredictedLabel": "x", "Score": [1.0]})
    assert call(one_for_three, body=[FLOWER] * 3, headers=JSON_HEADERS).status_code == 500


def test_instances_may_be_spelled_with_escapes_and_validators_get_strict_key_checks(
    model_path: Path,
) -> None:
    handler = make_handler(model_path)
    body = '{"\\u0069nstances": [' + json.dumps(FLOWER) + "]}"
    response = call(handler, body=body, headers=JSON_HEADERS)
    assert response.status_code == 200
    assert json.loads(response.get_body())["predictions"][0]["PredictedLabel"] == "Iris-virginica"

    class Derived(Schema):
        """b may be filled from a by a validator: a key count proves nothing here."""

        a: float = column(0, name="a")
        b: float = column(1, name="b")

        @pydantic.model_validator(mode="before")
        @classmethod
        def fill_b(cls, data: Any) -> Any:
            return {"b": data.get("a"), **data} if isinstance(data, dict) else data

    derived = serve_http(Derived, Counted)(CountRows())
    assert call(derived, body='{"a": 1}', headers=JSON_HEADERS).status_code == 200
    duplicate = call(derived, body='{"a": 1, "a": 2}', headers=JSON_HEADERS)
    assert duplicate.status_code == 400
    assert "duplicate key" in check_problem(duplicate)["detail"]
