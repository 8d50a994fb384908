"""Load a ``function_app.py`` and index its functions the way the Functions Python worker does.

Steps, in the order ``func host start`` takes them: ``local.settings.json`` Values go into the
environment (never overriding a variable that is already set), ``host.json`` gives the HTTP route
prefix, the app's folder goes on ``sys.path`` and the file is imported (under a unique module
name, so several apps can be loaded in one process), exactly one top-level ``FunctionRegister``
(``FunctionApp``, ``AsgiFunctionApp``...) must exist, ``get_functions()`` is called once, and
every function's parameters must equal its binding names (plus an optional ``context``).
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func

from servefn.errors import AppNotFoundError, DevHostError

__all__ = [
    "APP_FILE_NAME",
    "AppNotFoundError",
    "DevHostError",
    "HttpFunction",
    "SkippedFunction",
    "apply_local_settings",
    "import_function_app",
    "index_functions",
    "read_route_prefix",
    "resolve_app_file",
]

APP_FILE_NAME = "function_app.py"
DEFAULT_ROUTE_PREFIX = "api"

logger = logging.getLogger("servefn.devhost")
_module_numbers = itertools.count(1)


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function as the host sees it, ready to be routed and called."""

    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    trigger_arg: str
    output_arg: str | None
    wants_context: bool
    is_async: bool
    handler: Callable[..., Any]

    @classmethod
    def builtin(
        cls,
        name: str,
        route: str,
        methods: tuple[str, ...],
        handler: Callable[..., Any],
        auth_level: str = "ANONYMOUS",
    ) -> HttpFunction:
        """A function the host adds itself (model routes, docs): sync, ``req``, anonymous
        unless ``auth_level`` says otherwise (what ``--auth keys`` enforces)."""
        return cls(
            name=name,
            route=route,
            methods=methods,
            auth_level=auth_level,
            trigger_arg="req",
            output_arg=None,
            wants_context=False,
            is_async=False,
            handler=handler,
        )


@dataclass(frozen=True)
class SkippedFunction:
    """A function ``servefn serve`` does not run, and why."""

    name: str
    reason: str


def resolve_app_file(path: str | os.PathLike[str]) -> Path:
    """Return the ``function_app.py`` that ``path`` names (the file itself or its folder)."""
    candidate = Path(path).expanduser().resolve()
    if candidate.is_dir():
        candidate = candidate / APP_FILE_NAME
        if not candidate.is_file():
            raise AppNotFoundError(
                f"no {APP_FILE_NAME} in {candidate.parent}; "
                f"pass a {APP_FILE_NAME} file or the folder that contains one"
            )
    elif not candidate.is_file():
        raise AppNotFoundError(
            f"{path} does not exist; pass a {APP_FILE_NAME} file or the folder that contains one"
        )
    elif candidate.suffix != ".py":
        raise AppNotFoundError(f"{path} is not a Python file; pass a {APP_FILE_NAME} file")
    return candidate


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """Parse a JSON settings file into a dict, None if absent; errors name file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DevHostError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DevHostError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix it"
        ) from exc
    if not isinstance(data, dict):
        raise DevHostError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def read_route_prefix(app_dir: Path) -> str:
    """Return host.json's ``extensions.http.routePrefix`` ("api" by default, "" = no prefix)."""
    path = app_dir / "host.json"
    host_json = _read_json_object(path) or {}
    http = host_json.get("extensions", {}).get("http", {})
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX) if isinstance(http, dict) else None
    if not isinstance(prefix, str):
        raise DevHostError(f"{path}: extensions.http.routePrefix must be a string")
    return prefix.strip("/")


def apply_local_settings(
    app_dir: Path, environ: MutableMapping[str, str] = os.environ
) -> tuple[list[str], list[str]]:
    """Copy ``local.settings.json`` Values into ``environ`` like Core Tools does.

    A variable that is already set wins (Core Tools: "Skipping ... already defined"). Numbers
    and booleans become their JSON text ("5", "true"). Returns (applied, kept) names.
    """
    path = app_dir / "local.settings.json"
    settings = _read_json_object(path)
    if settings is None:
        return [], []
    if settings.get("IsEncrypted") is True:
        raise DevHostError(
            f"{path} is encrypted (IsEncrypted: true); run `func settings decrypt` "
            "or write plain Values with IsEncrypted set to false"
        )
    values = settings.get("Values", {})
    if not isinstance(values, dict):
        raise DevHostError(f"{path}: Values must be a JSON object of name: value")
    applied, kept = [], []
    for name, value in values.items():
        if isinstance(value, (dict, list)) or value is None:
            raise DevHostError(f"{path}: Values.{name} must be a string, number or boolean")
        if name in environ:
            kept.append(name)
            continue
        environ[name] = value if isinstance(value, str) else json.dumps(value)
        applied.append(name)
    for name in kept:
        logger.warning(
            "Skipping '%s' from local settings as it's already defined in the environment.", name
        )
    return applied, kept


def _where(exc: BaseException, app_dir: Path) -> str:
    """``file, line N`` of the deepest traceback frame in the app's folder (else the deepest)."""
    frames = traceback.extract_tb(exc.__traceback__)
    in_app = [f for f in frames if Path(f.filename).resolve().is_relative_to(app_dir)]
    if not (in_app or frames):
        return "during import"
    frame = (in_app or frames)[-1]
    return f"{frame.filename}, line {frame.lineno}"


