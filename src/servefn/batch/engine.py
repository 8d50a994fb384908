"""Score a stream chunk by chunk: the same code runs in the command line and on Dask workers.

Memory is bounded by the chunk size: one chunk of input rows, its feature matrix and its
predictions are alive at a time, whatever the size of the input.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from servefn.batch.errors import BatchError, BatchUsageError
from servefn.batch.options import BatchOptions, default_sep
from servefn.batch.readers import Chunk, read_chunks
from servefn.batch.report import BadRow, PartitionReport
from servefn.batch.storage import Location, open_text, remove
from servefn.batch.writers import Writer, writer_for
from servefn.errors import DataFormatError, FeatureValueError, ServefnError
from servefn.loaders.base import describe_error
from servefn.model._archive import LoadedModel, load_model
from servefn.model._inputs import refused_missing
from servefn.schema import layout_of

__all__ = ["check_options", "output_names", "score_partition", "score_stream"]

RowsCallback = Callable[[int], None]
MatrixCallback = Callable[[LoadedModel, Any], None]
"""Told how many more input rows (good and bad) have been processed."""

_models: dict[str, LoadedModel] = {}
_models_lock = threading.Lock()
_MAX_CACHED_MODELS = 2


def output_names(model: LoadedModel, options: BatchOptions) -> list[str]:
    """The output columns: the ``keep`` fields, then the model's outputs by wire name."""
    predicted = [c.name for c in layout_of(model.output_schema).columns if c.role != "ignore"]
    return [*options.keep, *predicted]


def check_options(model: LoadedModel, options: BatchOptions) -> None:
    """Refuse, before any work, options that cannot work with this model."""
    columns = layout_of(model.input_schema).columns
    predicted = output_names(model, options)[len(options.keep) :]
    clash = sorted(set(options.keep) & set(predicted))
    if clash:
        raise BatchUsageError(f"cannot keep {clash}: the model's outputs have the same names")
    if options.input_format != "csv":
        return
    unindexed = [c.name for c in columns if c.index is None and c.required]
    if unindexed:
        raise BatchUsageError(
            f"the model's input columns {unindexed} have no column index, so CSV cannot be "
            "read by position; send JSONL (one object per line, by name)"
        )
    readable = [c.name for c in columns if c.index is not None]
    unusable = [k for k in options.keep if k not in readable]
    if unusable:
        raise BatchUsageError(
            f"cannot keep {unusable} from CSV input: only the input schema's indexed columns "
            f"can be kept ({readable})"
        )


def score_stream(
    model: LoadedModel,
    stream: TextIO,
    writer: Writer,
    report: PartitionReport,
    options: BatchOptions,
    on_rows: RowsCallback | None = None,
    on_matrix: MatrixCallback | None = None,
) -> None:
    """Score every row of ``stream`` (named ``report.source``) into ``writer``.

    Bad rows are added to ``report`` or, with ``on_error="fail"``, raised as
    :class:`~servefn.errors.DataFormatError`. ``on_matrix`` sees each chunk's feature matrix
    of the rows scored, with the model (``servefn predict --report`` measures their drift).
    """
    predicted = output_names(model, options)[len(options.keep) :]
    sep = options.sep or default_sep(report.source)
    chunks = read_chunks(
        stream,
        model.input_schema,
        source=report.source,
        options=options,
        sep=sep,
        dtype=model.predictor.dtype,
    )
    fail = options.on_error == "fail"
    try:
        for read in chunks:
            report.add_bad(read.bad)
            chunk = _refuse_missing(model, read, report, fail)
            if chunk.lines:
                chunk, outputs = _predict_known(model, chunk, report, fail)
            if chunk.lines:
                missing = [name for name in predicted if name not in outputs]
                if missing:
                    raise BatchError(
                        f"the model does not produce the outputs {missing} that its output "
                        f"schema declares; it produces {sorted(outputs)}"
                    )
                writer.write([*chunk.kept.items(), *((n, outputs[n]) for n in predicted)])
                report.rows += len(chunk.lines)
                if on_matrix is not None:
                    on_matrix(model, chunk.matrix)
            if on_rows is not None:
                on_rows(read.size)
    except UnicodeDecodeError as exc:
        raise BatchError(
            f"{report.source} is not valid {options.encoding} text (byte {exc.start} of a "
            "block); pass the file's encoding"
        ) from None


