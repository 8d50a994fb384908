"""The iris records of the ML.NET walkthrough: columns 0-3 are features, column 4 the label."""

from __future__ import annotations

from servefn import Schema, column


class IrisData(Schema):
    """One flower, as in iris.data (UCI): four measurements in cm and the species."""

    sepal_length: float = column(0, name="SepalLength")
    sepal_width: float = column(1, name="SepalWidth")
    petal_length: float = column(2, name="PetalLength")
    petal_width: float = column(3, name="PetalWidth")
    label: str | None = column(4, name="Label", role="label", default=None)


class IrisPrediction(Schema):
    """The model's answer: the species and one probability per species."""

    predicted_label: str = column(name="PredictedLabel")
    score: list[float] = column(name="Score")
