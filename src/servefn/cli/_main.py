"""The ``servefn`` command line: parse options, build the library object, run it.

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its options and sets
``handler`` to a ``(args) -> int`` function; add it to ``_SUBCOMMANDS``. ``main`` is the one
place that turns errors into a one-line message on stderr and an exit code: 0 success,
1 runtime error (the app or its settings cannot be used), 2 usage error (bad options or path).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import NoReturn

from servefn._version import __version__
from servefn.cli._check import add_check
from servefn.cli._model import add_inspect, add_openapi, add_upload
from servefn.cli._predict import add_predict
from servefn.errors import ServefnError

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


class _UsageError(Exception):
    """A command line that argparse rejected; the message is ready for stderr."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports usage errors in one line instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def _byte_count(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of bytes")
    return int(text)


def _serve(args: argparse.Namespace) -> int:
    from servefn.devhost._host import DevHost

    logging.basicConfig(level=args.log_level.upper(), format=_LOG_FORMAT)
    DevHost(
        args.app,
        host=args.host,
        port=args.port,
        max_body_size=args.max_body_size,
        log_level=args.log_level,
        connection=args.connection,
    ).run()
    return EXIT_OK


def _add_serve(subparsers: argparse._SubParsersAction[_Parser]) -> None:
    from servefn.devhost._asgi import DEFAULT_MAX_BODY_SIZE

    parser = subparsers.add_parser(
        "serve",
        help="run a function app's HTTP functions, or a model, locally (like `func host start`)",
        description=(
            "Serve every HTTP-triggered function of a function_app.py at "
            "http://HOST:PORT/<routePrefix>/<route>, reading local.settings.json and host.json "
            "like Azure Functions Core Tools. Keys are not checked locally. Given a model "
            "(model.zip, az://..., blob://..., any loader URL) instead, serve it with no code: "
            "/api/Predict, /api/health, /api/openapi.json. Either way, /api/docs is an "
            "interactive docs page."
        ),
    )
    parser.add_argument(
        "app",
        metavar="APP_OR_MODEL",
        help="a function_app.py or the folder holding one; or a model.zip or model URL",
    )
    parser.add_argument(
        "--connection",
        metavar="NAME",
        help="for a model at blob://, az:// or abfs://: the app setting holding the storage "
        "connection (default AzureWebJobsStorage)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=_port, default=7071, help="port to listen on (7071; 0 = any free port)"
    )
    parser.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="info", help="log verbosity (info)"
    )
    parser.add_argument(
        "--max-body-size",
        type=_byte_count,
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help="largest request body accepted; larger ones get 413 (100 MB, like Azure)",
    )
    parser.set_defaults(handler=_serve)


_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction[_Parser]], None], ...] = (
    _add_serve,
    add_inspect,
    add_openapi,
    add_upload,
    add_check,
    add_predict,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``servefn`` parser with every subcommand registered."""
    parser = _Parser(prog="servefn", description="Serve a trained model from Azure Functions.")
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
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version print and exit through argparse
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ServefnError as exc:
        from servefn.errors import UsageError

        print(f"servefn {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILURE
