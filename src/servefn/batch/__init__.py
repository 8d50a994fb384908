"""Offline batch scoring with a model.zip: ``servefn predict``, and the same from Python.

::

    from servefn.batch import BatchOptions, predict_batch

    report = predict_batch("model.zip", "flowers.csv", "scores.csv")
    report = predict_batch(
        "az://models/model.zip",
        "az://data/flowers/*.csv",               # each file is a partition
        "az://data/scores/",                      # part-00000.csv, part-00001.csv...
        options=BatchOptions(on_error="skip", connection="AzureWebJobsStorage"),
        scheduler="tcp://10.0.0.4:8786",          # score the partitions on a Dask cluster
    )
    print(report.rows, report.skipped, report.bad_rows[:3])

CSV input is read by the input schema's column indices, JSONL by wire names. Rows are read,
scored and written a chunk at a time, so memory does not grow with the input. Output rows are
in input order; bad rows fail the run or are skipped and reported with their line numbers.
"""

from __future__ import annotations

from servefn.batch.errors import BatchError, BatchUsageError
from servefn.batch.options import DEFAULT_CHUNK_SIZE, BatchOptions, Format, OnError
from servefn.batch.report import MAX_REPORTED, BadRow, BatchReport, PartitionReport
from servefn.batch.run import ModelArg, predict_batch

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_REPORTED",
    "BadRow",
    "BatchError",
    "BatchOptions",
    "BatchReport",
    "BatchUsageError",
    "Format",
    "ModelArg",
    "OnError",
    "PartitionReport",
    "predict_batch",
]
