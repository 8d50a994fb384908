"""Where a batch reads and writes: input partitions and output targets on any fsspec URL.

An input is a file, a glob (``data/part-*.csv``) or a folder (its files, sorted, except names
starting with ``.`` or ``_``); each file is one partition. The output is standard output, one
file, or a folder (a URL ending in ``/``, or an existing folder) that receives one
``part-NNNNN.<format>`` per partition. ``az://``/``abfs://`` URLs reach storage the way
servefn's loaders do (``connection=``, else ``AzureWebJobsStorage``); compression
(``.gz``/``.bz2``/``.xz``) follows the file name.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fsspec.compression import compr
from fsspec.utils import infer_compression

from servefn.batch.errors import BatchError, BatchUsageError
from servefn.batch.options import BatchOptions
from servefn.loaders.base import describe_error, redact
from servefn.loaders.remote import FsspecLoader
from servefn.loaders.schemes import takes_connection

__all__ = [
    "STDOUT",
    "Location",
    "is_folder",
    "list_partitions",
    "open_text",
    "part_name",
    "prepare_folder",
    "remove",
    "target_exists",
]

STDOUT = "-"
_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class Location:
    """A file to read or write: a URL any process can open, and the name shown to the user."""

    url: str
    display: str


def _filesystem(url: str, options: BatchOptions) -> tuple[Any, str, str]:
    """``(file system, path, display)`` for ``url``, connected like servefn's loaders."""
    connection = options.connection if takes_connection(url) else None  # the run's, if Azure
    try:
        loader = FsspecLoader(url, connection=connection, timeout=None, **options.storage_options)
        return loader.fs, loader.path, loader.uri
    except (ValueError, ImportError) as exc:
        raise BatchUsageError(f"cannot use {url!r}: {exc}") from None


def _location(fs: Any, path: str, given: str) -> Location:
    url = fs.unstrip_protocol(path)
    if "://" not in given:  # a local path: relative when the user gave a relative one
        return Location(url, path if Path(given).is_absolute() else os.path.relpath(path))
    return Location(url, redact(given.split("://", 1)[0] + "://" + path.split("://", 1)[-1]))


def list_partitions(url: str, options: BatchOptions) -> list[Location]:
    """The input files ``url`` names, sorted; raises when there are none."""
    fs, path, shown = _filesystem(url, options)
    try:
        if _MAGIC & set(path):
            paths = sorted(fs.glob(path))
            if not paths:
                raise BatchUsageError(f"no input file matches {shown}")
        elif fs.isdir(path):
            paths = sorted(
                p for p in fs.find(path) if not p.rsplit("/", 1)[-1].startswith((".", "_"))
            )
            if not paths:
                raise BatchUsageError(f"the input folder {shown} has no files")
        elif fs.exists(path):
            paths = [path]
        else:
            raise BatchUsageError(f"the input {shown} does not exist")
    except BatchError:
        raise
    except Exception as exc:  # each file system fails its own way: translate them all here
        raise BatchError(f"cannot list {shown}: {describe_error(exc)}") from None
    return [_location(fs, p, url) for p in paths]


def is_folder(url: str, options: BatchOptions) -> bool:
    """Whether output ``url`` names a folder: it ends with ``/`` or is an existing folder."""
    if url.endswith("/"):
        return True
    fs, path, _ = _filesystem(url, options)
    try:
        return bool(fs.isdir(path))
    except FileNotFoundError:
        return False


def part_name(folder: str, index: int, output_format: str) -> Location:
    """The output file of partition ``index`` inside ``folder``."""
    url = folder.rstrip("/") + f"/part-{index:05d}.{output_format}"
    return Location(url, redact(url))


def target_exists(url: str, options: BatchOptions) -> bool:
    fs, path, _ = _filesystem(url, options)
    return bool(fs.exists(path))


def prepare_folder(url: str, options: BatchOptions) -> None:
    """Create output folder ``url``; its ``part-*`` files from an earlier run are refused, or
    removed when ``options.overwrite``."""
    fs, path, shown = _filesystem(url, options)
    path = path.rstrip("/")
    try:
        fs.makedirs(path, exist_ok=True)
        old = sorted(fs.glob(path + "/part-*"))
        if old and not options.overwrite:
            raise BatchUsageError(
                f"the output folder {shown} already has {len(old)} part files; remove them or "
                "pass --overwrite"
            )
        if old:
            fs.rm(old)
    except BatchError:
        raise
    except Exception as exc:
        raise BatchError(
            f"cannot prepare the output folder {shown}: {describe_error(exc)}"
        ) from None


@contextmanager
def open_text(location: Location, mode: str, options: BatchOptions) -> Iterator[TextIO]:
    """``location`` as a text stream (``"r"`` or ``"w"``), decompressed or compressed by name.

    Errors opening it become :class:`BatchError`; the caller's own errors pass through.
    """
    fs, path, _ = _filesystem(location.url, options)
    verb = "read" if mode == "r" else "write"
    with contextlib.ExitStack() as stack:
        try:
            raw = stack.enter_context(fs.open(path, mode + "b"))
            compression = infer_compression(path)
            if compression is not None:
                raw = stack.enter_context(compr[compression](raw, mode=mode + "b"))
            text = stack.enter_context(
                io.TextIOWrapper(raw, encoding=options.encoding, newline="", write_through=False)
            )
        except FileNotFoundError:
            raise BatchError(f"cannot {verb} {location.display}: no such file or folder") from None
        except LookupError:
            raise BatchUsageError(f"unknown text encoding {options.encoding!r}") from None
        except Exception as exc:  # each file system fails its own way: translate them all here
            raise BatchError(f"cannot {verb} {location.display}: {describe_error(exc)}") from None
        yield text


def remove(location: Location, options: BatchOptions) -> None:
    """Delete a partial output after a failure; a file that is already gone is fine."""
    fs, path, _ = _filesystem(location.url, options)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path)
