"""Lower of cost and net realisable value (IAS 2.9, ASC 330-10-35): pure rules of the close.

Inventory accounts stay at standard. What the books carry above the net realisable value
(NRV: estimated selling price less costs to sell) is held in a contra-inventory allowance
per item, against a write-down expense; each close posts the change of what stands.

Per unit, the write-down is the carrying amount less NRV, where NRV is lower, never more
than the carrying amount: what the books carry of the standard (the part held off the books,
material not yet recognised or conversion never allocated and so expensed as a variance, is no
cost on the books, and writing it down would count its loss twice), plus the unit's share of
the variances a prorating close put into stock (IAS 2.9: cost, not standard).

* ``ifrs`` (IAS 2.33): a new assessment at every close; when NRV recovers the write-down is
  reversed, never above the standard (the allowance never turns into a debit).
* ``us-gaap`` (ASC 330): the written-down amount is the new cost basis of the units written
  down. Units still held keep it when NRV recovers, and when the standard changes the basis
  stays where it was (the unit write-down moves with the standard). The units written down
  are taken to be the last to leave: the allowance is released only as far as stock falls
  below them, as the quantities on hand at the two closes show (a dip between closes made up
  again before the next is not seen). Units that arrive later come in at standard; the
  item's unit write-down is the average over what is on hand (as average cost does), then
  compared with NRV again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from backflush.domain.model import Account, Entry, LowerOfCost, NrvWritedown, Settings
from backflush.domain.money import ZERO, fmt, round_money
from backflush.engine.flush import EntryBuilder

#: Unit write-downs that a division makes (the average of US GAAP) are kept to 12 decimals.
UNIT_PLACES = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class Assessment:
    """What a close knows of one item."""

    item: str
    #: On hand at the period end.
    quantity: Decimal
    #: Standard unit cost on the close date.
    standard: Decimal
    #: What the books carry of a unit: the part of its standard on the books, plus its share
    #: of the variances prorated into stock.
    carrying: Decimal
    #: The estimate in force on the close date, if any.
    nrv: Decimal | None
    #: What the last close before this one found for the item.
    previous: NrvWritedown | None
    #: Allowance on the books now, signed (credit negative).
    allowance: Decimal


def unit_writedown(policy: LowerOfCost, found: Assessment) -> Decimal:
    """The write-down per unit that stands after the close."""
    quantity = max(found.quantity, ZERO)
    if not quantity:
        return ZERO
    carrying = max(found.carrying, ZERO)
    shortfall = ZERO if found.nrv is None else max(carrying - found.nrv, ZERO)
    before = found.previous
    if policy is LowerOfCost.US_GAAP and before is not None and before.unit_writedown:
        held = min(before.quantity, quantity)
        # The basis (what the books carry less the write-down) stays where it was when what
        # they carry moves (a new standard, variances prorated anew); a standard held off
        # the books moves nothing.
        if before.carrying is None:  # not known (see Book._carried_then): the standard
            moved = found.standard - before.standard
        else:
            moved = found.carrying - before.carrying
        carried = max(before.unit_writedown + moved, ZERO)
        average = (held * carried / quantity).quantize(UNIT_PLACES)
        shortfall = max(shortfall, average)
    return min(shortfall, carrying)


def close_item(
    settings: Settings, period: str, date: dt.date, event: str, found: Assessment
) -> tuple[NrvWritedown, Entry | None]:
    """The close's finding for one item and the entry that posts the change (None: none)."""
    unit = unit_writedown(settings.lower_of_cost, found)
    quantity = max(found.quantity, ZERO)
    standing = round_money(quantity * unit, settings.currency, settings.rounding)
    change = standing + found.allowance  # allowance is a credit: -standing is its target
    record = NrvWritedown(
        period,
        found.item,
        quantity,
        found.standard if quantity else ZERO,
        found.nrv,
        unit,
        standing,
        change,
        found.carrying if quantity else ZERO,
    )
    if not change:
        return record, None
    verb = "write-down" if change > 0 else "release"
    nrv = "none" if found.nrv is None else fmt(found.nrv)
    builder = EntryBuilder(
        date,
        event,
        f"close {period}: net realisable value of {found.item} ({nrv} per unit): "
        f"{verb} to {fmt(standing)}",
    )
    builder.add(Account.NRV_WRITEDOWN, change, item=found.item)
    builder.add(Account.NRV_ALLOWANCE, -change, item=found.item)
    return record, builder.build(settings)
