"""A model that can never load is told apart from storage that is down (issue 11, item 11).

Permanent: the artifact was read and refused (an unknown kind, a missing package, untrusted
skops types, a pickle payload, a schema or manifest error, a corrupt archive, not the pinned
sha256, a model that fails its end-to-end check, a custom parser's refusal). Requests get a 500
problem naming the cause, with no Retry-After; health is 503 with ``status: unusable`` and the
reason; storage is asked again only every ``refresh_after`` seconds (one conditional request,
nothing downloaded) and a new version is loaded as soon as it appears.

Transient: storage could not give the artifact (unreachable, timed out, missing). Requests get
503 + Retry-After and checks back off as before.

The sources run on the shipped ``MemoryLoader`` with an injected clock; the HTTP answers come
from a real ``FunctionApp`` (``serve_http`` + ``add_health_routes``) called with real
``azure.functions`` requests, as the worker calls it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import pickle
import threading
import zipfile
from collections.abc import Callable
from typing import Any

import azure.functions as func
import numpy as np
import pytest

import servefn
from servefn import Schema, column
from servefn.azure import add_health_routes, serve_http
from servefn.errors import LoaderError, ModelUnavailable, ModelUnusable
from servefn.http import Endpoint, Request
from servefn.loaders import MemoryLoader, ModelSource
from servefn.model._archive import LoadedModel, load_model
from servefn.predictors import register_predictor
from servefn.schema import layout_of
from support.iris import FLOWER, IrisData, IrisPrediction
from support.problems import check_problem, strict_json
from support.reliability import REFRESH, Clock, model_bytes

GOOD = model_bytes()
GOOD_VERSION = load_model(GOOD).version
WAIT = 5.0
URI = "memory-loader://model.zip"

register_predictor(
    "needs-a-package",
    "servefn_test_absent_package.predictor:Absent",
    missing="this model needs servefn-test-absent: pip install 'servefn[absent]'",
)


def rewrite(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """``data`` with its manifest edited; payload hashes stay right, so it verifies."""
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        members = {name: opened.read(name) for name in opened.namelist()}
    manifest = json.loads(members.pop("servefn.json"))
    edit(manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("servefn.json", json.dumps(manifest))
        for name, body in members.items():
            zipped.writestr(name, body)
    return buffer.getvalue()


def with_kind(kind: str) -> bytes:
    return rewrite(GOOD, lambda m: m.__setitem__("kind", kind))


def bad_input_spec(manifest: dict[str, Any]) -> None:
    manifest["input"]["columns"][0]["type"] = "complex"


def untrusted_tree() -> bytes:
    from sklearn.tree import DecisionTreeClassifier

    X = np.array([[5.1, 3.5, 1.4, 0.2], [6.4, 3.1, 5.5, 2.2], [5.9, 3.0, 4.2, 1.5]] * 5)
    y = ["Iris-setosa", "Iris-virginica", "Iris-versicolor"] * 5
    buffer = io.BytesIO()
    servefn.save(
        DecisionTreeClassifier(random_state=0).fit(X, y),
        buffer,
        input=IrisData,
        output=IrisPrediction,
        kind="sklearn",  # skops, whose tree type must be trusted
    )
    return buffer.getvalue()


def pickled() -> bytes:
    """A well-formed sklearn-kind archive whose payload is a (harmless) pickle."""
    payload = pickle.dumps({"not": "a model"})
    manifest = {
        "format": "servefn.model/1",
        "kind": "sklearn",
        "predictor": {"format": "pickle"},
        "input": layout_of(IrisData).spec(),
        "output": layout_of(IrisPrediction).spec(),
        "training": {},
        "created": "2026-01-01T00:00:00+00:00",
        "servefn_version": servefn.__version__,
        "files": {
            "model.pkl": {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("servefn.json", json.dumps(manifest))
        zipped.writestr("model.pkl", payload)
    return buffer.getvalue()


class ScoreIsOne(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: float = column(name="Score")


PERMANENT = [
    pytest.param(lambda: with_kind("no-such-kind"), {}, ("predictor",), "no-such-kind",
                 id="unknown_kind"),
    pytest.param(lambda: with_kind("needs-a-package"), {}, ("missing-package",),
                 "pip install 'servefn[absent]'", id="missing_package"),
    pytest.param(untrusted_tree, {}, ("untrusted-types",), "sklearn.tree._tree.Tree",
                 id="untrusted_skops_types"),
    pytest.param(pickled, {}, ("untrusted-types",), "saved with pickle", id="pickle_payload"),
    pytest.param(lambda: rewrite(GOOD, bad_input_spec), {}, ("schema", "artifact"), "schema",
                 id="schema_error"),
    pytest.param(lambda: rewrite(GOOD, lambda m: m.__setitem__("format", "servefn.model/9")),
                 {}, ("artifact",), "servefn.model/9", id="manifest_format"),
    pytest.param(lambda: rewrite(GOOD, lambda m: m.pop("output")), {}, ("artifact",),
                 "output", id="manifest_without_output"),
    pytest.param(lambda: b"PK\x03\x04 not really a zip", {}, ("artifact",), "zip",
                 id="corrupt_archive"),
    pytest.param(lambda: rewrite(GOOD, lambda m: m.__setitem__(
                     "output", layout_of(ScoreIsOne).spec())),
                 {}, ("check",), "fails its end-to-end check", id="fails_the_probe"),
    pytest.param(lambda: GOOD, {"sha256": "ab" * 32}, ("pin",), "is not the pinned abab",
                 id="not_the_pinned_sha256"),
    pytest.param(lambda: GOOD, {"parse": lambda data: json.loads(data)}, ("parse",),
                 "UnicodeDecodeError", id="custom_parser_refuses"),
]  # fmt: skip


@pytest.mark.parametrize(("artifact", "options", "causes", "reason"), PERMANENT)
def test_a_permanent_failure_is_unusable_and_checked_only_every_refresh_interval(
    artifact: Callable[[], bytes], options: dict[str, Any], causes: tuple[str, ...], reason: str
) -> None:
    loader, clock = MemoryLoader(artifact()), Clock()
    source: ModelSource[Any] = ModelSource(
        loader, refresh_after=REFRESH, clock=clock, backoff_initial=1, **options
    )
    for _ in range(50):
        with pytest.raises(ModelUnusable) as raised:
            source.get()
    unusable = raised.value
    assert isinstance(unusable, ModelUnavailable)  # code that catches the old error still does
    assert unusable.cause in causes and reason in unusable.reason, unusable.reason
    assert str(unusable).startswith(f"the model at {URI} cannot be used: ")
    assert "\n" not in str(unusable) and "Traceback" not in str(unusable)
    assert unusable.retry_after == REFRESH  # the refresh interval, not a 1 s backoff
    info = source.info()
    assert (info["state"], info["failure"], info["cause"]) == (
        "unusable",
        "permanent",
        unusable.cause,
    )
    assert reason in info["last_error"] and "\n" not in info["last_error"]
    assert (loader.fetches, loader.downloads, source.stats.loads) == (1, 1, 0)

    # one conditional request per refresh interval, never a download of the same bytes
    for interval in range(1, 11):
        clock.advance(REFRESH - 0.01)
        with pytest.raises(ModelUnusable):
            source.get()
        assert loader.fetches == interval
        clock.advance(0.01)
        with pytest.raises(ModelUnusable):
            source.get()
        assert loader.fetches == interval + 1
    assert (loader.downloads, source.stats.loads) == (1, 0)

    # a new version is tried at the next check, and serves
    if "parse" in options:
        return  # this parser refuses every model.zip: nothing more to show
    loader.set(model_bytes(serial=1) if "sha256" not in options else GOOD)
    clock.advance(REFRESH)
    if "sha256" in options:  # the pin still refuses other bytes: a new etag is still tried
        with pytest.raises(ModelUnusable):
            source.get()
        assert loader.downloads == 2
        return
    assert source.get().version == load_model(model_bytes(serial=1)).version
    assert source.info()["state"] == "ready" and source.info()["failure"] is None


TRANSIENT = [
    pytest.param(LoaderError("could not reach the storage account (timed out)"), id="unreachable"),
    pytest.param(TimeoutError("timed out"), id="timeout"),
    pytest.param(OSError(104, "Connection reset by peer"), id="connection_reset"),
    pytest.param(None, id="blob_missing"),
]


@pytest.mark.parametrize("failure", TRANSIENT)
def test_a_transient_failure_stays_503_with_backoff(failure: Exception | None) -> None:
    loader, clock = MemoryLoader(GOOD), Clock()
    if failure is None:
        loader.delete()
    else:
        loader.fail(failure)
    source = ModelSource(loader, refresh_after=REFRESH, clock=clock, backoff_initial=1)
    for delay in (1, 2, 4, 8):
        with pytest.raises(ModelUnavailable) as raised:
            source.get()
        assert not isinstance(raised.value, ModelUnusable)
        assert raised.value.retry_after == delay
        info = source.info()
        assert (info["state"], info["failure"], info["cause"]) == (
            "unavailable",
            "transient",
            "storage",
        )
        clock.advance(delay)
    assert loader.downloads == 0

    loader.fail(None)
    loader.set(GOOD)
    assert source.get().version == GOOD_VERSION  # the fifth attempt, 8 s after the fourth


def test_a_refused_model_after_a_good_one_backs_off_to_the_refresh_interval() -> None:
    """Warm: a refused upload is checked every refresh interval (not 1, 2, 4... s), and a
    storage outage afterwards still backs off from the start."""
    loader, clock = MemoryLoader(GOOD), Clock()
    source = ModelSource(loader, refresh_after=10, clock=clock, backoff_initial=1, backoff_max=60)
    source.warm()
    loader.set(with_kind("no-such-kind"))
    for _ in range(5):
        clock.advance(10)
        assert source.get().version == GOOD_VERSION
        assert source.info()["next_check_in"] == 10
    assert loader.downloads == 2
    loader.fail(LoaderError("storage account unreachable"))
    clock.advance(10)
    assert source.get().version == GOOD_VERSION
    assert source.info()["failure"] == "transient" and source.info()["next_check_in"] == 10


# -- over HTTP: real azure.functions requests through serve_http and add_health_routes ----------


class GatedParse:
    """load_model behind a gate: a check can be held in flight while requests keep coming."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, data: bytes) -> LoadedModel:
        self.entered.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        return load_model(data)


