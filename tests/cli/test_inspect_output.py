"""``servefn inspect`` prints manifest strings escaped: a model file cannot drive the terminal.

A manifest's strings come from whoever wrote the file. Printed raw, a newline forges a line of
the listing, ``ESC ] 0 ; ... BEL`` retitles the terminal, ``ESC [ 2 J`` clears it and U+202E
reverses what follows. Each such character must come out as a visible escape, every field on its
own line; ``--json`` stays exact JSON.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servefn.cli import main
from servefn.cli._manifest_text import format_manifest

MANIFEST = "servefn.json"
HOSTILE = {
    "newline": "Sepal\nkind      forged-line",
    "title": "\x1b]0;pwned\x07",
    "clear": "\x1b[2J\x1b[H",
    "override": "\u202egnp.exe",
    "c1": "\x9b31mred",
    "separator": "a\u2028b\u2029c",
    "isolate": "x\u2066y\u2069",
    "delete": "x\x7fy",
    "tab": "a\tb\rc\x00",
}
"""Strings that would drive a terminal, each with some visible text around."""


def _controls(text: str) -> list[str]:
    """The characters of ``text`` that a terminal acts on or that reorder what is read."""
    bidi = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C}
    return [
        c
        for c in text
        if c != "\n" and (unicodedata.category(c) in ("Cc", "Zl", "Zp") or ord(c) in bidi)
    ]


def _with_manifest(model: Path, target: Path, edit: Any) -> Path:
    """A copy of ``model`` whose manifest ``edit`` changed (payloads untouched: it verifies)."""
    with zipfile.ZipFile(model) as z:
        files = {name: z.read(name) for name in z.namelist()}
    manifest = json.loads(files[MANIFEST])
    edit(manifest)
    files[MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return target


def _plant(manifest: dict[str, Any]) -> None:
    """Every hostile string in every kind of place ``inspect`` shows: keys and values."""
    columns = manifest["input"]["columns"]
    for column, (label, text) in zip(columns, HOSTILE.items(), strict=False):
        column["name"] = f"{label}:{text}"
        column["description"] = text
    manifest["input"]["title"] = HOSTILE["title"]
    manifest["output"]["columns"][0]["name"] = HOSTILE["override"]
    manifest["predictor"]["classes"] = [HOSTILE["clear"], HOSTILE["c1"], HOSTILE["newline"]]
    manifest["created"] = HOSTILE["newline"]
    manifest["servefn_version"] = HOSTILE["title"]
    training = manifest["training"]
    training["trainer"] = HOSTILE["clear"]
    training["steps"] = [HOSTILE["override"], HOSTILE["separator"]]
    training["params"][HOSTILE["newline"]] = HOSTILE["title"]
    training["tuned"] = {HOSTILE["tab"]: HOSTILE["isolate"]}
    training[HOSTILE["delete"]] = HOSTILE["newline"]
    training["data_file"] = HOSTILE["title"]
    training["metrics"][HOSTILE["clear"]] = HOSTILE["separator"]


@pytest.fixture
def hostile_model(trained_model: Path, tmp_path: Path) -> Path:
    return _with_manifest(trained_model, tmp_path / "hostile.zip", _plant)


def test_inspect_escapes_every_control_character(
    hostile_model: Path, trained_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(trained_model)]) == 0
    plain = capsys.readouterr().out
    assert main(["inspect", str(hostile_model)]) == 0
    out = capsys.readouterr().out
    assert _controls(out) == []
    assert "\\x1b]0;pwned\\x07" in out and "\\x1b[2J" in out and "\\u202egnp.exe" in out
    assert "\\x9b31mred" in out and "a\\u2028b\\u2029c" in out and "x\\u2066y\\u2069" in out
    assert "x\\x7fy" in out and "a\\tb\\rc\\x00" in out
    # no field forged a line: the same sections, and each planted value on its own line
    lines = out.splitlines()
    assert _sections(lines) == _sections(plain.splitlines())
    assert [line for line in lines if line.startswith("  kind ")] == [
        "  kind      linear-classifier (score softmax)"
    ]
    assert any(line.startswith("  newline:Sepal\\nkind      forged-line  float") for line in lines)
    assert "  created   Sepal\\nkind      forged-line" in lines
    assert "Input \\x1b]0;pwned\\x07" in lines


def _sections(lines: list[str]) -> list[str]:
    """The unindented lines of a listing: its section titles."""
    return [line.split(" ")[0] for line in lines if line and not line.startswith(" ")]


def test_inspect_json_stays_exact(hostile_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(hostile_model), "--json"]) == 0
    out = capsys.readouterr().out
    assert _controls(out) == [] and "\u202e" not in out  # JSON escapes them itself
    shown = json.loads(out)
    assert shown["input"]["title"] == HOSTILE["title"]
    assert shown["predictor"]["classes"][2] == HOSTILE["newline"]


def test_the_location_and_etag_are_escaped_too(trained_model: Path) -> None:
    with zipfile.ZipFile(trained_model) as z:
        manifest = json.loads(z.read(MANIFEST))
    text = format_manifest(
        manifest,
        location="/models/\x1b[2Jmodel.zip",
        sha256=hashlib.sha256(b"").hexdigest(),
        size=1,
        etag='"0x8\x07"',
    )
    assert _controls(text) == []
    assert "/models/\\x1b[2Jmodel.zip" in text and '"0x8\\x07"' in text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    section=st.sampled_from(["predictor", "input", "output", "training", "files", "created"]),
    value=JSON,
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_inspect_formats_any_shape_of_manifest_safely(section: str, value: Any) -> None:
    """Whatever a section holds, the listing is built (never a traceback) and printable."""
    manifest: dict[str, Any] = {
        "format": "servefn.model/1",
        "kind": "linear-classifier",
        "input": {"columns": []},
        "output": {"columns": []},
        "files": {},
        "training": {"metrics": {"confusion_matrix": [[1, 2], [3]]}},
    }
    manifest[section] = value
    text = format_manifest(manifest, location="m.zip", sha256="0" * 64, size=0)
    assert _controls(text) == []


def test_a_manifest_section_of_the_wrong_type_is_left_out(
    trained_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["training"]["metrics"] = ["not", "an", "object"]
        manifest["training"]["params"] = "softmax"
        manifest["training"]["metrics"] = {"confusion_matrix": [[1, 2], [3]], "acc": 1.0}

    model = _with_manifest(trained_model, tmp_path / "odd.zip", edit)
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "Metrics\n  acc  1\n" in out and "Confusion matrix" not in out
