"""ML.NET's model.zip, read as it is: servefn serves a model trained in ML.NET without .NET.

:func:`read_mlnet` decodes an ML.NET 1.x archive (its zip of ``Model.key`` streams, each an
ML.NET ModelHeader with a string table, written by a transformer's or model-parameters class's
SaveModel) against a hostile file, and maps the pipeline onto servefn's own predictors: the
transforms onto the numpy transform stage, linear models and FastTree/FastForest ensembles onto
the linear and tree-ensemble kinds. ``model/_archive.py`` calls :func:`is_mlnet_archive` when a
model is loaded, so ``load_model``, ``serve_http``, ``servefn serve``, ``inspect`` and
``predict`` take an ML.NET model.zip unchanged; ``servefn convert`` writes the equivalent
servefn archive. This package sits beside ``model/``: it may import ``predictors/``,
``schema/``, ``model/_limits`` and ``errors``, and nothing above them.
"""

from servefn.mlnet._binary import MlnetError
from servefn.mlnet._read import MlnetModel, read_mlnet
from servefn.mlnet._repository import is_mlnet_archive

__all__ = ["MlnetError", "MlnetModel", "is_mlnet_archive", "read_mlnet"]
