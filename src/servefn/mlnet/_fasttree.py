"""Decoders of FastTree and FastForest tree ensembles (``src/Microsoft.ML.FastTree``).

TreeEnsembleModelParameters (``FastTree.cs``): ``sizeof(float)``, the ensemble
(``TreeEnsemble/InternalTreeEnsemble.cs``: a tree count, the trees, a bias and an ignored
string), the trainer's arguments string and, from a per-class version on, the feature count.
Each tree (``InternalRegressionTree.cs``) holds, every array prefixed with its length: ``lte``
and ``gt`` children (a non-negative child is a node, ``~leaf`` a leaf), split features,
categorical splits (from the categorical-split version on), bin thresholds, raw thresholds,
default values for missing (from the default-value version on), leaf values and three arrays of
split statistics; a FastForest tree adds its sampled labels and their weights. Every array's
length is checked as ``CheckValid`` does, and every child index against the tree's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.mlnet._context import Context
from servefn.mlnet._transforms import show
from servefn.model._limits import MAX_FEATURES

__all__ = ["TREE_LOADERS", "FastTree", "TreeModel", "decode_trees"]

MAX_TREES = 1 << 17
MAX_LEAVES = 1 << 20
_FT = (0x00010005, 0x00010002, 0x00010004, 0x00010005)  # newest, features, defaults, categorical
_FF = (0x00010006, 0x00010003, 0x00010005, 0x00010006)
TREE_LOADERS: dict[str, tuple[str, str, tuple[int, int, int, int]]] = {
    "FastTreeRegressionExec": ("FTREE RE", "regression", _FT),
    "FastTreeBinaryExec": ("FTREE BC", "binary", _FT),
    "FastForestRegressionExec": ("FFORE RE", "regression", _FF),
    "FastForestBinaryExec": ("FFORE BC", "binary", _FF),
}
"""Loader -> model signature, task, and the versions that added the feature count, default
values for missing and categorical splits."""


@dataclass
class FastTree:
    """One regression tree in FastTree's arrays (nodes ``0..n-1``, leaves ``~k``)."""

    lte: NDArray[np.int64]
    gt: NDArray[np.int64]
    feature: NDArray[np.int64]
    threshold: NDArray[np.float32]
    default: NDArray[np.float32] | None
    leaf: NDArray[np.float64]
    categorical: dict[int, list[int]] = field(default_factory=dict)

    @property
    def n_leaves(self) -> int:
        return int(self.leaf.shape[0])


@dataclass
class TreeModel:
    """A FastTree / FastForest ensemble: output ``sum(trees)`` (FastForest regression: their
    mean), ``task`` regression or binary."""

    loader: str
    task: str
    trees: list[FastTree]
    n_features: int
    average: bool
    bias: float
    calibration: Any = None

    def summary(self) -> dict[str, Any]:
        leaves = [t.n_leaves for t in self.trees]
        defaults = sum(int(t.default is not None and (t.default != 0).any()) for t in self.trees)
        used = sorted({int(f) for t in self.trees for f in t.feature.tolist()})
        out: dict[str, Any] = {
            "model": self.loader,
            "features": self.n_features,
            "trees": len(self.trees),
            "leaves per tree": f"{min(leaves)} to {max(leaves)}" if leaves else "none",
            "output": "mean of the trees" if self.average else "sum of the trees",
            "features split on": f"{len(used)}: {show(used)}",
            "split rule": "x <= raw threshold (float32) goes to the lte child",
            "missing values": (
                f"replaced by per-node default values in {defaults} trees"
                if defaults
                else "NaN goes to the gt child"
            ),
            "categorical splits": sum(len(t.categorical) for t in self.trees),
            "ensemble bias": f"{self.bias:.6g} (not applied by ML.NET when scoring)",
        }
        if self.calibration is not None:
            out["calibrator"] = self.calibration.summary()
        return out


