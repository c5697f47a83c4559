"""Standards at scale: roll up a large plant, then release a cost set with stock on hand.

A deterministic synthetic plant: ``--items`` items over 10 BOM levels (level 0 finished
goods, levels 1-8 subassemblies and some phantoms, level 9 purchased materials), about ten BOM
lines per made item (to lower levels, with scrap factors), work centers with labor, overhead
and machine rates, and a routing of 1-3 operations per subassembly and finished good (setup
over a lot size, run hours, some yields below 1, some lines consumed at a later operation).
It measures:

- the validated path, in a child process of its own (its memory is not the rest's):
  :func:`backflush.formats.inputs.build_master` from raw mappings with strings for numbers, as
  a scenario or a CSV import gives them, and its :func:`check_standards` alone;
- the domain objects built directly, then the target: the rollup of every item with a fresh
  cache, and the release of a cost set (new costs for every purchased material, new rates for
  every work center) with stock on hand (purchases and counts of a fifth of the items): the
  rollup under the new standards of what the stock needs, and one revaluation entry per
  stocked item, posted by the first event dated on the set's effective date.

Every phase prints wall-clock seconds, CPU seconds (less than wall clock when other processes
share the cores), the garbage collector's seconds and the peak RSS so far. The revaluation is
checked cheaply (entries balance; the variance is minus the inventory change; materials move
by exactly quantity x cost change). Asserts nothing about time. Target at 100,000 items
(about 1,000,000 BOM lines): rollup + release under 10 s, peak RSS under 2 GB.

    .venv/bin/python bench/bench_standards.py [--items N] [--quick] [--skip-validated]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import random
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from backflush.book import Book
from backflush.domain import model as m
from backflush.domain.money import ZERO, fmt, round_money
from backflush.engine.standards import Standards
from backflush.formats.inputs import build_master, check_standards

LEVELS = 10
#: Share of the made items of levels 1-8 that are phantoms.
PHANTOMS = 0.1
ELEMENTS = ("labor", "overhead", "machine")
#: Stock dates: the opening stock is counted before the new set takes effect.
OPENING = dt.date(2026, 6, 1)
EFFECTIVE = dt.date(2026, 7, 1)
BEFORE = dt.date(2026, 6, 15)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Collector:
    """Seconds spent in Python's cyclic garbage collector (its full passes over a large heap
    are a visible part of a rollup that fills big caches)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start


COLLECTOR = Collector()


@contextmanager
def timed(label: str, figures: dict[str, float]) -> Iterator[None]:
    """Time a phase: wall clock (kept in ``figures``), this process's CPU time (the same on
    an idle machine; less when other processes share the cores), and the garbage collector's
    share of it."""
    start, cpu, collector = time.perf_counter(), time.process_time(), COLLECTOR.seconds
    yield
    figures[label] = time.perf_counter() - start
    print(
        f"{label:<58} {figures[label]:6.2f} s  (CPU {time.process_time() - cpu:5.2f} s, "
        f"GC {COLLECTOR.seconds - collector:4.2f} s, peak RSS {peak_mib():,.0f} MiB)"
    )


def money(rng: random.Random, low: int, high: int, places: int = 2) -> Decimal:
    """A random amount from low to high hundredths (or other ``places``), exact."""
    return Decimal(rng.randint(low, high)).scaleb(-places)


