"""The protocol's refusals, in process: real ``azure.functions`` requests to a real app.

Every refusal is the protocol's ``{"error": "..."}`` with its status (400 a request that does
not fit the protocol or the model, 404 an unknown model or version, 413 over the limits, 415 an
unknown content encoding, 503 a model not loaded yet, 500 a failure with an id in the log), and
none carries a traceback or a value the client sent (``CANARY``).
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from servefn.loaders import MemoryLoader, ModelSource
from servefn.oip import InferenceService, ModelNotFound, ModelUnavailable, ProvidedModels
from support.iris import FLOWER
from support.oip import InferenceApp, binary_body, check_error, json_body
from support.problems import CANARY

ROW = {name: [value] for name, value in FLOWER.items()}


@pytest.fixture(scope="module")
def served(trained_model: Path) -> InferenceApp:
    return InferenceApp({"iris": trained_model}, max_body_bytes=64 * 1024, max_batch=100)


def infer_document(served: InferenceApp, document: object) -> tuple[int, str]:
    answer = served.infer("iris", json.dumps(document).encode())
    return answer.status_code, answer.get_body().decode()


def test_unknown_model_or_version_is_a_404(served: InferenceApp) -> None:
    for function in ("v2_model_metadata", "v2_model_ready"):
        message = check_error(served.call(function, model_name=CANARY), 404)
        assert "iris" in message  # names what is served, not what was asked
    check_error(served.infer(CANARY, json_body(ROW)), 404)
    check_error(served.infer("iris", json_body(ROW), version=CANARY), 404)
    check_error(served.call("v2_model_version_metadata", model_name="iris", model_version="0"), 404)


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        ({"datatype": "BYTES", "data": ["3.3"]}, 400, "SepalLength"),  # text for a number
        ({"datatype": "FP128"}, 400, "datatype"),  # not a protocol datatype
        ({"datatype": "BF16"}, 400, "BF16"),  # one servefn does not read
        ({"data": [CANARY]}, 400, "FP64 data must be numbers"),  # a string in FP64 data
        ({"data": [True]}, 400, "FP64 data must be numbers"),  # no bool for a number
        ({"shape": [2]}, 400, "shape holds 2"),  # one element for two
        ({"shape": [1, 2], "data": [3.3, 1.0]}, 400, "SepalLength must have the shape"),
        ({"shape": [-1]}, 400, "non-negative"),
        ({"shape": "1"}, 400, "'shape'"),
        ({"data": [[3.3], 1.0], "shape": [2]}, 400, "mixes lists"),
        ({"data": 3.3}, 400, "'data' must be a list"),
        ({"name": CANARY}, 400, "not one of the model's inputs (SepalLength"),
        ({"parameters": {CANARY: 1}}, 400, "is not supported"),
        ({"parameters": {"shared_memory_region": "x"}}, 400, "'shared_memory_region'"),
        ({CANARY: 1}, 400, "a field the protocol does not define"),
    ],
)
def test_a_tensor_that_does_not_fit_is_a_400_naming_the_input(
    served: InferenceApp, change: dict[str, object], status: int, named: str
) -> None:
    document = json.loads(json_body(ROW))
    document["inputs"][0].update(change)
    message = check_error(served.infer("iris", json.dumps(document).encode()), status)
    assert named in message, message


def test_an_input_missing_or_sent_twice_is_a_400(served: InferenceApp) -> None:
    partial = {k: v for k, v in ROW.items() if k != "PetalWidth"}
    assert "PetalWidth is missing" in check_error(served.infer("iris", json_body(partial)), 400)
    document = json.loads(json_body(ROW))
    document["inputs"].append(document["inputs"][0])
    message = check_error(served.infer("iris", json.dumps(document).encode()), 400)
    assert "SepalLength is sent twice" in message
    rows = json.loads(json_body({**ROW, "PetalWidth": [5.1, 0.2]}))
    assert "different number of rows" in check_error(
        served.infer("iris", json.dumps(rows).encode()), 400
    )
    empty = json_body({k: np.zeros(0) for k in ROW})
    assert "no rows" in check_error(served.infer("iris", empty), 400)


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"inputs": {}}, "'inputs'"),
        ([], "a JSON object"),
        ({**json.loads(json_body(ROW)), "parameters": {"priority": 1}}, "'priority'"),
        ({**json.loads(json_body(ROW)), "parameters": {CANARY: True}}, "not supported"),
        ({**json.loads(json_body(ROW)), "parameters": {"binary_data_output": "yes"}}, "bool"),
        ({**json.loads(json_body(ROW)), "outputs": [{"name": CANARY}]}, "output #0 is not"),
        (
            {
                **json.loads(json_body(ROW)),
                "outputs": [{"name": "Score", "parameters": {"classification": 2}}],
            },
            "'classification' is not supported",
        ),
        ({**json.loads(json_body(ROW)), "id": 7}, "'id' must be a string"),
        ({**json.loads(json_body(ROW)), "id": "x" * 300}, "'id' must be a string"),
        ({**json.loads(json_body(ROW)), CANARY: 1}, "a field the protocol does not define"),
    ],
)
def test_request_fields_and_parameters_are_honoured_or_refused(
    served: InferenceApp, document: object, named: str
) -> None:
    message = check_error(served.infer("iris", json.dumps(document).encode()), 400)
    assert named in message, message


def test_invalid_json_and_repeated_keys_are_400s(served: InferenceApp) -> None:
    assert "not valid JSON" in check_error(served.infer("iris", b'{"inputs": ['), 400)
    assert "not valid JSON" in check_error(served.infer("iris", b'{"inputs": [NaN]}'), 400)
    body = json_body(ROW).replace(
        b'"datatype": "FP64"', b'"datatype": "FP32", "datatype": "FP64"', 1
    )
    assert "duplicate key" in check_error(served.infer("iris", body), 400)


def test_binary_lengths_are_checked_before_anything_is_read(served: InferenceApp) -> None:
    body, headers = binary_body(ROW)
    header = int(headers["inference-header-content-length"])
    beyond = {"inference-header-content-length": str(len(body) + 1)}
    assert "between 1 and the body's length" in check_error(served.infer("iris", body, beyond), 400)
    assert "number of bytes" in check_error(
        served.infer("iris", body, {"inference-header-content-length": "-4"}), 400
    )
    huge = {"inference-header-content-length": "9" * 40}
    check_error(served.infer("iris", body, huge), 400)
    check_error(served.infer("iris", body[:-1], headers), 400)  # the data is one byte short
    check_error(served.infer("iris", body + b"\0", headers), 400)  # one byte too many
    document = json.loads(body[:header])
    document["inputs"][0]["parameters"]["binary_data_size"] = 7  # not 8 bytes for one FP64
    changed = json.dumps(document).encode()
    message = check_error(
        served.infer(
            "iris", changed + body[header:], {"inference-header-content-length": str(len(changed))}
        ),
        400,
    )
    assert "binary_data_size" in message
    document["inputs"][0]["parameters"]["binary_data_size"] = 1 << 40  # beyond the body
    changed = json.dumps(document).encode()
    check_error(
        served.infer(
            "iris", changed + body[header:], {"inference-header-content-length": str(len(changed))}
        ),
        400,
    )
    assert "no Inference-Header-Content-Length" in check_error(
        served.infer("iris", body[:header]), 400
    )


def test_bytes_element_lengths_are_bounded_by_the_data(served: InferenceApp) -> None:
    header = {
        "inputs": [
            {
                "name": "SepalLength",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": 8},
            }
        ]
    }
    raw = json.dumps(header).encode()
    for data, named in (
        (b"\xff\xff\xff\x7fabcd", "longer than the data that is left"),  # 2 GiB declared
        (b"\x02\x00\x00\x00ab\x00\x00", "larger than its 1 BYTES elements"),
        (b"\x01\x00", "too small for 1 BYTES elements"),
    ):
        header["inputs"][0]["parameters"]["binary_data_size"] = len(data)  # type: ignore[index]
        raw = json.dumps(header).encode()
        length = {"inference-header-content-length": str(len(raw))}
        assert named in check_error(served.infer("iris", raw + data, length), 400)


def test_bodies_and_batches_over_the_limits_are_413s(served: InferenceApp) -> None:
    big = json_body({k: np.full(5000, 1.0) for k in ROW})
    assert len(big) > 64 * 1024
    assert "limit is 65536 bytes" in check_error(served.infer("iris", big), 413)
    many = json_body({k: np.full(101, 1.0) for k in ROW})
    assert "the limit is 100" in check_error(served.infer("iris", many), 413)
    bomb = gzip.compress(b" " * (1 << 20))
    check_error(served.infer("iris", bomb, {"content-encoding": "gzip"}), 413)
    assert "Content-Encoding" in check_error(
        served.infer("iris", json_body(ROW), {"content-encoding": "br"}), 415
    )
    check_error(served.infer("iris", b"not gzip", {"content-encoding": "gzip"}), 400)
    shape = json.loads(json_body(ROW))
    shape["inputs"][0].update(shape=[1 << 40, 1 << 40], data=[1.0])
    check_error(served.infer("iris", json.dumps(shape).encode()), 413)


def test_a_compressed_body_is_answered_like_a_plain_one(served: InferenceApp) -> None:
    plain = served.infer("iris", json_body(ROW))
    zipped = served.infer("iris", gzip.compress(json_body(ROW)), {"content-encoding": "gzip"})
    assert zipped.status_code == 200 and zipped.get_body() == plain.get_body()


def test_a_model_not_loaded_yet_is_a_503_with_retry_after(trained_model: Path) -> None:
    from servefn.errors import LoaderError
    from servefn.http import Request

    loader = MemoryLoader()
    loader.fail(LoaderError("storage down"))
    service = InferenceService(ProvidedModels({"iris": ModelSource(loader, refresh_after=30)}))
    answer = service.infer(Request("POST", json_body(ROW)), "iris")
    assert answer.status == 503 and int(answer.headers["Retry-After"]) >= 1
    assert json.loads(answer.body) == {"error": "model iris is not loaded yet; retry later"}
    ready = service.model_ready(Request("GET"), "iris")
    assert ready.status == 503 and json.loads(ready.body) == {"name": "iris", "ready": False}
    assert service.ready(Request("GET")).status == 200  # the server is: the model loads later
    loader.set(trained_model.read_bytes())


class Refusing:
    """A resolver that raises what a repository raises."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def names(self) -> list[str]:
        return ["m"]

    def versions(self, name: str) -> list[str]:
        raise self.error

    def get(self, name: str, version: str | None) -> object:
        raise self.error

    def is_ready(self, name: str, version: str | None) -> bool:
        return False


