"""ONNX graphs served by onnxruntime: exports from PyTorch, TensorFlow and ML.NET, and scikit-learn,
XGBoost and LightGBM models converted at save time (:mod:`servefn.predictors.onnx_export`).

The payload is ``model.onnx`` plus parameters that bind the graph to the schemas:

- ``inputs``: per graph input, the feature-matrix columns it takes, in order, and its element
  type: one tensor of every feature (``[N, n_features]``, float or double), or one ``[N, 1]``
  tensor per column as ML.NET exports and multi-input converters write (numbers of any width,
  or strings from a text column);
- ``outputs``: per output column, the graph output it comes from and how: ``label`` (one label
  per row), ``scores`` (``n_rows x n_classes``), ``values`` (a regressor's ``[N, 1]`` becomes one
  number per row) or ``argmax`` (``classes[argmax]`` of a probabilities output, for a graph
  with no label output);
- ``classes``, ``accepts_missing``, and what ``servefn inspect`` shows: operator sets, producer,
  the source model and the parity measured at save.

Before a session is created the graph bytes pass :func:`~._onnx_graph.read_graph` (no external
data, no custom operator domains, bounded size and nesting) and the parameters are checked
against the graph's declared inputs and outputs. Serving imports onnxruntime and numpy only.
Sessions suit an Azure Functions worker: one intra-op thread unless the app setting
``SERVEFN_ONNX_THREADS`` says otherwise, sequential execution, the CPU provider, no spinning
threads; ``InferenceSession.run`` is thread-safe, and the predictor keeps no other state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
from numpy.typing import NDArray
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state  # type: ignore[import-untyped]

from servefn.errors import ArtifactError, PredictorError
from servefn.predictors._labels import class_labels
from servefn.predictors._onnx_binding import (
    INPUT_TYPES,
    MAX_FEATURES,
    GraphInput,
    GraphOutput,
    check_inputs,
    check_outputs,
    feed,
    missing_flags,
    parse_inputs,
    parse_outputs,
    ranges,
    shown,
)
from servefn.predictors._onnx_graph import MAX_GRAPH_BYTES, GraphInfo, read_graph
from servefn.predictors.base import Outputs, Payload, Predictor

__all__ = [
    "GRAPH_FILE",
    "INPUT_TYPES",
    "MAX_THREADS",
    "THREADS_SETTING",
    "GraphInput",
    "GraphOutput",
    "OnnxPredictor",
    "session_threads",
]

GRAPH_FILE = "model.onnx"
THREADS_SETTING = "SERVEFN_ONNX_THREADS"
"""The app setting giving onnxruntime's intra-op threads per session (default 1)."""
MAX_THREADS = 64
_ORT_ERRORS: tuple[type[BaseException], ...] = (
    *(
        value
        for value in vars(_ort_state).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ),
    RuntimeError,
    ValueError,
    TypeError,
)
"""What onnxruntime raises for a graph it cannot load or a feed it cannot run."""


def session_threads(environ: Mapping[str, str] = os.environ) -> int:
    """Intra-op threads per session: the app setting ``SERVEFN_ONNX_THREADS``, else 1.

    One thread suits a Functions worker, which runs one invocation per core; a setting that is
    not a whole number from 1 to :data:`MAX_THREADS` is refused rather than guessed at.
    """
    raw = environ.get(THREADS_SETTING, "").strip()
    if not raw:
        return 1
    if raw.isdigit() and 1 <= int(raw) <= MAX_THREADS:
        return int(raw)
    shown = raw if len(raw) <= 20 else raw[:17] + "..."
    raise PredictorError(
        f"the app setting {THREADS_SETTING} must be a whole number of threads from 1 to "
        f"{MAX_THREADS}; it is {shown!r}. Remove it for one thread per session"
    )


