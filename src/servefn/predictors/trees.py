"""Tree ensembles in numpy alone: every tree walked level by level, vectorised over rows and trees.

scikit-learn's trees, forests and gradient boosting, XGBoost and LightGBM boosters export to one
:class:`TreeEnsemble` (their converters live in ``trees_sklearn``, ``trees_xgboost`` and
``trees_lightgbm``, used at save time only). The payload is node arrays in ``weights.npz``:

- a split node sends a row left when ``x <= threshold`` (a converter turns a library's ``x <
  t`` into ``x <= nextafter(t)``), a missing value (NaN) to ``missing_left``;
- a categorical node (``category >= 0``) sends a row left when its integer value is in the
  node's ``left`` bitset: the value truncated toward zero, as LightGBM does, or, with
  ``integral_categories``, only a whole number (as in HistGradientBoosting); NaN, a value below
  the first category or one not in the ``known`` bitset is missing and goes to ``missing_left``
  (LightGBM: every missing value right, ``known`` equal to ``left``);
- a leaf has ``left == right == itself`` and holds ``value`` (a vector of ``width``), added to
  the raw outputs from column ``tree_target[tree]`` on.

The raw outputs are ``base + scale * sum(leaf values)`` (with ``float32_sum``, as XGBoost
does: float32 arithmetic, from the base, tree by tree, then the scale), then ``link``:
``identity``, ``exp`` (log-link regression), ``logistic`` (binary: ``[1 - p, p]``) or
``softmax``. A classifier's label is the
first class of highest score, or, with ``label_rule`` ``"margin>0"`` or ``"margin>=0"``
(scikit-learn's histogram and classic gradient boosting), decided on the raw margin.
``float32_input`` rounds features to float32 first, as scikit-learn's trees and XGBoost compare
them; ``zero_threshold`` reads values that close to 0 as 0, as LightGBM does.

Every array is checked when a model is built or loaded (``_tree_arrays``): dtypes, shapes,
ranges, every tree a tree (no cycle, no shared node, no unreachable node) no deeper than
:data:`MAX_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors._labels import class_labels
from servefn.predictors._npz import dump_arrays, load_arrays
from servefn.predictors._tree_arrays import (
    MAX_CATEGORY_WORDS,
    MAX_DEPTH,
    MAX_NODES,
    Tree,
    TreeArrays,
    checked_arrays,
    checked_params,
    concatenate_trees,
)
from servefn.predictors._tree_outputs import LABEL_RULES, LINKS, LabelRule, Link, tree_outputs
from servefn.predictors.base import Outputs, Payload, Predictor

__all__ = [
    "LINKS",
    "MAX_CATEGORY_WORDS",
    "MAX_DEPTH",
    "MAX_NODES",
    "Link",
    "Tree",
    "TreeEnsemble",
]

_MAX_WEIGHT_BYTES = 4 << 30
_ALL_TREES_CELLS = 1 << 15
"""rows x trees up to which every tree is walked at once; above it, tree by tree over the rows
(measured in benchmarks/bench_trees.py: the crossover on this machine is near 30k cells)."""


class TreeEnsemble(Predictor):
    """A forest or boosted ensemble of binary trees; see the module docstring for the format.

    Build one from converter trees with :meth:`from_trees`; the constructor takes the
    concatenated arrays (global node ids) and checks them all.
    """

    kind: ClassVar[str] = "tree-ensemble"
    dtype: ClassVar[type[np.floating[Any]]] = np.float64

    def __init__(
        self,
        arrays: Mapping[str, NDArray[Any]],
        *,
        n_features: int,
        link: Link = "identity",
        scale: float = 1.0,
        classes: Sequence[Any] | None = None,
        float32_input: bool = False,
        float32_sum: bool = False,
        label_rule: LabelRule = "score",
        integral_categories: bool = False,
        zero_threshold: float = 0.0,
        accepts_missing: bool = True,
        feature_names: Sequence[str] | None = None,
        source: str = "",
    ) -> None:
        if link not in LINKS:
            raise PredictorError(f"link {link!r} is not one of {LINKS}")
        if not (isinstance(n_features, int) and 0 < n_features <= 1 << 20):
            raise PredictorError(f"n_features must be a positive integer, not {n_features!r}")
        if not (isinstance(scale, (int, float)) and np.isfinite(scale)):
            raise PredictorError(f"scale must be a finite number, not {scale!r}")
        self._a = checked_arrays(arrays, n_features)
        self.n_outputs = int(self._a.base.shape[0])
        self.classes = None if classes is None else class_labels(classes)
        _check_outputs(link, self.n_outputs, self.classes)
        self.link: Link = link
        self.scale = float(scale)
        self.float32_input = bool(float32_input)
        self.float32_sum = bool(float32_sum)
        if label_rule not in LABEL_RULES:
            raise PredictorError(f"label_rule {label_rule!r} is not one of {LABEL_RULES}")
        self.label_rule: LabelRule = label_rule
        self.integral_categories = bool(integral_categories)
        if not (isinstance(zero_threshold, (int, float)) and 0 <= zero_threshold < 1e-30):
            raise PredictorError(f"zero_threshold must be in [0, 1e-30), not {zero_threshold!r}")
        self.zero_threshold = float(zero_threshold)
        self._accepts_missing = bool(accepts_missing)
        self._n_features = n_features
        self._feature_names = None if feature_names is None else [str(n) for n in feature_names]
        if self._feature_names is not None and len(self._feature_names) != n_features:
            raise PredictorError(
                f"{len(self._feature_names)} feature names for {n_features} features"
            )
        self.source = str(source)[:80]
        a = self._a
        self.max_depth = int(a.depths.max(initial=0))
        self.n_trees = int(a.roots.shape[0])
        self.n_nodes = int(a.feature.shape[0])
        self._width = int(a.value.shape[1])
        self._categorical = bool((a.category >= 0).any())
        # The walk runs on doubled ids (2 * node): ``2 * node + go_right`` indexes the
        # interleaved children (themselves doubled), and feature and threshold are stored twice
        # so they are gathered by the doubled id too: six numpy calls a level.
        self._children2 = np.empty(2 * self.n_nodes, np.intp)
        self._children2[0::2] = 2 * a.left
        self._children2[1::2] = 2 * a.right
        self._feature2 = np.repeat(a.feature, 2)
        self._threshold2 = np.repeat(a.threshold, 2)
        self._roots2 = 2 * a.roots
        self._leaf_value = a.value[:, 0].repeat(2) if self._width == 1 else None
        # tree -> output column, as a 0/1 matrix when leaves are scalars (boosting)
        self._assign: NDArray[np.float64] | None = None
        if self._width == 1 and self.n_outputs > 1:
            assign = np.zeros((self.n_trees, self.n_outputs))
            assign[np.arange(self.n_trees), a.tree_target] = 1.0
            self._assign = assign
        self.outputs = ("Score",) if self.classes is None else ("PredictedLabel", "Score")  # type: ignore[misc]

    @classmethod
    def from_trees(
        cls,
        trees: Sequence[Tree],
        *,
        base: Sequence[float] | NDArray[Any],
        left_sets: NDArray[Any] | None = None,
        known_sets: NDArray[Any] | None = None,
        **params: Any,
    ) -> TreeEnsemble:
        """Concatenate converter ``trees`` (local ids, -1 children at leaves) into an ensemble;
        ``left_sets``/``known_sets`` are the categorical bitsets (n_sets x words, uint32),
        ``params`` the constructor's keywords."""
        arrays = concatenate_trees(trees, base, left_sets, known_sets)
        return cls(arrays, **params)

    @property
    def nodes(self) -> TreeArrays:
        """The checked node arrays (global ids, leaves pointing at themselves)."""
        return self._a

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def feature_names(self) -> Sequence[str] | None:
        return self._feature_names

    @property
    def accepts_missing(self) -> bool:
        return self._accepts_missing

    @property
    def score(self) -> str:
        """What ``Score`` holds: class probabilities for a classifier (parity checks them
        against ``predict_proba``), the prediction for a regressor."""
        return "probability" if self.classes is not None else "value"

    # -- prediction --------------------------------------------------------------------------

    def raw(self, X: NDArray[Any]) -> NDArray[np.float64]:
        """``base + scale * sum of leaf values``, n_rows x n_outputs, before the link."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self._n_features:
            raise PredictorError(
                f"expected a matrix with {self._n_features} feature columns, got shape {X.shape}"
            )
        if self.float32_input:
            X = X.astype(np.float32).astype(np.float64)
        else:
            X = np.ascontiguousarray(X, dtype=np.float64)
        if self.zero_threshold:  # LightGBM reads |x| <= 1e-35 as 0 (kZeroThreshold)
            X = np.where(np.abs(X) <= self.zero_threshold, 0.0, X)
        n = X.shape[0]
        nan = bool(np.isnan(X).any())
        if n * self.n_trees <= _ALL_TREES_CELLS:
            return self._sum_all(self._walk_all(X, nan))
        return self._walk_each(X, nan)

    def predict(self, X: NDArray[Any]) -> Outputs:
        return tree_outputs(self.raw(X), self.link, self.classes, self.label_rule)

    def _step(self, n2: NDArray[np.intp], x: NDArray[np.float64], nan: bool) -> NDArray[np.intp]:
        """One level down for every (row, tree) at doubled id ``n2``; ``x`` holds the feature
        each one splits on."""
        go_right = x > self._threshold2.take(n2)  # NaN compares False: fixed below
        if nan or self._categorical:
            self._special(n2, x, go_right)
        step: NDArray[np.intp] = self._children2.take(n2 + go_right)
        return step

    def _special(
        self, n2: NDArray[np.intp], x: NDArray[np.float64], go_right: NDArray[np.bool_]
    ) -> None:
        """Missing values and categorical splits, in place in ``go_right``."""
        a = self._a
        missing = np.isnan(x)
        if missing.any():
            go_right[missing] = ~a.missing_left.take(n2[missing] >> 1)
        if not self._categorical:
            return
        node = n2 >> 1
        sets = a.category.take(node)
        split = sets >= 0
        if not split.any():
            return
        node, sets, v = node[split], sets[split], x[split]
        bits = 32 * a.left_sets.shape[1]
        if self.integral_categories:  # only whole numbers from 0 up are categories
            usable = (v >= 0) & (v < bits) & (v == np.floor(v))  # False for NaN
        else:  # truncated toward zero, as a C cast: -0.5 is category 0
            usable = (v > -1) & (v < bits)
        code = np.where(usable, v, 0).astype(np.intp)
        word, bit = code >> 5, (code & 31).astype(np.uint32)
        known = usable & ((a.known_sets[sets, word] >> bit) & 1).astype(bool)
        left = known & ((a.left_sets[sets, word] >> bit) & 1).astype(bool)
        go_right[split] = np.where(known, ~left, ~a.missing_left.take(node))

    def _walk_all(self, X: NDArray[np.float64], nan: bool) -> NDArray[np.intp]:
        """Leaf of every (row, tree), all trees at once: n_rows x n_trees doubled ids."""
        n, d = X.shape
        feature2 = self._feature2
        if n == 1:
            x1 = X[0]
            n2: NDArray[np.intp] = self._roots2
            for _ in range(self.max_depth):
                n2 = self._step(n2, x1.take(feature2.take(n2)), nan)
            return n2.reshape(1, -1)
        n2 = np.broadcast_to(self._roots2, (n, self.n_trees)).copy()
        flat = X.reshape(-1)
        offset = (np.arange(n, dtype=np.intp) * d)[:, None]
        for _ in range(self.max_depth):
            n2 = self._step(n2, flat.take(feature2.take(n2) + offset), nan)
        return n2

    def _sum_all(self, leaves2: NDArray[np.intp]) -> NDArray[np.float64]:
        if self._leaf_value is None:  # vector leaves (forest classifiers): width == outputs
            total = self._a.value.take(leaves2 >> 1, axis=0).sum(axis=1)
            return self._finish(total)
        values = self._leaf_value.take(leaves2)  # n_rows x n_trees
        if self.float32_sum:
            return self._float32_sum(values)
        if self._assign is None:
            return self._finish(values.sum(axis=1, keepdims=True))
        return self._finish(values @ self._assign)

    def _float32_sum(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Float32 sums from the base, tree by tree (XGBoost's arithmetic), then the scale."""
        out = np.broadcast_to(self._a.base.astype(np.float32), (len(values), self.n_outputs))
        out = out.copy()
        single = values.astype(np.float32)
        for t, target in enumerate(self._a.tree_target.tolist()):
            out[:, target] += single[:, t]
        raw: NDArray[np.float64] = out.astype(np.float64)
        return raw * self.scale if self.scale != 1.0 else raw

    def _walk_each(self, X: NDArray[np.float64], nan: bool) -> NDArray[np.float64]:
        """Tree by tree over all rows (large batches): raw outputs, n_rows x n_outputs."""
        a = self._a
        n, d = X.shape
        flat = X.reshape(-1)
        offset = np.arange(n, dtype=np.intp) * d
        total: NDArray[Any]
        if self.float32_sum:
            total = np.empty((n, self.n_outputs), np.float32)
            total[:] = a.base.astype(np.float32)
        else:
            total = np.zeros((n, self.n_outputs))
        feature2, threshold2, children2 = self._feature2, self._threshold2, self._children2
        leaf_value = self._leaf_value
        plain = not (nan or self._categorical)
        # Buffers reused across trees and levels; every index is in range by construction
        # (checked arrays), so ``mode="clip"`` only skips numpy's bounds check and buffering.
        n2 = np.empty(n, np.intp)
        index = np.empty(n, np.intp)
        x = np.empty(n)
        cut = np.empty(n)
        go_right = np.empty(n, bool)
        for root2, depth, target in zip(
            self._roots2.tolist(), a.depths.tolist(), a.tree_target.tolist(), strict=True
        ):
            n2.fill(root2)
            for _ in range(depth):
                np.take(feature2, n2, out=index, mode="clip")
                index += offset
                np.take(flat, index, out=x, mode="clip")
                if plain:
                    np.take(threshold2, n2, out=cut, mode="clip")
                    np.greater(x, cut, out=go_right)
                    n2 += go_right
                    np.take(children2, n2, out=n2, mode="clip")
                else:
                    n2 = self._step(n2, x, nan)
            if leaf_value is None:
                total += a.value.take(n2 >> 1, axis=0)
            elif self.float32_sum:
                total[:, target] += leaf_value.take(n2).astype(np.float32)
            else:
                total[:, target] += leaf_value.take(n2)
        if self.float32_sum:
            raw: NDArray[np.float64] = total.astype(np.float64)
            return raw * self.scale if self.scale != 1.0 else raw
        return self._finish(total)

    def _finish(self, total: NDArray[np.float64]) -> NDArray[np.float64]:
        raw: NDArray[np.float64] = total * self.scale if self.scale != 1.0 else total.copy()
        raw += self._a.base
        return raw

    # -- persistence -------------------------------------------------------------------------

    def to_payload(self) -> Payload:
        a = self._a
        arrays: dict[str, NDArray[Any]] = {
            "feature": a.feature.astype(np.int32),
            "threshold": a.threshold,
            "left": a.left.astype(np.int32),
            "right": a.right.astype(np.int32),
            "missing_left": a.missing_left,
            "category": a.category.astype(np.int32),
            "value": a.value,
            "roots": a.roots.astype(np.int32),
            "tree_target": a.tree_target.astype(np.int32),
            "left_sets": a.left_sets,
            "known_sets": a.known_sets,
            "base": a.base,
        }
        params: dict[str, Any] = {
            "n_features": self._n_features,
            "link": self.link,
            "scale": self.scale,
            "classes": None if self.classes is None else self.classes.tolist(),
            "float32_input": self.float32_input,
            "float32_sum": self.float32_sum,
            "label_rule": self.label_rule,
            "integral_categories": self.integral_categories,
            "zero_threshold": self.zero_threshold,
            "accepts_missing": self._accepts_missing,
            "feature_names": self._feature_names,
            "source": self.source,
            "engine": "numpy",
            "n_trees": self.n_trees,
            "n_nodes": self.n_nodes,
            "max_depth": self.max_depth,
        }
        return Payload(params, {"weights.npz": dump_arrays(arrays)})

    @classmethod
    def from_payload(cls, params: Mapping[str, Any], files: Mapping[str, bytes]) -> TreeEnsemble:
        if "weights.npz" not in files:
            raise PredictorError("a tree-ensemble model needs weights.npz; it is missing")
        arrays = load_arrays(files["weights.npz"], max_bytes=_MAX_WEIGHT_BYTES)
        return cls(arrays, **checked_params(params))

    def __repr__(self) -> str:
        what = "regressor" if self.classes is None else f"classifier of {len(self.classes)}"
        return (
            f"TreeEnsemble({what}, trees={self.n_trees}, nodes={self.n_nodes}, "
            f"max_depth={self.max_depth}, source={self.source!r})"
        )


def _check_outputs(link: str, n_outputs: int, classes: NDArray[Any] | None) -> None:
    if classes is None:
        if n_outputs != 1 or link in ("logistic", "softmax"):
            raise PredictorError(
                f"a tree-ensemble regressor has one output and link identity or exp; got "
                f"{n_outputs} outputs and link {link!r}"
            )
        return
    expected = 1 if link == "logistic" else len(classes)
    if link == "exp" or n_outputs != expected or (link == "logistic" and len(classes) != 2):
        raise PredictorError(
            f"a tree-ensemble classifier of {len(classes)} classes with link {link!r} needs "
            f"{expected} outputs; it has {n_outputs}"
        )
