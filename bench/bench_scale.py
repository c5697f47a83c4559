"""A large plant's year end to end on SQLite and PostgreSQL (issue 7).

``bench/plantgen.py`` writes the synthetic plant (by default issue 7's large case: 200
finished goods, 3-level BOMs of 25 lines, 5,000 components, 1,000,000 completions with their
purchases, sales, conversion costs, counts and the 12 month-end closes). Then, per database,
in a fresh worker process (so its peak RSS is its own):

1. ``master``: a new book with the scenario's settings and master data (``read_scenario`` and
   ``Store.import_scenario`` without events);
2. ``events``: :func:`import_events` of the JSON lines (the 12 closes are in the stream);
3. ``reports``: ``backflush report --what trial-balance|valuation|variances|margin`` through
   the CLI, each a subprocess (its peak RSS as it reports it, VmHWM), its modules' bytecode
   cached as an installed command's is;
4. ``floor``: the same event rows (id, type, date, payload: the JSON line) inserted into a
   bare table (no key, no index) of a new database with the same driver and the same engine
   settings, in transactions of 5,000 rows (PostgreSQL: ``COPY``, as the store inserts).

Prints per phase the seconds, events per second and peak RSS, the database's size, and the
ratio of the import to the floor. ``--scaling`` runs 250k, 500k and 1M completions and prints
the time ratios. Asserts nothing about time (issue 7 targets on the 2-core machine: SQLite
under 60 s end to end, peak RSS under 1.5 GB, within 4x of the floor; PostgreSQL under 120 s;
twice the events at most 2.2x the time). The plant's book sums routine events' journal lines
per day (``--journal-detail`` event, day or period).

``--durable``: the PostgreSQL cluster runs as a production server does (fsync and
synchronous commit on); by default it runs as the tests' (off: faster, not crash-safe).

    .venv/bin/python bench/bench_scale.py [--events N] [--scaling] [--quick] [--sqlite-only]
        [--keep DIR] [--journal-detail event|day|period] [--durable]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from plantgen import Knobs, generate  # noqa: E402

#: Events per ``Store.import_scenario`` call, and rows per transaction of the floor.
CHUNK = 5_000
REPORTS = ("trial-balance", "valuation", "variances", "margin")
#: A small plant for ``--quick``.
QUICK = Knobs(finished_goods=20, components=500, completions=5_000)


def say(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------- measuring


def _reset_peak() -> None:
    """Start measuring this process's peak RSS afresh (Linux: VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak() -> int:
    """Peak RSS of this process since :func:`_reset_peak`, in bytes."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclasses.dataclass
class Phase:
    name: str
    seconds: float
    peak: int  # bytes
    events: int = 0

    def line(self) -> str:
        rate = f"{self.events / self.seconds:>10,.0f} ev/s" if self.events else " " * 15
        peak = f"peak RSS {self.peak / 2**20:7,.0f} MiB"
        return f"  {self.name:<22} {self.seconds:8.2f} s {rate}  {peak}"


@contextlib.contextmanager
def _phase(phases: list[Phase], name: str) -> Iterator[Phase]:
    _reset_peak()
    found = Phase(name, 0.0, 0)
    began = time.perf_counter()
    yield found
    found.seconds = time.perf_counter() - began
    found.peak = max(found.peak, _peak())
    phases.append(found)


# ---------------------------------------------------------------- the work


def import_events(url: str, path: Path) -> int:
    """Stream the events of ``path`` into the book at ``url`` (its settings and master data
    already there) as ``backflush import FILE`` does: one transaction, posted and written
    :data:`CHUNK` at a time; returns the number applied."""
    from backflush.formats.streams import read_events
    from backflush.store.repository import Store

    store = Store(url, create=False)
    try:
        read = lambda settings, master: read_events(path, master, settings)  # noqa: E731
        return store.import_events(read, batch=CHUNK).applied
    finally:
        store.close()


def import_master(url: str, scenario: Path) -> None:
    from backflush.formats.scenario import read_scenario
    from backflush.store.repository import Store

    found = read_scenario(scenario)
    store = Store(url)
    try:
        store.import_scenario(found.settings, found.master, [])
    finally:
        store.close()


def floor(url: str, path: Path) -> int:
    """The raw floor: the event rows inserted into a bare table, same driver and engine."""
    import sqlalchemy as sa

    from backflush.store.repository import WRITE, _insert, make_engine

    metadata = sa.MetaData()
    table = sa.Table(
        "raw_events",
        metadata,
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    engine = make_engine(url)
    metadata.create_all(engine)
    count = 0

    def write(rows: list[dict[str, Any]]) -> None:
        with engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            _insert(conn, table, rows)

    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            raw = json.loads(line)
            payload = line.rstrip("\n")
            date = dt.date.fromisoformat(raw["date"])
            rows.append({"id": raw["id"], "type": raw["type"], "date": date, "payload": payload})
            if len(rows) == CHUNK:
                write(rows)
                count += len(rows)
                rows = []
    if rows:
        write(rows)
        count += len(rows)
    engine.dispose()
    return count


#: Runs the CLI, then writes its own peak RSS (VmHWM, kB) on standard error's last line (a
#: child's ``wait4`` maximum would include what the parent held when it forked).
_CLI = """
import sys
from backflush.cli import main
try:
    main()
