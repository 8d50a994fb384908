"""Every private attribute servefn reads from asyncio and azure.functions, and nothing else.

Each one buys speed, or a capability with no public API; each accessor falls back to a public
path when a release removes its attribute, so servefn keeps working, only slower or with less.
``tests/azure/test_compat.py`` fails (never skips) when one is gone, so a removal is noticed:

=============================================  ===============================  ==================
private attribute                              what servefn gets from it        without it
=============================================  ===============================  ==================
``HttpRequestHeaders.__http_headers__``        the request's headers as the     a copy of the
(azure.functions)                              lower-cased dict they wrap       headers per request
``FunctionApp._function_builders``,            the functions registered on an   ``get_functions()``,
``FunctionBuilder._function``                  app so far, without building     which validates them
(azure.functions)                              (validating) them                early
``asyncio.events._get_running_loop``,          a sync function called on the    such functions run
``_set_running_loop``                          event loop's thread sees no      in the thread pool
                                               running loop, as in a pool       (``servefn serve``)
                                               thread (``servefn serve``)
=============================================  ===============================  ==================

A layer-0 module: it imports no other servefn module, and no package that ``azure.functions``
has not imported already (asyncio).
"""

from __future__ import annotations

import asyncio.events
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = [
    "HIDES_RUNNING_LOOP",
    "PRIVATE_ATTRIBUTES",
    "builder_function",
    "call_without_running_loop",
    "header_dict",
    "registered_functions",
]

T = TypeVar("T")

PRIVATE_ATTRIBUTES = (
    ("azure.functions._http", "HttpRequestHeaders", "__http_headers__"),
    ("azure.functions.decorators.function_app", "FunctionApp", "_function_builders"),
    ("azure.functions.decorators.function_app", "FunctionBuilder", "_function"),
    ("asyncio.events", None, "_get_running_loop"),
    ("asyncio.events", None, "_set_running_loop"),
)
"""(module, class or None, attribute): what the accessors below read, for
tests/azure/test_compat.py. The class attributes are instance attributes, set in ``__init__``."""

_get_running_loop: Callable[[], Any] | None = getattr(asyncio.events, "_get_running_loop", None)
_set_running_loop: Callable[[Any], None] | None = getattr(asyncio.events, "_set_running_loop", None)
HIDES_RUNNING_LOOP = _get_running_loop is not None and _set_running_loop is not None
"""True when :func:`call_without_running_loop` can hide the loop (asyncio still has both)."""


def header_dict(headers: Mapping[str, str]) -> dict[str, str]:
    """A ``func.HttpRequest``'s headers as a dict with lower-case names, without a copy.

    azure.functions keeps them in such a dict; ``Mapping.get`` on its wrapper costs an exception
    per missing header.
    """
    found = getattr(headers, "__http_headers__", None)
    if isinstance(found, dict):
        return found
    return {name.lower(): value for name, value in headers.items()}


def registered_functions(app: Any) -> list[Any]:
    """The ``func.Function`` objects registered on a FunctionApp (or Blueprint) so far.

    Read without ``get_functions()``, which builds each function: it validates triggers and
    fills in routes and auth levels, and fails on an app whose registration is not finished.
    """
    builders = getattr(app, "_function_builders", None)
    if builders is None:
        return list(app.get_functions())
    found = (builder_function(builder) for builder in builders)
    return [function for function in found if function is not None]


def builder_function(builder: Any) -> Any:
    """The ``func.Function`` behind what ``@app.route`` returns (a FunctionBuilder), or None."""
    return getattr(builder, "_function", None)


def call_without_running_loop(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` on the event loop's thread as if from a pool thread: the running loop is
    hidden meanwhile, so sync code that runs its own loop (``asyncio.run``) works.

    Only when :data:`HIDES_RUNNING_LOOP`; a caller checks it first.
    """
    assert _get_running_loop is not None and _set_running_loop is not None
    loop = _get_running_loop()
    _set_running_loop(None)
    try:
        return call(*args)
    finally:
        _set_running_loop(loop)
