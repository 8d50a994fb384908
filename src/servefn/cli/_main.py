"""The ``servefn`` command line: parse options, run the subcommand, map its errors.

Each subcommand lives in its own module as one ``add_<name>(subparsers)`` function that
declares its options and sets ``handler`` to an ``(args) -> int`` function; add it to
``_SUBCOMMANDS``. A handler returns ``EXIT_OK`` or raises; it never prints an error or picks a
failing exit code. ``main`` is the one place that turns an error into one line on stderr and an
exit code::

    error                                            exit  stderr
    -----------------------------------------------  ----  ----------------------------------------
    none; also --help and --version                    0   nothing (usage on stdout)
    a command line that argparse rejects               2   PROG: error: MESSAGE (see 'PROG --help')
    UsageError (AppNotFoundError, BatchUsageError)     2   servefn CMD: error: MESSAGE
    any other ServefnError                             1   servefn CMD: error: MESSAGE
    ImportError (an optional package is missing)       1   servefn CMD: error: MESSAGE (names the
                                                           pip extra to install)
    anything else (a bug in servefn)                   -   the traceback

A subcommand may add advice to an error with ``parser.set_defaults(hints={ErrorClass: text})``;
``main`` then prints ``MESSAGE (text)``. A message never spans lines.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from servefn._redact import redact
from servefn._version import __version__
from servefn.cli._check import add_check
from servefn.cli._convert import add_convert
from servefn.cli._model import add_inspect, add_openapi, add_upload
from servefn.cli._options import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandLineError,
    Hints,
    Parser,
    Subparsers,
)
from servefn.cli._predict import add_predict
from servefn.cli._serve import add_serve
from servefn.errors import ServefnError, UsageError

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_serve,
    add_inspect,
    add_openapi,
    add_upload,
    add_check,
    add_predict,
    add_convert,
)

_EXIT_CODES: tuple[tuple[type[Exception], int], ...] = (
    (UsageError, EXIT_USAGE),
    (ServefnError, EXIT_FAILURE),
    (ImportError, EXIT_FAILURE),
)
"""The table in this module's docstring, first match wins."""
_MAPPED = tuple(error for error, _ in _EXIT_CODES)


def build_parser() -> argparse.ArgumentParser:
    """The ``servefn`` parser with every subcommand registered."""
    parser = Parser(prog="servefn", description="Serve a trained model from Azure Functions.")
    parser.add_argument("--version", action="version", version=f"servefn {__version__}")
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``servefn`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except CommandLineError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except SystemExit as exc:  # --help and --version print and exit through argparse
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except _MAPPED as exc:
        hints: Hints = getattr(args, "hints", {})
        return _fail(_message(f"servefn {args.command}", exc, hints), _exit_code(exc))


def _exit_code(exc: Exception) -> int:
    return next(code for error, code in _EXIT_CODES if isinstance(exc, error))


def _message(prog: str, exc: Exception, hints: Hints) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = text or type(exc).__name__
    hint = next((hint for error, hint in hints.items() if isinstance(exc, error)), None)
    return f"{prog}: error: {text}" + (f" ({hint})" if hint else "")


def _fail(message: str, code: int) -> int:
    print(redact(message), file=sys.stderr)
    return code
