"""Period close: variances before disposal, then disposal by the book's policy.

Each variance is a *pool*: a variance account (by element), or conversion Control against
Allocated (by element). The book's disposition, per variance type, says what becomes of it:
``cogs`` writes it off to cost of goods sold, ``keep`` leaves it as its own P&L line (conversion
is closed into the conversion variances), ``none`` leaves it where it is, and ``prorate`` spreads
it across the ending RIP, FG and COGS in proportion to the standard cost of its element each
holds. Shares prorated into inventory stay apart (element ``variance:<pool>``) and return to
the pool at the next close, so they follow the stock out to COGS as it sells.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_DOWN, Decimal

from backflush.domain.model import Account, Disposition, Entry, Kind, Line, Policy, Settings
from backflush.domain.money import ZERO, quantum, round_money, totals
from backflush.engine.standards import Standards

Balances = Mapping[tuple[Account, str], Decimal]
#: Standard cost each account holds at the period end, by element (``material``, ``labor``, ...).
Content = Mapping[Account, Mapping[str, Decimal]]
#: Standard rate per hour of a (work center, element) in force on a date (None: at the
#: period's end); None when the work center has none.
Rates = Callable[[str, str, dt.date | None], Decimal | None]

MATERIAL = "material"

#: Variance type of each variance account: the key a disposition is chosen by.
VARIANCE_TYPES: dict[Account, str] = {
    Account.PURCHASE_PRICE_VARIANCE: "purchase_price",
    Account.MATERIAL_USAGE_VARIANCE: "material_usage",
    Account.CONVERSION_VARIANCE: "conversion",
    Account.CONVERSION_SPENDING_VARIANCE: "conversion",
    Account.CONVERSION_EFFICIENCY_VARIANCE: "conversion",
    Account.REVALUATION_VARIANCE: "revaluation",
    Account.INVENTORY_ADJUSTMENT: "inventory_adjustment",
    Account.ROUNDING_VARIANCE: "rounding",
}
DISPOSABLE = tuple(dict.fromkeys(VARIANCE_TYPES.values()))
CONVERSION_ACCOUNTS = (Account.CONVERSION_CONTROL, Account.CONVERSION_ALLOCATED)
#: Where prorated variances go, in the order ties in the pennies are broken.
PRORATED_TO = (
    Account.RAW_IN_PROCESS,
    Account.MATERIALS,
    Account.WORK_IN_PROCESS,
    Account.FINISHED_GOODS,
    Account.COGS,
)
PRORATED = "variance:"

# Statistics the book keeps for the hours-based conversion variances (DESIGN §3.3).
ACTUAL_HOURS = "actual_hours:"  # + work center + ":" + element ("" = every element)
ACTUAL_COST = "actual_cost:"  # + work center + ":" + element
STANDARD_HOURS = "standard_hours:"  # + work center
# The same hours by the standards they were worked under: + the standards' epoch (the date
# they took effect, ISO) + ":" + what the undated key names. A rate changed in mid-period
# prices the hours before it at the old rate, as the completions before it allocated.
ACTUAL_HOURS_ON = "actual_hours@"
STANDARD_HOURS_ON = "standard_hours@"
HOURS_STATISTICS = (ACTUAL_HOURS, ACTUAL_COST, STANDARD_HOURS, ACTUAL_HOURS_ON, STANDARD_HOURS_ON)
#: Standard cost of the units sold, at the standards each sale was costed at (+ element:
#: ``sold:material``, ``sold:labor``, ...): what cost of goods sold took, by element.
SOLD = "sold:"
#: What revaluations changed the stock's standard value by, by element (+ element:
#: ``revalued:material``; an increase is positive): the revaluation variance's make-up.
REVALUED = "revalued:"
#: The conversion of finished goods (and, costing sequentially, of any made item) that scrap
#: reports and counts took to a variance with their material: stock that holds its
#: conversion in one figure loses it whole (an increase of the variances is positive); and,
#: costing sequentially, the conversion of lower levels held by units scrapped at completion.
#: A count gain or a written-off shortage brings it back (negative).
LOST_CONVERSION = "lost_conversion"
#: What revaluations posted to the conversion closes inventoried in unsold finished goods
#: (``inventory_unsold_conversion``; + element: ``inventoried_revalued:labor``), rounded as
#: posted: a close of an earlier period, posted late, leaves it out of what it inventoried.
INVENTORIED_REVALUED = "inventoried_revalued:"
#: Statistics that are no variance.
NOT_VARIANCES = (*HOURS_STATISTICS, SOLD, REVALUED, INVENTORIED_REVALUED, LOST_CONVERSION)


def dated_hours(prefix: str, epoch: dt.date, rest: str) -> str:
    """The statistic of hours worked under the standards of ``epoch`` (``prefix`` one of
    :data:`ACTUAL_HOURS_ON`, :data:`STANDARD_HOURS_ON`; ``rest`` what the undated key names)."""
    return f"{prefix}{epoch.isoformat()}:{rest}"


def hours_variances(statistics: Mapping[str, Decimal], rates: Rates) -> dict[str, Decimal]:
    """Spending and efficiency variances per work center and element, where hours are reported:
    spending = actual cost - actual hours x standard rate; efficiency = (actual hours - standard
    hours for the output) x standard rate. Keys ``conversion_spending:WC:element`` and
    ``conversion_efficiency:WC:element``. Hours are priced at the rate in force when they were
    worked (:data:`ACTUAL_HOURS_ON`, :data:`STANDARD_HOURS_ON`), so that a rate changed in
    mid-period explains the whole under/over-allocation; hours kept without that (posted by a
    version before it) at the rate of the period's end."""
    actual_hours: dict[tuple[str, str], Decimal] = {}
    actual_cost: dict[tuple[str, str], Decimal] = {}
    standard_hours: dict[str, Decimal] = {}
    actual_on: dict[tuple[str, str], list[tuple[dt.date, Decimal]]] = {}
    standard_on: dict[str, list[tuple[dt.date, Decimal]]] = {}
    for key, value in statistics.items():
        if key.startswith(ACTUAL_HOURS):
            center, element = key[len(ACTUAL_HOURS) :].rsplit(":", 1)
            actual_hours[(center, element)] = value
        elif key.startswith(ACTUAL_COST):
            center, element = key[len(ACTUAL_COST) :].rsplit(":", 1)
            actual_cost[(center, element)] = value
        elif key.startswith(STANDARD_HOURS):
            standard_hours[key[len(STANDARD_HOURS) :]] = value
        elif key.startswith(ACTUAL_HOURS_ON):
            on, rest = key[len(ACTUAL_HOURS_ON) :].split(":", 1)
            center, element = rest.rsplit(":", 1)
            actual_on.setdefault((center, element), []).append((dt.date.fromisoformat(on), value))
        elif key.startswith(STANDARD_HOURS_ON):
            on, center = key[len(STANDARD_HOURS_ON) :].split(":", 1)
            standard_on.setdefault(center, []).append((dt.date.fromisoformat(on), value))

    def priced(
        hours: Decimal, dated: list[tuple[dt.date, Decimal]], center: str, element: str
    ) -> Decimal:
        value, undated = ZERO, hours
        for on, part in dated:
            value += part * (rates(center, element, on) or ZERO)
            undated -= part
        return value + undated * (rates(center, element, None) or ZERO)

    found: dict[str, Decimal] = {}
    elements = {(c, e) for c, e in actual_cost} | {(c, e) for c, e in actual_hours if e}
    for center, element in sorted(elements):
        # Hours reported for the element, else the work center's hours for every element.
        clock = (center, element) if (center, element) in actual_hours else (center, "")
        hours = actual_hours.get(clock)
        if rates(center, element, None) is None or hours is None:
            continue
        worked = priced(hours, actual_on.get(clock, []), center, element)
        cost = actual_cost.get((center, element))
        if cost is not None:  # hours alone say nothing of what was spent
            found[f"conversion_spending:{center}:{element}"] = cost - worked
        allowed = priced(
            standard_hours.get(center, ZERO), standard_on.get(center, []), center, element
        )
        found[f"conversion_efficiency:{center}:{element}"] = worked - allowed
    return found


