"""The JSON documents the API reads out (decimals as strings): the CLI's documents where it
has one, small ones here where the CLI prints only a table."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from backflush.book import Book
from backflush.domain.model import Entry
from backflush.domain.money import ZERO, fmt
from backflush.reports.analysis import Selection, margin_document, variance_document
from backflush.reports.document import (
    document,
    entry_document,
    exception_document,
    money,
    nrv_document,
    order_document,
    periods_document,
)
from backflush.reports.flags import Thresholds, flags_document, red_flags
from backflush.reports.statements import statements
from backflush.reports.tables import (
    trial_balance_rows,
    valuation,
    valuation_reconciliation,
)
from backflush.reports.throughput import ROWS as THROUGHPUT_ROWS
from backflush.reports.throughput import throughput
from backflush.reports.workbook import csv_rows, report_sheets


class ReportKind(StrEnum):
    summary = "summary"
    trial_balance = "trial-balance"
    valuation = "valuation"
    variances = "variances"
    exceptions = "exceptions"
    orders = "orders"
    statements = "statements"
    nrv = "nrv"
    margin = "margin"
    variance_analysis = "variance-analysis"
    flags = "flags"
    throughput = "throughput"


_RANGED = frozenset(
    {
        ReportKind.margin,
        ReportKind.variance_analysis,
        ReportKind.statements,
        ReportKind.variances,
        ReportKind.throughput,
    }
)
_BY_ITEM = frozenset({ReportKind.margin, ReportKind.variance_analysis, ReportKind.valuation})
#: The query parameters only some reports take, and those reports (as ``backflush report``'s
#: options): another report given one is refused, not answered as if it were not there.
SELECTING: dict[str, frozenset[ReportKind]] = {
    "from": _RANGED,
    "to": _RANGED | {ReportKind.trial_balance},
    "item": _BY_ITEM,
    "family": _BY_ITEM,
    "site": _BY_ITEM,
}

#: The reports with a CSV form: their sheet of the workbook (``backflush report --csv``).
CSV_SHEETS = {
    ReportKind.trial_balance: "Trial balance",
    ReportKind.valuation: "Valuation",
    ReportKind.variances: "Variances",
    ReportKind.throughput: "Throughput",
    ReportKind.margin: "Margin by product",
    ReportKind.variance_analysis: "Variance analysis",
    ReportKind.flags: "Flags",
}


def csv_report(book: Book, kind: ReportKind) -> str:
    """The report ``kind`` as CSV text: its workbook sheet (:func:`csv_rows`)."""
    (sheet,) = [s for s in report_sheets(book, []) if s.title == CSV_SHEETS[kind]]
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(csv_rows(sheet, book.settings.currency))
    return text.getvalue()


def throughput_document(book: Book, periods: list[str]) -> dict[str, Any]:
    """Throughput accounting per period beside absorption (``report --what throughput``)."""
    currency = book.settings.currency
    found = []
    for period in periods:
        figures = throughput(book, period)
        shown: dict[str, str] = {"period": period}
        for _, name in THROUGHPUT_ROWS:
            shown[name] = money(getattr(figures, name), currency)
        found.append(shown)
    return {"currency": currency, "periods": found}


def summary_document(book: Book) -> dict[str, Any]:
    """The book's JSON document (DESIGN §4.1) without its journal (``GET /journal`` pages
    through that)."""
    found = document(book, [])
    del found["entries"]
    return found


def trial_balance_document(book: Book, through: str | None = None) -> dict[str, Any]:
    """The balances per account now, or at the end of period ``through``."""
    currency = book.settings.currency
    rows = trial_balance_rows(book, through)
    accounts = [
        {"account": a.value, "debit": money(d, currency), "credit": money(c, currency)}
        for a, d, c in rows
    ]
    debits = sum((d for _, d, _ in rows), ZERO)
    credits = sum((c for _, _, c in rows), ZERO)
    return {
        "currency": currency,
        "through": through,
        "accounts": accounts,
        "total": {"debit": money(debits, currency), "credit": money(credits, currency)},
    }


def valuation_document(book: Book, selection: Selection) -> dict[str, Any]:
    currency = book.settings.currency
    selected = None if selection.every_item else partial(selection.covers, master=book.master)
    money_fields = {"on_books", "off_books"}
    rows = []
    on_total = off_total = ZERO
    for row in valuation(book, selected):
        on_total += row.on_books
        off_total += row.off_books
        shown: dict[str, str] = {}
        for name, value in dataclasses.asdict(row).items():
            if isinstance(value, Decimal):
                shown[name] = money(value, currency) if name in money_fields else fmt(value)
            else:
                shown[name] = str(getattr(value, "value", value))
        rows.append(shown)
    found: dict[str, Any] = {
        "currency": currency,
        "items": rows,
        "total": {"on_books": money(on_total, currency), "off_books": money(off_total, currency)},
    }
    if selected is None:  # the inventory accounts hold every item: no reconciliation of some
        found["reconciliation"] = [
            {"label": label, "account": account or None, "amount": money(amount, currency)}
            for label, account, amount in valuation_reconciliation(book, on_total)
        ]
    return found


def statements_document(book: Book, periods: list[str]) -> dict[str, Any]:
    currency = book.settings.currency
    found = []
    for period in periods:
        figures = statements(book, period)
        shown: dict[str, str] = {"period": period}
        for name, value in dataclasses.asdict(figures).items():
            if isinstance(value, Decimal):
                shown[name] = money(value, currency)
        for name in ("gross_margin", "income", "inventories", "assets"):
            shown[name] = money(getattr(figures, name), currency)
        found.append(shown)
    return {"currency": currency, "periods": found}


def exceptions_document(book: Book, status: str | None = None) -> dict[str, Any]:
    rows = [exception_document(book, key) for key in book.shortages]
    if status is not None:
        rows = [r for r in rows if r["status"] == status]
    return {"exceptions": rows}


def report_document(
    book: Book, kind: ReportKind, selection: Selection, periods: list[str]
) -> dict[str, Any]:
    """The report ``kind`` of ``book`` (``periods``: those of ``selection``)."""
    makers: dict[ReportKind, Callable[[], dict[str, Any]]] = {
        ReportKind.summary: lambda: summary_document(book),
        ReportKind.trial_balance: lambda: trial_balance_document(book, selection.last),
        ReportKind.valuation: lambda: valuation_document(book, selection),
        ReportKind.variances: lambda: {
            "currency": book.settings.currency,
            "periods": [p for p in periods_document(book) if p["period"] in periods],
        },
        ReportKind.exceptions: lambda: exceptions_document(book),
        ReportKind.orders: lambda: {
            "orders": [order_document(o) for _, o in sorted(book.orders.items())]
        },
        ReportKind.statements: lambda: statements_document(book, periods),
        ReportKind.nrv: lambda: nrv_document(book),
        ReportKind.margin: lambda: margin_document(book, selection),
        ReportKind.variance_analysis: lambda: variance_document(book, selection),
        ReportKind.flags: lambda: flags_document(red_flags(book), Thresholds()),
        ReportKind.throughput: lambda: throughput_document(book, periods),
    }
    return makers[kind]()


def journal_document(
    book: Book, numbered: list[tuple[int, Entry]], total: int, limit: int
) -> dict[str, Any]:
    """A page of the journal: each entry with its number; ``next``: the cursor of the next
    page (the last number shown), None on the last page."""
    currency = book.settings.currency
    entries = [{"entry_no": n, **entry_document(e, currency)} for n, e in numbered]
    more = len(numbered) == limit and numbered
    return {
        "currency": currency,
        "total": total,
        "entries": entries,
        "next": numbered[-1][0] if more else None,
    }
