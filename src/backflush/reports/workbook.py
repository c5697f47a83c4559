"""The book's reports as one XLSX workbook: a sheet per report, numbers as numeric cells with
formats (never text), so a controller can filter, sum and pivot them (issue 5, outputs)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

from backflush.book import Book
from backflush.domain.model import Entry
from backflush.domain.money import ZERO, decimals, fmt, minor_units
from backflush.formats.output import written
from backflush.reports.analysis import margins, variance_rows
from backflush.reports.document import money as money_text
from backflush.reports.flags import red_flags
from backflush.reports.tables import (
    INVENTORIED_OFF,
    unsold_conversion_inventoried,
    valuation,
    valuation_reconciliation,
)
from backflush.reports.throughput import ROWS as THROUGHPUT_ROWS
from backflush.reports.throughput import throughput, throughput_periods

Cell = str | int | Decimal | dt.date | None


def _money_format(currency: str) -> str:
    places = minor_units(currency)
    return "#,##0" + ("." + "0" * places if places else "")


@dataclasses.dataclass(frozen=True, slots=True)
class Sheet:
    """One report as rows: a title, a header, and which columns hold money."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    money: tuple[int, ...]


def report_sheets(book: Book, numbered: Iterable[tuple[int, Entry]]) -> list[Sheet]:
    """Trial balance, valuation, variances by period, throughput, red flags (at the default
    thresholds) and the journal."""
    balances = sorted(book.account_balances().items())
    periods = book.periods()
    found = {p: book.period_variances(p) for p in periods}
    keys = list(dict.fromkeys(k for p in periods for k in found[p]))
    months = throughput_periods(book)
    figures = [throughput(book, p) for p in months]
    names = [name for _, name in THROUGHPUT_ROWS]
    every_period = tuple(range(1, len(periods) + 1))
    margin = margins(book)
    return [
        Sheet(
            "Trial balance",
            ("account", "debit", "credit"),
            [(a, v if v > 0 else None, -v if v < 0 else None) for a, v in balances if v],
            (1, 2),
        ),
        Sheet(
            "Valuation",
            (
                "item",
                "kind",
                "on hand",
                "in process",
                "waiting",
                "unit standard",
                "on books",
                "off books",
            ),
            _valuation_rows(book),
            (5, 6, 7),
        ),
        Sheet(
            "Variances",
            ("variance (+ unfavorable)", *periods),
            [(k, *(found[p].get(k, ZERO) for p in periods)) for k in keys],
            every_period,
        ),
        Sheet(
            "Throughput",
            ("figure", *months),
            [(n, *(getattr(t, n) for t in figures)) for n in names],
            tuple(range(1, len(months) + 1)),
        ),
        Sheet(
            "Margin by product",
            ("period", "product", "family", "sold", "sales", "COGS", "gross margin"),
            [(r.period, r.item, r.family, r.sold, r.sales, r.cogs, r.gross_margin) for r in margin],
            (4, 5, 6),
        ),
        Sheet(
            "Variance analysis",
            ("period", "type", "element", "item", "work center", "amount (+ U)", "F/U", "posted"),
            [
                (r.period, r.type, r.element, r.item, r.work_center, r.amount, r.sign, r.posted)
                for r in variance_rows(book)
            ],
            (5,),
        ),
        Sheet(
            "Flags",
            ("kind", "subject", "periods", "figure", "comparison", "threshold", "message"),
            [
                (
                    f.kind,
                    f.subject,
                    ", ".join(f.periods),
                    f.value,
                    f.comparison,
                    f.threshold,
                    f.message,
                )
                for f in red_flags(book)
            ],
            (),
        ),
        Sheet(
            "Journal",
            ("entry", "date", "event", "memo", "account", "element", "item", "debit", "credit"),
            [
                (
                    number,
                    e.date,
                    e.event,
                    e.memo,
                    ln.account.value,
                    ln.element,
                    ln.item,
                    ln.debit or None,
                    ln.credit or None,
                )
                for number, e in numbered
                for ln in e.lines
            ],
            (7, 8),
        ),
    ]


