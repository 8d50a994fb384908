"""A local copy of the last artifact loaded from a URI, so a new process can skip the download.

One file per URI holds a JSON header line (URI, etag, sha256, size) and the artifact bytes.
It is written to a temporary name and renamed, so readers (other worker processes on the same
instance) never see a partial file, and it is verified on every read; an entry over the
download cap (:func:`~servefn.loaders.base.download_cap`) is discarded unread. The cache only
saves a download: storage still confirms the etag, and any problem here is logged, never raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from servefn.errors import LoaderError
from servefn.loaders.base import DEFAULT_MAX_BYTES, download_cap

__all__ = ["CachedArtifact", "DiskCache"]

logger = logging.getLogger("servefn.loaders")

_FORMAT = "servefn.cache/1"
_HEADER_ROOM = 64 * 1024  # the JSON header line, besides the artifact


@dataclass(frozen=True)
class CachedArtifact:
    """Verified artifact bytes with the etag they had in storage."""

    etag: str
    data: bytes
    sha256: str


class DiskCache:
    """The cache entry of one artifact URI inside ``directory``."""

    def __init__(
        self, directory: str | PathLike[str], uri: str, *, max_bytes: int | None = None
    ) -> None:
        self.directory = Path(directory)
        self.uri = uri
        self.max_bytes = max_bytes
        self.path = self.directory / (hashlib.sha256(uri.encode()).hexdigest()[:32] + ".model")

    def read(self) -> CachedArtifact | None:
        """The cached artifact, or ``None`` when there is none or it fails verification."""
        try:
            with self.path.open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size > self._cap() + _HEADER_ROOM:
                    logger.warning(
                        "discarding model cache entry %s: over the download cap", self.path
                    )
                    self.discard()
                    return None
                raw = file.read(size + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read model cache %s: %s", self.path, exc.strerror)
            return None
        header, _, data = raw.partition(b"\n")
        try:
            meta = json.loads(header)
            etag, digest, size = str(meta["etag"]), str(meta["sha256"]), int(meta["size"])
            valid = meta["format"] == _FORMAT and meta["uri"] == self.uri
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid or len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            logger.warning("discarding corrupt model cache entry %s", self.path)
            self.discard()
            return None
        return CachedArtifact(etag=etag, data=data, sha256=digest)

    def write(self, etag: str, data: bytes, sha256: str) -> None:
        """Store ``data`` as the artifact with ``etag``, atomically replacing any older entry."""
        header = {
            "format": _FORMAT,
            "uri": self.uri,
            "etag": etag,
            "sha256": sha256,
            "size": len(data),
        }
        temporary: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            with os.fdopen(handle, "wb") as file:
                file.write(json.dumps(header).encode() + b"\n")
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            Path(temporary).replace(self.path)
        except OSError as exc:
            logger.warning("cannot write model cache %s: %s", self.path, exc.strerror)
            if temporary is not None:
                with contextlib.suppress(OSError):
                    Path(temporary).unlink()

    def _cap(self) -> int:
        try:
            return download_cap(self.max_bytes)
        except LoaderError:  # a malformed setting: the fetch reports it
            return DEFAULT_MAX_BYTES

    def discard(self) -> None:
        """Remove the entry (a no-op when there is none)."""
        with contextlib.suppress(OSError):
            self.path.unlink()
