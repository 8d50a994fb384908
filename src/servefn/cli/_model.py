"""``servefn inspect``, ``servefn openapi`` and ``servefn upload``.

Each ``add_<name>(subparsers)`` declares one subcommand; errors are raised for
:func:`servefn.cli._main.main`, which turns a :class:`~servefn.errors.ServefnError` into one line
on stderr and exit code 1 (2 for a path or option that cannot be used). Storage settings come
from the environment, then from ``local.settings.json`` in the current folder, as for ``func``
commands; nothing printed carries a key or SAS token.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from servefn.cli._options import EXIT_OK, Subparsers
from servefn.loaders.schemes import scheme_of

__all__ = ["add_inspect", "add_openapi", "add_upload"]

_CONNECTION_HELP = (
    "for blob://, az:// and abfs:// URLs: the app setting holding the storage connection "
    "string, or the prefix of identity-based settings, as on a Functions binding "
    "(default AzureWebJobsStorage)"
)


def _model_location(text: str) -> str:
    """A URL as given, or a local file that exists (else a usage error, exit 2)."""
    if scheme_of(text) is not None or Path(text).expanduser().is_file():
        return text
    raise argparse.ArgumentTypeError(
        f"{text} is not a file; pass the path of a model.zip or a model URL (az://, blob://, ...)"
    )


def _local_model(text: str) -> str:
    if Path(text).expanduser().is_file():
        return text
    raise argparse.ArgumentTypeError(f"{text} is not a file; pass the path of a model.zip")


def _apply_current_settings() -> None:
    from servefn.devhost._indexing import apply_local_settings

    apply_local_settings(Path.cwd())


# -- inspect -------------------------------------------------------------------------------------


def _inspect(args: argparse.Namespace) -> int:
    import hashlib

    from servefn.cli._manifest_text import format_manifest
    from servefn.devhost._modelapp import model_loader
    from servefn.errors import LoaderError
    from servefn.model._archive import read_manifest

    _apply_current_settings()
    loader = model_loader(args.model, args.connection)
    fetched = loader.fetch()
    if fetched is None:  # only a loader given an etag answers "unchanged"
        raise LoaderError(f"{loader.uri} returned no content")
    manifest = read_manifest(fetched.data)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return EXIT_OK
    remote = scheme_of(args.model) not in (None, "file")
    print(
        format_manifest(
            manifest,
            location=loader.uri,
            sha256=hashlib.sha256(fetched.data).hexdigest(),
            size=len(fetched.data),
            etag=fetched.etag if remote else None,
        ),
        end="",
    )
    return EXIT_OK


def add_inspect(subparsers: Subparsers) -> None:
    """``servefn inspect MODEL [--json] [--connection NAME]``."""
    parser = subparsers.add_parser(
        "inspect",
        help="show a model's manifest: schemas, kind, training record, metrics, sha256",
        description=(
            "Print a model's manifest for a person: input and output columns, predictor kind, "
            "training record (parameters, auto-tuned values, best iteration), metrics and "
            "confusion matrix, sha256, size and, for a blob, its etag (for upload --if-match). "
            "The archive is verified (every payload's sha256) before anything is shown."
        ),
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        type=_model_location,
        help="a model.zip, or a URL: blob://container/path, az://container/path, any fsspec URL",
    )
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.add_argument("--connection", metavar="NAME", help=_CONNECTION_HELP)
    parser.set_defaults(handler=_inspect)


# -- openapi -------------------------------------------------------------------------------------


def _openapi(args: argparse.Namespace) -> int:
    from servefn.devhost._host import DevHost
    from servefn.devhost._modelapp import is_model_location, manifest_openapi

    if is_model_location(args.target):  # the manifest alone: no trusted types, no scikit-learn
        _apply_current_settings()
        document = manifest_openapi(args.target, args.connection)
    else:
        document = DevHost(args.target, connection=args.connection).openapi_document()
    sys.stdout.write(document.decode() + "\n")
    return EXIT_OK


def add_openapi(subparsers: Subparsers) -> None:
    """``servefn openapi APP_OR_MODEL [--connection NAME]``."""
    parser = subparsers.add_parser(
        "openapi",
        help="print the OpenAPI document of a function app or a model",
        description=(
            "Print the OpenAPI 3.1 document that servefn serve answers at /api/openapi.json: "
            "for a function app, built from its serve_http functions (routes from the app, "
            "route prefix from host.json); for a model, from its manifest's schemas."
        ),
    )
    parser.add_argument(
        "target",
        metavar="APP_OR_MODEL",
        help="a function_app.py or its folder, a model.zip, or a model URL",
    )
    parser.add_argument("--connection", metavar="NAME", help=_CONNECTION_HELP)
    parser.set_defaults(handler=_openapi)


# -- upload --------------------------------------------------------------------------------------


def _upload(args: argparse.Namespace) -> int:
    from servefn.loaders.upload import upload_model

    _apply_current_settings()
    result = upload_model(
        args.model,
        args.destination,
        connection=args.connection,
        overwrite=args.overwrite,
        if_match=args.if_match,
    )
    print(f"uploaded {args.model} to {result.uri} ({result.size:,} bytes)")
    print(f"etag    {result.etag}")
    print(f"sha256  {result.sha256}")
    return EXIT_OK


def add_upload(subparsers: Subparsers) -> None:
    """``servefn upload MODEL DEST [--overwrite | --if-match ETAG] [--connection NAME]``."""
    parser = subparsers.add_parser(
        "upload",
        help="upload a verified model.zip to Blob Storage (like az storage blob upload)",
        description=(
            "Verify MODEL, then upload it to DEST. An existing blob is kept unless --overwrite "
            "is given, or --if-match ETAG and the blob still has that etag (so two people never "
            "overwrite each other's model). Prints the new etag and the model's sha256."
        ),
    )
    parser.add_argument("model", metavar="MODEL", type=_local_model, help="the model.zip to upload")
    parser.add_argument(
        "destination",
        metavar="DEST",
        help=(
            "container/path or blob://container/path (azure-storage-blob), or "
            "az://container/path / abfs://container/path (adlfs)"
        ),
    )
    replace = parser.add_mutually_exclusive_group()
    replace.add_argument("--overwrite", action="store_true", help="replace the blob if it exists")
    replace.add_argument(
        "--if-match",
        metavar="ETAG",
        help="replace the blob only if its etag is still ETAG ('servefn inspect DEST' shows it)",
    )
    parser.add_argument("--connection", metavar="NAME", help=_CONNECTION_HELP)
    parser.set_defaults(handler=_upload)
