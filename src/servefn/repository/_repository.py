"""``ModelRepository``: many models from one folder, blob prefix or fsspec URL, on demand.

It ties the listing (:mod:`._catalog`), the stores (:mod:`._stores`) and the cache of loaded
models (:mod:`._cache`) together, and answers "the model NAME (version V)" for the HTTP routes
and for the Open Inference Protocol: it satisfies ``servefn.oip.ModelResolver`` (``names``,
``versions``, ``get``, ``is_ready``) structurally. A model is loaded by its first request (one
load however many arrive together: its :class:`~servefn.loaders.ModelSource` is single-flight),
refreshed by the same conditional checks as a single model, and kept while it fits the budget.
A model that cannot load is reported in its own entry; the others are not touched.
"""

from __future__ import annotations

import functools
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from servefn.errors import ModelUnavailable, ModelUnusable, ServefnError, UsageError
from servefn.loaders import ModelSource
from servefn.model._archive import LoadedModel, load_model
from servefn.predictors.base import trusted_types
from servefn.repository._cache import DEFAULT_MAX_MODELS, Entry, ModelCache, model_memory
from servefn.repository._cache import memory_budget as _memory_budget
from servefn.repository._catalog import Catalog, Listing
from servefn.repository._layout import ListedModel, ModelNotFound, is_segment
from servefn.repository._stores import RepositoryStore, store_for

__all__ = ["ModelRepository"]


