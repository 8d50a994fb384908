"""FastTree's trees as servefn tree-ensemble trees, with FastTree's exact split semantics.

FastTree scores raw features (``InternalRegressionTree.GetLeafCore``): a node sends a row to its
``lte`` child when ``x <= threshold`` in float32 (the raw threshold; bin thresholds only index
the training bins), and a missing value (NaN) to ``gt`` since the comparison fails, unless the
tree holds default values for missing, when NaN is replaced by the node's default first. That is
``x <= threshold`` with ``missing_left = default <= threshold`` per node in servefn's trees, with
features rounded to float32. A categorical split goes ``gt`` when any of its indicator features
is ``> 0``: servefn's nodes test one feature each, so it becomes a chain of ``x <= 0`` nodes,
each ``gt`` branch a copy of the ``gt`` subtree (a budget bounds the copies).
"""

from __future__ import annotations

import itertools

import numpy as np

from servefn.mlnet._binary import MlnetError
from servefn.mlnet._fasttree import FastTree
from servefn.predictors._tree_arrays import Tree

__all__ = ["MAX_EXPANDED_NODES", "servefn_trees"]

MAX_EXPANDED_NODES = 1 << 22
"""Most nodes the categorical chains of an ensemble may expand to."""
_TOO_MANY = f"ML.NET model: its categorical splits would expand to over {MAX_EXPANDED_NODES} nodes"


def servefn_trees(trees: list[FastTree], target: int = 0) -> list[Tree]:
    """Each FastTree tree as a :class:`Tree` adding its leaf values to output ``target``."""
    out, budget = [], MAX_EXPANDED_NODES
    for tree in trees:
        converted = _expanded(tree, budget) if tree.categorical else _plain(tree)
        budget -= len(converted.feature)
        if budget < 0:
            raise MlnetError(_TOO_MANY)
        converted.target = target
        out.append(converted)
    return out


def _missing_left(tree: FastTree) -> np.ndarray:
    if tree.default is None:
        return np.zeros(len(tree.threshold), dtype=bool)  # NaN <= t is false: the gt child
    return np.asarray(tree.default, np.float32) <= tree.threshold


def _plain(tree: FastTree) -> Tree:
    """Nodes ``0..n-1`` stay, leaf ``k`` becomes node ``n + k``."""
    n, n_leaves = len(tree.threshold), tree.n_leaves
    lte = np.where(tree.lte >= 0, tree.lte, n + ~tree.lte)
    gt = np.where(tree.gt >= 0, tree.gt, n + ~tree.gt)
    value = np.zeros((n + n_leaves, 1))
    value[n:, 0] = tree.leaf
    return Tree(
        feature=np.concatenate((tree.feature, np.zeros(n_leaves, np.int64))),
        threshold=np.concatenate((tree.threshold.astype(np.float64), np.zeros(n_leaves))),
        left=np.concatenate((lte, np.full(n_leaves, -1))),
        right=np.concatenate((gt, np.full(n_leaves, -1))),
        missing_left=np.concatenate((_missing_left(tree), np.zeros(n_leaves, bool))),
        value=value,
    )


def _expanded(tree: FastTree, budget: int) -> Tree:
    """Walk the tree with an explicit stack, emitting nodes; a categorical node becomes a chain
    of ``x <= 0`` tests, each ``gt`` branch a fresh copy of the ``gt`` subtree."""
    missing = _missing_left(tree)
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    miss: list[bool] = []
    value: list[float] = []

    def emit(f: int, t: float, m: bool, v: float) -> int:
        if len(feature) >= budget:
            raise MlnetError(_TOO_MANY)
        feature.append(f)
        threshold.append(t)
        miss.append(m)
        value.append(v)
        left.append(-1)
        right.append(-1)
        return len(feature) - 1

    # (FastTree child, emitted parent, side): side 0 left, 1 right, -1 the root
    stack: list[tuple[int, int, int]] = [(0, -1, -1)]
    steps = 0
    while stack:
        steps += 1
        if steps > 4 * budget:
            raise MlnetError("ML.NET model: a tree does not end (a cycle in its children)")
        child, parent, side = stack.pop()
        if child < 0:
            node = emit(0, 0.0, False, float(tree.leaf[~child]))
        elif child in tree.categorical:
            default_left = bool(tree.default is None or tree.default[child] <= 0)
            chain = [emit(f, 0.0, default_left, 0.0) for f in tree.categorical[child]]
            for a, b in itertools.pairwise(chain):
                left[a] = b
            for link in chain:
                stack.append((int(tree.gt[child]), link, 1))
            stack.append((int(tree.lte[child]), chain[-1], 0))
            node = chain[0]
        else:
            node = emit(
                int(tree.feature[child]), float(tree.threshold[child]), bool(missing[child]), 0.0
            )
            stack.append((int(tree.gt[child]), node, 1))
            stack.append((int(tree.lte[child]), node, 0))
        if side == 0:
            left[parent] = node
        elif side == 1:
            right[parent] = node
    return Tree(
        feature=np.array(feature, np.int64),
        threshold=np.array(threshold, np.float64),
        left=np.array(left, np.int64),
        right=np.array(right, np.int64),
        missing_left=np.array(miss, bool),
        value=np.array(value, np.float64).reshape(-1, 1),
    )
