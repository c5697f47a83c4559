"""What the reports read instead of the journal: the journal summed per item, the quantities
moved per day, and items by family and site. Kept by the book, stored, and made from the
journal and movements for a book created before they existed (migration 0004)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backflush.book import Book
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import EXAMPLE_NAMES, EXAMPLES, downgrade, dump_tables


def journal_by_item(book: Book) -> dict[tuple[str, Any, str, str], Decimal]:
    sums: dict[tuple[str, Any, str, str], Decimal] = {}
    for entry in book.entries():
        for line in entry.lines:
            key = (entry.period, line.account, line.element, line.item)
            sums[key] = sums.get(key, Decimal(0)) + line.amount
    return sums


def flat(book: Book) -> dict[tuple[str, Any, str, str], Decimal]:
    return {(p, *k): v for p, by in book.item_activity.items() for k, v in by.items()}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_item_activity_is_the_journal_summed_per_item(name: str) -> None:
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    assert flat(book) == journal_by_item(book)
    for period, by_item in book.item_activity.items():  # and the items add up to the accounts
        per_account: dict[Any, Decimal] = {}
        for (account, element, _), amount in by_item.items():
            key = (account, element)
            per_account[key] = per_account.get(key, Decimal(0)) + amount
        assert per_account == book.activity[period], (name, period)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_daily_flows_add_up_to_the_period_flows(name: str) -> None:
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    for period, flows in book.flows.items():
        by_flow: dict[str, Decimal] = {}
        for (_, flow), quantity in flows.items():
            by_flow[flow] = by_flow.get(flow, Decimal(0)) + quantity
        daily: dict[str, Decimal] = {}
        for (day, flow), quantity in book.daily.get(period, {}).items():
            assert f"{day:%Y-%m}" == period
            daily[flow] = daily.get(flow, Decimal(0)) + quantity
        assert daily == by_flow, (name, period)
    completed = sum(
        (q for days in book.daily.values() for (_, f), q in days.items() if f == "completed"),
        Decimal(0),
    )
    assert completed == sum(
        (q for flows in book.flows.values() for (_, f), q in flows.items() if f == "completed"),
        Decimal(0),
    )


@pytest.mark.parametrize("name", ["northshore", "gearbox_orders", "reopen", "widgets_prorate"])
def test_stored_sums_equal_the_books_posted_in_batches(store: Store, name: str) -> None:
    sc = read_scenario(EXAMPLES / f"{name}.yaml")
    in_memory = run_scenario(sc)
    store.import_scenario(sc.settings, sc.master, sc.events, batch=3)  # many read-add-writes
    book, _, _ = store.snapshot()
    assert flat(book) == flat(in_memory)
    assert book.daily == in_memory.daily
    posting = store.load()
    assert posting.daily == in_memory.daily


def test_events_posted_one_at_a_time_add_to_the_stored_sums(store: Store) -> None:
    sc = read_scenario(EXAMPLES / "northshore.yaml")
    store.import_scenario(sc.settings, sc.master, [])
    for event in sc.events:
        store.post([event])
    book, _, _ = store.snapshot()
    assert flat(book) == flat(run_scenario(sc))


@pytest.mark.parametrize("name", ["northshore", "reopen", "gearbox_orders"])
def test_migration_makes_the_sums_of_an_older_book_from_its_journal(
    tmp_path: Path, name: str
) -> None:
    sc = read_scenario(EXAMPLES / f"{name}.yaml")
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        store.import_scenario(sc.settings, sc.master, sc.events)
        want = dump_tables(store, logs=False)
        downgrade(store, "0003")
        store.migrate()
        got = dump_tables(store, logs=False)
    finally:
        store.close()
    assert got["item_activity"] == want["item_activity"]
    assert got["daily_flows"] == want["daily_flows"]
    assert got == want


FAMILIES = """
book: {name: Families, currency: USD, triggers: completion}
items:
  - {id: RES, kind: material, standard_cost: "2.00"}
  - {id: CHAIR, kind: finished, family: seating, site: Lyon, standard_cost: {conversion: "3"}}
  - {id: STOOL, kind: finished, family: seating, site: Porto, standard_cost: {conversion: "1"}}
boms:
  - {item: CHAIR, lines: [{component: RES, quantity: 2}]}
  - {item: STOOL, lines: [{component: RES, quantity: 1}]}
events:
  - {id: p1, type: purchase, date: 2026-01-02, item: RES, quantity: 10, unit_cost: "2.00"}
  - {id: c1, type: completion, date: 2026-01-30, item: CHAIR, quantity: 2}
  - {id: c2, type: completion, date: 2026-01-31, item: STOOL, quantity: 3}
"""


def test_family_and_site_are_kept_from_file_to_store(store: Store) -> None:
    sc = parse_scenario(FAMILIES, "families.yaml")
    assert (sc.master.items["CHAIR"].family, sc.master.items["CHAIR"].site) == ("seating", "Lyon")
    assert (sc.master.items["RES"].family, sc.master.items["RES"].site) == ("", "")
    store.import_scenario(sc.settings, sc.master, sc.events)
    assert store.master().items == sc.master.items
    book, _, _ = store.snapshot()
    assert book.daily["2026-01"] == {
        (sc.events[0].date, "received"): Decimal(10),
        (sc.events[1].date, "completed"): Decimal(2),
        (sc.events[1].date, "backflushed"): Decimal(-4),
        (sc.events[2].date, "completed"): Decimal(3),
        (sc.events[2].date, "backflushed"): Decimal(-3),
    }
