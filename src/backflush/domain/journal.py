"""The journal in figures: entries, lines and debits per period and kind of entry.

What the period report's journal summary shows. A store keeps these figures as it writes the
journal (table ``journal_summary``), so the report does not read millions of journal lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from backflush.domain.model import Entry
from backflush.domain.money import ZERO


@dataclass(frozen=True, slots=True)
class KindFigures:
    """Entries of one kind in one period: how many, their lines and their debits."""

    entries: int = 0
    lines: int = 0
    debits: Decimal = ZERO

    def __add__(self, other: KindFigures) -> KindFigures:
        return KindFigures(
            self.entries + other.entries, self.lines + other.lines, self.debits + other.debits
        )


#: (period, kind) -> figures.
JournalSummary = dict[tuple[str, str], KindFigures]


def entry_kind(memo: str) -> str:
    """The kind of an entry: the first word of its memo ("completion", "close", ...)."""
    return memo.split(" ", 1)[0].rstrip(":")


def summarize(entries: Iterable[Entry], into: JournalSummary | None = None) -> JournalSummary:
    """The figures of ``entries`` (added to ``into`` when given)."""
    found: JournalSummary = {} if into is None else into
    # Summed in lists, made figures once per key at the end: the same sums, in the same order.
    sums: dict[tuple[str, str], list[Any]] = {}
    for entry in entries:
        key = (entry.period, entry_kind(entry.memo))
        debits = sum((line.amount for line in entry.lines if line.amount > 0), ZERO)
        figures = sums.get(key)
        if figures is None:
            before = found.get(key, KindFigures())
            figures = sums[key] = [before.entries, before.lines, before.debits]
        figures[0] += 1
        figures[1] += len(entry.lines)
        figures[2] += debits
    for key, (count, lines, debits) in sums.items():
        found[key] = KindFigures(count, lines, debits)
    return found