def variances(
    activity: Balances, statistics: Mapping[str, Decimal], rates: Rates | None = None
) -> dict[str, Decimal]:
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
    if rates is not None:
        split = hours_variances(statistics, rates)
        for kind in ("conversion_spending", "conversion_efficiency"):
            parts = {k: v for k, v in split.items() if k.startswith(kind + ":")}
            if parts:
                found[kind] = sum(parts.values(), ZERO)
                found.update(parts)
    for key, account in (
        ("revaluation", Account.REVALUATION_VARIANCE),
        ("inventory_adjustment", Account.INVENTORY_ADJUSTMENT),
        ("rounding", Account.ROUNDING_VARIANCE),
    ):
        if total(account):
            found[key] = total(account)
    for key, value in sorted(statistics.items()):
        if value and not key.startswith(NOT_VARIANCES):
            found[key] = value
    return found


def largest_remainder(amount: Decimal, weights: Sequence[Decimal], unit: Decimal) -> list[Decimal]:
    """``amount`` split in proportion to ``weights`` into multiples of ``unit``, summing to
    ``amount`` exactly: each share rounded toward zero, then the units left over go one each
    to the largest remainders (ties to the earlier weight). ``amount`` must be a multiple of
    ``unit`` and the weights must not sum to zero."""
    whole = sum(weights, ZERO)
    exact = [amount * w / whole for w in weights]
    shares = [e.quantize(unit, rounding=ROUND_DOWN) for e in exact]
    left = int((amount - sum(shares, ZERO)) / unit)
    step = unit if left > 0 else -unit
    order = sorted(range(len(weights)), key=lambda i: (-abs(exact[i] - shares[i]), i))
    for i in order[: abs(left)]:
        shares[i] += step
    return shares


