"""The one rule for ``int`` columns: an integral number is an int, wherever it comes from.

Data read through pandas holds integers as floats (``100.0``). A field typed ``int`` accepts
such a float when it is integral and exact (within +/-2**53, where every integer is a float),
and refuses one with a fraction (``100.5``) or beyond that range (``1e20``), as it refuses a
bool or, from JSON, a string. The same rule applies to JSON numbers (:data:`INTEGRAL`, a
validator every ``int`` field of a :class:`~servefn.schema.Schema` carries) and to text (GET
query strings and CSV fields, :func:`int_from_text`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["INTEGRAL", "MAX_EXACT_INT", "int_from_text", "integral", "number_from_text"]

MAX_EXACT_INT = 2**53
"""Integral floats up to this magnitude are exactly one integer each."""


def integral(value: float) -> int:
    """``value`` as an int when it is integral and exact; ValueError otherwise."""
    if value.is_integer() and -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
        return int(value)
    if value.is_integer():
        raise ValueError("a number beyond +/-2**53 is not an exact integer")
    raise ValueError("a number with a fractional part is not an integer")


def _integral_number(value: Any) -> Any:
    """A float (never a bool, which is not a float) becomes its int, or is refused; anything
    else goes on to pydantic's own int validation unchanged."""
    if isinstance(value, float):
        try:
            return integral(value)
        except ValueError:
            if value.is_integer():
                raise PydanticCustomError(
                    "int_parsing_size",
                    "Input should be an integer; a float beyond +/-2**53 is not exact",
                ) from None
            raise PydanticCustomError(
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            ) from None
    return value


INTEGRAL = BeforeValidator(_integral_number)
"""Added to every ``int`` field of a schema when its class is built."""


def number_from_text(text: str) -> int | float | str:
    """A text value for an ``int`` field: its int, the float it reads as (for :data:`INTEGRAL`
    to accept or refuse), or the text itself when it is not a number (pydantic refuses it)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def int_from_text(text: str) -> int:
    """A CSV field for an ``int`` column; ValueError unless it is an integral number."""
    value = number_from_text(text)
    if isinstance(value, float):
        return integral(value)
    if isinstance(value, str):
        raise ValueError(text)
    return value
