"""Hostile model archives: refused fast, in bounded memory, always as one-line ArtifactErrors.

Each archive starts from the session's real iris ``model.zip`` and changes what an attacker
controls: the manifest (its hashes rewritten so the archive gets past verification and reaches
the caps), the payload, the zip structure. A refusal must be an ``ArtifactError`` whose message
is one printable line; the worst cases run ``load_model`` in a subprocess that reports its time
and peak RSS.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from servefn import ArtifactError, load_model, read_manifest
from servefn.model._limits import (
    MAX_CLASSES,
    MAX_COLUMNS,
    MAX_DEPTH,
    MAX_FEATURES,
    MAX_MANIFEST_BYTES,
    MAX_STRING_CHARS,
)

MANIFEST = "servefn.json"
RSS_LIMIT_MB = 200
Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def base(trained_model: Path) -> bytes:
    return trained_model.read_bytes()


def members(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return {name: z.read(name) for name in z.namelist()}


def manifest_of(archive: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(members(archive)[MANIFEST])
    return loaded


def rebuild(
    archive: bytes,
    *,
    manifest: dict[str, Any] | bytes | None = None,
    payloads: dict[str, bytes] | None = None,
    rehash: bool = True,
) -> bytes:
    """``archive`` with its manifest and payloads replaced; with ``rehash`` the manifest's
    sha256 and size entries describe the new payloads, as a forger would write them."""
    files = members(archive)
    files.update(payloads or {})
    document: dict[str, Any] | bytes = manifest_of(archive) if manifest is None else manifest
    if isinstance(document, dict) and rehash:
        document["files"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in files.items()
            if name != MANIFEST
        }
    files[MANIFEST] = document if isinstance(document, bytes) else json.dumps(document).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def edited(archive: bytes, edit: Edit, *, rehash: bool = True) -> bytes:
    manifest = manifest_of(archive)
    edit(manifest)
    return rebuild(archive, manifest=manifest, rehash=rehash)


def retyped(archive: bytes, old: str, new: str) -> bytes:
    """``archive`` with its manifest's text changed: JSON that ``json.dumps`` never writes."""
    raw = json.dumps(manifest_of(archive))
    assert old in raw
    return rebuild(archive, manifest=raw.replace(old, new, 1).encode())


