"""Model files never run code: no pickle unless allowed, skops only with trusted types.

The hostile models here are well formed (a valid manifest whose sha256 values match, so only the
payload decides) and would run code if loaded naively: a pickle whose loading writes a marker
file, and a skops file whose function is ``os.system``. They are refused by ``load_model``, by
``serve_http`` and by a ``ModelSource`` reading them from Blob Storage over a good model, which
keeps serving; the marker never appears. The opt-ins (``allow_pickle=True``, ``trusted=[...]``)
are the only way in, and a benign model of each kind loads with them.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import servefn
from servefn.azure import endpoint_of, serve_http
from servefn.errors import ArtifactError
from servefn.model._archive import LoadedModel, load_model
from servefn.schema import layout_of
from servefn.schema._schema import Schema
from support.azurite import Azurite
from support.iris import FLOWER, IrisData, IrisPrediction
from support.problems import strict_json
from support.reliability import Clock, blob_app, model_bytes

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

MARKER_TEXT = "code from a model file ran"


class WritesMarker:
    """Unpickling this calls ``Path.write_text``: any code could stand in its place."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return Path.write_text, (self.marker, MARKER_TEXT)


def archive(payload_name: str, payload: bytes, params: dict[str, Any]) -> bytes:
    """A well-formed sklearn-kind model.zip around ``payload`` (its sha256 is right)."""
    manifest = {
        "format": "servefn.model/1",
        "kind": "sklearn",
        "predictor": params,
        "input": layout_of(IrisData).spec(),
        "output": layout_of(IrisPrediction).spec(),
        "training": {},
        "created": "2026-01-01T00:00:00+00:00",
        "servefn_version": servefn.__version__,
        "files": {
            payload_name: {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("servefn.json", json.dumps(manifest))
        zipped.writestr(payload_name, payload)
    return buffer.getvalue()


def malicious_pickle(marker: Path) -> bytes:
    return archive("model.pkl", pickle.dumps(WritesMarker(marker)), {"format": "pickle"})


def fitted_pipeline() -> Any:
    """A scikit-learn pipeline that skops persists with trusted types only (numpy.log1p)."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0.1, 8, size=(60, 4))
    y = np.where(X[:, 3] > 4, "Iris-virginica", "Iris-setosa")
    return make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(X, y)


def skops_model(tmp_path: Path) -> bytes:
    path = tmp_path / "skops-model.zip"
    servefn.save(fitted_pipeline(), path, input=IrisData, output=IrisPrediction)
    return path.read_bytes()


def with_os_system(good: bytes) -> bytes:
    """``good`` with the pipeline's function swapped for ``os.system``, hashes made right."""
    with zipfile.ZipFile(io.BytesIO(good)) as zipped:
        members = {name: zipped.read(name) for name in zipped.namelist()}
    with zipfile.ZipFile(io.BytesIO(members["model.skops"])) as skops_file:
        inner = {name: skops_file.read(name) for name in skops_file.namelist()}
    schema = json.loads(inner["schema.json"])
    functions = list(_function_nodes(schema))
    assert [(f["__module__"], f["__class__"]) for f in functions] == [("numpy", "log1p")]
    functions[0].update({"__module__": "os", "__class__": "system"})
    inner["schema.json"] = json.dumps(schema).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as skops_file:
        for name, data in inner.items():
            skops_file.writestr(name, data)
    payload = buffer.getvalue()
    manifest = json.loads(members["servefn.json"])
    manifest["files"] = {
        "model.skops": {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    }
    return archive("model.skops", payload, manifest["predictor"])


def _function_nodes(node: Any) -> Any:
    """The function references in a skops schema (nodes loaded by its FunctionNode)."""
    if isinstance(node, dict):
        if node.get("__loader__") == "FunctionNode":
            yield node
        for value in node.values():
            yield from _function_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _function_nodes(value)


def test_a_pickle_model_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    data = malicious_pickle(marker)
    with pytest.raises(ArtifactError, match=r"saved with pickle.*allow_pickle=True"):
        load_model(data)

    path = tmp_path / "model.zip"
    path.write_bytes(data)

    @serve_http(IrisData, IrisPrediction, model=str(path))
    def predict(model: LoadedModel, inputs: list[Schema]) -> Any:
        return model.predict(inputs)

    request = func.HttpRequest(
        "POST",
        "http://x/api/Predict",
        headers={"Content-Type": "application/json"},
        body=json.dumps(FLOWER).encode(),
    )
    assert predict(request).status_code == 500  # permanent: a 500 naming it, not a 503
    health = strict_json(endpoint_of(predict).health().body)
    assert "saved with pickle" in health["model"]["last_error"]
    assert not marker.exists()  # the payload was never unpickled


def test_pickle_loads_only_with_an_explicit_opt_in(tmp_path: Path) -> None:
    benign = archive("model.pkl", pickle.dumps(fitted_pipeline()), {"format": "pickle"})
    with pytest.raises(ArtifactError, match="saved with pickle"):
        load_model(benign)
    model = load_model(benign, allow_pickle=True)
    matrix = np.array([list(FLOWER.values())], dtype=np.float64)
    assert list(model.predictor.predict(matrix)["PredictedLabel"]) == ["Iris-virginica"]


def test_a_skops_model_with_an_untrusted_function_is_refused(tmp_path: Path) -> None:
    good = skops_model(tmp_path)
    assert load_model(good).predictor.kind == "sklearn"  # trusted types only: loads as is
    hostile = with_os_system(good)
    with pytest.raises(ArtifactError, match=r"does not trust by default: \['os\.system'\]"):
        load_model(hostile)
    with pytest.raises(ArtifactError, match="does not trust"):
        load_model(hostile, trusted=["numpy.log1p"])  # naming other types does not help


@pytest.mark.integration
@pytest.mark.parametrize("hostile", ["pickle", "skops os.system"])
def test_a_hostile_upload_over_a_good_model_is_refused_and_the_good_one_served(
    hostile: str,
    azurite: Azurite,
    blob_container: ContainerClient,
    tmp_path: Path,
) -> None:
    good = model_bytes()
    version = load_model(good).version
    marker = tmp_path / "marker.txt"
    bad = malicious_pickle(marker) if hostile == "pickle" else with_os_system(skops_model(tmp_path))
    blob_container.upload_blob("model.zip", good)
    clock = Clock()
    app = blob_app(blob_container, azurite.port, clock)
    app.served(version)

    blob_container.upload_blob("model.zip", bad, overwrite=True)
    clock.advance()
    for _ in range(10):
        app.served(version)
    status, health = app.health()
    assert status == 200 and health["state"] == "stale"
    assert ("saved with pickle" if hostile == "pickle" else "os.system") in health["last_error"]
    assert not marker.exists()
