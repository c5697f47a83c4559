"""The persistent book (DESIGN §4.2) on SQLite and PostgreSQL: same events, same results as the
in-memory runner; idempotent; one transaction per write, nothing half-written; the migration
makes exactly the declared schema; amounts survive exactly."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from backflush.book import Book, ConflictError
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats.scenario import Scenario, parse_scenario, read_scenario
from backflush.reports.document import document
from backflush.run import run_scenario
from backflush.store.repository import (
    SCHEMA_REVISION,
    WRITE_LOCK,
    Store,
    StoreError,
    event_from_payload,
)
from backflush.store.schema import metadata
from helpers import EXAMPLE_NAMES, EXAMPLES, assert_matches_expected, downgrade, dump_tables

# A small plant where the backflush queue matters: completions run ahead of purchases, a
# January event is reversed in February, and a reversal gives back stock that clears the queue.
SHORTAGE_PLANT = """\
book: {name: Shortage plant, currency: USD, triggers: purchase+completion, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: K, kind: material, standard_cost: "0.50"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00", overhead: "2.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "3", scrap: "0.10"}, {component: K, quantity: 2}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "20", unit_cost: "2.10"}
  - {id: k1, date: 2026-01-05, type: purchase, item: K, quantity: "100", unit_cost: "0.50"}
  # needs 33 M, only 20 on hand: 13 wait in the queue
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "10"}
  - {id: l1, date: 2026-01-20, type: conversion, amount: "12.00", element: labor}
  # stock arrives: the queued 13 are consumed by c1, caused by p2
  - {id: p2, date: 2026-01-25, type: purchase, item: M, quantity: "50", unit_cost: "1.95"}
  - {id: s1, date: 2026-01-28, type: sale, item: F, quantity: "6", unit_price: "15.00"}
  - {id: o1, date: 2026-01-31, type: conversion, amount: "21.00", element: overhead}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  # 21 made need 69.3 M, 37 on hand: 32.3 queued
  - {id: c2, date: 2026-02-03, type: completion, item: F, quantity: "20", scrapped: "1"}
  # a correction of January in February: c1 gives back its 33 M (clearing c2's queue), 10 F
  - {id: r1, date: 2026-02-04, type: reversal, reverses: c1, reason: counted twice}
  - {id: k2, date: 2026-02-05, type: purchase, item: K, quantity: "10", unit_cost: "0.55"}
  - {id: r2, date: 2026-02-06, type: reversal, reverses: k2, reason: wrong supplier}
  - {id: s2, date: 2026-02-20, type: sale, item: F, quantity: "9", unit_price: "15.00"}
  - {id: l2, date: 2026-02-27, type: conversion, amount: "25.00", element: labor}
  - {id: o2, date: 2026-02-27, type: conversion, amount: "38.00", element: overhead}
  - {id: close-feb, date: 2026-02-28, type: close, period: 2026-02}
"""

# Sale as trigger with the GAAP adjustment (unsold conversion inventoried at close), disposition
# keep, shortage allow, a phantom, a manual line issued beforehand, component scrap, a count.
SALE_TRIGGER_PLANT = """\
book: {name: Sale-triggered plant, currency: USD, triggers: purchase+sale, disposition: keep,
       inventory_unsold_conversion: true, shortage: allow}
items:
  - {id: M, kind: material, standard_cost: "4.00"}
  - {id: G, kind: material, standard_cost: "0.25", flush: manual}
  - {id: S, kind: subassembly, standard_cost: {conversion: "0.50"}}
  - {id: P, kind: phantom}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "2.00", overhead: "3.00"}}}
boms:
  - {item: S, lines: [{component: M, quantity: "1"}]}
  - {item: P, lines: [{component: M, quantity: "0.5"}]}
  - item: F
    lines: [{component: S, quantity: "2"}, {component: P, quantity: "1"},
            {component: G, quantity: "4", flush: manual}]