def npy(shape: tuple[int, ...], dtype: str = "<f8", data: bytes = b"") -> bytes:
    """An ``.npy`` member whose header declares ``shape`` and that holds only ``data``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return out.getvalue() + data


def npz(**arrays: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in arrays.items():
            z.writestr(f"{name}.npy", data)
    return out.getvalue()


def refused(archive: bytes, match: str = "") -> str:
    """The one-line message ``load_model`` refuses ``archive`` with."""
    with pytest.raises(ArtifactError, match=match) as caught:
        load_model(archive)
    message = str(caught.value)
    assert message.isprintable() and "\n" not in message, message
    return message


def first_input(manifest: dict[str, Any]) -> dict[str, Any]:
    column: dict[str, Any] = manifest["input"]["columns"][0]
    return column


# -- item 1: nothing a manifest declares is trusted before it is capped -----------------------


def _vector(end: int) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["input"]["columns"] = [
            {"field": "v", "name": "V", "type": "vector", "index": [0, end], "role": "feature"}
        ]

    return edit


def _classes(n: int) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["predictor"]["classes"] = list(range(n))

    return edit


def _columns(n: int) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["input"]["columns"] = [
            {"field": f"f{i}", "name": f"F{i}", "type": "float", "index": i} for i in range(n)
        ]

    return edit


def _set(path: tuple[Any, ...], value: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        target: Any = m
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_vector(10**8), r"has index \[0, 100000000\]; expected \[start, end\] within"),
        (_vector(10**7), "declares 10000001 values per row, over the cap"),
        (_vector(MAX_FEATURES), "over the cap"),
        (_vector(10_000), "more than the model's payload can hold"),  # a 1 KB payload
        (_vector(-1), "expected \\[start, end\\]"),
        (_set(("input", "columns", 0, "index"), [0, 5]), "expected a column number"),
        (_set(("input", "columns", 0, "index"), 10**30), "beyond 64 bits"),
        (_columns(MAX_COLUMNS + 1), f"{MAX_COLUMNS + 1} columns, over the cap"),
        (_classes(MAX_CLASSES + 1), "classes, over the cap"),
        (_set(("predictor", "classes"), "abc"), "classes must be a list of labels, not a str"),
        (_set(("predictor", "classes"), {"a": 1}), "classes must be a list"),
        (_set(("predictor", "classes"), [[1], [2], [3]]), "strings or numbers"),
        (_set(("training", "notes"), "x" * (MAX_STRING_CHARS + 1)), "string of 65537 characters"),
        (_set(("input", "columns", 0, "name"), "N" * 2000), "not a name"),
        (_set(("kind",), ["linear-classifier"]), "kind must be a name"),
        (_set(("predictor",), "softmax"), "'predictor' must be an object"),
        (_set(("input", "columns"), {"a": 1}), "column list"),
        (_set(("input", "columns", 0, "type"), "tensor"), "has type 'tensor'"),
        (_set(("input", "columns", 0, "role"), "target"), "has role 'target'"),
        (_set(("training", "deep"), json.loads("[" * 40 + "]" * 40)), "nested over 32 levels"),
        (_set(("training", "big"), 1e308 * 10), "Infinity is not a JSON number"),
    ],
)
def test_declared_sizes_are_capped_before_anything_is_built(
    base: bytes, edit: Edit, match: str
) -> None:
    refused(edited(base, edit), match)


def test_the_cap_on_features_follows_the_payload(base: bytes) -> None:
    """4096 features always fit; beyond that each needs a byte of payload behind it."""
    small = edited(base, _vector(4095))  # 4096 features: within the cap, not the weights' 4
    refused(small, "IrisData has 4096 features but the model expects 4")
    refused(edited(base, _vector(4096)), "more than the model's payload can hold")


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (npy((10**6, 10**6)), r"declares shape \(1000000, 1000000\).*but holds 0 bytes"),
        (npy((4, 10**8), data=b"\0" * 64), "but holds 64 bytes"),
        (npy((2**62, 2**62)), "but holds 0 bytes"),
        (npy((4, 3), "|O"), "needs pickle"),
        (npy((4, 3), "|V0"), "dtype"),
        (npy((4, 3), "<M8[s]", b"\0" * 96), "store numbers or text"),
        (npy((4, 3), "<f8", b"\0" * 95), "but holds 95 bytes"),
        (b"\x93NUMPY\x01\x00" + b"\xff\xff" + b"{" * 100, "not a readable .npz"),
        (b"garbage", "not a readable .npz"),
    ],
)
def test_npy_headers_must_account_for_their_bytes(base: bytes, weights: bytes, match: str) -> None:
    bias = npy((3,), data=b"\0" * 24)
    refused(rebuild(base, payloads={"weights.npz": npz(weights=weights, bias=bias)}), match)


def test_a_weight_matrix_that_does_not_fit_the_schema_is_refused(base: bytes) -> None:
    weights = npy((5, 3), data=np.ones((5, 3)).tobytes())
    bias = npy((3,), data=np.zeros(3).tobytes())
    archive = rebuild(base, payloads={"weights.npz": npz(weights=weights, bias=bias)})
    refused(archive, "IrisData has 4 features but the model expects 5")


@pytest.mark.parametrize(
    ("classes", "weights", "match"),
    [
        (["a", "b"], (4, 3), "2 classes do not fit 3 weight columns"),
        (["a", "b", "c"], (4, 3), ""),  # NaN weights below
    ],
)
def test_linear_payloads_are_checked_against_their_parameters(
    base: bytes, classes: list[str], weights: tuple[int, int], match: str
) -> None:
    values = np.ones(weights) if match else np.full(weights, np.nan)
    arrays = npz(
        weights=npy(weights, data=values.tobytes()),
        bias=npy((weights[1],), data=np.zeros(weights[1]).tobytes()),
    )
    manifest = manifest_of(base)
    manifest["predictor"]["classes"] = classes
    refused(
        rebuild(base, manifest=manifest, payloads={"weights.npz": arrays}),
        match or "must be finite",
    )


# -- item 5: every failure to read an archive is one ArtifactError line -----------------------


def _compressed(base: bytes, method: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members(base).items():
            z.writestr(name, data, compress_type=method if name != MANIFEST else None)
    return out.getvalue()


def _flag_encrypted(archive: bytes, name: str) -> bytes:
    """Set the 'encrypted' bit of ``name`` in both its headers, as a password-protected zip has."""
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        info = z.getinfo(name)
    data[info.header_offset + 6] |= 0x1  # local header general-purpose flags
    central = data.find(b"PK\x01\x02")
    while central != -1:
        length = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + length] == name.encode():
            data[central + 8] |= 0x1
        central = data.find(b"PK\x01\x02", central + 4)
    return bytes(data)


def _unknown_method(archive: bytes) -> bytes:
    data = bytearray(_compressed(archive, zipfile.ZIP_STORED))
    for marker, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(marker)
        while at != -1:
            data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
            at = data.find(marker, at + 4)
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda b: _flag_encrypted(b, "weights.npz"), "is encrypted"),
        (lambda b: _flag_encrypted(b, MANIFEST), "encrypted"),
        (lambda b: _compressed(b, zipfile.ZIP_BZIP2), "compression method 12"),
        (lambda b: _compressed(b, zipfile.ZIP_LZMA), "compression method 14"),
        (_unknown_method, "compression method 99|cannot be read"),
        (lambda b: b[: len(b) // 2], "not a zip file"),
        (lambda b: b"PK\x05\x06" + b"\xff" * 18, "not a zip file"),
        (lambda b: rebuild(b, manifest=b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
        (lambda b: rebuild(b, manifest=b'{"format": NaN}'), "NaN is not a JSON number"),
        (lambda b: rebuild(b, manifest=b"\xff\xfe{"), "not valid JSON"),
        (lambda b: rebuild(b, manifest=b'{"format": "servefn.model/1"}'), "lacks 'kind'"),
        (lambda b: rebuild(b, manifest=b'{"format": "' + b"9" * 5000 + b'"}'), "has format"),
        (
            lambda b: edited(b, _set(("files", "weights.npz", "size"), 10**30), rehash=False),
            "weights.npz does not match the sha256",
        ),
        (lambda b: retyped(b, '"rows": ', '"rows": 1e400, "x": '), "too large for a float"),
        (lambda b: edited(b, _set(("kind",), "no-such-kind")), "no predictor is registered"),
        (lambda b: edited(b, _set(("input", "columns", 0, "constraints"), {"ge": "a"})), "cannot"),
        (
            lambda b: edited(b, _set(("input", "columns", 0, "constraints"), {"bogus": 1})),
            "unsupported arguments",
        ),
        (lambda b: edited(b, _set(("input",), {"columns": [1]})), "is not an object"),
        (lambda b: edited(b, _set(("output", "extra"), "maybe")), "extra must be one of"),
    ],
)
def test_every_failure_is_one_artifact_error_line(
    base: bytes, make: Callable[[bytes], bytes], match: str
) -> None:
    archive = make(base)
    refused(archive, match)
    try:
        read_manifest(archive)
    except ArtifactError as exc:
        assert "\n" not in str(exc) and str(exc).isprintable()


@pytest.mark.parametrize(
    ("make", "commands"),
    [
        (lambda b: _flag_encrypted(b, "weights.npz"), ["inspect", "predict"]),
        (lambda b: _compressed(b, zipfile.ZIP_BZIP2), ["inspect", "predict"]),
        (lambda b: rebuild(b, manifest=b"[" * 100_000 + b"]" * 100_000), ["inspect", "predict"]),
        # inspect shows these manifests (escaped) without building anything; loading fails
        (
            lambda b: rebuild(b, payloads={"weights.npz": npz(weights=npy((10**6, 10**6)))}),
            ["predict"],
        ),
        (lambda b: edited(b, _set(("kind",), "\x1b]0;pwned\x07\nforged line")), ["predict"]),
        (lambda b: edited(b, _set(("input", "columns", 1, "name"), "SepalLength")), ["predict"]),
    ],
)
def test_inspect_and_predict_print_one_line_and_exit_1(
    base: bytes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[bytes], bytes],
    commands: list[str],
) -> None:
    from servefn.cli import main

    model = tmp_path / "model.zip"
    model.write_bytes(make(base))
    rows = tmp_path / "rows.csv"
    rows.write_text("5.1,3.5,1.4,0.2\n")
    argv = {"inspect": ["inspect", str(model)], "predict": ["predict", str(model), "-i", str(rows)]}
    for command in (argv[name] for name in commands):
        assert main(command) == 1, command
        _, err = capsys.readouterr()
        assert err.startswith(f"servefn {command[0]}: error: ") and err.count("\n") == 1, err
        assert err.rstrip("\n").isprintable(), err


# -- a property: malformed manifests and archives only ever raise ArtifactError ------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def hostile(draw: st.DrawFn, base: bytes) -> bytes:
    """One malformed variant of ``base``: a manifest edit, a damaged payload or zip."""
    how = draw(st.sampled_from(["replace", "delete", "nest", "huge", "payload", "zip", "raw"]))
    manifest = copy.deepcopy(manifest_of(base))
    paths = _paths(manifest)[1:]
    path = draw(st.sampled_from(paths))
    parent: Any = manifest
    for key in path[:-1]:
        parent = parent[key]
    if how == "replace":
        parent[path[-1]] = draw(JSON)
    elif how == "delete":
        del parent[path[-1]]
    elif how == "nest":  # as text: deeper than json itself can write
        depth = draw(st.integers(1, 3000))
        parent[path[-1]] = "<nest>"
        raw = json.dumps(manifest).replace('"<nest>"', "[" * depth + "]" * depth, 1)
        return rebuild(base, manifest=raw.encode())
    elif how == "huge":
        parent[path[-1]] = draw(st.sampled_from([10**19, -(10**19), 10**300, 1e308, 2**63 - 1]))
    elif how == "payload":
        weights = bytearray(members(base)["weights.npz"])
        cut = draw(st.integers(0, len(weights)))
        if draw(st.booleans()):
            weights = weights[:cut]
        else:
            for _ in range(draw(st.integers(1, 8))):
                weights[draw(st.integers(0, len(weights) - 1))] = draw(st.integers(0, 255))
        return rebuild(base, payloads={"weights.npz": bytes(weights)})
    elif how == "zip":
        data = bytearray(base)
        if draw(st.booleans()):
            return bytes(data[: draw(st.integers(0, len(data)))])
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    else:
        raw = json.dumps(manifest).encode()
        at = draw(st.integers(0, len(raw)))
        return rebuild(base, manifest=raw[:at] + draw(st.binary(max_size=8)) + raw[at:])
    return rebuild(base, manifest=manifest, rehash=path[:1] != ("files",))


@given(data=st.data())
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_malformed_archives_only_ever_raise_artifact_error(
    base: bytes, data: st.DataObject
) -> None:
    archive = data.draw(hostile(base))
    for read in (load_model, read_manifest):
        try:
            read(archive)
        except ArtifactError as exc:
            assert "\n" not in str(exc) and str(exc).isprintable()
            event(f"{read.__name__}: {str(exc)[:40]}")
        else:
            event(f"{read.__name__}: accepted")


# -- bounded time and memory, measured in a subprocess ----------------------------------------

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from servefn import ArtifactError, load_model
    data = open(sys.argv[1], "rb").read()
    started = time.perf_counter()
    try:
        load_model(data)
        outcome = "loaded"
    except ArtifactError as exc:
        outcome = "ArtifactError: " + str(exc)
    except BaseException as exc:
        outcome = type(exc).__name__ + ": " + str(exc)[:300]
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_mb": rss}))
    """
)


