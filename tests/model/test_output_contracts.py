"""``save`` refuses an output schema that does not fit what the predictor produces: the rule the
end-to-end check applies before a model serves, so what saves also serves."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

import servefn
from servefn import Schema, column, load_model
from servefn.errors import ArtifactError
from servefn.model._archive import write_model
from servefn.model._probe import probe


class Features(Schema):
    a: float = column(0)
    b: float = column(1)
    c: float = column(2)


class Scores(Schema):
    label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class OneScore(Schema):
    label: str = column(name="PredictedLabel")
    score: float = column(name="Score")


class TwoScores(Schema):
    label: str = column(name="PredictedLabel")
    score: list[float] = column((0, 1), name="Score")


class NumericLabel(Schema):
    label: float = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Amount(Schema):
    score: float = column(name="Score")


class Amounts(Schema):
    score: list[float] = column(name="Score")


RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 3))
BINARY = np.where(X[:, 0] > 0, "yes", "no")
MULTI = np.array(["a", "b", "c"])[np.argmax(X, axis=1)]
TARGET = X @ np.array([1.0, -2.0, 0.5]) + 3.0


def binary() -> Any:
    return LogisticRegression().fit(X, BINARY)


def multiclass() -> Any:
    return LogisticRegression(max_iter=500).fit(X, MULTI)


def regressor() -> Any:
    return LinearRegression().fit(X, TARGET)


def ridge() -> Any:
    return Ridge().fit(X, TARGET)


RIGHT = [
    pytest.param(binary, BINARY, Scores, id="binary-classifier"),
    pytest.param(multiclass, MULTI, Scores, id="multiclass-classifier"),
    pytest.param(regressor, TARGET, Amount, id="linear-regression"),
    pytest.param(ridge, TARGET, Amount, id="ridge"),
]

WRONG = [
    pytest.param(
        binary,
        BINARY,
        OneScore,
        "the output column 'Score': expected one float per row (score: float), "
        "found 2 float values per row",
        id="binary-scores-declared-float",
    ),
    pytest.param(
        multiclass,
        MULTI,
        TwoScores,
        "the output column 'Score': expected a list of 2 numbers per row (score: list[float]), "
        "found 3 float values per row",
        id="multiclass-scores-declared-two",
    ),
    pytest.param(
        multiclass,
        MULTI,
        NumericLabel,
        "the output column 'PredictedLabel': expected one float per row (label: float), "
        "found one str per row",
        id="string-classes-declared-float",
    ),
    pytest.param(
        regressor,
        TARGET,
        Amounts,
        "the output column 'Score': expected a list of numbers per row (score: list[float]), "
        "found one float per row",
        id="regressor-score-declared-list",
    ),
    pytest.param(
        ridge,
        TARGET,
        Scores,
        "Scores asks for ['PredictedLabel'], which a linear-regressor model does not produce; "
        "it produces ['Score']",
        id="regressor-with-a-label",
    ),
]


@pytest.mark.parametrize(("make", "y", "output"), RIGHT)
@pytest.mark.parametrize("evaluate", [True, False], ids=["evaluate_on", "probe"])
def test_a_matching_output_schema_saves_and_serves(
    tmp_path: Path, make: Any, y: Any, output: type[Schema], evaluate: bool
) -> None:
    path = tmp_path / "model.zip"
    evaluate_on = (X, y) if evaluate else None
    servefn.save(make(), path, input=Features, output=output, evaluate_on=evaluate_on)
    model = load_model(path)
    probe(model)
    answer = model.predict([{"a": 0.5, "b": -1.0, "c": 2.0}])[0]
    assert set(answer.model_dump(by_alias=True)) == {
        info.alias or name for name, info in output.model_fields.items()
    }


@pytest.mark.parametrize(("make", "y", "output", "reason"), WRONG)
@pytest.mark.parametrize("evaluate", [True, False], ids=["evaluate_on", "probe"])
def test_a_mismatched_output_schema_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, make: Any, y: Any, output: type[Schema], reason: str, evaluate: bool
) -> None:
    path = tmp_path / "model.zip"
    evaluate_on = (X, y) if evaluate else None
    with pytest.raises(ArtifactError) as raised:
        servefn.save(make(), path, input=Features, output=output, evaluate_on=evaluate_on)
    message = str(raised.value)
    assert reason in message and "\n" not in message, message
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_exactly_what_the_check_before_serving_refuses() -> None:
    """One rule: an archive written without the check fails the probe with the same line."""
    from servefn.predictors.sklearn_linear import linear_from_sklearn

    predictor = linear_from_sklearn(binary())
    buffer = io.BytesIO()
    write_model(buffer, predictor, input=Features, output=OneScore)
    with pytest.raises(ArtifactError) as at_load:
        probe(load_model(buffer.getvalue()))
    with pytest.raises(ArtifactError) as at_save:
        servefn.save(predictor, io.BytesIO(), input=Features, output=OneScore)
    assert str(at_save.value) == str(at_load.value)
