"""The models in memory: one :class:`~servefn.loaders.ModelSource` per artifact, in an LRU
bounded by a memory budget and a count.

A model's memory is estimated before it is parsed, from its archive: the unpacked size of
every member (the arrays a predictor holds are its payloads, read without copies beyond them)
plus :data:`MODEL_OVERHEAD` for what any model costs besides (its schema classes, validators
and endpoint: about 25 KB measured for an iris model). :meth:`ModelCache.reserve` accounts that
much and evicts the least recently used models until the loaded ones fit the budget and the
count, *before* the new one is parsed, so the accounted total never passes the budget; a model
that alone is over the budget is refused (:class:`ModelOverBudget`). An evicted model is
dropped from the cache (a request still answering with it keeps it until it is done) and
loaded again on its next request. Its arrays go at once (nothing holds them in a cycle), but
the schema classes rebuilt from its manifest are reference cycles by nature, freed only by the
cyclic collector; so once evicted models add up to a quarter of the budget, the load that
evicts runs one full collection (about 20 ms in a worker with 200 models' worth of objects)
before it parses, and memory stays within the budget however long models keep cycling.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import re
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from servefn.errors import ArtifactError, UsageError

if TYPE_CHECKING:
    from servefn.loaders import ModelSource
    from servefn.model._archive import LoadedModel

__all__ = [
    "DEFAULT_MAX_MODELS",
    "DEFAULT_MEMORY_BUDGET",
    "MEMORY_BUDGET_SETTING",
    "MODEL_OVERHEAD",
    "Entry",
    "ModelCache",
    "ModelOverBudget",
    "memory_budget",
    "model_memory",
]

DEFAULT_MEMORY_BUDGET = 512 * 1024**2
"""512 MiB of models per worker process, by default.

A Linux Consumption plan instance has 1.5 GB of memory for everything on it: the Functions host
(.NET, about 150 MB), the Python worker with numpy, pydantic and azure.functions imported (about
150 MB), requests in flight (bodies up to 100 MB, their feature matrices and answers), and,
during a refresh, a model's old and new versions side by side. 512 MiB of models leaves room
for all of that; raise it on Premium or Dedicated plans (``memory_budget=``, ``servefn serve
--memory-budget`` or the app setting ``SERVEFN_MEMORY_BUDGET``), lower it with several worker
processes (``FUNCTIONS_WORKER_PROCESS_COUNT``), each of which holds its own models."""
DEFAULT_MAX_MODELS = 100
"""Models loaded at once, at most, by default: small models cost more than their estimate."""
MODEL_OVERHEAD = 64 * 1024
"""Bytes added to each model's unpacked size: schema classes, validators and endpoint."""
MEMORY_BUDGET_SETTING = "SERVEFN_MEMORY_BUDGET"
"""The app setting that sets the budget when ``memory_budget=`` is not given."""

logger = logging.getLogger("servefn.repository")

_SIZE = re.compile(r"(?i)\s*([0-9][0-9_]*)\s*([kmg]?)(i?)b?\s*")


class ModelOverBudget(ArtifactError):
    """A model that alone needs more memory than the repository's whole budget."""


def memory_budget(value: int | str | None = None) -> int:
    """The budget in bytes: ``value`` (bytes, or text such as ``"512MiB"``, ``"2GB"``), else
    the app setting ``SERVEFN_MEMORY_BUDGET``, else :data:`DEFAULT_MEMORY_BUDGET`."""
    where = "memory_budget"
    if value is None:
        value, where = os.environ.get(MEMORY_BUDGET_SETTING, "").strip(), MEMORY_BUDGET_SETTING
        if not value:
            return DEFAULT_MEMORY_BUDGET
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        number, unit, binary = match.groups()
        size: int = int(number.replace("_", "")) * (1024 if binary else 1000) ** " kmg".index(
            unit.lower() or " "
        )
        if size > 0:
            return size
    raise UsageError(
        f"{where}={str(value)[:40]!r} is not a size; give a positive number of bytes, such as "
        "536870912, 512MiB or 2GB"
    )


