"""``predict_batch``: plan a run (partitions, formats, outputs), then score in this process or
on a Dask cluster, and report."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from os import PathLike, fspath
from typing import TextIO

from servefn.batch.engine import (
    MatrixCallback,
    check_options,
    output_names,
    score_partition,
    score_stream,
)
from servefn.batch.errors import BatchError, BatchUsageError
from servefn.batch.options import BatchOptions, Format, format_of
from servefn.batch.report import BatchReport, PartitionReport
from servefn.batch.storage import (
    STDOUT,
    Location,
    is_folder,
    list_partitions,
    open_text,
    part_name,
    prepare_folder,
    remove,
    target_exists,
)
from servefn.batch.writers import writer_for
from servefn.errors import ServefnError
from servefn.loaders import loader_for, takes_connection
from servefn.loaders.base import redact
from servefn.loaders.schemes import check_connection
from servefn.model._archive import LoadedModel, load_model, write_model

__all__ = ["ModelArg", "Plan", "plan_batch", "predict_batch"]

ModelArg = LoadedModel | bytes | str | PathLike[str]
"""A loaded model, the bytes of a model.zip, or a path or URL that servefn's loaders read."""


@dataclass(frozen=True)
class Plan:
    """What a run reads and writes, with every format resolved."""

    partitions: tuple[Location, ...]
    options: BatchOptions
    output: str
    """The output as given: :data:`STDOUT`, a file, or a folder of part files."""
    targets: tuple[Location, ...]
    """One part file per partition, or empty when everything goes to one output."""


def plan_batch(
    input: str, output: str | None, options: BatchOptions, *, cluster: bool = False
) -> Plan:
    """List the partitions, resolve formats and decide the outputs (nothing is written)."""
    partitions = tuple(list_partitions(input, options))
    input_format = options.input_format or format_of(partitions[0].display)
    if input_format is None:
        raise BatchUsageError(
            f"cannot tell the format of {partitions[0].display} from its name; pass "
            "--format csv or --format jsonl"
        )
    target = STDOUT if output is None else output
    folder = target != STDOUT and is_folder(target, options)
    if cluster and not folder:
        raise BatchUsageError(
            "with a Dask scheduler the output must be a folder URL ending in '/'; each input "
            "file is scored into its own part file there"
        )
    output_format: Format = (
        options.output_format
        or (format_of(target) if target != STDOUT and not folder else None)
        or input_format
    )
    resolved = replace(options, input_format=input_format, output_format=output_format)
    if not folder:
        if target != STDOUT and not options.overwrite and target_exists(target, options):
            raise BatchUsageError(f"the output {target} exists; remove it or pass --overwrite")
        return Plan(partitions, resolved, target, ())
    targets = tuple(part_name(target, i, output_format) for i in range(len(partitions)))
    return Plan(partitions, resolved, target, targets)


