"""Standard costs: BOM explosion through phantoms, cost rollup, and where a unit's value sits."""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from backflush.domain.model import Account, Flush, Kind, MasterData, Policy, Settings
from backflush.domain.money import ZERO, totals


class StandardError(ValueError):
    """Master data that cannot give a standard: a BOM cycle, a missing standard, ..."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """Quantity of a stocked component consumed per unit of the parent (scrap factor included)."""

    component: str
    quantity: Decimal
    flush: Flush


@dataclass(frozen=True, slots=True)
class UnitCost:
    material: Decimal
    conversion: tuple[tuple[str, Decimal], ...]
    requirements: tuple[Requirement, ...]

    @property
    def conversion_total(self) -> Decimal:
        return sum((amount for _, amount in self.conversion), ZERO)

    @property
    def total(self) -> Decimal:
        return self.material + self.conversion_total


#: Where one unit's standard value sits: (account, conversion element) -> amount per unit.
#: ``accounts_payable`` and ``conversion_allocated`` parts are not on the books yet: they are
#: credited when the unit is consumed or sold (off-book material, unallocated conversion).
Holding = tuple[tuple[Account, str, Decimal], ...]


class Standards:
    """Standards of one book, computed on demand and cached per item and BOM version."""

    def __init__(self, settings: Settings, master: MasterData) -> None:
        self.settings = settings
        self.master = master
        self._costs: dict[tuple[str, dt.date], UnitCost] = {}
        self._holdings: dict[tuple[str, dt.date], Holding] = {}
        self._epochs = sorted({b.effective_from for v in master.boms.values() for b in v})

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
        """The latest BOM change of any item on or before ``on``: standards are the same for
        every date of one epoch, whichever level of a BOM changed."""
        position = bisect.bisect_right(self._epochs, on)
        return self._epochs[position - 1] if position else dt.date.min

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
        bom = self.master.bom_on(item_id, on) if item.kind is not Kind.MATERIAL else None
        if bom is None:
            if item.material_cost is None:
                what = (
                    "a standard_cost" if item.kind is Kind.MATERIAL else "a BOM or a material cost"
                )
                raise StandardError(f"item {item_id!r} has no standard: expected {what}")
            return UnitCost(item.material_cost, item.conversion, ())
        material = ZERO
        conversion: list[tuple[str, Decimal]] = list(item.conversion)
        needs: dict[tuple[str, Flush], Decimal] = {}
        for line in bom.lines:
            per_unit = line.quantity * (1 + line.scrap)
            component = self.master.items[line.component]
            sub = self._cost(line.component, on, (*path, item_id))
            if component.kind is Kind.PHANTOM:  # never stocked: its lines flush straight through
                material += per_unit * sub.material
                conversion.extend((el, per_unit * amount) for el, amount in sub.conversion)
                for req in sub.requirements:
                    need = (req.component, req.flush)
                    needs[need] = needs.get(need, ZERO) + per_unit * req.quantity
            else:
                material += per_unit * sub.total
                need = (line.component, line.flush or component.flush)
                needs[need] = needs.get(need, ZERO) + per_unit
        requirements = tuple(Requirement(c, q, f) for (c, f), q in needs.items())
        return UnitCost(material, tuple(totals(conversion).items()), requirements)

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
