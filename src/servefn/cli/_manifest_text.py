"""A model manifest as plain text for a person: what ``servefn inspect`` prints.

Sections: the archive (where it is, sha256, size, created, servefn version, predictor kind, the
types a scikit-learn model needs trusted), the input and output columns as tables, the training
record (trainer, parameters, auto-tuned values, best iteration, data), the metrics, the
confusion matrix labelled with the classes, the training profile (``_profile_text``), and the
payload files. Unknown manifest keys are
shown as they are, so nothing is hidden.

A manifest comes from a file, and its strings could drive a terminal: a newline forges a line,
an ESC sequence retitles or clears the screen, a bidi override reverses what is read. Every
string, key or value, passes through :func:`printable` once, as the manifest enters
:func:`format_manifest`: control characters (C0, DEL, C1), line and paragraph separators and
bidi controls become visible escapes (``\\n``, ``\\x1b``, ``\\u202e``). ``--json`` output
needs none of this: JSON escapes them itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from servefn.loaders import redact

__all__ = ["format_manifest", "printable"]

_INVISIBLE = [
    *range(0x00, 0x20),  # C0, newline and tab included
    *range(0x7F, 0xA0),  # DEL and C1 (0x9B is a one-byte CSI)
    0x061C, 0x200E, 0x200F,  # bidi marks
    0x2028, 0x2029,  # line and paragraph separators
    *range(0x202A, 0x202F),  # bidi embeddings and overrides
    *range(0x2066, 0x206A),  # bidi isolates
]  # fmt: skip
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _INVISIBLE} | {
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
}

_KNOWN_TRAINING = frozenset(
    {
        "trainer", "steps", "params", "tuned", "best_iteration", "iterations", "converged",
        "rows", "data_file", "data_sha256", "metrics", "parity",
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
    manifest = printable(manifest)
    location, etag = printable(location), printable(etag)
    predictor = _mapping(manifest.get("predictor"))
    listed = predictor.get("classes")
    classes = [_value(c) for c in listed] if isinstance(listed, list) else []
    sections = [
        "Model\n"
        + _pairs(
            [
                ("location", redact(location)),
                ("format", manifest.get("format")),
                ("kind", _kind(manifest.get("kind"), predictor)),
                ("classes", ", ".join(classes)),
                ("trusted types", _trusted(predictor)),
                ("sha256", sha256),
                ("version", sha256[:12]),
                ("size", f"{size:,} bytes"),
                ("etag", etag),
                ("created", manifest.get("created")),
                ("servefn", manifest.get("servefn_version")),
            ]
        ),
        _columns("Input", _mapping(manifest.get("input")), with_index=True),
        _columns("Output", _mapping(manifest.get("output")), with_index=False),
    ]
    training = _mapping(manifest.get("training"))
    if training:
        sections.append(_training(training))
    if isinstance(training.get("mlnet"), list):  # a model read from ML.NET's model.zip
        from servefn.cli._mlnet_text import mlnet_section

        sections.append(mlnet_section(training["mlnet"]))
    metrics = _mapping(training.get("metrics"))
    if metrics:
        sections.append(_metrics(metrics, classes))
        matrix = metrics.get("confusion_matrix")
        if _is_matrix(matrix):
            sections.append(_confusion(matrix, classes))
    if "profile" in manifest:
        from servefn.cli._profile_text import profile_section

        sections.append(profile_section(manifest["profile"]))
    files = _mapping(manifest.get("files"))
    if files:
        rows = [
            [name, _bytes(_mapping(meta).get("size", 0)), _value(_mapping(meta).get("sha256", ""))]
            for name, meta in files.items()
        ]
        sections.append("Files\n" + _table(["file", "bytes", "sha256"], rows))
    return "\n\n".join(sections) + "\n"


def printable(value: Any) -> Any:
    """``value`` with every string in it, keys included, made safe to print to a terminal."""
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, Mapping):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is an object, else empty: a manifest section of the wrong type is
    left out rather than breaking the whole listing."""
    return value if isinstance(value, Mapping) else {}


def _is_matrix(value: Any) -> TypeGuard[list[list[Any]]]:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(row, list) and len(row) == len(value[0]) for row in value)
    )


def _kind(kind: Any, predictor: Mapping[str, Any]) -> str:
    details = [f"{k} {v}" for k, v in predictor.items() if k != "classes" and _is_scalar(v)]
    return f"{kind} ({', '.join(details)})" if details else str(kind)


def _trusted(predictor: Mapping[str, Any]) -> str | None:
    """The non-default types a skops payload holds, and how to allow them, or None."""
    listed = predictor.get("untrusted_types")
    types = [_value(t) for t in listed] if isinstance(listed, list) else []
    if not types:
        return None
    return (
        f"{', '.join(types)} (loading needs each: --trusted TYPE on servefn serve, predict "
        "and check, or the app setting SERVEFN_TRUSTED)"
    )


_SHOWN_CATEGORIES = 8


def _columns(title: str, spec: Mapping[str, Any], *, with_index: bool) -> str:
    header = ["name", "type", *(["index"] if with_index else []), "role", "required"]
    rows = []
    listed = spec.get("columns")
    for column in listed if isinstance(listed, list) else []:
        if not isinstance(column, Mapping):
            continue
        kind = str(column.get("type", ""))
        categories = column.get("categories")
        if isinstance(categories, list):  # a categorical column: its values, a few shown
            shown = ", ".join(_value(c) for c in categories[:_SHOWN_CATEGORIES])
            more = len(categories) - _SHOWN_CATEGORIES
            kind = f"{kind} ({shown}{f', +{more} more' if more > 0 else ''})"
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
    trainer = _value(training.get("trainer", ""))
    if isinstance(steps, list) and steps:
        trainer += f" (pipeline: {' -> '.join(map(_value, steps))})"
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
    for label, key in (
        ("parameters", "params"),
        ("auto-tuned", "tuned"),
        ("parity with the source model", "parity"),
    ):
        values = _mapping(training.get(key))
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


def _bytes(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _value(value)


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