class OnnxPredictor(Predictor):
    """Serve an ONNX graph with onnxruntime; see the module docstring for the binding.

    Parameters
    ----------
    graph : the ``model.onnx`` bytes
    n_features : width of the feature matrix (the input schema's features)
    inputs : every graph input a caller must feed, with the columns it takes
    outputs : the output columns and where each comes from
    classes : class labels, in score order; needed by an ``argmax`` output
    accepts_missing : whether NaN (or None) may reach each feature; never for a column that
        feeds an integer, boolean or string input, which cannot hold it
    info : what ``servefn inspect`` shows (source model, converter, parity); not used to predict
    threads : intra-op threads; None reads ``SERVEFN_ONNX_THREADS`` (default 1)
    max_bytes : cap on the graph's size
    """

    kind: ClassVar[str] = "onnx"
    accepts_text: ClassVar[bool] = True
    # per instance: they depend on the graph
    dtype: type[np.floating[Any]]  # type: ignore[misc]
    outputs: tuple[str, ...]  # type: ignore[misc]

    def __init__(
        self,
        graph: bytes,
        *,
        n_features: int,
        inputs: Sequence[GraphInput],
        outputs: Sequence[GraphOutput],
        classes: Sequence[Any] | NDArray[Any] | None = None,
        accepts_missing: bool | Sequence[bool] = False,
        info: Mapping[str, Any] | None = None,
        threads: int | None = None,
        max_bytes: int = MAX_GRAPH_BYTES,
    ) -> None:
        self.graph = bytes(graph)
        self.graph_info = read_graph(self.graph, max_bytes=max_bytes)
        if not 0 < n_features <= MAX_FEATURES:
            raise PredictorError(
                f"an ONNX model takes 1 to {MAX_FEATURES} features, not {n_features}"
            )
        self._n_features = n_features
        self.inputs = tuple(inputs)
        self.output_specs = tuple(outputs)
        self.classes = None if classes is None else class_labels(classes)
        self._shapes = check_inputs(self.graph_info, self.inputs, n_features)
        check_outputs(self.graph_info, self.output_specs, self.classes)
        self.outputs = tuple(o.name for o in self.output_specs)
        self._missing = missing_flags(accepts_missing, self.inputs, n_features)
        numeric = [i.type for i in self.inputs if i.type != "string"]
        small = all(t in ("float", "float16") for t in numeric)
        self.dtype = np.float32 if small else np.float64
        self.info = dict(info or {})
        self.threads = session_threads() if threads is None else threads
        self.session_options = _session_options(self.threads)
        self._session = _session(self.graph, self.session_options)
        self._fetch = list(dict.fromkeys(o.source for o in self.output_specs))
        _check_session(self._session, self.graph_info, self._fetch)
        self._batch_of_one = any(shape and shape[0] == 1 for shape in self._shapes.values())

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def accepts_missing(self) -> bool | Sequence[bool]:
        flags = self._missing
        return flags[0] if len(set(flags)) == 1 else list(flags)

    @property
    def score(self) -> str | None:
        """``"probability"`` when Score holds a converted classifier's probabilities, which
        ``save`` holds against the source model's ``predict_proba``; None otherwise."""
        value = self.info.get("score")
        return value if isinstance(value, str) else None

    def predict(self, X: NDArray[Any]) -> Outputs:
        if X.ndim != 2 or X.shape[1] != self._n_features:
            raise PredictorError(
                f"expected a matrix with {self._n_features} feature columns, got shape {X.shape}"
            )
        n = X.shape[0]
        if n == 0:
            return {o.name: self._empty(o) for o in self.output_specs}
        feeds = {i.name: feed(X, i, self._shapes[i.name]) for i in self.inputs}
        if self._batch_of_one and n > 1:
            rows = [self._run({k: v[r : r + 1] for k, v in feeds.items()}) for r in range(n)]
            results = {k: np.concatenate([row[k] for row in rows]) for k in self._fetch}
        else:
            results = self._run(feeds)
        return {o.name: self._output(o, results[o.source], n) for o in self.output_specs}

    def _run(self, feeds: Mapping[str, Any]) -> dict[str, NDArray[Any]]:
        try:
            values = self._session.run(self._fetch, feeds)
        except _ORT_ERRORS as exc:
            raise PredictorError(f"onnxruntime could not run the graph: {_one_line(exc)}") from exc
        return {name: np.asarray(v) for name, v in zip(self._fetch, values, strict=True)}

    def _output(self, spec: GraphOutput, value: NDArray[Any], n: int) -> NDArray[Any]:
        """One graph output as an output column: one entry per row."""
        if value.ndim == 0 or value.shape[0] != n:
            raise PredictorError(
                f"the graph output {spec.source!r} has shape {value.shape} for {n} rows; the "
                "first dimension must be the rows"
            )
        if spec.role == "label":
            if value.size != n:
                raise PredictorError(
                    f"the graph output {spec.source!r} has shape {value.shape}: not one label "
                    "per row"
                )
            return value.reshape(n)
        flat = value.reshape(n, -1)
        if flat.dtype.kind == "f":
            flat = flat.astype(np.float64, copy=False)
        if spec.role == "argmax":
            assert self.classes is not None  # checked at construction
            if flat.shape[1] != len(self.classes):
                raise PredictorError(
                    f"the graph output {spec.source!r} has {flat.shape[1]} values per row for "
                    f"{len(self.classes)} classes"
                )
            result: NDArray[Any] = self.classes[np.argmax(flat, axis=1)]
            return result
        if spec.role == "values" and flat.shape[1] == 1:
            return flat[:, 0]
        return flat

    def _empty(self, spec: GraphOutput) -> NDArray[Any]:
        if spec.role in ("label", "argmax"):
            labels = self.classes if self.classes is not None else np.empty(0, np.int64)
            return labels[:0]
        width = len(self.classes) if spec.role == "scores" and self.classes is not None else 1
        return np.empty((0, width) if spec.role == "scores" else 0, np.float64)

    def to_payload(self) -> Payload:
        params: dict[str, Any] = {
            "engine": f"onnxruntime {ort.__version__}",
            "n_features": self._n_features,
            "inputs": [
                {
                    "name": i.name,
                    "type": i.type,
                    "columns": ranges(i.columns),
                    "shape": shown(self._shapes[i.name]),
                }
                for i in self.inputs
            ],
            "outputs": [
                {"name": o.name, "from": o.source, "as": o.role} for o in self.output_specs
            ],
            "accepts_missing": self.accepts_missing,
            "graph": {
                "ir_version": self.graph_info.ir_version,
                "opsets": self.graph_info.opsets,
                "producer": self.graph_info.producer[:200],
                "nodes": self.graph_info.n_nodes,
            },
            **{k: v for k, v in self.info.items() if k not in _PARAM_KEYS},
        }
        if self.classes is not None:
            params["classes"] = self.classes.tolist()
        return Payload(params, {GRAPH_FILE: self.graph})

    @classmethod
    def from_payload(cls, params: Mapping[str, Any], files: Mapping[str, bytes]) -> OnnxPredictor:
        if GRAPH_FILE not in files:
            raise PredictorError(f"an onnx model needs {GRAPH_FILE}; it is missing")
        n_features = params.get("n_features")
        if type(n_features) is not int or not 0 < n_features <= MAX_FEATURES:
            raise PredictorError(
                f"onnx parameters need n_features, a whole number from 1 to {MAX_FEATURES}"
            )
        inputs = parse_inputs(params.get("inputs"), n_features)
        outputs = parse_outputs(params.get("outputs"))
        classes = params.get("classes")
        if classes is not None and not isinstance(classes, list):
            raise PredictorError("onnx parameters: classes must be a list of labels")
        missing = params.get("accepts_missing", False)
        if not (
            isinstance(missing, bool)
            or (isinstance(missing, list) and all(isinstance(m, bool) for m in missing))
        ):
            raise PredictorError("onnx parameters: accepts_missing must be true, false or a list")
        info = {k: v for k, v in params.items() if k not in _PARAM_KEYS}
        return cls(
            files[GRAPH_FILE],
            n_features=n_features,
            inputs=inputs,
            outputs=outputs,
            classes=classes,
            accepts_missing=missing,
            info=info,
        )

    def __repr__(self) -> str:
        inputs = ", ".join(f"{i.name}: {i.type} x{len(i.columns)}" for i in self.inputs)
        outputs = ", ".join(f"{o.name} <- {o.source} ({o.role})" for o in self.output_specs)
        return f"OnnxPredictor(inputs=[{inputs}], outputs=[{outputs}], threads={self.threads})"


