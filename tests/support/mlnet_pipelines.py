"""Synthetic ML.NET pipelines written with :mod:`support.mlnet_writer`: each function adds one
component under a folder, as ML.NET's SaveModel would, so a test states its pipeline as a list.

``model_zip([...], inputs)`` writes a TransformerChain of the given components (each a
``(archive, folder) -> None`` callable) and the ``Schema`` entry for ``inputs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from support.mlnet_writer import Archive, Stream, codec, key, schema, vector

Component = Callable[[Archive, str], None]


def model_zip(components: Sequence[Component], inputs: Sequence[tuple[str, bytes]] | None) -> bytes:
    archive = Archive()
    chain = Stream("XF CHAIN", "TransformerChain").i32(len(components), *[7] * len(components))
    archive.put("TransformerChain", chain)
    for i, component in enumerate(components):
        component(archive, f"TransformerChain/Transform_{i:03d}")
    if inputs is not None:
        archive.raw("Schema", schema(inputs))
    return archive.zip()


def concat(out: str, sources: Sequence[str]) -> Component:
    def add(archive: Archive, folder: str) -> None:
        stream = Stream("CONCAT F", "ConcatTransform", 0x00010003).i32(1).string(out)
        stream.i32(len(sources))
        for source in sources:
            stream.string(source).string(None)
        archive.put(folder, stream)

    return add


def copy(out: str, source: str) -> Component:
    return lambda archive, folder: archive.put(
        folder, Stream("COPYCOLT", "CopyTransform").i32(1).string(out).string(source)
    )


def to_key(out: str, source: str, terms: Sequence[Any]) -> Component:
    def add(archive: Archive, folder: str) -> None:
        stream = Stream("TERMTRNF", "TermTransform", 0x00010003)
        archive.put(folder, stream.i32(1).string(out).string(source).u8(0))
        vocabulary = Stream("TERM MAN", "TermManager", 0x00010002).i32(1)
        if all(isinstance(t, str) for t in terms):
            vocabulary.u8(0).i32(len(terms))
            for term in terms:
                vocabulary.string(term)
        else:
            vocabulary.u8(1).raw(codec("Single")).i32(len(terms)).f32(*terms)
        archive.put(f"{folder}/Vocabulary", vocabulary)

    return add


def to_vector(column: str) -> Component:
    return lambda archive, folder: archive.put(
        folder,
        Stream("KEY2VECT", "KeyToVectorTransform", 0x00010002)
        .i32(1)
        .string(column)
        .string(column)
        .u8(0),
    )


def to_value(column: str) -> Component:
    return lambda archive, folder: archive.put(
        folder, Stream("KEY2VALT", "KeyToValueTransform").i32(1).string(column).string(column)
    )


def normalize(
    column: str, scales: Sequence[float], offsets: Sequence[float], loader: str = "AffineNormExec"
) -> Component:
    def add(archive: Archive, folder: str) -> None:
        stream = Stream("NORMALZR", "Normalizer", 0x00010002).i32(1).string(column).string(column)
        if len(scales) > 1:
            stream.u8(1).u8(9).i32(1, len(scales))
        else:
            stream.u8(0).u8(9)
        archive.put(folder, stream)
        function = Stream("AFF NORM", loader, 0x00010003).i32(4, len(scales), -1)
        archive.put(f"{folder}/Normalizer_000", function.floats(scales).floats(offsets))

    return add


def unknown(loader: str) -> Component:
    return lambda archive, folder: archive.put(folder, Stream("UNKNOWNX", loader).i32(0))


def predict(
    task: str,
    features: str,
    width: int,
    model: Component,
    label: str | None = None,
    threshold: float = 0.0,
) -> Component:
    signature = {"regression": "REG PRED", "binary": "BIN PRED", "multiclass": "MC  PRED"}[task]
    loader = {"regression": "RegressionPredXfer", "binary": "BinaryPredXfer"}.get(
        task, "MulticlassPredXfer"
    )

    def add(archive: Archive, folder: str) -> None:
        version = 0x00010002 if task == "multiclass" else 0x00010001
        stream = Stream(signature, loader, version).string(features)
        if task == "binary":
            stream.f32(threshold).string("Score")
        if task == "multiclass":
            stream.string(label).string("Score").string("PredictedLabel")
        archive.put(folder, stream)
        archive.raw(f"{folder}/TrainSchema", schema([(features, vector("Single", width))]))
        model(archive, f"{folder}/Model")

    return add


def linear(
    weights: Sequence[float],
    bias: float,
    loader: str = "LinearRegressionExec",
    calibrator: Component | None = None,
) -> Component:
    signature = {
        "LinearRegressionExec": "LIN RGRS",
        "PoissonRegressionExec": "POI RGRS",
        "Linear2CExec": "LINEAR2C",
    }[loader]

    def add(archive: Archive, folder: str) -> None:
        stream = Stream(signature, loader, 0x00020001).i32(4).f32(bias)
        archive.put(folder, stream.i32(len(weights)).i32(0).floats(weights))
        if calibrator is not None:
            calibrator(archive, f"{folder}/Calibrator")

    return add


def multiclass(
    weights: np.ndarray, biases: Sequence[float], *, softmax: bool, sparse: bool
) -> Component:
    """``weights`` is classes x features."""
    loader, signature = (
        ("MultiClassLRExec", "MULTI LR") if softmax else ("MulticlassLinear", "MCLINEAR")
    )

    def add(archive: Archive, folder: str) -> None:
        n_classes, n_features = weights.shape
        stream = Stream(signature, loader).i32(4, n_features, n_classes).f32(*biases)
        if not sparse:
            stream.i32(0, 0, weights.size).f32(*weights.ravel().tolist())
        else:
            rows = [np.flatnonzero(row) for row in weights]
            starts = np.cumsum([0, *(len(r) for r in rows)]).tolist()
            stream.i32(n_classes + 1, *starts).i32(starts[-1])
            stream.i32(*[int(i) for r in rows for i in r]).i32(starts[-1])
            stream.f32(*[float(weights[c, i]) for c, r in enumerate(rows) for i in r])
        archive.put(folder, stream)

    return add


def platt(slope: float, offset: float) -> Component:
    return lambda archive, folder: archive.put(
        folder, Stream("PLATTCAL", "PlattCaliExec").f64(slope, offset)
    )


def pav(pieces: Sequence[tuple[float, float, float]]) -> Component:
    flat = [v for piece in pieces for v in piece]
    return lambda archive, folder: archive.put(
        folder, Stream("PAV  CAL", "PAVCaliExec").i32(4, len(pieces)).f32(*flat)
    )


def wrapped(signature: str, loader: str, predictor: Component, calibrator: Component) -> Component:
    def add(archive: Archive, folder: str) -> None:
        archive.put(folder, Stream(signature, loader))
        predictor(archive, f"{folder}/Predictor")
        calibrator(archive, f"{folder}/Calibrator")

    return add


def trees(
    loader: str,
    spec: Sequence[dict[str, Any]],
    n_features: int,
    calibrator: Component | None = None,
) -> Component:
    """Trees given as dicts of lte, gt, feature, threshold, leaf, and optional default and
    categorical (node -> features)."""
    signatures = {
        "FastTreeRegressionExec": "FTREE RE",
        "FastTreeBinaryExec": "FTREE BC",
        "FastForestRegressionExec": "FFORE RE",
        "FastForestBinaryExec": "FFORE BC",
    }
    signature = signatures[loader]
    forest = loader.startswith("FastForest")
    version = 0x00010006 if forest else 0x00010005

    def add(archive: Archive, folder: str) -> None:
        stream = Stream(signature, loader, version).i32(4, len(spec))
        for tree in spec:
            stream.u8(2 if forest else 0).i32(len(tree["leaf"])).f64(max(tree["leaf"]), 1.0)
            stream.ints(tree["lte"]).ints(tree["gt"]).ints(tree["feature"])
            categorical = tree.get("categorical", {})
            stream.ints(sorted(categorical))
            for node in sorted(categorical):
                values = categorical[node]
                stream.ints(values).i32(values[0], values[-1])
            stream.ints([]).floats(tree["threshold"]).floats(tree.get("default", []))
            stream.doubles(tree["leaf"]).doubles([]).doubles([]).doubles([])
            if forest:
                stream.doubles([]).doubles([])
        stream.f64(0.0).string(None).string("trainer arguments").i32(n_features)
        if loader == "FastForestRegressionExec":
            stream.u8(1).i32(100)
        archive.put(folder, stream)
        if calibrator is not None:
            calibrator(archive, f"{folder}/Calibrator")

    return add


def floats(*names: str) -> list[tuple[str, bytes]]:
    return [(n, codec("Single")) for n in names]


def texts(*names: str) -> list[tuple[str, bytes]]:
    return [(n, codec("TextSpan")) for n in names]


__all__ = [
    "concat", "copy", "floats", "key", "linear", "model_zip", "multiclass", "normalize", "pav",
    "platt", "predict", "texts", "to_key", "to_value", "to_vector", "trees", "unknown", "wrapped",
]  # fmt: skip