@pytest.mark.parametrize(
    ("error", "status", "retry"),
    [
        (ModelNotFound("no model by that name"), 404, None),
        (ModelUnavailable("loading", retry_after=2.4), 503, "2"),
        (ModelUnavailable("loading"), 503, None),
    ],
)
def test_a_resolvers_errors_are_answered_by_status(
    error: Exception, status: int, retry: str | None
) -> None:
    from servefn.http import Request

    service = InferenceService(Refusing(error))  # type: ignore[arg-type]
    for answer in (
        service.infer(Request("POST", json_body(ROW)), "m"),
        service.model_metadata(Request("GET"), "m"),
    ):
        assert answer.status == status and answer.headers.get("Retry-After") == retry
        assert set(json.loads(answer.body)) == {"error"}


def test_a_repositorys_own_not_found_error_is_a_404() -> None:
    from servefn.errors import ServefnError
    from servefn.http import Request

    class NotInRepository(ServefnError, LookupError):
        pass

    service = InferenceService(Refusing(NotInRepository("no model by that name")))  # type: ignore[arg-type]
    assert service.model_ready(Request("GET"), "m").status == 404
    assert service.infer(Request("POST", json_body(ROW)), "m").status == 404


def test_a_failure_is_a_500_whose_id_is_logged_without_values(
    served: InferenceApp, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from servefn.azure import endpoint_of

    model = endpoint_of(served.functions["iris"]).source.get()

    def broken(row: object) -> object:
        raise RuntimeError(f"cannot score {CANARY}")

    monkeypatch.setattr(model.predictor, "predict_row", broken)
    with caplog.at_level(logging.ERROR, logger="servefn.oip"):
        message = check_error(served.infer("iris", json_body(ROW)), 500)
    error_id = message.split("error id ")[1].split()[0]
    assert error_id in caplog.text and "RuntimeError" in caplog.text
    assert CANARY not in caplog.text
