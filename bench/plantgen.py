"""A synthetic plant: master data and a year of events, deterministic from a seed (issue 7).

The plant: finished goods made of multi-level BOMs (``depth`` levels; every level but the
last has ``sub_lines`` of its ``lines_per_level`` lines on stocked subassemblies of the next
level, the rest on purchased components), routings over ``work_centers`` work centers with
labor, overhead and (on some) machine rates. The stream, in date order, is what an MRP-run
plant would report:

* completions of finished goods (working days, popular goods more often), each preceded on
  its day by what it needs: subassembly completions when the subassembly's stock would not
  cover it (lots covering ``cover_days`` of use) and purchases of components (likewise, at
  the standard cost give or take ``price_variance``; a share ``late_rate`` of them arrives
  late, so the book queues a shortage until the next one); ``scrap_rate`` of the units made
  are scrapped at completion;
* sales of finished goods (``sales_ratio`` of the units finished), at a list price;
* actual conversion costs per work center and element with the hours worked, every Friday
  and at month end (the standard hours earned, give or take a little);
* ``counts_per_month`` cycle counts at each month end (the stock the plant expects, give or
  take a little), then a ``close`` of the month.

Settings and master data go into a scenario YAML without events (the format of
``examples/*.yaml``); the events are written as they are made (never all in memory) as JSON
lines (one event object per line, the fields of a scenario file's event, decimals as
strings), CSV (header: the union of the event fields; an empty cell is an absent field) and
Parquet (the same columns, all strings; absent: null).

    .venv/bin/python bench/plantgen.py [OUT] [--completions N] [--seed S] [--formats jsonl,csv]
"""

from __future__ import annotations

import argparse
import bisect
import calendar
import contextlib
import csv
import dataclasses
import datetime as dt
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: The columns of the CSV and Parquet files, in order: every field a generated event has.
EVENT_FIELDS = (
    "id",
    "date",
    "type",
    "item",
    "quantity",
    "scrapped",
    "unit_cost",
    "unit_price",
    "amount",
    "element",
    "work_center",
    "hours",
    "period",
)
FORMATS = ("jsonl", "csv", "parquet")
#: An event's id: a prefix per type and the number of events of that type so far.
PREFIX = {
    "purchase": "p",
    "completion": "c",
    "sale": "s",
    "conversion": "v",
    "count": "n",
    "close": "close-",
}
#: Rows per Parquet row group (the columns of one group are held in memory).
ROW_GROUP = 65_536


@dataclass(frozen=True)
class Knobs:
    """What the plant and its year look like. The defaults are issue 7's large case."""

    seed: int = 7
    finished_goods: int = 200
    #: Levels of a finished good's BOM (1: components only).
    depth: int = 3
    lines_per_level: int = 25
    #: Lines of a BOM (above the last level) on subassemblies of the next level.
    sub_lines: int = 3
    #: Subassemblies per level below the finished goods (0: twice the finished goods).
    subassemblies: int = 0
    components: int = 5_000
    work_centers: int = 20
    #: Completions over the year, of finished goods and subassemblies together.
    completions: int = 1_000_000
    days: int = 365
    start: dt.date = dt.date(2026, 1, 1)
    #: Units sold per finished unit completed.
    sales_ratio: float = 0.95
    #: Units scrapped per unit made at a completion.
    scrap_rate: float = 0.01
    counts_per_month: int = 50
    #: Standard deviation of a purchase price around the standard (a fraction of it).
    price_variance: float = 0.03
    #: Share of purchases that arrive late (the book queues the shortage meanwhile).
    late_rate: float = 0.002
    #: Days of use a purchase or a subassembly lot covers.
    cover_days: int = 10
    #: Mean units of a finished good's completion.
    lot: int = 20
    #: The book's journal detail: event, day or period (a high-volume book sums per day).
    journal_detail: str = "day"

    @property
    def pool(self) -> int:
        return self.subassemblies or 2 * self.finished_goods


@dataclass
class Generated:
    """What :func:`generate` wrote."""

    scenario: Path
    events: dict[str, Path]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# ---------------------------------------------------------------- decimals as strings


def _fixed(value: float, places: int) -> str:
    """``value`` rounded to ``places`` decimals, as a plain decimal string."""
    scaled = round(value * 10**places)
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"