class App:
    """A FunctionApp with one serve_http function over ``source`` and its health routes."""

    def __init__(self, source: ModelSource[LoadedModel]) -> None:
        app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

        @app.route(route="Predict", methods=["GET", "POST"])
        @serve_http(IrisData, IrisPrediction, model=source)
        def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
            return model.predict(inputs)

        add_health_routes(app)
        functions = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
        self._predict = functions["predict"]
        self._health = functions["health"]

    def predict(self) -> func.HttpResponse:
        request = func.HttpRequest(
            "POST",
            "http://localhost/api/Predict",
            headers={"Content-Type": "application/json"},
            body=json.dumps(FLOWER).encode(),
        )
        response: func.HttpResponse = self._predict(request)
        return response

    def health(self) -> tuple[int, dict[str, Any]]:
        response = self._health(func.HttpRequest("GET", "http://localhost/api/health", body=b""))
        return response.status_code, strict_json(response.get_body())

    def served(self, version: str) -> None:
        response = self.predict()
        assert response.status_code == 200, response.get_body()[:300]
        assert response.headers["X-Model-Version"] == version


UNUSABLE = [
    pytest.param(lambda: with_kind("no-such-kind"), "predictor", "no-such-kind", id="unknown_kind"),
    pytest.param(lambda: with_kind("needs-a-package"), "missing-package",
                 "pip install 'servefn[absent]'", id="missing_package"),
    pytest.param(untrusted_tree, "untrusted-types", "sklearn.tree._tree.Tree", id="untrusted"),
    pytest.param(lambda: rewrite(GOOD, bad_input_spec), None, "schema", id="schema_error"),
]  # fmt: skip


