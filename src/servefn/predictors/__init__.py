"""Predictors and the registry that rebuilds them from a manifest's ``kind``.

Built-in kinds are imported only when a model of that kind is loaded, so serving a linear model
never imports scikit-learn. Third parties add kinds with :func:`register_predictor` or an entry
point in the ``servefn.predictors`` group (``kind = "package.module:Class"``).
"""

from __future__ import annotations

from servefn._registry import Entry, LazyRegistry, import_target
from servefn.errors import PredictorError
from servefn.predictors.base import LoadOptions, Outputs, Payload, Predictor

__all__ = [
    "LoadOptions",
    "Outputs",
    "Payload",
    "Predictor",
    "predictor_class",
    "register_predictor",
    "registry",
]

_registry = LazyRegistry(
    "predictor kind",
    {
        "linear-classifier": Entry("servefn.predictors.linear:LinearClassifier"),
        "linear-regressor": Entry("servefn.predictors.linear_regression:LinearRegressor"),
        "transformed": Entry("servefn.predictors.transformed:TransformedPredictor"),
        "tree-ensemble": Entry("servefn.predictors.trees:TreeEnsemble"),
        "onnx": Entry(
            "servefn.predictors.onnx:OnnxPredictor",
            "this model needs onnxruntime: pip install 'servefn[onnx]'",
        ),
        "sklearn": Entry(
            "servefn.predictors.sklearn:SklearnPredictor",
            "this model needs scikit-learn and skops: pip install 'servefn[sklearn]'",
        ),
    },
    refuse=PredictorError,
    entry_points="servefn.predictors",
)
registry = _registry.view
"""Read-only view: kind -> ``Entry(target, missing)``, the class as ``"module:Class"`` and the
message shown when its package is missing."""


def register_predictor(
    kind: str, target: str | type[Predictor], *, missing: str | None = None, clobber: bool = False
) -> None:
    """Make models whose manifest says ``kind`` load with ``target`` ("module:Class" or a class).

    Replacing a different target needs ``clobber=True`` (:class:`PredictorError` otherwise).
    """
    _registry.register(kind, target, missing=missing or "", clobber=clobber)


def predictor_class(kind: str) -> type[Predictor]:
    """The predictor class for a manifest ``kind``, importing it on first use."""
    entry = _registry.get(kind)  # registered, or an entry point of the servefn.predictors group
    if entry is None:
        raise PredictorError(
            f"no predictor is registered for model kind {kind!r}; known kinds: "
            f"{sorted(registry)}. Install the package that provides it."
        )
    try:
        cls = import_target(entry, f"model kind {kind!r}")
    except ImportError as exc:
        raise PredictorError(str(exc)) from exc
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise PredictorError(f"{entry.target} (kind {kind!r}) is not a servefn Predictor class")
    return cls