def _bomb(base: bytes) -> bytes:
    """weights.npz as 256 MB of zeros, deflated to about 250 KB, declared honestly."""
    size = 256 << 20
    digest = hashlib.sha256()
    chunk = b"\0" * (1 << 20)
    for _ in range(size >> 20):
        digest.update(chunk)
    manifest = manifest_of(base)
    manifest["files"] = {"weights.npz": {"sha256": digest.hexdigest(), "size": size}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, json.dumps(manifest))
        info = zipfile.ZipInfo("weights.npz")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as member:
            for _ in range(size >> 20):
                member.write(chunk)
    return out.getvalue()


def _empty_objects(base: bytes) -> bytes:
    """A manifest of MAX_MANIFEST_BYTES of ``{}``: the costliest JSON the cap lets through."""
    body = b"{}," * ((MAX_MANIFEST_BYTES - 100) // 3)
    return rebuild(base, manifest=b'{"format": "other", "x": [' + body + b"{}]}")


HOSTILE: dict[str, Callable[[bytes], bytes]] = {
    "vector index range 1e8": lambda b: edited(b, _vector(10**8)),
    "vector of 16 million slots": lambda b: edited(b, _vector(16_000_000)),
    "1e8 classes in a .npy header": lambda b: rebuild(
        b, payloads={"weights.npz": npz(weights=npy((4, 10**8)), bias=npy((10**8,)))}
    ),
    "1e6 classes in the manifest": lambda b: edited(b, _set(("predictor", "classes"), [0] * 10**6)),
    ".npy header shape (1e6, 1e6)": lambda b: rebuild(
        b, payloads={"weights.npz": npz(weights=npy((10**6, 10**6)))}
    ),
    "JSON nested 1e5 deep": lambda b: rebuild(b, manifest=b"[" * 100_000 + b"]" * 100_000),
    "nesting 900 deep in the training record": lambda b: edited(
        b, _set(("training", "deep"), json.loads("[" * 900 + "]" * 900))
    ),
    "a 50 MB string in the manifest": lambda b: edited(
        b, _set(("training", "x"), "x" * (50 << 20))
    ),
    "50,000 columns": lambda b: edited(b, _columns(50_000)),
    "4 MiB of empty objects": _empty_objects,
    "a payload deflated 1000:1": _bomb,
    "a size of 10**30": lambda b: edited(
        b, _set(("files", "weights.npz", "size"), 10**30), rehash=False
    ),
}


@pytest.mark.integration  # a subprocess per case: peak RSS is per process
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_fast_in_bounded_memory(
    base: bytes, tmp_path: Path, case: str
) -> None:
    path = tmp_path / "hostile.zip"
    path.write_bytes(HOSTILE[case](base))
    # Through sh, which forks: a process started straight from pytest inherits pytest's own
    # peak RSS in ru_maxrss (Linux keeps it across fork and exec); sh's small one is harmless.
    run = subprocess.run(
        ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    print(
        f"{case}: {report['seconds']:.3f} s, {report['rss_mb']:.0f} MB, {report['outcome'][:120]}"
    )
    assert report["outcome"].startswith("ArtifactError: "), report["outcome"]
    assert "\n" not in report["outcome"]
    assert report["rss_mb"] < RSS_LIMIT_MB, report


def test_the_caps_leave_every_real_model_alone(base: bytes) -> None:
    manifest = read_manifest(base)
    assert len(json.dumps(manifest)) < MAX_MANIFEST_BYTES // 100
    assert load_model(base).predictor.kind == "linear-classifier"
    assert MAX_DEPTH >= 8
