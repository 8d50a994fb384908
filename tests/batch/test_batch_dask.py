"""``servefn predict --scheduler``: the same partitions scored on a real Dask cluster.

A ``LocalCluster`` of two worker processes on 127.0.0.1 is started for the module and closed
after it; inputs are files in a temporary folder (shared by the workers) and blobs in Azurite.
Every result is compared byte for byte with the single-process run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from servefn.cli._main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from support.iris import IRIS_DATA

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from support.azurite import Azurite

try:
    import distributed
except ImportError:  # the dask extra is part of dev; under CI its absence is a failure
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(
        "dask.distributed is not installed: pip install 'servefn[dask]'", allow_module_level=True
    )


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a two-process LocalCluster on 127.0.0.1."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def partitions(tmp_path: Path) -> Path:
    """iris.txt in four files of uneven size, one with a blank line, in ``in/``."""
    folder = tmp_path / "in"
    folder.mkdir()
    with IRIS_DATA.open(newline="") as f:
        rows = [",".join(r) for r in csv.reader(f) if r]
    for i, (start, end) in enumerate([(0, 1), (1, 40), (40, 97), (97, 150)]):
        body = "\n".join(rows[start:end]) + "\n"
        if i == 2:
            body = "\n" + body
        (folder / f"iris-{i}.csv").write_text(body)
    return folder


def predict(model: Path, *argv: str) -> int:
    return main(["predict", str(model), *argv])


def part_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.integration
def test_cluster_parts_equal_the_single_process_run(
    trained_model: Path, scheduler: str, partitions: Path, tmp_path: Path
) -> None:
    local, cluster, whole = tmp_path / "local", tmp_path / "cluster", tmp_path / "whole.csv"
    glob = str(partitions / "*.csv")
    assert predict(trained_model, "-i", glob, "-o", f"{local}/", "--chunk-size", "16") == EXIT_OK
    code = predict(
        trained_model,
        "-i",
        glob,
        "-o",
        f"{cluster}/",
        "--chunk-size",
        "16",
        "--scheduler",
        scheduler,
    )
    assert code == EXIT_OK
    parts = part_files(cluster)
    assert list(parts) == [f"part-0000{i}.csv" for i in range(4)]
    assert parts == part_files(local)
    assert predict(trained_model, "-i", str(IRIS_DATA), "-o", str(whole)) == EXIT_OK
    header, *body = whole.read_text().splitlines()
    joined = [line for data in parts.values() for line in data.decode().splitlines()[1:]]
    assert joined == body and all(p.decode().startswith(header + "\n") for p in parts.values())


@pytest.mark.integration
def test_jsonl_on_the_cluster_with_skipped_rows_reported_by_line(
    trained_model: Path,
    scheduler: str,
    partitions: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = partitions / "iris-1.csv"
    lines = bad.read_text().splitlines()
    lines[4] = "5.0,3.1,oops,0.2,Iris-setosa"
    bad.write_text("\n".join(lines) + "\n")
    common = ["-i", str(partitions), "--on-error", "skip", "--output-format", "jsonl"]
    out = tmp_path / "out"
    assert predict(trained_model, *common, "-o", f"{out}/", "--scheduler", scheduler) == EXIT_OK
    report = capsys.readouterr().err
    assert "skipped 1 bad row of 150:" in report
    assert "iris-1.csv, line 5, column 2: PetalLength: 'oops' is not a number" in report
    assert predict(trained_model, *common, "-o", f"{tmp_path / 'local'}/") == EXIT_OK
    assert part_files(out) == part_files(tmp_path / "local")
    assert sum(data.count(b"\n") for data in part_files(out).values()) == 149


@pytest.mark.integration
def test_a_bad_row_on_a_worker_fails_the_run_and_removes_every_part(
    trained_model: Path,
    scheduler: str,
    partitions: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (partitions / "iris-3.csv").write_text("5.0,3.1,1.4\n")
    out = tmp_path / "out"
    code = predict(trained_model, "-i", str(partitions), "-o", f"{out}/", "--scheduler", scheduler)
    assert code == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "iris-3.csv, line 1: expected at least 4 fields" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


@pytest.mark.integration
def test_the_cluster_needs_a_folder_output(
    trained_model: Path, scheduler: str, partitions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(partitions.parent / "one.csv")
    code = predict(trained_model, "-i", str(partitions), "-o", out, "--scheduler", scheduler)
    assert code == EXIT_USAGE
    assert "must be a folder URL ending in '/'" in capsys.readouterr().err


def test_an_unreachable_scheduler_is_reported(
    trained_model: Path,
    partitions: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from servefn.batch import cluster
    from support.azurite import free_port

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    out = f"{tmp_path / 'out'}/"
    code = predict(trained_model, "-i", str(partitions), "-o", out, "--scheduler", address)
    assert code == EXIT_FAILURE
    assert f"cannot reach the Dask scheduler at {address}" in capsys.readouterr().err


@pytest.mark.integration
def test_blob_storage_in_and_out_on_the_cluster(
    trained_model: Path,
    scheduler: str,
    partitions: Path,
    azurite: Azurite,
    blob_container: ContainerClient,
    tmp_path: Path,
) -> None:
    name = blob_container.container_name
    for path in sorted(partitions.iterdir()):
        blob_container.upload_blob(f"flowers/{path.name}", path.read_bytes())
    blob_container.upload_blob("models/model.zip", trained_model.read_bytes())
    code = main(
        [
            "predict", f"az://{name}/models/model.zip",
            "-i", f"az://{name}/flowers/*.csv", "-o", f"az://{name}/scores/",
            "--connection", azurite.connection_string, "--scheduler", scheduler,
        ]
    )  # fmt: skip
    assert code == EXIT_OK
    written = {
        blob.name.rsplit("/", 1)[1]: blob_container.download_blob(blob.name).readall()
        for blob in blob_container.list_blobs(name_starts_with="scores/")
    }
    local = tmp_path / "local"
    assert predict(trained_model, "-i", str(partitions), "-o", f"{local}/") == EXIT_OK
    assert written == part_files(local)


@pytest.mark.integration
def test_a_loaded_model_from_python_is_shipped_to_the_workers(
    trained_model: Path, scheduler: str, partitions: Path, tmp_path: Path
) -> None:
    from servefn import load_model
    from servefn.batch import BatchOptions, predict_batch

    out = tmp_path / "out"
    report = predict_batch(
        load_model(trained_model),
        str(partitions / "*.csv"),
        f"{out}/",
        options=BatchOptions(output_format="jsonl"),
        scheduler=scheduler,
    )
    assert (report.rows, report.skipped, len(report.partitions)) == (150, 0, 4)
    assert [Path(p).name for p in report.outputs] == [f"part-0000{i}.jsonl" for i in range(4)]
    local = tmp_path / "local"
    assert (
        predict(trained_model, "-i", str(partitions), "-o", f"{local}/", "--output-format", "jsonl")
        == 0
    )
    assert part_files(out) == part_files(local)
