"""Readable reports: pure functions from a book to Rich tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from backflush.book import OFF_BOOK, Book
from backflush.domain.journal import JournalSummary, summarize
from backflush.domain.model import INVENTORY_ACCOUNTS, Account, Entry, JournalDetail, Kind
from backflush.domain.money import CONTEXT, ZERO, fmt, round_money
from backflush.engine.close import PRORATED
from backflush.reports.document import gross_margin, money


def _amount(value: Decimal, currency: str, blank_zero: bool = False) -> str:
    """Money with thousands separators and the currency's minor units."""
    if blank_zero and not value:
        return ""
    return _money_text(value, currency)


@lru_cache(maxsize=1 << 16)
def _money_text(value: Decimal, currency: str) -> str:
    # A function of the value alone (equal decimals round to the same minor units): cached,
    # the amounts of a journal of hundreds of thousands of lines repeat.
    return f"{Decimal(money(value, currency)):,}"


def _unit(value: Decimal, currency: str) -> str:
    """A unit standard: at least the currency's minor units, more where it has them."""
    shown = Decimal(money(value, currency))
    return f"{value if value != shown else shown:,}"


def _table(title: str, *columns: str, numeric: Iterable[str] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    numeric = set(numeric)
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    return table


def figures_table(
    title: str,
    periods: list[str],
    figures: list[object],
    rows: Iterable[tuple[str, str | None]],
    currency: str,
) -> Table:
    """Figures of each period side by side: one row per (label, attribute of the figures);
    a row without an attribute starts a new section headed by its label."""
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for period in periods:
        table.add_column(period, justify="right")
    for label, name in rows:
        if name is None:
            table.add_section()
            table.add_row(f"[bold]{label}[/]", *([""] * len(periods)))
        else:
            table.add_row(label, *(_amount(getattr(f, name), currency) for f in figures))
    return table


def header(book: Book, events: int) -> Text:
    s = book.settings
    text = Text()
    text.append(f"{s.name}", style="bold")
    text.append(
        f"  ·  {s.currency}  ·  triggers {s.triggers.value}  ·  disposition {s.disposal_memo}"
        f"  ·  shortage {s.shortage.value}  ·  {events} events"
    )
    if s.journal_detail is not JournalDetail.EVENT:
        text.append(f"  ·  journal summed by {s.journal_detail.value}")
    return text


def variances_table(book: Book, periods: list[str] | None = None) -> Table:
    """Every period side by side, or those of ``periods``."""
    periods = book.periods() if periods is None else periods
    table = _table("Variances by period (+ unfavorable, − favorable)", "variance", *periods,
                   numeric=periods)  # fmt: skip
    keys: list[str] = []
    for period in periods:
        for key in book.period_variances(period):
            if key not in keys:
                keys.append(key)
    currency = book.settings.currency
    for key in keys:
        table.add_row(
            escape(key),  # element names are the user's: never markup
            *(_amount(book.period_variances(p).get(key, ZERO), currency) for p in periods),
        )
    table.add_section()
    table.add_row(
        "gross margin",
        *(_amount(gross_margin(book.activity.get(p, {})), currency) for p in periods),
        style="bold",
    )
    table.add_row("status", *("closed" if p in book.closed else "open" for p in periods))
    return table


def trial_balance_rows(
    book: Book, through: str | None = None
) -> list[tuple[Account, Decimal, Decimal]]:
    """(account, debit, credit) of each account with a balance, now or at the end of
    period ``through``, in the chart's order."""
    balances = book.balances if through is None else book.balances_through(through)
    rows = []
    for account in Account:
        value = sum((v for (a, _), v in balances.items() if a is account), ZERO)
        if value:
            rows.append((account, value, ZERO) if value > 0 else (account, ZERO, -value))
    return rows


def trial_balance(book: Book, through: str | None = None) -> Table:
    """The balances now, or at the end of period ``through``."""
    currency = book.settings.currency
    title = "Trial balance" + (f" at the end of {through}" if through else "")
    table = _table(title, "account", "debit", "credit", numeric=("debit", "credit"))
    rows = trial_balance_rows(book, through)
    for account, debit, credit in rows:
        table.add_row(
            account.value, _amount(debit, currency, True), _amount(credit, currency, True)
        )
    debits = sum((d for _, d, _ in rows), ZERO)
    credits = sum((c for _, _, c in rows), ZERO)
    table.add_section()
    table.add_row("total", _amount(debits, currency), _amount(credits, currency), style="bold")
    return table


@dataclass(frozen=True, slots=True)
class ValuationRow:
    item: str
    kind: Kind
    on_hand: Decimal
    in_process: Decimal
    waiting: Decimal
    unit_standard: Decimal
    on_books: Decimal
    off_books: Decimal


def valuation(book: Book, items: Callable[[str], bool] | None = None) -> list[ValuationRow]:
    """Stock by item at the standards in force: the value the books hold (it reconciles with
    the inventory accounts; under ``count`` / ``cogs-first`` only right after a close: between
    closes it is the value the next close gives the stock, see
    :meth:`Book.periodic_difference`) and the value held off them. Consumption waiting in the
    shortage queue was already credited (under count and cogs-first: is taken off at the
    close), so an item short of stock shows a negative value."""
    rows = []
    rounding = book.settings.currency, book.settings.rounding
    for item_id in book.stocked_items():
        if items is not None and not items(item_id):
            continue
        item = book.master.items[item_id]
        on = off = ZERO
        for (account, _), value in book.stock_value(item_id).items():
            if account in OFF_BOOK:
                off += value
            else:
                on += value
        rows.append(
            ValuationRow(
                item_id,
                item.kind,
                book.quantity(item_id),
                book.in_process.get(item_id, ZERO),
                book.waiting(item_id),
                book.standards.unit_cost(item_id, book.epoch).total,
                round_money(on, *rounding),
                round_money(off, *rounding),
            )
        )
    return rows


def valuation_table(book: Book, items: Callable[[str], bool] | None = None) -> Table:
    """Stock at standard; of the selected ``items`` only (then without the reconciliation
    to the inventory accounts, which hold every item)."""
    currency = book.settings.currency
    numeric = ("on hand", "in process", "waiting", "standard", "on books", "off books")
    table = _table(
        "Quantities and valuation at standard", "item", "kind", *numeric, numeric=numeric
    )
    on_total = off_total = ZERO
    for row in valuation(book, items):
        on_total += row.on_books
        off_total += row.off_books
        table.add_row(
            escape(row.item),
            row.kind.value,
            _quantity(row.on_hand),
            _quantity(row.in_process) if row.in_process else "",
            _quantity(row.waiting) if row.waiting else "",
            _unit(row.unit_standard, currency),
            _amount(row.on_books, currency),
            _amount(row.off_books, currency, True),
        )
    blank = [""] * (len(numeric) - 2)
    inventoried = unsold_conversion_inventoried(book) if items is None else ZERO
    if inventoried:  # off the books item by item, on them since a close
        off_total -= inventoried
        table.add_row(INVENTORIED_OFF, "", *blank, "", _amount(-inventoried, currency, True))
    table.add_section()
    table.add_row(
        "total", "", *blank, _amount(on_total, currency), _amount(off_total, currency), style="bold"
    )
    if items is not None:
        return table
    for label, account, amount in valuation_reconciliation(book, on_total):
        bold = label == "inventory on the books"
        table.add_row(
            label, account, *blank, _amount(amount, currency), "", style="bold" if bold else None
        )
    return table


def valuation_reconciliation(book: Book, on_books: Decimal) -> list[tuple[str, str, Decimal]]:
    """What takes the valuation's total on the books (``on_books``) to the inventory accounts
    of the trial balance, as (label, account, amount) rows: variances prorated into inventory,
    unsold conversion inventoried, their sum; then the inventory accounts and the rounding of
    the postings since the last close (a periodic book: what RIP and FG hold now and what the
    next close moves)."""
    rows: list[tuple[str, str, Decimal]] = []
    prorated = {
        (account, element.removeprefix(PRORATED)): value
        for (account, element), value in book.balances.items()
        if value and element.startswith(PRORATED)
    }
    for (account, pool), amount in sorted(prorated.items()):
        rows.append((f"{pool} variance prorated", account.value, amount))
    inventoried = unsold_conversion_inventoried(book)
    if inventoried:
        rows.append(("unsold conversion inventoried at close", "", inventoried))
    total = on_books + sum(prorated.values(), ZERO) + inventoried
    if prorated or inventoried:
        rows.append(("inventory on the books", "", total))
    if book.settings.triggers.periodic:
        # Between closes a periodic book's RIP and FG are not at quantities x standard: say
        # what they hold and what the next close would move (zero right after a close).
        rows.append(("RIP+FG now", "", book.periodic_held()))
        rows.append(("to close", "", book.periodic_difference()))
        return rows
    # What the inventory accounts hold (trial balance) against the stock at standard: a
    # difference is the rounding of the postings since the last close, item by item.
    on_accounts = inventory_balance(book)
    rows.append(("inventory accounts", "", on_accounts))
    if on_accounts != total:
        rows.append(("rounding of postings", "", on_accounts - total))
    return rows


#: The row that takes the unsold conversion a close inventoried out of the stock's off-books
#: total (the items' rows count it off the books; the reconciliation, on them).
INVENTORIED_OFF = "inventoried at close"


def unsold_conversion_inventoried(book: Book) -> Decimal:
    """Conversion of goods costed only at sale that closes put on the inventory accounts (the
    stock's standard value counts it off the books)."""
    return sum((v for (a, _), v in book.unsold_conversion.items() if a in INVENTORY_ACCOUNTS), ZERO)


def inventory_balance(book: Book) -> Decimal:
    """What the inventory accounts hold on the trial balance (prorated variances included)."""
    return sum((v for (a, _), v in book.balances.items() if a in INVENTORY_ACCOUNTS), ZERO)


def journal_summary(book: Book, entries: Iterable[Entry] | JournalSummary) -> Table:
    """Entries, lines and debits per period and kind: of ``entries``, or the figures a store
    keeps of its journal (:meth:`Store.summary`)."""
    found = entries if isinstance(entries, dict) else summarize(entries)
    table = _table("Journal summary", "period", "kind", "entries", "lines", "debits",
                   numeric=("entries", "lines", "debits"))  # fmt: skip
    for key in sorted(found):
        figures = found[key]
        table.add_row(key[0], key[1], str(figures.entries), str(figures.lines),
                      _amount(figures.debits, book.settings.currency))  # fmt: skip
    return table


def journal_table(
    book: Book, entries: Iterable[Entry], numbers: Sequence[int] | None = None
) -> Table:
    """The journal. The event column gives each entry's event id whole, and with the entries'
    ``numbers`` (a stored book's) the entry number under it: what ``backflush explain`` takes
    (``explain EVENT_ID`` or ``explain --entry N``)."""
    currency = book.settings.currency
    table = _table("Journal", "date", "event", "memo", "account", "debit", "credit",
                   numeric=("debit", "credit"))  # fmt: skip
    table.columns[1].overflow = "fold"
    for k, entry in enumerate(entries):
        for n, line in enumerate(entry.lines):
            account = line.account.value + (f":{line.element}" if line.element else "")
            event = escape(entry.event) if n == 0 else ""
            if n == 1 and numbers is not None:  # an entry has two lines at least
                event = f"[dim]no. {numbers[k]}[/]"
            table.add_row(
                entry.date.isoformat() if n == 0 else "",
                event,
                escape(entry.memo) if n == 0 else "",
                escape(account),
                _amount(line.debit, currency, True),
                _amount(line.credit, currency, True),
            )
        table.add_section()
    return table


JOURNAL_HEADER = ("date", "event", "memo", "account", "debit", "credit")
#: Which of the journal's columns are justified right (the amounts).
JOURNAL_RIGHT = (False, False, False, False, True, True)


def journal_rows(
    book: Book, entries: Iterable[Entry], numbers: Sequence[int] | None = None
) -> Iterator[tuple[str, ...] | None]:
    """The rows of :func:`journal_table` as plain text (no markup), None after each entry's
    lines: what :mod:`backflush.reports.plain` draws for a journal too big for Rich."""
    currency = book.settings.currency
    for k, entry in enumerate(entries):
        for n, line in enumerate(entry.lines):
            account = line.account.value + (f":{line.element}" if line.element else "")
            event = entry.event if n == 0 else ""
            if n == 1 and numbers is not None:
                event = f"no. {numbers[k]}"
            yield (
                entry.date.isoformat() if n == 0 else "",
                event,
                entry.memo if n == 0 else "",
                account,
                _amount(line.debit, currency, True),
                _amount(line.credit, currency, True),
            )
        yield None


def exceptions_table(book: Book) -> Table:
    table = _table("Backflush exceptions", "event", "date", "kind", "item", "quantity", "open",
                   "status", numeric=("quantity", "open"))  # fmt: skip
    for key, entry in book.shortages.items():
        status = book.exception_status(key)
        if key in book.cleared_by:
            status += f" by {book.cleared_by[key]}"
        if key in book.written_off:
            status += f": {book.written_off[key]}"
        table.add_row(escape(entry.event), entry.date.isoformat(), entry.kind, escape(entry.item),
                      fmt(entry.quantity), fmt(entry.open), escape(status))  # fmt: skip
    return table


def _quantity(value: Decimal) -> str:
    """A quantity with thousands separators, without the trailing zeros arithmetic leaves."""
    return f"{value.normalize(CONTEXT) if value else ZERO:,f}"


def orders_table(book: Book) -> Table:
    """Production orders: ordered against made, and what each component did."""
    table = _table("Production orders", "order", "item", "released", "ordered", "made",
                   "scrapped", "over/under", "status", "left over",
                   numeric=("ordered", "made", "scrapped", "over/under"))  # fmt: skip
    for order_id, order in sorted(book.orders.items()):
        returned = dict(order.returned) if order.closed_by else order.left()
        left = ", ".join(f"{fmt(q)} {c}" for c, q in sorted(returned.items()) if q)
        status = f"closed by {order.closed_by}" if order.closed_by else "open"
        verb = "returned: " if order.closed_by and left else ("in process: " if left else "")
        table.add_row(escape(order_id), escape(order.item), order.released.isoformat(),
                      fmt(order.quantity), fmt(order.completed), fmt(order.scrapped),
                      fmt(order.completed - order.quantity), escape(status),
                      escape(verb + left))  # fmt: skip
    return table


def reopens_table(book: Book) -> Table:
    """The audit trail of reopened periods: which close each reopen undid, when and why."""
    table = _table("Reopened periods", "period", "reopened by", "date", "close undone", "reason")
    for period in sorted(book.reopens):
        for r in book.reopened(period):
            table.add_row(period, escape(r.event), r.date.isoformat(), escape(r.close_event),
                          escape(r.reason))  # fmt: skip
    return table


def nrv_table(book: Book) -> Table:
    """Lower of cost and net realisable value: per closed period and item, the standard, the
    estimate in force at the close, the write-down per unit and in total that stands, and
    what the close posted (+ written down, − released or reversed)."""
    currency = book.settings.currency
    numeric = ("on hand", "standard", "NRV", "write-down/unit", "allowance", "posted")
    table = _table(
        f"Net realisable value (lower of cost, {book.settings.lower_of_cost.value})",
        "period",
        "item",
        *numeric,
        numeric=numeric,
    )
    for period in sorted(book.closed):
        found = book.nrv_findings(period)
        for item, f in sorted(found.items()):
            table.add_row(
                period,
                escape(item),
                _quantity(f.quantity),
                _unit(f.standard, currency) if f.quantity else "",
                "" if f.nrv is None else _unit(f.nrv, currency),
                _unit(f.unit_writedown, currency) if f.unit_writedown else "",
                _amount(f.allowance, currency),
                _amount(f.change, currency, True),
            )
        if found:
            table.add_section()
    standing = sum(book.nrv_allowance.values(), ZERO)
    blank = [""] * (len(numeric) - 2)
    table.add_row("standing", "", *blank, _amount(-standing, currency), "", style="bold")
    return table


def period_report(
    book: Book, entries: Iterable[Entry] | JournalSummary, events: int
) -> RenderableType:
    """The readable period report of ``backflush run`` and ``backflush report``: ``entries``
    is the journal, or its figures as a store keeps them (:meth:`Store.summary`)."""
    parts: list[RenderableType] = [
        header(book, events),
        journal_summary(book, entries),
        trial_balance(book),
        variances_table(book),
        valuation_table(book),
    ]
    if book.orders:
        parts.append(orders_table(book))
    if book.reopens:
        parts.append(reopens_table(book))
    if book.nrv_estimates or any(book.nrv_allowance.values()):
        parts.append(nrv_table(book))
    if book.shortages:
        parts.append(exceptions_table(book))
    else:
        parts.append(Text("No backflush exceptions.", style="green"))
    return Group(*parts)
