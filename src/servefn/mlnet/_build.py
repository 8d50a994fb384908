"""The symbolic pipeline as servefn's own parts: input and output schemas, a transform stage and
the final predictor (linear classifier or regressor, or tree ensemble).

The input schema lists ML.NET's input columns in order, wire names as ML.NET names them; the
columns the served outputs read are features (string columns as categorical text), the label
column is the optional ``label`` and the rest optional ``ignore``. The transform stage, when one
is needed, has two steps: the used inputs, passed through or one-hot encoded (unknown values all
zeros, ``ignore``), then the features in the model's order through one affine op (ML.NET's
normalizers, composed). Outputs follow ML.NET: ``Score`` for a regressor, ``PredictedLabel``
and ``Score`` for a classifier, keys mapped back to the label's values.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

import numpy as np

from servefn.mlnet._binary import MlnetError
from servefn.mlnet._fasttree import TreeModel
from servefn.mlnet._models import LinearModel, Prediction
from servefn.mlnet._pipeline import Pipeline, Source
from servefn.mlnet._treemap import servefn_trees
from servefn.predictors import Predictor
from servefn.predictors._encoders import Categories, OneHot
from servefn.predictors._ops import Affine
from servefn.predictors._transform import Block, ColumnStep, Transform
from servefn.schema._schema import reserved_name

__all__ = ["input_spec", "output_spec", "predictor"]

_KINDS = {"float32": "float", "float64": "float", "text": "str", "bool": "bool"}


def _field(name: str, taken: set[str]) -> str:
    """A Python identifier for an ML.NET column name (``SepalLength`` -> ``sepal_length``)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    base = re.sub(r"\W+", "_", snake, flags=re.ASCII).strip("_")[:60] or "column"
    if base[0].isdigit() or keyword.iskeyword(base) or reserved_name(base):
        base = f"column_{base}"
    field, n = base, 2
    while field in taken:
        field, n = f"{base}_{n}", n + 1
    taken.add(field)
    return field


def input_spec(
    pipeline: Pipeline, nullable_numbers: bool
) -> tuple[dict[str, Any], dict[Source, int]]:
    """The input schema spec, and each used input value's feature-matrix column."""
    used = pipeline.used_sources()
    label = pipeline.label_column()
    columns: list[dict[str, Any]] = []
    positions: dict[Source, int] = {}
    taken: set[str] = set()
    index = width = 0
    skipped = False
    for i, (name, kind) in enumerate(pipeline.inputs):
        vector = kind.size > 0
        base = _KINDS.get(kind.item, "int" if kind.integer else None)
        if base is None or kind.size < 0 or (vector and base != "float"):
            if i in used:
                raise MlnetError(
                    f"ML.NET model: input column {name!r} of type {kind} is not supported"
                )
            skipped = True
            index += max(kind.size, 1)
            continue
        role = "feature" if i in used else ("label" if i == label else "ignore")
        column: dict[str, Any] = {
            "field": _field(name, taken),
            "name": name,
            "type": "vector" if vector else base,
            "index": [index, index + kind.size - 1] if vector else index,
            "role": role,
        }
        if role == "feature":
            nullable = nullable_numbers and base == "float"
            column |= {"required": True, "nullable": nullable}
            for slot in range(kind.width):
                positions[Source(i, slot)] = width + slot
            width += kind.width
        else:
            column |= {"required": False, "nullable": True, "default": None}
        columns.append(column)
        index += kind.width
    if not positions:
        raise MlnetError("ML.NET model: its outputs read no input column")
    spec = {"title": "ModelInput", "extra": "ignore" if skipped else "forbid", "columns": columns}
    return spec, positions


def output_spec(classes: list[Any] | None) -> dict[str, Any]:
    score = {
        "field": "score",
        "name": "Score",
        "role": "feature",
        "required": True,
        "nullable": False,
    }
    if classes is None:
        return {"title": "ModelOutput", "extra": "forbid", "columns": [score | {"type": "float"}]}
    kind = {bool: "bool", int: "int", float: "float", str: "str"}[type(classes[0])]
    label: dict[str, Any] = {"field": "predicted_label", "name": "PredictedLabel", "type": kind}
    label["role"] = "feature"
    label |= {"required": True, "nullable": False}
    return {
        "title": "ModelOutput",
        "extra": "forbid",
        "columns": [label, score | {"type": "vector"}],
    }


