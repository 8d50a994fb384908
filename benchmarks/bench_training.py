"""Training speed of servefn's SDCA against scikit-learn's LogisticRegression (lbfgs).

Target 6 of the benchmark suite: the figures of the reference-model issue. Run
``.venv/bin/python benchmarks/bench_training.py [--quick]``. ``run()`` returns one row per
measurement (name, value, unit, baseline, baseline_value, ratio, target, met, and the min-max
spread) for ``run.py``. Times are the median of several fits.
"""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MaxAbsScaler

from measure import Row, row, spread_of

IRIS = Path(__file__).resolve().parents[1] / "examples" / "iris" / "data" / "iris.txt"
SYNTHETIC_ROWS = 100_000
SCALING_ROWS = (25_000, 50_000, 100_000)
SCALING_EPOCHS = 10
LINEAR_SLACK = 1.3  # time per row-epoch may vary this much across sizes and still be "linear"

Matrix = NDArray[np.float64]


def load_iris() -> tuple[Matrix, NDArray[np.str_]]:
    with IRIS.open(newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    X = np.array([[float(v) for v in row[:4]] for row in rows])
    return MaxAbsScaler().fit_transform(X), np.array([row[4] for row in rows])


def synthetic(n_train: int, n_test: int = 20_000) -> tuple[Matrix, Any, Matrix, Any]:
    """A fixed 3-class, 20-feature problem, max-abs scaled, with a held-out test set."""
    X, y = make_classification(
        n_samples=n_train + n_test,
        n_features=20,
        n_informative=10,
        n_redundant=5,
        n_classes=3,
        random_state=0,
    )
    X = MaxAbsScaler().fit_transform(X)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


FIRST_FIT = """
import json, sys, time
sys.path.insert(0, {here!r})
from bench_training import load_iris
X, y = load_iris()
start = time.perf_counter()
from servefn.trainers import SdcaMaximumEntropyClassifier, _sdca_kernel
imported = time.perf_counter()
start_fit = time.perf_counter()
SdcaMaximumEntropyClassifier(check_frequency=2, random_state=0).fit(X, y)
fitted = time.perf_counter()
how = "cache load" if _sdca_kernel.train.stats.cache_hits else "compile"
print(json.dumps([imported - start, fitted - start_fit, how]))
"""


def first_fit_in_fresh_process() -> tuple[float, float, str]:
    """Import time of the trainer (scikit-learn already imported) and its first fit (numba
    cache load or compile), in a new process: earlier benchmarks may have run it in this one."""
    code = FIRST_FIT.format(here=str(Path(__file__).resolve().parent))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the first-fit process failed: {done.stderr[-500:]}")
    import_time, first, how = json.loads(done.stdout.splitlines()[-1])
    return float(import_time), float(first), str(how)


def timed(fit: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall times of ``repeat`` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return times, result


def fit_row(what: str, sdca_times: list[float], logreg_times: list[float]) -> Row:
    """One T6 row: SDCA's fit time against LogisticRegression's in the same run."""
    return row(
        f"T6 SDCA fit, {what}",
        statistics.median(sdca_times),
        "s",
        baseline="LogisticRegression",
        baseline_value=statistics.median(logreg_times),
        target="< 1 s",
        met=statistics.median(sdca_times) < 1.0,
        spread=spread_of(sdca_times),
        baseline_spread=spread_of(logreg_times),
    )


def run(quick: bool = False) -> list[Row]:
    """Time SDCA and LogisticRegression on iris and on a 100k x 20 problem; check scaling.

    ``quick`` fits fewer times (a smoke run; the figures are then rougher).
    """
    iris_fits, sdca_fits, logreg_fits = (5, 2, 1) if quick else (20, 5, 3)
    from servefn.trainers import SdcaMaximumEntropyClassifier

    def sdca(**params: Any) -> Any:
        return SdcaMaximumEntropyClassifier(check_frequency=2, random_state=0, **params)

    import_time, first, how = first_fit_in_fresh_process()
    rows = [
        row("T6 import servefn.trainers (numba; after sklearn), fresh process", import_time, "s"),
        row(f"T6 SDCA first fit, iris ({how}), fresh process", first, "s"),
    ]

    X, y = load_iris()
    sdca_times, model = timed(lambda: sdca().fit(X, y), iris_fits)
    logreg_times, _ = timed(lambda: LogisticRegression(max_iter=1000).fit(X, y), iris_fits)
    rows.append(fit_row(f"iris 150x4, {model.n_iter_} epochs", sdca_times, logreg_times))

    X_train, y_train, X_test, y_test = synthetic(SYNTHETIC_ROWS)
    sdca_times, model = timed(lambda: sdca().fit(X_train, y_train), sdca_fits)
    logreg_times, logreg = timed(lambda: LogisticRegression().fit(X_train, y_train), logreg_fits)
    rows.append(fit_row(f"synthetic 100000x20x3, {model.n_iter_} epochs", sdca_times, logreg_times))
    sdca_accuracy = float(model.score(X_test, y_test))
    logreg_accuracy = float(logreg.score(X_test, y_test))
    rows.append(
        row(
            "T6 SDCA held-out accuracy, synthetic",
            sdca_accuracy,
            "",
            baseline="LogisticRegression",
            baseline_value=logreg_accuracy,
            target=">= baseline - 0.02",
            met=sdca_accuracy >= logreg_accuracy - 0.02,
        )
    )
    return rows + scaling_rows(sdca, repeat=1 if quick else 5)


def scaling_rows(sdca: Callable[..., Any], repeat: int) -> list[Row]:
    """Time per row and epoch at growing sizes, with a fixed budget and no early stop."""
    X, y, _, _ = synthetic(max(SCALING_ROWS), n_test=0)
    estimator = sdca(
        max_iterations=SCALING_EPOCHS, l2_regularization=1e-4, convergence_tolerance=1e-9
    )
    times: dict[int, list[float]] = {n: [] for n in SCALING_ROWS}
    epochs: dict[int, int] = {}
    for _ in range(repeat):  # sizes take turns, so background load falls on all of them alike
        for n in SCALING_ROWS:
            found, model = timed(partial(estimator.fit, X[:n], y[:n]), 1)
            times[n] += found
            epochs[n] = model.n_iter_
    per_row_epoch = [min(times[n]) / (n * epochs[n]) * 1e9 for n in SCALING_ROWS]
    return [
        row(
            f"T6 SDCA time per row-epoch, {n:,} rows (fastest of {repeat})",
            cost,
            "ns",
            target="linear",
            met=cost <= per_row_epoch[0] * LINEAR_SLACK,
        )
        for n, cost in zip(SCALING_ROWS, per_row_epoch, strict=True)
    ]


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
