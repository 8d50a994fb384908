"""The iris example, once for every test (a pytest plugin).

- ``IrisData``/``IrisPrediction``: the example's wire format (``examples/iris/schema.py``'s
  column names, indexes and roles; tests/test_support.py checks they stay the same), so
  one request corpus fits in-process handlers and the example app served over HTTP.
- ``FLOWER`` (the ML.NET walkthrough's flower, ``Iris-virginica``), ``SETOSA``, ``CLASSES``.
- ``EXAMPLE`` (examples/iris), ``IRIS_DATA`` (its iris.txt) and ``example_app()``, a copy of the
  example function app in a folder.
- Fixture ``trained_model``: ``model.zip`` produced by ``examples/iris/train.py``'s ``train()``,
  the same code ``make demo`` runs, once per session. ``import_file`` imports an example module
  by path.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from servefn import Schema, column
from support import ROOT

EXAMPLE = ROOT / "examples" / "iris"
IRIS_DATA = EXAMPLE / "data" / "iris.txt"
APP_FILES = ("function_app.py", "schema.py", "host.json")
"""The files of the example function app that ``servefn serve`` needs."""
FLOWER = {"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}
SETOSA = {"SepalLength": 5.1, "SepalWidth": 3.5, "PetalLength": 1.4, "PetalWidth": 0.2}
CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


class IrisData(Schema):
    """One flower, as in iris.data (UCI): four measurements in cm and the species."""

    sepal_length: float = column(0, name="SepalLength")
    sepal_width: float = column(1, name="SepalWidth")
    petal_length: float = column(2, name="PetalLength")
    petal_width: float = column(3, name="PetalWidth")
    label: str | None = column(4, name="Label", role="label", default=None)


class IrisPrediction(Schema):
    """The model's answer: the species and one probability per species."""

    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


def import_file(path: Path, name: str) -> ModuleType:
    """Import the module at ``path`` under ``name``, with its folder on sys.path meanwhile.

    The examples' sibling modules share names (each has a ``schema.py``): those already imported
    from another folder are set aside meanwhile, so ``path`` imports its own siblings, and put
    back afterwards."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    siblings = {p.stem for p in path.parent.glob("*.py")}
    set_aside = {s: sys.modules.pop(s) for s in siblings if s in sys.modules}
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
        for sibling in siblings:
            sys.modules.pop(sibling, None)
        sys.modules.update(set_aside)
    return module


def example_app(
    folder: Path,
    model: Path | None,
    settings: dict[str, str] | None = None,
    *,
    files: tuple[str, ...] = APP_FILES,
) -> Path:
    """The iris example app's ``files`` in ``folder`` (created if needed), with ``model`` (the
    session's ``trained_model``, or none) as its model.zip and, given ``settings``, a
    ``local.settings.json`` with them as its ``Values`` (as ``func host start`` reads it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy(EXAMPLE / name, folder / name)
    if model is not None:
        shutil.copy(model, folder / "model.zip")
    if settings is not None:
        write_settings(folder, settings)
    return folder


def write_settings(folder: Path, values: dict[str, str]) -> None:
    """``local.settings.json`` with ``values``, as ``func host start`` reads it."""
    document = {"IsEncrypted": False, "Values": values}
    (folder / "local.settings.json").write_text(json.dumps(document))


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.zip made by the example's own training code."""
    path = tmp_path_factory.mktemp("trained") / "model.zip"
    import_file(EXAMPLE / "train.py", "iris_train").train(path)
    return path
