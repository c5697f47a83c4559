"""Margin by product and variance analysis, over a range of periods and a selection of items
(by id, product family or site) (issue 5, core reports).

Both read the journal summed per item (``Book.item_activity``) less the disposal entries of
closes (``Book.disposed``), never the journal itself, so they answer as fast on a book of
millions of events as on the examples. Unselected, they reconcile to the trial balance:

* margin: the products' sales and cost of goods sold plus the line "closed to COGS" (the
  variances a close wrote off to it) are the period's sales and COGS, and with the line
  "write-down to NRV" its gross margin as the income statement gives it;
* variances: the rows of each type add up to the period's variance before disposal, as the
  close found it (``Book.period_variances``). Rows explaining conversion by work center
  (spending, efficiency) are an analysis of the conversion row, not added to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum

from rich import box
from rich.markup import escape
from rich.table import Table

from backflush.book import Book
from backflush.domain.model import Account, MasterData
from backflush.domain.money import CONTEXT, ZERO, fmt
from backflush.reports.document import money
from backflush.reports.tables import _amount

ItemSums = Mapping[tuple[Account, str, str], Decimal]

#: Variance accounts and the type they report (as ``Book.period_variances`` names them).
POSTED_TYPES: dict[Account, str] = {
    Account.PURCHASE_PRICE_VARIANCE: "purchase_price",
    Account.MATERIAL_USAGE_VARIANCE: "material_usage",
    Account.REVALUATION_VARIANCE: "revaluation",
    Account.INVENTORY_ADJUSTMENT: "inventory_adjustment",
    Account.ROUNDING_VARIANCE: "rounding",
}
CONVERSION = (Account.CONVERSION_CONTROL, Account.CONVERSION_ALLOCATED)
#: Where hours are reported, conversion explained per work center and element.
HOURS_SPLIT = ("conversion_spending", "conversion_efficiency")
#: What the margin report shows for lines a close posted to sales or COGS.
CLOSED_TO_COGS = "(closed to COGS)"
#: The margin's line of a period's write-down of stock to net realisable value (an expense
#: of the gross margin, as on the income statement).
WRITTEN_DOWN = "(write-down to NRV)"
#: Lines without an item (conversion actually spent, for one).
NO_ITEM = ""
#: What the margin report shows for COGS without a product.
NOT_BY_PRODUCT = "(not by product)"
#: A count-based book knows its cost of goods sold only per period, not per product.
ALL_PRODUCTS = "(all products: COGS of a count-based book is not by product)"


class SelectionError(ValueError):
    """A period range or an item selection that names nothing the book has."""


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """Periods ``first``..``last`` (inclusive, None: open-ended) and the items to show
    (empty: all; else those with one of ``items``' ids, in ``family``, at ``site``)."""

    first: str | None = None
    last: str | None = None
    items: frozenset[str] = frozenset()
    family: str | None = None
    site: str | None = None

    @property
    def every_item(self) -> bool:
        return not self.items and self.family is None and self.site is None

    def periods(self, book: Book, every: list[str] | None = None) -> list[str]:
        """The periods selected of ``every`` (by default the book's)."""
        if self.first and self.last and self.first > self.last:
            raise SelectionError(f"--from {self.first} is after --to {self.last}")
        every = book.periods() if every is None else every
        found = [
            p
            for p in every
            if (self.first is None or p >= self.first) and (self.last is None or p <= self.last)
        ]
        if every and not found:
            raise SelectionError(
                f"no period of the book is in {self.first or '…'} to {self.last or '…'}; "
                f"it has {every[0]} to {every[-1]}"
            )
        return found

    def check(self, master: MasterData) -> None:
        unknown = sorted(self.items - set(master.items))
        if unknown:
            raise SelectionError(f"--item: no item {', '.join(unknown)} in this book")
        for name, value in (("family", self.family), ("site", self.site)):
            known = {getattr(i, name) for i in master.items.values()} - {""}
            if value is not None and value not in known:
                raise SelectionError(
                    f"--{name}: no item has {name} {value!r}; the book has "
                    f"{', '.join(map(repr, sorted(known))) or f'no {name}'}"
                )

    def covers(self, item: str, master: MasterData) -> bool:
        if self.every_item:
            return True
        found = master.items.get(item)
        if found is None:  # lines without an item (or a close's) belong to no selection
            return False
        return (
            (not self.items or item in self.items)
            and (self.family is None or found.family == self.family)
            and (self.site is None or found.site == self.site)
        )


def own_activity(book: Book, period: str) -> dict[tuple[Account, str, str], Decimal]:
    """The period's journal per (account, element, item), before variances were disposed of."""
    found = dict(book.item_activity.get(period, {}))
    for key, amount in book.disposed.get(period, {}).items():
        found[key] = found.get(key, ZERO) - amount
    return found


# ---------------------------------------------------------------- margin by product


@dataclasses.dataclass(frozen=True, slots=True)
class MarginRow:
    period: str
    item: str  # CLOSED_TO_COGS: what closes wrote off to cost of goods sold
    family: str
    sold: Decimal  # units
    sales: Decimal
    cogs: Decimal

    @property
    def gross_margin(self) -> Decimal:
        return self.sales - self.cogs

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.sales:
            return None
        return (self.gross_margin * 100 / self.sales).quantize(Decimal("0.1"), context=CONTEXT)


def by_item(sums: ItemSums, accounts: tuple[Account, ...]) -> dict[tuple[Account, str], Decimal]:
    """``sums`` on ``accounts``, summed by (account, item) over the elements."""
    found: dict[tuple[Account, str], Decimal] = {}
    for (account, _, item), value in sums.items():
        if account in accounts:
            found[(account, item)] = found.get((account, item), ZERO) + value
    return found


def margins(book: Book, selection: Selection = Selection()) -> list[MarginRow]:
    """Sales, cost of goods sold and gross margin per product and period (at the standard
    cost the sales took; what a close later wrote off to COGS on a line of its own)."""
    selection.check(book.master)
    if book.settings.triggers.periodic:
        return _periodic_margins(book, selection)
    rows: list[MarginRow] = []
    for period in selection.periods(book):
        totals = by_item(own_activity(book, period), (Account.SALES, Account.COGS))
        flows = book.flows.get(period, {})
        for item in sorted({item for _, item in totals}):
            if not selection.covers(item, book.master):
                continue
            sales = -totals.get((Account.SALES, item), ZERO)
            cogs = totals.get((Account.COGS, item), ZERO)
            sold = -flows.get((item, "sold"), ZERO)
            if sales or cogs or sold:
                known = book.master.items.get(item)
                family = known.family if known is not None else ""
                shown = item if item != NO_ITEM else NOT_BY_PRODUCT
                rows.append(MarginRow(period, shown, family, sold, sales, cogs))
        disposed = book.disposed.get(period, {})
        sales = -sum((v for (a, _, _), v in disposed.items() if a is Account.SALES), ZERO)
        cogs = sum((v for (a, _, _), v in disposed.items() if a is Account.COGS), ZERO)
        if selection.every_item and (sales or cogs):
            rows.append(MarginRow(period, CLOSED_TO_COGS, "", ZERO, sales, cogs))
        rows += _written_down(book, period, selection)
    return rows


def _written_down(book: Book, period: str, selection: Selection) -> list[MarginRow]:
    """The period's write-down to NRV as a margin line (unselected only: it is the book's)."""
    activity = book.activity.get(period, {})
    amount = sum((v for (a, _), v in activity.items() if a is Account.NRV_WRITEDOWN), ZERO)
    if not (selection.every_item and amount):
        return []
    return [MarginRow(period, WRITTEN_DOWN, "", ZERO, ZERO, amount)]


def _periodic_margins(book: Book, selection: Selection) -> list[MarginRow]:
    """``count`` / ``cogs-first``: costs go to COGS by what was bought, and the close takes
    the inventories out of it; a margin per product would be fiction. One row per period."""
    if not selection.every_item:
        raise SelectionError(
            f"a {book.settings.triggers.value} book has no cost of goods sold by product; "
            "ask for its margin without --item, --family or --site"
        )
    rows = []
    for period in selection.periods(book):
        activity = book.activity.get(period, {})
        sales = -sum((v for (a, _), v in activity.items() if a is Account.SALES), ZERO)
        cogs = sum((v for (a, _), v in activity.items() if a is Account.COGS), ZERO)
        flows = book.flows.get(period, {})
        sold = -sum((q for (_, f), q in flows.items() if f == "sold"), ZERO)
        if sales or cogs or sold:
            rows.append(MarginRow(period, ALL_PRODUCTS, "", sold, sales, cogs))
        rows += _written_down(book, period, selection)
    return rows


def margin_totals(rows: Iterable[MarginRow]) -> dict[str, MarginRow]:
    """One total row per period (the sum of its rows)."""
    found: dict[str, MarginRow] = {}
    for row in rows:
        was = found.get(row.period, MarginRow(row.period, "total", "", ZERO, ZERO, ZERO))
        found[row.period] = dataclasses.replace(
            was, sold=was.sold + row.sold, sales=was.sales + row.sales, cogs=was.cogs + row.cogs
        )
    return found


# ---------------------------------------------------------------- variance analysis


class By(StrEnum):
    """What a variance analysis groups by (besides the period)."""

    type = "type"
    item = "item"
    element = "element"
    work_center = "work-center"


def favorability(amount: Decimal) -> str:
    """U for an unfavorable variance (positive), F for a favorable one, nothing for zero."""
    return "U" if amount > 0 else "F" if amount < 0 else ""


@dataclasses.dataclass(frozen=True, slots=True)
class VarianceRow:
    period: str
    type: str  # purchase_price, material_usage, conversion, conversion_spending, ...
    element: str
    item: str
    work_center: str
    amount: Decimal  # + unfavorable, − favorable
    #: False for rows that explain another (hours split of conversion) or memo figures no
    #: account holds (purchase price not recorded where purchases are not a trigger).
    posted: bool = True

    @property
    def sign(self) -> str:
        return favorability(self.amount)

    def key(self, by: By) -> str:
        return {
            By.type: self.type,
            By.item: self.item,
            By.element: self.element,
            By.work_center: self.work_center,
        }[by]


def variance_rows(book: Book, selection: Selection = Selection()) -> list[VarianceRow]:
    """Every variance of the selected periods before disposal, as finely as the book knows
    it: posted variances by element and item; conversion by element (actual less applied:
    not by item, since actual cost is not); where hours are reported, conversion spending
    and efficiency by work center and element; memo figures."""
    selection.check(book.master)
    rows: list[VarianceRow] = []
    for period in selection.periods(book):
        own = own_activity(book, period)
        for (account, element, item), amount in sorted(own.items()):
            kind = POSTED_TYPES.get(account)
            if kind is not None and amount and selection.covers(item, book.master):
                rows.append(VarianceRow(period, kind, element, item, "", amount))
        if selection.every_item:
            conversion: dict[str, Decimal] = {}
            for (account, element, _), amount in own.items():
                if account in CONVERSION:
                    conversion[element] = conversion.get(element, ZERO) + amount
            for element, amount in sorted(conversion.items()):
                if amount:
                    rows.append(VarianceRow(period, "conversion", element, NO_ITEM, "", amount))
            for key, amount in book.period_variances(period).items():
                kind, _, rest = key.partition(":")
                if not amount:
                    continue
                if kind in HOURS_SPLIT:
                    if rest:  # the total of the kind is the sum of these
                        center, element = rest.rsplit(":", 1)
                        rows.append(
                            VarianceRow(period, kind, element, NO_ITEM, center, amount, False)
                        )
                elif kind not in _POSTED_OR_SPLIT:
                    rows.append(VarianceRow(period, key, "", NO_ITEM, "", amount, False))
    return rows


_POSTED_OR_SPLIT = {*POSTED_TYPES.values(), "conversion", *HOURS_SPLIT}


def posted_by_type(rows: Iterable[VarianceRow]) -> dict[str, dict[str, Decimal]]:
    """Per period, the posted rows summed by type: what reconciles to the close."""
    found: dict[str, dict[str, Decimal]] = {}
    for row in rows:
        if row.posted:
            by_type = found.setdefault(row.period, {})
            by_type[row.type] = by_type.get(row.type, ZERO) + row.amount
    return found


def pivot(rows: Iterable[VarianceRow], by: By) -> dict[tuple[str, str], dict[str, Decimal]]:
    """(type, value of ``by``) → period → amount, types in the order of the close (memo
    figures last). Grouped by type, a row is the type itself."""
    found: dict[tuple[str, str], dict[str, Decimal]] = {}
    for row in rows:
        key = (row.type, "" if by is By.type else row.key(by))
        cells = found.setdefault(key, {})
        cells[row.period] = cells.get(row.period, ZERO) + row.amount
    order = {kind: n for n, kind in enumerate(TYPE_ORDER)}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])))


