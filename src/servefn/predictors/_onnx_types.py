"""ONNX's type messages, read within bounds: what a graph input or output holds.

A :class:`ValueInfo` is a graph input's or output's name, kind (tensor, sequence, map, ...),
element type and shape as the graph declares them; :class:`TypeReader` reads ``ValueInfoProto``
and ``TypeProto`` (sequences of maps of tensors, nested as deep as the message depth cap lets
them) on top of :class:`~._onnx_wire.WireReader`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from servefn.predictors._onnx_wire import WireReader

__all__ = ["ELEMENT_TYPES", "Dim", "TypeReader", "ValueInfo"]

ELEMENT_TYPES: dict[int, str] = {
    1: "float",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "double",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    16: "bfloat16",
}
"""TensorProto.DataType -> the name onnxruntime uses in ``tensor(<name>)``."""

Dim = int | str | None
"""A dimension: its size, a symbolic name (``"N"``), or None when unknown or dynamic."""


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: its name, type and shape as the graph declares them.

    ``kind`` is ``tensor``, ``sequence``, ``map``, ``optional``, ``sparse_tensor``, ``opaque``
    or ``""`` (no type declared); ``elem_type`` the tensor's ``TensorProto.DataType`` (0 when not
    a tensor); ``shape`` one entry per dimension, or None when the rank is unknown.
    """

    name: str
    kind: str
    elem_type: int = 0
    shape: tuple[Dim, ...] | None = None
    inner: str = ""

    @property
    def type_name(self) -> str:
        """The element type's name (``float``, ``int64``, ...), or ``""``."""
        return ELEMENT_TYPES.get(self.elem_type, f"type {self.elem_type}" if self.elem_type else "")

    def describe(self) -> str:
        """``name: tensor(float)[N, 4]``, ``name: seq(map(int64,tensor(float)))``."""
        if self.kind != "tensor":
            return f"{self.name!r}: {self.inner or self.kind or 'untyped'}"
        shape = "" if self.shape is None else "[" + ", ".join(_dim(d) for d in self.shape) + "]"
        return f"{self.name!r}: tensor({self.type_name or '?'}){shape}"


def _dim(d: Dim) -> str:
    return "?" if d is None else str(d)


_UNTYPED = ValueInfo("", "")
_TYPE_KINDS = {
    1: "tensor",
    4: "sequence",
    5: "map",
    7: "opaque",
    8: "sparse_tensor",
    9: "optional",
}
"""TypeProto's oneof: field number -> kind."""


class TypeReader(WireReader):
    """Reads ValueInfoProto and TypeProto spans."""

    def value_info(self, pos: int, end: int, depth: int) -> ValueInfo:
        self.check_depth(depth, pos)
        name, typed = "", _UNTYPED
        for f in self.fields(pos, end, frozenset({1, 2})):
            if f[0] == 1:
                name = self.text(f, "value name")
            else:
                typed = self.type_proto(*self.span(f, "type"), depth + 1)
        return replace(typed, name=name)

    def type_proto(self, pos: int, end: int, depth: int) -> ValueInfo:
        """A TypeProto as an unnamed :class:`ValueInfo` (the last of its oneof wins)."""
        self.check_depth(depth, pos)
        result = _UNTYPED
        for f in self.fields(pos, end, frozenset(_TYPE_KINDS)):
            a, b = self.span(f, "type")
            kind = _TYPE_KINDS[f[0]]
            if kind in ("tensor", "sparse_tensor"):
                elem, shape = self.tensor_type(a, b, depth + 1)
                described = f"{kind}({ELEMENT_TYPES.get(elem, str(elem))})"
                result = ValueInfo("", kind, elem, shape, described)
            elif kind in ("sequence", "optional"):
                inner = self.inner(a, b, depth + 1)
                result = ValueInfo(
                    "", kind, inner=f"{kind[:3] if kind == 'sequence' else kind}({inner})"
                )
            elif kind == "map":
                result = ValueInfo("", kind, inner=f"map({self.map_type(a, b, depth + 1)})")
            else:
                result = ValueInfo("", kind, inner=kind)
        return result

    def inner(self, pos: int, end: int, depth: int) -> str:
        described = "?"
        for f in self.fields(pos, end, frozenset({1})):
            described = self.type_proto(*self.span(f, "element type"), depth + 1).inner or "?"
        return described

    def map_type(self, pos: int, end: int, depth: int) -> str:
        key, value = "?", "?"
        for f in self.fields(pos, end, frozenset({1, 2})):
            if f[0] == 1:
                key = ELEMENT_TYPES.get(self.number(f, "key type"), "?")
            else:
                value = self.type_proto(*self.span(f, "value type"), depth + 1).inner or "?"
        return f"{key},{value}"

    def tensor_type(self, pos: int, end: int, depth: int) -> tuple[int, tuple[Dim, ...] | None]:
        self.check_depth(depth, pos)
        elem, shape = 0, None
        for f in self.fields(pos, end, frozenset({1, 2})):
            if f[0] == 1:
                elem = self.number(f, "elem_type")
            else:
                shape = self.shape(*self.span(f, "shape"), depth + 1)
        return elem, shape

    def shape(self, pos: int, end: int, depth: int) -> tuple[Dim, ...]:
        self.check_depth(depth + 1, pos)
        dims: list[Dim] = []
        for f in self.fields(pos, end, frozenset({1})):
            dim: Dim = None
            for g in self.fields(*self.span(f, "dimension"), frozenset({1, 2})):
                if g[0] == 1:
                    value = self.number(g, "dim_value")
                    dim = value if value >= 0 else None  # ML.NET writes -1 for "any"
                else:
                    dim = self.text(g, "dim_param") or None
            dims.append(dim)
        return tuple(dims)
