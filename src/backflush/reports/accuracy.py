"""BOM accuracy: what production really used of each component against what the BOMs say.

Backflushing trusts the BOM: a completion takes the standard quantities out of stock. A count
then shows what really went: stock the book still thinks is there but is not was used too
(or lost). Per component and period, real usage = theoretical usage (backflushed, released,
issued) less the count adjustments; where it differs from the theoretical by more than a
threshold, the BOM lines that hold the component are named, with the quantity per parent
that would have matched. A component several BOMs use cannot tell which of them is wrong:
every one is named.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

from rich.table import Table

from backflush.book import Book
from backflush.domain.model import Kind, period_bounds
from backflush.domain.money import ZERO, fmt
from backflush.reports.standards import where_used

#: Flows that are production's use of a component by the BOM (or by an explicit issue), net
#: of what a closed production order gave back.
THEORETICAL = ("backflushed", "released", "issued", "returned")
DEFAULT_THRESHOLD = Decimal("0.02")


@dataclasses.dataclass(frozen=True, slots=True)
class BomLineUse:
    """A BOM line holding the component: its parent, quantity per parent unit (before scrap)
    and the quantity that would have matched real usage."""

    parent: str
    quantity: Decimal
    scrap: Decimal
    suggested: Decimal | None


@dataclasses.dataclass(frozen=True, slots=True)
class AccuracyRow:
    component: str
    opening: Decimal
    received: Decimal
    theoretical: Decimal  # used by the BOMs (and issues), a positive quantity
    counted: Decimal  # count adjustments: + found, - missing
    other: Decimal  # every other flow: sold, scrapped, made
    closing: Decimal
    was_counted: bool
    lines: tuple[BomLineUse, ...]

    @property
    def actual(self) -> Decimal:
        """Real usage: what the BOMs took, plus what a count found missing."""
        return self.theoretical - self.counted

    @property
    def difference(self) -> Decimal:
        return self.actual - self.theoretical

    @property
    def ratio(self) -> Decimal | None:
        """Difference over theoretical usage (None: nothing was used by the BOMs)."""
        return self.difference / self.theoretical if self.theoretical else None


@dataclasses.dataclass(frozen=True, slots=True)
class Accuracy:
    period: str
    threshold: Decimal
    rows: tuple[AccuracyRow, ...]

    def flagged(self, row: AccuracyRow) -> bool:
        return row.ratio is not None and abs(row.ratio) > self.threshold


def bom_accuracy(book: Book, period: str, threshold: Decimal = DEFAULT_THRESHOLD) -> Accuracy:
    """Per component used by the BOMs (or counted) in ``period``: opening stock, receipts,
    theoretical and real usage, counts, closing stock, and the BOM lines to look at."""
    flows = book.flows.get(period, {})
    last = period_bounds(period)[1]
    closing = book.on_hand_through(period)
    by_item: dict[str, dict[str, Decimal]] = {}
    for (item, flow), quantity in flows.items():
        by_item.setdefault(item, {})[flow] = quantity
    rows: list[AccuracyRow] = []
    for component in sorted({item for item, flow in flows if flow in (*THEORETICAL, "counted")}):
        mine = by_item[component]
        theoretical = -sum((mine.get(f, ZERO) for f in THEORETICAL), ZERO)
        counted = mine.get("counted", ZERO)
        received = mine.get("received", ZERO)
        moved = sum(mine.values(), ZERO)
        end = closing.get(component, ZERO)
        rows.append(
            AccuracyRow(
                component,
                opening=end - moved,
                received=received,
                theoretical=theoretical,
                counted=counted,
                other=moved - received + theoretical - counted,
                closing=end,
                was_counted="counted" in mine,
                lines=(),
            )
        )
    found = Accuracy(period, threshold, ())
    named = tuple(
        dataclasses.replace(row, lines=_lines(book, row, last)) if found.flagged(row) else row
        for row in rows
    )
    return Accuracy(period, threshold, named)


def _lines(book: Book, row: AccuracyRow, on: dt.date) -> tuple[BomLineUse, ...]:
    """The BOM lines effective on ``on`` that list ``row.component`` (a phantom's too)."""
    scale = row.actual / row.theoretical if row.theoretical else None
    return tuple(
        BomLineUse(
            use.parent,
            use.quantity,
            use.scrap,
            None if scale is None else use.quantity * scale,
        )
        for use in where_used(book.master, row.component, on)
        if use.level == 1 and book.master.items[use.parent].kind is not Kind.MATERIAL
    )


def accuracy_document(found: Accuracy) -> dict[str, Any]:
    return {
        "period": found.period,
        "threshold": fmt(found.threshold),
        "components": [
            {
                "component": r.component,
                "opening": fmt(r.opening),
                "received": fmt(r.received),
                "theoretical": fmt(r.theoretical),
                "counted": fmt(r.counted),
                "actual": fmt(r.actual),
                "difference": fmt(r.difference),
                "ratio": None if r.ratio is None else fmt(round(r.ratio, 6)),
                "other": fmt(r.other),
                "closing": fmt(r.closing),
                "was_counted": r.was_counted,
                "flagged": found.flagged(r),
                "bom_lines": [
                    {
                        "parent": u.parent,
                        "quantity": fmt(u.quantity),
                        "scrap": fmt(u.scrap),
                        "suggested_quantity": None if u.suggested is None else fmt(u.suggested),
                    }
                    for u in r.lines
                ],
            }
            for r in found.rows
        ],
    }


def accuracy_table(found: Accuracy) -> Table:
    table = Table(
        title=f"BOM accuracy {found.period} (flagged beyond {fmt(found.threshold * 100)}%)",
        title_justify="left",
    )
    table.add_column("component")
    for name in ("opening", "received", "BOM usage", "counted", "real usage", "difference"):
        table.add_column(name, justify="right")
    table.add_column("%", justify="right")
    table.add_column("closing", justify="right")
    table.add_column("BOM lines to check")
    for r in found.rows:
        flagged = found.flagged(r)
        share = "" if r.ratio is None else f"{r.ratio * 100:+.1f}"
        lines = "; ".join(
            f"{u.parent}: {fmt(u.quantity)}"
            + ("" if u.suggested is None else f" → {fmt(round(u.suggested, 6))}")
            for u in r.lines
        )
        table.add_row(
            r.component,
            fmt(r.opening),
            fmt(r.received),
            fmt(r.theoretical),
            fmt(r.counted) if r.was_counted else "not counted",
            fmt(r.actual),
            fmt(r.difference),
            f"[red]{share}[/]" if flagged else share,
            fmt(r.closing),
            lines,
        )
    return table
