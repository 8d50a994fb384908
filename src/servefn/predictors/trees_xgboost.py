"""Convert XGBoost tree boosters to servefn's numpy :class:`~servefn.predictors.trees.TreeEnsemble`.

The converter reads XGBoost's documented JSON model format (``Booster.save_raw("json")``,
``save_model("model.json")``), never a pickle; a ``Booster`` or a scikit-learn wrapper is first
serialised to that JSON by its own ``save_raw``. XGBoost sends a row left when ``float32(x) <
split`` and adds leaf values in float32, tree by tree, from the base margin. The ensemble rounds
features to float32, compares ``x <= nextafter32(split, -inf)`` and sums in float32 from the
base margin (``float32_sum``), so its margins are XGBoost's bit for bit.

Refused by name: gblinear, categorical features and splits, vector leaves, multi-target models
and objectives whose output a TreeEnsemble cannot compute (``reg:logistic``, ``binary:hinge``,
...). Training-time only; the served ensemble never needs xgboost.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors._booster import (
    booster_classes,
    document_of,
    feature_names_of,
    read_capped,
)
from servefn.predictors.trees import MAX_DEPTH, MAX_NODES, Link, Tree, TreeEnsemble

__all__ = [
    "EXP_OBJECTIVES",
    "IDENTITY_OBJECTIVES",
    "is_xgboost_model",
    "tree_ensemble_from_xgboost",
]

IDENTITY_OBJECTIVES = frozenset(
    {"reg:squarederror", "reg:linear", "reg:squaredlogerror", "reg:absoluteerror"}
    | {"reg:pseudohubererror", "reg:quantileerror", "rank:pairwise", "rank:ndcg", "rank:map"}
)
"""Objectives whose prediction is the margin itself."""
EXP_OBJECTIVES = frozenset({"count:poisson", "reg:gamma", "reg:tweedie"})
"""Log-link objectives: the prediction is ``exp(margin)`` and ``base_score`` is in that space."""
_CLASSIFIERS: dict[str, Link] = {
    "binary:logistic": "logistic",
    "multi:softprob": "softmax",
    "multi:softmax": "softmax",
}
_REFUSED = {
    "reg:logistic": "it predicts sigmoid(margin) as a regression value, and a tree ensemble "
    "regressor's link is identity or exp; train binary:logistic (XGBClassifier) instead",
    "binary:logitraw": "it predicts the raw margin, not a probability; train binary:logistic",
    "binary:hinge": "it predicts hard 0/1 labels without probabilities; train binary:logistic",
}
MAX_JSON_BYTES = 1 << 31
"""Largest JSON model read (2 GiB)."""
MAX_TREES = 1 << 20
"""Most trees a model may hold."""


def is_xgboost_model(obj: Any) -> bool:
    """Whether ``obj`` is an ``xgboost.Booster`` or one of XGBoost's scikit-learn wrappers,
    judged by its classes' names and modules alone (xgboost is not imported)."""
    return any(
        getattr(cls, "__module__", "").partition(".")[0] == "xgboost"
        and cls.__name__ in ("Booster", "XGBModel")
        for cls in type(obj).__mro__
    )


