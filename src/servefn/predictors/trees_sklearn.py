"""Convert fitted scikit-learn tree models to servefn's numpy
:class:`~servefn.predictors.trees.TreeEnsemble`, predicting as scikit-learn 1.9 does (labels
equal, scores to a few ulps: the same terms summed in another order).

- Decision and extra trees, random forests and extra-trees forests compare ``float32(x) <=
  threshold`` and send NaN by ``tree_.missing_go_to_left``, where scikit-learn lets NaN through
  (``_support_missing_values``); a classifier's leaves hold the class fractions scikit-learn
  stores in ``tree_.value`` since 1.4.1 (before, counts: normalised here as ``predict_proba``
  then did), and a forest averages its trees (``scale = 1 / n_trees``).
- Gradient boosting adds ``learning_rate * leaf`` to the init estimator's constant raw
  prediction; leaves are stored pre-multiplied, as scikit-learn adds them. Binary log-loss is
  ``logistic``, multiclass ``softmax`` (one tree per class per stage), the exponential loss
  ``logistic`` of twice the raw prediction (leaves and base doubled, exactly), regression
  identity. It refuses NaN at predict time, so the ensemble does too.
- Histogram gradient boosting compares float64 features and adds leaves to
  ``_baseline_prediction``; links come from its loss (``exp`` for poisson and gamma). Its
  categorical features go through an ``OrdinalEncoder`` (categorical columns first) before the
  trees: the ensemble reads the raw columns in their original order, and each categorical split
  gets bitsets over the raw category values, which must be non-negative integers (any
  ``categorical_features`` form, a pandas categorical column of integers included). A value the
  encoder does not know (negative, unseen, >= 256, not a whole number alike) is missing there,
  as in the ensemble (``integral_categories``). Labels are decided on the raw margin, as
  scikit-learn's gradient boosting decides them (``label_rule``).

Refused by name: other estimators (pipelines, voting, subclasses), unfitted and multi-output
models, a gradient-boosting init estimator other than a constant dummy, and text categories.
Training-time only: this module never imports scikit-learn; it reads fitted attributes.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors.trees import Link, Tree, TreeEnsemble

__all__ = ["SUPPORTED_MODELS", "is_sklearn_tree_model", "tree_ensemble_from_sklearn"]

_SINGLE_TREES = (
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
)
_FORESTS = (
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
)
_BOOSTING = ("GradientBoostingClassifier", "GradientBoostingRegressor")
_HIST_BOOSTING = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
SUPPORTED_MODELS = _SINGLE_TREES + _FORESTS + _BOOSTING + _HIST_BOOSTING
"""scikit-learn classes converted (exactly these classes: a subclass may predict otherwise)."""

_LINKS: dict[str, Link] = {
    "IdentityLink": "identity",
    "LogLink": "exp",
    "LogitLink": "logistic",
    "HalfLogitLink": "logistic",  # exponential loss: expit(2 * raw)
    "MultinomialLogit": "softmax",
}
_CONSTANT_DUMMIES = {
    "DummyClassifier": ("prior", "most_frequent", "uniform", "constant"),
    "DummyRegressor": ("mean", "median", "quantile", "constant"),
}
_MAX_CATEGORY = 1 << 17
"""Categories a tree ensemble's bitsets hold (4,096 words of 32 bits)."""


def is_sklearn_tree_model(estimator: Any) -> bool:
    """Whether ``estimator`` is one of :data:`SUPPORTED_MODELS`, judged by its class's name and
    module alone (scikit-learn is not imported)."""
    return _supported(type(estimator))


