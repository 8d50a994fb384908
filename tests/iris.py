"""The iris example's own trained model, made once per test session (a pytest plugin).

Fixture ``trained_model``: ``model.zip`` produced by ``examples/iris/train.py``'s ``train()``,
the same code ``make demo`` runs. ``import_file`` imports an example module by path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"


def import_file(path: Path, name: str) -> ModuleType:
    """Import the module at ``path`` under ``name``, with its folder on sys.path meanwhile."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.zip made by the example's own training code."""
    path = tmp_path_factory.mktemp("trained") / "model.zip"
    import_file(EXAMPLE / "train.py", "iris_train").train(path)
    return path
