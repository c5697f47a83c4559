"""Period close: variances before disposal, then disposal by the book's policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from backflush.domain.model import Account, Disposition, Entry, Kind, Line, Policy, Settings
from backflush.domain.money import ZERO, round_money, totals
from backflush.engine.standards import Standards

Balances = Mapping[tuple[Account, str], Decimal]

#: Accounts a ``cogs`` disposition empties into cost of goods sold.
DISPOSED_TO_COGS = (
    Account.PURCHASE_PRICE_VARIANCE,
    Account.MATERIAL_USAGE_VARIANCE,
    Account.CONVERSION_VARIANCE,
    Account.REVALUATION_VARIANCE,
    Account.INVENTORY_ADJUSTMENT,
    Account.ROUNDING_VARIANCE,
)
CONVERSION_ACCOUNTS = (Account.CONVERSION_CONTROL, Account.CONVERSION_ALLOCATED)


def variances(activity: Balances, statistics: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Variances of a period from its activity (positive = unfavorable), before disposal."""

    def total(account: Account) -> Decimal:
        return sum((v for (a, _), v in activity.items() if a is account), ZERO)

    found = {
        "purchase_price": total(Account.PURCHASE_PRICE_VARIANCE),
        "material_usage": total(Account.MATERIAL_USAGE_VARIANCE),
        "conversion": total(Account.CONVERSION_CONTROL) + total(Account.CONVERSION_ALLOCATED),
    }
    elements = sorted({e for (a, e) in activity if a in CONVERSION_ACCOUNTS})
    for element in elements if elements != [""] else ():
        # Actual costs given without an element show apart, not netted against an element.
        found[f"conversion:{element or 'unassigned'}"] = activity.get(
            (Account.CONVERSION_CONTROL, element), ZERO
        ) + activity.get((Account.CONVERSION_ALLOCATED, element), ZERO)
    for key, account in (
        ("revaluation", Account.REVALUATION_VARIANCE),
        ("inventory_adjustment", Account.INVENTORY_ADJUSTMENT),
        ("rounding", Account.ROUNDING_VARIANCE),
    ):
        if total(account):
            found[key] = total(account)
    for key, value in sorted(statistics.items()):
        if value:
            found[key] = value
    return found


def disposal(
    settings: Settings, balances: Balances, date: dt.date, event: str, period: str
) -> Entry | None:
    """The entry that disposes of the variance accounts and conversion under/over-allocation."""
    if settings.disposition is Disposition.NONE:
        return None
    lines: list[Line] = []
    to_cogs = ZERO
    for (account, element), balance in sorted(balances.items()):
        if not balance:
            continue
        if account in CONVERSION_ACCOUNTS:
            lines.append(Line(account, -balance, element))
            if settings.disposition is Disposition.KEEP:
                lines.append(Line(Account.CONVERSION_VARIANCE, balance, element))
            else:
                to_cogs += balance
        elif account in DISPOSED_TO_COGS and settings.disposition is Disposition.COGS:
            lines.append(Line(account, -balance, element))
            to_cogs += balance
    if to_cogs:
        lines.append(Line(Account.COGS, to_cogs))
    if not lines:
        return None
    merged = totals(((ln.account, ln.element, ln.item), ln.amount) for ln in lines)
    final = tuple(Line(a, v, e, i) for (a, e, i), v in merged.items() if v)
    return (
        Entry(
            date, event, f"close {period}: dispose variances ({settings.disposition.value})", final
        )
        if final
        else None
    )


# ---------------------------------------------------------------- periodic count (issue 4)


