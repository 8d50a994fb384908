"""``servefn check``: what ``func azure functionapp publish`` would trip on, before publishing.

Checks, in order: ``host.json`` is valid for the Functions v4 host; ``requirements.txt`` lists
servefn (with the ``azure`` extra when a model is in Azure Storage, the extra its model's kind
needs: ``sklearn`` for kind ``"sklearn"``, ``onnx`` for kind ``"onnx"``); ``local.settings.json``
would not be published (``.funcignore``); ``function_app.py`` imports and indexes under the
Python worker's rules (exactly one FunctionApp, parameters equal to binding names, unique
names); and for every ``serve_http`` function, the model it reads (from the setting the app
looked up at import) loads, and answers an example record built from its input schema with 200.

Each finding is ``ok``, ``warn`` or ``fail`` with a message that says what to do.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from servefn.errors import ServefnError
from servefn.loaders import redact, takes_connection
from servefn.predictors.base import TRUSTED_SETTING
from servefn.schema import layout_of

if TYPE_CHECKING:
    from servefn.devhost._indexing import HttpFunction
    from servefn.http._endpoint import ModelProvider
    from servefn.schema._schema import Schema

__all__ = ["Finding", "check_app", "example_record"]

Level = Literal["ok", "warn", "fail"]
_KIND_EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sklearn": ("sklearn", ("scikit-learn", "skops")),
    "onnx": ("onnx", ("onnxruntime",)),
}
"""Model kind -> (the servefn extra it needs, the packages that also satisfy it when listed
themselves). A kind not here (linear, tree-ensemble) needs servefn alone."""
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")


@dataclass(frozen=True)
class Finding:
    """One result: ``ok``, ``warn`` or ``fail``, and what it means."""

    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def check_app(
    app_path: str | os.PathLike[str], *, trusted: Sequence[str] = ()
) -> Iterator[Finding]:
    """Check the function app at ``app_path`` (its folder or ``function_app.py``).

    Importing the app runs its code in this process, with ``local.settings.json`` Values in
    the environment, as ``func host start`` would; ``trusted`` types are added to the app
    setting ``SERVEFN_TRUSTED`` its ``serve_http`` functions read. Raises
    :class:`~servefn.errors.AppNotFoundError` when the path holds no app.
    """
    from servefn.devhost._indexing import resolve_app_file

    app_file = resolve_app_file(app_path)
    folder = app_file.parent
    yield _host_json(folder)
    requirements = _requirements(folder)
    yield from _requirement_findings(folder, requirements)
    ignored = _funcignore(folder)
    yield _local_settings(folder, ignored)
    functions, finding = _index(app_file, tuple(trusted))
    yield finding
    for function in functions:
        yield from _check_function(function, folder, requirements, ignored)


# -- files ---------------------------------------------------------------------------------------


def _host_json(folder: Path) -> Finding:
    path = folder / "host.json"
    if not path.is_file():
        return Finding("fail", "host.json is missing; the Functions host needs it (version 2.0)")
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Finding("fail", f"host.json is not valid JSON ({exc}); fix it")
    if not isinstance(document, dict):
        return Finding("fail", "host.json must hold a JSON object")
    if document.get("version") != "2.0":
        return Finding(
            "fail", f'host.json has version {document.get("version")!r}; set "version": "2.0"'
        )
    http = document.get("extensions", {}).get("http", {})
    prefix = http.get("routePrefix", "api") if isinstance(http, dict) else None
    if not isinstance(prefix, str):
        return Finding("fail", "host.json: extensions.http.routePrefix must be a string")
    return Finding("ok", f'host.json is valid (version 2.0, routePrefix "{prefix}")')


def _requirements(folder: Path) -> dict[str, set[str]] | None:
    """Requirement name (normalised) -> extras, from requirements.txt; None when missing."""
    path = folder / "requirements.txt"
    if not path.is_file():
        return None
    found: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        text = line.split(" #", 1)[0].strip()
        match = _REQUIREMENT.match(text)
        if not text or text.startswith(("#", "-")) or match is None:
            continue
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        extras = {e.strip().lower() for e in (match.group(2) or "[]")[1:-1].split(",")}
        found.setdefault(name, set()).update(e for e in extras if e)
    return found


def _requirement_findings(
    folder: Path, requirements: dict[str, set[str]] | None
) -> Iterator[Finding]:
    if requirements is None:
        yield Finding(
            "fail",
            "requirements.txt is missing; the remote build installs only what it lists: "
            "add one with azure-functions and servefn",
        )
        return
    if "servefn" in requirements:
        extras = sorted(requirements["servefn"])
        listed = f"servefn[{','.join(extras)}]" if extras else "servefn"
        yield Finding("ok", f"requirements.txt lists {listed}")
    else:
        yield Finding(
            "fail",
            "requirements.txt does not list servefn; the published app would fail to import "
            "it: add servefn (servefn[azure] to read models from Blob Storage)",
        )
    if "azure-functions" not in requirements:
        yield Finding("warn", "requirements.txt does not list azure-functions; add it")


def _funcignore(folder: Path) -> list[str]:
    path = folder / ".funcignore"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [p.strip() for p in lines if p.strip() and not p.strip().startswith("#")]


def _is_ignored(relative: str, patterns: list[str]) -> bool:
    """Whether ``.funcignore`` (gitignore syntax, simple patterns) excludes ``relative``."""
    parts = relative.split("/")
    for raw in patterns:
        pattern = raw.strip("/")
        if "/" in pattern:
            if fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def _local_settings(folder: Path, ignored: list[str]) -> Finding:
    if not (folder / "local.settings.json").is_file():
        return Finding("ok", "no local.settings.json to leave out of the package")
    if not _is_ignored("local.settings.json", ignored):
        return Finding(
            "fail",
            "local.settings.json would be published with the app (it holds local secrets): "
            "add it to .funcignore",
        )
    return Finding(
        "ok",
        "local.settings.json is left out by .funcignore; set the Values the app needs as "
        "application settings of the function app",
    )


# -- the app -------------------------------------------------------------------------------------


def _index(app_file: Path, trusted: tuple[str, ...]) -> tuple[tuple[HttpFunction, ...], Finding]:
    from servefn.devhost._host import DevHost

    host = DevHost(app_file, trusted=trusted)
    try:
        host.load()
    except ServefnError as exc:
        return (), Finding("fail", f"function_app.py does not load: {exc}")
    functions = host.functions
    names = ", ".join(f.name for f in functions) or "none"
    finding = Finding(
        "ok", f"function_app.py imports and indexes under the worker's rules: {names}"
    )
    return functions, finding


def _check_function(
    function: HttpFunction,
    folder: Path,
    requirements: dict[str, set[str]] | None,
    ignored: list[str],
) -> Iterator[Finding]:
    from servefn.azure import endpoint_of
    from servefn.loaders import ModelSource

    try:
        endpoint = endpoint_of(function.handler)
    except ServefnError:
        return
    provider = endpoint.source
    if isinstance(provider, ModelSource):
        uri = provider.uri
        yield from _model_location(function.name, uri, folder, requirements, ignored)
    else:
        uri = "its model"
    try:
        model = provider.get()
    except ServefnError as exc:
        reason = provider.info().get("last_error") or str(exc)
        untrusted = TRUSTED_SETTING in str(reason)  # the message says what to do
        yield Finding(
            "fail",
            f"{function.name}: {uri} does not load: {redact(str(reason))}"
            + (
                ""
                if untrusted
                else "; set the app's model setting (in local.settings.json here, app "
                "settings on Azure) to a model that exists"
            ),
        )
        yield from _kind_extra(function.name, _kind_of(provider, None), requirements)
        return
    yield Finding("ok", f"{function.name}: the model loads ({model.version}, {uri})")
    yield from _kind_extra(function.name, _kind_of(provider, model.manifest), requirements)
    yield _answer(function, endpoint.input_schema)


def _kind_of(provider: ModelProvider, manifest: Mapping[str, Any] | None) -> str | None:
    """The model's kind: from its manifest, read again from storage when it did not load."""
    from servefn.loaders import ModelSource
    from servefn.model._archive import read_manifest

    if manifest is None and isinstance(provider, ModelSource):
        try:
            fetched = provider.loader.fetch()
            manifest = None if fetched is None else read_manifest(fetched.data)
        except ServefnError:
            return None
    kind = (manifest or {}).get("kind")
    return kind if isinstance(kind, str) else None


