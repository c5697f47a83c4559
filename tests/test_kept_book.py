"""The book kept in memory between writes (issue 6, throughput): a store posts on the book it
wrote last while the book's revision shows no other writer wrote, and that kept book is always
the one loading it again would give; group commit (:meth:`Store.post_each`) posts many
requests in one transaction, each still all or nothing."""

from __future__ import annotations

import datetime as dt
import gc
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Connection

from backflush.book import Book
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats.scenario import parse_scenario
from backflush.store import schema as t
from backflush.store.repository import Answer, Key, KeyReused, Posting, Store, StoreError
from helpers import dump_tables
from test_properties import Stream, budget, plants

PLANT = """\
book: {name: Kept, currency: USD, triggers: purchase+completion, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "3"}]}
"""
DAY = dt.date(2026, 1, 10)
#: What a posting load reads, compared between the kept book and one loaded again.
STATE = (
    "balances",
    "activity",
    "statistics",
    "on_hand",
    "in_process",
    "queue",
    "cleared_by",
    "closed",
    "unsold_conversion",
    "orders",
    "reopens",
    "written_off",
    "epoch",
    "nrv_estimates",
    "nrv_allowance",
    "nrv_writedowns",
    "moved",
    "flows",
    "held_moved",
    "daily",
    "item_activity",
    "disposed",
    "recorded",
)


def state(book: Book) -> dict[str, Any]:
    found = {name: getattr(book, name) for name in STATE}
    found["shortages"] = list(book.shortages.items())  # in queue order
    found["queue"] = {item: list(entries.items()) for item, entries in book.queue.items()}
    for name in ("on_hand", "in_process"):  # a load reads a zero where memory has none
        found[name] = {item: q for item, q in getattr(book, name).items() if q}
    return found


def loaded(store: Store) -> Book:
    with store.transaction() as conn:
        return store._load(conn, history=False, period_sums=False)


def recorded_by(store: Store) -> list[tuple[str, str | None]]:
    """Each recorded event's id and who posted it, by id."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.events.c.id, t.events.c.recorded_by))
        return sorted((row.id, row.recorded_by) for row in rows)


def kept(store: Store) -> Book | None:
    return None if store._kept is None else store._kept.book


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times any store loaded a book to post on."""
    loads: list[int] = []
    load = Store._load

    def counting(self: Store, conn: Connection, **options: bool) -> Book:
        if options.get("history") is False:
            loads.append(1)
        return load(self, conn, **options)

    monkeypatch.setattr(Store, "_load", counting)
    yield loads


def opened(url: str) -> Store:
    store = Store(url)
    sc = parse_scenario(PLANT, "kept.yaml")
    store.import_scenario(sc.settings, sc.master, [])
    return store


def buy(n: int, quantity: str = "30") -> m.Purchase:
    return m.Purchase(f"p{n}", DAY, "M", Decimal(quantity), Decimal("2.10"))


def make(n: int, quantity: str = "2") -> m.Completion:
    return m.Completion(f"c{n}", DAY, "F", Decimal(quantity))


def given_events(events: Sequence[m.Event], by: str | None = None) -> Posting[list[bool]]:
    return Posting(lambda _conn, _book, _kept: events, recorded_by=by)


