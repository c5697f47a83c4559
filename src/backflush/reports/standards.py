"""Standard cost reports: pick lists, indented BOMs, where-used, cost rollups and the comparison
of two sets of standards (with the revaluation a release would post).

Pure functions of master data and :class:`~backflush.engine.standards.Standards`: no I/O,
``Decimal`` throughout, every figure unrounded unless it is money a journal would post
(revaluations, rounded per item to the currency's minor unit). The JSON documents and Rich
tables the command line prints are here too, also pure.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table

from backflush.book import on_book_change
from backflush.domain.model import BomLine, Flush, Kind, MasterData, ProductionOrder
from backflush.domain.money import ZERO, fmt, round_money
from backflush.engine.standards import (
    MATERIAL,
    StandardError,
    Standards,
    UnitCost,
    line_quantity,
    operation_hours,
    operation_yields,
)
from backflush.reports.document import money

ONE = Decimal(1)
HUNDRED = Decimal(100)
#: Percentages (shares, changes) are shown to two decimals, half-even.
PERCENT = Decimal("0.01")

#: Pick list groups, in this order.
FLUSH_ORDER = (Flush.BACKWARD, Flush.FORWARD, Flush.MANUAL)
_KIND_ORDER = {Kind.FINISHED: 0, Kind.SUBASSEMBLY: 1, Kind.PHANTOM: 2, Kind.MATERIAL: 3}


def require_item(master: MasterData, item: str) -> None:
    """StandardError naming the unknown ``item`` (with the nearest known ids)."""
    if item in master.items:
        return
    near = difflib.get_close_matches(item, list(master.items), n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise StandardError(f"unknown item {item!r}{hint}")


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """``part`` as a percentage of ``whole`` to two decimals (None when ``whole`` is zero)."""
    if not whole:
        return None
    return (part * HUNDRED / whole).quantize(PERCENT, rounding=ROUND_HALF_EVEN)


# ---------------------------------------------------------------- pick list


@dataclass(frozen=True, slots=True)
class PickLine:
    component: str
    kind: Kind
    uom: str
    flush: Flush
    #: Per unit of the item made, scrap and yield included, exploded through phantoms.
    per_unit: Decimal
    quantity: Decimal
    unit_cost: Decimal

    @property
    def value(self) -> Decimal:
        return self.quantity * self.unit_cost


@dataclass(frozen=True, slots=True)
class PickList:
    item: str
    quantity: Decimal
    on: dt.date
    #: Lines by flush method, in :data:`FLUSH_ORDER`; each group in BOM order.
    groups: tuple[tuple[Flush, tuple[PickLine, ...]], ...]

    @property
    def lines(self) -> tuple[PickLine, ...]:
        return tuple(line for _, lines in self.groups for line in lines)

    def value(self, flush: Flush | None = None) -> Decimal:
        """Standard value of the lines (of one flush method)."""
        return sum(
            (ln.value for ln in self.lines if flush is None or ln.flush is flush), start=ZERO
        )


def pick_list(standards: Standards, item: str, quantity: Decimal, on: dt.date) -> PickList:
    """Every stocked component to pick for ``quantity`` units of ``item``: the BOM effective on
    ``on`` exploded through phantoms, scrap factors and operation yields included, grouped by
    flush method, at the components' standard unit costs."""
    master = standards.master
    require_item(master, item)
    cost = standards.unit_cost(item, on)
    found: dict[Flush, list[PickLine]] = {}
    for req in cost.requirements:
        component = master.items[req.component]
        found.setdefault(req.flush, []).append(
            PickLine(
                req.component,
                component.kind,
                component.uom,
                req.flush,
                req.quantity,
                quantity * req.quantity,
                standards.unit_cost(req.component, on).total,
            )
        )
    groups = tuple((f, tuple(found[f])) for f in FLUSH_ORDER if f in found)
    return PickList(item, quantity, on, groups)


