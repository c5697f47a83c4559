"""The period close of a busy month: in memory, and on a SQLite store.

A synthetic plant from ``bench_standards.Plant`` (finished goods over ten BOM levels with
subassemblies, phantoms and routings through work centers with labor, overhead and machine
rates; its forward-flushed lines are backflushed here, as nothing releases orders) posts
``--events`` events in one month: opening purchases of every material and an opening count of
every subassembly, then completions of finished goods and subassemblies, sales of what was
made, purchases at prices off standard, conversion costs by element, a few scraps and cycle
counts, and some net realisable value estimates below standard. Then the month is closed:

(a) in memory: ``Book.post(Close)`` on the book that posted the month;
(b) on SQLite: the month written through ``Store.post`` in large batches (each loads the
    book's state, posts the batch, writes it in one transaction), then ``Store.post(Close)``
    as ``backflush close`` does it: the book's state loaded under the write lock, the close
    applied, its entries and state written, in one transaction. Measured with a new ``Store``
    (standards rolled up again, as a new process does) and, on a copy of the database, with
    the ``Store`` that wrote the month (its rolled-up standards cached).

Prints figures; asserts nothing about time (the issue's target: a close under 5 s).

    .venv/bin/python bench/bench_close.py [--events N] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_standards import Plant

from backflush.book import Book
from backflush.domain import model as m
from backflush.engine.standards import Standards
from backflush.store.repository import Store

T = TypeVar("T")
PERIOD = "2026-01"
FIRST = dt.date(2026, 1, 1)
LAST = dt.date(2026, 1, 31)
ELEMENTS = ("labor", "overhead", "machine")


def say(text: str) -> None:
    print(text, flush=True)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(action: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def master_of(plant: Plant) -> m.MasterData:
    """The plant's master data without its cost set, every line backflushed."""
    boms = {
        item: tuple(
            dataclasses.replace(
                bom, lines=tuple(dataclasses.replace(line, flush=None) for line in bom.lines)
            )
            for bom in versions
        )
        for item, versions in plant.boms.items()
    }
    return m.MasterData(plant.items, boms, plant.centers, plant.routings)


