"""Export fitted scikit-learn preprocessing pipelines to a numpy-only :class:`TransformedPredictor`.

A supported pipeline is: leading transformer steps (ColumnTransformer, SimpleImputer, the
scalers, OneHotEncoder, OrdinalEncoder; inside a ColumnTransformer each block may be one of them
or a Pipeline of them, ``"passthrough"`` or ``"drop"``), then affine scalers, then a linear
classifier or regressor (:mod:`servefn.predictors.sklearn_linear`). The transformers' fitted
state (statistics, categories, scales) becomes :mod:`servefn.predictors._transform` ops; the
trailing scalers fold into the linear model. Anything else is refused, naming its path in the
pipeline. Training-time only: this module imports scikit-learn (``servefn.save`` calls it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from servefn.errors import PredictorError
from servefn.predictors._encoders import Categories, OneHot, Ordinal
from servefn.predictors._ops import Affine, Impute, Op, Scalar
from servefn.predictors._transform import Block, ColumnStep, Transform
from servefn.predictors.base import Predictor
from servefn.predictors.sklearn_linear import (
    _check_fitted,
    linear_from_sklearn,
    linear_regressor_from_sklearn,
)
from servefn.predictors.transformed import TransformedPredictor

__all__ = ["SUPPORTED_TRANSFORMERS", "is_preprocessing_pipeline", "transformed_from_sklearn"]

SUPPORTED_TRANSFORMERS = (
    "ColumnTransformer",
    "SimpleImputer",
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "OneHotEncoder",
    "OrdinalEncoder",
    "Pipeline of these",
)
_ENCODING = ("ColumnTransformer", "SimpleImputer", "OneHotEncoder", "OrdinalEncoder")
_NAMES_SHOWN = 20


def is_preprocessing_pipeline(estimator: Any) -> bool:
    """Whether ``estimator`` is a Pipeline with a ColumnTransformer, imputer or encoder (at the
    top level or in a nested Pipeline): one that only :func:`transformed_from_sklearn` exports."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return False
    for _, step in estimator.steps:
        if isinstance(step, Pipeline) and is_preprocessing_pipeline(step):
            return True
        if type(step).__name__ in _ENCODING and type(step).__module__.startswith("sklearn."):
            return True
    return False


def transformed_from_sklearn(
    estimator: Any, feature_names: Sequence[str], field_names: Sequence[str]
) -> TransformedPredictor:
    """A :class:`TransformedPredictor` that predicts as the fitted Pipeline ``estimator`` does,
    from the raw feature matrix whose columns are ``feature_names`` (the schema's wire names;
    ``field_names`` are the matching Python names, tried second when matching a pipeline fitted
    on a DataFrame by column name).

    Raises :class:`~servefn.errors.PredictorError` naming the first unsupported step.
    """
    from sklearn.pipeline import Pipeline

    if len(feature_names) != len(field_names):
        raise PredictorError(
            f"{len(feature_names)} feature names but {len(field_names)} field names"
        )
    if not isinstance(estimator, Pipeline):
        raise PredictorError(
            f"{type(estimator).__name__} is not a Pipeline; a preprocessing export needs a "
            "fitted sklearn.pipeline.Pipeline"
        )
    steps = [(n, s) for n, s in estimator.steps if s is not None and s != "passthrough"]
    if not steps:
        raise PredictorError("the pipeline is empty; fit it first")
    (final_name, final), body = steps[-1], steps[:-1]
    tail = len(body)
    while tail > 0 and _foldable(body[tail - 1][1]):
        tail -= 1
    leading, scalers = body[:tail], body[tail:]
    columns = _input_columns(steps[0][1], list(feature_names), list(field_names))
    built: list[ColumnStep] = []
    n_in = len(feature_names)
    for index, (name, step) in enumerate(leading):
        mapping = columns if index == 0 else list(range(n_in))
        built.append(_column_step(step, [f"step {name!r}"], n_in, mapping))
        n_in = built[-1].n_out
    if not leading and columns != list(range(n_in)):
        built.append(ColumnStep(n_in, [Block(columns, [])]))  # the schema's order -> the model's
    transform = Transform(feature_names, built)
    return TransformedPredictor(transform, _final(final_name, final, scalers))


