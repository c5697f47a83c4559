"""A close values the period as it ended, whenever it is posted: events of later periods posted
before it (a plant closes January in the second week of February) change neither its
variances nor what it disposes of. Stock on hand, stock in process and consumption queued for
stock are all taken as they stood at the period end (``Book.held_through``), in memory, in a
store, and in a book made before the store kept them (migration 0010)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backflush.book import Book
from backflush.domain.model import Account, Close, Event
from backflush.formats.scenario import Scenario, parse_scenario
from backflush.store.repository import Store
from helpers import EXAMPLES, downgrade, dump_tables

D = Decimal

#: widgets_prorate (worked by hand in test_variances.py) with a February completion that takes
#: the 40 M left and queues 20 more: January's close must still see 40 M on hand.
WIDGETS = (EXAMPLES / "widgets_prorate.yaml").read_text().split("  - {id: s2,")[0] + (
    "  - {id: c2, date: 2026-02-05, type: completion, item: W, quantity: 20}\n"
)

#: Sequential costing: stock issued to production sits in work in process until completed.
#: February issues more and completes; the purchase price variance of January is prorated by
#: the standard material each inventory holds at January's end.
SEQUENTIAL = """
book:
  name: Issued
  currency: USD
  triggers: sequential
  disposition: {default: cogs, purchase_price: prorate}
items:
  - {id: M, kind: material, standard_cost: "2.00", flush: manual}
  - {id: W, kind: finished, standard_cost: {conversion: {labor: "3.00"}}}
boms:
  - {item: W, lines: [{component: M, quantity: 3}]}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: 45, unit_cost: "2.20"}
  - {id: i1, date: 2026-01-05, type: issue, item: M, quantity: 25}
  - {id: c1, date: 2026-01-20, type: completion, item: W, quantity: 5}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "15.00", element: labor}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: i2, date: 2026-02-03, type: issue, item: M, quantity: 20}
  - {id: c2, date: 2026-02-10, type: completion, item: W, quantity: 10}
  - {id: p2, date: 2026-02-12, type: purchase, item: M, quantity: 30, unit_cost: "2.00"}
"""

#: A release whose forward-flushed lines wait for stock (queued into process), a completion
#: queued for stock, a receipt that clears part of it, a reversal that drops a queued
#: shortage, a write-off and a reopen, over three periods: every change of the queue.
QUEUED = """
book:
  name: Queued
  currency: USD
  triggers: purchase+completion
  disposition: {default: cogs, purchase_price: prorate, material_usage: prorate}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: B, kind: material, standard_cost: "1.00"}
  - {id: W, kind: finished, standard_cost: {conversion: {labor: "3.00"}}}
  - {id: G, kind: finished}
boms:
  - {item: W, lines: [{component: M, quantity: 3}]}
  - {item: G, lines: [{component: B, quantity: 2, flush: forward}, {component: M, quantity: 1}]}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: 40, unit_cost: "2.10"}
  - {id: p2, date: 2026-01-02, type: purchase, item: B, quantity: 6, unit_cost: "1.05"}
  - {id: r1, date: 2026-01-06, type: release, item: G, quantity: 5, order: WO-1}
  - {id: c1, date: 2026-01-10, type: completion, item: W, quantity: 10}
  - {id: c2, date: 2026-01-12, type: completion, item: W, quantity: 5}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "50.00", element: labor}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: p3, date: 2026-02-02, type: purchase, item: M, quantity: 3, unit_cost: "1.90"}
  - {id: x1, date: 2026-02-03, type: reversal, reverses: c2}
  - {id: p4, date: 2026-02-04, type: purchase, item: B, quantity: 3, unit_cost: "1.00"}
  - {id: c3, date: 2026-02-06, type: completion, item: W, quantity: 8}
  - {id: w1, date: 2026-02-07, type: write_off, event: c3, item: M, reason: found in the bin}
  - {id: c4, date: 2026-02-08, type: completion, item: W, quantity: 4}
  - {id: close-feb, date: 2026-02-28, type: close, period: 2026-02}
  - {id: reopen-feb, date: 2026-03-02, type: reopen, period: 2026-02, reason: late invoice}
  - {id: l2, date: 2026-02-27, type: conversion, amount: "20.00", element: labor}
  - {id: close-feb-2, date: 2026-02-28, type: close, period: 2026-02}
  - {id: p5, date: 2026-03-03, type: purchase, item: M, quantity: 30, unit_cost: "2.00"}
