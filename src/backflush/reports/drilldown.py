"""The audit trail of one journal figure: entry -> event -> BOM version and standard used ->
component quantities (``backflush explain``).

:func:`drilldown` reads one event of a stored book (in one transaction) and :func:`explain`
lays out what an auditor checks: the entries it posted (debits = credits), for each item whose
standard it used the BOM and routing versions in force on its date and the rolled-up standard
by element, the stock it moved, and a check that recomputes the posted amounts from quantity x
standard (completions, sales, scrap) and the component quantities from quantity x BOM
quantity per (scrap and yields included).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from backflush.book import fingerprint
from backflush.domain.model import (
    Account,
    Bom,
    Completion,
    Entry,
    Event,
    Kind,
    Movement,
    ProductionOrder,
    Purchase,
    Routing,
    Sale,
    Scrap,
    Settings,
    ShortageEntry,
)
from backflush.domain.money import CONTEXT, ZERO, fmt, round_money
from backflush.engine.standards import (
    Holding,
    Requirement,
    StandardError,
    Standards,
    without_conversion,
)
from backflush.formats.inputs import is_reference
from backflush.reports.document import line_document, money, order_document
from backflush.reports.tables import _amount, _unit
from backflush.store.repository import EventTrail, Store, SummaryEntry


class NotFound(LookupError):
    """No event with that id, or no journal entry with that number."""


@dataclass(frozen=True, slots=True)
class NumberedEntry:
    number: int
    entry: Entry

    @property
    def debits(self) -> Decimal:
        return sum((line.debit for line in self.entry.lines), ZERO)

    @property
    def credits(self) -> Decimal:
        return sum((line.credit for line in self.entry.lines), ZERO)

    @property
    def balanced(self) -> bool:
        return self.debits == self.credits


@dataclass(frozen=True, slots=True)
class StandardUsed:
    """The standard of one item on the event's date and where it comes from."""

    item: str
    kind: Kind
    #: Standards in force since (the latest BOM / routing version or cost set release on or
    #: before the event's date; None: the book's first standards).
    since: dt.date | None
    #: Cost sets released on or before the event's date, oldest first.
    cost_sets: tuple[str, ...]
    bom: Bom | None
    routing: Routing | None
    #: Unit standard: total, by element (this level and lower levels together), the value of
    #: the stocked components consumed, this level's conversion by element.
    total: Decimal = ZERO
    by_element: tuple[tuple[str, Decimal], ...] = ()
    material: Decimal = ZERO
    conversion: tuple[tuple[str, Decimal], ...] = ()
    #: Stocked components consumed per unit (phantoms exploded, scrap and yields included).
    requirements: tuple[Requirement, ...] = ()
    #: Why there is no standard on that date (e.g. no BOM version in force).
    error: str = ""


@dataclass(frozen=True, slots=True)
class AmountCheck:
    """One posted figure recomputed: ``expected`` from quantity x standard, rounded as the
    journal rounds it, against what the event's entries ``posted`` on that key."""

    account: Account
    element: str
    item: str
    basis: tuple[str, ...]
    expected: Decimal
    posted: Decimal

    @property
    def agrees(self) -> bool:
        return self.expected == self.posted


@dataclass(frozen=True, slots=True)
class ComponentCheck:
    """A component of a completion: quantity made x quantity per = required; the stock this
    event moved (so far: a receipt may have cleared queued consumption since), what still
    waits in the shortage queue and what of that was written off must make it."""

    component: str
    per_unit: Decimal
    made: Decimal
    required: Decimal
    moved: Decimal
    queued: Decimal
    written_off: Decimal = ZERO

    @property
    def agrees(self) -> bool:
        return self.moved + self.queued + self.written_off == self.required


