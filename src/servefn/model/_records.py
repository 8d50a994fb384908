"""The outputs of one batch: arrays by output column, with records made only when asked for.

``LoadedModel.predict`` returns :class:`Predictions`; the HTTP layer serialises its arrays
directly, so a handler that returns it costs no per-row object construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

from servefn.schema import layout_of
from servefn.schema._schema import Schema

__all__ = ["Predictions", "Records"]


class Records(tuple[Schema, ...]):
    """Validated input records, with the feature matrix already built from them.

    What a ``serve_http`` handler receives as ``inputs``: an immutable sequence, so the matrix
    stays true to it, and ``LoadedModel.predict(inputs)`` reuses the matrix.
    """

    matrix: Any
    row: Sequence[float] | None
    """For one record of plain floats, its features (checked by the HTTP layer), else None."""

    def __new__(
        cls, records: Sequence[Schema], matrix: Any = None, row: Sequence[float] | None = None
    ) -> Records:
        self = super().__new__(cls, records)
        self.matrix = matrix
        self.row = row
        return self


class Predictions(Sequence[Schema]):
    """A read-only sequence of output records backed by ``arrays`` (wire name -> one per row)."""

    __slots__ = ("_records", "arrays", "schema")

    def __init__(self, schema: type[Schema], arrays: Mapping[str, Any]) -> None:
        self.schema = schema
        self.arrays = arrays
        self._records: list[Schema] | None = None

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready dicts keyed by wire name, straight from the arrays."""
        return layout_of(self.schema).records_from_arrays(self.arrays)

    def _all(self) -> list[Schema]:
        if self._records is None:
            self._records = layout_of(self.schema).from_arrays(self.arrays)
        return self._records

    def __len__(self) -> int:
        first = next(iter(self.arrays.values()), ())
        return len(first)

    @overload
    def __getitem__(self, index: int) -> Schema: ...

    @overload
    def __getitem__(self, index: slice) -> list[Schema]: ...

    def __getitem__(self, index: int | slice) -> Schema | list[Schema]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Schema]:
        return iter(self._all())

    def __repr__(self) -> str:
        return f"Predictions({self.schema.__name__}, rows={len(self)})"
