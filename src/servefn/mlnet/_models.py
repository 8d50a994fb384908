"""Decoders of ML.NET's prediction transformers, linear model parameters and calibrators.

A prediction transformer (``Scorers/PredictionTransformer.cs``) holds its model in ``Model``,
the schema it was trained on in ``TrainSchema`` and its column names; the model parameters are
ModelParametersBase (``sizeof(float)``) followed by their own block:
``LinearModelParameters.cs`` (bias, weights dense or sparse; binary, regression, Poisson),
``MulticlassLogisticRegression.cs`` (biases and a class-by-feature weight matrix, dense or CSR;
MulticlassLinear scores raw margins, MaximumEntropy a softmax) and ``Prediction/Calibrator.cs``
(Platt: ``1 / (1 + exp(slope * x + offset))``, PAV pieces). Every count, index and label map is
checked against the others and against the training schema before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.mlnet._binary import MlnetError, Reader
from servefn.mlnet._context import Context
from servefn.mlnet._dataview import ColumnType, read_schema
from servefn.mlnet._transforms import DECODERS, Step, show
from servefn.model._limits import MAX_CLASSES, MAX_FEATURES

__all__ = ["Calibration", "LinearModel", "Prediction", "decode_model"]

_SHOWN_CLASSES = 16  # classes whose weights inspect lists


@dataclass
class Calibration:
    """A binary classifier's calibrator: Platt (``slope``, ``offset``) or PAV (pieces)."""

    kind: str
    slope: float = 0.0
    offset: float = 0.0
    pieces: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 3)))

    def summary(self) -> str:
        if self.kind == "platt":
            return f"Platt: P = 1 / (1 + exp({self.slope:.6g} * score + {self.offset:.6g}))"
        return f"PAV: {len(self.pieces)} pieces"


@dataclass
class LinearModel:
    """``Score = X @ weights + bias`` (n_features x outputs); ``task`` regression, poisson,
    binary or multiclass; ``softmax`` for MaximumEntropy."""

    loader: str
    task: str
    weights: NDArray[np.float64]
    bias: NDArray[np.float64]
    softmax: bool = False
    label_names: list[str] | None = None
    calibration: Calibration | None = None

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.weights.shape[1])

    def summary(self) -> dict[str, Any]:
        w = self.weights
        out: dict[str, Any] = {"model": self.loader, "features": self.n_features}
        if self.task == "multiclass":
            out["classes"] = self.n_classes
            out["post-transform"] = "softmax" if self.softmax else "none (raw margins)"
            out["biases"] = show(self.bias.tolist())
        else:
            out["bias"] = float(self.bias[0])
        out["weights"] = f"{w.shape[0]} x {w.shape[1]}, {int((w != 0).sum())} non-zero, " + (
            f"|w| <= {float(np.abs(w).max()):.6g}" if w.size else "empty"
        )
        if self.task != "multiclass":
            out["weight values"] = show(w[:, 0].tolist())
        else:
            names = self.label_names or [f"class {c}" for c in range(self.n_classes)]
            for c, name in enumerate(names[:_SHOWN_CLASSES]):
                out[f"weights of {name}"] = show(w[:, c].tolist())
        if self.label_names is not None:
            out["label names"] = show(self.label_names)
        if self.calibration is not None:
            out["calibrator"] = self.calibration.summary()
        return out


@dataclass
class Prediction:
    """A prediction transformer: its task, columns, training schema and model."""

    task: str
    features: str
    label: str | None
    score: str
    predicted: str
    threshold: float
    threshold_column: str
    train_schema: list[tuple[str, ColumnType]]
    model: Any


def _parameters_base(ctx: Context) -> None:
    if ctx.reader.i32() != 4:
        raise ctx.reader.fail("sizeof(float) is not 4 (a model saved by an incompatible version)")


def _finite(ctx: Context, values: NDArray[Any], what: str) -> NDArray[np.float64]:
    if not np.isfinite(values).all():
        raise ctx.reader.fail(f"its {what} hold NaN or infinity")
    return values.astype(np.float64)