def tree_ensemble_from_xgboost(
    model: Any, *, use_best_iteration: bool | None = None
) -> TreeEnsemble:
    """A :class:`TreeEnsemble` predicting as ``model`` does: an ``xgboost.Booster``, an
    ``XGBClassifier``/``XGBRegressor``, or XGBoost's JSON model (a parsed dict, bytes, JSON text,
    or the path of a ``.json`` file).

    ``use_best_iteration`` keeps only the trees up to the early-stopping ``best_iteration``; by
    default it does so for a scikit-learn wrapper (as its ``predict`` does) and not otherwise (as
    ``Booster.predict``). Raises :class:`~servefn.errors.PredictorError` naming what is
    unsupported or malformed.
    """
    doc, wrapper = _document(model)
    learner = _get(doc, "learner", dict, "the model")
    params = _get(learner, "learner_model_param", dict, "learner")
    objective = _get(_get(learner, "objective", dict, "learner"), "name", str, "objective")
    link = _link(objective)
    n_features = _int(params, "num_feature", "learner_model_param", 1, 1 << 20)
    num_class = _int(params, "num_class", "learner_model_param", 0, 1 << 16, default=0)
    if _int(params, "num_target", "learner_model_param", 1, 1 << 16, default=1) != 1:
        raise PredictorError("multi-target XGBoost models are not supported: train one per target")
    n_outputs = num_class if link == "softmax" else 1
    if link == "softmax" and num_class < 2:
        raise PredictorError(f"objective {objective} needs num_class >= 2, not {num_class}")
    types = learner.get("feature_types")
    if isinstance(types, list) and "c" in types:
        raise PredictorError(
            "XGBoost categorical features (enable_categorical) are not supported; one-hot or "
            "ordinal-encode them before training"
        )
    booster, weights = _gbtree(_get(learner, "gradient_booster", dict, "learner"))
    raw_trees = _get(booster, "trees", list, "the gbtree model")
    n_trees = len(raw_trees)
    if n_trees > MAX_TREES:
        raise PredictorError(f"the model holds more than {MAX_TREES} trees")
    tree_info = _array(booster, "tree_info", "the gbtree model", n_trees, "iub")
    if n_trees and (tree_info.min() < 0 or tree_info.max() >= n_outputs):
        raise PredictorError(f"tree_info assigns a tree to an output outside 0..{n_outputs - 1}")
    best = (wrapper is not None) if use_best_iteration is None else use_best_iteration
    n_used = _trees_used(learner, booster, n_trees, n_outputs) if best else n_trees
    base = _base_margin(params, objective, link, n_outputs)
    trees: list[Tree] = []
    total = 0
    for i in range(n_used):
        tree = _tree(raw_trees[i], i, n_features)
        total += len(tree.feature)
        if total > MAX_NODES:
            raise PredictorError(f"the model holds more than {MAX_NODES} nodes")
        tree.target = int(tree_info[i])
        if weights is not None:
            tree.value = _dart_leaves(tree, weights[i], base, inplace=wrapper is not None)
        trees.append(tree)
    if not trees:
        raise PredictorError("the XGBoost model holds no trees; train it first")
    return TreeEnsemble.from_trees(
        trees,
        base=base.astype(np.float64),  # float32 values: the float32 sums start from them
        n_features=n_features,
        link=link,
        classes=_classes(wrapper, link, n_outputs, objective),
        float32_input=True,
        float32_sum=True,
        accepts_missing=True,
        feature_names=_feature_names(learner, n_features),
        source=f"xgboost {objective}",
    )


# -- the JSON document and the wrapper's own settings ---------------------------------------


def _document(model: Any) -> tuple[Mapping[str, Any], Any]:
    """The parsed JSON model, and the scikit-learn wrapper it came from (or None)."""
    given = document_of(model, _parse, _read)
    if given is not None:
        return given, None
    if not is_xgboost_model(model):
        raise PredictorError(
            f"{type(model).__name__} is not an XGBoost model: pass an xgboost.Booster, an "
            "XGBClassifier/XGBRegressor, or XGBoost's JSON model (dict, bytes or .json path)"
        )
    wrapper = model if hasattr(model, "get_booster") else None
    if wrapper is not None:
        missing = getattr(wrapper, "missing", math.nan)
        if not (isinstance(missing, float) and math.isnan(missing)):
            raise PredictorError(
                f"the model treats {missing!r} as missing; a tree ensemble treats only NaN as "
                "missing: train with the default missing=np.nan"
            )
        try:
            model = wrapper.get_booster()
        except Exception as exc:  # xgboost's NotFittedError
            raise PredictorError(f"the XGBoost model is not fitted: {exc}") from exc
    raw = model.save_raw(raw_format="json")
    return _parse(bytes(raw)), wrapper


def _read(path: Path) -> bytes:
    return read_capped(path, MAX_JSON_BYTES, "XGBoost model")


def _parse(raw: bytes) -> Mapping[str, Any]:
    if len(raw) > MAX_JSON_BYTES:
        raise PredictorError(f"the XGBoost JSON model is larger than {MAX_JSON_BYTES} bytes")
    if not raw.lstrip()[:1] == b"{":
        raise PredictorError("this is not XGBoost's JSON model format (the old binary format?)")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PredictorError(
            f"the XGBoost JSON model does not parse ({exc}); UBJSON is not read: save it with "
            "booster.save_raw('json') or save_model('model.json')"
        ) from exc
    if not isinstance(doc, dict):
        raise PredictorError("the XGBoost JSON model must be an object")
    return doc


def _link(objective: str) -> Link:
    if objective in _CLASSIFIERS:
        return _CLASSIFIERS[objective]
    if objective in IDENTITY_OBJECTIVES:
        return "identity"
    if objective in EXP_OBJECTIVES:
        return "exp"
    why = _REFUSED.get(objective, "it is not one servefn knows how to compute")
    known = sorted([*_CLASSIFIERS, *IDENTITY_OBJECTIVES, *EXP_OBJECTIVES])
    raise PredictorError(
        f"XGBoost objective {objective[:60]!r} is not supported: {why}. Supported: "
        f"{', '.join(known)}"
    )


def _gbtree(gb: Mapping[str, Any]) -> tuple[Mapping[str, Any], NDArray[np.float64] | None]:
    """The gbtree model, and dart's per-tree weights (None for gbtree)."""
    name = _get(gb, "name", str, "gradient_booster")
    if name == "gbtree":
        return _get(gb, "model", dict, "gbtree"), None
    if name == "dart":
        model = _get(_get(gb, "gbtree", dict, "dart"), "model", dict, "dart")
        n = len(_get(model, "trees", list, "the dart model"))
        weights = _array(gb, "weight_drop", "dart", n, "iuf")
        if not np.isfinite(weights).all():
            raise PredictorError("a dart tree weight is not finite")
        return model, weights
    if name == "gblinear":
        raise PredictorError("gblinear (a linear booster) is not a tree model; use gbtree")
    raise PredictorError(f"XGBoost booster {name[:40]!r} is not supported; use gbtree or dart")


def _trees_used(
    learner: Mapping[str, Any], booster: Mapping[str, Any], n_trees: int, n_outputs: int
) -> int:
    """How many leading trees ``predict`` uses when early stopping set ``best_iteration``."""
    attributes = learner.get("attributes", {})
    best = attributes.get("best_iteration") if isinstance(attributes, dict) else None
    if best is None:
        return n_trees
    if not (isinstance(best, str) and best.isdigit()):
        raise PredictorError("the attribute best_iteration is not a whole number")
    rounds = int(best) + 1
    indptr = booster.get("iteration_indptr")
    if isinstance(indptr, list) and indptr:
        bounds = _array(booster, "iteration_indptr", "the gbtree model", len(indptr), "iub")
        if bounds[0] != 0 or (np.diff(bounds) < 0).any() or bounds[-1] != n_trees:
            raise PredictorError("iteration_indptr does not partition the trees")
        return int(bounds[min(rounds, len(bounds) - 1)])
    param = _get(booster, "gbtree_model_param", dict, "the gbtree model")
    parallel = _int(param, "num_parallel_tree", "gbtree_model_param", 1, 1 << 16, default=1)
    return min(n_trees, rounds * parallel * n_outputs)


def _base_margin(
    params: Mapping[str, Any], objective: str, link: Link, n_outputs: int
) -> NDArray[np.float32]:
    """``base_score`` as XGBoost's float32 starting margin, one per output."""
    raw = params.get("base_score", "0.5")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = str(raw)
    if not (isinstance(raw, str) and len(raw) < 1 << 20):
        raise PredictorError("learner_model_param base_score must be a number or a list of them")
    try:
        with np.errstate(over="ignore"):  # too large for a float32: infinite, refused below
            values = np.array([float(v) for v in raw.strip().strip("[]").split(",")], np.float32)
    except ValueError:
        raise PredictorError(f"base_score {raw[:40]!r} is not a list of numbers") from None
    if values.shape[0] == 1:
        values = np.repeat(values, n_outputs)
    if values.shape[0] != n_outputs or not np.isfinite(values).all():
        raise PredictorError(f"base_score must hold 1 or {n_outputs} finite numbers")
    one = np.float32(1.0)
    margin: NDArray[np.float32] = values
    with np.errstate(divide="ignore", invalid="ignore"):
        if link == "logistic":  # ProbToMargin: -logf(1 / p - 1), in float32
            if ((values <= 0) | (values >= 1)).any():
                raise PredictorError(f"base_score must be in (0, 1) for {objective}")
            margin = -np.log((one / values - one).astype(np.float64)).astype(np.float32)
        elif link == "exp":  # logf(base_score)
            if (values <= 0).any():
                raise PredictorError(f"base_score must be positive for {objective}")
            margin = np.log(values.astype(np.float64)).astype(np.float32)
    return margin


def _classes(wrapper: Any, link: Link, n_outputs: int, objective: str) -> list[Any] | None:
    return booster_classes(wrapper, link, n_outputs, objective, "XGB")


def _feature_names(learner: Mapping[str, Any], n_features: int) -> list[str] | None:
    return feature_names_of(learner.get("feature_names"), n_features)


# -- one tree ---------------------------------------------------------------------------------


def _dart_leaves(
    tree: Tree, weight: np.float64, base: NDArray[np.float32], *, inplace: bool
) -> NDArray[np.float64]:
    """A dart tree's leaves times its weight, rounded as XGBoost does: ``leaf * w`` in float32
    for ``Booster.predict``; ``((base + leaf) - base) * w`` for ``inplace_predict``, which the
    scikit-learn wrappers' ``predict`` uses."""
    leaf, w, b = np.asarray(tree.value, np.float32), np.float32(weight), base[tree.target]
    leaf = ((b + leaf) - b) * w if inplace else leaf * w
    return np.where(np.asarray(tree.left) < 0, leaf.astype(np.float64), 0.0)


