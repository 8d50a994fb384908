"""``save``: turn a fitted model into a ``model.zip`` with its schemas and training record."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from os import PathLike, fspath
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import write_model
from .predictors import Predictor
from .schema import Schema

__all__ = ["save"]


def save(
    model: Any,
    path: str | PathLike[str],
    *,
    input: type[Schema],
    output: type[Schema],
    evaluate_on: tuple[Any, Any] | None = None,
    data_file: str | PathLike[str] | None = None,
    training: Mapping[str, Any] | None = None,
) -> str:
    """Save ``model`` (a servefn predictor or a fitted scikit-learn estimator) to ``path``.

    A scikit-learn pipeline of supported linear steps becomes a numpy-only
    :class:`~servefn.predictors.linear.LinearClassifier`. ``evaluate_on=(X, y)`` adds metrics
    computed with the saved predictor (what will be served) to the training record;
    ``data_file`` adds the training file's sha256. Returns the archive's sha256.
    """
    predictor = model if isinstance(model, Predictor) else _export(model)
    record: dict[str, Any] = {} if isinstance(model, Predictor) else _describe_estimator(model)
    if evaluate_on is not None:
        X, y = evaluate_on
        matrix = np.asarray(X, dtype=np.float64)
        record["rows"] = int(matrix.shape[0])
        record["metrics"] = _evaluate(predictor, matrix, y)
        if data_file is None:
            digest = hashlib.sha256(matrix.tobytes() + repr(list(np.asarray(y))).encode())
            record["data_sha256"] = digest.hexdigest()
    if data_file is not None:
        record["data_file"] = Path(fspath(data_file)).name
        record["data_sha256"] = hashlib.sha256(Path(fspath(data_file)).read_bytes()).hexdigest()
    record.update(training or {})
    return write_model(path, predictor, input=input, output=output, training=record)


def _export(estimator: Any) -> Predictor:
    from .predictors.export import export_linear

    return export_linear(estimator)


def _describe_estimator(estimator: Any) -> dict[str, Any]:
    from .predictors.export import _steps, describe_steps

    final = _steps(estimator)[-1]
    record: dict[str, Any] = {
        "trainer": type(final).__name__,
        "steps": describe_steps(estimator),
        "params": _json_safe(final.get_params(deep=False)) if hasattr(final, "get_params") else {},
    }
    for attr, key in (
        ("tuned_params_", "tuned"),
        ("best_iteration_", "best_iteration"),
        ("n_iter_", "iterations"),
        ("converged_", "converged"),
        ("duality_gap_", "duality_gap"),
        ("objective_", "objective"),
    ):
        if hasattr(final, attr):
            record[key] = _json_safe(getattr(final, attr))
    return record


def _evaluate(predictor: Predictor, X: np.ndarray, y: Any) -> dict[str, Any]:
    from .metrics import classification_metrics

    outputs = predictor.predict(X)
    classes = getattr(predictor, "classes", None)
    if classes is None or getattr(predictor, "score", "decision") == "decision":
        accuracy = float(np.mean(np.asarray(outputs["PredictedLabel"]) == np.asarray(y)))
        return {"micro_accuracy": accuracy}
    metrics: dict[str, Any] = classification_metrics(
        np.asarray(y), outputs["Score"], list(classes.tolist())
    )
    return metrics


def _json_safe(value: Any) -> Any:
    """Plain JSON values only: numpy scalars/arrays unwrapped, other objects by name."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__
