"""The tree-ensemble payload's arrays, checked as a hostile file: dtypes, shapes, index ranges,
and every tree a tree (no cycle, no node shared or never reached) no deeper than
:data:`MAX_DEPTH`, in passes that are linear in the node count (no recursion)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError

__all__ = [
    "MAX_CATEGORY_WORDS",
    "MAX_DEPTH",
    "MAX_NODES",
    "Tree",
    "TreeArrays",
    "checked_arrays",
    "checked_params",
    "concatenate_trees",
]

MAX_DEPTH = 512
"""Deepest tree a model may hold: real ensembles stay under 64; a deeper one is a depth bomb."""
MAX_NODES = 1 << 26
"""Most nodes (all trees together) a model may hold: about 3 GB of node arrays."""
MAX_CATEGORY_WORDS = 1 << 12
"""Longest categorical bitset, in 32-bit words (131,072 categories)."""


@dataclass
class Tree:
    """One tree in local node ids, as a converter builds it: ``left``/``right`` are -1 at a
    leaf; ``category`` is -1 at a numeric split, else an index into the ensemble's bitsets;
    ``value`` (n_nodes x width) matters at leaves only; ``target`` is the first output column
    its leaf vectors are added to."""

    feature: NDArray[Any]
    threshold: NDArray[Any]
    left: NDArray[Any]
    right: NDArray[Any]
    missing_left: NDArray[Any]
    value: NDArray[Any]
    category: NDArray[Any] | None = None
    target: int = 0


@dataclass
class TreeArrays:
    """The node arrays in the types the walk uses (global node ids, leaves self-looped)."""

    feature: NDArray[np.intp]
    threshold: NDArray[np.float64]
    left: NDArray[np.intp]
    right: NDArray[np.intp]
    missing_left: NDArray[np.bool_]
    category: NDArray[np.intp]
    value: NDArray[np.float64]
    roots: NDArray[np.intp]
    tree_target: NDArray[np.intp]
    left_sets: NDArray[np.uint32]
    known_sets: NDArray[np.uint32]
    base: NDArray[np.float64]
    depths: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))


def concatenate_trees(
    trees: Sequence[Tree],
    base: Sequence[float] | NDArray[Any],
    left_sets: NDArray[Any] | None,
    known_sets: NDArray[Any] | None,
) -> dict[str, NDArray[Any]]:
    """Converter ``trees`` (local ids, -1 children at leaves) as one set of payload arrays:
    global ids, leaves pointing at themselves, one root and one target per tree."""
    if not trees:
        raise PredictorError("a tree ensemble needs at least one tree")
    offsets = np.cumsum([0] + [len(np.asarray(t.feature)) for t in trees])
    parts: dict[str, list[NDArray[Any]]] = {name: [] for name in _ARRAYS}
    for tree, offset in zip(trees, offsets[:-1], strict=True):
        n = len(np.asarray(tree.feature))
        own = np.arange(n, dtype=np.int64)
        left = np.asarray(tree.left, dtype=np.int64)
        right = np.asarray(tree.right, dtype=np.int64)
        leaf = left < 0
        parts["feature"].append(np.where(leaf, 0, np.asarray(tree.feature, dtype=np.int64)))
        parts["threshold"].append(np.asarray(tree.threshold, dtype=np.float64))
        parts["left"].append(np.where(leaf, own, left) + offset)
        parts["right"].append(np.where(leaf, own, right) + offset)
        parts["missing_left"].append(np.asarray(tree.missing_left, dtype=bool))
        category = np.full(n, -1) if tree.category is None else np.asarray(tree.category)
        parts["category"].append(np.where(leaf, -1, category).astype(np.int64))
        parts["value"].append(np.asarray(tree.value, dtype=np.float64).reshape(n, -1))
    arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    arrays["roots"] = offsets[:-1].astype(np.int64)
    arrays["tree_target"] = np.array([t.target for t in trees], dtype=np.int64)
    arrays["base"] = np.asarray(base, dtype=np.float64).reshape(-1)
    empty = np.zeros((0, 1), np.uint32)
    arrays["left_sets"] = empty if left_sets is None else np.asarray(left_sets, np.uint32)
    arrays["known_sets"] = empty if known_sets is None else np.asarray(known_sets, np.uint32)
    return arrays


_ARRAYS = ("feature", "threshold", "left", "right", "missing_left", "category", "value")


def _array(arrays: Mapping[str, NDArray[Any]], name: str, kinds: str, ndim: int) -> NDArray[Any]:
    if name not in arrays:
        raise PredictorError(f"the tree-ensemble payload lacks the array {name!r}")
    array = np.asarray(arrays[name])
    if array.dtype.kind not in kinds or array.ndim != ndim:
        raise PredictorError(
            f"tree-ensemble array {name!r} must be {ndim}-dimensional of kind {kinds!r}; it is "
            f"{array.ndim}-dimensional {array.dtype}"
        )
    return array


def checked_arrays(arrays: Mapping[str, NDArray[Any]], n_features: int) -> TreeArrays:
    """The arrays, typed and checked: consistent lengths, indices in range, every tree a tree."""
    ints = "iu"
    feature = _array(arrays, "feature", ints, 1)
    n = feature.shape[0]
    if not 0 < n <= MAX_NODES:
        raise PredictorError(f"a tree ensemble holds 1 to {MAX_NODES} nodes, not {n}")
    a = TreeArrays(
        feature=feature.astype(np.intp),
        threshold=_array(arrays, "threshold", "f", 1).astype(np.float64),
        left=_array(arrays, "left", ints, 1).astype(np.intp),
        right=_array(arrays, "right", ints, 1).astype(np.intp),
        missing_left=_array(arrays, "missing_left", "b", 1),
        category=_array(arrays, "category", ints, 1).astype(np.intp),
        value=_array(arrays, "value", "f", 2).astype(np.float64),
        roots=_array(arrays, "roots", ints, 1).astype(np.intp),
        tree_target=_array(arrays, "tree_target", ints, 1).astype(np.intp),
        left_sets=_array(arrays, "left_sets", "u", 2).astype(np.uint32),
        known_sets=_array(arrays, "known_sets", "u", 2).astype(np.uint32),
        base=_array(arrays, "base", "f", 1).astype(np.float64),
    )
    for name in ("threshold", "left", "right", "missing_left", "category"):
        if getattr(a, name).shape[0] != n:
            raise PredictorError(f"tree-ensemble array {name!r} has not one entry per node ({n})")
    if a.value.shape[0] != n or not 0 < a.value.shape[1] <= 1 << 16:
        raise PredictorError(f"tree-ensemble values must be {n} x width; got {a.value.shape}")
    n_trees = a.roots.shape[0]
    if not 0 < n_trees <= n or a.tree_target.shape[0] != n_trees:
        raise PredictorError("a tree ensemble needs one root and one target per tree")
    n_outputs = a.base.shape[0]
    width = a.value.shape[1]
    if not 0 < n_outputs <= 1 << 16 or not np.isfinite(a.base).all():
        raise PredictorError("the base scores must be 1 or more finite numbers")
    if (a.tree_target < 0).any() or (a.tree_target + width > n_outputs).any():
        raise PredictorError(f"a tree's target column is outside the {n_outputs} outputs")
    if width > 1 and (width != n_outputs or (a.tree_target != 0).any()):
        raise PredictorError("vector leaves must cover every output, from column 0")
    for name in ("left", "right", "roots"):
        index = getattr(a, name)
        if index.min() < 0 or index.max() >= n:
            raise PredictorError(f"tree-ensemble array {name!r} points outside the {n} nodes")
    leaf = (a.left == np.arange(n)) & (a.right == np.arange(n))
    split = ~leaf
    a.feature[leaf] = 0  # a leaf's split fields are never used: keep every gather in range
    a.category[leaf] = -1
    if split.any() and (a.feature[split].min() < 0 or a.feature[split].max() >= n_features):
        raise PredictorError(f"a split uses a feature outside the {n_features} features")
    if np.isnan(a.threshold[split & (a.category < 0)]).any():
        raise PredictorError("a split's threshold is NaN")
    if not np.isfinite(a.value[leaf]).all():
        raise PredictorError("a leaf value is NaN or infinite")
    _check_categories(a, split)
    a.depths = _depths(a, leaf)
    return a


def _check_categories(a: TreeArrays, split: NDArray[np.bool_]) -> None:
    sets = a.category[split]
    n_sets, words = a.left_sets.shape
    if a.known_sets.shape != (n_sets, words) or words > MAX_CATEGORY_WORDS:
        raise PredictorError(
            f"categorical bitsets must be two equal arrays of at most {MAX_CATEGORY_WORDS} words"
        )
    if (sets >= 0).any() and sets.max() >= n_sets:
        raise PredictorError(f"a categorical split points outside the {n_sets} bitsets")
    if (a.category < -1).any():
        raise PredictorError("a node's category index is below -1")


def _depths(a: TreeArrays, leaf: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Each tree's depth, walking all trees level by level; refuses a cycle, a node reached
    twice or never, and a tree deeper than :data:`MAX_DEPTH`."""
    n = a.feature.shape[0]
    seen = np.zeros(n, dtype=np.intp)
    np.add.at(seen, a.roots, 1)
    depth = np.zeros(a.roots.shape[0], dtype=np.intp)
    frontier = a.roots[~leaf[a.roots]]
    owner = np.flatnonzero(~leaf[a.roots])
    level = 0
    while frontier.size:
        level += 1
        if level > MAX_DEPTH:
            raise PredictorError(f"a tree is deeper than {MAX_DEPTH} levels (or has a cycle)")
        depth[owner] = level
        children = np.concatenate((a.left[frontier], a.right[frontier]))
        owner = np.concatenate((owner, owner))
        np.add.at(seen, children, 1)
        if (seen[children] > 1).any():
            raise PredictorError("a node is reached twice: the trees share nodes or hold a cycle")
        inner = ~leaf[children]
        frontier, owner = children[inner], owner[inner]
    if (seen != 1).any():
        raise PredictorError(
            f"{int((seen == 0).sum())} node(s) belong to no tree; every node must be reachable "
            "from exactly one root"
        )
    return depth


_PARAMS: dict[str, type | tuple[type, ...]] = {
    "n_features": int,
    "link": str,
    "scale": (int, float),
    "float32_input": bool,
    "float32_sum": bool,
    "label_rule": str,
    "integral_categories": bool,
    "zero_threshold": (int, float),
    "accepts_missing": bool,
    "source": str,
}


def checked_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's tree-ensemble parameters as the constructor's keywords, each of the type
    it must have (values are checked again by the constructor)."""
    for key, kind in _PARAMS.items():
        if not isinstance(params.get(key), kind):
            raise PredictorError(f"tree-ensemble parameter {key!r} is missing or of another type")
    classes, names = params.get("classes"), params.get("feature_names")
    if classes is not None and not isinstance(classes, list):
        raise PredictorError("tree-ensemble parameter 'classes' must be a list or null")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise PredictorError("tree-ensemble parameter 'feature_names' must be a list of text")
    return {key: params[key] for key in _PARAMS} | {"classes": classes, "feature_names": names}
