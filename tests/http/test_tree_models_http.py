"""Tree models over HTTP: each family and task, saved with ``servefn.save``, answers through
``serve_http`` (real ``azure.functions`` requests: a JSON batch with nulls, GET, CSV) exactly as
the library that trained it predicts the same rows, missing values included."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import azure.functions as func
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

import servefn
from servefn import LoadedModel, Predictions, Records, load_model, serve_http
from support.treedata import IntLabel, Value, features, with_missing

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")

N_FEATURES = 6


def data(task: str) -> tuple[np.ndarray, np.ndarray]:
    loader = {"binary": load_breast_cancer, "multiclass": load_wine}.get(task, load_diabetes)
    X, y = loader(return_X_y=True)
    return with_missing(X[:, :N_FEATURES], 0.15, slice(0, 3), seed=1), y


def family(name: str, task: str) -> Any:
    from sklearn import ensemble

    classifier = task != "regression"
    make: dict[str, Callable[[], Any]] = {
        "random-forest": lambda: (
            ensemble.RandomForestClassifier if classifier else ensemble.RandomForestRegressor
        )(n_estimators=8, max_depth=5, random_state=0),
        "hist-gradient-boosting": lambda: (
            ensemble.HistGradientBoostingClassifier
            if classifier
            else ensemble.HistGradientBoostingRegressor
        )(max_iter=15, random_state=0),
        "xgboost": lambda: (xgboost.XGBClassifier if classifier else xgboost.XGBRegressor)(
            n_estimators=15, max_depth=3, n_jobs=1
        ),
        "lightgbm": lambda: (lightgbm.LGBMClassifier if classifier else lightgbm.LGBMRegressor)(
            n_estimators=15, num_leaves=7, verbose=-1, n_jobs=1
        ),
    }
    return make[name]()


FAMILIES = ("random-forest", "hist-gradient-boosting", "xgboost", "lightgbm")
TASKS = ("binary", "multiclass", "regression")


def endpoint(model: LoadedModel) -> Callable[[func.HttpRequest], func.HttpResponse]:
    @serve_http(model.input_schema, model.output_schema, model=model)
    def predict(model: LoadedModel, inputs: Records) -> Predictions:
        return model.predict(inputs)

    return predict  # type: ignore[return-value]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", FAMILIES)
def test_http_answers_as_the_training_library(name: str, task: str) -> None:
    X, y = data(task)
    source = family(name, task).fit(X[:-40], y[:-40])
    names = [f"x{j}" for j in range(N_FEATURES)]
    buffer = io.BytesIO()
    output = Value if task == "regression" else IntLabel
    servefn.save(source, buffer, input=features(names), output=output)
    handler = endpoint(load_model(buffer.getvalue()))
    rows = X[-40:]
    body = [
        {n: None if np.isnan(v) else float(v) for n, v in zip(names, row, strict=True)}
        for row in rows
    ]
    response = handler(
        func.HttpRequest(
            "POST",
            "http://localhost/api/predict",
            headers={"content-type": "application/json"},
            body=json.dumps(body).encode(),
        )
    )
    assert response.status_code == 200, response.get_body()
    answers = json.loads(response.get_body())
    tolerance = 2.0**-22 if name == "xgboost" else 1e-9  # XGBoost's links run in float32
    if task == "regression":
        got = np.array([a["Score"] for a in answers])
        scale = np.maximum(1.0, np.abs(source.predict(rows)))
        assert np.max(np.abs(got - source.predict(rows)) / scale) <= tolerance
    else:
        assert [a["PredictedLabel"] for a in answers] == source.predict(rows).tolist()
        got = np.array([a["Score"] for a in answers])
        assert np.max(np.abs(got - source.predict_proba(rows))) <= tolerance
    first = {n: v for n, v in body[0].items() if v is not None}  # a GET with the row's values
    query = func.HttpRequest(
        "GET",
        "http://localhost/api/predict",
        body=b"",
        params={k: str(v) for k, v in first.items()},
    )
    by_get = handler(query)
    assert by_get.status_code == 200 and json.loads(by_get.get_body()) == answers[0]
    csv = "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in rows)
    by_csv = handler(
        func.HttpRequest(
            "POST",
            "http://localhost/api/predict",
            headers={"content-type": "text/csv"},
            body=csv.encode(),
        )
    )
    assert by_csv.status_code == 200 and json.loads(by_csv.get_body()) == answers
