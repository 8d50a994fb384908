"""The repository layout: which files make a model, its versions and its alias.

::

    NAME/model.zip               the model NAME (no versions)
    NAME/VERSION/model.zip       version VERSION of NAME
    NAME/current                 optional alias: a small text file holding one VERSION

``models/NAME`` serves the version ``NAME/current`` names; without an alias, ``NAME/model.zip``;
without that, the highest version (natural order: ``2`` < ``10``, ``v1.9`` < ``v1.10``). Names
and versions are route segments: a letter or digit, then up to 127 letters, digits, ``.``,
``_`` or ``-``; other files and folders are ignored. An alias file holds one version (surrounding
whitespace ignored) and is at most :data:`ALIAS_MAX_BYTES` bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from servefn.errors import ServefnError

__all__ = [
    "ALIAS_FILE",
    "ALIAS_MAX_BYTES",
    "MODEL_FILE",
    "ListedModel",
    "ModelNotFound",
    "build_listing",
    "is_segment",
    "natural_key",
]

MODEL_FILE = "model.zip"
ALIAS_FILE = "current"
ALIAS_MAX_BYTES = 256
"""An alias file larger than this is refused unread (it names one version)."""

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CHUNKS = re.compile(r"(\d+)")


class ModelNotFound(ServefnError, LookupError):
    """No model (or no version of it) by that name in the repository: a 404 problem here, and
    a 404 of the Open Inference Protocol routes (which answer any ``ServefnError`` that is a
    ``LookupError`` so; ``servefn.oip`` is imported only when its routes are added)."""


def is_segment(text: str) -> bool:
    """True when ``text`` can be a model name or a version (one safe route segment)."""
    return _SEGMENT.fullmatch(text) is not None and text != ALIAS_FILE


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value: ``"2" < "10"``, ``"v1.9" < "v1.10"``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in _CHUNKS.split(text)
        if part
    )


@dataclass(frozen=True)
class ListedModel:
    """One model of the listing: its artifacts (paths relative to the repository's root)."""

    name: str
    versions: Mapping[str, str] = field(default_factory=dict)
    """Version -> path of its ``model.zip``, in natural order."""
    unversioned: str | None = None
    """``NAME/model.zip`` when there is one."""
    current: str | None = None
    """What the alias file says, when there is one."""
    problem: str | None = None
    """Why ``models/NAME`` cannot be served now (a broken alias), else None."""

    @property
    def default(self) -> str | None:
        """The artifact ``models/NAME`` serves (None when :attr:`problem` says why not)."""
        if self.problem is not None:
            return None
        if self.current is not None:
            return self.versions[self.current]
        if self.unversioned is not None:
            return self.unversioned
        return list(self.versions.values())[-1] if self.versions else None

    @property
    def serves(self) -> str | None:
        """The version ``models/NAME`` serves (None for ``NAME/model.zip`` or a problem)."""
        default = self.default
        found = [v for v, path in self.versions.items() if path == default]
        return found[0] if found else None

    def path_for(self, version: str | None) -> str:
        """The artifact for ``version`` (None: the default); :class:`ModelNotFound` if the
        model has no such version."""
        if version is None:
            default = self.default
            if default is None:
                raise ModelNotFound(self.problem or "the model has no artifact")
            return default
        path = self.versions.get(version)
        if path is None:
            raise ModelNotFound("the model has no version by that name")
        return path


def build_listing(
    paths: Iterable[str], read_alias: Callable[[str], str]
) -> tuple[dict[str, ListedModel], list[str]]:
    """Models from the files of a repository (``/``-separated paths relative to its root).

    ``read_alias(path)`` returns an alias file's text (or raises ``ServefnError``: the model is
    listed with that problem). Returns the models by name, and one line for each file or
    folder that was ignored and why (for a debug log).
    """
    versions: dict[str, dict[str, str]] = {}
    unversioned: dict[str, str] = {}
    aliases: dict[str, str] = {}
    ignored: list[str] = []
    for path in paths:
        parts = path.split("/")
        if not is_segment(parts[0]):
            ignored.append(f"{path}: {parts[0]!r} is not a model name")
        elif len(parts) == 2 and parts[1] == MODEL_FILE:
            unversioned[parts[0]] = path
        elif len(parts) == 2 and parts[1] == ALIAS_FILE:
            aliases[parts[0]] = path
        elif len(parts) == 3 and parts[2] == MODEL_FILE and is_segment(parts[1]):
            versions.setdefault(parts[0], {})[parts[1]] = path
        else:
            ignored.append(f"{path}: not NAME/{MODEL_FILE}, NAME/VERSION/{MODEL_FILE} or alias")
    models = {}
    for name in sorted({*versions, *unversioned}, key=natural_key):
        found = versions.get(name, {})
        ordered = {v: found[v] for v in sorted(found, key=natural_key)}
        current, problem = _alias(aliases.get(name), ordered, read_alias)
        models[name] = ListedModel(name, ordered, unversioned.get(name), current, problem)
    ignored.extend(
        f"{path}: an alias without a model" for n, path in aliases.items() if n not in models
    )
    return models, ignored


def _alias(
    path: str | None, versions: Mapping[str, str], read_alias: Callable[[str], str]
) -> tuple[str | None, str | None]:
    """(the version the alias names, the problem with it) for one model."""
    if path is None:
        return None, None
    try:
        text = read_alias(path).strip()
    except ServefnError as exc:
        return None, f"its alias {path} cannot be read: {exc}"
    if not is_segment(text):
        return None, (
            f"its alias {path} must hold one version name (letters, digits, '.', '_', '-')"
        )
    if text not in versions:
        return None, (
            f"its alias {path} names version {text!r}, which has no {MODEL_FILE}; upload "
            "the version first, then the alias"
        )
    return text, None
