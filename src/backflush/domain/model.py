"""Immutable values of the book: settings, master data, events and journal entries."""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from backflush.domain.money import ZERO

_C = TypeVar("_C", bound=type)


def _direct_init(cls: _C) -> _C:
    """Give a frozen slotted dataclass an ``__init__`` that sets each slot through its
    descriptor, where the generated one calls ``object.__setattr__`` by name: the same
    object with the same signature, made in about half the time (a book makes journal lines,
    entries and stock movements by the million). Plain defaults only (no factories, no
    ``__post_init__``)."""
    fields = dataclasses.fields(cls)
    assert not hasattr(cls, "__post_init__")
    names: dict[str, Any] = {"__set_" + f.name: getattr(cls, f.name).__set__ for f in fields}
    params = []
    for f in fields:
        assert f.init and f.kw_only is False and f.default_factory is dataclasses.MISSING
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            names["__default_" + f.name] = f.default
            params.append(f"{f.name}=__default_{f.name}")
    body = "".join(f"\n    __set_{f.name}(self, {f.name})" for f in fields) or "\n    pass"
    source = f"def __init__(self, {', '.join(params)}):{body}"
    exec(source, names)  # as dataclasses makes its __init__
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    setattr(cls, "__init__", init)  # noqa: B010 - mypy: no __init__ on a type variable
    return cls


class Account(StrEnum):
    """Stable account keys of the chart (DESIGN §4.1)."""

    ACCOUNTS_PAYABLE = "accounts_payable"
    ACCRUED_CONVERSION = "accrued_conversion"
    RAW_IN_PROCESS = "raw_in_process"
    MATERIALS = "materials"
    WORK_IN_PROCESS = "work_in_process"
    FINISHED_GOODS = "finished_goods"
    COGS = "cogs"
    CONVERSION_CONTROL = "conversion_control"
    CONVERSION_ALLOCATED = "conversion_allocated"
    PURCHASE_PRICE_VARIANCE = "purchase_price_variance"
    MATERIAL_USAGE_VARIANCE = "material_usage_variance"
    CONVERSION_VARIANCE = "conversion_variance"
    CONVERSION_SPENDING_VARIANCE = "conversion_spending_variance"
    CONVERSION_EFFICIENCY_VARIANCE = "conversion_efficiency_variance"
    REVALUATION_VARIANCE = "revaluation_variance"
    INVENTORY_ADJUSTMENT = "inventory_adjustment"
    ROUNDING_VARIANCE = "rounding_variance"
    SALES = "sales"
    ACCOUNTS_RECEIVABLE = "accounts_receivable"
    #: Lower of cost and net realisable value: the contra-inventory allowance (a credit
    #: balance; inventory accounts stay at standard) and the write-down expense.
    NRV_ALLOWANCE = "nrv_allowance"
    NRV_WRITEDOWN = "nrv_writedown"


#: The longest id (of an item, event, work center...): the length of the columns ids are
#: stored in (PostgreSQL enforces it).
ID_LENGTH = 200

INVENTORY_ACCOUNTS = (
    Account.RAW_IN_PROCESS,
    Account.MATERIALS,
    Account.WORK_IN_PROCESS,
    Account.FINISHED_GOODS,
)
VARIANCE_ACCOUNTS = (
    Account.PURCHASE_PRICE_VARIANCE,
    Account.MATERIAL_USAGE_VARIANCE,
    Account.CONVERSION_VARIANCE,
    Account.REVALUATION_VARIANCE,
    Account.INVENTORY_ADJUSTMENT,
    Account.ROUNDING_VARIANCE,
)


class Policy(StrEnum):
    """Trigger points (DESIGN §3.1)."""

    PURCHASE_COMPLETION = "purchase+completion"
    PURCHASE_SALE = "purchase+sale"
    COMPLETION = "completion"
    SALE = "sale"
    SEQUENTIAL = "sequential"
    #: Periodic methods for the whole book (issue 4): stock is valued from counts at close.
    COUNT = "count"
    COGS_FIRST = "cogs-first"

    @property
    def costs_purchases(self) -> bool:
        """Purchases are posted (materials are on the books from receipt)."""
        return self in _COSTS_PURCHASES

    @property
    def costs_completions(self) -> bool:
        """Completed goods are posted to finished goods at standard."""
        return self in _COSTS_COMPLETIONS

    @property
    def periodic(self) -> bool:
        """A periodic-count method (``count``, ``cogs-first``): completions, sales, scrap and
        counts move quantities only; the close values the inventories from the quantities at
        the period end (after counts). A whole-book choice, never a per-item override."""
        return self in _PERIODIC


