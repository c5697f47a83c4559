"""Period close: variances before disposal, then disposal by the book's policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from backflush.domain.model import Account, Disposition, Entry, Line, Settings
from backflush.domain.money import ZERO, totals

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