def month(master: m.MasterData, settings: m.Settings, count: int, seed: int) -> list[m.Event]:
    """``count`` events dated in January (the close is not among them)."""
    rng = random.Random(seed)
    standards = Standards(settings, master)
    kinds = {i: item.kind for i, item in master.items.items()}
    materials = sorted(i for i, k in kinds.items() if k is m.Kind.MATERIAL)
    goods = sorted(i for i, k in kinds.items() if k is m.Kind.FINISHED)
    subassemblies = sorted(i for i, k in kinds.items() if k is m.Kind.SUBASSEMBLY)
    made = goods + subassemblies

    def standard(item: str) -> Decimal:
        return standards.unit_cost(item, FIRST).total

    found: list[m.Event] = [
        m.Purchase(f"open-{i}", FIRST, i, Decimal(50_000_000), standard(i)) for i in materials
    ]
    found += [m.Count(f"open-count-{i}", FIRST, i, Decimal(1_000_000)) for i in subassemblies]
    stock = dict.fromkeys(goods, Decimal(0))  # finished goods on hand, as the book will have it
    while len(found) < count:
        n = len(found)
        date = FIRST + dt.timedelta(days=n * 28 // count)
        roll = rng.random()
        if roll < 0.30:
            good = rng.choice(goods)
            if stock[good] >= 1:
                quantity = Decimal(rng.randint(1, min(5, int(stock[good]))))
                stock[good] -= quantity
                price = (standard(good) * Decimal("1.4")).quantize(Decimal("0.01"))
                found.append(m.Sale(f"sale-{n}", date, good, quantity, price))
                continue
            roll = 0.5  # nothing to sell: make some instead
        if roll < 0.45:
            material = rng.choice(materials)
            factor = Decimal(rng.randint(950, 1050)) / 1000
            cost = (standard(material) * factor).quantize(Decimal("0.0001"))
            quantity = Decimal(rng.randint(100, 5_000))
            found.append(m.Purchase(f"buy-{n}", date, material, quantity, cost))
        elif roll < 0.55:
            amount = Decimal(rng.randint(10_000, 5_000_000)) / 100
            found.append(m.Conversion(f"conv-{n}", date, amount, rng.choice(ELEMENTS)))
        elif roll < 0.551:
            material = rng.choice(materials)
            found.append(m.Scrap(f"scrap-{n}", date, material, Decimal(rng.randint(1, 20))))
        elif roll < 0.5515:
            good = rng.choice(goods)
            if stock[good] >= 1:  # one unit missing at the count
                stock[good] -= 1
                found.append(m.Count(f"count-{n}", date, good, stock[good]))
        elif roll < 0.552:
            good = rng.choice(goods)
            value = (standard(good) * Decimal(rng.randint(600, 1200)) / 1000).quantize(
                Decimal("0.0001")
            )
            found.append(m.NetRealisableValue(f"nrv-{n}", date, good, value))
        else:
            item = rng.choice(made) if rng.random() < 0.5 else rng.choice(goods)
            quantity = Decimal(rng.randint(1, 20))
            scrapped = Decimal(rng.randint(1, 2)) if rng.random() < 0.02 else Decimal(0)
            found.append(m.Completion(f"done-{n}", date, item, quantity, scrapped))
            if item in stock:
                stock[item] += quantity
    return found[:count]


def profile(action: Callable[[], object], lines: int = 25) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=5_000, help="items of the plant")
    parser.add_argument("--quick", action="store_true", help="50,000 events, 2,000 items")
    parser.add_argument("--batch", type=int, default=50_000, help="events per store write")
    parser.add_argument("--profile", action="store_true", help="profile the SQLite close")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--disposition",
        choices=[d.value for d in m.Disposition],
        default="prorate",
        help="how the close disposes of variances (prorate: the most work)",
    )
    parser.add_argument(
        "--keep", type=Path, help="folder to keep the SQLite book in (default: a temporary one)"
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.items = min(args.events, 50_000), min(args.items, 2_000)

    plant = Plant(args.items, args.seed)
    master = master_of(plant)
    settings = m.Settings(
        name="Close bench",
        shortage=m.Shortage.ALLOW,
        disposition=m.Disposition(args.disposition),
    )
    events, seconds = timed(lambda: month(master, settings, args.events, args.seed))
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.type] = kinds.get(event.type, 0) + 1
    goods = sum(item.kind is m.Kind.FINISHED for item in master.items.values())
    lines = sum(len(b.lines) for bs in master.boms.values() for b in bs)
    say(
        f"plant: {len(master.items):,} items ({goods:,} finished goods, 10 BOM levels, "
        f"{lines:,} BOM lines); {len(events):,} events in {PERIOD} generated in {seconds:.1f} s"
    )
    say("  " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))
    close = m.Close(f"close-{PERIOD}", LAST, PERIOD)

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bench.db"
        if path.exists():
            parser.error(f"{path} exists already")
        # The month, posted in memory batch by batch; each batch's changes are written to the
        # store in one transaction, as Store.post writes them (the same Book does the work:
        # posting it again through Store.post would only double the time to build).
        book = Book(settings, master)
        book.keep_journal = False
        store = Store(str(path))
        with store.transaction(write=True) as conn:
            store._migrate(conn)
            store._ensure_settings(conn, settings)
            store._add_master(conn, master)
        posting = writing = 0.0
        for begin in range(0, len(events), args.batch):
            start = time.perf_counter()
            book.post_many(events[begin : begin + args.batch])
            posting += time.perf_counter() - start
            changes = book.take_changes()
            start = time.perf_counter()
            with store.transaction(write=True) as conn:
                store._write(conn, book, changes)
            writing += time.perf_counter() - start
        size = path.stat().st_size
        say(
            f"build: {len(events):,} events posted in memory in {posting:.1f} s = "
            f"{len(events) / posting:,.0f} ev/s; written to SQLite in batches of "
            f"{args.batch:,} in {writing:.1f} s = {len(events) / writing:,.0f} ev/s; database "
            f"{size / 2**20:,.0f} MiB (peak RSS {peak_mib():,.0f} MiB)"
        )
        copy = folder / "copy.db"
        shutil.copyfile(path, copy)

        # (a) in memory
        _, seconds = timed(lambda: book.post(close))
        entries = len(book.recorded[close.id].entries)
        found = book.closed[PERIOD]
        say(
            f"(a) in memory: close {seconds:.3f} s ({entries} entries; "
            f"{len(book.nrv_findings(PERIOD))} items against NRV)"
        )
        in_memory = dict(found.variances), dict(found.balances)

        # (b) SQLite: as `backflush close` does it, in a new process (standards rolled up
        # again), and with a Store that has its standards rolled up already.
        cold_store = Store(str(copy))
        if args.profile:
            profile(lambda: cold_store.post([close]))
            cold = float("nan")
        else:
            _, cold = timed(lambda: cold_store.post([close]))
        stored = cold_store.load().closed[PERIOD]
        same = (dict(stored.variances), dict(stored.balances)) == in_memory
        cold_store.close()
        store.load()  # rolls up the standards: the Store keeps them while master data stays
        _, warm = timed(lambda: store.post([close]))
        store.close()
        say(f"(b) SQLite: close {cold:.3f} s with a new Store (standards rolled up again)")
        say(f"(b) SQLite: close {warm:.3f} s with standards already rolled up")
        say(f"    the close on SQLite equals the close in memory: {same}")
    say(f"peak RSS {peak_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
