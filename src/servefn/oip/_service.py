"""The Open Inference Protocol's REST handlers, framework-neutral: ``Request`` in, ``Response`` out.

:class:`InferenceService` answers health, server and model metadata, model readiness and
inference for the models of a :class:`~servefn.oip.ModelResolver`. Every failure is the
protocol's ``{"error": "..."}`` with its status: 400 a request that does not fit the protocol
or the model's schema, 404 an unknown model or version, 413 a body or batch over the limits,
415 a content encoding other than gzip or deflate, 503 a model not loaded yet (with
``Retry-After``), 500 anything else, with an id that is in the log beside the traceback (never
an exception message, which could quote a request value).
"""

from __future__ import annotations

import logging
import traceback
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic_core

from servefn._logtext import bounded
from servefn._redact import redact
from servefn.errors import FeatureValueError, ModelUnusable, ServefnError
from servefn.errors import ModelUnavailable as NotLoaded
from servefn.http._collector import LARGE_BODY, pause_collector, resume_collector
from servefn.http._endpoint import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES
from servefn.http._features import value_problem
from servefn.http._messages import JSON, Request, Response
from servefn.http._parsing import Parsed
from servefn.http._problems import Problem
from servefn.model._archive import LoadedModel
from servefn.oip._binary import HEADER_LENGTH, split_body
from servefn.oip._fastpath import FastRow, fast_row
from servefn.oip._inputs import InputPlan, input_plan, problem_error
from servefn.oip._metadata import model_metadata, server_metadata
from servefn.oip._request import read_request
from servefn.oip._resolver import ModelNotFound, ModelResolver, ModelUnavailable
from servefn.oip._response import OutputPlan, encode_response, output_plan
from servefn.oip._tensors import InferenceError, cached_on
from servefn.schema import layout_of
from servefn.schema._schema import Schema

__all__ = ["InferenceService", "error_response"]

logger = logging.getLogger("servefn.oip")
_ENCODINGS = frozenset({"gzip", "deflate"})


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The protocol's error answer: ``{"error": message}`` with ``status``."""
    body = pydantic_core.to_json({"error": redact(message)})
    return Response(status, body, JSON, headers or {})


