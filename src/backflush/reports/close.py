"""The close as a procedure: the checklist of a period and the aging of backflush exceptions.

Pure functions from a book (and the period's purchase and count events) to rows; nothing here
changes the book. ``backflush close PERIOD --check`` and ``backflush exceptions list`` print
them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from backflush.book import IN_PROCESS, Book
from backflush.domain.model import (
    Count,
    Event,
    ExceptionsAtClose,
    Kind,
    Purchase,
    next_period,
    period_bounds,
)
from backflush.domain.money import CONTEXT, ZERO, fmt

OK, WARN, FAIL = "ok", "warn", "fail"
#: Statuses from best to worst.
STATUSES = (OK, WARN, FAIL)
DEFAULT_DRIFT = Decimal("0.05")


@dataclass(frozen=True, slots=True)
class Check:
    """One row of the checklist: what was checked, ok / warn / fail, and why."""

    check: str
    status: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Aged:
    """A backflush exception with its age in days as of a date."""

    key: tuple[str, str, str]
    event: str
    date: dt.date
    kind: str
    item: str
    quantity: Decimal
    open: Decimal
    status: str
    age: int
    by: str = ""
    reason: str = ""


def aging(book: Book, as_of: dt.date, *, every: bool = False) -> list[Aged]:
    """Open backflush exceptions (``every``: all, cleared and flagged too) in queue order,
    with their age in days as of ``as_of``; those queued after ``as_of`` are left out (their
    status is the one they have now)."""
    found = []
    for key, entry in book.shortages.items():
        status = book.exception_status(key)
        if (not every and status != "open") or entry.date > as_of:
            continue
        found.append(
            Aged(
                key,
                entry.event,
                entry.date,
                entry.kind,
                entry.item,
                entry.quantity,
                entry.open,
                status,
                (as_of - entry.date).days,
                book.cleared_by.get(key, ""),
                book.written_off.get(key, ""),
            )
        )
    return found


def worst(checks: Iterable[Check]) -> str:
    return max((c.status for c in checks), key=STATUSES.index, default=OK)


def checklist(
    book: Book,
    period: str,
    events: Iterable[Event] | None = None,
    *,
    drift: Decimal = DEFAULT_DRIFT,
    today: dt.date | None = None,
) -> list[Check]:
    """The checks before closing ``period`` (YYYY-MM). ``events``: the period's purchases and
    counts (default: those the book has recorded, as an in-memory book has them all).
    ``today``: the day the checklist is read (default: today's date)."""
    first, last = period_bounds(period)
    if events is None:
        events = (r.event for r in book.recorded.values() if not r.reversed_by)
    in_period = [e for e in events if first <= e.date <= last]
    return [
        _order(book, period),
        _ended(period, last, dt.date.today() if today is None else today),
        _exceptions(book, period, first, last),
        _orders(book, last),
        _counts(book, period, last, [e for e in in_period if isinstance(e, Count)]),
        _drift(book, [e for e in in_period if isinstance(e, Purchase)], drift),
    ]


def _order(book: Book, period: str) -> Check:
    name = "periods close in order"
    done = book.closed.get(period)
    if done is not None:
        return Check(name, FAIL, (f"{period} is already closed by {done.close_event}",))
    latest = book.last_closed
    if latest is not None and period < latest:
        return Check(name, FAIL, (f"{period} is before {latest}, closed",))
    earlier = [p for p in book.periods() if p < period and p not in book.closed]
    if latest is not None and period != next_period(latest):
        earlier = sorted({next_period(latest), *earlier})
    if earlier:
        return Check(name, FAIL, tuple(f"{p} is still open" for p in earlier))
    reopens = [f"reopened by {r.event}: {r.reason}" for r in book.reopened(period)]
    return Check(name, OK, (f"latest closed period: {latest or 'none'}", *reopens))


def _ended(period: str, last: dt.date, today: dt.date) -> Check:
    """A period closed before it ends locks its remaining days: the shop floor's postings of
    them are refused (the close may be dated its last day; it is not refused)."""
    name = "the period has ended"
    if last < today:
        return Check(name, OK, (f"{period} ended on {last.isoformat()}",))
    return Check(
        name,
        WARN,
        (
            f"{period} ends on {last.isoformat()}; today is {today.isoformat()}: once it is "
            "closed, postings dated in its remaining days are refused",
        ),
    )


#: Open exceptions a checklist names one by one; past them it counts the rest (a queue of
#: thousands made a checklist of megabytes; the exceptions queue lists them all).
LISTED = 50


def _exceptions(book: Book, period: str, first: dt.date, last: dt.date) -> Check:
    name = "backflush exceptions"
    older = book.exceptions_before(first)
    within = [s for s in book.open_shortages() if first <= s.date <= last]
    waiting = [*older, *within]
    details = tuple(
        f"{s.event} {s.item}: {fmt(s.open)} open since {s.date.isoformat()} "
        f"({(last - s.date).days} days at the period end)"
        for s in waiting[:LISTED]
    )
    if len(waiting) > LISTED:
        details += (
            f"and {len(waiting) - LISTED:,} more: the exceptions queue lists them all "
            "(backflush exceptions list, GET /exceptions, /ui/exceptions)",
        )
    if older:
        refuse = book.settings.exceptions_at_close is ExceptionsAtClose.REFUSE
        status = FAIL if refuse else WARN
        return Check(name, status, (f"{len(older)} older than {period}", *details))
    if within:
        return Check(name, WARN, (f"{len(within)} of {period} still open", *details))
    return Check(name, OK, ("none open",))


def _orders(book: Book, last: dt.date) -> Check:
    name = "production orders"
    still = [o for o in book.orders.values() if not o.closed_by and o.released <= last]
    if not still:
        return Check(name, OK, ("no order released by the period end is open",))
    return Check(
        name,
        WARN,
        tuple(
            f"{o.id} ({o.item}) released {o.released.isoformat()}: made {fmt(o.completed)} "
            f"of {fmt(o.quantity)}, still open"
            for o in sorted(still, key=lambda o: o.id)
        ),
    )


def _counts(book: Book, period: str, last: dt.date, counts: list[Count]) -> Check:
    name = "counts and receipts"
    status, details = OK, []
    for item, quantity in sorted(book.on_hand_through(period).items()):
        if quantity < 0:
            status = WARN
            details.append(f"{item}: {fmt(quantity)} on hand at the period end (missing receipt?)")
    for (item, part), quantity in sorted(book.held_through(period).items()):
        if part == IN_PROCESS and quantity < 0:
            status = WARN
            details.append(
                f"{item}: {fmt(quantity)} in process at the period end (consumed beyond what was "
                "issued: issue it, or close its order)"
            )
    waiting: dict[str, Decimal] = {}
    for s in book.open_shortages():
        if s.date <= last:
            waiting[s.item] = waiting.get(s.item, ZERO) + s.open
    for item, quantity in sorted(waiting.items()):
        status = WARN
        details.append(f"{item}: {fmt(quantity)} still waits for stock (missing receipt or count?)")
    counted = {c.item for c in counts}
    stocked = [
        item
        for item, quantity in sorted(book.on_hand_through(period).items())
        if quantity and book.master.items[item].kind is not Kind.PHANTOM
    ]
    uncounted = [
        item for item in stocked if book.standards.policy(item).periodic and item not in counted
    ]
    if uncounted:
        status = FAIL
        details.append("not counted in the period (count-based policy): " + ", ".join(uncounted))
    if not details:
        details.append(f"{len(counted)} item(s) counted; no negative stock, nothing waiting")
    return Check(name, status, tuple(details))


def _drift(book: Book, purchases: list[Purchase], drift: Decimal) -> Check:
    name = "standards drift"
    paid: dict[str, Decimal] = {}
    standard: dict[str, Decimal] = {}
    quantity: dict[str, Decimal] = {}
    for p in purchases:
        paid[p.item] = paid.get(p.item, ZERO) + p.quantity * p.unit_cost
        standard[p.item] = (
            standard.get(p.item, ZERO) + p.quantity * book.standards.unit_cost(p.item, p.date).total
        )
        quantity[p.item] = quantity.get(p.item, ZERO) + p.quantity
    details = []
    for item in sorted(paid):
        if not standard[item]:
            continue
        change = CONTEXT.divide(paid[item] - standard[item], standard[item])
        if abs(change) > drift:
            average = CONTEXT.divide(paid[item], quantity[item])
            unit = CONTEXT.divide(standard[item], quantity[item])
            details.append(
                f"{item}: paid {_short(average)} a unit on average against a standard of "
                f"{_short(unit)} ({_percent(change)}, threshold {_percent(drift, sign=False)})"
            )
    if details:
        return Check(name, WARN, tuple(details))
    return Check(
        name, OK, (f"{len(paid)} material(s) bought within {_percent(drift, sign=False)}",)
    )


def _short(value: Decimal) -> str:
    """A unit price to at most 4 decimals, at least 2 (1.00, 2.125, 0.3333)."""
    shown = value.quantize(Decimal("0.0001"), context=CONTEXT).normalize(CONTEXT)
    if int(shown.as_tuple().exponent) > -2:
        shown = shown.quantize(Decimal("0.01"), context=CONTEXT)
    return format(shown, "f")


def _percent(share: Decimal, *, sign: bool = True) -> str:
    value = (share * 100).quantize(Decimal("0.1"), context=CONTEXT)
    return f"{'+' if sign and value > 0 else ''}{value}%"


def checklist_document(period: str, checks: list[Check]) -> dict[str, Any]:
    return {
        "period": period,
        "status": worst(checks),
        "checks": [
            {"check": c.check, "status": c.status, "details": list(c.details)} for c in checks
        ],
    }


_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}


