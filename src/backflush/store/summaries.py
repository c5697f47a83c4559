"""Journal detail (issue 7): how a store keeps the journal lines of routine events.

Under ``journal_detail: day`` (or ``period``) the lines of purchases, completions, sales,
conversion, counts, ... posted by one write (an import batch, a posting) are summed into one
summary entry per event type and day (or period) by account, element and item: a plant
importing thousands of completions a day keeps a few lines per item and day instead of an
entry per completion. Posted entries never change: a later write makes entries of its own.
Nothing is lost:

* each summarised event keeps its own entries and movements with it (``events.detail``), so
  ``backflush explain EVENT`` shows what it posted and a reversal takes exactly that back;
* each names the summary entry its lines went to (``events.summary_entry``): the drill-down
  from a summary line to the events behind it.

Closes, reopens, reversals, revaluations, write-offs and estimates always keep one entry each,
as does an event with an entry dated another day than its own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from backflush.book import Changes
from backflush.domain import model as m
from backflush.domain.money import CONTEXT, ZERO
from backflush.store.schema import scaled_text

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

#: A string as JSON writes it (``ensure_ascii=False``, as :meth:`Detail.to_json` writes).
_json_string = json.encoder.encode_basestring

#: (owner event, causing event, movement), as :class:`Changes` holds them.
Moved = tuple[str, str, m.Movement]
#: (account, element, item) of a summary line.
LineKey = tuple[m.Account, str, str]


def summary_key(event: m.Event, detail: m.JournalDetail) -> str:
    """The summary an event's lines go to: ``completion 2026-01-05`` or ``completion 2026-01``."""
    when = event.date.isoformat() if detail is m.JournalDetail.DAY else m.period_of(event.date)
    return f"{event.type} {when}"


def summary_head(key: str) -> tuple[dt.date, str]:
    """(date, memo) of a summary entry: dated its day, or its period's last day."""
    kind, when = key.split(" ")
    if len(when) == len("2026-01"):
        return m.period_bounds(when)[1], f"{kind} events of {when}, summarised by period"
    return dt.date.fromisoformat(when), f"{kind} events of {when}, summarised by day"


@dataclass(slots=True)
class Detail:
    """A summarised event's own entries and movements, the summary its lines go to (by
    :func:`summary_key`) and that summary's entry number once numbered (None: it posted no
    lines)."""

    summary: str
    entries: list[m.Entry] = field(default_factory=list)
    movements: list[m.Movement] = field(default_factory=list)
    entry_no: int | None = None

    def to_json(self) -> str:
        """Canonical JSON; amounts as the database holds them (scale kept).

        What ``json.dumps`` writes of ``{"entries": [[date, memo, [[account, element, item,
        amount], ...]], ...], "movements": [[item, on_hand, in_process], ...]}`` with
        ``separators=(",", ":"), ensure_ascii=False``, byte for byte, written out here (it is
        asked per event): strings through the same encoder; dates and amounts need none."""
        text = _json_string
        entries = ",".join(
            f'["{entry.date.isoformat()}",{text(entry.memo)},['
            + ",".join(
                # an account is a StrEnum: the string it is, is its value
                f"[{text(line.account)},{text(line.element)},{text(line.item)},"
                f'"{scaled_text(line.amount)}"]'
                for line in entry.lines
            )
            + "]]"
            for entry in self.entries
        )
        movements = ",".join(
            f'[{text(mv.item)},"{scaled_text(mv.on_hand)}","{scaled_text(mv.in_process)}"]'
            for mv in self.movements
        )
        return f'{{"entries":[{entries}],"movements":[{movements}]}}'


def read_detail(event: str, text: str) -> tuple[list[m.Entry], list[m.Movement]]:
    """The entries and movements of ``event`` kept with it (:meth:`Detail.to_json`)."""
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
    return entries, movements


@dataclass(slots=True)
class Split:
    """A write's changes under the book's journal detail: the summarised events' details, and
    the movements kept one row each."""

    details: dict[str, Detail]
    movements: list[Moved]


def split(changes: Changes, detail: m.JournalDetail) -> Split:
    """Sort ``changes`` into the summarised events' own details and the rest. A movement
    another event made happen (a receipt clearing queued consumption) stays a row: the event
    it belongs to was written before."""
    if detail is m.JournalDetail.EVENT:
        return Split({}, [(o, c, mv) for o, c, moved in changes.movements for mv in moved])
    # An event with an entry dated another day (a late receipt revalued on a change of
    # standards since) keeps its entries: a summary of its day would move them there.
    elsewhere = {
        r.event.id
        for r in changes.events
        if len(r.entries) > 1 and any(e.date != r.event.date for e in r.entries)
    }
    details = {
        r.event.id: Detail(summary_key(r.event, detail))
        for r in changes.events
        if r.event.type in SUMMARISED_TYPES and r.event.id not in elsewhere
    }
    for entry in changes.entries:
        found = details.get(entry.event)
        if found is not None:
            found.entries.append(entry)
    rows = []
    for owner, cause, moved in changes.movements:
        found = details.get(owner) if owner == cause else None
        if found is None:
            rows += [(owner, cause, movement) for movement in moved]
        else:
            found.movements += moved
    return Split(details, rows)


def numbered(
    entries: Iterable[m.Entry], details: Mapping[str, Detail], last: int
) -> tuple[list[tuple[int, m.Entry]], int]:
    """``entries`` numbered on from ``last``, those of the events of ``details`` summed into
    one summary entry per summary key, numbered where its first lines came (and noted in each
    event's detail). A summary never spans an entry of its own (a close, a reversal, ...):
    the journal read in number order tells what was posted before what. Returns the numbered
    entries in number order and the last number."""
    found: list[tuple[int, m.Entry]] = []
    sums: dict[str, tuple[int, dict[LineKey, Decimal]]] = {}
    with localcontext(CONTEXT):  # sums exact to the book's precision
        for entry in entries:
            detail = details.get(entry.event)
            if detail is None:
                found += _summaries(sums)
                sums = {}
                last += 1
                found.append((last, entry))
                continue
            summary = sums.get(detail.summary)
            if summary is None:
                last += 1
                summary = sums[detail.summary] = (last, {})
            detail.entry_no, lines = summary
            for line in entry.lines:
                at = (line.account, line.element, line.item)
                lines[at] = lines.get(at, ZERO) + line.amount
    found += _summaries(sums)
    found.sort(key=lambda numbered: numbered[0])
    return found, last


def _summaries(
    sums: Mapping[str, tuple[int, Mapping[LineKey, Decimal]]],
) -> Iterator[tuple[int, m.Entry]]:
    for key, (number, lines) in sums.items():
        date, memo = summary_head(key)
        summed = tuple(m.Line(a, amount, e, i) for (a, e, i), amount in lines.items())
        yield number, m.Entry(date, "", memo, summed)
