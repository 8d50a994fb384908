"""Target 4: request rate and latency over HTTP, one server process each, bounded load.

Three servers, each its own process on a free 127.0.0.1 port, all idle but one at a time:

- ``servefn serve`` on a trained copy of the example app (``--log-level warning``: no line
  per request), POST ``/api/Predict`` with one flower;
- a bare ASGI app returning a constant JSON of the same size (``apps/bare_asgi.py``);
- FastAPI + scikit-learn serving the same iris data (``apps/fastapi_sklearn.py``).

All three run under the same uvicorn (same HTTP implementation and event loop, no access log).
The load comes from a second process (``http_load.py``: wrk with one thread, or an asyncio
client). The machine has two cores: one for the server (one Python process), one for the
client. Rounds take turns between the servers; each figure is the median of the rounds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import iris_app
from http_load import LoadResult, load
from measure import Row, median, row, spread_of

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
CONNECTIONS = 8
BODY = b'{"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}'
UVICORN = ["--log-level", "warning", "--no-access-log", "--ws", "none", "--lifespan", "on"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def commands(port: int) -> dict[str, list[str]]:
    """The command line of each server, listening on ``port``."""
    uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", str(APPS), "--host", "127.0.0.1"]
    servefn = [sys.executable, "-m", "servefn", "serve", str(iris_app.app_folder())]
    return {
        "servefn": [*servefn, "--port", str(port), "--log-level", "warning"],
        "bare": [*uvicorn, "--port", str(port), *UVICORN, "bare_asgi:app"],
        "fastapi": [*uvicorn, "--port", str(port), *UVICORN, "fastapi_sklearn:app"],
    }


@contextmanager
def server(name: str, log_dir: Path) -> Iterator[str]:
    """Start server ``name``, wait until it predicts, yield its URL; stop it by its pid."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MODEL_URI"}
    log = (log_dir / f"{name}.log").open("w")
    process = subprocess.Popen(
        commands(port)[name], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE
    )
    url = f"http://127.0.0.1:{port}/api/Predict"
    try:
        _wait_until_predicting(url, process, log_dir / f"{name}.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_until_predicting(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    request = urllib.request.Request(
        url, data=BODY, headers={"Content-Type": "application/json"}, method="POST"
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {log.read_text()[-1000:]}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200 and b"PredictedLabel" in response.read():
                    return
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{url} answered {exc.code}: {exc.read()[:300]!r}") from None
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within 60 s: {log.read_text()[-1000:]}")


def run(quick: bool = False) -> list[Row]:
    """Start the three servers, load each in turns, and compare rates and latencies."""
    rounds, seconds = (1, 1.0) if quick else (5, 4.0)
    names = ("servefn", "bare", "fastapi")
    results: dict[str, list[LoadResult]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="servefn-bench-http-") as logs, ExitStack() as stack:
        urls = {name: stack.enter_context(server(name, Path(logs))) for name in names}
        for name in names:  # warm-up, not counted
            load(urls[name], BODY, seconds=1, connections=CONNECTIONS)
        for _ in range(rounds):
            for name in names:
                results[name].append(
                    load(urls[name], BODY, seconds=seconds, connections=CONNECTIONS)
                )
    for name, found in results.items():
        if any(r.errors for r in found):
            raise RuntimeError(f"{name} answered errors under load: {found}")
    rate = {name: [r.rate for r in found] for name, found in results.items()}
    servefn, bare, fastapi = (median(rate[n]) for n in names)
    client = results["servefn"][0].client
    setup = f"{client}, {CONNECTIONS} connections"
    rows = [
        row(
            f"T4 HTTP servefn serve, 1 row ({setup})",
            servefn,
            "req/s",
            baseline="bare uvicorn ASGI",
            baseline_value=bare,
            target=">= 0.5x",
            met=servefn >= 0.5 * bare,
            spread=spread_of(rate["servefn"]),
            baseline_spread=spread_of(rate["bare"]),
        ),
        row(
            "T4 HTTP servefn serve vs FastAPI + scikit-learn",
            servefn,
            "req/s",
            baseline="FastAPI+sklearn",
            baseline_value=fastapi,
            target=">= 5x",
            met=servefn >= 5 * fastapi,
            spread=spread_of(rate["servefn"]),
            baseline_spread=spread_of(rate["fastapi"]),
        ),
    ]
    labels = {"servefn": "servefn serve", "fastapi": "FastAPI+sklearn", "bare": "bare uvicorn"}
    for percentile in ("p50", "p99"):
        latency = {n: [getattr(r, percentile) for r in found] for n, found in results.items()}
        for name in ("servefn", "fastapi", "bare"):
            rows.append(
                row(
                    f"   HTTP latency {percentile}, {labels[name]}",
                    median(latency[name]),
                    "s",
                    baseline="bare uvicorn" if name != "bare" else None,
                    baseline_value=median(latency["bare"]) if name != "bare" else None,
                    spread=spread_of(latency[name]),
                    baseline_spread=spread_of(latency["bare"]) if name != "bare" else None,
                )
            )
    rows.append(
        row(
            "   HTTP FastAPI + scikit-learn",
            fastapi,
            "req/s",
            baseline="bare uvicorn ASGI",
            baseline_value=bare,
            spread=spread_of(rate["fastapi"]),
            baseline_spread=spread_of(rate["bare"]),
        )
    )
    return rows


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
