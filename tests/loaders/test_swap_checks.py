"""An archive that verifies but cannot predict never replaces a good model (issue 11, item 2).

Every bad model here loads (hashes, caps, schemas and predictor all rebuild) and fails the one
end-to-end check, ``servefn.model._probe.probe``: weights of the wrong shape, NaN or infinite
weights, classes that are not a list, not distinct or not one per score, output schemas asking
for a column the predictor does not produce or in another shape, custom predictors that raise
or answer wrongly. Through a ``ModelSource`` (the shipped ``MemoryLoader``, then a real file
through ``LocalLoader``) the refused model never serves: the last good one does, ``info()`` says
why in one line, and the refusal is remembered by etag (one conditional request per refresh
interval, no download, no parse). ``servefn upload`` refuses such a model before any network
call.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import servefn
from servefn import Schema, column
from servefn.errors import ArtifactError, ModelUnusable
from servefn.loaders import LocalLoader, MemoryLoader, ModelSource
from servefn.model._archive import LoadedModel, load_model, write_model
from servefn.model._probe import probe
from servefn.predictors import register_predictor
from servefn.predictors._npz import dump_arrays
from servefn.predictors.base import Outputs
from servefn.predictors.linear import LinearClassifier
from servefn.schema import layout_of
from support.iris import CLASSES, IrisData, IrisPrediction
from support.reliability import REFRESH, Clock, model_bytes, petal_model, rewrite
from support.standins import StatelessPredictor

GOOD = model_bytes()
GOOD_VERSION = load_model(GOOD).version


# -- archives that verify: edited, with every payload hash made right again ----------------------


def with_weights(weights: NDArray[Any], bias: NDArray[Any] | None = None) -> bytes:
    bias = np.zeros(weights.shape[1]) if bias is None else bias
    return rewrite(GOOD, files={"weights.npz": dump_arrays({"weights": weights, "bias": bias})})


def with_classes(classes: Any) -> bytes:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["predictor"]["classes"] = classes

    return rewrite(GOOD, manifest=edit)


def with_output(schema: type[Schema]) -> bytes:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["output"] = layout_of(schema).spec()

    return rewrite(GOOD, manifest=edit)


def weights(change: Callable[[NDArray[Any]], None]) -> NDArray[Any]:
    array = petal_model().weights.copy()
    change(array)
    return array


class ScoreIsOne(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: float = column(name="Score")


class TwoScores(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column((0, 1), name="Score")


class WithProbability(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")
    probability: float = column(name="Probability")


class LabelIsANumber(Schema):
    predicted_label: float = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Impossible(Schema):
    sepal_length: float = column(0, name="SepalLength", ge=5.0, le=1.0)
    sepal_width: float = column(1, name="SepalWidth")
    petal_length: float = column(2, name="PetalLength")
    petal_width: float = column(3, name="PetalWidth")


def with_input(schema: type[Schema]) -> bytes:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["input"] = layout_of(schema).spec()

    return rewrite(GOOD, manifest=edit)


# -- custom predictors: third-party code that loads and then misbehaves -------------------------


class Raises(StatelessPredictor):
    kind = "probe-test-raises"

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        raise RuntimeError("the predictor's native library is missing")


class Uniform(StatelessPredictor):
    """Answers every row with the first class and uniform scores; subclasses break one thing."""

    kind = "probe-test-uniform"
    classes: Any = None

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        n = X.shape[0]
        return {"PredictedLabel": np.array([CLASSES[0]] * n), "Score": np.full((n, 3), 1 / 3)}


class RowPathRaises(Uniform):
    """Answers a batch, fails on one row: the probe takes both paths a request can take."""

    kind = "probe-test-row-raises"

    def predict_row(self, row: Any) -> Outputs:
        raise IndexError("list index out of range")


class ExtraRow(Uniform):
    kind = "probe-test-extra-row"

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        return super().predict(np.vstack([X, X[:1]]))


class NanScores(Uniform):
    kind = "probe-test-nan-scores"

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        outputs = super().predict(X)
        with np.errstate(invalid="ignore"):  # 0 * inf: NaN for the zeros row
            outputs["Score"] = outputs["Score"] * X.sum(axis=1, keepdims=True) * np.inf
        return outputs


class InfScores(Uniform):
    kind = "probe-test-inf-scores"

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        outputs = super().predict(X)
        with np.errstate(over="ignore"):  # infinite for the ones row
            outputs["Score"][:, 1] = np.exp(X[:, 0] * 1e4)
        return outputs


class ClassesAString(Uniform):
    kind = "probe-test-classes-a-string"
    classes = "abc"


class ClassesRepeated(Uniform):
    kind = "probe-test-classes-repeated"
    classes = np.array([CLASSES[0], CLASSES[0], CLASSES[1]])


class UnknownLabel(Uniform):
    kind = "probe-test-unknown-label"
    classes = np.array(CLASSES)

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        outputs = super().predict(X)
        outputs["PredictedLabel"] = np.array(["Iris-unknown"] * X.shape[0])
        return outputs


class FourScoresThreeClasses(Uniform):
    kind = "probe-test-score-width"
    classes = np.array(CLASSES)

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        n = X.shape[0]
        return {"PredictedLabel": np.array([CLASSES[0]] * n), "Score": np.full((n, 4), 0.25)}


class NotAMapping(StatelessPredictor):
    kind = "probe-test-not-a-mapping"

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        return [CLASSES[0]] * X.shape[0]  # type: ignore[return-value]


CUSTOM = (
    Raises,
    Uniform,
    RowPathRaises,
    ExtraRow,
    NanScores,
    InfScores,
    ClassesAString,
    ClassesRepeated,
    UnknownLabel,
    FourScoresThreeClasses,
    NotAMapping,
)
for _kind in CUSTOM:
    register_predictor(_kind.kind, _kind)


def custom(predictor: type[StatelessPredictor]) -> bytes:
    buffer = io.BytesIO()
    write_model(buffer, predictor(), input=IrisData, output=IrisPrediction)
    return buffer.getvalue()


def loaded(
    predictor: Any,
    *,
    output: type[Schema] = IrisPrediction,
    input: type[Schema] = IrisData,
    params: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """A LoadedModel built directly, as load_model would: the probe alone, whatever load checks."""
    manifest = {"kind": predictor.kind, "predictor": dict(params or {})}
    return LoadedModel(predictor, input, output, manifest, "0" * 64, 0)


def linear(**changes: Any) -> LinearClassifier:
    model = petal_model()
    options = {"weights": model.weights, "bias": model.bias, "classes": CLASSES, **changes}
    return LinearClassifier(options["weights"], options["bias"], options["classes"])


PROBE = [
    pytest.param(lambda: loaded(linear(weights=np.ones((3, 3)))),
                 "4 features but the model expects 3", id="weights_for_3_features"),
    pytest.param(lambda: loaded(linear(weights=np.ones((5, 3)))),
                 "4 features but the model expects 5", id="weights_for_5_features"),
    pytest.param(lambda: loaded(NanScores()), "'Score' holds NaN or infinite", id="nan_scores"),
    pytest.param(lambda: loaded(InfScores()), "'Score' holds NaN or infinite", id="inf_scores"),
    pytest.param(lambda: loaded(linear(), params={"classes": "abc"}),
                 "classes are a str, not a list", id="manifest_classes_a_string"),
    pytest.param(lambda: loaded(linear(), params={"classes": {"a": 0}}),
                 "classes are a dict, not a list", id="manifest_classes_a_mapping"),
    pytest.param(lambda: loaded(ClassesAString()), "classes are not a list of labels",
                 id="predictor_classes_a_string"),
    pytest.param(lambda: loaded(ClassesRepeated()), "3 classes are not distinct",
                 id="classes_repeated"),
    pytest.param(lambda: loaded(FourScoresThreeClasses()), "3 classes but 4 scores per row",
                 id="scores_not_one_per_class"),
    pytest.param(lambda: loaded(linear(classes=[0, 1, 2])), "expected one str per row",
                 id="int_classes_for_a_str_label"),
    pytest.param(lambda: loaded(UnknownLabel()), "labels that are not among the model's classes",
                 id="label_outside_classes"),
    pytest.param(lambda: loaded(linear(), output=TwoScores),
                 "expected a list of 2 numbers per row (score: list[float]), found 3 float",
                 id="score_declared_for_2"),
    pytest.param(lambda: loaded(linear(), output=ScoreIsOne),
                 "'Score': expected one float per row (score: float), found 3 float values per row",
                 id="scalar_score"),
    pytest.param(lambda: loaded(linear(), output=WithProbability), "asks for ['Probability']",
                 id="output_column_not_produced"),
    pytest.param(lambda: loaded(Uniform(), output=WithProbability),
                 "'Probability' is not produced", id="custom_output_column_not_produced"),
    pytest.param(lambda: loaded(linear(), output=LabelIsANumber),
                 "'PredictedLabel': expected one float per row (predicted_label: float), "
                 "found one str per row", id="label_typed_float"),
    pytest.param(lambda: loaded(linear(), input=Impossible),
                 "'SepalLength' has bounds that admit no value", id="input_bounds_admit_nothing"),
    pytest.param(lambda: loaded(Raises()), "RuntimeError: the predictor's native library",
                 id="predict_raises"),
    pytest.param(lambda: loaded(RowPathRaises()), "IndexError", id="predict_row_raises"),
    pytest.param(lambda: loaded(ExtraRow()), "4 entries for a batch of 3 records",
                 id="one_row_too_many"),
    pytest.param(lambda: loaded(NotAMapping()), "gave a list, not output columns",
                 id="outputs_not_a_mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "reason"), PROBE)
def test_the_probe_refuses_a_model_that_cannot_predict_in_one_line(
    model: Callable[[], LoadedModel], reason: str
) -> None:
    with pytest.raises(ArtifactError) as raised:
        probe(model())
    message = str(raised.value)
    assert message.startswith("the model fails its end-to-end check: ")
    assert reason in message, message
    assert "\n" not in message and len(message) < 400
    assert raised.value.__cause__ is None  # a line, not a chain: no stack reaches health


def test_good_models_pass_the_probe(trained_model: Path) -> None:
    """No false refusal: the iris example's trained model, linear models with each score kind,
    a binary one, scikit-learn classifiers and a regressor, a custom predictor."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.svm import LinearSVC

    X = np.array([[5.1, 3.5, 1.4, 0.2], [6.4, 3.1, 5.5, 2.2], [5.9, 3.0, 4.2, 1.5]] * 5)
    y = ["Iris-setosa", "Iris-virginica", "Iris-versicolor"] * 5
    models = [load_model(trained_model), load_model(GOOD), load_model(custom(Uniform))]
    for score in ("softmax", "ovr", "decision"):
        kind: Any = score
        scorer = LinearClassifier(petal_model().weights, np.zeros(3), CLASSES, score=kind)
        models.append(load_model(model_bytes(scorer)))
    binary = LinearClassifier(np.ones((4, 1)), np.zeros(1), ["no", "yes"], score="logistic")
    models.append(load_model(model_bytes(binary)))

    class Amount(Schema):
        score: float = column(name="Score")

    for estimator, output in (
        (LogisticRegression(max_iter=500).fit(X, y), IrisPrediction),
        (LinearSVC().fit(X, y), IrisPrediction),
        (LinearRegression().fit(X, np.arange(len(X), dtype=float)), Amount),
    ):
        buffer = io.BytesIO()
        servefn.save(estimator, buffer, input=IrisData, output=output)
        models.append(load_model(buffer.getvalue()))
    for model in models:
        probe(model)