events:
  - {id: m1, date: 2026-03-02, type: purchase, item: M, quantity: "300", unit_cost: "4.10"}
  - {id: g1, date: 2026-03-02, type: purchase, item: G, quantity: "500", unit_cost: "0.25"}
  - {id: s1, date: 2026-03-05, type: completion, item: S, quantity: "120"}
  - {id: i1, date: 2026-03-06, type: issue, item: G, quantity: "260"}
  - {id: f1, date: 2026-03-10, type: completion, item: F, quantity: "50", scrapped: "2"}
  - {id: x1, date: 2026-03-12, type: scrap, item: M, quantity: "3"}
  - {id: n1, date: 2026-03-20, type: count, item: M, quantity: "150"}
  - {id: v1, date: 2026-03-25, type: sale, item: F, quantity: "30", unit_price: "30.00"}
  - {id: l1, date: 2026-03-31, type: conversion, amount: "110.00", element: labor}
  - {id: o1, date: 2026-03-31, type: conversion, amount: "140.00", element: overhead}
  - {id: close-mar, date: 2026-03-31, type: close, period: 2026-03}
  - {id: v2, date: 2026-04-08, type: sale, item: F, quantity: "15", unit_price: "30.00"}
  # S runs short under allow: flagged, stock goes negative
  - {id: f2, date: 2026-04-15, type: completion, item: F, quantity: "10"}
  - {id: r1, date: 2026-04-16, type: reversal, reverses: x1}
  - {id: l2, date: 2026-04-30, type: conversion, amount: "25.00", element: labor}
  - {id: close-apr, date: 2026-04-30, type: close, period: 2026-04}
"""

# A BOM version at the lower level revalues stock when it takes effect; January is closed
# after February's first completion, with the unsold conversion of January's units only.
VERSIONS_PLANT = """\
book: {name: Versions, currency: USD, triggers: purchase+sale, inventory_unsold_conversion: true}
items:
  - {id: A, kind: material, standard_cost: "1.00"}
  - {id: B, kind: material, standard_cost: "3.00"}
  - {id: S, kind: subassembly, standard_cost: {conversion: "0.40"}}
  - {id: F, kind: finished, standard_cost: {conversion: "2.00"}}
boms:
  - {item: F, lines: [{component: S, quantity: 1}]}
  - {item: S, lines: [{component: A, quantity: 2}]}
  - {item: S, effective_from: 2026-02-01, lines: [{component: B, quantity: 1}]}
events:
  - {id: a, date: 2026-01-02, type: purchase, item: A, quantity: 100, unit_cost: "1.00"}
  - {id: b, date: 2026-01-02, type: purchase, item: B, quantity: 100, unit_cost: "3.10"}
  - {id: s, date: 2026-01-10, type: completion, item: S, quantity: 20}
  - {id: f, date: 2026-01-20, type: completion, item: F, quantity: 8}
  - {id: c, date: 2026-01-31, type: conversion, amount: "30.00"}
  - {id: f2, date: 2026-02-03, type: completion, item: F, quantity: 5}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: x, date: 2026-02-10, type: sale, item: F, quantity: 10, unit_price: "9.00"}
  - {id: close-feb, date: 2026-02-28, type: close, period: 2026-02}