"""


def late(events: Sequence[Event], close: str) -> list[Event]:
    """``events`` with the close ``close`` posted last."""
    (found,) = [e for e in events if e.id == close]
    return [e for e in events if e is not found] + [found]


def nonzero(balances: dict[Any, Decimal]) -> dict[Any, Decimal]:
    return {key: value for key, value in balances.items() if value}


def posted(sc: Scenario, events: Sequence[Event]) -> Book:
    book = Book(sc.settings, sc.master)
    assert book.post_many(events) == [True] * len(events)
    return book


def test_a_late_close_sees_the_stock_on_hand_as_the_period_ended() -> None:
    sc = parse_scenario(WIDGETS)
    on_time, late_close = posted(sc, sc.events), posted(sc, late(sc.events, "close-jan"))
    # Purchase price variance 100 x 0.0007 = 0.07, prorated by the standard material each
    # holds at January's end: RIP 40 M x 2 = 80, FG 8 W x 6 = 48, COGS 12 W x 6 = 72.
    for book in (on_time, late_close):
        january = book.balances_through("2026-01")
        assert january[(Account.RAW_IN_PROCESS, "variance:purchase_price")] == D("0.03")
        assert january[(Account.COGS, "")] == D("267.62")
    assert late_close.closed["2026-01"] == on_time.closed["2026-01"]
    assert late_close.balances_through("2026-01") == on_time.balances_through("2026-01")


def test_a_late_close_sees_the_stock_in_process_as_the_period_ended() -> None:
    sc = parse_scenario(SEQUENTIAL)
    on_time = posted(sc, sc.events)
    late_close = posted(sc, late(sc.events, "close-jan"))
    # 45 x 0.20 = 9.00 by the standard material held: materials 20 x 2 = 40, WIP 10 x 2 = 20,
    # FG 5 x 3 x 2 = 30 (nothing sold)
    january = on_time.balances_through("2026-01")
    assert january[(Account.MATERIALS, "variance:purchase_price")] == D("4.00")
    assert january[(Account.WORK_IN_PROCESS, "variance:purchase_price")] == D("2.00")
    assert january[(Account.FINISHED_GOODS, "variance:purchase_price")] == D("3.00")
    assert late_close.closed["2026-01"] == on_time.closed["2026-01"]
    assert late_close.balances_through("2026-01") == january


def test_a_late_close_sees_the_queue_as_the_period_ended() -> None:
    sc = parse_scenario(QUEUED)
    upto = [e.id for e in sc.events].index("close-feb")
    for events, close, period in [
        (sc.events[:upto], "close-jan", "2026-01"),
        (sc.events, "close-feb-2", "2026-02"),
    ]:
        on_time, late_close = posted(sc, events), posted(sc, late(events, close))
        assert late_close.closed[period] == on_time.closed[period]
        assert late_close.balances_through(period) == on_time.balances_through(period)
        assert late_close.held_through(period) == on_time.held_through(period)


@pytest.mark.parametrize("text", [WIDGETS, SEQUENTIAL, QUEUED], ids=["on_hand", "wip", "queue"])
def test_a_store_closes_late_as_on_time(store: Store, text: str) -> None:
    """Posted one event at a time, January's close last: the store's close is the one the
    book makes on time, and what it keeps per period is what the book keeps."""
    sc = parse_scenario(text)
    events = [e for e in sc.events if not (isinstance(e, Close) and e.period != "2026-01")]
    events = [e for e in events if e.type != "reopen" and e.id != "l2"]
    store.import_scenario(sc.settings, sc.master, [])
    for event in late(events, "close-jan"):
        assert store.post([event]) == [True]
    on_time = posted(sc, events)
    loaded = store.load()
    assert loaded.closed["2026-01"] == on_time.closed["2026-01"]
    assert nonzero(loaded.balances) == nonzero(on_time.balances)
    with store.transaction() as conn:
        kept = store._load(conn, history=False, period_sums=True)
    assert kept.held_moved == posted(sc, late(events, "close-jan")).held_moved


def test_the_migration_makes_the_changes_held_of_an_older_book(tmp_path: Path) -> None:
    """A book written before the store kept the stock in process and the queue per period
    gets them from its movements, its events' details and its queue, as the book counts
    them: with every event on its own row, and with the journal summed per day."""
    for detail in ("event", "day"):
        sc = parse_scenario(QUEUED.replace("triggers:", f"journal_detail: {detail}\n  triggers:"))
        store = Store(f"sqlite:///{tmp_path / f'{detail}.db'}")
        try:
            store.import_scenario(sc.settings, sc.master, [])
            for event in sc.events:
                assert store.post([event]) == [True]
            want = dump_tables(store, logs=False)
            assert want["period_held"], "the scenario changes the queue and the stock in process"
            downgrade(store, "0009")
            store.migrate()
            got = dump_tables(store, logs=False)
        finally:
            store.close()
        assert got["period_held"] == want["period_held"], detail
        assert got == want
