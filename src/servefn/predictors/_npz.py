"""Numeric payloads as ``.npz`` bytes: written plainly, read without pickle and within caps.

An ``.npz`` is a zip of ``.npy`` members, and each ``.npy`` header says how big its array is.
Neither is trusted: the zip members are checked by :func:`check_zip_members` (no encryption, a
known compression method, no inflating beyond :data:`MAX_INFLATE_RATIO`), and each header's
shape and dtype must account exactly for the bytes its member holds before the array is
allocated, so a 1 KB file cannot ask for terabytes.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from numpy.lib import format as npy

from servefn.errors import ArtifactError

__all__ = [
    "MAX_INFLATE_RATIO",
    "check_npy_members",
    "check_zip_members",
    "dump_arrays",
    "load_arrays",
]

MAX_INFLATE_RATIO = 100
"""A deflated zip member may unpack to at most this many times its compressed size (plus
:data:`_INFLATE_SLACK`). servefn stores its payloads uncompressed; real weights deflate less
than 10:1, while a zip bomb inflates about 1000:1."""
_INFLATE_SLACK = 64 << 10
_READABLE = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_DTYPE_KINDS = "biufcSU"  # numbers and strings: what dump_arrays writes
_CHUNK = 1 << 20


def dump_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise named arrays to ``.npz`` bytes (object arrays are refused: they need pickle)."""
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise ArtifactError(f"array {name!r} holds Python objects; store numbers or strings")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def check_zip_members(infos: Iterable[zipfile.ZipInfo], *, source: str) -> None:
    """Refuse encrypted members, compression methods other than stored and deflated, and
    members that would inflate beyond :data:`MAX_INFLATE_RATIO`, before any is read."""
    for info in infos:
        name = f"{info.filename!r} in {source}"
        if info.flag_bits & 0x1:
            raise ArtifactError(f"{name} is encrypted; servefn reads unencrypted archives only")
        if info.compress_type not in _READABLE:
            raise ArtifactError(
                f"{name} uses zip compression method {info.compress_type}; servefn reads stored "
                "or deflated members only"
            )
        limit = info.compress_size * MAX_INFLATE_RATIO + _INFLATE_SLACK
        if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > limit:
            raise ArtifactError(
                f"{name} would inflate {info.compress_size} bytes to {info.file_size}, over "
                f"{MAX_INFLATE_RATIO}:1; refusing it as a zip bomb"
            )


def load_arrays(
    data: bytes, *, max_bytes: int, source: str = "weights.npz"
) -> dict[str, np.ndarray]:
    """Read ``.npz`` bytes without pickle, refusing more than ``max_bytes`` unpacked and any
    ``.npy`` header whose shape and dtype do not match the bytes its member holds."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            unpacked = sum(info.file_size for info in infos)
            if unpacked > max_bytes:
                raise ArtifactError(
                    f"{source} would unpack to {unpacked} bytes, over the {max_bytes}-byte limit"
                )
            check_zip_members(infos, source=source)
            names = [_array_name(info.filename, source) for info in infos]
            if len(set(names)) != len(names):
                raise ArtifactError(f"{source} holds two arrays with the same name")
            return {
                name: _read_array(archive, info, name, source)
                for name, info in zip(names, infos, strict=True)
            }
    except ArtifactError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{source} is not a readable .npz file ({exc})") from exc


def check_npy_members(data: bytes, *, source: str) -> None:
    """Check a zip that holds ``.npy`` members among others (a skops file) before a library
    reads it: its members as :func:`check_zip_members` does, each ``.npy`` header against its
    member's size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            check_zip_members(infos, source=source)
            for info in infos:
                if info.filename.endswith(".npy"):
                    with archive.open(info) as fp:
                        _checked_header(fp, info, info.filename, source, plain=False)
    except ArtifactError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{source} is not a readable archive ({exc})") from exc


def _array_name(member: str, source: str) -> str:
    if not member.endswith(".npy") or len(member) == len(".npy"):
        raise ArtifactError(f"{source} holds {member!r}, which is not an .npy array")
    return member[: -len(".npy")]


def _read_array(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, source: str
) -> np.ndarray:
    """One member: its header checked against the member's size, then the array read."""
    with archive.open(info) as fp:
        shape, fortran, dtype = _checked_header(fp, info, name, source, plain=True)
        array = np.empty(math.prod(shape), dtype)
        view, filled = array.data.cast("B"), 0
        while filled < len(view):  # in chunks, straight into the array: never two copies
            chunk = fp.read(min(len(view) - filled, _CHUNK))
            if not chunk:
                raise ArtifactError(f"{source}: array {name!r} ends early")
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    return array.reshape(shape, order="F" if fortran else "C")


def _checked_header(
    fp: Any, info: zipfile.ZipInfo, name: str, source: str, *, plain: bool
) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The header's shape, order and dtype, refused unless they account exactly for the
    member's bytes; ``plain`` also refuses any dtype but numbers and strings (a skops file
    holds records)."""
    shape, fortran, dtype = _header(fp, name, source, plain=plain)
    nbytes = math.prod(shape) * dtype.itemsize
    held = info.file_size - fp.tell()
    if nbytes != held:
        raise ArtifactError(
            f"{source}: array {name!r} declares shape {shape} of {dtype} ({nbytes} bytes) "
            f"but holds {held} bytes"
        )
    return shape, fortran, dtype


def _header(
    fp: Any, name: str, source: str, *, plain: bool
) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The shape, order and dtype an ``.npy`` header declares, refused unless plain and
    plausible."""
    version = npy.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(fp)
    else:
        raise ArtifactError(f"{source}: array {name!r} has .npy version {version}")
    if dtype.hasobject:
        raise ArtifactError(
            f"{source}: array {name!r} holds Python objects and needs pickle to load, which "
            "servefn refuses"
        )
    if (plain and dtype.kind not in _DTYPE_KINDS) or dtype.itemsize == 0:
        raise ArtifactError(f"{source}: array {name!r} has dtype {dtype}; store numbers or text")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise ArtifactError(f"{source}: array {name!r} has shape {shape}")
    return shape, bool(fortran), dtype
