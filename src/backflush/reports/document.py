"""The JSON document of DESIGN §4.1: balances, entries, periods, quantities, exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from backflush.book import Book
from backflush.domain.model import Account, Entry, Line, ProductionOrder
from backflush.domain.money import CONTEXT, ZERO, fmt, quantum
from backflush.engine.close import PRORATED


def money(value: Decimal, currency: str) -> str:
    """Money as a string with the currency's minor units ("12.50", "-3.00", "0.00")."""
    # in the 50-digit context: Python's default 28 digits would raise on a figure of 10^26
    rounded = value.quantize(quantum(currency), context=CONTEXT)
    return str(CONTEXT.add(rounded, ZERO))  # -0.00 shown as 0.00


def line_document(line: Line, currency: str) -> dict[str, str]:
    found = {
        "account": line.account.value,
        "debit": money(line.debit, currency),
        "credit": money(line.credit, currency),
    }
    if line.element:
        found["element"] = line.element
    if line.item:
        found["item"] = line.item
    return found


def entry_document(entry: Entry, currency: str) -> dict[str, Any]:
    return {
        "date": entry.date.isoformat(),
        "event": entry.event,
        "memo": entry.memo,
        "lines": [line_document(line, currency) for line in entry.lines],
    }


def gross_margin(activity: dict[tuple[Account, str], Decimal]) -> Decimal:
    def total(account: Account) -> Decimal:
        return sum((v for (a, _), v in activity.items() if a is account), ZERO)

    # Write-downs to net realisable value are shown with cost of sales (IAS 2.34).
    return -total(Account.SALES) - total(Account.COGS) - total(Account.NRV_WRITEDOWN)


def periods_document(book: Book) -> list[dict[str, Any]]:
    return [period_document(book, period) for period in book.periods()]


def period_document(book: Book, period: str) -> dict[str, Any]:
    """One period: its variances, whether (and by which event) it is closed, its gross margin,
    the balances at its close and its reopens."""
    currency = book.settings.currency
    result = book.closed.get(period)
    entry: dict[str, Any] = {
        "period": period,
        "variances": {k: money(v, currency) for k, v in book.period_variances(period).items()},
        "closed": result is not None,
        "gross_margin": money(gross_margin(book.activity.get(period, {})), currency),
    }
    if result is not None:
        entry["close_event"] = result.close_event
        entry["balances_at_close"] = {k: money(v, currency) for k, v in result.balances}
    if book.reopened(period):
        entry["reopened"] = reopens_document(book, period)
    return entry


def reopens_document(book: Book, period: str) -> list[dict[str, str]]:
    """The audit trail of a period's reopens: by which event, when, why, which close undone."""
    return [
        {"event": r.event, "date": r.date.isoformat(), "reason": r.reason,
         "close_event": r.close_event}
        for r in book.reopened(period)
    ]  # fmt: skip


def exception_document(book: Book, key: tuple[str, str, str]) -> dict[str, str]:
    """One backflush exception: a queued consumption, a negative-stock or unissued flag."""
    s = book.shortages[key]
    return {
        "event": s.event,
        "date": s.date.isoformat(),
        "kind": s.kind,
        "item": s.item,
        "quantity": fmt(s.quantity),
        "open": fmt(s.open),
        "status": book.exception_status(key),
        **({"cleared_by": book.cleared_by[key]} if key in book.cleared_by else {}),
        **({"reason": book.written_off[key]} if key in book.written_off else {}),
    }


def order_document(order: ProductionOrder) -> dict[str, Any]:
    """A production order: what was ordered, made, issued, consumed and returned."""

    def quantities(pairs: tuple[tuple[str, Decimal], ...]) -> dict[str, str]:
        return {k: fmt(v) for k, v in sorted(pairs) if v}

    return {
        "order": order.id,
        "item": order.item,
        "released": order.released.isoformat(),
        "quantity": fmt(order.quantity),
        "completed": fmt(order.completed),
        "scrapped": fmt(order.scrapped),
        # Over (+) or under (-) production against the order quantity.
        "difference": fmt(order.completed - order.quantity),
        "status": order.status,
        "issued": quantities(order.issued),
        "consumed": quantities(order.consumed),
        "returned": quantities(order.returned),
        **({"closed_by": order.closed_by} if order.closed_by else {}),
    }


