"""Flush: one event and the book's policy in, journal entries and stock movements out.

Pure functions over a read-only view of stock. Nothing here changes state; the book applies the
:class:`Effects` only when the whole event has been worked out without error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, Inexact, getcontext

from backflush.domain.model import (
    Account,
    Completion,
    Conversion,
    Count,
    Entry,
    Event,
    Flush,
    Hours,
    Issue,
    Kind,
    Line,
    Movement,
    OrderClose,
    Policy,
    ProductionOrder,
    Purchase,
    Release,
    Sale,
    Scrap,
    Settings,
    Shortage,
    ShortageEntry,
)
from backflush.domain.money import AMOUNT_LIMIT, CONTEXT, ROUNDING_MODES, ZERO, fmt, quantum, totals
from backflush.engine.close import (
    ACTUAL_COST,
    ACTUAL_HOURS,
    ACTUAL_HOURS_ON,
    LOST_CONVERSION,
    MATERIAL,
    SOLD,
    STANDARD_HOURS,
    STANDARD_HOURS_ON,
    dated_hours,
)
from backflush.engine.standards import (
    Consumption,
    Holding,
    Requirement,
    Standards,
    UnitCost,
    consumption,
)

# Enum members at hand: reading one off its class costs a lookup the hot paths feel.
_BACKWARD = Flush.BACKWARD
_MATERIAL_USAGE_VARIANCE = Account.MATERIAL_USAGE_VARIANCE
_MINUS_ONE = Decimal(-1)


class PostingError(ValueError):
    """An event the rules refuse (shortage under ``reject``, wrong kind of item, ...)."""

    #: The refused event's id, set by the book, so an edge can say where the event came from.
    event_id: str = ""
    #: Set by the book: the refused event's place (0-based) among the events of the call,
    #: so an edge can name its row even when an earlier event has the same id.
    position: int | None = None
    #: Set by the book: events posted before it in the same call were applied, or the event
    #: itself had begun to change the book. False: the book is as it was before the call.
    changed_book: bool = False


@dataclass(slots=True)
class Effects:
    entries: list[Entry] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)
    shortages: list[ShortageEntry] = field(default_factory=list)
    #: Period statistics kept outside the journal, e.g. the price difference of purchases that
    #: a policy does not post.
    memo: list[tuple[str, Decimal]] = field(default_factory=list)
    #: Production orders opened or changed, in their new state.
    orders: list[ProductionOrder] = field(default_factory=list)


class EntryBuilder:
    """Collects unrounded amounts, then rounds each line once; the residue is never lost."""

    def __init__(self, date: dt.date, event: str, memo: str) -> None:
        self.date, self.event, self.memo = date, event, memo
        self.parts: dict[tuple[Account, str, str], Decimal] = {}

    def add(self, account: Account, amount: Decimal, element: str = "", item: str = "") -> None:
        key = (account, element, item)
        self.parts[key] = self.parts.get(key, ZERO) + amount

    def add_holding(self, holding: Holding, quantity: Decimal, sign: int = -1) -> Decimal:
        """Move ``quantity`` units out of (sign -1) or into (+1) where they sit; returns value."""
        total = ZERO
        parts = self.parts
        factor = _MINUS_ONE if sign == -1 else Decimal(sign)  # what sign * value makes of it
        for account, element, amount in holding:  # add(account, ..., element), inlined
            value = quantity * amount
            key = (account, element, "")
            parts[key] = parts.get(key, ZERO) + factor * value
            total += value
        return total

    def build(
        self, settings: Settings, plug: Account = Account.ROUNDING_VARIANCE, plug_item: str = ""
    ) -> Entry | None:
        # round_money() of each part, inlined: the quantum and the mode looked up once.
        unit, mode = quantum(settings.currency), ROUNDING_MODES[settings.rounding]
        rounded = {
            key: value.quantize(unit, rounding=mode, context=CONTEXT)
            for key, value in self.parts.items()
        }
        residue = -sum(rounded.values(), ZERO)
        if residue:
            plug_key = (plug, "", plug_item)
            rounded[plug_key] = rounded.get(plug_key, ZERO) + residue
        if rounded and (
            max(rounded.values()) >= AMOUNT_LIMIT or -min(rounded.values()) >= AMOUNT_LIMIT
        ):
            largest = max(rounded.values(), key=abs)
            raise PostingError(
                f"event {self.event}: it would post {fmt(largest)}; an amount must stay below "
                f"{fmt(AMOUNT_LIMIT)} (a quantity or price too large?)"
            )
        lines = tuple(Line(a, amount, e, i) for (a, e, i), amount in rounded.items() if amount)
        return Entry(self.date, self.event, self.memo, lines) if lines else None


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    standards: Standards
    #: Stock on hand by item (an item absent has none).
    on_hand: Mapping[str, Decimal]
    #: Consumption of an item still waiting in the shortage queue: production has taken it,
    #: the book's stock has not given it yet.
    waiting: Callable[[str], Decimal] = lambda _item: ZERO
    #: Stock issued or released to production and not yet consumed.
    in_process: Callable[[str], Decimal] = lambda _item: ZERO
    #: Production orders by id.
    order: Callable[[str], ProductionOrder | None] = lambda _order: None


def flush(event: Event, ctx: Context) -> Effects:
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise PostingError(f"event {event.id}: {event.type} events are applied by the book")
    effects = Effects()
    handler(event, ctx, effects)
    return effects


def _emit(effects: Effects, ctx: Context, builder: EntryBuilder) -> None:
    entry = builder.build(ctx.settings)
    if entry is not None:
        effects.entries.append(entry)


def _take(
    ctx: Context,
    effects: Effects,
    event: Event,
    item: str,
    quantity: Decimal,
    *,
    queueable: bool,
    into_process: bool = False,
    pending: dict[str, Decimal] | None = None,
) -> None:
    """Take ``quantity`` of ``item`` out of stock under the book's shortage policy."""
    if quantity <= ZERO:
        raise PostingError(f"event {event.id}: quantity to take of {item!r} must be positive")
    taken_before = pending.get(item, ZERO) if pending is not None else ZERO
    available = ctx.on_hand.get(item, ZERO) - taken_before
    moved = quantity
    if quantity > available:
        policy = ctx.settings.shortage
        short = quantity - max(available, ZERO)
        if policy is Shortage.REJECT or (policy is Shortage.QUEUE and not queueable):
            raise PostingError(
                f"event {event.id}: needs {quantity} of {item!r} but only "
                f"{max(available, ZERO)} is on hand (shortage policy {policy.value})"
            )
        if policy is Shortage.QUEUE:
            moved = quantity - short
            effects.shortages.append(
                ShortageEntry(event.id, event.date, item, short, short, "shortage", into_process)
            )
        else:
            effects.shortages.append(
                ShortageEntry(event.id, event.date, item, short, ZERO, "negative_stock")
            )
    if pending is not None:
        pending[item] = taken_before + quantity
    if moved:
        effects.movements.append(Movement(item, -moved, moved if into_process else ZERO))


