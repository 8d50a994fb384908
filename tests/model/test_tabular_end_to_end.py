"""Tabular preprocessing pipelines, end to end: scikit-learn's bundled datasets with missing
numbers and a categorical text column, fitted as ColumnTransformer pipelines, saved with
``servefn.save`` to the numpy form and served, with the same answers as scikit-learn, through
``load_model(...).predict``, HTTP (JSON, GET, CSV) and ``servefn predict``; in a process that
never imports scikit-learn, scipy or pandas; and with a 422 naming the field for a value the
model cannot take."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from sklearn.svm import LinearSVC

import servefn
from servefn import LoadedModel, Schema, column, load_model
from servefn.azure import serve_http
from servefn.cli._main import EXIT_OK, main

GRADES = ["low", "mid", "high"]
UNSEEN = "never-seen-grade-7f3a"  # a value no model knows: must not be echoed back


# -- schemas: wire names are the DataFrame's column names, every column has an index (CSV) ------


class Wine(Schema):
    alcohol: float = column(0, name="alcohol")  # required: never missing in the data
    malic_acid: float | None = column(1, name="malic_acid", default=None)
    ash: float | None = column(2, name="ash", default=None)
    alcalinity: float | None = column(3, name="alcalinity_of_ash", default=None)
    magnesium: float | None = column(4, name="magnesium", default=None)
    grade: str | None = column(5, name="grade", default=None)


class WineNumbers(Schema):
    alcohol: float = column(0, name="alcohol")
    malic_acid: float | None = column(1, name="malic_acid", default=None)
    ash: float | None = column(2, name="ash", default=None)
    alcalinity: float | None = column(3, name="alcalinity_of_ash", default=None)
    magnesium: float | None = column(4, name="magnesium", default=None)


class Cancer(Schema):
    radius: float = column(0, name="mean radius")
    texture: float | None = column(1, name="mean texture", default=None)
    perimeter: float | None = column(2, name="mean perimeter", default=None)
    area: float | None = column(3, name="mean area", default=None)
    smoothness: float | None = column(4, name="mean smoothness", default=None)
    grade: str | None = column(5, name="grade", default=None)


class Diabetes(Schema):
    age: float = column(0, name="age")
    sex: float | None = column(1, name="sex", default=None)
    bmi: float | None = column(2, name="bmi", default=None)
    bp: float | None = column(3, name="bp", default=None)
    s1: float | None = column(4, name="s1", default=None)
    grade: str | None = column(5, name="grade", default=None)


class WineLabel(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class CancerLabel(Schema):
    predicted_label: int = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Progression(Schema):
    score: float = column(name="Score")


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    X: pd.DataFrame  # numeric columns (the first complete, two with NaN) and "grade"
    y: np.ndarray
    train: np.ndarray  # boolean mask

    @property
    def numeric(self) -> list[str]:
        return [c for c in self.X.columns if c != "grade"]


def _dataset(name: str) -> Dataset:
    loader, columns, binned, missing = {
        "wine": (
            load_wine,
            ["alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium"],
            "flavanoids",
            ["malic_acid", "ash"],
        ),
        "cancer": (
            load_breast_cancer,
            ["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness"],
            "mean concavity",
            ["mean texture", "mean area"],
        ),
        "diabetes": (load_diabetes, ["age", "sex", "bmi", "bp", "s1"], "s5", ["bmi", "s1"]),
    }[name]
    data = loader(as_frame=True)
    rng = np.random.default_rng(sum(map(ord, name)))
    X = data.data[columns].astype(np.float64).reset_index(drop=True)
    for col in missing:
        X.loc[rng.random(len(X)) < 0.1, col] = np.nan
    source = data.data[binned].to_numpy()
    grade = np.array(GRADES, dtype=object)[np.digitize(source, np.quantile(source, [1 / 3, 2 / 3]))]
    grade[rng.random(len(X)) < 0.08] = np.nan
    X["grade"] = pd.Series(grade, dtype=object)
    y = np.asarray(data.target)
    if name == "wine":
        y = np.asarray(data.target_names)[y]  # class names as labels
    train = rng.random(len(X)) >= 0.3
    return Dataset(X, y, train)


# -- pipeline shapes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    dataset: str
    input: type[Schema]
    output: type[Schema]
    make: Callable[[list[str]], Any]
    by_position: bool = False  # fitted on a numpy array of the numeric columns


def _impute_scale_onehot(numeric: list[str]) -> Any:
    return make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="error"),
                    ),
                    ["grade"],
                ),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )


def _indicator_missing_category(numeric: list[str]) -> Any:
    return make_pipeline(
        ColumnTransformer(
            [
                (
                    "num",
                    make_pipeline(
                        SimpleImputer(strategy="mean", add_indicator=True), MinMaxScaler()
                    ),
                    numeric,
                ),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["grade"]),  # NaN: a category
            ]
        ),
        LinearSVC(),
    )


def _ordinal_regression(numeric: list[str]) -> Any:
    return make_pipeline(
        ColumnTransformer(
            [
                (
                    "num",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value=0.0), MaxAbsScaler()
                    ),
                    numeric,
                ),
                (
                    "cat",
                    make_pipeline(
                        OrdinalEncoder(
                            handle_unknown="use_encoded_value",
                            unknown_value=-1,
                            encoded_missing_value=-1,
                        ),
                        MaxAbsScaler(),
                    ),
                    ["grade"],
                ),
            ]
        ),
        Ridge(alpha=0.5),
    )


def _numpy_by_position(numeric: list[str]) -> Any:
    return make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=2000)
    )


def _passthrough_then_impute(numeric: list[str]) -> Any:
    return make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore"), ["grade"])], remainder="passthrough"
        ),
        SimpleImputer(strategy="mean"),
        StandardScaler(),
        RidgeClassifier(),
    )


SHAPES = {
    "impute-scale-onehot-logreg": Shape("wine", Wine, WineLabel, _impute_scale_onehot),
    "indicator-nan-category-svc": Shape("cancer", Cancer, CancerLabel, _indicator_missing_category),
    "ordinal-constant-maxabs-ridge": Shape("diabetes", Diabetes, Progression, _ordinal_regression),
    "numpy-by-position-logreg": Shape(
        "wine", WineNumbers, WineLabel, _numpy_by_position, by_position=True
    ),
    "passthrough-impute-ridgeclassifier": Shape(
        "cancer", Cancer, CancerLabel, _passthrough_then_impute
    ),
}


@dataclass
class Case:
    name: str
    shape: Shape
    pipeline: Any
    path: Path
    rows: pd.DataFrame  # the test rows, as the schema's wire names
    sk_input: Any  # the same rows as the pipeline takes them
    labels: np.ndarray | None  # scikit-learn's answers
    scores: np.ndarray
    handler: Any

    @property
    def classifier(self) -> bool:
        return self.labels is not None


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _expected(pipeline: Any, X: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """scikit-learn's labels and Score: predict_proba, else decision_function; predict for a
    regressor."""
    if not hasattr(pipeline, "classes_"):
        return None, np.asarray(pipeline.predict(X), dtype=np.float64)
    labels = np.asarray(pipeline.predict(X))
    if hasattr(pipeline, "predict_proba"):
        return labels, pipeline.predict_proba(X)
    return labels, np.asarray(pipeline.decision_function(X), dtype=np.float64).reshape(len(X), -1)


def _handler(shape: Shape, path: Path) -> Any:
    @serve_http(shape.input, shape.output, model=str(path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    return predict


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    folder = tmp_path_factory.mktemp("tabular")
    data = {name: _dataset(name) for name in ("wine", "cancer", "diabetes")}
    out: dict[str, Case] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, shape in SHAPES.items():
            d = data[shape.dataset]
            X = d.X[d.numeric] if shape.by_position else d.X
            train, test = X[d.train], X[~d.train].reset_index(drop=True)
            fit_on = train.to_numpy(dtype=np.float64) if shape.by_position else train
            sk_test = test.to_numpy(dtype=np.float64) if shape.by_position else test
            pipeline = shape.make(d.numeric).fit(fit_on, d.y[d.train])
            path = folder / f"{name}.zip"
            servefn.save(
                pipeline,
                path,
                input=shape.input,
                output=shape.output,
                evaluate_on=(sk_test, d.y[~d.train]),
            )
            labels, scores = _expected(pipeline, sk_test)
            out[name] = Case(
                name, shape, pipeline, path, test, sk_test, labels, scores, _handler(shape, path)
            )
    return out


@pytest.fixture(params=sorted(SHAPES))
def case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    return cases[request.param]


# -- the same rows in each wire form -----------------------------------------------------------


def _value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v if isinstance(v, str) else float(v)


def _dicts(rows: pd.DataFrame, *, omit_missing: bool = False) -> list[dict[str, Any]]:
    """One dict per row: a missing value as None, or left out."""
    out = []
    for record in rows.to_dict(orient="records"):
        values = {k: _value(v) for k, v in record.items()}
        out.append({k: v for k, v in values.items() if v is not None or not omit_missing})
    return out


def _text(v: Any) -> str:
    """A CSV field or query value: repr of a float (exact), empty when missing."""
    v = _value(v)
    return "" if v is None else (v if isinstance(v, str) else repr(v))


def _csv(rows: pd.DataFrame, *, header: bool = False) -> str:
    lines = [",".join(rows.columns)] if header else []
    lines += [",".join(_text(v) for v in row) for row in rows.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _call(handler: Any, method: str, body: bytes = b"", **kwargs: Any) -> tuple[int, Any]:
    request = func.HttpRequest(method, "http://localhost/api/Predict", body=body, **kwargs)
    response = handler(request)
    return response.status_code, json.loads(response.get_body())


def _post_json(handler: Any, payload: Any) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    return _call(handler, "POST", json.dumps(payload, allow_nan=False).encode(), headers=headers)


def _post_csv(handler: Any, text: str) -> tuple[int, Any]:
    return _call(handler, "POST", text.encode(), headers={"Content-Type": "text/csv"})


def _unpack(answers: list[dict[str, Any]]) -> tuple[np.ndarray | None, np.ndarray]:
    labels = [a["PredictedLabel"] for a in answers] if "PredictedLabel" in answers[0] else None
    scores = np.asarray([a["Score"] for a in answers], dtype=np.float64)
    return (None if labels is None else np.asarray(labels)), scores


def _assert_matches(
    case: Case, labels: np.ndarray | None, scores: np.ndarray, rows: Any = slice(None)
) -> None:
    expected_scores = case.scores[rows]
    if case.classifier:
        assert labels is not None
        assert labels.tolist() == case.labels[rows].tolist()  # type: ignore[index]
    else:
        assert labels is None
    np.testing.assert_allclose(
        scores.reshape(expected_scores.shape), expected_scores, atol=1e-6, rtol=0
    )


def _missing_rows(case: Case) -> np.ndarray:
    return np.asarray(case.rows.isna().any(axis=1), dtype=bool)


# -- the saved model ---------------------------------------------------------------------------


def test_the_test_rows_hold_missing_values_and_every_category(cases: dict[str, Case]) -> None:
    for case in cases.values():
        numeric = [c for c in case.rows.columns if c != "grade"]
        assert case.rows[numeric].isna().sum().gt(0).sum() == 2, case.name
        if "grade" in case.rows:
            assert set(case.rows["grade"].dropna()) == set(GRADES), case.name
            assert case.rows["grade"].isna().any(), case.name


def test_save_exports_the_numpy_form_and_records_parity(case: Case) -> None:
    manifest = servefn.read_manifest(case.path)
    assert manifest["kind"] == "transformed"
    training = manifest["training"]
    assert training["form"] == "numpy"
    parity = training["parity"]
    assert parity["rows"] == len(case.rows)
    assert parity["max_score_difference"] <= 1e-6
    if case.classifier:
        assert parity["labels_equal"] is True
    columns = {c["name"]: c for c in manifest["input"]["columns"]}
    if case.name == "impute-scale-onehot-logreg":  # handle_unknown="error": a closed vocabulary
        assert sorted(columns["grade"]["categories"]) == sorted(GRADES)
    assert columns[case.rows.columns[0]]["nullable"] is False
    assert all(columns[c]["nullable"] for c in case.rows.columns[1:])


def test_load_model_predicts_as_sklearn(case: Case) -> None:
    model = load_model(case.path)
    for omit in (False, True):
        predictions = model.predict(_dicts(case.rows, omit_missing=omit))
        arrays = predictions.arrays
        labels = np.asarray(arrays["PredictedLabel"]) if case.classifier else None
        _assert_matches(case, labels, np.asarray(arrays["Score"], dtype=np.float64))
        assert (
            _unpack(predictions.to_dicts())[1].tolist()
            == _unpack(_post_json(case.handler, _dicts(case.rows))[1])[1].tolist()
        )


# -- HTTP --------------------------------------------------------------------------------------


def test_http_json_array_predicts_as_sklearn(case: Case) -> None:
    for omit in (False, True):
        status, answer = _post_json(case.handler, _dicts(case.rows, omit_missing=omit))
        assert status == 200, answer
        _assert_matches(case, *_unpack(answer))


def test_http_get_one_row_predicts_as_sklearn(case: Case) -> None:
    missing = np.flatnonzero(_missing_rows(case))[:3]
    complete = np.flatnonzero(~_missing_rows(case))[:2]
    for i in [*missing, *complete]:
        row = case.rows.iloc[int(i)]
        sent_empty = {k: _text(v) for k, v in row.items()}  # "?bmi=": missing
        left_out = {k: v for k, v in sent_empty.items() if v != ""}
        for params in (sent_empty, left_out):
            status, answer = _call(case.handler, "GET", params=params)
            assert status == 200, (params, answer)
            _assert_matches(case, *_unpack([answer]), rows=[int(i)])


def test_http_csv_body_of_complete_rows_predicts_as_sklearn(case: Case) -> None:
    complete = ~_missing_rows(case)
    if "grade" in case.rows:  # a missing category is an empty field too: keep some
        complete |= (
            case.rows["grade"].isna().to_numpy()
            & ~case.rows.drop(columns="grade").isna().any(axis=1).to_numpy()
        )
    status, answer = _post_csv(case.handler, _csv(case.rows[complete]))
    assert status == 200, answer
    _assert_matches(case, *_unpack(answer), rows=complete)


def test_http_csv_body_with_empty_fields_predicts_as_sklearn(case: Case) -> None:
    status, answer = _post_csv(case.handler, _csv(case.rows))
    assert status == 200, answer
    _assert_matches(case, *_unpack(answer))


# -- servefn predict ---------------------------------------------------------------------------


def _cli(case: Case, tmp_path: Path, *, header: bool) -> list[dict[str, str]]:
    source = tmp_path / f"{case.name}-in.csv"
    target = tmp_path / f"{case.name}-out.csv"
    source.write_text(_csv(case.rows, header=header))
    argv = ["predict", str(case.path), "-i", str(source), "-o", str(target)]
    assert main([*argv, "--header"] if header else argv) == EXIT_OK
    return list(csv.DictReader(io.StringIO(target.read_text())))


def _cli_answers(case: Case, out: list[dict[str, str]]) -> tuple[np.ndarray | None, np.ndarray]:
    if not case.classifier:
        assert list(out[0]) == ["Score"]
        return None, np.asarray([float(r["Score"]) for r in out])
    width = case.scores.shape[1]
    assert list(out[0]) == ["PredictedLabel", *(f"Score[{j}]" for j in range(width))]
    kind = type(case.labels[0].item())  # type: ignore[index]
    labels = np.asarray([kind(r["PredictedLabel"]) for r in out])
    scores = np.asarray([[float(r[f"Score[{j}]"]) for j in range(width)] for r in out])
    return labels, scores


@pytest.mark.parametrize("header", [False, True], ids=["by-index", "header"])
def test_servefn_predict_on_a_csv_file_predicts_as_sklearn(
    case: Case, tmp_path: Path, header: bool
) -> None:
    out = _cli(case, tmp_path, header=header)
    assert len(out) == len(case.rows)
    _assert_matches(case, *_cli_answers(case, out))


def test_http_and_servefn_predict_answer_the_same_rows_identically(
    case: Case, tmp_path: Path
) -> None:
    status, answer = _post_json(case.handler, _dicts(case.rows))
    assert status == 200, answer
    http_labels, http_scores = _unpack(answer)
    cli_labels, cli_scores = _cli_answers(case, _cli(case, tmp_path, header=False))
    if case.classifier:
        assert http_labels is not None and cli_labels is not None
        assert http_labels.tolist() == cli_labels.tolist()
    np.testing.assert_array_equal(cli_scores.reshape(http_scores.shape), http_scores)


# -- a serving process without scikit-learn ----------------------------------------------------

PROBE = textwrap.dedent(
    """
    import json, sys
    import azure.functions as func
    from servefn import Schema, column, load_model, serve_http

    class Wine(Schema):
        alcohol: float = column(0, name="alcohol")
        malic_acid: float | None = column(1, name="malic_acid", default=None)
        ash: float | None = column(2, name="ash", default=None)
        alcalinity: float | None = column(3, name="alcalinity_of_ash", default=None)
        magnesium: float | None = column(4, name="magnesium", default=None)
        grade: str | None = column(5, name="grade", default=None)

    class WineLabel(Schema):
        predicted_label: str = column(name="PredictedLabel")
        score: list[float] = column(name="Score")

    @serve_http(Wine, WineLabel, model=sys.argv[1])
    def predict(model, inputs):
        return model.predict(inputs)

    body = sys.argv[2].encode()
    response = predict(func.HttpRequest(
        "POST", "http://localhost/api/Predict", body=body,
        headers={"Content-Type": "application/json"},
    ))
    direct = load_model(sys.argv[1]).predict(json.loads(body)).to_dicts()
    print(json.dumps({
        "status": response.status_code,
        "http": json.loads(response.get_body()),
        "direct": direct,
        "modules": sorted(sys.modules),
    }))
    """
)


@pytest.mark.integration
def test_a_fresh_serving_process_imports_neither_sklearn_scipy_nor_pandas(
    cases: dict[str, Case],
) -> None:
    case = cases["impute-scale-onehot-logreg"]
    body = json.dumps(_dicts(case.rows))
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(case.path), body],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == 200, result["http"]
    _assert_matches(case, *_unpack(result["http"]))
    _assert_matches(case, *_unpack(result["direct"]))
    heavy = {m for m in result["modules"] if m.split(".")[0] in {"sklearn", "scipy", "pandas"}}
    assert not heavy, sorted(heavy)


# -- 422: a value the model cannot take --------------------------------------------------------


def _field_errors(answer: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = answer["errors"]
    return errors


def test_an_unknown_category_is_a_422_naming_the_field_and_its_allowed_values(
    cases: dict[str, Case],
) -> None:
    case = cases["impute-scale-onehot-logreg"]
    complete = int(np.flatnonzero(~_missing_rows(case))[0])
    record = _dicts(case.rows.iloc[[complete]])[0] | {"grade": UNSEEN}
    get = {k: _text(v) for k, v in record.items()}
    csv_row = ",".join(_text(record[c]) for c in case.rows.columns) + "\n"
    for status, answer in (
        _post_json(case.handler, [record]),
        _post_json(case.handler, record),
        _call(case.handler, "GET", params=get),
        _post_csv(case.handler, csv_row),
    ):
        text = json.dumps(answer)
        assert status == 422, answer
        assert "grade" in json.dumps(_field_errors(answer)), answer
        assert all(f"'{g}'" in text or f'"{g}"' in text for g in GRADES), answer
        assert UNSEEN not in text and UNSEEN[:8] not in text, answer
    status, answer = _post_json(case.handler, [record])
    assert _field_errors(answer)[0]["loc"] == [0, "grade"]


def test_null_for_a_required_feature_is_a_422_naming_it(cases: dict[str, Case]) -> None:
    for name in ("impute-scale-onehot-logreg", "numpy-by-position-logreg"):
        case = cases[name]
        record = _dicts(case.rows.iloc[:1])[0] | {"alcohol": None}
        status, answer = _post_json(case.handler, [record])
        assert status == 422, answer
        assert [e["loc"] for e in _field_errors(answer)] == [[0, "alcohol"]]
        get = {k: _text(v) for k, v in record.items()}  # "?alcohol=": not a number
        status, answer = _call(case.handler, "GET", params=get)
        assert status == 422, answer
        assert "alcohol" in json.dumps(_field_errors(answer))


class Plain(Schema):
    a: float = column(0, name="a")
    b: float | None = column(1, name="b", default=None)


class PlainLabel(Schema):
    predicted_label: int = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def test_a_missing_value_for_a_model_without_an_imputer_is_a_422_naming_it(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    path = tmp_path / "plain.zip"
    servefn.save(
        LogisticRegression().fit(X, y), path, input=Plain, output=PlainLabel, evaluate_on=(X, y)
    )
    handler = _handler(Shape("none", Plain, PlainLabel, lambda _: None), path)
    status, answer = _post_json(handler, [{"a": 0.5, "b": 1.0}])
    assert status == 200, answer
    for status, answer in (
        _post_json(handler, [{"a": 0.5, "b": 1.0}, {"a": 0.5, "b": None}]),
        _post_json(handler, [{"a": 0.5, "b": 1.0}, {"a": 0.5}]),
    ):
        assert status == 422, answer
        assert [(e["loc"], e["type"]) for e in _field_errors(answer)] == [([1, "b"], "missing")]
    for params in ({"a": "0.5", "b": ""}, {"a": "0.5"}):
        status, answer = _call(handler, "GET", params=params)
        assert status == 422, answer
        errors = _field_errors(answer)
        assert [e["type"] for e in errors] == ["missing"] and "b" in errors[0]["loc"], answer
