"""Trainers that produce servefn models (training only; needs ``pip install 'servefn[train]'``)."""

from servefn.trainers.sdca import SdcaMaximumEntropyClassifier

__all__ = ["SdcaMaximumEntropyClassifier"]