def _supported(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module.partition(".")[0] == "sklearn" and cls.__name__ in SUPPORTED_MODELS


def tree_ensemble_from_sklearn(estimator: Any) -> TreeEnsemble:
    """A :class:`TreeEnsemble` predicting as the fitted scikit-learn tree model ``estimator``.

    Raises :class:`~servefn.errors.PredictorError` naming the class or feature that is not
    supported.
    """
    name = type(estimator).__name__
    if not is_sklearn_tree_model(estimator):
        parent = next((c for c in type(estimator).__mro__[1:] if _supported(c)), None)
        if parent is not None:
            raise PredictorError(
                f"{name} subclasses {parent.__name__} and may predict otherwise; only "
                f"scikit-learn's own classes convert ({', '.join(SUPPORTED_MODELS)})"
            )
        raise PredictorError(
            f"{name} is not a scikit-learn tree model servefn converts to a tree ensemble; "
            f"supported: {', '.join(SUPPORTED_MODELS)}"
        )
    fitted = "_predictors" if name in _HIST_BOOSTING else "tree_"
    fitted = "estimators_" if name in _FORESTS + _BOOSTING else fitted
    if not hasattr(estimator, fitted):
        raise PredictorError(f"this {name} is not fitted; fit it before saving")
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise PredictorError(
            f"this {name} is multi-output ({estimator.n_outputs_} targets); a tree ensemble "
            "predicts one target"
        )
    if name in _HIST_BOOSTING:
        return _hist_boosting(estimator, name)
    if name in _BOOSTING:
        return _boosting(estimator, name)
    members = [estimator] if name in _SINGLE_TREES else list(estimator.estimators_)
    return _forest(estimator, name, members)


def _common(estimator: Any, name: str) -> dict[str, Any]:
    """Constructor keywords every converter passes."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and not all(isinstance(n, str) for n in names):
        names = None
    return {
        "n_features": int(estimator.n_features_in_),
        "feature_names": None if names is None else [str(n) for n in names],
        "classes": estimator.classes_ if name.endswith("Classifier") else None,
        "source": f"scikit-learn {name}",
    }


def _tree_allows_nan(tree_model: Any) -> bool:
    """Whether scikit-learn lets NaN reach a decision tree's (or a forest's first tree's)
    predict: the check its ``_validate_X_predict`` makes on a dense matrix."""
    support = getattr(tree_model, "_support_missing_values", None)
    n_features = int(tree_model.n_features_in_)
    return bool(support(np.zeros((1, n_features), np.float32))) if support else False


def _counts_in_tree_values() -> bool:
    """Whether the running scikit-learn keeps a classifier tree's weighted class counts in
    ``tree_.value`` and normalises them in ``predict_proba`` (before 1.4.1), rather than the
    fractions themselves."""
    version = str(getattr(sys.modules.get("sklearn"), "__version__", ""))
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if found is None:
        return False
    return tuple(int(part or 0) for part in found.groups()) < (1, 4, 1)


def _sklearn_tree(tree: Any, value: NDArray[Any], target: int = 0) -> Tree:
    """A fitted ``sklearn.tree._tree.Tree`` (-1 children at leaves, as Tree wants)."""
    return Tree(
        feature=np.asarray(tree.feature),
        threshold=np.asarray(tree.threshold),
        left=np.asarray(tree.children_left),
        right=np.asarray(tree.children_right),
        missing_left=np.asarray(tree.missing_go_to_left).astype(bool),
        value=value,
        target=target,
    )


def _forest(estimator: Any, name: str, members: list[Any]) -> TreeEnsemble:
    """One tree or the mean of a forest's trees: class fractions or regression values."""
    classifier = name.endswith("Classifier")
    width = int(estimator.n_classes_) if classifier else 1
    counts = classifier and _counts_in_tree_values()
    trees = []
    for member in members:
        value = np.asarray(member.tree_.value, dtype=np.float64)
        if value.ndim != 3 or value.shape[1] != 1 or value.shape[2] < width:
            raise PredictorError(
                f"a tree of this {name} has values of shape {value.shape}, not n_nodes x 1 x "
                f"{width}"
            )
        value = value[:, 0, :width]
        if counts:  # predict_proba's normaliser, an all-zero row left as it is
            total = value.sum(axis=1, keepdims=True)
            total[total == 0.0] = 1.0
            value = value / total
        trees.append(_sklearn_tree(member.tree_, value))
    return TreeEnsemble.from_trees(
        trees,
        base=np.zeros(width),
        link="identity",
        scale=1.0 / len(trees),
        float32_input=True,
        accepts_missing=_tree_allows_nan(members[0]),
        **_common(estimator, name),
    )


def _boosting(estimator: Any, name: str) -> TreeEnsemble:
    """GradientBoosting: the init estimator's constant plus ``learning_rate * leaf`` per tree."""
    init = estimator.init_
    if not (isinstance(init, str) and init == "zero"):
        kind = type(init).__name__
        strategy = getattr(init, "strategy", None)
        if strategy not in _CONSTANT_DUMMIES.get(kind, ()):
            raise PredictorError(
                f"this {name}'s init estimator is {kind}"
                f"{f' (strategy={strategy!r})' if strategy else ''}, whose raw prediction "
                "depends on the row; only a constant init (the default, 'zero', or a "
                "DummyClassifier / DummyRegressor that is not 'stratified') converts"
            )
    n_features = int(estimator.n_features_in_)
    base = np.asarray(
        estimator._raw_predict_init(np.zeros((1, n_features), np.float32)), dtype=np.float64
    ).reshape(-1)
    stages = np.asarray(estimator.estimators_, dtype=object)
    rate = float(estimator.learning_rate)
    link: Link = "identity"
    factor = 1.0
    if name.endswith("Classifier"):
        link_name = type(estimator._loss.link).__name__
        if link_name not in ("LogitLink", "HalfLogitLink", "MultinomialLogit"):
            raise PredictorError(f"this {name}'s loss has link {link_name}, not supported")
        link = _LINKS[link_name]
        factor = 2.0 if link_name == "HalfLogitLink" else 1.0
    trees = [
        _sklearn_tree(
            stages[i, k].tree_,
            rate * np.asarray(stages[i, k].tree_.value, np.float64)[:, 0, :1] * factor,
            target=k,
        )
        for i in range(stages.shape[0])
        for k in range(stages.shape[1])
    ]
    return TreeEnsemble.from_trees(
        trees,
        base=base * factor,
        link=link,
        float32_input=True,
        label_rule="margin>=0" if link in ("logistic", "softmax") else "score",
        accepts_missing=False,  # its predict refuses NaN (ensure_all_finite)
        **_common(estimator, name),
    )


def _hist_boosting(estimator: Any, name: str) -> TreeEnsemble:
    """HistGradientBoosting: the baseline plus every predictor's leaf, categorical splits
    remapped from the encoder's codes to the raw category values."""
    link_name = type(estimator._loss.link).__name__
    link = _LINKS.get(link_name)
    if link is None or link_name == "HalfLogitLink":
        raise PredictorError(f"this {name}'s loss has link {link_name}, not supported")
    n_features = int(estimator.n_features_in_)
    columns, categories = _hist_columns(estimator, name, n_features)
    largest = max((int(c.max(initial=0)) for c in categories.values()), default=0)
    words = largest // 32 + 1
    known_codes: dict[int, NDArray[np.bool_]] = {}
    if categories:
        known_bitsets, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
        for feature in categories:
            known_codes[feature] = _bits(known_bitsets[f_idx_map[feature]])
    trees: list[Tree] = []
    left_sets: list[NDArray[np.uint32]] = []
    known_sets: list[NDArray[np.uint32]] = []
    for iteration in estimator._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            split_on = nodes["feature_idx"].astype(np.intp)
            categorical = nodes["is_categorical"].astype(bool) & ~leaf
            category = np.full(len(nodes), -1, dtype=np.int64)
            for node in np.flatnonzero(categorical).tolist():
                feature = int(split_on[node])
                if feature not in categories:
                    raise PredictorError(
                        f"this {name} splits feature {feature} as categorical but its encoder "
                        "does not list that feature's categories"
                    )
                raw = categories[feature]
                code_left = _bits(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][node]])
                code_known = known_codes[feature] | code_left
                category[node] = len(left_sets)
                left_sets.append(_bitset(raw, code_left, words))
                known_sets.append(_bitset(raw, code_known, words))
            trees.append(
                Tree(
                    feature=np.where(leaf, 0, columns[np.where(leaf, 0, split_on)]),
                    threshold=np.where(categorical | leaf, 0.0, nodes["num_threshold"]),
                    left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    missing_left=nodes["missing_go_to_left"].astype(bool),
                    value=nodes["value"].astype(np.float64).reshape(-1, 1),
                    category=category,
                    target=k,
                )
            )
    shape = (len(left_sets), words)
    return TreeEnsemble.from_trees(
        trees,
        base=np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1),
        left_sets=np.array(left_sets, dtype=np.uint32).reshape(shape),
        known_sets=np.array(known_sets, dtype=np.uint32).reshape(shape),
        link=link,
        float32_input=False,
        label_rule="margin>0" if link in ("logistic", "softmax") else "score",
        integral_categories=True,
        accepts_missing=True,
        **_common(estimator, name),
    )


