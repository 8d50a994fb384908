"""Numeric payloads as ``.npz`` bytes: written plainly, read without pickle and with a size cap."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

import numpy as np

from servefn.errors import ArtifactError

__all__ = ["dump_arrays", "load_arrays"]


def dump_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise named arrays to ``.npz`` bytes (object arrays are refused: they need pickle)."""
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise ArtifactError(f"array {name!r} holds Python objects; store numbers or strings")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def load_arrays(
    data: bytes, *, max_bytes: int, source: str = "weights.npz"
) -> dict[str, np.ndarray]:
    """Read ``.npz`` bytes without pickle, refusing more than ``max_bytes`` unpacked."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > max_bytes:
            raise ArtifactError(
                f"{source} would unpack to {unpacked} bytes, over the {max_bytes}-byte limit"
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ArtifactError:
        raise
    except ValueError as exc:  # numpy refuses object arrays without allow_pickle
        raise ArtifactError(
            f"{source} needs pickle to load, which servefn refuses ({exc})"
        ) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"{source} is not a readable .npz file ({exc})") from exc