def write_workbook(book: Book, numbered: Iterable[tuple[int, Entry]], path: Path) -> None:
    """The reports as one XLSX workbook, a sheet each, amounts as numeric cells. Written row
    by row (openpyxl's write-only mode): a journal of millions of lines in bounded memory.
    openpyxl is imported here, not with the module: the CLI starts faster."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    number_format = _money_format(book.settings.currency)
    with written(path) as out:  # nothing half-written: no sheet made before it opens
        workbook = Workbook(write_only=True)
        for found in report_sheets(book, numbered):
            sheet = workbook.create_sheet(found.title)
            sheet.freeze_panes = "A2"
            for column, name in enumerate(found.header, start=1):
                sheet.column_dimensions[get_column_letter(column)].width = max(12, len(name) + 2)
            head = []
            for name in found.header:
                cell = WriteOnlyCell(sheet, name)
                cell.font = Font(bold=True)
                head.append(cell)
            sheet.append(head)
            money = set(found.money)
            for row in found.rows:
                cells: list[object] = list(row)
                for column, value in enumerate(row):  # text, never a formula (an id may start =)
                    if isinstance(value, str) and value.startswith("="):
                        text = WriteOnlyCell(sheet, value)
                        text.data_type = "s"
                        cells[column] = text
                for column in money:
                    cell = WriteOnlyCell(sheet, row[column])  # type: ignore[arg-type]
                    cell.number_format = number_format
                    cells[column] = cell
                sheet.append(cells)
        workbook.save(out)


def _valuation_rows(book: Book) -> list[tuple[Cell, ...]]:
    """Stock at standard item by item, the total, and what takes it to the inventory accounts
    (:func:`~backflush.reports.tables.valuation_reconciliation`), as on the screen."""
    rows: list[tuple[Cell, ...]] = []
    on_total = off_total = ZERO
    for r in valuation(book):
        on_total += r.on_books
        off_total += r.off_books
        rows.append(
            (
                r.item,
                r.kind.value,
                r.on_hand,
                r.in_process,
                r.waiting,  # consumption queued for stock: credited already (on books)
                r.unit_standard,
                r.on_books,
                r.off_books,
            )
        )
    blank = (None,) * 4
    inventoried = unsold_conversion_inventoried(book)
    if inventoried:  # (see tables.INVENTORIED_OFF)
        off_total -= inventoried
        rows.append((INVENTORIED_OFF, None, *blank, None, -inventoried))
    rows.append(("total", None, *blank, on_total, off_total))
    for label, account, amount in valuation_reconciliation(book, on_total):
        rows.append((label, account or None, *blank, amount, None))
    return rows


def write_csv(book: Book, numbered: Iterable[tuple[int, Entry]], folder: Path) -> list[Path]:
    """The reports as CSV files in ``folder``, one per report (``trial_balance.csv``, ...):
    :func:`csv_rows`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for found in report_sheets(book, numbered):
        path = folder / (found.title.lower().replace(" ", "_") + ".csv")
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerows(csv_rows(found, book.settings.currency))
        paths.append(path)
    return paths


def csv_rows(sheet: Sheet, currency: str) -> Iterator[list[str]]:
    """``sheet`` as CSV rows, its header first: decimals exactly as the book holds them,
    money at least to the currency's minor unit (3346.00, as JSON writes it; an unrounded
    figure keeps its further digits), dates as ISO 8601."""
    yield list(sheet.header)
    places, money = minor_units(currency), set(sheet.money)
    for row in sheet.rows:
        found = [csv_text(value) for value in row]
        for column in money:
            value = row[column]
            if isinstance(value, Decimal) and decimals(value) < places:
                found[column] = money_text(value, currency)
        yield found


#: What a spreadsheet opening a CSV file takes text starting with for a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Cell) -> str:
    """A cell as CSV text: decimals exactly as held, dates ISO 8601, true or false (as JSON
    writes them), nothing for None. Text that a spreadsheet would run as a formula (an id
    such as ``=HYPERLINK(...)``) is written after an apostrophe, which shows it as text
    (OWASP's advice on CSV injection); numbers are never text here, so -5.00 stays a number."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
