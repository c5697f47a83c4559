"""``backflush copy`` on a plant's year: SQLite to PostgreSQL and back.

Builds issue 7's synthetic plant (``bench/plantgen.py``; ``--completions``, default 10,000) in a
SQLite book (``bench_scale.py``'s master data and event import), then copies it into a new
database of a throwaway PostgreSQL cluster and from there into a new SQLite file, each copy
read back and compared as the command does. Prints rows, seconds, rows per second and the
peak RSS of each copy. Asserts nothing about time.

    .venv/bin/python bench/bench_copy.py [--completions N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import _peak, _reset_peak, import_events, import_master, say  # noqa: E402
from plantgen import Knobs, generate  # noqa: E402

from backflush.store.copy import copy_book  # noqa: E402
from backflush.store.repository import Store  # noqa: E402
from pg import PgCluster, find_bindir  # noqa: E402


def copied(source_url: str, target_url: str, label: str) -> None:
    source = Store(source_url, create=False)
    _reset_peak()
    began = time.perf_counter()
    try:
        found = copy_book(source, target_url)
    finally:
        source.close()
    took = time.perf_counter() - began
    say(
        f"  {label:<22} {found.total:>10,} rows {took:7.1f} s {found.total / took:>9,.0f} rows/s"
        f"  peak RSS {_peak() / 2**20:,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--completions", type=int, default=10_000)
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found (see tests/pg.py)")
    with tempfile.TemporaryDirectory(prefix="backflush-bench-copy-") as work:
        folder = Path(work)
        knobs = Knobs(completions=args.completions)  # issue 7 large plant, fewer completions
        generated = generate(knobs, folder, formats=("jsonl",))
        book = f"sqlite:///{folder / 'book.db'}"
        import_master(book, generated.scenario)
        import_events(book, generated.events["jsonl"])
        size = (folder / "book.db").stat().st_size
        say(f"copy of a plant's year: {generated.total:,} events, {size / 2**20:,.0f} MiB book")
        cluster = PgCluster(bindir, name_prefix="backflush-bench-copy-")
        cluster.start()
        try:
            postgres = cluster.url(cluster.create_database("copy"))
            copied(book, postgres, "SQLite -> PostgreSQL")
            copied(postgres, f"sqlite:///{folder / 'back.db'}", "PostgreSQL -> SQLite")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
