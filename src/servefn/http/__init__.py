"""The framework-neutral HTTP endpoint: bytes in, parse, validate, predict, encode.

Nothing here knows Azure Functions: ``servefn.azure`` and the development host adapt their own
request objects to ``Request``/``Response``. This layer may import ``servefn.schema``,
``servefn.model``, ``servefn.loaders`` (through ``ModelSource``-like providers) and
``servefn.errors``; never ``servefn.azure``, ``servefn.devhost`` or ``servefn.cli``.
"""

from servefn.http._endpoint import Endpoint, Request, Response
from servefn.http._problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = ["PROBLEM_MEDIA_TYPE", "Endpoint", "Problem", "Request", "Response"]