def pool_of(account: Account, element: str) -> str | None:
    """The pool a balance belongs to: its variance type, by element where it has one."""
    if account in CONVERSION_ACCOUNTS:
        kind = "conversion"
    elif account in PRORATED_TO and element.startswith(PRORATED):
        return element[len(PRORATED) :]
    else:
        found = VARIANCE_TYPES.get(account)
        if found is None:
            return None
        kind = found
    return f"{kind}:{element}" if element else kind


def basis(pool: str, content: Mapping[str, Decimal]) -> Decimal:
    """The standard cost a pool is prorated by, out of what one account holds by element."""
    kind, _, element = pool.partition(":")
    if kind in ("purchase_price", "material_usage"):
        return content.get(MATERIAL, ZERO)
    if kind == "conversion":
        if element:
            return content.get(element, ZERO)
        return sum((v for e, v in content.items() if e != MATERIAL), ZERO)
    return sum(content.values(), ZERO)


#: What the memo of a disposal entry (and of a reopen's reversal of one) holds.
DISPOSAL_MEMO = ": dispose variances "


def is_disposal(memo: str) -> bool:
    """Whether an entry with ``memo`` disposes of variances (or reverses such an entry)."""
    return DISPOSAL_MEMO in memo


def disposal(
    settings: Settings,
    balances: Balances,
    date: dt.date,
    event: str,
    period: str,
    content: Content | None = None,
    explained: Mapping[str, Decimal] | None = None,
) -> Entry | None:
    """The entry that disposes of the variance accounts and conversion under/over-allocation.
    ``content``: standard cost by element in RIP, FG and COGS (needed to prorate);
    ``explained``: the period's variances (:func:`variances`); a ``keep`` disposition closes
    conversion into their spending and efficiency parts."""
    lines: list[Line] = []
    pools: dict[str, Decimal] = {}
    kept: dict[str, Decimal] = {}  # conversion under/over-allocation by element
    to_cogs = ZERO
    for (account, element), balance in sorted(balances.items()):
        pool = pool_of(account, element)
        if not balance or pool is None:
            continue
        how = settings.disposition_of(pool.partition(":")[0])
        if how is Disposition.NONE:
            continue
        if how is Disposition.KEEP:
            if account in CONVERSION_ACCOUNTS:
                lines.append(Line(account, -balance, element))
                kept[element] = kept.get(element, ZERO) + balance
            continue
        lines.append(Line(account, -balance, element))
        if how is Disposition.COGS:
            to_cogs += balance
        else:
            pools[pool] = pools.get(pool, ZERO) + balance
    for element, amount in kept.items():
        lines.extend(_kept_conversion(settings, amount, element, explained or {}))
    if to_cogs:
        lines.append(Line(Account.COGS, to_cogs))
    unit = quantum(settings.currency)
    for pool, amount in pools.items():
        # A negative holding (e.g. a sale reversed after its period closed) takes no share.
        weights = [max(basis(pool, (content or {}).get(a, {})), ZERO) for a in PRORATED_TO]
        if not any(weights):  # nothing holds the element: all of it is cost of sales
            weights = [ZERO] * (len(PRORATED_TO) - 1) + [Decimal(1)]
        for account, share in zip(
            PRORATED_TO, largest_remainder(amount, weights, unit), strict=True
        ):
            if share:
                element = "" if account is Account.COGS else PRORATED + pool
                lines.append(Line(account, share, element))
    if not lines:
        return None
    merged = totals(((ln.account, ln.element, ln.item), ln.amount) for ln in lines)
    final = tuple(Line(a, v, e, i) for (a, e, i), v in merged.items() if v)
    if not final:
        return None
    return Entry(date, event, f"close {period}{DISPOSAL_MEMO}({settings.disposal_memo})", final)