class Plant:
    """The synthetic plant: domain objects and the ids by level."""

    def __init__(self, items: int, seed: int) -> None:
        rng = random.Random(seed)
        per_level = max(items // LEVELS, 2)
        self.levels: list[list[str]] = []
        self.items: dict[str, m.Item] = {}
        self.boms: dict[str, tuple[m.Bom, ...]] = {}
        self.routings: dict[str, tuple[m.Routing, ...]] = {}
        self.centers: dict[str, m.WorkCenter] = {}
        for n in range(max(per_level // 50, 3)):
            elements = ELEMENTS if n % 3 else ELEMENTS[:2]  # a third of them have no machine
            rates = tuple((e, money(rng, 1500, 9500)) for e in elements)
            self.centers[f"WC{n:04d}"] = m.WorkCenter(f"WC{n:04d}", rates, f"work center {n}")
        centers = sorted(self.centers)
        for level in range(LEVELS):
            ids = []
            for n in range(per_level):
                if level == 0:
                    item = m.Item(
                        f"FG{n:05d}", m.Kind.FINISHED, lot_size=Decimal(rng.choice((1, 10, 50)))
                    )
                elif level == LEVELS - 1:
                    item = m.Item(
                        f"M{n:05d}", m.Kind.MATERIAL, material_cost=money(rng, 5, 20_000, 3)
                    )
                elif rng.random() < PHANTOMS:
                    item = m.Item(f"P{level}-{n:05d}", m.Kind.PHANTOM)
                else:
                    lot = Decimal(rng.choice((1, 25, 100, 250)))
                    item = m.Item(f"S{level}-{n:05d}", m.Kind.SUBASSEMBLY, lot_size=lot)
                self.items[item.id] = item
                ids.append(item.id)
            self.levels.append(ids)
        materials = self.levels[-1]
        for level in range(LEVELS - 1):
            for parent in self.levels[level]:
                made = 0 if level == LEVELS - 2 else rng.choice((1, 1, 1, 2, 2))
                lines = [
                    m.BomLine(
                        # mostly the next level, sometimes two levels down
                        rng.choice(self.levels[min(level + rng.choice((1, 1, 1, 2)), LEVELS - 2)]),
                        Decimal(rng.choice((1, 1, 1, 2))),
                    )
                    for _ in range(made)
                ]
                for component in rng.sample(materials, rng.randint(9, 13) - made):
                    lines.append(
                        m.BomLine(
                            component,
                            money(rng, 1, 400, 2),
                            money(rng, 0, 5, 2) if rng.random() < 0.4 else ZERO,
                            m.Flush.FORWARD if rng.random() < 0.03 else None,
                        )
                    )
                kind = self.items[parent].kind
                if kind is m.Kind.PHANTOM:
                    self.boms[parent] = (m.Bom(parent, tuple(lines)),)
                    continue
                operations = []
                for number in range(10, 10 * rng.randint(1, 3) + 1, 10):
                    yield_ = Decimal(1) if rng.random() < 0.8 else money(rng, 950, 999, 3)
                    operations.append(
                        m.Operation(
                            number,
                            rng.choice(centers),
                            money(rng, 1, 500, 4),
                            money(rng, 0, 400, 2) if rng.random() < 0.6 else ZERO,
                            yield_,
                        )
                    )
                last = operations[-1].number
                if last > 10:  # some lines are consumed at a later operation
                    lines = [
                        m.BomLine(line.component, line.quantity, line.scrap, line.flush, last)
                        if rng.random() < 0.2
                        else line
                        for line in lines
                    ]
                self.boms[parent] = (m.Bom(parent, tuple(lines)),)
                self.routings[parent] = (m.Routing(parent, tuple(operations)),)
        self.cost_set = m.CostSet(
            "next",
            tuple(
                (i, (cost * Decimal(rng.randint(900, 1150)) / 1000).quantize(Decimal("0.0001")))
                for i in materials
                if (cost := self.items[i].material_cost) is not None
            ),
            tuple(
                (c, element, (rate * Decimal("1.03")).quantize(Decimal("0.01")))
                for c in centers
                for element, rate in self.centers[c].rates
            ),
            EFFECTIVE,
        )

    def master(self) -> m.MasterData:
        return m.MasterData(
            self.items, self.boms, self.centers, self.routings, {self.cost_set.name: self.cost_set}
        )

    def lines(self) -> int:
        return sum(len(b.lines) for bs in self.boms.values() for b in bs)


def raw_master(master: m.MasterData) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The master data as raw mappings with strings for numbers, as a file would give them."""
    items = []
    for n, item in enumerate(master.items.values()):
        raw: dict[str, Any] = {"id": item.id, "kind": item.kind.value}
        if item.material_cost is not None:
            raw["standard_cost"] = fmt(item.material_cost)
        if item.lot_size != 1:
            raw["lot_size"] = fmt(item.lot_size)
        items.append((f"items.csv:{n + 2}", raw))
    boms = []
    for bom in (b for bs in master.boms.values() for b in bs):
        lines = []
        for line in bom.lines:
            raw_line: dict[str, Any] = {"component": line.component, "quantity": fmt(line.quantity)}
            if line.scrap:
                raw_line["scrap"] = fmt(line.scrap)
            if line.flush is not None:
                raw_line["flush"] = line.flush.value
            if line.operation is not None:
                raw_line["operation"] = line.operation
            lines.append(raw_line)
        boms.append((f"boms.csv: BOM of {bom.item}", {"item": bom.item, "lines": lines}))
    centers = [
        (
            f"work_centers.csv:{n + 2}",
            {"id": c.id, "name": c.name, "rates": {e: fmt(r) for e, r in c.rates}},
        )
        for n, c in enumerate(master.work_centers.values())
    ]
    routings = [
        (
            f"routings.csv: routing of {r.item}",
            {
                "item": r.item,
                "operations": [
                    {
                        "operation": o.number,
                        "work_center": o.work_center,
                        "run_hours": fmt(o.run_hours),
                        "setup_hours": fmt(o.setup_hours),
                        "yield": fmt(o.yield_),
                    }
                    for o in r.operations
                ],
            },
        )
        for rs in master.routings.values()
        for r in rs
    ]
    sets = []
    for cost_set in master.cost_sets.values():
        rates: dict[str, dict[str, str]] = {}
        for center, element, rate in cost_set.rates:
            rates.setdefault(center, {})[element] = fmt(rate)
        raw_set: dict[str, Any] = {
            "name": cost_set.name,
            "materials": {i: fmt(c) for i, c in cost_set.materials},
            "rates": rates,
        }
        if cost_set.effective is not None:
            raw_set["effective"] = cost_set.effective.isoformat()
        sets.append((f"cost_sets.csv: {cost_set.name}", raw_set))
    return {
        "items": items,
        "boms": boms,
        "work_centers": centers,
        "routings": routings,
        "cost_sets": sets,
    }


def opening_stock(plant: Plant, rng: random.Random, share: float) -> list[m.Event]:
    """Stock on hand for ``share`` of the stocked items of every level: materials bought at
    a price near standard, subassemblies and finished goods found by a count."""
    events: list[m.Event] = []
    for level, ids in enumerate(plant.levels):
        stocked = [i for i in ids if plant.items[i].kind is not m.Kind.PHANTOM]
        for item_id in rng.sample(stocked, round(len(stocked) * share)):
            item = plant.items[item_id]
            if item.kind is m.Kind.MATERIAL:
                assert item.material_cost is not None
                price = (item.material_cost * Decimal(rng.randint(95, 106)) / 100).quantize(
                    Decimal("0.0001")
                )
                quantity = Decimal(rng.randint(100, 20_000))
                events.append(m.Purchase(f"buy-{item_id}", OPENING, item_id, quantity, price))
            else:
                quantity = Decimal(rng.randint(1, 1_000 if level else 200))
                events.append(m.Count(f"count-{item_id}", OPENING, item_id, quantity))
    return events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="a small plant (5,000 items)")
    parser.add_argument("--stocked", type=float, default=0.2, help="share of items with stock")
    parser.add_argument("--skip-validated", action="store_true", help="do not measure build_master")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    count = 5_000 if args.quick else args.items
    settings = m.Settings(name="Bench plant", shortage=m.Shortage.ALLOW)
    if not args.skip_validated:
        # In a child process of its own, so that each path's peak memory is its own.
        print("-- validated path (a child process)")
        in_child(lambda: validated_path(count, args.seed, settings))
        print("-- rollup and release")
    figures: dict[str, float] = {}
    with timed("generate plant (domain objects)", figures):
        plant = Plant(count, args.seed)
        master = plant.master()
    made = sum(1 for i in plant.items.values() if i.kind is not m.Kind.MATERIAL)
    phantoms = sum(1 for i in plant.items.values() if i.kind is m.Kind.PHANTOM)
    print(
        f"plant: {len(plant.items):,} items over {LEVELS} levels ({made:,} made, {phantoms:,} "
        f"phantoms), {plant.lines():,} BOM lines, "
        f"{sum(len(r.operations) for rs in plant.routings.values() for r in rs):,} operations "
        f"at {len(plant.centers)} work centers"
    )
    rollup_and_release(plant, master, settings, args.seed, args.stocked)


def validated_path(count: int, seed: int, settings: m.Settings) -> None:
    """Master data built from raw mappings, as a scenario or a CSV import gives them (with
    strings for numbers), validated and checked: what a book pays to load the plant."""
    figures: dict[str, float] = {}
    raw = raw_master(Plant(count, seed).master())
    gc.collect()
    print(f"raw mappings of the plant: peak RSS {peak_mib():,.0f} MiB")
    with timed("build_master from raw mappings (validated, checked)", figures):
        validated = build_master(
            raw["items"],
            raw["boms"],
            settings,
            work_centers=raw["work_centers"],
            routings=raw["routings"],
            cost_sets=raw["cost_sets"],
        )
    del raw
    with timed("  check_standards alone, as build_master runs it", figures):
        check_standards(validated, settings)
    assert validated == Plant(count, seed).master(), "the validated master is not the plant"
    print(f"validated path: peak RSS {peak_mib():,.0f} MiB")


def rollup_and_release(
    plant: Plant, master: m.MasterData, settings: m.Settings, seed: int, stocked: float
) -> None:
    """The target: roll up every item, then release the cost set with stock on hand."""
    figures: dict[str, float] = {}
    rollup = "rollup of every item (fresh cache)"
    with timed(rollup, figures):
        standards = Standards(settings, master)
        before = {i: standards.unit_cost(i, BEFORE) for i in master.items}
    top = max(before[i].total for i in plant.levels[0])
    print(f"  costliest finished good {fmt(round_money(top, 'USD'))}")

    events = opening_stock(plant, random.Random(seed + 1), stocked)
    with timed(f"opening stock: {len(events):,} purchases and counts", figures):
        book = Book(settings, master, standards)  # the standards of a running book
        book.keep_journal = False
        book.post_many(events)
    book.take_changes()
    old_values = {i: book.stock_value(i) for i in book.stocked_items()}

    # The first event dated on or after the set's effective date revalues the stock.
    trigger = m.Conversion("release", EFFECTIVE, Decimal("1000.00"), "labor")
    release = f"release of the cost set ({len(old_values):,} items on hand)"
    with timed(release, figures):
        book.post(trigger)
    changes = book.take_changes()
    revaluations = [e for e in changes.entries if e.event.startswith("revaluation-")]
    check_release(book, plant, revaluations, old_values)
    variance = -sum(
        (line.amount for e in revaluations for line in e.lines
         if line.account is m.Account.REVALUATION_VARIANCE),
        ZERO,
    )  # fmt: skip
    print(
        f"  {len(revaluations):,} revaluation entries, all balanced; stock revalued by "
        f"{fmt(variance)} = -(revaluation variance)"
    )
    with timed("  then the rest of the items under the new standards", figures):
        after = {i: standards.unit_cost(i, EFFECTIVE) for i in master.items}
    changed = sum(1 for i in master.items if after[i].total != before[i].total)
    print(f"  {changed:,} standards changed")
    target = figures[rollup] + figures[release]
    print(
        f"rollup + release: {target:.2f} s (target < 10 s), peak RSS {peak_mib():,.0f} MiB "
        "(target < 2,048 MiB)"
    )


def in_child(work: Callable[[], None]) -> None:
    """Run ``work`` in a forked child process and wait for it; its failure is ours."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the child process failed (status {status})")


def check_release(
    book: Book,
    plant: Plant,
    entries: list[m.Entry],
    old_values: dict[str, dict[tuple[m.Account, str], Decimal]],
) -> None:
    """Every entry balances; the variance is minus the inventory change, item by item; the
    materials moved by exactly quantity x (new - old cost), to the cent."""
    by_item: dict[str, Decimal] = {}
    for entry in entries:
        assert sum((line.amount for line in entry.lines), ZERO) == 0, entry
        plug = [line for line in entry.lines if line.account is m.Account.REVALUATION_VARIANCE]
        assert len(plug) == 1, entry
        stock = sum(
            (line.amount for line in entry.lines if line.account in m.INVENTORY_ACCOUNTS), ZERO
        )
        assert stock == -plug[0].amount, entry
        by_item[plug[0].item] = stock
    new_costs = dict(plant.cost_set.materials)
    for item_id, old in old_values.items():
        item = plant.items[item_id]
        if item.kind is m.Kind.MATERIAL:
            assert item.material_cost is not None
            expected = book.quantity(item_id) * (new_costs[item_id] - item.material_cost)
            assert by_item.get(item_id, ZERO) == round_money(expected, "USD"), item_id
        else:
            new = book.stock_value(item_id)
            delta = sum((v for (a, _), v in new.items() if a in m.INVENTORY_ACCOUNTS), ZERO) - sum(
                (v for (a, _), v in old.items() if a in m.INVENTORY_ACCOUNTS), ZERO
            )
            assert abs(by_item.get(item_id, ZERO) - delta) <= Decimal("0.01") * len(new), item_id


if __name__ == "__main__":
    main()
