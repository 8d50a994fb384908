"""What every loader returns and promises: the artifact, its download cap, redacted locations.

Every built-in loader refuses an artifact larger than its download cap (:func:`download_cap`:
the loader's ``max_bytes=`` option, else the app setting ``SERVEFN_MAX_MODEL_BYTES``, else
512 MiB) with :class:`ArtifactTooLarge`: before downloading when storage says the size up front
(``os.stat``, blob properties, fsspec ``info()``), otherwise after reading at most
``cap + 1`` bytes (:func:`read_capped`). Redaction (:func:`redact` and friends) lives in
:mod:`servefn._redact` and is re-exported here.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from servefn._redact import (
    RedactingFilter,
    describe_error,
    install_redaction,
    redact,
    redact_logger,
)
from servefn.errors import LoaderError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_BYTES_SETTING",
    "ArtifactTooLarge",
    "Fetched",
    "ModelLoader",
    "RedactingFilter",
    "check_max_bytes",
    "check_size",
    "describe_error",
    "display_connection",
    "download_cap",
    "install_redaction",
    "read_capped",
    "redact",
    "redact_logger",
    "require",
]

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
"""The download cap when neither the loader nor the app setting names one: 512 MiB."""
MAX_BYTES_SETTING = "SERVEFN_MAX_MODEL_BYTES"
"""The app setting (environment variable) that sets the download cap of every loader."""
_CHUNK = 8 * 1024 * 1024
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_SIZE = re.compile(r"(?i)([0-9][0-9_]*)\s*([kmg]?)(i?)b?")


@dataclass(frozen=True)
class Fetched:
    """The bytes of one artifact version, its etag, and where they came from (redacted)."""

    data: bytes
    etag: str
    uri: str

    def __repr__(self) -> str:
        return f"Fetched(uri={self.uri!r}, etag={self.etag!r}, size={len(self.data)})"


@runtime_checkable
class ModelLoader(Protocol):
    """Fetches a model artifact from one location.

    ``uri`` is a display form with every credential removed. ``fetch(etag)`` returns ``None``
    when the artifact is unchanged since ``etag`` (a cheap conditional check), the artifact
    otherwise, and raises :class:`~servefn.errors.LoaderError` when it cannot be fetched.
    """

    uri: str

    def fetch(self, etag: str | None = None) -> Fetched | None:
        """Return the artifact, or ``None`` when it still has ``etag``."""
        ...


def display_connection(connection: str) -> str:
    """How to show a loader's ``connection`` argument: a setting name as given; a literal
    connection string or account URL reduced to what cannot be a credential.

    Masking by pattern (:func:`redact`) cannot know every field a pasted connection string may
    carry a key in, so a literal one is never shown at all.
    """
    text = connection.strip()
    if text.lower().startswith(("http://", "https://")):
        if "@" in text:  # user info, whose password may even hold a "/": show none of it
            return "<account URL with user info>"
        parts = urlsplit(text)
        query = "?<SAS token>" if parts.query else ""
        return f"{parts.scheme}://{parts.netloc}{parts.path}{query}"
    if "=" in text:
        return "<connection string>"
    return text


def require(module: str, message: str) -> None:
    """Raise ``ImportError(message)`` unless ``module`` is installed, without importing it.

    Loaders call this when constructed, so a missing optional package is reported at startup
    with the extra to install, while the package itself is imported only on first use.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:
        found = False
    if not found:
        raise ImportError(message)


class ArtifactTooLarge(LoaderError):
    """The artifact is larger than the download cap; ``size`` is ``None`` when storage did not
    say it (reading stopped at ``cap + 1`` bytes)."""

    def __init__(self, uri: str, cap: int, size: int | None = None) -> None:
        self.uri, self.cap, self.size = uri, cap, size
        found = f"is {_amount(size)}" if size is not None else "is larger than that"
        super().__init__(
            f"model {uri} {found}, over the download cap of {_amount(cap)}; raise the cap with "
            f"the loader's max_bytes= option or the app setting {MAX_BYTES_SETTING} (bytes; "
            "'2GiB' works too)"
        )


def download_cap(option: int | None = None) -> int:
    """The download cap in bytes: ``option`` (a loader's ``max_bytes=``) when given, else the
    app setting ``SERVEFN_MAX_MODEL_BYTES`` (read on every call, so ``local.settings.json``
    counts), else :data:`DEFAULT_MAX_BYTES`. Raises :class:`LoaderError` for a setting that is
    not a positive size such as ``600000000``, ``600MB`` or ``1GiB``."""
    if option is not None:
        return option
    text = os.environ.get(MAX_BYTES_SETTING, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    match = _SIZE.fullmatch(text)
    if match is not None:
        number, unit, binary = match.groups()
        unit = unit.lower()
        if unit or not binary:
            scale = 1024 ** " kmg".index(unit) if binary else _UNITS[unit]
            value = int(number.replace("_", "")) * scale
            if value > 0:
                return value
    raise LoaderError(
        f"app setting {MAX_BYTES_SETTING}={text[:40]!r} is not a size; give a positive number "
        "of bytes, such as 600000000, 600MB or 1GiB"
    )


def check_max_bytes(value: int | None) -> int | None:
    """Validate a loader's ``max_bytes=`` argument (``None``: the setting or the default)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_bytes must be a positive number of bytes, got {value!r}")
    return value


def check_size(uri: str, size: int | None, cap: int) -> None:
    """Raise :class:`ArtifactTooLarge` when storage says the artifact is larger than ``cap``."""
    if size is not None and size > cap:
        raise ArtifactTooLarge(uri, cap, size)


def read_capped(read: Callable[[int], bytes], uri: str, cap: int) -> bytes:
    """Read a stream of unknown size to its end, refusing it once it passes ``cap`` bytes.

    ``read(n)`` returns at most ``n`` bytes, and ``b""`` at the end; at most ``cap + 1`` bytes
    are requested in all, so a stream that never ends costs at most the cap.
    """
    buffer = io.BytesIO()
    total = 0
    while True:
        chunk = read(min(_CHUNK, cap + 1 - total))
        if not chunk:
            return buffer.getvalue()
        total += len(chunk)
        if total > cap:
            raise ArtifactTooLarge(uri, cap)
        buffer.write(chunk)


def _amount(size: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size:,} bytes ({size / scale:.1f} {unit})"
    return f"{size:,} bytes"
