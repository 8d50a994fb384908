"""CSV records end only at CR, LF or CRLF outside quotes (RFC 4180), everywhere servefn reads CSV.

``str.splitlines()`` also breaks at VT, FF, 0x1C-0x1E, NEL, U+2028 and U+2029; one record must
never become two predictions. Such a character is part of its field: kept in a ``str`` column,
a clear 422 (HTTP) or :class:`DataFormatError` (files, batch) in a number column. Each of the
eight is tried inside a field and between fields: over HTTP (an ``Endpoint`` with a ``Request``,
with and without a handler, and one real ``servefn serve``), in ``predict_batch`` from a file
(CSV and JSON Lines) and in ``read_delimited``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from servefn.batch import BatchOptions, predict_batch
from servefn.errors import DataFormatError
from servefn.http import Endpoint, Request
from servefn.model._archive import LoadedModel
from servefn.schema import read_delimited
from support.servehost import ServeProcess
from support.visits import MODEL, Fixed, Verdict, Visit, model_zip

BREAKS = {
    "VT": "\x0b",
    "FF": "\x0c",
    "FS": "\x1c",
    "GS": "\x1d",
    "RS": "\x1e",
    "NEL": "\x85",
    "LS": "\u2028",
    "PS": "\u2029",
}
"""Where ``str.splitlines()`` breaks a line and CSV does not."""
CHARS = [pytest.param(char, id=name) for name, char in BREAKS.items()]
CSV_TYPE = {"content-type": "text/csv"}


SEEN: list[list[str | None]] = []


def keep_notes(model: LoadedModel, inputs: Sequence[Any]) -> Any:
    SEEN.append([record.note for record in inputs])
    return model.predict(list(inputs))


ENDPOINTS = {
    "predictor": Endpoint(Visit, Verdict, Fixed()),
    "handler": Endpoint(Visit, Verdict, Fixed(), handler=keep_notes),
}


@pytest.fixture(params=sorted(ENDPOINTS))
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    return ENDPOINTS[request.param]


def post_csv(endpoint: Endpoint, text: str) -> tuple[int, Any]:
    SEEN.clear()
    response = endpoint.handle(Request("POST", text.encode(), CSV_TYPE))
    return response.status, json.loads(response.body)


def records(text: str) -> int:
    """How many non-blank records ``text`` holds, split as RFC 4180 splits it."""
    return sum(1 for row in csv.reader(io.StringIO(text, newline="")) if any(row))


# -- over HTTP: the endpoint ------------------------------------------------------------------


@pytest.mark.parametrize("char", CHARS)
def test_a_str_field_keeps_the_character_and_the_record_stays_one(
    endpoint: Endpoint, char: str
) -> None:
    note = f"before{char}after"
    text = f'1,2,{note}\n3,4,{char}\r\n5,6,plain{char}\r7,8,"{char}quoted{char}"\n'
    status, body = post_csv(endpoint, text)
    assert status == 200, body
    assert len(body) == records(text) == 4
    if endpoint.handler is not None:
        assert [[note, char, f"plain{char}", f"{char}quoted{char}"]] == SEEN


@pytest.mark.parametrize("char", CHARS)
@pytest.mark.parametrize(
    ("template", "line", "column_index"),
    [
        pytest.param("1{c}5,2,a\n", 1, 0, id="inside"),
        pytest.param("1,2,a\n3,{c}4,b\n", 2, 1, id="leading"),
        pytest.param("1,2,a\n3,4,b\n5{c},6,c\n", 3, 0, id="trailing"),
        pytest.param("1,2{c}3,4,x\n", 1, 1, id="between_fields"),
        pytest.param("1,2,a\r\n3,4{c}5,6,b\r\n", 2, 1, id="between_fields_crlf"),
    ],
)
def test_a_number_field_with_the_character_is_a_422_naming_line_and_column(
    endpoint: Endpoint, char: str, template: str, line: int, column_index: int
) -> None:
    status, body = post_csv(endpoint, template.format(c=char))
    assert status == 422, body
    assert body["errors"][0]["type"] == "csv"
    assert body["errors"][0]["loc"] == ["line", line, "column", column_index]
    assert char not in json.dumps(body, ensure_ascii=False)  # the value is not echoed


@pytest.mark.parametrize("char", CHARS)
def test_the_character_alone_on_a_line_is_a_record_not_a_blank_line(
    endpoint: Endpoint, char: str
) -> None:
    status, body = post_csv(endpoint, f"1,2,a\n{char}\n3,4,b\n")
    assert status == 422, body
    assert body["errors"][0]["loc"][:2] == ["line", 2]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1,2,a\r3,4,b\r5,6,c", id="cr"),
        pytest.param("1,2,a\n3,4,b\n5,6,c\n", id="lf"),
        pytest.param("1,2,a\r\n3,4,b\r\n5,6,c\r\n", id="crlf"),
        pytest.param("1,2,a\r3,4,b\n5,6,c\r\n\r\n\n", id="mixed_and_blank_lines"),
        pytest.param('1,2,"a\r\nb"\n3,4,"x\ry"\r5,6,"\n"\n', id="line_breaks_inside_quotes"),
    ],
)
def test_records_end_at_cr_lf_or_crlf(endpoint: Endpoint, text: str) -> None:
    status, body = post_csv(endpoint, text)
    assert status == 200, body
    assert len(body) == records(text) == 3


def test_a_header_line_is_one_record_too(endpoint: Endpoint) -> None:
    text = f"Length,Width,Note{BREAKS['LS']}x\r\n1,2,a\r\n3,4,b{BREAKS['NEL']}c\r\n"
    response = endpoint.handle(
        Request("POST", text.encode(), {"content-type": "text/csv; header=present"})
    )
    assert response.status == 200, response.body
    assert len(json.loads(response.body)) == 2


# -- servefn predict (predict_batch) from a file -----------------------------------------------


def batch_rows(
    tmp_path: Path, name: str, text: str, **options: Any
) -> tuple[int, list[dict[str, Any]]]:
    """Rows ``predict_batch`` scored from ``text``, and the output records it wrote."""
    source = tmp_path / name
    source.write_bytes(text.encode())
    output = tmp_path / f"out-{name}"
    report = predict_batch(MODEL, str(source), str(output), options=BatchOptions(**options))
    with output.open(newline="", encoding="utf-8") as fh:
        if name.endswith(".jsonl"):
            return report.rows, [json.loads(line) for line in fh.read().split("\n") if line]
        return report.rows, list(csv.DictReader(fh))


@pytest.mark.parametrize("char", CHARS)
def test_predict_batch_keeps_one_prediction_per_csv_record(tmp_path: Path, char: str) -> None:
    text = f'1,2,a{char}b\n3,4,{char}\r\n5,6,"x{char}\r\ny"\r7,8,c\n'
    rows, written = batch_rows(tmp_path, "in.csv", text, keep=("Note",))
    assert rows == len(written) == records(text) == 4
    assert [row["Note"] for row in written] == [f"a{char}b", char, f"x{char}\r\ny", "c"]


@pytest.mark.parametrize("char", CHARS)
def test_predict_batch_refuses_the_character_in_a_number_field(tmp_path: Path, char: str) -> None:
    text = f"1,2,a\n3,4{char}5,6,b\n7,{char}8,c\n9,10,d\n"
    with pytest.raises(DataFormatError) as failure:
        batch_rows(tmp_path, "fail.csv", text)
    assert (failure.value.line, failure.value.column) == (2, 1)
    rows, written = batch_rows(tmp_path, "skip.csv", text, on_error="skip")
    assert rows == 2 and len(written) == 2  # lines 1 and 4; never a record made of a fragment


@pytest.mark.parametrize("char", CHARS)
def test_predict_batch_json_lines_end_at_lf_only(tmp_path: Path, char: str) -> None:
    lines = [
        json.dumps({"Length": 1, "Width": 2, "Note": f"a{char}b"}, ensure_ascii=False),
        '{"Length": 3,\r"Width": 4}',  # a lone CR is JSON whitespace, not a line break
        json.dumps({"Length": 5, "Width": 6, "Note": char}, ensure_ascii=False),
    ]
    rows, written = batch_rows(tmp_path, "in.jsonl", "\n".join(lines) + "\r\n", keep=("Note",))
    assert rows == len(written) == 3
    assert [row["Note"] for row in written] == [f"a{char}b", None, char]


# -- read_delimited ----------------------------------------------------------------------------


@pytest.mark.parametrize("char", CHARS)
def test_read_delimited_keeps_the_character_in_a_str_column(tmp_path: Path, char: str) -> None:
    path = tmp_path / "visits.csv"
    path.write_bytes(f"1,2,a{char}b\r\n3,4,{char}\n5,6,c\r".encode())
    table = read_delimited(Visit, path)
    assert list(table["Note"]) == [f"a{char}b", char, "c"]
    assert list(table["Length"]) == [1.0, 3.0, 5.0]


@pytest.mark.parametrize("char", CHARS)
@pytest.mark.parametrize(
    ("template", "line", "column_index"),
    [
        pytest.param("1,2,a\n3{c}4,5,b\n", 2, 0, id="inside"),
        pytest.param("1,{c}2,a\n", 1, 1, id="leading"),
        pytest.param("1,2,a\r\n3,4,b\r\n5,6{c},c\r\n", 3, 1, id="trailing"),
    ],
)
def test_read_delimited_refuses_the_character_in_a_number_column(
    tmp_path: Path, char: str, template: str, line: int, column_index: int
) -> None:
    path = tmp_path / "visits.csv"
    path.write_bytes(template.format(c=char).encode())
    with pytest.raises(DataFormatError) as failure:
        read_delimited(Visit, path)
    assert (failure.value.line, failure.value.column) == (line, column_index)
    assert char not in str(failure.value)  # shown escaped (repr), never raw


@pytest.mark.parametrize("text", ["1, 2 ,a\n", "1\t,\t2,a\n", " 1 , 2 ,a\n"])
def test_spaces_and_tabs_around_numbers_are_still_accepted(tmp_path: Path, text: str) -> None:
    path = tmp_path / "visits.csv"
    path.write_text(text)
    assert list(read_delimited(Visit, path)["Width"]) == [2.0]


@pytest.mark.parametrize("value", ["\u0661", "1\u00a0", "\u20032"])
def test_other_unicode_digits_and_spaces_are_not_numbers(tmp_path: Path, value: str) -> None:
    """``float()`` reads them; a CSV number is ASCII digits (and spaces or tabs around them)."""
    path = tmp_path / "visits.csv"
    path.write_bytes(f"1,{value},a\n".encode())
    with pytest.raises(DataFormatError):
        read_delimited(Visit, path)


# -- one real servefn serve --------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    folder = tmp_path_factory.mktemp("csv-records")
    (folder / "model.zip").write_bytes(model_zip())
    host = ServeProcess(folder / "model.zip", folder / "serve.log")
    try:
        host.wait()
        yield host
    finally:
        host.stop()


@pytest.mark.integration
def test_servefn_serve_answers_one_prediction_per_csv_record(served: ServeProcess) -> None:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        for char in BREAKS.values():
            text = f"1,2,a{char}b\n3,4,{char}\r\n5,6,c\r"
            response = client.post("/Predict", content=text.encode(), headers=CSV_TYPE)
            assert response.status_code == 200, response.text
            assert len(response.json()) == records(text) == 3
            refused = client.post("/Predict", content=f"1,2{char}3,4,a\n", headers=CSV_TYPE)
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["loc"] == ["line", 1, "column", 1]