def _consume_in_process(
    ctx: Context,
    effects: Effects,
    event: Event,
    item: str,
    need: Decimal,
    flush: Flush,
    pending: dict[str, Decimal],
    order: ProductionOrder | None = None,
) -> None:
    """Consume a ``manual`` or ``forward`` line out of what was issued or released to
    production (to the ``order``, when there is one). What was not issued is refused under
    ``reject``; otherwise in-process stock goes negative and an ``unissued`` flag says so until
    an issue or release makes it good."""
    available = ctx.in_process(item) if order is None else order.left().get(item, ZERO)
    issued = available - pending.get(item, ZERO)
    pending[item] = pending.get(item, ZERO) + need
    if need > issued:
        short = need - max(issued, ZERO)
        if ctx.settings.shortage is Shortage.REJECT:
            verb = "issued" if flush is Flush.MANUAL else "released"
            raise PostingError(
                f"event {event.id}: needs {need} of {item!r} {verb} to production but only "
                f"{max(issued, ZERO)} is in process (shortage policy reject)"
            )
        effects.shortages.append(ShortageEntry(event.id, event.date, item, short, ZERO, "unissued"))
    effects.movements.append(Movement(item, ZERO, -need))


def _require_kind(event: Event, item: str, ctx: Context, kinds: Iterable[Kind], verb: str) -> None:
    found = ctx.standards.master.items.get(item)
    if found is None:  # the edges check names; a library caller may not have
        raise PostingError(f"event {event.id}: unknown item {item!r}; add it to the master data")
    kind = found.kind
    if kind not in kinds:
        expected = " or ".join(k.value for k in kinds)
        raise PostingError(
            f"event {event.id}: {item!r} is a {kind.value}; {verb} takes a {expected}"
        )