# The policies of each property above, at hand (asked per event: reading a member off the
# enum class each time costs a lookup the posting path feels).
_COSTS_PURCHASES = (
    Policy.PURCHASE_COMPLETION,
    Policy.PURCHASE_SALE,
    Policy.SEQUENTIAL,
    Policy.COUNT,
    Policy.COGS_FIRST,
)
_COSTS_COMPLETIONS = (Policy.PURCHASE_COMPLETION, Policy.COMPLETION, Policy.SEQUENTIAL)
_PERIODIC = (Policy.COUNT, Policy.COGS_FIRST)


class Disposition(StrEnum):
    COGS = "cogs"
    PRORATE = "prorate"
    KEEP = "keep"
    NONE = "none"


class Shortage(StrEnum):
    QUEUE = "queue"
    ALLOW = "allow"
    REJECT = "reject"


class ExceptionsAtClose(StrEnum):
    """What a close does while backflush exceptions older than its period are still open."""

    WARN = "warn"
    REFUSE = "refuse"


class JournalDetail(StrEnum):
    """How a store keeps the journal lines of routine events (purchases, completions, sales,
    conversion, counts, ...): one entry per event, or their lines summed into one entry per
    event type and day (or period) by account, element and item. Summarised events keep their
    own entries and movements with the event, for drill-down and reversal; closes, reopens,
    reversals, revaluations and write-offs always keep one entry each."""

    EVENT = "event"
    DAY = "day"
    PERIOD = "period"


class CountVariance(StrEnum):
    """Where a cycle count difference goes."""

    USAGE = "usage"
    ADJUSTMENT = "adjustment"


class LowerOfCost(StrEnum):
    """How a write-down to net realisable value behaves when the value recovers."""

    #: IAS 2.33: reversed when NRV recovers (never above the standard).
    IFRS = "ifrs"
    #: ASC 330: the written-down amount is the new cost basis; only units that leave release it.
    US_GAAP = "us-gaap"


class Kind(StrEnum):
    MATERIAL = "material"
    SUBASSEMBLY = "subassembly"
    PHANTOM = "phantom"
    FINISHED = "finished"


class Flush(StrEnum):
    BACKWARD = "backward"
    FORWARD = "forward"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Settings:
    name: str
    currency: str = "USD"
    triggers: Policy = Policy.PURCHASE_COMPLETION
    disposition: Disposition = Disposition.COGS
    inventory_unsold_conversion: bool = False
    shortage: Shortage = Shortage.QUEUE
    rounding: str = "half-even"
    count_variance: CountVariance = CountVariance.USAGE
    lower_of_cost: LowerOfCost = LowerOfCost.IFRS
    exceptions_at_close: ExceptionsAtClose = ExceptionsAtClose.WARN
    #: Dispositions by variance type (``purchase_price``, ``material_usage``, ``conversion``,
    #: ``revaluation``, ``inventory_adjustment``, ``rounding``) where they differ from
    #: ``disposition``.
    dispositions: tuple[tuple[str, Disposition], ...] = ()
    journal_detail: JournalDetail = JournalDetail.EVENT

    @property
    def count_account(self) -> Account:
        """Where a count difference (or queued consumption written off) goes."""
        if self.count_variance is CountVariance.USAGE:
            return Account.MATERIAL_USAGE_VARIANCE
        return Account.INVENTORY_ADJUSTMENT

    def disposition_of(self, variance: str) -> Disposition:
        """How a close disposes of a variance type."""
        return dict(self.dispositions).get(variance, self.disposition)

    @property
    def disposal_memo(self) -> str:
        """The disposition in a few words: ``cogs``, or ``cogs; purchase_price: prorate``."""
        overrides = ", ".join(f"{kind}: {how.value}" for kind, how in self.dispositions)
        return f"{self.disposition.value}; {overrides}" if overrides else self.disposition.value


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    kind: Kind
    uom: str = "EA"
    flush: Flush = Flush.BACKWARD
    #: Per-unit standard of a purchased material; None for made items (rolled up from the BOM).
    material_cost: Decimal | None = None
    #: Per-unit standard conversion by element; the element "" is conversion given as one figure.
    conversion: tuple[tuple[str, Decimal], ...] = ()
    policy: Policy | None = None
    #: Units made per lot: a routing's setup hours are spread over it.
    lot_size: Decimal = Decimal(1)
    #: Product family and site the item belongs to ("": none): what reports select and group by.
    family: str = ""
    site: str = ""


