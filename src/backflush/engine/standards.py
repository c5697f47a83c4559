"""Standard costs: BOM explosion through phantoms, cost rollup, and where a unit's value sits."""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NoReturn

from backflush.domain.model import (
    Account,
    Bom,
    BomLine,
    CostSet,
    Flush,
    Item,
    Kind,
    MasterData,
    Operation,
    Policy,
    Routing,
    Settings,
)
from backflush.domain.money import ZERO, totals

ONE = Decimal(1)


class StandardError(ValueError):
    """Master data that cannot give a standard: a BOM cycle, a missing standard, ..."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """Quantity of a stocked component consumed per unit of the parent (scrap factor included)."""

    component: str
    quantity: Decimal
    flush: Flush


#: The element of purchased material in a cost breakdown.
MATERIAL = "material"

#: Decimals kept in figures per unit that a division makes (setup spread over a lot, yields):
#: they would not end otherwise.
PER_UNIT_DECIMALS = 12
_PER_UNIT = Decimal(1).scaleb(-PER_UNIT_DECIMALS)


def per_unit(numerator: Decimal, denominator: Decimal) -> Decimal:
    """``numerator / denominator``, exact when it ends, else to :data:`PER_UNIT_DECIMALS`."""
    if denominator == 1:
        return numerator
    quotient = numerator / denominator
    if quotient.as_tuple().exponent >= -PER_UNIT_DECIMALS:  # type: ignore[operator]
        return quotient
    return quotient.quantize(_PER_UNIT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class UnitCost:
    """One unit's standard. ``material`` is the value of the stocked components it consumes
    (their own conversion included); ``conversion`` is what this level adds, by element;
    ``rolled`` splits ``material`` by element: purchased material under :data:`MATERIAL`,
    and the conversion of lower levels by element."""

    material: Decimal
    conversion: tuple[tuple[str, Decimal], ...]
    requirements: tuple[Requirement, ...]
    rolled: tuple[tuple[str, Decimal], ...] = ()

    @property
    def conversion_total(self) -> Decimal:
        return sum((amount for _, amount in self.conversion), ZERO)

    @property
    def total(self) -> Decimal:
        return self.material + self.conversion_total

    def by_element(self) -> dict[str, Decimal]:
        """The whole standard by element, this level and lower levels together."""
        return totals([*self.rolled, *self.conversion])


#: Where one unit's standard value sits: (account, conversion element) -> amount per unit.
#: ``accounts_payable`` and ``conversion_allocated`` parts are not on the books yet: they are
#: credited when the unit is consumed or sold (off-book material, unallocated conversion).
Holding = tuple[tuple[Account, str, Decimal], ...]


#: A rolled-up standard cached with what a parent's rollup takes of it: its total and its
#: whole standard by element (:meth:`UnitCost.by_element`), worked out once.
_Rolled = tuple[UnitCost, Decimal, tuple[tuple[str, Decimal], ...]]


@dataclass(slots=True)
class _Structure:
    """What of an item's rollup follows from its BOM and routing versions alone, whatever the
    costs and rates: worked out once, shared by the epochs that have the same versions (a
    released cost set changes no quantity)."""

    bom: Bom | None
    routing: Routing | None
    #: Yield from each operation to the end (what a unit entering it is worth in good units).
    yields: dict[int, Decimal]
    #: The operation a line without one is consumed at: the first.
    first: int | None
    #: Per operation: hours per good unit; None when working them out fails (the rollup then
    #: works them out again, to fail where it always did).
    hours: tuple[Decimal, ...] | None
    #: Per BOM line: quantity per good unit of the parent, scrap and yields included; None
    #: where the line cannot be costed (an operation the routing does not have, ...).
    quantities: tuple[Decimal | None, ...]
    #: Requirements last exploded, with the requirements of the phantom lines they came from.
    requirements: tuple[tuple[tuple[Requirement, ...], ...], tuple[Requirement, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Inputs:
    """Material costs and work center rates in force: the book's, overlaid by the cost sets
    released by then (and a what-if set on top)."""

    materials: dict[str, Decimal]
    rates: dict[str, dict[str, Decimal]]


def _hours(operation: Operation, item: Item, yields: dict[int, Decimal]) -> Decimal:
    """Hours of ``operation`` per good unit of ``item``: setup over the lot, run over the
    yield from the operation on."""
    return per_unit(operation.setup_hours, item.lot_size) + per_unit(
        operation.run_hours, yields[operation.number]
    )


def _line_quantity(line: BomLine, yields: dict[int, Decimal], first: int | None) -> Decimal:
    """Quantity of ``line``'s component per good unit of the parent: scrap included, and
    inflated by the yields from the operation it is consumed at (KeyError: no such one)."""
    at = line.operation if line.operation is not None else first
    return per_unit(line.quantity * (1 + line.scrap), yields[at] if at is not None else ONE)


class Standards:
    """Standards of one book, computed on demand and cached per item and epoch.

    ``what_if``: a cost set applied on top on every date, to roll it up before its release."""

    def __init__(
        self, settings: Settings, master: MasterData, what_if: CostSet | None = None
    ) -> None:
        self.settings = settings
        self.master = master
        self.what_if = what_if
        #: Per epoch, per item.
        self._costs: dict[dt.date, dict[str, _Rolled]] = {}
        self._structures: dict[str, _Structure] = {}
        self._holdings: dict[tuple[str, dt.date], Holding] = {}
        self._inputs: dict[dt.date, Inputs] = {}
        self._epochs = master.change_dates()

    def policy(self, item: str) -> Policy:
        return self.master.items[item].policy or self.settings.triggers

    @property
    def sequential(self) -> bool:
        return self.settings.triggers is Policy.SEQUENTIAL

    def costed_at_completion(self, item_id: str) -> bool:
        """A backflush completion of ``item_id`` moves its full standard into finished goods:
        a finished good under a policy with a completion trigger. (A subassembly is never
        costed on its own, even when one of its components is such a finished good.)"""
        item = self.master.items[item_id]
        return item.kind is Kind.FINISHED and self.policy(item_id).costs_completions

    def epoch(self, on: dt.date) -> dt.date:
        """The latest change of standards (a BOM or routing version of any item, a cost set
        released) on or before ``on``: standards are the same for every date of one epoch."""
        position = bisect.bisect_right(self._epochs, on)
        return self._epochs[position - 1] if position else dt.date.min

    def inputs(self, on: dt.date) -> Inputs:
        return self._inputs_of(self.epoch(on))

    def _inputs_of(self, epoch: dt.date) -> Inputs:
        found = self._inputs.get(epoch)
        if found is None:
            materials = {
                i.id: i.material_cost
                for i in self.master.items.values()
                if i.material_cost is not None
            }
            rates = {w.id: dict(w.rates) for w in self.master.work_centers.values()}
            sets = [c for c in self.master.released() if c.effective and c.effective <= epoch]
            for cost_set in [*sets, *([self.what_if] if self.what_if else [])]:
                materials.update(cost_set.materials)
                for center, element, rate in cost_set.rates:
                    rates.setdefault(center, {})[element] = rate
            found = self._inputs[epoch] = Inputs(materials, rates)
        return found

    def unit_cost(self, item: str, on: dt.date) -> UnitCost:
        epoch = self.epoch(on)
        costs = self._costs.setdefault(epoch, {})
        found = costs.get(item)
        if found is None:
            found = self._roll_up(item, on, epoch, costs, ())
        return found[0]

    def _roll_up(
        self,
        item_id: str,
        on: dt.date,
        epoch: dt.date,
        costs: dict[str, _Rolled],
        path: tuple[str, ...],
    ) -> _Rolled:
        """Roll up ``item_id`` (and what of its subtree is not cached yet) into ``costs``, the
        epoch's cache; a cached cost is complete, so its subtree has no cycle. ``path``: the
        parents being rolled up, to tell a cycle."""
        cost = self._unit_cost(item_id, on, epoch, costs, path)
        found = costs[item_id] = (cost, cost.total, tuple(cost.by_element().items()))
        return found

    def _unit_cost(
        self,
        item_id: str,
        on: dt.date,
        epoch: dt.date,
        costs: dict[str, _Rolled],
        path: tuple[str, ...],
    ) -> UnitCost:
        if item_id in path:
            cycle = " -> ".join((*path[path.index(item_id) :], item_id))
            raise StandardError(f"BOM cycle: {cycle}")
        items = self.master.items
        item = items[item_id]
        inputs = self._inputs_of(epoch)
        structure = self._structure(item_id, item, on)
        conversion: list[tuple[str, Decimal]] = list(item.conversion)
        self._routing(item_id, item, on, inputs, structure, conversion)
        bom = structure.bom
        if bom is None:
            own = inputs.materials.get(item_id)
            if own is None:
                if item.kind is not Kind.MATERIAL and self.master.boms.get(item_id):
                    raise StandardError(f"item {item_id!r} has no BOM effective on {on}")
                what = (
                    "a standard_cost" if item.kind is Kind.MATERIAL else "a BOM or a material cost"
                )
                raise StandardError(f"item {item_id!r} has no standard: expected {what}")
            return UnitCost(own, tuple(totals(conversion).items()), (), ((MATERIAL, own),))
        # The hot loop of a rollup, once per BOM line. Amounts are summed by key in the order
        # they come, as totals() sums them, so every figure is the same to the last digit.
        below = (*path, item_id)
        material = ZERO
        rolled: dict[str, Decimal] = {}
        phantoms: list[tuple[Requirement, ...]] = []
        for line, quantity in zip(bom.lines, structure.quantities, strict=True):
            if quantity is None:
                self._refuse(item_id, on, structure, line)
            component_id = line.component
            component = items[component_id]
            found = costs.get(component_id)
            if found is None:
                found = self._roll_up(component_id, on, epoch, costs, below)
            sub, sub_total, sub_elements = found
            if component.kind is Kind.PHANTOM:  # never stocked: its lines flush straight through
                material += quantity * sub.material
                for element, amount in sub.rolled:
                    rolled[element] = rolled.get(element, ZERO) + quantity * amount
                conversion.extend((el, quantity * amount) for el, amount in sub.conversion)
                phantoms.append(sub.requirements)
            else:
                material += quantity * sub_total
                for element, amount in sub_elements:
                    rolled[element] = rolled.get(element, ZERO) + quantity * amount
        return UnitCost(
            material,
            tuple(totals(conversion).items()),
            self._requirements(structure, bom, phantoms),
            tuple(rolled.items()),
        )

    def _structure(self, item_id: str, item: Item, on: dt.date) -> _Structure:
        """The BOM and routing versions of ``item_id`` effective on ``on``, and what follows
        from them alone; cached while the versions stay the same."""
        bom = self.master.bom_on(item_id, on) if item.kind is not Kind.MATERIAL else None
        routing = self.master.routing_on(item_id, on)
        found = self._structures.get(item_id)
        if found is not None and found.bom is bom and found.routing is routing:
            return found
        yields: dict[int, Decimal] = {}
        hours: tuple[Decimal, ...] | None = ()
        if routing is not None:
            remaining = ONE
            for operation in reversed(routing.operations):
                remaining *= operation.yield_
                yields[operation.number] = remaining
            try:
                hours = tuple(_hours(op, item, yields) for op in routing.operations)
            except Exception:  # told by the rollup, after what it checks first
                hours = None
        first = min(yields) if yields else None
        quantities: list[Decimal | None] = []
        for line in bom.lines if bom is not None else ():
            try:
                quantities.append(_line_quantity(line, yields, first))
            except Exception:  # told by the rollup, when it reaches the line
                quantities.append(None)
        found = self._structures[item_id] = _Structure(
            bom, routing, yields, first, hours, tuple(quantities)
        )
        return found

    def _routing(
        self,
        item_id: str,
        item: Item,
        on: dt.date,
        inputs: Inputs,
        structure: _Structure,
        conversion: list[tuple[str, Decimal]],
    ) -> None:
        """Add the routing's conversion per good unit to ``conversion``."""
        if structure.routing is None:
            return
        for n, operation in enumerate(structure.routing.operations):
            rates = inputs.rates.get(operation.work_center)
            if not rates:
                raise StandardError(
                    f"work center {operation.work_center!r} has no cost rate effective on {on} "
                    f"(routing of {item_id!r}, operation {operation.number})"
                )
            hours = (
                structure.hours[n]
                if structure.hours is not None
                else _hours(operation, item, structure.yields)
            )
            conversion.extend((element, hours * rate) for element, rate in rates.items())

    @staticmethod
    def _refuse(item_id: str, on: dt.date, structure: _Structure, line: BomLine) -> NoReturn:
        """Raise what costing ``line`` raises (its quantity could not be worked out)."""
        at = line.operation if line.operation is not None else structure.first
        if at is not None and at not in structure.yields:
            raise StandardError(
                f"BOM of {item_id!r}: component {line.component!r} is consumed at "
                f"operation {at}, which the routing effective on {on} does not have"
            )
        _line_quantity(line, structure.yields, structure.first)
        raise AssertionError(f"the quantity of a line of the BOM of {item_id!r} failed once")

    def _requirements(
        self, structure: _Structure, bom: Bom, phantoms: list[tuple[Requirement, ...]]
    ) -> tuple[Requirement, ...]:
        """The stocked components a unit consumes: the BOM's lines, phantoms exploded (their
        requirements ``phantoms``, in line order). The same as last time when the phantoms'
        are the same (a cost set changes none)."""
        cached = structure.requirements
        if (
            cached is not None
            and len(cached[0]) == len(phantoms)
            and all(a is b for a, b in zip(cached[0], phantoms, strict=True))
        ):
            return cached[1]
        items = self.master.items
        needs: dict[tuple[str, Flush], Decimal] = {}
        exploded = iter(phantoms)
        for line, quantity in zip(bom.lines, structure.quantities, strict=True):
            assert quantity is not None  # the rollup refused the line
            component = items[line.component]
            if component.kind is Kind.PHANTOM:
                for req in next(exploded):
                    need = (req.component, req.flush)
                    needs[need] = needs.get(need, ZERO) + quantity * req.quantity
            else:
                need = (line.component, line.flush or component.flush)
                needs[need] = needs.get(need, ZERO) + quantity
        requirements = tuple(Requirement(c, q, f) for (c, f), q in needs.items())
        structure.requirements = (tuple(phantoms), requirements)
        return requirements

    def holding(self, item_id: str, on: dt.date) -> Holding:
        epoch = self.epoch(on)
        found = self._holdings.get((item_id, epoch))
        if found is None:
            found = self._holding(item_id, on, epoch)
        return found

    def _holding(self, item_id: str, on: dt.date, epoch: dt.date) -> Holding:
        """Work out the holding of ``item_id`` and cache it."""
        found = self._holdings[(item_id, epoch)] = self._where(item_id, on, epoch)
        return found

    def _where(self, item_id: str, on: dt.date, epoch: dt.date) -> Holding:
        item = self.master.items[item_id]
        cost = self.unit_cost(item_id, on)
        policy = self.policy(item_id)
        if item.kind is Kind.MATERIAL:
            if self.sequential:
                return ((Account.MATERIALS, "", cost.total),)
            account = Account.RAW_IN_PROCESS if policy.costs_purchases else Account.ACCOUNTS_PAYABLE
            return ((account, "", cost.total),)
        if self.sequential:
            account = Account.FINISHED_GOODS if item.kind is Kind.FINISHED else Account.MATERIALS
            return ((account, "", cost.total),)
        if self.costed_at_completion(item_id):
            return ((Account.FINISHED_GOODS, "", cost.total),)
        # A subassembly, or a good costed only at sale: its value stays where its parts sit,
        # and its conversion waits to be allocated. Parts are summed by (account, element) in
        # the order they come, as totals() would.
        parts: dict[tuple[Account, str], Decimal] = {}
        if not cost.requirements:  # no BOM: a material standard given directly
            parts[(Account.RAW_IN_PROCESS, "")] = ZERO + cost.material
        else:
            holdings = self._holdings
            for req in cost.requirements:
                held = holdings.get((req.component, epoch))
                if held is None:
                    held = self._holding(req.component, on, epoch)
                quantity = req.quantity
                for account, element, amount in held:
                    key = (account, element)
                    parts[key] = parts.get(key, ZERO) + quantity * amount
        for element, amount in cost.conversion:
            key = (Account.CONVERSION_ALLOCATED, element)
            parts[key] = parts.get(key, ZERO) + amount
        return tuple((account, element, amount) for (account, element), amount in parts.items())


def _as_of(on: dt.date) -> str:
    return "" if on == dt.date.min else f" effective on {on}"


def without_conversion(holding: Holding) -> Holding:
    """A holding less its unallocated conversion: what scrap, counts and scrapped assemblies
    take to the usage variance. Off-book material is recognised then (credited to payables);
    conversion never allocated to a lost unit shows up as under-allocation instead."""
    return tuple(part for part in holding if part[0] is not Account.CONVERSION_ALLOCATED)