#: The statistic of the price difference of material held off the books (its invoice less
#: the standard payables will be credited with when it is used or sold), which no entry posts.
PRICE_UNRECORDED = "purchase_price_unrecorded"


def _purchase(event: Purchase, ctx: Context, effects: Effects) -> None:
    _require_kind(event, event.item, ctx, _PURCHASED, "a purchase")
    effects.movements.append(Movement(event.item, event.quantity))
    standard = ctx.standards.unit_cost(event.item, event.date).total
    if ctx.settings.triggers.periodic:
        _periodic_purchase(event, ctx, effects, standard)
        return
    if not ctx.standards.policy(event.item).costs_purchases:
        effects.memo.append((PRICE_UNRECORDED, event.quantity * (event.unit_cost - standard)))
        return
    builder = EntryBuilder(event.date, event.id, f"purchase {fmt(event.quantity)} {event.item}")
    builder.add_holding(ctx.standards.holding(event.item, event.date), event.quantity, +1)
    builder.add(Account.ACCOUNTS_PAYABLE, -event.quantity * event.unit_cost)
    price_difference = event.quantity * (event.unit_cost - standard)
    builder.add(Account.PURCHASE_PRICE_VARIANCE, price_difference, item=event.item)
    _emit(effects, ctx, builder)


def _periodic_purchase(event: Purchase, ctx: Context, effects: Effects, standard: Decimal) -> None:
    """``count``: received into RIP at standard; ``cogs-first``: charged to COGS at standard.
    Both at standard, the price difference to the purchase price variance, so the variance
    split is the same as under the other policies (and the close's backflush from COGS
    takes out standard cost, never a price difference)."""
    builder = EntryBuilder(event.date, event.id, f"purchase {fmt(event.quantity)} {event.item}")
    if ctx.settings.triggers is Policy.COUNT:
        builder.add(Account.RAW_IN_PROCESS, event.quantity * standard)
    else:
        builder.add(Account.COGS, event.quantity * standard, item=event.item)
    builder.add(Account.ACCOUNTS_PAYABLE, -event.quantity * event.unit_cost)
    price_difference = event.quantity * (event.unit_cost - standard)
    builder.add(Account.PURCHASE_PRICE_VARIANCE, price_difference, item=event.item)
    _emit(effects, ctx, builder)


def _conversion(event: Conversion, ctx: Context, effects: Effects) -> None:
    where = f" at {event.work_center}" if event.work_center else ""
    builder = EntryBuilder(event.date, event.id, f"conversion {event.element or 'costs'}{where}")
    # A periodic book charges actual conversion to COGS as incurred; the close inventories
    # the standard conversion of what is on hand (conversion estimates) out of COGS.
    charged = Account.COGS if ctx.settings.triggers.periodic else Account.CONVERSION_CONTROL
    builder.add(charged, event.amount, event.element)
    builder.add(Account.ACCRUED_CONVERSION, -event.amount)
    _emit(effects, ctx, builder)
    if event.work_center:
        _work_center(event, ctx, event.work_center, event.element, amount=True)
        effects.memo.append((f"{ACTUAL_COST}{event.work_center}:{event.element}", event.amount))
        if event.hours is not None:
            _worked(event, ctx, effects, event.work_center, event.element, event.hours)


def _hours(event: Hours, ctx: Context, effects: Effects) -> None:
    if event.hours <= 0:
        raise PostingError(f"event {event.id}: hours must be more than zero")
    _work_center(event, ctx, event.work_center, event.element, amount=False)
    _worked(event, ctx, effects, event.work_center, event.element, event.hours)


