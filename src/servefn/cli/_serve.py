"""``servefn serve``: run a function app, or a model, locally (like ``func host start``).

The options build a :class:`~servefn.devhost.DevHost`, which does the work and is usable from
Python with the same arguments; uvicorn is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging

from servefn.cli._options import EXIT_OK, LOG_LEVELS, Subparsers, add_trusted, positive_int

__all__ = ["add_serve"]

_LOG_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


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
        trusted=args.trusted,
    ).run()
    return EXIT_OK


def add_serve(subparsers: Subparsers) -> None:
    """``servefn serve APP_OR_MODEL [--host H] [--port P] [--connection NAME] ...``."""
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
        "--log-level", choices=LOG_LEVELS, default="info", help="log verbosity (info)"
    )
    parser.add_argument(
        "--max-body-size",
        type=positive_int("number of bytes"),
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help="largest request body accepted; larger ones get 413 (100 MB, like Azure)",
    )
    add_trusted(parser)
    parser.set_defaults(handler=_serve)
