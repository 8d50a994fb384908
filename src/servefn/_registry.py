"""The one shape of servefn's extension points: a lazy name -> ``"module:Attr"`` table.

Loaders by URL scheme and predictors by manifest ``kind`` both use it, after fsspec's
``known_implementations``: each :class:`Entry` names what to import and what to tell the user
when that import fails (the pip extra to install), and nothing is imported until a name is first
asked for, so importing servefn imports no storage SDK and no scikit-learn. Third parties add
names with :meth:`LazyRegistry.register` or, where the registry has a group, an entry point
(``name = "package.module:Class"``). Readers get a read-only view (:attr:`LazyRegistry.view`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["Entry", "LazyRegistry", "import_target"]


class Entry(NamedTuple):
    """A registry entry: what to import, imported when first needed."""

    target: str
    """``"module:Attr"``."""
    missing: str = ""
    """What to tell the user when ``target`` cannot be imported (``pip install ...``)."""


class LazyRegistry:
    """Names mapped to :class:`Entry`; ``noun`` names the keys in messages (``"scheme"``).

    ``refuse`` builds the exception for a bad :meth:`register` call, so each registry keeps the
    error type its callers know; ``entry_points`` is a group consulted for unknown names.
    """

    def __init__(
        self,
        noun: str,
        entries: Mapping[str, Entry],
        *,
        refuse: Callable[[str], Exception] = ValueError,
        entry_points: str | None = None,
    ) -> None:
        self.noun = noun
        self._entries = dict(entries)
        self.view: Mapping[str, Entry] = MappingProxyType(self._entries)
        """Read-only, live view of the entries."""
        self._refuse = refuse
        self._group = entry_points

    def __repr__(self) -> str:
        return f"LazyRegistry({self.noun!r}, {sorted(self._entries)})"

    def register(
        self, name: str, target: str | type, *, missing: str = "", clobber: bool = False
    ) -> None:
        """Serve ``name`` with ``target`` (``"module:Class"`` or a class).

        Registering the same target again is harmless; replacing a different one needs
        ``clobber=True``, so two plugins cannot silently take the same name.
        """
        path = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        module_name, _, attribute = path.partition(":")
        if not module_name or not attribute:
            raise self._refuse(f"target must be 'module:Class', got {path!r}")
        existing = self._entries.get(name)
        if existing is not None and existing.target != path and not clobber:
            raise self._refuse(
                f"{self.noun} {name!r} is already served by {existing.target}; pass clobber=True"
            )
        self._entries[name] = Entry(path, missing)

    def pop(self, name: str, default: Entry | None = None) -> Entry | None:
        """Remove ``name`` and return its entry (``default`` if absent): undoes :meth:`register`."""
        return self._entries.pop(name, default)

    def get(self, name: str) -> Entry | None:
        """The entry for ``name``: registered, else from the entry-point group, else None."""
        entry = self._entries.get(name)
        if entry is None and self._group is not None:
            entry = self._from_entry_point(name)
        return entry

    def load(self, name: str, default: Entry | None = None) -> Any:
        """Import what ``name`` (else ``default``) names; :class:`KeyError` if neither is known.

        Raises :class:`ImportError` with the entry's ``missing`` message when the import fails.
        """
        entry = self.get(name) or default
        if entry is None:
            raise KeyError(name)
        return import_target(entry, f"{self.noun} {name!r}")

    def _from_entry_point(self, name: str) -> Entry | None:
        from importlib.metadata import entry_points  # only for names not registered

        for point in entry_points(group=self._group or ""):
            if point.name == name:
                return self._entries.setdefault(name, Entry(point.value))
        return None


def import_target(entry: Entry, serving: str = "") -> Any:
    """Import ``entry.target``; ``serving`` (``"scheme 'az'"``) says what it was needed for."""
    module_name, _, attribute = entry.target.partition(":")
    context = f" for {serving}" if serving else ""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(entry.missing or f"cannot import {module_name}{context}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"{module_name} has no {attribute!r}{context}") from None
