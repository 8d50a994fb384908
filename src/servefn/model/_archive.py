"""``model.zip``: a manifest plus payload files, written deterministically and read defensively.

::

    model.zip
      servefn.json   manifest: format, predictor kind and params, input/output schema specs,
                     training record, created, servefn version, sha256 + size of every payload
      weights.npz    numeric payload (linear predictors), read with allow_pickle=False
      model.skops    scikit-learn payload (sklearn predictor), skops' trusted types only

Reading verifies every payload's hash and size, caps the total unpacked size, refuses absolute,
``..`` or unexpected member names, and never unpickles unless the caller passes
``allow_pickle=True``. Nothing the manifest declares is trusted before it is held against the
caps of ``_limits.py``. :func:`load_model` and :func:`read_manifest` are the one boundary where
every failure to read an archive (zip, JSON, numpy or pydantic errors, an encrypted member, an
absurd size) becomes an :class:`~servefn.errors.ArtifactError` with one line naming the problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from os import PathLike, fspath
from pathlib import Path
from typing import Any

from servefn._version import __version__
from servefn.errors import ArtifactError
from servefn.model._boundary import artifact_errors, clip, one_line
from servefn.model._inputs import refuse_missing
from servefn.model._limits import MAX_MANIFEST_BYTES, check_manifest
from servefn.model._records import Predictions, Records
from servefn.predictors import LoadOptions, Predictor, predictor_class
from servefn.predictors._npz import check_zip_members
from servefn.schema import layout_of, schema_from_spec
from servefn.schema._schema import Schema

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "MAX_UNPACKED_BYTES",
    "LoadedModel",
    "load_model",
    "read_manifest",
    "write_model",
]

FORMAT = "servefn.model/1"
MANIFEST_NAME = "servefn.json"
MAX_UNPACKED_BYTES = 1 << 30
"""Default cap on a model's total unpacked size (1 GiB): larger archives are refused."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its predictor, schemas and manifest, and the archive's sha256."""

    predictor: Predictor
    input_schema: type[Schema]
    output_schema: type[Schema]
    manifest: Mapping[str, Any]
    sha256: str
    size: int
    version: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "version", self.sha256[:12])

    def predict(self, records: Sequence[Schema | Mapping[str, Any]]) -> Predictions:
        """Predict input records (of any schema with the same features, or dicts by wire name).

        Returns :class:`~servefn.model.Predictions`: a sequence of output-schema records
        that also carries the output arrays.
        """
        first = type(records[0]) if records else None
        same_features = first is not None and _same_features(first, self.input_schema)
        built = records if type(records) is Records else None  # by the HTTP layer
        if same_features and len(records) == 1:
            row = built.row if built is not None else layout_of(first).feature_row(records[0])  # type: ignore[arg-type]
            if row:  # one row of plain floats: no 1-row matrix
                return Predictions(self.output_schema, self.predictor.predict_row(row))
        reuse = built.matrix if built is not None else None
        if same_features and reuse is not None and reuse.dtype == self.predictor.dtype:
            matrix = reuse  # built (and range-checked) by the HTTP layer from these records
        elif same_features and all(type(r) is first for r in records):
            matrix = layout_of(first).to_matrix(records, self.predictor.dtype)  # type: ignore[arg-type]
        else:
            rows = [
                self.input_schema.model_validate(
                    r.model_dump(by_alias=True) if isinstance(r, Schema) else r
                )
                for r in records
            ]
            matrix = layout_of(self.input_schema).to_matrix(rows, self.predictor.dtype)
        refuse_missing(matrix, self.predictor, layout_of(self.input_schema).feature_names)
        return Predictions(self.output_schema, self.predictor.predict(matrix))


@lru_cache(maxsize=256)
def _same_features(record_type: type, schema: type[Schema]) -> bool:
    """True when records of ``record_type`` are schema records with ``schema``'s features."""
    return (
        issubclass(record_type, Schema)
        and record_type is not Schema
        and layout_of(record_type).feature_names == layout_of(schema).feature_names
    )


