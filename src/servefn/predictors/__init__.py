"""Predictors and the registry that rebuilds them from a manifest's ``kind``.

Built-in kinds are imported only when a model of that kind is loaded, so serving a linear model
never imports scikit-learn. Third parties add kinds with :func:`register_predictor` or an entry
point in the ``servefn.predictors`` group (``kind = "package.module:Class"``).
"""

from __future__ import annotations

import importlib
from types import MappingProxyType

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

_ENTRY_POINT_GROUP = "servefn.predictors"
_KNOWN: dict[str, tuple[str, str | None]] = {
    "linear-classifier": ("servefn.predictors.linear:LinearClassifier", None),
    "sklearn": (
        "servefn.predictors.sklearn:SklearnPredictor",
        "this model needs scikit-learn and skops: pip install 'servefn[sklearn]'",
    ),
}
registry = MappingProxyType(_KNOWN)
"""Read-only view: kind -> ("module:Class", message shown when its package is missing)."""


def register_predictor(
    kind: str, target: str | type[Predictor], *, missing: str | None = None, clobber: bool = False
) -> None:
    """Make models whose manifest says ``kind`` load with ``target`` ("module:Class" or a class)."""
    if kind in _KNOWN and not clobber:
        raise PredictorError(f"predictor kind {kind!r} is registered already; pass clobber=True")
    path = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    _KNOWN[kind] = (path, missing)


def predictor_class(kind: str) -> type[Predictor]:
    """The predictor class for a manifest ``kind``, importing it on first use."""
    if kind not in _KNOWN:
        from importlib.metadata import entry_points  # only for kinds not built in

        for ep in entry_points(group=_ENTRY_POINT_GROUP):
            if ep.name == kind:
                _KNOWN[kind] = (ep.value, None)
                break
        else:
            raise PredictorError(
                f"no predictor is registered for model kind {kind!r}; known kinds: "
                f"{sorted(_KNOWN)}. Install the package that provides it."
            )
    path, missing = _KNOWN[kind]
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PredictorError(
            missing or f"cannot import {module_name} for kind {kind!r}: {exc}"
        ) from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise PredictorError(f"{path} (kind {kind!r}) is not a servefn Predictor class")
    return cls
