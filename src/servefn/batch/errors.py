"""Why a batch run failed (both picklable, so a Dask worker can hand them back)."""

from __future__ import annotations

from servefn.errors import ServefnError

__all__ = ["BatchError", "BatchUsageError"]


class BatchError(ServefnError):
    """Batch scoring failed: the input, the output, the model or the cluster could not be used."""


class BatchUsageError(BatchError):
    """The run cannot start as asked: no input matches, the output exists, unknown format..."""