def _worked(
    event: Event, ctx: Context, effects: Effects, center: str, element: str, hours: Decimal
) -> None:
    """Hours worked at ``center``: in all, and under the standards in force that day."""
    clock = f"{center}:{element}"
    effects.memo.append((ACTUAL_HOURS + clock, hours))
    epoch = ctx.standards.epoch(event.date)
    effects.memo.append((dated_hours(ACTUAL_HOURS_ON, epoch, clock), hours))


def _work_center(event: Event, ctx: Context, center: str, element: str, *, amount: bool) -> None:
    """``center`` exists and rates ``element`` (a cost must name its element)."""
    known = ctx.standards.master.work_centers.get(center)
    if known is None:
        raise PostingError(f"event {event.id}: unknown work center {center!r}")
    rated = [e for e, _ in known.rates]
    if (element or amount) and element not in rated:
        raise PostingError(
            f"event {event.id}: work center {center} rates {', '.join(rated)}, "
            f"not {element or 'an unnamed element'!r}"
        )


def _order_of(event: Event, order_id: str, ctx: Context, item: str | None) -> ProductionOrder:
    """The open production order ``order_id`` (of ``item``, when given)."""
    order = ctx.order(order_id)
    if order is None:
        raise PostingError(
            f"event {event.id}: unknown production order {order_id!r}; "
            "a release with this order id opens it"
        )
    if order.closed_by:
        raise PostingError(
            f"event {event.id}: production order {order_id} was closed by {order.closed_by}"
        )
    if item is not None and order.item != item:
        raise PostingError(
            f"event {event.id}: production order {order_id} makes {order.item!r}, not {item!r}"
        )
    return order


def _completion(event: Completion, ctx: Context, effects: Effects) -> None:
    _require_kind(event, event.item, ctx, _MADE, "a completion")
    std = ctx.standards
    cost = std.unit_cost(event.item, event.date)
    good, scrapped = event.quantity, event.scrapped
    made = good + scrapped
    if made <= 0:
        raise PostingError(f"event {event.id}: a completion needs a positive quantity")
    order = _order_of(event, event.order, ctx, event.item) if event.order else None
    requirements = cost.requirements
    if order is not None:  # the BOM as it was when the order was released
        released = tuple(Requirement(c, q, f) for c, q, f in order.requirements)
        if released != requirements:  # (else today's, valued as an order-less completion)
            requirements = released
    pending: dict[str, Decimal] = {}
    pending_in: dict[str, Decimal] = {}
    on_hand, movements = ctx.on_hand.get, effects.movements
    for req in requirements:
        need = made * req.quantity
        if req.flush is _BACKWARD:
            # _take(..., queueable=True, pending=pending), its path with stock enough inlined
            item = req.component
            taken_before = pending.get(item, ZERO)
            if ZERO < need <= on_hand(item, ZERO) - taken_before:
                pending[item] = taken_before + need
                movements.append(Movement(item, -need, ZERO))
            else:
                _take(ctx, effects, event, item, need, queueable=True, pending=pending)
        else:
            _consume_in_process(
                ctx, effects, event, req.component, need, req.flush, pending_in, order
            )
    if good:
        effects.movements.append(Movement(event.item, good))
        standard_hours = std.standard_hours(event.item, event.date)
        if standard_hours:  # in all, and under the standards of the day (see STANDARD_HOURS_ON)
            epoch = std.epoch(event.date)
            for center, hours in standard_hours:
                effects.memo.append((STANDARD_HOURS + center, good * hours))
                effects.memo.append((dated_hours(STANDARD_HOURS_ON, epoch, center), good * hours))
    if order is not None:
        effects.orders.append(
            dataclasses.replace(
                order,
                completed=order.completed + good,
                scrapped=order.scrapped + scrapped,
                consumed=tuple(totals([*order.consumed, *pending_in.items()]).items()),
            )
        )

    if ctx.settings.triggers.periodic:
        return  # quantities only: the close values stock from counts
    holding = std.holding(event.item, event.date)
    memo = f"completion {fmt(good)} {event.item}" + (
        f" ({fmt(scrapped)} scrapped)" if scrapped else ""
    )
    if std.sequential:
        _sequential_completion(event, ctx, effects, holding, memo, requirements)
        return
    builder = EntryBuilder(event.date, event.id, memo)
    costed = bool(good) and std.costed_at_completion(event.item)  # good units valued
    valued = good if costed else ZERO
    if requirements is cost.requirements:
        used = std.consumption(event.item, event.date)
    else:  # an order's BOM: valued for this event alone
        components = [req.component for req in requirements]
        used = consumption(
            requirements,
            std.holdings(components, event.date),
            std.holdings(components, event.date, conversion=False),
        )
    consumed = take_consumed(builder, used, valued, scrapped, event.item)
    if consumed is None:  # past the book's precision: a component at a time, as it rounds
        components = [req.component for req in requirements]
        consumed = take_each(
            builder,
            requirements,
            std.holdings(components, event.date),
            std.holdings(components, event.date, conversion=False),
            valued,
            scrapped,
            event.item,
        )
    if costed:
        if not requirements:  # material standard given without a BOM: pooled in RIP
            builder.add(Account.RAW_IN_PROCESS, -good * cost.material)
        elif requirements is not cost.requirements:
            # An order's BOM differs from today's: what it used beyond (or short of) today's
            # standard material is a usage variance.
            builder.add(
                Account.MATERIAL_USAGE_VARIANCE,
                consumed - good * cost.material,
                item=event.item,
            )
        for element, amount in cost.conversion:
            builder.add(Account.CONVERSION_ALLOCATED, -good * amount, element)
        builder.add(Account.FINISHED_GOODS, good * cost.total, item=event.item)
    elif good and requirements is not cost.requirements:
        _order_bom_usage(builder, std, event, good, requirements, cost)
    if scrapped and not requirements:
        builder.add(Account.RAW_IN_PROCESS, -scrapped * cost.material)
        builder.add(Account.MATERIAL_USAGE_VARIANCE, scrapped * cost.material, item=event.item)
    _emit(effects, ctx, builder)
    if scrapped:  # a component holding its conversion loses it with the scrapped units
        lost = sum(
            (req.quantity * std.conversion_held(req.component, event.date) for req in requirements),
            ZERO,
        )
        if lost:
            effects.memo.append((LOST_CONVERSION, scrapped * lost))


