"""Categorical columns (``Literal`` and ``Enum`` fields) and optional features, in the schema layer.

A categorical column lists its ``categories`` in the layout and the spec, shows them as a JSON
schema ``enum``, survives ``schema_from_spec`` and refuses an unknown value with a bounded message
that never quotes the value sent. Optional features become NaN (numbers) or None (text) in the
feature matrix, from records and from delimited text alike.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any, Literal

import numpy as np
import pydantic
import pytest

from servefn import DataFormatError, Schema, SchemaError, column
from servefn.schema import layout_of, read_delimited, schema_from_spec
from servefn.schema._delimited import numbered_rows, parse_rows

SENT = "c4n4ry-8d1f0e"


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 3


class Mixed(Schema):
    word: Literal["x", "y"] = column(0)
    number: Literal[1, 2] = column(1)
    color: Color = column(2)
    size: Size = column(3)
    weight: float | None = column(4, default=None)
    note: str | None = column(5, default=None)


class Optional3(Schema):
    a: float | None = column(0, default=None)
    b: int | None = column(1, default=None)
    c: float = column(2)


class Nullable(Schema):
    kind: Literal["p", "q"] | None = column(0, default=None)
    label: str | None = column(1, default=None, role="label")


VOCABULARY = [f"v{i:03d}" for i in range(100)]
Big = Literal[tuple(VOCABULARY)]  # type: ignore[valid-type]


class Wide(Schema):
    value: Big = column(0)  # type: ignore[valid-type]


def by_field(schema: type[Schema]) -> dict[str, Any]:
    return {c.field: c for c in layout_of(schema).columns}


def properties(schema: type[Schema]) -> dict[str, Any]:
    document = schema.model_json_schema()
    props: dict[str, Any] = document["properties"]
    defs = document.get("$defs", {})
    return {
        name: defs[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for name, p in props.items()
    }


def test_literal_and_enum_fields_are_categorical_columns() -> None:
    columns = by_field(Mixed)
    assert (columns["word"].kind, columns["word"].categories) == ("str", ("x", "y"))
    assert (columns["number"].kind, columns["number"].categories) == ("int", (1, 2))
    assert (columns["color"].kind, columns["color"].categories) == ("str", ("red", "blue"))
    assert (columns["size"].kind, columns["size"].categories) == ("int", (1, 3))
    assert columns["weight"].categories is None and columns["note"].categories is None


def test_spec_writes_categories_only_for_categorical_columns() -> None:
    spec = {c["field"]: c for c in layout_of(Mixed).spec()["columns"]}
    assert spec["word"]["categories"] == ["x", "y"]
    assert spec["number"]["categories"] == [1, 2]
    assert spec["color"]["categories"] == ["red", "blue"]
    assert spec["size"]["categories"] == [1, 3]
    assert "categories" not in spec["weight"] and "categories" not in spec["note"]
    json.dumps(spec)  # plain JSON: no Enum members


def test_json_schema_shows_enum() -> None:
    props = properties(Mixed)
    assert props["word"]["enum"] == ["x", "y"]
    assert props["number"]["enum"] == [1, 2]
    assert props["color"]["enum"] == ["red", "blue"]
    assert props["size"]["enum"] == [1, 3]


def test_spec_round_trip_keeps_categories_nullability_and_enum() -> None:
    for schema in (Mixed, Nullable, Wide):
        spec = layout_of(schema).spec()
        rebuilt = schema_from_spec(spec)
        assert layout_of(rebuilt).spec() == spec
        for name, original in by_field(schema).items():
            again = by_field(rebuilt)[name]
            assert again.categories == original.categories, name
            assert again.nullable == original.nullable, name
    props = properties(schema_from_spec(layout_of(Mixed).spec()))
    assert props["word"]["enum"] == ["x", "y"]
    assert props["size"]["enum"] == [1, 3]
    assert props["note"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    nullable = properties(schema_from_spec(layout_of(Nullable).spec()))["kind"]
    branches = nullable["anyOf"]
    assert {"type": "null"} in branches
    assert any(b.get("enum") == ["p", "q"] for b in branches), nullable


def test_rebuilt_schema_checks_membership() -> None:
    rebuilt = schema_from_spec(layout_of(Mixed).spec())
    good = {"word": "y", "number": 2, "color": "blue", "size": 3}
    assert rebuilt.model_validate(good).model_dump()["word"] == "y"
    for field, bad in (("word", "z"), ("number", 5), ("color", "green"), ("size", 2)):
        with pytest.raises(pydantic.ValidationError) as caught:
            rebuilt.model_validate({**good, field: bad})
        assert caught.value.errors()[0]["loc"] == (field,)
    nullable = schema_from_spec(layout_of(Nullable).spec())
    assert nullable.model_validate({"kind": None}).model_dump()["kind"] is None
    assert nullable.model_validate({}).model_dump()["kind"] is None


def test_enum_fields_accept_their_values_in_python_mode() -> None:
    record = Mixed.model_validate({"word": "x", "number": 1, "color": "red", "size": 1})
    assert record.color is Color.RED or record.color == "red"
    assert Mixed(word="x", number=1, color="blue", size=3).size == 3


def test_unknown_value_message_is_bounded_and_never_quotes_the_value() -> None:
    rebuilt = schema_from_spec(layout_of(Wide).spec())
    with pytest.raises(pydantic.ValidationError) as caught:
        rebuilt.model_validate({"value": SENT})
    error = caught.value.errors()[0]
    message = error["msg"]
    assert message.startswith("Input should be one of 'v000', 'v001'"), message
    assert "(and 80 more)" in message, message
    assert "'v019'" in message and "'v020'" not in message, message
    assert SENT not in message
    small = schema_from_spec(layout_of(Mixed).spec())
    with pytest.raises(pydantic.ValidationError) as caught:
        small.model_validate({"word": SENT, "number": 1, "color": "red", "size": 1})
    message = caught.value.errors()[0]["msg"]
    assert "'x', 'y'" in message and SENT not in message and "more" not in message


def test_mixed_type_literal_is_refused() -> None:
    with pytest.raises(SchemaError):

        class Bad(Schema):
            value: Literal["a", 1] = column(0)

        layout_of(Bad)


@pytest.mark.parametrize(
    "categories",
    [["a", "a"], ["a", 1], [1.5, 2.5], "ab", [None, "a"]],
    ids=["duplicate", "mixed", "floats", "not-a-list", "null"],
)
def test_spec_with_bad_categories_is_refused(categories: Any) -> None:
    spec = layout_of(Mixed).spec()
    spec["columns"][0]["categories"] = categories
    with pytest.raises(SchemaError):
        schema_from_spec(spec)


def test_to_matrix_gives_nan_for_missing_numbers() -> None:
    layout = layout_of(Optional3)
    records = [Optional3(c=1.0), Optional3(a=2.5, b=4, c=3.0)]
    matrix = layout.to_matrix(records, np.float64)
    assert matrix.dtype == np.float64 and matrix.shape == (2, 3)
    assert math.isnan(matrix[0, 0]) and math.isnan(matrix[0, 1])
    assert matrix[1].tolist() == [2.5, 4.0, 3.0]
    assert np.isnan(layout.to_matrix(records)[0, :2]).all()  # float32 too


def test_to_matrix_with_text_gives_an_object_matrix() -> None:
    layout = layout_of(Mixed)
    records = [
        Mixed(word="x", number=1, color="red", size=1),
        Mixed.model_validate(
            {"word": "y", "number": 2, "color": "blue", "size": 3, "weight": 1.5, "note": "t"}
        ),
    ]
    matrix = layout.to_matrix(records, np.float64)
    assert matrix.dtype == object and matrix.shape == (2, 6)
    first, second = matrix.tolist()
    assert first[0] == "x" and first[2] == "red" and first[5] is None
    assert type(first[1]) is float and first[1] == 1.0
    assert type(first[3]) is float and first[3] == 1.0
    assert type(first[4]) is float and math.isnan(first[4])
    assert type(second[2]) is str and second[2] == "blue"  # the value, not the Enum member
    assert second == ["y", 2.0, "blue", 3.0, 1.5, "t"]


def test_table_to_matrix_with_an_optional_int_column(tmp_path: Any) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(",,1.5\n2.5,7,3\n")
    layout = layout_of(Optional3)
    table = read_delimited(Optional3, path)
    matrix = layout.table_to_matrix(table, np.float64)
    assert matrix.dtype == np.float64 and matrix.shape == (2, 3)
    assert math.isnan(matrix[0, 0]) and math.isnan(matrix[0, 1]) and matrix[0, 2] == 1.5
    assert matrix[1].tolist() == [2.5, 7.0, 3.0]
    records = [Optional3(c=1.5), Optional3(a=2.5, b=7, c=3.0)]
    np.testing.assert_array_equal(matrix, layout.to_matrix(records, np.float64))


def test_table_to_matrix_with_text_matches_to_matrix() -> None:
    layout = layout_of(Mixed)
    table = parse_rows(
        numbered_rows("x,1,red,1,,\ny,2,blue,3,1.5,t\n"), layout.columns, source="rows"
    )
    matrix = layout.table_to_matrix(table, np.float64)
    assert matrix.dtype == object
    first, second = matrix.tolist()
    assert first[0] == "x" and first[5] is None and math.isnan(first[4])
    assert second == ["y", 2.0, "blue", 3.0, 1.5, "t"]


def test_csv_value_outside_the_categories_names_the_column() -> None:
    layout = layout_of(Mixed)
    with pytest.raises(DataFormatError) as caught:
        parse_rows(numbered_rows("x,1,red,1,,\nx,1,green,1,,\n"), layout.columns, source="rows")
    message = str(caught.value)
    assert "color" in message and "'red', 'blue'" in message and "line 2" in message
    with pytest.raises(DataFormatError) as caught:
        parse_rows(numbered_rows("x,5,red,1,,\n"), layout.columns, source="rows")
    assert "number" in str(caught.value)


def test_csv_unknown_value_is_not_quoted_for_client_requests() -> None:
    with pytest.raises(DataFormatError) as caught:
        parse_rows(
            numbered_rows(f"{SENT},1,red,1,,\n"),
            layout_of(Mixed).columns,
            source="request",
            quote_values=False,
        )
    assert SENT not in str(caught.value) and "word" in str(caught.value)


def test_csv_empty_field_of_a_nullable_str_column_is_none() -> None:
    table = parse_rows(numbered_rows("x,1,red,1,,\n"), layout_of(Mixed).columns, source="rows")
    assert table["note"].tolist() == [None]
    assert math.isnan(table["weight"][0])
    table = parse_rows(numbered_rows(",b\np,b\n"), layout_of(Nullable).columns, source="rows")
    assert table["kind"].tolist() == [None, "p"]


def test_csv_empty_field_of_a_required_categorical_column_is_refused() -> None:
    with pytest.raises(DataFormatError, match="word"):
        parse_rows(numbered_rows(",1,red,1,,\n"), layout_of(Mixed).columns, source="rows")
