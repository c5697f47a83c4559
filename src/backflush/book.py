"""The book: the one place that orders events and applies them to state.

The pure engine works out what an event does (:mod:`backflush.engine`); the book checks what
only the whole book can know (ids already seen, closed periods, the close order), applies the
effects, retries queued shortages when stock arrives, and keeps a log of what changed so a
store can write exactly that in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any, TypeVar

from backflush.domain.model import (
    ID_LENGTH,
    INVENTORY_ACCOUNTS,
    Account,
    Close,
    Completion,
    Conversion,
    Count,
    Disposition,
    Entry,
    Event,
    ExceptionsAtClose,
    Flush,
    Hours,
    Issue,
    Kind,
    Line,
    MasterData,
    Movement,
    NetRealisableValue,
    NrvWritedown,
    OrderClose,
    PeriodResult,
    Policy,
    ProductionOrder,
    Purchase,
    Release,
    Reopen,
    Retry,
    Revaluation,
    Reversal,
    Settings,
    Shortage,
    ShortageEntry,
    WriteOff,
    next_period,
    period_bounds,
    period_of,
)
from backflush.domain.money import CONTEXT, ZERO, fmt, round_money, totals
from backflush.engine import close as closing
from backflush.engine import nrv as lower_of_cost
from backflush.engine.flush import (
    PRICE_UNRECORDED,
    Context,
    Effects,
    EntryBuilder,
    PostingError,
    flush,
)
from backflush.engine.standards import StandardError, Standards

Key = tuple[Account, str]
# An enum member at hand: reading one off its class costs a lookup the posting path feels.
_NRV_ALLOWANCE = Account.NRV_ALLOWANCE
_ON_HAND, _ITEM = operator.attrgetter("on_hand"), operator.attrgetter("item")
#: Where a unit's value waits while it is not on the books.
OFF_BOOK = (Account.ACCOUNTS_PAYABLE, Account.CONVERSION_ALLOCATED)
#: Memo (after ``close PERIOD: ``) of the entry a close moves the pennies of the postings'
#: rounding with, from the inventory accounts to the rounding variance.
ROUNDED_TO_STANDARD = "inventory accounts rounded to the stock at standard"


def unrecorded_price_change(old: Mapping[Key, Decimal], new: Mapping[Key, Decimal]) -> Decimal:
    """What a change of standards adds to the price difference of material held off the
    books: payables will be credited with the new standard, not the old, when it is used."""
    return sum(
        (
            old.get(k, ZERO) - new.get(k, ZERO)
            for k in {*old, *new}
            if k[0] is Account.ACCOUNTS_PAYABLE
        ),
        ZERO,
    )


def on_book_change(old: Mapping[Key, Decimal], new: Mapping[Key, Decimal]) -> dict[Key, Decimal]:
    """What a change of standards moves on the books, by (account, element): the new value
    less the old, the parts held off the books left out (they change with no entry)."""
    return {
        key: new.get(key, ZERO) - old.get(key, ZERO)
        for key in dict.fromkeys([*old, *new])
        if key[0] not in OFF_BOOK
    }


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk of work, then on again (when it was on).
    Posting makes small objects by the hundred per event (entries, lines, movements, what
    changed), and most live on until a store writes them: the collector ran every few hundred
    of them, and each full collection walked every object alive, master data and book
    included (a fifth of an import's time). Garbage without cycles is still freed as it goes;
    the rare cycle waits for the next collection after the bulk."""
    if not gc.isenabled():  # paused already (an outer bulk), or by whoever runs us
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class ConflictError(PostingError):
    """An event id already recorded with different content."""


#: A string as JSON writes it (``ensure_ascii``, as ``json.dumps`` does by default).
_json_string = json.encoder.encode_basestring_ascii

#: Per event class, what makes an event's content: its type and its fields but the id, in
#: the order of their names, each with its JSON key (``"name":``).
_CONTENT: dict[type[Event], tuple[tuple[str, str], ...]] = {}


def _content(cls: type[Event]) -> tuple[tuple[str, str], ...]:
    found = _CONTENT.get(cls)
    if found is None:
        names = ["type", *(f.name for f in dataclasses.fields(cls) if f.name != "id")]
        found = _CONTENT[cls] = tuple((name, f"{_json_string(name)}:") for name in sorted(names))
    return found


def fingerprint(event: Event) -> str:
    """Canonical content of an event, without its id: equal content, equal fingerprint.

    The JSON of ``{"type": ..., field: value as text, ...}`` (empty fields left out) as
    ``json.dumps(..., sort_keys=True, separators=(",", ":"))`` writes it, byte for byte,
    written out here (it is asked per event)."""
    fields: list[str] = []
    for name, key in _content(type(event)):
        value = getattr(event, name)
        if isinstance(value, Decimal):
            text = fmt(value)
        elif isinstance(value, dt.date):
            text = value.isoformat()
        elif value is None or value == "":
            continue
        else:
            text = str(value)
        fields.append(key + _json_string(text))
    return "{" + ",".join(fields) + "}"


@dataclass(slots=True)
class Recorded:
    """An applied event and what it did, kept so it can be recognised again or reversed."""

    event: Event
    fingerprint: str
    entries: list[Entry] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)
    statistics: list[tuple[str, Decimal]] = field(default_factory=list)
    reversed_by: str = ""


@dataclass(slots=True)
class Changes:
    """What the book changed since the last :meth:`Book.take_changes`."""

    events: list[Recorded] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    #: (event the movements belong to, event that caused them, movements), a group per move
    movements: list[tuple[str, str, tuple[Movement, ...]]] = field(default_factory=list)
    shortages: dict[tuple[str, str, str], ShortageEntry] = field(default_factory=dict)
    cleared: dict[tuple[str, str, str], str] = field(default_factory=dict)
    closes: list[PeriodResult] = field(default_factory=list)
    reversed: list[tuple[str, str]] = field(default_factory=list)
    balances: set[Key] = field(default_factory=set)
    activity: set[tuple[str, Key]] = field(default_factory=set)
    statistics: set[tuple[str, str]] = field(default_factory=set)
    quantities: set[str] = field(default_factory=set)
    moved: set[tuple[str, str]] = field(default_factory=set)
    flows: set[tuple[str, str, str]] = field(default_factory=set)
    held: set[tuple[str, str, str]] = field(default_factory=set)
    #: What the journal added per (period, account, element, item): deltas, because a store
    #: does not load these sums to post (only to report).
    item_activity: dict[tuple[str, Account, str, str], Decimal] = field(default_factory=dict)
    daily: set[tuple[str, dt.date, str]] = field(default_factory=set)
    unsold_conversion: set[Key] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    #: Periods reopened (the close procedure): their closes no longer stand.
    reopens: list[ReopenRecord] = field(default_factory=list)
    #: Backflush exceptions written off, with the reason.
    written_off: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Net realisable value: estimates posted, allowances changed (by item), close findings.
    nrv_estimates: list[NetRealisableValue] = field(default_factory=list)
    nrv_allowance: set[str] = field(default_factory=set)
    nrv_periods: set[str] = field(default_factory=set)

    def move_stock_into(self, other: Changes) -> None:
        """Move what these changes note of stock on hand and moved per period (``quantities``,
        ``moved``, ``flows``, ``held``, ``daily``) and the journal's sums per item added
        (``item_activity``) into ``other``, to be written later with its own."""
        other.quantities |= self.quantities
        other.moved |= self.moved
        other.flows |= self.flows
        other.held |= self.held
        other.daily |= self.daily
        self.quantities, self.moved, self.flows = set(), set(), set()
        self.held, self.daily = set(), set()
        summed = other.item_activity
        for key, amount in self.item_activity.items():
            summed[key] = summed.get(key, ZERO) + amount
        self.item_activity = {}


@dataclass(frozen=True, slots=True)
class ReopenRecord:
    """A period reopened: when, by which event, why, and which close it undid."""

    period: str
    event: str
    date: dt.date
    close_event: str
    reason: str


K = TypeVar("K")
V = TypeVar("V")


class NotLoaded(RuntimeError):
    """A part of a book read that its store left out when it loaded it (a bug of the
    caller, which must ask the store for that part)."""