def _order_bom_usage(
    builder: EntryBuilder,
    std: Standards,
    event: Completion,
    good: Decimal,
    requirements: tuple[Requirement, ...],
    cost: UnitCost,
) -> None:
    """Good units not valued at completion (a subassembly, a good costed at sale) made under
    an order's BOM: their components stay where they sit until a sale or a parent takes the
    units at today's standard. What the order used beyond (or short of) today's BOM is taken
    out now to the usage variance, as when costed; else it would stay in stock for good."""
    shift = ZERO
    for req, parts in zip(
        requirements, std.holdings([r.component for r in requirements], event.date), strict=True
    ):
        shift += builder.add_holding(parts, good * req.quantity)
    if cost.requirements:
        today = std.holdings([r.component for r in cost.requirements], event.date)
        for req, parts in zip(cost.requirements, today, strict=True):
            shift -= builder.add_holding(parts, good * req.quantity, sign=1)
    else:  # a material standard given without a BOM: pooled in RIP
        builder.add(Account.RAW_IN_PROCESS, good * cost.material)
        shift -= good * cost.material
    builder.add(Account.MATERIAL_USAGE_VARIANCE, shift, item=event.item)


def take_consumed(
    builder: EntryBuilder, used: Consumption, good: Decimal, scrapped: Decimal, item: str
) -> Decimal | None:
    """Take out of where they sit the components of ``good`` valued units and ``scrapped``
    units of ``item`` (their value less unallocated conversion to the usage variance): the
    parts valuing one component at a time makes, in its order (:class:`Consumption`). Returns
    the value of the good units' components; None, taking nothing, where a per-unit sum or a
    multiple of one is not exact in the current context (then :func:`take_each`): a sum
    rounded once is not its terms rounded one by one."""
    if not used.exact:
        return None
    into = builder.parts
    before = dict(into) if into else None
    flags = getcontext().flags  # the caller's sticky flag is put back after the look
    was_inexact, flags[Inexact] = flags[Inexact], False
    if not scrapped:
        for key, value in used.good.items() if good else ():
            into[key] = into.get(key, ZERO) - good * value
    else:
        usage = (_MATERIAL_USAGE_VARIANCE, "", item)
        for part in used.both if good else used.scrapped_only:
            if part is None:
                into[usage] = into.get(usage, ZERO) + scrapped * used.usage
            else:
                into[part] = into.get(part, ZERO) - (
                    good * used.good.get(part, ZERO) + scrapped * used.scrapped.get(part, ZERO)
                )
    consumed = good * used.good_value
    inexact, flags[Inexact] = flags[Inexact], was_inexact or flags[Inexact]
    if inexact:
        builder.parts = {} if before is None else before
        return None
    return consumed


