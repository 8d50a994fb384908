"""The transform stage of an exported preprocessing pipeline, in numpy alone.

A :class:`Transform` turns the raw feature matrix (float64, or an object array when the schema
has text) into the float64 matrix the final estimator sees, exactly as the fitted scikit-learn
ColumnTransformer, imputers, scalers and encoders would. It is a list of :class:`ColumnStep`:
each takes its input matrix, runs each :class:`Block` (some input columns through a chain of
ops from :mod:`._ops` and :mod:`._encoders`) and stacks the outputs in order; a bare
transformer step is one block over every column. Parameters are JSON plus one ``.npz`` of
arrays, validated on load so a tampered payload is refused in one line, never half-built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from servefn.errors import ArtifactError, PredictorError
from servefn.predictors._encoders import OneHot, Ordinal
from servefn.predictors._npz import dump_arrays, load_arrays
from servefn.predictors._ops import Affine, Array, Impute, Op, int_list, to_float

__all__ = ["OPS", "Block", "ColumnStep", "Transform"]

OPS: dict[str, type[Op]] = {op.name: op for op in (Impute, Affine, OneHot, Ordinal)}
"""Op name -> class, as payloads name them."""
MAX_TOTAL_CATEGORIES = 1_000_000
_MAX_ARRAY_BYTES = 1 << 30
_MAX_ITEMS = 1 << 20  # features, steps, blocks, ops, columns: far beyond any real pipeline


class Block:
    """Input columns ``columns`` through ``ops`` in order (no ops: passthrough)."""

    def __init__(self, columns: Sequence[int], ops: Sequence[Op]) -> None:
        self.columns = [int(c) for c in columns]
        self.ops = list(ops)
        width = len(self.columns)
        for op in self.ops:
            if op.n_in != width:
                raise PredictorError(f"a {op.name} op takes {op.n_in} columns but {width} arrive")
            width = op.n_out
        self.n_out = width

    def sources(self) -> list[int]:
        """For each output column, the index into :attr:`columns` it comes from."""
        index = list(range(len(self.columns)))
        for op in self.ops:
            index = [index[s] for s in op.sources()]
        return index

    def apply(self, X: Array) -> Array:
        out = X[:, self.columns]
        for op in self.ops:
            out = op.apply(out)
        return out

    def flow(self, missing: Sequence[bool]) -> list[bool] | None:
        flags: list[bool] | None = [missing[c] for c in self.columns]
        for op in self.ops:
            if flags is None:
                return None
            flags = op.flow(flags)
        return flags


class ColumnStep:
    """A ColumnTransformer (or a bare transformer: one block over all ``n_in`` columns)."""

    def __init__(self, n_in: int, blocks: Sequence[Block]) -> None:
        self.n_in = n_in
        self.blocks = list(blocks)
        for block in self.blocks:
            if any(not 0 <= c < n_in for c in block.columns):
                raise PredictorError(f"a block reads a column outside 0..{n_in - 1}")
        self.n_out = sum(b.n_out for b in self.blocks)

    def apply(self, X: Array) -> Array:
        parts = [block.apply(X) for block in self.blocks]
        if not parts:
            return np.zeros((X.shape[0], 0))
        if all(p.dtype.kind == "f" for p in parts):
            return np.hstack(parts).astype(np.float64, copy=False)
        return np.hstack([p.astype(object) for p in parts])


class Transform:
    """Raw feature matrix -> the float64 matrix the final estimator takes."""

    def __init__(self, feature_names: Sequence[str], steps: Sequence[ColumnStep]) -> None:
        self.feature_names = [str(n) for n in feature_names]
        self.steps = list(steps)
        width = self.n_features
        origins = list(range(width))
        for i, step in enumerate(self.steps):
            if step.n_in != width:
                raise PredictorError(f"transform step {i} takes {step.n_in} columns, gets {width}")
            out: list[int] = []
            for block in step.blocks:
                inputs = [origins[c] for c in block.columns]
                for op in block.ops:
                    op.bind(inputs, self.feature_names)
                    inputs = [inputs[s] for s in op.sources()]
                out += inputs
            origins, width = out, step.n_out
        self.n_outputs = width
        self._origins = origins
        self._missing = tuple(self._accepts_missing(j) for j in range(self.n_features))

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def accepts_missing(self) -> tuple[bool, ...]:
        """Per raw feature: whether a missing value there still yields a finite output (an
        imputer or an encoder that knows missing values takes it), or feeds nothing at all."""
        return self._missing

    def _accepts_missing(self, feature: int) -> bool:
        flags = self.missing_outputs(feature)
        return flags is not None and not any(flags)

    def missing_outputs(self, feature: int) -> list[bool] | None:
        """Which output columns a missing value of raw ``feature`` leaves missing (NaN), or
        None when a step refuses it outright."""
        flags: list[bool] = [j == feature for j in range(self.n_features)]
        for step in self.steps:
            out: list[bool] = []
            for block in step.blocks:
                block_flags = block.flow(flags)
                if block_flags is None:
                    return None
                out += block_flags
            flags = out
        return flags

    def vocabularies(self) -> dict[int, list[str]]:
        """Raw text feature -> the values it may take: the categories of the encoders that
        refuse unknown values (several encoders of one feature: the values all know)."""
        from servefn.predictors._encoders import OneHot, Ordinal

        found: dict[int, set[str]] = {}
        order: dict[int, list[str]] = {}
        for step in self.steps:
            for block in step.blocks:
                for op in block.ops:
                    if not isinstance(op, (OneHot, Ordinal)):
                        continue
                    if op.ignore if isinstance(op, OneHot) else op.unknown_value is not None:
                        continue  # unknown values are taken: the column stays open
                    for j, origin in enumerate(op.origins):
                        values = [v for v in op.categories[j].values if isinstance(v, str)]
                        if not op.categories[j].text:
                            continue
                        known = found.setdefault(origin, set(values))
                        known &= set(values)
                        order.setdefault(origin, values)
        return {o: [v for v in order[o] if v in found[o]] for o in found}

    def __call__(self, X: Array) -> NDArray[np.float64]:
        """Transform a raw matrix (float64, or object when text is present)."""
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise PredictorError(
                f"expected a matrix with {self.n_features} feature columns, got shape {X.shape}"
            )
        for step in self.steps:
            X = step.apply(X)
        if X.dtype == np.float64:
            return X
        return to_float(X, [self.feature_names[j] for j in self._origins])

    def to_payload(self) -> tuple[dict[str, Any], bytes]:
        """JSON-able parameters and the ``.npz`` bytes of the arrays."""
        arrays: dict[str, np.ndarray] = {}
        steps = []
        for i, step in enumerate(self.steps):
            blocks = []
            for j, block in enumerate(step.blocks):
                ops = []
                for k, op in enumerate(block.ops):
                    params, op_arrays = op.dump(f"s{i}b{j}o{k}_")
                    ops.append(params)
                    arrays.update(op_arrays)
                blocks.append({"columns": block.columns, "ops": ops})
            steps.append({"n_in": step.n_in, "blocks": blocks})
        return {"feature_names": self.feature_names, "steps": steps}, dump_arrays(arrays)

    @classmethod
    def from_payload(cls, params: Mapping[str, Any], data: bytes) -> Transform:
        """Rebuild from :meth:`to_payload`'s output; :class:`PredictorError` if it is invalid."""
        try:
            arrays = load_arrays(data, max_bytes=_MAX_ARRAY_BYTES, source="transform.npz")
            return cls._load(params, arrays)
        except (PredictorError, ArtifactError) as exc:
            raise PredictorError(f"the transform payload is invalid: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PredictorError(
                f"the transform payload is invalid ({type(exc).__name__})"
            ) from None

    @classmethod
    def _load(cls, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Transform:
        if not isinstance(params, Mapping):
            raise PredictorError("transform parameters must be an object")
        names, steps = params.get("feature_names"), params.get("steps")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PredictorError("feature_names must be a list of strings")
        if not isinstance(steps, list) or len(names) > _MAX_ITEMS or len(steps) > _MAX_ITEMS:
            raise PredictorError("steps must be a list")
        built, total = [], 0
        for i, step in enumerate(steps):
            blocks = _items(step, "blocks", f"step {i}")
            n_in = step.get("n_in")
            if type(n_in) is not int or not 0 <= n_in <= _MAX_ITEMS:
                raise PredictorError(f"step {i} needs n_in as a non-negative integer")
            block_list = []
            for j, block in enumerate(blocks):
                columns = int_list(block.get("columns"), f"step {i} block {j} columns")
                if any(c >= n_in for c in columns):
                    raise PredictorError(f"step {i} block {j} reads a column outside 0..{n_in - 1}")
                ops, width = [], len(columns)
                for k, op in enumerate(_items(block, "ops", f"step {i} block {j}")):
                    kind = op.get("op")
                    if kind not in OPS:
                        raise PredictorError(
                            f"step {i} block {j} op {k} is {str(kind)[:40]!r}, not one of "
                            f"{sorted(OPS)}"
                        )
                    built_op = OPS[kind].load(op, arrays, f"s{i}b{j}o{k}_", width)
                    total += sum(len(c.values) for c in getattr(built_op, "categories", ()))
                    if total > MAX_TOTAL_CATEGORIES:
                        raise PredictorError(
                            f"the transform holds over {MAX_TOTAL_CATEGORIES} categories"
                        )
                    ops.append(built_op)
                    width = built_op.n_out
                block_list.append(Block(columns, ops))
            built.append(ColumnStep(n_in, block_list))
        return cls(names, built)


def _items(container: Any, key: str, where: str) -> list[Mapping[str, Any]]:
    """``container[key]``: a list of objects, or :class:`PredictorError`."""
    if not isinstance(container, Mapping):
        raise PredictorError(f"{where} must be an object")
    items = container.get(key)
    if not isinstance(items, list) or len(items) > _MAX_ITEMS:
        raise PredictorError(f"{where} needs {key} as a list")
    if not all(isinstance(item, Mapping) for item in items):
        raise PredictorError(f"{where} {key} must be objects")
    return items
