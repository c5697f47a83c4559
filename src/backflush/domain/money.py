"""Exact decimal arithmetic for money and quantities.

Every amount in backflush is a ``Decimal``. Money is rounded to the currency's minor unit only
when a journal line is made; unit standards and quantities keep their full precision.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Iterable
from decimal import Decimal
from typing import TypeVar

ZERO = Decimal(0)
K = TypeVar("K")

#: Context of the book's arithmetic (``Book`` posts every event under it), of formatting and
#: of quantizing: 50 significant digits. With the limits at the edge
#: (backflush.formats.inputs: quantities, unit costs, unit prices and standards below 10^12
#: with at most 6 decimals, amounts below 10^15), a product of a quantity and a unit cost is
#: below 10^24 with at most 12 decimals: exact, before it is rounded once to the currency's
#: minor unit. (A rolled-up standard is not bounded so: a deep BOM of tiny quantities, or
#: setup spread over lots and yields, can need more digits than 50; its last digits are then
#: rounded, far below the minor unit, and a completion values such a standard a component at
#: a time, rounding as it always did: ``Consumption.exact``.) Every figure a report prints,
#: even a balance summed from millions of the largest entries, fits with room to spare. Code
#: outside the book (reports, the SQLite store's running sums) adds in Python's default 28
#: digits: sums of amounts stay exact to the minor unit up to 10^25, far beyond any book.
CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)
#: Money amounts must stay below this in absolute value: an amount given in an event, and a
#: line an event posts (a quantity times a price each within bounds may reach 10^24). Below
#: it, with two decimals, a spreadsheet's binary numbers still hold every cent.
AMOUNT_LIMIT = Decimal(10) ** 15

#: ISO 4217 minor units for currencies whose minor unit is not 2.
_MINOR_UNITS: dict[str, int] = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3,
    "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip

ROUNDING_MODES = {"half-even": decimal.ROUND_HALF_EVEN, "half-up": decimal.ROUND_HALF_UP}


def totals(pairs: Iterable[tuple[K, Decimal]]) -> dict[K, Decimal]:
    """Amounts summed by key, keys in order of first appearance."""
    found: dict[K, Decimal] = {}
    for key, amount in pairs:
        found[key] = found.get(key, ZERO) + amount
    return found


def minor_units(currency: str) -> int:
    """Digits after the decimal point for ``currency`` (ISO 4217; 2 unless listed)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


@functools.cache  # currencies are few; a quantum is worked out per journal line
def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str, rounding: str = "half-even") -> Decimal:
    return amount.quantize(quantum(currency), rounding=ROUNDING_MODES[rounding], context=CONTEXT)


def decimals(value: Decimal) -> int:
    """Number of digits after the decimal point that ``value`` really uses (1.50 -> 1)."""
    exponent = value.normalize(CONTEXT).as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def fmt(value: Decimal) -> str:
    """Canonical decimal string: no exponent, no trailing zeros, '-0' shown as '0'."""
    if not value:
        return "0"
    return format(value.normalize(CONTEXT), "f")
