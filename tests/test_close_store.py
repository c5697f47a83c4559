"""The close procedure on the persistent book (SQLite and PostgreSQL): reopen, write-off and
retry give the in-memory document whichever way the events are cut into transactions; a
refused reopen or write-off writes nothing; the exceptions policy is stored with the book."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backflush.book import Book
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats.scenario import Scenario, parse_scenario, read_scenario
from backflush.reports.document import document
from backflush.store.repository import Store
from helpers import EXAMPLES, dump_tables

REOPEN = EXAMPLES / "reopen.yaml"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'book.db'}"
    else:
        url = request.getfixturevalue("pg_db_url")
    found = Store(url)
    try:
        yield found
    finally:
        found.close()


def scenario() -> Scenario:
    return read_scenario(REOPEN)


def in_memory(sc: Scenario) -> dict[str, Any]:
    book = Book(sc.settings, sc.master)
    book.post_many(sc.events)
    return document(book)


def stored(store: Store) -> dict[str, Any]:
    return document(store.load(), store.numbered_entries())


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_reopen_and_write_off_in_any_batches_give_the_memory_document(
    store: Store, size: int
) -> None:
    sc = scenario()
    store.import_scenario(sc.settings, sc.master, [])
    events = list(sc.events)
    for start in range(0, len(events), size):
        assert all(store.post(events[start : start + size]))
    got = stored(store)
    assert got == in_memory(sc)
    (january, _) = got["periods"]
    assert january["close_event"] == "close-jan-2"
    assert january["reopened"] == [
        {
            "event": "reopen-jan",
            "date": "2026-02-02",
            "reason": "labor invoice of January missing",
            "close_event": "close-jan",
        }
    ]
    (exception,) = got["exceptions"]
    assert (exception["status"], exception["cleared_by"]) == ("written off", "w1")
    # everything sent again: no change
    before = dump_tables(store)
    assert store.post(events) == [False] * len(events)
    assert dump_tables(store) == before


def test_close_and_reopen_in_one_transaction(store: Store) -> None:
    sc = scenario()
    upto = [e.id for e in sc.events].index("l1") + 1
    store.import_scenario(sc.settings, sc.master, sc.events[:upto])
    close = m.Close("close-jan", dt.date(2026, 1, 31), "2026-01")
    reopen = m.Reopen("reopen-jan", dt.date(2026, 2, 2), "2026-01", "at once")
    again = m.Close("close-jan-2", dt.date(2026, 1, 31), "2026-01")
    assert store.post([close, reopen]) == [True, True]
    assert store.load().closed == {}
    assert store.post([again]) == [True]
    assert store.load().closed["2026-01"].close_event == "close-jan-2"
    # and reopened and closed again in one transaction
    reopen2 = m.Reopen("reopen-jan-2", dt.date(2026, 2, 3), "2026-01", "once more")
    again2 = m.Close("close-jan-3", dt.date(2026, 1, 31), "2026-01")
    assert store.post([reopen2, again2]) == [True, True]
    book = Book(sc.settings, sc.master)
    book.post_many([*sc.events[:upto], close, reopen, again, reopen2, again2])
    assert stored(store) == document(book)
    assert [r.close_event for r in store.load().reopened("2026-01")] == [
        "close-jan",
        "close-jan-2",
    ]


def test_refused_reopen_and_write_off_write_nothing(store: Store) -> None:
    sc = scenario()
    store.import_scenario(sc.settings, sc.master, sc.events)
    before = dump_tables(store)
    refused = [
        (m.Reopen("x1", dt.date(2026, 3, 1), "2026-01", "why"), "only the latest closed"),
        (m.WriteOff("x2", dt.date(2026, 3, 1), "c1", "M", "again"), "already written off by w1"),
        (m.Reversal("x3", dt.date(2026, 3, 1), "c1"), "written off by w1"),
        (m.Reversal("x4", dt.date(2026, 3, 1), "reopen-jan"), "cannot be reversed"),
        (m.Conversion("late", dt.date(2026, 2, 27), Decimal("1.00")), "which is closed"),
    ]
    for event, message in refused:
        with pytest.raises(PostingError, match=message):
            store.post(
                [m.Purchase("fine", dt.date(2026, 3, 2), "M", Decimal(1), Decimal(2)), event]
            )
        assert dump_tables(store) == before


def test_the_exceptions_policy_is_stored_with_the_book(store: Store) -> None:
    sc = scenario()
    assert sc.settings.exceptions_at_close is m.ExceptionsAtClose.REFUSE
    upto = [e.id for e in sc.events].index("close-jan-2") + 1
    store.import_scenario(sc.settings, sc.master, sc.events[:upto])
    assert store.settings() == sc.settings
    # c1's 2 M still wait: February may not close
    with pytest.raises(PostingError, match=r"older than 2026-02 still open: c1/M \(2 since"):
        store.post([m.Close("close-feb", dt.date(2026, 2, 28), "2026-02")])
    store.post([m.WriteOff("w1", dt.date(2026, 2, 3), "c1", "M", "found")])
    assert store.post([m.Close("close-feb", dt.date(2026, 2, 28), "2026-02")]) == [True]


# purchase+sale with the GAAP adjustment: the close inventories 3 F x 1.00 labor (Book.
# unsold_conversion), which the reopen, read back from the store, must take back.
GAAP = """
book: {name: GAAP plant, currency: USD, triggers: purchase+sale, disposition: cogs,
       inventory_unsold_conversion: true, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "2"}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "10", unit_cost: "2.00"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "4"}
  - {id: s1, date: 2026-01-20, type: sale, item: F, quantity: "1", unit_price: "9.00"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "3.50", element: labor}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: reopen-jan, date: 2026-02-01, type: reopen, period: 2026-01, reason: a sale was missed}
  - {id: s2, date: 2026-01-25, type: sale, item: F, quantity: "1", unit_price: "9.00"}
  - {id: close-jan-2, date: 2026-01-31, type: close, period: 2026-01}
"""


def test_a_reopen_read_back_from_the_store_takes_back_the_unsold_conversion(
    store: Store,
) -> None:
    sc = parse_scenario(GAAP, "gaap.yaml")
    store.import_scenario(sc.settings, sc.master, [])
    for event in sc.events:  # one transaction each: the reopen reads the close back
        assert store.post([event]) == [True]
        if event.id == "reopen-jan":
            assert store.load().unsold_conversion == {(m.Account.FINISHED_GOODS, "labor"): 0}
    book = store.load()
    # 2 F unsold at the second close: 2.00 inventoried
    assert book.unsold_conversion == {(m.Account.FINISHED_GOODS, "labor"): Decimal("2.00")}
    assert stored(store) == in_memory(sc)