def write_model(
    target: str | PathLike[str] | io.BufferedIOBase,
    predictor: Predictor,
    *,
    input: type[Schema],
    output: type[Schema],
    training: Mapping[str, Any] | None = None,
    created: datetime | None = None,
    profile: Mapping[str, Any] | None = None,
) -> str:
    """Write a model archive and return its sha256 (hex).

    The archive is byte-for-byte reproducible for the same inputs and ``created`` time.
    ``profile`` is the training profile (:mod:`servefn.telemetry.profile`), stored as the
    manifest's ``profile`` when given.
    """
    _check_compatible(predictor, input, output)
    payload = predictor.to_payload()
    for name in payload.files:
        if not _SAFE_NAME.fullmatch(name) or name == MANIFEST_NAME:
            raise ArtifactError(f"payload file name {name!r} is not allowed")
    manifest = {
        "format": FORMAT,
        "kind": predictor.kind,
        "predictor": payload.params,
        "input": layout_of(input).spec(),
        "output": layout_of(output).spec(),
        "training": dict(training or {}),
        "created": (created or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "servefn_version": __version__,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in sorted(payload.files.items())
        },
    }
    if profile is not None:
        manifest["profile"] = dict(profile)
    try:
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ArtifactError(
            f"the manifest is not plain JSON ({exc}); check the training record"
        ) from exc
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise ArtifactError(
            f"the manifest would be {len(manifest_bytes)} bytes, over the cap of "
            f"{MAX_MANIFEST_BYTES}; keep the training record small"
        )
    check_manifest(manifest, {name: len(data) for name, data in payload.files.items()})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [(MANIFEST_NAME, manifest_bytes), *sorted(payload.files.items())]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            # Weights barely compress (101 vs 105 MB for float64) but inflate slowly: payloads
            # are stored, so a model loads 2-3x faster; the JSON manifest is deflated.
            stored = name != MANIFEST_NAME
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    data = buffer.getvalue()
    if isinstance(target, (str, PathLike)):
        path = Path(fspath(target))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    else:
        target.write(data)
    return hashlib.sha256(data).hexdigest()


def read_manifest(
    source: bytes | str | PathLike[str], *, max_unpacked: int = MAX_UNPACKED_BYTES
) -> dict[str, Any]:
    """The verified manifest of a model archive (payload hashes checked, nothing built)."""
    with artifact_errors():
        data = _as_bytes(source)
        manifest, _ = _open_verified(_native(data, max_unpacked), max_unpacked)
    return manifest


