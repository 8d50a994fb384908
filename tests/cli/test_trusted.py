"""Models that need trusted types, where users work: ``--trusted`` and ``SERVEFN_TRUSTED``.

A RandomForest and a HistGradientBoosting classifier saved through ``servefn.save`` (the skops
form) hold types skops does not trust by default. ``servefn serve`` (a real subprocess),
``predict`` and ``check`` refuse them with a message naming the option and the app setting, and
serve them given either; ``inspect`` lists the types and ``openapi`` needs none of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

import servefn
from servefn import Schema, column
from servefn.cli._main import EXIT_FAILURE, EXIT_OK, main
from servefn.devhost._modelapp import ModelApp
from support.servehost import ServeProcess

TREE = "sklearn.tree._tree.Tree"
HIST_TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
NAMES = ["F0", "F1", "F2", "F3"]


class Features(Schema):
    f0: float = column(0, name="F0")
    f1: float = column(1, name="F1")
    f2: float = column(2, name="F2")
    f3: float = column(3, name="F3")


class Prediction(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


MODELS = {
    "random-forest": (lambda: RandomForestClassifier(n_estimators=5, random_state=0), [TREE]),
    "hist-gradient-boosting": (
        lambda: HistGradientBoostingClassifier(max_iter=5, random_state=0),
        [HIST_TREE],
    ),
}

APP = textwrap.dedent(
    """
    import azure.functions as func

    from servefn import Schema, column, serve_http

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


    class Features(Schema):
        f0: float = column(0, name="F0")
        f1: float = column(1, name="F1")
        f2: float = column(2, name="F2")
        f3: float = column(3, name="F3")


    class Prediction(Schema):
        predicted_label: str = column(name="PredictedLabel")
        score: list[float] = column(name="Score")


    @app.route(route="Predict", methods=["POST"])
    @serve_http(Features, Prediction, model="model.zip")
    def predict(model, inputs):
        return model.predict(inputs)
    """
)
HOST_JSON = '{"version": "2.0"}'


class Saved:
    def __init__(self, path: Path, estimator: Any, types: list[str]) -> None:
        self.path, self.estimator, self.types = path, estimator, types


def _data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=120, n_features=4, n_informative=3, n_redundant=1, n_classes=3, random_state=0
    )
    return X.astype(np.float32).astype(np.float64), np.array(["ant", "bee", "cat"])[y]


@pytest.fixture(scope="module", params=sorted(MODELS))
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Saved:
    make, types = MODELS[request.param]
    X, y = _data()
    estimator = make().fit(X, y)
    path = tmp_path_factory.mktemp(request.param) / "model.zip"
    servefn.save(estimator, path, input=Features, output=Prediction, kind="sklearn")
    return Saved(path, estimator, types)


@pytest.fixture(autouse=True)
def _no_trust_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVEFN_TRUSTED", raising=False)


def assert_names_the_way_to_trust(message: str, types: list[str]) -> None:
    """The error names the CLI option and the app setting, with the types to pass."""
    for name in types:
        assert f"--trusted {name}" in message, message
    assert f"SERVEFN_TRUSTED={','.join(types)}" in message, message


def _record(X: np.ndarray, i: int) -> dict[str, float]:
    return dict(zip(NAMES, X[i].tolist(), strict=True))


# -- inspect and openapi: the manifest alone -----------------------------------------------------


def test_inspect_lists_the_types_to_trust(saved: Saved, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(saved.path)]) == EXIT_OK
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.strip().startswith("trusted types"))
    assert all(name in line for name in saved.types)
    assert "--trusted TYPE" in line and "SERVEFN_TRUSTED" in line
    assert main(["inspect", "--json", str(saved.path)]) == EXIT_OK
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["predictor"]["untrusted_types"] == saved.types


def test_openapi_needs_no_trusted_types(saved: Saved, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi", str(saved.path)]) == EXIT_OK
    printed = capsys.readouterr()
    document = json.loads(printed.out)
    assert {p for p in document["paths"] if not p.startswith("/api/v2")} == {"/api/Predict"}
    assert printed.err == ""
    served = ModelApp.load(saved.path, trusted=saved.types).openapi()  # what serve answers
    assert document == json.loads(served)


def test_inspect_of_a_linear_model_lists_no_types(
    trained_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(trained_model)]) == EXIT_OK
    assert "trusted types" not in capsys.readouterr().out


# -- predict -------------------------------------------------------------------------------------


def test_predict_needs_the_types_named_by_option_or_setting(
    saved: Saved,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    X, _ = _data()
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(_record(X, i)) + "\n" for i in range(10)))
    command = ["predict", str(saved.path), "-i", str(rows), "--output-format", "jsonl"]
    expected = saved.estimator.predict(X[:10]).tolist()

    assert main(command) == EXIT_FAILURE
    refused = capsys.readouterr()
    assert refused.out == "" and len(refused.err.splitlines()) == 1
    assert_names_the_way_to_trust(refused.err, saved.types)

    trusted = [arg for name in saved.types for arg in ("--trusted", name)]
    assert main([*command, *trusted]) == EXIT_OK
    out = capsys.readouterr().out
    assert [json.loads(line)["PredictedLabel"] for line in out.splitlines()] == expected

    monkeypatch.setenv("SERVEFN_TRUSTED", ",".join(saved.types))
    assert main(command) == EXIT_OK
    assert capsys.readouterr().out == out


# -- serve (no code) -----------------------------------------------------------------------------


@pytest.mark.integration
def test_serve_refuses_then_serves_with_the_option_or_setting(saved: Saved) -> None:
    refused = ServeProcess(saved.path, args=("--log-level", "warning"))
    try:
        refused.process.wait(timeout=60)
    finally:
        output = refused.stop()
    assert refused.process.returncode == EXIT_FAILURE
    assert_names_the_way_to_trust(output, saved.types)

    X, _ = _data()
    expected = saved.estimator.predict(X[:3]).tolist()
    trusted = tuple(arg for name in saved.types for arg in ("--trusted", name))
    for server in (
        ServeProcess(saved.path, args=("--log-level", "warning", *trusted)),
        ServeProcess(
            saved.path,
            args=("--log-level", "warning"),
            env={"SERVEFN_TRUSTED": ",".join(saved.types)},
        ),
    ):
        try:
            server.wait()
            instances = [_record(X, i) for i in range(3)]
            answer = httpx.post(
                f"{server.base}/Predict", json={"instances": instances}, timeout=10
            ).json()
        finally:
            server.stop()
        assert [p["PredictedLabel"] for p in answer["predictions"]] == expected


# -- check ---------------------------------------------------------------------------------------


def _app(folder: Path, model: Path, requirements: str, settings: dict[str, str] | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "function_app.py").write_text(APP)
    (folder / "host.json").write_text(HOST_JSON)
    (folder / "requirements.txt").write_text(requirements)
    (folder / ".funcignore").write_text("local.settings.json\n")
    (folder / "model.zip").write_bytes(model.read_bytes())
    if settings is not None:
        document = {"IsEncrypted": False, "Values": settings}
        (folder / "local.settings.json").write_text(json.dumps(document))
    return folder


def check(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``servefn check APP [args]`` in a fresh process (it imports the app)."""
    script = Path(sys.executable).with_name("servefn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "servefn"]
    environment = {k: v for k, v in os.environ.items() if k != "SERVEFN_TRUSTED"}
    return subprocess.run(
        [*command, "check", str(app), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.mark.integration
def test_check_needs_the_types_named_by_option_or_setting(saved: Saved, tmp_path: Path) -> None:
    requirements = "azure-functions\nservefn[sklearn]\n"
    app = _app(tmp_path / "app", saved.path, requirements, None)
    refused = check(app)
    assert refused.returncode == EXIT_FAILURE, refused.stdout
    failures = [line for line in refused.stdout.splitlines() if line.startswith("fail: ")]
    assert len(failures) == 1, refused.stdout
    assert_names_the_way_to_trust(failures[0], saved.types)
    # the kind is known from the manifest even though the model did not load
    assert "ok: predict: requirements.txt lists servefn[sklearn] for its sklearn model" in (
        refused.stdout.splitlines()
    )

    trusted = [arg for name in saved.types for arg in ("--trusted", name)]
    passed = check(app, *trusted)
    assert passed.returncode == EXIT_OK, passed.stdout + passed.stderr
    assert all(line.startswith("ok: ") for line in passed.stdout.splitlines()), passed.stdout

    settings = {"FUNCTIONS_WORKER_RUNTIME": "python", "SERVEFN_TRUSTED": ",".join(saved.types)}
    by_setting = check(_app(tmp_path / "settings", saved.path, requirements, settings))
    assert by_setting.returncode == EXIT_OK, by_setting.stdout + by_setting.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("requirements", "flagged"),
    [
        ("azure-functions\nservefn[azure]\n", True),
        ("azure-functions\nservefn\n", True),
        ("azure-functions\nservefn[azure,sklearn]\n", False),
        ("azure-functions\nservefn\nscikit-learn\nskops\n", False),
    ],
)
def test_check_flags_requirements_without_the_sklearn_extra(
    tmp_path: Path, requirements: str, flagged: bool
) -> None:
    X, y = _data()
    path = tmp_path / "model.zip"
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    servefn.save(forest, path, input=Features, output=Prediction, kind="sklearn")
    result = check(_app(tmp_path / "app", path, requirements, None), "--trusted", TREE)
    failures = [line for line in result.stdout.splitlines() if line.startswith("fail: ")]
    if flagged:
        assert result.returncode == EXIT_FAILURE
        assert failures == [
            "fail: predict: its model is of kind 'sklearn', which needs scikit-learn, skops on "
            "the server: list servefn[sklearn] in requirements.txt"
        ]
    else:
        assert result.returncode == EXIT_OK and failures == [], result.stdout


# -- serve_http: the app setting -----------------------------------------------------------------


def test_serve_http_reads_the_app_setting(saved: Saved, monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.functions as func

    from servefn import LoadedModel, Records, serve_http

    X, _ = _data()
    request = func.HttpRequest(
        "POST",
        "http://localhost/api/predict",
        headers={"content-type": "application/json"},
        body=json.dumps(_record(X, 0)).encode(),
    )

    def predict(model: LoadedModel, inputs: Records) -> Any:
        return model.predict(inputs)

    refused = serve_http(Features, Prediction, model=str(saved.path))(predict)(request)
    assert refused.status_code != 200
    monkeypatch.setenv("SERVEFN_TRUSTED", " , ".join(["numpy.log1p", *saved.types]))
    answer = serve_http(Features, Prediction, model=str(saved.path))(predict)(request)
    assert answer.status_code == 200, answer.get_body()
    expected = saved.estimator.predict(X[:1])[0]
    assert json.loads(answer.get_body())["PredictedLabel"] == expected


def test_the_setting_adds_to_the_given_types(monkeypatch: pytest.MonkeyPatch) -> None:
    from servefn.predictors.base import trusted_types

    monkeypatch.setenv("SERVEFN_TRUSTED", f" {HIST_TREE},, {TREE} ")
    assert trusted_types([TREE, "a.B"]) == (TREE, "a.B", HIST_TREE)
    monkeypatch.setenv("SERVEFN_TRUSTED", "")
    assert trusted_types() == ()
    with pytest.raises(TypeError, match="list of type names"):
        trusted_types(TREE)
