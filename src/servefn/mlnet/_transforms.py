"""Decoders of ML.NET's data transformers, each the dual of its class's SaveModel.

Every decoder reads one component's block through its :class:`Context` (which refuses a block
not read to its last byte) and returns a :class:`Step`: what it computes, and the parameters it
holds for ``servefn inspect``. ``TransformerChain`` nests (``Transform_NNN`` folders) and is
flattened in order, its depth bounded by the context. Sources (``src/Microsoft.ML.Data``):
``DataLoadSave/TransformerChain.cs``, ``Transforms/ColumnCopying.cs``,
``ColumnConcatenatingTransformer.cs``, ``ValueToKeyMappingTransformer.cs`` (+ ``...Impl.cs``,
the term maps), ``KeyToVector.cs``, ``KeyToValue.cs``, ``Normalizer.cs`` and ``NormalizeColumn.cs``
(``AffineNormSerializationUtils``). A component servefn does not decode is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.mlnet._binary import MlnetError, Reader
from servefn.mlnet._context import Context
from servefn.mlnet._dataview import ColumnType, read_codec
from servefn.model._limits import MAX_CATEGORIES, MAX_COLUMNS, MAX_FEATURES

__all__ = ["Affine", "Step", "TermMap", "decode_chain", "show"]

MAX_TRANSFORMS = 4096
"""Most transformers one chain may hold."""
_SHOWN = 12  # values listed for inspect before "... (n in all)"


@dataclass
class TermMap:
    """A ValueToKey vocabulary: the item type and the terms in key order (key = index + 1)."""

    item: str
    terms: list[Any]


@dataclass
class Affine:
    """A NormalizeMinMax / MeanVariance / ... column function: ``(x - offset) * scale``."""

    type: ColumnType
    scale: NDArray[np.float64]
    offset: NDArray[np.float64]


@dataclass
class Step:
    """One transformer: ``op`` (copy, concat, tokey, tovector, tovalue, normalize, predict),
    its ``(output, inputs)`` columns and its decoded parameters."""

    path: str
    loader: str
    op: str
    columns: list[tuple[str, list[str]]]
    params: dict[str, Any] = field(default_factory=dict)
    maps: list[TermMap] = field(default_factory=list)
    bags: list[bool] = field(default_factory=list)
    functions: list[Affine] = field(default_factory=list)
    model: Any = None

    def summary(self) -> dict[str, Any]:
        cols = [f"{out} <- {', '.join(ins)}" if ins != [out] else out for out, ins in self.columns]
        where = self.path.replace("/", "\\")
        return {"component": where, "loader": self.loader, "columns": cols, **self.params}


def show(values: Any) -> str:
    """A short rendering of a list of values for inspect (the first few, then the count)."""
    items = list(values)
    shown = ", ".join(_fmt(v) for v in items[:_SHOWN])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _SHOWN else "")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def _pairs(ctx: Context) -> list[tuple[str, list[str]]]:
    """OneToOneTransformerBase: an int count, then (output, input) name ids."""
    n = ctx.reader.count("columns", 8, limit=MAX_COLUMNS)
    if n == 0:
        raise ctx.reader.fail("a transformer over no columns")
    return [(ctx.name(), [ctx.name()]) for _ in range(n)]


def _copy(ctx: Context) -> list[Step]:
    ctx.check_version("COPYCOLT", 0x00010001)
    return [Step(ctx.directory, ctx.loader, "copy", _pairs(ctx))]


def _concat(ctx: Context) -> list[Step]:
    ctx.check_version("CONCAT F", 0x00010003, 0x00010003)
    reader = ctx.reader
    columns = []
    for _ in range(reader.count("columns", 12, limit=MAX_COLUMNS)):
        out = ctx.name()
        sources = []
        for _ in range(reader.count(f"the sources of {out!r}", 8, limit=MAX_FEATURES)):
            sources.append(ctx.name())
            ctx.string_or_none()  # alias: slot names only
        if not sources:
            raise reader.fail(f"{out!r} concatenates no columns")
        columns.append((out, sources))
    if not columns:
        raise reader.fail("a concatenation of no columns")
    return [Step(ctx.directory, ctx.loader, "concat", columns)]


def _term_map(ctx: Context, text_only: bool) -> TermMap:
    reader = ctx.reader
    kind = 0 if text_only else reader.u8()
    if kind == 0:  # text: a count, then string ids
        n = reader.count("terms", 4, limit=MAX_CATEGORIES)
        terms: list[Any] = [ctx.name() for _ in range(n)]
        item = "text"
    elif kind == 1:  # a value codec, a count, then the codec's block
        codec = read_codec(reader)
        n = reader.count("terms", 1, limit=MAX_CATEGORIES)
        terms = _codec_values(reader, codec, n)
        item = codec.item
    else:
        raise reader.fail(f"a term map of unknown type {kind}")
    if len(set(terms)) != len(terms):
        raise reader.fail("a term map holds a term twice")
    return TermMap(item, terms)


_NUMBER_CODECS = {
    "float32": "f4", "float64": "f8", "int32": "i4", "uint32": "u4", "int64": "i8", "uint8": "u1",
}  # fmt: skip


def _codec_values(reader: Reader, kind: ColumnType, n: int) -> list[Any]:
    if kind.size != 0:
        raise reader.fail(f"a term map over {kind} values")
    if kind.item in _NUMBER_CODECS:
        values = reader.array(_NUMBER_CODECS[kind.item], n, "terms")
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise reader.fail("a term map holds NaN or an infinite number")
        return [v for v in values.tolist()]
    if kind.item == "text":  # TextCodec: count, end boundaries, one LEB128-prefixed string
        if reader.i32() != n:
            raise reader.fail("a text term block does not hold its declared count")
        ends = reader.array("i4", n, "text term boundaries")
        text = reader.text("the text terms")
        if (ends < 0).any() or (np.diff(ends) < 0).any() or (n and ends[-1] != len(text)):
            raise reader.fail("text term boundaries do not match the text")
        starts = [0, *ends[:-1].tolist()]
        return [text[s:e] for s, e in zip(starts, ends.tolist(), strict=True)]
    raise reader.fail(f"a term map over {kind.item} values is not supported")


def _to_key(ctx: Context) -> list[Step]:
    ctx.check_version("TERMTRNF", 0x00010003, 0x00010002)
    columns = _pairs(ctx)
    if ctx.version_written >= 0x00010003:
        for _ in columns:
            ctx.reader.boolean()  # key values as text: metadata only
    vocabulary = ctx.need("Vocabulary")
    vocabulary.check_version("TERM MAN", 0x00010002)
    if vocabulary.reader.count("term maps", 1, limit=MAX_COLUMNS) != len(columns):
        raise vocabulary.reader.fail("it holds a term map count unlike its columns'")
    text_only = vocabulary.version_written < 0x00010002
    maps = [_term_map(vocabulary, text_only) for _ in columns]
    vocabulary.done()
    params = {
        f"terms of {out}": f"{len(m.terms)} {m.item}: {show(m.terms)}"
        for (out, _), m in zip(columns, maps, strict=True)
    }
    return [Step(ctx.directory, ctx.loader, "tokey", columns, params, maps=maps)]


def _to_vector(ctx: Context) -> list[Step]:
    ctx.check_version("KEY2VECT", 0x00010002, 0x00010001)
    if ctx.version_written < 0x00010002 and ctx.reader.i32() != 4:
        raise ctx.reader.fail("sizeof(float) is not 4")
    columns = _pairs(ctx)
    bags = [ctx.reader.boolean() for _ in columns]
    params = {"bag": show(bags)}
    return [Step(ctx.directory, ctx.loader, "tovector", columns, params, bags=bags)]


def _to_value(ctx: Context) -> list[Step]:
    ctx.check_version("KEY2VALT", 0x00010001)
    return [Step(ctx.directory, ctx.loader, "tovalue", _pairs(ctx))]


def _column_type(ctx: Context) -> ColumnType:
    """NormalizerTransformer's LoadType: is-vector, item kind (9 float32, 10 float64), size."""
    reader = ctx.reader
    vector = reader.boolean()
    if ctx.version_written < 0x00010002:
        size = reader.i32()
        kind = reader.u8()
    else:
        kind = reader.u8()
        size = 0
        if vector:
            dims = reader.counted("i4", "vector dimensions", limit=8).tolist()
            size = int(np.prod(dims)) if dims and min(dims) > 0 else -1
    if kind not in (9, 10) or (vector and not 0 < size <= MAX_FEATURES):
        raise reader.fail("a normalizer over a column that is not float or a float vector")
    return ColumnType("float32" if kind == 9 else "float64", size if vector else 0)


