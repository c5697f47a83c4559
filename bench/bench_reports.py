"""Reports on a big book: every ``backflush report`` kind on a SQLite book of 1,000,000 events.

The book: the synthetic plant of ``bench_standards.Plant`` (finished goods over ten BOM levels,
routings through work centers) and ``--events`` events spread evenly over ``--periods``
months, each month made by ``bench_close.month`` (opening purchases and counts, completions,
sales, purchases off standard, conversion costs, scraps, counts, NRV estimates), the first
``--closed`` months closed at their end. It is built once and kept in a cache folder
(``/tmp/backflush-bench-reports``), named by a hash of the parameters and of the code that builds
it (a book of an older schema is migrated); ``--db PATH`` keeps it there instead.

Each report is then run as the command line runs it, ``backflush.cli.app([...])`` with its
output sent to /dev/null, in a child process of its own: a new ``Store``, nothing cached,
its own peak RSS. The figures are the wall-clock seconds of that call (the import of the
package, the same for every command, is shown once apart) and the child's peak RSS.
Asserts nothing about time (the issue's target: every report under 2 s on 1,000,000 events;
the JSON, XLSX and CSV of the whole journal may take longer, their ``--period`` forms not).

    .venv/bin/python bench/bench_reports.py [--events N] [--quick] [--db PATH] [--only NAME,...]
                                            [--profile NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import hashlib
import inspect
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_close import master_of, month
from bench_standards import Plant

from backflush.book import Book
from backflush.domain import model as m
from backflush.store.repository import SCHEMA_REVISION, Store

CACHE = Path(tempfile.gettempdir()) / "backflush-bench-reports"
YEAR = 2026


def say(text: str) -> None:
    print(text, flush=True)


def peak_mib() -> float:
    """This process's peak RSS. VmHWM where there is /proc: ru_maxrss survives exec, so a
    child would report at least its parent's peak."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def period_of(n: int) -> str:
    return f"{YEAR}-{n + 1:02d}"


def shifted(event: m.Event, n: int) -> m.Event:
    """``event`` of ``month`` (January) moved to month ``n`` and given an id of its own."""
    date = event.date.replace(month=n + 1)
    return dataclasses.replace(event, id=f"{period_of(n)}-{event.id}", date=date)