def take_each(
    builder: EntryBuilder,
    requirements: Iterable[Requirement],
    holdings: Iterable[Holding],
    bare: Iterable[Holding],
    good: Decimal,
    scrapped: Decimal,
    item: str,
) -> Decimal:
    """:func:`take_consumed` valuing one component at a time (``holdings`` and ``bare``
    holdings of ``requirements``, in their order): the value of the good units' components."""
    into = builder.parts
    usage = (_MATERIAL_USAGE_VARIANCE, "", item)
    consumed = ZERO
    for req, parts, less in zip(requirements, holdings, bare, strict=True):
        if good:
            consumed += builder.add_holding(parts, good * req.quantity)
        if scrapped:
            value = builder.add_holding(less, scrapped * req.quantity)
            into[usage] = into.get(usage, ZERO) + value
    return consumed


def _sequential_completion(
    event: Completion,
    ctx: Context,
    effects: Effects,
    holding: Holding,
    memo: str,
    requirements: tuple[Requirement, ...],
) -> None:
    """Traditional costing: materials to WIP, conversion applied to WIP, WIP to stock."""
    std = ctx.standards
    cost = std.unit_cost(event.item, event.date)
    made = event.quantity + event.scrapped
    issue = EntryBuilder(event.date, event.id, f"issue to WIP for {event.item}")
    for req in requirements:
        if req.flush is Flush.BACKWARD:
            value = issue.add_holding(std.holding(req.component, event.date), made * req.quantity)
            issue.add(Account.WORK_IN_PROCESS, value, item=event.item)
    if not cost.requirements:
        issue.add(Account.MATERIALS, -made * cost.material)
        issue.add(Account.WORK_IN_PROCESS, made * cost.material, item=event.item)
    _emit(effects, ctx, issue)
    applied = EntryBuilder(event.date, event.id, f"conversion applied to {event.item}")
    for element, amount in cost.conversion:
        applied.add(Account.CONVERSION_ALLOCATED, -event.quantity * amount, element)
        applied.add(Account.WORK_IN_PROCESS, event.quantity * amount, item=event.item)
    _emit(effects, ctx, applied)
    done = EntryBuilder(event.date, event.id, memo)
    if event.quantity:
        done.add_holding(holding, event.quantity, +1)
    if event.scrapped:
        done.add(Account.MATERIAL_USAGE_VARIANCE, event.scrapped * cost.material, item=event.item)
        # Its "material" holds the conversion of lower levels, lost with the scrapped units.
        lower = sum((amount for element, amount in cost.rolled if element != MATERIAL), ZERO)
        if lower:
            effects.memo.append((LOST_CONVERSION, event.scrapped * lower))
    done.add(
        Account.WORK_IN_PROCESS, -(event.quantity * cost.total + event.scrapped * cost.material)
    )
    if requirements is not cost.requirements:
        # An order's BOM differs from today's: WIP holds its components (issued or released
        # at standard) and gives up today's standard material; the difference is a usage
        # variance, not stock (a close would sweep it into rounding).
        used = sum(
            (
                made
                * req.quantity
                * sum((a for _, _, a in std.holding(req.component, event.date)), ZERO)
                for req in requirements
            ),
            ZERO,
        )
        done.add(Account.MATERIAL_USAGE_VARIANCE, used - made * cost.material, item=event.item)
        done.add(Account.WORK_IN_PROCESS, made * cost.material - used)
    _emit(effects, ctx, done)