def _hist_columns(
    estimator: Any, name: str, n_features: int
) -> tuple[NDArray[np.intp], dict[int, NDArray[np.int64]]]:
    """The original column of each feature the trees see, and for each categorical one (by
    the trees' index) its raw category values in code order.

    With categorical features, HistGradientBoosting's ``_preprocessor`` is a ColumnTransformer
    putting the ordinal-encoded categorical columns first, then the numeric ones, both in their
    original order; an encoder code ``c`` stands for ``categories_[c]``.
    """
    preprocessor = getattr(estimator, "_preprocessor", None)
    is_categorical = getattr(estimator, "is_categorical_", None)
    if preprocessor is None or is_categorical is None:
        if any(bool(p.nodes["is_categorical"].any()) for it in estimator._predictors for p in it):
            raise PredictorError(
                f"this {name} has categorical splits but no categorical preprocessor; it was "
                "fitted by a scikit-learn version whose categorical handling is not supported"
            )
        return np.arange(n_features, dtype=np.intp), {}
    mask = np.asarray(is_categorical, dtype=bool)
    cat_columns = np.flatnonzero(mask)
    columns = np.concatenate((cat_columns, np.flatnonzero(~mask))).astype(np.intp)
    encoder = preprocessor.named_transformers_["encoder"]
    names = getattr(estimator, "feature_names_in_", None)
    categories: dict[int, NDArray[np.int64]] = {}
    for feature, (column, values) in enumerate(zip(cat_columns, encoder.categories_, strict=True)):
        label = repr(str(names[column])) if names is not None else f"{int(column)}"
        categories[feature] = _integer_categories(values, name, label)
    return columns, categories


