"""The ``ML.NET pipeline`` section of ``servefn inspect``: each component of a model read from
ML.NET's model.zip, with the parameters decoded from it (term maps, scales and offsets, weights,
trees), as the training record's ``mlnet`` list holds them. The strings have already been made
printable by :func:`servefn.cli._manifest_text.printable`; values of another type are shown as
they are, never trusted to be what they claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["mlnet_section"]

_MAX_COMPONENTS = 200
_MAX_ITEMS = 40


def mlnet_section(components: Sequence[Any]) -> str:
    """``ML.NET pipeline`` then, per component, its folder and loader and its parameters."""
    lines = ["ML.NET pipeline (each component as decoded from the archive)"]
    for component in list(components)[:_MAX_COMPONENTS]:
        if not isinstance(component, Mapping):
            continue
        where = _text(component.get("component", "?"))
        lines.append(f"  {where}  {_text(component.get('loader', '?'))}")
        items = [(k, v) for k, v in component.items() if k not in ("component", "loader")]
        width = max((len(str(k)) for k, _ in items[:_MAX_ITEMS]), default=0)
        for key, value in items[:_MAX_ITEMS]:
            lines.append(f"    {str(key).ljust(width)}  {_text(value)}")
    if len(components) > _MAX_COMPONENTS:
        lines.append(f"  ... {len(components) - _MAX_COMPONENTS} more components")
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(_text(v) for v in list(value)[:_MAX_ITEMS])
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
