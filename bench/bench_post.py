"""One event at a time through the library, each in its own transaction (issue 7: p50 under
1 ms on SQLite): ``Store.post([event])`` for ``--events`` single completions on the plant of
``bench_writers.py`` (``--materials``, ``--products``, ``--history`` events before), on a
SQLite file and, unless ``--sqlite-only``, a throwaway PostgreSQL cluster. Prints p50, p95,
p99 and max latency and the rate; the first ``--warm-up`` posts (the book loaded) are not
counted. Asserts nothing about time.

``--durable``: the PostgreSQL cluster runs as a production server does (fsync and
synchronous commit on); by default it runs as the tests' (off: faster, not crash-safe).

    .venv/bin/python bench/bench_post.py [--events 5000] [--sqlite-only] [--quick] [--durable]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_writers import DAY, build_book  # noqa: E402

from backflush.domain import model as m  # noqa: E402
from pg import PgCluster, find_bindir  # noqa: E402


def run(label: str, url: str, args: argparse.Namespace) -> None:
    store = build_book(url, args.materials, args.products, args.history)
    try:
        took: list[float] = []
        for n in range(args.warm_up + args.events):
            event = m.Completion(f"one-{n}", DAY, f"F{n % args.products}", Decimal(2))
            began = time.perf_counter()
            store.post([event])
            took.append(time.perf_counter() - began)
    finally:
        store.close()
    counted = sorted(took[args.warm_up :])

    def pct(p: float) -> float:
        return counted[min(len(counted) - 1, int(len(counted) * p))] * 1000

    print(
        f"{label}: {len(counted):,} single completions, one transaction each: "
        f"p50 {statistics.median(counted) * 1000:.2f} ms, p95 {pct(0.95):.2f} ms, "
        f"p99 {pct(0.99):.2f} ms, max {counted[-1] * 1000:.2f} ms; "
        f"{len(counted) / sum(counted):,.0f} posts/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--warm-up", type=int, default=100)
    parser.add_argument("--materials", type=int, default=200)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--history", type=int, default=5_000)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="PostgreSQL with fsync and synchronous commit on (default: off, as the tests)",
    )
    parser.add_argument("--quick", action="store_true", help="500 events, 1,000 of history")
    args = parser.parse_args()
    if args.quick:
        args.events, args.history = 500, 1_000
    with tempfile.TemporaryDirectory(prefix="backflush-bench-post-") as folder:
        run("SQLite", f"sqlite:///{Path(folder) / 'book.db'}", args)
    if args.sqlite_only:
        return
    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL server binaries not found (see tests/pg.py): SQLite only")
        return
    cluster = PgCluster(bindir, name_prefix="backflush-bench-post-", durable=args.durable)
    cluster.start()
    try:
        label = "PostgreSQL (fsync on)" if args.durable else "PostgreSQL"
        run(label, cluster.url(cluster.create_database("bench")), args)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