class ModelRepository:
    """The models of a repository, loaded on demand and kept within a memory budget.

    Parameters
    ----------
    location:
        A folder, ``blob://container/prefix`` (azure-storage-blob) or any fsspec URL
        (``az://container/prefix``, ``s3://bucket/prefix``...) holding ``NAME/model.zip`` and
        ``NAME/VERSION/model.zip`` files, and optional ``NAME/current`` aliases
        (:mod:`servefn.repository._layout`); or a :class:`RepositoryStore`.
    connection:
        For Azure Storage URLs: the app setting or identity-based prefix, as on a Functions
        binding (default ``AzureWebJobsStorage``).
    memory_budget:
        Bytes (or ``"512MiB"``) of models kept loaded; default: the app setting
        ``SERVEFN_MEMORY_BUDGET``, else 512 MiB (:data:`~._cache.DEFAULT_MEMORY_BUDGET` says
        why). ``max_models`` bounds their number.
    refresh_after:
        Seconds between conditional checks of each loaded model (as ``serve_http``'s).
    list_after:
        Seconds between listings of the repository (new, changed and deleted models).
    trusted, allow_pickle:
        What scikit-learn models may hold, as for ``serve_http``.
    cache_dir:
        A disk cache of artifacts shared by the models (``ModelSource``'s ``cache_dir``).
    clock:
        Monotonic clock for the listing and the models' checks (injectable for tests).
    storage_options:
        Passed to the loaders (``timeout=``, ``max_bytes=``, fsspec options...).
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | RepositoryStore,
        *,
        connection: str | None = None,
        memory_budget: int | str | None = None,
        max_models: int = DEFAULT_MAX_MODELS,
        refresh_after: float = 300.0,
        list_after: float = 60.0,
        trusted: Sequence[str] = (),
        allow_pickle: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        **storage_options: Any,
    ) -> None:
        if isinstance(trusted, str):
            raise TypeError("trusted= takes a list of type names, not one string")
        if isinstance(location, (str, os.PathLike)):
            location = store_for(location, connection, **storage_options)
        elif connection is not None or storage_options:
            raise UsageError("connection= and storage options go with a location, not a store")
        self.store = location
        self.uri = location.uri
        self.refresh_after = refresh_after
        self.cache_dir = cache_dir
        self._clock = clock
        self._parse: Callable[..., LoadedModel] = functools.partial(
            load_model, trusted=trusted_types(trusted), allow_pickle=allow_pickle
        )
        self.catalog = Catalog(location, list_after=list_after, on_change=self._listed, clock=clock)
        budget = _memory_budget(memory_budget)
        self.cache = ModelCache(self._source, budget=budget, max_models=max_models)

    def __repr__(self) -> str:
        return f"ModelRepository({self.uri!r})"

    # -- servefn.oip.ModelResolver ------------------------------------------------------------

    def names(self) -> list[str]:
        """The models' names, in natural order (lists the repository on first use)."""
        return list(self.catalog.current().models)

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` (``[]`` for a model with only ``NAME/model.zip``, whose one
        version is then its loaded model's sha256 prefix, as for a single-model app)."""
        return list(self.listed(name).versions)

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The model (``version`` None: the one ``models/NAME`` serves), loaded if needed.

        Raises :class:`~._layout.ModelNotFound` for a name or version that is not in the
        repository, :class:`~servefn.errors.ModelUnavailable` while it cannot be loaded (a
        :class:`~servefn.errors.ModelUnusable` when its artifact was refused).
        """
        return self.resolve(name, version)[1]

    def is_ready(self, name: str, version: str | None = None) -> bool:
        """True when the model is loaded; never loads it, never raises."""
        try:
            listed = self.listed(name)
            unversioned = version is not None and not listed.versions
            path = listed.path_for(None if unversioned else version)
        except (ModelNotFound, ModelUnavailable):
            return False
        entry = self.cache.find(path)
        loaded = entry.source.version if entry is not None else None
        return loaded is not None and (not unversioned or version == loaded)

    # -- for the routes and health ------------------------------------------------------------

    def listed(self, name: str) -> ListedModel:
        """The listing's entry for ``name``: :class:`ModelNotFound` when there is none."""
        found = self.catalog.current().models.get(name) if is_segment(name) else None
        if found is None:
            raise ModelNotFound("no model by that name in the repository")
        return found

    def resolve(self, name: str, version: str | None = None) -> tuple[Entry, LoadedModel]:
        """The cache entry serving ``name`` (``version``) and its model; see :meth:`get`."""
        if version is not None and not is_segment(version):
            raise ModelNotFound("the model has no version by that name")
        listed = self.listed(name)
        unversioned = version is not None and not listed.versions
        entry = self.cache.entry(listed.path_for(None if unversioned else version))
        try:
            model = entry.source.get()
            if unversioned and version != model.version:  # its one version: the sha256 prefix
                raise ModelNotFound("the model has no version by that name")
            return entry, model
        except ServefnError as exc:
            if entry.source.version is None:  # nothing loaded: nothing to account
                self.cache.restore(entry, 0)
            if isinstance(exc, ModelUnusable) and entry.over_budget:
                raise ModelUnusable(
                    str(exc),
                    retry_after=exc.retry_after,
                    uri=exc.uri,
                    reason=exc.reason,
                    cause="over-budget",
                ) from None
            raise

    def refresh(self) -> None:
        """List the repository now (tests, and hosts that want the listing at start-up)."""
        self.catalog.refresh()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for background work under way: a listing and the models' checks."""
        done = self.catalog.wait(timeout)
        for entry in self.cache.entries():
            done = entry.source.wait_for_refresh(timeout) and done
        return done

    def info(self) -> dict[str, Any]:
        """Health: the listing, the budget, and each model's state (none is loaded for it)."""
        try:
            models = self.catalog.current().models
        except ModelUnavailable:
            models = {}
        cached = {entry.path: entry for entry in self.cache.entries()}
        described = []
        for name, listed in models.items():
            item: dict[str, Any] = {
                "name": name,
                "versions": list(listed.versions),
                "current": listed.current,
                "serves": listed.serves,
            }
            if listed.problem is not None:
                item["problem"] = listed.problem
            item["loaded_versions"] = [
                version
                for version, path in listed.versions.items()
                if path in cached and cached[path].source.version is not None
            ]
            entry = cached.get(listed.default or "")
            item.update(_state(entry))
            described.append(item)
        return {
            "repository": self.catalog.info(),
            **self.cache.info(),
            "models": described,
        }

    def _source(self, entry: Entry) -> ModelSource[LoadedModel]:
        """The model source of a new cache entry; its parser accounts the model's memory."""
        parse, cache = self._parse, self.cache
        held = weakref.ref(entry)  # no cycle entry -> source -> parser -> entry: once evicted,
        # an entry and its model go as soon as the last request using them is done

        def parse_within_budget(data: bytes, *, sha256: str | None = None) -> LoadedModel:
            owner = held()
            if owner is None:  # evicted while its check ran: parse without accounting
                return parse(data, sha256=sha256)
            previous = owner.size if owner.source.version is not None else 0
            cache.reserve(owner, model_memory(data))  # evicts others, or refuses it
            try:
                return parse(data, sha256=sha256)
            except BaseException:
                cache.restore(owner, previous)
                raise

        parse_within_budget.accepts_sha256 = True  # type: ignore[attr-defined]
        return ModelSource(
            self.store.loader(entry.path),
            parse=parse_within_budget,
            refresh_after=self.refresh_after,
            cache_dir=self.cache_dir,
            refresh_in_background=True,
            clock=self._clock,
        )

    def _listed(self, listing: Listing) -> None:
        """A new listing: models whose artifact is gone are dropped from memory."""
        paths: set[str] = set()
        for listed in listing.models.values():
            paths.update(listed.versions.values())
            if listed.unversioned is not None:
                paths.add(listed.unversioned)
        self.cache.keep_only(paths)


def _state(entry: Entry | None) -> dict[str, Any]:
    """The state of the model ``models/NAME`` serves: ``idle`` when it is not in memory."""
    if entry is None:
        return {"state": "idle"}
    info = entry.source.info()
    state: dict[str, Any] = {
        "state": "unusable" if entry.over_budget and info["version"] is None else info["state"],
        "version": info["version"],
        "memory": entry.size,
        "loaded_at": info["loaded_at"],
    }
    if info["last_error"]:
        state["last_error"] = info["last_error"]
    return state
