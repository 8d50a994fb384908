"""LitServe serving the scikit-learn baseline: the FastAPI app's model, contract and answer.

LitServe's own server (FastAPI on uvicorn, here on uvloop and httptools) validates the body as
``IrisData`` and hands each request over a queue to one inference worker process, which calls
``iris_wire.answer`` (one ``predict_proba``), the same bytes as the FastAPI app.
Run: ``python benchmarks/apps/litserve_sklearn.py PORT`` (127.0.0.1 only). No ``from __future__
import annotations`` here: LitServe reads the request type from ``decode_request``'s annotation.
"""

import sys
from typing import Any

import litserve as ls
from iris_wire import IrisData, IrisPrediction, answer
from sklearn_iris import fit_pipeline


class IrisAPI(ls.LitAPI):
    """``/api/Predict``: one flower in, its species and probabilities out."""

    def setup(self, device: Any) -> None:
        self.pipeline = fit_pipeline()

    def decode_request(self, request: IrisData) -> IrisData:
        return request

    def predict(self, x: IrisData) -> IrisPrediction:
        return answer(self.pipeline, x)

    def encode_response(self, output: IrisPrediction) -> IrisPrediction:
        return output


if __name__ == "__main__":
    server = ls.LitServer(
        IrisAPI(api_path="/api/Predict"), accelerator="cpu", workers_per_device=1, timeout=30
    )
    server.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
        loop="uvloop",
        http="httptools",
    )