"""

REJECTING_PLANT = SHORTAGE_PLANT.replace("shortage: queue", "shortage: reject").split("events:")[0]


# ---------------------------------------------------------------- fixtures and helpers


def scenario(name: str) -> Scenario:
    if name == "shortage_plant":
        return parse_scenario(SHORTAGE_PLANT, "shortage_plant.yaml")
    if name == "sale_trigger_plant":
        return parse_scenario(SALE_TRIGGER_PLANT, "sale_trigger_plant.yaml")
    if name == "versions_plant":
        return parse_scenario(VERSIONS_PLANT, "versions_plant.yaml")
    return read_scenario(EXAMPLES / f"{name}.yaml")


def in_memory(sc: Scenario, events: Sequence[m.Event] | None = None) -> dict[str, Any]:
    book = Book(sc.settings, sc.master)
    book.post_many(sc.events if events is None else events)
    return document(book)


def stored(store: Store) -> dict[str, Any]:
    return document(store.load(), store.numbered_entries())


def assert_same_document(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want)
    for key in want:
        assert got[key] == want[key], key


def events_of(sc: Scenario, *ids: str) -> list[m.Event]:
    by_id = {e.id: e for e in sc.events}
    return [by_id[i] for i in ids]


def open_book(store: Store, sc: Scenario, upto: str | None = None) -> None:
    """Create the book with the scenario's master data and its events up to id ``upto``."""
    events = list(sc.events)
    if upto is not None:
        events = events[: [e.id for e in events].index(upto) + 1]
    assert all(store.import_scenario(sc.settings, sc.master, events))


# ---------------------------------------------------------------- same answers as in memory

ALL_SCENARIOS = [*EXAMPLE_NAMES, "shortage_plant", "sale_trigger_plant", "versions_plant"]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_imported_gives_known_answer_and_in_memory_document(
    store: Store, name: str
) -> None:
    sc = scenario(name)
    assert store.import_scenario(sc.settings, sc.master, sc.events) == [True] * len(sc.events)
    got = stored(store)
    assert_matches_expected(name, got)
    in_memory = run_scenario(sc)
    assert_same_document(got, document(in_memory))
    # The events posted, and the revaluations the book posted itself.
    assert store.event_count() == len(sc.events) + sum(
        isinstance(r.event, m.Revaluation) for r in in_memory.recorded.values()
    )


def test_shortage_plant_through_the_store_matches_memory(store: Store) -> None:
    sc = scenario("shortage_plant")
    open_book(store, sc)
    got = stored(store)
    assert_same_document(got, in_memory(sc))
    # the story the scenario tells, as figures
    assert got["quantities"] == {"F": "5", "K": "58", "M": "0.7"}
    exceptions = {(x["event"], x["item"]): x for x in got["exceptions"]}
    assert exceptions[("c1", "M")]["status"] == "cleared"
    assert exceptions[("c1", "M")]["cleared_by"] == "p2"
    assert exceptions[("c2", "M")]["quantity"] == "32.3"
    assert exceptions[("c2", "M")]["cleared_by"] == "r1"
    assert [p["closed"] for p in got["periods"]] == [True, True]


# ---------------------------------------------------------------- idempotency and conflicts


@pytest.mark.parametrize("name", ["northshore", "shortage_plant", "sale_trigger_plant"])
def test_reimport_is_a_no_op(store: Store, name: str) -> None:
    sc = scenario(name)
    open_book(store, sc)
    before_doc, before_rows = stored(store), dump_tables(store)
    assert store.import_scenario(sc.settings, sc.master, sc.events) == [False] * len(sc.events)
    assert store.post(list(sc.events)) == [False] * len(sc.events)
    assert stored(store) == before_doc
    assert dump_tables(store) == before_rows


def test_repost_of_an_event_in_a_closed_period_is_still_a_no_op(store: Store) -> None:
    sc = scenario("northshore")
    open_book(store, sc)
    before = dump_tables(store)
    assert store.post(events_of(sc, "jan-po-pcb", "jan-done")) == [False, False]
    assert dump_tables(store) == before


def test_same_id_with_different_content_is_a_conflict_and_writes_nothing(store: Store) -> None:
    sc = scenario("northshore")
    open_book(store, sc, upto="jan-sold")
    before = dump_tables(store)
    original = events_of(sc, "jan-po-pcb")[0]
    assert isinstance(original, m.Purchase)
    changed = m.Purchase(original.id, original.date, original.item, Decimal(99), Decimal("12.08"))
    fresh = m.Conversion("jan-extra", original.date, Decimal("10.00"), "labor")
    with pytest.raises(ConflictError, match=r"jan-po-pcb.*different content"):
        store.post([changed])
    with pytest.raises(ConflictError, match="jan-po-pcb"):
        store.post([fresh, changed])  # the new event before it is not stored either
    with pytest.raises(ConflictError, match="jan-po-pcb"):
        store.import_scenario(sc.settings, sc.master, [fresh, changed])
    assert dump_tables(store) == before


