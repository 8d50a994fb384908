"""The diabetes study's patients (scikit-learn's bundled ``load_diabetes(scaled=False)``).

Ten baseline variables of 442 patients: age, sex (1 or 2; a category, split on as one by the
model), body mass index, mean blood pressure and six blood serum measurements. A serum
measurement may be missing (a test not taken): the model routes a missing value down the side
that held most training patients at each split, as HistGradientBoosting does.
"""

from __future__ import annotations

from servefn import Schema, column


class Patient(Schema):
    """One patient at baseline; ``progression`` is the label."""

    age: float = column(0, ge=0, le=120)
    sex: int = column(1, ge=1, le=2)
    bmi: float = column(2, ge=0)
    bp: float = column(3, ge=0)
    s1: float | None = column(4, default=None)
    s2: float | None = column(5, default=None)
    s3: float | None = column(6, default=None)
    s4: float | None = column(7, default=None)
    s5: float | None = column(8, default=None)
    s6: float | None = column(9, default=None)
    progression: float | None = column(10, role="label", default=None)


class Progression(Schema):
    """The model's answer: disease progression one year after baseline (the study's scale)."""

    score: float = column(name="Score")
