"""ML.NET's own model.zip files and their test data, for the ``servefn.mlnet`` tests.

The fixtures are real ML.NET 1.x artifacts (dotnet/machinelearning-samples, MIT) kept outside
the repository, at ``<repo>/../shared/fixtures/mlnet/`` (CI copies ``shared`` next to the
checkout). :func:`fixture` returns one's path; when the folder is missing the test is skipped
locally and fails under ``CI=true``. The loaders turn each sample's test file into the records
the model's input schema takes (wire names as the ML.NET classes name them) and the truth.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support import ROOT

FIXTURES = ROOT.parent / "shared" / "fixtures" / "mlnet"
IRIS, SDCA, FASTTREE, TAXI = (
    "IrisClassificationModel.zip",
    "SDCAModel.zip",
    "FastTreeModel.zip",
    "TaxiFareModel.zip",
)
IRIS_FEATURES = ("SepalLength", "SepalWidth", "PetalLength", "PetalWidth")
SAMPLE_FLOWERS = [  # SampleIrisData.cs and each flower's actual species (0 setosa, 2 virginica)
    ((5.1, 3.3, 1.6, 0.2), 0.0),
    ((6.0, 3.4, 6.1, 2.0), 2.0),
    ((4.4, 3.1, 2.5, 1.2), 1.0),
]
BIKE_COLUMNS = {  # DemandObservation's columns <- hour_test.csv's
    "Season": "season", "Year": "yr", "Month": "mnth", "Hour": "hr", "Holiday": "holiday",
    "Weekday": "weekday", "WorkingDay": "workingday", "Weather": "weathersit",
    "Temperature": "temp", "NormalizedTemperature": "atemp", "Humidity": "hum",
    "Windspeed": "windspeed",
}  # fmt: skip
BIKE_FEATURES = [c for c in BIKE_COLUMNS if c != "WorkingDay"]  # the sample's Concatenate


def fixture(name: str) -> Path:
    """The path of ML.NET fixture ``name``; skipped (failed under CI=true) when it is missing."""
    path = FIXTURES / name
    if not path.is_file():
        reason = f"the ML.NET fixtures are not at {FIXTURES} (copy shared/ next to the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def iris_rows() -> tuple[list[dict[str, Any]], np.ndarray]:
    lines = fixture("iris-test.txt").read_text().splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    records = [dict(zip(IRIS_FEATURES, map(float, r[1:5]), strict=True)) for r in rows]
    return records, np.array([float(r[0]) for r in rows])


def bike_rows() -> tuple[list[dict[str, Any]], np.ndarray]:
    with fixture("hour_test.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    records = [{k: float(r[v]) for k, v in BIKE_COLUMNS.items()} for r in rows]
    return records, np.array([float(r["cnt"]) for r in rows])


def taxi_rows() -> tuple[list[dict[str, Any]], np.ndarray]:
    with fixture("taxi-fare-test-2000.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    records = [
        {
            "VendorId": r["vendor_id"],
            "RateCode": r["rate_code"],
            "PassengerCount": float(r["passenger_count"]),
            "TripTime": float(r["trip_time_in_secs"]),
            "TripDistance": float(r["trip_distance"]),
            "PaymentType": r["payment_type"],
        }
        for r in rows
    ]
    return records, np.array([float(r["fare_amount"]) for r in rows])


def r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    residual = float(((truth - predicted) ** 2).sum())
    return 1.0 - residual / float(((truth - truth.mean()) ** 2).sum())


def least_squares_r2(features: np.ndarray, truth: np.ndarray) -> float:
    """R² of an ordinary least-squares fit (with intercept) of ``truth`` on ``features``, fitted
    and scored on the same rows: what a linear model of these features can reach at best."""
    design = np.hstack([features, np.ones((len(features), 1))])
    coef = np.linalg.lstsq(design, truth, rcond=None)[0]
    return r2(truth, design @ coef)


def taxi_design(records: list[dict[str, Any]]) -> np.ndarray:
    """The taxi sample's features: one-hot VendorId, RateCode, PaymentType, then the numbers."""
    columns: list[np.ndarray] = []
    for name in ("VendorId", "RateCode", "PaymentType"):
        values = sorted({r[name] for r in records})
        columns.append(np.array([[r[name] == v for v in values] for r in records], float))
    numbers = ("PassengerCount", "TripTime", "TripDistance")
    columns.append(np.array([[r[n] for n in numbers] for r in records]))
    return np.hstack(columns)
