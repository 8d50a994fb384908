"""One check of a model's storage, and what follows it: the disk cache, the sha256 pin, the parse.

:class:`~servefn.loaders.ModelSource` decides when a check runs and who waits for it; an
:class:`ArtifactCheck` does it. It asks the loader whether the artifact changed (one conditional
request), serves the disk cache's verified copy when storage is unreachable at start-up, refuses
an artifact that is not the pinned sha256, does not parse, or (a servefn model) fails its
end-to-end check (:func:`servefn.model._probe.probe`), and returns the model to serve next with
the :class:`Failure` to report. It never raises: a failure leaves the last good model in place.

The one rule for permanent and transient failures lives here. Storage that could not give the
artifact (unreachable, timed out, missing, access denied: the loader raised) is *transient*: the
same check may succeed in a moment. An artifact that was read and refused (not the pinned
sha256, a corrupt or unsafe archive, an unknown kind, a missing package, untrusted types, a
model that cannot predict, anything the parser raised) is *permanent*: the same bytes will be
refused again, so its etag is remembered, it is not downloaded again, and only a new etag is
tried. An artifact over the download cap is permanent too (storage told its size; only a new
upload or a higher cap changes that), though each check asks storage for that size again.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from os import PathLike
from typing import Any, Generic, TypeVar

from servefn.errors import ArtifactError, LoaderError, PredictorError, SchemaError
from servefn.loaders.base import ArtifactTooLarge, ModelLoader, describe_error, redact
from servefn.loaders.cache import CachedArtifact, DiskCache

__all__ = ["ArtifactCheck", "CurrentModel", "Failure", "SourceStats"]

logger = logging.getLogger("servefn.loaders")

T = TypeVar("T")


@dataclass
class SourceStats:
    """What a :class:`~servefn.loaders.ModelSource` has done so far (for tests, benchmarks and
    health)."""

    checks: int = 0
    """Calls to the loader: each one a storage round trip."""
    downloads: int = 0
    """Checks that returned the artifact's bytes."""
    loads: int = 0
    """Artifacts parsed into a model."""
    cache_hits: int = 0
    """Models taken from the disk cache instead of a download."""
    failures: int = 0
    """Checks that failed, and artifacts refused (corrupt, or not the pinned sha256)."""


@dataclass(frozen=True)
class CurrentModel(Generic[T]):
    """The model being served and the artifact it was parsed from."""

    model: T
    etag: str
    sha256: str
    size: int
    loaded_at: float
    """Wall-clock time of the parse."""
    origin: str
    """Where the bytes came from: ``"storage"``, or the disk cache and why."""


@dataclass(frozen=True)
class Failure:
    """Why a check gave no new model: one line each, redacted."""

    message: str
    """What to log and show as ``last_error`` (names the refused etag)."""
    permanent: bool
    """True when the artifact itself was refused: retrying it cannot help (see the module)."""
    reason: str
    """What is wrong, without the etag: ``"ArtifactError: ..."``, ``"LoaderError: ..."``."""
    cause: str
    """Category: ``storage`` (transient); ``too-large``, ``pin``, ``missing-package``,
    ``untrusted-types``, ``predictor``, ``schema``, ``check``, ``artifact`` or ``parse``
    (permanent)."""


