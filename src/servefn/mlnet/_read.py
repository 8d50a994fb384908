""":func:`read_mlnet`: an ML.NET model.zip decoded, checked and mapped onto servefn's parts.

The archive's ``Schema`` entry gives the input columns; an archive saved without one (ML.NET's
``Save`` with no input schema) falls back to the prediction transformer's ``TrainSchema`` minus
the columns the transforms add. The training record carries every component's decoded
parameters (``mlnet``), which ``servefn inspect`` lists, and the ML.NET version that wrote it.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike, fspath
from pathlib import Path
from typing import Any

from servefn.mlnet._binary import MlnetError
from servefn.mlnet._build import predictor
from servefn.mlnet._context import open_root
from servefn.mlnet._dataview import ColumnType, read_schema
from servefn.mlnet._models import Prediction
from servefn.mlnet._pipeline import Pipeline
from servefn.mlnet._repository import ROOT, Repository
from servefn.mlnet._transforms import Step, decode_chain
from servefn.model._boundary import artifact_errors
from servefn.predictors import Predictor

__all__ = ["MlnetModel", "read_mlnet"]

MAX_UNPACKED_BYTES = 1 << 30


@dataclass
class MlnetModel:
    """An ML.NET model as servefn serves it: the predictor, the input and output schema specs
    (``schema_from_spec`` builds the classes), the training record and the archive's date."""

    predictor: Predictor
    input: dict[str, Any]
    output: dict[str, Any]
    training: dict[str, Any]
    created: datetime


def read_mlnet(
    source: bytes | str | PathLike[str], *, max_unpacked: int = MAX_UNPACKED_BYTES
) -> MlnetModel:
    """Decode the ML.NET model.zip ``source`` (bytes or a path) into an :class:`MlnetModel`.

    Raises :class:`~servefn.errors.ArtifactError` (one line) for a damaged, hostile or
    unsupported archive, naming the component and what is wrong with it.
    """
    with artifact_errors():  # whatever a hostile file provokes leaves as one line
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        else:
            data = Path(fspath(source)).read_bytes()
        repository = Repository(data, max_unpacked=max_unpacked)
        try:
            steps = decode_chain(open_root(repository, ROOT))
            inputs = _inputs(repository, steps)
            pipeline = Pipeline(inputs)
            pipeline.run(steps)
            served, input_spec, output_spec, score = predictor(pipeline)
            version = _version(repository)
        finally:
            repository.close()
        training = _training(steps, version, score)
        return MlnetModel(served, input_spec, output_spec, training, _created(data))


def _inputs(repository: Repository, steps: list[Step]) -> list[tuple[str, ColumnType]]:
    data = repository.read("Schema")
    if data is not None:
        return read_schema(data, "Schema")
    predict = next((s for s in steps if s.op == "predict"), None)
    if predict is None:
        raise MlnetError("ML.NET model: its pipeline has no prediction transformer")
    added = {out for s in steps[: steps.index(predict)] for out, ins in s.columns if ins != [out]}
    model: Prediction = predict.model
    return [(n, t) for n, t in model.train_schema if n not in added]


def _version(repository: Repository) -> str:
    raw = repository.read("TrainingInfo/Version.txt") or b""
    text = raw[:200].decode("utf-8", "replace").split()
    version = text[0] if text else "unknown"
    return "".join(c for c in version if c.isprintable())[:60]


def _created(data: bytes) -> datetime:
    """When ML.NET wrote the archive: its root stream's zip timestamp (naive, read as UTC)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.filename.replace("\\", "/") == f"{ROOT}/Model.key":
                try:
                    return datetime(*info.date_time, tzinfo=timezone.utc)
                except ValueError:
                    break
    return datetime(1980, 1, 1, tzinfo=timezone.utc)


def _training(steps: list[Step], version: str, score: str) -> dict[str, Any]:
    predict = next(s for s in steps if s.op == "predict")
    model = predict.model.model
    return {
        "trainer": f"ML.NET {model.loader}",
        "steps": [f"{s.loader}({'; '.join(c for c in s.summary()['columns'])})" for s in steps],
        "source": f"ML.NET model.zip (written by ML.NET {version})",
        "score": score,
        "mlnet": [s.summary() for s in steps],
    }
