"""The guard every request passes through, for sync and async handlers alike.

:class:`Guard` is a context manager around answering one request (starlette's
``request_response`` shape: the async path awaits its handler inside the same guard the sync
path uses, nothing else differs). It pauses the collector for a large body, turns a
:class:`~servefn.http.Problem` into its problem+json response and any other failure into a 500
whose id is in the log with the traceback, and logs the exchange when ``log_bodies`` is on.
Request values never reach the log otherwise: exception messages can quote them. Even then
each value is bounded and escaped (:mod:`servefn._logtext`): one log line per record, about a
kilobyte at most. With telemetry configured, the guard also opens and closes the request's
:class:`~servefn.telemetry.observer.Invocation` (its metrics, and its span when traced).
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from servefn._logtext import bounded, exception_text
from servefn.errors import FeatureValueError
from servefn.http._collector import LARGE_BODY, pause_collector, resume_collector
from servefn.http._messages import Request, Response, problem_response
from servefn.http._problems import Problem

if TYPE_CHECKING:
    from servefn.http._endpoint import Endpoint
    from servefn.telemetry.observer import Invocation

__all__ = ["LOG_BODIES_SETTING", "Guard", "log_bodies_from_environment"]

LOG_BODIES_SETTING = "SERVEFN_LOG_BODIES"
_LOGGED_BODY_BYTES = 512
logger = logging.getLogger("servefn.http")


def log_bodies_from_environment() -> bool:
    """True when the app setting ``SERVEFN_LOG_BODIES`` is 1, true or yes (debugging only)."""
    return os.environ.get(LOG_BODIES_SETTING, "").strip().lower() in ("1", "true", "yes")


class Guard:
    """Answering ``request`` for ``endpoint``: set :attr:`response` inside the block.

    ``with Guard(endpoint, request) as guard: guard.response = ...``; after the block
    ``guard.response`` is that response, or the problem response for what the block raised.
    Exceptions that are not ``Exception`` (cancellation, KeyboardInterrupt) pass through.
    """

    __slots__ = ("_endpoint", "_paused", "invocation", "request", "response")
    response: Response
    """The answer: set by the guarded block, or by the guard when the block failed."""
    invocation: Invocation | None
    """The request's telemetry, when the endpoint has an observer (None otherwise)."""

    def __init__(self, endpoint: Endpoint, request: Request) -> None:
        self._endpoint = endpoint  # its name and log_bodies are read only when needed
        self.request = request

    def __enter__(self) -> Guard:
        self._paused = len(self.request.body) > LARGE_BODY
        if self._paused:
            pause_collector()
        observer = self._endpoint.observer
        self.invocation = None if observer is None else observer.begin(self.request)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._paused:
            resume_collector()
        if exc is None:
            pass
        elif isinstance(exc, Problem):
            self.response = problem_response(exc)
        elif isinstance(exc, FeatureValueError):  # raised through a handler's model.predict
            self.response = problem_response(Problem(422, str(exc)))
        elif isinstance(exc, Exception):
            self.response = problem_response(self._internal_error(exc))
        else:
            if self.invocation is not None:
                self.invocation.finish(None, exc)
            return False
        if self.invocation is not None:
            self.invocation.finish(self.response.status, exc)
        if self._endpoint.log_bodies:
            self._log_exchange()
        return True

    def _internal_error(self, exc: Exception) -> Problem:
        """A 500 whose id is in the log with the traceback. Exception messages can hold request
        values, so they are logged only with ``log_bodies``."""
        error_id = uuid.uuid4().hex[:12]
        name = self._endpoint.name
        if self._endpoint.log_bodies:  # messages too, each bounded: they can quote the body
            logger.error(
                "prediction failed in %s (error id %s)\n%s", name, error_id, exception_text(exc)
            )
        else:
            logger.error(
                "prediction failed in %s (error id %s): %s\n%s(exception messages are not logged;"
                " set %s=1 to log them and request bodies)",
                name,
                error_id,
                _exception_types(exc),
                "".join(traceback.format_tb(exc.__traceback__)),
                LOG_BODIES_SETTING,
            )
        return Problem(
            500,
            f"the prediction failed; the error id {error_id} is in the server log",
            error_id=error_id,
        )

    def _log_exchange(self) -> None:
        """A debugging aid, with ``log_bodies`` only: the request body next to the answer."""
        if not logger.isEnabledFor(logging.DEBUG):
            return
        request = self.request
        shown = request.body[:_LOGGED_BODY_BYTES].decode("utf-8", "backslashreplace")
        logger.debug(
            "%s %s -> %d; request body (%d bytes, the first %d shown): %s",
            self._endpoint.name,
            bounded(request.method),
            self.response.status,
            len(request.body),
            _LOGGED_BODY_BYTES,
            bounded(shown, _LOGGED_BODY_BYTES),
        )


def _exception_types(exc: BaseException) -> str:
    """``"KeyError <- ValueError"``: an exception chain by type only."""
    types: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(types) < 10:
        types.append(type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(types)
