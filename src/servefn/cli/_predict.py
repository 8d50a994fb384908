"""``servefn predict``: offline batch scoring from the command line (see :mod:`servefn.batch`).

The options build a :class:`~servefn.batch.BatchOptions`; the run is
:func:`~servefn.batch.predict_batch`. Predictions go to the output (standard output by
default); progress and the bad-row report go to stderr. Errors are raised for
:func:`servefn.cli._main.main` to report; a malformed row's gets the ``--on-error skip`` hint.
Importing this module is cheap: the batch engine is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from servefn.cli._options import EXIT_OK, Subparsers, add_trusted, positive_int
from servefn.errors import DataFormatError

if TYPE_CHECKING:
    from servefn.batch import BatchReport
    from servefn.telemetry.drift import BatchDrift

__all__ = ["add_predict"]

_PROG = "servefn predict"
_SEPARATORS = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def _separator(text: str) -> str:
    sep = _SEPARATORS.get(text.lower(), text)
    if len(sep) != 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not one character (or one of {', '.join(_SEPARATORS)})"
        )
    return sep


def _predict(args: argparse.Namespace) -> int:
    from servefn.batch import BatchOptions, predict_batch
    from servefn.batch.progress import ProgressLine
    from servefn.loaders.schemes import check_connection
    from servefn.predictors.base import trusted_types
    from servefn.telemetry.drift import BatchDrift

    written = [args.output] if args.output else []
    check_connection(args.connection, args.model, args.input, *written, option="--connection")
    options = BatchOptions(
        input_format=args.format,
        output_format=args.output_format,
        chunk_size=args.chunk_size,
        on_error=args.on_error,
        header=args.header,
        sep=args.sep,
        encoding=args.encoding,
        keep=tuple(args.keep),
        connection=args.connection,
        overwrite=args.overwrite,
        trusted=trusted_types(args.trusted),
    )
    progress = ProgressLine(sys.stderr) if sys.stderr.isatty() else None
    drift = BatchDrift() if args.report else None
    try:
        report = predict_batch(
            args.model,
            args.input,
            args.output,
            options=options,
            scheduler=args.scheduler,
            on_rows=progress,
            on_matrix=drift,
        )
    finally:
        if progress is not None:
            progress.finish()
    _report_skipped(report)
    if drift is not None:
        _report_drift(drift)
    return EXIT_OK


def _report_drift(drift: BatchDrift) -> None:
    """The batch's drift against the training profile, on stderr (predictions may be on
    stdout)."""
    from servefn.cli._profile_text import drift_text
    from servefn.telemetry._settings import drift_settings

    if drift.counts is None:
        why = drift.why or "no row was scored"
        print(f"{_PROG}: no drift report: {why}", file=sys.stderr)
        return
    threshold = drift_settings().threshold
    text = drift_text(drift.counts.report(), drift.counts.profile.rows, threshold)
    print(text, file=sys.stderr)


def _report_skipped(report: BatchReport) -> None:
    if not report.skipped:
        return
    rows = "row" if report.skipped == 1 else "rows"
    print(
        f"{_PROG}: skipped {report.skipped:,} bad {rows} of {report.rows + report.skipped:,}:",
        file=sys.stderr,
    )
    for row in report.bad_rows:
        print(f"  {row}", file=sys.stderr)
    if report.skipped > len(report.bad_rows):
        print(f"  ... and {report.skipped - len(report.bad_rows):,} more", file=sys.stderr)


def add_predict(subparsers: Subparsers) -> None:
    """Register ``servefn predict``."""
    from servefn.batch.options import DEFAULT_CHUNK_SIZE

    parser = subparsers.add_parser(
        "predict",
        help="score a CSV or JSONL file (or many) with a model.zip, offline",
        description=(
            "Score every row of INPUT with MODEL and write the predictions in input order. "
            "CSV is read by the input schema's column indices, JSONL (one object per line) by "
            "name. INPUT and OUTPUT are paths or fsspec URLs (az://, abfs://, s3://...); INPUT "
            "may be a glob or a folder, and an OUTPUT ending in '/' receives one part file per "
            "input file. Memory does not grow with the input: it is read a chunk at a time."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="a model.zip path or URL (blob://, az://)")
    parser.add_argument(
        "-i", "--input", required=True, metavar="FILE_OR_URL", help="file, glob or folder"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE_OR_URL",
        help="file, or folder ending in '/' for part files (default: standard output)",
    )
    parser.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        help="input format (default: from the input's name: .csv .txt .tsv / .jsonl .ndjson)",
    )
    parser.add_argument(
        "--output-format",
        choices=("csv", "jsonl"),
        help="output format (default: from the output's name, else the input format)",
    )
    parser.add_argument(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="a bad row stops the run (fail, the default) or is left out and reported (skip)",
    )
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="FIELD",
        help="copy an input field to each output row (repeatable), e.g. an id or the label",
    )
    parser.add_argument("--header", action="store_true", help="the CSV input has a header line")
    parser.add_argument(
        "--sep",
        type=_separator,
        help="CSV separator: one character, or tab (default: tab for .tsv, else comma)",
    )
    parser.add_argument("--encoding", default="utf-8", help="input text encoding (utf-8)")
    parser.add_argument(
        "--chunk-size",
        type=positive_int("whole number"),
        default=DEFAULT_CHUNK_SIZE,
        metavar="ROWS",
        help=f"rows scored at a time ({DEFAULT_CHUNK_SIZE:,}); memory depends on it",
    )
    parser.add_argument(
        "--connection",
        metavar="SETTING",
        help="for az:// URLs: app setting name or connection string (AzureWebJobsStorage)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="score each input file on this Dask cluster (tcp://host:8786); needs servefn[dask]",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing output or part files"
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="after scoring, print on stderr the batch's drift against the model's training "
        "profile: PSI per feature, out-of-range and missing rates (threshold: the app setting "
        "SERVEFN_DRIFT_THRESHOLD, 0.2)",
    )
    add_trusted(parser)
    parser.set_defaults(
        handler=_predict,
        hints={DataFormatError: "pass --on-error skip to leave bad rows out"},
    )