def order_pick_list(standards: Standards, order: ProductionOrder, on: dt.date) -> PickList:
    """What is still to pick for a production order, from the BOM it was released with:
    ``forward`` and ``manual`` lines for the order quantity less what was released or issued
    to it; ``backward`` lines for the units not yet reported (backflushed from stock then)."""
    master = standards.master
    issued = dict(order.issued)
    remaining = max(order.quantity - order.completed - order.scrapped, ZERO)
    found: dict[Flush, list[PickLine]] = {}
    for component_id, each, flush in order.requirements:
        component = master.items[component_id]
        if flush is Flush.BACKWARD:
            quantity = remaining * each
        else:
            quantity = max(order.quantity * each - issued.get(component_id, ZERO), ZERO)
        found.setdefault(flush, []).append(
            PickLine(
                component_id,
                component.kind,
                component.uom,
                flush,
                each,
                quantity,
                standards.unit_cost(component_id, on).total,
            )
        )
    groups = tuple((f, tuple(found[f])) for f in FLUSH_ORDER if f in found)
    return PickList(order.item, remaining, on, groups)


# ---------------------------------------------------------------- indented BOM


@dataclass(frozen=True, slots=True)
class BomRow:
    #: 1: a line of the top item's BOM; 2: a line of that component's BOM; ...
    depth: int
    parent: str
    component: str
    kind: Kind
    uom: str
    #: The line as written: quantity per parent unit, scrap factor, operation (None: first).
    quantity: Decimal
    scrap: Decimal
    operation: int | None
    flush: Flush
    #: Effective date of the parent's BOM version the line is on (None: from the beginning).
    version: dt.date | None
    #: Quantity per parent unit with scrap and the parent's operation yields.
    per_parent: Decimal
    #: Quantity per unit of the top item (the product of ``per_parent`` down the path).
    per_top: Decimal
    #: The component's standard unit cost (a phantom's: what its lines and routing add).
    unit_cost: Decimal
    #: Share of the parent's standard unit cost, in percent (None when the parent costs 0).
    share: Decimal | None

    @property
    def phantom(self) -> bool:
        return self.kind is Kind.PHANTOM

    @property
    def extended(self) -> Decimal:
        """Contribution to one unit of the top item."""
        return self.per_top * self.unit_cost


@dataclass(frozen=True, slots=True)
class OperationRow:
    #: The routed item (the top item at depth 0, a component at its row's depth).
    item: str
    depth: int
    operation: int
    work_center: str
    setup_hours: Decimal
    lot_size: Decimal
    run_hours: Decimal
    yield_: Decimal
    #: Hours per good unit of ``item``: setup / lot size + run / yield from here to the end.
    hours: Decimal
    #: Cost per good unit of ``item`` by element (hours x the rate in force).
    costs: tuple[tuple[str, Decimal], ...]
    #: Units of ``item`` per unit of the top item.
    per_top: Decimal

    @property
    def cost(self) -> Decimal:
        return sum((amount for _, amount in self.costs), ZERO)

    @property
    def extended(self) -> Decimal:
        """Contribution to one unit of the top item."""
        return self.per_top * self.cost


@dataclass(frozen=True, slots=True)
class ElementSplit:
    """One element of a unit standard: what this level adds and what lower levels bring."""

    element: str
    this_level: Decimal
    lower_level: Decimal

    @property
    def total(self) -> Decimal:
        return self.this_level + self.lower_level


@dataclass(frozen=True, slots=True)
class IndentedBom:
    item: str
    kind: Kind
    on: dt.date
    #: Effective date of the top item's BOM version (None: from the beginning).
    version: dt.date | None
    unit_cost: UnitCost
    rows: tuple[BomRow, ...]
    operations: tuple[OperationRow, ...]
    #: By element (purchased ``material`` first): adds up exactly to :attr:`total`.
    summary: tuple[ElementSplit, ...]

    @property
    def total(self) -> Decimal:
        return self.unit_cost.total


def _version(master: MasterData, item: str, on: dt.date) -> dt.date | None:
    bom = master.bom_on(item, on)
    return bom.effective_from if bom is not None and bom.effective_from != dt.date.min else None


def indented_bom(standards: Standards, item: str, on: dt.date) -> IndentedBom:
    """The multi-level BOM of ``item`` effective on ``on`` with each component's contribution
    to one unit's standard, the routing operations of every level, and the standard split by
    element into this level and lower levels."""
    master = standards.master
    require_item(master, item)
    top = standards.unit_cost(item, on)  # refuses cycles and missing standards first
    rows: list[BomRow] = []
    operations: list[OperationRow] = []
    _operations(standards, item, on, 0, ONE, operations)
    _explode(standards, item, on, 1, ONE, rows, operations)
    this_level, lower = dict(top.conversion), dict(top.rolled)
    elements = list(dict.fromkeys([*lower, *this_level]))
    if MATERIAL in elements:
        elements.remove(MATERIAL)
        elements.insert(0, MATERIAL)
    summary = tuple(ElementSplit(e, this_level.get(e, ZERO), lower.get(e, ZERO)) for e in elements)
    return IndentedBom(
        item,
        master.items[item].kind,
        on,
        _version(master, item, on),
        top,
        tuple(rows),
        tuple(operations),
        summary,
    )


