"""servefn and Python's cyclic garbage collector: paused during large requests, frozen at startup
by a host that asks for it.

Pausing (every endpoint, sync or async): a 10,000-row request allocates tens of thousands of
acyclic objects (records, dicts, floats) and would trigger collections that find nothing to
collect but cost up to a third of the request. Reference counting still frees everything
meanwhile; the collector resumes when the last concurrent large request ends, unless the app had
turned it off itself.

Freezing (:func:`freeze_startup_objects`, a host's explicit choice at its startup, never a
constructor's side effect): the objects alive when a server starts (imported modules, classes,
functions) live as long as the process, yet every full collection scans them again, and requests
under the pause threshold trigger full collections (their rows survive younger collections).
``gc.freeze()`` moves them to the permanent generation that collections skip. Measured in a
worker-like process (the example app, 1-row requests with one 500-row request in 20): full
collections fell from about 27 ms to 0.5 ms each, the whole run by 10-20 %. It must run before
any model is loaded: a frozen model is never collected once a newer version replaces it (its
cyclic parts). The hosts: ``servefn serve`` calls it before it imports the app or loads a model;
in the Functions worker, the first ``serve_http`` call is the startup (the app's import), and it
calls it unless the model it was given is loaded already. A model an app loads by other means
before that is frozen with the rest; call this first in ``function_app.py`` to be sure.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["LARGE_BODY", "freeze_startup_objects", "pause_collector", "resume_collector"]

LARGE_BODY = 64 * 1024
"""Request bodies longer than this (bytes) are handled with the collector paused."""

_paused = 0
_resume = True
_frozen = False
_lock = threading.Lock()


def pause_collector() -> None:
    """Pause the collector for one large request; pair with :func:`resume_collector`."""
    global _paused, _resume
    with _lock:
        _paused += 1
        if _paused == 1:
            _resume = gc.isenabled()  # an app that turned the collector off keeps it off
            gc.disable()


def resume_collector() -> None:
    """End one large request's pause; the collector runs again when none is left."""
    global _paused
    with _lock:
        _paused -= 1
        if _paused == 0 and _resume:
            gc.enable()


def freeze_startup_objects() -> bool:
    """Freeze every object alive now, once per process; True if it froze now.

    For a host, at startup, before any model is loaded (see the module's docstring). Later
    calls do nothing.
    """
    global _frozen
    with _lock:
        if _frozen:
            return False
        _frozen = True
    # No gc.collect() first: it costs about 30 ms of cold start (T3, BENCHMARKS.md) to free
    # the little garbage imports leave, which then merely stays with the frozen objects.
    gc.freeze()
    return True