def _quantity(value: float) -> str:
    """A BOM quantity: integral where it is, else up to 3 decimals."""
    text = _fixed(value, 3).rstrip("0").rstrip(".")
    return text or "0"


# ---------------------------------------------------------------- the plant


@dataclass
class _Item:
    id: str
    kind: str  # material | subassembly | finished
    level: int  # 0: finished goods, 1..depth-1: subassemblies, depth: components
    #: Standard unit cost (material + conversion), rolled up as the book does (in floats:
    #: only for prices and lot sizes).
    cost: float = 0.0
    #: (component index, quantity per good unit scrap included, BOM quantity, scrap factor)
    lines: list[tuple[int, float, str, str]] = field(default_factory=list)
    #: (operation, work center index, run hours)
    operations: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class _WorkCenter:
    id: str
    rates: list[tuple[str, float]]


class Plant:
    """The master data of a plant, made from ``knobs`` (deterministic)."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        rng = random.Random(f"plant:{knobs.seed}")
        self.items: list[_Item] = []
        width = len(str(knobs.components))
        components = []
        for n in range(knobs.components):
            cost = round(rng.lognormvariate(0.5, 1.3), 2)
            item = _Item(f"C{n + 1:0{width}d}", "material", knobs.depth, max(cost, 0.01))
            components.append(len(self.items))
            self.items.append(item)
        self.centers = []
        for n in range(knobs.work_centers):
            rates = [("labor", rng.randint(2000, 6000) / 100)]
            rates.append(("overhead", rng.randint(3000, 9000) / 100))
            if n % 3 == 0:
                rates.append(("machine", rng.randint(1000, 4000) / 100))
            self.centers.append(_WorkCenter(f"WC{n + 1:02d}", rates))
        # Levels from the bottom up, so every BOM's components exist (and are costed).
        below = components
        for level in range(knobs.depth - 1, -1, -1):
            count = knobs.finished_goods if level == 0 else knobs.pool
            kind = "finished" if level == 0 else "subassembly"
            made = []
            for n in range(count):
                name = f"FG{n + 1:04d}" if level == 0 else f"SA{level}-{n + 1:04d}"
                item = _Item(name, kind, level)
                subs = min(knobs.sub_lines, len(below)) if level < knobs.depth - 1 else 0
                chosen = rng.sample(below, subs) if subs else []
                chosen += rng.sample(components, knobs.lines_per_level - len(chosen))
                for index in chosen:
                    sub = self.items[index].kind != "material"
                    quantity = rng.choice((1, 1, 2)) if sub else rng.choice((1, 1, 2, 3, 4, 0.5))
                    scrap = 0.0 if sub or rng.random() < 0.7 else rng.choice((0.01, 0.02, 0.05))
                    per = quantity * (1 + scrap)
                    item.lines.append((index, per, _quantity(quantity), _fixed(scrap, 2)))
                    item.cost += per * self.items[index].cost
                centers = rng.sample(range(len(self.centers)), rng.randint(1, 3))
                for op, center in enumerate(centers, 1):
                    hours = rng.randint(5, 60) / 1000
                    item.operations.append((op * 10, center, _fixed(hours, 3)))
                    item.cost += hours * sum(r for _, r in self.centers[center].rates)
                made.append(len(self.items))
                self.items.append(item)
            below = made
        self.goods = below
        #: A list price per finished good: its standard cost and a margin.
        self.price = {i: _fixed(self.items[i].cost * rng.uniform(1.25, 1.7), 2) for i in below}

    def settings(self) -> dict[str, str]:
        return {
            "name": "Synthetic plant",
            "currency": "USD",
            "triggers": "purchase+completion",
            "disposition": "cogs",
            "shortage": "queue",
            "journal_detail": self.knobs.journal_detail,
        }

    def write_scenario(self, path: Path) -> None:
        """The settings and master data as a scenario YAML without events."""
        k = self.knobs
        with path.open("w", encoding="utf-8") as out:
            out.write(
                f"# Synthetic plant (bench/plantgen.py, seed {k.seed}): {k.finished_goods} "
                f"finished goods, {k.depth}-level BOMs of {k.lines_per_level} lines, "
                f"{k.components} components, {k.work_centers} work centers.\n"
                "# Master data only: the events are in the files written beside it.\n"
            )
            book = ", ".join(f"{key}: {value}" for key, value in self.settings().items())
            out.write(f"book: {{{book}}}\nitems:\n")
            for item in self.items:
                cost = f', standard_cost: "{_fixed(item.cost, 2)}"' if not item.lines else ""
                out.write(f"  - {{id: {item.id}, kind: {item.kind}{cost}}}\n")
            out.write("work_centers:\n")
            for center in self.centers:
                rates = ", ".join(f'{e}: "{_fixed(r, 2)}"' for e, r in center.rates)
                out.write(f"  - {{id: {center.id}, rates: {{{rates}}}}}\n")
            out.write("routings:\n")
            for item in self.items:
                if item.operations:
                    out.write(f"  - item: {item.id}\n    operations:\n")
                    for op, center, hours in item.operations:
                        out.write(
                            f"      - {{operation: {op}, work_center: "
                            f'{self.centers[center].id}, run_hours: "{hours}"}}\n'
                        )
            out.write("boms:\n")
            for item in self.items:
                if item.lines:
                    out.write(f"  - item: {item.id}\n    lines:\n")
                    for index, _per, quantity, scrap in item.lines:
                        extra = f', scrap: "{scrap}"' if scrap != "0.00" else ""
                        out.write(
                            f"      - {{component: {self.items[index].id}, "
                            f'quantity: "{quantity}"{extra}}}\n'
                        )


# ---------------------------------------------------------------- writers


class _Writers:
    """The event files, written one event at a time."""

    def __init__(self, base: Path, formats: Sequence[str]) -> None:
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown format(s) {sorted(unknown)}; expected {FORMATS}")
        self.paths = {f: base.parent / f"{base.name}.{f}" for f in formats}
        self.files: list[IO[str]] = []
        self.jsonl: IO[str] | None = None
        self.csv: Any = None
        self.columns: dict[str, list[str | None]] | None = None
        self.parquet: Any = None
        if "jsonl" in formats:
            self.jsonl = self.paths["jsonl"].open("w", encoding="utf-8")
            self.files.append(self.jsonl)
        if "csv" in formats:
            handle = self.paths["csv"].open("w", encoding="utf-8", newline="")
            self.files.append(handle)
            self.csv = csv.writer(handle, lineterminator="\n")
            self.csv.writerow(EVENT_FIELDS)
        if "parquet" in formats:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._pa = pa
            self.schema = pa.schema([(name, pa.string()) for name in EVENT_FIELDS])
            self.parquet = pq.ParquetWriter(self.paths["parquet"], self.schema)
            self.columns = {name: [] for name in EVENT_FIELDS}
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def write(self, event: dict[str, str]) -> None:
        if self.jsonl is not None:
            self.jsonl.write(self._dumps(event))
            self.jsonl.write("\n")
        if self.csv is not None:
            self.csv.writerow([event.get(name, "") for name in EVENT_FIELDS])
        if self.columns is not None:
            for name, column in self.columns.items():
                column.append(event.get(name))
            if len(self.columns["id"]) >= ROW_GROUP:
                self._flush()

    def _flush(self) -> None:
        assert self.columns is not None
        if self.columns["id"]:
            table = self._pa.Table.from_pydict(self.columns, schema=self.schema)
            self.parquet.write_table(table)
            for column in self.columns.values():
                column.clear()

    def close(self) -> None:
        if self.parquet is not None:
            self._flush()
            self.parquet.close()
        for handle in self.files:
            handle.close()


# ---------------------------------------------------------------- the year


class _Year:
    """Makes the events of the year, writing each as it is made."""

    def __init__(self, plant: Plant, writers: _Writers) -> None:
        self.plant = plant
        self.knobs = k = plant.knobs
        self.rng = random.Random(f"events:{k.seed}")
        self.out = writers
        self.counts: dict[str, int] = {}
        items = plant.items
        self.stock = [0.0] * len(items)  # what the book has on hand (less queued: negative)
        self.used = [0.0] * len(items)  # consumed so far (for lot sizes)
        self.earned = [0.0] * len(plant.centers)  # standard hours since the last report
        self.backlog = dict.fromkeys(plant.goods, 0.0)  # units ordered, not yet shipped
        self.sold_today: list[int] = []
        self.workday = 0
        self.made = 0
        # A purchase's price bias per component (a supplier dearer or cheaper than standard).
        self.bias = [self.rng.gauss(0, k.price_variance / 2) for _ in items]
        # Popular finished goods are made more often (Zipf-like weights).
        weights = [1 / (rank + 1) ** 0.8 for rank in range(len(plant.goods))]
        self.rng.shuffle(weights)
        self.cumulative = [sum(weights[: n + 1]) for n in range(len(weights))]
        self.hours = [
            [(center, float(hours)) for _op, center, hours in item.operations] for item in items
        ]

    def emit(self, event: dict[str, str]) -> None:
        kind = event["type"]
        number = self.counts.get(kind, 0) + 1
        self.counts[kind] = number
        self.out.write({"id": f"{PREFIX[kind]}{number}", **event})

    # -- replenishment

    def _lot(self, index: int, short: float) -> int:
        """Units to bring in when ``short`` more are needed now: the shortfall and
        ``cover_days`` of the use so far."""
        rate = self.used[index] / max(self.workday, 1)
        return max(math.ceil(short + rate * self.knobs.cover_days), math.ceil(short * 5), 1)

    def _purchase(self, index: int, short: float, date: str) -> None:
        item = self.plant.items[index]
        quantity = self._lot(index, short)
        if self.rng.random() < self.knobs.late_rate:
            return  # arrives late: the book queues the consumption until the next one
        noise = self.bias[index] + self.rng.gauss(0, self.knobs.price_variance)
        unit_cost = max(item.cost * (1 + noise), 0.0001)
        self.emit(
            {
                "date": date,
                "type": "purchase",
                "item": item.id,
                "quantity": str(quantity),
                "unit_cost": _fixed(unit_cost, 4),
            }
        )
        self.stock[index] += quantity

    def complete(self, index: int, good: int, date: str) -> None:
        """A completion of ``good`` units of ``index``, after what it needs."""
        k = self.knobs
        item = self.plant.items[index]
        scrapped = int(good * k.scrap_rate + self.rng.random())
        made = good + scrapped
        stock, used = self.stock, self.used
        for component, per, _quantity_text, _scrap in item.lines:
            need = made * per
            if stock[component] < need:
                short = need - stock[component]
                if self.plant.items[component].kind == "material":
                    self._purchase(component, short, date)
                else:
                    self.complete(component, self._lot(component, short), date)
            stock[component] -= need
            used[component] += need
        event = {"date": date, "type": "completion", "item": item.id, "quantity": str(good)}
        if scrapped:
            event["scrapped"] = str(scrapped)
        self.emit(event)
        self.made += 1
        stock[index] += good
        for center, hours in self.hours[index]:
            self.earned[center] += good * hours

    # -- a day

    def produce(self, date: str, target: int) -> None:
        """Finished goods until ``target`` completions have been made this year."""
        rng, goods = self.rng, self.plant.goods
        top = self.cumulative[-1]
        while self.made < target:
            good = goods[bisect.bisect_left(self.cumulative, rng.random() * top)]
            quantity = rng.randint(1, 2 * self.knobs.lot - 1)
            self.complete(good, quantity, date)
            if self.backlog[good] < 1:
                self.sold_today.append(good)
            self.backlog[good] += quantity * self.knobs.sales_ratio

    def ship(self, date: str) -> None:
        """Sales of what was ordered and is on hand, in orders of a few lots."""
        rng = self.rng
        for good in self.sold_today:
            item = self.plant.items[good]
            available = min(int(self.backlog[good]), int(self.stock[good]))
            while available > 0:
                quantity = min(available, rng.randint(1, 3 * self.knobs.lot))
                self.emit(
                    {
                        "date": date,
                        "type": "sale",
                        "item": item.id,
                        "quantity": str(quantity),
                        "unit_price": self.plant.price[good],
                    }
                )
                available -= quantity
                self.stock[good] -= quantity
                self.backlog[good] -= quantity
        self.sold_today = [g for g in self.sold_today if self.backlog[g] >= 1]

    def convert(self, date: str) -> None:
        """The conversion costs spent since the last report, per work center and element."""
        rng = self.rng
        for center, earned in enumerate(self.earned):
            if earned <= 0:
                continue
            hours = earned * (1 + rng.gauss(0.02, 0.03))
            hours_text = _fixed(hours, 2)
            if float(hours_text) <= 0:
                continue
            for element, rate in self.plant.centers[center].rates:
                amount = hours * rate * (1 + rng.gauss(0.01, 0.02))
                if amount < 0.01:
                    continue
                self.emit(
                    {
                        "date": date,
                        "type": "conversion",
                        "amount": _fixed(amount, 2),
                        "element": element,
                        "work_center": self.plant.centers[center].id,
                        "hours": hours_text,
                    }
                )
            self.earned[center] = 0.0

    def count(self, date: str) -> None:
        """Cycle counts of a few stocked items: the expected stock, give or take."""
        rng, items = self.rng, self.plant.items
        stocked = [i for i in range(len(items)) if items[i].kind != "finished"]
        for index in rng.sample(stocked, min(self.knobs.counts_per_month, len(stocked))):
            if self.stock[index] < 1:
                continue  # nothing to count (or consumption queued)
            counted = max(round(self.stock[index] * (1 + rng.gauss(-0.002, 0.01))), 0)
            self.emit({"date": date, "type": "count", "item": items[index].id,
                       "quantity": str(counted)})  # fmt: skip
            self.stock[index] = float(counted)

    def run(self) -> None:
        k = self.knobs
        end = k.start + dt.timedelta(days=k.days - 1)
        working = [
            k.start + dt.timedelta(days=n)
            for n in range(k.days)
            if (k.start + dt.timedelta(days=n)).weekday() < 5
        ]
        day = k.start
        while day <= end:
            date = day.isoformat()
            month_end = day.day == calendar.monthrange(day.year, day.month)[1]
            if day.weekday() < 5:
                self.workday += 1
                self.produce(date, k.completions * self.workday // len(working))
                self.ship(date)
            if day.weekday() == 4 or month_end:
                self.convert(date)
            if month_end:
                self.count(date)
                self.emit({"date": date, "type": "close", "period": date[:7]})
            day += dt.timedelta(days=1)


def generate(
    knobs: Knobs,
    folder: Path,
    formats: Sequence[str] = FORMATS,
    name: str = "plant",
) -> Generated:
    """Write ``name.yaml`` (settings and master data) and ``name.events.<format>`` into
    ``folder``; the same knobs give the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    plant = Plant(knobs)
    scenario = folder / f"{name}.yaml"
    plant.write_scenario(scenario)
    writers = _Writers(folder / f"{name}.events", formats)
    try:
        year = _Year(plant, writers)
        year.run()
    finally:
        writers.close()
    return Generated(scenario, writers.paths, dict(sorted(year.counts.items())))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", type=Path, nargs="?", help="where to write (default: a temporary folder)"
    )
    parser.add_argument("--name", default="plant")
    parser.add_argument("--formats", default=",".join(FORMATS))
    for knob in dataclasses.fields(Knobs):
        if knob.name == "start":
            parser.add_argument("--start", type=dt.date.fromisoformat, default=Knobs.start)
            continue
        kind = type(knob.default)
        parser.add_argument(f"--{knob.name.replace('_', '-')}", type=kind, default=knob.default)
    args = parser.parse_args(argv)
    knobs = Knobs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Knobs)})
    with contextlib.ExitStack() as stack:  # make bench runs it without a folder
        folder = args.folder or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        began = time.perf_counter()
        found = generate(knobs, folder, args.formats.split(","), args.name)
        took = time.perf_counter() - began
        _print(found, took)


def _print(found: Generated, took: float) -> None:
    print(
        f"{found.scenario}: master data; {found.total:,} events in {took:.1f} s:", file=sys.stderr
    )
    print("  " + ", ".join(f"{n:,} {kind}" for kind, n in found.counts.items()), file=sys.stderr)
    for path in found.events.values():
        print(f"  {path} ({path.stat().st_size / 2**20:,.1f} MiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
