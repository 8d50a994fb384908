"""The framework-neutral HTTP endpoint: bytes in, parse, validate, predict, encode.

Nothing here knows Azure Functions: ``servefn.azure`` and the development host adapt their own
request objects to ``Request``/``Response``. This layer may import ``servefn.schema``,
``servefn.model``, ``servefn.loaders`` (through ``ModelSource``-like providers) and
``servefn.errors``; never ``servefn.azure``, ``servefn.devhost`` or ``servefn.cli``.

Modules, one job each: ``_endpoint`` (``Endpoint``, orchestration only), ``_messages``
(``Request``/``Response``), ``_parsing`` (bodies, query strings, limits, duplicate keys),
``_features`` (feature matrix, float32 range), ``_encoding`` (outputs, ``Accept``, bodies),
``_guard`` (the one guarded path of sync and async requests), ``_collector`` (garbage-collector
pausing and the hosts' startup freeze), ``_problems`` (problem+json), ``_openapi``.
"""

from servefn.http._collector import freeze_startup_objects
from servefn.http._endpoint import Endpoint
from servefn.http._messages import Request, Response
from servefn.http._problems import PROBLEM_MEDIA_TYPE, Problem

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Endpoint",
    "Problem",
    "Request",
    "Response",
    "freeze_startup_objects",
]
