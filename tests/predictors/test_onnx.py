"""The "onnx" model kind with graphs as exporters write them: an MLP as PyTorch or TensorFlow export
it (one float32 ``[N, n]`` input, softmax probabilities), a regressor, an ML.NET export (one
``[-1, 1]`` input per column, text among them, ``.output`` names), a fixed batch of one, an image
input. Each is bound to the schemas (inferred, or as given), served through ``OnnxPredictor``
and a saved ``model.zip``, and matches the same arithmetic in numpy. Also: session threads, the
mapping errors, and a fresh process that serves a model without any converter or training
library."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from servefn import Schema, column
from servefn.errors import ArtifactError, FeatureValueError, PredictorError
from servefn.model import LoadedModel, load_model, write_model
from servefn.predictors import register_predictor, registry
from servefn.predictors.onnx import OnnxPredictor
from servefn.predictors.onnx_export import is_onnx_source, onnx_predictor
from servefn.schema import layout_of

SPECIES = ["setosa", "versicolor", "virginica"]
RNG = np.random.default_rng(7)
W1 = RNG.normal(size=(4, 8)).astype(np.float32)
B1 = RNG.normal(size=8).astype(np.float32)
W2 = RNG.normal(size=(8, 3)).astype(np.float32)
B2 = RNG.normal(size=3).astype(np.float32)


@pytest.fixture(autouse=True)
def _onnx_kind() -> None:
    if "onnx" not in registry:
        register_predictor(
            "onnx",
            "servefn.predictors.onnx:OnnxPredictor",
            missing="this model needs onnxruntime: pip install 'servefn[onnx]'",
        )


class Flower(Schema):
    sepal_length: float = column(0, name="SepalLength")
    sepal_width: float = column(1, name="SepalWidth")
    petal_length: float = column(2, name="PetalLength")
    petal_width: float = column(3, name="PetalWidth")


class Species(Schema):
    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")


class Value(Schema):
    score: float = column(name="Score")


def _model(graph: onnx.GraphProto, *opsets: tuple[str, int], producer: str = "pytorch") -> bytes:
    imports = [helper.make_opsetid(d, v) for d, v in (opsets or (("", 17),))]
    model = helper.make_model(graph, opset_imports=imports, producer_name=producer)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def mlp(batch: int | str = "N", names: tuple[str, str] = ("input", "output")) -> bytes:
    """An MLP as torch.onnx.export writes it: MatMul, Add, Relu, Softmax on float32."""
    nodes = [
        helper.make_node("MatMul", [names[0], "W1"], ["h"]),
        helper.make_node("Add", ["h", "B1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "W2"], ["z"]),
        helper.make_node("Add", ["z", "B2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [names[1]], axis=1),
    ]
    weights = [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (B1, "B1"), (W2, "W2"))]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [batch, 3])],
        [*weights, numpy_helper.from_array(B2, "B2")],
    )
    return _model(graph)


def mlp_numpy(X: NDArray[Any]) -> NDArray[np.float32]:
    h = np.maximum(X.astype(np.float32) @ W1 + B1, 0)
    z = h @ W2 + B2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: NDArray[np.float32] = e / e.sum(axis=1, keepdims=True)
    return out


def flowers(n: int) -> NDArray[np.float64]:
    return np.round(RNG.uniform(0.1, 8.0, size=(n, 4)), 1)


def records(X: NDArray[Any], schema: type[Schema] = Flower) -> list[dict[str, Any]]:
    names = layout_of(schema).feature_names
    return [dict(zip(names, row, strict=True)) for row in X.tolist()]


def saved(
    predictor: OnnxPredictor, output: type[Schema], input: type[Schema] = Flower
) -> LoadedModel:
    buffer = io.BytesIO()
    write_model(buffer, predictor, input=input, output=output)
    return load_model(buffer.getvalue())


# -- graphs as exporters write them ---------------------------------------------------------


def test_an_mlp_with_probabilities_only_is_labelled_by_the_given_classes() -> None:
    predictor = onnx_predictor(
        mlp(), layout_of(Flower), ["PredictedLabel", "Score"], classes=SPECIES
    )
    assert [(o.name, o.source, o.role) for o in predictor.output_specs] == [
        ("PredictedLabel", "output", "argmax"),
        ("Score", "output", "scores"),
    ]
    X = flowers(64)
    expected = mlp_numpy(X)
    out = predictor.predict(X)
    assert np.abs(out["Score"] - expected).max() < 1e-6
    assert list(out["PredictedLabel"]) == [SPECIES[i] for i in expected.argmax(axis=1)]
    model = saved(predictor, Species)
    answers = model.predict(records(X))
    assert [a.predicted_label for a in answers] == list(out["PredictedLabel"])
    assert np.abs(np.array([a.score for a in answers]) - expected).max() < 1e-6
    assert np.array_equal(model.predictor.predict(X)["Score"], out["Score"])
    one = model.predict(records(X[:1]))[0]
    assert one.predicted_label == out["PredictedLabel"][0]


def test_one_predictor_serves_many_threads_at_once() -> None:
    predictor = onnx_predictor(
        mlp(), layout_of(Flower), ["PredictedLabel", "Score"], classes=SPECIES
    )
    batches = [flowers(n) for n in (1, 7, 50, 3) * 4]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(predictor.predict, batches))
    for X, out in zip(batches, answers, strict=True):
        assert np.abs(out["Score"] - mlp_numpy(X)).max() < 1e-6
    empty = predictor.predict(np.empty((0, 4)))
    assert empty["PredictedLabel"].shape == (0,) and empty["Score"].shape == (0, 3)


def test_an_mlp_without_classes_cannot_label_rows() -> None:
    with pytest.raises(PredictorError, match=r"classes=\[\.\.\.\]"):
        onnx_predictor(mlp(), layout_of(Flower), ["PredictedLabel", "Score"])


def test_a_regressor_as_tensorflow_exports_it_gives_one_value_per_row() -> None:
    w = RNG.normal(size=(4, 1))
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["dense_input", "W", "B"], ["dense_1"])],
        "tf",
        [helper.make_tensor_value_info("dense_input", TensorProto.DOUBLE, ["unk__6", 4])],
        [helper.make_tensor_value_info("dense_1", TensorProto.DOUBLE, ["unk__7", 1])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([0.25]), "B")],
    )
    predictor = onnx_predictor(_model(graph, producer="tf2onnx"), layout_of(Flower), ["Score"])
    assert predictor.dtype == np.float64  # a double graph gets the rows in double
    X = flowers(20)
    out = predictor.predict(X)["Score"]
    assert out.shape == (20,)
    assert np.abs(out - (X @ w[:, 0] + 0.25)).max() < 1e-12
    model = saved(predictor, Value)
    assert np.abs(np.array([a.score for a in model.predict(records(X))]) - out).max() == 0


class Iris(Schema):
    sepal_length: float = column(0, name="SepalLength")
    sepal_width: float = column(1, name="SepalWidth")
    petal_length: float = column(2, name="PetalLength")
    petal_width: float = column(3, name="PetalWidth")
    garden: str = column(4, name="Garden")


def mlnet_export() -> bytes:
    """What ML.NET's ConvertToOnnx writes: one [-1, 1] input per column (text as a string
    tensor), Concat, a linear model, and outputs named ``<column>.output``."""
    floats = ["SepalLength", "SepalWidth", "PetalLength", "PetalWidth"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [-1, 1]) for n in floats]
    inputs.append(helper.make_tensor_value_info("Garden", TensorProto.STRING, [-1, 1]))
    w = np.vstack([W2[:4], W2[4:5]]).astype(np.float32)
    nodes = [
        helper.make_node(
            "LabelEncoder",
            ["Garden"],
            ["GardenCode"],
            domain="ai.onnx.ml",
            keys_strings=["north", "south"],
            values_floats=[1.0, -1.0],
            default_float=0.0,
        ),
        helper.make_node("Concat", [*floats, "GardenCode"], ["Features"], axis=1),
        helper.make_node("MatMul", ["Features", "W"], ["z"]),
        helper.make_node("Softmax", ["z"], ["Score.output"], axis=1),
        helper.make_node("ArgMax", ["Score.output"], ["index"], axis=1, keepdims=0),
        helper.make_node(
            "LabelEncoder",
            ["index"],
            ["PredictedLabel.output"],
            domain="ai.onnx.ml",
            keys_int64s=[0, 1, 2],
            values_strings=SPECIES,
            default_string="",
        ),
        helper.make_node("Identity", ["SepalLength"], ["SepalLength.output"]),
    ]
    outputs = [
        helper.make_tensor_value_info("PredictedLabel.output", TensorProto.STRING, [-1]),
        helper.make_tensor_value_info("Score.output", TensorProto.FLOAT, [-1, 3]),
        helper.make_tensor_value_info("SepalLength.output", TensorProto.FLOAT, [-1, 1]),
    ]
    graph = helper.make_graph(nodes, "mlnet", inputs, outputs, [numpy_helper.from_array(w, "W")])
    return _model(graph, ("", 17), ("ai.onnx.ml", 3), producer="ML.NET")


def test_an_mlnet_export_binds_one_input_per_column_text_included() -> None:
    predictor = onnx_predictor(mlnet_export(), layout_of(Iris), ["PredictedLabel", "Score"])
    assert [(i.name, i.type, i.columns) for i in predictor.inputs] == [
        ("SepalLength", "float", (0,)),
        ("SepalWidth", "float", (1,)),
        ("PetalLength", "float", (2,)),
        ("PetalWidth", "float", (3,)),
        ("Garden", "string", (4,)),
    ]
    assert [(o.source, o.role) for o in predictor.output_specs] == [
        ("PredictedLabel.output", "label"),
        ("Score.output", "scores"),
    ]
    X = flowers(30)
    gardens = RNG.choice(["north", "south", "east"], size=30)
    rows = [{**r, "Garden": g} for r, g in zip(records(X), gardens, strict=True)]
    code = np.select([gardens == "north", gardens == "south"], [1.0, -1.0], 0.0)
    z = np.column_stack([X, code]).astype(np.float32) @ np.vstack([W2[:4], W2[4:5]])
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    model = saved(predictor, Species, input=Iris)
    answers = model.predict(rows)
    assert np.abs(np.array([a.score for a in answers]) - expected).max() < 1e-6
    assert [a.predicted_label for a in answers] == [SPECIES[i] for i in z.argmax(axis=1)]
    assert model.predictor.accepts_missing is False  # text and floats: no NaN by default
    assert model.predict(rows[:1])[0].predicted_label == answers[0].predicted_label


def test_a_fixed_batch_of_one_is_run_row_by_row() -> None:
    predictor = onnx_predictor(mlp(batch=1), layout_of(Flower), ["Score"], classes=SPECIES)
    X = flowers(5)
    assert np.abs(predictor.predict(X)["Score"] - mlp_numpy(X)).max() < 1e-6


def test_a_fixed_batch_larger_than_one_is_refused_with_advice() -> None:
    with pytest.raises(PredictorError, match=r"fixed batch of 8 rows.*dynamic_axes"):
        onnx_predictor(mlp(batch=8), layout_of(Flower), ["Score"], classes=SPECIES)


class Image(Schema):
    pixels: list[float] = column((0, 3), name="pixels")


def test_an_image_input_takes_a_vector_column_reshaped() -> None:
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["image"], ["summed"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Unsqueeze", ["summed"], ["variable"], axes=[1]),
        ],
        "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 2, 2])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["N", 1])],
    )
    predictor = onnx_predictor(
        _model(graph, ("", 11)), layout_of(Image), ["Score"], graph_inputs={"image": ["pixels"]}
    )
    X = RNG.uniform(size=(6, 4))
    assert np.abs(predictor.predict(X)["Score"] - X.sum(axis=1)).max() < 1e-5
    model = saved(predictor, Value, input=Image)
    assert model.predict([{"pixels": [1.0, 2.0, 3.0, 4.5]}])[0].score == 10.5


# -- mappings: given, inferred, refused -----------------------------------------------------


def two_inputs() -> bytes:
    graph = helper.make_graph(
        [
            helper.make_node("Concat", ["x1", "x2"], ["x"], axis=1),
            helper.make_node("ReduceSum", ["x"], ["a"], axes=[1], keepdims=1),
            helper.make_node("ReduceMax", ["x"], ["b"], axes=[1], keepdims=1),
        ],
        "two",
        [
            helper.make_tensor_value_info("x1", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 2]),
        ],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1]),
        ],
    )
    return _model(graph, ("", 11))


def test_ambiguous_inputs_and_outputs_name_the_graph_and_the_argument() -> None:
    with pytest.raises(PredictorError) as inputs:
        onnx_predictor(two_inputs(), layout_of(Flower), ["Score"])
    message = str(inputs.value)
    assert "'x1': tensor(float)[N, 2]" in message and "graph_inputs=" in message
    mapping = {"x1": ["PetalLength", "PetalWidth"], "x2": ["SepalLength", "SepalWidth"]}
    with pytest.raises(PredictorError) as outputs:
        onnx_predictor(two_inputs(), layout_of(Flower), ["Score"], graph_inputs=mapping)
    assert "'a': tensor(float)[N, 1], 'b': tensor(float)[N, 1]" in str(outputs.value)
    assert "graph_outputs={'Score': <output name>}" in str(outputs.value)
    predictor = onnx_predictor(
        two_inputs(),
        layout_of(Flower),
        ["Score"],
        graph_inputs=mapping,
        graph_outputs={"Score": "b"},
    )
    X = flowers(10)
    assert np.array_equal(predictor.predict(X)["Score"], X.max(axis=1).astype(np.float32))
    assert [i.columns for i in predictor.inputs] == [(2, 3), (0, 1)]


def test_mapping_mistakes_are_named() -> None:
    layout = layout_of(Flower)
    with pytest.raises(PredictorError, match=r"'nope', which is not an input of the graph"):
        onnx_predictor(mlp(), layout, ["Score"], graph_inputs={"nope": ["SepalLength"]})
    with pytest.raises(PredictorError, match=r"lists \['Colour'\]; the input schema's features"):
        onnx_predictor(mlp(), layout, ["Score"], graph_inputs={"input": ["Colour"]})
    with pytest.raises(PredictorError, match=r"which 3 feature\(s\) per row cannot fill"):
        onnx_predictor(
            mlp(),
            layout,
            ["Score"],
            graph_inputs={"input": ["SepalLength", "SepalWidth", "PetalLength"]},
        )
    with pytest.raises(PredictorError, match=r"'logits', which is not an output of the graph"):
        onnx_predictor(mlp(), layout, ["Score"], graph_outputs={"Score": "logits"})
    with pytest.raises(PredictorError, match=r"maps 'Margin', which is not a column"):
        onnx_predictor(mlp(), layout, ["Score"], graph_outputs={"Margin": "output"})


def test_a_zipmap_output_is_refused_with_advice() -> None:
    probabilities = helper.make_value_info(
        "output_probability",
        helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(1, []))
        ),
    )
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["input"], ["x"]),
            helper.make_node("ArgMax", ["x"], ["output_label"], axis=1, keepdims=0),
            helper.make_node(
                "ZipMap",
                ["x"],
                ["output_probability"],
                domain="ai.onnx.ml",
                classlabels_int64s=[0, 1, 2, 3],
            ),
        ],
        "zipmap",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output_label", TensorProto.INT64, ["N"]), probabilities],
    )
    data = _model(graph, ("", 17), ("ai.onnx.ml", 3), producer="skl2onnx")
    with pytest.raises(PredictorError) as refused:
        onnx_predictor(data, layout_of(Flower), ["PredictedLabel", "Score"])
    message = str(refused.value)
    assert "seq(map(int64,tensor(float)))" in message
    assert "ZipMap" in message and "'zipmap': False" in message


class SomeFlower(Schema):
    sepal_length: float = column(0, name="SepalLength")
    sepal_width: float = column(1, name="SepalWidth")
    petal_length: float = column(2, name="PetalLength")
    petal_width: float | None = column(3, name="PetalWidth", default=None)


def test_a_missing_value_reaches_the_graph_only_where_it_was_said_to_take_it() -> None:
    layout = layout_of(SomeFlower)
    refusing = onnx_predictor(mlp(), layout, ["Score"], classes=SPECIES)
    row = {**records(flowers(1))[0], "PetalWidth": None}
    with pytest.raises(FeatureValueError, match="PetalWidth is missing"):
        saved(refusing, Value, input=SomeFlower).predict([row])
    flags = [False, False, False, True]
    taking = onnx_predictor(
        mlp(), layout, ["PredictedLabel", "Score"], classes=SPECIES, accepts_missing=flags
    )
    model = saved(taking, Species, input=SomeFlower)
    assert model.predictor.accepts_missing == flags
    out = model.predictor.predict(np.array([[5.1, 3.5, 1.4, np.nan]]))
    assert out["Score"].shape == (1, 3)


def test_is_onnx_source_tells_graphs_from_other_models(tmp_path: Path) -> None:
    data = mlp()
    assert is_onnx_source(data) and is_onnx_source(bytearray(data))
    assert is_onnx_source(onnx.load_from_string(data))
    assert is_onnx_source("model.onnx") and is_onnx_source(tmp_path / "m.ONNX")
    zipped = io.BytesIO()
    write_model(
        zipped,
        onnx_predictor(data, layout_of(Flower), ["Score"], classes=SPECIES),
        input=Flower,
        output=Value,
    )
    for other in (
        zipped.getvalue(),
        b"\x80\x04pickle",
        b'{"json": 1}',
        "model.zip",
        object(),
        None,
    ):
        assert not is_onnx_source(other)
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    from_path = onnx_predictor(path, layout_of(Flower), ["Score"], classes=SPECIES)
    from_proto = onnx_predictor(
        onnx.load_from_string(data), layout_of(Flower), ["Score"], classes=SPECIES
    )
    assert from_path.graph == from_proto.graph == data


def test_payload_parameters_are_checked_when_loaded() -> None:
    predictor = onnx_predictor(mlp(), layout_of(Flower), ["Score"], classes=SPECIES)
    payload = predictor.to_payload()
    assert payload.params["inputs"] == [
        {"name": "input", "type": "float", "columns": [[0, 4]], "shape": "[N, 4]"}
    ]
    assert payload.params["graph"]["producer"] == "pytorch"
    rebuilt = OnnxPredictor.from_payload(payload.params, payload.files)
    X = flowers(3)
    assert np.array_equal(rebuilt.predict(X)["Score"], predictor.predict(X)["Score"])
    for broken, message in [
        ({"n_features": 10**9}, "n_features"),
        ({"inputs": [{"name": "input", "type": "float", "columns": [[0, 2**40]]}]}, "runs"),
        ({"inputs": [{"name": "other", "type": "float", "columns": [[0, 4]]}]}, "each once"),
        ({"inputs": [{"name": "input", "type": "double", "columns": [[0, 4]]}]}, "not a tensor"),
        ({"outputs": [{"name": "Score", "from": "output", "as": "eval"}]}, "'as'"),
        ({"outputs": [{"name": "Score", "from": "missing", "as": "scores"}]}, "does not have"),
        ({"classes": "abc"}, "classes"),
    ]:
        with pytest.raises(PredictorError, match=message):
            OnnxPredictor.from_payload({**payload.params, **broken}, payload.files)
    with pytest.raises(PredictorError, match=r"needs model\.onnx"):
        OnnxPredictor.from_payload(payload.params, {})


# -- session options ------------------------------------------------------------------------


def test_sessions_use_one_thread_sequentially_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVEFN_ONNX_THREADS", raising=False)
    import onnxruntime as ort

    predictor = onnx_predictor(mlp(), layout_of(Flower), ["Score"], classes=SPECIES)
    options = predictor.session_options
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert predictor._session.get_providers() == ["CPUExecutionProvider"]


@pytest.fixture
def mlp_zip() -> bytes:
    buffer = io.BytesIO()
    predictor = onnx_predictor(
        mlp(), layout_of(Flower), ["PredictedLabel", "Score"], classes=SPECIES
    )
    write_model(buffer, predictor, input=Flower, output=Species)
    return buffer.getvalue()


def test_the_thread_setting_is_read_when_a_model_loads(
    mlp_zip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVEFN_ONNX_THREADS", "2")
    model = load_model(mlp_zip)
    assert model.predictor.session_options.intra_op_num_threads == 2  # type: ignore[attr-defined]
    assert model.predictor.session_options.inter_op_num_threads == 1  # type: ignore[attr-defined]
    X = flowers(4)
    assert np.abs(model.predictor.predict(X)["Score"] - mlp_numpy(X)).max() < 1e-6
    for bad in ("two", "0", "65", "-1", "1.5"):
        monkeypatch.setenv("SERVEFN_ONNX_THREADS", bad)
        with pytest.raises(ArtifactError, match=r"SERVEFN_ONNX_THREADS must be a whole number"):
            load_model(mlp_zip)


# -- serving imports onnxruntime only -------------------------------------------------------


SERVE = textwrap.dedent(
    """
    import json, sys
    from servefn.predictors import register_predictor, registry
    if "onnx" not in registry:
        register_predictor("onnx", "servefn.predictors.onnx:OnnxPredictor")
    from servefn.model import load_model
    model = load_model(sys.argv[1])
    rows = json.loads(sys.argv[2])
    answers = model.predict(rows)
    forbidden = ["onnx", "skl2onnx", "onnxmltools", "sklearn", "scipy", "xgboost", "lightgbm",
                 "pandas", "skops", "google.protobuf"]
    print(json.dumps({
        "loaded": [name for name in forbidden if name in sys.modules],
        "labels": [a.predicted_label for a in answers],
        "modules": sorted({m.split(".")[0] for m in sys.modules}),
    }))
    """
)


def test_a_fresh_process_serves_an_onnx_model_with_onnxruntime_alone(
    mlp_zip: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "model.zip"
    path.write_bytes(mlp_zip)
    X = flowers(3)
    done = subprocess.run(
        [sys.executable, "-c", SERVE, str(path), json.dumps(records(X))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(done.stdout)
    assert found["loaded"] == []
    assert "onnxruntime" in found["modules"]
    assert found["labels"] == [SPECIES[i] for i in mlp_numpy(X).argmax(axis=1)]
