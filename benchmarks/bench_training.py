"""Training speed of servefn's SDCA against scikit-learn's LogisticRegression (lbfgs).

Run ``.venv/bin/python benchmarks/bench_training.py``. ``run()`` returns one row per measurement
(name, value, unit, baseline, baseline_value, ratio, target, met) for an aggregating runner.
Times are the median of several fits; the printed spread is min-max.
"""

from __future__ import annotations

import csv
import statistics
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

IRIS = Path(__file__).resolve().parents[1] / "examples" / "iris" / "data" / "iris.txt"
SYNTHETIC_ROWS = 100_000
SCALING_ROWS = (25_000, 50_000, 100_000)
SCALING_EPOCHS = 10
LINEAR_SLACK = 1.3  # time per row-epoch may vary this much across sizes and still be "linear"

Row = dict[str, object]
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


def timed(fit: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall times of ``repeat`` calls, and the last result."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return times, result


def row(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: str | None = None,
    baseline_value: float | None = None,
    target: str | None = None,
    met: bool | None = None,
) -> Row:
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": value / baseline_value if baseline_value else None,
        "target": target,
        "met": met,
    }


def spread(times: list[float]) -> str:
    """Min-max of a list of seconds, in ms."""
    return f"[{min(times) * 1e3:.1f}-{max(times) * 1e3:.1f} ms]"


def run() -> list[Row]:
    """Time SDCA and LogisticRegression on iris and on a 100k x 20 problem; check scaling."""
    start = time.perf_counter()
    from servefn.trainers import SdcaMaximumEntropyClassifier, _sdca_kernel

    import_time = time.perf_counter() - start

    def sdca(**params: Any) -> Any:
        return SdcaMaximumEntropyClassifier(check_frequency=2, random_state=0, **params)

    X, y = load_iris()
    (first,), _ = timed(lambda: sdca().fit(X, y), 1)
    how = "cache load" if _sdca_kernel.train.stats.cache_hits else "compile"
    rows = [
        row("import servefn.trainers (numba)", import_time, "s"),
        row(f"SDCA first fit, iris ({how})", first, "s"),
    ]

    sdca_times, model = timed(lambda: sdca().fit(X, y), 20)
    logreg_times, _ = timed(lambda: LogisticRegression(max_iter=1000).fit(X, y), 20)
    rows.append(
        row(
            f"SDCA fit, iris 150x4, {model.n_iter_} epochs {spread(sdca_times)}",
            statistics.median(sdca_times),
            "s",
            baseline="LogisticRegression",
            baseline_value=statistics.median(logreg_times),
            target="< 1 s",
            met=statistics.median(sdca_times) < 1.0,
        )
    )

    X_train, y_train, X_test, y_test = synthetic(SYNTHETIC_ROWS)
    sdca_times, model = timed(lambda: sdca().fit(X_train, y_train), 5)
    logreg_times, logreg = timed(lambda: LogisticRegression().fit(X_train, y_train), 3)
    rows.append(
        row(
            f"SDCA fit, synthetic 100000x20x3, {model.n_iter_} epochs {spread(sdca_times)}",
            statistics.median(sdca_times),
            "s",
            baseline="LogisticRegression",
            baseline_value=statistics.median(logreg_times),
            target="< 1 s",
            met=statistics.median(sdca_times) < 1.0,
        )
    )
    sdca_accuracy = float(model.score(X_test, y_test))
    logreg_accuracy = float(logreg.score(X_test, y_test))
    rows.append(
        row(
            "SDCA held-out accuracy, synthetic",
            sdca_accuracy,
            "",
            baseline="LogisticRegression",
            baseline_value=logreg_accuracy,
            target=">= baseline - 0.02",
            met=sdca_accuracy >= logreg_accuracy - 0.02,
        )
    )
    return rows + scaling_rows(sdca)


def scaling_rows(sdca: Callable[..., Any]) -> list[Row]:
    """Time per row and epoch at growing sizes, with a fixed budget and no early stop."""
    X, y, _, _ = synthetic(max(SCALING_ROWS), n_test=0)
    estimator = sdca(
        max_iterations=SCALING_EPOCHS, l2_regularization=1e-4, convergence_tolerance=1e-9
    )
    per_row_epoch: list[float] = []
    rows = []
    for n in SCALING_ROWS:
        times, model = timed(partial(estimator.fit, X[:n], y[:n]), 3)
        per_row_epoch.append(statistics.median(times) / (n * model.n_iter_) * 1e9)
        rows.append(
            row(
                f"SDCA time per row-epoch, {n} rows",
                per_row_epoch[-1],
                "ns",
                target="linear",
                met=per_row_epoch[-1] <= per_row_epoch[0] * LINEAR_SLACK,
            )
        )
    return rows


def format_table(rows: list[Row]) -> str:
    """The rows as a text table; times in ms or s."""
    header = f"{'benchmark':<62} {'value':>10} {'baseline':>10} {'ratio':>6}  {'target':<18} met"
    lines = [header]
    for r in rows:
        unit = str(r["unit"])
        value = _number(r["value"], unit)
        baseline = _number(r["baseline_value"], unit)
        ratio = f"{r['ratio']:.2f}" if isinstance(r["ratio"], float) else ""
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        target = r["target"] or ""
        lines.append(
            f"{r['name']!s:<62} {value:>10} {baseline:>10} {ratio:>6}  {target!s:<18} {met}"
        )
    return "\n".join(lines)


def _number(value: object, unit: str) -> str:
    if not isinstance(value, float):
        return ""
    if unit == "s":
        return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.4g}{' ' + unit if unit else ''}"


if __name__ == "__main__":
    print(format_table(run()))
