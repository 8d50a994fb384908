"""Secrets never leak, and request values are not logged unless a debugging switch says so.

Models are loaded from Azurite with its account key and with SAS tokens, through every
connection form, successfully and not (missing blob, unreachable account, malformed connection
string). Everything a person or a log collector could see is captured and searched for the key
and the SAS signature: ``servefn serve --log-level debug`` output (which includes the Azure SDK's,
urllib3's and adlfs' debug logs), ``servefn inspect`` output, every response body and header
(predictions, problems, health, OpenAPI), exception messages and reprs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import azure.functions as func
import httpx
import pytest

from servefn.azure import endpoint_of, serve_http
from servefn.http._problems import Problem
from servefn.loaders import ModelSource
from servefn.loaders.blob import BlobLoader
from servefn.loaders.remote import FsspecLoader
from servefn.model._archive import LoadedModel, load_model
from servefn.schema._schema import Schema
from support.azurite import ACCOUNT, ACCOUNT_KEY, Azurite, free_port
from support.iris import EXAMPLE, FLOWER, IrisData, IrisPrediction, example_app, write_settings
from support.problems import CANARY, strict_json
from support.reliability import model_bytes
from support.secretforms import FUNCTION_KEY, MARK, PASSWORD, SAS_QUERY, TEXT_FORMS
from support.servehost import ServeProcess

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

SHARED_KEY_SIGNATURE = re.compile(r"SharedKey [^:\s'\"]+:[A-Za-z0-9+/]{20,}")
JSON = {"Content-Type": "application/json"}


def sas_token(container: ContainerClient) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        account_name=ACCOUNT,
        container_name=container.container_name,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def secrets(sas: str | None = None) -> list[str]:
    """The account key and SAS signature in every spelling they could be printed in."""
    found = [ACCOUNT_KEY, quote(ACCOUNT_KEY, safe=""), ACCOUNT_KEY[:24]]
    if sas is not None:
        signature = parse_qs(sas)["sig"][0]
        found += [signature, quote(signature, safe=""), signature[:24]]
    return found


def assert_nothing_secret(shown: dict[str, str], sas: str | None = None) -> None:
    for where, text in shown.items():
        for secret in secrets(sas):
            assert secret not in text, f"a secret is in {where}"
        assert not SHARED_KEY_SIGNATURE.search(text), f"a request signature is in {where}"


def connection_string(azurite: Azurite, port: int | None = None) -> str:
    endpoint = f"http://127.0.0.1:{port or azurite.port}/{ACCOUNT}"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={endpoint};"
    )


def everything_seen(response: httpx.Response) -> str:
    return json.dumps(dict(response.headers)) + response.text


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No storage setting inherited from the test process: local.settings.json decides."""
    for name in ("AzureWebJobsStorage", "MODEL_URI", "SERVEFN_LOG_BODIES"):
        monkeypatch.delenv(name, raising=False)


# -- servefn serve ------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.usefixtures("clean_environment")
def test_the_example_app_served_from_blob_with_a_key_leaks_nothing(
    azurite: Azurite, blob_container: ContainerClient, tmp_path: Path, trained_model: Path
) -> None:
    app = example_app(tmp_path / "iris", trained_model)
    blob_container.upload_blob("model.zip", (app / "model.zip").read_bytes())
    write_settings(
        app,
        {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": connection_string(azurite),
            "MODEL_URI": f"blob://{blob_container.container_name}/model.zip",
        },
    )
    host = ServeProcess(app, tmp_path / "serve.log", args=("--log-level", "debug"))
    shown: dict[str, str] = {}
    try:
        host.wait()
        with httpx.Client(base_url=host.base, timeout=30) as client:
            answer = client.post("/Predict", json={**FLOWER, "Label": CANARY})
            assert answer.status_code == 200, answer.text
            requests = {
                "prediction": answer,
                "problem": client.post("/Predict", json={**FLOWER, "PetalWidth": CANARY}),
                "csv problem": client.post(
                    "/Predict", content=f"1,{CANARY}\n", headers={"Content-Type": "text/csv"}
                ),
                "query problem": client.get("/Predict", params={"SepalLength": CANARY}),
                "health": client.get("/health"),
                "openapi": client.get("/openapi.json"),
            }
        assert requests["health"].json()["model"]["state"] == "ready"
        shown = {name: everything_seen(response) for name, response in requests.items()}
    finally:
        shown["servefn serve output"] = host.stop()
    assert "azure" in shown["servefn serve output"]  # the SDK's debug logs were captured
    assert_nothing_secret(shown)
    assert CANARY not in shown["servefn serve output"]  # request values are not logged


