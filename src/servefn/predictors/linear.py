"""Linear classifiers in numpy alone: ``X @ W + b``, then softmax/sigmoid, then label decoding.

Every supported scikit-learn pipeline (affine scalers + a linear classifier) and the SDCA trainer
export to :class:`LinearClassifier`; scalers are folded into ``W`` and ``b`` at export time, so a
prediction is one matrix product. Serving needs neither scikit-learn nor pickle.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors._labels import class_labels
from servefn.predictors._npz import dump_arrays, load_arrays
from servefn.predictors.base import Outputs, Payload, Predictor

__all__ = ["LinearClassifier", "ScoreKind"]

ScoreKind = Literal["softmax", "logistic", "ovr", "decision"]
"""How scores are made from the linear outputs ``z``:

- ``softmax``: ``exp(z) / sum(exp(z))`` (multinomial logistic regression, ML.NET's SDCA);
- ``logistic``: binary, one output: ``[1 - sigmoid(z), sigmoid(z)]``;
- ``ovr``: one-vs-rest sigmoids normalised to sum to one (SGDClassifier with log loss);
- ``decision``: the raw ``z`` (LinearSVC, RidgeClassifier): no probabilities.
"""
_SCORE_KINDS: tuple[str, ...] = ("softmax", "logistic", "ovr", "decision")
_MAX_WEIGHT_BYTES = 1 << 30
_SMALL_MODEL = 256  # weights; above this even one row is faster through numpy


class LinearClassifier(Predictor):
    """``PredictedLabel = classes[argmax(score)]`` and ``Score`` from ``z = X @ weights + bias``.

    Parameters
    ----------
    weights : array of shape (n_features, n_outputs)
        One column per class, or a single column for a binary decision (``z > 0`` is
        ``classes[1]``).
    bias : array of shape (n_outputs,)
    classes : sequence of labels, in output order
    score : ScoreKind
    """

    kind: ClassVar[str] = "linear-classifier"
    dtype: ClassVar[type[np.floating[Any]]] = np.float64
    outputs: ClassVar[tuple[str, ...]] = ("PredictedLabel", "Score")

    def __init__(
        self,
        weights: NDArray[np.floating[Any]],
        bias: NDArray[np.floating[Any]],
        classes: Sequence[Any],
        *,
        score: ScoreKind = "softmax",
    ) -> None:
        W = np.ascontiguousarray(weights, dtype=np.float64)
        b = np.ascontiguousarray(bias, dtype=np.float64).reshape(-1)
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise PredictorError(
                f"weights must be (n_features, n_outputs) and bias (n_outputs,); got {W.shape} "
                f"and {b.shape}"
            )
        if score not in _SCORE_KINDS:
            raise PredictorError(f"score {score!r} is not one of {_SCORE_KINDS}")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise PredictorError("weights and bias must be finite; they hold NaN or infinity")
        labels = class_labels(classes)
        binary = W.shape[1] == 1
        if len(labels) != (2 if binary else W.shape[1]):
            raise PredictorError(f"{len(labels)} classes do not fit {W.shape[1]} weight columns")
        if score == "logistic" and not binary:
            raise PredictorError("score='logistic' needs a single weight column (binary)")
        self.weights = W
        self.bias = b
        self.classes = labels
        self.score = score
        self._binary = binary
        # One row of a small model is cheaper in plain Python than in a dozen numpy calls.
        small = W.size <= _SMALL_MODEL
        self._row_weights: list[list[float]] | None = W.T.tolist() if small else None
        self._row_bias: list[float] = b.tolist()
        self._class_list: list[Any] = self.classes.tolist()

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[0])

    def decision_function(self, X: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """The linear outputs ``X @ W + b`` (n_rows x n_outputs)."""
        if X.ndim != 2 or X.shape[1] != self.weights.shape[0]:
            raise PredictorError(
                f"expected a matrix with {self.weights.shape[0]} feature columns, "
                f"got shape {X.shape}"
            )
        z: NDArray[np.float64] = X @ self.weights
        z += self.bias
        return z

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        if X.shape[0] == 1 and self._row_weights is not None and X.shape[1] == self.n_features:
            return self._predict_one(X[0].tolist())
        z = self.decision_function(X)
        # binary: z > 0 picks classes[1]; multiclass: the first maximum wins, as ML.NET's ArgMax
        index = (z[:, 0] > 0).astype(np.intp) if self._binary else np.argmax(z, axis=1)
        return {"PredictedLabel": self.classes[index], "Score": _scores(z, self.score)}

    def predict_row(self, row: Sequence[float]) -> Outputs:
        if self._row_weights is not None and len(row) == len(self._row_weights[0]):
            return self._predict_one(row)
        return super().predict_row(row)

    def _predict_one(self, x: Sequence[float]) -> Outputs:
        """:meth:`predict` for a single row, in Python floats (same maths, same tie rule)."""
        assert self._row_weights is not None
        z = [  # shapes were checked by the caller and at construction
            sum(map(operator.mul, x, column), bias)
            for column, bias in zip(self._row_weights, self._row_bias)  # noqa: B905
        ]
        index = int(z[0] > 0) if self._binary else z.index(max(z))
        label = self._class_list[index]
        return {"PredictedLabel": [label], "Score": [_row_scores(z, self.score)]}

    def to_payload(self) -> Payload:
        return Payload(
            {"score": self.score, "classes": self.classes.tolist()},
            {"weights.npz": dump_arrays({"weights": self.weights, "bias": self.bias})},
        )

    @classmethod
    def from_payload(
        cls, params: Mapping[str, Any], files: Mapping[str, bytes]
    ) -> LinearClassifier:
        if "weights.npz" not in files:
            raise PredictorError("a linear-classifier model needs weights.npz; it is missing")
        classes, score = params.get("classes"), params.get("score")
        if not isinstance(classes, list) or score not in _SCORE_KINDS:
            raise PredictorError(
                "linear-classifier parameters need classes as a list of labels and score as one "
                f"of {_SCORE_KINDS}; got {type(classes).__name__} classes and score "
                f"{str(score)[:40]!r}"
            )
        arrays = load_arrays(files["weights.npz"], max_bytes=_MAX_WEIGHT_BYTES)
        try:
            return cls(arrays["weights"], arrays["bias"], classes, score=score)
        except KeyError as exc:
            raise PredictorError(f"linear-classifier payload lacks {exc}") from None

    def __repr__(self) -> str:
        classes = self.classes.tolist()
        return f"LinearClassifier(n_features={self.n_features}, {classes=}, score={self.score!r})"


def _scores(z: NDArray[np.float64], kind: str) -> NDArray[np.float64]:
    if kind == "softmax":  # in place: z is ours and no longer needed
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z
    if kind == "logistic":
        p = _sigmoid(z[:, 0])
        return np.column_stack((1.0 - p, p))
    if kind == "ovr":  # sigmoid(z_c) / sum_j sigmoid(z_j); all-underflow rows are uniform
        p = _sigmoid(z)  # exactly as scikit-learn's _predict_proba_lr, to match it bit for bit
        total = p.sum(axis=1)
        all_zero = total == 0
        if all_zero.any():
            p[all_zero, :] = 1.0
            total[all_zero] = p.shape[1]
        p /= total[:, None]
        return p
    return z


def _row_scores(z: list[float], kind: str) -> list[float]:
    """:func:`_scores` for one row of Python floats."""
    if kind == "softmax":
        top = max(z)
        e = [math.exp(v - top) for v in z]
        total = sum(e)
        return [v / total for v in e]
    if kind == "logistic":
        positive = _row_sigmoid(z[0])
        return [1.0 - positive, positive]
    if kind == "ovr":
        each = [_row_sigmoid(v) for v in z]
        total = sum(each)
        return [v / total for v in each] if total > 0 else [1.0 / len(each)] * len(each)
    return z


def _row_sigmoid(v: float) -> float:
    e = math.exp(-abs(v))
    return 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    e = np.exp(-np.abs(z))  # the two-sided form scipy's expit uses: no overflow, same underflow
    out: NDArray[np.float64] = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out
