"""Converting scikit-learn, XGBoost and LightGBM models to ONNX at save time, and measuring how
closely the conversion predicts as its source does.

scikit-learn estimators and pipelines go through skl2onnx (ONNX opset 17, ONNX-ML 3), XGBoost
and LightGBM models through onnxmltools (opset 15, its highest); classifiers without ZipMap,
so probabilities are a tensor. Each conversion is tried in double precision first where the
converter offers it (scikit-learn's arithmetic is double, and skl2onnx adjusts tree thresholds
for double inputs), then in float; with rows to compare, the first whose labels equal the
source model's and whose scores are within :data:`TOLERANCE` wins. XGBoost is converted in float
only: it computes in float32, and onnxmltools' double XGBoost regressor is wrong by whole units.
A pipeline with a text column, or a ColumnTransformer, becomes one ``[N, 1]`` input per column,
named after the columns it was fitted with. Converters are imported here only, at save time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import ArtifactError, PredictorError
from servefn.predictors._onnx_graph import read_graph
from servefn.predictors._onnx_mapping import bind_inputs, bind_outputs
from servefn.predictors.onnx import OnnxPredictor
from servefn.schema import SchemaLayout

__all__ = ["CONVERT_EXTRA", "TOLERANCE", "converted_predictor", "sample_matrix"]

CONVERT_EXTRA = "pip install 'servefn[convert]'"
TOLERANCE = 1e-5
"""Largest score difference accepted from a conversion: absolute for probabilities, relative to
the value (at least 1) for a regressor's values, which float32 graphs round at 7 digits."""
SKLEARN_OPSET = {"": 17, "ai.onnx.ml": 3}
ONNXMLTOOLS_OPSET = 15
_NAN_ROWS = 16
_MAX_NAN_FEATURES = 4096


@dataclass(frozen=True)
class _Candidate:
    label: str
    convert: Callable[[], bytes]
    inputs: Mapping[str, Sequence[str]] | None = None


def converted_predictor(
    model: Any,
    layout: SchemaLayout,
    outputs: Sequence[str],
    *,
    graph_inputs: Mapping[str, Sequence[str]] | None,
    graph_outputs: Mapping[str, str] | None,
    classes: Sequence[Any] | None,
    sample: Any,
    accepts_missing: bool | Sequence[bool] | None,
) -> OnnxPredictor:
    """``model`` converted to ONNX and bound to the schemas (see ``onnx_predictor``)."""
    name = type(model).__name__
    if classes is None and getattr(model, "classes_", None) is not None:
        classes = list(np.asarray(model.classes_).tolist())
    matrix = None if sample is None else sample_matrix(sample, layout)
    tried, converted = [], False
    for candidate in _candidates(model, layout):
        try:
            graph = candidate.convert()
            declared = read_graph(graph)
        except (PredictorError, ArtifactError) as exc:
            tried.append(f"{candidate.label}: {exc}")
            continue
        inputs = bind_inputs(declared, layout, graph_inputs or candidate.inputs)
        bound = bind_outputs(declared, outputs, graph_outputs, classes)
        try:  # onnxruntime may refuse what a converter wrote (a double TreeEnsembleRegressor)
            predictor = OnnxPredictor(
                graph, n_features=layout.n_features, inputs=inputs, outputs=bound, classes=classes
            )
        except PredictorError as exc:
            tried.append(f"{candidate.label}: {exc}")
            continue
        converted = True
        parity = None
        if matrix is not None and hasattr(model, "get_params"):  # save compares a bare booster
            parity = measure(model, predictor, sample, matrix)
        if parity is None or parity["passed"]:
            break
        tried.append(f"{candidate.label}: {_summary(parity)}")
    else:
        problem = (
            f"no ONNX conversion of {name} predicts as it does"
            if converted
            else (f"{name} cannot be converted to ONNX")
        )
        raise PredictorError(
            f"{problem} ({'; '.join(tried)}); save(..., kind='tree-ensemble') or "
            "kind='sklearn' serves it without ONNX"
        )
    if accepts_missing is None:
        accepts_missing = (
            _missing_flags(model, predictor, sample, matrix, layout)
            if matrix is not None and parity is not None
            else False
        )
    score = "probability" if hasattr(model, "predict_proba") else None
    source = {"library": type(model).__module__.split(".")[0], "estimator": name}
    info: dict[str, Any] = {"source": {**source, "converter": candidate.label}, "score": score}
    if parity is not None:
        info["parity"] = {k: v for k, v in parity.items() if k != "passed"}
    return OnnxPredictor(
        graph,
        n_features=layout.n_features,
        inputs=inputs,
        outputs=bound,
        classes=classes,
        accepts_missing=accepts_missing,
        info=info,
    )


