"""Schemas: column metadata, feature matrices, output records and the portable spec."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, create_model

from servefn import Schema, SchemaError, column
from servefn.schema import layout_of, schema_from_spec
from support.iris import FLOWER, IrisData, IrisPrediction


class Wide(Schema):
    id: str = column(0, name="Id", role="ignore")
    pixels: list[float] = column("1-4", name="Pixels")
    bias: float = column(5, name="Bias", ge=0)
    count: int = column(6, name="Count", default=1)
    flag: bool | None = column(7, name="Flag", role="ignore", default=None)


def test_columns_follow_declaration_with_roles_and_wire_names() -> None:
    assert [c.name for c in layout_of(IrisData).features] == [
        "SepalLength",
        "SepalWidth",
        "PetalLength",
        "PetalWidth",
    ]
    label = layout_of(IrisData).label
    assert label is not None and (label.name, label.index, label.role) == ("Label", 4, "label")
    assert layout_of(IrisData).n_features == 4
    assert layout_of(Wide).n_features == 6
    assert layout_of(Wide).feature_names == (*(f"Pixels[{i}]" for i in range(4)), "Bias", "Count")


def test_wire_names_validate_and_python_names_construct() -> None:
    by_wire = IrisData.model_validate_json(json.dumps(FLOWER))
    by_name = IrisData(sepal_length=3.3, sepal_width=1.6, petal_length=0.2, petal_width=5.1)
    assert by_wire == by_name
    assert by_wire.model_dump() == {**FLOWER, "Label": None}


@pytest.mark.parametrize(
    ("body", "error_type", "loc"),
    [
        ({**FLOWER, "SepalLength": "3.3"}, "float_type", ("SepalLength",)),
        ({**FLOWER, "Sepallength": 1.0}, "extra_forbidden", ("Sepallength",)),
        ({k: v for k, v in FLOWER.items() if k != "PetalWidth"}, "missing", ("PetalWidth",)),
        ({**FLOWER, "PetalWidth": None}, "float_type", ("PetalWidth",)),
    ],
)
def test_bad_records_are_refused_with_field_paths(
    body: dict[str, object], error_type: str, loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as info:
        IrisData.model_validate_json(json.dumps(body))
    errors = info.value.errors(include_input=False)
    assert (errors[0]["type"], errors[0]["loc"]) == (error_type, loc)


def test_nan_and_infinity_are_refused() -> None:
    with pytest.raises(ValidationError):
        IrisData.model_validate_json(
            '{"SepalLength": NaN, "SepalWidth": 1, "PetalLength": 1, "PetalWidth": 1}'
        )
    with pytest.raises(ValidationError):
        IrisData.model_validate({**FLOWER, "SepalLength": float("inf")})


def test_vector_columns_have_fixed_length_and_flatten_in_order() -> None:
    ok = Wide.model_validate({"Id": "a", "Pixels": [1, 2, 3, 4], "Bias": 0.5})
    assert ok.count == 1
    matrix = layout_of(Wide).to_matrix([ok, ok])
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, [[1, 2, 3, 4, 0.5, 1]] * 2)
    with pytest.raises(ValidationError) as info:
        Wide.model_validate({"Id": "a", "Pixels": [1, 2, 3], "Bias": 0.5})
    assert info.value.errors()[0]["loc"] == ("Pixels",)
    with pytest.raises(ValidationError):
        Wide.model_validate({"Id": "a", "Pixels": [1, 2, 3, 4], "Bias": -1})


def test_matrix_from_records_dicts_and_tables_agree() -> None:
    rows = [FLOWER, {**FLOWER, "SepalLength": 7.0}]
    records = [IrisData.model_validate(r) for r in rows]
    from_records = layout_of(IrisData).to_matrix(records)
    from_dicts = layout_of(IrisData).to_matrix(
        [IrisData.model_validate(r.model_dump()) for r in records]
    )
    table = {k: np.array([r[k] for r in rows]) for k in FLOWER}
    np.testing.assert_array_equal(from_records, from_dicts)
    np.testing.assert_array_equal(from_records, layout_of(IrisData).table_to_matrix(table))
    assert from_records.shape == (2, 4) and from_records[1, 0] == np.float32(7.0)


def test_output_records_from_arrays_and_missing_outputs_named() -> None:
    outputs = {"PredictedLabel": np.array(["a", "b"]), "Score": np.array([[0.9, 0.1], [0.2, 0.8]])}
    assert layout_of(IrisPrediction).records_from_arrays(outputs) == [
        {"PredictedLabel": "a", "Score": [0.9, 0.1]},
        {"PredictedLabel": "b", "Score": [0.2, 0.8]},
    ]
    assert layout_of(IrisPrediction).from_arrays(outputs)[1].predicted_label == "b"
    with pytest.raises(SchemaError, match=r"\['Score'\].*produces \['PredictedLabel'\]"):
        layout_of(IrisPrediction).records_from_arrays({"PredictedLabel": outputs["PredictedLabel"]})


def test_misdeclared_schemas_fail_at_class_creation() -> None:
    with pytest.raises(SchemaError, match="role"):
        column(0, role="target")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="range"):
        column("3-1")
    with pytest.raises(SchemaError, match="list\\[float\\]"):

        class _Bad(Schema):
            x: float = column("0-2")

    with pytest.raises(SchemaError, match="not supported"):

        class _Worse(Schema):
            x: dict[str, int] = column(0)


def test_spec_round_trips_to_a_class_that_validates_the_same() -> None:
    for schema in (IrisData, Wide, IrisPrediction):
        spec = json.loads(json.dumps(layout_of(schema).spec()))
        rebuilt = schema_from_spec(spec)
        assert layout_of(rebuilt).spec() == layout_of(schema).spec()
        assert rebuilt.model_json_schema()["properties"] == schema.model_json_schema()["properties"]
    assert schema_from_spec(layout_of(IrisData).spec()) is schema_from_spec(
        layout_of(IrisData).spec()
    )  # cached
    with pytest.raises(SchemaError, match="malformed"):
        schema_from_spec({"columns": [{"name": "x"}]})


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.floats(-10, 10), max_size=5),
)
_keys = st.sampled_from(["Id", "Pixels", "Bias", "Count", "Flag", "pixels", "Other"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_rebuilt_schema_accepts_and_refuses_exactly_the_same_inputs(
    body: dict[str, object],
) -> None:
    rebuilt = schema_from_spec(json.loads(json.dumps(layout_of(Wide).spec())))

    def outcome(schema: type[Schema]) -> object:
        try:
            return schema.model_validate(body).model_dump()
        except ValidationError as exc:
            return [(e["type"], e["loc"]) for e in exc.errors()]

    assert outcome(rebuilt) == outcome(Wide)


def test_two_label_columns_are_refused_at_class_creation() -> None:
    with pytest.raises(SchemaError, match=r"2 label columns \(A, B\); keep one"):

        class TwoLabels(Schema):
            a: str = column(0, name="A", role="label")
            b: str = column(1, name="B", role="label")


def test_a_users_fields_may_take_any_name_servefn_used_to_claim() -> None:
    names = ["spec", "columns", "feature_names", "to_matrix", "from_spec", "read_delimited"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pydantic warns when a field shadows a parent attribute
        Record = create_model(
            "Record", __base__=Schema, **{n: (float, column(i)) for i, n in enumerate(names)}
        )
    record = Record.model_validate(dict.fromkeys(names, 1.0))
    assert layout_of(Record).feature_names == tuple(names)
    assert [getattr(record, n) for n in names] == [1.0] * len(names)
    added = {n for n in set(dir(Schema)) - set(dir(BaseModel)) if not n.startswith("__")}
    assert not added  # servefn adds no name to a user's class (one dunder: the layout)


def test_layout_of_refuses_what_is_not_a_schema_subclass() -> None:
    for not_a_schema in (Schema, BaseModel, dict):
        with pytest.raises(SchemaError, match=r"not a subclass of servefn\.Schema"):
            layout_of(not_a_schema)  # type: ignore[arg-type]


def test_rebuilt_schema_classes_are_cached_within_a_bound() -> None:
    from servefn.schema._spec import SPEC_CACHE_SIZE, _schema_from_spec

    base = layout_of(IrisData).spec()
    for i in range(SPEC_CACHE_SIZE + 10):
        schema_from_spec({**base, "title": f"Iris{i}"})
    assert _schema_from_spec.cache_info().currsize <= SPEC_CACHE_SIZE
