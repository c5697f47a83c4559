"""Standard costs: BOM explosion through phantoms, cost rollup, and where a unit's value sits."""

from __future__ import annotations

import bisect
import datetime as dt
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, Inexact, getcontext, localcontext
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
from backflush.domain.money import CONTEXT, ZERO, totals

ONE = Decimal(1)

# Enum members at hand: reading one off its class costs a lookup the hot paths feel.
_MATERIAL, _PHANTOM, _FINISHED = Kind.MATERIAL, Kind.PHANTOM, Kind.FINISHED
_RAW_IN_PROCESS, _FINISHED_GOODS = Account.RAW_IN_PROCESS, Account.FINISHED_GOODS
_CONVERSION_ALLOCATED = Account.CONVERSION_ALLOCATED
_SEQUENTIAL = Policy.SEQUENTIAL


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
    # Kept as it is when its exponent is PER_UNIT_DECIMALS or more, else quantized. The
    # exponent is found without as_tuple() (slow) where that is safe: it is at least
    # adjusted() - (precision - 1); and a quotient that quantizing changes has more decimals.
    if quotient.adjusted() - getcontext().prec + 1 >= -PER_UNIT_DECIMALS:
        return quotient
    quantized = quotient.quantize(_PER_UNIT, rounding=ROUND_HALF_EVEN)
    if quantized != quotient:
        return quantized
    if quotient.as_tuple().exponent >= -PER_UNIT_DECIMALS:  # type: ignore[operator]
        return quotient
    return quantized


def kept(quantity: Decimal) -> Decimal:
    """A component quantity per unit as requirements keep it: to :data:`PER_UNIT_DECIMALS`
    when it has more (yields at several levels multiply their decimals), so the quantities
    consumed stay exact and the same whatever the order of the arithmetic."""
    if quantity.as_tuple().exponent >= -PER_UNIT_DECIMALS:  # type: ignore[operator]
        return quantity
    return quantity.quantize(_PER_UNIT, rounding=ROUND_HALF_EVEN)


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

#: A part of a journal entry being built: (account, conversion element, item).
PartKey = tuple[Account, str, str]


@dataclass(frozen=True, slots=True)
class Consumption:
    """What making one unit takes out of where its components sit: each requirement's
    quantity x its holding, summed per (account, element, ""), for good units (``good``) and,
    less unallocated conversion, for scrapped ones (``scrapped``, whose total ``usage`` is the
    usage variance per scrapped unit). A completion multiplies these by its quantities rather
    than valuing every component: the same amounts, as products and sums of decimals are
    exact at the book's precision; where they are not (``exact`` false: a sum past 50 digits,
    deep BOMs of tiny quantities), a completion values a component at a time as before, as
    rounding a sum once is not rounding its terms one by one. The keys come in the order that
    valuing a component at a time gives them: ``both`` when good and scrapped units are
    valued (a component's good parts, then its scrapped ones), ``scrapped_only`` otherwise;
    ``None`` is where the usage variance comes."""

    good: dict[PartKey, Decimal]
    scrapped: dict[PartKey, Decimal]
    good_value: Decimal
    usage: Decimal
    both: tuple[PartKey | None, ...]
    scrapped_only: tuple[PartKey | None, ...]
    #: Every sum exact at the book's precision (no digit rounded off).
    exact: bool = True


