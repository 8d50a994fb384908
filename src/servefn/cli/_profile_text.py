"""The training profile and a batch's drift as plain text: ``servefn inspect`` and
``servefn predict --report``.

The profile is read with :func:`servefn.telemetry.profile.read_profile` (a hostile one is shown
as ignored, with why); the strings in it were made printable by ``format_manifest`` before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from servefn.telemetry.drift import DriftReport
from servefn.telemetry.profile import CategoricalFeature, read_profile

__all__ = ["drift_text", "profile_section"]

_SHOWN_VALUES = 5


def profile_section(raw: Any) -> str:
    """The manifest's ``profile`` as an inspect section."""
    profile, why = read_profile(raw)
    if profile is None:
        reason = why or "none: the model was saved without one, so drift is not measured"
        return f"Training profile\n  {reason}"
    rows = []
    for feature in profile.features:
        if isinstance(feature, CategoricalFeature):
            shares = sorted(feature.frequencies.items(), key=lambda item: -item[1])
            shown = ", ".join(f"{v} {s:.1%}" for v, s in shares[:_SHOWN_VALUES])
            more = len(shares) - _SHOWN_VALUES
            detail = shown + (f", +{more} more" if more > 0 else "")
            if feature.other:
                detail += f", other {feature.other:.1%}"
            rows.append([feature.name, "categorical", f"{len(shares)} values", detail])
        else:
            span = f"{feature.minimum:.6g} to {feature.maximum:.6g}"
            rows.append([feature.name, "numeric", span, f"{len(feature.fractions)} bins"])
        rows[-1].insert(3, f"{feature.missing:.1%}")
    title = f"Training profile ({profile.rows:,} rows; served inputs' drift is measured against it)"
    return title + "\n" + _table(["feature", "type", "range", "missing", "bins / values"], rows)


def drift_text(report: DriftReport, training_rows: int, threshold: float) -> str:
    """A batch's drift, feature by feature, and which features drifted."""
    rows = [
        [
            f.name,
            f"{f.psi:.3f}",
            "n/a" if f.out_of_range is None else f"{f.out_of_range:.1%}",
            f"{f.missing:.1%}",
            "drifted" if f.psi > threshold else "",
        ]
        for f in report.features
    ]
    lines = [
        f"Drift of {report.rows:,} rows against the training profile ({training_rows:,} rows), "
        f"PSI threshold {threshold:g}:",
        _table(["feature", "PSI", "out of range", "missing", ""], rows),
    ]
    over = report.over(threshold)
    if over:
        names = ", ".join(f.name for f in over)
        lines.append(f"  drifted: {names} (these inputs no longer look like the training data)")
    else:
        lines.append("  no feature drifted")
    return "\n".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        ("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()
        for row in [header, *rows]
    )