@dataclass(frozen=True, slots=True)
class BomLine:
    component: str
    quantity: Decimal
    scrap: Decimal = ZERO
    #: None: the component item's default flush method.
    flush: Flush | None = None
    #: The routing operation the line is consumed at (None: the first); the yield of that
    #: operation and of every later one inflates its quantity.
    operation: int | None = None


@dataclass(frozen=True, slots=True)
class Bom:
    item: str
    lines: tuple[BomLine, ...]
    effective_from: dt.date = dt.date.min
    #: Last day the version is effective; None: until the next version.
    effective_to: dt.date | None = None


@dataclass(frozen=True, slots=True)
class WorkCenter:
    id: str
    #: Cost per hour by element (labor, overhead, machine, ...).
    rates: tuple[tuple[str, Decimal], ...]
    name: str = ""


@dataclass(frozen=True, slots=True)
class Operation:
    number: int
    work_center: str
    run_hours: Decimal  # per unit
    setup_hours: Decimal = ZERO  # per lot
    #: Share of the units entering the operation that come out good (0.98 = 2% lost).
    yield_: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class Routing:
    item: str
    operations: tuple[Operation, ...]  # by operation number
    effective_from: dt.date = dt.date.min
    effective_to: dt.date | None = None


@dataclass(frozen=True, slots=True)
class CostSet:
    """A named set of standard inputs: material costs and work center rates that replace the
    book's from ``effective`` on (a released set), or that are only rolled up and compared
    (``effective`` None: current, next year, what-if)."""

    name: str
    materials: tuple[tuple[str, Decimal], ...] = ()
    #: (work center, element) -> rate per hour.
    rates: tuple[tuple[str, str, Decimal], ...] = ()
    effective: dt.date | None = None

    def __post_init__(self) -> None:
        # In one order (by item; by work center and element), as a store reads them back: a
        # set written in another order is the same set.
        object.__setattr__(self, "materials", tuple(sorted(self.materials)))
        object.__setattr__(self, "rates", tuple(sorted(self.rates)))


V = TypeVar("V", Bom, Routing)


def _version_on(versions: tuple[V, ...], on: dt.date) -> V | None:
    found = None
    for version in versions:
        if version.effective_from <= on:
            found = version
    if found is not None and found.effective_to is not None and found.effective_to < on:
        return None
    return found


@dataclass(frozen=True, slots=True)
class MasterData:
    items: dict[str, Item]
    boms: dict[str, tuple[Bom, ...]]  # per parent, sorted by effective_from
    work_centers: dict[str, WorkCenter] = field(default_factory=dict)
    routings: dict[str, tuple[Routing, ...]] = field(default_factory=dict)
    cost_sets: dict[str, CostSet] = field(default_factory=dict)

    def bom_on(self, item: str, on: dt.date) -> Bom | None:
        """The BOM version of ``item`` effective on ``on``."""
        return _version_on(self.boms.get(item, ()), on)

    def routing_on(self, item: str, on: dt.date) -> Routing | None:
        return _version_on(self.routings.get(item, ()), on)

    def released(self) -> list[CostSet]:
        """Cost sets released, by effective date."""
        found = [c for c in self.cost_sets.values() if c.effective is not None]
        return sorted(found, key=lambda c: (c.effective, c.name))

    def change_dates(self) -> list[dt.date]:
        """Every date the standards may change: BOM and routing versions, cost set releases."""
        dates: set[dt.date] = set()
        versions: list[Bom | Routing] = [v for vs in self.boms.values() for v in vs]
        versions += [v for vs in self.routings.values() for v in vs]
        for version in versions:
            dates.add(version.effective_from)
            if version.effective_to is not None and version.effective_to < dt.date.max:
                dates.add(version.effective_to + dt.timedelta(days=1))
        dates.update(c.effective for c in self.released() if c.effective is not None)
        return sorted(dates)

    def merged(self, added: MasterData) -> MasterData:
        """This master data with ``added`` merged in (``added`` wins; versions by date)."""

        def versions(
            old: Mapping[str, tuple[Any, ...]], new: Mapping[str, tuple[Any, ...]]
        ) -> dict[str, Any]:
            found = dict(old)
            for key, more in new.items():
                by_date = {v.effective_from: v for v in (*found.get(key, ()), *more)}
                found[key] = tuple(by_date[d] for d in sorted(by_date))
            return found

        return MasterData(
            {**self.items, **added.items},
            versions(self.boms, added.boms),
            {**self.work_centers, **added.work_centers},
            versions(self.routings, added.routings),
            {**self.cost_sets, **added.cost_sets},
        )


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    date: dt.date

    type = "event"


@dataclass(frozen=True, slots=True)
class Purchase(Event):
    item: str
    quantity: Decimal
    unit_cost: Decimal
    type = "purchase"