finally:
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    print("VmHWM", status, file=sys.stderr)
"""


def _cli_environment() -> dict[str, str]:
    """The environment of a ``backflush`` subprocess: as an installed command runs, its
    modules' bytecode cached (not compiled again at each start, as PYTHONDONTWRITEBYTECODE
    would have it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}


def warm_up() -> None:
    """Write the bytecode cache of the command line's modules (see :func:`_cli_environment`)."""
    command = [sys.executable, "-c", "import backflush.cli"]
    subprocess.run(command, env=_cli_environment(), check=True)


def report(url: str, what: str) -> tuple[float, int]:
    """``backflush report --what WHAT`` as a subprocess: (seconds, its peak RSS in bytes)."""
    env = _cli_environment()
    command = [sys.executable, "-c", _CLI, "report", "--db", url, "--what", what]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"backflush report --what {what} failed: {done.stderr[-2000:]}")
    peak = int(done.stderr.strip().splitlines()[-1].split()[1]) * 1024
    return seconds, peak


def size(url: str) -> int:
    """The database's size in bytes (SQLite: the file and its WAL)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
    engine.dispose()
    return int(found)


def worker(url: str, floor_url: str, folder: Path) -> dict[str, Any]:
    """The phases on one database (run in a process of its own)."""
    phases: list[Phase] = []
    events = folder / "plant.events.jsonl"
    with _phase(phases, "init + master data"):
        import_master(url, folder / "plant.yaml")
    with _phase(phases, "events (12 closes in)") as phase:
        phase.events = import_events(url, events)
    warm_up()
    for what in REPORTS:
        seconds, peak = report(url, what)
        phases.append(Phase(f"report {what}", seconds, peak))
    database = size(url)
    with _phase(phases, "floor: bare inserts") as phase:
        phase.events = floor(floor_url, events)
    return {"phases": [dataclasses.asdict(p) for p in phases], "size": database}


# ---------------------------------------------------------------- orchestration


def _run_worker(url: str, floor_url: str, folder: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", url, floor_url, str(folder)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed on {url} (exit {done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _print_run(label: str, found: dict[str, Any], generated: float) -> float:
    """Print one database's figures; returns the seconds end to end (generation excluded)."""
    phases = [Phase(**p) for p in found["phases"]]
    say(f"{label}:")
    for phase in phases:
        say(phase.line())
    work = [p for p in phases if not p.name.startswith("floor")]
    total = sum(p.seconds for p in work)
    events = next(p for p in phases if p.name.startswith("events"))
    bare = next(p for p in phases if p.name.startswith("floor"))
    peak = max(p.peak for p in work)
    say(
        f"  end to end {total:.1f} s ({total + generated:.1f} s with the generation), "
        f"{events.events / total:,.0f} ev/s; peak RSS {peak / 2**20:,.0f} MiB; "
        f"database {found['size'] / 2**20:,.0f} MiB"
    )
    say(
        f"  floor {bare.seconds:.2f} s ({bare.events / bare.seconds:,.0f} rows/s): events "
        f"import {events.seconds / bare.seconds:.1f}x the floor, end to end "
        f"{total / bare.seconds:.1f}x"
    )
    return total