def _kind_extra(
    name: str, kind: str | None, requirements: dict[str, set[str]] | None
) -> Iterator[Finding]:
    """A fail when requirements.txt lacks the servefn extra a model of ``kind`` needs."""
    if kind not in _KIND_EXTRAS or requirements is None or "servefn" not in requirements:
        return
    extra, packages = _KIND_EXTRAS[kind]
    if extra in requirements["servefn"] or all(p in requirements for p in packages):
        yield Finding("ok", f"{name}: requirements.txt lists servefn[{extra}] for its {kind} model")
        return
    yield Finding(
        "fail",
        f"{name}: its model is of kind {kind!r}, which needs {', '.join(packages)} on the "
        f"server: list servefn[{extra}] in requirements.txt",
    )


def _model_location(
    name: str,
    uri: str,
    folder: Path,
    requirements: dict[str, set[str]] | None,
    ignored: list[str],
) -> Iterator[Finding]:
    if takes_connection(uri):  # Azure Storage: the server needs the Azure SDK
        extras = (requirements or {}).get("servefn", set())
        listed = requirements is not None and (
            "azure" in extras
            or "azure-storage-blob" in requirements
            or (uri.startswith("az") and "adlfs" in requirements)
        )
        if requirements is not None and "servefn" in requirements and not listed:
            yield Finding(
                "fail",
                f"{name} reads {uri}, which needs the Azure SDK on the server: list "
                "servefn[azure] in requirements.txt",
            )
        return
    path = Path(uri)
    if path.is_relative_to(folder) and _is_ignored(path.relative_to(folder).as_posix(), ignored):
        yield Finding(
            "fail",
            f"{name} reads {path.relative_to(folder)}, which .funcignore leaves out of the "
            "package: remove it from .funcignore or read the model from Blob Storage",
        )


