"""Which models the inference routes serve: the :class:`ModelResolver` protocol, and the
resolver of models a host already holds by name (``ProvidedModels``).

A resolver names the models served, lists a model's versions, hands out a loaded model (loading
it if needed) and says whether one is ready without loading it. ``add_inference_routes(app)``
resolves an app's own ``serve_http`` functions (each model's name is its function's name, its
version the model's sha256 prefix, as ``X-Model-Version`` reports it); a model repository
plugs in its own resolver. ``get`` may raise servefn's own
:class:`~servefn.errors.ModelUnavailable` (what ``ModelSource.get`` raises) as well as the
protocol's :class:`ModelUnavailable`: both are answered 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from servefn.errors import ServefnError

if TYPE_CHECKING:
    from servefn.http._endpoint import ModelProvider
    from servefn.model._archive import LoadedModel

__all__ = ["ModelNotFound", "ModelResolver", "ModelUnavailable", "ProvidedModels"]


class ModelNotFound(ServefnError, LookupError):
    """No model of that name, or no such version of it, is served: answered 404.

    Any :class:`~servefn.errors.ServefnError` that is also a ``LookupError`` is answered the
    same way, so a resolver may keep its own "not found" error (``servefn.repository`` does).
    """


class ModelUnavailable(ServefnError):
    """The model exists but cannot answer now: answered 503, with ``Retry-After`` when
    ``retry_after`` (seconds) is known."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@runtime_checkable
class ModelResolver(Protocol):
    """The models behind the inference routes, by name (and version)."""

    def names(self) -> list[str]:
        """The names of the models served."""
        ...

    def versions(self, name: str) -> list[str]:
        """The known versions of ``name`` (``[]`` if it is unversioned); raises
        :class:`ModelNotFound`."""
        ...

    def get(self, name: str, version: str | None) -> LoadedModel:
        """The model, loaded if needed; raises :class:`ModelNotFound` or
        :class:`ModelUnavailable`."""
        ...

    def is_ready(self, name: str, version: str | None) -> bool:
        """True when the model is loaded and usable; never loads it."""
        ...


class ProvidedModels:
    """Models a host already holds, by name: each a ``ModelProvider`` (a ``ModelSource``, a
    fixed model...), whose one version is its loaded model's sha256 prefix."""

    def __init__(self, providers: Mapping[str, ModelProvider]) -> None:
        self._providers = dict(providers)

    def __repr__(self) -> str:
        return f"ProvidedModels({sorted(self._providers)})"

    def names(self) -> list[str]:
        return list(self._providers)

    def versions(self, name: str) -> list[str]:
        version = self._info(name).get("version")
        return [version] if isinstance(version, str) else []

    def get(self, name: str, version: str | None) -> LoadedModel:
        model = self._provider(name).get()
        if version is not None and version != model.version:
            raise ModelNotFound(
                f"model {name} does not serve that version; it serves {model.version}"
            )
        return model

    def is_ready(self, name: str, version: str | None) -> bool:
        info = self._info(name)
        current = info.get("version")
        return current is not None and (version is None or version == current)

    def _provider(self, name: str) -> ModelProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise ModelNotFound(_not_served(list(self._providers)))
        return provider

    def _info(self, name: str) -> dict[str, Any]:
        return self._provider(name).info()


def _not_served(names: list[str]) -> str:
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"no model of that name is served; the models are: {shown}"
