"""Score partitions on a Dask cluster: one task per input file, each writing its own part file.

The model travels once, as the bytes of its model.zip (broadcast to every worker, parsed once
per worker process); tasks return :class:`PartitionReport` values. Workers need servefn (the
same version) and access to the input and output URLs: local paths only work when the workers
share the file system, ``az://`` works from anywhere with the connection settings.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from servefn.batch.engine import score_partition
from servefn.batch.errors import BatchError
from servefn.batch.options import BatchOptions
from servefn.batch.report import PartitionReport
from servefn.batch.storage import Location
from servefn.loaders.base import describe_error, redact

__all__ = ["CONNECT_TIMEOUT", "score_on_cluster"]

CONNECT_TIMEOUT = 30.0
"""Seconds to wait for the scheduler to answer."""

_DASK_EXTRA = "--scheduler needs dask.distributed: pip install 'servefn[dask]'"


def score_on_cluster(
    model: bytes,
    partitions: Sequence[Location],
    targets: Sequence[Location],
    options: BatchOptions,
    scheduler: str,
    on_rows: Callable[[int], None] | None = None,
) -> list[PartitionReport]:
    """Score ``partitions[i]`` into ``targets[i]`` on the cluster at ``scheduler``.

    Returns the reports in partition order once every task has finished; ``on_rows`` hears of
    each partition's rows as it completes.
    """
    try:  # imported as a plain module: distributed's own annotations are partial
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise BatchError(_DASK_EXTRA) from None
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BatchError(
            f"cannot reach the Dask scheduler at {redact(scheduler)}: {describe_error(exc)}"
        ) from None
    with client:
        shared: Any = client.scatter(model, broadcast=True, hash=True)
        run = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                score_partition, shared, source, target, options, key=f"servefn-{run}-{i:05d}"
            )
            for i, (source, target) in enumerate(zip(partitions, targets, strict=True))
        ]
        order = {future.key: i for i, future in enumerate(futures)}
        reports: list[PartitionReport | None] = [None] * len(futures)
        for future in distributed.as_completed(futures, loop=client.loop):
            report: PartitionReport = future.result()
            reports[order[future.key]] = report
            if on_rows is not None:
                on_rows(report.rows + report.skipped)
    return [r for r in reports if r is not None]
