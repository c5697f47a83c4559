"""Many writers on one PostgreSQL book: events per second and latency per post.

A throwaway PostgreSQL cluster (``tests/pg.py``'s ``PgCluster``: fsync off, loopback) holds a
plant with ``--materials`` materials and ``--products`` finished items, each made of 5 of the
materials. ``--history`` events (purchases, completions, sales, conversion over 12 months)
are imported first, so posting reads a book of some size. Then ``--threads`` clients, each
with its own ``Store``, post at once:

(a) single completions (one event per transaction) consuming the same components, until
    ``--singles`` events are posted or ``--seconds`` have passed;
(b) batches of ``--batch`` completions per transaction, until ``--batches`` batches are posted
    or ``--seconds`` have passed.

Prints events per second and the p50/p99 latency of a post (one ``Store.post`` call). Asserts
nothing about time (issue 6 targets: 1,000 single completions/s with p99 under 50 ms, 20,000
events/s in batches, on the 2-core machine).

    .venv/bin/python bench/bench_writers.py [--threads 16] [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import itertools
import pstats
import statistics
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from backflush.domain import model as m  # noqa: E402
from backflush.store.repository import Store  # noqa: E402
from pg import PgCluster, find_bindir  # noqa: E402

START = dt.date(2026, 1, 1)
DAY = dt.date(2027, 1, 4)  # after the history: every client posts into an open period


def say(text: str) -> None:
    print(text, flush=True)


def plant(
    materials: int, products: int, journal_detail: str = "event"
) -> tuple[m.Settings, m.MasterData]:
    settings = m.Settings(
        name="Bench writers",
        currency="USD",
        triggers=m.Policy.PURCHASE_COMPLETION,
        shortage=m.Shortage.QUEUE,
        journal_detail=m.JournalDetail(journal_detail),
    )
    items = {
        f"M{n}": m.Item(f"M{n}", m.Kind.MATERIAL, material_cost=Decimal("1.25") + n % 7)
        for n in range(materials)
    }
    boms: dict[str, tuple[m.Bom, ...]] = {}
    for n in range(products):
        item = f"F{n}"
        conversion = (("labor", Decimal("2.00")), ("overhead", Decimal("3.50")))
        items[item] = m.Item(item, m.Kind.FINISHED, conversion=conversion)
        lines = tuple(
            m.BomLine(f"M{(n * 5 + k) % materials}", Decimal(1 + k % 3)) for k in range(5)
        )
        boms[item] = (m.Bom(item, lines, dt.date(2000, 1, 1)),)
    return settings, m.MasterData(items, boms, {}, {}, {})


def history(count: int, materials: int, products: int) -> list[m.Event]:
    """A year of purchases, completions, sales and conversion (no closes)."""
    events: list[m.Event] = []
    for n in range(count):
        date = START + dt.timedelta(days=n * 365 // max(count, 1))
        kind = n % 4
        if kind == 0:
            item = f"M{n // 4 % materials}"
            qty = Decimal(2000)
            events.append(m.Purchase(f"h{n}", date, item, qty, Decimal("1.30") + n % 7))
        elif kind == 1:
            events.append(m.Completion(f"h{n}", date, f"F{n % products}", Decimal(10)))
        elif kind == 2:
            events.append(
                m.Sale(f"h{n}", date, f"F{(n - 1) % products}", Decimal(8), Decimal("40"))
            )
        else:
            events.append(m.Conversion(f"h{n}", date, Decimal("55.00"), "labor"))
    return events


def build_book(
    url: str, materials: int, products: int, past: int, journal_detail: str = "event"
) -> Store:
    """The plant's book at ``url``: ``past`` events of history, then an opening purchase of
    every material on :data:`DAY` (so completions on DAY never run short). Returns the open
    store (close it); the book then holds ``past + materials`` events. ``journal_detail``:
    the book's (event, day or period)."""
    settings, master = plant(materials, products, journal_detail)
    store = Store(url)
    store.import_scenario(settings, master, history(past, materials, products))
    opening = [
        m.Purchase(f"open-{i}", DAY, i, Decimal(10_000_000), Decimal("1.30"))
        for i in master.items
        if i.startswith("M")
    ]
    store.post(opening)
    return store


def run(
    url: str,
    threads: int,
    total: int,
    seconds: float,
    make: Callable[[int], list[m.Event]],
) -> tuple[int, float, list[float]]:
    """``threads`` clients posting ``make(n)`` for n = 0, 1, ... until ``total`` posts or
    ``seconds``; (events posted, wall time, latency of each post)."""
    counter = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    posted = [0] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]

    def client(k: int) -> None:
        store = Store(url)
        try:
            store.settings()  # connect and check the schema before the clock starts
            barrier.wait()
            while time.perf_counter() < deadline[0]:
                n = next(counter)
                if n >= total:
                    break
                events = make(n)
                began = time.perf_counter()
                applied = store.post(events)
                latencies[k].append(time.perf_counter() - began)
                posted[k] += sum(applied)
        except BaseException as error:
            errors.append(error)
        finally:
            store.close()

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    barrier.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return sum(posted), wall, [x for found in latencies for x in found]


def report(label: str, events: int, wall: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    say(
        f"{label}: {events:,} events in {len(ordered):,} posts, {wall:.2f} s: "
        f"{events / wall:,.0f} events/s, {len(ordered) / wall:,.0f} posts/s; "
        f"latency per post p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--materials", type=int, default=200)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--history", type=int, default=20_000)
    parser.add_argument("--singles", type=int, default=3_000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="small figures, a smoke run")
    parser.add_argument("--profile", action="store_true", help="profile 200 single posts")
    args = parser.parse_args()
    if args.quick:
        args.history, args.singles, args.batches, args.seconds = 1_000, 200, 10, 5.0
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found (see tests/pg.py)")
    cluster = PgCluster(bindir, name_prefix="backflush-bench-")
    cluster.start()
    try:
        url = cluster.url(cluster.create_database("bench"))
        began = time.perf_counter()
        store = build_book(url, args.materials, args.products, args.history)
        say(
            f"book: {args.history:,} events of history, {args.materials} materials, "
            f"{args.products} products; imported in {time.perf_counter() - began:.1f} s; "
            f"{args.threads} clients"
        )

        def single(n: int) -> list[m.Event]:
            return [m.Completion(f"s{n}", DAY, f"F{n % args.products}", Decimal(1))]

        def batch(n: int) -> list[m.Event]:
            return [
                m.Completion(f"b{n}-{k}", DAY, f"F{(n + k) % args.products}", Decimal(1))
                for k in range(args.batch)
            ]

        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for n in range(200):
                store.post([m.Completion(f"prof{n}", DAY, f"F{n % args.products}", Decimal(1))])
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        store.close()
        report("single completions", *run(url, args.threads, args.singles, args.seconds, single))
        report(
            f"batches of {args.batch}",
            *run(url, args.threads, args.batches, args.seconds, batch),
        )
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