@given(data=st.data())
@budget(25)
def test_random_streams_through_a_kept_book_equal_loading_it_for_each_write(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every event of a random stream (closes, reopens, reversals, queued consumption,
    write-offs, revaluations...) posted through one store: after each write the kept book is
    the book loaded again, and the database is what a store loading it every time writes."""
    plant = data.draw(plants(), label="plant")
    stream = Stream(data, plant, backdating=data.draw(st.booleans(), label="backdating"))
    stream.run(data.draw(st.integers(1, 30), label="steps"))
    folder = tmp_path_factory.mktemp("kept")
    stores = [Store(str(folder / "kept.db")), Store(str(folder / "loaded.db"))]
    stores[1].keep_book = False
    try:
        for store in stores:
            store.import_scenario(plant.settings, plant.master, [])
        for event, outcome in stream.posted:
            for store in stores:
                try:
                    assert store.post([event]) == [True]
                except PostingError as error:
                    assert outcome == "refused", event
                    assert not error.changed_book  # one event, refused before it changed any
                    assert (kept(store) is not None) == store.keep_book  # so it is kept
                else:
                    assert outcome == "accepted", event
            book = kept(stores[0])
            if book is not None:
                assert state(book) == state(loaded(stores[0]))
        assert dump_tables(stores[0], times=False) == dump_tables(stores[1], times=False)
    finally:
        for store in stores:
            store.close()


def test_a_store_loads_its_book_again_only_after_another_writer_wrote(
    db_url: str, counted: list[int]
) -> None:
    first = opened(db_url)
    second = Store(db_url)
    counted.clear()  # the import's load
    try:
        first.post([buy(1)])
        first.post([make(1)])
        first.post([make(2)])
        assert len(counted) == 1  # loaded for the first write only
        second.post([make(3)])  # loads: it never wrote
        assert len(counted) == 2
        first.post([make(4)])  # loads again: the second store wrote since
        assert len(counted) == 3
        first.post([make(5)])
        assert len(counted) == 3
        assert kept(first) is not None
        assert state(kept(first)) == state(loaded(first))  # type: ignore[arg-type]
        assert loaded(first).on_hand == {"M": Decimal(30 - 5 * 6), "F": Decimal(10)}
    finally:
        for store in (first, second):
            store.close()


def test_sums_another_writer_added_to_are_read_again(tmp_path: Path) -> None:
    """The sums a store's own writes left (kept with its book, so that a posting adds to
    them without reading them) are read again once another writer wrote: two stores posting
    the same item in turn leave every table as one store posting it all does."""
    stores = [opened(str(tmp_path / "two.db")), Store(str(tmp_path / "two.db"))]
    alone = opened(str(tmp_path / "one.db"))
    try:
        events: list[m.Event] = [buy(0, "100")] + [make(n) for n in range(1, 9)]
        for n, event in enumerate(events):
            stores[n % 2].post([event])
            alone.post([event])
        assert stores[0]._kept is not None and stores[0]._kept.sums  # sums were kept
        assert dump_tables(stores[0], times=False) == dump_tables(alone, times=False)
        with alone.transaction() as conn:
            flows = conn.execute(
                sa.select(t.period_flows.c.quantity).where(
                    t.period_flows.c.item == "F", t.period_flows.c.flow == "completed"
                )
            ).scalar_one()
        assert flows == Decimal(16)
    finally:
        for store in (*stores, alone):
            store.close()


def test_a_write_of_other_data_makes_the_kept_book_stale(db_url: str, counted: list[int]) -> None:
    """Master data released by another store: the next posting loads the book again and
    costs at the new standard."""
    store = opened(db_url)
    other = Store(db_url)
    counted.clear()
    try:
        store.post([buy(1)])
        sc = parse_scenario(
            PLANT.replace(
                'standard_cost: "2.00"',
                'standard_cost: "2.00"}\n  - {id: N, kind: material, standard_cost: "1.00"',
            ),
            "more.yaml",
        )
        other.add_master(sc.master)
        store.post([m.Purchase("p2", DAY, "N", Decimal(1), Decimal(1))])  # N is known now
        assert len(counted) == 2
    finally:
        store.close()
        other.close()


def test_a_schema_migrated_by_another_process_is_checked_before_the_next_write(
    db_url: str,
) -> None:
    """A server keeps its book and checked the schema once; another process migrates the book
    to a schema a newer version of backflush wrote (its revision bumped, as a migration's
    is): the server's next write reads the book again and refuses, naming the newer schema,
    writing nothing (it went on writing with what it knew, its log of master data
    changes with it)."""
    store = opened(db_url)
    other = Store(db_url)
    try:
        store.post([buy(1)])
        with other.transaction(write=True) as conn:  # what a migration's commit leaves
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
            conn.execute(t.settings.update().values(revision=t.settings.c.revision + 1))
        with pytest.raises(StoreError, match=r"newer version of backflush \(schema revision 9999"):
            store.post([buy(2)])
        with store.transaction() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(t.events)).scalar() == 1
    finally:
        store.close()
        other.close()


def test_one_transaction_posts_a_group_each_all_or_nothing(db_url: str, counted: list[int]) -> None:
    store = opened(db_url)
    try:
        store.post([buy(1, "12")])
        before = len(counted)

        def bad_input(_conn: Connection, _book: Book, _kept: dict[str, Any]) -> list[m.Event]:
            raise ValueError("field quantity: expected a number")

        answers = store.post_each(
            [
                given_events([make(1)], by="a"),
                Posting(bad_input, recorded_by="b"),
                # changes the book (c2 made) before its second event is refused
                given_events([make(2), m.Reversal("r", DAY, "nothing", "typo")], by="c"),
                given_events([make(4), make(1)], by="d"),  # c1 again: already recorded
            ]
        )
        assert answers[0] == [True]
        assert isinstance(answers[1], ValueError)
        assert isinstance(answers[2], PostingError) and "nothing" in str(answers[2])
        assert answers[2].changed_book  # c2 was made before r was refused
        assert answers[3] == [True, False]
        # refused after changing the book: rolled back, loaded again, the rest posted again
        assert len(counted) == before + 1
        assert recorded_by(store) == [("c1", "a"), ("c4", "d"), ("p1", None)]
        assert loaded(store).on_hand == {"M": Decimal(0), "F": Decimal(4)}
        assert state(kept(store)) == state(loaded(store))  # type: ignore[arg-type]
    finally:
        store.close()


def test_a_posting_refused_before_it_changed_the_book_leaves_the_group_be(
    db_url: str, counted: list[int]
) -> None:
    """A posting whose first event the rules refuse (a closed period, an unknown item, a
    reversal of nothing, a shortage the policy rejects) changed nothing: the group is
    committed in its one transaction, and the kept book is not loaded again."""
    store = opened(db_url)
    try:
        store.post([buy(1, "12")])
        store.post([m.Close("close-2025-12", dt.date(2025, 12, 31), "2025-12")])
        before = len(counted)
        answers = store.post_each(
            [
                given_events([make(1)], by="a"),
                given_events(
                    [m.Purchase("late", dt.date(2025, 12, 5), "M", Decimal(1), Decimal(2))]
                ),
                given_events([m.Completion("x", DAY, "nothing", Decimal(1))]),
                given_events([m.Reversal("r", DAY, "nothing", "typo"), make(3)]),
                given_events([make(2)], by="e"),
            ]
        )
        assert answers[0] == answers[4] == [True]
        assert all(isinstance(a, PostingError) and not a.changed_book for a in answers[1:4]), (
            answers
        )
        assert "closed" in str(answers[1]) and "nothing" in str(answers[3])
        assert len(counted) == before  # the kept book, still the book
        assert recorded_by(store) == [
            ("c1", "a"),
            ("c2", "e"),
            ("close-2025-12", None),
            ("p1", None),
        ]
        with pytest.raises(PostingError, match="nothing") as refused:
            store.post([m.Completion("y", DAY, "nothing", Decimal(1))])
        assert not refused.value.changed_book and len(counted) == before
        assert state(kept(store)) == state(loaded(store))  # type: ignore[arg-type]
    finally:
        store.close()


def test_a_refused_posting_leaves_the_books_other_writers_keep_valid(
    db_url: str, counted: list[int]
) -> None:
    """A posting refused before it changed anything writes nothing, not even the revision
    bump (its transaction is rolled back): another store's kept book stays valid, where a
    client posting into a closed period would otherwise make every other writer load its
    whole book again."""
    first, second = opened(db_url), Store(db_url)
    try:
        first.post([buy(1)])
        first.post([m.Close("close-2025-12", dt.date(2025, 12, 31), "2025-12")])
        second.post([make(1)])
        late = m.Purchase("late", dt.date(2025, 12, 5), "M", Decimal(1), Decimal(2))
        with pytest.raises(PostingError, match="closed"):
            first.post([late])
        # refused, and recorded already: nothing to write, no revision bump either
        assert second.post_each([given_events([late]), given_events([make(1)])])[1] == [False]
        assert first.post([make(1)]) == [False]
        loads = len(counted)
        second.post([make(2)])  # no other writer wrote since its last write
        first.post([make(3)])  # second wrote: first loads its book again
        assert len(counted) == loads + 1
    finally:
        first.close()
        second.close()


def test_a_close_in_a_group_is_posted_on_its_own_after_the_others(db_url: str) -> None:
    store = opened(db_url)
    try:
        store.post([buy(1)])
        close = m.Close("close", dt.date(2026, 1, 31), "2026-01")
        answers = store.post_each(
            [given_events([make(1)]), given_events([close]), given_events([make(2)])]
        )
        assert answers == [[True], [True], [True]]
        book = store.load()
        assert "2026-01" in book.closed
        assert book.on_hand["F"] == 4
        with store.engine.connect() as conn:
            flows = t.period_flows
            made = conn.execute(
                sa.select(flows.c.quantity).where(flows.c.item == "F", flows.c.flow == "completed")
            ).scalar_one()
        assert made == 4  # both completions written before the close read the sums
        assert book.closed["2026-01"].balances  # the close valued them
        assert state(kept(store)) == state(loaded(store))  # type: ignore[arg-type]
    finally:
        store.close()


def test_idempotency_keys_of_a_group_are_read_and_kept_once(db_url: str) -> None:
    """Two requests with one key in one group: the first posts and its answer is kept, the
    second gets it replayed; the key with another request is refused; a key kept earlier
    replays without posting."""
    store = opened(db_url)
    try:
        store.post([buy(1)])

        def keyed(events: list[m.Event], key: Key) -> Posting[Answer]:
            def done(_conn: Connection, applied: list[bool]) -> Answer:
                return Answer(201, {"applied": applied})

            return Posting(lambda _c, _b, _k: events, done, "t", [e.id for e in events], key)

        first, same, other = Key("t", "k1", "a"), Key("t", "k1", "a"), Key("t", "k1", "b")
        answers = store.post_each(
            [
                keyed([make(1)], first),
                keyed([make(1)], same),
                keyed([make(2)], other),
                keyed([make(3)], Key("u", "k1", "c")),  # another owner's k1
            ]
        )
        assert answers[0] == Answer(201, {"applied": [True]})
        assert answers[1] == Answer(201, {"applied": [True]}, replayed=True)
        assert isinstance(answers[2], KeyReused)
        assert answers[3] == Answer(201, {"applied": [True]})
        again = store.post_each([keyed([make(4)], first)])  # c4 never posted: a replay
        assert again == [Answer(201, {"applied": [True]}, replayed=True)]
        with store.engine.connect() as conn:
            kept_keys = conn.execute(
                sa.select(t.idempotency_keys.c.token, t.idempotency_keys.c.key)
            )
            assert sorted(kept_keys) == [("t", "k1"), ("u", "k1")]
            ids = sorted(conn.execute(sa.select(t.events.c.id)).scalars())
        assert ids == ["c1", "c3", "p1"]
    finally:
        store.close()


def test_a_stale_kept_book_is_freed_without_the_cycle_collector(db_url: str) -> None:
    """The API's writer freezes what is alive after a load (``gc.freeze``): a book made stale
    by another writer must then be freed by reference counting alone, or each reload would
    leak a whole book."""
    first, second = opened(db_url), Store(db_url)
    old: list[weakref.ref[Book]] = []
    gc.disable()
    try:
        for n in range(3):
            first.post([buy(n)])
            book = kept(first)
            assert book is not None
            old.append(weakref.ref(book))
            del book
            second.post([make(n)])  # first's book is stale: its next write loads another
        first.post([buy(9)])
        assert [ref() for ref in old] == [None, None, None]
    finally:
        gc.enable()
        first.close()
        second.close()


def test_a_book_dropped_by_a_refusal_keeps_no_history_lookup(db_url: str) -> None:
    """The history lookup bound to a transaction is removed from the book whatever happens
    (it would hold the dead transaction's connection)."""
    store = opened(db_url)
    try:
        store.post([buy(1)])
        book = kept(store)
        assert book is not None
        with pytest.raises(PostingError):
            store.post([make(1), m.Reversal("r", DAY, "nothing", "typo")])
        assert kept(store) is None and book.history is None
    finally:
        store.close()


def test_a_warmed_store_posts_its_first_write_on_the_book_it_loaded(
    db_url: str, counted: list[int]
) -> None:
    store, other = opened(db_url), Store(db_url)
    try:
        store.warm()
        counted.clear()
        store.post([buy(1)])
        assert counted == []  # the book loaded ahead was posted on
        other.post([make(1)])
        store.warm()  # loaded again: the other store wrote
        store.post([make(2)])
        assert len(counted) == 2  # the other store's load, the warm-up's; the post's none
        assert loaded(store).on_hand == {"M": Decimal(18), "F": Decimal(4)}
    finally:
        store.close()
        other.close()


@pytest.mark.postgres
def test_a_value_too_long_for_its_column_is_refused_not_cut_short(pg_db_url: str) -> None:
    """The one-statement upserts send columns as arrays, inserts go by COPY: a string longer
    than its column is an error (raised as SQLAlchemy raises the driver's), as an INSERT
    would make it, never silently truncated."""
    from backflush.store.repository import _insert, _pipelined, _upsert

    store = opened(pg_db_url)
    try:
        with pytest.raises(sa.exc.DataError), store.transaction(write=True) as conn:
            row = {"item": "x" * 201, "on_hand": Decimal(1), "in_process": Decimal(0)}
            _upsert(conn, t.quantities, [row])
        with pytest.raises(sa.exc.DataError), store.transaction(write=True) as conn:
            move = {"event": "e", "cause": "e", "item": "x" * 201}
            _insert(conn, t.movements, [move | {"on_hand": Decimal(1), "in_process": Decimal(0)}])
        # Upserts held back to be sent in one round trip: the error is raised all the same,
        # and what was sent with it is rolled back with the transaction.
        fine = {"item": "M", "on_hand": Decimal(7), "in_process": Decimal(0)}
        with (
            pytest.raises(sa.exc.DataError),
            store.transaction(write=True) as conn,
            _pipelined(conn),
        ):
            _upsert(conn, t.quantities, [fine])
            _upsert(conn, t.quantities, [row])
        with store.transaction(write=True) as conn, _pipelined(conn):
            _upsert(conn, t.quantities, [fine])
            _upsert(conn, t.quantities, [fine | {"item": "F", "on_hand": Decimal(3)}])
            assert conn.info["backflush.pipeline"]  # held back...
            # ...until another statement runs: sent before it, so it reads them
            assert len(conn.execute(sa.select(t.quantities)).all()) == 2
            assert not conn.info["backflush.pipeline"]
            _upsert(conn, t.quantities, [fine | {"on_hand": Decimal(8)}])
        with store.transaction() as conn:
            stored = conn.execute(sa.select(t.quantities.c.item, t.quantities.c.on_hand)).all()
        assert sorted(stored) == [("F", Decimal(3)), ("M", Decimal(8))]
    finally:
        store.close()


@pytest.mark.postgres
def test_a_write_transaction_sends_its_writes_with_its_commit(
    pg_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a posting takes two pipelined round trips of the driver and nothing
    else: the lock (with BEGIN, the revision bump, and the read of what the book may record
    already under the events' ids), and at the end its writes held back with the COMMIT."""
    from backflush.store import repository

    sent: list[list[str]] = []
    round_trip = repository._round_trip

    @contextmanager
    def recorded(conn: Connection, statements: Sequence[str]) -> Iterator[Any]:
        sent.append(list(statements))
        with round_trip(conn, statements) as driver:
            yield driver

    executed: list[str] = []

    def run(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        executed.append(statement)

    store = opened(pg_db_url)
    try:
        store.post([buy(1)])
        monkeypatch.setattr(repository, "_round_trip", recorded)
        sa.event.listen(store.engine, "before_cursor_execute", run)
        store.post([buy(2), make(3)])
        sa.event.remove(store.engine, "before_cursor_execute", run)
        assert executed == []  # no statement of its own
        assert len(sent) == 2
        assert "pg_advisory_xact_lock" in sent[0][0]
        assert any("FROM events" in sql for sql in sent[0][1:])
        assert sent[1][-1] == "COMMIT"
        assert sum('INSERT INTO "events"' in sql for sql in sent[1]) == 1
        with store.transaction() as conn:  # committed: another transaction reads them
            stored = conn.execute(sa.select(t.events.c.id).order_by(t.events.c.id)).scalars()
            assert list(stored) == ["c3", "p1", "p2"]
    finally:
        store.close()


#: Decimals whose text is not plain: an exponent, a negative zero, many digits.
ODD_DECIMALS = [Decimal("-0.10"), Decimal("1E+3"), Decimal("-0.000"), Decimal("1234567.8901234")]


@pytest.mark.postgres
def test_a_few_rows_go_in_as_values_lists_of_few_shapes_in_order(pg_db_url: str) -> None:
    """Up to 64 rows are sent as VALUES lists of 64, 32, ..., 1 rows (statement texts few
    enough to stay prepared), more as arrays: every row stored, in the order given, its
    decimals exact (sent as text, read by the server)."""
    from backflush.store.repository import _PG_WRITES, _insert, _pipelined

    store = opened(pg_db_url)
    try:
        given: list[dict[str, Any]] = []
        for count in (1, 23, 64, 65, 7):
            rows = [
                {
                    "event": f"e{count}-{n}",
                    "cause": "c",
                    "item": f"i{n % 3}",
                    "on_hand": Decimal(n) / 7,
                    "in_process": ODD_DECIMALS[n % len(ODD_DECIMALS)],
                }
                for n in range(count)
            ]
            given += rows
            with store.transaction(write=True) as conn, _pipelined(conn):
                _insert(conn, t.movements, rows)
        columns = ("event", "cause", "item", "on_hand", "in_process")
        with store.transaction() as conn:
            query = sa.select(*(t.movements.c[c] for c in columns)).order_by(t.movements.c.id)
            stored = [dict(zip(columns, row, strict=True)) for row in conn.execute(query)]
        assert stored == given
        shapes = {n for name, _, _, n in _PG_WRITES if name == "movements"}
        assert {0, 1, 2, 4, 16, 64} <= shapes  # 23 = 16 + 4 + 2 + 1, 7 = 4 + 2 + 1; 65: arrays
        assert shapes <= {0, 1, 2, 4, 8, 16, 32, 64}  # whatever else this process wrote
    finally:
        store.close()


def test_bulk_writes_on_sqlite_store_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """The driver's executemany with SQLAlchemy's own conversions: the same text in the file
    (exact decimals, ISO dates, timestamps, booleans, NULL) as SQLAlchemy's INSERT."""
    from backflush.store.repository import _insert, _upsert

    stamp = dt.datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=dt.UTC)
    row = {
        "seq": 1,
        "event": "e1",
        "item": "M",
        "kind": "shortage",
        "date": DAY,
        "quantity": Decimal("1.2500000000000000000000000001"),
        "open": Decimal("-0.5"),
        "into_process": True,
        "cleared_by": None,
    }
    event = {
        "id": "e1",
        "type": "count",
        "date": DAY,
        "payload": "{}",
        "statistics": "{}",
        "reversed_by": None,
        "recorded_at": stamp,
        "recorded_by": "t",
    }
    stored = []
    for name, bulk in (("ours", True), ("sqlalchemy", False)):
        store = opened(f"sqlite:///{tmp_path / name}.db")
        try:
            with store.transaction(write=True) as conn:
                if bulk:
                    _insert(conn, t.events, [event])
                    _upsert(conn, t.shortages, [row])
                else:
                    conn.execute(t.events.insert(), [event])
                    conn.execute(t.shortages.insert(), [row])
            with store.engine.connect() as conn:
                stored.append(
                    [
                        conn.exec_driver_sql(f"SELECT * FROM {table}").all()
                        for table in ("events", "shortages")
                    ]
                )
        finally:
            store.close()
    assert stored[0] == stored[1]
    assert stored[0][1][0][5] == "1.2500000000000000000000000001"  # exact, as text


@pytest.mark.postgres
def test_a_pooled_connection_the_server_dropped_is_replaced(
    pg_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection idle in the pool is pinged before use (one used a moment ago is not): a
    connection the server closed meanwhile is replaced, not handed to the caller."""
    from backflush.store import repository

    store = opened(pg_db_url)
    killer = Store(pg_db_url)
    try:
        store.post([buy(1)])
        with killer.engine.begin() as conn:  # the server ends every other session
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        monkeypatch.setattr(repository, "IDLE_PING", 0.0)  # as if idle long enough
        store.post([make(1)])
        assert loaded(store).on_hand["F"] == 2
    finally:
        store.close()
        killer.close()


def test_a_write_after_a_migration_still_makes_other_kept_books_stale(
    db_url: str, counted: list[int]
) -> None:
    """A store that migrated (nothing to do) while it kept its book: its next posting must
    still bump the revision, else another store posts on its own stale book (entry numbers
    used twice, the first posting's stock overwritten)."""
    first = opened(db_url)
    second = Store(db_url)
    try:
        first.post([buy(1)])
        second.post([make(1)])
        first.post([make(2)])
        second.warm()  # both kept books now at the same revision
        first.migrate()  # the schema is at head already: no change
        first.post([make(3)])  # on first's kept book, still current
        second.post([make(4)])  # must load again: first wrote since
        entries = [n for n, _entry in first_numbers(first)]
        assert len(entries) == len(set(entries))
        assert loaded(second).on_hand == {"M": Decimal(30 - 4 * 6), "F": Decimal(8)}
    finally:
        first.close()
        second.close()


def test_a_posting_bumps_the_revision_when_a_migration_starts_meanwhile(db_url: str) -> None:
    """Another thread's migrate() marks the schema unchecked while a posting runs (simulated
    in the posting itself): the posting wrote, so it still bumps the revision."""
    store = opened(db_url)
    store.post([buy(1)])
    store.close()
    store = Store(db_url)  # its first write: the revision is bumped last
    try:
        revision = store_revision(store)

        def events(_conn: Connection, _book: Book, _memo: Any) -> list[m.Event]:
            store._schema_checked = False  # what _migrating() does first, in another thread
            return [make(1)]

        store.post_each([Posting(events)])
        assert store_revision(store) == revision + 1
    finally:
        store.close()


def store_revision(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(t.settings.c.revision)).scalar_one())


def first_numbers(store: Store) -> list[tuple[int, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.journal_lines.c.entry_no, t.journal_lines.c.event).distinct()
        ).all()
    return [(row.entry_no, row.event) for row in rows]


def test_a_migration_makes_kept_books_stale(db_url: str) -> None:
    """A migration may change data (a backfill): it bumps the revision like any write."""
    store, other = opened(db_url), Store(db_url)
    try:
        store.post([buy(1)])
        before = store._kept.revision if store._kept else None
        other.migrate()
        with store.engine.connect() as conn:
            after = conn.execute(sa.select(t.settings.c.revision)).scalar_one()
        assert before is not None and after == before + 1
    finally:
        store.close()
        other.close()