def test_the_probe_batch_stays_inside_the_input_schema() -> None:
    """Zeros, ones and in-between values, clamped into each column's bounds; integers for int
    columns; no NaN (the HTTP layer refuses missing values before any predictor); the one-row
    path is taken too."""
    seen: list[NDArray[Any]] = []

    class Recorder(StatelessPredictor):
        kind = "probe-test-recorder"

        def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
            seen.append(np.array(X))
            return {"Score": np.zeros(X.shape[0])}

    class Bounded(Schema):
        low: float = column(0, name="Low", ge=10.0, le=20.0)
        strict: float = column(1, name="Strict", gt=0.5, lt=0.75)
        count: int = column(2, name="Count", ge=3)
        flag: bool = column(3, name="Flag")
        maybe: float | None = column(4, name="Maybe", default=None)
        vector: list[float] = column((5, 7), name="Vector")
        target: str = column(8, name="Target", role="label")

    class Amount(Schema):
        score: float = column(name="Score")

    probe(loaded(Recorder(), input=Bounded, output=Amount))

    batch, one = seen
    assert batch.shape == (3, 8) and one.shape == (1, 8)
    assert np.isfinite(batch).all()
    assert ((batch[:, 0] >= 10) & (batch[:, 0] <= 20)).all()
    assert ((batch[:, 1] > 0.5) & (batch[:, 1] < 0.75)).all()
    assert (batch[:, 2] >= 3).all() and (batch[:, 2] == np.round(batch[:, 2])).all()
    assert set(batch[:, 3]) == {0.0, 1.0}
    assert (one == batch[:1]).all()


