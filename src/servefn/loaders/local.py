"""Load a model artifact from the local file system."""

from __future__ import annotations

import hashlib
import os
import stat
from os import PathLike
from pathlib import Path

from servefn.errors import LoaderError
from servefn.loaders.base import Fetched, check_max_bytes, check_size, download_cap, read_capped

__all__ = ["LocalLoader"]

_FILE_SCHEME = "file://"


class LocalLoader:
    """Reads a model file; its etag comes from the file's inode, size and mtime.

    With ``hash=True`` the etag is the sha256 of the content instead, so a file rewritten with
    the same bytes (a ``touch``, a re-copy) does not count as a new model. The file is then read
    on a check only when its metadata changed.

    A file larger than ``max_bytes`` (default: the app setting ``SERVEFN_MAX_MODEL_BYTES``,
    else 512 MiB) is refused from its size on disk, before it is opened; one whose size the
    file system does not tell (a pipe, a device) is read to at most ``max_bytes + 1`` bytes.
    """

    def __init__(
        self, path: str | PathLike[str], *, hash: bool = False, max_bytes: int | None = None
    ) -> None:
        text = os.fspath(path)
        if text.startswith(_FILE_SCHEME):
            text = text[len(_FILE_SCHEME) :]
        self.path = Path(text).expanduser().absolute()
        self.hash = hash
        self.max_bytes = check_max_bytes(max_bytes)
        self.uri = str(self.path)
        self._hashed: tuple[tuple[int, int, int], str] | None = None

    def __repr__(self) -> str:
        return f"LocalLoader({self.uri!r}, hash={self.hash})"

    def fetch(self, etag: str | None = None) -> Fetched | None:
        """Return the file's bytes, or ``None`` when it is unchanged since ``etag``."""
        cap = download_cap(self.max_bytes)
        try:
            status = self.path.stat()
            stamp = _stamp(status)
            if etag is not None and etag == self._etag_without_reading(stamp):
                return None
            if stat.S_ISREG(status.st_mode):
                check_size(self.uri, status.st_size, cap)  # before opening the file
            with self.path.open("rb") as file:
                status = os.fstat(file.fileno())
                opened = _stamp(status)
                if stat.S_ISREG(status.st_mode):  # it may have been replaced since: again
                    check_size(self.uri, status.st_size, cap)
                    data = file.read(status.st_size + 1)  # one allocation; growth: changed
                    changed = _stamp(os.fstat(file.fileno())) != opened
                else:  # a pipe or a device: no size, and writing to it is what it does
                    data = read_capped(file.read, self.uri, cap)
                    changed = False
                if changed:
                    raise LoaderError(
                        f"model file {self.uri} changed while it was being read; "
                        "write it atomically (to a temporary name, then rename) — "
                        "the next check will read it again"
                    )
        except FileNotFoundError:
            raise LoaderError(
                f"model file not found: {self.uri}; save a model there (for example with "
                "servefn.save) or pass the path of an existing model.zip"
            ) from None
        except IsADirectoryError:
            raise LoaderError(f"{self.uri} is a directory; pass the path of a model file") from None
        except PermissionError:
            raise LoaderError(
                f"no permission to read model file {self.uri}; make it readable by this process"
            ) from None
        except OSError as exc:
            raise LoaderError(f"cannot read model file {self.uri}: {exc.strerror}") from None
        new_etag = self._etag_after_reading(opened, data)
        if new_etag == etag:
            return None
        return Fetched(data=data, etag=new_etag, uri=self.uri)

    def _etag_without_reading(self, stamp: tuple[int, int, int]) -> str | None:
        if not self.hash:
            return _stat_etag(stamp)
        hashed = self._hashed
        return hashed[1] if hashed is not None and hashed[0] == stamp else None

    def _etag_after_reading(self, stamp: tuple[int, int, int], data: bytes) -> str:
        if not self.hash:
            return _stat_etag(stamp)
        etag = "sha256:" + hashlib.sha256(data).hexdigest()
        self._hashed = (stamp, etag)
        return etag


def _stamp(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _stat_etag(stamp: tuple[int, int, int]) -> str:
    return "-".join(f"{part:x}" for part in stamp)
