"""How a batch run reads, scores and writes (:class:`BatchOptions`, shared by every partition)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from fsspec.utils import infer_compression

from servefn.batch.errors import BatchUsageError

__all__ = ["DEFAULT_CHUNK_SIZE", "BatchOptions", "Format", "OnError", "default_sep", "format_of"]

Format = Literal["csv", "jsonl"]
OnError = Literal["fail", "skip"]
DEFAULT_CHUNK_SIZE = 10_000

_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


@dataclass(frozen=True)
class BatchOptions:
    """Options of a batch run.

    Parameters
    ----------
    input_format, output_format:
        ``"csv"`` (read by the schema's column indices) or ``"jsonl"`` (one JSON object per
        line, by wire name). ``None``: from the file name (``.csv``/``.txt``/``.tsv``,
        ``.jsonl``/``.ndjson``, also under ``.gz``/``.bz2``/``.xz``); the output falls back to
        the input's format.
    chunk_size:
        Rows scored at a time; memory use depends on it, not on the size of the input.
    on_error:
        ``"fail"`` stops at the first bad row; ``"skip"`` leaves bad rows out of the output and
        reports them (file, line, column, reason).
    header:
        CSV input starts with a header line to skip.
    sep:
        CSV field separator; ``None``: a tab for ``.tsv`` files, else a comma.
    keep:
        Input fields copied to every output row, before the predictions: columns of the
        model's input schema by wire name, or any top-level field of a JSONL object (an ``id``).
    connection:
        For ``az://``/``abfs://`` URLs (model, input and output): an app setting name or a
        connection string, meaning what ``connection`` means on a Functions binding.
    storage_options:
        Passed to the fsspec file system of the input and output URLs.
    overwrite:
        Replace an existing output file, or the part files already in an output folder.
    trusted:
        Extra types a scikit-learn (skops) model may hold (``load_model(..., trusted=...)``).
    """

    input_format: Format | None = None
    output_format: Format | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    on_error: OnError = "fail"
    header: bool = False
    sep: str | None = None
    encoding: str = "utf-8"
    keep: tuple[str, ...] = ()
    connection: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    trusted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        formats = get_args(Format)
        for name in ("input_format", "output_format"):
            value = getattr(self, name)
            if value is not None and value not in formats:
                raise BatchUsageError(f"{name} {value!r} is not one of {', '.join(formats)}")
        if self.on_error not in get_args(OnError):
            raise BatchUsageError(f"on_error {self.on_error!r} is not 'fail' or 'skip'")
        if isinstance(self.chunk_size, bool) or self.chunk_size < 1:
            raise BatchUsageError(f"chunk_size must be a positive number, not {self.chunk_size}")
        if self.sep is not None and len(self.sep) != 1:
            raise BatchUsageError(f"the separator must be one character, not {self.sep!r}")
        if isinstance(self.keep, str):
            raise BatchUsageError("keep is a list of field names, not one string")
        if isinstance(self.trusted, str):
            raise BatchUsageError("trusted is a list of type names, not one string")
        duplicates = sorted({k for k in self.keep if self.keep.count(k) > 1})
        if duplicates:
            raise BatchUsageError(f"keep names {duplicates} more than once")


def format_of(name: str) -> Format | None:
    """The format a file name implies (``scores.csv.gz`` -> csv), or None."""
    stem = name.rsplit("/", 1)[-1].lower()
    if infer_compression(stem) is not None:
        stem = stem.rsplit(".", 1)[0]
    dot = stem.rfind(".")
    return _SUFFIXES.get(stem[dot:]) if dot > 0 else None


def default_sep(name: str) -> str:
    """A tab for ``.tsv`` files (compressed or not), else a comma."""
    stem = name.rsplit("/", 1)[-1].lower()
    if infer_compression(stem) is not None:
        stem = stem.rsplit(".", 1)[0]
    return "\t" if stem.endswith(".tsv") else ","