def model_memory(data: bytes) -> int:
    """The memory a model archive is expected to take once loaded: the unpacked size of its
    members plus :data:`MODEL_OVERHEAD`. An unreadable archive counts its own size (the parse
    that follows refuses it)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(max(0, info.file_size) for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        unpacked = len(data)
    return unpacked + MODEL_OVERHEAD


@dataclass(eq=False)
class Entry:
    """One artifact of the repository in the cache, with its model source."""

    path: str
    source: ModelSource[LoadedModel] = field(init=False, repr=False)
    size: int = 0
    """Bytes accounted for its model (0: none loaded or being loaded)."""
    over_budget: bool = False
    """Its last artifact was refused for being over the whole budget."""
    endpoint: Any = field(default=None, repr=False)
    """What the HTTP routes built for the model it serves: ``(model, endpoint)``."""


class ModelCache:
    """Entries by artifact path, least recently used first.

    ``make_source(entry)`` builds an entry's model source (whose parser calls
    :meth:`reserve`); ``budget`` bounds the accounted bytes, ``max_models`` the loaded entries.
    """

    def __init__(
        self,
        make_source: Callable[[Entry], ModelSource[LoadedModel]],
        *,
        budget: int,
        max_models: int,
    ) -> None:
        if budget < 1 or max_models < 1:
            raise ValueError(f"need budget >= 1 and max_models >= 1, got {budget=}, {max_models=}")
        self.budget = budget
        self.max_models = max_models
        self.evictions = 0
        """Models dropped to make room for others."""
        self.collections = 0
        """Full garbage collections run after evictions (see the module)."""
        self._make_source = make_source
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._used = 0
        self._loaded = 0
        self._evicted = 0  # bytes evicted since the last collection

    def entry(self, path: str) -> Entry:
        """The entry for ``path``, created (with its source, nothing loaded) on first use, and
        marked as the most recently used."""
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                entry = Entry(path)
                entry.source = self._make_source(entry)
                self._entries[path] = entry
            else:
                self._entries.move_to_end(path)
            return entry

    def find(self, path: str) -> Entry | None:
        """The entry for ``path`` if it is cached, without marking it used."""
        return self._entries.get(path)

    def entries(self) -> list[Entry]:
        """Every cached entry, least recently used first."""
        with self._lock:
            return list(self._entries.values())

    def reserve(self, entry: Entry, size: int) -> None:
        """Account ``size`` bytes for ``entry``'s next model, evicting others to make room.

        Raises :class:`ModelOverBudget` when ``size`` alone is over the budget. An entry
        evicted meanwhile (its load finishing for the last request that wanted it) is not
        accounted again.
        """
        if size > self.budget:
            entry.over_budget = True
            raise ModelOverBudget(
                f"model {entry.path} needs about {_mib(size)} in memory (unpacked), over the "
                f"repository's whole memory budget of {_mib(self.budget)}; raise the budget "
                f"(memory_budget=, --memory-budget or the app setting {MEMORY_BUDGET_SETTING}) "
                "or serve a smaller model"
            )
        entry.over_budget = False
        with self._lock:
            if self._entries.get(entry.path) is not entry:
                return
            self._account(entry, size)
            self._entries.move_to_end(entry.path)
            self._evict(keep=entry)
            collect = self._evicted >= self.budget // 4
            if collect:
                self._evicted = 0
                self.collections += 1
        if collect:  # outside the lock: other requests go on meanwhile
            gc.collect()

    def restore(self, entry: Entry, size: int) -> None:
        """Account ``size`` for ``entry`` again (its new model was refused: 0, or the size of
        the one it still serves)."""
        with self._lock:
            if self._entries.get(entry.path) is entry:
                self._account(entry, size)

    def keep_only(self, paths: Iterable[str]) -> list[str]:
        """Drop the entries whose artifact is not in ``paths`` (deleted from the repository);
        returns the paths dropped."""
        kept = set(paths)
        with self._lock:
            gone = [path for path in self._entries if path not in kept]
            for path in gone:
                self._drop(path)
        return gone

    def info(self) -> dict[str, Any]:
        """The budget and what is loaded, for health."""
        return {
            "memory_budget": self.budget,
            "memory_used": self._used,
            "max_models": self.max_models,
            "loaded": self._loaded,
            "evictions": self.evictions,
            "collections": self.collections,
        }

    def _account(self, entry: Entry, size: int) -> None:
        self._used += size - entry.size
        self._loaded += (size > 0) - (entry.size > 0)
        entry.size = size

    def _drop(self, path: str) -> Entry:
        entry = self._entries.pop(path)
        self._account(entry, 0)
        return entry

    def _evict(self, keep: Entry) -> None:
        """Drop least recently used loaded entries until the budget and count are kept."""
        for path in list(self._entries):
            if self._used <= self.budget and self._loaded <= self.max_models:
                return
            entry = self._entries[path]
            if entry is keep or entry.size == 0:
                continue
            size = entry.size
            self._drop(path)
            self.evictions += 1
            self._evicted += size
            logger.info(
                "model %s evicted (%s) to make room for %s; %s of %s in use, %d models",
                path,
                _mib(size),
                keep.path,
                _mib(self._used),
                _mib(self.budget),
                self._loaded,
            )


def _mib(size: int) -> str:
    return f"{size / 1024**2:.1f} MiB"
