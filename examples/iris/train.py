"""Train the iris classifier the way the ML.NET walkthrough does, and save ``model.zip``.

TextLoader -> Dictionarizer -> ColumnConcatenator -> MinMax (max-abs) -> SDCA, with a check
frequency of 2 (the walkthrough's two threads). Run: ``python train.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

import servefn
from servefn.schema import layout_of, read_delimited
from servefn.trainers import SdcaMaximumEntropyClassifier

from schema import IrisData, IrisPrediction

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "iris.txt"
MODEL = HERE / "model.zip"
WALKTHROUGH_INPUT = {"SepalLength": 3.3, "SepalWidth": 1.6, "PetalLength": 0.2, "PetalWidth": 5.1}


def train(model_path: Path = MODEL, *, random_state: int = 0) -> str:
    """Train on iris.txt, save ``model_path`` and return the archive's sha256."""
    table = read_delimited(IrisData, DATA, sep=",")
    X, y = layout_of(IrisData).table_to_matrix(table), table["Label"]
    pipeline = make_pipeline(
        MaxAbsScaler(),
        SdcaMaximumEntropyClassifier(check_frequency=2, random_state=random_state),
    )
    pipeline.fit(X, y)
    return servefn.save(
        pipeline,
        model_path,
        input=IrisData,
        output=IrisPrediction,
        evaluate_on=(X, y),
        data_file=DATA,
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sha256 = train()
    model = servefn.load_model(MODEL)
    metrics = model.manifest["training"]["metrics"]
    accuracy = metrics["micro_accuracy"]
    print(f"Saved {MODEL.name} (sha256 {sha256[:12]}); training accuracy {accuracy:.2f}")
    # the loaded model's output schema is rebuilt from the manifest: read it as IrisPrediction
    prediction = IrisPrediction.model_validate(model.predict([WALKTHROUGH_INPUT]).to_dicts()[0])
    print(f"Predicted flower type is: {prediction.predicted_label}")


if __name__ == "__main__":
    main()