@dataclass(frozen=True, slots=True)
class Check:
    #: ``agrees``, ``differs`` or ``not checked`` (an event type the check does not recompute).
    status: str
    note: str
    amounts: tuple[AmountCheck, ...] = ()
    components: tuple[ComponentCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class Drilldown:
    currency: str
    event: Event
    #: The event's recorded content (its canonical payload, without the type).
    fields: tuple[tuple[str, str], ...]
    reversed_by: str
    entries: tuple[NumberedEntry, ...]
    standards: tuple[StandardUsed, ...]
    #: (event it belongs to, event that made it happen, movement).
    movements: tuple[tuple[str, str, Movement], ...]
    shortages: tuple[ShortageEntry, ...]
    order: ProductionOrder | None
    check: Check
    #: The entry number asked for (None: asked by event id).
    entry_no: int | None = None
    #: When it was recorded, and by whom (see :class:`EventTrail`).
    recorded_at: dt.datetime | None = None
    recorded_by: str | None = None
    #: Its exceptions written off: (item, kind, written off by, reason).
    written_off: tuple[tuple[str, str, str, str], ...] = ()

    def write_off(self, shortage: ShortageEntry) -> tuple[str, str] | None:
        """(written off by, reason) of ``shortage``, if it was written off."""
        for item, kind, by, reason in self.written_off:
            if (item, kind) == (shortage.item, shortage.kind):
                return by, reason
        return None

    @property
    def balanced(self) -> bool:
        return all(e.balanced for e in self.entries)


# ---------------------------------------------------------------- reading and laying out


def drilldown(store: Store, *, event: str | None = None, entry_no: int | None = None) -> Drilldown:
    """The drill-down of the event ``event``, or of the event that posted entry ``entry_no``
    (exactly one of them), read in one transaction. :class:`NotFound` names what is missing."""
    if (event is None) == (entry_no is None):
        raise ValueError("give an event id or an entry number")
    if event is not None and not is_reference(event):  # (NUL is no text to PostgreSQL)
        raise NotFound(f"event {event!r}: not in the book (not an id a book can hold)")
    found = store.trail(event=event, entry_no=entry_no)
    if found is None:
        what = f"event {event!r}" if event is not None else f"journal entry {entry_no}"
        raise NotFound(f"{what}: not in the book")
    return explain(found, entry_no=entry_no)


def entry_drilldown(store: Store, entry_no: int) -> SummaryEntry | Drilldown:
    """Journal entry ``entry_no``: a summary (``journal_detail`` day or period) with the
    events whose lines it sums, or the drill-down of the event that posted it.
    :class:`NotFound` when there is no such entry."""
    summary = store.summarised_entry(entry_no)
    return summary if summary is not None else drilldown(store, entry_no=entry_no)


def explain(trail: EventTrail, entry_no: int | None = None) -> Drilldown:
    """Lay out a stored event's audit trail (pure: no I/O)."""
    event = trail.event
    std = trail.standards
    with localcontext(CONTEXT):
        requirements = _requirements(trail)
        items = list(dict.fromkeys(_items_used(trail, requirements)))
        standards = tuple(_standard(std, item, event.date) for item in items)
        check = _check(trail, requirements)
    body = json.loads(fingerprint(event))
    body.pop("type")
    return Drilldown(
        trail.settings.currency,
        event,
        tuple(body.items()),
        trail.reversed_by,
        tuple(NumberedEntry(n, e) for n, e in trail.entries),
        standards,
        trail.movements,
        trail.shortages,
        trail.order,
        check,
        entry_no,
        trail.recorded_at,
        trail.recorded_by,
        trail.written_off,
    )


def _requirements(trail: EventTrail) -> tuple[Requirement, ...] | None:
    """What a completion consumed per unit: its order's BOM as released, else the BOM in force
    on its date (None: not a completion, or no standard)."""
    event = trail.event
    if not isinstance(event, Completion):
        return None
    if trail.order is not None:
        return order_requirements(trail.order)
    try:
        return trail.standards.unit_cost(event.item, event.date).requirements
    except (StandardError, KeyError):
        return None


def _items_used(trail: EventTrail, requirements: tuple[Requirement, ...] | None) -> Iterable[str]:
    master = trail.standards.master.items
    own = getattr(trail.event, "item", "")
    if own:
        yield own
    if trail.order is not None:
        yield trail.order.item
    for _, entry in trail.entries:
        yield from (line.item for line in entry.lines if line.item in master)
    yield from (r.component for r in requirements or ())


def _standard(std: Standards, item_id: str, on: dt.date) -> StandardUsed:
    master = std.master
    item = master.items[item_id]
    epoch = std.epoch(on)
    sets = tuple(c.name for c in master.released() if c.effective and c.effective <= on)
    bom = master.bom_on(item_id, on) if item.kind is not Kind.MATERIAL else None
    found = StandardUsed(
        item_id,
        item.kind,
        None if epoch == dt.date.min else epoch,
        sets,
        bom,
        master.routing_on(item_id, on),
    )
    try:
        cost = std.unit_cost(item_id, on)
    except StandardError as error:
        return dataclasses.replace(found, error=str(error))
    return dataclasses.replace(
        found,
        total=cost.total,
        by_element=tuple(cost.by_element().items()),
        material=cost.material,
        conversion=cost.conversion,
        requirements=cost.requirements,
    )


# ---------------------------------------------------------------- the check


@dataclass(slots=True)
class _Expected:
    """Expected lines of one entry, summed by (account, element, item) and rounded once per
    key as :class:`~backflush.engine.flush.EntryBuilder` does, the residue to rounding."""

    parts: dict[tuple[Account, str, str], Decimal] = field(default_factory=dict)
    basis: dict[tuple[Account, str, str], list[str]] = field(default_factory=dict)

    def add(
        self, account: Account, amount: Decimal, why: str, element: str = "", item: str = ""
    ) -> None:
        key = (account, element, item)
        self.parts[key] = self.parts.get(key, ZERO) + amount
        self.basis.setdefault(key, []).append(why)

    def holding(self, holding: Holding, quantity: Decimal, sign: int, what: str) -> Decimal:
        total = ZERO
        for account, element, amount in holding:
            self.add(account, sign * quantity * amount, f"{what} {fmt(amount)}", element)
            total += quantity * amount
        return total

    def rounded(self, settings: Settings) -> dict[tuple[Account, str, str], Decimal]:
        found = {
            key: round_money(amount, settings.currency, settings.rounding)
            for key, amount in self.parts.items()
        }
        residue = -sum(found.values(), ZERO)
        if residue:
            key = (Account.ROUNDING_VARIANCE, "", "")
            found[key] = found.get(key, ZERO) + residue
            self.basis.setdefault(key, []).append("rounding residue")
        return found


def _check(trail: EventTrail, requirements: tuple[Requirement, ...] | None) -> Check:
    event, settings = trail.event, trail.settings
    if not isinstance(event, (Completion, Sale, Scrap, Purchase)):
        article = "an" if event.type[0] in "aeiou" else "a"
        return Check("not checked", f"{article} {event.type} event: shown as recorded")
    if settings.triggers.periodic:
        return Check("not checked", f"triggers {settings.triggers.value}: quantities only")
    if trail.standards.sequential:
        return Check("not checked", "sequential costing: entries shown as recorded")
    try:
        if isinstance(event, Completion):
            expected = _completion(trail, event, requirements)
        elif isinstance(event, Sale):
            expected = _sale(trail, event)
        elif isinstance(event, Purchase):
            if not trail.standards.policy(event.item).costs_purchases:
                return Check("not checked", "purchases are no trigger here: nothing is posted")
            expected = _purchase(trail, event)
        else:
            expected = _scrap(trail, event)
    except (StandardError, KeyError) as error:
        return Check("not checked", f"no standard on {event.date}: {error}")
    amounts = _compare(expected, [e for _, e in trail.entries], settings)
    components = _components(trail, event, requirements) if isinstance(event, Completion) else ()
    agrees = all(a.agrees for a in amounts) and all(c.agrees for c in components)
    note = (
        "posted amounts = quantity x standard; component quantities = quantity x quantity per"
        if agrees
        else "the posted lines differ from quantity x standard"
    )
    return Check("agrees" if agrees else "differs", note, amounts, components)


def _completion(
    trail: EventTrail, event: Completion, requirements: tuple[Requirement, ...] | None
) -> list[_Expected]:
    std, date, item = trail.standards, event.date, event.item
    cost = std.unit_cost(item, date)
    reqs = cost.requirements if requirements is None else requirements
    good, scrapped = event.quantity, event.scrapped
    costed = std.costed_at_completion(item)
    found = _Expected()
    consumed = ZERO
    for req in reqs:
        parts = std.holding(req.component, date)
        what = f"{fmt(good)} x {fmt(req.quantity)} {req.component} x"
        if costed and good:
            consumed += found.holding(parts, good * req.quantity, -1, what)
        if scrapped:
            what = f"{fmt(scrapped)} scrapped x {fmt(req.quantity)} {req.component} x"
            bare = without_conversion(parts)
            value = found.holding(bare, scrapped * req.quantity, -1, what)
            unit = sum((amount for _account, _element, amount in bare), ZERO)
            found.add(Account.MATERIAL_USAGE_VARIANCE, value, f"{what} {fmt(unit)}", item=item)
    if costed and good:
        if not reqs:
            found.add(
                Account.RAW_IN_PROCESS,
                -good * cost.material,
                f"{fmt(good)} x material {fmt(cost.material)}",
            )
        elif trail.order is not None and reqs != cost.requirements:
            found.add(
                Account.MATERIAL_USAGE_VARIANCE,
                consumed - good * cost.material,
                f"order {trail.order.id}'s BOM less {fmt(good)} x standard material "
                f"{fmt(cost.material)}",
                item=item,
            )
        for element, amount in cost.conversion:
            found.add(
                Account.CONVERSION_ALLOCATED,
                -good * amount,
                f"{fmt(good)} x {element or 'conversion'} {fmt(amount)}",
                element,
            )
        found.add(
            Account.FINISHED_GOODS,
            good * cost.total,
            f"{fmt(good)} x standard {fmt(cost.total)}",
            item=item,
        )
    if scrapped and not reqs:
        what = f"{fmt(scrapped)} scrapped x material {fmt(cost.material)}"
        found.add(Account.RAW_IN_PROCESS, -scrapped * cost.material, what)
        found.add(Account.MATERIAL_USAGE_VARIANCE, scrapped * cost.material, what, item=item)
    return [found]


def _sale(trail: EventTrail, event: Sale) -> list[_Expected]:
    std, quantity = trail.standards, event.quantity
    cost = std.unit_cost(event.item, event.date)
    found = _Expected()
    found.holding(
        std.holding(event.item, event.date), quantity, -1, f"{fmt(quantity)} {event.item} x"
    )
    found.add(
        Account.COGS,
        quantity * cost.total,
        f"{fmt(quantity)} x standard {fmt(cost.total)}",
        item=event.item,
    )
    if event.unit_price is None:
        return [found]
    revenue = _Expected()
    why = f"{fmt(quantity)} x price {fmt(event.unit_price)}"
    revenue.add(Account.ACCOUNTS_RECEIVABLE, quantity * event.unit_price, why)
    revenue.add(Account.SALES, -quantity * event.unit_price, why, item=event.item)
    return [found, revenue]


def _purchase(trail: EventTrail, event: Purchase) -> list[_Expected]:
    """Received at standard, owed at the invoice price, the difference a price variance."""
    std, quantity = trail.standards, event.quantity
    standard = std.unit_cost(event.item, event.date).total
    found = _Expected()
    found.holding(std.holding(event.item, event.date), quantity, +1, f"{fmt(quantity)} x")
    owed = f"{fmt(quantity)} x price {fmt(event.unit_cost)}"
    found.add(Account.ACCOUNTS_PAYABLE, -quantity * event.unit_cost, owed)
    found.add(
        Account.PURCHASE_PRICE_VARIANCE,
        quantity * (event.unit_cost - standard),
        f"{fmt(quantity)} x (price {fmt(event.unit_cost)} - standard {fmt(standard)})",
        item=event.item,
    )
    return [found]


def _scrap(trail: EventTrail, event: Scrap) -> list[_Expected]:
    std, quantity = trail.standards, event.quantity
    found = _Expected()
    what = f"{fmt(quantity)} {event.item} x"
    holding = without_conversion(std.holding(event.item, event.date))
    value = found.holding(holding, quantity, -1, what)
    found.add(Account.MATERIAL_USAGE_VARIANCE, value, f"{what} standard material", item=event.item)
    return [found]


def _compare(
    expected: list[_Expected], entries: list[Entry], settings: Settings
) -> tuple[AmountCheck, ...]:
    want: dict[tuple[Account, str, str], Decimal] = {}
    basis: dict[tuple[Account, str, str], list[str]] = {}
    for built in expected:
        for key, amount in built.rounded(settings).items():
            want[key] = want.get(key, ZERO) + amount
            basis.setdefault(key, []).extend(built.basis[key])
    posted: dict[tuple[Account, str, str], Decimal] = {}
    for entry in entries:
        for line in entry.lines:
            key = (line.account, line.element, line.item)
            posted[key] = posted.get(key, ZERO) + line.amount
    keys = [k for k in dict.fromkeys([*want, *posted]) if want.get(k) or posted.get(k)]
    return tuple(
        AmountCheck(
            a,
            e,
            i,
            tuple(basis.get((a, e, i), ())),
            want.get((a, e, i), ZERO),
            posted.get((a, e, i), ZERO),
        )
        for a, e, i in keys
    )


def _components(
    trail: EventTrail, event: Completion, requirements: tuple[Requirement, ...] | None
) -> tuple[ComponentCheck, ...]:
    made = event.quantity + event.scrapped
    per: dict[str, Decimal] = {}
    for req in requirements or ():
        per[req.component] = per.get(req.component, ZERO) + req.quantity
    written = {item for item, kind, _, _ in trail.written_off if kind == "shortage"}
    found = []
    for component, quantity in per.items():
        own = [mv for owner, _, mv in trail.movements if owner == event.id and mv.item == component]
        retried = [
            mv
            for owner, cause, mv in trail.movements
            if owner == event.id and cause != event.id and mv.item == component
        ]
        moved = -sum((mv.on_hand + mv.in_process for mv in own), ZERO)
        queued = off = ZERO
        for s in trail.shortages:
            if s.item == component and s.kind == "shortage":
                queued += s.open
                if component in written:  # dropped without a movement
                    off += s.quantity - s.open + sum((mv.on_hand for mv in retried), ZERO)
        found.append(ComponentCheck(component, quantity, made, made * quantity, moved, queued, off))
    return tuple(found)


# ---------------------------------------------------------------- the JSON document


def _date(value: dt.date | None) -> str | None:
    return None if value is None or value in (dt.date.min, dt.date.max) else value.isoformat()


def _bom_document(bom: Bom | None) -> dict[str, Any] | None:
    if bom is None:
        return None
    return {
        "effective_from": _date(bom.effective_from),
        "effective_to": _date(bom.effective_to),
        "lines": [
            {
                "component": line.component,
                "quantity": fmt(line.quantity),
                "scrap": fmt(line.scrap),
                **({"flush": line.flush.value} if line.flush else {}),
                **({"operation": line.operation} if line.operation is not None else {}),
            }
            for line in bom.lines
        ],
    }


def _routing_document(routing: Routing | None) -> dict[str, Any] | None:
    if routing is None:
        return None
    return {
        "effective_from": _date(routing.effective_from),
        "effective_to": _date(routing.effective_to),
        "operations": [
            {
                "operation": op.number,
                "work_center": op.work_center,
                "setup_hours": fmt(op.setup_hours),
                "run_hours": fmt(op.run_hours),
                "yield": fmt(op.yield_),
            }
            for op in routing.operations
        ],
    }


def _order_document(order: ProductionOrder) -> dict[str, Any]:
    """The order, and what it consumes per unit: its BOM as released (the standard's may
    have changed since; the difference is usage variance)."""
    return {
        **order_document(order),
        "requirements": _requirements_document(order_requirements(order)),
    }


def _requirements_document(requirements: Iterable[Requirement]) -> list[dict[str, str]]:
    return [
        {"component": r.component, "quantity": fmt(r.quantity), "flush": r.flush.value}
        for r in requirements
    ]


def order_requirements(order: ProductionOrder) -> tuple[Requirement, ...]:
    """What ``order`` consumes per unit: its BOM exploded as released."""
    return tuple(Requirement(c, q, f) for c, q, f in order.requirements)


def standard_document(found: StandardUsed) -> dict[str, Any]:
    body: dict[str, Any] = {
        "item": found.item,
        "kind": found.kind.value,
        "standards_since": _date(found.since),
        "cost_sets": list(found.cost_sets),
        "bom": _bom_document(found.bom),
        "routing": _routing_document(found.routing),
    }
    if found.error:
        body["error"] = found.error
        return body
    body["unit_standard"] = {
        "total": fmt(found.total),
        "by_element": {k: fmt(v) for k, v in found.by_element},
        "material": fmt(found.material),
        "conversion": {k: fmt(v) for k, v in found.conversion},
    }
    body["requirements"] = _requirements_document(found.requirements)
    return body


def drilldown_document(found: Drilldown) -> dict[str, Any]:
    """The drill-down as one JSON-ready document (decimal strings, money at minor units)."""
    currency = found.currency
    event = found.event
    check = found.check
    return {
        **({"entry_no": found.entry_no} if found.entry_no is not None else {}),
        "event": {
            "id": event.id,
            "type": event.type,
            "date": event.date.isoformat(),
            "fields": dict(found.fields),
            **({"reversed_by": found.reversed_by} if found.reversed_by else {}),
            "recorded_at": None if found.recorded_at is None else found.recorded_at.isoformat(),
            "recorded_by": found.recorded_by,
        },
        "entries": [
            {
                "entry_no": e.number,
                "date": e.entry.date.isoformat(),
                "memo": e.entry.memo,
                "debits": money(e.debits, currency),
                "credits": money(e.credits, currency),
                "balanced": e.balanced,
                "lines": [line_document(line, currency) for line in e.entry.lines],
            }
            for e in found.entries
        ],
        "standards": [standard_document(s) for s in found.standards],
        "movements": [
            {
                "event": owner,
                "cause": cause,
                "item": mv.item,
                "on_hand": fmt(mv.on_hand),
                "in_process": fmt(mv.in_process),
            }
            for owner, cause, mv in found.movements
        ],
        "exceptions": [
            {"item": s.item, "kind": s.kind, "quantity": fmt(s.quantity), "open": fmt(s.open)}
            | (
                {"written_off_by": off[0], "reason": off[1]}
                if (off := found.write_off(s)) is not None
                else {}
            )
            for s in found.shortages
        ],
        **({"order": _order_document(found.order)} if found.order is not None else {}),
        "check": {
            "status": check.status,
            "note": check.note,
            "amounts": [
                {
                    "account": a.account.value,
                    **({"element": a.element} if a.element else {}),
                    **({"item": a.item} if a.item else {}),
                    "basis": list(a.basis),
                    "expected": money(a.expected, currency),
                    "posted": money(a.posted, currency),
                    "agrees": a.agrees,
                }
                for a in check.amounts
            ],
            "components": [
                {
                    "component": c.component,
                    "per_unit": fmt(c.per_unit),
                    "made": fmt(c.made),
                    "required": fmt(c.required),
                    "moved": fmt(c.moved),
                    "queued": fmt(c.queued),
                    "written_off": fmt(c.written_off),
                    "agrees": c.agrees,
                }
                for c in check.components
            ],
        },
    }


def _entries_table(
    numbered: Iterable[NumberedEntry], currency: str, marked: int | None
) -> RenderableType:
    """Journal entries, each with its lines and totals (entry ``marked`` in bold)."""
    numbered = list(numbered)
    if not numbered:
        return Text("No journal entries.", style="dim")
    entries = Table(title="Entries", title_justify="left", title_style="bold")
    for column in ("no.", "date", "memo", "account", "item", "debit", "credit"):
        entries.add_column(
            column,
            justify="right" if column in ("no.", "debit", "credit") else "left",
            overflow="fold",
        )
    for e in numbered:
        style = "bold" if e.number == marked else ""
        for n, line in enumerate(e.entry.lines):
            account = line.account.value + (f":{line.element}" if line.element else "")
            entries.add_row(
                str(e.number) if n == 0 else "",
                e.entry.date.isoformat() if n == 0 else "",
                escape(e.entry.memo) if n == 0 else "",
                escape(account),
                escape(line.item),
                _amount(line.debit, currency, blank_zero=True),
                _amount(line.credit, currency, blank_zero=True),
                style=style,
            )
        status = "balanced" if e.balanced else "[red]NOT BALANCED[/]"
        entries.add_row(
            "",
            "",
            status,
            "total",
            "",
            _amount(e.debits, currency),
            _amount(e.credits, currency),
            style="dim",
        )
        entries.add_section()
    return entries


#: Event ids a summary's readable drill-down lists (the JSON document lists them all).
LISTED_EVENTS = 50


def summary_entry_document(found: SummaryEntry) -> dict[str, Any]:
    """A summary entry (``journal_detail`` day or period) and the events it sums, as JSON."""
    currency = found.currency
    e = NumberedEntry(found.entry_no, found.entry)
    return {
        "entry_no": found.entry_no,
        "date": found.entry.date.isoformat(),
        "memo": found.entry.memo,
        "debits": money(e.debits, currency),
        "credits": money(e.credits, currency),
        "balanced": e.balanced,
        "lines": [line_document(line, currency) for line in found.entry.lines],
        "events": list(found.events),
    }


def summary_entry_report(found: SummaryEntry) -> RenderableType:
    """A summary entry's lines and the events whose lines it sums."""
    listed = ", ".join(escape(event) for event in found.events[:LISTED_EVENTS])
    more = len(found.events) - LISTED_EVENTS
    events = Text.from_markup(
        f"[bold]Sums the lines of {len(found.events):,} events:[/] {listed}"
        + (f", and {more:,} more" if more > 0 else ""),
        emoji=False,  # an event id such as h:A:2 is no :A: shortcode
    )
    hint = Text("Drill down to one of them with `backflush explain EVENT`.", style="dim")
    entry = NumberedEntry(found.entry_no, found.entry)
    return Group(_entries_table([entry], found.currency, found.entry_no), events, hint)


# ---------------------------------------------------------------- the readable report


def drilldown_report(found: Drilldown) -> RenderableType:
    """Rich tables: event, entries, standards used (BOM and routing versions, unit standard by
    element), stock moved, and the check."""
    currency = found.currency
    event = found.event
    parts: list[RenderableType] = []
    head = Table(title=f"Event {escape(event.id)}", title_justify="left", title_style="bold")
    head.add_column("field")
    head.add_column("value")
    head.add_row("type", event.type)
    head.add_row("date", event.date.isoformat())
    for name, value in found.fields:
        if name != "date":
            head.add_row(escape(name), escape(value))
    if found.reversed_by:
        head.add_row("reversed by", escape(found.reversed_by), style="yellow")
    if found.recorded_at is not None:
        by = f" by {escape(found.recorded_by)}" if found.recorded_by else ""
        head.add_row("recorded", f"{found.recorded_at:%Y-%m-%d %H:%M:%S %Z}".strip() + by)
    if found.order is not None:
        head.add_row(
            "production order",
            f"{escape(found.order.id)}, released "
            f"{found.order.released.isoformat()} by {escape(found.order.release_event)}",
        )
    parts.append(head)

    parts.append(_entries_table(found.entries, currency, found.entry_no))

    for used in found.standards:
        order = found.order if found.order is not None and found.order.item == used.item else None
        parts.append(_standard_table(used, event.date, currency, order))

    if found.movements:
        moved = Table(title="Stock moved", title_justify="left", title_style="bold")
        for column in ("item", "on hand", "in process", "of event", "caused by"):
            moved.add_column(
                column, justify="right" if column in ("on hand", "in process") else "left"
            )
        for owner, cause, mv in found.movements:
            moved.add_row(
                escape(mv.item),
                fmt(mv.on_hand),
                fmt(mv.in_process) if mv.in_process else "",
                escape(owner),
                escape(cause),
            )
        parts.append(moved)
    if found.shortages:
        queued = Table(
            title="Backflush exceptions raised", title_justify="left", title_style="bold"
        )
        for column in ("item", "kind", "quantity", "open", "written off"):
            queued.add_column(column)
        for s in found.shortages:
            off = found.write_off(s)
            written = "" if off is None else escape(f"by {off[0]}: {off[1]}")
            queued.add_row(escape(s.item), s.kind, fmt(s.quantity), fmt(s.open), written)
        parts.append(queued)
    parts.append(_check_table(found.check, currency))
    return Group(*parts)


def _standard_table(
    used: StandardUsed, on: dt.date, currency: str, order: ProductionOrder | None = None
) -> RenderableType:
    """The standard of ``used.item`` on ``on``; with the ``order`` that made it, what the
    order consumes per unit too (its BOM as released)."""
    since = used.since.isoformat() if used.since else "the first standards"
    sets = f"; cost sets {', '.join(used.cost_sets)}" if used.cost_sets else ""
    title = f"Standard of {escape(used.item)} ({used.kind.value}) on {on.isoformat()}"
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        caption=f"standards in force since {since}{escape(sets)}",
        caption_justify="left",
    )
    table.add_column("")
    table.add_column("")
    table.add_column("quantity per", justify="right")
    table.add_column("scrap", justify="right")
    table.add_column("flush")
    if used.bom is not None:
        table.add_row(
            "[bold]BOM version[/]",
            _version(used.bom.effective_from, used.bom.effective_to),
            "",
            "",
            "",
        )
        for line in used.bom.lines:
            table.add_row(
                "",
                escape(line.component),
                fmt(line.quantity),
                fmt(line.scrap) if line.scrap else "",
                line.flush.value if line.flush else "",
            )
    if used.routing is not None:
        table.add_section()
        table.add_row(
            "[bold]routing version[/]",
            _version(used.routing.effective_from, used.routing.effective_to),
            "",
            "",
            "",
        )
        for op in used.routing.operations:
            table.add_row(
                "",
                f"{op.number} {escape(op.work_center)}",
                f"{fmt(op.run_hours)} h",
                f"yield {fmt(op.yield_)}",
                f"setup {fmt(op.setup_hours)} h",
            )
    table.add_section()
    if used.error:
        table.add_row("[red]no standard[/]", escape(used.error), "", "", "")
        return table
    table.add_row("[bold]unit standard[/]", "element", "amount", "", "")
    for element, amount in used.by_element:
        table.add_row("", escape(element or "conversion"), _unit(amount, currency), "", "")
    table.add_row("", "[bold]total[/]", f"[bold]{_unit(used.total, currency)}[/]", "", "")
    if used.requirements:
        table.add_section()
        table.add_row("[bold]consumes per unit[/]", "component", "quantity", "", "flush")
        for req in used.requirements:
            table.add_row("", escape(req.component), fmt(req.quantity), "", req.flush.value)
    if order is not None:
        table.add_section()
        released = f"its BOM as released {order.released.isoformat()}"
        table.add_row(f"[bold]order {escape(order.id)}[/]", released, "", "", "")
        table.add_row("[bold]consumes per unit[/]", "component", "quantity", "", "flush")
        for req in order_requirements(order):
            table.add_row("", escape(req.component), fmt(req.quantity), "", req.flush.value)
    return table


