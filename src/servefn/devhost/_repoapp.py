"""Serve a model repository with no user code: ``servefn serve REPOSITORY``.

A repository is a folder without a ``function_app.py`` that holds ``NAME/model.zip`` (or
``NAME/VERSION/model.zip``) children, or a URL ending in ``/`` (``blob://models/``,
``az://models/prod/``, ``s3://bucket/models/``), or a ``blob://``/``az://`` URL naming only a
container. It is served as the function app below would be, built and indexed the same way
(so its routes, auth levels and answers are those a deployed app would have)::

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    serve_models(app, repository=REPOSITORY, health_auth_level=func.AuthLevel.ANONYMOUS,
                 inference=True)

The repository is listed once at start-up, so a wrong location or connection fails then;
models are loaded by their first request.
"""

from __future__ import annotations

import os
import types
from collections.abc import Sequence
from pathlib import Path

import azure.functions as func

from servefn.devhost._indexing import APP_FILE_NAME, HttpFunction, index_functions
from servefn.errors import DevHostError
from servefn.loaders.schemes import CONNECTION_SCHEMES, check_connection, scheme_of
from servefn.repository import (
    DEFAULT_MAX_MODELS,
    MODEL_FILE,
    ModelRepository,
    serve_models,
)

__all__ = ["RepositoryApp", "is_repository_location"]


def is_repository_location(location: str | os.PathLike[str]) -> bool:
    """True when ``location`` names a repository rather than a function app or one model."""
    text = os.fspath(location)
    scheme = scheme_of(text)
    if scheme not in (None, "file"):
        rest = text.split("://", 1)[1].split("?", 1)[0]
        return text.endswith("/") or (scheme in CONNECTION_SCHEMES and "/" not in rest.strip("/"))
    folder = Path(text.removeprefix("file://")).expanduser()
    if not folder.is_dir() or (folder / APP_FILE_NAME).exists():
        return False
    return any(
        (child / MODEL_FILE).is_file() or any(child.glob(f"*/{MODEL_FILE}"))
        for child in folder.iterdir()
        if child.is_dir()
    )


class RepositoryApp:
    """The HTTP functions that serve one repository (see the module)."""

    def __init__(self, repository: ModelRepository, functions: Sequence[HttpFunction]) -> None:
        self.repository = repository
        self._functions = list(functions)

    def __repr__(self) -> str:
        return f"RepositoryApp({self.uri!r})"

    @classmethod
    def load(
        cls,
        location: str | os.PathLike[str],
        *,
        connection: str | None = None,
        trusted: Sequence[str] = (),
        memory_budget: int | str | None = None,
        max_models: int | None = None,
    ) -> RepositoryApp:
        """List the repository now; :class:`DevHostError` when it cannot be listed."""
        check_connection(connection, location, option="--connection")
        app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
        try:
            repository = serve_models(
                app,
                repository=location,
                connection=connection,
                trusted=trusted,
                memory_budget=memory_budget,
                max_models=max_models or DEFAULT_MAX_MODELS,
                health_auth_level=func.AuthLevel.ANONYMOUS,
                inference=True,
            )
        except ImportError as exc:
            raise DevHostError(str(exc)) from None
        except ValueError as exc:
            raise DevHostError(f"cannot serve the repository {location}: {exc}") from None
        if repository.catalog.refresh() is None:
            reason = repository.catalog.info()["last_error"]
            raise DevHostError(f"cannot list the repository {repository.uri}: {reason}")
        module = types.ModuleType("servefn_repository_app")
        module.app = app  # type: ignore[attr-defined]
        functions, _ = index_functions(module, Path(repository.uri))
        return cls(repository, functions)

    @property
    def uri(self) -> str:
        """The repository's root, without credentials."""
        return self.repository.uri

    def heading(self) -> str:
        """The first startup line: the repository and what it holds now."""
        names = self.repository.names()
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        budget = self.repository.cache.budget / 1024**2
        return (
            f"Repository: {self.uri} ({len(names)} models{': ' + shown if names else ''}; "
            f"memory budget {budget:.0f} MiB, at most {self.repository.cache.max_models} loaded)"
        )

    def openapi(self) -> bytes:
        """A repository has no single document: each model has its own schemas."""
        raise DevHostError(
            "a repository has no single OpenAPI document (each model has its own schemas); "
            "run servefn openapi on one of its model.zip files"
        )

    def functions(self) -> list[HttpFunction]:
        """The repository's routes, as indexed from its function app."""
        return list(self._functions)
