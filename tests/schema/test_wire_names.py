"""Every field of a schema answers to keys no other field answers to.

Two fields with one wire name (or a wire name equal to another field's attribute name, since
schemas validate by name too) would make one JSON key set both, or let the last of two values
win silently. Such a class is refused when it is defined, naming both fields; rebuilt from a
manifest, it is an ``ArtifactError`` at load. A manifest's field names are held to what a class
can declare: identifiers, each once, none of pydantic's own names.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import ConfigDict

from servefn import ArtifactError, Schema, SchemaError, column, load_model
from servefn.schema import layout_of, schema_from_spec

MANIFEST = "servefn.json"


def _define(body: str, config: str = "") -> type[Schema]:
    """Define ``class Record(Schema)`` with ``body`` as its fields, as a user would."""
    namespace: dict[str, Any] = {"Schema": Schema, "column": column, "ConfigDict": ConfigDict}
    exec(f"class Record(Schema):\n{config}{body}", namespace)
    record: type[Schema] = namespace["Record"]
    return record


@pytest.mark.parametrize(
    ("body", "first", "second", "key"),
    [
        ('    a: float = column(0, name="X")\n    b: float = column(1, name="X")\n', "a", "b", "X"),
        ('    a: float = column(0, name="b")\n    b: float = column(1)\n', "a", "b", "b"),
        ('    a: float = column(0)\n    b: float = column(1, name="a")\n', "a", "b", "a"),
        ('    a: float = column(0, name="b")\n    b: float = column(1, name="a")\n', "a", "b", "a"),
        (
            '    a: float = column(0, name="X")\n    b: str = column(name="Y")\n'
            '    c: list[float] = column((2, 3), name="X")\n',
            "a",
            "c",
            "X",
        ),
        (
            '    a: float = column(0)\n    label: str = column(1, name="a", role="label")\n',
            "a",
            "label",
            "a",
        ),
        (
            '    a: float = column(0, name="k")\n'
            '    b: float = column(1, name="k", role="ignore")\n',
            "a",
            "b",
            "k",
        ),
    ],
)
def test_two_fields_with_one_wire_name_are_refused_at_definition(
    body: str, first: str, second: str, key: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        _define(body)
    message = str(caught.value)
    assert f"Record.{first} and Record.{second}" in message and repr(key) in message
    assert "\n" not in message


def test_swapped_names_are_fine_when_the_schema_validates_by_alias_only() -> None:
    record = _define(
        '    a: float = column(0, name="b")\n    b: float = column(1, name="a")\n',
        config="    model_config = ConfigDict(validate_by_name=False)\n",
    )
    assert [c.name for c in layout_of(record).columns] == ["b", "a"]
    assert record.model_validate({"b": 1.0, "a": 2.0}).a == 1.0  # type: ignore[attr-defined]


def test_a_field_named_its_own_wire_name_is_fine() -> None:
    record = _define('    a: float = column(0, name="a")\n    b: float = column(1, name="B")\n')
    assert layout_of(record).feature_names == ("a", "B")


@pytest.mark.parametrize("name", ["model_fields", "model_validate_x", "model_copy", "model_extra"])
def test_a_field_named_like_pydantic_internals_is_refused_at_definition(name: str) -> None:
    with pytest.warns(UserWarning), pytest.raises(SchemaError, match=f"Record.{name}: the name"):
        _define(f"    {name}: float = column(0)\n")


def test_a_field_may_still_start_with_model() -> None:
    record = _define("    model_name: str = column(0)\n")
    assert layout_of(record).columns[0].field == "model_name"


# -- rebuilt from a manifest ------------------------------------------------------------------


def _spec(*columns: dict[str, Any]) -> dict[str, Any]:
    return {"title": "T", "extra": "forbid", "columns": list(columns)}


def _col(field: str, name: str | None = None, index: int = 0) -> dict[str, Any]:
    return {"field": field, "name": name or field, "type": "float", "index": index}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (_spec(_col("a", "X"), _col("b", "X", 1)), "T.a and T.b both answer to the key 'X'"),
        (_spec(_col("a", "b"), _col("b", "B", 1)), "T.a and T.b both answer to the key 'b'"),
        (_spec(_col("a"), _col("a", "A2", 1)), "declares field 'a' twice"),
        (_spec(_col("model_config")), "'model_config' is one of pydantic's own names"),
        (_spec(_col("model_fields")), "'model_fields' is one of pydantic's own names"),
        (_spec(_col("model_dump_json")), "pydantic's own names"),
        (_spec(_col("_private")), "starts with '_'"),
        (_spec(_col("__class__")), "starts with '_'"),
        (_spec(_col("a b")), "not a Python identifier"),
        (_spec(_col("class")), "not a Python identifier"),
        (_spec(_col("")), "not a Python identifier"),
        (_spec({"field": 3, "name": "x", "type": "float"}), "not a Python identifier"),
    ],
)
def test_schema_from_spec_refuses_what_a_class_could_not_declare(
    spec: dict[str, Any], match: str
) -> None:
    with pytest.raises(SchemaError, match=match):
        schema_from_spec(spec)


def _rewritten(model: Path, edit: Any) -> bytes:
    """``model`` with its manifest edited; its payload hashes still hold."""
    with zipfile.ZipFile(model) as z:
        files = {name: z.read(name) for name in z.namelist()}
    manifest = json.loads(files[MANIFEST])
    edit(manifest)
    files[MANIFEST] = json.dumps(manifest).encode()
    for name, data in files.items():
        if name != MANIFEST:
            assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def _setter(section: str, index: int, key: str, value: Any) -> Any:
    def edit(manifest: dict[str, Any]) -> None:
        manifest[section]["columns"][index][key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_setter("input", 1, "name", "SepalLength"), "both answer to the key 'SepalLength'"),
        (_setter("input", 1, "name", "sepal_length"), "both answer to the key 'sepal_length'"),
        (_setter("input", 4, "name", "PetalWidth"), "both answer to the key 'PetalWidth'"),
        (_setter("output", 1, "name", "PredictedLabel"), "both answer to the key"),
        (_setter("input", 0, "field", "model_config"), "pydantic's own names"),
        (_setter("input", 0, "field", "model_fields"), "pydantic's own names"),
        (_setter("output", 0, "field", "model_dump"), "pydantic's own names"),
        (_setter("input", 1, "field", "sepal_length"), "declares field 'sepal_length' twice"),
        (_setter("input", 0, "field", "not-an-identifier"), "not a Python identifier"),
    ],
)
def test_a_manifest_with_clashing_or_reserved_names_is_refused_at_load(
    trained_model: Path, edit: Any, match: str
) -> None:
    with pytest.raises(ArtifactError, match=match) as caught:
        load_model(_rewritten(trained_model, edit))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("classes", ["abc", "Iris-setosa", {"a": 0}, 3, [["a"], ["b"], ["c"]]])
def test_classes_that_are_not_a_list_of_labels_are_refused_at_load(
    trained_model: Path, classes: Any
) -> None:
    def edit(manifest: dict[str, Any]) -> None:
        manifest["predictor"]["classes"] = classes

    with pytest.raises(ArtifactError, match="classes must be"):
        load_model(_rewritten(trained_model, edit))
