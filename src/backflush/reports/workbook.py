"""The book's reports as one XLSX workbook: a sheet per report, numbers as numeric cells with
formats (never text), so a controller can filter, sum and pivot them (issue 5, outputs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from backflush.book import Book
from backflush.domain.model import Entry
from backflush.domain.money import ZERO, minor_units
from backflush.reports.tables import valuation
from backflush.reports.throughput import throughput

Cell = str | int | Decimal | dt.date | None


def _money_format(currency: str) -> str:
    places = minor_units(currency)
    return "#,##0" + ("." + "0" * places if places else "")


def _sheet(
    book: Workbook,
    title: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    money_columns: Iterable[int],
    number_format: str,
) -> Worksheet:
    sheet: Worksheet = book.create_sheet(title)
    sheet.append(list(header))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    money = set(money_columns)
    for row in rows:
        sheet.append(list(row))
        for column in money:
            sheet.cell(sheet.max_row, column + 1).number_format = number_format
    sheet.freeze_panes = "A2"
    for column, name in enumerate(header, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = max(12, len(name) + 2)
    return sheet


def write_workbook(book: Book, entries: Iterable[Entry], path: Path) -> None:
    """Trial balance, valuation, variances by period, throughput and the journal."""
    currency = book.settings.currency
    fmt = _money_format(currency)
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    balances = sorted(book.account_balances().items())
    _sheet(
        workbook,
        "Trial balance",
        ("account", "debit", "credit"),
        ((a, v if v > 0 else None, -v if v < 0 else None) for a, v in balances if v),
        (1, 2),
        fmt,
    )
    _sheet(
        workbook,
        "Valuation",
        ("item", "kind", "on hand", "in process", "unit standard", "on books", "off books"),
        (
            (
                r.item,
                r.kind.value,
                r.on_hand,
                r.in_process,
                r.unit_standard,
                r.on_books,
                r.off_books,
            )
            for r in valuation(book)
        ),
        (4, 5, 6),
        fmt,
    )
    periods = book.periods()
    found = {p: book.period_variances(p) for p in periods}
    keys = list(dict.fromkeys(k for p in periods for k in found[p]))
    _sheet(
        workbook,
        "Variances",
        ("variance (+ unfavorable)", *periods),
        ((k, *(found[p].get(k, ZERO) for p in periods)) for k in keys),
        range(1, len(periods) + 1),
        fmt,
    )
    figures = [throughput(book, p) for p in periods]
    names = ("sales", "material_sold", "material_variances", "throughput", "operating_expense",
             "net_profit", "inventory_material", "gross_margin", "income", "inventory")  # fmt: skip
    _sheet(
        workbook,
        "Throughput",
        ("figure", *periods),
        ((n, *(getattr(t, n) for t in figures)) for n in names),
        range(1, len(periods) + 1),
        fmt,
    )
    _sheet(
        workbook,
        "Journal",
        ("date", "event", "memo", "account", "element", "item", "debit", "credit"),
        (
            (
                e.date,
                e.event,
                e.memo,
                ln.account.value,
                ln.element,
                ln.item,
                ln.debit or None,
                ln.credit or None,
            )
            for e in entries
            for ln in e.lines
        ),
        (6, 7),
        fmt,
    )
    workbook.save(path)