ROUTES = {
    "key_good": ("blob://{c}/model.zip", "AzureWebJobsStorage"),
    "key_missing": ("blob://{c}/missing.zip", "AzureWebJobsStorage"),
    "key_unreachable": ("blob://{c}/model.zip", "UnreachableStorage"),
    "key_malformed": ("blob://{c}/model.zip", "MalformedStorage"),
    "sas_good": ("blob://{c}/model.zip", "SasStorage"),
    "sas_missing": ("blob://{c}/missing.zip", "SasStorage"),
    "sas_url_good": ("blob://{c}/model.zip", "SasAccountUrl"),
    "sas_unreachable": ("blob://{c}/model.zip", "SasUnreachable"),
    "adlfs_key_good": ("az://{c}/model.zip", "AzureWebJobsStorage"),
    "adlfs_key_missing": ("az://{c}/missing.zip", "AzureWebJobsStorage"),
    "adlfs_sas_good": ("az://{c}/model.zip", "SasStorage"),
}
"""Route -> (model URL, connection setting) of a function app with one function per form."""
GOOD_ROUTES = ("key_good", "sas_good", "sas_url_good", "adlfs_key_good", "adlfs_sas_good")
ROUTES_APP = """
import os

import azure.functions as func

from servefn.azure import add_health_routes, serve_http

from schema import IrisData, IrisPrediction

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def add(name, model, connection):
    def predict(model, inputs):
        return model.predict(inputs)

    predict.__name__ = predict.__qualname__ = name
    decorated = serve_http(IrisData, IrisPrediction, model=model, connection=connection)(predict)
    app.route(route=name, methods=["POST"])(decorated)


for name, (model, connection) in ROUTES.items():
    add(name, model.format(c=os.environ["SECRETS_CONTAINER"]), connection)
add_health_routes(app)
"""


@pytest.mark.integration
@pytest.mark.usefixtures("clean_environment")
def test_every_connection_form_and_failure_leaks_nothing(
    azurite: Azurite, blob_container: ContainerClient, tmp_path: Path
) -> None:
    blob_container.upload_blob("model.zip", model_bytes())
    sas = sas_token(blob_container)
    closed = free_port()
    app = tmp_path / "routes"
    app.mkdir()
    (app / "function_app.py").write_text(f"ROUTES = {ROUTES!r}\n{ROUTES_APP}")
    shutil.copy(EXAMPLE / "schema.py", app / "schema.py")
    shutil.copy(EXAMPLE / "host.json", app / "host.json")
    endpoint = azurite.blob_endpoint
    write_settings(
        app,
        {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "SECRETS_CONTAINER": blob_container.container_name,
            "AzureWebJobsStorage": connection_string(azurite),
            "UnreachableStorage": connection_string(azurite, closed),
            "MalformedStorage": f"AccountKey = {ACCOUNT_KEY};AccountName=",
            "SasStorage": f"BlobEndpoint={endpoint};SharedAccessSignature={sas}",
            "SasAccountUrl": f"{endpoint}?{sas}",
            "SasUnreachable": f"BlobEndpoint=http://127.0.0.1:{closed}/{ACCOUNT};"
            f"SharedAccessSignature={sas}",
        },
    )
    host = ServeProcess(app, tmp_path / "serve.log", args=("--log-level", "debug"))
    shown: dict[str, str] = {}
    try:
        host.wait()
        with httpx.Client(base_url=host.base, timeout=60) as client:
            for name in ROUTES:
                for attempt in range(2):
                    response = client.post(f"/{name}", json=FLOWER)
                    assert (response.status_code == 200) == (name in GOOD_ROUTES), name
                    shown[f"{name} answer {attempt}"] = everything_seen(response)
            health = client.get("/health")
            shown["health"] = everything_seen(health)
            errors = [e["model"]["last_error"] for e in health.json() if e["model"]["last_error"]]
            assert len(errors) == 6  # every failing route says why in health
    finally:
        shown["servefn serve output"] = host.stop()
    output = shown["servefn serve output"]
    assert "could not reach" in output and "does not exist" in output
    assert "adlfs" in output or "aiohttp" in output or "azure.core" in output
    assert_nothing_secret(shown, sas)


@pytest.mark.integration
@pytest.mark.usefixtures("clean_environment")
def test_servefn_inspect_leaks_nothing(
    azurite: Azurite, blob_container: ContainerClient, tmp_path: Path
) -> None:
    blob_container.upload_blob("model.zip", model_bytes())
    sas = sas_token(blob_container)
    container = blob_container.container_name
    endpoint = azurite.blob_endpoint
    runs = {
        "key": ({"AzureWebJobsStorage": connection_string(azurite)}, "model.zip", 0),
        "key, unreachable": (
            {"AzureWebJobsStorage": connection_string(azurite, free_port())},
            "model.zip",
            1,
        ),
        "sas url, missing blob": ({"AzureWebJobsStorage": f"{endpoint}?{sas}"}, "x.zip", 1),
    }
    shown: dict[str, str] = {}
    for name, (settings, blob, code) in runs.items():
        environment = {**os.environ, **settings}
        done = subprocess.run(
            [sys.executable, "-m", "servefn", "inspect", f"blob://{container}/{blob}"],
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=120,
        )
        assert done.returncode == code, (name, done.stderr)
        shown[f"inspect with {name}"] = done.stdout + done.stderr
    assert "linear-classifier" in shown["inspect with key"]
    assert_nothing_secret(shown, sas)


# -- in process ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_malformed_connection_strings_leak_nothing(
    azurite: Azurite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = azurite.blob_endpoint
    malformed = [
        f"AccountKey={ACCOUNT_KEY};AccountName=",
        f"AccountKey = {ACCOUNT_KEY} ; BlobEndpoint={endpoint}",
        f"accountkey={ACCOUNT_KEY};blobendpoint={endpoint}",
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY[:-4]};"
        f"BlobEndpoint={endpoint}",
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        "BlobEndpoint=http://[::1:bad/x",
        f"{ACCOUNT_KEY}",
    ]
    shown: dict[str, str] = {}
    for index, connection in enumerate(malformed):
        for loader in (
            BlobLoader("models/model.zip", connection=connection, timeout=1, retries=0),
            FsspecLoader("az://models/model.zip", connection=connection, timeout=1),
        ):
            source = ModelSource(loader)

            @serve_http(IrisData, IrisPrediction, model=source)
            def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
                return model.predict(inputs)

            request = func.HttpRequest(
                "POST", "http://x/api/Predict", headers=JSON, body=json.dumps(FLOWER).encode()
            )
            answer = predict(request)
            assert answer.status_code == 503
            health = endpoint_of(predict).health()
            where = f"{type(loader).__name__} {index}"
            shown[f"{where} answer"] = answer.get_body().decode()
            shown[f"{where} health"] = health.body.decode()
            shown[f"{where} repr"] = repr(loader) + repr(source) + str(source.info())
    shown["logs"] = caplog.text
    assert_nothing_secret(shown)


@pytest.fixture
def failing_handler() -> Any:
    """A serve_http function whose handler fails with a request value in its message."""

    @serve_http(IrisData, IrisPrediction, model=loaded_model())
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        label = inputs[0].label  # type: ignore[attr-defined]
        if label is not None and label.startswith("fail"):
            raise ValueError(f"cannot handle label {label!r}")
        return model.predict(inputs)

    return predict


def loaded_model() -> LoadedModel:
    return load_model(model_bytes())


def requests_with_values() -> Iterator[func.HttpRequest]:
    """Requests carrying CANARY: accepted, refused, and one the handler fails on."""
    url = "http://localhost/api/Predict"
    for body in (
        {**FLOWER, "Label": CANARY},
        {**FLOWER, "PetalWidth": CANARY},
        [{**FLOWER, "Extra": CANARY}],
        {**FLOWER, "Label": f"fail {CANARY}"},
    ):
        yield func.HttpRequest("POST", url, headers=JSON, body=json.dumps(body).encode())
    csv = f"3.3,1.6,0.2,5.1,{CANARY}\n3.3,{CANARY}\n".encode()
    yield func.HttpRequest("POST", url, headers={"Content-Type": "text/csv"}, body=csv)
    params = {**{k: str(v) for k, v in FLOWER.items()}, "Label": CANARY}
    yield func.HttpRequest("GET", url, params=params, body=b"")