def _affine(ctx: Context, kind: ColumnType) -> Affine:
    """AffineNormExec: (x - offset) * scale per slot, maybe sparse (``morph`` indices)."""
    if ctx.loader != "AffineNormExec":
        raise MlnetError(
            f"ML.NET model: normalizer {ctx.loader!r} in {ctx.directory.replace('/', chr(92))} is "
            "not supported (servefn serves the affine normalizers: MinMax, MeanVariance, "
            "RobustScaling)"
        )
    ctx.check_version("AFF NORM", 0x00010003, 0x00010003)
    reader = ctx.reader
    cb = reader.i32()
    code = {4: "f4", 8: "f8"}.get(cb)
    if code is None or (cb == 4) != (kind.item == "float32"):
        raise reader.fail(f"sizeof(float) {cb} does not match the column's {kind.item}")
    size = reader.i32()
    if size != kind.width:
        raise reader.fail(f"it normalizes {size} slots of a column of {kind.width}")
    morph = reader.i32()
    if not -1 <= morph < size:
        raise reader.fail(f"{morph} morphed slots of {size}")
    index = (
        np.arange(size)
        if morph == -1
        else reader.array("i4", morph, "morphed slots").astype(np.int64)
    )
    if morph > 0 and ((np.diff(index) <= 0).any() or index[0] < 0 or index[-1] >= size):
        raise reader.fail("its morphed slots are not increasing within the column")
    scales = reader.counted(code, "scales")
    offsets = reader.counted(code, "offsets")
    if len(scales) != len(index) or len(offsets) not in (0, len(index)):
        raise reader.fail("its scales and offsets do not match its slots")
    if np.isnan(scales).any() or np.isnan(offsets).any():
        raise reader.fail("a scale or offset is NaN")
    scale, offset = np.ones(size), np.zeros(size)
    scale[index] = scales
    if len(offsets):
        offset[index] = np.where(scales == 0, 0.0, offsets)
    return Affine(kind, scale, offset)