# -- a refused model never replaces a good one ---------------------------------------------------

ARCHIVES = [
    pytest.param(lambda: with_weights(np.ones((3, 3))), "4 features but the model expects 3",
                 id="weights_for_3_features"),
    pytest.param(lambda: with_weights(np.ones((5, 3))), "4 features but the model expects 5",
                 id="weights_for_5_features"),
    pytest.param(lambda: with_weights(weights(lambda w: w.__setitem__((2, 1), np.nan))),
                 "NaN or infinit", id="nan_weight"),
    pytest.param(lambda: with_weights(weights(lambda w: w.__setitem__((0, 0), np.inf))),
                 "NaN or infinit", id="inf_weight"),
    pytest.param(lambda: with_weights(petal_model().weights, np.array([0.0, np.nan, 0.0])),
                 "NaN or infinit", id="nan_bias"),
    pytest.param(lambda: with_classes("abc"), "classes", id="classes_a_string"),
    pytest.param(lambda: with_classes(["a", "a", "b"]), "classes", id="classes_repeated"),
    pytest.param(lambda: with_classes(["a", "b"]), "classes", id="two_classes_for_three_columns"),
    pytest.param(lambda: with_classes([0, 1, 2]), "PredictedLabel", id="int_classes"),
    pytest.param(lambda: with_output(TwoScores), "list of 2 numbers", id="score_declared_for_2"),
    pytest.param(lambda: with_output(ScoreIsOne), "'Score': expected one float", id="scalar_score"),
    pytest.param(lambda: with_output(WithProbability), "Probability", id="column_not_produced"),
    pytest.param(lambda: with_output(LabelIsANumber), "PredictedLabel", id="label_typed_float"),
    pytest.param(lambda: with_input(Impossible), "admit no value", id="input_bounds_impossible"),
    pytest.param(lambda: custom(Raises), "RuntimeError", id="custom_predict_raises"),
    pytest.param(lambda: custom(RowPathRaises), "IndexError", id="custom_predict_row_raises"),
    pytest.param(lambda: custom(NanScores), "NaN or infinite", id="custom_nan_scores"),
]  # fmt: skip
"""Archives that verify and cannot serve: refused by load_model or by the probe (which of the
two does not matter to a source: both are permanent refusals of that artifact)."""


