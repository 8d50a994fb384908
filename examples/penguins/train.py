"""Train a penguin species classifier with scikit-learn and save ``model.zip``.

A ColumnTransformer imputes and scales the measurements and one-hot encodes the island and the
sex (a missing sex is a category of its own), then a logistic regression. ``servefn.save``
exports the fitted pipeline to numpy (serving needs neither scikit-learn nor pandas), checks on
the evaluation rows that the export predicts exactly as scikit-learn does, and records the
vocabularies: ``island`` and ``sex`` accept only the values the encoders learned.
Run: ``python train.py``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import servefn

from schema import Penguin, SpeciesPrediction

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "penguins.csv"
MODEL = HERE / "model.zip"
MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
EXAMPLE = {"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0, "sex": "male"}


def pipeline() -> object:
    """Impute + scale the measurements, one-hot encode island and sex, then classify."""
    columns = ColumnTransformer(
        [
            (
                "measurements",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                MEASUREMENTS,
            ),
            ("categories", OneHotEncoder(handle_unknown="error"), ["island", "sex"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression(max_iter=1000))


def train(model_path: Path = MODEL) -> str:
    """Fit on 75% of penguins.csv, evaluate on the rest, save ``model_path``; its sha256."""
    frame = pd.read_csv(DATA)
    X, y = frame.drop(columns=["species", "year"]), frame["species"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    model = pipeline()
    model.fit(X_train, y_train)  # type: ignore[attr-defined]
    return servefn.save(
        model,
        model_path,
        input=Penguin,
        output=SpeciesPrediction,
        evaluate_on=(X_test, y_test),
        data_file=DATA,
    )


def main() -> None:
    sha256 = train()
    model = servefn.load_model(MODEL)
    training = model.manifest["training"]
    accuracy = training["metrics"]["micro_accuracy"]
    parity = training["parity"]
    print(
        f"Saved {MODEL.name} (sha256 {sha256[:12]}): {model.manifest['kind']} model, test "
        f"accuracy {accuracy:.3f}; on {parity['rows']} test rows the export matches "
        f"scikit-learn (largest probability difference {parity['max_score_difference']:.1e})"
    )
    prediction = model.predict([EXAMPLE]).to_dicts()[0]
    print(f"A penguin with no flipper length or body mass: {prediction['PredictedLabel']}")


if __name__ == "__main__":
    main()
