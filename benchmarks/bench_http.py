"""Target 4: HTTP at the server's limit: request rate, p99 latency, cold start, peak RSS.

Each server is its own process, started by ``taskset`` on one core; the load generator (wrk,
one thread, 16 keep-alive connections, ``--latency``; ``http_load.py``) runs on the other core.
Servers are loaded in turns, round after round, so background load falls on all of them alike;
each figure is the median of the rounds, min-max in brackets:

- ``servefn serve`` on a trained copy of the example app with its defaults: INFO logging, a
  line per invocation, on what the ``serve`` extra installs (uvicorn with uvloop and httptools);
- the same with ``--no-access-log`` (context: what the lines cost);
- the baseline, the fastest bare server a user could run: a bare ASGI app answering a constant
  JSON of the same size, on uvicorn with uvloop and httptools, no access log
  (``apps/bare_asgi.py``);
- FastAPI + scikit-learn (``apps/fastapi_sklearn.py``) on the same uvicorn stack;
- LitServe + scikit-learn (``apps/litserve_sklearn.py``): LitServe's API server and one
  inference worker process, all on the server's core.

FastAPI and LitServe serve the same scikit-learn pipeline (MaxAbsScaler + LogisticRegression on
the example's iris data) and must give the same bytes; servefn serves the example's own model,
of the same kind; every server must answer the same species for the benchmark's flower.

Cold start: wall time from starting the process to its first answer (polled every 5 ms), for
``servefn serve`` and the bare app, several starts in turns, after a first start of each wrote
every module's bytecode (``PYTHONPYCACHEPREFIX``, a folder of this run, as an installed package
has its bytecode; ``PYTHONDONTWRITEBYTECODE`` is dropped). Peak RSS: the server process's
``VmHWM`` after its load rounds. Server CPU per request: its user + system time over the rounds
divided by the requests answered, which background load disturbs less than rates.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import iris_app
from http_load import LoadResult, load
from measure import Row, median, row, spread_of

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
CONNECTIONS = 16
BODY = b'{"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}'
SPECIES = "Iris-virginica"
FAST_UVICORN = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
LABELS = {
    "servefn": "servefn serve",
    "quiet": "servefn serve --no-access-log",
    "bare": "bare ASGI on uvicorn+uvloop+httptools",
    "fastapi": "FastAPI+sklearn",
    "litserve": "LitServe+sklearn",
}


@dataclass(frozen=True)
class Pinning:
    """Command prefixes that pin the server and the load generator, and how they are pinned."""

    server: list[str] = field(default_factory=list)
    client: list[str] = field(default_factory=list)
    text: str = "unpinned"


def pinning() -> Pinning:
    """The server on the last CPU this process may use, the client on the first (taskset)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if shutil.which("taskset") is None or len(cpus) < 2:
        return Pinning(text="unpinned: taskset missing or fewer than 2 CPUs")
    server, client = cpus[-1], cpus[0]
    return Pinning(
        ["taskset", "-c", str(server)],
        ["taskset", "-c", str(client)],
        f"server on CPU {server}, wrk on CPU {client}",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(name: str, port: int) -> list[str]:
    """The command line of server ``name`` listening on 127.0.0.1:``port``."""
    uvicorn = [sys.executable, "-m", "uvicorn", "--app-dir", str(APPS), "--host", "127.0.0.1"]
    uvicorn += ["--port", str(port), *FAST_UVICORN, "--log-level", "warning", "--lifespan", "on"]
    servefn = [sys.executable, "-m", "servefn", "serve", str(iris_app.app_folder())]
    servefn += ["--port", str(port)]
    return {
        "servefn": servefn,
        "quiet": [*servefn, "--no-access-log"],
        "bare": [*uvicorn, "bare_asgi:app"],
        "fastapi": [*uvicorn, "fastapi_sklearn:app"],
        "litserve": [sys.executable, str(APPS / "litserve_sklearn.py"), str(port)],
    }[name]


@dataclass
class Server:
    """A started server: its URL, process, cold start (s) and first answer."""

    url: str
    process: subprocess.Popen[bytes]
    cold_start: float
    answer: bytes


def _post(url: str, timeout: float = 5.0) -> bytes:
    request = urllib.request.Request(
        url, data=BODY, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def _first_answer(url: str, process: subprocess.Popen[bytes], log: Path) -> tuple[float, bytes]:
    """(seconds until ``url`` answered, the answer), polling every 5 ms for 120 s at most."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {log.read_text()[-1000:]}")
        try:
            answer = _post(url)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{url} answered {exc.code}: {exc.read()[:300]!r}") from None
        except OSError:
            time.sleep(0.005)
            continue
        if json.loads(answer).get("PredictedLabel") != SPECIES:
            raise RuntimeError(f"{url} answered {answer[:300]!r}, not {SPECIES}")
        return time.monotonic(), answer
    raise RuntimeError(f"{url} did not answer within 120 s: {log.read_text()[-1000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group (its own session: LitServe's workers too)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            time.sleep(0.2)  # children of the group exit after their parent
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        process.kill()
        process.wait()


@contextmanager
def serving(name: str, log_dir: Path, pin: Pinning) -> Iterator[Server]:
    """Start server ``name`` pinned, wait for its first answer, yield it; stop it on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_URI", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPYCACHEPREFIX"] = str(log_dir / "bytecode")
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("w") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            [*pin.server, *command(name, port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=HERE,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/api/Predict"
            answered, answer = _first_answer(url, process, log_path)
            yield Server(url, process, answered - started, answer)
        finally:
            _stop(process)


def _cpu_seconds(session: int) -> float:
    """User + system CPU seconds of the processes of ``session`` (a server and its workers)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) == session:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


def _ratio_row(
    name: str,
    values: dict[str, list[float]],
    unit: str,
    of: str,
    to: str,
    target: str | None = None,
    met: bool | None = None,
) -> Row:
    """Server ``of``'s median of ``values`` against server ``to``'s, both from this run."""
    return row(
        name,
        median(values[of]),
        unit,
        baseline=LABELS[to],
        baseline_value=median(values[to]),
        target=target,
        met=met,
        spread=spread_of(values[of]),
        baseline_spread=spread_of(values[to]),
    )


def run(quick: bool = False) -> list[Row]:
    """Start the servers, load them in turns, time cold starts; rows against the targets."""
    rounds, seconds, starts = (1, 1.0, 2) if quick else (5, 4.0, 5)
    pin = pinning()
    names = tuple(LABELS)
    results: dict[str, list[LoadResult]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    rss: dict[str, list[float]] = {}
    cold: dict[str, list[float]] = {"servefn": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="servefn-bench-http-") as logs:
        for name in cold:  # writes the bytecode: compiling would inflate a peak RSS
            with serving(name, Path(logs), pin):
                pass
        with ExitStack() as stack:
            servers = {name: stack.enter_context(serving(name, Path(logs), pin)) for name in names}
            if json.loads(servers["fastapi"].answer) != json.loads(servers["litserve"].answer):
                raise RuntimeError("FastAPI and LitServe answer differently: not the same model")
            for server in servers.values():  # warm-up, not counted
                load(server.url, BODY, seconds=1, connections=CONNECTIONS, pin=pin.client)
            for _ in range(rounds):
                for name, server in servers.items():
                    before = _cpu_seconds(server.process.pid)
                    found = load(
                        server.url, BODY, seconds=seconds, connections=CONNECTIONS, pin=pin.client
                    )
                    results[name].append(found)
                    used = _cpu_seconds(server.process.pid) - before
                    cpu[name].append(used / max(found.requests, 1))
            rss = {name: [_peak_rss_mb(servers[name].process.pid)] for name in cold}
        for _ in range(starts):  # fresh processes, in turns
            for name in cold:
                with serving(name, Path(logs), pin) as server:
                    cold[name].append(server.cold_start)
    for name, found in results.items():
        if any(r.errors for r in found):
            raise RuntimeError(f"{name} answered errors under load: {found}")
    return _rows(results, cpu, rss, cold, f"{results['servefn'][0].client}, {pin.text}")


def _rows(
    results: dict[str, list[LoadResult]],
    cpu: dict[str, list[float]],
    rss: dict[str, list[float]],
    cold: dict[str, list[float]],
    setup: str,
) -> list[Row]:
    rate = {name: [r.rate for r in found] for name, found in results.items()}
    p50 = {name: [r.p50 for r in found] for name, found in results.items()}
    p99 = {name: [r.p99 for r in found] for name, found in results.items()}

    def at_least(values: dict[str, list[float]], of: str, to: str, times: float) -> bool:
        return median(values[of]) >= times * median(values[to])

    def at_most(values: dict[str, list[float]], of: str, to: str, times: float) -> bool:
        return median(values[of]) <= times * median(values[to])

    rows = [
        _ratio_row(
            f"T4 HTTP servefn serve, its defaults, 1 row ({CONNECTIONS} connections, {setup})",
            rate, "req/s", "servefn", "bare", ">= 0.5x", at_least(rate, "servefn", "bare", 0.5),
        ),
        _ratio_row(
            "T4 HTTP latency p99, servefn serve", p99, "s", "servefn", "bare",
            "<= 3x", at_most(p99, "servefn", "bare", 3),
        ),
        _ratio_row(
            "T4 HTTP servefn serve vs FastAPI + scikit-learn", rate, "req/s", "servefn", "fastapi",
            ">= 8x", at_least(rate, "servefn", "fastapi", 8),
        ),
        _ratio_row(
            "T4 HTTP servefn serve vs LitServe + scikit-learn",
            rate, "req/s", "servefn", "litserve",
            ">= 10x", at_least(rate, "servefn", "litserve", 10),
        ),
        _ratio_row(
            "T4 cold start to the first answer, servefn serve", cold, "s", "servefn", "bare",
            "<= 3x", at_most(cold, "servefn", "bare", 3),
        ),
        _ratio_row(
            "T4 peak RSS after the load rounds, servefn serve", rss, "MB", "servefn", "bare",
            "<= 2x", at_most(rss, "servefn", "bare", 2),
        ),
        _ratio_row("   HTTP servefn serve --no-access-log", rate, "req/s", "quiet", "bare"),
        _ratio_row("   HTTP servefn serve, access log on", rate, "req/s", "servefn", "quiet"),
        _ratio_row("   HTTP FastAPI + scikit-learn", rate, "req/s", "fastapi", "bare"),
        _ratio_row("   HTTP LitServe + scikit-learn", rate, "req/s", "litserve", "bare"),
        row("   HTTP bare ASGI", median(rate["bare"]), "req/s", spread=spread_of(rate["bare"])),
    ]  # fmt: skip
    for name in ("servefn", "quiet", "fastapi", "litserve"):  # LitServe: all its processes
        text = f"   server CPU per request, {LABELS[name]}"
        rows.append(_ratio_row(text, cpu, "s", name, "bare"))
    rows.append(row("   server CPU per request, bare ASGI", median(cpu["bare"]), "s"))
    full_core = {name: [1 / seconds for seconds in cpu[name]] for name in ("servefn", "bare")}
    text = "   HTTP servefn serve at a full core (1 / server CPU per request)"
    rows.append(_ratio_row(text, full_core, "req/s", "servefn", "bare"))
    for label, values in (("p50", p50), ("p99", p99)):
        for name in ("servefn", "quiet", "fastapi", "litserve"):
            if (label, name) != ("p99", "servefn"):  # a target row above
                text = f"   HTTP latency {label}, {LABELS[name]}"
                rows.append(_ratio_row(text, values, "s", name, "bare"))
        rows.append(row(f"   HTTP latency {label}, bare ASGI", median(values["bare"]), "s"))
    return rows


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
