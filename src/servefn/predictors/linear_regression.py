"""Linear regressors in numpy alone: ``Score = X @ W + b`` (or its exponential, ``link="exp"``).

scikit-learn's linear regressors (LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor and
kin) export to :class:`LinearRegressor`, with any affine scalers before them folded into ``W``
and ``b`` (:mod:`servefn.predictors.sklearn_linear`), so serving one needs neither
scikit-learn nor pickle: one matrix product, or plain Python for one row of a small model.
``link="exp"`` serves a log-link model (ML.NET's Poisson regression): ``Score = exp(X @ W + b)``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors._npz import dump_arrays, load_arrays
from servefn.predictors.base import Outputs, Payload, Predictor

__all__ = ["LinearRegressor"]

_MAX_WEIGHT_BYTES = 1 << 30
_SMALL_MODEL = 256  # weights; above this even one row is faster through numpy


class LinearRegressor(Predictor):
    """``Score = X @ weights + bias``: shape (n,) for one target, (n, k) for ``k`` targets.

    Parameters
    ----------
    weights : array of shape (n_features, n_targets), or (n_features,) for one target
    bias : array of shape (n_targets,), or a scalar for one target
    link : ``"identity"`` (the default) or ``"exp"`` (``Score = exp(X @ W + b)``)
    """

    kind: ClassVar[str] = "linear-regressor"
    dtype: ClassVar[type[np.floating[Any]]] = np.float64
    outputs: ClassVar[tuple[str, ...]] = ("Score",)

    def __init__(
        self,
        weights: NDArray[np.floating[Any]],
        bias: Any,
        *,
        link: Literal["identity", "exp"] = "identity",
    ) -> None:
        if link not in ("identity", "exp"):
            raise PredictorError(f"link must be 'identity' or 'exp', not {str(link)[:40]!r}")
        self.link = link
        W = np.asarray(weights, dtype=np.float64)
        if W.ndim == 1:
            W = W[:, None]
        W = np.ascontiguousarray(W)
        b = np.ascontiguousarray(bias, dtype=np.float64).reshape(-1)
        if W.ndim != 2 or W.shape[1] == 0 or b.shape != (W.shape[1],):
            raise PredictorError(
                f"weights must be (n_features, n_targets) and bias (n_targets,); got {W.shape} "
                f"and {b.shape}"
            )
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise PredictorError("weights and bias must be finite; they hold NaN or infinity")
        self.weights = W
        self.bias = b
        self._single = W.shape[1] == 1
        small = W.size <= _SMALL_MODEL
        self._row_weights: list[list[float]] | None = W.T.tolist() if small else None
        self._row_bias: list[float] = b.tolist()

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_targets(self) -> int:
        return int(self.weights.shape[1])

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise PredictorError(
                f"expected a matrix with {self.n_features} feature columns, got shape {X.shape}"
            )
        if X.shape[0] == 1 and self._row_weights is not None:
            return self._predict_one(X[0].tolist())
        z: NDArray[np.float64] = X @ self.weights
        z += self.bias
        if self.link == "exp":
            np.exp(z, out=z)
        return {"Score": z[:, 0] if self._single else z}

    def predict_row(self, row: Sequence[float]) -> Outputs:
        if self._row_weights is not None and len(row) == self.n_features:
            return self._predict_one(row)
        return super().predict_row(row)

    def _predict_one(self, x: Sequence[float]) -> Outputs:
        """:meth:`predict` for one row, in Python floats."""
        assert self._row_weights is not None
        z = [
            sum(map(operator.mul, x, column), bias)
            for column, bias in zip(self._row_weights, self._row_bias)  # noqa: B905
        ]
        if self.link == "exp":
            z = [_exp(v) for v in z]
        return {"Score": [z[0]] if self._single else [z]}

    def to_payload(self) -> Payload:
        params: dict[str, Any] = {"n_targets": self.n_targets}
        if self.link != "identity":  # older servefn reads identity models as before
            params["link"] = self.link
        return Payload(
            params,
            {"weights.npz": dump_arrays({"weights": self.weights, "bias": self.bias})},
        )

    @classmethod
    def from_payload(cls, params: Mapping[str, Any], files: Mapping[str, bytes]) -> LinearRegressor:
        if "weights.npz" not in files:
            raise PredictorError("a linear-regressor model needs weights.npz; it is missing")
        arrays = load_arrays(files["weights.npz"], max_bytes=_MAX_WEIGHT_BYTES)
        try:
            weights, bias = arrays["weights"], arrays["bias"]
        except KeyError as exc:
            raise PredictorError(f"linear-regressor payload lacks {exc}") from None
        if weights.ndim != 2 or weights.dtype.kind != "f" or bias.dtype.kind != "f":
            raise PredictorError("linear-regressor weights must be a 2-D float array")
        link = params.get("link", "identity")
        if link not in ("identity", "exp"):
            raise PredictorError(f"linear-regressor link {str(link)[:40]!r} is not identity or exp")
        regressor = cls(weights, bias, link=link)
        expected = params.get("n_targets", regressor.n_targets)
        if expected != regressor.n_targets:
            raise PredictorError(
                f"linear-regressor parameters say {expected!r} targets; weights hold "
                f"{regressor.n_targets}"
            )
        return regressor

    def __repr__(self) -> str:
        link = "" if self.link == "identity" else f", link={self.link!r}"
        return f"LinearRegressor(n_features={self.n_features}, n_targets={self.n_targets}{link})"


def _exp(value: float) -> float:
    """``math.exp`` that overflows to infinity, as ``np.exp`` does."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf
