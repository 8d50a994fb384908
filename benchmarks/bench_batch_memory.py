"""``servefn predict`` on large generated CSVs: peak memory stays flat as the input grows.

An iris-like CSV (four measurements and a species per line, about 30 bytes a line) is
generated in a temporary folder at 200,000 and 2,000,000 rows; ``servefn predict`` scores each
in a new interpreter (``servefn.cli.main``, what the console command runs; CSV out), and that
process reports its peak resident set size (``VmHWM`` in ``/proc/self/status``; Linux). Memory
is constant when the 2M-row peak is within 10% of the 200k-row peak. For contrast, the
in-memory way (read the whole file with ``read_delimited``, predict, write the scores) is
measured at the same sizes.

    .venv/bin/python benchmarks/bench_batch_memory.py          # about a minute and a half
    .venv/bin/python benchmarks/bench_batch_memory.py --quick  # 20k and 200k rows
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import iris_app
from measure import Row, format_table, row

SIZES = (200_000, 2_000_000)
QUICK_SIZES = (20_000, 200_000)
CONSTANT = 1.10  # the larger input's peak may exceed the smaller's by this factor at most
SPECIES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
_BLOCK = 100_000

# Each measured command runs in a fresh interpreter that reports its own peak resident set
# size (VmHWM: the high-water mark of the process's memory since its exec) when it exits.
# rusage's ru_maxrss is no good here: a child inherits the parent's high-water mark at fork.
PEAK_AT_EXIT = """
import atexit, re, sys
from pathlib import Path
def _peak():
    status = Path("/proc/self/status").read_text()
    print("VmHWM", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), file=sys.stderr)
atexit.register(_peak)
"""
STREAMED = (
    PEAK_AT_EXIT
    + """
from servefn.cli._main import main
code = main(sys.argv[1:])
if code:
    sys.exit(code)
"""
)
IN_MEMORY = (
    PEAK_AT_EXIT
    + """
import numpy as np
from servefn import load_model
from servefn.schema import layout_of, read_delimited
model = load_model(sys.argv[1])
table = read_delimited(model.input_schema, sys.argv[2])
outputs = model.predictor.predict(
    layout_of(model.input_schema).table_to_matrix(table, model.predictor.dtype)
)
np.savetxt(sys.argv[3], outputs["Score"], delimiter=",")
"""
)


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` iris-like lines: measurements in the iris ranges, one decimal."""
    rng = np.random.default_rng(seed)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    with path.open("w") as out:
        for start in range(0, rows, _BLOCK):
            n = min(_BLOCK, rows - start)
            values = rng.uniform(low, high, size=(n, 4)).round(1).tolist()
            labels = rng.integers(0, len(SPECIES), n).tolist()
            out.write(
                "".join(
                    f"{a},{b},{c},{d},{SPECIES[k]}\n"
                    for (a, b, c, d), k in zip(values, labels, strict=True)
                )
            )


def peak_rss(script: str, *args: str) -> tuple[float, float]:
    """Run ``script`` with ``args`` in a new interpreter: peak RSS in MiB, wall seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = re.search(r"^VmHWM (\d+)$", done.stderr, re.MULTILINE)
    if peak is None:
        raise RuntimeError(f"{args[:3]} did not report its peak memory: {done.stderr[-2000:]}")
    return int(peak.group(1)) / 1024, seconds


def run(quick: bool = False) -> list[Row]:
    """Peak memory and throughput of ``servefn predict`` at two input sizes."""
    model = iris_app.app_folder() / "model.zip"
    small, large = QUICK_SIZES if quick else SIZES
    folder = Path(tempfile.mkdtemp(prefix="servefn-bench-batch-"))
    try:
        streamed: dict[int, tuple[float, float]] = {}
        whole: dict[int, tuple[float, float]] = {}
        for size in (small, large):
            data = folder / f"iris-{size}.csv"
            generate(data, size)
            out = folder / f"scores-{size}.csv"
            streamed[size] = peak_rss(
                STREAMED, "predict", str(model), "-i", str(data), "-o", str(out)
            )
            lines = sum(1 for _ in out.open())
            if lines != size + 1:
                raise RuntimeError(f"expected {size + 1} output lines, found {lines}")
            out.unlink()
            whole[size] = peak_rss(IN_MEMORY, str(model), str(data), str(out))
            data.unlink()
            out.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ratio_needed = f"<= {CONSTANT:.2f}x"
    grown = streamed[large][0] / streamed[small][0]
    return [
        row(
            f"servefn predict, {large:,}-row CSV: peak RSS",
            streamed[large][0],
            "MiB",
            baseline=f"same, {small:,} rows",
            baseline_value=streamed[small][0],
            target=f"{ratio_needed} (constant)",
            met=grown <= CONSTANT,
        ),
        row(
            f"  in-memory read+predict, {large:,} rows: peak RSS",
            whole[large][0],
            "MiB",
            baseline=f"same, {small:,} rows",
            baseline_value=whole[small][0],
        ),
        row(
            f"servefn predict, {large:,}-row CSV: rows/s (CSV in and out)",
            large / streamed[large][1],
            "rows/s",
            baseline=f"in-memory, scores only ({large:,})",
            baseline_value=large / whole[large][1],
        ),
        row(
            f"  servefn predict, {small:,}-row CSV: rows/s",
            small / streamed[small][1],
            "rows/s",
        ),
    ]


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