def _sale(event: Sale, ctx: Context, effects: Effects) -> None:
    _require_kind(event, event.item, ctx, _SOLD, "a sale")
    _take(ctx, effects, event, event.item, event.quantity, queueable=False)
    if not ctx.settings.triggers.periodic:  # periodic: quantities only (and revenue)
        cost = ctx.standards.unit_cost(event.item, event.date)
        builder = EntryBuilder(event.date, event.id, f"sale {fmt(event.quantity)} {event.item}")
        builder.add_holding(ctx.standards.holding(event.item, event.date), event.quantity)
        builder.add(Account.COGS, event.quantity * cost.total, item=event.item)
        _emit(effects, ctx, builder)
        for element, amount in cost.by_element().items():
            effects.memo.append((SOLD + element, event.quantity * amount))
    if event.unit_price is not None:
        revenue = EntryBuilder(event.date, event.id, f"revenue {fmt(event.quantity)} {event.item}")
        revenue.add(Account.ACCOUNTS_RECEIVABLE, event.quantity * event.unit_price)
        revenue.add(Account.SALES, -event.quantity * event.unit_price, item=event.item)
        _emit(effects, ctx, revenue)


def _scrap(event: Scrap, ctx: Context, effects: Effects) -> None:
    _require_kind(event, event.item, ctx, _STOCKED, "a scrap report")
    _take(ctx, effects, event, event.item, event.quantity, queueable=False)
    if ctx.settings.triggers.periodic:
        return  # quantities only: the close values stock from counts
    builder = EntryBuilder(event.date, event.id, f"scrap {fmt(event.quantity)} {event.item}")
    value = builder.add_holding(
        ctx.standards.holding(event.item, event.date, conversion=False), event.quantity
    )
    builder.add(Account.MATERIAL_USAGE_VARIANCE, value, item=event.item)
    _emit(effects, ctx, builder)
    _lost_conversion(event.item, event.date, event.quantity, ctx, effects)


def _lost_conversion(
    item: str, on: dt.date, quantity: Decimal, ctx: Context, effects: Effects
) -> None:
    """Note the conversion that ``quantity`` units of ``item`` lost (scrapped, or counted
    missing; negative: found) took to a variance with their material (see
    :meth:`Standards.conversion_held`)."""
    conversion = ctx.standards.conversion_held(item, on)
    if conversion:
        effects.memo.append((LOST_CONVERSION, quantity * conversion))


def _count(event: Count, ctx: Context, effects: Effects) -> None:
    _require_kind(event, event.item, ctx, _STOCKED, "a count")
    if event.quantity < 0:
        raise PostingError(f"event {event.id}: a counted quantity cannot be negative")
    # The shelf holds the book's stock less what production took that still waits in the
    # queue; a gain clears the queue (the book's retry), so stock ends at the counted quantity.
    difference = event.quantity - (ctx.on_hand.get(event.item, ZERO) - ctx.waiting(event.item))
    if not difference:
        effects.movements.append(Movement(event.item))  # counted, and found as the book says
        return
    effects.movements.append(Movement(event.item, difference))
    if ctx.settings.triggers.periodic:
        return  # quantities only: the close values stock from counts
    builder = EntryBuilder(
        event.date,
        event.id,
        f"count {event.item}: {'+' if difference > 0 else ''}{fmt(difference)}",
    )
    holding = ctx.standards.holding(event.item, event.date, conversion=False)
    value = builder.add_holding(holding, difference, +1)
    builder.add(ctx.settings.count_account, -value, item=event.item)
    _emit(effects, ctx, builder)
    _lost_conversion(event.item, event.date, -difference, ctx, effects)


def _issue(event: Issue, ctx: Context, effects: Effects) -> None:
    _require_kind(event, event.item, ctx, _STOCKED, "an issue")
    if event.order:
        order = _order_of(event, event.order, ctx, None)
        if event.item not in {c for c, _, _ in order.requirements}:
            raise PostingError(
                f"event {event.id}: {event.item!r} is not on the BOM of production order "
                f"{order.id} (as released on {order.released.isoformat()})"
            )
        issued = totals([*order.issued, (event.item, event.quantity)])
        effects.orders.append(dataclasses.replace(order, issued=tuple(issued.items())))
    _take(ctx, effects, event, event.item, event.quantity, queueable=False, into_process=True)
    if ctx.standards.sequential:
        builder = EntryBuilder(event.date, event.id, f"issue {fmt(event.quantity)} {event.item}")
        value = builder.add_holding(ctx.standards.holding(event.item, event.date), event.quantity)
        builder.add(Account.WORK_IN_PROCESS, value)
        _emit(effects, ctx, builder)


