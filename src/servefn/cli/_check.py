"""``servefn check APP_DIR``: list what would break a publish, one ``ok|warn|fail`` line each.

Exit code 0 when nothing failed; otherwise :mod:`servefn.cli` prints a one-line summary on
stderr and exits 1 (2 when APP_DIR holds no function app).
"""

from __future__ import annotations

import argparse
import logging

from servefn.cli._options import EXIT_OK, Subparsers, add_trusted
from servefn.errors import ServefnError

__all__ = ["add_check"]


def _check(args: argparse.Namespace) -> int:
    from servefn.devhost._appcheck import check_app

    logging.basicConfig(level=logging.ERROR)  # the findings say it all; no retry chatter
    failed = total = 0
    for finding in check_app(args.app, trusted=args.trusted):
        print(finding, flush=True)
        total += 1
        failed += finding.level == "fail"
    if failed:
        raise ServefnError(
            f"{failed} of {total} checks failed; fix them and run servefn check again"
        )
    return EXIT_OK


def add_check(subparsers: Subparsers) -> None:
    """``servefn check APP_DIR``."""
    parser = subparsers.add_parser(
        "check",
        help="find what `func azure functionapp publish` would trip on, before publishing",
        description=(
            "Check a function app folder: host.json is valid, requirements.txt lists servefn "
            "with the extras its models need, "
            "local.settings.json would not be published, function_app.py imports and indexes "
            "under the Python worker's rules, and each serve_http function's model loads and "
            "answers an example built from its input schema. The app is imported with its "
            "local.settings.json Values, as func host start would."
        ),
    )
    parser.add_argument(
        "app", metavar="APP_DIR", help="the function app's folder (or its function_app.py)"
    )
    add_trusted(parser)
    parser.set_defaults(handler=_check)
