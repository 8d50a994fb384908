"""Train a histogram gradient boosting regressor on the diabetes study and save ``model.zip``.

``python train.py`` fits on 75% of the patients (sex as a categorical feature), evaluates on
the rest, and saves the model with ``servefn.save``: it becomes servefn's numpy tree ensemble,
checked for parity with scikit-learn on the test rows and on rows at every split threshold.
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split

import servefn

from schema import Patient, Progression

HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.zip"
EXAMPLE = {"age": 50, "sex": 2, "bmi": 32.1, "bp": 101.0, "s1": 157, "s5": 4.86}


def train(model_path: Path = MODEL) -> str:
    """Fit, evaluate on a held-out quarter, save ``model_path``; its sha256."""
    X, y = load_diabetes(return_X_y=True, scaled=False)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = HistGradientBoostingRegressor(
        max_iter=300, learning_rate=0.02, max_leaf_nodes=4, min_samples_leaf=30,
        categorical_features=[1], random_state=0,
    )  # fmt: skip
    model.fit(X_train, y_train)
    return servefn.save(
        model,
        model_path,
        input=Patient,
        output=Progression,
        evaluate_on=(X_test, y_test),
    )


def main() -> None:
    sha256 = train()
    model = servefn.load_model(MODEL)
    training = model.manifest["training"]
    parity = training["parity"]
    print(
        f"Saved {MODEL.name} (sha256 {sha256[:12]}): {model.manifest['kind']} model of "
        f"{model.manifest['predictor']['n_trees']} trees, test R^2 "
        f"{training['metrics']['r_squared']:.3f}; the export matches scikit-learn on "
        f"{parity['rows']} test rows and {parity['split_thresholds']['rows']} threshold rows "
        f"(largest difference {parity['max_score_difference']:.1e})"
    )
    answer = model.predict([EXAMPLE]).to_dicts()[0]
    print(f"A patient with four serum tests missing: progression {answer['Score']:.1f}")


if __name__ == "__main__":
    main()