def _final(name: str, final: Any, scalers: list[tuple[str, Any]]) -> Predictor:
    """The final estimator as a linear predictor (with the scalers folded in) or, scalers
    aside, as a tree ensemble."""
    from sklearn.base import is_classifier, is_regressor
    from sklearn.pipeline import Pipeline

    from servefn.predictors.trees_export import is_tree_model, tree_ensemble_from

    if is_tree_model(final):
        if scalers:
            raise PredictorError(
                f"step {scalers[0][0]!r} scales the columns of the tree model {name!r}; trees "
                "do not need scaling: drop the step, or scale inside the ColumnTransformer"
            )
        try:
            return tree_ensemble_from(final)
        except PredictorError as exc:
            raise PredictorError(f"step {name!r} ({type(final).__name__}): {exc}") from None
    chain = Pipeline([*scalers, (name, final)]) if scalers else final
    try:
        if is_classifier(final):
            return linear_from_sklearn(chain)
        if is_regressor(final):
            return linear_regressor_from_sklearn(chain)
    except PredictorError as exc:
        raise PredictorError(f"step {name!r} ({type(final).__name__}): {exc}") from None
    raise PredictorError(
        f"step {name!r} ({type(final).__name__}) is neither a classifier nor a regressor; the "
        "pipeline must end in a linear or tree model"
    )


def _foldable(step: Any) -> bool:
    """An affine scaler the linear model can absorb."""
    name = type(step).__name__
    if name == "MinMaxScaler":
        return not step.clip
    return name in ("StandardScaler", "MaxAbsScaler")


def _input_columns(first: Any, feature_names: list[str], field_names: list[str]) -> list[int]:
    """For each column the pipeline was fitted on, the raw feature column that feeds it."""
    fitted = getattr(first, "feature_names_in_", None)
    if fitted is not None:
        wire = {n: i for i, n in reversed(list(enumerate(feature_names)))}
        field = {n: i for i, n in reversed(list(enumerate(field_names)))}
        found = [wire.get(str(n), field.get(str(n))) for n in fitted]
        missing = [str(n) for n, i in zip(fitted, found, strict=True) if i is None]
        if missing:
            shown = ", ".join(map(repr, missing[:_NAMES_SHOWN]))
            raise PredictorError(
                f"the pipeline was fitted on columns the schema lacks: {shown}"
                + (
                    f" and {len(missing) - _NAMES_SHOWN} more"
                    if len(missing) > _NAMES_SHOWN
                    else ""
                )
            )
        return [int(i) for i in found if i is not None]
    n = getattr(first, "n_features_in_", None)
    if n is None:
        _check_fitted(first)
        raise PredictorError(f"{type(first).__name__} does not say how many features it takes")
    if int(n) != len(feature_names):
        raise PredictorError(
            f"the pipeline was fitted on {int(n)} columns but the schema has "
            f"{len(feature_names)} features; fit it on a DataFrame to match columns by name"
        )
    return list(range(len(feature_names)))


def _column_step(step: Any, path: list[str], n_in: int, columns: list[int]) -> ColumnStep:
    """A top-level transformer step: a ColumnTransformer, or one block over all its columns."""
    from sklearn.compose import ColumnTransformer

    if not isinstance(step, ColumnTransformer):
        return ColumnStep(n_in, [Block(columns, _chain(step, path))])
    _check_fitted(step)
    outputs = sorted(
        (s.start, s.stop, name) for name, s in step.output_indices_.items() if s.stop > s.start
    )
    transformers = dict(step.named_transformers_)
    blocks = []
    for start, stop, name in outputs:
        where = [*path, f"transformer {name!r}"]
        trans = transformers.get(name, "passthrough" if name == "remainder" else None)
        if trans is None:
            raise PredictorError(f"{_path(where)} has no fitted transformer")
        indices = step._transformer_to_input_indices[name]
        ops = [] if _passthrough(trans) else _chain(trans, where)
        block = Block([columns[int(i)] for i in indices], ops)
        if block.n_out != stop - start:
            raise PredictorError(
                f"{_path(where)} would produce {block.n_out} columns where scikit-learn "
                f"produces {stop - start}"
            )
        blocks.append(block)
    return ColumnStep(n_in, blocks)


def _passthrough(step: Any) -> bool:
    from sklearn.preprocessing import FunctionTransformer

    identity = type(step) is FunctionTransformer and step.func is None
    return step == "passthrough" if isinstance(step, str) else identity


def _chain(step: Any, path: list[str]) -> list[Op]:
    """The ops of one transformer, or of a Pipeline of them."""
    from sklearn.pipeline import Pipeline

    if not isinstance(step, Pipeline):
        return _chain_one(step, path)
    subs = [(n, s) for n, s in step.steps if s is not None and not _passthrough(s)]
    ops = [op for name, sub in subs for op in _chain_one(sub, [*path, f"step {name!r}"])]
    for i, (op, (_, after)) in enumerate(zip(ops, subs[1:], strict=False)):
        if isinstance(op, Impute) and hasattr(after, "categories_"):  # None passed through
            kept = [j for k, j in enumerate(op.keep) if k < len(after.categories_)]
            none = [j for k, j in enumerate(kept) if any(v is None for v in after.categories_[k])]
            ops[i] = Impute(op.fills, op.indicator, none)
    return ops


