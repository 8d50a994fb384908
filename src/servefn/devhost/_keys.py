"""``servefn serve --auth keys``: function keys checked as the Functions host checks them.

By default ``servefn serve`` checks no key, as ``func host start`` does not. With ``--auth
keys`` every function is held to its ``authLevel``: ``ANONYMOUS`` needs nothing; ``FUNCTION``
needs a key from the app setting ``SERVEFN_KEYS`` (comma-separated; the host's function and host
keys) or the master key; ``ADMIN`` needs the master key, the app setting ``SERVEFN_MASTER_KEY``
(without it, ADMIN functions refuse every request, as they would on Azure without that key).
The key comes in the ``x-functions-key`` header or the ``code`` query parameter; a request
without a valid one is answered 401 (problem+json) before its body is read. Keys are compared
in constant time (:func:`hmac.compare_digest`, every key compared every time) and never logged:
a refusal is logged with the method and path only, and any ``code=`` in a logged URL is masked
by :mod:`servefn._redact`.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from servefn._logtext import bounded
from servefn.devhost._indexing import HttpFunction
from servefn.errors import DevHostError
from servefn.http import Problem

__all__ = ["AUTH_MODES", "KEYS_SETTING", "MASTER_KEY_SETTING", "KeyCheck", "auth_note"]

AUTH_MODES = ("none", "keys")
KEYS_SETTING = "SERVEFN_KEYS"
MASTER_KEY_SETTING = "SERVEFN_MASTER_KEY"
_HEADER = "x-functions-key"

logger = logging.getLogger("servefn.devhost")


class KeyCheck:
    """The keys a ``servefn serve --auth keys`` host accepts; see the module."""

    def __init__(self, keys: Sequence[str], master: str | None = None) -> None:
        self._keys = tuple(key.encode() for key in keys if key)
        self._master = master.encode() if master else None
        if not self._keys and self._master is None:
            raise DevHostError("a KeyCheck needs at least one key")

    def __repr__(self) -> str:  # never the keys themselves
        master = "a master key" if self._master else "no master key"
        return f"KeyCheck({len(self._keys)} keys, {master})"

    @property
    def has_master(self) -> bool:
        """True when ADMIN functions can be called (a master key is set)."""
        return self._master is not None

    @classmethod
    def from_settings(cls, environ: Mapping[str, str] = os.environ) -> KeyCheck:
        """The keys of the app settings ``SERVEFN_KEYS`` and ``SERVEFN_MASTER_KEY``.

        Raises :class:`DevHostError` when ``SERVEFN_KEYS`` holds no key: ``--auth keys``
        without keys would refuse every keyed request, so the host does not start.
        """
        keys = [key.strip() for key in environ.get(KEYS_SETTING, "").split(",") if key.strip()]
        if not keys:
            raise DevHostError(
                f"--auth keys needs the app setting {KEYS_SETTING}: one or more keys, "
                "comma-separated (in the environment or local.settings.json Values); set it, "
                "or serve without --auth keys"
            )
        master = environ.get(MASTER_KEY_SETTING, "").strip() or None
        return cls(keys, master)

    def refuse(
        self, function: HttpFunction, method: str, path: str, headers: Mapping[str, str],
        query_string: bytes,
    ) -> Problem | None:  # fmt: skip
        """The 401 for a request to ``function`` without a valid key, else None.

        ``headers`` has lower-case names; ``query_string`` is the raw query.
        """
        level = function.auth_level.upper()
        if level == "ANONYMOUS":
            return None
        given = headers.get(_HEADER) or _code(query_string)
        if given and self._accepts(
            given.encode("utf-8", "surrogateescape"), admin=level == "ADMIN"
        ):
            return None
        logger.info(
            "%s %s -> 401: %s (authLevel %s)",
            bounded(method),
            bounded(path),
            "a key that is not valid here" if given else "no key",
            level,
        )
        detail = (
            "the key given is not valid for this function; send a valid key in the "
            "x-functions-key header or the code query parameter"
            if given
            else "this function needs a key: send it in the x-functions-key header or the code "
            "query parameter"
        )
        return Problem(401, detail)

    def _accepts(self, given: bytes, *, admin: bool) -> bool:
        accepted = False
        if self._master is not None:
            accepted |= hmac.compare_digest(given, self._master)
        if not admin:
            for key in self._keys:  # every key, every time: the time says nothing of which
                accepted |= hmac.compare_digest(given, key)
        return accepted


def _code(query_string: bytes) -> str | None:
    """The ``code`` query parameter (the first non-empty one, key matched in any case)."""
    if b"code=" not in query_string.lower():
        return None
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=False):
        if key.lower() == "code" and value:
            return value
    return None


def auth_note(functions: Sequence[HttpFunction], keys: KeyCheck | None) -> str:
    """The startup line that says which functions need a key and whether it is checked."""
    keyed = [f.name for f in functions if f.auth_level.upper() != "ANONYMOUS"]
    if not keyed:
        return "Auth: every function is ANONYMOUS; no key is needed here or on Azure."
    names = ", ".join(keyed)
    if keys is None:
        return (
            f"Auth: {names} need a key on Azure (authLevel FUNCTION/ADMIN); like func host "
            "start, servefn serve does not check keys locally (x-functions-key or ?code= are "
            "accepted and ignored); --auth keys checks them."
        )
    admin = [f.name for f in functions if f.auth_level.upper() == "ADMIN"]
    locked = (
        f" ADMIN functions ({', '.join(admin)}) refuse every request: {MASTER_KEY_SETTING} "
        "is not set."
        if admin and not keys.has_master
        else ""
    )
    return (
        f"Auth: keys checked (--auth keys): {names} answer 401 without a key from "
        f"{KEYS_SETTING} in x-functions-key or ?code=; ANONYMOUS functions stay open.{locked}"
    )