def _candidates(model: Any, layout: SchemaLayout) -> list[_Candidate]:
    family = type(model).__module__.split(".")[0]
    n = layout.n_features
    if family in ("xgboost", "lightgbm"):
        try:
            import onnxmltools  # type: ignore[import-untyped]
            from onnxmltools.convert.common.data_types import (  # type: ignore[import-untyped]
                DoubleTensorType,
                FloatTensorType,
            )
        except ImportError as exc:
            raise _missing("onnxmltools", exc) from None
        version = f"onnxmltools {onnxmltools.__version__}"
        if family == "xgboost":
            return [_Candidate(f"{version}, float", _xgboost(model, FloatTensorType([None, n])))]
        types = [("float", FloatTensorType)]
        if not hasattr(model, "predict_proba"):  # LightGBM classifiers take float only
            types.insert(0, ("double", DoubleTensorType))
        return [
            _Candidate(f"{version}, {label}", _lightgbm(model, kind([None, n])))
            for label, kind in types
        ]
    if not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise PredictorError(
            f"kind='onnx' takes an ONNX graph (a .onnx path, its bytes or an onnx.ModelProto) "
            f"or a fitted scikit-learn, XGBoost or LightGBM model, not a {type(model).__name__}"
        )
    try:
        import skl2onnx  # type: ignore[import-untyped]
        from skl2onnx.common.data_types import (  # type: ignore[import-untyped]
            DoubleTensorType,
            FloatTensorType,
            StringTensorType,
        )
    except ImportError as exc:
        raise _missing("skl2onnx", exc) from None
    version = f"skl2onnx {skl2onnx.__version__}"
    fitted = _fitted_order(model, layout)
    text = {c.name for c in layout.features if c.kind == "str"}
    candidates = []
    for label, kind in (("double", DoubleTensorType), ("float", FloatTensorType)):
        if layout.text or _has_column_transformer(model):  # one input per fitted column
            types = [
                (given, StringTensorType([None, 1]) if wire in text else kind([None, 1]))
                for given, wire in fitted
            ]
            inputs = {given: [wire] for given, wire in fitted}
        else:
            types, inputs = [("X", kind([None, n]))], {"X": [wire for _, wire in fitted]}
        candidates.append(_Candidate(f"{version}, {label}", _sklearn(model, types), inputs))
    return candidates


def _missing(package: str, exc: ImportError) -> PredictorError:
    return PredictorError(f"converting a model to ONNX needs {package}: {CONVERT_EXTRA} ({exc})")


def _converting(what: str, convert: Callable[[], Any]) -> bytes:
    """Run a converter; whatever it raises (NameError, TypeError, RuntimeError, ...) becomes a
    :class:`PredictorError`, since converters lag the libraries they convert."""
    try:
        data: bytes = convert().SerializeToString()
    except Exception as exc:
        root: BaseException = exc
        while (root.__cause__ or root.__context__) is not None:
            root = root.__cause__ or root.__context__  # type: ignore[assignment]
        shown = f"{_clip(exc)}" + (f"; caused by {_clip(root)}" if root is not exc else "")
        raise PredictorError(f"{what} cannot convert it ({shown})") from exc
    return data


