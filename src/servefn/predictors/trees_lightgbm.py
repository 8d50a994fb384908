"""Convert LightGBM boosters to servefn's numpy :class:`~servefn.predictors.trees.TreeEnsemble`.

The converter reads the JSON of ``Booster.dump_model()`` (the trees up to the best iteration, as
``predict`` uses them), never a pickle. LightGBM compares features as float64 and sums leaves in
float64, which the ensemble does too. A numeric node sends ``x <= threshold`` left; NaN goes the
default way when the node's missing type is ``NaN`` and is read as 0.0 otherwise (so it goes
where 0.0 goes); a ``Zero`` node sends ``|x| <= 1e-35`` the default way, kept only where the
threshold already sends that band there. A categorical node sends a row left when its
truncated value is in the node's set; NaN, negative and unknown values go right.

Refused by name: linear trees, ``Zero`` splits a threshold cannot express, and objectives whose
output a TreeEnsemble cannot compute (``multiclassova``, ``cross_entropy``, ``regression`` with
``reg_sqrt``, custom). Training-time only; lightgbm is imported only to load a text model file.
"""

from __future__ import annotations

import json
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
from servefn.predictors.trees import (
    MAX_CATEGORY_WORDS,
    MAX_DEPTH,
    MAX_NODES,
    Link,
    Tree,
    TreeEnsemble,
)

__all__ = [
    "EXP_OBJECTIVES",
    "IDENTITY_OBJECTIVES",
    "is_lightgbm_model",
    "tree_ensemble_from_lightgbm",
]

