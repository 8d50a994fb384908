"""``servefn serve``: run a function app, or a model, locally (like ``func host start``).

The options build a :class:`~servefn.devhost.DevHost`, which does the work and is usable from
Python with the same arguments; uvicorn is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import logging

from servefn.cli._options import EXIT_OK, LOG_LEVELS, Subparsers, add_trusted, positive_int

__all__ = ["add_serve"]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def _serve(args: argparse.Namespace) -> int:
    from servefn.devhost._accesslog import LOG_FORMAT
    from servefn.devhost._host import DevHost

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    DevHost(
        args.app,
        host=args.host,
        port=args.port,
        max_body_size=args.max_body_size,
        log_level=args.log_level,
        connection=args.connection,
        trusted=args.trusted,
        auth=args.auth,
        memory_budget=args.memory_budget,
        max_models=args.max_models,
        access_log=args.access_log,
        telemetry=args.telemetry,
        metrics=args.metrics,
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
            "like Azure Functions Core Tools. Keys are not checked unless --auth keys. Given a "
            "model (model.zip, az://..., blob://..., any loader URL) instead, serve it with no "
            "code: /api/Predict, /api/health, /api/openapi.json, and /api/docs, an interactive "
            "docs page. Given a repository (a folder of NAME/model.zip without a "
            "function_app.py, or a URL ending in /, such as blob://models/), serve each of its "
            "models at /api/models/NAME, loaded on first use, with /api/health."
        ),
    )
    parser.add_argument(
        "app",
        metavar="APP_OR_MODEL",
        help="a function_app.py or the folder holding one; a model.zip or model URL; or a "
        "model repository (folder, or URL ending in /)",
    )
    parser.add_argument(
        "--connection",
        metavar="NAME",
        help="for a model or repository at blob://, az:// or abfs://: the app setting holding "
        "the storage "
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
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a line per invocation, \"Executed 'Functions.NAME' (Succeeded, Id=..., "
        'Duration=...)", as the Functions host writes (on; shown at --log-level info or '
        "debug); failures are logged either way",
    )
    parser.add_argument(
        "--max-body-size",
        type=positive_int("number of bytes"),
        default=DEFAULT_MAX_BODY_SIZE,
        metavar="BYTES",
        help="largest request body accepted; larger ones get 413 (100 MB, like Azure)",
    )
    add_trusted(parser)
    parser.add_argument(
        "--auth",
        choices=("none", "keys"),
        default="none",
        help="none (default): keys are not checked, as by func host start; keys: each "
        "function's authLevel is enforced, with the keys of the app setting SERVEFN_KEYS "
        "(comma-separated) sent as x-functions-key or ?code=; 401 without one",
    )
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="for a repository: memory for the models kept loaded, e.g. 512MiB or 2GB "
        "(default: the app setting SERVEFN_MEMORY_BUDGET, else 512MiB)",
    )
    parser.add_argument(
        "--max-models",
        type=positive_int("number of models"),
        metavar="N",
        help="for a repository: models kept loaded at most (100)",
    )
    parser.add_argument(
        "--telemetry",
        choices=("console", "off"),
        help="console: print spans and metrics (OpenTelemetry; needs servefn[observability]); "
        "off: export nothing. Default: as the app settings say "
        "(APPLICATIONINSIGHTS_CONNECTION_STRING, OTEL_EXPORTER_OTLP_ENDPOINT, SERVEFN_TELEMETRY)",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="serve servefn's metrics as Prometheus text at GET /metrics",
    )
    parser.set_defaults(handler=_serve)
