"""``servefn inspect``, ``servefn openapi`` and ``servefn upload`` through the console script.

Real files (the iris model trained by the example's train.py, copies of the iris app) and real
Blob Storage (Azurite) for blob:// and az:// (adlfs) locations, SAS URLs and etag preconditions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from servefn import load_model, read_manifest
from servefn.model._archive import write_model
from support.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from support.iris import example_app

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


# Every test runs the servefn console script in a subprocess (and most use Azurite).
pytestmark = pytest.mark.integration


def servefn(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``servefn`` console script; no storage setting leaks in from the caller."""
    script = Path(sys.executable).with_name("servefn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "servefn"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobs")}
    environment.update(env or {})
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def failed(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    """Exit ``code``, one stderr line holding every fragment, nothing on stdout."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.fixture(scope="module")
def newer_model(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model saved a day later: a different archive, as a second upload would be."""
    model = load_model(trained_model)
    created = datetime.fromisoformat(model.manifest["created"]) + timedelta(days=1)
    path = tmp_path_factory.mktemp("newer") / "model.zip"
    write_model(
        path,
        model.predictor,
        input=model.input_schema,
        output=model.output_schema,
        training=model.manifest["training"],
        created=created.astimezone(timezone.utc),
    )
    return path


# -- inspect ------------------------------------------------------------------------------------


def test_inspect_shows_the_manifest_for_a_person(trained_model: Path) -> None:
    result = servefn("inspect", str(trained_model))
    assert result.returncode == 0 and result.stderr == ""
    out = result.stdout
    data = trained_model.read_bytes()
    assert f"  sha256    {hashlib.sha256(data).hexdigest()}" in out
    assert f"  size      {len(data):,} bytes" in out
    assert "  kind      linear-classifier (score softmax)" in out
    assert "  classes   Iris-setosa, Iris-versicolor, Iris-virginica" in out
    assert re.search(r"^  SepalLength\s+float\s+0\s+feature\s+yes$", out, re.MULTILINE)
    assert re.search(r"^  Label\s+str \| null\s+4\s+label\s+no \(default null\)$", out, re.M)
    assert re.search(r"^  Score\s+vector\s+feature\s+yes$", out, re.MULTILINE)
    assert "SdcaMaximumEntropyClassifier (pipeline: MaxAbsScaler -> " in out
    assert re.search(r"^  best iteration\s+\d+ of \d+, converged$", out, re.MULTILINE)
    assert re.search(r"^    max_iterations\s+9998$", out, re.MULTILINE)  # auto-tuned
    assert re.search(r"^  micro_accuracy\s+0\.9\d*$", out, re.MULTILINE)
    matrix = out.split("Confusion matrix (rows: truth, columns: predicted)\n", 1)[1]
    header, setosa = matrix.splitlines()[:2]
    assert header.split()[-3:] == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert setosa.split() == ["Iris-setosa", "50", "0", "0"]
    assert "etag" not in out  # a local file has no etag worth quoting


def test_inspect_json_prints_the_manifest(trained_model: Path) -> None:
    result = servefn("inspect", str(trained_model), "--json")
    assert result.returncode == 0
    assert json.loads(result.stdout) == read_manifest(trained_model)


def test_inspect_refuses_what_is_not_a_model(trained_model: Path, tmp_path: Path) -> None:
    failed(servefn("inspect", str(tmp_path / "missing.zip")), 2, "missing.zip is not a file")
    (tmp_path / "notes.txt").write_text("hello")
    failed(servefn("inspect", str(tmp_path / "notes.txt")), 1, "not a model archive")
    damaged = tmp_path / "damaged.zip"
    data = bytearray(trained_model.read_bytes())
    data[data.index(b"weights.npz") + 200] ^= 0xFF  # inside the compressed payload
    damaged.write_bytes(bytes(data))
    result = servefn("inspect", str(damaged))
    assert result.returncode == 1 and "damaged" in result.stderr


def test_inspect_reads_blobs_and_shows_their_etag(
    trained_model: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    blob = blob_container.upload_blob("iris/model.zip", trained_model.read_bytes())
    etag = blob.get_blob_properties().etag
    name = blob_container.container_name
    settings = {"AzureWebJobsStorage": azurite.connection_string}
    by_sdk = servefn("inspect", f"blob://{name}/iris/model.zip", env=settings)
    by_adlfs = servefn(
        "inspect",
        f"az://{name}/iris/model.zip",
        "--connection",
        "Models",
        env={"Models": azurite.connection_string},
    )
    for result in (by_sdk, by_adlfs):
        assert result.returncode == 0, result.stderr
        assert f"  etag      {etag}" in result.stdout
        assert "Confusion matrix" in result.stdout
        assert ACCOUNT_KEY not in result.stdout + result.stderr
    missing = servefn("inspect", f"blob://{name}/none.zip", env=settings)
    failed(missing, 1, "'none.zip' in container", "does not exist")


def test_inspect_never_prints_a_sas_token(
    trained_model: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    blob_container.upload_blob("model.zip", trained_model.read_bytes())
    sas = generate_blob_sas(
        ACCOUNT,
        blob_container.container_name,
        "model.zip",
        account_key=ACCOUNT_KEY,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    signature = re.search(r"sig=([^&]+)", sas)
    assert signature is not None
    url = f"{azurite.blob_endpoint}/{blob_container.container_name}/model.zip?{sas}"
    result = servefn("inspect", url)
    assert result.returncode == 0, result.stderr
    assert "sig=***" in result.stdout and "Iris-virginica" in result.stdout
    assert signature.group(1) not in result.stdout + result.stderr


# -- openapi ------------------------------------------------------------------------------------


def test_openapi_of_a_model_and_of_an_app(trained_model: Path, tmp_path: Path) -> None:
    model = servefn("openapi", str(trained_model))
    assert model.returncode == 0, model.stderr
    document = json.loads(model.stdout)
    first, *others = document["paths"]
    assert document["openapi"] == "3.1.0" and first == "/api/Predict"
    assert all(p.startswith("/api/v2") for p in others)  # the Open Inference Protocol
    assert "security" not in document  # served locally without keys
    app = example_app(tmp_path / "iris", None, files=("function_app.py", "schema.py"))
    (app / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": "v1"}}})
    )
    served = servefn("openapi", str(app), env={"MODEL_URI": str(trained_model)})
    assert served.returncode == 0, served.stderr
    from_app = json.loads(served.stdout)
    assert list(from_app["paths"]) == ["/v1/Predict"]  # host.json's routePrefix
    assert set(from_app["paths"]["/v1/Predict"]) == {"get", "post"}
    assert from_app["security"] == [{"functionKey": []}, {"functionKeyQuery": []}]
    in_app, in_model = (d["components"]["schemas"]["IrisData"] for d in (from_app, document))
    assert in_app["properties"] == in_model["properties"]  # the model keeps the app's schema


def test_openapi_errors(tmp_path: Path) -> None:
    failed(servefn("openapi", str(tmp_path / "nothing")), 2, "nothing does not exist")
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp()\n"
        "@app.route(route='ping')\n"
        "def ping(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse('pong')\n"
    )
    failed(servefn("openapi", str(tmp_path)), 1, "no serve_http functions")


# -- upload -------------------------------------------------------------------------------------


def etag_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"^etag    (\S+)$", result.stdout, re.MULTILINE)
    assert found is not None, result.stdout
    return found.group(1)


@pytest.mark.parametrize("scheme", ["blob://", "", "az://"])
def test_upload_never_clobbers_a_model_by_accident(
    scheme: str,
    trained_model: Path,
    newer_model: Path,
    azurite: Azurite,
    blob_container: ContainerClient,
) -> None:
    settings = {"AzureWebJobsStorage": azurite.connection_string}
    destination = f"{scheme}{blob_container.container_name}/iris/model.zip"
    shown = destination if scheme else f"blob://{destination}"
    blob = blob_container.get_blob_client("iris/model.zip")

    first = servefn("upload", str(trained_model), destination, env=settings)
    assert first.returncode == 0, first.stderr
    data = trained_model.read_bytes()
    assert first.stdout.splitlines()[0] == (
        f"uploaded {trained_model} to {shown} ({len(data):,} bytes)"
    )
    assert f"sha256  {hashlib.sha256(data).hexdigest()}" in first.stdout
    assert etag_of(first) == blob.get_blob_properties().etag
    assert blob.get_blob_properties().content_settings.content_type == "application/zip"
    assert blob.download_blob().readall() == data

    again = servefn("upload", str(newer_model), destination, env=settings)
    failed(again, 1, f"{shown} already exists; nothing was uploaded", "--overwrite", "--if-match")
    assert blob.download_blob().readall() == data

    # someone else replaces the model; an upload based on the first version must not win
    blob.upload_blob(newer_model.read_bytes(), overwrite=True)
    stale = servefn(
        "upload", str(trained_model), destination, "--if-match", etag_of(first), env=settings
    )
    failed(stale, 1, f"no longer at etag {etag_of(first)}", "servefn inspect")
    assert blob.download_blob().readall() == newer_model.read_bytes()

    current = blob.get_blob_properties().etag.strip('"')  # as a shell would pass it
    matched = servefn(
        "upload", str(trained_model), destination, "--if-match", current, env=settings
    )
    assert matched.returncode == 0, matched.stderr
    assert etag_of(matched) == blob.get_blob_properties().etag != etag_of(first)
    assert blob.download_blob().readall() == data

    forced = servefn("upload", str(newer_model), destination, "--overwrite", env=settings)
    assert forced.returncode == 0 and blob.download_blob().readall() == newer_model.read_bytes()
    for result in (first, again, stale, matched, forced):
        assert ACCOUNT_KEY not in result.stdout + result.stderr


def test_upload_refuses_a_broken_model_and_explains_storage_errors(
    trained_model: Path, tmp_path: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    settings = {"AzureWebJobsStorage": azurite.connection_string}
    name = blob_container.container_name
    broken = tmp_path / "model.zip"
    broken.write_bytes(trained_model.read_bytes()[:-100])
    refused = servefn("upload", str(broken), f"{name}/model.zip", env=settings)
    failed(refused, 1, "is not a usable model", "nothing was uploaded")
    assert list(blob_container.list_blobs()) == []

    for destination in ("no-such-container/model.zip", "az://no-such-container/model.zip"):
        missing = servefn("upload", str(trained_model), destination, env=settings)
        failed(missing, 1, "container 'no-such-container' does not exist; create it")

    no_setting = servefn("upload", str(trained_model), f"{name}/model.zip")
    failed(no_setting, 1, "no storage connection 'AzureWebJobsStorage'")
    unsupported = servefn("upload", str(trained_model), "s3://bucket/model.zip", env=settings)
    failed(unsupported, 1, "cannot upload to s3://bucket/model.zip")
    both = servefn("upload", str(trained_model), "x/y", "--overwrite", "--if-match", "1")
    failed(both, 2, "not allowed with argument")


def test_upload_reads_the_connection_from_local_settings(
    trained_model: Path, tmp_path: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    values = {"Values": {"Models": azurite.connection_string}}
    (tmp_path / "local.settings.json").write_text(json.dumps(values))
    destination = f"{blob_container.container_name}/model.zip"
    result = servefn(
        "upload", str(trained_model), destination, "--connection", "Models", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    blob = blob_container.get_blob_client("model.zip")
    assert blob.download_blob().readall() == trained_model.read_bytes()


def test_help_lists_every_command_and_each_has_its_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from servefn.cli._main import EXIT_OK, main

    top = servefn("--help")  # the console script itself
    assert top.returncode == 0
    commands = ("serve", "inspect", "openapi", "upload", "check")
    for command in commands:
        assert f"    {command} " in top.stdout
    for command in commands:
        assert main([command, "--help"]) == EXIT_OK
        assert capsys.readouterr().out.startswith(f"usage: servefn {command} ")
    main(["upload", "--help"])
    assert "--if-match ETAG" in capsys.readouterr().out
