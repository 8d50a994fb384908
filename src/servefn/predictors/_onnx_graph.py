"""A bounded reader of ONNX model bytes: the checks a graph passes before onnxruntime sees it.

onnxruntime would read a graph's external-data references (files beside the model, whatever
path they name), look for custom operator domains and parse any nesting it is given. This
module reads the protobuf wire format itself (:mod:`._onnx_wire`, :mod:`._onnx_types`), without
the ``onnx`` package, and refuses:

- a tensor anywhere (initializers, sparse initializers, tensor attributes, function attribute
  defaults, training graphs, every subgraph of If/Loop/Scan) that keeps its data outside the
  file: ``data_location = EXTERNAL`` or ``external_data`` entries;
- a node or an ``opset_import`` in a domain other than ``""``/``ai.onnx``, ``ai.onnx.ml`` and
  ``com.microsoft`` (onnxruntime's own contrib operators, built into its CPU provider: they run
  no code from outside onnxruntime, and exporters and ORT's optimisers emit them), unless the
  node calls a function the model defines itself (its body is checked the same way);
- graphs over :data:`MAX_GRAPH_BYTES`, subgraphs nested over :data:`MAX_SUBGRAPH_DEPTH` levels
  and messages over :data:`MAX_MESSAGE_DEPTH` (protobuf's own recursion limit);
- malformed protobuf: truncated varints, lengths beyond their message, bad wire types.

Every length is checked against its enclosing message before it is used, recursion is cut off
at :data:`MAX_MESSAGE_DEPTH`, and long runs of repeated scalars (tree-ensemble attributes) are
skipped by a regular expression rather than one Python step each. :func:`read_graph` returns
what the predictor needs to bind a feature matrix: the main graph's inputs and outputs with
their types and shapes, the operator sets and the producer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from servefn.errors import ArtifactError
from servefn.predictors._onnx_types import ELEMENT_TYPES, Dim, TypeReader, ValueInfo
from servefn.predictors._onnx_wire import MAX_FIELDS, MAX_MESSAGE_DEPTH

__all__ = [
    "ALLOWED_DOMAINS",
    "ELEMENT_TYPES",
    "MAX_FIELDS",
    "MAX_GRAPH_BYTES",
    "MAX_MESSAGE_DEPTH",
    "MAX_SUBGRAPH_DEPTH",
    "Dim",
    "GraphInfo",
    "ValueInfo",
    "looks_like_onnx",
    "read_graph",
]

MAX_GRAPH_BYTES = 512 << 20
"""Default cap on a graph's size (512 MiB): a tabular or small vision model is far below it."""
MAX_SUBGRAPH_DEPTH = 16
"""Subgraphs (If/Loop/Scan bodies) nested in one another; exporters write 1 to 3."""
ALLOWED_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")
"""Operator domains a served graph may use; ``com.microsoft`` ops are built into onnxruntime."""
_SOURCE = "model.onnx"
_MAX_SHOWN = 80


@dataclass(frozen=True)
class GraphInfo:
    """What :func:`read_graph` found: the main graph's interface and the model's provenance."""

    inputs: tuple[ValueInfo, ...]
    """Inputs a caller must feed (inputs that are also initializers have defaults: left out)."""
    outputs: tuple[ValueInfo, ...]
    opsets: dict[str, int]
    ir_version: int
    producer: str
    n_nodes: int
    functions: tuple[str, ...] = ()