def _normalize(ctx: Context) -> list[Step]:
    ctx.check_version("NORMALZR", 0x00010002)
    columns = _pairs(ctx)
    functions = []
    for i, _ in enumerate(columns):
        kind = _column_type(ctx)
        sub = ctx.need(f"Normalizer_{i:03d}")
        functions.append(_affine(sub, kind))
        sub.done()
    params = {
        f"scale of {out}": show(f.scale.tolist())
        for (out, _), f in zip(columns, functions, strict=True)
    } | {
        f"offset of {out}": show(f.offset.tolist())
        for (out, _), f in zip(columns, functions, strict=True)
    }
    return [Step(ctx.directory, ctx.loader, "normalize", columns, params, functions=functions)]


def _chain(ctx: Context) -> list[Step]:
    ctx.check_version("XF CHAIN", 0x00010001)
    reader = ctx.reader
    n = reader.count("transformers", 4, limit=MAX_TRANSFORMS)
    steps: list[Step] = []
    for i in range(n):
        if reader.i32() & ~7:
            raise reader.fail(f"transformer {i} has an unknown scope")
        steps.extend(decode(ctx.need(f"Transform_{i:03d}")))
    return steps


Decoder = Callable[[Context], list[Step]]
DECODERS: dict[str, Decoder] = {
    "TransformerChain": _chain,
    "CopyTransform": _copy,
    "ConcatTransform": _concat,
    "TermTransform": _to_key,
    "KeyToVectorTransform": _to_vector,
    "KeyToValueTransform": _to_value,
    "Normalizer": _normalize,
}
"""Loader signature -> decoder; ``_models.py`` adds the prediction transformers."""


def decode(ctx: Context) -> list[Step]:
    """The steps of one component, by its loader signature (then its alternate)."""
    decoder = DECODERS.get(ctx.loader) or DECODERS.get(ctx.loader_alt)
    if decoder is None:
        where = ctx.directory.replace("/", "\\")
        raise MlnetError(
            f"ML.NET model: transform {ctx.loader!r} in {where} is not supported (servefn reads "
            f"{', '.join(sorted(DECODERS))})"
        )
    steps = decoder(ctx)
    ctx.done()
    return steps


def decode_chain(ctx: Context) -> list[Step]:
    if ctx.loader != "TransformerChain":
        raise MlnetError(f"ML.NET model: its root is {ctx.loader!r}, not a TransformerChain")
    return decode(ctx)
