"""Journal detail (issue 7): how a store keeps the journal lines of routine events.

Under ``journal_detail: day`` (or ``period``) the lines of purchases, completions, sales,
conversion, counts, ... are summed into one summary entry per event type and day (or period),
by account, element and item: a plant posting thousands of completions a day keeps a few
thousand lines a day instead of one entry per completion. Nothing is lost:

* each summarised event keeps its own entries and movements with it (``events.detail``), so
  ``backflush explain EVENT`` shows what it posted and a reversal takes exactly that back;
* a summary entry's events are those of its type and day (or period) holding a detail
  (:func:`span`): the drill-down from a summary line to the events behind it.

Closes, reopens, reversals, revaluations, write-offs and estimates always keep one entry each.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from backflush.book import Changes
from backflush.domain import model as m
from backflush.store.schema import _scaled_text

#: The routine events a summarising book sums: the many a plant posts every day.
SUMMARISED_TYPES = frozenset(
    {
        m.Purchase.type,
        m.Conversion.type,
        m.Hours.type,
        m.Completion.type,
        m.Sale.type,
        m.Scrap.type,
        m.Issue.type,
        m.Release.type,
        m.OrderClose.type,
        m.Count.type,
    }
)

#: (owner event, causing event, movement), as :class:`Changes` holds them.
Moved = tuple[str, str, m.Movement]
#: (account, element, item) of a summary line.
LineKey = tuple[m.Account, str, str]


def summary_key(event: m.Event, detail: m.JournalDetail) -> str:
    """The summary an event's lines go to: ``completion 2026-01-05`` or ``completion 2026-01``."""
    when = event.date.isoformat() if detail is m.JournalDetail.DAY else m.period_of(event.date)
    return f"{event.type} {when}"


def span(key: str) -> tuple[str, dt.date, dt.date]:
    """The events a summary sums: (type, first day, last day)."""
    kind, when = key.split(" ")
    if len(when) == len("2026-01"):
        return (kind, *m.period_bounds(when))
    day = dt.date.fromisoformat(when)
    return kind, day, day


def summary_head(key: str) -> tuple[dt.date, str, str]:
    """(date, period, memo) of a summary entry: dated its day, or its period's last day."""
    kind, first, last = span(key)
    by = "day" if first == last else "period"
    when = key.split(" ")[1]
    return last, m.period_of(last), f"{kind} events of {when}, summarised by {by}"


@dataclass(slots=True)
class Detail:
    """A summarised event's own entries and movements, and the summary its lines went to."""

    summary: str
    entries: list[m.Entry] = field(default_factory=list)
    movements: list[m.Movement] = field(default_factory=list)

    def to_json(self) -> str:
        """Canonical JSON; amounts as the database holds them (scale kept)."""
        body = {
            "summary": self.summary,
            "entries": [
                [
                    entry.date.isoformat(),
                    entry.memo,
                    [
                        [line.account.value, line.element, line.item, _scaled_text(line.amount)]
                        for line in entry.lines
                    ],
                ]
                for entry in self.entries
            ],
            "movements": [
                [mv.item, _scaled_text(mv.on_hand), _scaled_text(mv.in_process)]
                for mv in self.movements
            ],
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, event: str, text: str) -> Detail:
        body = json.loads(text)
        entries = [
            m.Entry(
                dt.date.fromisoformat(day),
                event,
                memo,
                tuple(
                    m.Line(m.Account(account), Decimal(amount), element, item)
                    for account, element, item, amount in lines
                ),
            )
            for day, memo, lines in body["entries"]
        ]
        movements = [
            m.Movement(item, Decimal(on_hand), Decimal(in_process))
            for item, on_hand, in_process in body["movements"]
        ]
        return cls(body["summary"], entries, movements)


@dataclass(slots=True)
class Split:
    """A write's changes under the book's journal detail: the summarised events' details, and
    the entries and movements kept one row each."""

    details: dict[str, Detail]
    movements: list[Moved]


def split(changes: Changes, detail: m.JournalDetail) -> Split:
    """Sort ``changes`` into the summarised events' own details and the rest. A movement
    another event made happen (a receipt clearing queued consumption) stays a row: the event
    it belongs to was written before."""
    if detail is m.JournalDetail.EVENT:
        return Split({}, changes.movements)
    details = {
        r.event.id: Detail(summary_key(r.event, detail))
        for r in changes.events
        if r.event.type in SUMMARISED_TYPES
    }
    for entry in changes.entries:
        found = details.get(entry.event)
        if found is not None:
            found.entries.append(entry)
    rows = []
    for owner, cause, movement in changes.movements:
        found = details.get(owner) if owner == cause else None
        if found is None:
            rows.append((owner, cause, movement))
        else:
            found.movements.append(movement)
    return Split(details, rows)


@dataclass(slots=True)
class Summary:
    """One summary entry's lines added by a write, by (account, element, item)."""

    entry_no: int
    lines: dict[LineKey, Decimal] = field(default_factory=dict)

    def add(self, lines: Iterable[m.Line]) -> None:
        for line in lines:
            key = (line.account, line.element, line.item)
            self.lines[key] = self.lines.get(key, Decimal(0)) + line.amount