@dataclass(frozen=True, slots=True)
class Conversion(Event):
    amount: Decimal
    element: str = ""
    #: The work center the cost was spent at ("": the plant as a whole); with ``hours``, the
    #: hours worked there for it (DESIGN §3.3: spending and efficiency variances).
    work_center: str = ""
    hours: Decimal | None = None
    type = "conversion"


@dataclass(frozen=True, slots=True)
class Hours(Event):
    """Hours worked at a work center, for one conversion element ("": for every element of
    the work center, one clock)."""

    work_center: str
    hours: Decimal
    element: str = ""
    type = "hours"


@dataclass(frozen=True, slots=True)
class Completion(Event):
    item: str
    quantity: Decimal
    scrapped: Decimal = ZERO
    #: The production order reported against ("": repetitive, order-less reporting).
    order: str = ""
    type = "completion"


@dataclass(frozen=True, slots=True)
class Sale(Event):
    item: str
    quantity: Decimal
    unit_price: Decimal | None = None
    type = "sale"


@dataclass(frozen=True, slots=True)
class Scrap(Event):
    """Stock of ``item`` scrapped outside a completion (a component dropped, damaged, expired)."""

    item: str
    quantity: Decimal
    type = "scrap"


@dataclass(frozen=True, slots=True)
class Issue(Event):
    """Explicit issue of a component to production (``manual`` lines): stock -> in process."""

    item: str
    quantity: Decimal
    order: str = ""
    type = "issue"


@dataclass(frozen=True, slots=True)
class Release(Event):
    """Release of ``quantity`` of ``item`` to production: its ``forward`` lines are consumed.
    With an ``order`` id, it opens that production order with a snapshot of its BOM."""

    item: str
    quantity: Decimal
    order: str = ""
    type = "release"


@dataclass(frozen=True, slots=True)
class OrderClose(Event):
    """A production order is finished: what was issued to it and not consumed goes back to
    stock; what was made against what was ordered is reported."""

    order: str
    type = "order_close"


@dataclass(frozen=True, slots=True)
class Count(Event):
    """A physical count: ``quantity`` is what is on hand."""

    item: str
    quantity: Decimal
    type = "count"


@dataclass(frozen=True, slots=True)
class Reversal(Event):
    reverses: str
    reason: str = ""
    type = "reversal"


@dataclass(frozen=True, slots=True)
class Close(Event):
    period: str
    type = "close"


@dataclass(frozen=True, slots=True)
class NetRealisableValue(Event):
    """The estimated selling price of ``item`` less the costs to sell it, per unit, from
    ``date`` on (until a later estimate). Posts nothing; closes compare it with standard."""

    item: str
    unit_value: Decimal
    type = "nrv"


@dataclass(frozen=True, slots=True)
class Revaluation(Event):
    """Stock revalued to the standards that took effect on ``effective`` (a new BOM version
    at any level, a cost set released). The book posts it before the first event of the new
    standards, dated ``effective``."""

    effective: dt.date
    type = "revaluation"


@dataclass(frozen=True, slots=True)
class Reopen(Event):
    """The latest closed ``period`` opened again, with the ``reason`` (the audit trail): what
    its close posted is negated, its state restored, and it accepts postings again."""

    period: str
    reason: str
    type = "reopen"


@dataclass(frozen=True, slots=True)
class Retry(Event):
    """Retry queued consumption (of ``item``; "": of every item) where stock is available."""

    item: str = ""
    type = "retry"


@dataclass(frozen=True, slots=True)
class WriteOff(Event):
    """Resolve a backflush exception: the consumption of ``item`` that event ``event`` queued
    is dropped with a ``reason``; the units it would have taken stay on the shelf."""

    event: str
    item: str
    reason: str
    type = "write_off"


#: The events a user posts.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        Purchase,
        Conversion,
        Hours,
        Completion,
        Sale,
        Scrap,
        Issue,
        Release,
        OrderClose,
        Count,
        Reversal,
        Close,
        Reopen,
        Retry,
        WriteOff,
        NetRealisableValue,
    )
}


#: Every event a book records: what users post and what the book posts itself.
RECORDED_TYPES: dict[str, type[Event]] = {**EVENT_TYPES, Revaluation.type: Revaluation}


@functools.lru_cache(maxsize=4096)  # asked per journal entry and stock movement
def period_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@functools.lru_cache(maxsize=4096)  # asked per event (is its period closed?)
def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """First and last day of ``period`` (YYYY-MM); ValueError when it is not a month."""
    year, month = (int(part) for part in period.split("-"))
    first = dt.date(year, month, 1)
    return first, first.replace(day=calendar.monthrange(year, month)[1])