@pytest.mark.parametrize(("artifact", "cause", "reason"), UNUSABLE)
def test_an_unusable_model_answers_500_naming_the_cause_and_health_says_why(
    artifact: Callable[[], bytes],
    cause: str | None,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loader, clock = MemoryLoader(artifact()), Clock()
    app = App(ModelSource(loader, refresh_after=REFRESH, clock=clock, refresh_in_background=True))
    caplog.set_level(logging.WARNING, logger="servefn")
    for _ in range(100):
        response = app.predict()
        problem = check_problem(response, 500)
        assert "Retry-After" not in response.headers
        assert problem["detail"].startswith(f"the model at {URI} cannot be used: ")
        assert reason in problem["detail"] and "error_id" not in problem
        assert problem["cause"] == cause if cause else problem["cause"] in ("schema", "artifact")
    status, health = app.health()
    assert status == 503 and health["status"] == "unusable"
    assert reason in health["reason"] and "\n" not in health["reason"]
    assert (health["model"]["state"], health["model"]["failure"]) == ("unusable", "permanent")
    assert loader.fetches == 1  # 100 requests, one storage read: the refusal is remembered
    assert caplog.text.count("refused") == 1  # the cause is logged per check, not per request

    # an hour of requests: one conditional check per refresh interval, no download
    for _ in range(60):
        clock.advance()
        assert app.predict().status_code == 500
    assert (loader.fetches, loader.downloads) == (61, 1)

    loader.set(GOOD)
    clock.advance()
    app.served(GOOD_VERSION)
    status, health = app.health()
    assert status == 200 and health["status"] == "ok" and "reason" not in health


def test_storage_down_then_an_unusable_model_then_a_good_one() -> None:
    """503 + Retry-After while storage is down; 500 once it answers with a bad model; 200
    after a good one is uploaded. No restart."""
    loader, clock = MemoryLoader(with_kind("no-such-kind")), Clock()
    loader.fail(LoaderError("could not reach the storage account"))
    app = App(ModelSource(loader, refresh_after=REFRESH, clock=clock, backoff_initial=1))
    response = app.predict()
    check_problem(response, 503)
    assert response.headers["Retry-After"] == "1"
    status, health = app.health()
    assert (status, health["status"], health["model"]["failure"]) == (
        503,
        "unavailable",
        "transient",
    )

    loader.fail(None)
    clock.advance(1)
    response = app.predict()
    assert check_problem(response, 500)["cause"] == "predictor"
    assert "Retry-After" not in response.headers
    assert app.health()[1]["status"] == "unusable"

    loader.set(GOOD)
    clock.advance()
    app.served(GOOD_VERSION)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: with_kind("no-such-kind"), id="unknown_kind"),
        pytest.param(
            lambda: rewrite(GOOD, lambda m: m.__setitem__("output", layout_of(ScoreIsOne).spec())),
            id="fails_the_probe",
        ),
    ],
)
def test_the_last_good_model_answers_during_and_after_a_refused_swap(
    bad: Callable[[], bytes],
) -> None:
    parse = GatedParse()
    loader, clock = MemoryLoader(GOOD), Clock()
    source = ModelSource(
        loader, parse=parse, refresh_after=REFRESH, clock=clock, refresh_in_background=True
    )
    app = App(source)
    app.served(GOOD_VERSION)

    loader.set(bad())
    clock.advance()
    parse.gate.clear()
    parse.entered.clear()
    app.served(GOOD_VERSION)  # the due check starts in the background
    assert parse.entered.wait(WAIT)
    for _ in range(50):  # during: the new artifact is being read and checked
        app.served(GOOD_VERSION)
    assert not source.wait_for_refresh(0.01)
    parse.gate.set()
    assert source.wait_for_refresh(WAIT)
    for _ in range(50):  # after: refused, the last good model still answers
        app.served(GOOD_VERSION)

    status, health = app.health()
    assert status == 200 and health["status"] == "ok"
    assert health["reason"].startswith(f"artifact with etag {loader.etag} refused: ")
    assert "\n" not in health["reason"]
    model = health["model"]
    assert (model["state"], model["version"], model["failure"]) == (
        "stale",
        GOOD_VERSION,
        "permanent",
    )
    assert source.stats.loads == 1


