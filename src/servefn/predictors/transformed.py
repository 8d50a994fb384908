"""A preprocessing transform followed by any predictor: pipelines with encoders and imputers.

:class:`TransformedPredictor` serves a scikit-learn pipeline whose ColumnTransformer imputes,
scales and encodes raw features (numbers, text categories, missing values) before a linear
model, without scikit-learn: the transform stage is numpy-only
(:mod:`servefn.predictors._transform`) and the final predictor is any registered kind, rebuilt
through the registry so its load options pass through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from servefn.errors import PredictorError
from servefn.predictors._transform import Transform
from servefn.predictors.base import LoadOptions, Outputs, Payload, Predictor

__all__ = ["TransformedPredictor"]

TRANSFORM_FILE = "transform.npz"


class TransformedPredictor(Predictor):
    """``final.predict(transform(X))``, where ``X`` is the raw feature matrix (an object array
    when the schema has text; see :attr:`Predictor.accepts_text`)."""

    kind: ClassVar[str] = "transformed"
    dtype: ClassVar[type[np.floating[Any]]] = np.float64
    accepts_text: ClassVar[bool] = True
    outputs: tuple[str, ...]  # type: ignore[misc]  # the final predictor's

    def __init__(self, transform: Transform, final: Predictor) -> None:
        if isinstance(final, TransformedPredictor):
            raise PredictorError("a transformed predictor cannot wrap another one")
        expected = final.n_features
        if expected is not None and expected != transform.n_outputs:
            raise PredictorError(
                f"the transform produces {transform.n_outputs} columns but the "
                f"{final.kind} predictor takes {expected}"
            )
        self.transform = transform
        self.final = final
        self.outputs = tuple(final.outputs)
        self._row_plain = final.dtype == np.float64

    @property
    def classes(self) -> Any:
        """The final predictor's classes (None for a regressor)."""
        return getattr(self.final, "classes", None)

    @property
    def score(self) -> Any:
        """The final predictor's score kind (None when it has none)."""
        return getattr(self.final, "score", None)

    @property
    def accepts_missing(self) -> Sequence[bool]:
        """Per raw feature: the transform absorbs a missing value, or passes it on as NaN to a
        final predictor that takes NaN (a tree ensemble routes it)."""
        if self.final.accepts_missing is not True:
            return self.transform.accepts_missing
        return [self.transform.missing_outputs(j) is not None for j in range(self.n_features)]

    def vocabularies(self) -> dict[int, list[str]]:
        """Raw text feature -> the values its encoders know and refuse others than
        (``servefn.save`` writes them into the input schema as the column's categories)."""
        return self.transform.vocabularies()

    @property
    def n_features(self) -> int:
        return self.transform.n_features

    @property
    def feature_names(self) -> Sequence[str]:
        return list(self.transform.feature_names)

    def predict(self, X: NDArray[Any]) -> Outputs:
        Z = self.transform(X)
        return self.final.predict(Z.astype(self.final.dtype, copy=False))

    def predict_row(self, row: Sequence[Any]) -> Outputs:
        cells = list(row)
        plain = all(type(v) is float or type(v) is int for v in cells)
        X = np.array([cells], dtype=np.float64 if plain else object)
        Z = self.transform(X)
        if self._row_plain:
            return self.final.predict_row(Z[0].tolist())
        return self.final.predict(Z.astype(self.final.dtype, copy=False))

    def to_payload(self) -> Payload:
        params, data = self.transform.to_payload()
        final = self.final.to_payload()
        if TRANSFORM_FILE in final.files:
            raise PredictorError(
                f"the {self.final.kind} predictor writes a file named {TRANSFORM_FILE}, which "
                "the transform needs"
            )
        return Payload(
            {"transform": params, "final": {"kind": self.final.kind, "params": final.params}},
            {TRANSFORM_FILE: data, **final.files},
        )

    @classmethod
    def from_payload(
        cls, params: Mapping[str, Any], files: Mapping[str, bytes]
    ) -> TransformedPredictor:
        return cls.load_payload(params, files, LoadOptions())

    @classmethod
    def load_payload(
        cls, params: Mapping[str, Any], files: Mapping[str, bytes], options: LoadOptions
    ) -> TransformedPredictor:
        from servefn.predictors import predictor_class

        transform, final = params.get("transform"), params.get("final")
        if not isinstance(transform, Mapping) or not isinstance(final, Mapping):
            raise PredictorError("a transformed model needs transform and final parameters")
        kind, final_params = final.get("kind"), final.get("params")
        if not isinstance(kind, str) or not isinstance(final_params, Mapping):
            raise PredictorError("the final predictor needs a kind and params")
        if kind == cls.kind:
            raise PredictorError("a transformed predictor cannot wrap another one")
        if TRANSFORM_FILE not in files:
            raise PredictorError(f"a transformed model needs {TRANSFORM_FILE}; it is missing")
        built = Transform.from_payload(transform, files[TRANSFORM_FILE])
        final_files = {k: v for k, v in files.items() if k != TRANSFORM_FILE}
        predictor = predictor_class(kind).load_payload(final_params, final_files, options)
        return cls(built, predictor)

    def __repr__(self) -> str:
        return f"TransformedPredictor(n_features={self.n_features}, final={self.final!r})"