class Unloaded(dict[K, V]):
    """A part of a book its store did not load (:meth:`Store.load` without ``period_sums``):
    reading or changing it raises :class:`NotLoaded`, so that no report is ever figured
    from a part that was never read as if it were empty."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def _refused(self) -> NotLoaded:
        return NotLoaded(f"{self.what} was not loaded")

    def __getitem__(self, key: K) -> V:
        raise self._refused()

    def __iter__(self) -> Iterator[K]:
        raise self._refused()

    def __len__(self) -> int:
        raise self._refused()

    def __contains__(self, key: object) -> bool:
        raise self._refused()

    def __setitem__(self, key: K, value: V) -> None:
        raise self._refused()

    def get(self, *_args: object) -> V:
        raise self._refused()

    def setdefault(self, *_args: object) -> V:
        raise self._refused()

    def keys(self) -> Any:
        raise self._refused()

    def values(self) -> Any:
        raise self._refused()

    def items(self) -> Any:
        raise self._refused()


def _through(
    totals: Mapping[K, Decimal], by_period: Mapping[str, Mapping[K, Decimal]], period: str
) -> dict[K, Decimal]:
    """``totals`` as they stood at the end of ``period``: what later periods added taken out."""
    found = dict(totals)
    for later, changes in by_period.items():
        if later > period:
            for key, value in changes.items():
                found[key] = found.get(key, ZERO) - value
    return found


#: What :meth:`Book.held` reads besides stock on hand: stock in process, consumption queued
#: for stock (from stock), and consumption queued into process (a forward-flushed release).
IN_PROCESS, QUEUED, QUEUED_IN = "in_process", "queued", "queued_in"
HELD_PARTS = (IN_PROCESS, QUEUED, QUEUED_IN)


def _queued(entry: ShortageEntry | None, sign: int) -> tuple[tuple[str, Decimal], ...]:
    """What ``entry`` puts in the shortage queue, times ``sign``: (part, quantity)."""
    if entry is None or entry.kind != "shortage" or entry.open <= 0:
        return ()
    return ((QUEUED_IN if entry.into_process else QUEUED, sign * entry.open),)


def unsold_conversion_memo(period: str) -> str:
    """Memo of the entry a close posts to inventory unsold conversion (a reopen finds it)."""
    return f"close {period}: conversion of unsold finished units inventoried"


def shortage_key(entry: ShortageEntry) -> tuple[str, str, str]:
    return (entry.event, entry.item, entry.kind)


def _escaped(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F")


def exception_key(key: tuple[str, str, str]) -> str:
    """An exception's key as the edges show it: event/item/kind, with ``%`` and ``/`` in
    each part escaped (``%25``, ``%2F``), as ids may hold them: one key names one exception
    (event ``x/y`` and item ``z`` is ``x%2Fy/z/shortage``; event ``x`` and item ``y/z`` is
    ``x/y%2Fz/shortage``)."""
    return "/".join(map(_escaped, key))


def write_off_id(event: str, item: str) -> str:
    """The id a write-off of the exception (``event``, ``item``) gets when none is given: the
    same for every re-sent request, unlike for any other exception; ``write-off:`` and
    ``event/item`` escaped as in :func:`exception_key`, or a digest of them when that is
    longer than an id may be."""
    found = f"write-off:{_escaped(event)}/{_escaped(item)}"
    if len(found) <= ID_LENGTH:
        return found
    return "write-off:" + hashlib.sha256(found.encode()).hexdigest()


#: Kind of flow of a stock movement, by the type of event it belongs to: (into stock, out).
FLOWS: dict[str, tuple[str, str]] = {
    "purchase": ("received", "received"),
    "completion": ("completed", "backflushed"),
    "release": ("released", "released"),
    "issue": ("issued", "issued"),
    "order_close": ("returned", "returned"),
    "sale": ("sold", "sold"),
    "scrap": ("scrapped", "scrapped"),
    "count": ("counted", "counted"),
}


#: Events that close a period or undo a close: those that post disposal entries.
CLOSING_EVENTS = frozenset({"close", "reopen"})


def flow_of(event_type: str, quantity: Decimal) -> str:
    """What moved stock: received, completed, backflushed, released, issued, returned, sold,
    scrapped or counted (reports join them, e.g. theoretical against real usage)."""
    into, out = FLOWS.get(event_type, (event_type, event_type))
    return into if quantity > 0 else out


#: Events that post actual figures only, no standard: their reversal takes back what they
#: posted, whatever standards have come in force since.
ACTUAL_ONLY = (Conversion, Hours)


class Book:
    def __init__(
        self, settings: Settings, master: MasterData, standards: Standards | None = None
    ) -> None:
        self.settings = settings
        self.master = master
        #: Rolled-up standards; a store hands over its cached ones while master data is unchanged.
        self.standards = standards or Standards(settings, master)
        self.balances: dict[Key, Decimal] = {}
        self.activity: dict[str, dict[Key, Decimal]] = {}
        self.statistics: dict[str, dict[str, Decimal]] = {}
        self.on_hand: dict[str, Decimal] = {}
        #: Change of on-hand quantity per period (of the event that moved the stock) and item:
        #: what a close needs to know the quantities at its period's end.
        self.moved: dict[str, dict[str, Decimal]] = {}
        #: On-hand quantity moved per period, by item and kind of flow (see :func:`flow_of`).
        self.flows: dict[str, dict[tuple[str, str], Decimal]] = {}
        #: Change per period (of the event that caused it) of what :meth:`held` reads besides
        #: stock on hand, by item and part (:data:`HELD_PARTS`): a close values the stock in
        #: process and the queue as they stood at its period's end.
        self.held_moved: dict[str, dict[tuple[str, str], Decimal]] = {}
        #: The journal summed per period and (account, element, item); a store loads it for
        #: reports only, so while posting through a store it holds just this session's part.
        self.item_activity: dict[str, dict[tuple[Account, str, str], Decimal]] = {}
        #: The part of ``item_activity`` that disposed of variances (a close's disposal entry
        #: and a reopen's reversal of it): without it, the variances as the close found them.
        self.disposed: dict[str, dict[tuple[Account, str, str], Decimal]] = {}
        #: Quantity moved per period, day and kind of flow (all items together).
        self.daily: dict[str, dict[tuple[dt.date, str], Decimal]] = {}
        self.in_process: dict[str, Decimal] = {}
        #: The latest date stock on hand of each item moved on (an item absent: none known,
        #: e.g. a migrated book that kept no movements of it): a count dated before is refused.
        self.last_moved: dict[str, dt.date] = {}
        self.shortages: dict[tuple[str, str, str], ShortageEntry] = {}
        #: Open queued consumption by item, oldest first: what a stock arrival looks at.
        self.queue: dict[str, dict[tuple[str, str, str], ShortageEntry]] = {}
        self.cleared_by: dict[tuple[str, str, str], str] = {}
        self.closed: dict[str, PeriodResult] = {}
        self.unsold_conversion: dict[Key, Decimal] = {}
        self.orders: dict[str, ProductionOrder] = {}
        #: Reopens of each period, oldest first (the audit trail of the close procedure).
        self.reopens: dict[str, list[ReopenRecord]] = {}
        #: Backflush exceptions written off (a store loads them all): key -> reason.
        self.written_off: dict[tuple[str, str, str], str] = {}
        #: Effective date of the standards stock is valued at (the last revaluation's date).
        self.epoch = dt.date.min
        self.recorded: dict[str, Recorded] = {}
        self.journal: list[Entry] = []
        self.keep_journal = True
        #: Looks up recorded events the book has not loaded (a store's history); None: all loaded.
        self.history: Callable[[Iterable[str]], dict[str, Recorded]] | None = None
        #: Net realisable value estimates per item, in posting order: (date, event id, value).
        self.nrv_estimates: dict[str, list[tuple[dt.date, str, Decimal]]] = {}
        #: Allowance per item, signed (credit negative): the sum of the journal's lines on
        #: nrv_allowance for the item, so negating a close's entries restores it.
        self.nrv_allowance: dict[str, Decimal] = {}
        #: What each close found per item against its net realisable value.
        self.nrv_writedowns: dict[str, dict[str, NrvWritedown]] = {}
        self.changes = Changes()
        #: The event being posted was accepted and may have changed the book (see _post).
        self._accepted = False

    # ------------------------------------------------------------ queries

    @property
    def last_closed(self) -> str | None:
        return max(self.closed) if self.closed else None

    def quantity(self, item: str) -> Decimal:
        return self.on_hand.get(item, ZERO)

    def open_shortages(self) -> list[ShortageEntry]:
        return [s for s in self.shortages.values() if s.open > 0 and s.kind == "shortage"]

    def waiting(self, item: str) -> Decimal:
        """Consumption of ``item`` still waiting in the shortage queue."""
        return sum((s.open for s in self.queue.get(item, {}).values()), ZERO)

    def restore_shortage(self, entry: ShortageEntry, cleared_by: str = "") -> None:
        """Put back a queue entry or flag read from a store (in queue order)."""
        key = shortage_key(entry)
        self._set_shortage(key, entry)
        if cleared_by:
            self.cleared_by[key] = cleared_by

    def _set_shortage(
        self, key: tuple[str, str, str], entry: ShortageEntry, period: str | None = None
    ) -> None:
        """Put ``entry`` in place of the one under ``key``. ``period``: that of the event
        that changed it, where the change of the queue is counted (None: read from a store)."""
        if period is not None:
            for part, change in _queued(entry, +1) + _queued(self.shortages.get(key), -1):
                self._add_held(period, entry.item, part, change)
        self.shortages[key] = entry
        waiting = self.queue.setdefault(entry.item, {})
        if entry.kind == "shortage" and entry.open > 0:
            waiting[key] = entry  # an update keeps the entry's place in the queue
        else:
            waiting.pop(key, None)

    def _add_held(self, period: str, item: str, part: str, change: Decimal) -> None:
        held = self.held_moved.setdefault(period, {})
        held[(item, part)] = held.get((item, part), ZERO) + change
        self.changes.held.add((period, item, part))

    def periods(self) -> list[str]:
        return sorted(set(self.activity) | set(self.statistics) | set(self.closed))

    def period_variances(self, period: str) -> dict[str, Decimal]:
        if period in self.closed:
            return dict(self.closed[period].variances)
        return closing.variances(
            self.activity.get(period, {}), self.statistics.get(period, {}), self._rates(period)
        )

    def _rates(self, period: str) -> closing.Rates:
        """Standard rates per hour in force on a date (None: at the end of ``period``)."""
        end = period_bounds(period)[1]

        def rate(center: str, element: str, on: dt.date | None) -> Decimal | None:
            return (
                self.standards.inputs(end if on is None else on).rates.get(center, {}).get(element)
            )

        return rate

    def standard_content(self, period: str) -> dict[Account, dict[str, Decimal]]:
        """Standard cost by element (``material``, ``labor``, ...) that the inventory accounts
        hold at the end of ``period`` (at the standards in force then) and that cost of goods
        sold took in it (as the sales were costed): what a prorated variance is spread by.
        Standards in force by then that no event has adopted yet do not value the stock yet:
        it is at the book's (a close adopts them first)."""
        on = period_bounds(period)[1]
        if self.standards.epoch(on) > self.epoch:
            on = self.epoch
        found: dict[Account, dict[str, Decimal]] = {}

        def add(account: Account, elements: Mapping[str, Decimal], times: Decimal) -> None:
            into = found.setdefault(account, {})
            for element, amount in elements.items():
                into[element] = into.get(element, ZERO) + times * amount

        for item, units, in_wip in self._placed_through(period):
            for account, elements in self._content(item, units, in_wip, on):
                add(account, elements, Decimal(1))
        for (account, element), amount in self.inventoried_through(period).items():
            add(account, {element: amount}, Decimal(1))  # unsold goods' conversion inventoried
        add(Account.COGS, self.sold_at_standard(period), Decimal(1))
        return found

    def _content(
        self, item: str, units: Decimal, in_wip: Decimal, on: dt.date
    ) -> Iterator[tuple[Account, dict[str, Decimal]]]:
        """Standard cost by element on the books of ``units`` of ``item`` held as its holding
        says and ``in_wip`` in work in process, at the standards effective on ``on``, by
        account (an account may come more than once)."""
        cost = self.standards.unit_cost(item, on)
        total, elements = cost.total, cost.by_element()
        if in_wip:
            yield Account.WORK_IN_PROCESS, {e: in_wip * v for e, v in elements.items()}
        if not units:
            return
        holding = self.standards.holding(item, on)
        partly_off_book = any(account in OFF_BOOK for account, _, _ in holding)
        for account, _, amount in holding:
            if account in OFF_BOOK:
                continue
            if partly_off_book or not total:  # stocked parts under unallocated conversion
                yield account, {closing.MATERIAL: units * amount}
            else:
                yield account, {e: units * v * amount / total for e, v in elements.items()}

    def sold_at_standard(self, period: str) -> dict[str, Decimal]:
        """Standard cost of the units sold in ``period`` by element, each sale at the
        standards it was costed at. Sales that costed nothing (periodic books: the close
        values the stock) or were posted before books kept what they cost: at the standards
        in force at the period end."""
        found = {
            key.removeprefix(closing.SOLD): value
            for key, value in self.statistics.get(period, {}).items()
            if key.startswith(closing.SOLD)
        }
        if found:
            return found
        on = period_bounds(period)[1]
        for (item, flow), quantity in sorted(self.flows.get(period, {}).items()):
            if flow == "sold" and quantity:
                for element, amount in self.standards.unit_cost(item, on).by_element().items():
                    found[element] = found.get(element, ZERO) - quantity * amount
        return found

    def revalued(self, period: str) -> dict[str, Decimal]:
        """What the revaluations of ``period`` changed the stock's standard value by, by
        element (the revaluation variance is its negative): nothing for revaluations posted
        before books kept it."""
        return {
            key.removeprefix(closing.REVALUED): value
            for key, value in self.statistics.get(period, {}).items()
            if key.startswith(closing.REVALUED)
        }

    def lost_conversion(self, period: str) -> Decimal:
        """The conversion that scrap (reported, or at a sequential completion) and counts of
        ``period`` took to a variance with their material, less what count gains and
        written-off shortages brought back (:data:`~backflush.engine.close.LOST_CONVERSION`)."""
        return self.statistics.get(period, {}).get(closing.LOST_CONVERSION, ZERO)

    def account_balances(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for (account, _), value in self.balances.items():
            totals[account.value] = totals.get(account.value, ZERO) + value
        return totals

    def on_hand_through(self, period: str) -> dict[str, Decimal]:
        """On-hand quantities at the end of ``period``: stock moved later left out."""
        return _through(self.on_hand, self.moved, period)

    def balances_through(self, period: str) -> dict[Key, Decimal]:
        """Balances at the end of ``period``: the entries dated in later periods left out."""
        return _through(self.balances, self.activity, period)

    def held_through(self, period: str) -> dict[tuple[str, str], Decimal]:
        """Stock in process and consumption queued at the end of ``period``, by (item, part
        of :data:`HELD_PARTS`): what later periods changed taken out."""
        now: dict[tuple[str, str], Decimal] = {
            (item, IN_PROCESS): quantity for item, quantity in self.in_process.items()
        }
        for entries in self.queue.values():
            for entry in entries.values():
                for part, quantity in _queued(entry, +1):
                    now[(entry.item, part)] = now.get((entry.item, part), ZERO) + quantity
        return _through(now, self.held_moved, period)

    def _placed_through(self, period: str) -> Iterator[tuple[str, Decimal, Decimal]]:
        """Each item stocked at the end of ``period`` (phantoms never are), with the units
        whose value sits where its holding says and those in work in process (:meth:`held`
        as of then)."""
        stock, parts = self.on_hand_through(period), self.held_through(period)
        for item in sorted(set(stock) | {item for item, _ in parts}):
            if self.master.items[item].kind is not Kind.PHANTOM:
                queued = (parts.get((item, part), ZERO) for part in HELD_PARTS)
                yield item, *self._held(stock.get(item, ZERO), *queued)

    def held(self, item: str) -> tuple[Decimal, Decimal]:
        """Units of ``item`` whose value sits where its holding says, and units whose value
        sits in work in process (sequential costing only)."""
        queued = {QUEUED: ZERO, QUEUED_IN: ZERO}
        for entry in self.queue.get(item, {}).values():
            for part, quantity in _queued(entry, +1):
                queued[part] += quantity
        in_process = self.in_process.get(item, ZERO)
        return self._held(self.quantity(item), in_process, queued[QUEUED], queued[QUEUED_IN])

    def _held(
        self, on_hand: Decimal, in_process: Decimal, queued: Decimal, queued_in: Decimal
    ) -> tuple[Decimal, Decimal]:
        """:meth:`held` from the quantities on hand and in process and the consumption
        queued (into process: ``queued_in``).

        Units in process hold their value like units on hand under backflush; consumption
        still waiting in the shortage queue was credited when the completion posted, so it is
        no longer held (a queued release moved nothing and, under backflush, posted nothing).
        Under count and cogs-first nothing was credited, but the close values it the same:
        taken off, as negative stock would be."""
        if self.standards.sequential:
            return on_hand - queued - queued_in, in_process + queued_in
        if self.settings.triggers.periodic:
            # Valued as a close values it: what is on hand (stock issued or released to
            # production counts as used) less the consumption waiting for stock, as negative
            # stock would be under ``shortage: allow`` (the goods it went into are counted).
            return on_hand - queued - queued_in, ZERO
        return on_hand + in_process - queued, ZERO

    def stock_value(self, item: str, on: dt.date | None = None) -> dict[Key, Decimal]:
        """Standard value of the stock of ``item`` by (account, element), unrounded, at the
        standards effective on ``on`` (default: those stock is valued at now). Parts in
        accounts payable and conversion allocated are held off the books. Under ``count`` and
        ``cogs-first``: the value a close gives the units on hand, which the books hold only
        right after a close (see :meth:`periodic_difference`)."""
        if self.master.items[item].kind is Kind.PHANTOM:
            return {}
        return self._valued(item, *self.held(item), self.epoch if on is None else on)

    def _valued(
        self, item: str, units: Decimal, in_wip: Decimal, on: dt.date
    ) -> dict[Key, Decimal]:
        """:meth:`stock_value` of ``units`` held as the holding of ``item`` says and ``in_wip``
        in work in process (:meth:`held`), at the standards effective on ``on``."""
        found: dict[Key, Decimal] = {}
        for account, element, amount in self.standards.holding(item, on) if units else ():
            found[(account, element)] = found.get((account, element), ZERO) + units * amount
        if in_wip:
            total = self.standards.unit_cost(item, on).total
            key = (Account.WORK_IN_PROCESS, "")
            found[key] = found.get(key, ZERO) + in_wip * total
        return found

    def stocked_items(self) -> list[str]:
        """Items with stock, stock in process, or consumption waiting for stock."""
        waiting = {item for item, entries in self.queue.items() if entries}
        return sorted(set(self.on_hand) | set(self.in_process) | waiting)

    def off_book(self) -> dict[str, Decimal]:
        """Standard value of stock held off the books, per item: material not yet recognised
        (policies without a purchase trigger) and conversion not yet allocated (subassemblies,
        goods costed only at sale), less what a close has inventoried."""
        found: dict[str, Decimal] = {}
        for item in self.stocked_items():
            value = sum(
                (v for (account, _), v in self.stock_value(item).items() if account in OFF_BOOK),
                ZERO,
            )
            if value:
                found[item] = round_money(value, self.settings.currency, self.settings.rounding)
        inventoried = sum(self.unsold_conversion.values(), ZERO)
        if inventoried:
            found["(conversion inventoried at close)"] = -inventoried
        return found

    def periodic_difference(self) -> Decimal:
        """Under ``count`` / ``cogs-first``: the standard value of the stock on hand, as a
        close would value it now, less what RIP and FG hold (rounded): what a close would move
        into (+) or out of (-) the inventory accounts against COGS. Between closes these books
        do not keep inventories at quantities x standard; right after a close (with nothing
        posted since) this is zero to the rounding of the close's lines. Zero for the other
        policies."""
        if not self.settings.triggers.periodic:
            return ZERO
        value = sum(
            (v for item in self.stocked_items() for v in self.stock_value(item).values()), ZERO
        )
        rounded = round_money(value, self.settings.currency, self.settings.rounding)
        return rounded - self.periodic_held()

    def periodic_held(self) -> Decimal:
        """What RIP and FG hold of stock (variances prorated into them left out)."""
        return sum(
            (
                v
                for (account, element), v in self.balances.items()
                if account in (Account.RAW_IN_PROCESS, Account.FINISHED_GOODS)
                and not element.startswith(closing.PRORATED)
            ),
            ZERO,
        )

    # ------------------------------------------------------------ posting

    def post(self, event: Event) -> bool:
        """Apply one event; False when the same event was applied before (a no-op)."""
        return self.post_many([event])[0]

    def post_many(self, events: Iterable[Event]) -> list[bool]:
        events = list(events)
        self._load_history(events)
        ctx = Context(
            self.settings,
            self.standards,
            self.on_hand,
            self.waiting,
            lambda item: self.in_process.get(item, ZERO),
            self.orders.get,
        )
        applied: list[bool] = []
        # Quantities and values worked out to 50 digits.
        with localcontext(CONTEXT), collector_paused():
            try:
                for event in events:
                    applied.append(self._post(event, ctx))
            except PostingError as error:
                error.changed_book = error.changed_book or any(applied)
                error.position = len(applied)
                raise
        return applied

    def recorded_ids(self, events: Sequence[Event]) -> set[str]:
        """The ids of ``events`` the book records already (one read of its lookup): posting
        one again is a no-op, or a conflict when its content differs, so a shell's checks of
        what is new (a date years ahead) do not apply to it."""
        self._load_history(list(events))
        return {e.id for e in events if e.id in self.recorded}

    def _load_history(self, events: list[Event]) -> None:
        if self.history is None:
            return
        wanted = {e.id for e in events} | {e.reverses for e in events if isinstance(e, Reversal)}
        missing = [i for i in wanted if i not in self.recorded]
        if missing:
            self.recorded.update(self.history(missing))

    def _post(self, event: Event, ctx: Context) -> bool:
        """Post ``event``; a refusal says whether the book changed before it was refused.
        Every check that can refuse an event runs before it is accepted: accepted, it
        changes the book (``_accepted``, set by ``follow_standards`` or the reopen)."""
        self._accepted = False
        try:
            return self._post_once(event, ctx)
        except PostingError as error:
            error.event_id = event.id
            error.changed_book = self._accepted
            raise
        except StandardError as error:  # e.g. a product made before its first BOM version
            refused = PostingError(f"event {event.id}: {error}")
            refused.event_id = event.id
            refused.changed_book = self._accepted
            raise refused from None

    def _post_once(self, event: Event, ctx: Context) -> bool:
        """Apply ``event``; ``ctx``: the view of the book that :func:`flush` works from."""
        print_ = fingerprint(event)
        seen = self.recorded.get(event.id)
        if seen is not None:
            if seen.fingerprint != print_:
                raise ConflictError(
                    f"event {event.id}: id already recorded with different content "
                    f"(recorded {seen.fingerprint}, received {print_})"
                )
            return False
        if not isinstance(event, Reopen):  # a reopen is about a closed period
            self._check_open(event)
        epoch = self.standards.epoch(event.date)
        # What costs nothing at standard may follow events of newer standards: a close, a
        # reopen, actual conversion costs and hours (e.g. a late invoice into a reopened month);
        # so may a receipt, its units revalued to the newer standards (_revalue_receipt).
        late = epoch < self.epoch
        if late and not isinstance(event, (Close, Reopen, Conversion, Hours, Purchase)):
            raise PostingError(
                f"event {event.id}: dated {event.date.isoformat()}, before the standards "
                f"effective {self.epoch.isoformat()} that stock is valued at now; "
                f"date it on or after {self.epoch.isoformat()}"
            )
        if isinstance(event, Count):
            moved = self.last_moved.get(event.item)
            if moved is not None and event.date < moved:
                # It compares with the stock as the book holds it now: what moved after its
                # date would be counted away (a receipt) or found again (a consumption).
                raise PostingError(
                    f"event {event.id}: a count of {event.item!r} dated "
                    f"{event.date.isoformat()}, before its stock moved on {moved.isoformat()}; "
                    f"a count is compared with the stock as it stands: date it on or after "
                    f"{moved.isoformat()}"
                )

        def follow_standards() -> None:
            """Called once the event is known to be accepted, before it changes anything."""
            self._accepted = True
            if epoch > self.epoch:
                # Each change of standards revalued on its own date: a close of the period of
                # one in between finds it there, whether this event is dated before or after.
                between = self.standards.epochs_after(self.epoch, epoch)[:-1]
                for each in between if self.stocked_items() else ():
                    self._revalue(each)
                self._revalue(epoch)

        record = Recorded(event, print_)
        if isinstance(event, Close):
            self._close(event, record, follow_standards)
        elif isinstance(event, Reversal):
            self._reverse(event, record, follow_standards)
        elif isinstance(event, Revaluation):
            follow_standards()
        elif isinstance(event, Reopen):
            self._reopen(event, record)
        elif isinstance(event, Retry):
            self._retry_event(event, follow_standards)
        elif isinstance(event, WriteOff):
            self._write_off(event, record, follow_standards)
        elif isinstance(event, NetRealisableValue):
            self._estimate_nrv(event, follow_standards)
        else:
            if isinstance(event, OrderClose):
                self._check_order_picked(event)
            effects = flush(event, ctx)
            follow_standards()
            self._apply(record, effects)
            if late and isinstance(event, Purchase):
                self._revalue_receipt(event, epoch, record)
        self.recorded[event.id] = record
        self.changes.events.append(record)
        return True

    def _check_open(self, event: Event) -> None:
        last = self.last_closed
        if last is not None and event.date <= period_bounds(last)[1]:
            raise PostingError(
                f"event {event.id}: dated {event.date.isoformat()} in period "
                f"{period_of(event.date)}, which is closed (last closed period {last})"
            )

    def _apply(self, record: Recorded, effects: Effects) -> None:
        event = record.event
        for entry in effects.entries:
            self._post_entry(entry, record)
        for name, value in effects.memo:
            self._add_statistic(period_of(event.date), name, value, record)
        self._move(event.id, event.id, event.date, effects.movements, record)
        arrivals = [movement.item for movement in effects.movements if movement.on_hand > ZERO]
        for shortage in effects.shortages:
            key = shortage_key(shortage)
            previous = self.shortages.get(key)
            if previous is not None:  # the same event short twice of one item: one entry
                shortage = dataclasses.replace(
                    shortage,
                    quantity=previous.quantity + shortage.quantity,
                    open=previous.open + shortage.open,
                )
            self._set_shortage(key, shortage, period_of(event.date))
            self.changes.shortages[key] = shortage
        for order in effects.orders:
            self.orders[order.id] = order
            self.changes.orders.add(order.id)
        for item in dict.fromkeys(arrivals):
            self._retry(item, event.id, event.date)

    def _post_entry(self, entry: Entry, record: Recorded | None) -> None:
        period = entry.period
        activity = self.activity.setdefault(period, {})
        by_item = self.item_activity.setdefault(period, {})
        item_changes = self.changes.item_activity
        disposed = None
        closes = record is not None and record.event.type in CLOSING_EVENTS
        if closes and closing.is_disposal(entry.memo):
            disposed = self.disposed.setdefault(period, {})
        balances, changes = self.balances, self.changes
        for line in entry.lines:
            account, element, item, amount = line.account, line.element, line.item, line.amount
            key = (account, element)
            balances[key] = balances.get(key, ZERO) + amount
            activity[key] = activity.get(key, ZERO) + amount
            changes.balances.add(key)
            changes.activity.add((period, key))
            item_key = (account, element, item)
            by_item[item_key] = by_item.get(item_key, ZERO) + amount
            change_key = (period, account, element, item)
            item_changes[change_key] = item_changes.get(change_key, ZERO) + amount
            if disposed is not None:
                disposed[item_key] = disposed.get(item_key, ZERO) + amount
            if account is _NRV_ALLOWANCE:
                self.nrv_allowance[item] = self.nrv_allowance.get(item, ZERO) + amount
                changes.nrv_allowance.add(item)
        if record is not None:
            record.entries.append(entry)
        if self.keep_journal:
            self.journal.append(entry)
        self.changes.entries.append(entry)

    def _add_statistic(self, period: str, key: str, value: Decimal, record: Recorded) -> None:
        stats = self.statistics.setdefault(period, {})
        stats[key] = stats.get(key, ZERO) + value
        record.statistics.append((key, value))
        self.changes.statistics.add((period, key))

    def _move(
        self,
        owner: str,
        cause: str,
        date: dt.date,
        movements: Sequence[Movement],
        record: Recorded,
        period: str | None = None,
    ) -> None:
        """Move stock for ``owner``'s event, made to happen by ``cause`` on ``date`` (counted
        in ``period``, by default the date's), one movement after the other."""
        dated = period_of(date)  # the day's own period (a reopen counts in the closed one)
        period = period or dated
        source = record.event
        if isinstance(source, Reversal):  # takes back the original's flow
            original = self.recorded.get(source.reverses)
            source = original.event if original is not None else source
        # The kind of flow is flow_of(source.type, quantity), the quantity negated for a
        # reversal (it takes back what its original moved).
        into, out = FLOWS.get(source.type, (source.type, source.type))
        forward = source is record.event
        counted = source.type == "count"  # a count that agreed is a count too
        on_hand, in_process, changes = self.on_hand, self.in_process, self.changes
        # The period's sums, made only when a movement adds to them.
        stock_moves = any(map(_ON_HAND, movements))
        moved = self.moved.setdefault(period, {}) if stock_moves else {}
        flowed = stock_moves or counted
        flows = self.flows.setdefault(period, {}) if flowed else {}
        daily = self.daily.setdefault(dated, {}) if flowed else {}
        get, add_moved = on_hand.get, changes.moved.add
        last_moved, last_get = self.last_moved, self.last_moved.get
        add_flow, add_daily = changes.flows.add, changes.daily.add
        # The day's sum of the flow of the movements before (a completion's components all
        # flow alike), written back when the flow changes and at the end: the same sums.
        day_flow: str | None = None
        day_sum = ZERO
        for movement in movements:
            item, quantity = movement.item, movement.on_hand
            on_hand[item] = get(item, ZERO) + quantity
            if quantity:
                moved[item] = moved.get(item, ZERO) + quantity
                add_moved((period, item))
                if date > last_get(item, dt.date.min):
                    last_moved[item] = date
            if quantity or counted:
                flow = into if (quantity > ZERO if forward else quantity < ZERO) else out
                key = (item, flow)
                flows[key] = flows.get(key, ZERO) + quantity
                add_flow((period, item, flow))
                if flow != day_flow:
                    if day_flow is not None:
                        daily[(date, day_flow)] = day_sum
                    day_flow, day_sum = flow, daily.get((date, flow), ZERO)
                    add_daily((dated, date, flow))
                day_sum = day_sum + quantity
            if movement.in_process:
                in_process[item] = in_process.get(item, ZERO) + movement.in_process
                self._add_held(period, item, IN_PROCESS, movement.in_process)
        if day_flow is not None:
            daily[(date, day_flow)] = day_sum
        record.movements.extend(movements)
        changes.movements.append((owner, cause, tuple(movements)))
        changes.quantities.update(map(_ITEM, movements))

    def _retry(self, item: str, cause: str, date: dt.date) -> None:
        """Stock of ``item`` arrived on ``date``: clear queued consumption, oldest first."""
        for key, entry in list(self.queue.get(item, {}).items()):
            available = self.quantity(item)
            if available <= 0:
                return
            take = min(available, entry.open)
            owner = self.recorded.get(entry.event)
            if owner is None and self.history is not None:
                self.recorded.update(self.history([entry.event]))
                owner = self.recorded.get(entry.event)
            if owner is None:
                raise PostingError(f"queued shortage of event {entry.event} has no recorded event")
            movement = Movement(item, -take, take if entry.into_process else ZERO)
            self._move(entry.event, cause, date, [movement], owner)
            updated = dataclasses.replace(entry, open=entry.open - take)
            self._set_shortage(key, updated, period_of(date))
            self.changes.shortages[key] = updated
            if updated.open == 0:
                self.cleared_by[key] = cause
                self.changes.cleared[key] = cause

    def _revalue(self, epoch: dt.date) -> None:
        """Revalue stock on hand to the standards effective on ``epoch`` (DESIGN §3.3:
        quantity x (new - old standard), against the revaluation variance), dated ``epoch``.

        Posted when the first event dated on or after ``epoch`` is accepted, whatever its
        date: the stock held then is the stock on ``epoch`` (no event moving stock dated
        before ``epoch`` is accepted afterwards, but a receipt, which revalues its own units:
        :meth:`_revalue_receipt`), and ``epoch`` lies in an open period (a
        close adopts every standard effective by its period's end). Dated ``epoch``, the
        entry lands in the period the standards took effect in, whichever event adopted
        them: that period's close does not depend on the order events were posted in."""
        event = Revaluation(f"revaluation-{epoch.isoformat()}", epoch, epoch)
        record = Recorded(event, fingerprint(event))
        # A periodic book's inventory accounts hold what the last close counted (and, under
        # count, receipts at their standard), not quantities x standard: nothing is revalued
        # between closes; the next close values its counts at the new standards.
        revalued = [] if self.settings.triggers.periodic else self.stocked_items()
        if self.settings.triggers.periodic:
            for item in self.stocked_items():  # standards that cannot value the stock are
                self.stock_value(item, epoch)  # refused here, as they are for other books
        by_element: dict[str, Decimal] = {}  # the change of the stock's content, by element
        inventoried = self.settings.inventory_unsold_conversion
        for item in revalued:  # one entry per item: each change explained
            memo = f"revaluation of {item} to the standards of {epoch}"
            old, new = self.stock_value(item), self.stock_value(item, epoch)
            conversion: dict[str, Decimal] = {}
            if inventoried and self._costed_at_sale(item):
                conversion = self._inventoried_conversion_change(item, epoch)
                for element, change in conversion.items():
                    key = (Account.FINISHED_GOODS, element)
                    new[key] = new.get(key, ZERO) + change
            self._post_revaluation(record, epoch, item, memo, old, new)
            if conversion:
                self._add_inventoried(epoch, conversion, record)
            if self.master.items[item].kind is not Kind.PHANTOM:  # (valued at nothing)
                self._content_change(by_element, item, *self.held(item), self.epoch, epoch)
            for element, change in conversion.items():
                by_element[element] = by_element.get(element, ZERO) + change
        self._add_revalued(record, epoch, by_element)
        self.epoch = epoch
        self.recorded[event.id] = record
        self.changes.events.append(record)

    def _inventoried_conversion_change(self, item: str, epoch: dt.date) -> dict[str, Decimal]:
        """The change, by element, of the standard conversion of the units of ``item`` on
        hand, from the standards stock is valued at to those of ``epoch``: what
        ``inventory_unsold_conversion`` books revalue beside the stock's material, as books
        that carry the conversion of every unit (purchase+completion) revalue it. The close
        that inventories the conversion of unsold units then allocates only the rest."""
        units = self.held(item)[0]
        change: dict[str, Decimal] = {}
        for on, sign in ((self.epoch, -1), (epoch, 1)):
            for element, amount in self._unsold_conversion(item, on):
                change[element] = change.get(element, ZERO) + sign * units * amount
        return {element: amount for element, amount in change.items() if amount}

    def _add_inventoried(
        self, on: dt.date, conversion: Mapping[str, Decimal], record: Recorded
    ) -> None:
        """The change of the conversion of finished goods (by element, unrounded) that a
        revaluation dated ``on`` posted is part of what closes inventoried, from its date on
        (:data:`~backflush.engine.close.INVENTORIED_REVALUED`): each element's change rounded
        as its line is, on its own, since the line of a conversion element named ``""``
        holds the change of the goods' material too."""
        currency, mode = self.settings.currency, self.settings.rounding
        for element, change in conversion.items():
            amount = round_money(change, currency, mode)
            if not amount:
                continue
            key = (Account.FINISHED_GOODS, element)
            self.unsold_conversion[key] = self.unsold_conversion.get(key, ZERO) + amount
            self.changes.unsold_conversion.add(key)
            name = closing.INVENTORIED_REVALUED + element
            self._add_statistic(period_of(on), name, amount, record)

    def inventoried_through(self, period: str) -> dict[Key, Decimal]:
        """The conversion inventoried in unsold finished goods at the end of ``period``: what
        closes put there and revaluations dated through ``period`` changed it by (one dated
        later, when a close is posted late, is the later period's)."""
        found = dict(self.unsold_conversion)
        for later, stats in self.statistics.items():
            if later <= period:
                continue
            for name, amount in stats.items():
                if name.startswith(closing.INVENTORIED_REVALUED):
                    key = (Account.FINISHED_GOODS, name.removeprefix(closing.INVENTORIED_REVALUED))
                    found[key] = found.get(key, ZERO) - amount
        return found

    def _revalue_receipt(self, event: Purchase, since: dt.date, record: Recorded) -> None:
        """A receipt dated before the standards stock is valued at now (``since``: those of
        its date), say a December invoice posted into the reopened month after January's cost
        roll: costed at its day's standards, its units are revalued to each change since, on
        the change's date, as :meth:`_revalue` would have revalued them had it come in time."""
        if self.settings.triggers.periodic:  # nothing revalued between closes (see _revalue)
            return
        item, units = event.item, event.quantity
        old = since
        for on in self.standards.epochs_after(since, self.epoch):
            memo = (
                f"revaluation of {fmt(units)} {item} received on {event.date.isoformat()} "
                f"to the standards of {on}"
            )
            before, after = (
                self._valued(item, units, ZERO, old),
                self._valued(item, units, ZERO, on),
            )
            self._post_revaluation(record, on, item, memo, before, after)
            by_element: dict[str, Decimal] = {}
            self._content_change(by_element, item, units, ZERO, old, on)
            self._add_revalued(record, on, by_element)
            old = on

    def _post_revaluation(
        self,
        record: Recorded,
        on: dt.date,
        item: str,
        memo: str,
        old: Mapping[Key, Decimal],
        new: Mapping[Key, Decimal],
    ) -> None:
        """Post the revaluation of stock of ``item`` valued ``old`` to ``new`` (by account and
        element), dated ``on``: the on-book change against the revaluation variance, and the
        change of the price difference held off the books."""
        builder = EntryBuilder(on, record.event.id, memo)
        change = ZERO
        for (account, element), delta in on_book_change(old, new).items():
            builder.add(account, delta, element)
            change += delta
        builder.add(Account.REVALUATION_VARIANCE, -change, item=item)
        entry = builder.build(self.settings, Account.REVALUATION_VARIANCE, plug_item=item)
        if entry is not None:
            self._post_entry(entry, record)
        if unrecorded := unrecorded_price_change(old, new):
            self._add_statistic(period_of(on), PRICE_UNRECORDED, unrecorded, record)

    def _content_change(
        self,
        into: dict[str, Decimal],
        item: str,
        units: Decimal,
        in_wip: Decimal,
        old: dt.date,
        new: dt.date,
    ) -> None:
        """Add to ``into`` the change, by element, of the standard content of ``units`` of
        ``item`` (and ``in_wip`` in work in process) from the standards of ``old`` to ``new``."""
        for on, sign in ((old, -1), (new, 1)):
            for _, elements in self._content(item, units, in_wip, on):
                for element, amount in elements.items():
                    into[element] = into.get(element, ZERO) + sign * amount

    def _add_revalued(self, record: Recorded, on: dt.date, by_element: dict[str, Decimal]) -> None:
        for element, amount in sorted(by_element.items()):
            if amount:
                self._add_statistic(period_of(on), closing.REVALUED + element, amount, record)

    # ------------------------------------------------------------ reversal

    def _reverse(
        self, event: Reversal, record: Recorded, follow_standards: Callable[[], None]
    ) -> None:
        original = self.recorded.get(event.reverses)
        if original is None:
            raise PostingError(f"event {event.id}: reverses unknown event {event.reverses!r}")
        if isinstance(original.event, (Close, Reversal, Revaluation)):
            raise PostingError(
                f"event {event.id}: a {original.event.type} cannot be reversed "
                f"(reopen a period instead)"
            )
        if isinstance(original.event, (Reopen, Retry, WriteOff)):
            raise PostingError(
                f"event {event.id}: a {original.event.type} cannot be reversed "
                "(it is part of the audit trail; post a new event instead)"
            )
        self._check_not_written_off(event)
        if isinstance(original.event, NetRealisableValue):
            raise PostingError(
                f"event {event.id}: an nrv estimate is not reversed; post a new nrv event "
                f"for {original.event.item} with the right value"
            )
        if original.reversed_by:
            raise PostingError(
                f"event {event.id}: event {event.reverses} was already reversed by "
                f"{original.reversed_by}"
            )
        if event.date < original.event.date:
            # It would take back, in the book of its date (an earlier period even), what
            # happened only later: stock and value that were not there yet.
            raise PostingError(
                f"event {event.id}: dated {event.date.isoformat()}, before event "
                f"{event.reverses} ({original.event.date.isoformat()}) that it reverses; "
                f"date it on or after {original.event.date.isoformat()}"
            )
        effects = Effects()
        self._reverse_order(event, original.event, effects)
        then, now = self.standards.epoch(original.event.date), self.standards.epoch(event.date)
        # Its entries are at the standards of ``then``, stock at newer ones: what it moves back
        # is revalued from the one to the other (_revalue_taken_back).
        crosses = then != now and not isinstance(original.event, ACTUAL_ONLY)
        if crosses:
            self._check_revaluable(event, original, then, now)
        net: dict[str, list[Decimal]] = {}
        for m in original.movements:
            on_hand, in_process = net.setdefault(m.item, [ZERO, ZERO])
            net[m.item] = [on_hand - m.on_hand, in_process - m.in_process]
        for item, (on_hand, in_process) in net.items():
            if on_hand < 0 and self.quantity(item) + on_hand < 0:
                if self.settings.shortage is not Shortage.ALLOW:
                    raise PostingError(
                        f"event {event.id}: reversing {event.reverses} takes back {-on_hand} of "
                        f"{item!r} but only {self.quantity(item)} is on hand"
                    )
                short = -(self.quantity(item) + on_hand)
                effects.shortages.append(
                    ShortageEntry(event.id, event.date, item, short, ZERO, "negative_stock")
                )
            if on_hand or in_process:
                effects.movements.append(Movement(item, on_hand, in_process))
        for entry in original.entries:
            lines = tuple(dataclasses.replace(line, amount=-line.amount) for line in entry.lines)
            effects.entries.append(
                Entry(event.date, event.id, f"reversal of {event.reverses}: {entry.memo}", lines)
            )
        effects.memo.extend((key, -value) for key, value in original.statistics)
        follow_standards()
        waiting = [(k, s) for items in self.queue.values() for k, s in items.items()]
        # Consumption still waiting in the queue never happened: it is dropped, not reversed.
        for key, shortage in waiting:
            if shortage.event == event.reverses:
                dropped = dataclasses.replace(shortage, open=ZERO)
                self._set_shortage(key, dropped, period_of(event.date))
                self.changes.shortages[key] = dropped
                self.cleared_by[key] = event.id
                self.changes.cleared[key] = event.id
        original.reversed_by = event.id
        self.changes.reversed.append((event.reverses, event.id))
        self._apply(record, effects)
        if crosses:
            self._revalue_taken_back(record, original, effects.movements)

    def _check_revaluable(
        self, event: Reversal, original: Recorded, then: dt.date, now: dt.date
    ) -> None:
        """Refuse a reversal across a change of standards where what it takes back cannot be
        revalued as a receipt's units are: consumption it queued still waits for stock (the
        queue is valued apart), or it moved goods costed at sale whose unsold conversion the
        book inventories (revalued with the stock it sits in, not unit by unit)."""
        why = ""
        if any(entry.event == original.event.id for items in self.queue.values()
               for entry in items.values()):  # fmt: skip
            why = "consumption it queued still waits for stock"
        elif self.settings.inventory_unsold_conversion and any(
            self._costed_at_sale(m.item) for m in original.movements
        ):
            why = "it moved goods costed at sale whose unsold conversion the book inventories"
        if why:
            since = "the first standards" if then == dt.date.min else f"the standards of {then}"
            raise PostingError(
                f"event {event.id}: event {event.reverses} was costed at {since}, replaced on "
                f"{now.isoformat()}, and {why}; post a correcting event instead of a reversal"
            )

    def _revalue_taken_back(
        self, record: Recorded, original: Recorded, movements: Sequence[Movement]
    ) -> None:
        """A reversal across a change of standards took back ``original``'s entries, valued
        at the standards it was posted at (those of its date; a late receipt's entries carry
        its units on to the standards of their revaluations): what it moved back
        (``movements``) is revalued from there to the standards stock is valued at now,
        against the revaluation variance, on the reversal's date (the changes' own dates may
        lie in closed periods). A periodic book revalues nothing between closes."""
        if self.settings.triggers.periodic:
            return
        dates = [e.date for e in original.entries] or [original.event.date]
        old, new = max(map(self.standards.epoch, dates)), self.epoch
        on, by_element = record.event.date, dict[str, Decimal]()
        for movement in movements:
            item, units, in_wip = movement.item, movement.on_hand, movement.in_process
            memo = f"revaluation of {fmt(units)} {item} taken back to the standards of {new}"
            before, after = (
                self._valued(item, units, in_wip, old),
                self._valued(item, units, in_wip, new),
            )
            self._post_revaluation(record, on, item, memo, before, after)
            self._content_change(by_element, item, units, in_wip, old, new)
        self._add_revalued(record, on, by_element)

    def _check_order_picked(self, event: OrderClose) -> None:
        """An order closes once what its release forward-flushed has been picked: consumption
        still waiting in the shortage queue would arrive for a closed order."""
        order = self.orders.get(event.order)
        if order is None:
            return
        waiting = [
            f"{fmt(entry.open)} {entry.item}"
            for entries in self.queue.values()
            for entry in entries.values()
            if entry.event == order.release_event
        ]
        if waiting:
            raise PostingError(
                f"event {event.id}: production order {order.id} still waits for "
                f"{', '.join(waiting)} released by {order.release_event} (shortage queue); "
                "receive the stock, then close the order"
            )

    def _reverse_order(self, event: Reversal, original: Event, effects: Effects) -> None:
        """What reversing ``original`` undoes of its production order."""
        order_id = getattr(original, "order", "")
        if not order_id:
            return
        if isinstance(original, (Release, OrderClose)):
            raise PostingError(
                f"event {event.id}: a production order's {original.type} cannot be reversed "
                f"(order {order_id}); close the order, or correct with new events"
            )
        order = self.orders[order_id]
        if order.closed_by:
            raise PostingError(
                f"event {event.id}: production order {order_id} was closed by "
                f"{order.closed_by}; its events cannot be reversed any more"
            )
        if isinstance(original, Issue):
            issued = totals([*order.issued, (original.item, -original.quantity)])
            effects.orders.append(dataclasses.replace(order, issued=tuple(issued.items())))
        elif isinstance(original, Completion):
            made = original.quantity + original.scrapped
            undone = [(c, -made * q) for c, q, f in order.requirements if f is not Flush.BACKWARD]
            effects.orders.append(
                dataclasses.replace(
                    order,
                    completed=order.completed - original.quantity,
                    scrapped=order.scrapped - original.scrapped,
                    consumed=tuple(totals([*order.consumed, *undone]).items()),
                )
            )

    # ------------------------------------------------------------ close

    def _close(self, event: Close, record: Recorded, follow_standards: Callable[[], None]) -> None:
        period = event.period
        last = period_bounds(period)[1]
        if event.date < last:
            raise PostingError(
                f"event {event.id}: close of {period} dated {event.date.isoformat()}, "
                f"before the period ends on {last.isoformat()}"
            )
        if period in self.closed:
            raise PostingError(f"event {event.id}: period {period} is already closed")
        latest = self.last_closed
        if latest is not None and period < latest:
            raise PostingError(f"event {event.id}: period {period} is before {latest}, closed")
        if latest is not None and period != next_period(latest):
            raise PostingError(
                f"event {event.id}: period {next_period(latest)} is still open; "
                "close periods in order"
            )
        earlier = [p for p in self.periods() if p < period and p not in self.closed]
        if earlier:
            raise PostingError(
                f"event {event.id}: period {earlier[0]} is still open; close periods in order"
            )
        self._check_exceptions_at_close(event)
        follow_standards()
        adjustment = self._unsold_conversion_entry(period, last, event.id)
        if adjustment is not None:
            self._post_entry(adjustment, record)
        self._periodic_inventory(period, last, event.id, record)
        self._round_inventory(period, last, event.id, record)
        found = self.period_variances(period)
        prorating = any(
            self.settings.disposition_of(kind) is Disposition.PRORATE for kind in closing.DISPOSABLE
        )
        content = self.standard_content(period) if prorating else None
        # What the period holds at its end: entries already posted in later (open) periods
        # are theirs to dispose of, not this close's.
        disposal = closing.disposal(
            self.settings,
            self.balances_through(period),
            last,
            event.id,
            period,
            content=content,
            explained=found,  # its spending and efficiency parts
        )
        if disposal is not None:
            self._post_entry(disposal, record)
        # After the disposal: stock carries the variances prorated into it (IAS 2.9, cost).
        self._close_net_realisable_value(period, last, event.id, record, content)
        self.activity.setdefault(period, {})
        at_close: dict[str, Decimal] = {}
        for (account, _), value in self.balances_through(period).items():
            at_close[account.value] = at_close.get(account.value, ZERO) + value
        result = PeriodResult(
            period,
            event.id,
            tuple(found.items()),
            tuple(sorted((k, v) for k, v in at_close.items() if v)),
        )
        self.closed[period] = result
        self.changes.closes.append(result)

    def _periodic_inventory(self, period: str, date: dt.date, event: str, record: Recorded) -> None:
        """``count`` / ``cogs-first``: value RIP and FG from the quantities at the period end
        (which counts have corrected; consumption still waiting for stock taken off, see
        :meth:`_held`) at the standards in force on the period's last day (a
        cut-off: standards released later wait for the next close), against COGS
        (:func:`backflush.engine.close.periodic_inventory`). Ordinary entries of the close,
        worked out from balances: a reopen negating them restores what they started from."""
        if not self.settings.triggers.periodic:
            return
        units = {item: held for item, held, _ in self._placed_through(period)}
        targets = closing.periodic_targets(self.standards, units, date, self.settings)
        for entry in closing.periodic_inventory(
            self.settings, targets, self.balances_through(period), date, event, period
        ):
            self._post_entry(entry, record)

    def _round_inventory(self, period: str, date: dt.date, event: str, record: Recorded) -> None:
        """Perpetual books: bring each inventory account (by element) to the stock it holds
        at standard at the period end, each item's value rounded as the valuation rounds it.
        Every posting rounds its lines to the cent, so the accounts drift from quantity x
        standard by pennies (three units at 0.3333 put in one at a time: 0.99, not 1.00); the
        close moves them to the rounding variance, which its disposal then disposes of (DESIGN
        §3: a residue is never silently lost). Periodic books value RIP and FG exactly."""
        if self.settings.triggers.periodic:
            return
        currency, mode = self.settings.currency, self.settings.rounding
        targets = self.inventoried_through(period)  # inventoried at closes
        for item, units, in_wip in self._placed_through(period):
            value = {
                k: v
                for k, v in self._valued(item, units, in_wip, date).items()
                if k[0] not in OFF_BOOK
            }
            if not value:
                continue
            rounded = {key: round_money(amount, currency, mode) for key, amount in value.items()}
            # the item's value rounded once, as the valuation shows it: the cent of the parts'
            # rounding (where it has several on the books) goes to its largest part
            residue = round_money(sum(value.values(), ZERO), currency, mode) - sum(
                rounded.values(), ZERO
            )
            if residue:
                largest = max(sorted(value), key=lambda key: abs(value[key]))
                rounded[largest] += residue
            for key, amount in rounded.items():
                targets[key] = targets.get(key, ZERO) + amount
        held_now = {
            key: amount
            for key, amount in self.balances_through(period).items()
            if key[0] in INVENTORY_ACCOUNTS and not key[1].startswith(closing.PRORATED)
        }
        lines = [
            Line(account, change, element)
            for account, element in sorted(set(targets) | set(held_now))
            if account in INVENTORY_ACCOUNTS
            and (
                change := targets.get((account, element), ZERO)
                - held_now.get((account, element), ZERO)
            )
        ]
        if lines:
            residue = sum((line.amount for line in lines), ZERO)
            if residue:
                lines.append(Line(Account.ROUNDING_VARIANCE, -residue))
            memo = f"close {period}: {ROUNDED_TO_STANDARD}"
            self._post_entry(Entry(date, event, memo, tuple(lines)), record)

    def _costed_at_sale(self, item_id: str) -> bool:
        """A finished good costed only at sale (purchase+sale, sale): its conversion is not
        on the books until it is sold."""
        item = self.master.items[item_id]
        policy = self.standards.policy(item_id)
        return item.kind is Kind.FINISHED and policy in (Policy.PURCHASE_SALE, Policy.SALE)

    def _unsold_conversion(self, item_id: str, on: dt.date) -> Iterator[tuple[str, Decimal]]:
        """Per unit of ``item_id``, the standard conversion not allocated until it is sold,
        by element: what a close inventories of it (``inventory_unsold_conversion``)."""
        for account, element, amount in self.standards.holding(item_id, on):
            if account is Account.CONVERSION_ALLOCATED:
                yield element, amount

    def _unsold_conversion_entry(self, period: str, date: dt.date, event: str) -> Entry | None:
        """Inventory the standard conversion of finished units on hand that were costed only
        at sale (the GAAP adjustment of purchase+sale and sale); posts the change since the
        last close, so nothing is allocated twice."""
        if not self.settings.inventory_unsold_conversion:
            return None
        target: dict[Key, Decimal] = {}
        for item_id, quantity in self.on_hand_through(period).items():
            if quantity and self._costed_at_sale(item_id):
                for element, amount in self._unsold_conversion(item_id, date):
                    key = (Account.FINISHED_GOODS, element)
                    target[key] = target.get(key, ZERO) + quantity * amount
        lines: list[Line] = []
        held = self.inventoried_through(period)
        for key in sorted(set(target) | set(held)):
            wanted = round_money(
                target.get(key, ZERO), self.settings.currency, self.settings.rounding
            )
            delta = wanted - held.get(key, ZERO)
            if delta:
                lines.append(Line(key[0], delta, key[1]))
                lines.append(Line(Account.CONVERSION_ALLOCATED, -delta, key[1]))
                self.unsold_conversion[key] = self.unsold_conversion.get(key, ZERO) + delta
                self.changes.unsold_conversion.add(key)
        if not lines:
            return None
        memo = unsold_conversion_memo(period)
        return Entry(date, event, memo, tuple(lines))

    # ------------------------------------------------------------ close procedure (issue 4)

    def write_off_of(self, event: str, item: str) -> str | None:
        """The id of the write-off that resolved the exception (``event``, ``item``), if one
        did: the id to answer a resolve sent again with, whatever id it was made under."""
        key = (event, item, "shortage")
        return self.cleared_by.get(key) if key in self.written_off else None

    def exception_status(self, key: tuple[str, str, str]) -> str:
        """open, cleared, flagged, or "written off" (resolved with a reason)."""
        return "written off" if key in self.written_off else self.shortages[key].status

    def exceptions_before(self, day: dt.date) -> list[ShortageEntry]:
        """Open backflush exceptions (consumption waiting for stock) dated before ``day``."""
        return [s for s in self.open_shortages() if s.date < day]

    def reopened(self, period: str) -> list[ReopenRecord]:
        return self.reopens.get(period, [])

    def _check_exceptions_at_close(self, event: Close) -> None:
        """Under ``exceptions_at_close: refuse`` a period closes only once the exceptions older
        than it are resolved (``warn``: the command line warns)."""
        if self.settings.exceptions_at_close is not ExceptionsAtClose.REFUSE:
            return
        older = self.exceptions_before(period_bounds(event.period)[0])
        if older:
            named = ", ".join(
                f"{s.event}/{s.item} ({fmt(s.open)} since {s.date.isoformat()})" for s in older[:10]
            ) + (f" and {len(older) - 10} more" if len(older) > 10 else "")
            raise PostingError(
                f"event {event.id}: {len(older)} backflush exception(s) older than "
                f"{event.period} still open: {named}; receive or count the stock, or resolve "
                "those of completions (backflush exceptions resolve; a release waits for its "
                "stock); the book's exceptions_at_close is refuse"
            )

    def _recorded_event(self, event_id: str) -> Recorded:
        """A recorded event, read from the store's history when the book has not loaded it."""
        found = self.recorded.get(event_id)
        if found is None and self.history is not None:
            self.recorded.update(self.history([event_id]))
            found = self.recorded.get(event_id)
        if found is None:
            raise PostingError(f"event {event_id} is not recorded")
        return found

    def _reopen(self, event: Reopen, record: Recorded) -> None:
        """Reopen the latest closed period: negate what its close posted (entries dated as the
        close dated them, statistics, movements), restore the state it changed, unlock it."""
        period = event.period
        latest = self.last_closed
        if latest is None:
            raise PostingError(f"event {event.id}: no period is closed; nothing to reopen")
        if period != latest:
            state = "closed" if period in self.closed else "not closed"
            raise PostingError(
                f"event {event.id}: period {period} is {state}; only the latest closed "
                f"period, {latest}, can be reopened"
            )
        last = period_bounds(period)[1]
        if event.date < last:
            raise PostingError(
                f"event {event.id}: reopen of {period} dated {event.date.isoformat()}, before "
                f"the period ends on {last.isoformat()}"
            )
        if not event.reason.strip():
            raise PostingError(f"event {event.id}: a reopen needs a reason")
        result = self.closed[period]
        close = self._recorded_event(result.close_event)
        self._accepted = True
        self._undo_close(close, period, event.id, record)
        self._restore_after_reopen(close, period)
        del self.closed[period]
        if result in self.changes.closes:  # closed and reopened in one batch: never written
            self.changes.closes.remove(result)
        close.reversed_by = event.id
        self.changes.reversed.append((close.event.id, event.id))
        reopen = ReopenRecord(period, event.id, event.date, result.close_event, event.reason)
        self.reopens.setdefault(period, []).append(reopen)
        self.changes.reopens.append(reopen)

    def _undo_close(self, close: Recorded, period: str, by: str, record: Recorded) -> None:
        """Negate everything on the close's record: its entries (dated as the close dated
        them, so they land in the reopened period), its statistics and its movements."""
        for entry in close.entries:
            lines = tuple(dataclasses.replace(line, amount=-line.amount) for line in entry.lines)
            memo = f"reopen {period}: reversal of {entry.memo}"
            self._post_entry(Entry(entry.date, by, memo, lines), record)
        for key, value in close.statistics:
            self._add_statistic(period, key, -value, record)
        undone = [Movement(m.item, -m.on_hand, -m.in_process) for m in close.movements]
        self._move(by, by, close.event.date, undone, record, period)

    def _restore_after_reopen(self, close: Recorded, period: str) -> None:
        """The state a close keeps outside the journal, put back as it was before the close.
        Each close step that keeps such state restores it here, from the close's entries.

        * unsold conversion inventoried (``inventory_unsold_conversion``): the close posted
          the change to finished goods; it is taken back."""
        memo = unsold_conversion_memo(period)
        for entry in close.entries:
            if entry.memo != memo:
                continue
            for line in entry.lines:
                if line.account is Account.CONVERSION_ALLOCATED:
                    continue
                key = (line.account, line.element)
                self.unsold_conversion[key] = self.unsold_conversion.get(key, ZERO) - line.amount
                self.changes.unsold_conversion.add(key)

    def _retry_event(self, event: Retry, follow_standards: Callable[[], None]) -> None:
        """Retry queued consumption (of one item, or of all) where stock is available."""
        if event.item:
            items = [event.item]
        else:
            items = sorted(item for item, waiting in self.queue.items() if waiting)
        follow_standards()
        for item in items:
            self._retry(item, event.id, event.date)

    def _write_off(
        self, event: WriteOff, record: Recorded, follow_standards: Callable[[], None]
    ) -> None:
        """Resolve a backflush exception: the queued consumption is dropped. Its value was
        credited when its event posted, the units stay on the shelf: Dr inventory at standard
        (without conversion, like a count gain), Cr usage variance (or inventory adjustment)."""
        key = (event.event, event.item, "shortage")
        entry = self.shortages.get(key)
        if entry is None or entry.open <= 0:
            known = ""
            if key in self.written_off:
                known = f" (already written off by {self.cleared_by.get(key, '?')})"
            elif entry is not None:
                known = f" (it is {self.exception_status(key)}"
                known += f" by {self.cleared_by[key]})" if key in self.cleared_by else ")"
            raise PostingError(
                f"event {event.id}: no open backflush exception of event {event.event} for "
                f"{event.item!r}{known}; see `backflush exceptions list`"
            )
        if entry.into_process:
            raise PostingError(
                f"event {event.id}: the exception of {event.event} for {event.item!r} is a "
                "release waiting to be picked into production; receive the stock instead"
            )
        if not event.reason.strip():
            raise PostingError(f"event {event.id}: a write-off needs a reason")
        if event.date < entry.date:
            raise PostingError(
                f"event {event.id}: dated {event.date.isoformat()}, before {event.event} "
                f"queued the shortage on {entry.date.isoformat()}; date it on or after that"
            )
        follow_standards()
        builder = EntryBuilder(
            event.date,
            event.id,
            f"write-off {fmt(entry.open)} {event.item} queued by {event.event}: {event.reason}",
        )
        holding = self.standards.holding(event.item, event.date, conversion=False)
        value = builder.add_holding(holding, entry.open, +1)
        builder.add(self.settings.count_account, -value, item=event.item)
        built = builder.build(self.settings)
        # A periodic book values stock at its close, from quantities: nothing to post now.
        if built is not None and not self.settings.triggers.periodic:
            self._post_entry(built, record)
            # Found, like a count gain: the conversion it holds comes back from the variance.
            found = entry.open * self.standards.conversion_held(event.item, event.date)
            if found:
                self._add_statistic(period_of(event.date), closing.LOST_CONVERSION, -found, record)
        dropped = dataclasses.replace(entry, open=ZERO)
        self._set_shortage(key, dropped, period_of(event.date))
        self.changes.shortages[key] = dropped
        self.cleared_by[key] = event.id
        self.changes.cleared[key] = event.id
        self.written_off[key] = event.reason
        self.changes.written_off[key] = event.reason

    def _check_not_written_off(self, event: Reversal) -> None:
        """An event whose queued consumption was written off stands: the write-off put back
        the value of what it never took."""
        resolved = [key for key in self.written_off if key[0] == event.reverses]
        if resolved:
            raise PostingError(
                f"event {event.id}: the exception of {event.reverses} for {resolved[0][1]!r} "
                f"was written off by {self.cleared_by.get(resolved[0], '?')}; "
                "correct with new events instead of a reversal"
            )

    # ------------------------------------------------------------ net realisable value

    def _estimate_nrv(
        self, event: NetRealisableValue, follow_standards: Callable[[], None]
    ) -> None:
        """Record an estimate of net realisable value; it posts nothing until a close."""
        item = self.master.items.get(event.item)
        if item is None:
            raise PostingError(f"event {event.id}: unknown item {event.item!r}")
        if item.kind is Kind.PHANTOM:
            raise PostingError(f"event {event.id}: {event.item} is a phantom, never stocked")
        if event.unit_value < 0:
            raise PostingError(f"event {event.id}: unit_value cannot be negative")
        follow_standards()
        self.nrv_estimates.setdefault(event.item, []).append(
            (event.date, event.id, event.unit_value)
        )
        self.changes.nrv_estimates.append(event)

    def nrv_on(self, item: str, on: dt.date) -> Decimal | None:
        """The estimate of ``item`` in force on ``on``: the latest dated on or before it (of
        two on one date, the one posted last)."""
        found: tuple[dt.date, Decimal] | None = None
        for date, _, value in self.nrv_estimates.get(item, ()):
            if date <= on and (found is None or date >= found[0]):
                found = (date, value)
        return None if found is None else found[1]

    def nrv_findings(self, period: str) -> dict[str, NrvWritedown]:
        """What the close of ``period`` found per item (nothing while the period is open,
        or after it was reopened)."""
        return self.nrv_writedowns.get(period, {}) if period in self.closed else {}

    def _prorated_per_unit(self, period: str, content: closing.Content) -> dict[str, Decimal]:
        """Per unit of each item stocked at the end of ``period``, the variances prorated into
        the inventory accounts that are its own: its share of each pool an account holds, by
        the standard cost the pool was spread by (``content``, the close's)."""
        held = {
            (account, element.removeprefix(closing.PRORATED)): value
            for (account, element), value in self.balances_through(period).items()
            if value and element.startswith(closing.PRORATED) and account is not Account.COGS
        }
        if not held:
            return {}
        last = period_bounds(period)[1]
        inventoried = self.settings.inventory_unsold_conversion
        found: dict[str, Decimal] = {}
        for item, units, _ in self._placed_through(period):
            if units <= 0:
                continue
            contents = list(self._content(item, units, ZERO, last))
            if inventoried and self._costed_at_sale(item):  # its conversion too, where put
                contents += [
                    (Account.FINISHED_GOODS, {element: units * amount})
                    for element, amount in self._unsold_conversion(item, last)
                ]
            share = ZERO
            for account, elements in contents:
                for (holder, pool), amount in held.items():
                    whole = closing.basis(pool, content.get(holder, {}))
                    if holder is account and whole > 0:
                        share += amount * max(closing.basis(pool, elements), ZERO) / whole
            if share:
                found[item] = (share / units).quantize(lower_of_cost.UNIT_PLACES)
        return found

    def _carried_then(self, finding: NrvWritedown) -> NrvWritedown:
        """``finding`` with what the books carried of a unit then: one a close made before
        books kept it (schema revision 0013) has it worked out now, at the standards of its
        period's end plus the variances prorated into stock as they stand at that end."""
        if finding.carrying is not None or not finding.quantity:
            return finding
        last = period_bounds(finding.period)[1]
        content = self.standard_content(finding.period)
        prorated = self._prorated_per_unit(finding.period, content).get(finding.item, ZERO)
        carrying = self._nrv_carrying(finding.item, last) + prorated
        return dataclasses.replace(finding, carrying=carrying)

    def _nrv_carrying(self, item_id: str, on: dt.date) -> Decimal:
        """Part of the standard unit cost of ``item_id`` that the books carry on ``on``."""
        inventoried = self.settings.inventory_unsold_conversion and self._costed_at_sale(item_id)
        return sum(
            (
                amount
                for account, _, amount in self.standards.holding(item_id, on)
                if account not in OFF_BOOK
                or (inventoried and account is Account.CONVERSION_ALLOCATED)
            ),
            ZERO,
        )

    def _close_net_realisable_value(
        self,
        period: str,
        last: dt.date,
        event: str,
        record: Recorded,
        content: closing.Content | None,
    ) -> None:
        """Lower of cost and NRV at the close: one entry per item, posting the change of the
        write-down that stands (see :mod:`backflush.engine.nrv`). ``content``: what the
        close prorated variances by (None: it prorated none)."""
        previous = self.nrv_findings(self.last_closed) if self.last_closed else {}
        previous = {item: self._carried_then(f) for item, f in previous.items()}
        items = {i for i in self.nrv_estimates if self.nrv_on(i, last) is not None}
        items |= {i for i, v in self.nrv_allowance.items() if v}
        items |= {i for i, f in previous.items() if f.unit_writedown}
        # The units valued at the period end, as the close values them (consumption waiting
        # for stock credited, or taken off under count and cogs-first: see _held).
        held = {item: units for item, units, _ in self._placed_through(period)} if items else {}
        prorated = self._prorated_per_unit(period, content) if items and content else {}
        findings: dict[str, NrvWritedown] = {}
        for item in sorted(items):
            quantity = max(held.get(item, ZERO), ZERO)
            standard = carrying = ZERO
            if quantity:
                standard = self.standards.unit_cost(item, last).total
                carrying = self._nrv_carrying(item, last) + prorated.get(item, ZERO)
            assessment = lower_of_cost.Assessment(
                item,
                quantity,
                standard,
                carrying,
                self.nrv_on(item, last),
                previous.get(item),
                self.nrv_allowance.get(item, ZERO),
            )
            finding, entry = lower_of_cost.close_item(
                self.settings, period, last, event, assessment
            )
            if entry is not None:
                self._post_entry(entry, record)
            findings[item] = finding
        if findings or period in self.nrv_writedowns:  # a period closed again: found anew
            self.nrv_writedowns[period] = findings
            self.changes.nrv_periods.add(period)

    # ------------------------------------------------------------ changes

    def take_changes(self) -> Changes:
        changes, self.changes = self.changes, Changes()
        return changes

    def consumption_cleared(self, causes: Iterable[str]) -> list[tuple[str, str, str, Decimal]]:
        """Queued consumption the events ``causes`` (a receipt, a retry) cleared since the
        changes were last taken: (cause, the event whose consumption it was, item, quantity
        taken from stock), in the order taken."""
        wanted = set(causes)
        return [
            (cause, owner, movement.item, -movement.on_hand)
            for owner, cause, movements in self.changes.movements
            if cause in wanted and owner != cause
            for movement in movements
            if movement.on_hand
        ]

    def entries(self) -> Iterator[Entry]:
        return iter(self.journal)
