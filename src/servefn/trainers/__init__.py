"""Trainers that produce servefn models: scikit-learn estimators whose fitted state
:func:`servefn.save` exports (``SdcaMaximumEntropyClassifier``, ML.NET's SDCA trainer).

Training only: needs ``pip install 'servefn[train]'``, and nothing on the serving path imports
this package. Its modules import from each other's defining module, never from this package.
"""

from servefn.trainers.sdca import SdcaMaximumEntropyClassifier

__all__ = ["SdcaMaximumEntropyClassifier"]