def looks_like_onnx(data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` starts as a serialised ModelProto does: ``ir_version`` (field 1) and a
    small version number. A zip, a pickle or JSON never starts so."""
    head = bytes(data[:2])
    return len(data) > 2 and head[0] == 0x08 and 0 < head[1] < 0x40


def read_graph(
    data: bytes,
    *,
    max_bytes: int = MAX_GRAPH_BYTES,
    max_depth: int = MAX_SUBGRAPH_DEPTH,
    source: str = _SOURCE,
) -> GraphInfo:
    """Check ONNX model bytes and return the main graph's interface, or raise
    :class:`~servefn.errors.ArtifactError` naming what is refused and where."""
    if len(data) > max_bytes:
        raise ArtifactError(
            f"{source} is {_size(len(data))}, over the {_size(max_bytes)} cap on an ONNX graph"
        )
    if not data:
        raise ArtifactError(f"{source} is empty; it is not an ONNX model")
    reader = _Reader(bytes(data), max_depth, source)
    try:
        return reader.model()
    except RecursionError:  # the caller's stack was already deep; the depth caps bound ours
        raise ArtifactError(f"{source} is nested too deeply to read") from None


def _size(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


def _show(text: str) -> str:
    """A name from the graph, for a message: repr (control characters escaped), clipped."""
    shown = repr(text)
    return shown if len(shown) <= _MAX_SHOWN else shown[: _MAX_SHOWN - 4] + "...'"


@dataclass
class _Node:
    where: str
    name: str = ""
    op_type: str = ""
    domains: list[str] = field(default_factory=list)


@dataclass
class _Graph:
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    initializers: set[str] = field(default_factory=set)
    n_nodes: int = 0


class _Reader(TypeReader):
    """One pass over a model's bytes; every method reads one message span."""

    def __init__(self, data: bytes, max_depth: int, source: str) -> None:
        super().__init__(data, source)
        self.max_depth = max_depth
        self.nodes: list[_Node] = []  # nodes in a domain that is not allowed outright
        self.opsets: list[tuple[str, str]] = []  # (domain, where) of every opset_import
        self.functions: set[tuple[str, str]] = set()

    # -- messages --------------------------------------------------------------------------

    def model(self) -> GraphInfo:
        graph = _Graph()
        ir_version, producer, version, opsets, found = 0, "", "", {}, False
        for f in self.fields(0, len(self.data), frozenset({1, 2, 3, 7, 8, 20, 25})):
            number = f[0]
            if number == 1:
                ir_version = self.number(f, "ir_version")
            elif number == 2:
                producer = self.text(f, "producer_name")
            elif number == 3:
                version = self.text(f, "producer_version")
            elif number == 7:
                found = True
                self.graph(*self.span(f, "graph"), 1, 0, "the main graph", graph)
            elif number == 8:
                domain, opset = self.opset(*self.span(f, "opset_import"), "the model")
                opsets[domain] = opset
            elif number == 20:
                self.training(*self.span(f, "training_info"))
            else:
                self.function(*self.span(f, "functions"))
        if not found:
            raise self.fail("the model has no graph; it is not an ONNX model")
        if ir_version <= 0:
            raise self.fail("the model declares no ir_version; it is not an ONNX model")
        self.check_domains()
        return GraphInfo(
            inputs=tuple(i for i in graph.inputs if i.name not in graph.initializers),
            outputs=tuple(graph.outputs),
            opsets=opsets,
            ir_version=ir_version,
            producer=f"{producer} {version}".strip(),
            n_nodes=graph.n_nodes,
            functions=tuple(sorted(f"{d}:{n}" for d, n in self.functions)),
        )

    def check_domains(self) -> None:
        """Nodes and operator sets against the allowed domains and the model's own functions."""
        local = {domain for domain, _ in self.functions}
        for node in self.nodes:
            for domain in node.domains:
                if (domain, node.op_type) not in self.functions:
                    raise self.fail(
                        f"node {_show(node.name)} (op {_show(node.op_type)}) in {node.where} is "
                        f"in the operator domain {_show(domain)}, which needs a custom operator "
                        f"library; servefn runs the domains {list(ALLOWED_DOMAINS)} only "
                        "(standard ONNX, ONNX-ML and onnxruntime's built-in contrib operators)"
                    )
        for domain, where in self.opsets:
            if domain not in ALLOWED_DOMAINS and domain not in local:
                raise self.fail(
                    f"{where} imports the operator set {_show(domain)}, a custom operator "
                    f"domain; servefn runs the domains {list(ALLOWED_DOMAINS)} only"
                )

    def opset(self, pos: int, end: int, where: str) -> tuple[str, int]:
        domain, version = "", 0
        for f in self.fields(pos, end, frozenset({1, 2})):
            if f[0] == 1:
                domain = self.text(f, "opset domain")
            else:
                version = self.number(f, "opset version")
        self.opsets.append((domain, where))
        return domain, version

    def training(self, pos: int, end: int) -> None:
        for f in self.fields(pos, end, frozenset({1, 2})):
            self.graph(*self.span(f, "training graph"), 2, 1, "a training graph", _Graph())

    def function(self, pos: int, end: int) -> None:
        fields = self.fields(pos, end, frozenset({1, 7, 9, 10, 11}))
        name = domain = ""
        for f in fields:
            if f[0] == 1:
                name = self.text(f, "function name")
            elif f[0] == 10:
                domain = self.text(f, "function domain")
        where = f"function {_show(f'{domain}:{name}')}"
        self.functions.add((domain, name))
        for f in fields:
            if f[0] == 7:
                self.node(*self.span(f, "node"), 2, 1, where, _Graph())
            elif f[0] == 9:
                self.opset(*self.span(f, "opset_import"), where)
            elif f[0] == 11:
                self.attribute(*self.span(f, "attribute"), 2, 1, where, _Node(where))

    def graph(self, pos: int, end: int, depth: int, level: int, where: str, out: _Graph) -> None:
        """A graph's nodes, initializers and (for the main graph) inputs and outputs."""
        self.check_depth(depth, pos)
        if level > self.max_depth:
            raise self.fail(f"subgraphs are nested over {self.max_depth} levels deep; refusing it")
        main = level == 0
        wanted = frozenset({1, 5, 11, 12, 15} if main else {1, 5, 15})
        for f in self.fields(pos, end, wanted):
            number = f[0]
            if number == 1:
                out.n_nodes += 1
                self.node(*self.span(f, "node"), depth + 1, level, where, out)
            elif number == 5:
                name = self.tensor(
                    *self.span(f, "initializer"), depth + 1, f"{where}'s initializer"
                )
                out.initializers.add(name)
            elif number == 15:
                out.initializers.add(
                    self.sparse(*self.span(f, "sparse_initializer"), depth + 1, where)
                )
            else:
                info = self.value_info(*self.span(f, "input or output"), depth + 1)
                (out.inputs if number == 11 else out.outputs).append(info)

    def node(self, pos: int, end: int, depth: int, level: int, where: str, graph: _Graph) -> None:
        self.check_depth(depth, pos)
        node = _Node(where)
        attributes = []
        for f in self.fields(pos, end, frozenset({3, 4, 5, 7})):
            number = f[0]
            if number == 3:
                node.name = self.text(f, "node name")
            elif number == 4:
                node.op_type = self.text(f, "op_type")
            elif number == 7:
                node.domains.append(self.text(f, "node domain"))
            else:
                attributes.append(self.span(f, "attribute"))
        for a, b in attributes:
            self.attribute(a, b, depth + 1, level, where, node)
        if any(d not in ALLOWED_DOMAINS for d in node.domains):
            self.nodes.append(node)

    def attribute(
        self, pos: int, end: int, depth: int, level: int, where: str, node: _Node
    ) -> None:
        """An attribute's tensors and subgraphs (its scalars and lists are skipped)."""
        self.check_depth(depth, pos)
        fields = self.fields(pos, end, frozenset({1, 5, 6, 10, 11, 22, 23}))
        name = next((self.text(f, "attribute name") for f in fields if f[0] == 1), "")
        owner = f"attribute {_show(name)} of node {_show(node.name)} in {where}"
        for f in fields:
            number = f[0]
            if number in (5, 10):
                self.tensor(*self.span(f, "tensor"), depth + 1, owner)
            elif number in (22, 23):
                self.sparse(*self.span(f, "sparse tensor"), depth + 1, owner)
            elif number in (6, 11):
                sub = f"subgraph {_show(name)} of node {_show(node.name)} (level {level + 1})"
                self.graph(*self.span(f, "subgraph"), depth + 1, level + 1, sub, _Graph())

    def tensor(self, pos: int, end: int, depth: int, owner: str) -> str:
        """A tensor's name, refused when its data lives outside the file."""
        self.check_depth(depth, pos)
        name, external, location = "", False, ""
        for f in self.fields(pos, end, frozenset({8, 13, 14})):
            number = f[0]
            if number == 8:
                name = self.text(f, "tensor name")
            elif number == 14:
                external = external or self.number(f, "data_location") != 0
            else:
                external = True
                key, value = self.entry(*self.span(f, "external_data"))
                location = value if key == "location" else location
        if external:
            named = f" at {_show(location)}" if location else ""
            raise self.fail(
                f"tensor {_show(name)} ({owner}) keeps its data in an external file{named}; "
                "servefn serves self-contained graphs only: save the model with every tensor "
                "inside the file (onnx.save_model(model, path, save_as_external_data=False))"
            )
        return name

    def sparse(self, pos: int, end: int, depth: int, owner: str) -> str:
        self.check_depth(depth, pos)
        names = [
            self.tensor(*self.span(f, "sparse tensor part"), depth + 1, owner)
            for f in self.fields(pos, end, frozenset({1, 2}))
        ]
        return names[0] if names else ""

    def entry(self, pos: int, end: int) -> tuple[str, str]:
        key = value = ""
        for f in self.fields(pos, end, frozenset({1, 2})):
            if f[0] == 1:
                key = self.text(f, "key")
            else:
                value = self.text(f, "value")
        return key, value