def _explode(
    standards: Standards,
    parent: str,
    on: dt.date,
    depth: int,
    per_top: Decimal,
    rows: list[BomRow],
    operations: list[OperationRow],
) -> None:
    master = standards.master
    if master.items[parent].kind is Kind.MATERIAL:
        return
    bom = master.bom_on(parent, on)
    if bom is None:
        return
    yields = operation_yields(master.routing_on(parent, on))
    parent_total = standards.unit_cost(parent, on).total
    version = bom.effective_from if bom.effective_from != dt.date.min else None
    for line in bom.lines:
        component = master.items[line.component]
        per_parent = line_quantity(line, yields)
        unit = standards.unit_cost(line.component, on).total
        below = per_top * per_parent
        rows.append(
            BomRow(
                depth,
                parent,
                line.component,
                component.kind,
                component.uom,
                line.quantity,
                line.scrap,
                line.operation,
                line.flush or component.flush,
                version,
                per_parent,
                below,
                unit,
                percent(per_parent * unit, parent_total),
            )
        )
        _operations(standards, line.component, on, depth, below, operations)
        _explode(standards, line.component, on, depth + 1, below, rows, operations)


def _operations(
    standards: Standards,
    item_id: str,
    on: dt.date,
    depth: int,
    per_top: Decimal,
    found: list[OperationRow],
) -> None:
    routing = standards.master.routing_on(item_id, on)
    if routing is None:
        return
    item = standards.master.items[item_id]
    rates = standards.inputs(on).rates
    yields = operation_yields(routing)
    for op in routing.operations:
        hours = operation_hours(op, item, yields)
        costs = tuple(
            (element, hours * rate) for element, rate in rates.get(op.work_center, {}).items()
        )
        found.append(
            OperationRow(
                item_id,
                depth,
                op.number,
                op.work_center,
                op.setup_hours,
                item.lot_size,
                op.run_hours,
                op.yield_,
                hours,
                costs,
                per_top,
            )
        )


# ---------------------------------------------------------------- where-used


@dataclass(frozen=True, slots=True)
class WhereUsedRow:
    #: 1: ``parent`` has the component on its BOM; 2: it uses a parent of the component; ...
    level: int
    parent: str
    kind: Kind
    #: The item on the parent's BOM line (the component itself at level 1).
    child: str
    #: The line as written.
    quantity: Decimal
    scrap: Decimal
    operation: int | None
    #: ``child`` per unit of ``parent``, with scrap and the parent's operation yields.
    per_parent: Decimal
    #: The component per unit of ``parent`` along this path.
    per_unit: Decimal
    #: From ``parent`` down to the component.
    path: tuple[str, ...]


def where_used(master: MasterData, component: str, on: dt.date) -> tuple[WhereUsedRow, ...]:
    """Every item that uses ``component`` on ``on``, directly or through other levels
    (phantoms included), one row per path, depth first, parents by id."""
    require_item(master, component)
    users: dict[str, list[tuple[str, BomLine, Decimal]]] = {}
    for parent in sorted(master.boms):
        if master.items[parent].kind is Kind.MATERIAL:
            continue
        bom = master.bom_on(parent, on)
        if bom is None:
            continue
        yields = operation_yields(master.routing_on(parent, on))
        for line in bom.lines:
            per_parent = line_quantity(line, yields)
            users.setdefault(line.component, []).append((parent, line, per_parent))
    rows: list[WhereUsedRow] = []

    def walk(child: str, per_child: Decimal, path: tuple[str, ...], level: int) -> None:
        for parent, line, per_parent in users.get(child, ()):
            if parent in path:  # a cycle: the standards refuse it; the report stops there
                continue
            through = (parent, *path)
            rows.append(
                WhereUsedRow(
                    level,
                    parent,
                    master.items[parent].kind,
                    child,
                    line.quantity,
                    line.scrap,
                    line.operation,
                    per_parent,
                    per_parent * per_child,
                    through,
                )
            )
            walk(parent, per_parent * per_child, through, level + 1)

    walk(component, ONE, (component,), 1)
    return tuple(rows)


