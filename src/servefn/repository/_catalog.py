"""The repository's listing, cached and refreshed at most every ``list_after`` seconds.

The first listing is made by the first caller while the others wait for it (one listing,
however many first requests). After that, a caller that finds the listing due starts one
background thread that lists again while every caller keeps the current listing, as
:class:`~servefn.loaders.ModelSource` does for a model. A failed listing keeps the last good
one and is retried with backoff; before any listing succeeded, :meth:`Catalog.current` raises
:class:`~servefn.errors.ModelUnavailable` with the retry time, without touching storage again
before then. Alias files are read again only when their marker (etag, size and mtime) changed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from servefn.errors import ModelUnavailable, ServefnError
from servefn.loaders.base import describe_error
from servefn.repository._layout import ALIAS_FILE, ALIAS_MAX_BYTES, ListedModel, build_listing
from servefn.repository._stores import RepositoryStore, StoredFile

__all__ = ["Catalog", "Listing", "RepositoryUnavailable"]

logger = logging.getLogger("servefn.repository")


class RepositoryUnavailable(ModelUnavailable):
    """No listing of the repository could be made yet; retry after ``retry_after`` seconds."""


@dataclass(frozen=True)
class Listing:
    """The models found by one listing, and when it was made (wall clock)."""

    models: Mapping[str, ListedModel]
    listed_at: float


class Catalog:
    """The cached listing of ``store``; ``on_change(listing)`` is called after each listing
    that differs from the one before."""

    def __init__(
        self,
        store: RepositoryStore,
        *,
        list_after: float = 60.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        on_change: Callable[[Listing], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if list_after < 0 or backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError(
                "need list_after >= 0 and 0 < backoff_initial <= backoff_max, got "
                f"{list_after=}, {backoff_initial=}, {backoff_max=}"
            )
        self.store = store
        self.list_after = float(list_after)
        self.backoff_initial, self.backoff_max = float(backoff_initial), float(backoff_max)
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._listing: Listing | None = None
        self._next = -math.inf
        self._failures = 0
        self._last_error: str | None = None
        self._aliases: dict[str, tuple[str, str | ServefnError]] = {}
        self._lister: threading.Thread | None = None
        self.listings = 0
        """Listings made (each one a storage round trip, plus alias reads when they changed)."""

    def current(self) -> Listing:
        """The listing; the first call lists, a due one starts a background listing."""
        listing = self._listing
        if listing is not None:
            if self._clock() >= self._next and self._lock.acquire(blocking=False):
                if self._clock() >= self._next:  # not listed meanwhile by another caller
                    self._start_listing()
                else:
                    self._lock.release()
            return listing
        with self._lock:
            if self._listing is None and self._clock() >= self._next:
                self._list()
            if self._listing is not None:
                return self._listing
            retry_after = max(0.0, self._next - self._clock())
        raise RepositoryUnavailable(
            f"repository {self.store.uri} could not be listed ({self._last_error}); "
            f"retrying in {retry_after:.0f}s",
            retry_after=retry_after,
        )

    def refresh(self) -> Listing | None:
        """List now (waiting for a listing under way); the listing, None if none succeeded."""
        with self._lock:
            self._list()
            return self._listing

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background listing under way, if any; False if it is still running."""
        lister = self._lister
        if lister is not None:
            lister.join(timeout)
            return not lister.is_alive()
        return True

    def info(self) -> dict[str, Any]:
        """State for health: when it was listed, what went wrong, when it lists again."""
        listing = self._listing
        listed_at = listing.listed_at if listing else None
        return {
            "uri": self.store.uri,
            "models": len(listing.models) if listing else None,
            "listed_at": _iso(listed_at),
            "last_error": self._last_error,
            "next_listing_in": (
                round(max(0.0, self._next - self._clock()), 3)
                if math.isfinite(self._next)
                else None
            ),
        }

    def _start_listing(self) -> None:
        """Start the due listing in a thread; the lock taken by the caller is released there."""
        try:
            thread = threading.Thread(
                target=self._list_then_release, name="servefn-repository-listing", daemon=True
            )
            self._lister = thread
            thread.start()
        except BaseException:
            self._lock.release()
            raise

    def _list_then_release(self) -> None:
        try:
            self._list()
        finally:
            self._lock.release()

    def _list(self) -> None:
        """One listing (lock held): swap it in, or keep the last one and back off."""
        started = time.perf_counter()
        self.listings += 1
        try:
            files = {f.path: f for f in self.store.list_files()}
            models, ignored = build_listing(files, lambda path: self._alias(files[path]))
        except Exception as exc:  # any store failure must leave the last good listing in place
            self._fail(exc)
            return
        self._aliases = {p: a for p, a in self._aliases.items() if p in files}
        for line in ignored[:20]:
            logger.debug("repository %s: ignored %s", self.store.uri, line)
        previous = self._listing
        self._listing = Listing(models, time.time())
        self._failures, self._last_error = 0, None
        self._next = self._clock() + self.list_after
        logger.info(
            "repository %s listed: %d models in %.3fs",
            self.store.uri,
            len(models),
            time.perf_counter() - started,
        )
        if self._on_change is not None and (previous is None or previous.models != models):
            self._on_change(self._listing)

    def _alias(self, file: StoredFile) -> str:
        """An alias file's text, read again only when its marker changed."""
        cached = self._aliases.get(file.path)
        if cached is None or cached[0] != file.marker:
            try:
                data = self.store.read_small(file, ALIAS_MAX_BYTES)
                value: str | ServefnError = data.decode("utf-8")
            except UnicodeDecodeError:
                value = ServefnError(f"{ALIAS_FILE} must be UTF-8 text")
            except ServefnError as exc:  # the store's LoaderError: this model has a problem
                value = exc
            cached = (file.marker, value)
            self._aliases[file.path] = cached
        if isinstance(cached[1], ServefnError):
            raise cached[1]
        return cached[1]

    def _fail(self, exc: Exception) -> None:
        error = str(exc) if isinstance(exc, ServefnError) else describe_error(exc)
        self._failures += 1
        self._last_error = error
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (self._failures - 1))
        if self._listing is not None:
            delay = max(delay, self.list_after)
        self._next = self._clock() + delay
        logger.warning(
            "repository %s could not be listed: %s; %s; next listing in %gs",
            self.store.uri,
            error,
            "keeping the last listing" if self._listing else "no models to serve yet",
            delay,
        )


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
