"""The predictor interface: a vectorised ``predict`` over a feature matrix, and persistence."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "TRUSTED_SETTING",
    "LoadOptions",
    "Outputs",
    "Payload",
    "Predictor",
    "trust_advice",
    "trusted_types",
]

TRUSTED_SETTING = "SERVEFN_TRUSTED"
"""The app setting naming extra types (comma-separated) a skops model may hold."""

Outputs = dict[str, Any]
"""Output column (wire name) -> one value per input row: a numpy array, or a list (a
single-row answer may come as plain Python values, which is what serialising needs)."""


class Payload:
    """What a predictor persists: JSON-able parameters for the manifest, plus named files."""

    __slots__ = ("files", "params")

    def __init__(self, params: Mapping[str, Any], files: Mapping[str, bytes]) -> None:
        self.params = dict(params)
        self.files = dict(files)


@dataclass(frozen=True)
class LoadOptions:
    """What the caller of :func:`~servefn.load_model` allows beyond the safe defaults.

    ``trusted`` names extra types a skops payload may hold (each is built from the file, so name
    only types you expect); ``allow_pickle`` lets a pickle payload load, which runs any code the
    file contains. Both matter only to predictors that read such payloads.
    """

    trusted: tuple[str, ...] = ()
    allow_pickle: bool = False


def trusted_types(
    given: Sequence[str] = (), environ: Mapping[str, str] = os.environ
) -> tuple[str, ...]:
    """``given`` plus the comma-separated type names of the app setting ``SERVEFN_TRUSTED``,
    in order, each once."""
    if isinstance(given, str):
        raise TypeError(f"trusted must be a list of type names, not the string {given!r}")
    setting = [t.strip() for t in environ.get(TRUSTED_SETTING, "").split(",")]
    return tuple(dict.fromkeys(t for t in (*given, *setting) if t))


def trust_advice(types: Sequence[str]) -> str:
    """Where a user names ``types`` as trusted: the CLI option, the app setting, the code."""
    options = " ".join(f"--trusted {t}" for t in types)
    return (
        f"pass {options} (servefn serve, predict, check) or set the app setting "
        f"{TRUSTED_SETTING}={','.join(types)}; in code, serve_http(..., trusted={list(types)}) "
        f"or load_model(..., trusted={list(types)})"
    )


class Predictor(ABC):
    """Turns a batch of rows (a float32/float64 feature matrix) into named output arrays.

    Subclasses set ``kind`` (the manifest key used to rebuild them), implement :meth:`predict`,
    :meth:`to_payload` and :meth:`from_payload`, and must be safe to call from many threads.
    """

    kind: ClassVar[str]
    dtype: ClassVar[type[np.floating[Any]]] = np.float32
    """The feature-matrix dtype :meth:`predict` computes in; inputs are built in it."""
    outputs: ClassVar[tuple[str, ...]] = ()
    """Output columns (wire names) :meth:`predict` returns; empty when unknown. A predictor whose
    outputs depend on the model it wraps sets them per instance."""
    accepts_text: ClassVar[bool] = False
    """True when :meth:`predict` takes text features: the matrix of a schema with a text
    (categorical) feature is an object array, numbers as floats (NaN when missing) and text as
    ``str`` (``None`` when missing). A predictor without it is never given such a schema."""

    @property
    def accepts_missing(self) -> bool | Sequence[bool]:
        """Whether a missing value (NaN, or ``None`` in a text column) may reach :meth:`predict`:
        one flag for all feature columns, or one per column. Where it may not, the HTTP layer
        answers 422 naming the field and ``LoadedModel.predict`` raises
        :class:`~servefn.errors.FeatureValueError`. False by default."""
        return False

    @property
    def n_features(self) -> int | None:
        """Number of input features the predictor expects, when it knows."""
        return None

    @property
    def feature_names(self) -> Sequence[str] | None:
        """Names of the input features in the order the predictor expects, when it knows."""
        return None

    @abstractmethod
    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        """Predict every row of ``X`` at once."""

    def predict_row(self, row: Sequence[float]) -> Outputs:
        """Predict one row given as Python numbers (outputs hold one entry, as for a 1-row X).

        The default builds a 1-row matrix for :meth:`predict`; a predictor that can answer one
        row cheaper without numpy overrides it (same results).
        """
        return self.predict(np.array([row], dtype=self.dtype))

    @abstractmethod
    def to_payload(self) -> Payload:
        """Parameters and files that :meth:`from_payload` rebuilds the predictor from."""

    @classmethod
    @abstractmethod
    def from_payload(cls, params: Mapping[str, Any], files: Mapping[str, bytes]) -> Predictor:
        """Rebuild a predictor from what :meth:`to_payload` produced (already hash-checked)."""

    @classmethod
    def load_payload(
        cls, params: Mapping[str, Any], files: Mapping[str, bytes], options: LoadOptions
    ) -> Predictor:
        """Rebuild a predictor under the caller's opt-ins; :func:`load_model` calls this.

        The default ignores ``options`` and calls :meth:`from_payload`; a predictor whose payload
        can need an opt-in (untrusted types, pickle) overrides it.
        """
        return cls.from_payload(params, files)