def _transform(
    pipeline: Pipeline, positions: dict[Source, int], names: list[str]
) -> Transform | None:
    """The transform stage, or None when the features are the used inputs, in order, as is."""
    atoms, slots = pipeline.atoms, pipeline.features
    plain = all(
        atoms[s.atom].encoder < 0 and (s.sub, s.mul, s.add) == (0.0, 1.0, 0.0) for s in slots
    )
    if plain and [positions[atoms[s.atom].source] for s in slots] == list(range(len(names))):
        return None
    blocks: list[Block] = []
    out_of: dict[int, int] = {}  # atom -> step-1 output column
    encoded: dict[int, int] = {}  # encoder -> its first step-1 output column
    width = 0
    for slot in slots:
        atom = atoms[slot.atom]
        if slot.atom in out_of:
            continue
        column = positions[atom.source]
        if atom.encoder < 0:
            blocks.append(Block([column], []))
            out_of[slot.atom] = width
            width += 1
            continue
        if atom.encoder not in encoded:
            terms = pipeline.encoders[atom.encoder][1].terms
            blocks.append(Block([column], [OneHot([Categories(terms)], [None], ignore=True)]))
            encoded[atom.encoder] = width
            width += len(terms)
        out_of[slot.atom] = encoded[atom.encoder] + atom.code
    first = ColumnStep(len(names), blocks)
    order = [out_of[s.atom] for s in slots]
    affine = {
        "sub": np.array([s.sub for s in slots]),
        "div": np.ones(len(slots)),
        "mul": np.array([s.mul for s in slots]),
        "add": np.array([s.add for s in slots]),
    }
    if not all(np.isfinite(t).all() for t in affine.values()):
        raise MlnetError("ML.NET model: a normalizer's scale or offset is infinite")
    identity = all((affine[t] == v).all() for t, v in (("sub", 0), ("mul", 1), ("add", 0)))
    second = ColumnStep(width, [Block(order, [] if identity else [Affine(affine)])])
    return Transform(names, [first, second])


def _binary_platt(model: Any) -> float | None:
    """The slope of a Platt calibrator that only rescales the margin (offset 0, slope < 0, as
    ML.NET's logistic regressions and FastTree hold): its probability is then exact and its label
    agrees with ML.NET's ``Score > 0``. None otherwise."""
    cal = model.calibration
    if cal is not None and cal.kind == "platt" and cal.offset == 0.0 and cal.slope < 0.0:
        return float(-cal.slope)
    return None


def _final(p: Prediction, classes: list[Any] | None) -> tuple[Predictor, str]:
    from servefn.predictors.linear import LinearClassifier, ScoreKind
    from servefn.predictors.linear_regression import LinearRegressor
    from servefn.predictors.trees import TreeEnsemble

    model = p.model
    if p.task == "binary" and (p.threshold != 0.0 or p.threshold_column != "Score"):
        raise MlnetError(
            f"ML.NET model: its binary threshold ({p.threshold_column} > {p.threshold:g}) is not "
            "supported; servefn serves ML.NET's default, Score > 0"
        )
    if isinstance(model, LinearModel):
        if model.task == "multiclass":
            kind: ScoreKind = "softmax" if model.softmax else "decision"
            return LinearClassifier(model.weights, model.bias, classes or [], score=kind), kind
        if model.task == "binary":
            slope = _binary_platt(model)
            if slope is not None:
                w, b = model.weights * slope, model.bias * slope
                return LinearClassifier(w, b, [False, True], score="logistic"), "probability"
            return LinearClassifier(
                model.weights, model.bias, [False, True], score="decision"
            ), "margin"
        if model.task == "poisson":  # ML.NET scores exp(w.x + b)
            return LinearRegressor(model.weights, model.bias, link="exp"), "value (exp link)"
        return LinearRegressor(model.weights, model.bias), "value"
    if not isinstance(model, TreeModel):
        raise MlnetError(f"ML.NET model: model {type(model).__name__} is not supported")
    common: dict[str, Any] = {
        "n_features": model.n_features,
        "float32_input": True,
        "accepts_missing": True,
        "source": f"ML.NET {model.loader}",
    }
    if model.task == "regression":
        scale = 1.0 / len(model.trees) if model.average else 1.0
        trees = servefn_trees(model.trees)
        return TreeEnsemble.from_trees(trees, base=[0.0], scale=scale, **common), "value"
    slope = _binary_platt(model)
    if slope is not None:
        trees = servefn_trees(model.trees)
        ensemble = TreeEnsemble.from_trees(
            trees, base=[0.0], scale=slope, link="logistic", classes=[False, True], **common
        )
        return ensemble, "probability"
    trees = servefn_trees(model.trees, target=1)
    ensemble = TreeEnsemble.from_trees(trees, base=[0.0, 0.0], classes=[False, True], **common)
    return ensemble, "margin (column 1; column 0 is 0)"


def predictor(pipeline: Pipeline) -> tuple[Predictor, dict[str, Any], dict[str, Any], str]:
    """The served predictor, the input and output schema specs, and what Score holds."""
    from servefn.predictors.transformed import TransformedPredictor
    from servefn.schema import layout_of, schema_from_spec

    p, outputs = pipeline.outputs()
    classes = outputs["classes"]
    trees = isinstance(p.model, TreeModel)
    spec, positions = input_spec(pipeline, nullable_numbers=trees)
    names = list(layout_of(schema_from_spec(spec)).feature_names)
    final, score = _final(p, classes)
    transform = _transform(pipeline, positions, names)
    served: Predictor = final if transform is None else TransformedPredictor(transform, final)
    return served, spec, output_spec(classes), score
