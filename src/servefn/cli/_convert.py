"""``servefn convert IN.zip OUT.zip``: a foreign model (ML.NET's model.zip) as servefn's own.

servefn serves an ML.NET model.zip as it is, converting it in memory each time it loads; this
command converts it once and writes the equivalent servefn archive (manifest, schemas, numpy
payloads), which then loads through the fast path. The written archive is verified by loading
it back before the command reports success; OUT is replaced atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from servefn.cli._options import EXIT_OK, Subparsers

__all__ = ["add_convert"]


def _input_file(text: str) -> str:
    if Path(text).expanduser().is_file():
        return text
    raise argparse.ArgumentTypeError(f"{text} is not a file; pass the path of an ML.NET model.zip")


def _convert(args: argparse.Namespace) -> int:
    import io

    from servefn.errors import ArtifactError, UsageError
    from servefn.mlnet import is_mlnet_archive, read_mlnet
    from servefn.model._archive import load_model, write_model
    from servefn.schema import schema_from_spec

    source, target = Path(args.source).expanduser(), Path(args.target).expanduser()
    data = source.read_bytes()
    if not is_mlnet_archive(data):
        raise ArtifactError(
            f"{args.source} is not an ML.NET model.zip (no TransformerChain\\Model.key); "
            "servefn converts ML.NET models"
        )
    model = read_mlnet(data)
    buffer = io.BytesIO()
    sha256 = write_model(
        buffer,
        model.predictor,
        input=schema_from_spec(model.input),
        output=schema_from_spec(model.output),
        training=model.training,
        created=model.created,
    )
    converted = buffer.getvalue()
    loaded = load_model(converted, sha256=sha256)  # it must load before it is written
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_bytes(converted)
        tmp.replace(target)
    except OSError as exc:
        raise UsageError(f"cannot write {args.target}: {exc.strerror}") from exc
    print(f"converted {args.source} to {args.target} ({len(converted):,} bytes)")
    print(f"kind    {loaded.manifest['kind']}")
    print(f"sha256  {sha256}")
    return EXIT_OK


def add_convert(subparsers: Subparsers) -> None:
    """``servefn convert IN OUT``."""
    parser = subparsers.add_parser(
        "convert",
        help="convert an ML.NET model.zip to a servefn model.zip",
        description=(
            "Read an ML.NET model.zip (a TransformerChain of supported transforms and one "
            "prediction transformer) and write the equivalent servefn model.zip: manifest, "
            "input and output schemas, numpy payloads. servefn also serves the ML.NET file as "
            "it is; the converted one loads faster. Unsupported components are refused by name."
        ),
    )
    parser.add_argument("source", metavar="IN", type=_input_file, help="the ML.NET model.zip")
    parser.add_argument("target", metavar="OUT", help="the servefn model.zip to write")
    parser.set_defaults(handler=_convert)
