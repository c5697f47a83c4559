"""The period as throughput accounting sees it, beside the absorption figures (issue 5).

Throughput accounting inventories only materials: throughput = sales - the material of what
was sold (at standard, plus the material variances of the period: purchase price, usage and
count adjustments, less the conversion of finished goods scrapped or counted missing, and of
lower levels inside assemblies scrapped under sequential costing, and the material share of
the revaluation variance, as new standards revalue the stock; under the periodic methods,
which post no usage or count variance, what the period bought less the growth of its
material in stock, beyond the material sold); all conversion is an operating expense of the
period it is incurred in. The absorption figures differ by the conversion that inventory
absorbs: net profit here and income there move apart when stock is built and come back
together when it is sold. The rounding variance, which is of no element, is left out: the
two may differ by its pennies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from rich.table import Table

from backflush.book import Book
from backflush.domain.model import INVENTORY_ACCOUNTS, Account, period_bounds, period_of
from backflush.domain.money import ZERO, round_money
from backflush.engine.close import MATERIAL, Content
from backflush.reports.document import gross_margin
from backflush.reports.tables import figures_table
from backflush.reports.variants import INVENTORY, RESULT_ACCOUNTS

#: The variances throughput takes whole as material (revaluation: its material share only).
MATERIAL_VARIANCES = ("purchase_price", "material_usage", "inventory_adjustment")


@dataclasses.dataclass(frozen=True, slots=True)
class Throughput:
    period: str
    sales: Decimal
    material_sold: Decimal  # standard material of the units sold
    material_variances: Decimal  # price, usage, counts (their material), revaluation
    operating_expense: Decimal  # actual conversion incurred in the period
    inventory_material: Decimal  # standard material of the stock at the period end
    gross_margin: Decimal  # absorption
    income: Decimal  # absorption: what the result accounts left in the period
    inventory: Decimal  # absorption: inventory on the books at the period end

    @property
    def throughput(self) -> Decimal:
        return self.sales - self.material_sold - self.material_variances

    @property
    def net_profit(self) -> Decimal:
        return self.throughput - self.operating_expense


def throughput(book: Book, period: str) -> Throughput:
    activity = book.activity.get(period, {})

    def moved(*accounts: Account) -> Decimal:
        return sum((v for (a, _), v in activity.items() if a in accounts), ZERO)

    content = book.standard_content(period)
    variances = book.period_variances(period)
    currency, rounding = book.settings.currency, book.settings.rounding

    def rounded(value: Decimal) -> Decimal:
        return round_money(value, currency, rounding)

    def material_in_stock(content: Content) -> Decimal:
        return rounded(
            sum((content.get(a, {}).get(MATERIAL, ZERO) for a in INVENTORY_ACCOUNTS), ZERO)
        )

    stock = book.balances_through(period)
    material_sold = rounded(content.get(Account.COGS, {}).get(MATERIAL, ZERO))
    inventory_material = material_in_stock(content)
    if book.settings.triggers.periodic:
        # Scrap, counts and usage post nothing here: what the close finds missing is in
        # COGS. The material spent is what the period bought (at its price) less what its
        # stock of material grew by, at standard; beyond the material of the units sold, a
        # variance.
        before = period_of(period_bounds(period)[0] - dt.timedelta(days=1))
        opening = material_in_stock(book.standard_content(before))
        spent = -moved(Account.ACCOUNTS_PAYABLE) - (inventory_material - opening)
        material_variances = spent - material_sold
    else:
        material_variances = (
            sum((variances.get(k, ZERO) for k in MATERIAL_VARIANCES), ZERO)
            - rounded(book.lost_conversion(period))
            - rounded(book.revalued(period).get(MATERIAL, ZERO))
        )
    return Throughput(
        period,
        sales=-moved(Account.SALES),
        material_sold=material_sold,
        material_variances=material_variances,
        operating_expense=-moved(Account.ACCRUED_CONVERSION),
        inventory_material=inventory_material,
        gross_margin=gross_margin(activity),
        income=-moved(*RESULT_ACCOUNTS),
        inventory=sum((v for (a, _), v in stock.items() if a in INVENTORY), ZERO),
    )


#: The figures of the throughput view, labelled, in the order reports show them.
ROWS = (
    ("sales", "sales"),
    ("material of units sold", "material_sold"),
    ("material variances", "material_variances"),
    ("throughput", "throughput"),
    ("operating expense (conversion)", "operating_expense"),
    ("net profit (throughput)", "net_profit"),
    ("inventory: material only", "inventory_material"),
    ("gross margin (absorption)", "gross_margin"),
    ("income (absorption)", "income"),
    ("inventory (absorption)", "inventory"),
)


def throughput_periods(book: Book) -> list[str]:
    """The book's periods and every month its stock moved in: a periodic book's completion
    backdated into a month it posted nothing in (no lines: it moves quantities only) may
    lose material there, which throughput shows in that month."""
    return sorted(set(book.periods()) | set(book.moved) | set(book.held_moved))


def throughput_table(book: Book, periods: list[str] | None = None) -> Table:
    """Every period side by side (:func:`throughput_periods`), or those of ``periods``."""
    periods = throughput_periods(book) if periods is None else periods
    found: list[object] = [throughput(book, p) for p in periods]
    title = "Throughput accounting beside absorption"
    return figures_table(title, periods, found, ROWS, book.settings.currency)