TYPE_ORDER = (
    "purchase_price",
    "material_usage",
    "conversion",
    *HOURS_SPLIT,
    "revaluation",
    "inventory_adjustment",
    "rounding",
)


# ---------------------------------------------------------------- terminal tables


def margin_table(book: Book, selection: Selection = Selection()) -> Table:
    rows = margins(book, selection)
    currency = book.settings.currency
    # No vertical rules: the figures fit an 80-column terminal beside a readable product.
    table = Table(
        title="Gross margin by product",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    families = any(r.family for r in rows)  # no column for a book without families
    table.add_column("period", no_wrap=True)
    table.add_column("product", overflow="fold", min_width=10)
    if families:
        table.add_column("family", overflow="fold")
    for name in ("sold", "sales", "COGS", "gross margin", "%"):
        table.add_column(name, justify="right", no_wrap=True)  # figures are never cut
    totals = margin_totals(rows)
    for period in dict.fromkeys(r.period for r in rows):
        for row in (r for r in rows if r.period == period):
            table.add_row(*_margin_cells(row, currency, families))
        total = totals[period]
        if not selection.every_item:  # what closes wrote off to COGS belongs to no product
            total = dataclasses.replace(total, item="selection, at standard")
        table.add_row(*_margin_cells(total, currency, families), style="bold", end_section=True)
    return table


def _margin_cells(row: MarginRow, currency: str, families: bool) -> list[str]:
    percent = row.margin_percent
    return [
        row.period,
        escape(row.item),
        *([escape(row.family)] if families else []),
        f"{row.sold:,}" if row.sold else "",
        _amount(row.sales, currency),
        _amount(row.cogs, currency),
        _amount(row.gross_margin, currency),
        "" if percent is None else f"{percent}",
    ]


def variance_analysis_table(
    book: Book, selection: Selection = Selection(), by: By = By.type
) -> Table:
    rows = variance_rows(book, selection)
    periods = list(dict.fromkeys(r.period for r in rows)) or selection.periods(book)
    currency = book.settings.currency
    title = f"Variances by {by.value} and period (+ unfavorable U, − favorable F)"
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("variance", overflow="fold")
    if by is not By.type:
        table.add_column(by.value, overflow="fold")
    for period in periods:
        table.add_column(period, justify="right", no_wrap=True)  # figures are never cut
    for (kind, value), cells in pivot(rows, by).items():
        if kind in HOURS_SPLIT:  # explains conversion: not to be added to it
            label = f"  of which {kind.removeprefix('conversion_')}"
        elif kind not in _POSTED_OR_SPLIT:
            label = f"{kind} (memo, not posted)"
        else:
            label = kind
        shown = [escape(label)] + ([escape(value or "—")] if by is not By.type else [])
        for period in periods:
            amount = cells.get(period, ZERO)
            shown.append(f"{_amount(amount, currency)} {favorability(amount)}" if amount else "")
        table.add_row(*shown)
    return table


# ---------------------------------------------------------------- JSON


def margin_document(book: Book, selection: Selection = Selection()) -> dict[str, object]:
    """Margin by product as JSON: decimals as strings, a total per period."""
    rows = margins(book, selection)
    currency = book.settings.currency

    def shown(row: MarginRow) -> dict[str, str | None]:
        percent = row.margin_percent
        return {
            "item": row.item,
            "family": row.family,
            "sold": fmt(row.sold),
            "sales": money(row.sales, currency),
            "cogs": money(row.cogs, currency),
            "gross_margin": money(row.gross_margin, currency),
            "margin_percent": None if percent is None else str(percent),
        }

    totals = margin_totals(rows)
    return {
        "currency": currency,
        "periods": [
            {
                "period": period,
                "products": [shown(r) for r in rows if r.period == period],
                "total": shown(total),
            }
            for period, total in totals.items()
        ],
    }


def variance_document(book: Book, selection: Selection = Selection()) -> dict[str, object]:
    """Variance analysis as JSON rows (+ unfavorable), with the posted totals per type."""
    rows = variance_rows(book, selection)
    currency = book.settings.currency
    return {
        "currency": currency,
        "rows": [
            {
                "period": r.period,
                "type": r.type,
                "element": r.element,
                "item": r.item,
                "work_center": r.work_center,
                "amount": money(r.amount, currency),
                "sign": r.sign,
                "posted": r.posted,
            }
            for r in rows
        ],
        "posted_by_type": {
            period: {k: money(v, currency) for k, v in by_type.items()}
            for period, by_type in posted_by_type(rows).items()
        },
    }
