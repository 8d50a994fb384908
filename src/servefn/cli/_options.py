"""What every ``servefn`` subcommand shares: exit codes, the parser class, option types.

Subcommand modules import from here and never from :mod:`servefn.cli._main`, which imports
them; that keeps the command line free of import cycles. Importing this module is cheap.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn, TypeAlias

from servefn.errors import ServefnError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOG_LEVELS",
    "CommandLineError",
    "Hints",
    "Parser",
    "Subparsers",
    "add_trusted",
    "positive_int",
]

EXIT_OK = 0
"""The command did what it was asked (also ``--help`` and ``--version``)."""
EXIT_FAILURE = 1
"""The command ran but failed: the app, model, data, storage or settings cannot be used."""
EXIT_USAGE = 2
"""The command line is wrong: an unknown option, a bad value, a path that names nothing."""

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

Hints: TypeAlias = dict[type[ServefnError], str]
"""Per subcommand, ``parser.set_defaults(hints=...)``: advice appended to an error's message."""


class CommandLineError(Exception):
    """A command line that argparse rejected; the message is ready for stderr."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`CommandLineError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"
"""What each ``add_<command>(subparsers)`` function receives."""


def positive_int(what: str) -> Callable[[str], int]:
    """An option type accepting a whole number above 0; ``what`` names it in the error."""

    def parse(text: str) -> int:
        if not text.isdigit() or int(text) == 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {what}")
        return int(text)

    return parse


def add_trusted(parser: argparse.ArgumentParser) -> None:
    """``--trusted TYPE`` (repeatable): extra types a scikit-learn (skops) model may hold."""
    parser.add_argument(
        "--trusted",
        action="append",
        default=[],
        metavar="TYPE",
        help="a type a scikit-learn (skops) model may hold beyond skops' defaults, e.g. "
        "sklearn.tree._tree.Tree (repeatable; 'servefn inspect MODEL' lists them); added to "
        "the app setting SERVEFN_TRUSTED (comma-separated). Name only types you expect from "
        "a model you trust",
    )