def _kept_conversion(
    settings: Settings, balance: Decimal, element: str, explained: Mapping[str, Decimal]
) -> list[Line]:
    """Under/over-allocation of ``element`` closed into the spending and efficiency variances
    (the part hours explain, to the cent) and the conversion variance (the rest)."""
    lines: list[Line] = []
    rest = balance
    for account, kind in (
        (Account.CONVERSION_SPENDING_VARIANCE, "conversion_spending"),
        (Account.CONVERSION_EFFICIENCY_VARIANCE, "conversion_efficiency"),
    ):
        exact = sum(
            (
                value
                for key, value in explained.items()
                if element and key.startswith(kind + ":") and key.rsplit(":", 1)[1] == element
            ),
            ZERO,
        )
        part = round_money(exact, settings.currency, settings.rounding)
        if part:
            lines.append(Line(account, part, element))
            rest -= part
    lines.append(Line(Account.CONVERSION_VARIANCE, rest, element))
    return lines


# ---------------------------------------------------------------- periodic count (issue 4)


def periodic_targets(
    standards: Standards, quantities: Mapping[str, Decimal], on: dt.date, settings: Settings
) -> dict[tuple[Account, str], Decimal]:
    """What RIP and FG must hold at a close of a ``count`` or ``cogs-first`` book, by
    (account, element), rounded: every stocked item's ``quantities`` at the period end (after
    counts, less consumption waiting for stock) at the standards of ``on``, as
    :func:`periodic_holding` places it: material under element "", conversion estimates under
    their element."""
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
    # Variances a close prorated into inventory are not stock at standard: they stay apart.
    held = {
        k: v
        for k, v in balances.items()
        if k[0] in inventory and v and not k[1].startswith(PRORATED)
    }
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