def _integer_categories(values: Any, name: str, label: str) -> NDArray[np.int64]:
    """The encoder's categories of one column as integers (NaN, always last, dropped), or a
    refusal: the ensemble tests a categorical feature's integer value."""
    listed = list(values)
    if listed and not isinstance(listed[-1], str) and listed[-1] != listed[-1]:
        listed = listed[:-1]
    numbers = [
        float(v) for v in listed if isinstance(v, (int, float, np.integer, np.floating, np.bool_))
    ]
    integral = len(numbers) == len(listed) and all(
        v.is_integer() and 0 <= v < _MAX_CATEGORY for v in numbers
    )
    if not integral:
        shown = ", ".join(repr(v) for v in listed[:5])
        raise PredictorError(
            f"this {name}'s categorical feature {label} has categories ({shown}"
            f"{', ...' if len(listed) > 5 else ''}) that are not integers from 0 to "
            f"{_MAX_CATEGORY - 1}; a tree ensemble reads a categorical feature as an integer "
            "code: encode the column as integers (e.g. pandas .cat.codes) before fitting"
        )
    return np.array(numbers, dtype=np.int64)


def _bits(bitset: NDArray[Any]) -> NDArray[np.bool_]:
    """A scikit-learn bitset (uint32 words, bit ``c % 32`` of word ``c // 32``) as flags."""
    words = np.ascontiguousarray(bitset, dtype="<u4")
    flags: NDArray[np.bool_] = np.unpackbits(words.view(np.uint8), bitorder="little").astype(bool)
    return flags


def _bitset(raw: NDArray[np.int64], codes: NDArray[np.bool_], words: int) -> NDArray[np.uint32]:
    """The bitset over raw category values of the encoder ``codes`` flagged (codes the encoder
    never produces are dropped)."""
    chosen = raw[np.flatnonzero(codes[: len(raw)])]
    out = np.zeros(words, dtype=np.uint32)
    np.bitwise_or.at(out, chosen >> 5, np.left_shift(np.uint32(1), (chosen & 31).astype(np.uint32)))
    return out
