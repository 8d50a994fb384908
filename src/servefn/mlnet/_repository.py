"""An ML.NET model.zip as a repository of named streams, read defensively.

ML.NET writes its member names with backslashes (``TransformerChain\\Transform_000\\Model.key``):
that is its format, not a traversal, so names are mapped to relative ``/`` paths, still refusing
absolute, drive-letter, ``..`` and empty parts. Members are held to servefn's own archive rules
(``check_zip_members``: no encryption, stored or deflated only, no zip bomb), their count and total
unpacked size are capped before anything is read, and each is read at most once, never beyond the
size its header declares.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from servefn.mlnet._binary import MlnetError
from servefn.predictors._npz import check_zip_members

__all__ = ["MAX_ENTRIES", "ROOT", "Repository", "is_mlnet_archive"]

MAX_ENTRIES = 1 << 14
"""Most members an ML.NET archive may hold (the fixtures hold 9 to 30)."""
MAX_STREAMS_OPENED = 1 << 14
"""Most streams one archive may make the reader open (a bound on the work it can ask for)."""
ROOT = "TransformerChain"
_SIGNATURE = b"ML\x00MODEL"
_MANIFEST = "servefn.json"


def _normalise(name: str) -> str | None:
    """ML.NET's ``a\\b\\c`` as ``a/b/c``; None when the name is absolute, a drive path, holds
    ``..``, an empty part or a control character."""
    path = name.replace("\\", "/")
    parts = path.split("/")
    if (
        not name
        or path.startswith("/")
        or ":" in path
        or any(p in ("", ".", "..") for p in parts)
        or not path.isprintable()
    ):
        return None
    return path


def is_mlnet_archive(data: bytes) -> bool:
    """True when ``data`` is a zip holding ML.NET's root ``TransformerChain\\Model.key`` whose
    header starts with ML.NET's model signature (or cannot be read, so that reading it names
    the damage), and no servefn manifest. Cheap: the central directory and 8 bytes."""
    if not data.startswith(b"PK"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if _MANIFEST in names:
                return False
            root = next((n for n in names if n.replace("\\", "/") == f"{ROOT}/Model.key"), None)
            if root is None:
                return False
            try:
                with archive.open(root) as fh:
                    head = fh.read(len(_SIGNATURE))
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, RuntimeError):
                return True  # an ML.NET archive, damaged: the reader says how
            except NotImplementedError:
                return True
            return head == _SIGNATURE or len(head) < len(_SIGNATURE)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, RuntimeError):
        return False


class Repository:
    """The members of an ML.NET archive by normalised path; :meth:`read` returns one's bytes."""

    def __init__(self, data: bytes, *, max_unpacked: int) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise MlnetError(f"ML.NET model: not a readable zip file ({exc})") from exc
        self._archive = archive
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise MlnetError(
                f"ML.NET model holds {len(infos)} members, over the cap of {MAX_ENTRIES}"
            )
        unpacked = sum(i.file_size for i in infos)
        if unpacked > max_unpacked:
            raise MlnetError(
                f"ML.NET model would unpack to {unpacked} bytes, over the limit of {max_unpacked}"
            )
        check_zip_members(infos, source="the ML.NET model")
        self._infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.is_dir():
                continue
            path = _normalise(info.filename)
            if path is None:
                raise MlnetError(
                    f"ML.NET model has an unsafe member name {info.filename[:80]!r} (absolute, "
                    "'..' or a drive); refusing to read it"
                )
            if path in self._infos:
                raise MlnetError(f"ML.NET model holds {path!r} twice; refusing to read it")
            self._infos[path] = info
        self._opened = 0

    def __contains__(self, path: str) -> bool:
        return path in self._infos

    @property
    def names(self) -> list[str]:
        return list(self._infos)

    def read(self, path: str) -> bytes | None:
        """The bytes of member ``path`` (``/``-separated), or None when there is none."""
        info = self._infos.get(path)
        if info is None:
            return None
        self._opened += 1
        if self._opened > MAX_STREAMS_OPENED:
            raise MlnetError(
                f"ML.NET model asks for over {MAX_STREAMS_OPENED} streams; refusing it"
            )
        try:
            with self._archive.open(info) as fh:
                content = fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
            raise MlnetError(f"ML.NET model: {path} is damaged ({exc})") from exc
        except (RuntimeError, NotImplementedError) as exc:
            raise MlnetError(f"ML.NET model: {path} cannot be read ({exc})") from exc
        if len(content) != info.file_size:
            raise MlnetError(f"ML.NET model: {path} does not hold the size its header declares")
        return content

    def close(self) -> None:
        self._archive.close()
