"""``make demo``: train if needed, start ``servefn serve``, ask for a prediction, stop the host.

The request is the walkthrough's: ``POST /api/Predict`` with the flower below, ``Accept:
text/plain``, and the answer is the bare label, ``Iris-virginica``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLOWER = {"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, host: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise SystemExit(f"servefn serve exited early with code {host.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # the server answers (any status): it is up
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"servefn serve did not answer at {url} within {timeout:.0f} s")


def ask(request: urllib.request.Request) -> tuple[int, dict[str, object]]:
    """Send ``request``; its status and JSON body, an error status included (the other
    examples' demos use it)."""
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """Train ``folder``'s model if its model.zip is missing, run ``servefn serve folder`` on a
    free port until the block ends, and give the API's base URL."""
    if not (folder / "model.zip").exists():
        subprocess.run([sys.executable, str(folder / "train.py")], check=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODEL_URI"}  # the local model.zip
    command = [sys.executable, "-m", "servefn", "serve", str(folder), "--port", str(port)]
    host = subprocess.Popen(command, env=env, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api"
        wait_until_up(f"{base}/health", host)
        yield base
    finally:
        host.terminate()
        host.wait(timeout=10)


def main() -> None:
    with served(HERE) as base:
        request = urllib.request.Request(
            f"{base}/Predict",
            data=json.dumps(FLOWER).encode(),
            headers={"Content-Type": "application/json", "Accept": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = response.read().decode()
            version = response.headers["X-Model-Version"]
        print(f"POST {base}/Predict {json.dumps(FLOWER)}")
        print(f"Predicted flower type is: {answer}  (model {version})")


if __name__ == "__main__":
    main()
