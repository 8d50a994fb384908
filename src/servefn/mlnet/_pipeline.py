"""The decoded steps run symbolically over the input schema: what each output slot is made of.

Each ML.NET column becomes a :class:`Col`. A float column is a list of :class:`Slot`: an atom
(one input value, or the one-hot indicator of one term of one input value) through an affine
map ``(x - sub) * mul + add``; ML.NET's normalizers compose into it exactly, concatenation
joins the lists, one-hot encoding (ValueToKey then KeyToVector) makes one atom per term, and an
unknown value (key 0) is all zeros, as in ML.NET. Key columns keep their term map; the
prediction transformer's outputs are marked, and MapKeyToValue on its predicted label maps keys
back to the label's terms. A column servefn cannot compute carries the reason, raised only if an
output needs it, so an unused branch never refuses a model; an inconsistent file always does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from servefn.mlnet._binary import MlnetError
from servefn.mlnet._dataview import ColumnType
from servefn.mlnet._models import Prediction
from servefn.mlnet._transforms import Step, TermMap
from servefn.model._limits import MAX_FEATURES

__all__ = ["Atom", "Col", "Pipeline", "Slot", "Source"]


@dataclass(frozen=True)
class Source:
    """One input value: input column ``column``, slot ``slot`` (0 for a scalar)."""

    column: int
    slot: int


@dataclass(frozen=True)
class Atom:
    """One column of the encoded matrix: an input value (``encoder`` -1), or the indicator of
    term ``code`` of encoder ``encoder`` over it."""

    source: Source
    encoder: int = -1
    code: int = -1


@dataclass(frozen=True)
class Slot:
    """A float slot: atom ``atom`` through ``(x - sub) * mul + add``."""

    atom: int
    sub: float = 0.0
    mul: float = 1.0
    add: float = 0.0


@dataclass
class Col:
    """One ML.NET column, symbolically (see the module docstring)."""

    type: ColumnType
    slots: tuple[Slot, ...] = ()
    sources: tuple[Source, ...] = ()
    terms: TermMap | None = None
    role: str = "data"
    why: str | None = None


class Pipeline:
    """Runs :class:`Step` s over the input columns; :attr:`prediction` and the output columns
    are what the model serves."""

    def __init__(self, inputs: list[tuple[str, ColumnType]]) -> None:
        self.inputs = inputs
        self.atoms: list[Atom] = []
        self._atom_ids: dict[Atom, int] = {}
        self.encoders: list[tuple[Source, TermMap]] = []
        self._encoder_ids: dict[tuple[Source, int], int] = {}
        self.env: dict[str, Col] = {}
        self.prediction: Prediction | None = None
        self.features: tuple[Slot, ...] = ()
        self.label: Col | None = None
        for index, (name, kind) in enumerate(inputs):
            self.env[name] = self._input(index, kind)

    def _atom(self, atom: Atom) -> int:
        found = self._atom_ids.get(atom)
        if found is None:
            found = self._atom_ids[atom] = len(self.atoms)
            self.atoms.append(atom)
        return found

    def _input(self, index: int, kind: ColumnType) -> Col:
        if kind.size < 0 or (
            kind.item not in ("float32", "float64", "text", "bool") and not kind.integer
        ):
            return Col(kind, why=f"its type {kind} is not one servefn takes as input")
        sources = tuple(Source(index, s) for s in range(kind.width))
        slots = tuple(Slot(self._atom(Atom(s))) for s in sources) if kind.numeric else ()
        return Col(kind, slots, sources)

    def get(self, name: str, step: Step) -> Col:
        col = self.env.get(name)
        if col is None:
            raise MlnetError(
                f"ML.NET model: {step.path.replace('/', chr(92))} reads column {name!r}, which "
                "neither the input schema nor an earlier transform has"
            )
        return col

    # -- steps -------------------------------------------------------------------------------

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            getattr(self, f"_{step.op}")(step)

    def _copy(self, step: Step) -> None:
        for out, (source,) in step.columns:
            self.env[out] = self.get(source, step)

    def _concat(self, step: Step) -> None:
        for out, sources in step.columns:
            cols = [self.get(s, step) for s in sources]
            reason = next((c.why for c in cols if c.why), None)
            items = {c.type.item for c in cols}
            if reason is None and (len(items) != 1 or not cols[0].type.numeric):
                reason = f"concatenates columns of types {sorted(map(str, (c.type for c in cols)))}"
            slots = tuple(s for c in cols for s in c.slots)
            if len(slots) > MAX_FEATURES:
                raise MlnetError(f"ML.NET model: {out!r} concatenates over {MAX_FEATURES} slots")
            kind = ColumnType(cols[0].type.item, len(slots))
            self.env[out] = Col(kind, slots, why=reason and f"{out!r} {reason}")

    def _tokey(self, step: Step) -> None:
        for (out, (source,)), terms in zip(step.columns, step.maps, strict=True):
            col = self.get(source, step)
            if col.why is None and col.type.item != terms.item:
                raise MlnetError(
                    f"ML.NET model: {step.path.replace('/', chr(92))} maps {col.type.item} column "
                    f"{source!r} with a term map of {terms.item} values"
                )
            why = col.why or (
                None if col.sources else f"MapValueToKey of computed column {source!r}"
            )
            kind = ColumnType("key", col.type.size, len(terms.terms))
            self.env[out] = Col(kind, sources=col.sources, terms=terms, why=why)

    def _tovector(self, step: Step) -> None:
        for (out, (source,)), bag in zip(step.columns, step.bags, strict=True):
            col = self.get(source, step)
            why = col.why
            if col.terms is None or col.role != "data":
                why = why or f"KeyToVector of {source!r}, which has no term map servefn knows"
            elif bag and len(col.sources) > 1:
                why = f"a bag of the keys of vector column {source!r}"
            slots: list[Slot] = []
            if why is None and col.terms is not None:
                for src in col.sources:
                    encoder = self._encoder(src, col.terms)
                    slots += [
                        Slot(self._atom(Atom(src, encoder, k))) for k in range(len(col.terms.terms))
                    ]
            if len(slots) > MAX_FEATURES:
                raise MlnetError(
                    f"ML.NET model: {out!r} one-hot encodes to over {MAX_FEATURES} slots"
                )
            self.env[out] = Col(ColumnType("float32", len(slots)), tuple(slots), why=why)

    def _encoder(self, source: Source, terms: TermMap) -> int:
        key = (source, id(terms))
        found = self._encoder_ids.get(key)
        if found is None:
            found = self._encoder_ids[key] = len(self.encoders)
            self.encoders.append((source, terms))
        return found

    def _tovalue(self, step: Step) -> None:
        for out, (source,) in step.columns:
            col = self.get(source, step)
            if col.role == "label-key":
                self.env[out] = replace(col, role="label-value")
            else:
                why = col.why or f"MapKeyToValue of {source!r}, which is not the predicted label"
                self.env[out] = Col(col.type, why=why)

    def _normalize(self, step: Step) -> None:
        for (out, (source,)), function in zip(step.columns, step.functions, strict=True):
            col = self.get(source, step)
            if col.why is None and (
                col.type.item != function.type.item or col.type.width != function.type.width
            ):
                raise MlnetError(
                    f"ML.NET model: {step.path.replace('/', chr(92))} normalizes {source!r} "
                    f"({col.type}) with a function for {function.type}"
                )
            slots = tuple(
                Slot(s.atom, s.sub, s.mul * scale, (s.add - offset) * scale)
                if s.mul != 1.0 or s.add != 0.0 or s.sub != 0.0
                else Slot(s.atom, offset, scale, 0.0)
                for s, scale, offset in zip(
                    col.slots, function.scale.tolist(), function.offset.tolist(), strict=True
                )
            ) if col.why is None else ()  # fmt: skip
            self.env[out] = Col(col.type, slots, why=col.why)

    def _predict(self, step: Step) -> None:
        p: Prediction = step.model
        if self.prediction is not None:
            raise MlnetError(
                f"ML.NET model: {step.path.replace('/', chr(92))} is a second prediction "
                "transformer; servefn serves pipelines with one"
            )
        features = self.get(p.features, step)
        if features.why:
            raise MlnetError(f"ML.NET model: its features cannot be computed: {features.why}")
        if len(features.slots) != p.model.n_features:
            raise MlnetError(
                f"ML.NET model: the model takes {p.model.n_features} features but "
                f"{p.features!r} holds {len(features.slots)}"
            )
        self.prediction, self.features = p, features.slots
        label_name = p.label if p.task == "multiclass" else "Label"
        self.label = self.env.get(label_name) if label_name else None
        self.env[p.score] = Col(
            ColumnType("float32", 0 if p.task != "multiclass" else -1), role="score"
        )
        if p.task == "multiclass":
            terms = self._label_terms(p, step)
            kind = ColumnType("key", 0, p.model.n_classes)
            self.env[p.predicted] = Col(kind, terms=terms, role="label-key")
        elif p.task == "binary":
            self.env[p.predicted] = Col(ColumnType("bool"), role="label-bool")
            self.env["Probability"] = Col(ColumnType("float32"), why="Probability is not served")

    def _label_terms(self, p: Prediction, step: Step) -> TermMap | None:
        """The label's terms (keys map back to them), checked against the class count."""
        col = self.label
        if col is None or col.terms is None:
            return None
        if len(col.terms.terms) != p.model.n_classes:
            raise MlnetError(
                f"ML.NET model: the label {p.label!r} has {len(col.terms.terms)} values but the "
                f"model in {step.path.replace('/', chr(92))} scores {p.model.n_classes} classes"
            )
        return col.terms

    # -- results -----------------------------------------------------------------------------

    def outputs(self) -> tuple[Prediction, dict[str, Any]]:
        """The prediction and the served outputs: ``classes`` (None for a regressor)."""
        p = self.prediction
        if p is None:
            raise MlnetError("ML.NET model: its pipeline has no prediction transformer")
        if (p.score, p.predicted) != ("Score", "PredictedLabel"):
            raise MlnetError(
                f"ML.NET model: its outputs are named {p.score!r} and {p.predicted!r}; servefn "
                "serves them as Score and PredictedLabel only"
            )
        if self.env[p.score].role != "score":
            raise MlnetError(f"ML.NET model: a transform after the model replaces {p.score!r}")
        classes: list[Any] | None = None
        if p.task == "multiclass":
            label = self.env[p.predicted]
            if label.role == "label-value" and label.terms is not None:
                classes = list(label.terms.terms)
            elif label.role == "label-key":
                classes = list(range(1, p.model.n_classes + 1))
            else:
                raise MlnetError(
                    f"ML.NET model: a transform after the model replaces {p.predicted!r}"
                )
        elif p.task == "binary":
            if self.env[p.predicted].role != "label-bool":
                raise MlnetError(
                    f"ML.NET model: a transform after the model replaces {p.predicted!r}"
                )
            classes = [False, True]
        return p, {"classes": classes}

    def used_sources(self) -> set[int]:
        """Input columns the served features read."""
        return {self.atoms[s.atom].source.column for s in self.features}

    def label_column(self) -> int | None:
        col = self.label
        return col.sources[0].column if col is not None and len(col.sources) == 1 else None