def _answer(function: HttpFunction, schema: type[Schema]) -> Finding:
    import azure.functions as func

    if function.wants_context and not _context_optional(function):
        return Finding("warn", f"{function.name}: takes a context; its answer is not checked")
    example = example_record(schema)
    request = func.HttpRequest(
        "POST",
        f"http://localhost/{function.route}",
        headers={"content-type": "application/json"},
        body=json.dumps(example).encode(),
    )
    try:
        result = function.handler(**{function.trigger_arg: request})
        response = asyncio.run(result) if function.is_async else result
    except Exception as exc:  # user code can raise anything: report it as a finding
        return Finding("fail", f"{function.name}: the example request raised {type(exc).__name__}")
    status = getattr(response, "status_code", None)
    if status != 200:
        body = response.get_body()[:300].decode(errors="replace") if status else ""
        return Finding(
            "fail", f"{function.name}: answered the example with {status}: {redact(body)}"
        )
    return Finding("ok", f"{function.name}: answers the example {json.dumps(example)} with 200")


def _context_optional(function: HttpFunction) -> bool:
    """True when the function may be called without ``context`` (serve_http's functions)."""
    import inspect

    parameter = inspect.signature(function.handler).parameters.get("context")
    return parameter is not None and parameter.default is not inspect.Parameter.empty


def example_record(schema: type[Schema]) -> dict[str, Any]:
    """An input record that satisfies ``schema``: required columns only, values within any
    declared bounds (1 for numbers, "a" for text, a vector of ones)."""
    record: dict[str, Any] = {}
    for column in layout_of(schema).columns:
        if not column.required:
            continue
        bounds = column.constraints
        if column.kind == "vector":
            size = column.size if column.index is not None else bounds.get("min_length", 1)
            record[column.name] = [1.0] * max(1, int(size))
        elif column.kind in ("float", "int"):
            value: float = 1
            if "ge" in bounds or "gt" in bounds:
                value = max(value, bounds.get("ge", bounds.get("gt", 0) + 1))
            if "le" in bounds or "lt" in bounds:
                value = min(value, bounds.get("le", bounds.get("lt", 2) - 1))
            record[column.name] = float(value) if column.kind == "float" else int(value)
        elif column.kind == "bool":
            record[column.name] = False
        else:
            record[column.name] = "a" * max(1, int(bounds.get("min_length", 1)))
    return record
