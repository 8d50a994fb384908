"""Any fitted scikit-learn estimator, persisted with skops (or, only when asked, with pickle).

Trees, ensembles, SVMs, neighbours and pipelines with a ColumnTransformer cannot become a
numpy-only linear model; :class:`SklearnPredictor` serves them as they are. The payload is
``model.skops``, loaded with skops' trusted types only plus those the caller names; pickle
(``model.pkl``) is written only with ``allow_pickle=True`` when skops cannot persist the model,
and loaded only when the loader passes ``allow_pickle=True`` too. This module imports
scikit-learn and skops, so the registry imports it only for models of kind ``"sklearn"``.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar, Literal
from zipfile import BadZipFile

import numpy as np
import sklearn
import skops
import skops.io as sio
from numpy.typing import NDArray
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skops.io import exceptions as skops_errors

from servefn.errors import ArtifactError, PredictorError
from servefn.predictors._npz import check_npy_members
from servefn.predictors.base import LoadOptions, Outputs, Payload, Predictor, trust_advice

__all__ = ["PickleWarning", "ScoreSource", "SklearnPredictor"]

SKOPS_FILE = "model.skops"
PICKLE_FILE = "model.pkl"
ScoreSource = Literal["probability", "decision", "prediction"]
"""Where ``Score`` comes from: ``predict_proba``, ``decision_function`` (as n_rows x k), or,
for a regressor, ``predict`` itself."""

# what skops and pickle raise for an object they cannot write, or a file they cannot read back
_DUMP_ERRORS = (TypeError, ValueError, AttributeError, pickle.PicklingError)
_LOAD_ERRORS = (
    BadZipFile,
    ImportError,
    AttributeError,
    KeyError,
    TypeError,
    ValueError,
    EOFError,
    pickle.UnpicklingError,
)


class PickleWarning(UserWarning):
    """A model was saved with pickle: whoever can replace the file can run code where it loads."""


class SklearnPredictor(Predictor):
    """Serve a fitted scikit-learn classifier or regressor (an estimator or a pipeline).

    Classifiers produce ``PredictedLabel`` (``predict``) and ``Score`` (``predict_proba``, else
    ``decision_function`` as a 2-D array, else no score). Regressors produce ``Score``: the
    prediction as float64, one value per row (a vector for multi-output regressors). Features
    are float64 (``dtype``), as estimators are usually fitted, so a served prediction equals
    scikit-learn's for the same values. An estimator fitted on a pandas DataFrame gets a
    DataFrame with its ``feature_names_in_`` as columns (serving it needs pandas).

    Parameters
    ----------
    estimator : a fitted scikit-learn classifier or regressor
    allow_pickle : bool
        Save with pickle, with a :class:`PickleWarning`, when skops cannot persist the model.
    """

    kind: ClassVar[str] = "sklearn"
    dtype: ClassVar[type[np.floating[Any]]] = np.float64
    # per instance, unlike the base class: a regressor has no PredictedLabel
    outputs: tuple[str, ...]  # type: ignore[misc]

    def __init__(self, estimator: Any, *, allow_pickle: bool = False) -> None:
        name = type(estimator).__name__
        if not hasattr(estimator, "predict"):
            raise PredictorError(f"{name} has no predict(); serve a fitted classifier or regressor")
        try:
            check_is_fitted(estimator)
        except NotFittedError as exc:
            raise PredictorError(f"{name} is not fitted; call fit() first") from exc
        except TypeError as exc:  # not an estimator at all
            raise PredictorError(f"{name} is not a scikit-learn estimator ({exc})") from exc
        self.score, self.outputs, self.classes = _describe(estimator)
        self.estimator = estimator
        self.allow_pickle = allow_pickle
        n = getattr(estimator, "n_features_in_", None)
        self._n_features = None if n is None else int(n)
        names = getattr(estimator, "feature_names_in_", None)
        self._feature_names = None if names is None else [str(n) for n in names]
        if self._feature_names is not None:
            _pandas()  # fail at load, not on the first request

    @property
    def n_features(self) -> int | None:
        return self._n_features

    @property
    def feature_names(self) -> list[str] | None:
        return self._feature_names

    accepts_text: ClassVar[bool] = True  # an estimator fitted on a DataFrame with text columns

    @property
    def accepts_missing(self) -> bool:
        """What scikit-learn's tags say of the estimator's first step (a pipeline's imputer, a
        histogram gradient boosting model); a ColumnTransformer, of each of its transformers."""
        return _allows_nan(self.estimator)

    def vocabularies(self) -> dict[int, list[str]]:
        """Input column -> the text values its encoders know, where they refuse any other
        (``save`` writes them into the input schema; see :mod:`.sklearn_vocabulary`)."""
        from servefn.predictors.sklearn_vocabulary import closed_vocabularies

        return closed_vocabularies(self.estimator)

    def predict(self, X: NDArray[np.floating[Any]]) -> Outputs:
        matrix = X if X.dtype == object else np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or (
            self._n_features is not None and matrix.shape[1] != self._n_features
        ):
            raise PredictorError(
                f"expected a matrix with {self._n_features} feature columns, got shape {X.shape}"
            )
        rows: Any = matrix
        if self._feature_names is not None and matrix.dtype == object:
            rows = _frame(matrix, self._feature_names)
        elif self._feature_names is not None:
            rows = _pandas().DataFrame(matrix, columns=self._feature_names, copy=False)
        predicted = self.estimator.predict(rows)
        if self.score == "prediction":
            return {"Score": np.asarray(predicted, dtype=np.float64)}
        outputs: Outputs = {"PredictedLabel": np.asarray(predicted)}
        if self.score == "probability":
            outputs["Score"] = np.asarray(self.estimator.predict_proba(rows), dtype=np.float64)
        elif self.score == "decision":
            z = np.asarray(self.estimator.decision_function(rows), dtype=np.float64)
            outputs["Score"] = z.reshape(len(z), -1)
        return outputs

    def to_payload(self) -> Payload:
        """skops bytes; pickle (with a :class:`PickleWarning`) only if allowed and skops fails.

        Either form is read back before it is accepted, so a model that could not be loaded
        (a lambda, a class defined in ``__main__``) is refused now rather than where it serves.
        """
        name = type(self.estimator).__name__
        try:
            data = sio.dumps(self.estimator)
        except _DUMP_ERRORS as exc:
            if not self.allow_pickle:
                raise PredictorError(
                    f"skops cannot persist {name} ({exc}). Pass allow_pickle=True to save it "
                    "with pickle; loading it then needs allow_pickle=True and runs any code "
                    "the file holds"
                ) from exc
            return self._pickle_payload(skops_error=exc)
        untrusted = sorted(sio.get_untrusted_types(data=data))
        _check_importable(untrusted)
        try:  # our own bytes, just written: trusting what they hold is safe here
            sio.loads(data, trusted=untrusted)
        except _LOAD_ERRORS as exc:
            raise PredictorError(
                f"skops wrote {name} but cannot read it back ({type(exc).__name__}: {exc}); "
                "define its functions and classes at module level in an importable module"
            ) from exc
        return Payload({**self._params("skops"), "untrusted_types": untrusted}, {SKOPS_FILE: data})

    def _pickle_payload(self, *, skops_error: Exception) -> Payload:
        name = type(self.estimator).__name__
        try:
            data = pickle.dumps(self.estimator, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(data)  # our own bytes, just written
        except (*_DUMP_ERRORS, *_LOAD_ERRORS) as exc:
            raise PredictorError(
                f"neither skops ({skops_error}) nor pickle ({exc}) can persist {name}"
            ) from exc
        warnings.warn(
            f"{name} is saved with pickle because skops cannot persist it ({skops_error}). "
            "Loading it runs any code in the file: serve it only from storage you control",
            PickleWarning,
            stacklevel=2,
        )
        return Payload(self._params("pickle"), {PICKLE_FILE: data})

    def _params(self, form: str) -> dict[str, Any]:
        """Manifest params: informational (``servefn inspect``); loading never relies on them."""
        return {
            "format": form,
            "estimator": type(self.estimator).__name__,
            "score": self.score,
            "classes": None if self.classes is None else self.classes.tolist(),
            "sklearn_version": sklearn.__version__,
            "skops_version": skops.__version__,
        }

    @classmethod
    def from_payload(
        cls, params: Mapping[str, Any], files: Mapping[str, bytes]
    ) -> SklearnPredictor:
        """Rebuild with the safe defaults: skops' trusted types only, no pickle."""
        return cls.load_payload(params, files, LoadOptions())

    @classmethod
    def load_payload(
        cls, params: Mapping[str, Any], files: Mapping[str, bytes], options: LoadOptions
    ) -> SklearnPredictor:
        """Rebuild from ``model.skops`` (skops' trusted types plus ``options.trusted``), or from
        ``model.pkl`` only when ``options.allow_pickle`` is set."""
        if SKOPS_FILE in files:
            estimator = _load_skops(files[SKOPS_FILE], options.trusted)
            return cls(estimator)
        if PICKLE_FILE in files:
            return cls(_load_pickle(files[PICKLE_FILE], options.allow_pickle), allow_pickle=True)
        raise PredictorError(
            f"an sklearn model needs {SKOPS_FILE} or {PICKLE_FILE}; both are missing"
        )

    def __repr__(self) -> str:
        return f"SklearnPredictor({type(self.estimator).__name__}, outputs={self.outputs})"


