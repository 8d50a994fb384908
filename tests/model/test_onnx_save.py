"""``servefn.save`` with ONNX: a graph saved as it is, models converted on request, and the app.

A ``.onnx`` file (here an MLP built with ``onnx.helper``, as a PyTorch export writes it) is
recognised and served as kind ``onnx``; ``kind="onnx"`` converts a scikit-learn model and the
save is checked for parity with it; ``serve_http`` answers from the graph over real
``azure.functions`` requests; ``servefn inspect`` shows the kind and ``servefn check`` fails an
app whose requirements.txt lacks ``servefn[onnx]``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import numpy as np
import pytest

import servefn
from servefn import LoadedModel, Predictions, Records, load_model, read_manifest, serve_http
from servefn.cli import main as cli
from servefn.errors import PredictorError
from support.iris import CLASSES, EXAMPLE, FLOWER, IrisData, IrisPrediction

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)
B = RNG.normal(size=3).astype(np.float32)


def softmax_graph() -> bytes:
    """``softmax(x @ W + b)`` on a float32 [N, 4] input named ``input``."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["z0"]),
            helper.make_node("Add", ["z0", "B"], ["z"]),
            helper.make_node("Softmax", ["z"], ["probabilities"], axis=1),
        ],
        "softmax",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def expected(x: list[float]) -> np.ndarray:
    z = np.asarray(x, np.float32) @ W + B
    e = np.exp(z - z.max())
    return e / e.sum()


def test_a_graph_file_saves_as_kind_onnx_and_serves_over_http(tmp_path: Path) -> None:
    graph = tmp_path / "exported.onnx"
    graph.write_bytes(softmax_graph())
    path = tmp_path / "model.zip"
    servefn.save(graph, path, input=IrisData, output=IrisPrediction, classes=CLASSES)
    manifest = read_manifest(path)
    assert manifest["kind"] == "onnx" and manifest["training"]["trainer"] == "ONNX graph"
    assert "parity" not in manifest["training"]  # no source model to compare with

    @serve_http(IrisData, IrisPrediction, model=load_model(path))
    def predict(model: LoadedModel, inputs: Records) -> Predictions:
        return model.predict(inputs)

    request = func.HttpRequest(
        "POST",
        "http://localhost/api/predict",
        headers={"content-type": "application/json"},
        body=json.dumps(FLOWER).encode(),
    )
    response = predict(request)
    assert response.status_code == 200, response.get_body()
    answer = json.loads(response.get_body())
    x = [FLOWER[k] for k in ("SepalLength", "SepalWidth", "PetalLength", "PetalWidth")]
    np.testing.assert_allclose(answer["Score"], expected(x), rtol=1e-6)
    assert answer["PredictedLabel"] == CLASSES[int(np.argmax(expected(x)))]


def test_kind_onnx_converts_and_checks_parity(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    X = RNG.uniform(0, 8, size=(150, 4))
    y = np.array(CLASSES)[np.argmax(X @ W.astype(np.float64), axis=1)]
    model = LogisticRegression(max_iter=2000).fit(X, y)
    path = tmp_path / "model.zip"
    servefn.save(
        model, path, input=IrisData, output=IrisPrediction, evaluate_on=(X, y), kind="onnx"
    )
    manifest = read_manifest(path)
    assert manifest["kind"] == "onnx" and manifest["training"]["form"] == "onnx"
    parity = manifest["training"]["parity"]
    assert parity["labels_equal"] and parity["max_score_difference"] <= 1e-5
    served = load_model(path).predict(
        [dict(zip(("SepalLength", "SepalWidth", "PetalLength", "PetalWidth"), X[0], strict=True))]
    )
    assert served[0].predicted_label == model.predict(X[:1])[0]  # type: ignore[attr-defined]


def test_a_graph_that_does_not_fit_the_schema_is_refused_with_its_inputs(tmp_path: Path) -> None:
    from servefn import Schema, column

    class Wide(Schema):
        a: float = column(0)
        b: float = column(1)

    with pytest.raises(PredictorError, match="input"):
        servefn.save(softmax_graph(), tmp_path / "m.zip", input=Wide, output=IrisPrediction)
    assert not (tmp_path / "m.zip").exists()


def test_inspect_and_check_know_the_onnx_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app" / "model.zip"
    path.parent.mkdir()
    servefn.save(softmax_graph(), path, input=IrisData, output=IrisPrediction, classes=CLASSES)
    assert cli(["inspect", str(path)]) == 0
    assert "onnx" in capsys.readouterr().out
    app = path.parent
    (app / "function_app.py").write_text(
        "import azure.functions as func\n"
        "from servefn import serve_http, LoadedModel, Records, Predictions\n"
        "from schema import IrisData, IrisPrediction\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='predict', methods=['POST'])\n"
        "@serve_http(IrisData, IrisPrediction, model='model.zip')\n"
        "def predict(model: LoadedModel, inputs: Records) -> Predictions:\n"
        "    return model.predict(inputs)\n"
    )
    (app / "schema.py").write_text((EXAMPLE / "schema.py").read_text())
    (app / "host.json").write_text('{"version": "2.0"}')
    results = {}
    for extra in ("azure", "onnx"):
        (app / "requirements.txt").write_text(f"azure-functions\nservefn[{extra}]\n")
        done = subprocess.run(
            [sys.executable, "-m", "servefn", "check", str(app)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=app,
            check=False,
        )
        results[extra] = done.stdout
    assert "list servefn[onnx] in requirements.txt" in results["azure"], results["azure"]
    assert "lists servefn[onnx] for its onnx model" in results["onnx"], results["onnx"]


def external_data_graph() -> bytes:
    """The softmax graph with its weights said to live in a file next to the model."""
    model = onnx.load_from_string(softmax_graph())
    weights = model.graph.initializer[0]
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    return bytes(model.SerializeToString())


def test_a_hostile_graph_never_replaces_the_serving_model() -> None:
    from servefn.loaders import MemoryLoader, ModelSource
    from support.reliability import REFRESH, Clock, rewrite

    buffer = io.BytesIO()
    servefn.save(softmax_graph(), buffer, input=IrisData, output=IrisPrediction, classes=CLASSES)
    good = buffer.getvalue()
    bad = rewrite(good, files={"model.onnx": external_data_graph()})
    loader, clock = MemoryLoader(good), Clock()
    source = ModelSource(loader, refresh_after=REFRESH, clock=clock)
    version = source.get().version
    loader.set(bad)
    clock.advance()
    assert source.get().version == version
    info = source.info()
    assert info["state"] == "stale" and "external" in info["last_error"], info["last_error"]
