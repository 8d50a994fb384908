"""The model archive (``model.zip``) and what a loaded model is.

Reading and writing the archive safely, ``LoadedModel`` (schemas + predictor), the ``Records``
a handler receives and the ``Predictions`` it returns, ``save`` and its metrics. This layer may
import ``servefn.schema``, ``servefn.predictors`` and ``servefn.errors``; never a loader, the HTTP
layer or a host.
"""

from servefn.model._archive import LoadedModel, load_model, read_manifest, write_model
from servefn.model._records import Predictions, Records

__all__ = ["LoadedModel", "Predictions", "Records", "load_model", "read_manifest", "write_model"]