def _tree(ctx: Context, categorical: bool, defaults: bool, forest: bool, version: int) -> FastTree:
    reader = ctx.reader
    n_leaves = reader.i32()
    reader.f64()  # max output: informational
    if reader.f64() < 0:
        raise reader.fail("a tree has a negative weight")
    lte = reader.counted("i4", "lte children", limit=MAX_LEAVES).astype(np.int64)
    mn = len(lte)
    if not 1 < n_leaves <= mn + 1:
        raise reader.fail(f"a tree of {n_leaves} leaves with room for {mn + 1}")
    gt = reader.counted("i4", "gt children", limit=mn).astype(np.int64)
    feature = reader.counted("i4", "split features", limit=mn).astype(np.int64)
    if len(gt) != mn or len(feature) != mn:
        raise reader.fail("a tree's children and split features differ in length")
    splits: dict[int, list[int]] = {}
    if categorical:
        nodes = reader.counted("i4", "categorical nodes", limit=mn).tolist()
        for node in nodes:
            if not 0 <= node < n_leaves - 1 or node in splits:
                raise reader.fail("a categorical node is outside the tree or listed twice")
            values = reader.counted("i4", "categorical features", limit=MAX_FEATURES).tolist()
            low, high = reader.array("i4", 2, "categorical range").tolist()
            if not values or values != sorted(set(values)) or values[0] < low or values[-1] > high:
                raise reader.fail("a categorical split's features are not sorted within its range")
            splits[node] = values
    bins = reader.counted("u4", "bin thresholds", limit=mn)
    raw = reader.counted("f4", "raw thresholds", limit=mn)
    default = reader.counted("f4", "default values", limit=mn) if defaults else None
    leaf = reader.counted("f8", "leaf values", limit=mn + 1)
    for what in ("split gains", "gain p-values", "previous leaf values"):
        if len(reader.counted("f8", what, limit=mn)) not in (0, mn):
            raise reader.fail(f"a tree's {what} have the wrong length")
    if forest:
        reader.counted("f8", "sampled labels")
        if version >= 0x00010002:
            reader.counted("f8", "sampled label weights")
    n = n_leaves - 1
    if len(bins) not in (0, mn) or len(leaf) != mn + 1:
        raise reader.fail("a tree's thresholds or leaf values have the wrong length")
    if len(raw) != n:
        raise reader.fail(
            "a tree holds no raw thresholds (bin thresholds alone need the training bins)"
        )
    if default is not None and len(default) not in (0, n, mn):
        raise reader.fail("a tree's default values have the wrong length")
    if not (np.isfinite(leaf[:n_leaves]).all() and not np.isnan(raw).any()):
        raise reader.fail("a tree's thresholds or leaf values are not numbers")
    for children in (lte[:n], gt[:n]):
        if ((children >= n) | (children < -n_leaves)).any():
            raise reader.fail("a tree's child points outside the tree")
    if (feature[:n] < 0).any():
        raise reader.fail("a tree splits on a negative feature index")
    has_default = default is not None and len(default) > 0 and bool((default[:n] != 0).any())
    kept = default[:n] if has_default and default is not None else None
    return FastTree(lte[:n], gt[:n], feature[:n], raw, kept, leaf[:n_leaves], splits)


def decode_trees(ctx: Context) -> TreeModel:
    signature, task, (newest, v_features, v_defaults, v_categorical) = TREE_LOADERS[ctx.loader]
    ctx.check_version(signature, newest)
    reader = ctx.reader
    if reader.i32() != 4:
        raise reader.fail("sizeof(float) is not 4")
    written = ctx.version_written
    forest = ctx.loader.startswith("FastForest")
    n_trees = reader.count("trees", 60, limit=MAX_TREES)
    trees = []
    for _ in range(n_trees):
        kind = reader.u8()
        if kind not in (0, 2):
            raise reader.fail(f"tree type {kind} is not supported (0 regression, 2 forest)")
        trees.append(
            _tree(ctx, written >= v_categorical, written >= v_defaults, kind == 2, written)
        )
    bias = reader.f64()
    ctx.string_or_none()  # input initialization content: ignored by ML.NET
    ctx.string_or_none()  # the trainer's arguments: documentation only
    n_features = reader.i32() if written >= v_features else 0
    if forest and task == "regression":
        if not reader.boolean():
            raise reader.fail("its quantile flag is not set")
        reader.i32()  # quantile sample count: quantile regression only
    if not trees:
        raise reader.fail("an ensemble of no trees")
    largest = max((int(t.feature.max(initial=-1)) for t in trees), default=-1)
    for t in trees:
        for values in t.categorical.values():
            largest = max(largest, values[-1])
    if not 0 < n_features <= MAX_FEATURES or largest >= n_features:
        raise reader.fail(f"it declares {n_features} features but splits on feature {largest}")
    if not np.isfinite(bias):
        raise reader.fail("its bias is not a number")
    average = forest and task == "regression"
    return TreeModel(ctx.loader, task, trees, n_features, average, bias)
