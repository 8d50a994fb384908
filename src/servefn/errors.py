"""The exceptions servefn raises.

::

    ServefnError
     ├── SchemaError          a schema is misdeclared, or data does not fit it
     │    ├── DataFormatError a delimited file has a malformed line (file, line, column)
     │    └── FeatureValueError a value the model cannot take (unknown category, missing)
     ├── ArtifactError        a model.zip is unsafe, corrupt or unreadable
     ├── PredictorError       a model cannot be exported, loaded or registered
     ├── LoaderError          storage could not be reached or the model is missing
     ├── ModelUnavailable     no model could be loaded yet (the HTTP layer answers 503)
     │    └── ModelUnusable   the model in storage can never load as it is (500 until replaced)
     ├── DevHostError         ``servefn serve`` cannot start (app, settings or address)
     └── UsageError           a command was given a wrong path or option (CLI exit code 2)
          ├── AppNotFoundError the path is not a function_app.py or a folder holding one
          └── servefn.batch.BatchUsageError  a batch run cannot start as asked

Messages say what went wrong and what to do; they never carry secrets or request values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AppNotFoundError",
    "ArtifactError",
    "DataFormatError",
    "DevHostError",
    "FeatureValueError",
    "LoaderError",
    "ModelUnavailable",
    "ModelUnusable",
    "PredictorError",
    "SchemaError",
    "ServefnError",
    "UsageError",
]


class ServefnError(Exception):
    """Base class of every error servefn raises on purpose."""


class SchemaError(ServefnError):
    """A schema is declared wrongly, or data does not match it."""


class DataFormatError(SchemaError):
    """A delimited text file has a malformed line."""

    def __init__(self, message: str, *, path: str, line: int, column: int | None = None) -> None:
        where = f"{path}, line {line}" + (f", column {column}" if column is not None else "")
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.column = column


class FeatureValueError(SchemaError):
    """A feature value the model cannot take: a category it never saw (with an encoder that
    refuses unknown values), or a missing value in a column it cannot impute.

    ``feature`` is the feature-matrix column (an index into the input layout's
    ``feature_names``), ``rows`` the first offending rows (0-based), ``reason`` is
    ``"unknown_category"`` or ``"missing"`` and ``allowed`` the known categories (capped) for an
    unknown one. The HTTP layer turns it into a 422 naming the field; the message never quotes the
    offending value.
    """

    def __init__(
        self,
        message: str,
        *,
        feature: int,
        rows: Sequence[int],
        reason: str,
        allowed: Sequence[Any] = (),
    ) -> None:
        super().__init__(message)
        self.feature = feature
        self.rows = list(rows)
        self.reason = reason
        self.allowed = list(allowed)


class ArtifactError(ServefnError):
    """A model artifact is unsafe, corrupt or cannot be read."""


class PredictorError(ServefnError):
    """A model cannot be exported to, or rebuilt as, a servefn predictor."""


class LoaderError(ServefnError):
    """A model could not be fetched from its storage."""


class ModelUnavailable(ServefnError):
    """No model has been loaded yet; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnusable(ModelUnavailable):
    """The model in storage was refused for what it is, not for where it is: a corrupt or
    unsafe archive, an unknown kind, a missing package, a model that fails its end-to-end check.

    Retrying the same artifact cannot help, so the HTTP layer answers 500 (not 503 + Retry-After);
    storage is checked again every ``refresh_after`` seconds and a new version is tried.
    ``reason`` is one line that names the problem (no secret, no stack); ``cause`` is its
    category: ``pin``, ``missing-package``, ``untrusted-types``, ``predictor``, ``schema``,
    ``check`` (the end-to-end check), ``artifact`` or ``parse`` (a custom parser refused it).
    """

    def __init__(
        self, message: str, *, retry_after: float, uri: str, reason: str, cause: str
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.uri = uri
        self.reason = reason
        self.cause = cause


class DevHostError(ServefnError):
    """``servefn serve`` cannot start: the app, its settings or the address is unusable."""


class UsageError(ServefnError):
    """A command was given a path or option it cannot use; the CLI exits with code 2."""


class AppNotFoundError(UsageError, DevHostError):
    """The path given as the app is not a ``function_app.py`` or a folder holding one."""