# ---------------------------------------------------------------- state survives reload


@pytest.mark.parametrize("name", ALL_SCENARIOS)
def test_events_posted_one_by_one_give_the_import_document(
    db_url: str, name: str, tmp_path: Path
) -> None:
    """After every event, the book reloaded from the database is the book in memory; at the
    end it is the book one import (into a SQLite file) makes."""
    sc = scenario(name)
    first = Store(db_url)
    try:
        assert first.import_scenario(sc.settings, sc.master, []) == []
    finally:
        first.close()
    for n, event in enumerate(sc.events, 1):
        store = Store(db_url)  # a new connection pool: everything comes back from the database
        try:
            assert store.post([event]) == [True]
            got = stored(store)
            assert_same_document(got, in_memory(sc, sc.events[:n]))
        finally:
            store.close()
    imported = Store(f"sqlite:///{tmp_path / 'imported.db'}")
    try:
        imported.import_scenario(sc.settings, sc.master, sc.events)
        assert_same_document(got, stored(imported))
    finally:
        imported.close()


@pytest.mark.parametrize("name", ["shortage_plant", "sale_trigger_plant"])
@pytest.mark.parametrize("size", [2, 3, 5])
def test_events_posted_in_batches_give_the_import_document(
    store: Store, name: str, size: int
) -> None:
    sc = scenario(name)
    store.import_scenario(sc.settings, sc.master, [])
    for start in range(0, len(sc.events), size):
        assert store.post(sc.events[start : start + size]) == [True] * len(
            sc.events[start : start + size]
        )
    assert_same_document(stored(store), in_memory(sc))


def test_shortage_queue_waits_across_transactions_then_clears(store: Store) -> None:
    sc = scenario("shortage_plant")
    open_book(store, sc, upto="c1")
    queued = store.load().open_shortages()
    assert [(s.event, s.item, s.open) for s in queued] == [("c1", "M", Decimal(13))]
    assert store.load().quantity("M") == 0
    assert store.post(events_of(sc, "l1")) == [True]  # the queue survives an unrelated write
    assert [s.open for s in store.load().open_shortages()] == [Decimal(13)]
    assert store.post(events_of(sc, "p2")) == [True]
    book = store.load()
    assert book.open_shortages() == []
    assert book.cleared_by[("c1", "M", "shortage")] == "p2"
    assert book.quantity("M") == 50 - 13
    with store.engine.connect() as conn:
        moved = conn.execute(
            sa.select(metadata.tables["movements"]).where(
                metadata.tables["movements"].c.cause == "p2",
                metadata.tables["movements"].c.event == "c1",
            )
        ).all()
    assert [(r.item, r.on_hand) for r in moved] == [("M", Decimal(-13))]


def test_reversal_of_an_event_from_an_earlier_transaction(store: Store) -> None:
    sc = scenario("shortage_plant")
    open_book(store, sc, upto="c2")
    assert store.load().quantity("F") == 4 + 20
    # c1 was written four transactions ago, and its queued consumption was cleared by p2
    assert store.post(events_of(sc, "r1")) == [True]
    book = store.load()
    assert book.quantity("F") == 14
    assert book.quantity("M") == Decimal("0.7")  # 33 given back, 32.3 of them to c2's queue
    assert book.open_shortages() == []
    doc = stored(store)
    reversal = [e for e in doc["entries"] if e["event"] == "r1"]
    original = [e for e in doc["entries"] if e["event"] == "c1"]
    assert len(reversal) == len(original) == 1
    flipped = [(ln["account"], ln["credit"], ln["debit"]) for ln in original[0]["lines"]]
    assert [(ln["account"], ln["debit"], ln["credit"]) for ln in reversal[0]["lines"]] == flipped
    with pytest.raises(PostingError, match="already reversed by r1"):
        store.post([m.Reversal("r1-again", dt.date(2026, 2, 5), "c1")])
    assert_same_document(doc, in_memory(sc, sc.events[: 1 + [e.id for e in sc.events].index("r1")]))


