"""A model manifest as plain text for a person: what ``servefn inspect`` prints.

Sections: the archive (where it is, sha256, size, created, servefn version, predictor kind),
the input and output columns as tables, the training record (trainer, parameters, auto-tuned
values, best iteration, data), the metrics, the confusion matrix labelled with the classes,
and the payload files. Unknown manifest keys are shown as they are, so nothing is hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from servefn.loaders import redact

__all__ = ["format_manifest"]

_KNOWN_TRAINING = frozenset(
    {
        "trainer", "steps", "params", "tuned", "best_iteration", "iterations", "converged",
        "rows", "data_file", "data_sha256", "metrics",
    }
)  # fmt: skip


def format_manifest(
    manifest: Mapping[str, Any],
    *,
    location: str,
    sha256: str,
    size: int,
    etag: str | None = None,
) -> str:
    """Render ``manifest`` (of the archive at ``location``) as aligned plain-text sections."""
    predictor = manifest.get("predictor") or {}
    classes = [str(c) for c in predictor.get("classes") or []]
    sections = [
        "Model\n"
        + _pairs(
            [
                ("location", redact(location)),
                ("format", manifest.get("format")),
                ("kind", _kind(manifest.get("kind"), predictor)),
                ("classes", ", ".join(classes)),
                ("sha256", sha256),
                ("version", sha256[:12]),
                ("size", f"{size:,} bytes"),
                ("etag", etag),
                ("created", manifest.get("created")),
                ("servefn", manifest.get("servefn_version")),
            ]
        ),
        _columns("Input", manifest.get("input") or {}, with_index=True),
        _columns("Output", manifest.get("output") or {}, with_index=False),
    ]
    training = manifest.get("training") or {}
    if training:
        sections.append(_training(training))
    metrics = training.get("metrics") or {}
    if metrics:
        sections.append(_metrics(metrics, classes))
        matrix = metrics.get("confusion_matrix")
        if matrix:
            sections.append(_confusion(matrix, classes))
    files = manifest.get("files") or {}
    if files:
        rows = [
            [name, f"{meta.get('size', 0):,}", meta.get("sha256", "")]
            for name, meta in files.items()
        ]
        sections.append("Files\n" + _table(["file", "bytes", "sha256"], rows))
    return "\n\n".join(sections) + "\n"


def _kind(kind: Any, predictor: Mapping[str, Any]) -> str:
    details = [f"{k} {v}" for k, v in predictor.items() if k != "classes" and _is_scalar(v)]
    return f"{kind} ({', '.join(details)})" if details else str(kind)


def _columns(title: str, spec: Mapping[str, Any], *, with_index: bool) -> str:
    header = ["name", "type", *(["index"] if with_index else []), "role", "required"]
    rows = []
    for column in spec.get("columns") or []:
        kind = str(column.get("type", ""))
        if column.get("nullable"):
            kind += " | null"
        index = column.get("index")
        where = (
            ""
            if index is None
            else "-".join(map(str, index))
            if isinstance(index, list)
            else str(index)
        )
        required = (
            "yes"
            if column.get("required", True)
            else f"no (default {_value(column.get('default'))})"
        )
        rows.append(
            [
                str(column.get("name", "")),
                kind,
                *([where] if with_index else []),
                str(column.get("role", "feature")),
                required,
            ]
        )
    name = spec.get("title", "")
    extra = spec.get("extra")
    note = f" (unknown fields: {extra})" if extra and extra != "forbid" else ""
    return f"{title} {name}{note}\n" + _table(header, rows)


def _training(training: Mapping[str, Any]) -> str:
    steps = training.get("steps") or []
    trainer = str(training.get("trainer", ""))
    if steps:
        trainer += f" (pipeline: {' -> '.join(map(str, steps))})"
    best = training.get("best_iteration")
    iterations = training.get("iterations")
    progress = None
    if best is not None:
        progress = f"{best}" + (f" of {iterations}" if iterations is not None else "")
        if "converged" in training:
            progress += ", converged" if training["converged"] else ", not converged"
    data = training.get("data_file")
    if training.get("data_sha256"):
        data = f"{data or 'data'} (sha256 {training['data_sha256']})"
    lines = [
        _pairs(
            [
                ("trainer", trainer),
                ("rows", training.get("rows")),
                ("data", data),
                ("best iteration", progress),
            ]
            + [
                (key, _value(value))
                for key, value in training.items()
                if key not in _KNOWN_TRAINING and _is_scalar(value)
            ]
        )
    ]
    for label, key in (("parameters", "params"), ("auto-tuned", "tuned")):
        values = training.get(key) or {}
        if values:
            lines.append(f"  {label}:")
            lines.extend(
                "  " + line for line in _pairs(values.items(), keep_null=True).splitlines()
            )
    return "Training\n" + "\n".join(lines)


def _metrics(metrics: Mapping[str, Any], classes: Sequence[str]) -> str:
    pairs: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if key == "confusion_matrix":
            continue
        if isinstance(value, list) and classes and len(value) == len(classes):
            value = ", ".join(f"{c} {_value(v)}" for c, v in zip(classes, value, strict=True))
        pairs.append((key, _value(value)))
    return "Metrics\n" + _pairs(pairs)


def _confusion(matrix: Sequence[Sequence[Any]], classes: Sequence[str]) -> str:
    labels = list(classes) if len(classes) == len(matrix) else [str(i) for i in range(len(matrix))]
    rows = [[label, *(str(v) for v in row)] for label, row in zip(labels, matrix, strict=True)]
    table = _table(["truth \\ predicted", *labels], rows, right=range(1, len(labels) + 1))
    return "Confusion matrix (rows: truth, columns: predicted)\n" + table


def _pairs(pairs: Iterable[tuple[str, Any]], *, keep_null: bool = False) -> str:
    """``key  value`` lines, keys padded; missing values (None, "") left out unless kept."""
    shown = [(k, v) for k, v in pairs if keep_null or (v is not None and v != "")]
    width = max((len(key) for key, _ in shown), default=0)
    return "\n".join(f"  {key.ljust(width)}  {_value(value)}" for key, value in shown)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; numeric columns (``right``) aligned right."""
    aligned = set(right)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(cell).rjust(width) if i in aligned else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(padded)).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)