#: What follows the last period a date can be in (9999-12): a string that is no period, so it
#: equals none (``period != next_period(last)`` holds for every real period).
BEYOND_LAST_PERIOD = "10000-01"


def next_period(period: str) -> str:
    """The month after ``period``; after 9999-12, :data:`BEYOND_LAST_PERIOD` (never an error)."""
    year, month = (int(part) for part in period.split("-"))
    dt.date(year, month, 1)  # ValueError when ``period`` is not a month
    if (year, month) == (dt.MAXYEAR, 12):
        return BEYOND_LAST_PERIOD
    return period_of(dt.date(year + month // 12, month % 12 + 1, 1))


@_direct_init
@dataclass(frozen=True, slots=True)
class ProductionOrder:
    """A production order's state. Its ``requirements`` are the BOM exploded on its release
    date (component, quantity per unit, flush method): completions against it consume those,
    even after the engineering BOM changes."""

    id: str
    item: str
    quantity: Decimal
    released: dt.date
    release_event: str
    requirements: tuple[tuple[str, Decimal, Flush], ...]
    completed: Decimal = ZERO
    scrapped: Decimal = ZERO
    #: Per component: released (forward lines) or issued to the order.
    issued: tuple[tuple[str, Decimal], ...] = ()
    #: Per component: consumed out of what was issued by the order's completions.
    consumed: tuple[tuple[str, Decimal], ...] = ()
    #: Per component: left over at the close and returned to stock.
    returned: tuple[tuple[str, Decimal], ...] = ()
    closed_by: str = ""

    @property
    def status(self) -> str:
        return "closed" if self.closed_by else "open"

    def left(self) -> dict[str, Decimal]:
        """Per component: issued and not consumed (negative: consumed beyond what was issued)."""
        found = dict(self.issued)
        for component, quantity in self.consumed:
            found[component] = found.get(component, ZERO) - quantity
        return found


# ---------------------------------------------------------------- journal


@_direct_init
@dataclass(frozen=True, slots=True)
class Line:
    """One journal line. ``amount`` is signed: debit positive, credit negative."""

    account: Account
    amount: Decimal
    element: str = ""
    item: str = ""

    @property
    def debit(self) -> Decimal:
        return self.amount if self.amount > 0 else ZERO

    @property
    def credit(self) -> Decimal:
        return -self.amount if self.amount < 0 else ZERO


@_direct_init
@dataclass(frozen=True, slots=True)
class Entry:
    date: dt.date
    event: str
    memo: str
    lines: tuple[Line, ...]

    @property
    def period(self) -> str:
        return period_of(self.date)


@_direct_init
@dataclass(frozen=True, slots=True)
class Movement:
    """A change of on-hand (and in-process) quantity of one item."""

    item: str
    on_hand: Decimal = ZERO
    in_process: Decimal = ZERO


@_direct_init
@dataclass(frozen=True, slots=True)
class ShortageEntry:
    """Consumption that waits for stock (shortage policy ``queue``), or a negative-stock flag."""

    event: str
    date: dt.date
    item: str
    quantity: Decimal
    open: Decimal
    kind: str = "shortage"  # shortage | negative_stock | unissued
    #: Release consumption goes to in-process stock when it is finally picked.
    into_process: bool = False

    @property
    def status(self) -> str:
        """open (still waiting), cleared (consumed at last, or dropped), flagged (a record)."""
        if self.open > 0:
            return "open"
        return "cleared" if self.kind == "shortage" else "flagged"


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """What a close found: variances before disposal and the balances it left."""

    period: str
    close_event: str
    variances: tuple[tuple[str, Decimal], ...]
    balances: tuple[tuple[str, Decimal], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class NrvWritedown:
    """What a close found for one item against its net realisable value."""

    period: str
    item: str
    #: On hand at the period end (never below zero).
    quantity: Decimal
    #: Standard unit cost on the close date (zero when nothing is on hand).
    standard: Decimal
    #: The estimate in force on the close date (None: none given yet).
    nrv: Decimal | None
    #: Write-down per unit that stands after the close (12 decimals at most).
    unit_writedown: Decimal
    #: Allowance standing after the close (positive: inventory written down by that much).
    allowance: Decimal
    #: Posted by the close: positive writes down, negative releases or reverses.
    change: Decimal
    #: What the books carried of a unit (the part of its standard on them, plus its share of
    #: variances prorated into stock; zero when nothing is on hand). None: found before books
    #: kept it (the next close works it out: Book._carried_then).
    carrying: Decimal | None = None