# ---------------------------------------------------------------- rollup


@dataclass(frozen=True, slots=True)
class RollupRow:
    item: str
    kind: Kind
    uom: str
    #: Purchased material content, all levels.
    material: Decimal
    #: Conversion this level adds (its routing, its phantoms' routings, given conversion).
    conversion: tuple[tuple[str, Decimal], ...]
    #: Conversion of lower (stocked) levels, by element.
    lower: tuple[tuple[str, Decimal], ...]
    total: Decimal

    @property
    def conversion_total(self) -> Decimal:
        return sum((amount for _, amount in self.conversion), ZERO)

    @property
    def lower_total(self) -> Decimal:
        return sum((amount for _, amount in self.lower), ZERO)


def _ordered_items(master: MasterData, items: Iterable[str] | None) -> list[str]:
    if items is None:
        return sorted(master.items, key=lambda i: (_KIND_ORDER[master.items[i].kind], i))
    chosen = list(dict.fromkeys(items))
    for item in chosen:
        require_item(master, item)
    return chosen


def rollup(
    standards: Standards, on: dt.date, items: Iterable[str] | None = None
) -> tuple[RollupRow, ...]:
    """The standard of each item (default: every item, finished goods first) on ``on``:
    purchased material, conversion this level by element, conversion of lower levels by
    element; material + conversion + lower = total, exactly."""
    master = standards.master
    rows = []
    for item_id in _ordered_items(master, items):
        item = master.items[item_id]
        cost = standards.unit_cost(item_id, on)
        rolled = dict(cost.rolled)
        rows.append(
            RollupRow(
                item_id,
                item.kind,
                item.uom,
                rolled.pop(MATERIAL, ZERO),
                cost.conversion,
                tuple(rolled.items()),
                cost.total,
            )
        )
    return tuple(rows)


# ---------------------------------------------------------------- compare


@dataclass(frozen=True, slots=True)
class CompareRow:
    item: str
    kind: Kind
    a: Decimal
    b: Decimal
    #: Change in percent of ``a`` (None when ``a`` is zero).
    percent: Decimal | None
    #: Quantity held (None: no quantities given).
    quantity: Decimal | None = None
    #: quantity x difference, rounded to the currency: the change of the stock's value at
    #: standard.
    revaluation: Decimal | None = None
    #: What the revaluation entry moves on the books: the part of the change held in
    #: inventory accounts, each account rounded as a journal line is. Value held off the books
    #: (material not yet recognised, a subassembly's unallocated conversion) changes too,
    #: but is not posted.
    posted: Decimal | None = None

    @property
    def difference(self) -> Decimal:
        return self.b - self.a


@dataclass(frozen=True, slots=True)
class Comparison:
    on: dt.date
    a_name: str
    b_name: str
    currency: str
    rows: tuple[CompareRow, ...]
    #: Quantities were given: rows carry the revaluation.
    with_quantities: bool

    @property
    def revaluation(self) -> Decimal:
        return sum((r.revaluation or ZERO for r in self.rows), ZERO)

    @property
    def posted(self) -> Decimal:
        return sum((r.posted or ZERO for r in self.rows), ZERO)


def compare(
    a: Standards,
    b: Standards,
    on: dt.date,
    on_hand: Mapping[str, Decimal] | None = None,
    *,
    all_items: bool = False,
    a_name: str = "a",
    b_name: str = "b",
) -> Comparison:
    """Item by item, the standard on ``on`` under ``a`` and under ``b``; only items whose
    standard differs unless ``all_items``. With ``on_hand`` quantities, the revaluation that
    replacing ``a`` by ``b`` posts: quantity x difference, rounded per item to the currency of
    ``b``'s settings (and the on-books part, as the book's revaluation entry moves it)."""
    settings = b.settings
    rows = []
    for item_id in _ordered_items(a.master, None):
        item = a.master.items[item_id]
        old = a.unit_cost(item_id, on).total
        new = b.unit_cost(item_id, on).total
        if old == new and not all_items:
            continue
        quantity = revaluation = posted = None
        if on_hand is not None:
            quantity = on_hand.get(item_id, ZERO)
            revaluation = round_money(quantity * (new - old), settings.currency, settings.rounding)
            posted = ZERO
            # A periodic book (count, cogs-first) revalues nothing between closes.
            if quantity and item.kind is not Kind.PHANTOM and not settings.triggers.periodic:
                old_value, new_value = (
                    {(acc, el): quantity * amount for acc, el, amount in std.holding(item_id, on)}
                    for std in (a, b)
                )
                posted = sum(
                    (
                        round_money(delta, settings.currency, settings.rounding)
                        for delta in on_book_change(old_value, new_value).values()
                    ),
                    ZERO,
                )
        rows.append(
            CompareRow(
                item_id,
                item.kind,
                old,
                new,
                percent(new - old, old),
                quantity,
                revaluation,
                posted,
            )
        )
    return Comparison(on, a_name, b_name, settings.currency, tuple(rows), on_hand is not None)