def _linear(ctx: Context, task: str) -> LinearModel:
    """LinearModelParameters: bias, length, indices, weights (dense or sparse)."""
    reader = ctx.reader
    _parameters_base(ctx)
    bias = reader.f32()
    n = reader.i32()
    if not 0 < n <= MAX_FEATURES:
        raise reader.fail(f"{n} features (1 to {MAX_FEATURES})")
    indices = reader.counted("i4", "weight indices", limit=n - 1)
    if len(indices) and ((np.diff(indices) <= 0).any() or indices[0] < 0 or indices[-1] >= n):
        raise reader.fail("its weight indices are not increasing within the features")
    values = reader.counted("f4", "weights", limit=n)
    if len(values) != len(indices) and not (len(indices) == 0 and len(values) == n):
        raise reader.fail(f"{len(values)} weights for {len(indices)} indices of {n} features")
    weights = np.zeros(n)
    if len(values):
        weights[indices if len(indices) else np.arange(n)] = _finite(ctx, values, "weights")
    bias_array = _finite(ctx, np.array([bias]), "bias")
    return LinearModel(ctx.loader, task, weights[:, None], bias_array)


def _multiclass(ctx: Context) -> LinearModel:
    """LinearMulticlassModelParametersBase: biases, then the weights dense or in CSR."""
    reader = ctx.reader
    _parameters_base(ctx)
    n_features, n_classes = reader.i32(), reader.i32()
    if not (0 < n_features <= MAX_FEATURES and 0 < n_classes <= MAX_CLASSES):
        raise reader.fail(f"{n_features} features and {n_classes} classes")
    biases = _finite(ctx, reader.array("f4", n_classes, "biases"), "biases")
    weights = np.zeros((n_features, n_classes))
    n_starts = reader.i32()
    if n_starts == 0:
        if reader.i32() != 0 or reader.i32() != n_classes * n_features:
            raise reader.fail("a dense weight matrix of the wrong size")
        dense = reader.array("f4", n_classes * n_features, "weights")
        weights[:] = _finite(ctx, dense, "weights").reshape(n_classes, n_features).T
    else:
        if n_starts != n_classes + 1:
            raise reader.fail(f"{n_starts} row starts for {n_classes} classes")
        starts = reader.array("i4", n_starts, "row starts").astype(np.int64)
        if starts[0] != 0 or (np.diff(starts) < 0).any() or reader.i32() != starts[-1]:
            raise reader.fail("its row starts are not increasing from 0")
        columns = reader.array("i4", int(starts[-1]), "column indices")
        for c in range(n_classes):
            row = columns[starts[c] : starts[c + 1]]
            if len(row) and ((np.diff(row) <= 0).any() or row[0] < 0 or row[-1] >= n_features):
                raise reader.fail(f"class {c}'s column indices are not increasing")
        if reader.i32() != starts[-1]:
            raise reader.fail("its value count does not match its indices")
        values = _finite(ctx, reader.array("f4", int(starts[-1]), "weights"), "weights")
        for c in range(n_classes):
            weights[columns[starts[c] : starts[c + 1]], c] = values[starts[c] : starts[c + 1]]
    model = LinearModel(ctx.loader, "multiclass", weights, biases)
    model.softmax = ctx.loader == "MultiClassLRExec"
    names = ctx.stream("LabelNames")
    if names is not None:
        ids = Reader(names, f"{ctx.directory}\\LabelNames").array("i4", n_classes, "label names")
        if (ids < 0).any() or (ids >= len(ctx.strings)).any():
            raise reader.fail("a label name id is outside its string table")
        model.label_names = [ctx.strings[i] for i in ids.tolist()]
    return model


def _platt(ctx: Context) -> Calibration:
    ctx.check_version("PLATTCAL", 0x00010001)
    slope, offset = ctx.reader.f64(), ctx.reader.f64()
    if not (np.isfinite(slope) and np.isfinite(offset)):
        raise ctx.reader.fail("its slope or offset is not finite")
    return Calibration("platt", slope, offset)


def _pav(ctx: Context) -> Calibration:
    ctx.check_version("PAV  CAL", 0x00010001)
    reader = ctx.reader
    if reader.i32() != 4:
        raise reader.fail("sizeof(float) is not 4")
    n = reader.count("pieces", 12)
    pieces = reader.array("f4", 3 * n, "pieces").astype(np.float64).reshape(n, 3)
    lo, hi, value = pieces[:, 0], pieces[:, 1], pieces[:, 2]
    if not np.isfinite(pieces).all() or (lo > hi).any() or (lo[1:] <= hi[:-1]).any():
        raise reader.fail("its pieces are not ordered intervals")
    if (np.diff(value) <= 0).any() or (n and (value[0] < 0 or value[-1] > 1)):
        raise reader.fail("its values do not increase within [0, 1]")
    return Calibration("isotonic", pieces=pieces)


_CALIBRATORS = {"PlattCaliExec": _platt, "PAVCaliExec": _pav}
_WRAPPERS = {
    "FeatWCaliPredExec": "FTWTCALP",
    "PMixCaliPredExec": "PMIXCALP",
    "SchemaBindableCalibrated": "BINDCALI",
}
_LINEAR = {
    "LinearRegressionExec": ("LIN RGRS", "regression"),
    "PoissonRegressionExec": ("POI RGRS", "poisson"),
    "Linear2CExec": ("LINEAR2C", "binary"),
}


def calibration(ctx: Context) -> Calibration:
    decoder = _CALIBRATORS.get(ctx.loader)
    if decoder is None:
        raise _unsupported("calibrator", ctx)
    result = decoder(ctx)
    ctx.done()
    return result


def _unsupported(what: str, ctx: Context) -> MlnetError:
    where = ctx.directory.replace("/", "\\")
    return MlnetError(f"ML.NET model: {what} {ctx.loader!r} in {where} is not supported")


def decode_model(ctx: Context) -> Any:
    """The model parameters in ``ctx``: a :class:`LinearModel` or a tree model."""
    from servefn.mlnet._fasttree import TREE_LOADERS, decode_trees

    loader = ctx.loader
    if loader in _WRAPPERS:
        ctx.check_version(_WRAPPERS[loader], 0x00010001)
        model = decode_model(ctx.need("Predictor"))
        if getattr(model, "task", None) != "binary" or model.calibration is not None:
            raise ctx.reader.fail("it calibrates a model that is not an uncalibrated binary one")
        model.calibration = calibration(ctx.need("Calibrator"))
        ctx.done()
        return model
    if loader in ("MulticlassLinear", "MultiClassLRExec"):
        if loader == "MulticlassLinear":
            ctx.check_version("MCLINEAR", 0x00010001)
        else:
            ctx.check_version("MULTI LR", 0x00010003)
        model = _multiclass(ctx)
    elif loader in _LINEAR:
        signature, task = _LINEAR[loader]
        ctx.check_version(signature, 0x00020002 if task == "binary" else 0x00020001, 0x00020001)
        model = _linear(ctx, task)
    elif loader in TREE_LOADERS:
        model = decode_trees(ctx)
    else:
        raise _unsupported("model", ctx)
    ctx.done()
    if model.task == "binary":
        sub = ctx.sub("Calibrator")
        if sub is not None:
            model.calibration = calibration(sub)
    return model


_PREDICTORS = {
    "RegressionPredXfer": ("REG PRED", "regression", 0x00010001),
    "BinaryPredXfer": ("BIN PRED", "binary", 0x00010001),
    "MulticlassPredXfer": ("MC  PRED", "multiclass", 0x00010002),
}


def _prediction(ctx: Context) -> list[Step]:
    signature, task, newest = _PREDICTORS[ctx.loader]
    ctx.check_version(signature, newest)
    model = decode_model(ctx.need("Model"))
    data = ctx.stream("TrainSchema")
    if data is None:
        raise ctx.reader.fail("its TrainSchema stream is missing")
    train = read_schema(data, f"{ctx.directory}\\TrainSchema".replace("/", "\\"))
    features = ctx.string_or_none()
    threshold, threshold_column, label = 0.0, "Score", None
    score, predicted = "Score", "PredictedLabel"
    if task == "binary":
        threshold, threshold_column = ctx.reader.f32(), ctx.string()
    if task == "multiclass":
        label = ctx.string_or_none()
        if ctx.version_written >= 0x00010002:
            score = ctx.string_or_none() or score
            predicted = ctx.string_or_none() or predicted
    kinds = {"regression": ("regression", "poisson"), "binary": ("binary",)}
    if model.task not in kinds.get(task, ("multiclass",)):
        raise ctx.reader.fail(f"a {task} transformer holds a {model.task} model")
    types = dict(train)
    if features is None or features not in types:
        raise ctx.reader.fail(f"its feature column {features!r} is not in its TrainSchema")
    if types[features] != ColumnType("float32", model.n_features):
        raise ctx.reader.fail(
            f"its feature column {features!r} is {types[features]} in TrainSchema, but the "
            f"model takes float32[{model.n_features}]"
        )
    prediction = Prediction(
        task, features, label, score, predicted, threshold, threshold_column, train, model
    )
    params = model.summary() | {"train schema": show(f"{n}: {t}" for n, t in train)}
    if task == "binary":
        params["threshold"] = f"{threshold_column} > {threshold:.6g}"
    return [
        Step(ctx.directory, ctx.loader, "predict", [(score, [features])], params, model=prediction)
    ]


for _loader in _PREDICTORS:
    DECODERS[_loader] = _prediction
