"""What a batch run did: rows scored, bad rows (with file, line and column), outputs written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from servefn.errors import DataFormatError

__all__ = ["MAX_REPORTED", "BadRow", "BatchReport", "PartitionReport"]

MAX_REPORTED = 20
"""Bad rows kept with their details, per partition and per run; the rest are only counted."""


@dataclass(frozen=True)
class BadRow:
    """A row that could not be scored: where it is and why."""

    source: str
    line: int
    reason: str
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}, line {self.line}"
        return (
            where
            + (f", column {self.column}" if self.column is not None else "")
            + (f": {self.reason}")
        )

    @classmethod
    def from_error(cls, exc: DataFormatError) -> BadRow:
        """The bad row a :class:`DataFormatError` describes."""
        where = str(cls(exc.path, exc.line, "", exc.column))  # "<path>, line <n>[, column <c>]: "
        text = str(exc)
        reason = text[len(where) :] if text.startswith(where) else text
        return cls(exc.path, exc.line, reason, exc.column)

    def to_error(self) -> DataFormatError:
        """The :class:`DataFormatError` to raise for this row when bad rows are fatal."""
        return DataFormatError(self.reason, path=self.source, line=self.line, column=self.column)


@dataclass
class PartitionReport:
    """One input file scored into its output.

    ``error`` is set (and the output removed) when the partition failed: a message rather than
    an exception, so the report travels back from a Dask worker unchanged.
    """

    source: str
    output: str
    rows: int = 0
    """Rows scored and written."""
    skipped: int = 0
    """Bad rows left out (``on_error="skip"``)."""
    bad_rows: list[BadRow] = field(default_factory=list)
    """The first :data:`MAX_REPORTED` bad rows."""
    error: str | None = None
    bad_row: BadRow | None = None
    """The bad row that stopped the partition (``on_error="fail"``)."""

    def add_bad(self, rows: Iterable[BadRow]) -> None:
        for row in rows:
            self.skipped += 1
            if len(self.bad_rows) < MAX_REPORTED:
                self.bad_rows.append(row)


@dataclass(frozen=True)
class BatchReport:
    """A whole run: totals over its partitions, in input order."""

    partitions: tuple[PartitionReport, ...]
    seconds: float

    @property
    def rows(self) -> int:
        """Rows scored and written."""
        return sum(p.rows for p in self.partitions)

    @property
    def skipped(self) -> int:
        """Bad rows left out."""
        return sum(p.skipped for p in self.partitions)

    @property
    def bad_rows(self) -> list[BadRow]:
        """The first :data:`MAX_REPORTED` bad rows over all partitions, in input order."""
        return [row for p in self.partitions for row in p.bad_rows][:MAX_REPORTED]

    @property
    def outputs(self) -> list[str]:
        """Where the predictions went (one entry per part file, or one file, or ``-``)."""
        return list(dict.fromkeys(p.output for p in self.partitions))
