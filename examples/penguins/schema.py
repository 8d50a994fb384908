"""The penguin records of the Palmer Archipelago data: measurements, island and sex, some missing.

Column names are the CSV header's, so the pipeline fitted on a pandas DataFrame and the JSON
clients send use the same names. ``island`` is categorical by its type (a ``Literal``); ``sex``
is a plain ``str`` whose vocabulary the model's encoder learns ("female", "male"); the
measurements and ``sex`` are optional: a missing one is imputed or encoded by the model.
"""

from __future__ import annotations

from typing import Literal

from servefn import Schema, column

Island = Literal["Biscoe", "Dream", "Torgersen"]


class Penguin(Schema):
    """One penguin, as in penguins.csv; ``species`` is the label."""

    species: str | None = column(0, role="label", default=None)
    island: Island = column(1)
    bill_length_mm: float | None = column(2, default=None, ge=0)
    bill_depth_mm: float | None = column(3, default=None, ge=0)
    flipper_length_mm: float | None = column(4, default=None, ge=0)
    body_mass_g: float | None = column(5, default=None, ge=0)
    sex: str | None = column(6, default=None)
    year: int | None = column(7, role="ignore", default=None)


class SpeciesPrediction(Schema):
    """The model's answer: the species and one probability per species."""

    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")