def load_model(
    source: bytes | str | PathLike[str],
    *,
    max_unpacked: int = MAX_UNPACKED_BYTES,
    trusted: Sequence[str] = (),
    allow_pickle: bool = False,
    sha256: str | None = None,
) -> LoadedModel:
    """Verify a model archive and rebuild its predictor and schemas.

    ``sha256`` is the archive's digest when the caller has just computed it from the same
    bytes (``ModelSource`` does): it becomes the model's version without hashing again. The
    payloads' own hashes in the manifest are always checked.

    ``trusted`` names types a scikit-learn (skops) payload may hold beyond skops' defaults; the
    error for an untrusted type lists them. ``allow_pickle=True`` loads a payload saved with
    pickle, which runs any code the file contains: only for archives from a source you trust.
    The hashes in the manifest detect damage, not a deliberate forgery, so neither opt-in is
    ever taken from the archive itself.
    """
    if isinstance(trusted, str):
        raise TypeError(f"trusted must be a list of type names, not the string {trusted!r}")
    options = LoadOptions(trusted=tuple(trusted), allow_pickle=allow_pickle)
    with artifact_errors():
        data = _as_bytes(source)
        manifest, files = _open_verified(_native(data, max_unpacked), max_unpacked)
        input_schema = schema_from_spec(manifest["input"])
        output_schema = schema_from_spec(manifest["output"])
        predictor = predictor_class(manifest["kind"]).load_payload(
            manifest.get("predictor", {}), files, options
        )
        _check_compatible(predictor, input_schema, output_schema)
    return LoadedModel(
        predictor=predictor,
        input_schema=input_schema,
        output_schema=output_schema,
        manifest=manifest,
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def _as_bytes(source: bytes | str | PathLike[str]) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        return Path(fspath(source)).read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read model file {fspath(source)!r}: {exc.strerror}") from exc


def _native(data: bytes, max_unpacked: int) -> bytes:
    """``data``, or for a foreign model servefn reads as it is (ML.NET's model.zip, recognised
    by its entries and headers, never by file name) the equivalent servefn archive, converted
    in memory: both then take the one verified path below."""
    from servefn.mlnet import is_mlnet_archive, read_mlnet

    if not is_mlnet_archive(data):
        return data
    model = read_mlnet(data, max_unpacked=max_unpacked)
    buffer = io.BytesIO()
    write_model(
        buffer,
        model.predictor,
        input=schema_from_spec(model.input),
        output=schema_from_spec(model.output),
        training=model.training,
        created=model.created,
    )
    return buffer.getvalue()


def _open_verified(data: bytes, max_unpacked: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ArtifactError(
            f"not a model archive: not a zip file ({exc}); re-save the model"
        ) from exc
    with archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        for name in names:
            if not _SAFE_NAME.fullmatch(name):
                raise ArtifactError(
                    f"model archive has an unsafe member name {name!r} (absolute, '..' or "
                    "a folder); refusing to read it"
                )
        if len(set(names)) != len(names):
            raise ArtifactError("model archive has duplicate member names; refusing to read it")
        unpacked = sum(i.file_size for i in infos)
        if unpacked > max_unpacked:
            raise ArtifactError(
                f"model archive would unpack to {unpacked} bytes, over the limit of "
                f"{max_unpacked}; pass a larger max_unpacked if the model is really that big"
            )
        if MANIFEST_NAME not in names:
            raise ArtifactError(f"model archive has no {MANIFEST_NAME}; save it with servefn.save")
        manifest = _parse_manifest(_read_member(archive, MANIFEST_NAME, MAX_MANIFEST_BYTES))
        declared: Mapping[str, Any] = manifest["files"]
        extra = sorted(set(names) - set(declared) - {MANIFEST_NAME})
        missing = sorted(set(declared) - set(names))
        if extra or missing:
            raise ArtifactError(
                f"model archive members do not match its manifest (unexpected: {extra}, "
                f"missing: {missing})"
            )
        check_zip_members(
            (i for i in infos if i.filename != MANIFEST_NAME), source="the model archive"
        )
        files: dict[str, bytes] = {}
        for name, meta in declared.items():
            # never more than the member holds: a declared size cannot make a read overflow
            limit = min(meta["size"], archive.getinfo(name).file_size)
            content = _read_member(archive, name, limit)
            digest = hashlib.sha256(content).hexdigest()
            if len(content) != meta["size"] or digest != meta["sha256"]:
                raise ArtifactError(
                    f"{name} does not match the sha256 in the manifest: the model was modified or "
                    "damaged after it was saved"
                )
            files[name] = content
    check_manifest(manifest, {name: len(content) for name, content in files.items()})
    return manifest, files


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """Read one member, never more than ``limit`` bytes whatever its header claims."""
    try:
        with archive.open(name) as fh:
            content = fh.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
        raise ArtifactError(f"{name} in the model archive is damaged ({one_line(exc)})") from exc
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or an unknown compression
        raise ArtifactError(f"{name} in the model archive cannot be read: {one_line(exc)}") from exc
    if len(content) > limit:
        raise ArtifactError(f"{name} in the model archive is larger than {limit} bytes")
    return content


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    """The manifest's JSON: no NaN or Infinity, nesting bounded by the parser's recursion."""
    try:
        manifest = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise ArtifactError(f"{MANIFEST_NAME} is nested too deeply to read") from exc
    except ValueError as exc:
        raise ArtifactError(f"{MANIFEST_NAME} is not valid JSON ({one_line(exc)})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise ArtifactError(
            f"{MANIFEST_NAME} has format {clip(found)}; this servefn reads {FORMAT!r}"
        )
    for key in ("kind", "input", "output", "files"):
        if key not in manifest:
            raise ArtifactError(f"{MANIFEST_NAME} lacks {key!r}")
    files = manifest["files"]
    if not isinstance(files, dict) or not all(
        isinstance(m, dict)
        and isinstance(m.get("sha256"), str)
        and type(m.get("size")) is int
        and m["size"] >= 0
        for m in files.values()
    ):
        raise ArtifactError(f"{MANIFEST_NAME} 'files' must map names to sha256 and size")
    return manifest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_compatible(predictor: Predictor, input: type[Schema], output: type[Schema]) -> None:
    """Refuse a model whose schemas cannot drive its predictor, when it is saved and again when
    it is loaded (the schemas then come from the manifest, the predictor from its payload)."""
    n = predictor.n_features
    if n is not None and n != layout_of(input).n_features:
        raise ArtifactError(
            f"{input.__name__} has {layout_of(input).n_features} features but the model expects {n}"
        )
    names = predictor.feature_names
    if names is not None and tuple(names) != layout_of(input).feature_names:
        raise ArtifactError(_feature_name_mismatch(input, list(names)))
    produced = set(predictor.outputs)
    wanted = [c.name for c in layout_of(output).columns if c.role != "ignore"]
    missing = [name for name in wanted if produced and name not in produced]
    if missing:
        raise ArtifactError(
            f"{output.__name__} asks for {missing}, which a {predictor.kind} model does not "
            f"produce; it produces {sorted(produced)}"
        )


def _feature_name_mismatch(input: type[Schema], expected: list[str]) -> str:
    """Name the schema's missing, unexpected and reordered features (after scikit-learn's)."""
    given = layout_of(input).feature_names
    missing = [n for n in expected if n not in given]
    unexpected = [n for n in given if n not in expected]
    problems = [
        f"{label}: {names[:5]}{' ...' if len(names) > 5 else ''}"
        for label, names in (("missing", missing), ("unexpected", unexpected))
        if names
    ]
    if not problems:
        i = next(i for i, (a, b) in enumerate(zip(given, expected, strict=True)) if a != b)
        problems = [f"reordered: feature {i} is {given[i]!r}, the model expects {expected[i]!r}"]
    return (
        f"{input.__name__}'s features do not match the names the model was fitted with "
        f"({'; '.join(problems)}); give the schema's columns those names, in that order"
    )