def test_sale_trigger_plant_keeps_its_gaap_adjustment_across_reloads(store: Store) -> None:
    sc = scenario("sale_trigger_plant")
    open_book(store, sc, upto="close-mar")
    book = store.load()
    inventoried = {(a.value, e): v for (a, e), v in book.unsold_conversion.items()}
    # 20 routers on hand: labor 2.00, overhead 3.00 and the subassembly's 2 x 0.50 conversion
    assert inventoried == {
        ("finished_goods", ""): 20,
        ("finished_goods", "labor"): 40,
        ("finished_goods", "overhead"): 60,
    }
    assert store.post(list(sc.events[11:])) == [True] * 5
    got = stored(store)
    assert_same_document(got, in_memory(sc))
    assert got["quantities"]["S"] == "-4"
    assert [x["status"] for x in got["exceptions"]] == ["flagged"]


def test_a_late_close_disposes_only_its_own_period(store: Store) -> None:
    sc = scenario("northshore")
    in_order = in_memory(sc)
    january_close = events_of(sc, "jan-close")
    late = [e for e in sc.events if e.id not in ("jan-close", "feb-close")]
    open_book(store, Scenario(sc.settings, sc.master, tuple(late)))
    store.post(january_close)  # February's events are in before January is closed
    store.post(events_of(sc, "feb-close"))
    got = stored(store)
    assert [p["gross_margin"] for p in got["periods"]] == [
        p["gross_margin"] for p in in_order["periods"]
    ]  # 1450000.00 and 1330000.00 (disposing February's variances in January gave 1250000.00
    # and 1530000.00)
    assert got["periods"][0]["balances_at_close"] == in_order["periods"][0]["balances_at_close"]


# ---------------------------------------------------------------- nothing half-written


@pytest.mark.parametrize(
    "case", ["closed_period", "reject_shortage", "unknown_reversal", "third_of_batch"]
)
def test_a_refused_event_writes_nothing(store: Store, case: str) -> None:
    day = dt.date(2026, 2, 10)
    if case == "reject_shortage":
        sc = parse_scenario(REJECTING_PLANT, "rejecting.yaml")
        open_book(store, sc)
        store.post([m.Purchase("p1", day, "M", Decimal(10), Decimal("2.00"))])
        batch: list[m.Event] = [m.Completion("c1", day, "F", Decimal(10))]  # needs 33 M
        expected = r"needs 33\.0+ of 'M' but only 10 is on hand \(shortage policy reject\)"
    else:
        sc = scenario("shortage_plant")
        open_book(store, sc, upto="close-jan")
        if case == "closed_period":
            batch = [m.Conversion("late", dt.date(2026, 1, 31), Decimal("5.00"), "labor")]
            expected = "late: dated 2026-01-31 in period 2026-01, which is closed"
        elif case == "unknown_reversal":
            batch = [m.Reversal("r9", day, "no-such-event")]
            expected = "r9: reverses unknown event 'no-such-event'"
        else:
            batch = [
                m.Purchase("good-1", day, "M", Decimal(5), Decimal("2.00")),
                m.Conversion("good-2", day, Decimal("7.00"), "labor"),
                m.Completion("bad-3", dt.date(2026, 1, 15), "F", Decimal(1)),
            ]
            expected = "bad-3: dated 2026-01-15 in period 2026-01, which is closed"
    before_rows, before_doc = dump_tables(store), stored(store)
    with pytest.raises(PostingError, match=expected):
        store.post(batch)
    assert dump_tables(store) == before_rows
    assert stored(store) == before_doc
    if case == "third_of_batch":  # the book is not wedged: the good events still go in
        assert store.post(batch[:2]) == [True, True]
        assert store.event_count() == 8 + 2


