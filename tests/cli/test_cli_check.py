"""``servefn check APP_DIR`` through the console script, on copies of the iris app.

Each test builds an app folder the way a user would (the example's files, a trained model, a
local.settings.json), breaks one thing a publish would trip on, and reads the findings. Models
in Blob Storage live in Azurite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from servefn import Schema, column
from servefn.devhost._appcheck import example_record
from support.azurite import Azurite
from support.iris import APP_FILES, example_app

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

PUBLISH_FILES = (*APP_FILES, "requirements.txt", ".funcignore")
"""The example app's files a publish takes (``servefn check`` reads all of them)."""


def check(app: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``servefn check APP`` with no model or storage setting inherited from this process."""
    script = Path(sys.executable).with_name("servefn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "servefn"]
    environment = {
        k: v for k, v in os.environ.items() if k != "MODEL_URI" and not k.startswith("AzureWebJobs")
    }
    environment.update(env or {})
    return subprocess.run(
        [*command, "check", str(app)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def findings(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = result.stdout.splitlines()
    assert lines and all(line.split(": ", 1)[0] in ("ok", "warn", "fail") for line in lines)
    return lines


@pytest.mark.integration
def test_the_example_app_passes(trained_model: Path, tmp_path: Path) -> None:
    app = example_app(
        tmp_path / "iris",
        trained_model,
        {"FUNCTIONS_WORKER_RUNTIME": "python"},
        files=PUBLISH_FILES,
    )
    result = check(app)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = findings(result)
    assert all(line.startswith("ok: ") for line in lines), lines
    assert 'ok: host.json is valid (version 2.0, routePrefix "api")' in lines
    assert "ok: requirements.txt lists servefn[azure]" in lines
    assert any("local.settings.json is left out by .funcignore" in line for line in lines)
    assert (
        "ok: function_app.py imports and indexes under the worker's rules: "
        "predict, health, openapi" in lines
    )
    assert any(line.startswith("ok: predict: the model loads (") for line in lines)
    assert any(
        line.startswith('ok: predict: answers the example {"SepalLength": 1.0') for line in lines
    )
    assert result.stderr == ""


@pytest.mark.integration
def test_publish_traps_are_failures(trained_model: Path, tmp_path: Path) -> None:
    app = example_app(
        tmp_path / "iris", trained_model, {"SECRET": "local only"}, files=PUBLISH_FILES
    )
    (app / "host.json").write_text(json.dumps({"version": "1.0"}))
    (app / "requirements.txt").write_text("# nothing yet\n")
    (app / ".funcignore").write_text(".venv\n")
    result = check(app)
    lines = findings(result)
    assert result.returncode == 1
    assert 'fail: host.json has version \'1.0\'; set "version": "2.0"' in lines
    assert any(line.startswith("fail: requirements.txt does not list servefn") for line in lines)
    assert "warn: requirements.txt does not list azure-functions; add it" in lines
    assert (
        "fail: local.settings.json would be published with the app (it holds local secrets): "
        "add it to .funcignore" in lines
    )
    assert "local only" not in result.stdout + result.stderr
    assert result.stderr == (
        "servefn check: error: 3 of 7 checks failed; fix them and run servefn check again\n"
    )


@pytest.mark.integration
def test_an_app_that_does_not_import_fails(tmp_path: Path) -> None:
    app = example_app(tmp_path / "iris", None, files=PUBLISH_FILES)
    (app / "function_app.py").write_text("import azure.functions as func\nimport nowhere\n")
    result = check(app)
    assert result.returncode == 1
    (failure,) = [line for line in findings(result) if line.startswith("fail")]
    assert failure.startswith("fail: function_app.py does not load: importing ")
    assert "No module named 'nowhere'" in failure


@pytest.mark.integration
def test_a_model_missing_from_blob_storage_fails_until_it_is_uploaded(
    trained_model: Path, tmp_path: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    uri = f"blob://{blob_container.container_name}/model.zip"
    settings = {"AzureWebJobsStorage": azurite.connection_string, "MODEL_URI": uri}
    app = example_app(tmp_path / "iris", None, settings, files=PUBLISH_FILES)
    missing = check(app)
    assert missing.returncode == 1
    (failure,) = [line for line in findings(missing) if line.startswith("fail")]
    assert failure.startswith(f"fail: predict: {uri} does not load: ")
    assert "does not exist" in failure and "model setting" in failure
    assert "AccountKey" not in missing.stdout + missing.stderr

    blob_container.upload_blob("model.zip", trained_model.read_bytes())
    uploaded = check(app)
    assert uploaded.returncode == 0, uploaded.stdout
    lines = findings(uploaded)
    assert any(line.startswith("ok: predict: answers the example") for line in lines)
    assert any(line.startswith("ok: predict: the model loads") and uri in line for line in lines)


@pytest.mark.integration
def test_a_blob_model_without_its_connection_or_the_azure_extra_fails(
    tmp_path: Path, azurite: Azurite, blob_container: ContainerClient
) -> None:
    app = example_app(
        tmp_path / "iris", None, {"MODEL_URI": "blob://models/model.zip"}, files=PUBLISH_FILES
    )
    (app / "requirements.txt").write_text("azure-functions\nservefn\n")
    result = check(app)
    assert result.returncode == 1
    failures = [line for line in findings(result) if line.startswith("fail")]
    assert failures[0] == (
        "fail: predict reads blob://models/model.zip, which needs the Azure SDK on the server: "
        "list servefn[azure] in requirements.txt"
    )
    assert "no storage connection 'AzureWebJobsStorage'" in failures[1]


@pytest.mark.integration
def test_a_local_model_left_out_of_the_package_fails(trained_model: Path, tmp_path: Path) -> None:
    app = example_app(tmp_path / "iris", trained_model, files=PUBLISH_FILES)
    with (app / ".funcignore").open("a") as funcignore:
        funcignore.write("*.zip\n")
    result = check(app)
    assert result.returncode == 1
    assert (
        "fail: predict reads model.zip, which .funcignore leaves out of the package: remove it "
        "from .funcignore or read the model from Blob Storage" in findings(result)
    )


@pytest.mark.integration
def test_a_path_with_no_app_exits_2(tmp_path: Path) -> None:
    result = check(tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("servefn check: error: no function_app.py in ")


class Bounded(Schema):
    """Columns with bounds an example must respect."""

    count: int = column(0, name="Count", ge=10, le=20)
    ratio: float = column(1, name="Ratio", lt=0.5)
    code: str = column(2, name="Code", min_length=3)
    pixels: list[float] = column((3, 6), name="Pixels")
    flag: bool = column(7, name="Flag")
    note: str | None = column(8, name="Note", role="ignore", default=None)


def test_the_example_record_satisfies_its_schema() -> None:
    record = example_record(Bounded)
    assert record == {
        "Count": 10,
        "Ratio": -0.5,
        "Code": "aaa",
        "Pixels": [1.0, 1.0, 1.0, 1.0],
        "Flag": False,
    }
    Bounded.model_validate(record)
