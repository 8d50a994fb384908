"""Reading delimited text by column index, as ML.NET's TextLoader does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from servefn import DataFormatError, Schema, SchemaError, column
from servefn.schema import layout_of, read_delimited
from support.iris import IRIS_DATA, IrisData


class Mixed(Schema):
    name: str = column(0, name="Name", role="ignore")
    values: list[float] = column("1-2", name="Values")
    count: int = column(3, name="Count")
    ok: bool = column(4, name="Ok", role="ignore")
    extra: float | None = column(5, name="Extra", default=None)


def test_iris_file_reads_150_rows_and_skips_the_blank_last_line() -> None:
    assert IRIS_DATA.read_text().endswith("\n\n")
    table = read_delimited(IrisData, IRIS_DATA)
    assert set(table) == {"SepalLength", "SepalWidth", "PetalLength", "PetalWidth", "Label"}
    assert table["SepalLength"].shape == (150,) and table["SepalLength"].dtype == np.float64
    assert table["Label"][0] == "Iris-setosa" and table["Label"][-1] == "Iris-virginica"
    assert list(dict.fromkeys(table["Label"])) == [
        "Iris-setosa",
        "Iris-versicolor",
        "Iris-virginica",
    ]
    matrix = layout_of(IrisData).table_to_matrix(table)
    assert matrix.shape == (150, 4) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix.max(axis=0), [7.9, 4.4, 6.9, 2.5], rtol=1e-6)


def test_typed_columns_vectors_header_quotes_and_separator(tmp_path: Path) -> None:
    path = tmp_path / "mixed.tsv"
    path.write_text(
        'name\tv1\tv2\tcount\tok\textra\n"a\tb"\t1\t2\t3\ttrue\t\n\nc\t4\t5e1\t-6\tNo\t0.5\n'
    )
    table = read_delimited(Mixed, path, sep="\t", header=True)
    assert table["Name"].tolist() == ["a\tb", "c"]
    np.testing.assert_array_equal(table["Values"], [[1, 2], [4, 50]])
    assert table["Count"].tolist() == [3, -6] and table["Count"].dtype == np.int64
    assert table["Ok"].tolist() == [True, False]
    assert np.isnan(table["Extra"][0]) and table["Extra"][1] == 0.5
    np.testing.assert_array_equal(
        layout_of(Mixed).table_to_matrix(table), [[1, 2, 3, np.nan], [4, 50, -6, 0.5]]
    )


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        (
            "5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.0,abc,0.2,Iris-setosa\n",
            2,
            2,
            "'abc' is not a number",
        ),
        (
            "5.1,3.5,1.4,0.2,Iris-setosa\n\n\n4.9,3.0,1.4\n",
            4,
            None,
            "at least 4 fields separated by the delimiter, found 3",
        ),
        ("5.1,,1.4,0.2,Iris-setosa\n", 1, 1, "a missing value is not a number"),
        ("5.1,3.5,1.4,0.2,x\n5.1,3.5,1.4,0.2," + "9" * 50 + "e\n", None, None, None),
    ],
)
def test_malformed_lines_name_file_line_and_column(
    tmp_path: Path, text: str, line: int | None, col: int | None, message: str | None
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    if line is None:  # a long label is a valid string: nothing to refuse
        assert read_delimited(IrisData, path)["Label"][1].endswith("e")
        return
    with pytest.raises(DataFormatError) as info:
        read_delimited(IrisData, path)
    err = info.value
    assert (err.path, err.line, err.column) == (str(path), line, col)
    assert message is not None and message in str(err) and f"line {line}" in str(err)


def test_bad_int_and_bool_values_are_not_coerced(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("a,1,2,3.5,true\n")
    with pytest.raises(DataFormatError, match=r"line 1, column 3: Count: '3.5' is not a valid int"):
        read_delimited(Mixed, path)
    path.write_text("a,1,2,3,maybe\n")
    with pytest.raises(DataFormatError, match="'maybe' is not a valid bool"):
        read_delimited(Mixed, path)


def test_columns_without_index_cannot_be_read(tmp_path: Path) -> None:
    class Unindexed(Schema):
        x: float = column(name="X")

    path = tmp_path / "x.csv"
    path.write_text("1\n")
    with pytest.raises(SchemaError, match=r"\['X'\] have no index"):
        read_delimited(Unindexed, path)