def _release(event: Release, ctx: Context, effects: Effects) -> None:
    _require_kind(event, event.item, ctx, _MADE, "a release")
    if event.order:
        known = ctx.order(event.order)
        if known is not None:
            raise PostingError(
                f"event {event.id}: production order {event.order} was already released "
                f"by {known.release_event}"
            )
    cost = ctx.standards.unit_cost(event.item, event.date)
    builder = EntryBuilder(event.date, event.id, f"release {fmt(event.quantity)} {event.item}")
    pending: dict[str, Decimal] = {}
    for req in cost.requirements:
        if req.flush is Flush.FORWARD:
            need = event.quantity * req.quantity
            _take(ctx, effects, event, req.component, need, queueable=True, into_process=True,
                  pending=pending)  # fmt: skip
            if ctx.standards.sequential:
                value = builder.add_holding(ctx.standards.holding(req.component, event.date), need)
                builder.add(Account.WORK_IN_PROCESS, value, item=event.item)
    _emit(effects, ctx, builder)
    if event.order:
        effects.orders.append(
            ProductionOrder(
                event.order,
                event.item,
                event.quantity,
                event.date,
                event.id,
                tuple((r.component, r.quantity, r.flush) for r in cost.requirements),
                issued=tuple(pending.items()),
            )
        )


def _order_close(event: OrderClose, ctx: Context, effects: Effects) -> None:
    """What is left of what was issued to the order goes back to stock (at standard: under
    backflush its value never left the holding; under sequential costing, out of WIP). What
    the order consumed beyond its issues came off the shelf: it is issued now, from stock
    (else in-process stock stayed negative for good, and a count found the shelf short)."""
    order = _order_of(event, event.order, ctx, None)
    left = order.left()
    returned = {c: q for c, q in left.items() if q > 0}
    unissued = {c: -q for c, q in left.items() if q < 0}
    builder = EntryBuilder(event.date, event.id, f"close of production order {order.id}")
    for component, quantity in unissued.items():
        _take(ctx, effects, event, component, quantity, queueable=False, into_process=True)
        if ctx.standards.sequential:
            holding = ctx.standards.holding(component, event.date)
            value = builder.add_holding(holding, quantity)
            builder.add(Account.WORK_IN_PROCESS, value, item=order.item)
    for component, quantity in returned.items():
        effects.movements.append(Movement(component, quantity, -quantity))
        if ctx.standards.sequential:
            holding = ctx.standards.holding(component, event.date)
            value = builder.add_holding(holding, quantity, +1)
            builder.add(Account.WORK_IN_PROCESS, -value, item=order.item)
    _emit(effects, ctx, builder)
    issued = tuple(totals([*order.issued, *unissued.items()]).items()) if unissued else order.issued
    effects.orders.append(
        dataclasses.replace(
            order,
            issued=issued,
            returned=tuple(returned.items()),
            closed_by=event.id,
        )
    )


# What each event takes, by kind of item (the order is the order an error names them in).
_STOCKED = (Kind.MATERIAL, Kind.SUBASSEMBLY, Kind.FINISHED)
_PURCHASED = (Kind.MATERIAL,)
_MADE = (Kind.FINISHED, Kind.SUBASSEMBLY)
_SOLD = (Kind.FINISHED, Kind.SUBASSEMBLY, Kind.MATERIAL)

_HANDLERS: dict[type[Event], Callable[[Event, Context, Effects], None]] = {
    Purchase: _purchase,  # type: ignore[dict-item]
    Conversion: _conversion,  # type: ignore[dict-item]
    Hours: _hours,  # type: ignore[dict-item]
    Completion: _completion,  # type: ignore[dict-item]
    Sale: _sale,  # type: ignore[dict-item]
    Scrap: _scrap,  # type: ignore[dict-item]
    Count: _count,  # type: ignore[dict-item]
    Issue: _issue,  # type: ignore[dict-item]
    Release: _release,  # type: ignore[dict-item]
    OrderClose: _order_close,  # type: ignore[dict-item]
}