@pytest.mark.parametrize(("bad", "reason"), ARCHIVES)
def test_a_refused_swap_keeps_the_last_good_model_and_says_why(
    bad: Callable[[], bytes], reason: str
) -> None:
    loader, clock = MemoryLoader(GOOD), Clock()
    source = ModelSource(loader, refresh_after=REFRESH, clock=clock)
    assert source.get().version == GOOD_VERSION
    loader.set(bad())
    clock.advance()

    assert source.get().version == GOOD_VERSION
    info = source.info()
    assert (info["state"], info["version"]) == ("stale", GOOD_VERSION)
    assert info["failure"] == "permanent" and info["cause"] in ("check", "predictor", "artifact")
    assert reason in info["last_error"] and "\n" not in info["last_error"], info["last_error"]
    assert info["last_error"].startswith(f"artifact with etag {loader.etag} refused: ")
    assert info["next_check_in"] == REFRESH
    assert (source.stats.loads, loader.downloads) == (1, 2)

    # remembered by etag: one conditional request per refresh interval, nothing downloaded
    for interval in range(1, 6):
        for _ in range(50):
            assert source.get().version == GOOD_VERSION
        assert loader.fetches == 1 + interval
        clock.advance()
    assert (source.stats.loads, loader.downloads) == (1, 2)

    newer = model_bytes(serial=1)
    loader.set(newer)
    clock.advance()
    assert source.get().version == load_model(newer).version
    info = source.info()
    assert (info["state"], info["failure"], info["last_error"]) == ("ready", None, None)