def consumption(
    requirements: Iterable[Requirement],
    holdings: Iterable[Holding],
    bare: Iterable[Holding],
) -> Consumption:
    """:class:`Consumption` of ``requirements``, their ``holdings`` and ``bare`` holdings
    (without unallocated conversion) given in the same order."""
    good: dict[PartKey, Decimal] = {}
    scrapped: dict[PartKey, Decimal] = {}
    both: dict[PartKey | None, None] = {}
    scrapped_only: dict[PartKey | None, None] = {}
    with localcontext(CONTEXT) as context:
        context.clear_flags()
        for req, held, less in zip(requirements, holdings, bare, strict=True):
            for account, element, amount in held:
                key = (account, element, "")
                good[key] = good.get(key, ZERO) + req.quantity * amount
                both.setdefault(key)
            for account, element, amount in less:
                key = (account, element, "")
                scrapped[key] = scrapped.get(key, ZERO) + req.quantity * amount
                both.setdefault(key)
                scrapped_only.setdefault(key)
            both.setdefault(None)
            scrapped_only.setdefault(None)
        good_value = sum(good.values(), ZERO)
        usage = sum(scrapped.values(), ZERO)
        exact = not context.flags[Inexact]
    return Consumption(good, scrapped, good_value, usage, tuple(both), tuple(scrapped_only), exact)


#: A rolled-up standard cached with what a parent's rollup takes of it, worked out once: its
#: total, its whole standard by element (:meth:`UnitCost.by_element`), and the element when
#: that is one amount written exactly as the total (a material's own cost): a parent then
#: multiplies it by its quantity once, for both.
_Rolled = tuple[UnitCost, Decimal, tuple[tuple[str, Decimal], ...], str | None]


def _rolled(cost: UnitCost) -> _Rolled:
    total = cost.total
    elements = tuple(cost.by_element().items())
    single = (
        elements[0][0]
        if len(elements) == 1 and elements[0][1].as_tuple() == total.as_tuple()
        else None
    )
    return cost, total, elements, single


