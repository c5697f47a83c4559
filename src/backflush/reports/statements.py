"""Income statement and balance sheet extracts per period (issue 5, core reports).

The income statement of a period is its activity on the result accounts: sales, cost of goods
sold (standard cost of what was sold plus the variances a close wrote off to it), write-downs
to net realisable value, and the variances kept as their own lines. The balance sheet extract
is the balances at the period end: inventories (net of the NRV allowance), receivables,
payables, accrued conversion, and the result to date that balances them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal

from rich.table import Table

from backflush.book import Book
from backflush.domain.model import Account
from backflush.domain.money import ZERO
from backflush.engine.close import VARIANCE_TYPES
from backflush.reports.tables import figures_table

Balances = Mapping[tuple[Account, str], Decimal]


@dataclasses.dataclass(frozen=True, slots=True)
class Statements:
    period: str
    sales: Decimal
    cogs: Decimal
    nrv_writedown: Decimal
    variances: Decimal  # variances kept as their own lines (and conversion left open)
    raw_in_process: Decimal
    finished_goods: Decimal
    other_inventory: Decimal  # materials and work in process (sequential costing)
    nrv_allowance: Decimal
    receivables: Decimal
    payables: Decimal  # accounts payable (a credit, shown positive)
    accrued_conversion: Decimal  # shown positive
    result_to_date: Decimal  # income of every period up to this one

    @property
    def gross_margin(self) -> Decimal:
        return self.sales - self.cogs - self.nrv_writedown

    @property
    def income(self) -> Decimal:
        return self.gross_margin - self.variances

    @property
    def inventories(self) -> Decimal:
        return self.raw_in_process + self.finished_goods + self.other_inventory + self.nrv_allowance

    @property
    def assets(self) -> Decimal:
        return self.inventories + self.receivables


def _total(balances: Balances, *accounts: Account) -> Decimal:
    return sum((v for (a, _), v in balances.items() if a in accounts), ZERO)


OPEN_VARIANCES = (Account.CONVERSION_CONTROL, Account.CONVERSION_ALLOCATED, *VARIANCE_TYPES)


def statements(book: Book, period: str) -> Statements:
    activity = book.activity.get(period, {})
    end = book.balances_through(period)
    result = (Account.SALES, Account.COGS, Account.NRV_WRITEDOWN, *OPEN_VARIANCES)
    return Statements(
        period,
        sales=-_total(activity, Account.SALES),
        cogs=_total(activity, Account.COGS),
        nrv_writedown=_total(activity, Account.NRV_WRITEDOWN),
        variances=_total(activity, *OPEN_VARIANCES),
        raw_in_process=_total(end, Account.RAW_IN_PROCESS),
        finished_goods=_total(end, Account.FINISHED_GOODS),
        other_inventory=_total(end, Account.MATERIALS, Account.WORK_IN_PROCESS),
        nrv_allowance=_total(end, Account.NRV_ALLOWANCE),
        receivables=_total(end, Account.ACCOUNTS_RECEIVABLE),
        payables=-_total(end, Account.ACCOUNTS_PAYABLE),
        accrued_conversion=-_total(end, Account.ACCRUED_CONVERSION),
        result_to_date=-_total(end, *result),
    )


ROWS = (
    ("Income statement", None),
    ("sales", "sales"),
    ("cost of goods sold", "cogs"),
    ("write-down to net realisable value", "nrv_writedown"),
    ("gross margin", "gross_margin"),
    ("variances kept apart (+ unfavorable)", "variances"),
    ("income", "income"),
    ("Balance sheet at the period end", None),
    ("raw and in process", "raw_in_process"),
    ("finished goods", "finished_goods"),
    ("materials and work in process", "other_inventory"),
    ("allowance to net realisable value", "nrv_allowance"),
    ("inventories", "inventories"),
    ("accounts receivable", "receivables"),
    ("assets", "assets"),
    ("accounts payable", "payables"),
    ("accrued conversion", "accrued_conversion"),
    ("result to date", "result_to_date"),
)


def statements_table(book: Book, periods: list[str] | None = None) -> Table:
    """Every period side by side, or those of ``periods``."""
    periods = book.periods() if periods is None else periods
    found: list[object] = [statements(book, p) for p in periods]
    title = "Income statement and balance sheet extracts"
    return figures_table(title, periods, found, ROWS, book.settings.currency)