def test_a_refused_import_writes_no_master_data_either(store: Store) -> None:
    sc = scenario("shortage_plant")
    open_book(store, sc, upto="close-jan")
    before = dump_tables(store)
    new = m.Item("NEW", m.Kind.MATERIAL, material_cost=Decimal(1))
    grown = m.MasterData({**sc.master.items, "NEW": new}, sc.master.boms)
    day = dt.date(2026, 2, 2)
    events: list[m.Event] = [
        m.Purchase("n1", day, "NEW", Decimal(1), Decimal(1)),
        m.Purchase("n2", day, "M", Decimal(1), Decimal(2)),
        m.Reversal("n3", day, "nowhere"),
    ]
    with pytest.raises(PostingError, match="n3: reverses unknown event"):
        store.import_scenario(sc.settings, grown, events)
    assert dump_tables(store) == before


def test_a_refused_import_into_a_new_database_leaves_no_schema(store: Store) -> None:
    sc = scenario("shortage_plant")
    refused = [*sc.events[:3], m.Reversal("bad", dt.date(2026, 1, 11), "nowhere")]
    with pytest.raises(PostingError, match="bad: reverses unknown event 'nowhere'"):
        store.import_scenario(sc.settings, sc.master, refused)
    assert sa.inspect(store.engine).get_table_names() == []  # not even alembic_version
    assert not store.initialized()
    open_book(store, sc)  # and the database is as good as new
    assert_same_document(stored(store), in_memory(sc))


def test_a_refused_init_leaves_an_existing_book_as_it_was(store: Store) -> None:
    sc = scenario("shortage_plant")
    open_book(store, sc, upto="p1")
    before = dump_tables(store)
    with pytest.raises(StoreError, match="different book"):
        store.init(m.Settings("Another plant"))
    assert dump_tables(store) == before


# ---------------------------------------------------------------- readers and writers


@contextmanager
def writer_holding_the_lock(db_url: str) -> Iterator[None]:
    """Another writer in the middle of its transaction, holding the book's write lock."""
    if db_url.startswith("sqlite"):
        raw = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            yield
        finally:
            raw.close()
        return
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK)))
            yield
    finally:
        engine.dispose()


def impatient(db_url: str) -> Store:
    """A store that waits at most 0.3 s for a lock instead of 30 s (SQLite) or for ever."""
    if db_url.startswith("sqlite"):
        found = Store(db_url)

        @sa.event.listens_for(found.engine, "connect")
        def _short(dbapi: Any, _record: Any) -> None:
            dbapi.execute("PRAGMA busy_timeout = 300")

        return found
    return Store(f"{db_url}?options=-c%20lock_timeout%3D300")


@pytest.mark.postgres
def test_a_postgresql_write_waits_for_the_write_lock_as_long_as_on_sqlite(
    pg_db_url: str,
) -> None:
    """A write behind a long one (an import) gives up after BUSY_TIMEOUT, nothing written
    (the API answers 503, to send again), as on SQLite, instead of waiting for ever; a URL
    that sets its own lock_timeout keeps it."""
    for url, expected in (
        (pg_db_url, "30s"),
        (f"{pg_db_url}?options=-c%20lock_timeout%3D300", "300ms"),
    ):
        store = Store(url)
        try:
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == expected
        finally:
            store.close()


def test_reads_do_not_wait_for_a_writer(store: Store, db_url: str) -> None:
    sc = scenario("shortage_plant")
    open_book(store, sc, upto="c1")
    expected = stored(store)
    reader = impatient(db_url)
    try:
        with writer_holding_the_lock(db_url):
            assert reader.settings() == sc.settings
            assert reader.master() == sc.master
            assert reader.event_count() == 3
            assert reader.initialized()
            assert document(reader.load(), reader.numbered_entries()) == expected
            book, numbered, count = reader.numbered_snapshot()
            assert (document(book, numbered), count) == (expected, 3)
            # while a write waits for the lock, and gives up here
            with pytest.raises(sa.exc.OperationalError):
                reader.post(events_of(sc, "l1"))
        assert reader.post(events_of(sc, "l1")) == [True]
    finally:
        reader.close()