# ---------------------------------------------------------------- JSON documents


def _opt(value: Decimal | None) -> str | None:
    return None if value is None else fmt(value)


def _day(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def pick_list_document(found: PickList) -> dict[str, Any]:
    return {
        "item": found.item,
        "quantity": fmt(found.quantity),
        "date": found.on.isoformat(),
        "groups": [
            {
                "flush": flush.value,
                "lines": [
                    {
                        "component": ln.component,
                        "kind": ln.kind.value,
                        "uom": ln.uom,
                        "per_unit": fmt(ln.per_unit),
                        "quantity": fmt(ln.quantity),
                        "unit_cost": fmt(ln.unit_cost),
                        "value": fmt(ln.value),
                    }
                    for ln in lines
                ],
                "value": fmt(found.value(flush)),
            }
            for flush, lines in found.groups
        ],
        "value": fmt(found.value()),
    }


def indented_bom_document(found: IndentedBom) -> dict[str, Any]:
    cost = found.unit_cost
    return {
        "item": found.item,
        "kind": found.kind.value,
        "date": found.on.isoformat(),
        "version": _day(found.version),
        "lines": [
            {
                "depth": r.depth,
                "parent": r.parent,
                "component": r.component,
                "kind": r.kind.value,
                "phantom": r.phantom,
                "uom": r.uom,
                "quantity": fmt(r.quantity),
                "scrap": fmt(r.scrap),
                "operation": r.operation,
                "flush": r.flush.value,
                "version": _day(r.version),
                "per_parent": fmt(r.per_parent),
                "per_top": fmt(r.per_top),
                "unit_cost": fmt(r.unit_cost),
                "extended": fmt(r.extended),
                "share": _opt(r.share),
            }
            for r in found.rows
        ],
        "operations": [
            {
                "item": op.item,
                "depth": op.depth,
                "operation": op.operation,
                "work_center": op.work_center,
                "setup_hours": fmt(op.setup_hours),
                "lot_size": fmt(op.lot_size),
                "run_hours": fmt(op.run_hours),
                "yield": fmt(op.yield_),
                "hours": fmt(op.hours),
                "costs": {e: fmt(a) for e, a in op.costs},
                "cost": fmt(op.cost),
                "per_top": fmt(op.per_top),
                "extended": fmt(op.extended),
            }
            for op in found.operations
        ],
        "summary": {
            s.element: {
                "this_level": fmt(s.this_level),
                "lower_level": fmt(s.lower_level),
                "total": fmt(s.total),
            }
            for s in found.summary
        },
        "material": fmt(cost.material),
        "conversion": fmt(cost.conversion_total),
        "total": fmt(found.total),
    }


def where_used_document(component: str, on: dt.date, rows: Iterable[WhereUsedRow]) -> Any:
    return {
        "component": component,
        "date": on.isoformat(),
        "parents": [
            {
                "level": r.level,
                "parent": r.parent,
                "kind": r.kind.value,
                "child": r.child,
                "quantity": fmt(r.quantity),
                "scrap": fmt(r.scrap),
                "operation": r.operation,
                "per_parent": fmt(r.per_parent),
                "per_unit": fmt(r.per_unit),
                "path": list(r.path),
            }
            for r in rows
        ],
    }


def rollup_document(on: dt.date, rows: Iterable[RollupRow], cost_set: str | None) -> Any:
    return {
        "date": on.isoformat(),
        "cost_set": cost_set,
        "items": [
            {
                "item": r.item,
                "kind": r.kind.value,
                "uom": r.uom,
                "material": fmt(r.material),
                "conversion": {e: fmt(a) for e, a in r.conversion},
                "lower_conversion": {e: fmt(a) for e, a in r.lower},
                "total": fmt(r.total),
            }
            for r in rows
        ],
    }


def comparison_document(found: Comparison) -> dict[str, Any]:
    currency = found.currency
    document: dict[str, Any] = {
        "date": found.on.isoformat(),
        "a": found.a_name,
        "b": found.b_name,
        "items": [],
    }
    for r in found.rows:
        row: dict[str, Any] = {
            "item": r.item,
            "kind": r.kind.value,
            "a": fmt(r.a),
            "b": fmt(r.b),
            "difference": fmt(r.difference),
            "percent": _opt(r.percent),
        }
        if found.with_quantities:
            row["quantity"] = fmt(r.quantity or ZERO)
            row["revaluation"] = money(r.revaluation or ZERO, currency)
            row["posted"] = money(r.posted or ZERO, currency)
        document["items"].append(row)
    if found.with_quantities:
        document["revaluation"] = money(found.revaluation, currency)
        document["posted"] = money(found.posted, currency)
    return document


# ---------------------------------------------------------------- Rich tables


def _table(title: str, *columns: str, numeric: Iterable[str] = ()) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    right = set(numeric)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def _unit(value: Decimal, currency: str) -> str:
    """A unit figure: the currency's minor units, more where it has them."""
    shown = Decimal(money(value, currency))
    return f"{value if value != shown else shown:,}"


def _amount(value: Decimal, currency: str) -> str:
    return f"{Decimal(money(value, currency)):,}"


def _share(value: Decimal | None) -> str:
    return "" if value is None else f"{value}%"


def _qty(value: Decimal) -> str:
    return f"{Decimal(fmt(value)):,}"


def pick_list_table(found: PickList, currency: str) -> Table:
    title = (
        f"Pick list: {fmt(found.quantity)} {escape(found.item)} "
        f"(standards of {found.on.isoformat()})"
    )
    numeric = ("per unit", "quantity", "standard", "value")
    table = _table(title, "flush", "component", "kind", "uom", *numeric, numeric=numeric)
    for flush, lines in found.groups:
        for n, ln in enumerate(lines):
            table.add_row(
                flush.value if n == 0 else "",
                escape(ln.component),
                ln.kind.value,
                escape(ln.uom),
                _qty(ln.per_unit),
                _qty(ln.quantity),
                _unit(ln.unit_cost, currency),
                _amount(ln.value, currency),
            )
        table.add_row("", f"{flush.value} total", "", "", "", "", "",
                      _amount(found.value(flush), currency), style="italic")  # fmt: skip
        table.add_section()
    table.add_row("total", "", "", "", "", "", "", _amount(found.value(), currency), style="bold")
    return table


def indented_bom_table(found: IndentedBom, currency: str) -> RenderableType:
    version = f", BOM version of {found.version}" if found.version else ""
    numeric = ("qty", "scrap", "op", "per parent", "per top", "standard", "extended", "share")
    versions = any(r.version for r in found.rows)  # a column only where a BOM has versions
    lines = _table(
        f"Indented BOM of {escape(found.item)} ({found.kind.value}), standards of "
        f"{found.on.isoformat()}{version}",
        "component",
        "uom",
        *numeric[:3],
        "flush",
        *(["version"] if versions else []),
        *numeric[3:],
        numeric=numeric,
    )
    lines.columns[0].no_wrap = True
    for r in found.rows:
        name = "  " * (r.depth - 1) + escape(r.component) + (" (phantom)" if r.phantom else "")
        lines.add_row(
            name,
            escape(r.uom),
            _qty(r.quantity),
            fmt(r.scrap) if r.scrap else "",
            str(r.operation) if r.operation is not None else "",
            r.flush.value,
            *([_day(r.version) or ""] if versions else []),
            _qty(r.per_parent),
            _qty(r.per_top),
            _unit(r.unit_cost, currency),
            _unit(r.extended, currency),
            _share(r.share),
            style="italic" if r.phantom else None,
        )
    numeric_ops = ("op", "setup h", "lot", "run h", "yield", "hours", "cost", "per top",
                   "extended")  # fmt: skip
    elements = list(dict.fromkeys(e for op in found.operations for e, _ in op.costs))
    operations = _table(
        "Routing operations (per good unit of the routed item)",
        "level",
        "item",
        numeric_ops[0],
        "work center",
        *numeric_ops[1:6],
        *elements,
        *numeric_ops[6:],
        numeric=(*numeric_ops, *elements),
    )
    for op in found.operations:
        by_element = dict(op.costs)
        operations.add_row(
            str(op.depth),
            escape(op.item),
            str(op.operation),
            escape(op.work_center),
            _qty(op.setup_hours),
            _qty(op.lot_size),
            _qty(op.run_hours),
            _qty(op.yield_),
            _qty(op.hours),
            *(_unit(by_element.get(e, ZERO), currency) for e in elements),
            _unit(op.cost, currency),
            _qty(op.per_top),
            _unit(op.extended, currency),
        )
    summary = _table(
        f"Standard of one {escape(found.item)} by element",
        "element",
        "this level",
        "lower levels",
        "total",
        numeric=("this level", "lower levels", "total"),
    )
    for s in found.summary:
        summary.add_row(
            escape(s.element or "conversion"),
            _unit(s.this_level, currency),
            _unit(s.lower_level, currency),
            _unit(s.total, currency),
        )
    summary.add_section()
    cost = found.unit_cost
    summary.add_row(
        "total",
        _unit(cost.conversion_total, currency),
        _unit(cost.material, currency),
        _unit(found.total, currency),
        style="bold",
    )
    parts: list[RenderableType] = [lines if found.rows else f"{escape(found.item)}: no BOM"]
    if found.operations:
        parts.append(operations)
    parts.append(summary)
    return Group(*parts)


def where_used_table(component: str, on: dt.date, rows: Iterable[WhereUsedRow]) -> Table:
    numeric = ("qty", "scrap", "op", "per parent", "per unit")
    table = _table(
        f"Where {escape(component)} is used (BOMs of {on.isoformat()})",
        "level",
        "parent",
        "kind",
        "uses",
        *numeric,
        "path",
        numeric=numeric,
    )
    for r in rows:
        table.add_row(
            str(r.level),
            "  " * (r.level - 1) + escape(r.parent),
            r.kind.value,
            escape(r.child),
            _qty(r.quantity),
            fmt(r.scrap) if r.scrap else "",
            str(r.operation) if r.operation is not None else "",
            _qty(r.per_parent),
            _qty(r.per_unit),
            escape(" > ".join(r.path)),
        )
    return table


def rollup_table(
    on: dt.date, rows: Iterable[RollupRow], currency: str, cost_set: str | None
) -> Table:
    rows = list(rows)
    this = list(dict.fromkeys(e for r in rows for e, _ in r.conversion))
    lower = list(dict.fromkeys(e for r in rows for e, _ in r.lower))
    columns = [
        "material",
        *(f"{e or 'conversion'} (this level)" for e in this),
        *(f"{e or 'conversion'} (lower)" for e in lower),
        "total",
    ]
    what = f"cost set {escape(cost_set)} on " if cost_set else ""
    table = _table(
        f"Cost rollup ({what}standards of {on.isoformat()})",
        "item",
        "kind",
        "uom",
        *(escape(c) for c in columns),
        numeric=[escape(c) for c in columns],
    )
    for r in rows:
        mine, below = dict(r.conversion), dict(r.lower)
        table.add_row(
            escape(r.item),
            r.kind.value,
            escape(r.uom),
            _unit(r.material, currency),
            *(_unit(mine[e], currency) if e in mine else "" for e in this),
            *(_unit(below[e], currency) if e in below else "" for e in lower),
            _unit(r.total, currency),
        )
    return table


def comparison_table(found: Comparison) -> Table:
    currency = found.currency
    numeric = [escape(found.a_name), escape(found.b_name), "difference", "%"]
    if found.with_quantities:
        numeric += ["quantity", "revaluation", "posted"]
    table = _table(
        f"Standards on {found.on.isoformat()}: {escape(found.a_name)} → {escape(found.b_name)}",
        "item",
        "kind",
        *numeric,
        numeric=numeric,
    )
    for r in found.rows:
        cells = [
            escape(r.item),
            r.kind.value,
            _unit(r.a, currency),
            _unit(r.b, currency),
            _unit(r.difference, currency),
            _share(r.percent),
        ]
        if found.with_quantities:
            cells += [
                _qty(r.quantity or ZERO),
                _amount(r.revaluation or ZERO, currency),
                _amount(r.posted or ZERO, currency),
            ]
        table.add_row(*cells)
    if found.with_quantities:
        table.add_section()
        table.add_row(
            "total",
            "",
            "",
            "",
            "",
            "",
            "",
            _amount(found.revaluation, currency),
            _amount(found.posted, currency),
            style="bold",
        )
    return table
