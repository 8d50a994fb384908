"""``ModelSource``: the in-memory model every request uses, loaded once and refreshed cheaply.

Hot path: ``get()`` reads the current model and compares the monotonic clock with the time of
the next check; no lock, no I/O. When a check is due, the one caller that takes the lock asks
the loader whether the artifact changed (a conditional request) while every other caller keeps
getting the current model; with ``refresh_in_background=True`` (what ``serve_http`` uses) that
caller only starts a thread that does it, so no request ever waits for storage once a model is
loaded. What a check does (the conditional request, the disk cache, the sha256 pin, the parse)
is :mod:`servefn.loaders.check`; a changed artifact is verified, parsed and (a servefn model)
checked end to end before it replaces the current one in a single assignment, and a failed check
or a refused artifact keeps the last good model. Before the first model, callers wait for one
shared load. A transient failure (storage) is retried with backoff and, before the first model,
raises :class:`ModelUnavailable` until its retry time without touching storage again. A permanent
one (the artifact was refused) is checked again only every ``refresh_after`` seconds, one
conditional request that downloads nothing until a new version appears, and before the first
model raises :class:`ModelUnusable`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from os import PathLike
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from servefn.errors import ModelUnavailable, ModelUnusable
from servefn.loaders.base import ModelLoader, redact
from servefn.loaders.check import ArtifactCheck, CurrentModel, Failure, SourceStats
from servefn.loaders.schemes import loader_for
from servefn.telemetry._hub import model_checked

if TYPE_CHECKING:
    from servefn.model._archive import LoadedModel

__all__ = ["ModelSource", "SourceStats"]

logger = logging.getLogger("servefn.loaders")

T = TypeVar("T")

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelSource(Generic[T]):
    """The current model from ``loader``, parsed by ``parse`` and kept fresh.

    Parameters
    ----------
    loader:
        A :class:`ModelLoader`, or a path or URL for :func:`~servefn.loaders.loader_for`.
    parse:
        Turns artifact bytes into a model, raising on a bad artifact. Default:
        :func:`servefn.load_model`. A parser with a true ``accepts_sha256`` attribute
        is also given ``sha256=`` (the digest computed here), so it need not hash again.
    refresh_after:
        Seconds between conditional checks for a new artifact (0: check on every call).
    sha256:
        Pin: only an artifact with this sha256 is accepted, and once it is loaded storage is
        not checked again.
    cache_dir:
        Keep a verified copy of the artifact here, so a new process on the same instance only
        asks storage whether it is still current; while storage is unreachable at start-up,
        the copy is served (state ``"stale"``). Entries are keyed by the loader's
        ``cache_key`` when it has one (the Azure loaders: account URL and path), else its URI.
    backoff_initial, backoff_max:
        Retry delays after consecutive transient failures (storage): ``backoff_initial``
        doubling up to ``backoff_max`` seconds; with a model loaded, never sooner than
        ``refresh_after``. After an artifact is refused (a permanent failure), the next check
        comes after ``refresh_after`` seconds (at least ``backoff_initial``).
    refresh_in_background:
        Run due checks (and the download and parse of a new artifact) in a background thread
        while ``get()`` keeps returning the current model, instead of in the ``get()`` call
        that finds the check due. The first load is always waited for.
    clock:
        Monotonic clock in seconds (injectable for tests).
    """

    @overload
    def __init__(
        self: ModelSource[LoadedModel],
        loader: ModelLoader | str | PathLike[str],
        *,
        parse: None = None,
        refresh_after: float = 300.0,
        sha256: str | None = None,
        cache_dir: str | PathLike[str] | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        refresh_in_background: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None: ...

    @overload
    def __init__(
        self,
        loader: ModelLoader | str | PathLike[str],
        *,
        parse: Callable[[bytes], T],
        refresh_after: float = 300.0,
        sha256: str | None = None,
        cache_dir: str | PathLike[str] | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        refresh_in_background: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None: ...

    def __init__(
        self,
        loader: ModelLoader | str | PathLike[str],
        *,
        parse: Callable[[bytes], Any] | None = None,
        refresh_after: float = 300.0,
        sha256: str | None = None,
        cache_dir: str | PathLike[str] | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        refresh_in_background: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_after < 0 or backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError(
                "need refresh_after >= 0 and 0 < backoff_initial <= backoff_max, got "
                f"{refresh_after=}, {backoff_initial=}, {backoff_max=}"
            )
        if sha256 is not None and not _SHA256.fullmatch(sha256.lower()):
            raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
        if isinstance(loader, (str, PathLike)):
            loader = loader_for(loader)
        self.loader = loader
        self.uri = redact(loader.uri)
        self.refresh_after = float(refresh_after)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self._pin = sha256.lower() if sha256 is not None else None
        self._stats = SourceStats()
        self._artifacts: ArtifactCheck[T] = ArtifactCheck(
            loader,
            self.uri,
            parse or _read_model,
            sha256=self._pin,
            cache_dir=cache_dir,
            stats=self._stats,
        )
        self._clock = clock
        self._background = refresh_in_background
        self._refresher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._current: CurrentModel[T] | None = None
        self._next_check = -math.inf
        self._loading = False
        self._failures = 0
        self._last_error: str | None = None
        self._failure: Failure | None = None
        self._last_checked: float | None = None

    def __repr__(self) -> str:
        return f"ModelSource({self.uri!r}, version={self.version!r})"

    def get(self) -> T:
        """The current model; loads it on first use. Raises :class:`ModelUnavailable`."""
        current = self._current
        if current is not None and self._clock() < self._next_check:
            return current.model
        if current is not None:
            if self._background:
                self._start_refresh()
                return current.model
            return self._refresh(current)
        return self._load()

    def in_memory(self) -> bool:
        """True when :meth:`get` would answer from memory: a model is loaded, and no check is
        due or checks run in the background."""
        if self._current is None:
            return False
        return self._background or self._clock() < self._next_check

    def wait_for_refresh(self, timeout: float | None = None) -> bool:
        """Wait for a background check under way, if any; False if it is still running."""
        refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout)
            return not refresher.is_alive()
        return True

    def warm(self) -> T:
        """Load now (at start-up) rather than on the first request; same result as :meth:`get`."""
        return self.get()

    @property
    def version(self) -> str | None:
        """A short stable id of the current artifact (12 hex digits of its sha256)."""
        current = self._current
        return current.sha256[:12] if current is not None else None

    @property
    def stats(self) -> SourceStats:
        """A snapshot of the counters."""
        return replace(self._stats)

    def info(self) -> dict[str, Any]:
        """State for health checks and logs; contains no credentials."""
        current = self._current
        next_check = self._next_check
        return {
            "state": self._state(current),
            "uri": self.uri,
            "version": current.sha256[:12] if current else None,
            "etag": current.etag if current else None,
            "sha256": current.sha256 if current else None,
            "size": current.size if current else None,
            "origin": current.origin if current else None,
            "loaded_at": _iso(current.loaded_at) if current else None,
            "last_checked": _iso(self._last_checked),
            "last_error": self._last_error,
            "failure": _kind(self._failure),
            "cause": self._failure.cause if self._failure else None,
            "next_check_in": (
                round(max(0.0, next_check - self._clock()), 3)
                if math.isfinite(next_check)
                else None
            ),
        }

    def _state(self, current: CurrentModel[T] | None) -> str:
        if current is not None:
            return "stale" if self._last_error else "ready"
        if self._loading:
            return "loading"
        if self._failure is not None and self._failure.permanent:
            return "unusable"
        return "unavailable" if self._last_error else "idle"

    def _refresh(self, current: CurrentModel[T]) -> T:
        """Check for a new artifact unless another caller is already doing so."""
        if not self._lock.acquire(blocking=False):
            return current.model
        try:
            if self._clock() >= self._next_check:
                self._check(current)
            return (self._current or current).model
        finally:
            self._lock.release()

    def _start_refresh(self) -> None:
        """Start the due check in a thread unless one (or the first load) is under way."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            current = self._current
            if current is None or self._clock() < self._next_check:
                self._lock.release()
                return
            thread = threading.Thread(
                target=self._refresh_then_release,
                args=(current,),
                name="servefn-model-refresh",
                daemon=True,
            )
            self._refresher = thread
            thread.start()
        except BaseException:
            self._lock.release()
            raise

    def _refresh_then_release(self, current: CurrentModel[T]) -> None:
        """The background check; the lock taken by :meth:`_start_refresh` is released here."""
        try:
            self._check(current)
        finally:
            self._lock.release()

    def _load(self) -> T:
        """First load: one caller loads, the others wait for its result."""
        with self._lock:
            if self._current is None and self._clock() >= self._next_check:
                self._loading = True
                try:
                    self._check(None)
                finally:
                    self._loading = False
            current = self._current
            if current is not None:
                return current.model
            retry_after = max(0.0, self._next_check - self._clock())
            failure = self._failure
            if failure is not None and failure.permanent:
                raise ModelUnusable(
                    f"the model at {self.uri} cannot be used: {failure.reason}",
                    retry_after=retry_after,
                    uri=self.uri,
                    reason=failure.reason,
                    cause=failure.cause,
                )
            raise ModelUnavailable(
                f"model {self.uri} is not available ({self._last_error}); "
                f"retrying in {retry_after:.0f}s",
                retry_after=retry_after,
            )

    def _check(self, current: CurrentModel[T] | None) -> None:
        """One check (lock held): swap in the model it returns, then schedule the next."""
        started = time.perf_counter()
        self._last_checked = time.time()
        self._current, failure = self._artifacts.run(current)
        if failure is None:
            self._succeed()
        else:
            self._fail(failure, started)
        outcome = "failed" if failure else "unchanged" if self._current is current else "loaded"
        model_checked("load" if current is None else "refresh", outcome, started, self.version)

    def _succeed(self) -> None:
        self._failures = 0
        self._last_error = None
        self._failure = None
        pinned_and_loaded = self._pin is not None and self._current is not None
        self._next_check = math.inf if pinned_and_loaded else self._clock() + self.refresh_after

    def _fail(self, failure: Failure, started: float) -> None:
        self._stats.failures += 1
        error = failure.message
        current = self._current
        if current is not None and self._pin is not None:
            logger.warning("model %s: pinned version loaded; storage said: %s", self.uri, error)
            self._succeed()
            return
        self._last_error = error
        self._failure = failure
        if failure.permanent:  # storage answered: the artifact is refused, not the connection
            self._failures = 0
            delay = max(self.refresh_after, self.backoff_initial)
            self._next_check = self._clock() + delay
            logger.warning(
                "model %s: %s (%.3fs); %s; next check in %gs, a new version is tried then",
                self.uri,
                error,
                _since(started),
                f"keeping version {current.sha256[:12]}" if current else "no model to serve",
                delay,
            )
            return
        self._failures += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (self._failures - 1))
        if current is None:
            self._next_check = self._clock() + delay
            logger.warning(
                "model %s could not be loaded (%.3fs): %s; retry in %gs",
                self.uri,
                _since(started),
                error,
                delay,
            )
            return
        delay = max(delay, self.refresh_after)
        self._next_check = self._clock() + delay
        logger.warning(
            "model %s: keeping version %s after a failed check (%.3fs): %s; next check in %gs",
            self.uri,
            current.sha256[:12],
            _since(started),
            error,
            delay,
        )


def _read_model(data: bytes, *, sha256: str | None = None) -> LoadedModel:
    from servefn.model._archive import load_model

    return load_model(data, sha256=sha256)


_read_model.accepts_sha256 = True  # type: ignore[attr-defined]


def _kind(failure: Failure | None) -> str | None:
    if failure is None:
        return None
    return "permanent" if failure.permanent else "transient"


def _since(started: float) -> float:
    return time.perf_counter() - started


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
