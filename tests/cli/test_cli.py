"""The ``servefn`` command line: ``main([...])`` in process, and ``servefn serve`` end to end."""

from __future__ import annotations

import os
import pickle
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

import servefn.batch
import servefn.devhost._modelapp
from servefn import __version__
from servefn.batch import BatchError, BatchUsageError
from servefn.cli._main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from servefn.devhost._host import DevHost
from servefn.errors import AppNotFoundError, DataFormatError, ServefnError, UsageError
from support import APPS


def read_startup_text(process: subprocess.Popen[bytes], timeout: float = 15) -> list[str]:
    """Lines printed by ``servefn serve`` up to the auth note that ends its startup text."""
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\nAuth:" not in output or not output.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0 and process.poll() is None, f"no startup text: {output!r}"
            if selector.select(remaining):
                output += os.read(process.stdout.fileno(), 65536)
    return output.decode().splitlines()


@pytest.mark.integration
def test_serve_end_to_end_as_a_subprocess(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("servefn")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "servefn"]
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [*command, "serve", str(APPS / "sync_app"), "--port", "0", "--log-level", "warning"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            lines = read_startup_text(process)
            assert lines[0] == "Functions:"
            echo = next(line for line in lines if line.startswith("  echo: [GET,POST] "))
            found = re.search(r"http://127\.0\.0\.1:(\d+)/api/echo/\{id:int\}/\{name\?\}$", echo)
            assert found is not None and found.group(1) != "0"
            base = f"http://127.0.0.1:{found.group(1)}"
            with httpx.Client(base_url=base, timeout=10) as http:
                seen = http.post("/api/echo/3?q=1", content=b"abc").json()
                assert (seen["route_params"], seen["params"], seen["body_length"]) == (
                    {"id": "3"},
                    {"q": "1"},
                    3,
                )
                settings = http.get("/api/settings").json()
                assert settings["DEVHOST_GREETING"] == "hello from local.settings.json"
                assert http.get("/api/nothing").status_code == 404
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl+C: graceful stop, exit code 0
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert process.returncode == 0
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_help_lists_the_serve_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == EXIT_OK
    assert "serve" in capsys.readouterr().out
    assert main(["serve", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "APP" in out and "--port" in out and "--max-body-size" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"servefn {__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "servefn: error: the following arguments are required: COMMAND"),
        (["serve"], "servefn serve: error: the following arguments are required: APP"),
        (["serve", "x", "--port", "70000"], "argument --port: 70000 is not between 0 and 65535"),
        (["serve", "x", "--max-body-size", "0"], "'0' is not a positive number of bytes"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "--help" in err
    assert err.count("\n") == 1


def test_missing_app_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nope")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("servefn serve: error: ") and "nope does not exist" in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("two_apps", "the Functions worker needs exactly one"),
        ("import_error", "No module named 'servefn_no_such_module'"),
    ],
)
def test_bad_app_exits_1_without_traceback(
    app: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(APPS / app), "--port", "0"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert message in err and str(APPS / app / "function_app.py") in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main(["serve", str(APPS / "async_app"), "--port", port]) == EXIT_FAILURE
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in capsys.readouterr().err


def test_serve_options_reach_the_dev_host(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[DevHost] = []
    monkeypatch.setattr(DevHost, "run", lambda self, out=None: received.append(self))
    argv = ["serve", "app_dir", "--host", "0.0.0.0", "--port", "0", "--log-level", "debug"]
    assert main([*argv, "--max-body-size", "1024"]) == EXIT_OK
    (host,) = received
    assert (host.app_path, host.host, host.port) == ("app_dir", "0.0.0.0", 0)
    assert (host.max_body_size, host.log_level) == (1024, "debug")


def test_serve_access_log_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[DevHost] = []
    monkeypatch.setattr(DevHost, "run", lambda self, out=None: received.append(self))
    for flag in ([], ["--access-log"], ["--no-access-log"]):
        assert main(["serve", "app_dir", *flag]) == EXIT_OK
    assert [host.access_log for host in received] == [True, True, False]


# -- main maps every error to one line and an exit code -------------------------------------------

FAILURE = ServefnError("the model\n  cannot be used")  # a message never spans lines on stderr


def fail_with(
    command: str, error: Exception, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[str]:
    """The argv that runs ``command`` with its library call patched to raise ``error``."""

    def raise_error(*args: object, **kwargs: object) -> NoReturn:
        raise error

    monkeypatch.chdir(tmp_path)  # inspect reads ./local.settings.json
    model = tmp_path / "model.zip"
    model.write_bytes(b"PK")
    if command == "predict":
        monkeypatch.setattr(servefn.batch, "predict_batch", raise_error)
        return ["predict", str(model), "-i", "flowers.csv"]
    if command == "serve":
        monkeypatch.setattr(DevHost, "run", raise_error)
        return ["serve", str(model)]
    monkeypatch.setattr(servefn.devhost._modelapp, "model_loader", raise_error)
    return ["inspect", str(model)]


@pytest.mark.parametrize("command", ["predict", "serve", "inspect"])
@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (UsageError("no input file matches *.csv"), EXIT_USAGE, "no input file matches *.csv"),
        (BatchUsageError("the output exists"), EXIT_USAGE, "the output exists"),
        (AppNotFoundError("nope does not exist"), EXIT_USAGE, "nope does not exist"),
        (FAILURE, EXIT_FAILURE, "the model cannot be used"),
        (BatchError("cannot read in.csv"), EXIT_FAILURE, "cannot read in.csv"),
        (ImportError("pip install 'servefn[azure]'"), EXIT_FAILURE, "pip install 'servefn[azure]'"),
    ],
)
def test_main_maps_each_error_the_same_way_for_every_command(
    command: str,
    error: Exception,
    code: int,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(fail_with(command, error, monkeypatch, tmp_path)) == code
    out, err = capsys.readouterr()
    assert err == f"servefn {command}: error: {message}\n" and out == ""


def test_a_hint_is_added_only_where_the_command_declares_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_row = DataFormatError("x: 'a' is not a number", path="in.csv", line=3, column=1)
    assert main(fail_with("predict", bad_row, monkeypatch, tmp_path)) == EXIT_FAILURE
    assert capsys.readouterr().err.endswith(
        "line 3, column 1: x: 'a' is not a number (pass --on-error skip to leave bad rows out)\n"
    )
    assert main(fail_with("inspect", bad_row, monkeypatch, tmp_path)) == EXIT_FAILURE
    assert capsys.readouterr().err.endswith("line 3, column 1: x: 'a' is not a number\n")


def test_a_bug_is_not_hidden_behind_an_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(KeyError):
        main(fail_with("serve", KeyError("a bug"), monkeypatch, tmp_path))


def test_a_batch_usage_error_is_a_usage_error_and_a_batch_error() -> None:
    assert issubclass(BatchUsageError, UsageError) and issubclass(BatchUsageError, BatchError)
    copy = pickle.loads(pickle.dumps(BatchUsageError("no input file matches *.csv")))
    assert isinstance(copy, BatchUsageError) and str(copy) == "no input file matches *.csv"
