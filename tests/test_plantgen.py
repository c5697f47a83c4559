"""The synthetic plant of bench/plantgen.py: a small one imports and posts without a refusal,
its three event files say the same, and the same seed writes the same bytes."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backflush.domain import model as m
from backflush.formats.inputs import build_event
from backflush.formats.scenario import read_scenario
from backflush.store.repository import Store
from helpers import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from plantgen import EVENT_FIELDS, Knobs, generate

SMALL = Knobs(
    seed=3,
    finished_goods=8,
    depth=3,
    lines_per_level=6,
    sub_lines=2,
    components=120,
    work_centers=4,
    completions=2_000,
    counts_per_month=8,
    late_rate=0.01,
)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plant")
    generate(SMALL, folder)
    return folder


def test_small_plant_posts_every_event_and_balances(small: Path, tmp_path: Path) -> None:
    scenario = read_scenario(small / "plant.yaml")
    assert scenario.events == ()  # master data only
    raws = _jsonl(small / "plant.events.jsonl")
    events = [
        build_event(raw, scenario.master, scenario.settings, where=f"line {n}")
        for n, raw in enumerate(raws, 1)
    ]
    store = Store(str(tmp_path / "book.db"))
    applied = store.import_scenario(scenario.settings, scenario.master, events)
    assert applied == [True] * len(events)
    assert store.event_count() == len(events)

    book = store.load()
    assert sum(book.balances.values()) == 0  # debits = credits
    assert sorted(book.closed) == [f"2026-{month:02d}" for month in range(1, 13)]
    balances = {account.value: amount for (account, _element), amount in book.balances.items()}
    # Prices off standard, scrap and counts leave variances; the year made and sold things.
    assert balances["purchase_price_variance"] == 0  # closed to COGS at each month end
    assert balances["finished_goods"] > 0
    assert balances["sales"] < 0
    assert balances["cogs"] > 0
    variances = [dict(result.variances) for result in book.closed.values()]
    assert any(v.get("purchase_price", Decimal(0)) != 0 for v in variances)
    assert any(v.get("material_usage", Decimal(0)) != 0 for v in variances)
    assert any(v.get("conversion", Decimal(0)) != 0 for v in variances)


def test_small_plant_is_a_plausible_year(small: Path) -> None:
    scenario = read_scenario(small / "plant.yaml")
    master = scenario.master
    kinds = Counter(item.kind for item in master.items.values())
    assert kinds == {
        m.Kind.MATERIAL: SMALL.components,
        m.Kind.SUBASSEMBLY: 2 * SMALL.pool,  # two levels below the finished goods
        m.Kind.FINISHED: SMALL.finished_goods,
    }
    assert all(len(b.lines) == SMALL.lines_per_level for (b,) in master.boms.values())
    assert len(master.work_centers) == SMALL.work_centers

    raws = _jsonl(small / "plant.events.jsonl")
    types = Counter(raw["type"] for raw in raws)
    assert types["close"] == 12
    assert SMALL.completions <= types["completion"] < SMALL.completions + 10
    assert types["purchase"] > 0 and types["sale"] > 0 and types["conversion"] > 0
    assert types["count"] > 0
    dates = [raw["date"] for raw in raws]
    assert dates == sorted(dates)
    assert len({raw["id"] for raw in raws}) == len(raws)
    made = Counter(master.items[r["item"]].kind for r in raws if r["type"] == "completion")
    assert set(made) == {m.Kind.SUBASSEMBLY, m.Kind.FINISHED}
    assert any("scrapped" in raw for raw in raws)
    # Every value is a string (decimals as strings).
    assert all(isinstance(value, str) for raw in raws for value in raw.values())


def test_csv_and_parquet_hold_the_jsonl_events(small: Path) -> None:
    import pyarrow.parquet as pq

    raws = _jsonl(small / "plant.events.jsonl")
    with (small / "plant.events.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == EVENT_FIELDS
        rows = [{k: v for k, v in row.items() if v != ""} for row in reader]
    assert rows == raws
    table = pq.read_table(small / "plant.events.parquet")
    assert table.column_names == list(EVENT_FIELDS)
    assert all(str(f.type) == "string" for f in table.schema)
    records = [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]
    assert records == raws


def test_same_seed_same_bytes_other_seed_other_events(small: Path, tmp_path: Path) -> None:
    generate(SMALL, tmp_path / "again")
    for name in ("plant.yaml", "plant.events.jsonl", "plant.events.csv", "plant.events.parquet"):
        assert (tmp_path / "again" / name).read_bytes() == (small / name).read_bytes(), name
    other = dataclasses.replace(SMALL, seed=4)
    generate(other, tmp_path / "other", formats=["jsonl"])
    assert not (tmp_path / "other" / "plant.events.csv").exists()
    again = (tmp_path / "other" / "plant.events.jsonl").read_bytes()
    assert again != (small / "plant.events.jsonl").read_bytes()