def checklist_table(period: str, checks: list[Check]) -> RenderableType:
    table = Table(title=f"Close checklist {period}", title_justify="left", title_style="bold")
    for column in ("check", "status", "details"):
        table.add_column(column)
    for c in checks:
        table.add_row(
            c.check,
            Text(c.status, style=_STYLE[c.status]),
            escape("\n".join(c.details)),  # ids and reasons are the user's: never markup
        )
    overall = worst(checks)
    verdict = {
        OK: "ready to close",
        WARN: "can close; look at the warnings",
        FAIL: "not ready to close",
    }[overall]
    return Group(table, Text(f"{period}: {overall} — {verdict}", style=_STYLE[overall]))


def aging_table(rows: list[Aged], as_of: dt.date) -> Table:
    table = Table(
        title=f"Backflush exceptions as of {as_of.isoformat()}",
        title_justify="left",
        title_style="bold",
    )
    numeric = ("age (days)", "quantity", "open")
    for column in ("event", "date", *numeric[:1], "kind", "item", *numeric[1:], "status"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for row in rows:
        status = row.status + (f" by {row.by}" if row.by else "")
        status += f": {row.reason}" if row.reason else ""
        table.add_row(
            escape(row.event),
            row.date.isoformat(),
            str(row.age),
            row.kind,
            escape(row.item),
            fmt(row.quantity),
            fmt(row.open),
            escape(status),
        )
    return table


def aging_document(rows: list[Aged], as_of: dt.date) -> dict[str, Any]:
    return {
        "as_of": as_of.isoformat(),
        "exceptions": [
            {
                "event": r.event,
                "date": r.date.isoformat(),
                "age_days": r.age,
                "kind": r.kind,
                "item": r.item,
                "quantity": fmt(r.quantity),
                "open": fmt(r.open),
                "status": r.status,
                **({"cleared_by": r.by} if r.by else {}),
                **({"reason": r.reason} if r.reason else {}),
            }
            for r in rows
        ],
    }