def predict_batch(
    model: ModelArg,
    input: str,
    output: str | None = None,
    *,
    options: BatchOptions | None = None,
    scheduler: str | None = None,
    on_rows: Callable[[int], None] | None = None,
    stdout: TextIO | None = None,
    on_matrix: MatrixCallback | None = None,
) -> BatchReport:
    """Score every row of ``input`` with ``model`` into ``output``.

    Parameters
    ----------
    model:
        A :class:`~servefn.LoadedModel`, the bytes of a model.zip, or a path or URL
        (``blob://``, ``az://`` through ``options.connection``, any fsspec URL).
    input:
        A path or fsspec URL of one file, a glob, or a folder; each file is a partition.
    output:
        ``None`` or ``"-"``: standard output. A folder (ends with ``/``, or exists): one
        ``part-NNNNN`` file per partition. Otherwise one file with every partition in order.
    scheduler:
        A Dask scheduler address (``tcp://host:8786``): each partition is scored by a worker.
        Needs ``pip install 'servefn[dask]'`` here and on the workers.
    on_rows:
        Called with the number of input rows processed since the last call (for progress).
    on_matrix:
        Called with the model and each chunk's feature matrix of the rows scored, in this
        process (not with a scheduler): ``servefn predict --report`` measures drift with it.

    Raises :class:`~servefn.errors.DataFormatError` for a bad row when
    ``options.on_error == "fail"``, :class:`BatchUsageError` when the run cannot start as
    asked (:class:`~servefn.loaders.schemes.ConnectionNotApplicable` when
    ``options.connection`` is given but none of model, input and output is in Azure Storage),
    and :class:`BatchError` when the input, output, model or cluster fails. A failed run
    removes the output files it wrote.
    """
    started = time.perf_counter()
    options = options or BatchOptions()
    named = [fspath(model)] if isinstance(model, (str, PathLike)) else []
    written = [output] if output is not None and output != STDOUT else []
    check_connection(options.connection or None, *named, input, *written)
    if on_matrix is not None and scheduler is not None:
        raise BatchUsageError("a drift report is made in this process; not with a scheduler")
    loaded, archive = _load(model, options)
    plan = plan_batch(input, output, options, cluster=scheduler is not None)
    check_options(loaded, plan.options)
    if plan.targets:
        prepare_folder(plan.output, plan.options)
    if scheduler is not None:
        from servefn.batch.cluster import score_on_cluster

        reports = score_on_cluster(
            archive or _archive(loaded),
            plan.partitions,
            plan.targets,
            plan.options,
            scheduler,
            on_rows,
        )
        _raise_first_error(reports, plan)
    elif plan.targets:
        reports = []
        for source, target in zip(plan.partitions, plan.targets, strict=True):
            reports.append(
                score_partition(loaded, source, target, plan.options, on_rows, on_matrix)
            )
            _raise_first_error(reports, plan)
    else:
        reports = _score_into_one(loaded, plan, on_rows, stdout or sys.stdout, on_matrix)
    return BatchReport(tuple(reports), time.perf_counter() - started)


def _score_into_one(
    model: LoadedModel,
    plan: Plan,
    on_rows: Callable[[int], None] | None,
    stdout: TextIO,
    on_matrix: MatrixCallback | None = None,
) -> list[PartitionReport]:
    """Every partition, in order, into one file (one header) or standard output."""
    options = plan.options
    output_format = options.output_format
    assert output_format is not None
    names = output_names(model, options)
    reports: list[PartitionReport] = []
    target = Location(plan.output, redact(plan.output))

    def score_all(out: TextIO) -> None:
        writer = writer_for(output_format, out, names)
        for source in plan.partitions:
            report = PartitionReport(source.display, target.display)
            reports.append(report)
            with open_text(source, "r", options) as stream:
                score_stream(model, stream, writer, report, options, on_rows, on_matrix)
        writer.close()

    if plan.output == STDOUT:
        score_all(stdout)
        stdout.flush()
        return reports
    try:
        with open_text(target, "w", options) as out:
            score_all(out)
    except (ServefnError, OSError):
        remove(target, options)
        raise
    return reports


def _raise_first_error(reports: list[PartitionReport], plan: Plan) -> None:
    """Remove every part file of a failed run, then raise the first partition's error."""
    failed = next((r for r in reports if r.error is not None), None)
    if failed is None:
        return
    for target in plan.targets:
        remove(target, plan.options)
    if failed.bad_row is not None:
        raise failed.bad_row.to_error()
    raise BatchError(failed.error or "")


def _load(model: ModelArg, options: BatchOptions) -> tuple[LoadedModel, bytes | None]:
    """The model, and its archive's bytes when it was read from some (to ship to workers)."""
    if isinstance(model, LoadedModel):
        return model, None
    if isinstance(model, bytes):
        return load_model(model, trusted=options.trusted), model
    uri = fspath(model)
    connection = options.connection or None  # for the run: the model may be local, data in Azure
    loader = loader_for(uri, connection if takes_connection(uri) else None)
    fetched = loader.fetch()
    assert fetched is not None  # only a fetch with an etag can answer "unchanged"
    return load_model(fetched.data, trusted=options.trusted), fetched.data


def _archive(loaded: LoadedModel) -> bytes:
    """A loaded model saved again (reproducibly: same manifest, same created time)."""
    buffer = io.BytesIO()
    write_model(
        buffer,
        loaded.predictor,
        input=loaded.input_schema,
        output=loaded.output_schema,
        training=loaded.manifest.get("training"),
        created=datetime.fromisoformat(str(loaded.manifest["created"])),
        profile=loaded.manifest.get("profile"),
    )
    return buffer.getvalue()
