"""CPU of the in-memory book per event (issue 7): ``Book.post_many`` with no store.

Generates the quick synthetic plant with ``bench/plantgen.py`` (20 finished goods, 500
components, 5,000 completions with their purchases, sales, conversion costs, counts and
month-end closes), or reads one already written (``--folder``: its ``plant.yaml`` and
``plant.events.jsonl``). The events are parsed first, so parsing is not counted. Then:

* ``overall``: one ``post_many`` of the whole stream into a new book (journal kept, as a
  scenario run keeps it), its CPU time (``time.process_time``: other work on the machine
  counts less);
* ``as an import``: the same, but as a store's import drives the book: journal not kept,
  ``post_many`` per chunk of 5,000 events, the changes taken and the recorded events dropped
  after each (the book's memory stays bounded), the cyclic garbage collector paused for each
  chunk as the store pauses it (``collector_paused``);
* ``by type``: the stream posted one event at a time, each timed (wall clock), summed per
  event type.

Each is the best of ``--repeat`` runs. Prints µs per event; asserts nothing about time.

    .venv/bin/python bench/bench_core.py [--folder DIR] [--completions N] [--repeat R]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from plantgen import Knobs, generate  # noqa: E402

from backflush.book import Book, Recorded, collector_paused  # noqa: E402
from backflush.domain.model import Event, MasterData, Settings  # noqa: E402
from backflush.formats.scenario import read_scenario  # noqa: E402
from backflush.formats.streams import read_events  # noqa: E402

#: Events per ``post_many`` of an import.
CHUNK = 5_000


def load(folder: Path) -> tuple[Settings, MasterData, list[Event]]:
    scenario = read_scenario(folder / "plant.yaml")
    stream = read_events(folder / "plant.events.jsonl", scenario.master, scenario.settings)
    return scenario.settings, scenario.master, [event for _, event in stream]


def overall(settings: Settings, master: MasterData, events: list[Event]) -> float:
    """CPU seconds to post ``events`` into a new book in one call."""
    book = Book(settings, master)
    start = time.process_time()
    book.post_many(events)
    return time.process_time() - start


def as_import(settings: Settings, master: MasterData, events: list[Event]) -> float:
    """CPU seconds to post ``events`` in chunks, each chunk's changes taken, as an import."""
    book = Book(settings, master)
    book.keep_journal = False
    written: dict[str, Recorded] = {}  # what the store would read back when an event names it
    book.history = lambda ids: {i: written[i] for i in ids if i in written}
    start = time.process_time()
    for at in range(0, len(events), CHUNK):
        with collector_paused():  # as the store pauses it, till the chunk is written
            book.post_many(events[at : at + CHUNK])
            book.take_changes()
            written.update(book.recorded)
            book.recorded.clear()
    return time.process_time() - start


def by_type(
    settings: Settings, master: MasterData, events: list[Event]
) -> dict[str, tuple[int, float]]:
    """Per event type: how many, and the seconds their posts took (one event at a time)."""
    book = Book(settings, master)
    found: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    clock = time.perf_counter
    for event in events:
        start = clock()
        book.post(event)
        took = clock() - start
        tally = found[event.type]
        tally[0] += 1
        tally[1] += took
    return {kind: (int(n), seconds) for kind, (n, seconds) in sorted(found.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, help="a plant written by plantgen.py")
    parser.add_argument("--completions", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder
        if folder is None:
            folder = Path(scratch)
            knobs = Knobs(finished_goods=20, components=500, completions=args.completions)
            generate(knobs, folder, formats=("jsonl",))
        settings, master, events = load(folder)
    print(f"{len(events):,} events parsed")

    best = min(overall(settings, master, events) for _ in range(args.repeat))
    print(
        f"overall: {best:.3f} s CPU = {best / len(events) * 1e6:.1f} µs/event "
        f"(best of {args.repeat})"
    )
    best = min(as_import(settings, master, events) for _ in range(args.repeat))
    print(f"as an import: {best:.3f} s CPU = {best / len(events) * 1e6:.1f} µs/event")
    runs = [by_type(settings, master, events) for _ in range(args.repeat)]
    for kind, (count, _) in runs[0].items():
        seconds = min(run[kind][1] for run in runs)
        print(f"  {kind:<12} {count:>7,} events  {seconds / count * 1e6:>9.1f} µs/event")


if __name__ == "__main__":
    main()