def test_on_sqlite_only_writes_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "book.db"))
    begins: list[str] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    try:
        sc = scenario("shortage_plant")
        open_book(store, sc, upto="c1")
        assert begins == ["BEGIN IMMEDIATE"]  # schema, master data and events: one write
        begins.clear()
        store.settings(), store.master(), store.load(), store.entries(), store.event_count()
        store.snapshot()
        assert begins == ["BEGIN"] * 6
        begins.clear()
        store.post(events_of(sc, "l1"))
        store.init(sc.settings)
        store.migrate()
        assert begins == ["BEGIN IMMEDIATE"] * 3
    finally:
        store.close()


def test_snapshot_reads_book_journal_and_count_together(store: Store) -> None:
    sc = scenario("northshore")
    open_book(store, sc)
    book, numbered, count = store.numbered_snapshot()
    assert document(book, numbered) == stored(store)
    assert count == store.event_count() == len(sc.events)
    assert book.history is None
    _, february, _ = store.snapshot("2026-02")
    assert february == store.entries("2026-02")
    assert {e.period for e in february} == {"2026-02"}


# ---------------------------------------------------------------- schema


def test_migration_creates_exactly_the_declared_schema(store: Store) -> None:
    assert store.migrate() is None  # an empty database: no revision before
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        # the comparison has teeth: a schema with one more column differs
        wider = sa.MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(wider)
        wider.tables["events"].append_column(sa.Column("extra", sa.Integer))
        diff = compare_metadata(context, wider)
    assert [d[0] for d in diff] == ["add_column"]
    assert store.migrate() == SCHEMA_REVISION  # migrating again is harmless
    assert not store.initialized()  # schema without settings is not yet a book


# ---------------------------------------------------------------- exact amounts


def test_amounts_survive_exactly(store: Store) -> None:
    quantity, unit_cost = Decimal("1234567.123456"), Decimal("0.123457")
    sc = parse_scenario(
        """\
book: {name: Exact}
items:
  - {id: M, kind: material, standard_cost: "0.12"}
""",
        "exact.yaml",
    )
    purchase = m.Purchase("buy", dt.date(2026, 3, 3), "M", quantity, unit_cost)
    assert store.import_scenario(sc.settings, sc.master, [purchase]) == [True]
    book = store.load()
    assert book.on_hand["M"] == quantity and str(book.on_hand["M"]) == "1234567.123456"
    with store.engine.connect() as conn:
        table = metadata.tables["events"]
        payload = conn.execute(sa.select(table.c.payload).where(table.c.id == "buy")).scalar()
    assert event_from_payload("buy", payload) == purchase  # rebuilt from the payload, exactly
    entries = store.entries()
    memory = Book(sc.settings, sc.master)
    memory.post(purchase)
    assert entries == memory.journal
    amounts = {line.account.value: line.amount for line in entries[0].lines}
    assert amounts["accounts_payable"] == Decimal("-152415.95")  # 152415.9533... to the cent
    assert amounts["raw_in_process"] == Decimal("148148.05")  # 148148.0548... at standard
    assert amounts["purchase_price_variance"] == Decimal("4267.90")
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = conn.exec_driver_sql(
                "SELECT on_hand, typeof(on_hand) FROM quantities WHERE item = 'M'"
            ).one()
            assert tuple(raw) == ("1234567.123456", "text")
            cost = conn.exec_driver_sql("SELECT material_cost FROM items").scalar_one()
            assert cost == "0.12"
        else:
            raw = conn.exec_driver_sql(
                "SELECT on_hand, pg_typeof(on_hand)::text FROM quantities WHERE item = 'M'"
            ).one()
            assert tuple(raw) == (quantity, "numeric")
            assert str(raw[0]) == "1234567.123456"
    # the exact figures come back and go on: reversing it rebuilds the event from the store
    assert store.post([m.Reversal("undo", dt.date(2026, 3, 4), "buy")]) == [True]
    book = store.load()
    assert book.on_hand["M"] == 0
    assert all(v == 0 for v in book.balances.values())
    assert stored(store)["balances"] == {}