def periodic_targets(
    standards: Standards, quantities: Mapping[str, Decimal], on: dt.date, settings: Settings
) -> dict[tuple[Account, str], Decimal]:
    """What RIP and FG must hold at a close of a ``count`` or ``cogs-first`` book, by
    (account, element), rounded: every stocked item's quantity at the period end (after
    counts) at the standards of ``on``, as :func:`periodic_holding` places it: material
    under element "", conversion estimates under their element."""
    found: dict[tuple[Account, str], Decimal] = {}
    for item_id, quantity in sorted(quantities.items()):
        if not quantity or standards.master.items[item_id].kind is Kind.PHANTOM:
            continue
        for account, element, amount in standards.holding(item_id, on):
            key = (account, element)
            found[key] = found.get(key, ZERO) + quantity * amount
    return {k: round_money(v, settings.currency, settings.rounding) for k, v in found.items()}


def periodic_inventory(
    settings: Settings,
    targets: Mapping[tuple[Account, str], Decimal],
    balances: Balances,
    date: dt.date,
    event: str,
    period: str,
) -> list[Entry]:
    """The period-end entries of a periodic book: RIP and FG brought from what they hold
    (``balances``, as of the period end) to ``targets`` (:func:`periodic_targets`), against
    COGS. Everything is read from balances, so a reopen that negates these entries restores
    the state they started from.

    ``count`` (the textbook periodic-count backflush), one entry per step:

    1. material backflushed RIP -> FG: the standard material of the ending FG less what FG
       holds of it already;
    2. RIP -> COGS: what RIP holds of material beyond the standard material on hand in RIP
       (materials and subassemblies) was used: to COGS;
    3. the conversion estimates the last close inventoried, reset against COGS;
    4. the standard conversion of the ending FG and subassemblies inventoried, Dr FG / RIP,
       Cr COGS (the new conversion estimates).

    ``cogs-first``: one entry backflushing the inventories from COGS: each part of RIP and FG
    moved by its change from what is inventoried now, Cr / Dr COGS."""
    inventory = (Account.RAW_IN_PROCESS, Account.FINISHED_GOODS)
    held = {k: v for k, v in balances.items() if k[0] in inventory and v}
    keys = sorted(set(held) | {k for k, v in targets.items() if v})

    def entry(memo: str, lines: list[Line]) -> Entry | None:
        merged = totals(((ln.account, ln.element, ln.item), ln.amount) for ln in lines)
        final = tuple(Line(a, v, e, i) for (a, e, i), v in merged.items() if v)
        return Entry(date, event, f"close {period}: {memo}", final) if final else None

    def against_cogs(changes: Mapping[tuple[Account, str], Decimal]) -> list[Line]:
        """Each inventory part moved by its change, then COGS by element the other way."""
        lines = [Line(a, v, e) for (a, e), v in changes.items()]
        return lines + [Line(Account.COGS, -v, e) for (_, e), v in changes.items()]

    found: list[Entry | None] = []
    if settings.triggers is Policy.COGS_FIRST:
        changes = {k: targets.get(k, ZERO) - held.get(k, ZERO) for k in keys}
        memo = "inventories backflushed from COGS (counts at standard)"
        found.append(entry(memo, against_cogs(changes)))
        return [e for e in found if e is not None]
    rip, fg = (Account.RAW_IN_PROCESS, ""), (Account.FINISHED_GOODS, "")
    to_fg = targets.get(fg, ZERO) - held.get(fg, ZERO)
    found.append(
        entry(
            "material backflushed RIP -> FG",
            [Line(Account.FINISHED_GOODS, to_fg), Line(Account.RAW_IN_PROCESS, -to_fg)],
        )
    )
    used = held.get(rip, ZERO) - to_fg - targets.get(rip, ZERO)
    found.append(
        entry(
            "material used RIP -> COGS",
            [Line(Account.COGS, used), Line(Account.RAW_IN_PROCESS, -used)],
        )
    )
    estimates = [k for k in keys if k[1]]
    reset = {k: -held.get(k, ZERO) for k in estimates}
    memo = "conversion estimates of the last close reset against COGS"
    found.append(entry(memo, against_cogs(reset)))
    new = {k: targets.get(k, ZERO) for k in estimates}
    found.append(entry("conversion estimates inventoried out of COGS", against_cogs(new)))
    return [e for e in found if e is not None]