def test_a_swapped_model_that_does_not_fit_the_endpoint_is_a_500_not_a_503() -> None:
    class ThreeFeatures(Schema):
        a: float = column(0, name="A")
        b: float = column(1, name="B")
        c: float = column(2, name="C")

    endpoint = Endpoint(ThreeFeatures, IrisPrediction, ModelSource(MemoryLoader(GOOD)))
    body = json.dumps({"A": 1.0, "B": 2.0, "C": 3.0}).encode()
    response = endpoint.handle(Request("POST", body, {"content-type": "application/json"}))
    problem = check_problem((response.status, response.media_type, response.body), 500)
    assert problem["cause"] == "schema" and "Retry-After" not in response.headers


def test_an_artifact_over_the_download_cap_is_a_permanent_failure() -> None:
    """Storage said how large it is: waiting will not shrink it, so no fast retries."""
    clock = Clock()
    loader = MemoryLoader(b"x" * 2048, max_bytes=1024)
    source = ModelSource(loader, parse=bytes.decode, refresh_after=30.0, clock=clock)
    with pytest.raises(ModelUnusable) as refused:
        source.get()
    assert refused.value.cause == "too-large"
    assert "over the download cap" in str(refused.value)
    assert refused.value.retry_after == 30.0
    checks = source.stats.checks
    for _ in range(5):  # within one refresh interval: no new check
        clock.advance(5.0)
        with pytest.raises(ModelUnusable):
            source.get()
    assert source.stats.checks == checks
