"""``servefn predict`` in one process: the iris model trained by the example, real files, real
fsspec (local, gzip, Azurite's Blob Storage), called through ``main([...])`` and from Python."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from servefn import LoadedModel, load_model
from servefn.batch import BatchOptions, BatchUsageError, predict_batch
from servefn.batch.engine import score_stream
from servefn.batch.progress import ProgressLine
from servefn.batch.report import MAX_REPORTED, PartitionReport
from servefn.batch.writers import CsvWriter
from servefn.cli._main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from servefn.errors import DataFormatError
from servefn.schema import layout_of
from support.iris import IRIS_DATA

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from support.azurite import Azurite

HEADER = "PredictedLabel,Score[0],Score[1],Score[2]"


@pytest.fixture(scope="module")
def model(trained_model: Path) -> LoadedModel:
    return load_model(trained_model)


def iris_rows() -> list[list[str]]:
    with IRIS_DATA.open(newline="") as f:
        return [row for row in csv.reader(f) if row]


def expected(model: LoadedModel, rows: list[list[str]]) -> list[tuple[str, list[float]]]:
    """What the model answers for ``rows`` through its Python API."""
    names = layout_of(model.input_schema).feature_names
    records = [dict(zip(names, map(float, r[:4]), strict=True)) for r in rows]
    return [(p.predicted_label, p.score) for p in model.predict(records)]  # type: ignore[attr-defined]


def read_csv_output(path: Path) -> tuple[list[str], list[tuple[str, list[float]]]]:
    with path.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, [(r[0], [float(v) for v in r[1:]]) for r in rows]


def run(*argv: str) -> int:
    return main(["predict", *argv])


# -- the happy path ------------------------------------------------------------------------------


def test_csv_by_column_index_scores_every_row_in_order(
    trained_model: Path, model: LoadedModel, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    assert (
        run(str(trained_model), "-i", str(IRIS_DATA), "-o", str(out), "--chunk-size", "16")
        == EXIT_OK
    )
    header, scored = read_csv_output(out)
    assert ",".join(header) == HEADER
    want = expected(model, iris_rows())
    assert [label for label, _ in scored] == [label for label, _ in want]
    assert np.array_equal([s for _, s in scored], [s for _, s in want])  # exact round trip
    assert sum(label == row[4] for (label, _), row in zip(scored, iris_rows(), strict=True)) > 140


def test_output_does_not_depend_on_the_chunk_size(trained_model: Path, tmp_path: Path) -> None:
    outputs = []
    for size in ("1", "7", "10000"):
        out = tmp_path / f"scores-{size}.csv"
        assert (
            run(str(trained_model), "-i", str(IRIS_DATA), "-o", str(out), "--chunk-size", size) == 0
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_standard_output_is_the_default(
    trained_model: Path, model: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "three.csv"
    source.write_text("3.3,1.6,0.2,5.1\n\n5.1,3.5,1.4,0.2,Iris-setosa\n6.5,3.0,5.2,2.0\n")
    assert run(str(trained_model), "-i", str(source)) == EXIT_OK
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == HEADER and len(lines) == 4
    assert lines[1].startswith("Iris-virginica,")
    assert lines[2].startswith("Iris-setosa,")
    assert captured.err == ""  # no progress line when stderr is not a terminal


def test_jsonl_by_name_with_an_id_kept(trained_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "flowers.jsonl"
    flowers = [
        {"id": "a", "SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1},
        {"PetalWidth": 0.2, "PetalLength": 1.4, "SepalWidth": 3.5, "SepalLength": 5.1, "id": 2},
    ]
    source.write_text("\n".join(json.dumps(f) for f in flowers) + "\n")
    out = tmp_path / "scores.jsonl"
    assert run(str(trained_model), "-i", str(source), "-o", str(out), "--keep", "id") == EXIT_OK
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [list(line) for line in lines] == [["id", "PredictedLabel", "Score"]] * 2
    assert [(line["id"], line["PredictedLabel"]) for line in lines] == [
        ("a", "Iris-virginica"),
        (2, "Iris-setosa"),
    ]
    assert len(lines[0]["Score"]) == 3 and abs(sum(lines[0]["Score"]) - 1) < 1e-9

    as_csv = tmp_path / "scores.csv"
    assert run(str(trained_model), "-i", str(source), "-o", str(as_csv), "--keep", "id") == EXIT_OK
    header, *rows = list(csv.reader(as_csv.open(newline="")))
    assert header == ["id", *HEADER.split(",")]
    assert [r[:2] for r in rows] == [["a", "Iris-virginica"], ["2", "Iris-setosa"]]


def test_csv_to_jsonl_keeps_the_label_for_evaluation(trained_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.jsonl"
    code = run(str(trained_model), "-i", str(IRIS_DATA), "-o", str(out), "--keep", "Label")
    assert code == EXIT_OK
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 150
    accuracy = sum(line["Label"] == line["PredictedLabel"] for line in lines) / len(lines)
    recorded = load_model(trained_model).manifest["training"]["metrics"]["micro_accuracy"]
    assert accuracy == pytest.approx(recorded)  # the manifest's figure, on the same data


def test_tsv_with_a_header_and_gzip_both_ways(trained_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "flowers.tsv.gz"
    rows = iris_rows()[:20]
    text = "sl\tsw\tpl\tpw\tlabel\n" + "".join("\t".join(r) + "\n" for r in rows)
    source.write_bytes(gzip.compress(text.encode()))
    out = tmp_path / "scores.jsonl.gz"
    assert run(str(trained_model), "-i", str(source), "-o", str(out), "--header") == EXIT_OK
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert len(lines) == 20
    plain = tmp_path / "plain.csv"
    plain.write_text("".join(",".join(r) + "\n" for r in rows))
    reference = tmp_path / "reference.jsonl"
    assert run(str(trained_model), "-i", str(plain), "-o", str(reference)) == EXIT_OK
    assert lines == reference.read_text().splitlines()


def test_python_api_with_a_loaded_model(model: LoadedModel, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    report = predict_batch(model, str(IRIS_DATA), str(out), options=BatchOptions(chunk_size=40))
    assert (report.rows, report.skipped, report.outputs) == (150, 0, [str(out)])
    assert len(out.read_text().splitlines()) == 151


# -- bad rows -------------------------------------------------------------------------------------


def write_with_bad_rows(path: Path, bad_every: int, rows: int) -> list[int]:
    """``rows`` good iris rows with a bad one at every ``bad_every``-th line; their lines."""
    good = iris_rows()
    lines, bad_lines = [], []
    for i in range(1, rows + 1):
        if i % bad_every == 0:
            lines.append("5.0,not-a-number,1.4,0.2")
            bad_lines.append(i)
        else:
            lines.append(",".join(good[i % len(good)]))
    path.write_text("\n".join(lines) + "\n")
    return bad_lines


def test_a_bad_row_fails_the_run_with_its_line_and_column(
    trained_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "flowers.csv"
    write_with_bad_rows(source, bad_every=37, rows=100)
    out = tmp_path / "scores.csv"
    code = run(str(trained_model), "-i", str(source), "-o", str(out), "--chunk-size", "10")
    assert code == EXIT_FAILURE
    err = capsys.readouterr().err.strip()
    assert err == (
        f"servefn predict: error: {source}, line 37, column 1: SepalWidth: 'not-a-number' is "
        "not a number (pass --on-error skip to leave bad rows out)"
    )
    assert not out.exists()  # a failed run leaves no partial output behind


def test_the_first_bad_line_is_reported_whatever_column_fails(
    model: LoadedModel, tmp_path: Path
) -> None:
    source = tmp_path / "flowers.csv"
    source.write_text("5.1,3.5,1.4,0.2\n5.1,3.5,1.4,oops\n5.1,oops,1.4,0.2\n")
    with pytest.raises(DataFormatError) as caught:
        predict_batch(model, str(source), str(tmp_path / "out.csv"))
    assert (caught.value.line, caught.value.column) == (2, 3)


def test_skipped_rows_are_reported_capped_and_left_out(
    trained_model: Path, model: LoadedModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "flowers.csv"
    bad_lines = write_with_bad_rows(source, bad_every=9, rows=300)
    assert len(bad_lines) > MAX_REPORTED
    out = tmp_path / "scores.csv"
    code = run(
        str(trained_model), "-i", str(source), "-o", str(out), "--on-error", "skip",
        "--chunk-size", "25", "--keep", "Label",
    )  # fmt: skip
    assert code == EXIT_OK
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"servefn predict: skipped {len(bad_lines)} bad rows of 300:"
    listed = [int(line.split(", line ")[1].split(",")[0]) for line in err[1:-1]]
    assert listed == bad_lines[:MAX_REPORTED]
    assert err[-1] == f"  ... and {len(bad_lines) - MAX_REPORTED} more"
    header, *rows = list(csv.reader(out.open(newline="")))
    assert header[0] == "Label" and len(rows) == 300 - len(bad_lines)
    kept = [line for line in source.read_text().splitlines() if "not-a-number" not in line]
    want = expected(model, [line.split(",") for line in kept])
    assert [r[1] for r in rows] == [label for label, _ in want]
    assert [r[0] for r in rows] == [line.split(",")[4] for line in kept]


def test_values_json_would_refuse_are_bad_rows_in_csv_too(
    model: LoadedModel, tmp_path: Path
) -> None:
    source = tmp_path / "flowers.csv"
    source.write_text(
        '5.1,3.5,1.4,0.2\nnan,3.5,1.4,0.2\n5.1,inf,1.4,0.2\n5.1,"3.5\n6.2,3.4,5.4,2.3\n'
    )
    report = predict_batch(
        model, str(source), str(tmp_path / "out.csv"), options=BatchOptions(on_error="skip")
    )
    assert report.rows == 1
    assert [(b.line, b.column) for b in report.bad_rows[:2]] == [(2, 0), (3, 1)]
    assert "NaN or infinity" in report.bad_rows[0].reason
    assert report.bad_rows[2].reason.startswith("not valid delimited text")


def test_bad_jsonl_lines_say_why_without_echoing_values(model: LoadedModel, tmp_path: Path) -> None:
    source = tmp_path / "flowers.jsonl"
    source.write_text(
        '{"SepalLength": 5.1, "SepalWidth": 3.5, "PetalLength": 1.4, "PetalWidth": 0.2}\n'
        '{"SepalLength": "secret-ish", "SepalWidth": 3.5, "PetalLength": 1.4, "PetalWidth": 0.2}\n'
        "[1, 2]\n"
        "{not json\n"
        '{"SepalLength": 5.1, "SepalWidth": 3.5, "PetalLength": 1.4, "PetalWidth": 0.2, "x": 1}\n'
    )
    report = predict_batch(
        model, str(source), str(tmp_path / "out.jsonl"), options=BatchOptions(on_error="skip")
    )
    assert report.rows == 1 and report.skipped == 4
    reasons = {b.line: b.reason for b in report.bad_rows}
    assert reasons[2].startswith("SepalLength: Input should be a valid number")
    assert "secret-ish" not in str(report.bad_rows)
    assert reasons[3] == "expected a JSON object, found list"
    assert reasons[4].startswith("not valid JSON")
    assert reasons[5].startswith("x: Extra inputs are not permitted")


# -- usage errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-i", "{missing}"], "does not exist"),
        (["-i", "{dir}/*.tsv"], "no input file matches"),
        (["-i", "{dir}/data.parquet"], "cannot tell the format"),
        (["-i", "{iris}", "-o", "{existing}"], "exists; remove it or pass --overwrite"),
        (["-i", "{iris}", "--keep", "PredictedLabel"], "the model's outputs have the same"),
        (["-i", "{iris}", "--keep", "id"], "only the input schema's indexed columns"),
        (["-i", "{iris}", "--chunk-size", "0"], "is not a positive whole number"),
        (["-i", "{iris}", "--sep", "ab"], "is not one character"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    trained_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    (tmp_path / "existing.csv").write_text("x\n")
    names = {
        "missing": str(tmp_path / "missing.csv"),
        "dir": str(tmp_path),
        "iris": str(IRIS_DATA),
        "existing": str(tmp_path / "existing.csv"),
    }
    assert run(str(trained_model), *[a.format(**names) for a in argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_overwrite_replaces_an_existing_output(trained_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    out.write_text("old\n")
    assert run(str(trained_model), "-i", str(IRIS_DATA), "-o", str(out), "--overwrite") == EXIT_OK
    assert out.read_text().startswith(HEADER + "\n")


def test_a_missing_model_is_a_runtime_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(str(tmp_path / "nope.zip"), "-i", str(IRIS_DATA)) == EXIT_FAILURE
    assert "nope.zip" in capsys.readouterr().err


# -- partitions -----------------------------------------------------------------------------------


def split_iris(folder: Path, parts: int = 3) -> list[Path]:
    folder.mkdir()
    rows = iris_rows()
    size = -(-len(rows) // parts)
    paths = []
    for i in range(parts):
        path = folder / f"iris-{i}.csv"
        path.write_text("".join(",".join(r) + "\n" for r in rows[i * size : (i + 1) * size]))
        paths.append(path)
    (folder / "_SUCCESS").write_text("")  # marker files are not partitions
    return paths


def test_a_glob_into_one_file_equals_the_whole_file(trained_model: Path, tmp_path: Path) -> None:
    split_iris(tmp_path / "in")
    whole, joined = tmp_path / "whole.csv", tmp_path / "joined.csv"
    assert run(str(trained_model), "-i", str(IRIS_DATA), "-o", str(whole)) == EXIT_OK
    assert run(str(trained_model), "-i", str(tmp_path / "in" / "*.csv"), "-o", str(joined)) == 0
    assert joined.read_bytes() == whole.read_bytes()


def test_a_folder_into_part_files(trained_model: Path, tmp_path: Path) -> None:
    split_iris(tmp_path / "in")
    out = tmp_path / "out"
    assert run(str(trained_model), "-i", str(tmp_path / "in"), "-o", f"{out}/") == EXIT_OK
    parts = sorted(out.iterdir())
    assert [p.name for p in parts] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    whole = tmp_path / "whole.csv"
    assert run(str(trained_model), "-i", str(IRIS_DATA), "-o", str(whole)) == EXIT_OK
    body = [line for p in parts for line in p.read_text().splitlines()[1:]]
    assert body == whole.read_text().splitlines()[1:]
    assert run(str(trained_model), "-i", str(tmp_path / "in"), "-o", f"{out}/") == EXIT_USAGE


# -- streaming ------------------------------------------------------------------------------------


class CountingLines:
    """A text stream of ``total`` iris lines that counts how many have been read from it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.read = 0
        self._rows = iris_rows()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.read == self.total:
            raise StopIteration
        self.read += 1
        return ",".join(self._rows[self.read % len(self._rows)]) + "\n"


