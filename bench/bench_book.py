"""Throughput of the book: events per second in memory, and through the store on SQLite.

A small synthetic plant (finished goods with two-level BOMs) posts a month of purchases,
completions, sales and conversion costs. Prints figures; asserts nothing about time.

    .venv/bin/python bench/bench_book.py [--events N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from backflush.book import Book
from backflush.domain import model as m
from backflush.store.repository import Store


def plant(goods: int, components: int, seed: int) -> tuple[m.Settings, m.MasterData]:
    rng = random.Random(seed)
    items: dict[str, m.Item] = {}
    for n in range(components):
        cost = Decimal(rng.randint(5, 5000)) / 100
        items[f"C{n}"] = m.Item(f"C{n}", m.Kind.MATERIAL, material_cost=cost)
    boms: dict[str, tuple[m.Bom, ...]] = {}
    for n in range(goods):
        sub, fg = f"S{n}", f"F{n}"
        items[sub] = m.Item(sub, m.Kind.SUBASSEMBLY, conversion=(("labor", Decimal("1.25")),))
        items[fg] = m.Item(
            fg,
            m.Kind.FINISHED,
            conversion=(("labor", Decimal("2.50")), ("overhead", Decimal("4.10"))),
        )
        parts = rng.sample(range(components), 10)
        boms[sub] = (
            m.Bom(sub, tuple(m.BomLine(f"C{p}", Decimal(rng.randint(1, 4))) for p in parts[:5])),
        )
        lines = [m.BomLine(f"C{p}", Decimal(rng.randint(1, 3)), Decimal("0.02")) for p in parts[5:]]
        boms[fg] = (m.Bom(fg, (m.BomLine(sub, Decimal(1)), *lines)),)
    return m.Settings(name="Bench plant"), m.MasterData(items, boms)


def events(master: m.MasterData, count: int, seed: int) -> list[m.Event]:
    rng = random.Random(seed)
    goods = sorted(i for i, item in master.items.items() if item.kind is m.Kind.FINISHED)
    materials = sorted(i for i, item in master.items.items() if item.kind is m.Kind.MATERIAL)
    day = dt.date(2026, 1, 1)
    found: list[m.Event] = [
        m.Purchase(f"p{c}", day, c, Decimal(10_000_000), Decimal("1.01")) for c in materials
    ]
    while len(found) < count:
        n = len(found)
        good = rng.choice(goods)
        date = day + dt.timedelta(days=n * 28 // count)
        roll = rng.random()
        if roll < 0.45:
            found.append(m.Completion(f"s{n}", date, "S" + good[1:], Decimal(rng.randint(1, 50))))
            found.append(m.Completion(f"c{n}", date, good, Decimal(rng.randint(1, 50))))
        elif roll < 0.9:
            found.append(m.Sale(f"x{n}", date, good, Decimal(1), Decimal("99.00")))
        else:
            found.append(m.Conversion(f"v{n}", date, Decimal("1000.00"), "labor"))
    return found[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--goods", type=int, default=50)
    parser.add_argument("--components", type=int, default=500)
    args = parser.parse_args()
    settings, master = plant(args.goods, args.components, seed=7)
    stream = events(master, args.events, seed=11)
    settings = m.Settings(name="Bench plant", shortage=m.Shortage.ALLOW)

    start = time.perf_counter()
    book = Book(settings, master)
    book.keep_journal = False
    book.post_many(stream)
    memory = time.perf_counter() - start
    print(f"in memory: {len(stream):,} events in {memory:.2f} s = {len(stream) / memory:,.0f} ev/s")

    with tempfile.TemporaryDirectory() as folder:
        store = Store(str(Path(folder) / "bench.db"))
        start = time.perf_counter()
        store.import_scenario(settings, master, stream)
        stored = time.perf_counter() - start
        size = (Path(folder) / "bench.db").stat().st_size
        print(
            f"SQLite import: {len(stream):,} events in {stored:.2f} s = "
            f"{len(stream) / stored:,.0f} ev/s, database {size / 2**20:.1f} MiB"
        )
        single = [m.Sale(f"one{n}", dt.date(2026, 1, 28), "F1", Decimal(1)) for n in range(200)]
        timings = []
        for event in single:
            begin = time.perf_counter()
            store.post([event])
            timings.append(time.perf_counter() - begin)
        timings.sort()
        print(
            f"SQLite single posts: p50 {timings[len(timings) // 2] * 1000:.1f} ms, "
            f"p99 {timings[int(len(timings) * 0.99)] * 1000:.1f} ms (state loaded per post)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
