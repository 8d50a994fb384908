"""Bounded HTTP load on a 127.0.0.1 URL from a second process: wrk, or a small asyncio client.

``load(url, body, seconds=..., connections=..., pin=[...])`` POSTs ``body`` as JSON over
keep-alive connections for ``seconds`` and returns the request rate and the p50/p99 latency
(``wrk --latency``). It runs wrk (Debian's package) with one thread when it is installed;
otherwise this file itself, as a separate process, with one asyncio connection loop per
connection (slower than wrk, so rates are then bounded by the client: the report says which
client ran). ``pin`` prefixes the client's command, e.g. ``["taskset", "-c", "0"]``.

Run as a script (the fallback client): ``python http_load.py URL BODY SECONDS CONNECTIONS``;
it prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class LoadResult:
    """Requests per second, latency percentiles (seconds), and who measured them."""

    rate: float
    p50: float
    p99: float
    requests: int
    errors: int
    client: str


def load(
    url: str, body: bytes, *, seconds: float, connections: int, pin: Sequence[str] = ()
) -> LoadResult:
    """Load ``url`` for ``seconds`` (at most, plus start-up) and return what was measured."""
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError(f"load tests only target this machine, not {url}")
    if shutil.which("wrk"):
        return _wrk(url, body, seconds, connections, list(pin))
    return _fallback(url, body, seconds, connections, list(pin))


def _wrk(url: str, body: bytes, seconds: float, connections: int, pin: list[str]) -> LoadResult:
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="servefn-bench-") as lua:
        lua.write(script)
        lua.flush()
        command = [
            *pin, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s", "-s", lua.name, url,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return _parse_wrk(done.stdout)


def _parse_wrk(text: str) -> LoadResult:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    count = re.search(r"(\d+) requests in", text)
    percentiles = {
        m.group(1): float(m.group(2)) * _UNITS[m.group(3)]
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    }
    if rate is None or count is None or set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's report:\n{text}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors:.*?timeout (\d+)", text)
    errors = (int(bad.group(1)) if bad else 0) + (
        int(socket_errors.group(1)) if socket_errors else 0
    )
    return LoadResult(
        float(rate.group(1)),
        percentiles["50"],
        percentiles["99"],
        int(count.group(1)),
        errors,
        "wrk",
    )


def _fallback(
    url: str, body: bytes, seconds: float, connections: int, pin: list[str]
) -> LoadResult:
    command = [*pin, sys.executable, __file__, url, body.decode(), str(seconds), str(connections)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"the load client failed: {done.stderr.strip()[-300:]}")
    return LoadResult(**json.loads(done.stdout))


async def _connection(
    host: str, port: int, request: bytes, deadline: float
) -> tuple[list[float], int]:
    """One keep-alive connection sending ``request`` until ``deadline``; latencies, errors."""
    reader, writer = await asyncio.open_connection(host, port)
    latencies: list[float] = []
    errors = 0
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return latencies, errors


async def _client(url: str, body: bytes, seconds: float, connections: int) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    start = time.perf_counter()
    deadline = start + seconds
    results = await asyncio.gather(
        *(_connection(host, port, request, deadline) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    latencies = sorted(x for found, _ in results for x in found)
    n = len(latencies)
    return LoadResult(
        n / elapsed,
        latencies[n // 2],
        latencies[min(n - 1, int(n * 0.99))],
        n,
        sum(e for _, e in results),
        "asyncio client",
    )


if __name__ == "__main__":
    url, text, duration, count = sys.argv[1:5]
    result = asyncio.run(_client(url, text.encode(), float(duration), int(count)))
    print(json.dumps(result.__dict__))