def _describe(
    estimator: Any,
) -> tuple[ScoreSource | None, tuple[str, ...], NDArray[Any] | None]:
    """``(score source, outputs, classes)`` of a fitted classifier or regressor."""
    if is_regressor(estimator):
        return "prediction", ("Score",), None
    if not is_classifier(estimator):
        raise PredictorError(
            f"{type(estimator).__name__} is neither a classifier nor a regressor; servefn "
            "serves those two"
        )
    classes = np.asarray(estimator.classes_)
    if hasattr(estimator, "predict_proba"):  # False when it is unavailable, e.g. SVC()
        return "probability", ("PredictedLabel", "Score"), classes
    if hasattr(estimator, "decision_function"):
        return "decision", ("PredictedLabel", "Score"), classes
    return None, ("PredictedLabel",), classes


def _load_skops(data: bytes, trusted: Sequence[str]) -> Any:
    check_npy_members(data, source=SKOPS_FILE)  # no array is allocated from a lying header
    try:
        return sio.loads(data, trusted=list(trusted))
    except skops_errors.UntrustedTypesFoundException as exc:
        untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted))
        raise ArtifactError(
            f"{SKOPS_FILE} holds types that skops does not trust by default: {untrusted}. "
            f"To load it, {trust_advice(untrusted)}. Each trusted type is built from the file, "
            "so name only types you expect, from a source you trust" + _reasons(untrusted)
        ) from exc
    except _LOAD_ERRORS as exc:
        raise ArtifactError(
            f"{SKOPS_FILE} cannot be loaded ({type(exc).__name__}: {exc}); it may need a package "
            "that is not installed here, or another scikit-learn version"
        ) from exc