IDENTITY_OBJECTIVES = frozenset(
    {"regression", "regression_l1", "huber", "fair", "quantile", "mape"}
    | {"lambdarank", "rank_xendcg"}
)
"""Objectives whose prediction is the raw score itself."""
EXP_OBJECTIVES = frozenset({"poisson", "gamma", "tweedie"})
"""Log-link objectives: the prediction is ``exp(raw score)``."""
_REFUSED = {
    "multiclassova": "its one-vs-all probabilities are separate sigmoids, not a softmax; "
    "train objective='multiclass'",
    "cross_entropy": "it predicts sigmoid(score) as a regression value, and a tree ensemble "
    "regressor's link is identity or exp",
    "cross_entropy_lambda": "it predicts log(1 + exp(score)), which a tree ensemble cannot",
    "custom": "a custom objective's output transform is unknown",
}
ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold`` (``1e-35f``): its predictor reads an input value with
``|x| <= ZERO_THRESHOLD`` as 0.0 before any split sees it (the ensemble's ``zero_threshold``),
and a ``Zero`` missing type sends 0 the default way."""
MAX_JSON_BYTES = 1 << 31
"""Largest JSON dump read (2 GiB)."""
MAX_TREES = 1 << 20
"""Most trees a model may hold."""
_MAX_CATEGORY = 32 * MAX_CATEGORY_WORDS
_MAX_SET_WORDS = 1 << 26
_LGB_CLASSES = ("Booster", "LGBMModel")


def is_lightgbm_model(obj: Any) -> bool:
    """Whether ``obj`` is a ``lightgbm.Booster`` or one of LightGBM's scikit-learn wrappers,
    judged by its classes' names and modules alone (lightgbm is not imported)."""
    return any(
        getattr(cls, "__module__", "").partition(".")[0] == "lightgbm"
        and cls.__name__ in _LGB_CLASSES
        for cls in type(obj).__mro__
    )


def tree_ensemble_from_lightgbm(model: Any) -> TreeEnsemble:
    """A :class:`TreeEnsemble` predicting as ``model`` does: a ``lightgbm.Booster``, an
    ``LGBMClassifier``/``LGBMRegressor``, the dict or JSON text of ``Booster.dump_model()``, or
    the path of such a JSON file or of a LightGBM text model.

    Raises :class:`~servefn.errors.PredictorError` naming what is unsupported or malformed.
    """
    doc, wrapper = _document(model)
    objective = doc.get("objective", "custom")  # a custom objective leaves none
    if not (isinstance(objective, str) and 0 < len(objective) <= 200):
        raise PredictorError("the LightGBM dump's objective is not text")
    link, scale = _link(objective)
    n_features = _int(doc, "max_feature_idx", "the model", 0, (1 << 20) - 1) + 1
    per_iteration = _int(doc, "num_tree_per_iteration", "the model", 1, 1 << 16)
    num_class = _int(doc, "num_class", "the model", 1, 1 << 16)
    n_outputs = num_class if link == "softmax" else 1
    if per_iteration != n_outputs:
        raise PredictorError(
            f"{per_iteration} trees per iteration for objective {objective[:40]!r}: expected "
            f"{n_outputs}"
        )
    infos = _get(doc, "tree_info", list, "the model")
    if not 0 < len(infos) <= MAX_TREES or len(infos) % per_iteration:
        raise PredictorError(
            f"the model holds {len(infos)} trees; expected 1 to {MAX_TREES}, a multiple of "
            f"{per_iteration}"
        )
    if doc.get("average_output") is True:  # random forest: the mean over iterations
        scale /= len(infos) // per_iteration
    sets: list[list[int]] = []
    trees: list[Tree] = []
    budget = MAX_NODES
    for i, info in enumerate(infos):
        where = f"tree {i}"
        if not isinstance(info, dict):
            raise PredictorError(f"{where} is not an object")
        if info.get("is_linear"):
            raise PredictorError(_LINEAR)
        tree = _tree(_get(info, "tree_structure", dict, where), where, n_features, sets, budget)
        tree.target = i % per_iteration
        budget -= len(tree.feature)
        trees.append(tree)
    left_sets = _bitsets(sets)
    return TreeEnsemble.from_trees(
        trees,
        base=np.zeros(n_outputs),
        left_sets=left_sets,
        known_sets=left_sets.copy(),
        n_features=n_features,
        link=link,
        scale=scale,
        classes=_classes(wrapper, link, n_outputs, objective),
        float32_input=False,
        float32_sum=False,
        zero_threshold=ZERO_THRESHOLD,
        accepts_missing=True,
        feature_names=_feature_names(doc, n_features),
        source=f"lightgbm {objective.partition(' ')[0]}",
    )


_LINEAR = (
    "LightGBM linear trees (linear_tree=True) are not supported: their leaves are linear "
    "models; train with linear_tree=False"
)


# -- the JSON document and the wrapper ------------------------------------------------------------


def _document(model: Any) -> tuple[Mapping[str, Any], Any]:
    """The ``dump_model()`` dict, and the scikit-learn wrapper it came from (or None)."""
    given = document_of(model, _parse, _read)
    if given is not None:
        return given, None
    if not is_lightgbm_model(model):
        raise PredictorError(
            f"{type(model).__name__} is not a LightGBM model: pass a lightgbm.Booster, an "
            "LGBMClassifier/LGBMRegressor, or the dict of Booster.dump_model()"
        )
    wrapper = None
    if not hasattr(model, "dump_model"):  # a scikit-learn wrapper
        wrapper = model
        try:
            model = wrapper.booster_
        except Exception as exc:  # LightGBM's not-fitted error
            raise PredictorError(f"the LightGBM model is not fitted: {exc}") from exc
    doc = model.dump_model()  # up to best_iteration, as predict() uses
    if not isinstance(doc, dict):
        raise PredictorError("Booster.dump_model() did not return a dict")
    return doc, wrapper


def _read(path: Path) -> bytes:
    raw = read_capped(path, MAX_JSON_BYTES, "LightGBM model")
    if not raw.startswith(b"tree\n"):
        return raw
    try:  # LightGBM's own text format: only LightGBM parses it
        import lightgbm

        dumped = lightgbm.Booster(model_str=raw.decode("utf-8")).dump_model()
    except ImportError:
        raise PredictorError(
            f"{path.name} is a LightGBM text model: pip install lightgbm"
        ) from None
    except Exception as exc:  # LightGBMError, UnicodeDecodeError
        raise PredictorError(f"LightGBM cannot read {path.name}: {exc}") from exc
    return json.dumps(dumped).encode("utf-8")


def _parse(raw: bytes) -> Mapping[str, Any]:
    if len(raw) > MAX_JSON_BYTES:
        raise PredictorError(f"the LightGBM JSON dump is larger than {MAX_JSON_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise PredictorError(f"the LightGBM JSON dump does not parse: {exc}") from exc
    if not isinstance(doc, dict):
        raise PredictorError("the LightGBM JSON dump must be an object")
    return doc


def _link(objective: str) -> tuple[Link, float]:
    """The link and the raw-score scale (binary's ``sigmoid`` parameter) of ``objective``."""
    name, *options = objective.split()
    params = dict(option.partition(":")[::2] for option in options)
    if name in IDENTITY_OBJECTIVES or name in EXP_OBJECTIVES:
        if "sqrt" in options:
            raise PredictorError(
                f"LightGBM {name} with reg_sqrt=True predicts the square of the score; a tree "
                "ensemble cannot; train with reg_sqrt=False"
            )
        return ("identity" if name in IDENTITY_OBJECTIVES else "exp"), 1.0
    if name == "binary":
        try:
            sigmoid = float(params.get("sigmoid", "1"))
        except ValueError:
            sigmoid = float("nan")
        if not (np.isfinite(sigmoid) and sigmoid > 0):
            raise PredictorError(f"the binary objective's sigmoid {params.get('sigmoid')!r} is bad")
        return "logistic", sigmoid
    if name == "multiclass":
        return "softmax", 1.0
    why = _REFUSED.get(name, "it is not one servefn knows how to compute")
    known = sorted([*IDENTITY_OBJECTIVES, *EXP_OBJECTIVES, "binary", "multiclass"])
    raise PredictorError(
        f"LightGBM objective {name[:60]!r} is not supported: {why}. Supported: {', '.join(known)}"
    )


def _classes(wrapper: Any, link: Link, n_outputs: int, objective: str) -> list[Any] | None:
    return booster_classes(wrapper, link, n_outputs, objective, "LGBM")


def _feature_names(doc: Mapping[str, Any], n_features: int) -> list[str] | None:
    """The training column names, or None for LightGBM's defaults ``Column_0``, ..."""
    names = feature_names_of(doc.get("feature_names"), n_features)
    return None if names == [f"Column_{i}" for i in range(n_features)] else names


# -- one tree -------------------------------------------------------------------------------------


def _tree(
    root: Mapping[str, Any], where: str, n_features: int, sets: list[list[int]], budget: int
) -> Tree:
    """One nested ``tree_structure``, flattened in preorder; categorical splits append their
    left categories to ``sets``."""
    feature: list[int] = []
    threshold: list[float] = []
    missing_left: list[bool] = []
    category: list[int] = []
    value: list[float] = []
    left: list[int] = []
    right: list[int] = []
    stack: list[tuple[Any, int, bool, int]] = [(root, -1, True, 0)]
    while stack:
        node, parent, is_left, depth = stack.pop()
        index = len(feature)
        if depth > MAX_DEPTH or index >= budget:
            raise PredictorError(
                f"{where} is deeper than {MAX_DEPTH} levels or the model holds more than "
                f"{MAX_NODES} nodes"
            )
        if not isinstance(node, dict):
            raise PredictorError(f"a node of {where} is not an object")
        if parent >= 0:
            (left if is_left else right)[parent] = index
        left.append(-1)
        right.append(-1)
        if "split_feature" not in node:
            if "leaf_coeff" in node or "leaf_features" in node:
                raise PredictorError(_LINEAR)
            value.append(_number(node, "leaf_value", where))
            feature.append(0)
            threshold.append(0.0)
            missing_left.append(False)
            category.append(-1)
            continue
        feature.append(_int(node, "split_feature", where, 0, n_features - 1))
        kind = node.get("decision_type")
        if kind == "<=":
            cut = _number(node, "threshold", where)
            threshold.append(cut)
            missing_left.append(_missing_left(node, cut, where, feature[-1]))
            category.append(-1)
        elif kind == "==":
            threshold.append(0.0)
            missing_left.append(False)  # NaN, negative and unknown values go right
            category.append(len(sets))
            sets.append(_categories(node.get("threshold"), where))
        else:
            raise PredictorError(f"a split of {where} has decision_type {str(kind)[:20]!r}")
        value.append(0.0)
        stack.append((node.get("right_child"), index, False, depth + 1))
        stack.append((node.get("left_child"), index, True, depth + 1))
    return Tree(
        feature=np.array(feature, np.int64),
        threshold=np.array(threshold, np.float64),
        left=np.array(left, np.int64),
        right=np.array(right, np.int64),
        missing_left=np.array(missing_left, bool),
        value=np.array(value, np.float64),
        category=np.array(category, np.int64),
    )


def _missing_left(node: Mapping[str, Any], cut: float, where: str, feature: int) -> bool:
    """Where NaN goes at a numeric split, exactly as LightGBM's NumericalDecision sends it."""
    missing = node.get("missing_type")
    default_left = node.get("default_left")
    if not isinstance(default_left, bool):
        raise PredictorError(f"a split of {where} lacks a true/false default_left")
    if missing == "NaN":
        return default_left
    if missing == "None":  # NaN is read as 0.0
        return cut >= 0.0
    if missing == "Zero":  # NaN and |x| <= 1e-35 go the default way
        if default_left and cut >= ZERO_THRESHOLD:
            return True
        if not default_left and cut < -ZERO_THRESHOLD:
            return False
        side = "left" if default_left else "right"
        raise PredictorError(
            f"a split of {where} on feature {feature} sends zero (|x| <= 1e-35) {side} as "
            f"missing but its threshold {cut!r} sends zero the other way; a tree ensemble "
            "cannot express that: train with zero_as_missing=False"
        )
    raise PredictorError(f"a split of {where} has missing_type {str(missing)[:20]!r}")


def _categories(raw: Any, where: str) -> list[int]:
    """The left categories of a categorical split, written ``"1||3||5"`` in the dump."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not (isinstance(raw, str) and len(raw) < 8 * _MAX_CATEGORY):
        raise PredictorError(f"a categorical split of {where} lacks its categories")
    parts = raw.split("||")
    if not all(p.isdigit() and len(p) < 10 for p in parts):
        raise PredictorError(f"a categorical split of {where} has categories {raw[:40]!r}")
    cats = [int(p) for p in parts]
    if max(cats) >= _MAX_CATEGORY:
        raise PredictorError(f"a categorical split of {where} uses a category >= {_MAX_CATEGORY}")
    return cats


def _bitsets(sets: list[list[int]]) -> NDArray[np.uint32]:
    """The categorical sets as one bitset row each (uint32 words)."""
    if not sets:
        return np.zeros((0, 1), np.uint32)
    words = max(max(cats) for cats in sets) // 32 + 1
    if len(sets) * words > _MAX_SET_WORDS:
        raise PredictorError("the categorical splits' sets are too large")
    bits = np.zeros((len(sets), words), np.uint32)
    for row, cats in enumerate(sets):
        codes = np.asarray(cats, np.int64)
        np.bitwise_or.at(bits[row], codes >> 5, np.left_shift(1, codes & 31).astype(np.uint32))
    return bits


# -- typed access to hostile JSON ---------------------------------------------------------------


_T = TypeVar("_T", dict, list, str)  # type: ignore[type-arg]


def _get(parent: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    """``parent[key]`` if it is a ``kind`` (non-empty text up to 200 characters), else
    PredictorError."""
    value = parent.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not 0 < len(value) <= 200):
        raise PredictorError(f"the LightGBM dump lacks the {kind.__name__} {key!r} in {where}")
    return value


def _int(parent: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    """``parent[key]``, a whole number within ``low..high``."""
    value = parent.get(key)
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        raise PredictorError(f"{key!r} in {where} must be a whole number in {low}..{high}")
    return value


def _number(parent: Mapping[str, Any], key: str, where: str) -> float:
    """``parent[key]``, a finite number (an integer too large for a float is not)."""
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PredictorError(f"a node of {where} lacks the number {key!r}")
    number = float(value) if isinstance(value, float) or abs(value) < 1 << 1000 else np.inf
    if not np.isfinite(number):
        raise PredictorError(f"a node of {where} has a {key!r} that is not finite")
    return number