def test_a_first_load_that_fails_the_probe_is_refused_and_retried_at_the_refresh_interval() -> None:
    loader, clock = MemoryLoader(with_output(ScoreIsOne)), Clock()
    source = ModelSource(loader, refresh_after=REFRESH, clock=clock)
    for _ in range(20):
        with pytest.raises(ModelUnusable, match="fails its end-to-end check") as raised:
            source.get()
    assert raised.value.cause == "check"
    assert raised.value.retry_after == REFRESH
    assert (loader.fetches, loader.downloads, source.stats.loads) == (1, 1, 0)
    assert source.info()["state"] == "unusable"

    loader.set(GOOD)
    clock.advance()
    assert source.get().version == GOOD_VERSION


def test_a_refused_file_keeps_the_last_good_model_through_a_local_loader(tmp_path: Path) -> None:
    """The same through a real file: a new file (a new stat etag) is read once and refused."""
    path = tmp_path / "model.zip"
    path.write_bytes(GOOD)
    clock = Clock()
    source = ModelSource(LocalLoader(path), refresh_after=REFRESH, clock=clock)
    assert source.get().version == GOOD_VERSION

    (tmp_path / "new.zip").write_bytes(with_output(ScoreIsOne))
    (tmp_path / "new.zip").replace(path)
    os.utime(path, ns=(1, 1))  # another mtime whatever the clock's resolution: a new etag
    for _ in range(3):
        clock.advance()
        assert source.get().version == GOOD_VERSION
    info = source.info()
    assert info["state"] == "stale" and "fails its end-to-end check" in info["last_error"]
    assert (info["failure"], info["cause"]) == ("permanent", "check")
    assert (source.stats.downloads, source.stats.loads) == (2, 1)

    good_again = model_bytes(serial=2)
    (tmp_path / "new.zip").write_bytes(good_again)
    (tmp_path / "new.zip").replace(path)
    clock.advance()
    assert source.get().version == load_model(good_again).version


# -- servefn upload: refused before any network call ---------------------------------------------


@pytest.mark.parametrize("destination", ["blob://models/model.zip", "az://models/model.zip"])
def test_upload_refuses_a_model_that_fails_the_probe_before_any_network_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, destination: str
) -> None:
    from servefn.loaders import upload

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("storage was contacted for a model that fails the probe")

    monkeypatch.setattr(upload, "_upload_blob", no_network)
    monkeypatch.setattr(upload, "_upload_fsspec", no_network)
    monkeypatch.setattr(upload, "require", no_network)
    path = tmp_path / "model.zip"
    path.write_bytes(with_output(ScoreIsOne))
    with pytest.raises(ArtifactError) as raised:
        upload.upload_model(path, destination, connection="UseDevelopmentStorage=true")
    message = str(raised.value)
    assert "fails its end-to-end check" in message and "nothing was uploaded" in message
    assert "\n" not in message


def test_servefn_upload_exits_1_with_one_line_for_a_model_that_fails_the_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from servefn.cli import main
    from servefn.loaders import upload

    monkeypatch.setattr(upload, "_upload_blob", lambda *a, **k: pytest.fail("storage contacted"))
    path = tmp_path / "model.zip"
    path.write_bytes(custom(Raises))
    code = main(["upload", str(path), "models/model.zip"])
    err = capsys.readouterr().err
    assert code == 1
    assert "fails its end-to-end check" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