# ---------------------------------------------------------------- long keys

LONG_CENTER = "W" * 200
LONG_ELEMENT = "e" * 64
LONG_ITEM = "I" * 200


def test_the_longest_ids_and_elements_are_stored(db_url: str) -> None:
    scenario = parse_scenario(
        f"""
book: {{name: Long, currency: USD, triggers: purchase+completion, shortage: allow,
       disposition: prorate}}
items:
  - {{id: M, kind: material, standard_cost: "1.00"}}
  - {{id: {LONG_ITEM}, kind: finished}}
work_centers:
  - {{id: {LONG_CENTER}, rates: {{{LONG_ELEMENT}: "10.00"}}}}
routings:
  - {{item: {LONG_ITEM},
     operations: [{{operation: 10, work_center: {LONG_CENTER}, run_hours: "1"}}]}}
boms:
  - {{item: {LONG_ITEM}, lines: [{{component: M, quantity: "1"}}]}}
events:
  - {{id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "10", unit_cost: "1.10"}}
  - {{id: c1, date: 2026-01-05, type: completion, item: {LONG_ITEM}, quantity: "10"}}
  - {{id: h1, date: 2026-01-10, type: hours, work_center: {LONG_CENTER}, hours: "12"}}
  - {{id: l1, date: 2026-01-31, type: conversion, amount: "130.00", element: {LONG_ELEMENT},
     work_center: {LONG_CENTER}, hours: "12"}}
  - {{id: s1, date: 2026-01-31, type: sale, item: {LONG_ITEM}, quantity: "4", unit_price: "50"}}
  - {{id: close-jan, date: 2026-01-31, type: close, period: 2026-01}}
""",
        "long.yaml",
    )
    store = Store(db_url)
    try:
        store.import_scenario(scenario.settings, scenario.master, scenario.events)
        book, entries = store.load(), store.entries()
    finally:
        store.close()
    variances = book.period_variances("2026-01")
    assert variances[f"conversion_spending:{LONG_CENTER}:{LONG_ELEMENT}"] == Decimal("10.00")
    assert variances[f"conversion_efficiency:{LONG_CENTER}:{LONG_ELEMENT}"] == Decimal("20.00")
    prorated = {line.element for entry in entries for line in entry.lines}
    assert f"variance:conversion:{LONG_ELEMENT}" in prorated


def test_the_migration_widens_the_keys_of_a_book_written_before(db_url: str) -> None:
    """Migration 0012 on a book with rows (PostgreSQL alters the columns in place; SQLite
    copies the tables): the book reads the same after it, and takes the longest keys."""
    store = Store(db_url)
    try:
        sc = scenario("northshore")
        open_book(store, sc)
        before = dump_tables(store, logs=False)
        downgrade(store, "0011")
        key = "x" * 80
        with store.engine.begin() as conn:  # as long a name as 0011 refused on PostgreSQL
            row = {"period": "2026-01", "name": key, "amount": Decimal(0)}
            if conn.dialect.name == "postgresql":
                with pytest.raises(sa.exc.DataError), conn.begin_nested():
                    conn.execute(metadata.tables["period_statistics"].insert().values(**row))
        assert store.migrate() == "0011"  # the revision it found
        assert dump_tables(store, logs=False) == before
        with store.engine.begin() as conn:
            conn.execute(metadata.tables["period_statistics"].insert().values(**row))
    finally:
        store.close()