def test_request_values_are_not_logged_by_default(
    failing_handler: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVEFN_LOG_BODIES", raising=False)
    caplog.set_level(logging.DEBUG)
    statuses = []
    for request in requests_with_values():
        response = failing_handler(request)
        statuses.append(response.status_code)
        if response.status_code == 500:
            error_id = strict_json(response.get_body())["error_id"]
    assert statuses == [200, 422, 422, 500, 422, 200]
    assert error_id in caplog.text and "ValueError" in caplog.text  # the failure is findable
    assert CANARY not in caplog.text


@pytest.mark.parametrize("switch", ["argument", "app setting"])
def test_logging_request_bodies_takes_an_explicit_debug_switch(
    switch: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: dict[str, Any] = {}
    if switch == "argument":
        options["log_bodies"] = True
    else:
        monkeypatch.setenv("SERVEFN_LOG_BODIES", "1")

    @serve_http(IrisData, IrisPrediction, model=loaded_model(), **options)
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        if inputs[0].label is not None:  # type: ignore[attr-defined]
            raise ValueError(f"cannot handle {inputs[0].label}")  # type: ignore[attr-defined]
        return model.predict(inputs)

    @serve_http(IrisData, IrisPrediction, model=loaded_model(), log_bodies=False)
    def quiet(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    caplog.set_level(logging.DEBUG, logger="servefn.http")
    body = json.dumps({**FLOWER, "PetalWidth": CANARY}).encode()
    request = func.HttpRequest("POST", "http://x/api/Predict", headers=JSON, body=body)
    assert quiet(request).status_code == 422
    assert CANARY not in caplog.text  # off wins over the app setting
    assert predict(request).status_code == 422
    assert CANARY in caplog.text  # the refused body is in the debug log
    caplog.clear()
    failing = json.dumps({**FLOWER, "Label": CANARY}).encode()
    response = predict(func.HttpRequest("POST", "http://x/api/Predict", headers=JSON, body=failing))
    assert response.status_code == 500
    assert f"cannot handle {CANARY}" in caplog.text  # and so is the exception message


@pytest.mark.parametrize(
    ("connection", "shown"),
    [
        ("AzureWebJobsStorage", "AzureWebJobsStorage"),
        (f"AccountName=a;AccountKey={ACCOUNT_KEY};Extra={ACCOUNT_KEY}", "<connection string>"),
        (
            f"https://a.blob.core.windows.net/?sv=1&sig={ACCOUNT_KEY}",
            "https://a.blob.core.windows.net/?<SAS token>",
        ),
        ("http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1"),
        (f"https://user:{ACCOUNT_KEY}@a.blob.core.windows.net", "<account URL with user info>"),
    ],
)
def test_loaders_never_show_a_literal_connection(connection: str, shown: str) -> None:
    """A pasted connection string may hold a key in any field, so it is never shown at all."""
    for loader in (
        BlobLoader("models/model.zip", connection=connection),
        FsspecLoader("az://models/model.zip", connection=connection),
    ):
        assert f"connection={shown!r}" in repr(loader)
        assert ACCOUNT_KEY not in repr(loader)


# -- issue 11, item 4: every form of credential, at every exit ----------------------------------
#
# The forms are in support/secretforms.py: URL user info, every SAS field, code=, AccountKey=,
# SharedAccessSignature=, a BlobEndpoint carrying a SAS query or user:password@, bearer tokens,
# x-ms-... and x-functions-key headers, SharedKey signatures. Every secret value there holds
# MARK. The exits: the CLI (servefn inspect and predict, through servefn.cli.main), every logger
# at DEBUG (servefn's, azure.core's, azure.storage's, urllib3's, fsspec's, adlfs', aiohttp's),
# health, ModelSource.info() and reprs, and problem bodies.

LIBRARY_LOGGERS = (
    "servefn",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.storage.blob",
    "urllib3.connectionpool",
    "fsspec.http",
    "adlfs.spec",
    "aiohttp.client",
)


@pytest.fixture
def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in LIBRARY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def through_every_exit(
    location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """What the CLI, a serve_http function, its health and its model source show for a model
    at ``location`` (the connection comes from AzureWebJobsStorage)."""
    from servefn.cli import main

    shown: dict[str, str] = {}
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(FLOWER) + "\n")
    codes = {
        "inspect": main(["inspect", location]),
        "predict": main(["predict", location, "-i", str(rows), "-o", str(tmp_path / "out.csv")]),
    }
    for command, code in codes.items():
        assert code in (0, 1), command
    output = capsys.readouterr()
    shown["CLI"] = output.out + output.err
    assert all(line.count(": error: ") <= 1 for line in output.err.splitlines())

    @serve_http(IrisData, IrisPrediction, model=location)
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    request = func.HttpRequest(
        "POST", "http://x/api/Predict", headers=JSON, body=json.dumps(FLOWER).encode()
    )
    answer = predict(request)
    shown["answer or problem"] = json.dumps(dict(answer.headers)) + answer.get_body().decode()
    endpoint = endpoint_of(predict)
    shown["health"] = endpoint.health().body.decode()
    shown["info and repr"] = str(endpoint.source.info()) + repr(endpoint.source)
    return shown


def assert_no_form_leaked(shown: dict[str, str], logs: str, sas: str | None = None) -> None:
    shown = {**shown, "logs at DEBUG": logs}
    assert_nothing_secret(shown, sas)
    for where, text in shown.items():
        assert MARK not in text, f"a secret is in {where}"
    assert any("***" in text for text in shown.values())  # it was there, and it was masked


def connection_forms(
    azurite: Azurite, container: ContainerClient
) -> tuple[dict[str, tuple[str, str]], str]:
    """Form -> (model location, AzureWebJobsStorage), Azurite answering or nothing; a real SAS.

    The SAS of the blob:// forms is forged (every field, each value holding MARK): Azurite
    refuses it. adlfs waits out its timeout on a refused SAS, so its forms carry a real one.
    """
    port, closed, name = azurite.port, free_port(), container.container_name
    key = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
    endpoint, unreachable = azurite.blob_endpoint, f"http://127.0.0.1:{closed}/{ACCOUNT}"
    blob, adlfs, sas = f"blob://{name}/model.zip", f"az://{name}/model.zip", sas_token(container)
    forms = {
        "AccountKey=": (blob, f"{key}BlobEndpoint={endpoint};"),
        "AccountKey=, missing blob": (f"blob://{name}/x.zip", f"{key}BlobEndpoint={endpoint};"),
        "BlobEndpoint with a SAS query": (blob, f"BlobEndpoint={endpoint}?{SAS_QUERY};"),
        "BlobEndpoint with a SAS query, unreachable": (
            blob,
            f"BlobEndpoint={unreachable}?{SAS_QUERY};",
        ),
        "BlobEndpoint with user:password@": (
            blob,
            f"{key}BlobEndpoint=http://alice:{PASSWORD}@127.0.0.1:{port}/{ACCOUNT};",
        ),
        "BlobEndpoint with user:password@, unreachable": (
            blob,
            f"{key}BlobEndpoint=http://alice:{PASSWORD}@127.0.0.1:{closed}/{ACCOUNT};",
        ),
        "SharedAccessSignature=": (
            blob,
            f"BlobEndpoint={endpoint};SharedAccessSignature={SAS_QUERY}",
        ),
        "SAS account URL": (blob, f"{endpoint}?{SAS_QUERY}"),
        "adlfs, BlobEndpoint with a SAS query": (adlfs, f"BlobEndpoint={endpoint}?{sas};"),
        "adlfs, SharedAccessSignature=": (
            adlfs,
            f"BlobEndpoint={endpoint};SharedAccessSignature={sas}",
        ),
    }
    return forms, sas


CONNECTION_FORMS = (
    "AccountKey=",
    "AccountKey=, missing blob",
    "BlobEndpoint with a SAS query",
    "BlobEndpoint with a SAS query, unreachable",
    "BlobEndpoint with user:password@",
    "BlobEndpoint with user:password@, unreachable",
    "SharedAccessSignature=",
    "SAS account URL",
    "adlfs, BlobEndpoint with a SAS query",
    "adlfs, SharedAccessSignature=",
)


@pytest.mark.integration
@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("form", CONNECTION_FORMS)
def test_every_connection_form_at_every_exit_leaks_nothing(
    form: str,
    azurite: Azurite,
    blob_container: ContainerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    every_logger_at_debug: pytest.LogCaptureFixture,
) -> None:
    blob_container.upload_blob("model.zip", model_bytes())
    forms, sas = connection_forms(azurite, blob_container)
    location, connection = forms[form]
    monkeypatch.setenv("AzureWebJobsStorage", connection)
    shown = through_every_exit(location, tmp_path, capsys)
    libraries = ("azure", "urllib3", "adlfs", "fsspec", "aiohttp")
    assert any(r.name.startswith(libraries) for r in every_logger_at_debug.records)
    assert_no_form_leaked(shown, every_logger_at_debug.text, sas)


@pytest.mark.integration
def test_a_function_key_in_an_fsspec_url_leaks_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    every_logger_at_debug: pytest.LogCaptureFixture,
) -> None:
    from support.httpfiles import serve_files

    with serve_files() as files:
        files.put("model.zip", model_bytes())
        shown = through_every_exit(
            f"{files.url('model.zip')}?code={FUNCTION_KEY}", tmp_path, capsys
        )
        assert any(FUNCTION_KEY in line for line in files.requests)  # the key did reach storage
    assert "linear-classifier" in shown["CLI"] and "code=***" in shown["CLI"]
    assert any(r.name.startswith("fsspec") for r in every_logger_at_debug.records)
    assert_no_form_leaked(shown, every_logger_at_debug.text)


@pytest.fixture
def leaky_scheme() -> Iterator[None]:
    from servefn.loaders import _registry, register_loader

    register_loader("leaky", "support.secretforms:LeakyLoader")
    yield
    _registry.pop("leaky")


@pytest.mark.usefixtures("leaky_scheme")
@pytest.mark.parametrize("form", sorted(TEXT_FORMS))
def test_every_form_in_a_storage_error_leaks_nothing(
    form: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    every_logger_at_debug: pytest.LogCaptureFixture,
) -> None:
    """Storage fails with the form in its message (as an SDK's error quoting a request would),
    and every library logs it at DEBUG: the CLI, health, info, problems and logs mask it."""
    text = TEXT_FORMS[form]
    shown = through_every_exit(f"leaky://{sorted(TEXT_FORMS).index(form)}", tmp_path, capsys)
    assert "storage answered 403" in shown["CLI"] and "storage answered 403" in shown["health"]
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.debug("Request URL: %r", text)
        logger.debug("request failed: %s", text, exc_info=ConnectionError(text))
    problem = Problem(503, f"storage said {text}").to_bytes().decode()
    assert_no_form_leaked({**shown, "problem": problem}, every_logger_at_debug.text)


@pytest.mark.integration
@pytest.mark.usefixtures("clean_environment")
def test_servefn_serve_at_info_masks_user_info_and_sas_in_azure_logs(
    azurite: Azurite, blob_container: ContainerClient, tmp_path: Path
) -> None:
    """azure-core's http_logging_policy logs every request URL at INFO, user info included."""
    blob_container.upload_blob("model.zip", model_bytes())
    sas = sas_token(blob_container)
    endpoint = f"http://alice:{PASSWORD}@127.0.0.1:{azurite.port}/{ACCOUNT}?{sas}"
    write_settings(tmp_path, {"AzureWebJobsStorage": f"BlobEndpoint={endpoint};"})
    model = f"blob://{blob_container.container_name}/model.zip"
    host = ServeProcess(model, tmp_path / "serve.log", cwd=tmp_path)
    shown: dict[str, str] = {}
    try:
        host.wait()
        with httpx.Client(base_url=host.base, timeout=30) as client:
            shown["answer"] = everything_seen(client.post("/Predict", json=FLOWER))
            health = client.get("/health")
            shown["health"] = everything_seen(health)
        assert health.json()["model"]["state"] == "ready"
    finally:
        shown["servefn serve output"] = output = host.stop()
    assert "http_logging_policy" in output and "Request URL" in output  # the INFO lines
    assert "***@127.0.0.1" in output and "sig=***" in output
    assert_no_form_leaked(shown, output, sas)
