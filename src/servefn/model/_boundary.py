"""The one boundary where a failure to read a model archive becomes an ``ArtifactError``.

``load_model`` and ``read_manifest`` run inside :func:`artifact_errors`: whatever zipfile, json,
numpy, pydantic or a predictor raises for a hostile or damaged archive (an encrypted member, an
unknown compression method, an absurd size, a manifest nested thousands deep, a spec pydantic
cannot build) leaves as an :class:`~servefn.errors.ArtifactError` whose message is one line of
printable characters naming the problem, raised ``from`` the original so its category can still
be read from the chain. The CLI, health and problem bodies can then show it as it is.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from servefn.errors import ArtifactError, PredictorError, SchemaError

__all__ = ["artifact_errors", "clip", "one_line"]

_FOREIGN: tuple[type[Exception], ...] = (
    ArithmeticError,  # OverflowError: a number too large for a size or an index
    AttributeError,
    EOFError,
    LookupError,  # KeyError, IndexError
    MemoryError,
    OSError,
    RuntimeError,  # RecursionError, NotImplementedError, an encrypted member
    TypeError,
    ValueError,  # pydantic's ValidationError, UnicodeDecodeError
    struct.error,
    zipfile.BadZipFile,
    zlib.error,
)
"""What reading an untrusted archive can raise from zipfile, json, numpy and pydantic."""


@contextmanager
def artifact_errors() -> Iterator[None]:
    """The one boundary: any failure to read or rebuild an archive is an ArtifactError, one line."""
    try:
        yield
    except ArtifactError as exc:
        if not str(exc).isprintable():  # e.g. skops' reasons, one per line: kept, joined
            raise ArtifactError(one_line(exc, limit=None)) from exc
        raise
    except (SchemaError, PredictorError) as exc:
        raise ArtifactError(f"model archive is not usable: {one_line(exc, limit=None)}") from exc
    except _FOREIGN as exc:
        raise ArtifactError(_foreign_message(exc)) from exc


def _foreign_message(exc: Exception) -> str:
    """A specific line for the failures a hostile archive is known to cause."""
    if isinstance(exc, RecursionError):
        return "model archive is nested too deeply to read (its manifest or a payload)"
    if isinstance(exc, MemoryError):
        return "model archive declares more data than memory can hold; refusing it"
    if isinstance(exc, OverflowError):
        return f"model archive declares a number too large to use ({one_line(exc)})"
    if isinstance(exc, NotImplementedError):
        return f"model archive uses a zip feature servefn cannot read ({one_line(exc)})"
    if isinstance(exc, RuntimeError) and "encrypt" in str(exc):
        return f"model archive is encrypted ({one_line(exc)}); save it without a password"
    if isinstance(exc, (zipfile.BadZipFile, zlib.error, struct.error, EOFError)):
        return f"model archive is damaged ({type(exc).__name__}: {one_line(exc)})"
    return f"model archive cannot be read ({type(exc).__name__}: {one_line(exc)})"


def one_line(exc: BaseException | str, limit: int | None = 300) -> str:
    """A message on one line of printable characters (a manifest can carry any), clipped to
    ``limit`` characters (a foreign message can quote a whole manifest)."""
    text = " ".join(str(exc).split())[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text or type(exc).__name__


def clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