def _chain_one(step: Any, path: list[str]) -> list[Op]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import (
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
    )

    kind = type(step)
    if kind not in (SimpleImputer, StandardScaler, MinMaxScaler, MaxAbsScaler) and kind not in (
        OneHotEncoder,
        OrdinalEncoder,
    ):
        raise PredictorError(
            f"{_path(path)} ({kind.__name__}) cannot be exported to numpy; supported: "
            f"{', '.join(SUPPORTED_TRANSFORMERS)}, 'passthrough', 'drop'. Other pipelines need "
            "the scikit-learn predictor."
        )
    _check_fitted(step)
    try:
        if kind is SimpleImputer:
            return [_imputer(step)]
        if kind is OneHotEncoder:
            return [_onehot(step)]
        if kind is OrdinalEncoder:
            return [_ordinal(step)]
        return [_scaler(step)]
    except PredictorError as exc:
        raise PredictorError(f"{_path(path)} ({kind.__name__}): {exc}") from None


def _path(parts: list[str]) -> str:
    return " → ".join(parts)


def _imputer(step: Any) -> Impute:
    if not _is_nan(step.missing_values):
        raise PredictorError(
            f"missing_values={step.missing_values!r} is not supported; only np.nan marks a "
            "missing value in servefn"
        )
    fills = [_scalar(v, "a fill value") for v in np.asarray(step.statistics_).tolist()]
    indicator_ = step.indicator_ if step.add_indicator else None
    indicator = [] if indicator_ is None else indicator_.features_
    return Impute(fills, [int(i) for i in np.asarray(indicator).tolist()])


def _scaler(step: Any) -> Affine:
    n = int(step.n_features_in_)
    terms = {"sub": np.zeros(n), "div": np.ones(n), "mul": np.ones(n), "add": np.zeros(n)}
    clip: tuple[float, float] | None = None
    name = type(step).__name__
    if name == "StandardScaler":
        if step.mean_ is not None:
            terms["sub"] = step.mean_
        if step.scale_ is not None:
            terms["div"] = step.scale_
    elif name == "MaxAbsScaler":
        terms["div"] = step.scale_
    else:
        terms["mul"], terms["add"] = step.scale_, step.min_
        if step.clip:
            clip = (float(step.feature_range[0]), float(step.feature_range[1]))
    return Affine(terms, clip)


def _onehot(step: Any) -> OneHot:
    _refuse_infrequent(step)
    categories = _categories(step)
    drop_idx = step.drop_idx_
    drop = (
        [None] * len(categories)
        if drop_idx is None
        else [None if d is None else int(d) for d in np.asarray(drop_idx, dtype=object).tolist()]
    )
    return OneHot(categories, drop, ignore=step.handle_unknown != "error")


def _ordinal(step: Any) -> Ordinal:
    _refuse_infrequent(step)
    categories = _categories(step)
    missing = np.full(len(categories), math.nan)
    for j, raw in enumerate(step.categories_):
        if len(raw) and _is_nan(raw[-1]):  # scikit-learn codes it as encoded_missing_value
            missing[j] = float(step.encoded_missing_value)
        elif categories[j].missing >= 0:  # None, a category like any other
            missing[j] = float(categories[j].missing)
    unknown = None if step.handle_unknown == "error" else float(step.unknown_value)
    return Ordinal(categories, missing, unknown)


def _refuse_infrequent(step: Any) -> None:
    if not getattr(step, "_infrequent_enabled", False):
        return
    groups = step.infrequent_categories_
    names = getattr(step, "feature_names_in_", None)
    found = [
        f"{names[j] if names is not None else j}: {np.asarray(g).tolist()[:10]}"
        for j, g in enumerate(groups)
        if g is not None and len(g)
    ]
    if found:
        raise PredictorError(
            "min_frequency/max_categories grouped infrequent categories ("
            + "; ".join(found[:10])
            + "), which servefn cannot export; fit without them"
        )


def _categories(step: Any) -> list[Categories]:
    out = []
    for raw in step.categories_:
        values = [_scalar(v, "a category") for v in np.asarray(raw).tolist()]
        if values.count(None) > 1:
            raise PredictorError("categories hold both None and NaN; use one missing marker")
        out.append(Categories(values))
    return out


def _scalar(value: Any, what: str) -> Scalar:
    """A fitted value as JSON: text, a finite float, or None for NaN/None."""
    if value is None or _is_nan(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float, np.number)) and math.isfinite(float(value)):
        return float(value)
    raise PredictorError(f"{what} {type(value).__name__} is not text or a finite number")


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)
