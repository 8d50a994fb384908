"""Hostile variants of the ML.NET fixtures are refused in one line, in bounded time and memory.

Truncated streams, header offsets and sizes pointing elsewhere, absurd counts (terms, trees,
columns, strings), unknown loader signatures, sub-models nested without end, unsafe member
names and zip bombs, and a seeded fuzz of byte flips: each either loads or raises
:class:`~servefn.errors.ArtifactError` with a one-line message, well under a second and a few
MB of memory each.
"""

from __future__ import annotations

import io
import random
import struct
import time
import tracemalloc
import zipfile
from collections.abc import Callable

import pytest

from servefn import load_model, read_manifest
from servefn.errors import ArtifactError
from support.mlnet import FASTTREE, IRIS, TAXI, fixture
from support.mlnet_pipelines import concat, floats, linear, model_zip, predict, trees
from support.mlnet_writer import Archive, Stream, rewrite

CHAIN = "TransformerChain/Model.key"
TERMS = "TransformerChain/Transform_001/Transform_000/Vocabulary/Model.key"
TREES = "TransformerChain/Transform_000/Transform_001/Model/Model.key"
MC = "TransformerChain/Transform_002/Transform_000/Model/Model.key"


def _refused(data: bytes, *fragments: str) -> str:
    """The one-line message ``load_model`` (and ``read_manifest``) refuse ``data`` with."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ArtifactError) as caught:
            load_model(data)
        with pytest.raises(ArtifactError):
            read_manifest(data)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    message = str(caught.value)
    assert "\n" not in message and message.isprintable() and len(message) < 400
    for fragment in fragments:
        assert fragment in message, message
    assert elapsed < 2.0 and peak < 64 << 20, (elapsed, peak)
    return message


def _patch(name: str, member: str, change: Callable[[bytes], bytes]) -> bytes:
    return rewrite(fixture(name).read_bytes(), member, change)


def _at(offset: int, fmt: str, value: int) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        buffer = bytearray(data)
        struct.pack_into(fmt, buffer, offset, value)
        return bytes(buffer)

    return change


@pytest.mark.parametrize("keep", [0, 8, 200, 256, 300, -9, -1])
def test_truncated_streams_are_refused(keep: int) -> None:
    _refused(_patch(TAXI, TERMS, lambda d: d[:keep]), "ML.NET model")


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "fragment"),
    [
        (0x10, "<q", 0x200, "model block"),  # the model block elsewhere
        (0x18, "<q", 1 << 40, "model block"),  # a block larger than the stream
        (0x20, "<q", 0x10, "string table"),  # the string table inside the header
        (0x28, "<q", 1 << 40, "string"),  # a string table larger than the stream
        (0x38, "<q", 3, "string"),  # an odd number of UTF-16 bytes
        (0x80, "<q", 0x120, "tail"),  # the tail in the middle of the block
        (0x88, "<q", -1, "tail"),
        (0x90, "<q", 5, "assembly"),
    ],
)
def test_header_offsets_that_point_elsewhere_are_refused(
    offset: int, fmt: str, value: int, fragment: str
) -> None:
    _refused(_patch(TAXI, TERMS, _at(offset, fmt, value)), fragment)


@pytest.mark.parametrize(
    ("name", "member", "offset", "fragment"),
    [
        (TAXI, TERMS, 0x100 + 5, "terms"),  # the term count of a text vocabulary
        (FASTTREE, TREES, 0x100 + 4, "trees"),  # the tree count
        (IRIS, MC, 0x100 + 4, "features"),  # the feature count of the multiclass weights
        (IRIS, CHAIN, 0x100, "transformers"),  # the chain's length
    ],
)
def test_absurd_counts_are_refused_before_anything_is_allocated(
    name: str, member: str, offset: int, fragment: str
) -> None:
    for value in (0x7FFFFFFF, -5):
        _refused(_patch(name, member, _at(offset, "<i", value)), fragment)


def test_an_unknown_loader_signature_is_refused_by_name() -> None:
    member = "TransformerChain/Transform_001/Transform_000/Model.key"
    evil = _patch(TAXI, member, lambda d: d[:0x50] + b"EvilTransform".ljust(24, b"\0") + d[0x68:])
    _refused(evil, "'EvilTransform'", "Transform_001\\Transform_000", "is not supported")
    model = _patch(IRIS, MC, lambda d: d[:0x50] + b"MysteryModel".ljust(24, b"\0") + d[0x68:])
    _refused(model, "model 'MysteryModel'", "is not supported")


def test_a_model_signature_unlike_its_loader_is_refused() -> None:
    _refused(_patch(IRIS, MC, lambda d: d[:0x40] + b"LIN\0RGRS" + d[0x48:]), "model signature")


def test_sub_models_nested_without_end_are_refused() -> None:
    archive = Archive()
    folder = "TransformerChain"
    for _ in range(40):
        archive.put(folder, Stream("XF CHAIN", "TransformerChain").i32(1, 7))
        folder += "/Transform_000"
    _refused(archive.zip(), "nests sub-models over")


def test_a_chain_that_names_a_missing_transform_is_refused() -> None:
    archive = Archive().put("TransformerChain", Stream("XF CHAIN", "TransformerChain").i32(2, 7, 7))
    _refused(archive.zip(), "Transform_000 is missing")


def _zip(entries: dict[str, bytes], **options: object) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_unsafe_member_names_and_zip_bombs_are_refused() -> None:
    good = fixture(IRIS).read_bytes()
    with zipfile.ZipFile(io.BytesIO(good)) as archive:
        entries = {i.filename: archive.read(i) for i in archive.infolist()}
    _refused(_zip({**entries, "..\\..\\evil": b"x"}), "unsafe member name")
    _refused(_zip({**entries, "C:\\Windows\\evil": b"x"}), "unsafe member name")
    _refused(_zip({**entries, "Schema2": bytes(20 << 20)}), "inflate")


def test_a_cyclic_tree_is_refused() -> None:
    cycle = {
        "lte": [1, 0],
        "gt": [-1, -2],
        "feature": [0, 1],
        "threshold": [0.0, 0.0],
        "leaf": [1.0, 2.0, 3.0],
    }
    data = model_zip(
        [
            concat("Features", ("A", "B")),
            predict("regression", "Features", 2, trees("FastTreeRegressionExec", [cycle], 2)),
        ],
        floats("A", "B"),
    )
    _refused(data, "a node is reached twice")


def test_a_weight_count_unlike_the_feature_count_is_refused() -> None:
    data = model_zip(
        [
            concat("Features", ("A", "B")),
            predict("regression", "Features", 2, linear([1.0, 2.0, 3.0], 0.0)),
        ],
        floats("A", "B"),
    )
    _refused(data, "TrainSchema")


@pytest.mark.parametrize("name", [IRIS, TAXI, FASTTREE])
def test_byte_flips_load_or_are_refused_in_one_line(name: str) -> None:
    data = fixture(name).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [
            i.filename.replace("\\", "/")
            for i in archive.infolist()
            if i.filename.endswith(("Model.key", "Schema"))
        ]
    rng = random.Random(17)
    start = time.perf_counter()
    for _ in range(60):
        member = rng.choice(members)

        def flip(blob: bytes) -> bytes:
            buffer = bytearray(blob)
            for _ in range(rng.randint(1, 4)):
                buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
            return bytes(buffer)

        mutated = rewrite(data, member, flip)
        try:
            load_model(mutated)
        except ArtifactError as exc:
            assert "\n" not in str(exc) and str(exc).isprintable()
    assert time.perf_counter() - start < 60
