"""Standard costs: BOM explosion through phantoms, cost rollup, and where a unit's value sits."""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from backflush.domain.model import (
    Account,
    CostSet,
    Flush,
    Kind,
    MasterData,
    Policy,
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


@dataclass(frozen=True, slots=True)
class Inputs:
    """Material costs and work center rates in force: the book's, overlaid by the cost sets
    released by then (and a what-if set on top)."""

    materials: dict[str, Decimal]
    rates: dict[str, dict[str, Decimal]]


class Standards:
    """Standards of one book, computed on demand and cached per item and epoch.

    ``what_if``: a cost set applied on top on every date, to roll it up before its release."""

    def __init__(
        self, settings: Settings, master: MasterData, what_if: CostSet | None = None
    ) -> None:
        self.settings = settings
        self.master = master
        self.what_if = what_if
        self._costs: dict[tuple[str, dt.date], UnitCost] = {}
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
        epoch = self.epoch(on)
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
        return self._cost(item, on, ())

    def _cost(self, item: str, on: dt.date, path: tuple[str, ...]) -> UnitCost:
        key = (item, self.epoch(on))
        cost = self._costs.get(key)
        if cost is None:  # a cached cost is complete, so its subtree has no cycle
            cost = self._costs[key] = self._roll_up(item, on, path)
        return cost

    def _roll_up(self, item_id: str, on: dt.date, path: tuple[str, ...]) -> UnitCost:
        if item_id in path:
            cycle = " -> ".join((*path[path.index(item_id) :], item_id))
            raise StandardError(f"BOM cycle: {cycle}")
        item = self.master.items[item_id]
        inputs = self.inputs(on)
        conversion: list[tuple[str, Decimal]] = list(item.conversion)
        yields = self._routing(item_id, on, inputs, conversion)
        bom = self.master.bom_on(item_id, on) if item.kind is not Kind.MATERIAL else None
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
        material = ZERO
        rolled: list[tuple[str, Decimal]] = []
        needs: dict[tuple[str, Flush], Decimal] = {}
        first = min(yields) if yields else None
        for line in bom.lines:
            at = line.operation if line.operation is not None else first
            if at is not None and at not in yields:
                raise StandardError(
                    f"BOM of {item_id!r}: component {line.component!r} is consumed at "
                    f"operation {at}, which the routing effective on {on} does not have"
                )
            quantity = per_unit(
                line.quantity * (1 + line.scrap), yields[at] if at is not None else ONE
            )
            component = self.master.items[line.component]
            sub = self._cost(line.component, on, (*path, item_id))
            if component.kind is Kind.PHANTOM:  # never stocked: its lines flush straight through
                material += quantity * sub.material
                rolled.extend((el, quantity * amount) for el, amount in sub.rolled)
                conversion.extend((el, quantity * amount) for el, amount in sub.conversion)
                for req in sub.requirements:
                    need = (req.component, req.flush)
                    needs[need] = needs.get(need, ZERO) + quantity * req.quantity
            else:
                material += quantity * sub.total
                rolled.extend((el, quantity * amount) for el, amount in sub.by_element().items())
                need = (line.component, line.flush or component.flush)
                needs[need] = needs.get(need, ZERO) + quantity
        requirements = tuple(Requirement(c, q, f) for (c, f), q in needs.items())
        return UnitCost(
            material,
            tuple(totals(conversion).items()),
            requirements,
            tuple(totals(rolled).items()),
        )

    def _routing(
        self, item_id: str, on: dt.date, inputs: Inputs, conversion: list[tuple[str, Decimal]]
    ) -> dict[int, Decimal]:
        """Add the routing's conversion per good unit to ``conversion``; returns the yield
        from each operation to the end (what a unit entering it is worth in good units)."""
        routing = self.master.routing_on(item_id, on)
        if routing is None:
            return {}
        item = self.master.items[item_id]
        yields: dict[int, Decimal] = {}
        remaining = ONE
        for operation in reversed(routing.operations):
            remaining *= operation.yield_
            yields[operation.number] = remaining
        for operation in routing.operations:
            rates = inputs.rates.get(operation.work_center)
            if not rates:
                raise StandardError(
                    f"work center {operation.work_center!r} has no cost rate effective on {on} "
                    f"(routing of {item_id!r}, operation {operation.number})"
                )
            hours = per_unit(operation.setup_hours, item.lot_size) + per_unit(
                operation.run_hours, yields[operation.number]
            )
            conversion.extend((element, hours * rate) for element, rate in rates.items())
        return yields

    def holding(self, item_id: str, on: dt.date) -> Holding:
        key = (item_id, self.epoch(on))
        found = self._holdings.get(key)
        if found is None:
            found = self._holdings[key] = self._holding(item_id, on)
        return found

    def _holding(self, item_id: str, on: dt.date) -> Holding:
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
        # and its conversion waits to be allocated.
        if not cost.requirements:  # no BOM: a material standard given directly
            parts: list[tuple[tuple[Account, str], Decimal]] = [
                ((Account.RAW_IN_PROCESS, ""), cost.material)
            ]
        else:
            parts = []
            for req in cost.requirements:
                for account, element, amount in self.holding(req.component, on):
                    parts.append(((account, element), req.quantity * amount))
        parts.extend(((Account.CONVERSION_ALLOCATED, el), amount) for el, amount in cost.conversion)
        return tuple(
            (account, element, amount) for (account, element), amount in totals(parts).items()
        )


def without_conversion(holding: Holding) -> Holding:
    """A holding less its unallocated conversion: what scrap, counts and scrapped assemblies
    take to the usage variance. Off-book material is recognised then (credited to payables);
    conversion never allocated to a lost unit shows up as under-allocation instead."""
    return tuple(part for part in holding if part[0] is not Account.CONVERSION_ALLOCATED)