class InferenceService:
    """The protocol's routes over the models of ``models``, within the body and batch limits
    of ``serve_http`` (10 MB and 10,000 rows by default)."""

    def __init__(
        self,
        models: ModelResolver,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.models = models
        self.max_body_bytes = max_body_bytes
        self.max_batch = max_batch

    # -- health and metadata ------------------------------------------------------------------

    def live(self, request: Request) -> Response:
        """``GET v2/health/live``: the process answers."""
        return Response(200, b'{"live":true}')

    def ready(self, request: Request) -> Response:
        """``GET v2/health/ready``: models are served (each loads on its first request)."""
        try:
            ready = bool(self.models.names())
        except Exception as exc:  # a repository that cannot be listed: not ready
            logger.warning("v2/health/ready: the models cannot be listed (%s)", type(exc).__name__)
            ready = False
        return Response(200 if ready else 503, b'{"ready":true}' if ready else b'{"ready":false}')

    def server_metadata(self, request: Request) -> Response:
        """``GET v2``."""
        return Response(200, pydantic_core.to_json(server_metadata()))

    def model_metadata(self, request: Request, name: str, version: str | None = None) -> Response:
        """``GET v2/models/{name}[/versions/{version}]``: loads the model if needed."""
        return self._answer(lambda: self._metadata(name, version), name)

    def model_ready(self, request: Request, name: str, version: str | None = None) -> Response:
        """``GET v2/models/{name}[/versions/{version}]/ready``: never loads the model."""
        return self._answer(lambda: self._ready(name, version), name)

    def infer(self, request: Request, name: str, version: str | None = None) -> Response:
        """``POST v2/models/{name}[/versions/{version}]/infer``: JSON or binary tensors."""
        paused = len(request.body) > LARGE_BODY
        if paused:
            pause_collector()
        try:
            return self._answer(lambda: self._infer(request, name, version), name)
        finally:
            if paused:
                resume_collector()

    # -- steps ----------------------------------------------------------------------------------

    def _metadata(self, name: str, version: str | None) -> Response:
        model = self.models.get(name, version)
        document = model_metadata(name, self.models.versions(name) or [model.version], model)
        return Response(
            200, pydantic_core.to_json(document), JSON, {"X-Model-Version": model.version}
        )

    def _ready(self, name: str, version: str | None) -> Response:
        known = self.models.versions(name)  # ModelNotFound for a name not served
        if version is not None and known and version not in known:
            raise ModelNotFound(f"model {name} does not serve that version")
        ready = self.models.is_ready(name, version)
        body = pydantic_core.to_json({"name": name, "ready": ready})
        return Response(200 if ready else 503, body)

    def _infer(self, request: Request, name: str, version: str | None) -> Response:
        body = request.body
        if len(body) > self.max_body_bytes or "content-encoding" in request.headers:
            body = self._body(request)
        header, binary = split_body(body, request.headers.get(HEADER_LENGTH))
        model = self.models.get(name, version)
        inputs, outputs, fast = _plans(model.input_schema, model.output_schema)
        one = fast.decode(header, binary) if fast is not None else None
        if one is not None:  # one row of plain floats, decoded in one pass
            decoded, rows = one[1], 1
            predicted = _predict(model, inputs, None, one[0])
        else:
            decoded = read_request(header, binary, max_elements=self.max_body_bytes)
            parsed = inputs.parse(decoded, max_batch=self.max_batch)
            predicted = _predict(model, inputs, parsed, parsed.row)
            rows = 1 if parsed.records is None and parsed.matrix is None else parsed.size
        tensors = outputs.tensors(predicted, rows, decoded)
        # the version asked for (a resolver's own name for it), else the model's sha256 prefix
        answered = model.version if version is None else version
        return encode_response(name, answered, model.version, decoded, tensors)

    def _body(self, request: Request) -> bytes:
        """The body within the size limit, inflated when it is sent gzip- or deflate-encoded."""
        limit = self.max_body_bytes
        if len(request.body) > limit:
            raise _too_large(limit)
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return request.body
        if encoding not in _ENCODINGS:
            raise InferenceError(
                415, "the body's Content-Encoding is not supported; send it plain, gzip or deflate"
            )
        inflater = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or a zlib header
        try:
            body = inflater.decompress(request.body, limit + 1)
        except zlib.error:
            raise InferenceError(400, f"the body is not valid {encoding} data") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
        if not inflater.eof:
            raise InferenceError(400, f"the body's {encoding} data is incomplete")
        return body

    def _answer(self, step: Callable[[], Response], name: str) -> Response:
        """``step()``, or the protocol's error answer for what it raised."""
        try:
            return step()
        except InferenceError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except ModelNotFound as exc:
            return error_response(404, str(exc))
        except ModelUnusable as exc:  # retrying cannot help: no Retry-After
            return error_response(500, f"model {name} cannot be loaded: {exc.reason}")
        except (ModelUnavailable, NotLoaded) as exc:
            retry = exc.retry_after
            headers = {} if retry is None else {"Retry-After": str(max(1, round(retry)))}
            return error_response(503, f"model {name} is not loaded yet; retry later", headers)
        except ServefnError as exc:
            if not isinstance(exc, LookupError):  # a resolver's own "not found" is a 404
                return _internal_error(exc, name)
            return error_response(404, str(exc))
        except Exception as exc:
            return _internal_error(exc, name)


Plans = tuple[InputPlan, OutputPlan, "FastRow | None"]


def _plans(input_schema: type[Schema], output_schema: type[Schema]) -> Plans:
    """What a model's schemas need, built once per pair of schema classes (kept on them)."""
    pairs: dict[type[Schema], Plans] = cached_on(input_schema, "__servefn_oip_plans__", dict)
    found = pairs.get(output_schema)
    if found is None:
        found = pairs[output_schema] = (
            input_plan(input_schema),
            output_plan(output_schema),
            fast_row(input_schema, output_schema),
        )
    return found


def _predict(
    model: LoadedModel, plan: InputPlan, parsed: Parsed | None, row: Sequence[float] | None
) -> Any:
    """The predictor's outputs for the validated rows: ``row``, one checked row, or
    ``parsed``, whose features are checked for the predictor first."""
    predictor = model.predictor
    try:
        if row is None and parsed is not None:
            plan.builder.attach(parsed, predictor)
            row = parsed.row
        if row is not None:
            return predictor.predict_row(row)
        assert parsed is not None
        matrix = plan.builder.matrix(parsed, predictor.dtype)
        if matrix.dtype != object and matrix.dtype != predictor.dtype:
            matrix = matrix.astype(predictor.dtype)
        return predictor.predict(matrix)
    except Problem as problem:
        raise problem_error(problem) from None
    except FeatureValueError as exc:  # e.g. a category the model's encoder refuses
        names = layout_of(model.input_schema).feature_names
        where = parsed if parsed is not None else Parsed("many", row=row)
        raise problem_error(value_problem(where, exc, names)) from None


def _too_large(limit: int) -> InferenceError:
    return InferenceError(
        413, f"the body is too large; the limit is {limit} bytes. Send fewer rows per request"
    )


def _internal_error(exc: Exception, name: str) -> Response:
    """A 500 whose id is in the log with the traceback; exception messages are not logged."""
    error_id = uuid.uuid4().hex[:12]
    chain: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(type(current).__name__)
        current = current.__cause__ or current.__context__
    logger.error(
        "inference failed for model %s (error id %s): %s\n%s(exception messages are not logged: "
        "they can quote request values)",
        bounded(name),
        error_id,
        " <- ".join(chain),
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    return error_response(
        500, f"the inference failed; the error id {error_id} is in the server log"
    )
