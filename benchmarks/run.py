"""``make bench``: run every benchmark module and print one table of figures against targets.

Each module's ``run(quick)`` returns rows (see ``measure.row``); this prints the machine, then
one table: each figure with its baseline measured in the same run, the ratio, the target and
whether it is met. Rows whose name starts with ``Tn`` belong to target n of the benchmark
issue; indented rows are context. A missed target is reported, not an error: the exit code
is 0 unless a benchmark could not run at all.

    python benchmarks/run.py                   # everything, about 4 minutes
    python benchmarks/run.py --quick           # a smoke run with fewer, shorter repetitions
    python benchmarks/run.py --only http,coldstart --markdown
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Row, format_table, markdown_table

MODULES = (
    "handler", "batch", "coldstart", "http", "refresh", "batch_memory", "training", "trees",
    "repository", "oip", "telemetry",
)  # fmt: skip
LIBRARIES = (
    "servefn", "numpy", "pydantic", "pydantic-core", "azure-functions", "uvicorn", "uvloop",
    "httptools", "h11", "scikit-learn", "fastapi", "starlette", "litserve", "orjson", "numba",
    "lightgbm", "onnxruntime", "skl2onnx", "onnxmltools", "opentelemetry-sdk",
)  # fmt: skip


def machine() -> str:
    """CPU, cores, memory, Python and library versions: the facts a figure depends on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kilobytes = int(meminfo.read_text().split()[1])
        memory = f", {kilobytes / 1024**2:.0f} GB"
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (missing)")
    blas = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}
    return "\n".join(
        [
            f"Machine: {cpu}, {os.cpu_count()} cores{memory}; {platform.platform()}",
            f"Python {platform.python_version()}; " + ", ".join(versions),
            f"OpenBLAS environment: {blas or 'none set'}",
            f"HTTP load: {_tool_version(['wrk', '-v'])}; {_tool_version(['taskset', '-V'])}",
        ]
    )


def _tool_version(command: list[str]) -> str:
    """The first line a tool prints about its version, or that it is missing."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except OSError:
        return f"{command[0]} (missing)"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else command[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument(
        "--only",
        default="",
        metavar="NAMES",
        help=f"comma-separated modules to run, of: {', '.join(MODULES)}",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()] or list(MODULES)
    unknown = sorted(set(args.only) - set(MODULES))
    if unknown:
        parser.error(f"unknown benchmark {unknown}; choose from {', '.join(MODULES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen modules in order, then print the table; 1 if a module failed to run."""
    args = parse_args(argv)
    print(machine(), flush=True)
    rows: list[Row] = []
    failed = []
    for name in args.only:
        start = time.perf_counter()
        print(f"running bench_{name}{' (quick)' if args.quick else ''} ...", flush=True)
        try:
            rows += importlib.import_module(f"bench_{name}").run(quick=args.quick)
        except Exception:  # report the others; this one's traceback says what went wrong
            traceback.print_exc()
            failed.append(name)
        print(f"  bench_{name}: {time.perf_counter() - start:.0f} s", flush=True)
    print()
    print(format_table(rows))
    if args.markdown:
        print()
        print(markdown_table(rows))
    missed = [str(r["name"]).strip() for r in rows if r["met"] is False]
    print(f"\n{len(rows)} figures; targets met: {sum(r['met'] is True for r in rows)}, "
          f"missed: {len(missed)}{' (' + '; '.join(missed) + ')' if missed else ''}")  # fmt: skip
    if failed:
        print(f"could not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