def _tree(raw: Any, index: int, n_features: int) -> Tree:
    """Tree ``index`` of the JSON model, its splits rewritten as ``x <= threshold``."""
    where = f"tree {index}"
    if not isinstance(raw, dict):
        raise PredictorError(f"{where} is not an object")
    param = _get(raw, "tree_param", dict, where)
    n = _int(param, "num_nodes", where, 1, MAX_NODES)
    if _int(param, "size_leaf_vector", where, 0, 1 << 16, default=1) > 1:
        raise PredictorError("XGBoost vector-leaf trees (multi_output_tree) are not supported")
    left = _array(raw, "left_children", where, n, "iub")
    right = _array(raw, "right_children", where, n, "iub")
    feature = _array(raw, "split_indices", where, n, "iub")
    default_left = _array(raw, "default_left", where, n, "iub") != 0
    split_type = _array(raw, "split_type", where, n, "iub") if "split_type" in raw else None
    condition = _array(raw, "split_conditions", where, n, "iuf")
    if ((left < -1) | (left >= n) | (right < -1) | (right >= n)).any():
        raise PredictorError(f"{where} has a child outside its {n} nodes")
    leaf = left < 0
    if (right[leaf] >= 0).any() or (right[~leaf] < 0).any():
        raise PredictorError(f"{where} has a node with one child")
    if split_type is not None and (split_type[~leaf] != 0).any():
        raise PredictorError(
            "XGBoost categorical splits are not supported; one-hot encode the categorical "
            "features (or train without enable_categorical)"
        )
    if (feature[~leaf] < 0).any() or (feature[~leaf] >= n_features).any():
        raise PredictorError(f"{where} splits on a feature outside the {n_features} features")
    with np.errstate(over="ignore", invalid="ignore"):
        cond32 = condition.astype(np.float32)
        below = np.nextafter(cond32, np.float32(-np.inf)).astype(np.float64)
    threshold = np.where(leaf, 0.0, below)  # x32 < c  <=>  x32 <= the float32 just below c
    value = np.where(leaf, cond32.astype(np.float64), 0.0)
    keep = _reachable(left, right, where)
    if not keep.all():  # nodes deleted by pruning stay in the arrays, unreachable
        order = np.flatnonzero(keep)
        renumber = np.full(n, -1, np.int64)
        renumber[order] = np.arange(order.shape[0])
        left = np.where(left[order] >= 0, renumber[left[order]], -1)
        right = np.where(right[order] >= 0, renumber[right[order]], -1)
        feature, threshold = feature[order], threshold[order]
        default_left, value = default_left[order], value[order]
    return Tree(feature, threshold, left, right, default_left, value)


def _reachable(left: NDArray[np.int64], right: NDArray[np.int64], where: str) -> NDArray[np.bool_]:
    """Which nodes the root reaches; refuses a node reached twice and a tree too deep."""
    seen: NDArray[np.bool_] = np.arange(left.shape[0]) == 0  # the root
    frontier = np.zeros(1, np.int64)
    for _ in range(MAX_DEPTH + 1):
        inner = frontier[left[frontier] >= 0]
        if not inner.size:
            return seen
        children = np.concatenate((left[inner], right[inner]))
        if seen[children].any() or np.unique(children).shape[0] != children.shape[0]:
            raise PredictorError(f"{where} reaches a node twice (a cycle or shared node)")
        seen[children] = True
        frontier = children
    raise PredictorError(f"{where} is deeper than {MAX_DEPTH} levels")


# -- typed access to hostile JSON ---------------------------------------------------------------

_T = TypeVar("_T", dict, list, str)  # type: ignore[type-arg]


def _get(parent: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    """``parent[key]`` if it is a ``kind`` (text up to 200 characters), else PredictorError."""
    value = parent.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and len(value) > 200):
        raise PredictorError(f"the XGBoost JSON model lacks the {kind.__name__} {key!r} in {where}")
    return value


def _int(
    parent: Mapping[str, Any], key: str, where: str, low: int, high: int, default: int = -1
) -> int:
    """An integer parameter (XGBoost writes them as text), within ``low..high``."""
    value = parent.get(key, default)
    if isinstance(value, str) and value.isdigit() and len(value) < 20:
        value = int(value)
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        raise PredictorError(f"{key!r} in {where} must be a whole number in {low}..{high}")
    return value


def _array(parent: Mapping[str, Any], key: str, where: str, n: int, kinds: str) -> NDArray[Any]:
    """``parent[key]``: a list of ``n`` numbers of the numpy ``kinds`` ("iub" whole numbers)."""
    values = _get(parent, key, list, where)
    try:
        array = np.asarray(values) if values else np.zeros(0)
    except (ValueError, TypeError, OverflowError):  # ragged or mixed
        array = np.zeros(0, object)
    if len(values) != n or array.ndim != 1 or (n and array.dtype.kind not in kinds):
        raise PredictorError(f"{key!r} in {where} must be {n} numbers")
    return array.astype(np.int64 if "b" in kinds else np.float64)
