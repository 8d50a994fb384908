"""An in-process loader for tests: set the artifact, count fetches, inject failures.

Like httpx's ``MockTransport``, it lets code that takes a :class:`ModelLoader` be tested without
storage::

    loader = MemoryLoader(model_bytes)
    source = ModelSource(loader, refresh_after=0)
    loader.set(new_bytes)          # next check sees a new etag
    loader.fail(LoaderError("storage down"))
"""

from __future__ import annotations

import threading

from servefn.errors import LoaderError
from servefn.loaders.base import Fetched, check_max_bytes, check_size, download_cap, redact

__all__ = ["MemoryLoader"]


class MemoryLoader:
    """Serves bytes held in memory; every :meth:`set` is a new version with a new etag.

    Like every loader, it refuses an artifact over ``max_bytes`` (default: the app setting
    ``SERVEFN_MAX_MODEL_BYTES``, else 512 MiB).
    """

    def __init__(
        self,
        data: bytes | None = None,
        *,
        uri: str = "memory-loader://model.zip",
        max_bytes: int | None = None,
    ) -> None:
        self.uri = redact(uri)
        self.max_bytes = check_max_bytes(max_bytes)
        self.fetches = 0
        """Calls to :meth:`fetch` (each one a storage round trip for a real loader)."""
        self.downloads = 0
        """Calls that returned the artifact rather than ``None`` or an error."""
        self._lock = threading.Lock()
        self._data: bytes | None = None
        self._version = 0
        self._failure: Exception | None = None
        if data is not None:
            self.set(data)

    def __repr__(self) -> str:
        return f"MemoryLoader(uri={self.uri!r}, etag={self.etag!r})"

    @property
    def etag(self) -> str | None:
        """The current version's etag, or ``None`` when there is no artifact."""
        return f'"v{self._version}"' if self._data is not None else None

    def set(self, data: bytes) -> None:
        """Replace the artifact (a new version, even when the bytes are equal)."""
        with self._lock:
            self._data = bytes(data)
            self._version += 1

    def delete(self) -> None:
        """Remove the artifact: fetches raise :class:`LoaderError` until the next :meth:`set`."""
        with self._lock:
            self._data = None

    def fail(self, error: Exception | None) -> None:
        """Make every fetch raise ``error`` (``None`` restores normal service)."""
        with self._lock:
            self._failure = error

    def fetch(self, etag: str | None = None) -> Fetched | None:
        """Return the artifact, ``None`` when it still has ``etag``, or raise the set failure."""
        with self._lock:
            self.fetches += 1
            if self._failure is not None:
                raise self._failure
            current, data = self.etag, self._data
            if current is None or data is None:
                raise LoaderError(f"{self.uri} does not exist")
            if current == etag:
                return None
            check_size(self.uri, len(data), download_cap(self.max_bytes))
            self.downloads += 1
        return Fetched(data=data, etag=current, uri=self.uri)
