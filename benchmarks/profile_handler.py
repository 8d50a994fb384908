"""Where a request's time goes: cProfile over the example app's handler, in process.

Profiles ``calls`` one-row requests and a few 10,000-row requests through the same function
the Functions worker calls, and prints the functions with the most own time, and servefn's own
functions by cumulative time, each per request. Profiling inflates small functions' share;
read the list for what is called and how often, and confirm with ``bench_handler``.

    python benchmarks/profile_handler.py [--calls 5000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from pathlib import Path

import orjson

import iris_app


def profile(label: str, body: bytes, calls: int, top: int) -> None:
    """Run the handler ``calls`` times on ``body`` under cProfile; print per-request figures."""
    handler = iris_app.app_function()
    request = iris_app.json_request(body)
    handler(request)  # load the model outside the profile
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        handler(request)
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in entries.values())
    print(f"\n== {label}: {calls} requests, {total / calls * 1e6:.1f} us per request profiled")
    print(f"{'own us/req':>10} {'cum us/req':>10} {'calls/req':>9}  function")
    ranked = sorted(entries.items(), key=lambda item: -item[1][2])
    for (file, line, name), (_, ncalls, tt, ct, _) in ranked[:top]:
        print(f"{tt / calls * 1e6:10.2f} {ct / calls * 1e6:10.2f} {ncalls / calls:9.2f}  "
              f"{_where(file, line, name)}")  # fmt: skip
    print(f"-- servefn's functions by cumulative time ({label})")
    ours = [item for item in entries.items() if "/servefn/" in item[0][0]]
    for (file, line, name), (_, ncalls, _, ct, _) in sorted(ours, key=lambda i: -i[1][3])[:top]:
        print(
            f"{'':>10} {ct / calls * 1e6:10.2f} {ncalls / calls:9.2f}  {_where(file, line, name)}"
        )


def _where(file: str, line: int, name: str) -> str:
    if file == "~":
        return name
    return f"{'/'.join(Path(file).parts[-2:])}:{line}({name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="one-row requests to profile")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    args = parser.parse_args()
    profile("1 row", orjson.dumps(iris_app.FLOWER), args.calls, args.top)
    profile("10,000 rows", orjson.dumps(iris_app.flowers(10_000)), 5, args.top)


if __name__ == "__main__":
    main()
