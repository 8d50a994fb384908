"""Hostile ONNX graphs are refused by servefn's own protobuf reader before onnxruntime creates a
session: external data anywhere (initializers, Constant attributes, If subgraphs, functions,
sparse initializers, a tag encoded overlong so a fast skip would miss it), custom operator
domains, oversize and deeply nested graphs, truncated and random bytes. Each refusal names what
and where; none creates a session, and a refused model.zip never loads."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from servefn import Schema, column
from servefn.errors import ArtifactError, PredictorError
from servefn.model import load_model
from servefn.predictors import onnx as onnx_kind
from servefn.predictors import register_predictor, registry
from servefn.predictors._onnx_graph import read_graph
from servefn.predictors.onnx import GraphInput, GraphOutput, OnnxPredictor

PASSWD = "../../etc/passwd"
SESSION = onnx_kind.ort.InferenceSession


class Two(Schema):
    a: float = column(0)
    b: float = column(1)


class Out(Schema):
    score: float = column(name="Score")


@pytest.fixture(autouse=True)
def no_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fails any test that reaches onnxruntime's InferenceSession, unless it allows it."""
    created: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        created.append(args)
        raise AssertionError("a session was created for a graph that should have been refused")

    monkeypatch.setattr(onnx_kind.ort, "InferenceSession", refuse)
    if "onnx" not in registry:
        register_predictor("onnx", "servefn.predictors.onnx:OnnxPredictor")
    yield created


def model_bytes(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto] = (),  # type: ignore[assignment]
    opsets: tuple[tuple[str, int], ...] = (("", 17),),
    functions: list[onnx.FunctionProto] = (),  # type: ignore[assignment]
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        list(initializers),
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], functions=functions
    )
    model.ir_version = 8
    return model.SerializeToString()


def external(name: str, location: str = PASSWD) -> onnx.TensorProto:
    tensor = numpy_helper.from_array(np.ones(2, dtype=np.float32), name)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def plain() -> bytes:
    return model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [numpy_helper.from_array(np.ones(2, np.float32), "w")],
    )


def refused(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(ArtifactError) as caught:
        OnnxPredictor(
            data,
            n_features=2,
            inputs=[GraphInput("x", "float", (0, 1))],
            outputs=[GraphOutput("Score", "y", "values")],
            **kwargs,
        )
    message = str(caught.value)
    assert message.startswith("model.onnx")
    return message


def test_external_data_in_an_initializer_is_refused() -> None:
    data = model_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [external("w")])
    message = refused(data)
    assert "tensor 'w' (the main graph's initializer) keeps its data in an external file" in message
    assert repr(PASSWD) in message and "save_as_external_data=False" in message


def test_external_location_alone_or_the_flag_alone_is_refused() -> None:
    flagged = external("w")
    del flagged.external_data[:]
    listed = external("w")
    listed.data_location = TensorProto.DEFAULT
    for tensor in (flagged, listed):
        data = model_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [tensor])
        assert "keeps its data in an external file" in refused(data)


def test_external_data_in_a_constant_node_is_refused() -> None:
    constant = helper.make_node("Constant", [], ["w"], name="const", value=external("c"))
    data = model_bytes([constant, helper.make_node("Add", ["x", "w"], ["y"])])
    assert "tensor 'c' (attribute 'value' of node 'const' in the main graph)" in refused(data)


def if_node(then: onnx.GraphProto, name: str = "branch") -> onnx.NodeProto:
    otherwise = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"])],
        "else",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    return helper.make_node(
        "If", ["cond"], ["y"], name=name, then_branch=then, else_branch=otherwise
    )