def test_rows_are_read_only_a_chunk_ahead_of_what_is_written(model: LoadedModel) -> None:
    stream = CountingLines(total=10_000)
    out = io.StringIO()
    ahead: list[int] = []
    report = PartitionReport("generated", "memory")
    done = 0

    def on_rows(rows: int) -> None:
        nonlocal done
        done += rows
        ahead.append(stream.read - done)

    options = BatchOptions(input_format="csv", output_format="csv", chunk_size=500)
    score_stream(model, stream, CsvWriter(out, []), report, options, on_rows)  # type: ignore[arg-type]
    assert report.rows == 10_000 and len(ahead) == 20
    assert max(ahead) <= 1  # never more than the next line is pulled before a chunk is written
    assert out.getvalue().count("\n") == 10_001


def test_progress_line_shows_rows_and_rate() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = ProgressLine(stream, clock=lambda: now[0])
    now[0] = 0.1
    progress(500)  # too soon after the start to redraw
    assert stream.getvalue() == ""
    now[0] = 2.0
    progress(1500)
    progress.finish()
    assert stream.getvalue().split("\r\x1b[K")[1:] == [
        "2,000 rows  1,000 rows/s  2.0 s",
        "2,000 rows  1,000 rows/s  2.0 s\n",
    ]


def test_options_are_checked_when_built() -> None:
    with pytest.raises(BatchUsageError, match="chunk_size"):
        BatchOptions(chunk_size=0)
    with pytest.raises(BatchUsageError, match="on_error"):
        BatchOptions(on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(BatchUsageError, match="more than once"):
        BatchOptions(keep=("id", "id"))


# -- Blob Storage ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_reads_and_writes_blob_storage(
    trained_model: Path, azurite: Azurite, blob_container: ContainerClient, tmp_path: Path
) -> None:
    name = blob_container.container_name
    blob_container.upload_blob("in/iris.csv", IRIS_DATA.read_bytes())
    blob_container.upload_blob("models/model.zip", trained_model.read_bytes())
    code = run(
        f"az://{name}/models/model.zip", "-i", f"az://{name}/in/iris.csv",
        "-o", f"az://{name}/out/scores.jsonl", "--connection", azurite.connection_string,
    )  # fmt: skip
    assert code == EXIT_OK
    local = tmp_path / "scores.jsonl"
    assert run(str(trained_model), "-i", str(IRIS_DATA), "-o", str(local)) == EXIT_OK
    written = blob_container.download_blob("out/scores.jsonl").readall()
    assert written == local.read_bytes()