#: A holding cached with its parts keyed by (account, element), as a parent's sums them, and
#: the holding :func:`without_conversion`.
_Held = tuple[Holding, tuple[tuple[tuple[Account, str], Decimal], ...], Holding]


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
    # Per BOM line, in three tuples (flat tuples of strings and decimals are left alone by
    # the garbage collector; a million small tuples would not be):
    #: the component;
    components: tuple[str, ...]
    #: its quantity per good unit of the parent, scrap and yields included; None where the
    #: line cannot be costed (an operation the routing does not have, an unknown component);
    quantities: tuple[Decimal | None, ...]
    #: what it needs, (component, flush method), one tuple shared by the lines that need the
    #: same; None for a phantom (its own requirements instead).
    needs: tuple[tuple[str, Flush] | None, ...]
    #: Requirements last exploded, with the requirements of the phantom lines they came from.
    requirements: tuple[tuple[tuple[Requirement, ...], ...], tuple[Requirement, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Inputs:
    """Material costs and work center rates in force: the book's, overlaid by the cost sets
    released by then (and a what-if set on top)."""

    materials: dict[str, Decimal]
    rates: dict[str, dict[str, Decimal]]


def operation_yields(routing: Routing | None) -> dict[int, Decimal]:
    """Per operation, the yield from it to the end of the routing: what a unit entering it is
    worth in good units."""
    yields: dict[int, Decimal] = {}
    remaining = ONE
    for operation in reversed(routing.operations if routing else ()):
        remaining *= operation.yield_
        yields[operation.number] = remaining
    return yields


def operation_hours(operation: Operation, item: Item, yields: dict[int, Decimal]) -> Decimal:
    """Hours of ``operation`` per good unit of ``item``: setup over the lot, run over the
    yield from the operation on."""
    return per_unit(operation.setup_hours, item.lot_size) + per_unit(
        operation.run_hours, yields[operation.number]
    )


def line_quantity(line: BomLine, yields: dict[int, Decimal], first: int | None = None) -> Decimal:
    """Quantity of ``line``'s component per good unit of the parent: scrap included, and
    inflated by the yields (:func:`operation_yields`) from the operation it is consumed at,
    by default the ``first`` (KeyError: no such one)."""
    if first is None and yields:
        first = min(yields)
    at = line.operation if line.operation is not None else first
    return per_unit(line.quantity * (ONE + line.scrap), yields[at] if at is not None else ONE)


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
        #: Per item, the structure of the versions last rolled up.
        self._structures: dict[str, _Structure] = {}
        #: One (component, flush method) tuple per need, shared by the structures.
        self._needs: dict[tuple[str, Flush], tuple[str, Flush]] = {}
        #: Per epoch, per item.
        self._holdings: dict[dt.date, dict[str, _Held]] = {}
        self._inputs: dict[dt.date, Inputs] = {}
        #: Per epoch and item, :meth:`standard_hours`.
        self._hours: dict[tuple[dt.date, str], tuple[tuple[str, Decimal], ...]] = {}
        #: Per epoch and item, :meth:`consumption`.
        self._consumption: dict[tuple[dt.date, str], Consumption] = {}
        self._epochs = master.change_dates()

    def policy(self, item: str) -> Policy:
        if self.settings.triggers.periodic:  # a whole-book method: no item overrides it
            return self.settings.triggers
        return self.master.items[item].policy or self.settings.triggers

    @property
    def sequential(self) -> bool:
        return self.settings.triggers is _SEQUENTIAL

    def costed_at_completion(self, item_id: str) -> bool:
        """A backflush completion of ``item_id`` moves its full standard into finished goods:
        a finished good under a policy with a completion trigger. (A subassembly is never
        costed on its own, even when one of its components is such a finished good.)"""
        item = self.master.items[item_id]
        return item.kind is _FINISHED and self.policy(item_id).costs_completions

    def epoch(self, on: dt.date) -> dt.date:
        """The latest change of standards (a BOM or routing version of any item, a cost set
        released) on or before ``on``: standards are the same for every date of one epoch."""
        position = bisect.bisect_right(self._epochs, on)
        return self._epochs[position - 1] if position else dt.date.min

    def first_change_after(self, start: dt.date) -> dt.date | None:
        """The first change of standards after ``start`` (None: none planned)."""
        position = bisect.bisect_right(self._epochs, start)
        return self._epochs[position] if position < len(self._epochs) else None

    def epochs_after(self, start: dt.date, through: dt.date) -> list[dt.date]:
        """The changes of standards after ``start``, up to and including ``through``."""
        low, high = (
            bisect.bisect_right(self._epochs, start),
            bisect.bisect_right(self._epochs, through),
        )
        return self._epochs[low:high]

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
            with localcontext(CONTEXT):  # 50 digits: the arithmetic of a rollup stays exact
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
        found = costs[item_id] = _rolled(self._unit_cost(item_id, on, epoch, costs, path))
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
        for component_id, quantity, need in zip(
            structure.components, structure.quantities, structure.needs, strict=True
        ):
            if quantity is None:  # the first line that cannot be costed
                self._refuse(item_id, on, structure, bom.lines[structure.quantities.index(None)])
            found = costs.get(component_id)
            if found is None:
                found = self._roll_up(component_id, on, epoch, costs, below)
            sub, sub_total, sub_elements, single = found
            if need is None:  # a phantom, never stocked: its lines flush straight through
                material += quantity * sub.material
                for element, amount in sub.rolled:
                    rolled[element] = rolled.get(element, ZERO) + quantity * amount
                conversion.extend((el, quantity * amount) for el, amount in sub.conversion)
                phantoms.append(sub.requirements)
            elif single is not None:
                value = quantity * sub_total
                material += value
                rolled[single] = rolled.get(single, ZERO) + value
            else:
                material += quantity * sub_total
                for element, amount in sub_elements:
                    rolled[element] = rolled.get(element, ZERO) + quantity * amount
        return UnitCost(
            material,
            tuple(totals(conversion).items()),
            self._requirements(structure, phantoms),
            tuple(rolled.items()),
        )

    def _structure(self, item_id: str, item: Item, on: dt.date) -> _Structure:
        """The BOM and routing versions of ``item_id`` effective on ``on``, and what follows
        from them alone; cached while the versions stay the same."""
        bom = self.master.bom_on(item_id, on) if item.kind is not _MATERIAL else None
        routing = self.master.routing_on(item_id, on)
        found = self._structures.get(item_id)
        if found is not None and found.bom is bom and found.routing is routing:
            return found
        yields = operation_yields(routing)
        hours: tuple[Decimal, ...] | None = ()
        if routing is not None:
            try:
                hours = tuple(operation_hours(op, item, yields) for op in routing.operations)
            except Exception:  # told by the rollup, after what it checks first
                hours = None
        first = min(yields) if yields else None
        # Yields other than 1, by operation: a line consumed at another one is not divided.
        divisors = {number: y for number, y in yields.items() if y != 1}
        components: list[str] = []
        quantities: list[Decimal | None] = []
        needs: list[tuple[str, Flush] | None] = []
        items = self.master.items
        shared = self._needs
        for line in bom.lines if bom is not None else ():
            component_id = line.component
            components.append(component_id)
            at = line.operation if line.operation is not None else first
            try:  # line_quantity(), inlined
                quantity = line.quantity * (ONE + line.scrap)
                if at is not None:
                    if at not in yields:
                        raise KeyError(at)
                    divisor = divisors.get(at)
                    if divisor is not None:
                        quantity = per_unit(quantity, divisor)
                component = items[component_id]
            except Exception:  # told by the rollup, when it reaches the line
                quantities.append(None)
                needs.append(None)
                continue
            quantities.append(quantity)
            if component.kind is _PHANTOM:
                needs.append(None)
            else:
                need = (component_id, line.flush or component.flush)
                needs.append(shared.setdefault(need, need))
        found = self._structures[item_id] = _Structure(
            bom, routing, yields, first, hours, tuple(components), tuple(quantities), tuple(needs)
        )
        return found

    def work_center_hours(self, item_id: str, on: dt.date) -> dict[str, Decimal]:
        """Standard hours per good unit of ``item_id`` at each work center of its routing
        effective on ``on`` (setup over the lot, run over the yields): the hours its output
        earns, against which the hours reported are measured."""
        return dict(self.standard_hours(item_id, on))

    def consumption(self, item_id: str, on: dt.date) -> Consumption:
        """:func:`consumption` of the requirements of ``item_id`` on ``on``, cached per epoch
        (a completion asks)."""
        epoch = self.epoch(on)
        found = self._consumption.get((epoch, item_id))
        if found is None:
            requirements = self.unit_cost(item_id, on).requirements
            components = [req.component for req in requirements]
            found = self._consumption[(epoch, item_id)] = consumption(
                requirements,
                self.holdings(components, on),
                self.holdings(components, on, conversion=False),
            )
        return found

    def standard_hours(self, item_id: str, on: dt.date) -> tuple[tuple[str, Decimal], ...]:
        """:meth:`work_center_hours` as (work center, hours) pairs, cached per epoch (a
        completion asks)."""
        epoch = self.epoch(on)
        found = self._hours.get((epoch, item_id))
        if found is None:
            structure = self._structure(item_id, self.master.items[item_id], on)
            if structure.routing is None or structure.hours is None:
                found = ()
            else:
                centers = (op.work_center for op in structure.routing.operations)
                found = tuple(totals(zip(centers, structure.hours, strict=True)).items())
            self._hours[(epoch, item_id)] = found
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
                    f"work center {operation.work_center!r} has no cost rate{_as_of(on)} "
                    f"(routing of {item_id!r}, operation {operation.number})"
                )
            hours = (
                structure.hours[n]
                if structure.hours is not None
                else operation_hours(operation, item, structure.yields)
            )
            for element, rate in rates.items():
                conversion.append((element, hours * rate))

    def _refuse(self, item_id: str, on: dt.date, structure: _Structure, line: BomLine) -> NoReturn:
        """Raise what costing ``line`` raises (its quantity could not be worked out)."""
        at = line.operation if line.operation is not None else structure.first
        if at is not None and at not in structure.yields:
            raise StandardError(
                f"BOM of {item_id!r}: component {line.component!r} is consumed at "
                f"operation {at}, which the routing of {item_id!r}{_as_of(on)} does not "
                + ("have" if structure.yields else "give: it has none")
            )
        line_quantity(line, structure.yields, structure.first)
        _ = self.master.items[line.component]  # KeyError: an unknown component
        raise AssertionError(f"the quantity of a line of the BOM of {item_id!r} failed once")

    def _requirements(
        self, structure: _Structure, phantoms: list[tuple[Requirement, ...]]
    ) -> tuple[Requirement, ...]:
        """The stocked components a unit consumes: the BOM's lines, phantoms exploded (their
        requirements ``phantoms``, in line order). The same as last time when the phantoms'
        are the same (a cost set changes none)."""
        cached = structure.requirements
        if (
            cached is not None
            and len(cached[0]) == len(phantoms)
            and all(map(operator.is_, cached[0], phantoms))
        ):
            return cached[1]
        needs: dict[tuple[str, Flush], Decimal] = {}
        multiplied: set[tuple[str, Flush]] = set()  # through a phantom: may need kept()
        exploded = iter(phantoms)
        for quantity, need in zip(structure.quantities, structure.needs, strict=True):
            assert quantity is not None  # the rollup refused the line
            if need is None:  # a phantom
                for req in next(exploded):
                    key = (req.component, req.flush)
                    needs[key] = needs.get(key, ZERO) + quantity * req.quantity
                    multiplied.add(key)
            else:
                needs[need] = needs.get(need, ZERO) + quantity
        requirements = tuple(
            Requirement(c, kept(q) if (c, f) in multiplied else q, f) for (c, f), q in needs.items()
        )
        structure.requirements = (tuple(phantoms), requirements)
        return requirements

    def conversion_held(self, item_id: str, on: dt.date) -> Decimal:
        """The conversion a unit of ``item_id`` in stock holds with its material, in one
        figure: finished goods costed at completion, made items costed sequentially
        (elsewhere conversion waits unallocated and is no part of the value; a material has
        none). What scrap, a count or a write-off takes to a variance with the material."""
        if self.master.items[item_id].kind is Kind.MATERIAL:
            return ZERO
        if self.holding(item_id, on) != self.holding(item_id, on, conversion=False):
            return ZERO  # its conversion waits unallocated: left out of the value taken
        elements = self.unit_cost(item_id, on).by_element()
        return sum((v for e, v in elements.items() if e != MATERIAL), ZERO)

    def holding(self, item_id: str, on: dt.date, *, conversion: bool = True) -> Holding:
        """Where a unit of ``item_id`` sits; without ``conversion``: less its unallocated
        conversion (:func:`without_conversion`, cached with it)."""
        epoch = self.epoch(on)
        holdings = self._holdings.setdefault(epoch, {})
        found = holdings.get(item_id)
        if found is None:
            with localcontext(CONTEXT):
                found = self._holding(item_id, on, epoch, holdings)
        return found[0] if conversion else found[2]

    def holdings(
        self, item_ids: Iterable[str], on: dt.date, *, conversion: bool = True
    ) -> list[Holding]:
        """:meth:`holding` of each of ``item_ids``, the epoch looked up once."""
        epoch = self.epoch(on)
        holdings = self._holdings.setdefault(epoch, {})
        found: list[Holding] = []
        for item_id in item_ids:
            held = holdings.get(item_id)
            if held is None:
                with localcontext(CONTEXT):
                    held = self._holding(item_id, on, epoch, holdings)
            found.append(held[0] if conversion else held[2])
        return found

    def _holding(
        self, item_id: str, on: dt.date, epoch: dt.date, holdings: dict[str, _Held]
    ) -> _Held:
        """Work out the holding of ``item_id`` and cache it in ``holdings``, the epoch's."""
        parts = self._where(item_id, on, epoch, holdings)
        holding = tuple((a, e, v) for (a, e), v in parts)
        found = holdings[item_id] = (holding, parts, without_conversion(holding))
        return found

    def _where(
        self, item_id: str, on: dt.date, epoch: dt.date, holdings: dict[str, _Held]
    ) -> tuple[tuple[tuple[Account, str], Decimal], ...]:
        item = self.master.items[item_id]
        cost = self.unit_cost(item_id, on)
        policy = self.policy(item_id)
        if self.settings.triggers.periodic:
            return periodic_holding(item.kind, cost)
        if item.kind is _MATERIAL:
            if self.sequential:
                return (((Account.MATERIALS, ""), cost.total),)
            account = _RAW_IN_PROCESS if policy.costs_purchases else Account.ACCOUNTS_PAYABLE
            return (((account, ""), cost.total),)
        if self.sequential:
            account = _FINISHED_GOODS if item.kind is _FINISHED else Account.MATERIALS
            return (((account, ""), cost.total),)
        if item.kind is _FINISHED and policy.costs_completions:  # costed_at_completion()
            return (((_FINISHED_GOODS, ""), cost.total),)
        # A subassembly, or a good costed only at sale: its value stays where its parts sit,
        # and its conversion waits to be allocated. Parts are summed by (account, element) in
        # the order they come, as totals() would.
        parts: dict[tuple[Account, str], Decimal] = {}
        if not cost.requirements:  # no BOM: a material standard given directly
            parts[(_RAW_IN_PROCESS, "")] = ZERO + cost.material
        else:
            for req in cost.requirements:
                held = holdings.get(req.component)
                if held is None:
                    held = self._holding(req.component, on, epoch, holdings)
                quantity = req.quantity
                for key, amount in held[1]:
                    parts[key] = parts.get(key, ZERO) + quantity * amount
        for element, amount in cost.conversion:
            key = (_CONVERSION_ALLOCATED, element)
            parts[key] = parts.get(key, ZERO) + amount
        return tuple(parts.items())


#: The element of a conversion estimate given as one figure (element ""), so that estimates
#: stay apart from material ("") in the inventory accounts of a periodic book.
ESTIMATE = "conversion"


def estimate_element(element: str) -> str:
    """The element a conversion estimate of ``element`` is kept under in RIP and FG."""
    return element or ESTIMATE


def periodic_holding(kind: Kind, cost: UnitCost) -> tuple[tuple[tuple[Account, str], Decimal], ...]:
    """Where a unit sits under ``count`` and ``cogs-first`` once a close has valued it: raw
    stock and subassemblies in RIP, finished goods in FG, each at its standard material
    (element "") plus the standard conversion it holds, by element, as conversion estimates.
    Between closes the inventory accounts are not at quantities x these (completions, sales,
    scrap and counts move quantities only); the close brings them there."""
    if kind is _MATERIAL:
        return (((_RAW_IN_PROCESS, ""), ZERO + cost.total),)
    account = _FINISHED_GOODS if kind is _FINISHED else _RAW_IN_PROCESS
    parts: dict[tuple[Account, str], Decimal] = {(account, ""): ZERO}
    for element, amount in cost.by_element().items():
        key = (account, "" if element == MATERIAL else estimate_element(element))
        parts[key] = parts.get(key, ZERO) + amount
    return tuple(parts.items())


def _as_of(on: dt.date) -> str:
    return "" if on == dt.date.min else f" effective on {on}"


def without_conversion(holding: Holding) -> Holding:
    """A holding less its unallocated conversion: what scrap, counts and scrapped assemblies
    take to the usage variance. Off-book material is recognised then (credited to payables);
    conversion never allocated to a lost unit shows up as under-allocation instead."""
    return tuple(part for part in holding if part[0] is not _CONVERSION_ALLOCATED)
