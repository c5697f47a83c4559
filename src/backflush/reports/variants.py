"""The same events under every trigger policy, side by side (DESIGN §3.1).

What a student, an auditor or an analyst asks first: how much inventory, cost of goods sold,
margin and income each variant shows, how many journal lines it takes, and why it differs
from traditional sequential costing. The differences have two sources: stock a backflush
variant holds off the books (material not recognised until used, conversion not allocated
until a unit is costed; reported as ``off_book``), and where actual costs land meanwhile
(a price difference of material still unrecorded, conversion of unsold units expensed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from rich.table import Table

from backflush.book import Book
from backflush.domain.model import INVENTORY_ACCOUNTS, Account, Policy
from backflush.domain.money import ZERO, round_money
from backflush.engine import close as closing
from backflush.engine.close import VARIANCE_TYPES
from backflush.engine.flush import PostingError
from backflush.engine.standards import StandardError
from backflush.formats.scenario import Scenario
from backflush.reports.document import money

#: Accounts of the period's result: income is what they leave (credit positive).
RESULT_ACCOUNTS = (
    Account.SALES,
    Account.COGS,
    Account.NRV_WRITEDOWN,
    Account.CONVERSION_CONTROL,  # open only when the disposition leaves them so
    Account.CONVERSION_ALLOCATED,
    *VARIANCE_TYPES,
)
#: Inventory on the books: the inventory accounts less the allowance to NRV.
INVENTORY = (*INVENTORY_ACCOUNTS, Account.NRV_ALLOWANCE)


@dataclasses.dataclass(frozen=True, slots=True)
class Variant:
    policy: Policy
    inventory: Decimal  # on the books, after the last event
    off_book: Decimal  # stock at standard not on the books
    cogs: Decimal
    sales: Decimal
    variances: Decimal  # variances and conversion still open, not yet in COGS
    income: Decimal
    entries: int
    lines: int
    #: Price difference of purchases the policy does not post (no purchase trigger).
    unrecorded_price: Decimal = ZERO
    #: The part of ``off_book`` that is material not recognised until used (the rest is
    #: conversion of units not yet costed: unsold goods under a sale trigger, subassemblies).
    off_book_material: Decimal = ZERO
    #: Conversion of unsold units that closes put on the books (``inventory_unsold_conversion``):
    #: it stays there until the next close, whatever was sold since.
    inventoried: Decimal = ZERO
    #: The allowance to NRV on the books (a credit: negative) and the variances prorated into
    #: the inventory accounts: part of ``inventory``, each policy's own.
    allowance: Decimal = ZERO
    prorated: Decimal = ZERO
    #: Work in process on the books (sequential costing's own account).
    work_in_process: Decimal = ZERO
    #: Why the events cannot run under this policy ("" when they can).
    refused: str = ""

    @property
    def gross_margin(self) -> Decimal:
        return self.sales - self.cogs


def compare_variants(
    scenario: Scenario, policies: Iterable[Policy] = tuple(Policy)
) -> list[Variant]:
    """Run ``scenario``'s events under each policy (per-item overrides dropped: the point is
    one policy for everything) and sum up what each book shows after the last event."""
    items = {
        key: dataclasses.replace(item, policy=None) for key, item in scenario.master.items.items()
    }
    master = dataclasses.replace(scenario.master, items=items)
    found = []
    for policy in policies:
        settings = dataclasses.replace(scenario.settings, triggers=policy)
        book = Book(settings, master)
        try:
            book.post_many(scenario.events)
        except (PostingError, StandardError) as error:
            zero = ZERO
            found.append(
                Variant(policy, zero, zero, zero, zero, zero, zero, 0, 0, refused=str(error))
            )
            continue
        found.append(_figures(policy, book))
    return found


def _figures(policy: Policy, book: Book) -> Variant:
    def total(*accounts: Account) -> Decimal:
        return sum((v for (a, _), v in book.balances.items() if a in accounts), ZERO)

    entries = list(book.entries())
    return Variant(
        policy,
        inventory=total(*INVENTORY),
        off_book=sum(book.off_book().values(), ZERO),
        inventoried=sum(book.unsold_conversion.values(), ZERO),
        allowance=total(Account.NRV_ALLOWANCE),
        work_in_process=total(Account.WORK_IN_PROCESS),
        prorated=sum(
            (
                v
                for (a, element), v in book.balances.items()
                if a in INVENTORY_ACCOUNTS and element.startswith(closing.PRORATED)
            ),
            ZERO,
        ),
        cogs=total(Account.COGS, Account.NRV_WRITEDOWN),
        sales=-total(Account.SALES),
        variances=total(Account.CONVERSION_CONTROL, Account.CONVERSION_ALLOCATED, *VARIANCE_TYPES),
        income=-total(*RESULT_ACCOUNTS),
        entries=len(entries),
        lines=sum(len(e.lines) for e in entries),
        unrecorded_price=sum(
            (s.get("purchase_price_unrecorded", ZERO) for s in book.statistics.values()), ZERO
        ),
        off_book_material=sum(
            (
                round_money(material, book.settings.currency, book.settings.rounding)
                for material in (
                    sum(
                        (
                            v
                            for (a, _), v in book.stock_value(item).items()
                            if a is Account.ACCOUNTS_PAYABLE
                        ),
                        ZERO,
                    )
                    for item in book.stocked_items()
                )
            ),
            ZERO,
        ),
    )


def explain(variants: list[Variant], currency: str) -> list[str]:
    """Each backflush variant against sequential costing, in words with the figures."""
    base = next((v for v in variants if v.policy is Policy.SEQUENTIAL and not v.refused), None)
    if base is None:
        return []
    said = []
    for v in variants:
        if v.refused or v.policy is Policy.SEQUENTIAL:
            continue
        stock = v.inventory - base.inventory
        rest = stock + v.off_book
        parts = [f"inventory {money(stock, currency)} against sequential"]
        held_off = v.off_book + v.inventoried  # before what closes inventoried
        if held_off:
            parts.append(
                f"{money(held_off, currency)} of it is stock at standard held off the books"
            )
            conversion = held_off - v.off_book_material
            if v.off_book_material and conversion:
                parts.append(
                    f"{money(v.off_book_material, currency)} material not recognised until "
                    f"used and {money(conversion, currency)} conversion cost of units not yet "
                    "costed, expensed as incurred"
                )
            elif conversion:
                parts.append(
                    "all of it conversion cost of units not yet costed, expensed as incurred"
                )
            else:
                parts.append("all of it material not recognised until used")
        if v.inventoried:
            parts.append(
                f"less {money(v.inventoried, currency)} conversion of unsold units the last close "
                "put on the books (it stays until the next close, even for units sold since)"
            )
        written_down = v.allowance - base.allowance
        if written_down:
            parts.append(
                f"{money(written_down, currency)} a write-down to NRV of its own (stock off "
                "the books is not written down)"
            )
        prorated = v.prorated - base.prorated
        if prorated:
            parts.append(f"{money(prorated, currency)} variances prorated into stock")
        rest -= written_down + prorated
        if rest and v.policy.periodic:
            parts.append(
                f"{money(rest, currency)} other: a count-based book values stock only at a close"
            )
        elif rest and base.work_in_process:
            parts.append(
                f"{money(rest, currency)} other: work in process sequential costing holds at "
                "its own standard until the units are completed, and rounding"
            )
        elif rest:
            parts.append(f"{money(rest, currency)} other: rounding")
        parts.append(f"income {money(v.income - base.income, currency)}")
        if v.unrecorded_price:
            price = money(v.unrecorded_price, currency)
            parts.append(f"of which {price} is a purchase price variance it does not post")
        said.append(f"{v.policy.value}: " + "; ".join(parts))
    return said


def variants_document(variants: list[Variant], currency: str) -> dict[str, Any]:
    return {
        "variants": [
            {
                "policy": v.policy.value,
                **(
                    {"refused": v.refused}
                    if v.refused
                    else {
                        "inventory": money(v.inventory, currency),
                        "off_book": money(v.off_book, currency),
                        "off_book_material": money(v.off_book_material, currency),
                        "sales": money(v.sales, currency),
                        "cogs": money(v.cogs, currency),
                        "gross_margin": money(v.gross_margin, currency),
                        "variances_open": money(v.variances, currency),
                        "purchase_price_unrecorded": money(v.unrecorded_price, currency),
                        "income": money(v.income, currency),
                        "entries": v.entries,
                        "journal_lines": v.lines,
                    }
                ),
            }
            for v in variants
        ],
        "against_sequential": explain(variants, currency),
    }


def variants_table(variants: list[Variant], currency: str) -> Table:
    table = Table(title="The same events under every trigger policy", title_justify="left")
    table.add_column("figure")
    for v in variants:
        table.add_column(v.policy.value, justify="right")
    rows: list[tuple[str, Any]] = [
        ("inventory on the books", lambda v: money(v.inventory, currency)),
        ("stock held off the books", lambda v: money(v.off_book, currency)),
        ("sales", lambda v: money(v.sales, currency)),
        ("cost of goods sold", lambda v: money(v.cogs, currency)),
        ("gross margin", lambda v: money(v.gross_margin, currency)),
        ("variances still open", lambda v: money(v.variances, currency)),
        ("income", lambda v: money(v.income, currency)),
        ("journal entries", lambda v: f"{v.entries:,}"),
        ("journal lines", lambda v: f"{v.lines:,}"),
    ]
    for label, show in rows:
        table.add_row(label, *("refused" if v.refused else show(v) for v in variants))
    return table