def _version(start: dt.date, end: dt.date | None) -> str:
    since = _date(start)
    until = _date(end)
    return f"effective {since or 'from the start'}" + (f" to {until}" if until else "")


def _check_table(check: Check, currency: str) -> RenderableType:
    style = {"agrees": "green", "differs": "bold red"}.get(check.status, "dim")
    title = f"Check: {check.status}"
    table = Table(
        title=title,
        title_justify="left",
        title_style=style,
        caption=escape(check.note),
        caption_justify="left",
    )
    if not check.amounts and not check.components:
        table.add_column("")
        table.add_row(escape(check.note))
        return table
    for column in ("account", "item", "quantity x standard", "expected", "posted", ""):
        table.add_column(
            column,
            justify="right" if column in ("expected", "posted") else "left",
            overflow="fold",
        )
    for a in check.amounts:
        account = a.account.value + (f":{a.element}" if a.element else "")
        table.add_row(
            escape(account),
            escape(a.item),
            escape("\n".join(a.basis)),
            _amount(a.expected, currency),
            _amount(a.posted, currency),
            "ok" if a.agrees else "[red]differs[/]",
        )
    if check.components:
        table.add_section()
        table.add_row("[bold]component[/]", "", "made x per unit = required", "moved", "queued", "")
        for c in check.components:
            waits = [f"{fmt(c.queued)} queued"] if c.queued else []
            waits += [f"{fmt(c.written_off)} written off"] if c.written_off else []
            table.add_row(
                escape(c.component),
                "",
                f"{fmt(c.made)} x {fmt(c.per_unit)} = {fmt(c.required)}",
                fmt(c.moved),
                ", ".join(waits),
                "ok" if c.agrees else "[red]differs[/]",
            )
    return table