def build(path: Path, args: argparse.Namespace) -> None:
    """The book: ``args.events`` events over ``args.periods`` months, the first ``args.closed``
    closed; posted in memory batch by batch, each batch written as ``Store.post`` writes it."""
    plant = Plant(args.items, args.seed)
    master = master_of(plant)
    settings = m.Settings(
        name="Reports bench", shortage=m.Shortage.ALLOW, disposition=m.Disposition.PRORATE
    )
    store = Store(str(path))
    with store.transaction(write=True) as conn:
        store._migrate(conn)
        store._ensure_settings(conn, settings)
        store._add_master(conn, master)
    book = Book(settings, master)
    book.keep_journal = False
    start = time.perf_counter()
    per = args.events // args.periods
    for n in range(args.periods):
        count = per if n < args.periods - 1 else args.events - per * (args.periods - 1)
        events = [shifted(e, n) for e in month(master, settings, count, args.seed + n)]
        if n < args.closed:
            _first, last = m.period_bounds(period_of(n))
            events.append(m.Close(f"close-{period_of(n)}", last, period_of(n)))
        for begin in range(0, len(events), args.batch):
            book.post_many(events[begin : begin + args.batch])
            with store.transaction(write=True) as conn:
                store._write(conn, book, book.take_changes())
        say(
            f"  built {period_of(n)}: {len(events):,} events "
            f"({time.perf_counter() - start:,.0f} s so far, peak RSS {peak_mib():,.0f} MiB)"
        )
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def cache_key(args: argparse.Namespace) -> str:
    """A hash of what makes the book: the parameters and the code that builds it. (A book of an
    older schema is migrated, as a user's book is.)"""
    parts = {
        "events": args.events,
        "items": args.items,
        "periods": args.periods,
        "closed": args.closed,
        "seed": args.seed,
        "code": [inspect.getsource(f) for f in (Plant, master_of, month, shifted, build)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def book_path(args: argparse.Namespace) -> Path:
    """The book, built unless a book of the same parameters is there already."""
    key = cache_key(args)
    if args.db is not None:
        path = Path(args.db)
        marker = path.with_name(path.name + ".key")
    else:
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"book-{args.events}-{key}.db"
        marker = path.with_name(path.name + ".key")
    if path.exists() and marker.exists() and marker.read_text() == key:
        say(f"book: {path} (cached, key {key})")
        return path
    say(f"book: building {path} (key {key}) ...")
    partial = path.with_name(path.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    build(partial, args)
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    partial.rename(path)
    marker.write_text(key)
    say(f"book: built in {time.perf_counter() - start:,.0f} s")
    return path


# ---------------------------------------------------------------- the measurements


def commands(db: Path, args: argparse.Namespace, out: Path) -> dict[str, list[str]]:
    """Name -> the command line's arguments."""
    one = period_of(min(1, args.periods - 1))  # a closed period (when there are two or more)
    last = period_of(args.periods - 1)  # the open one
    found: dict[str, list[str]] = {}
    for kind in (
        "summary",
        "trial-balance",
        "valuation",
        "variances",
        "exceptions",
        "orders",
        "throughput",
        "statements",
        "nrv",
        "margin",
        "variance-analysis",
        "flags",
    ):
        found[kind] = ["report", "--db", str(db), "--what", kind]
    found["variance-analysis --by item"] = [
        "report", "--db", str(db), "--what", "variance-analysis", "--by", "item"
    ]  # fmt: skip
    found["margin --json"] = ["report", "--db", str(db), "--what", "margin", "--json"]
    found["explain (one sale)"] = ["explain", "--db", str(db), "--entry", "1000"]
    found["html"] = ["report", "--db", str(db), "--html", str(out / "r.html")]
    found["chart --what margin"] = [
        "chart",
        "--db",
        str(db),
        "--what",
        "margin",
        "-o",
        str(out / "m.svg"),
    ]
    found[f"journal --period {one}"] = [
        "report", "--db", str(db), "--what", "journal", "--period", one
    ]  # fmt: skip
    found[f"json --period {one}"] = ["report", "--db", str(db), "--json", "--period", one]
    found[f"xlsx --period {one}"] = [
        "report", "--db", str(db), "--xlsx", str(out / "one.xlsx"), "--period", one
    ]  # fmt: skip
    found[f"csv --period {one}"] = [
        "report", "--db", str(db), "--csv", str(out / "one-csv"), "--period", one
    ]  # fmt: skip
    found[f"close {last} --check"] = ["close", last, "--db", str(db), "--check"]
    found["json (whole journal)"] = ["report", "--db", str(db), "--json"]
    found["xlsx (whole journal)"] = ["report", "--db", str(db), "--xlsx", str(out / "all.xlsx")]
    found["csv (whole journal)"] = ["report", "--db", str(db), "--csv", str(out / "all-csv")]
    return found


def measure(argv: list[str], profile: bool) -> None:
    """In the child: run the command line once, print seconds and peak RSS as JSON."""
    start = time.perf_counter()
    from backflush.cli import app

    imported = time.perf_counter() - start
    profiler = cProfile.Profile() if profile else None
    real = sys.stdout
    code = 0
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        try:
            returned = app(argv, standalone_mode=False)  # typer.Exit(n) returns n here
            code = returned if isinstance(returned, int) else 0
        except SystemExit as stop:
            code = int(stop.code or 0)
        finally:
            if profiler is not None:
                profiler.disable()
        seconds = time.perf_counter() - start
    if profiler is not None:
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(40)
    real.write(
        json.dumps({"seconds": seconds, "import": imported, "rss": peak_mib(), "code": code})
    )
    real.write("\n")


def run_child(argv: list[str], profile: bool, timeout: float) -> dict[str, float] | str:
    command = [sys.executable, __file__, "--measure", json.dumps(argv)]
    if profile:
        command.append("--profile-child")
    try:
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=None if profile else subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return f"timeout ({timeout:.0f} s)"
    if done.returncode != 0:
        return f"failed ({done.returncode}): {(done.stderr or '').strip()[-300:]}"
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if found["code"]:
        return f"exit code {found['code']:.0f}: {(done.stderr or '').strip()[-300:]}"
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 1,000 items")
    parser.add_argument("--items", type=int, default=2_000, help="items of the plant")
    parser.add_argument("--periods", type=int, default=4, help="months of events")
    parser.add_argument("--closed", type=int, default=3, help="months closed (the first ones)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--batch", type=int, default=50_000, help="events per store write")
    parser.add_argument("--db", help="build (or reuse) the book here instead of the cache")
    parser.add_argument("--only", help="comma-separated names (or prefixes) to measure")
    parser.add_argument("--profile", help="profile this measurement (cProfile, to stderr)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        measure(json.loads(args.measure), args.profile_child)
        return
    if args.quick:
        args.events, args.items = min(args.events, 20_000), min(args.items, 1_000)
    args.closed = min(args.closed, args.periods)

    say(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; book: "
        f"{args.events:,} events, {args.items:,} items, {args.periods} months "
        f"({args.closed} closed)"
    )
    db = book_path(args)
    store = Store(str(db), create=False)
    with store.engine.connect() as conn:
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    if revision != SCHEMA_REVISION:
        start = time.perf_counter()
        store.migrate()
        say(
            f"book: migrated from schema {revision} to {SCHEMA_REVISION} in "
            f"{time.perf_counter() - start:,.1f} s"
        )
    with store.engine.connect() as conn:
        events = conn.exec_driver_sql("SELECT count(*) FROM events").scalar() or 0
        lines = conn.exec_driver_sql("SELECT count(*) FROM journal_lines").scalar() or 0
        entries = conn.exec_driver_sql("SELECT max(entry_no) FROM journal_lines").scalar() or 0
    store.close()
    say(
        f"book: {events:,} events, {entries:,} journal entries, {lines:,} lines, "
        f"{db.stat().st_size / 2**20:,.0f} MiB"
    )
    with tempfile.TemporaryDirectory() as folder:
        found = commands(db, args, Path(folder))
        if args.profile:
            chosen = [n for n in found if n.startswith(args.profile)]
            if not chosen:
                parser.error(f"--profile: none of {sorted(found)}")
            run_child(found[chosen[0]], True, args.timeout)
            return
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            found = {n: a for n, a in found.items() if any(n.startswith(w) for w in wanted)}
        say(f"{'command (a new process each)':<34} {'seconds':>9} {'peak RSS MiB':>13}")
        imports = []
        for name, argv in found.items():
            result = run_child(argv, False, args.timeout)
            if isinstance(result, str):
                say(f"{name:<34} {result}")
                continue
            imports.append(result["import"])
            say(f"{name:<34} {result['seconds']:>9.2f} {result['rss']:>13,.0f}")
            shutil.rmtree(Path(folder) / "one-csv", ignore_errors=True)
        if imports:
            say(f"(plus the import of backflush.cli: {min(imports):.2f} s in each process)")


if __name__ == "__main__":
    main()