def test_external_data_inside_an_if_subgraph_is_refused() -> None:
    then = helper.make_graph(
        [helper.make_node("Identity", ["hidden"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
        [external("hidden")],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    data = model_bytes([if_node(then)], [cond])
    message = refused(data)
    assert (
        "tensor 'hidden' (subgraph 'then_branch' of node 'branch' (level 1)'s initializer)"
        in message
    )


def test_external_data_in_a_function_body_or_a_sparse_initializer_is_refused() -> None:
    body = helper.make_node("Constant", [], ["c"], name="inner", value=external("secret"))
    function = helper.make_function(
        "local.fn",
        "Leak",
        [],
        ["c"],
        [
            body,
        ],
        [helper.make_opsetid("", 17)],
    )
    call = helper.make_node("Leak", [], ["w"], domain="local.fn")
    data = model_bytes(
        [call, helper.make_node("Add", ["x", "w"], ["y"])],
        opsets=(("", 17), ("local.fn", 1)),
        functions=[function],
    )
    assert (
        "tensor 'secret' (attribute 'value' of node 'inner' in function 'local.fn:Leak')"
        in refused(data)
    )
    sparse = helper.make_sparse_tensor(
        external("values"), numpy_helper.from_array(np.array([0]), "i"), [2]
    )
    model = onnx.load_from_string(plain())
    model.graph.sparse_initializer.append(sparse)
    assert "tensor 'values'" in refused(model.SerializeToString())


def test_an_overlong_tag_cannot_hide_external_data_from_the_reader() -> None:
    """The tensor's external_data (field 13) written with a two-byte tag: protobuf reads it as
    field 13, so the reader must too, though its fast skip matches canonical tags only."""
    tensor = numpy_helper.from_array(np.ones(2, dtype=np.float32), "w").SerializeToString()
    entry = _ld(1, b"location") + _ld(2, PASSWD.encode())
    hidden = tensor + b"\xea\x00" + _varint(len(entry)) + entry
    parsed = onnx.TensorProto()
    parsed.ParseFromString(hidden)
    assert parsed.external_data[0].value == PASSWD  # protobuf sees it
    model = onnx.load_from_string(plain())
    model.graph.ClearField("initializer")
    graph = model.graph.SerializeToString() + _ld(5, hidden)
    model.ClearField("graph")
    assert "keeps its data in an external file" in refused(
        model.SerializeToString() + _ld(7, graph)
    )


def _ld(number: int, body: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | value & 0x7F)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_a_custom_operator_domain_is_refused() -> None:
    node = helper.make_node("Evil", ["x"], ["y"], name="custom", domain="com.example.ops")
    data = model_bytes([node], opsets=(("", 17), ("com.example.ops", 1)))
    message = refused(data)
    assert (
        "node 'custom' (op 'Evil') in the main graph is in the operator domain 'com.example.ops'"
        in message
    )
    assert "custom operator library" in message


def test_importing_a_custom_operator_set_is_refused_even_unused() -> None:
    data = model_bytes(
        [helper.make_node("Add", ["x", "x"], ["y"])], opsets=(("", 17), ("ai.onnx.contrib", 1))
    )
    assert "imports the operator set 'ai.onnx.contrib', a custom operator domain" in refused(data)


def test_a_custom_node_inside_a_subgraph_is_refused() -> None:
    then = helper.make_graph(
        [helper.make_node("Leak", [], ["t"], name="deep", domain="evil")],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    data = model_bytes([if_node(then)], [numpy_helper.from_array(np.array(True), "cond")])
    assert "node 'deep' (op 'Leak') in subgraph 'then_branch'" in refused(data)


def test_standard_ml_and_onnxruntime_contrib_domains_and_local_functions_pass() -> None:
    gelu = helper.make_node("Gelu", ["x"], ["g"], domain="com.microsoft")
    body = [helper.make_node("Mul", ["a", "a"], ["b"])]
    square = helper.make_function(
        "local.fn", "Square", ["a"], ["b"], body, [helper.make_opsetid("", 17)]
    )
    data = model_bytes(
        [gelu, helper.make_node("Square", ["g"], ["y"], domain="local.fn")],
        opsets=(("", 17), ("com.microsoft", 1), ("ai.onnx.ml", 3), ("local.fn", 1)),
        functions=[square],
    )
    info = read_graph(data)
    assert info.opsets == {"": 17, "com.microsoft": 1, "ai.onnx.ml": 3, "local.fn": 1}
    assert info.functions == ("local.fn:Square",)


def test_an_oversize_graph_is_refused_before_it_is_read() -> None:
    data = plain()
    message = refused(data, max_bytes=64)
    assert f"is {len(data)} bytes, over the 64 bytes cap on an ONNX graph" in message
    with pytest.raises(ArtifactError, match=r"is 2 MiB, over the 1 MiB cap"):
        read_graph(b"\x08\x08" + b"\x00" * (2 << 20), max_bytes=1 << 20)


def test_subgraphs_nested_too_deep_are_refused() -> None:
    inner = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])],
        "leaf",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    for level in range(20):
        inner = helper.make_graph(
            [if_node(inner, name=f"if{level}")],
            f"level{level}",
            [],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        )
    data = model_bytes([if_node(inner)], [numpy_helper.from_array(np.array(True), "cond")])
    assert "subgraphs are nested over 16 levels deep" in refused(data)
    read_graph(data, max_depth=32)  # the cap is a parameter


def test_types_nested_past_protobufs_limit_are_refused_without_recursing_deeper() -> None:
    element = _ld(1, _varint(1 << 3) + _varint(1))  # tensor_type { elem_type: FLOAT }
    for _ in range(200):
        element = _ld(4, _ld(1, element))  # sequence_type { elem_type: ... }
    value = _ld(1, b"x") + _ld(2, element)
    graph = _ld(11, value) + _ld(12, _ld(1, b"y"))
    data = _varint(1 << 3) + _varint(8) + _ld(7, graph)
    with pytest.raises(ArtifactError, match=r"nested over 100 levels deep"):
        read_graph(data)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: d[: len(d) // 2], "runs past the end of its message"),
        (lambda d: d[:-1], "runs past the end"),
        (lambda d: d + b"\x08", "a number runs past the end of its message"),
        (lambda d: d + b"\x0f", "wire type 7"),
        (lambda d: d + b"\x00", "field number 0"),
        (lambda d: d + b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
        (lambda d: d + b"\x3a\xff\xff\xff\xff\x0f", "runs past the end of its message"),
        (lambda d: b"", "empty"),
        (lambda d: b"\x08\x08", "has no graph"),
    ],
)
def test_malformed_bytes_are_refused_with_the_problem_named(damage: Any, expected: str) -> None:
    assert expected in refused(damage(plain()))


def test_every_truncation_and_random_bytes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_kind.ort, "InferenceSession", SESSION)  # a cut between fields
    data = plain()
    for cut in range(1, len(data)):
        with pytest.raises((ArtifactError, PredictorError)):
            OnnxPredictor(
                data[:cut],
                n_features=2,
                inputs=[GraphInput("x", "float", (0, 1))],
                outputs=[GraphOutput("Score", "y", "values")],
            )
    rng = np.random.default_rng(3)
    for size in (1, 7, 64, 4096, 100_000):
        for _ in range(20):
            with pytest.raises(ArtifactError):
                read_graph(rng.bytes(size))


def test_a_zip_with_a_hostile_graph_never_loads(no_session: list[Any]) -> None:
    bad = model_bytes([helper.make_node("Add", ["x", "w"], ["y"])], [external("w")])
    archive = _archive_with(bad)
    with pytest.raises(ArtifactError, match="keeps its data in an external file"):
        load_model(archive)
    assert no_session == []


def _archive_with(graph: bytes) -> bytes:
    """A model.zip whose model.onnx is ``graph``, hashes and all, as a forger would write it."""
    import hashlib
    import json
    import zipfile

    from servefn.schema import layout_of

    manifest = {
        "format": "servefn.model/1",
        "kind": "onnx",
        "predictor": {
            "n_features": 2,
            "inputs": [{"name": "x", "type": "float", "columns": [[0, 2]]}],
            "outputs": [{"name": "Score", "from": "y", "as": "values"}],
        },
        "input": layout_of(Two).spec(),
        "output": layout_of(Out).spec(),
        "training": {},
        "created": "2026-01-01T00:00:00+00:00",
        "servefn_version": "0",
        "files": {"model.onnx": {"sha256": hashlib.sha256(graph).hexdigest(), "size": len(graph)}},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("servefn.json", json.dumps(manifest))
        archive.writestr("model.onnx", graph)
    return buffer.getvalue()
