"""Where a request's time goes under ``servefn serve``: the host around the handler, then uvicorn.

In process (the default): the ASGI app that ``servefn serve`` runs (``DevHost(...).asgi_app``,
on a trained copy of the example app) is called directly on a uvloop event loop with one-row
requests, as uvicorn calls it, without sockets. It prints the time per request of that app, of
the bare ASGI app (``apps/bare_asgi.py``) under the same driver, and of the example's endpoint
alone (``Endpoint.handle``), so the host's own share is their difference; then cProfile's
functions by own time. Profiling inflates small functions' share; read it for what is called.

``--server``: ``servefn serve`` on one core (taskset), wrk on the other for ``--seconds``, and
py-spy sampling the server (``pip install py-spy``; root or ptrace rights): the share of the
event loop thread's samples by function, own and inclusive. System calls look dearer than they
are in py-spy's samples; confirm with ``bench_http``'s server CPU per request.

    python benchmarks/profile_serve.py [--requests 20000] [--top 25]
    python benchmarks/profile_serve.py --server [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import logging
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_http
import iris_app
from apps import bare_asgi
from http_load import load

SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
    "server": ("127.0.0.1", 7071), "client": ("127.0.0.1", 50000), "method": "POST",
    "root_path": "", "path": "/api/Predict", "raw_path": b"/api/Predict", "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:7071"), (b"content-type", b"application/json"),
                (b"content-length", str(len(bench_http.BODY)).encode())],
}  # fmt: skip
MESSAGE = {"type": "http.request", "body": bench_http.BODY, "more_body": False}


async def _receive() -> dict[str, Any]:
    return MESSAGE


async def _send(message: dict[str, Any]) -> None:
    pass


def _requests(app: Any, count: int) -> None:
    async def drive() -> None:
        for _ in range(count):
            await app(dict(SCOPE), _receive, _send)

    asyncio.run(drive())


def _per_call(function: Callable[[int], None], count: int) -> float:
    """Fastest of 7 runs of ``function(count)``, seconds per call, collector off."""
    best = float("inf")
    for _ in range(7):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            function(count)
            best = min(best, (time.perf_counter() - start) / count)
        finally:
            gc.enable()
    return best


def in_process(count: int, top: int) -> None:
    """Time and profile the host's ASGI app in this process (see the module doc)."""
    import uvloop

    from servefn.devhost._host import DevHost
    from servefn.http import Request

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    devnull = Path(os.devnull).open("w")  # noqa: SIM115  # for the whole run
    logging.basicConfig(level=logging.INFO, stream=devnull)
    sys.stderr = devnull  # where the access log's lines go
    app = DevHost(iris_app.app_folder()).asgi_app
    _requests(app, 10)  # loads the model (in the pool), then inline
    endpoint = app.inline.endpoints["predict"]
    headers = {"host": "127.0.0.1:7071", "content-type": "application/json"}
    request = Request("POST", bench_http.BODY, headers, {})

    def handle(n: int) -> None:
        for _ in range(n):
            endpoint.handle(request)

    host = _per_call(lambda n: _requests(app, n), count)
    alone = _per_call(handle, count)
    bare = _per_call(lambda n: _requests(bare_asgi.app, n), count)
    print(f"servefn serve's ASGI app: {host * 1e6:.1f} us per one-row request")
    print(f"  the example's endpoint alone (Endpoint.handle): {alone * 1e6:.1f} us")
    print(f"  the host around it: {(host - alone) * 1e6:.1f} us")
    print(f"bare ASGI app, same driver: {bare * 1e6:.2f} us")
    profiler = cProfile.Profile()
    profiler.enable()
    _requests(app, count)
    profiler.disable()
    entries = pstats.Stats(profiler).stats
    print(f"\n{'own us/req':>10} {'cum us/req':>10} {'calls/req':>9}  function (cProfile)")
    for (file, line, name), (_, calls, own, cum, _) in sorted(
        entries.items(), key=lambda item: -item[1][2]
    )[:top]:
        where = name if file == "~" else f"{'/'.join(Path(file).parts[-2:])}:{line}({name})"
        print(f"{own / count * 1e6:10.2f} {cum / count * 1e6:10.2f} {calls / count:9.2f}  {where}")


def server(seconds: float, top: int) -> None:
    """py-spy on ``servefn serve`` under wrk (see the module doc)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    pin = bench_http.pinning()
    with (
        tempfile.TemporaryDirectory(prefix="servefn-profile-") as folder,
        bench_http.serving("servefn", Path(folder), pin) as served,
    ):

        def loaded(duration: float) -> None:
            load(served.url, bench_http.BODY, seconds=duration, connections=16, pin=pin.client)

        loaded(2)  # warm-up
        raw = Path(folder) / "samples.txt"
        wrk = threading.Thread(target=loaded, args=(seconds + 2,))
        wrk.start()
        try:
            time.sleep(1)
            subprocess.run(
                [*pin.client, spy, "record", "-p", str(served.process.pid),
                 "-d", str(max(1, round(seconds))), "-r", "250", "-f", "raw", "-o", str(raw)],
                check=True, capture_output=True,
            )  # fmt: skip
        finally:
            wrk.join()
        _print_samples(raw.read_text(), top)


def _print_samples(text: str, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if "Server.run" not in stack:  # the event loop's thread only
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"\n-- share of the event loop thread's {total} samples, {title} (py-spy)")
        for frame, count in counter.most_common(top):
            print(f"{100 * count / total:6.1f} %  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="one-row requests")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--server", action="store_true", help="py-spy on servefn serve")
    parser.add_argument("--seconds", type=float, default=10.0, help="py-spy's sampling time")
    args = parser.parse_args()
    if args.server:
        server(args.seconds, args.top)
    else:
        in_process(args.requests, args.top)


if __name__ == "__main__":
    main()
