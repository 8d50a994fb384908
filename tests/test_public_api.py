"""The public API is locked: what ``servefn`` exports, and that importing it stays light.

After httpx's ``test_exported_members.py``: a change to the list below is a change to the public
API and needs a deliberate edit here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import servefn

PUBLIC = [
    "ArtifactError",
    "Column",
    "DataFormatError",
    "FeatureValueError",
    "LoadedModel",
    "LoaderError",
    "ModelSource",
    "ModelUnavailable",
    "Predictions",
    "Predictor",
    "PredictorError",
    "Records",
    "Schema",
    "SchemaError",
    "ServefnError",
    "UsageError",
    "__version__",
    "add_health_routes",
    "add_inference_routes",
    "column",
    "load_model",
    "loader_for",
    "read_manifest",
    "save",
    "serve_http",
    "serve_models",
]

HEAVY = ("azure.storage.blob", "adlfs", "sklearn", "skops", "scipy", "uvicorn", "numba", "dask")


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(servefn.__all__) == sorted(PUBLIC)
    assert dir(servefn) == servefn.__all__


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves_and_comes_from_servefn(name: str) -> None:
    value = getattr(servefn, name)
    if name != "__version__":
        assert value.__module__.startswith("servefn."), value


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="no attribute 'serve'"):
        servefn.serve  # type: ignore[attr-defined] # noqa: B018


def test_one_name_for_loading_a_model() -> None:
    assert not hasattr(servefn, "read_model")
    from servefn.model import load_model

    assert servefn.load_model is load_model


def _imported_by(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.mark.integration
def test_import_servefn_imports_only_its_version() -> None:
    loaded = {m for m in _imported_by("import servefn") if m.startswith("servefn")}
    assert loaded == {"servefn", "servefn._version"}
    assert not _imported_by("import servefn") & {"numpy", "pydantic", "azure.functions"}


@pytest.mark.integration
def test_the_serving_api_imports_no_storage_sdk_model_library_or_server() -> None:
    loaded = _imported_by(
        "from servefn import serve_http, Schema, column, save, load_model, add_health_routes"
    )
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
