"""Input drift at the endpoint: rows like the training data stay under the threshold, shifted
rows cross it; health, metrics and one warning line say so."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pytest

from servefn import add_health_routes, serve_http
from servefn.telemetry import configure, monitor
from servefn.telemetry.monitor import DriftMonitor
from servefn.telemetry.profile import build_profile
from servefn.telemetry.prometheus import render
from support.telemetry import Gauge, Level, gauge_model, records, shifted_rows, train_rows

WINDOW = 400


@pytest.fixture(scope="module")
def gauge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gauge_model(tmp_path_factory.mktemp("gauge") / "model.zip")


def _app(model: Path) -> tuple[Callable[..., Any], Callable[[], dict[str, Any]]]:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="level", methods=["POST"])
    @serve_http(Gauge, Level, model=str(model))
    def level(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    add_health_routes(app)
    functions = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}

    def health() -> dict[str, Any]:
        answer = functions["health"](func.HttpRequest("GET", "http://x/api/health", body=b""))
        return json.loads(answer.get_body())  # type: ignore[no-any-return]

    return functions["level"], health


def _post(function: Callable[..., Any], rows: list[dict[str, float]]) -> None:
    body = json.dumps(rows if len(rows) > 1 else rows[0]).encode()
    answer = function(
        func.HttpRequest(
            "POST", "http://x/api/level", headers={"content-type": "application/json"}, body=body
        )
    )
    assert answer.status_code == 200, answer.get_body()


def test_training_like_rows_stay_under_the_threshold_and_shifted_rows_cross_it(
    gauge: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SERVEFN_DRIFT_WINDOW", str(WINDOW))
    monkeypatch.setattr(monitor, "JUDGE_INTERVAL", 0.0)  # judged every half window of rows
    telemetry = configure()  # metrics only: no exporter, read here as Prometheus text
    function, health = _app(gauge)
    caplog.set_level(logging.WARNING, logger="servefn.telemetry")

    same = records(train_rows(600, seed=11))
    for row in same[:300]:  # one at a time: the one-row path
        _post(function, [row])
    _post(function, same[300:])  # and a batch
    drift = health()["drift"]
    assert drift["status"] == "ok" and drift["window"] == WINDOW and drift["rows"] == WINDOW
    assert drift["threshold"] == 0.2 and drift["training_rows"] == 2000
    assert set(drift["features"]) == {"Pressure", "Flow"}
    assert all(f["psi"] < 0.2 and f["out_of_range"] < 0.01 for f in drift["features"].values())
    assert not [r for r in caplog.records if "input drift" in r.getMessage()]

    moved = records(shifted_rows(WINDOW))
    for start in range(0, WINDOW, 50):
        _post(function, moved[start : start + 50])
    # the request that brought half a window of new rows judged it and warned: no health call
    assert [r for r in caplog.records if "input drift" in r.getMessage()]
    drift = health()["drift"]
    assert drift["status"] == "drift" and drift["rows"] == WINDOW
    assert all(f["psi"] > 0.2 for f in drift["features"].values())
    assert drift["features"]["Pressure"]["out_of_range"] > 0.0
    warnings = [r.getMessage() for r in caplog.records if "input drift" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one line, naming both features, no value
    assert "input drift in level (model " in warnings[0]
    assert "Pressure PSI" in warnings[0] and "Flow PSI" in warnings[0]
    assert f"{moved[0]['Pressure']:.4f}"[:6] not in warnings[0]

    for start in range(0, WINDOW, 50):  # still drifting: no second line
        _post(function, moved[start : start + 50])
    assert len([r for r in caplog.records if "input drift" in r.getMessage()]) == 1

    text = render(telemetry.metrics.snapshot()).decode()
    psi = {
        line.split('servefn_feature="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("servefn_drift_psi{")
    }
    assert set(psi) == {"Pressure", "Flow"} and min(psi.values()) > 0.2
    assert "servefn_drift_out_of_range_ratio{" in text
    assert 'servefn_drift_rows{servefn_function="level",servefn_model_version="' in text


def test_health_says_why_a_model_without_a_profile_is_not_watched(
    trained_model: Path, tmp_path: Path
) -> None:
    import zipfile

    from support.iris import FLOWER, IrisData, IrisPrediction

    with zipfile.ZipFile(trained_model) as archive:
        files = {info.filename: archive.read(info) for info in archive.infolist()}
    manifest = json.loads(files["servefn.json"])
    manifest.pop("profile", None)
    files["servefn.json"] = json.dumps(manifest).encode()
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(bare, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="Predict")
    @serve_http(IrisData, IrisPrediction, model=str(bare))
    def predict(model: Any, inputs: Any) -> Any:
        return model.predict(inputs)

    add_health_routes(app)
    functions = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
    body = json.dumps(FLOWER).encode()
    headers = {"content-type": "application/json"}
    functions["predict"](
        func.HttpRequest("POST", "http://x/api/Predict", headers=headers, body=body)
    )
    answer = functions["health"](func.HttpRequest("GET", "http://x/api/health", body=b""))
    drift = json.loads(answer.get_body())["drift"]
    assert drift["status"] == "off" and drift["reason"] == "the model has no training profile"


def test_drift_off_with_a_window_of_zero(gauge: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVEFN_DRIFT_WINDOW", "0")
    function, health = _app(gauge)
    _post(function, records(train_rows(3)))
    assert "drift" not in health()


class _Model:
    def __init__(self, manifest: dict[str, Any]) -> None:
        self.version = "abc123def456"
        self.manifest = manifest


def test_the_monitor_keeps_a_bounded_window_under_concurrent_requests() -> None:
    profile = build_profile(["a", "b"], [False, False], train_rows(1000))
    model = _Model({"profile": profile.spec()})
    monitor = DriftMonitor("f", ["a", "b"], [False, False], window=300, threshold=0.2)
    rows = train_rows(4000, seed=3)

    def send(part: np.ndarray) -> None:
        for i in range(0, len(part), 7):
            chunk = part[i : i + 7]
            if len(chunk) == 1:
                monitor.record(model, tuple(chunk[0]), None)
            else:
                monitor.record(model, None, chunk)

    threads = [threading.Thread(target=send, args=(rows[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    health = monitor.health()
    assert health is not None and health["window"] == 300
    assert 300 - 7 < health["rows"] <= 300 and health["status"] == "ok"


def test_categorical_drift_counts_listed_values_other_and_missing() -> None:
    rng = np.random.default_rng(5)
    colours = rng.choice(["red", "green", "blue"], size=1000, p=[0.6, 0.3, 0.1]).astype(object)
    profile = build_profile(["colour"], [True], colours.reshape(-1, 1))
    model = _Model({"profile": profile.spec()})
    monitor = DriftMonitor("f", ["colour"], [True], window=500, threshold=0.2)
    same = rng.choice(["red", "green", "blue"], size=500, p=[0.6, 0.3, 0.1]).astype(object)
    monitor.record(model, None, same.reshape(-1, 1))
    health = monitor.health()
    assert health is not None and health["status"] == "ok"
    assert health["features"]["colour"]["out_of_range"] == 0.0
    moved = np.array(["purple"] * 250 + ["red"] * 150 + [None] * 100, dtype=object)
    monitor.record(model, None, moved.reshape(-1, 1))
    health = monitor.health()
    assert health is not None and health["status"] == "drift"
    assert health["features"]["colour"]["out_of_range"] == 250 / 400
    assert health["features"]["colour"]["missing"] == 0.2


def test_the_gauges_of_an_endpoint_that_is_gone_stop(gauge: Path) -> None:
    import gc

    from servefn import load_model
    from servefn.http import Endpoint
    from support.standins import FixedModel

    telemetry = configure()
    endpoint = Endpoint(Gauge, Level, FixedModel(load_model(gauge)), name="gone")
    endpoint.handle(_json_request(records(train_rows(1))[0]))
    assert "servefn.model.age" in {s.name for s in telemetry.metrics.snapshot()}
    del endpoint
    gc.collect()
    assert "servefn.model.age" not in {s.name for s in telemetry.metrics.snapshot()}


def _json_request(body: Any) -> Any:
    from servefn.http import Request

    return Request("POST", json.dumps(body).encode(), {"content-type": "application/json"})
