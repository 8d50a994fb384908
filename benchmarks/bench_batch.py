"""Per-row cost against batch size (1 to 100,000 rows), and the plot ``batch_size.png``.

Four ways to the same predictions on the iris model, each timed at every batch size:

- servefn's handler (the example app's ``predict`` logic, JSON array in, JSON array out,
  ``max_batch`` raised so 100,000 rows fit in one request);
- servefn's predictor alone on a float32 matrix (no HTTP, no JSON, no validation);
- scikit-learn's ``Pipeline.predict`` on a float64 matrix (MaxAbsScaler + LogisticRegression);
- the floor of a JSON handler: orjson in, numpy, orjson out (``bench_handler.floor_handler``).

The table gets the handler against scikit-learn at each size; the plot shows all four.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

import iris_app
from apps.sklearn_iris import fit_pipeline
from bench_handler import floor_handler, served_model
from measure import Row, interleaved, median, row, spread_of

SIZES = (1, 10, 100, 1_000, 10_000, 100_000)
PLOT = Path(__file__).resolve().parent / "batch_size.png"


def predict(model: Any, inputs: Any) -> Any:
    """The example app's handler logic."""
    return model.predict(inputs)


def run(quick: bool = False, plot: Path | None = PLOT) -> list[Row]:
    """Time every way at every size; write the plot unless ``plot`` is None or quick."""
    from servefn import load_model
    from servefn.azure import serve_http

    sizes = SIZES[:-1] if quick else SIZES
    repeat, budget = (2, 0.03) if quick else (3, 0.1)
    data, prediction = iris_app.schemas()
    path = iris_app.app_folder() / "model.zip"
    handler = serve_http(
        data, prediction, model=path, max_batch=max(SIZES), max_body_bytes=64 << 20
    )(predict)
    predictor = load_model(path).predictor
    pipeline = fit_pipeline()
    floor = floor_handler(served_model())
    per_row: dict[str, dict[int, list[float]]] = {}
    for n in sizes:
        records = iris_app.flowers(n)
        request = iris_app.json_request(orjson.dumps(records))
        matrix = np.array([[r[f] for f in iris_app.FEATURES] for r in records])
        matrix32 = matrix.astype(np.float32)
        if handler(request).status_code != 200:
            raise RuntimeError(f"the handler refused {n} rows")
        times = interleaved(
            {
                "servefn handler (JSON in/out)": lambda: handler(request),  # noqa: B023
                "servefn predictor (matrix in)": lambda: predictor.predict(matrix32),  # noqa: B023
                "scikit-learn Pipeline.predict (matrix in)": lambda: pipeline.predict(matrix),  # noqa: B023
                "floor: orjson + numpy (JSON in/out)": lambda: floor(request),  # noqa: B023
            },
            repeat=repeat,
            budget=budget,
        )
        for name, seconds in times.items():
            per_row.setdefault(name, {})[n] = [s / n for s in seconds]
    if plot is not None and not quick:
        draw(per_row, plot)
    handler_name, sklearn_name = (
        "servefn handler (JSON in/out)",
        "scikit-learn Pipeline.predict (matrix in)",
    )
    return [
        row(
            f"   per row, {n:,} rows: servefn handler (JSON in/out)",
            median(per_row[handler_name][n]),
            "s",
            baseline="sklearn predict (matrix)",
            baseline_value=median(per_row[sklearn_name][n]),
            spread=spread_of(per_row[handler_name][n]),
            baseline_spread=spread_of(per_row[sklearn_name][n]),
        )
        for n in sizes
    ]


def _machine() -> str:
    import os
    import platform

    return f"{os.cpu_count()} cores, Python {platform.python_version()}"


def draw(per_row: dict[str, dict[int, list[float]]], path: Path) -> None:
    """Log-log plot of the median per-row cost, min-max as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    for name, by_size in per_row.items():
        sizes = sorted(by_size)
        middle = np.array([median(by_size[n]) for n in sizes]) * 1e6
        low = middle - np.array([min(by_size[n]) for n in sizes]) * 1e6
        high = np.array([max(by_size[n]) for n in sizes]) * 1e6 - middle
        style = "--" if "matrix" in name else "-"
        axes.errorbar(
            sizes, middle, yerr=[low, high], marker="o", linestyle=style, label=name, capsize=3
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(SIZES, ["1", "10", "100", "1k", "10k", "100k"])
    axes.set_xlabel("rows per call (batch size)")
    axes.set_ylabel("time per row (microseconds)")
    axes.set_title(f"Per-row cost against batch size, iris model (median, min-max); {_machine()}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    from measure import format_table

    print(format_table(run(quick="--quick" in sys.argv)))
