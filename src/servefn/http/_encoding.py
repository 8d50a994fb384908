"""Predictions -> the response body: outputs normalised, ``Accept`` negotiated, JSON encoded.

The contract's output half (DESIGN.md "HTTP contract"): one object answers one object, an array
an array, ``{"instances": [...]}`` gets ``{"predictions": [...]}``, and ``Accept: text/plain``
gets the first output column's bare values, one per line. Whatever a predictor or a handler
returned (output arrays, ``Predictions``, records, dicts) is checked here: a wrong count or a
NaN/infinite value is a model failure (500), never invalid JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pydantic_core

from servefn.errors import ServefnError
from servefn.http._messages import JSON, Request, Response, media_type
from servefn.http._parsing import Parsed
from servefn.model._records import Predictions
from servefn.schema import layout_of
from servefn.schema._schema import Schema

__all__ = ["OutputEncoder"]

_SCALARS = (str, bytes, int, float, np.generic)


class OutputEncoder:
    """Encodes outputs of ``output_schema`` in the shape the request was sent in."""

    def __init__(self, output_schema: type[Schema]) -> None:
        self.output_schema = output_schema
        self._layout = layout_of(output_schema)
        self._first_name = self._layout.output_names[0]
        self._columns = self._layout.columns

    def encode(self, outputs: Any, parsed: Parsed, request: Request, version: str) -> Response:
        """The 200 answer to ``request`` (rows ``parsed`` from it), with ``X-Model-Version``."""
        rows = self.rows(outputs)
        expected = parsed.size
        if len(rows) != expected:
            raise ServefnError(f"the handler returned {len(rows)} outputs for {expected} inputs")
        headers = {"X-Model-Version": version}
        accept = request.headers.get("accept")
        if accept and "text/plain" in accept and _wants_text(accept):
            text = "\n".join(_plain_text(r[self._first_name]) for r in rows)
            return Response(200, text.encode(), "text/plain; charset=utf-8", headers)
        document: Any
        if parsed.shape == "one":
            document = rows[0]
        elif parsed.shape == "instances":
            document = {"predictions": rows}
        else:
            document = rows
        return Response(200, pydantic_core.to_json(document), JSON, headers)

    def rows(self, outputs: Any) -> list[dict[str, Any]]:
        """Normalise what a predictor or handler returned to JSON-ready output dicts."""
        if isinstance(outputs, Predictions):
            outputs = outputs.arrays
        if isinstance(outputs, Mapping) and not self._one_record(outputs):  # arrays by column
            _check_finite(outputs)
            return self._layout.records_from_arrays(outputs)
        if isinstance(outputs, (Schema, Mapping)):
            outputs = [outputs]
        if not isinstance(outputs, Sequence):
            raise ServefnError(
                f"the handler returned {type(outputs).__name__}; return output records, dicts "
                "or a mapping of output arrays"
            )
        schema = self.output_schema
        rows = []
        for item in outputs:
            if isinstance(item, Schema) and not isinstance(item, schema):
                item = item.model_dump(by_alias=True)  # e.g. the model's own copy of the schema
            record = item if isinstance(item, schema) else schema.model_validate(item, strict=False)
            rows.append(record.model_dump(mode="json", by_alias=True))
        return rows

    def _one_record(self, outputs: Mapping[str, Any]) -> bool:
        """True when a mapping a handler returned is one output record rather than output
        arrays, judged by the first output column it has: a single value of that column (a
        scalar, or a flat list for a vector column) means one record. Other keys are ignored."""
        for column in self._columns:
            if column.name not in outputs:
                continue
            value = outputs[column.name]
            if column.kind != "vector":
                return value is None or isinstance(value, _SCALARS)
            if isinstance(value, np.ndarray):
                return value.ndim == 1
            return (
                isinstance(value, (list, tuple)) and bool(value) and isinstance(value[0], _SCALARS)
            )
        return False


def _check_finite(outputs: Mapping[str, Any]) -> None:
    """A NaN or infinite model output is a model failure (500), never a JSON ``NaN``."""
    for name, values in outputs.items():
        if isinstance(values, list) and len(values) == 1:  # one row as Python values
            finite = _finite_values(values[0])
        else:
            array = np.asarray(values)
            finite = array.dtype.kind != "f" or bool(np.isfinite(array).all())
        if not finite:
            raise ServefnError(f"the model returned non-finite {name} values")


def _finite_values(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        try:  # a finite sum means finite items; otherwise look at each (overflow, text...)
            if math.isfinite(sum(value)):
                return True
        except (TypeError, OverflowError):
            pass
        return all(_finite_values(v) for v in value)
    return True


def _wants_text(accept: str) -> bool:
    """True when ``Accept`` prefers text/plain over JSON (q-values honoured, JSON by default)."""
    if "text/plain" not in accept:
        return False
    best: dict[str, float] = {}
    for item in accept.split(","):
        media, params = media_type(item)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        best[media] = max(best.get(media, 0.0), q)
    text = best.get("text/plain", 0.0)
    json_q = max(best.get(JSON, 0.0), best.get("application/*", 0.0), best.get("*/*", 0.0))
    if text > 0 and text == json_q:  # a tie: the first one listed wins
        return accept.strip().lower().startswith("text/plain")
    return text > 0 and text > json_q


def _plain_text(value: Any) -> str:
    return value if isinstance(value, str) else pydantic_core.to_json(value).decode()