_PARAM_KEYS = frozenset(
    {"engine", "n_features", "inputs", "outputs", "classes", "accepts_missing", "graph"}
)
"""Parameters the predictor writes itself; the rest of ``info`` is passed through."""


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return (text[: limit - 3] + "...") if len(text) > limit else text or type(exc).__name__


def _session_options(threads: int) -> Any:
    """Options for a Functions worker: ``threads`` intra-op threads that never spin, one
    inter-op thread, sequential execution, errors only in the log, the ONNX format only."""
    if type(threads) is not int or not 1 <= threads <= MAX_THREADS:
        raise PredictorError(f"threads must be a whole number from 1 to {MAX_THREADS}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    options.add_session_config_entry("session.load_model_format", "ONNX")
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _session(graph: bytes, options: Any) -> Any:
    try:
        return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])
    except _ORT_ERRORS as exc:
        raise PredictorError(f"onnxruntime cannot load {GRAPH_FILE}: {_one_line(exc)}") from exc


def _check_session(session: Any, info: GraphInfo, fetch: Sequence[str]) -> None:
    """What onnxruntime found against what the graph reader found, on which the binding was
    checked: the same inputs, and every output the predictor fetches."""
    found = sorted((i.name, i.type) for i in session.get_inputs())
    read = sorted((i.name, f"tensor({i.type_name})") for i in info.inputs if i.kind == "tensor")
    outputs = {o.name for o in session.get_outputs()}
    if found != read or not outputs.issuperset(fetch):
        raise ArtifactError(
            f"{GRAPH_FILE}: onnxruntime reads the graph's inputs as {found[:8]} and outputs as "
            f"{sorted(outputs)[:8]}, not as the file declares them; refusing it"
        )
