"""Why a batch run failed (both picklable, so a Dask worker can hand them back).

::

    ServefnError
     ├── BatchError            the input, output, model or cluster could not be used (exit 1)
     └── UsageError
          └── BatchUsageError  also a BatchError: the run cannot start as asked (exit 2)
"""

from __future__ import annotations

from servefn.errors import ServefnError, UsageError

__all__ = ["BatchError", "BatchUsageError"]


class BatchError(ServefnError):
    """Batch scoring failed: the input, the output, the model or the cluster could not be used."""


class BatchUsageError(BatchError, UsageError):
    """The run cannot start as asked: no input matches, the output exists, unknown format..."""
