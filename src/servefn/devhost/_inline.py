"""``servefn serve``'s fast path: ``serve_http`` functions answered on the event loop's thread.

The Functions worker runs every sync function in a thread pool, and ``servefn serve`` does too,
except for a function that ``serve_http`` made itself (``endpoint_of(handler, exact=True)``: a
decorator around one may add behaviour, so it is not one) whose model is in memory. Such a call
is CPU work of microseconds; the thread-pool hand-off cost a third of the request rate in GIL
and thread hand-offs. It is called on the loop's thread with the loop hidden
(:func:`servefn._compat.call_without_running_loop`), so sync code that runs its own event loop
(``asyncio.run``) works as in a pool thread, and the host calls its endpoint with the request
data directly (the same bytes go out; tests compare both ways).

If its calls wait (blocking I/O in a custom handler) three times within a minute, that function
goes to the pool for good. A call that may load or re-check its model still goes to the pool.
A wait is time not running in a call that gave up the CPU itself (on Linux, a voluntary context
switch: I/O, a sleep, a lock): a server descheduled by a busy machine is not waiting, and its
functions stay on the loop.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from servefn._compat import HIDES_RUNNING_LOOP, call_without_running_loop
from servefn.devhost._indexing import HttpFunction
from servefn.errors import ServefnError

if TYPE_CHECKING:
    from servefn.http._endpoint import Endpoint

__all__ = ["INLINE_WAITS_ALLOWED", "INLINE_WAIT_LIMIT", "INLINE_WAIT_WINDOW", "InlineCalls"]

INLINE_WAIT_LIMIT = 0.020
"""Seconds an inline call may spend not running (waiting) without counting as a wait."""
INLINE_WAITS_ALLOWED = 2
"""Waits a function may have on the event loop within ``INLINE_WAIT_WINDOW``; one more sends
it to the pool for good. A lone wait can be the machine descheduling the server, or a model
being parsed in the background holding the GIL, not the function blocking."""
INLINE_WAIT_WINDOW = 60.0
"""Seconds over which waits are counted; an older wait is forgotten."""

logger = logging.getLogger("servefn.devhost")

if sys.platform == "linux":
    import resource

    def _thread_usage() -> tuple[float, int]:
        """This thread's CPU seconds and voluntary context switches (one system call)."""
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return usage.ru_utime + usage.ru_stime, usage.ru_nvcsw

else:

    def _thread_usage() -> tuple[float, int]:
        """This thread's CPU seconds; switches unknown (-1): any time not running counts."""
        return time.thread_time(), -1


class InlineCalls:
    """Which of ``functions`` run on the event loop's thread, and running them there.

    ``endpoints`` maps the name of each function ``serve_http`` made to its endpoint;
    ``pooled`` names those sent to the thread pool for good.
    """

    def __init__(self, functions: Iterable[HttpFunction]) -> None:
        self.endpoints = _servefn_endpoints(functions) if HIDES_RUNNING_LOOP else {}
        self.pooled: set[str] = set()
        self._waits: dict[str, tuple[int, float]] = {}  # count, time of the first one

    def endpoint(self, function: HttpFunction) -> Endpoint | None:
        """The endpoint to call in ``function``'s place now, or None: its model is not in
        memory (a load or a refresh check may block), it waited before, or it is not one."""
        endpoint = self.endpoints.get(function.name)
        if endpoint is None or function.name in self.pooled or not endpoint.model_in_memory():
            return None
        return endpoint

    def call(self, function: HttpFunction, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` on this thread with the loop hidden; a call that waited (I/O,
        sleep, a lock) counts against ``function``.

        The thread's usage is a system call (``perf_counter`` is not): it is read again only
        after a call that took longer than a wait may last."""
        started = time.perf_counter()
        cpu_started, switches = _thread_usage()
        try:
            return call_without_running_loop(call, *args)
        finally:
            took = time.perf_counter() - started
            if took > INLINE_WAIT_LIMIT:
                cpu, switched = _thread_usage()
                waited = took - (cpu - cpu_started)
                if waited > INLINE_WAIT_LIMIT and (switched > switches or switches < 0):
                    self.count_wait(function.name, waited)

    def count_wait(self, name: str, waited: float) -> None:
        """One more wait of ``waited`` seconds for the function ``name``."""
        now = time.monotonic()
        waits, since = self._waits.get(name, (0, now))
        if now - since > INLINE_WAIT_WINDOW:
            waits, since = 0, now
        waits += 1
        self._waits[name] = (waits, since)
        if waits <= INLINE_WAITS_ALLOWED:
            return
        self.pooled.add(name)
        logger.warning(
            "function %r waited %.0f ms while running on the event loop, %d times in %.0f s "
            "(blocking I/O in its handler?); it runs in the thread pool from now on",
            name,
            waited * 1000,
            waits,
            now - since,
        )


def _servefn_endpoints(functions: Iterable[HttpFunction]) -> dict[str, Endpoint]:
    """The endpoints of the sync functions that serve_http made, by function name."""
    from servefn.azure import endpoint_of

    found = {}
    for function in functions:
        if function.is_async:
            continue
        try:
            found[function.name] = endpoint_of(function.handler, exact=True)
        except ServefnError:
            continue
    return found
