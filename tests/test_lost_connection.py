"""A PostgreSQL connection the server ends in the middle of a transaction (a restart, an
operator's ``pg_terminate_backend``, a network cut): the caller gets the error that names
the lost connection, raised by the statement that found it (not an error of the cleanup
after it), and the same store goes on with a new connection and a book loaded again."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backflush.store import repository
from backflush.store import schema as t
from backflush.store.repository import Store
from test_kept_book import buy, given_events, loaded, make, opened

pytestmark = pytest.mark.postgres

Kill = Callable[[Connection], None]


@pytest.fixture
def store(pg_db_url: str) -> Iterator[Store]:
    store = opened(pg_db_url)
    try:
        store.post([buy(1)])  # a book kept in memory
        assert store._kept is not None
        yield store
    finally:
        store.close()


@pytest.fixture
def kill(pg_db_url: str) -> Iterator[Kill]:
    """End a connection's server process from another session, and wait till it is gone."""
    engine = sa.create_engine(pg_db_url)

    def kill(conn: Connection) -> None:
        driver = conn.connection.driver_connection
        assert driver is not None
        with engine.begin() as other:
            ended = other.execute(
                sa.text("SELECT pg_terminate_backend(:pid, 10000)"),
                {"pid": driver.info.backend_pid},
            ).scalar_one()
        assert ended

    try:
        yield kill
    finally:
        engine.dispose()