def run_case(
    knobs: Knobs, base: Path, sqlite_only: bool, pg_url: Callable[[], str] | None
) -> dict[str, float]:
    folder = base / f"plant-{knobs.completions}"
    say(
        f"== {knobs.completions:,} completions (seed {knobs.seed}, journal detail "
        f"{knobs.journal_detail}) in {folder}"
    )
    _reset_peak()
    began = time.perf_counter()
    generated = generate(knobs, folder)
    took = time.perf_counter() - began
    say(
        f"  generated {generated.total:,} events in {took:.1f} s (JSONL, CSV, Parquet; "
        f"peak RSS {_peak() / 2**20:,.0f} MiB): "
        + ", ".join(f"{n:,} {kind}" for kind, n in generated.counts.items())
    )
    totals: dict[str, float] = {}
    url = f"sqlite:///{folder / 'book.db'}"
    found = _run_worker(url, f"sqlite:///{folder / 'floor.db'}", folder)
    totals["SQLite"] = _print_run("SQLite", found, took)
    if not sqlite_only and pg_url is not None:
        found = _run_worker(pg_url(), pg_url(), folder)
        totals["PostgreSQL"] = _print_run("PostgreSQL", found, took)
    return totals


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], sys.argv[3], Path(sys.argv[4]))), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=Knobs.completions, help="completions")
    parser.add_argument("--scaling", action="store_true", help="250k, 500k and 1M completions")
    parser.add_argument("--quick", action="store_true", help="a small plant, 5,000 completions")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="PostgreSQL with fsync and synchronous commit on (default: off, as the tests)",
    )
    parser.add_argument("--seed", type=int, default=Knobs.seed)
    parser.add_argument("--keep", type=Path, help="write the files and books here (kept)")
    parser.add_argument(
        "--journal-detail",
        choices=("event", "day", "period"),
        default=Knobs.journal_detail,
        help="the book's journal detail",
    )
    args = parser.parse_args()
    base = QUICK if args.quick else Knobs(completions=args.events)
    base = dataclasses.replace(base, seed=args.seed, journal_detail=args.journal_detail)
    sizes = [250_000, 500_000, 1_000_000] if args.scaling else [base.completions]

    with contextlib.ExitStack() as stack:
        folder = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        pg_url: Callable[[], str] | None = None
        if not args.sqlite_only:
            from pg import PgCluster, find_bindir

            bindir = find_bindir()
            if bindir is None:
                say("PostgreSQL server binaries not found (see tests/pg.py): SQLite only")
            else:
                cluster = PgCluster(
                    bindir, name_prefix="backflush-bench-scale-", durable=args.durable
                )
                cluster.start()
                say(f"PostgreSQL: fsync and synchronous_commit {'on' if args.durable else 'off'}")
                stack.callback(cluster.stop)
                pg_url = lambda: cluster.url(cluster.create_database("scale"))  # noqa: E731
        results = {
            n: run_case(dataclasses.replace(base, completions=n), folder, args.sqlite_only, pg_url)
            for n in sizes
        }
    if len(sizes) > 1:
        say("scaling (end to end, generation excluded; twice the events: target at most 2.2x):")
        for engine in results[sizes[0]]:
            figures = [results[n][engine] for n in sizes]
            steps = ", ".join(
                f"{sizes[i + 1]:,}/{sizes[i]:,}: {figures[i + 1] / figures[i]:.2f}x"
                for i in range(len(sizes) - 1)
            )
            say(f"  {engine}: " + ", ".join(f"{f:.1f} s" for f in figures) + f"; {steps}")


if __name__ == "__main__":
    main()