def document(book: Book, numbered: Iterable[tuple[int, Entry]] | None = None) -> dict[str, Any]:
    """The whole book as one JSON-ready document (decimal strings, signed balances). Its
    entries are ``numbered`` (number, entry), by default the book's journal numbered in
    order; each carries its number (``entry_no``), which ``explain --entry`` reads."""
    currency = book.settings.currency
    balances = book.account_balances()
    return {
        "book": {
            "name": book.settings.name,
            "currency": currency,
            "triggers": book.settings.triggers.value,
            "disposition": book.settings.disposition.value,
            **(
                {"dispositions": {k: v.value for k, v in book.settings.dispositions}}
                if book.settings.dispositions
                else {}
            ),
            "shortage": book.settings.shortage.value,
            "inventory_unsold_conversion": book.settings.inventory_unsold_conversion,
            "rounding": book.settings.rounding,
            "count_variance": book.settings.count_variance.value,
            "exceptions_at_close": book.settings.exceptions_at_close.value,
            "lower_of_cost": book.settings.lower_of_cost.value,
            "journal_detail": book.settings.journal_detail.value,
        },
        "balances": {k: money(v, currency) for k, v in sorted(balances.items()) if v},
        "entries": [
            {"entry_no": number, **entry_document(e, currency)}
            for number, e in (enumerate(book.entries(), 1) if numbered is None else numbered)
        ],
        "periods": periods_document(book),
        "quantities": {k: fmt(v) for k, v in sorted(book.on_hand.items())},
        "in_process": {k: fmt(v) for k, v in sorted(book.in_process.items()) if v},
        "off_book": {k: money(v, currency) for k, v in book.off_book().items()},
        **_prorated(book),
        # count / cogs-first: what the next close would move into the inventory accounts.
        **(
            {"periodic_difference": money(book.periodic_difference(), currency)}
            if book.settings.triggers.periodic
            else {}
        ),
        "orders": [order_document(o) for _, o in sorted(book.orders.items())],
        "exceptions": [exception_document(book, k) for k in book.shortages],
        "net_realisable_value": nrv_document(book),
    }


def nrv_document(book: Book) -> dict[str, Any]:
    """Lower of cost and net realisable value: the estimates in force after the last event,
    the allowance standing per item (positive: written down by that much) and what each
    closed period found per item."""
    currency = book.settings.currency
    estimates: dict[str, dict[str, str]] = {}
    for item, posted in sorted(book.nrv_estimates.items()):
        date, event, value = max(enumerate(posted), key=lambda p: (p[1][0], p[0]))[1]
        estimates[item] = {"date": date.isoformat(), "event": event, "unit_value": fmt(value)}
    periods = []
    for period in sorted(book.closed):
        found = book.nrv_findings(period)
        if not found:
            continue
        items = {
            item: {
                "quantity": fmt(f.quantity),
                "standard": fmt(f.standard),
                **({"nrv": fmt(f.nrv)} if f.nrv is not None else {}),
                "unit_writedown": fmt(f.unit_writedown),
                "allowance": money(f.allowance, currency),
                "change": money(f.change, currency),
            }
            for item, f in sorted(found.items())
        }
        total = sum((f.change for f in found.values()), ZERO)
        periods.append({"period": period, "writedown": money(total, currency), "items": items})
    return {
        "policy": book.settings.lower_of_cost.value,
        "estimates": estimates,
        "allowance": {
            item: money(-value, currency)
            for item, value in sorted(book.nrv_allowance.items())
            if value
        },
        "periods": periods,
    }


def _prorated(book: Book) -> dict[str, Any]:
    """Variances prorated into inventory and still standing: {account: {variance: amount}}."""
    found: dict[str, dict[str, str]] = {}
    for (account, element), value in sorted(book.balances.items()):
        if value and element.startswith(PRORATED):
            pool = element.removeprefix(PRORATED)
            found.setdefault(account.value, {})[pool] = money(value, book.settings.currency)
    return {"prorated": found} if found else {}