def score_partition(
    model: LoadedModel | bytes,
    source: Location,
    target: Location,
    options: BatchOptions,
    on_rows: RowsCallback | None = None,
    on_matrix: MatrixCallback | None = None,
) -> PartitionReport:
    """Score one input file into its own output file: one Dask task.

    Never raises for bad data, storage or the model: the report carries the error (a message,
    so it crosses process boundaries) and the partial output is removed.
    """
    assert options.output_format is not None
    report = PartitionReport(source.display, target.display)
    opened = False
    try:
        loaded = model if isinstance(model, LoadedModel) else _cached_model(model, options.trusted)
        names = output_names(loaded, options)
        with open_text(source, "r", options) as stream, open_text(target, "w", options) as out:
            opened = True
            writer = writer_for(options.output_format, out, names)
            score_stream(loaded, stream, writer, report, options, on_rows, on_matrix)
            writer.close()
    except (ServefnError, OSError) as exc:
        report.error = str(exc) if isinstance(exc, ServefnError) else describe_error(exc)
        if isinstance(exc, DataFormatError):
            report.bad_row = BadRow.from_error(exc)
        if opened:
            remove(target, options)
    return report


def _refuse_missing(model: LoadedModel, chunk: Chunk, report: PartitionReport, fail: bool) -> Chunk:
    """The chunk without rows holding a missing value the model cannot impute (bad rows)."""
    if not chunk.lines:
        return chunk
    refused = refused_missing(chunk.matrix, model.predictor)
    if not refused.any():
        return chunk
    names = layout_of(model.input_schema).feature_names
    bad = [
        BadRow(
            report.source,
            chunk.lines[row],
            f"{names[int(np.flatnonzero(refused[row])[0])]}: the value is missing and the model "
            "cannot impute it",
        )
        for row in np.flatnonzero(refused.any(axis=1))
    ]
    return _without(chunk, refused.any(axis=1), bad, report, fail)


def _predict_known(
    model: LoadedModel, chunk: Chunk, report: PartitionReport, fail: bool
) -> tuple[Chunk, Any]:
    """:func:`_predict`, leaving out as bad rows those holding a value the model refuses (a
    category its encoder does not know): the rows scored and their outputs."""
    names = layout_of(model.input_schema).feature_names
    while chunk.lines:
        try:
            return chunk, _predict(model, chunk, report.source)
        except BatchError as exc:
            refused = exc.__cause__
            if not isinstance(refused, FeatureValueError) or not refused.rows:
                raise
            mask = np.zeros(len(chunk.lines), dtype=bool)
            mask[[r for r in refused.rows if r < len(mask)]] = True
            name = names[refused.feature] if refused.feature < len(names) else "a feature"
            reason = f"{name}: the model does not know the value ({refused.reason})"
            bad = [BadRow(report.source, chunk.lines[r], reason) for r in np.flatnonzero(mask)]
            chunk = _without(chunk, mask, bad, report, fail)
    return chunk, {}


def _without(
    chunk: Chunk, drop: Any, bad: list[BadRow], report: PartitionReport, fail: bool
) -> Chunk:
    """``chunk`` less the rows flagged in ``drop``, which are reported as ``bad``."""
    if fail:
        raise bad[0].to_error()
    report.add_bad(bad)
    keep = np.flatnonzero(~drop)
    kept = {
        k: v[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep]
        for k, v in chunk.kept.items()
    }
    return Chunk(lines=[chunk.lines[i] for i in keep], matrix=chunk.matrix[keep], kept=kept, bad=[])


def _predict(model: LoadedModel, chunk: Chunk, source: str) -> Any:
    """The predictor's outputs for the chunk's good rows.

    A lone row is scored as two copies of itself: BLAS multiplies a one-row matrix with a
    different kernel (gemv) than a larger one (gemm), and the last bit of a score would then
    depend on where chunk boundaries fall. This keeps every output byte-identical whatever the
    chunk size, skipped rows or partitioning.
    """
    matrix = chunk.matrix
    try:
        if len(matrix) == 1:
            outputs = model.predictor.predict(np.vstack([matrix, matrix]))
            return {name: values[:1] for name, values in outputs.items()}
        return model.predictor.predict(matrix)
    except Exception as exc:  # a predictor is user code: report where it failed, not a traceback
        lines = f"lines {chunk.lines[0]}-{chunk.lines[-1]}"
        raise BatchError(f"the model failed on {source}, {lines}: {describe_error(exc)}") from exc


def _cached_model(data: bytes, trusted: tuple[str, ...] = ()) -> LoadedModel:
    """The model in archive ``data``, parsed once per process (Dask workers reuse it)."""
    key = hashlib.sha256(data).hexdigest()
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = load_model(data, trusted=trusted)
            if len(_models) >= _MAX_CACHED_MODELS:
                _models.pop(next(iter(_models)))
            _models[key] = model
    return model