@contextmanager
def killed_before(store: Store, kill: Kill, text: str) -> Iterator[list[str]]:
    """The connection is killed just before the first statement containing ``text`` runs."""
    fired: list[str] = []

    def before(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if text in statement and not fired:
            fired.append(statement)
            kill(conn)

    sa.event.listen(store.engine, "before_cursor_execute", before)
    try:
        yield fired
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", before)


def lost(error: pytest.ExceptionInfo[sa.exc.OperationalError], statement: str) -> None:
    """``error`` is the one of the statement that found the connection lost (the one of a
    rollback tried afterwards names no statement)."""
    assert error.value.connection_invalidated
    assert error.value.statement is not None
    assert statement in error.value.statement


def goes_on(store: Store, *, reloads: bool) -> None:
    """The store's next write works, on its kept book or (after a failed write) on one
    loaded again; and what it stored is what a new load reads."""
    loads = store.loads
    store.post([make(1)])
    assert store.loads == loads + reloads
    book = loaded(store)
    assert book.on_hand["F"] == 2
    assert book.on_hand["M"] == 30 - 6


def events(store: Store) -> list[str]:
    with store.transaction() as conn:
        return sorted(conn.execute(sa.select(t.events.c.id)).scalars())


def test_a_read_whose_connection_is_lost_raises_that_error(store: Store, kill: Kill) -> None:
    """The transaction's cleanup reads nothing of a connection invalidated meanwhile (that
    raised PendingRollbackError in place of the error)."""
    with (
        killed_before(store, kill, "FROM journal_lines"),
        pytest.raises(sa.exc.OperationalError) as error,
    ):
        store.snapshot()
    lost(error, "FROM journal_lines")
    goes_on(store, reloads=False)


def test_a_write_whose_connection_is_lost_while_it_reads_raises_that_error(
    store: Store, kill: Kill
) -> None:
    """An event sent again: the write reads what it posted (its journal lines)."""
    with (
        killed_before(store, kill, "FROM journal_lines"),
        pytest.raises(sa.exc.OperationalError) as error,
    ):
        store.post([buy(1), buy(2)])
    lost(error, "FROM journal_lines")
    assert store._kept is None  # the book of a failed write is not kept
    goes_on(store, reloads=True)
    assert events(store) == ["c1", "p1"]


def test_a_write_whose_connection_is_lost_as_it_takes_the_lock_raises_that_error(
    store: Store, kill: Kill, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock and the first reads (what the book records under the events' ids) go in
    one round trip on the driver's connection: a lost one is invalidated there."""
    round_trip = repository._round_trip
    fired: list[list[str]] = []

    @contextmanager
    def killing(conn: Connection, sent: Sequence[str]) -> Iterator[Any]:
        if "pg_advisory_xact_lock" in sent[0] and not fired:
            fired.append(list(sent))
            kill(conn)
        with round_trip(conn, sent) as driver:
            yield driver

    monkeypatch.setattr(repository, "_round_trip", killing)
    with pytest.raises(sa.exc.OperationalError) as error:
        store.post([buy(2)])
    assert fired and any("FROM events" in sql for sql in fired[0])
    lost(error, "pg_advisory_xact_lock")
    monkeypatch.setattr(repository, "_round_trip", round_trip)
    goes_on(store, reloads=False)  # nothing posted yet: the kept book is the book
    assert events(store) == ["c1", "p1"]


@contextmanager
def killed_before_sending(kill: Kill, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The connection is killed just before the statements held back in a pipeline go."""
    send = repository._send_held_back
    fired: list[int] = []

    def killing(conn: Connection, *, commit: bool = False) -> None:
        if conn.info.get("backflush.pipeline") and not fired:
            fired.append(len(conn.info["backflush.pipeline"]))
            kill(conn)
        send(conn, commit=commit)

    monkeypatch.setattr(repository, "_send_held_back", killing)
    yield fired
    monkeypatch.setattr(repository, "_send_held_back", send)


@pytest.mark.parametrize("group", [False, True], ids=["post", "post_each"])
def test_a_connection_lost_while_a_pipeline_holds_writes_back_raises_that_error(
    store: Store, kill: Kill, monkeypatch: pytest.MonkeyPatch, caplog: Any, group: bool
) -> None:
    """The pipeline's writes are sent on the driver's connection, past SQLAlchemy: a lost
    one is invalidated there, as SQLAlchemy does its own, else the transaction's rollback
    on it raised its own error ("the connection is lost", no statement) in place of this."""
    caplog.set_level(logging.WARNING, logger="psycopg")
    with (
        killed_before_sending(kill, monkeypatch) as fired,
        pytest.raises(sa.exc.OperationalError) as error,
    ):
        if group:  # group commit, as the API's writer posts
            store.post_each([given_events([buy(2)]), given_events([buy(3)])])
        else:
            store.post([buy(2)])
    assert fired
    lost(error, 'INSERT INTO "events"')
    assert not [r for r in caplog.records if "error ignored" in r.getMessage()]
    assert store._kept is None
    goes_on(store, reloads=True)
    assert events(store) == ["c1", "p1"]


def test_a_connection_lost_before_a_copy_raises_that_error(
    store: Store, kill: Kill, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many rows go in by COPY on the driver's connection: a lost one is invalidated there."""
    insert = repository._insert
    fired: list[str] = []

    def killing(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if len(rows) > repository.PIPELINED_ROWS and not fired:
            fired.append(table.name)
            kill(conn)
        insert(conn, table, rows)

    monkeypatch.setattr(repository, "_insert", killing)
    many = [(f"row {n}", buy(100 + n, "1")) for n in range(repository.PIPELINED_ROWS + 1)]
    with pytest.raises(sa.exc.OperationalError) as error:
        store.import_events(lambda _settings, _master: many)
    assert fired
    lost(error, "COPY")
    monkeypatch.setattr(repository, "_insert", insert)
    goes_on(store, reloads=False)  # its bump rolled back too: the kept book is the book
    assert events(store) == ["c1", "p1"]
    assert loaded(store).on_hand["M"] == 30 - 6  # nothing of the import


def test_a_failed_statement_in_a_pipeline_raises_its_error_without_warnings(
    store: Store, caplog: Any
) -> None:
    """The statements queued after a failed one come back "pipeline aborted": reported by
    the pipeline's end as an error (set aside for the first one), not raised through it,
    where psycopg logs them as a warning ("error ignored terminating Pipeline")."""
    from backflush.store.repository import _pipelined, _upsert

    caplog.set_level(logging.WARNING, logger="psycopg")
    too_long = {"item": "x" * 201, "on_hand": Decimal(1), "in_process": Decimal(0)}
    for _attempt in range(3):
        with (
            pytest.raises(sa.exc.DataError),
            store.transaction(write=True) as conn,
            _pipelined(conn),
        ):
            _upsert(conn, t.quantities, [too_long])
            for n in range(300):  # queued while the error comes back
                row = {"item": f"i{n}", "on_hand": Decimal(n), "in_process": Decimal(0)}
                _upsert(conn, t.quantities, [row])
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")]
    goes_on(store, reloads=False)