def _clip(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sklearn(model: Any, types: list[tuple[str, Any]]) -> Callable[[], bytes]:
    def convert() -> bytes:
        from skl2onnx import convert_sklearn
        from sklearn.base import is_classifier

        options = {id(model): {"zipmap": False}} if is_classifier(model) else None
        return _converting(
            "skl2onnx",
            lambda: convert_sklearn(
                model, initial_types=types, options=options, target_opset=SKLEARN_OPSET
            ),
        )

    return convert


def _xgboost(model: Any, kind: Any) -> Callable[[], bytes]:
    def convert() -> bytes:
        from onnxmltools import convert_xgboost

        return _converting(
            "onnxmltools",
            lambda: convert_xgboost(
                model, initial_types=[("input", kind)], target_opset=ONNXMLTOOLS_OPSET
            ),
        )

    return convert


def _lightgbm(model: Any, kind: Any) -> Callable[[], bytes]:
    def convert() -> bytes:
        from onnxmltools import convert_lightgbm

        return _converting(
            "onnxmltools",
            lambda: convert_lightgbm(
                model,
                initial_types=[("input", kind)],
                target_opset=ONNXMLTOOLS_OPSET,
                zipmap=False,
            ),
        )

    return convert


def _fitted_order(model: Any, layout: SchemaLayout) -> list[tuple[str, str]]:
    """(the name the model was fitted with, the schema feature it is) in the model's column
    order: by wire or field name when the model has names for every feature (a DataFrame),
    else the schema's order."""
    fitted = getattr(model, "feature_names_in_", None)
    names = [] if fitted is None else [str(n) for n in fitted]
    wires = list(layout.feature_names)
    fields = [c.field for c in layout.features for _ in range(c.size)]
    by_name = {**dict(zip(fields, wires, strict=True)), **{w: w for w in wires}}
    if len(names) == len(wires) and all(n in by_name for n in names):
        order = [(n, by_name[n]) for n in names]
        if len({wire for _, wire in order}) == len(wires):
            return order
    return [(wire, wire) for wire in wires]


def _has_column_transformer(model: Any) -> bool:
    steps = [model, *(step for _, step in getattr(model, "steps", []))]
    return any(type(step).__name__ == "ColumnTransformer" for step in steps)


def sample_matrix(sample: Any, layout: SchemaLayout) -> NDArray[Any]:
    """Rows in feature order (or a DataFrame by wire or field names) as the feature matrix the
    served predictor takes: float64 with NaN, or, with a text feature, an object matrix of
    floats and ``str`` (None where text is missing)."""
    raw = (
        np.column_stack([sample[k].to_numpy() for k in _frame_keys(sample, layout)])
        if hasattr(sample, "columns")
        else np.asarray(sample)
    )
    if raw.ndim != 2 or raw.shape[1] != layout.n_features:
        raise PredictorError(
            f"the sample rows have shape {raw.shape}; expected {layout.n_features} feature "
            "columns in the input schema's order"
        )
    if not layout.text:
        return np.asarray(raw, dtype=np.float64)
    text = [c.kind == "str" for c in layout.features for _ in range(c.size)]
    out = np.empty(raw.shape, dtype=object)
    for j, is_text in enumerate(text):
        cells = raw[:, j].tolist()
        if is_text:
            out[:, j] = [None if v is None or v != v else str(v) for v in cells]
        else:
            out[:, j] = [float("nan") if v is None else float(v) for v in cells]
    return out


def _frame_keys(frame: Any, layout: SchemaLayout) -> list[Any]:
    present = {str(c): c for c in frame.columns}
    keys = []
    for name, column in zip(
        layout.feature_names, (c for c in layout.features for _ in range(c.size)), strict=True
    ):
        key = present.get(name, present.get(column.field))
        if key is None:
            raise PredictorError(
                f"the sample DataFrame has no column {name!r}; it has {list(present)[:20]}"
            )
        keys.append(key)
    return keys


def measure(
    model: Any, predictor: OnnxPredictor, sample: Any, matrix: NDArray[Any]
) -> dict[str, Any]:
    """The served predictions of ``matrix`` against ``model``'s of ``sample``: labels equal,
    and the largest score difference (absolute, and relative for a regressor)."""
    served = predictor.predict(matrix)
    n = len(matrix)
    figures: dict[str, Any] = {"rows": n, "tolerance": TOLERANCE}
    passed = True
    if "PredictedLabel" in served:
        theirs = np.asarray(model.predict(sample)).astype(str)
        equal = int(np.sum(np.asarray(served["PredictedLabel"]).astype(str) == theirs))
        figures["labels_equal"] = equal == n
        passed = equal == n
        if "Score" in served and hasattr(model, "predict_proba"):
            expected = np.asarray(model.predict_proba(sample), dtype=np.float64).reshape(n, -1)
            gap = _gap(served["Score"], expected, n)
            figures["max_score_difference"] = gap
            passed = passed and gap <= TOLERANCE
    elif "Score" in served:
        expected = np.asarray(model.predict(sample), dtype=np.float64).reshape(n, -1)
        gap = _gap(served["Score"], expected, n)
        relative = _gap(served["Score"], expected, n, relative=True)
        figures["max_score_difference"] = gap
        figures["max_relative_difference"] = relative
        passed = relative <= TOLERANCE
    figures["passed"] = passed
    return figures


def _gap(served: Any, expected: NDArray[np.float64], n: int, *, relative: bool = False) -> float:
    ours = np.asarray(served, dtype=np.float64).reshape(n, -1)
    if ours.shape != expected.shape:
        return float("inf")
    gap = np.abs(ours - expected)
    if relative:
        gap /= np.maximum(1.0, np.abs(expected))
    return float(np.max(gap, initial=0.0))


def _summary(parity: Mapping[str, Any]) -> str:
    if parity.get("labels_equal") is False:
        return f"labels differ on some of {parity['rows']} rows"
    gap = parity.get("max_relative_difference", parity.get("max_score_difference"))
    return f"scores differ by up to {gap:.3g} (tolerance {TOLERANCE:g})"


def _missing_flags(
    model: Any, predictor: OnnxPredictor, sample: Any, matrix: NDArray[Any], layout: SchemaLayout
) -> list[bool]:
    """Per feature: does a missing value there give the source model's answer? Found on up to
    16 sample rows with that feature set to NaN; False where the source refuses NaN."""
    n_rows, n = min(len(matrix), _NAN_ROWS), layout.n_features
    flags = [False] * n
    text = [c.kind == "str" for c in layout.features for _ in range(c.size)]
    columns = [j for j in range(n) if not text[j]]
    if n_rows == 0 or not columns or n > _MAX_NAN_FEATURES:
        return flags
    blocks = []
    for j in columns:
        block = matrix[:n_rows].copy()
        block[:, j] = np.nan
        blocks.append(block)
    stacked = np.concatenate(blocks)
    source: Any = stacked
    if hasattr(sample, "columns"):  # a DataFrame, so pandas is there
        pd = importlib.import_module("pandas")
        keys = _frame_keys(sample, layout)
        frames = []
        for j in columns:
            frame = sample.iloc[:n_rows].copy()
            frame[keys[j]] = np.nan
            frames.append(frame)
        source = pd.concat(frames, ignore_index=True)
    try:
        figures = _per_block(model, predictor, source, stacked, n_rows)
    except Exception:  # the source refuses NaN (scikit-learn's "Input contains NaN")
        return flags
    for j, ok in zip(columns, figures, strict=True):
        flags[j] = ok
    return flags


def _per_block(
    model: Any, predictor: OnnxPredictor, source: Any, stacked: NDArray[Any], rows: int
) -> list[bool]:
    served = predictor.predict(stacked)
    n = len(stacked)
    if "PredictedLabel" in served:
        same = np.asarray(served["PredictedLabel"]).astype(str) == np.asarray(
            model.predict(source)
        ).astype(str)
        if "Score" in served and hasattr(model, "predict_proba"):
            expected = np.asarray(model.predict_proba(source), dtype=np.float64).reshape(n, -1)
            ours = np.asarray(served["Score"], dtype=np.float64).reshape(n, -1)
            same &= (np.abs(ours - expected) <= TOLERANCE).all(axis=1)
    else:
        expected = np.asarray(model.predict(source), dtype=np.float64).reshape(n, -1)
        ours = np.asarray(served["Score"], dtype=np.float64).reshape(n, -1)
        scale = np.maximum(1.0, np.abs(expected))
        same = (np.abs(ours - expected) / scale <= TOLERANCE).all(axis=1)
    return [bool(block.all()) for block in same.reshape(-1, rows)]