def _load_pickle(data: bytes, allow_pickle: bool) -> Any:
    if not allow_pickle:
        raise ArtifactError(
            f"this model was saved with pickle ({PICKLE_FILE}); loading it runs any code the file "
            "holds. Only for a file from a source you trust: load_model(..., allow_pickle=True)"
        )
    try:
        return pickle.loads(data)  # the caller opted in explicitly
    except _LOAD_ERRORS as exc:
        raise ArtifactError(
            f"{PICKLE_FILE} cannot be loaded ({type(exc).__name__}: {exc})"
        ) from exc


def _reasons(types: Sequence[str]) -> str:
    """skops' own notes on why a type is not trusted by default, where it has them."""
    notes: Mapping[str, str] = getattr(skops_errors, "UNTRUSTED_TYPE_REASONS", {})
    return "".join(f"\n- {notes[t]}" for t in types if t in notes)


def _check_importable(types: Sequence[str]) -> None:
    """Refuse functions and classes from ``__main__``: the serving process will not have them."""
    local = [t for t in types if t.startswith("__main__.")]
    if local:
        raise PredictorError(
            f"the model uses {local}, defined in the script that trained it; a serving process "
            "cannot import those. Move them to a module and import them from there"
        )


def _frame(matrix: NDArray[Any], names: Sequence[str]) -> Any:
    """An object feature matrix as the DataFrame the estimator was fitted on: number columns as
    float64, text columns as objects with NaN where missing (as pandas reads them)."""
    columns: dict[str, Any] = {}
    for name, values in zip(names, matrix.T, strict=True):
        if all(type(v) is float for v in values):
            columns[name] = values.astype(np.float64)
        else:
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=object)
    return _pandas().DataFrame(columns)


def _allows_nan(estimator: Any) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.utils import get_tags

    if isinstance(estimator, Pipeline):
        steps = [s for _, s in estimator.steps if s is not None and s != "passthrough"]
        return bool(steps) and _allows_nan(steps[0])
    if isinstance(estimator, ColumnTransformer):
        parts = [t for _, t, _ in estimator.transformers_ if not isinstance(t, str)]
        return all(_allows_nan(t) for t in parts)
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):  # a third-party estimator without tags
        return False


def _pandas() -> ModuleType:
    try:
        return importlib.import_module("pandas")  # by name: pandas is optional and untyped here
    except ImportError as exc:
        raise PredictorError(
            "this model was fitted on a pandas DataFrame, so serving it needs pandas: "
            "pip install pandas"
        ) from exc
