"""Route templates as the Functions host reads them, for ``servefn serve``.

The host routes HTTP triggers with ASP.NET Core templates: ``items/{id:int}``, optional
``{name?}``, defaults ``{name=x}``, catch-all ``{*rest}``, several parameters in one segment
(``{a}.{b}``), ``{{``/``}}`` for literal braces. Literals match case-insensitively, a trailing
slash is ignored, and when several templates match a path the one with the higher ASP.NET
precedence wins (literal > constrained parameter > parameter > complex segment > catch-all).

Constraints: ``int long bool guid float double decimal datetime alpha required minlength(n)
maxlength(n) length(n) length(min,max) min(n) max(n) range(min,max) regex(expr)``. An unknown
constraint is an error at startup, as it is for the host; ``regex`` uses Python's ``re``
(case-insensitive, unanchored like .NET's ``Regex.IsMatch``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["CompiledRoute", "RouteMatch", "RouteTable", "RouteTemplateError", "compile_route"]

T = TypeVar("T")

_INT = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ALPHA = re.compile(r"[A-Za-z]+")
_GUID = re.compile(
    r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
    r"|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)",
    re.IGNORECASE,
)
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONSTRAINT = re.compile(r":([A-Za-z]+)")

Check = Callable[[str], bool]


class RouteTemplateError(ValueError):
    """A route template cannot be parsed or uses an unknown constraint."""


def _integer_in(bits: int) -> Check:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return lambda value: _INT.fullmatch(value) is not None and low <= int(value) <= high


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _int_args(name: str, args: str | None, count: tuple[int, ...]) -> list[int]:
    parts = [] if args is None else [part.strip() for part in args.split(",")]
    if len(parts) not in count or not all(_INT.fullmatch(part) for part in parts):
        counts = " or ".join(map(str, count))
        plural = "s" if max(count) > 1 else ""
        raise RouteTemplateError(f"constraint {name!r} takes {counts} integer argument{plural}")
    return [int(part) for part in parts]


def _as_long(value: str) -> int | None:
    return int(value) if _INT.fullmatch(value) else None


def _in_range(low: int | None, high: int | None) -> Check:
    def check(value: str) -> bool:
        number = _as_long(value)
        return (
            number is not None
            and (low is None or number >= low)
            and (high is None or number <= high)
        )

    return check


def _constraint(name: str, args: str | None) -> Check:
    """Return the check for one ``name(args)`` constraint, or raise for an unknown one."""
    simple: dict[str, Check] = {
        "int": _integer_in(32),
        "long": _integer_in(64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "guid": lambda v: _GUID.fullmatch(v) is not None,
        "float": lambda v: _FLOAT.fullmatch(v) is not None,
        "double": lambda v: _FLOAT.fullmatch(v) is not None,
        "decimal": lambda v: _DECIMAL.fullmatch(v) is not None,
        "datetime": _is_datetime,
        "alpha": lambda v: _ALPHA.fullmatch(v) is not None,
        "required": bool,
    }
    key = name.lower()
    if key in simple:
        if args is not None:
            raise RouteTemplateError(f"constraint {name!r} takes no arguments")
        return simple[key]
    if key == "regex":
        try:
            pattern = re.compile(args or "", re.IGNORECASE)
        except re.error as exc:
            raise RouteTemplateError(f"regex constraint is not a valid expression: {exc}") from exc
        return lambda v: pattern.search(v) is not None
    if key in ("minlength", "maxlength"):
        (limit,) = _int_args(name, args, (1,))
        return (lambda v: len(v) >= limit) if key == "minlength" else (lambda v: len(v) <= limit)
    if key == "length":
        bounds = _int_args(name, args, (1, 2))
        low, high = bounds[0], bounds[-1]
        return lambda v: low <= len(v) <= high
    if key in ("min", "max"):
        (limit,) = _int_args(name, args, (1,))
        return _in_range(limit, None) if key == "min" else _in_range(None, limit)
    if key == "range":
        low, high = _int_args(name, args, (2,))
        return _in_range(low, high)
    known = "int long bool guid float double decimal datetime alpha required minlength maxlength"
    raise RouteTemplateError(
        f"unknown route constraint {name!r}; use one of: {known} length min max range regex"
    )


@dataclass(frozen=True)
class _Parameter:
    """One ``{...}`` part of a template."""

    name: str
    checks: tuple[Check, ...]
    optional: bool
    default: str | None
    catch_all: bool


_Part = str | _Parameter


def _parse_parameter(body: str) -> _Parameter:
    """Parse ``[*]name[:constraint[(args)]]...[?|=default]``."""
    text = body.lstrip("*")
    catch_all = text != body
    name_match = _PARAMETER_NAME.match(text)
    if name_match is None:
        raise RouteTemplateError(f"parameter {{{body}}} has no valid name")
    rest = text[name_match.end() :]
    checks: list[Check] = []
    while constraint := _CONSTRAINT.match(rest):
        rest = rest[constraint.end() :]
        args = None
        if rest.startswith("("):
            end = next(
                (i for i in range(1, len(rest)) if rest[i] == ")" and rest[i + 1 : i + 2] in ":=?"),
                -1,
            )
            if end < 0:
                raise RouteTemplateError(f"parameter {{{body}}}: unclosed '(' in a constraint")
            args, rest = rest[1:end], rest[end + 1 :]
        checks.append(_constraint(constraint.group(1), args))
    optional, default = rest == "?", None
    if rest.startswith("="):
        default = rest[1:]
    elif rest not in ("", "?"):
        raise RouteTemplateError(f"parameter {{{body}}} has unexpected text {rest!r}")
    return _Parameter(name_match.group(), tuple(checks), optional, default, catch_all)


def _parse_segment(segment: str) -> list[_Part]:
    """Split one path segment into literal text and parameters (``{{``/``}}`` are literal)."""
    parts: list[_Part] = []
    literal, body, in_parameter, i = "", "", False, 0
    while i < len(segment):
        char, pair = segment[i], segment[i : i + 2]
        if pair in ("{{", "}}"):
            if in_parameter:
                body += char
            else:
                literal += char
            i += 2
            continue
        if char == "{" and not in_parameter:
            if literal:
                parts.append(literal)
            literal, body, in_parameter = "", "", True
        elif char == "}" and in_parameter:
            parts.append(_parse_parameter(body))
            in_parameter = False
        elif char in "{}":
            raise RouteTemplateError(f"unbalanced {char!r} in segment {segment!r}")
        elif in_parameter:
            body += char
        else:
            literal += char
        i += 1
    if in_parameter:
        raise RouteTemplateError(f"unclosed '{{' in segment {segment!r}")
    if literal:
        parts.append(literal)
    return parts


def _precedence(parts: list[_Part]) -> int:
    """ASP.NET inbound precedence digit of one segment (lower wins)."""
    if len(parts) > 1:
        return 4
    part = parts[0]
    if isinstance(part, str):
        return 1
    return (5 if part.catch_all else 3) - (1 if part.checks else 0)


@dataclass(frozen=True)
class CompiledRoute:
    """A parsed template: a regex for the path plus the parameters' checks and defaults."""

    template: str
    pattern: re.Pattern[str]
    parameters: tuple[_Parameter, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Return the route parameters if ``path`` matches, else None."""
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, parameter in enumerate(self.parameters):
            value = found.group(f"p{index}")
            if value is None or (value == "" and parameter.catch_all):
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            if not all(check(value) for check in parameter.checks):
                return None
            values[parameter.name] = value
        return values


def _segment_regex(parts: list[_Part], group_of: Callable[[_Parameter], str]) -> str:
    """Regex for one segment. Greedy groups make ``{name}.{ext}`` split at the last dot, as
    ASP.NET's right-to-left matching of complex segments does."""
    regex = ""
    for part in parts:
        if isinstance(part, str):
            regex += re.escape(part)
        elif len(parts) > 1 and (part.optional or part.default is not None):
            raise RouteTemplateError(f"{{{part.name}}}: optional parameters must fill a segment")
        else:
            regex += f"(?P<{group_of(part)}>{'.*' if part.catch_all else '[^/]+'})"
    return regex


def compile_route(template: str) -> CompiledRoute:
    """Compile a route template (already joined with the route prefix) into a matcher."""
    trimmed = template.strip().lstrip("~").strip("/")
    segments = trimmed.split("/") if trimmed else []
    parameters: list[_Parameter] = []

    def group_of(parameter: _Parameter) -> str:
        if any(p.name.lower() == parameter.name.lower() for p in parameters):
            raise RouteTemplateError(f"route {template!r} uses {{{parameter.name}}} twice")
        parameters.append(parameter)
        return f"p{len(parameters) - 1}"

    regex, precedence, optional_seen = "", [], False
    for position, segment in enumerate(segments):
        if not segment:
            raise RouteTemplateError(f"route {template!r} has an empty segment ('//')")
        parts = _parse_segment(segment)
        precedence.append(_precedence(parts))
        lone = parts[0] if len(parts) == 1 and isinstance(parts[0], _Parameter) else None
        if any(isinstance(p, _Parameter) and p.catch_all for p in parts) and (
            lone is None or position != len(segments) - 1
        ):
            raise RouteTemplateError(f"route {template!r}: a catch-all must be the last segment")
        optional = lone is not None and (
            lone.optional or lone.default is not None or lone.catch_all
        )
        if optional_seen and not optional:
            raise RouteTemplateError(f"route {template!r}: only trailing segments can be optional")
        optional_seen = optional_seen or optional
        body = _segment_regex(parts, group_of)
        regex += f"(?:/{body})?" if optional else f"/{body}"
    pattern = re.compile(regex + "/?", re.IGNORECASE)
    return CompiledRoute(template, pattern, tuple(parameters), tuple(precedence))


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    """The outcome of routing a request: a target, or the methods the path allows (405)."""

    target: T | None
    route_params: Mapping[str, str]
    allowed_methods: tuple[str, ...]


class RouteTable(Generic[T]):
    """Compiled routes with their methods, matched in ASP.NET precedence order."""

    def __init__(self, entries: Iterable[tuple[CompiledRoute, Iterable[str], T]]) -> None:
        routes = [
            (route, frozenset(m.upper() for m in methods), t) for route, methods, t in entries
        ]
        routes.sort(key=lambda entry: (entry[0].precedence, entry[0].template.lower()))
        self._routes = routes
        self._literal = _literal_index(routes)

    def targets(self) -> list[T]:
        """Every route's target, in matching order."""
        return [target for _, _, target in self._routes]

    def match(self, method: str, path: str) -> RouteMatch[T] | None:
        """Route ``method path``: a match, a 405 (no target, allowed methods) or None (404).

        An empty method set means every method is accepted.
        """
        for methods, target in self._literal.get(_literal_key(path), ()):
            if not methods or method.upper() in methods:
                return RouteMatch(target, {}, ())
        allowed: set[str] = set()
        for route, methods, target in self._routes:
            params = route.match(path)
            if params is None:
                continue
            if not methods or method.upper() in methods:
                return RouteMatch(target, params, ())
            allowed |= methods
        if allowed:
            return RouteMatch(None, {}, tuple(sorted(allowed)))
        return None


def _literal_key(path: str) -> str:
    """A path as parameterless routes match it: any case, one optional '/' at the end."""
    return (path[:-1] if path.endswith("/") else path).lower()


def _literal_index(
    routes: list[tuple[CompiledRoute, frozenset[str], T]],
) -> dict[str, list[tuple[frozenset[str], T]]]:
    """Routes without parameters by the one path they match, for a lookup before the scan.

    A path is indexed only when no route earlier in matching order (a parameter route with
    better precedence) matches it too, so the lookup finds what the scan would find first.
    """
    index: dict[str, list[tuple[frozenset[str], T]]] = {}
    shadowed: set[str] = set()
    for position, (route, methods, target) in enumerate(routes):
        if route.parameters:
            continue
        trimmed = route.template.strip().lstrip("~").strip("/")
        key = _literal_key("/" + trimmed if trimmed else "")
        earlier = routes[:position]
        if any(r.parameters and r.match(key) is not None for r, _, _ in earlier):
            shadowed.add(key)
        index.setdefault(key, []).append((methods, target))
    return {key: entries for key, entries in index.items() if key not in shadowed}