class ArtifactCheck(Generic[T]):
    """Checks ``loader`` for a new artifact and parses it with ``parse``.

    ``sha256`` pins the one artifact accepted; ``cache_dir`` keeps a verified copy, keyed by the
    loader's ``cache_key`` when it has one (the Azure loaders: account URL and path), else
    ``uri``. Counters go to ``stats``, shared with the owning source.
    """

    def __init__(
        self,
        loader: ModelLoader,
        uri: str,
        parse: Callable[..., Any],
        *,
        sha256: str | None,
        cache_dir: str | PathLike[str] | None,
        stats: SourceStats,
    ) -> None:
        self.loader = loader
        self.uri = uri
        self._parse = parse
        self._pin = sha256
        self._cache_dir = cache_dir
        self._cache: DiskCache | None = None
        self._rejected: tuple[str, Failure] | None = None  # etag in storage we refused, and why
        self._stats = stats

    def run(self, current: CurrentModel[T] | None) -> tuple[CurrentModel[T] | None, Failure | None]:
        """One round trip to storage: the model to serve next, and the failure to report."""
        started = time.perf_counter()
        cache = self._disk_cache()
        cached = cache.read() if cache is not None and current is None else None
        if cached is not None:
            etag: str | None = cached.etag
        elif self._rejected is not None:
            etag = self._rejected[0]
        else:
            etag = current.etag if current else None
        self._stats.checks += 1
        try:
            fetched = self.loader.fetch(etag)
        except Exception as exc:  # any loader failure must leave the last good model in place
            error = redact(str(exc) if isinstance(exc, LoaderError) else describe_error(exc))
            if cached is not None:  # serve the local copy; the storage error is what to report
                accepted = self._accept(cached, current, started, "disk cache, storage unreachable")
                current = current if isinstance(accepted, Failure) else accepted
            if isinstance(exc, ArtifactTooLarge):  # storage answered: these bytes stay too large
                return current, Failure(error, True, error, "too-large")
            return current, Failure(error, False, error, "storage")
        if fetched is None and cached is not None:
            accepted = self._accept(cached, current, started, "disk cache, confirmed by storage")
        elif fetched is None and self._rejected is not None:
            accepted = self._rejected[1]
        elif fetched is None:
            logger.debug("model %s unchanged, checked in %.3fs", self.uri, _since(started))
            return current, None
        else:
            self._stats.downloads += 1
            artifact = CachedArtifact(fetched.etag, fetched.data, _sha256(fetched.data))
            accepted = self._accept(artifact, current, started, "storage")
            if not isinstance(accepted, Failure) and cache is not None:
                cache.write(artifact.etag, artifact.data, artifact.sha256)
        if isinstance(accepted, Failure):
            return current, accepted
        return accepted, None

    def _accept(
        self,
        artifact: CachedArtifact,
        previous: CurrentModel[T] | None,
        started: float,
        origin: str,
    ) -> CurrentModel[T] | Failure:
        """The verified, parsed and probed ``artifact``, or why it was refused."""
        if self._pin is not None and artifact.sha256 != self._pin:
            reason = f"sha256 {artifact.sha256} is not the pinned {self._pin}"
            return self._refuse(artifact, origin, reason, "pin")
        if previous is not None and previous.sha256 == artifact.sha256:
            current = replace(previous, etag=artifact.etag)
        else:
            try:
                parse = self._parse
                model = (
                    parse(artifact.data, sha256=artifact.sha256)
                    if getattr(parse, "accepts_sha256", False)
                    else parse(artifact.data)
                )
            except Exception as exc:  # parse is user code: any exception means a bad artifact
                cause = _cause(exc)  # the advice on trusted types comes last: keep it whole
                limit = 1000 if cause == "untrusted-types" else 300
                return self._refuse(artifact, origin, describe_error(exc, limit), cause)
            try:
                _probe(model)
            except Exception as exc:  # an ArtifactError, or a bug in servefn's own check
                return self._refuse(artifact, origin, describe_error(exc), "check")
            current = CurrentModel(
                model, artifact.etag, artifact.sha256, len(artifact.data), time.time(), origin
            )
            self._stats.loads += 1
        if origin != "storage":
            self._stats.cache_hits += 1
        self._rejected = None
        logger.info(
            "model %s version %s loaded in %.3fs (%s, from %s; etag %s, %d bytes)",
            self.uri,
            artifact.sha256[:12],
            _since(started),
            "cold" if previous is None else f"replaces {previous.sha256[:12]}",
            origin,
            artifact.etag,
            len(artifact.data),
        )
        return current

    def _refuse(self, artifact: CachedArtifact, origin: str, reason: str, cause: str) -> Failure:
        """A permanent failure, remembered by etag so the same bytes are not fetched again."""
        if self._cache is not None and origin != "storage":
            self._cache.discard()
        reason = redact(reason)
        message = redact(f"artifact with etag {artifact.etag} refused: {reason}")
        failure = Failure(message, True, reason, cause)
        self._rejected = (artifact.etag, failure)
        return failure

    def _disk_cache(self) -> DiskCache | None:
        """The disk cache entry, keyed by the loader's ``cache_key`` if it has one, else its URI."""
        if self._cache is None and self._cache_dir is not None:
            try:
                key = str(getattr(self.loader, "cache_key", self.uri))
            except Exception as exc:  # the key needs the loader's settings; the fetch will say why
                logger.debug("model %s: no disk cache yet: %s", self.uri, describe_error(exc))
                return None
            cap = getattr(self.loader, "max_bytes", None)  # the loader's download cap
            self._cache = DiskCache(self._cache_dir, redact(key), max_bytes=cap)
        return self._cache


def _probe(model: object) -> None:
    """The end-to-end check of a servefn model; what a custom parser returns is taken as it is.

    A :class:`~servefn.model.LoadedModel` exists only once its module is imported, so a source
    whose parser returns something else never imports the model layer here.
    """
    archive = sys.modules.get("servefn.model._archive")
    if archive is not None and isinstance(model, archive.LoadedModel):
        from servefn.model._probe import probe

        probe(model)


def _cause(exc: BaseException) -> str:
    """The category of a parse failure, from the exception and what it was raised from."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, ImportError) for e in chain):
        return "missing-package"
    untrusted = any(type(e).__name__ == "UntrustedTypesFoundException" for e in chain)
    if untrusted or "allow_pickle=True" in str(exc):
        return "untrusted-types"
    for kind, cause in ((PredictorError, "predictor"), (SchemaError, "schema")):
        if any(isinstance(e, kind) for e in chain):
            return cause
    return "artifact" if isinstance(exc, ArtifactError) else "parse"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _since(started: float) -> float:
    return time.perf_counter() - started