def import_function_app(app_file: Path) -> ModuleType:
    """Import ``app_file`` as the worker would: its folder on ``sys.path``, errors made precise."""
    app_dir = app_file.parent
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    name = f"_servefn_app_{next(_module_numbers)}_{app_file.stem}"
    spec = importlib.util.spec_from_file_location(name, app_file)
    if spec is None or spec.loader is None:
        raise DevHostError(f"cannot import {app_file}: not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise DevHostError(
            f"{exc.filename}, line {exc.lineno}: syntax error: {exc.msg}; fix it and start again"
        ) from exc
    except Exception as exc:  # importing user code can raise anything: report it precisely
        del sys.modules[name]
        logger.debug("Importing %s failed", app_file, exc_info=exc)
        hint = (
            "; is it installed in this Python environment (requirements.txt)?"
            if isinstance(exc, ModuleNotFoundError)
            else ""
        )
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise DevHostError(
            f"importing {app_file} failed: {type(exc).__name__}: {message} "
            f"({_where(exc, app_dir)}){hint}"
        ) from exc
    return module


def _find_function_app(module: ModuleType, app_file: Path) -> func.FunctionRegister:
    """The one top-level FunctionRegister; the worker rejects none or several."""
    names = [n for n in dir(module) if isinstance(getattr(module, n), func.FunctionRegister)]
    if not names:
        raise DevHostError(
            f"{app_file} defines no FunctionApp; add `app = func.FunctionApp()` "
            "and register functions with @app.route"
        )
    if len(names) > 1:
        raise DevHostError(
            f"{app_file} defines {len(names)} top-level function apps ({', '.join(names)}); "
            "the Functions worker needs exactly one: keep one and register the others' "
            "functions as Blueprints (app.register_functions(bp))"
        )
    app: func.FunctionRegister = getattr(module, names[0])
    return app


def _check_parameters(name: str, handler: Callable[..., Any], bindings: list[str]) -> bool:
    """Apply the worker's rule: parameters == binding names (+ optional ``context``)."""
    try:
        params = set(inspect.signature(handler).parameters)
    except (TypeError, ValueError) as exc:
        raise DevHostError(f"function {name!r}: cannot read its signature ({exc})") from exc
    bound = set(bindings)
    wants_context = "context" in params and "context" not in bound
    if wants_context:
        params.remove("context")
    if params - bound:
        raise DevHostError(
            f"function {name!r}: parameters {sorted(params - bound)} are declared in Python but "
            "not as bindings; the Functions worker refuses to load it (remove them, or read "
            "route values from req.route_params)"
        )
    if bound - params:
        raise DevHostError(
            f"function {name!r}: bindings {sorted(bound - params)} have no Python parameter; "
            "the Functions worker refuses to load it (add the parameters)"
        )
    return wants_context


def _index_one(function: func.Function) -> HttpFunction | SkippedFunction:
    """Turn one indexed ``Function`` into an HttpFunction, or say why it is skipped."""
    name = str(function.get_function_name())
    handler: Callable[..., Any] = function.get_user_function()
    bindings: list[Mapping[str, Any]] = [json.loads(raw) for raw in function.get_raw_bindings()]
    named = [str(b["name"]) for b in bindings if b.get("name") != "$return"]
    wants_context = _check_parameters(name, handler, named)
    triggers = [b for b in bindings if str(b.get("type", "")).lower().endswith("trigger")]
    if not triggers or str(triggers[0]["type"]).lower() != "httptrigger":
        kind = triggers[0]["type"] if triggers else "no trigger"
        return SkippedFunction(name, f"{kind}: servefn serve runs HTTP-triggered functions only")
    trigger = triggers[0]
    output_arg = None
    for binding in bindings:
        if binding is trigger:
            continue
        kind, direction = str(binding.get("type", "")).lower(), str(binding.get("direction"))
        if kind == "http" and direction.upper() == "OUT":
            output_arg = None if binding["name"] == "$return" else str(binding["name"])
            continue
        return SkippedFunction(
            name,
            f"{direction.lower()} binding {binding.get('name')!r} ({binding.get('type')}) "
            "cannot be provided locally by servefn serve",
        )
    return HttpFunction(
        name=name,
        route=str(trigger.get("route") or name).lstrip("/"),
        methods=tuple(str(m).upper() for m in trigger.get("methods") or ()),
        auth_level=str(trigger.get("authLevel", "FUNCTION")).upper(),
        trigger_arg=str(trigger["name"]),
        output_arg=output_arg,
        wants_context=wants_context,
        is_async=inspect.iscoroutinefunction(handler),
        handler=handler,
    )


def index_functions(
    module: ModuleType, app_file: Path
) -> tuple[list[HttpFunction], list[SkippedFunction]]:
    """Find the FunctionApp in ``module``, call ``get_functions()`` once and index every one."""
    app = _find_function_app(module, app_file)
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise DevHostError(f"{app_file}: indexing the functions failed: {exc}") from exc
    served: list[HttpFunction] = []
    skipped: list[SkippedFunction] = []
    for function in functions:
        indexed = _index_one(function)
        if isinstance(indexed, HttpFunction):
            served.append(indexed)
        else:
            skipped.append(indexed)
    return served, skipped
