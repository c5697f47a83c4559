"""The persistent book on SQLite or PostgreSQL.

Each write is one transaction: the book's state is loaded under a lock, the events are applied
by the same :class:`~backflush.book.Book` that runs scenario files, and what changed (events,
journal lines, movements, balances, quantities, queue, closes) is written with set-based
statements before commit. A refused event rolls back the whole batch: nothing is half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from backflush.book import (
    CLOSING_EVENTS,
    Book,
    Changes,
    Recorded,
    ReopenRecord,
    Unloaded,
    collector_paused,
    fingerprint,
)
from backflush.domain import model as m
from backflush.domain.journal import JournalSummary, KindFigures, summarize
from backflush.domain.money import ZERO, fmt, totals
from backflush.engine.close import is_disposal
from backflush.engine.flush import PostingError
from backflush.engine.standards import Standards
from backflush.formats.inputs import (
    InputError,
    check_standards,
    check_versions,
    is_reference,
    redefined_item,
    redefined_version,
    too_early,
)
from backflush.store import schema as t
from backflush.store import summaries

if TYPE_CHECKING:
    import psycopg

MIGRATIONS = Path(__file__).parent / "migrations"
#: Execution option of a connection whose transaction writes (see :meth:`Store.transaction`).
WRITE = "backflush_write"
#: Key in ``Connection.info`` of (revision, created_at) of the book after a write
#: transaction's bump, taken as its first statement after the lock (see Store.transaction).
BUMPED = "backflush_bumped"
#: Key in ``Connection.info``, while a group of postings is posted: who recorded each event
#: that postings earlier in the group applied (their rows are written after the group).
RECORDED_IN_GROUP = "backflush_recorded_in_group"
#: The newest migration; a test checks it against the migration scripts. Reading it from here
#: keeps Alembic out of every command but ``init`` and ``import``.
SCHEMA_REVISION = "0014"
#: Key of the PostgreSQL advisory lock (``pg_advisory_xact_lock``) every write transaction
#: takes first: one writer at a time per book (database), schema and settings writes included.
WRITE_LOCK = 0x6261636B666C7368  # "backflsh"
#: SQLSTATEs after which a write transaction is run again (serialization failure, deadlock),
#: and how many times in all it is run.
RETRYABLE = frozenset({"40001", "40P01"})
RETRIES = 5

_T = TypeVar("_T")


class StoreError(RuntimeError):
    """The database is not a book, not up to date, or already holds a different book."""


def database_url(value: str) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (a SQLite book)."""
    for scheme in ("postgresql://", "postgres://"):  # (libpq takes both; psycopg is the driver)
        if value.startswith(scheme):
            return "postgresql+psycopg://" + value.removeprefix(scheme)
    if "://" in value:
        return value
    return f"sqlite:///{value}"


def display_url(value: str) -> str:
    """``value`` (a URL or a file path) as it may be shown: any password replaced by ***."""
    if "://" not in value:
        return value
    try:
        return sa.make_url(value).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", value)


def make_engine(url: str) -> Engine:
    url = database_url(url)
    try:
        return _make_engine(url)
    except ImportError as error:  # a URL naming a driver that is not installed
        raise sa.exc.ArgumentError(f"no driver for this URL is installed ({error})") from error


#: The date of the latest event recorded (NULL: none yet).
_LAST_EVENT = sa.select(sa.func.max(t.events.c.date))


def _empty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:  # unreadable: the database driver names what is wrong
        return False


#: Seconds a write waits for another writer's lock before it gives up, nothing written (the
#: API answers 503, to send again): a SQLite connection's busy timeout; on PostgreSQL the
#: lock_timeout of each session (unless its URL sets one: ``?options=-c lock_timeout=...``),
#: which bounds the wait for the book's write lock.
BUSY_TIMEOUT = 30.0


def _read_only_mount(path: Path) -> bool:
    """Whether ``path`` is on a file system mounted read-only (an auditor's copy on a
    read-only share): no one can change the book there, nor make its journal files."""
    try:
        return bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is not None and path.is_file() and _read_only_mount(path):
            # Read as it is, SQLite opening it read-only: with its write-ahead log copied
            # along (-wal, -shm), what that holds is read too; without one, in immutable
            # mode, which needs no journal files (a WAL book would otherwise need to make
            # them). A write fails as "attempt to write a readonly database".
            log = path.with_name(path.name + "-wal")
            mode = "mode=ro" if log.is_file() and log.stat().st_size else "mode=ro&immutable=1"
            url = f"sqlite:///file:{quote(str(path.resolve()))}?{mode}&uri=true"
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # let SQLAlchemy's BEGIN below start transactions
            dbapi.execute("PRAGMA foreign_keys = ON")
            dbapi.execute("PRAGMA journal_mode = WAL")
            dbapi.execute("PRAGMA synchronous = NORMAL")
            # 64 MiB of pages (the default is 2 MiB): a year's events, their unique ids and
            # journal indexes stay in memory while a large import writes them.
            dbapi.execute("PRAGMA cache_size = -65536")

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            if conn.get_execution_options().get(WRITE):
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before reading state
            else:
                conn.exec_driver_sql("BEGIN")  # a read: a snapshot, never blocks a writer

        return engine
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _binary_arrays(dbapi: Any, _record: Any) -> None:
        """Lists (the columns :func:`_pg_unnest` sends as arrays) go in binary: the driver's
        text format escapes each string with a regular expression, which cost about 75 µs
        per event detail (a JSON text full of quotes), more than the rest of its row."""
        from psycopg.types.array import ListBinaryDumper

        dbapi.adapters.register_dumper(list, ListBinaryDumper)

    @sa.event.listens_for(engine, "connect")
    def _lock_timeout(dbapi: Any, _record: Any) -> None:
        """A write waits for the book's write lock (a long import holding it) no longer than
        :data:`BUSY_TIMEOUT`, as on SQLite, unless the session says otherwise."""
        with dbapi.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            (found,) = cursor.fetchone()
            if found == "0":  # (PostgreSQL's default: for ever)
                cursor.execute(f"SET lock_timeout = '{int(BUSY_TIMEOUT * 1000)}ms'")
        dbapi.commit()  # (a SET in a transaction rolled back would be undone)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _held_back_first(conn: Connection, *_args: Any) -> None:
        """Writes held back in a pipeline (:func:`_pipelined`) run before any other statement."""
        if conn.info.get(_PIPELINE):
            _send_held_back(conn)

    @sa.event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi: Any, record: Any, _proxy: Any) -> None:
        """A connection idle in the pool for a while (the server may have been restarted,
        or a firewall dropped it) is checked with a ping before use; a dead one is replaced
        (SQLAlchemy's "pessimistic" handling). A connection used a moment ago is not: under
        load that saves a round trip per transaction."""
        now = time.monotonic()
        idle = now - record.info.get(_USED, 0.0)
        record.info[_USED] = now
        if idle <= IDLE_PING:
            return
        try:
            with dbapi.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi.rollback()
        except Exception as error:
            raise sa.exc.DisconnectionError(str(error)) from error

    return engine


def _driver_error(conn: Connection, statement: str, error: Exception) -> sa.exc.StatementError:
    """``error``, psycopg's, raised running ``statement`` on ``conn``'s driver connection
    directly, as SQLAlchemy raises it (retries look at its SQLSTATE). When the connection
    is lost it is invalidated first, as SQLAlchemy does its own: the pool does not hand it
    out again, and the transaction's end does not try a rollback on it, whose own error
    would replace this one."""
    import psycopg  # PostgreSQL's driver, only here

    driver = conn.connection.driver_connection
    raised: Any = error  # (a DB-API error, which its typing does not know psycopg's is)
    lost = conn.dialect.is_disconnect(raised, driver, None)
    if lost:
        conn.invalidate(error)
    return sa.exc.DBAPIError.instance(
        statement, None, error, psycopg.Error, connection_invalidated=lost
    )


#: Seconds a pooled connection may sit idle and be used without a ping first.
IDLE_PING = 2.0
_USED = "backflush_used"


def _sqlite_path(url: str) -> Path | None:
    rest = url.removeprefix("sqlite:///")
    return Path(rest) if rest != url and rest and rest != ":memory:" else None


def database_reason(error: sa.exc.SQLAlchemyError) -> str:
    """The database's own reason, on one line (without SQLAlchemy's statement and links)."""
    cause = getattr(error, "orig", None)
    text = str(cause) if cause is not None else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(cause or error).__name__


def new_file_like(path: Path, source_url: str) -> None:
    """Create ``path``, empty (SQLite takes an empty file for a new database), with the
    permissions of the SQLite book at ``source_url``: a backup or copy of a book kept from
    other users' eyes is kept so too (its write-ahead log takes them from it). Another
    source: nothing is made. Refused (FileExistsError) if ``path`` exists."""
    origin = _sqlite_path(source_url)
    if origin is None:
        return
    mode = origin.stat().st_mode & 0o777
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(handle, mode)  # (the umask may have taken bits away)
    finally:
        os.close(handle)


def _json(values: Mapping[str, Decimal]) -> str:
    """Decimal strings as JSON, in the mapping's own (deterministic) order."""
    return json.dumps({k: fmt(v) for k, v in values.items()})


def _decimals(text: str) -> dict[str, Decimal]:
    return {k: Decimal(v) for k, v in json.loads(text).items()}


def _insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys). On PostgreSQL: up to
    :data:`PIPELINED_ROWS` held back in the write's pipeline (:func:`_pipelined`, as
    :func:`_pg_unnest` writes them); more by COPY, many times faster per row than INSERT
    statements, in the same transaction."""
    if conn.dialect.name != "postgresql":
        _sqlite_write(conn, table, rows, upsert=False)
        return
    if _PIPELINE in conn.info and len(rows) <= PIPELINED_ROWS:
        _pg_unnest(conn, table, rows, "")
        return
    _send_held_back(conn)  # first what was held back: in order
    import psycopg  # PostgreSQL's driver, only here

    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except psycopg.Error as error:
        raise _driver_error(conn, statement, error) from error


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys), or update the rows with their primary keys."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _pg_upsert(conn, table, rows)
        return
    _sqlite_write(conn, table, rows, upsert=True)


def _sqlite_write(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, upsert: bool
) -> None:
    """Insert (or with ``upsert`` insert or update) ``rows`` on SQLite: one statement run by
    the driver's ``executemany`` on the transaction's connection, each value converted as
    SQLAlchemy would bind it (exact decimals as text, dates as ISO text), without
    SQLAlchemy's work per row or per statement (a single posting runs a dozen)."""
    columns = list(rows[0])
    key = (table.name, tuple(columns), upsert)
    found = _SQLITE_WRITES.get(key)
    if found is None:
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'
        if upsert:
            sql += " " + _on_conflict(table, columns)
        dialect = conn.dialect
        binds = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
        found = _SQLITE_WRITES[key] = (sql, binds)
    sql, binds = found
    by_column: list[list[Any]] = []  # a conversion over a column costs least
    for column, bind in zip(columns, binds, strict=True):
        given = [row[column] for row in rows]
        by_column.append(given if bind is None else _bound(given, bind))
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        driver.executemany(sql, zip(*by_column, strict=True))
    except sqlite3.Error as error:  # as SQLAlchemy raises it (an IntegrityError stays one)
        raise sa.exc.DBAPIError.instance(sql, None, error, sqlite3.Error) from error


def _bound(values: list[Any], bind: Callable[[Any], Any]) -> list[Any]:
    """``bind`` of each of ``values`` (a column's), None kept. A write's rows share a few
    days and one time: a column of dates converts each day once (equal dates convert alike),
    one of times each object once (equal times of two zones do not); other values, a
    Decimal above all (1.0 and 1.00), one by one."""
    first = values[0] if values else None
    if type(first) is dt.date:
        done: dict[Any, Any] = {None: None}
        return [done[v] if v in done else done.setdefault(v, bind(v)) for v in values]
    if type(first) is dt.datetime:
        by_id: dict[int, Any] = {id(None): None}  # the rows hold the objects: ids stay theirs
        return [
            by_id[id(v)] if id(v) in by_id else by_id.setdefault(id(v), bind(v)) for v in values
        ]
    return [None if v is None else bind(v) for v in values]


#: The statements of :func:`_sqlite_write` and their columns' bind conversions.
_SQLITE_WRITES: dict[tuple[str, tuple[str, ...], bool], tuple[str, list[Any]]] = {}


def _pg_upsert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], *, add: bool = False
) -> None:
    """:func:`_upsert` on PostgreSQL, in a statement or a few whatever the number of rows
    (see :func:`_pg_unnest`). With ``add`` the values are added to those stored."""
    _pg_unnest(conn, table, rows, _on_conflict(table, list(rows[0]), add=add))


def _pg_unnest(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], conflict: str
) -> None:
    """Insert ``rows`` on PostgreSQL with ``conflict`` (an ON CONFLICT clause, or nothing),
    held back when a pipeline is open (:func:`_pipelined`). Many rows in one statement:
    each column is sent as one array and the rows made by ``unnest``, which costs the
    client a fraction of a statement per row. Up to :data:`VALUES_ROWS` rows (a posting's
    few, where an array costs the driver more to send than its values one by one) as
    VALUES lists of 64, 32, ..., 1 rows: so few statement texts that each can stay
    prepared (psycopg prepares what runs five times), in the server's memory as in the
    driver's cache."""
    columns = tuple(rows[0])
    chunks: list[list[dict[str, Any]]] = []
    if len(rows) > VALUES_ROWS:
        chunks.append(rows)
    else:
        at = 0
        while at < len(rows):
            size = 1 << ((len(rows) - at).bit_length() - 1)  # the most that fits, a power of 2
            chunks.append(rows[at : at + size])
            at += size
    numeric = _numeric_columns(table, columns)
    with _pipelined(conn):  # sent at once unless a pipeline is open already
        for chunk in chunks:
            few = len(chunk) <= VALUES_ROWS
            sql = _pg_statement(conn, table, columns, conflict, len(chunk) if few else 0)
            by_column = [
                [row[c] for row in chunk]
                if c not in numeric
                else [None if (v := row[c]) is None else str(v) for row in chunk]
                for c in columns
            ]
            parameters = (
                tuple(v for values in zip(*by_column, strict=True) for v in values)
                if few
                else tuple(by_column)
            )
            conn.info[_PIPELINE].append((sql, parameters))


def _numeric_columns(table: sa.Table, columns: tuple[str, ...]) -> frozenset[str]:
    """Which of ``columns`` are NUMERIC: :func:`_pg_unnest` sends their decimals as text, for
    the server to read (its statements cast each value to the column's type). The driver's
    binary form of a Decimal costs it 0.8 µs a value, the text 0.25 µs: a third of a
    posting's time in the driver."""
    key = (table.name, columns)
    found = _NUMERIC.get(key)
    if found is None:
        found = _NUMERIC[key] = frozenset(
            c for c in columns if isinstance(table.c[c].type, sa.Numeric)
        )
    return found


#: :func:`_numeric_columns` by table and columns.
_NUMERIC: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}


def _pg_statement(
    conn: Connection, table: sa.Table, columns: tuple[str, ...], conflict: str, rows: int
) -> str:
    """The INSERT of :func:`_pg_unnest`: of ``rows`` VALUES, or (0) of arrays."""
    key = (table.name, columns, conflict, rows)
    sql = _PG_WRITES.get(key)
    if sql is None:
        # Strings as TEXT: an explicit cast to VARCHAR(n) would cut a longer value short,
        # where storing it into the column refuses it.
        types = [
            "TEXT"
            if isinstance(table.c[c].type, sa.String)
            else table.c[c].type.compile(dialect=conn.dialect)
            for c in columns
        ]
        # PostgreSQL's own placeholders ($1...): the driver sends them as they are (see
        # _send_held_back), where parsing a long statement for %s cost more than sending it.
        if rows:
            width = len(types)
            source = "VALUES " + ", ".join(
                "(" + ", ".join(f"${at + n + 1}::{kind}" for n, kind in enumerate(types)) + ")"
                for at in range(0, rows * width, width)
            )
        else:
            arrays = ", ".join(f"${n + 1}::{kind}[]" for n, kind in enumerate(types))
            source = f"SELECT * FROM unnest({arrays})"
        names = ", ".join(f'"{c}"' for c in columns)
        sql = _PG_WRITES[key] = f'INSERT INTO "{table.name}" ({names}) {source} {conflict}'
    return sql


@contextmanager
def _pipelined(conn: Connection) -> Iterator[None]:
    """On PostgreSQL the writes made inside (upserts, inserts of a few rows: a posting makes
    a dozen) are held back and sent in one round trip (psycopg's pipeline mode), at its end
    or before any other statement runs (the engine's ``before_cursor_execute``, and a
    COPY): their order stays. Nested: the outermost sends. On SQLite, nothing changes."""
    if conn.dialect.name != "postgresql" or _PIPELINE in conn.info:
        yield
        return
    conn.info[_PIPELINE] = []
    try:
        yield
        _send_held_back(conn)
    finally:
        if not conn.invalidated:  # (its info is gone with it, and reading it would raise)
            del conn.info[_PIPELINE]


#: The book's write lock, and the revision bumped, as :func:`_lock` sends them.
_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
_BUMP_SQL = f"UPDATE {t.settings.name} SET revision = revision + 1 RETURNING revision, created_at"


def _lock(
    conn: Connection, *, bump: bool, ahead: ReadAhead | None = None
) -> tuple[int, dt.datetime] | None:
    """PostgreSQL: begin ``conn``'s transaction, take the book's write lock and, with
    ``bump``, bump the revision (returned, with the book's creation time), in one round trip:
    a pipeline runs each statement once the one before it is done, so the bump waits for the
    lock. (The driver begins the transaction with the first statement, as SQLAlchemy lets it.)
    ``ahead``: what a group commit reads first, read in the same round trip, after the lock
    (so it sees every commit before it), and kept in ``conn.info`` (:data:`READ_AHEAD`)."""
    sent = (_LOCK_SQL, _BUMP_SQL) + ((_HISTORY_PG, _ANSWERS_PG_SQL) if ahead else ())
    with _round_trip(conn, sent) as driver:
        driver.execute(_LOCK_SQL, (WRITE_LOCK,))
        bumped = driver.execute(_BUMP_SQL) if bump else None
        if ahead is not None:
            pairs = sorted({(k.owner, k.key) for k in ahead.keys})
            history = driver.execute(_HISTORY_PG, (sorted(set(ahead.ids)),))
            answers = driver.execute(
                _ANSWERS_PG_SQL, ([o for o, _ in pairs], [k for _, k in pairs])
            )
    if ahead is not None:
        conn.info[READ_AHEAD] = (history.fetchall(), _answers_from(answers.fetchall()))
    if bumped is None:
        return None
    row = bumped.fetchone()
    assert row is not None, "a book has its settings row"
    return row[0], row[1]


@dataclasses.dataclass(frozen=True, slots=True)
class ReadAhead:
    """What a group commit reads before it posts (the events recorded under its ``ids``, the
    answers kept under its ``keys``): on PostgreSQL read with the write lock, in its round
    trip (:func:`_lock`), not in one round trip each."""

    ids: Sequence[str]
    keys: Sequence[Key]


#: Key in ``Connection.info`` of what :func:`_lock` read ahead: (rows of the events
#: recorded, as :data:`_HISTORY` reads them; the answers kept, as :func:`_answers` gives them).
READ_AHEAD = "backflush_read_ahead"


#: The sums of the stock moved per period a book holds (its attributes of these names), each
#: read from a table of its own, and what each is.
PERIOD_SUMS = {
    "moved": "the stock moved per period",
    "flows": "the stock moved per period and flow",
    "held_moved": "the stock in process and queued moved per period",
    "daily": "the stock moved per day and flow",
}


def _send_held_back(conn: Connection, *, commit: bool = False) -> None:
    """Send the statements :func:`_pipelined` holds back, in one round trip; with
    ``commit``, the transaction's COMMIT last in the same round trip (the driver's own
    commit then has nothing left to do)."""
    statements = conn.info.get(_PIPELINE)
    if not statements:
        return
    statements = [*statements, ("COMMIT", None)] if commit else list(statements)
    conn.info[_PIPELINE].clear()
    import psycopg  # PostgreSQL's driver, only here

    sent = [sql for sql, _ in statements]
    with _round_trip(conn, sent) as driver, psycopg.RawCursor(driver) as cursor:
        for sql, parameters in statements:
            cursor.execute(sql, parameters)


@contextmanager
def _round_trip(conn: Connection, sent: Sequence[str]) -> Iterator[psycopg.Connection[Any]]:
    """PostgreSQL: ``conn``'s driver connection in a pipeline (what runs inside is sent at
    its end, in one round trip). When a statement fails, its error is raised (named by
    :func:`_driver_error`, with the statements ``sent``), not the pipeline end's: that one
    reports the statements queued after the failed one ("pipeline aborted", or a lost
    connection again), as its own error when none was raised inside, else as psycopg's
    warning "error ignored terminating Pipeline"."""
    import psycopg  # PostgreSQL's driver, only here

    driver = conn.connection.driver_connection
    assert driver is not None
    failed: psycopg.Error | None = None
    try:
        with driver.pipeline():
            try:
                yield driver
            except psycopg.Error as error:  # kept, not raised through the pipeline's end
                failed = error
    except psycopg.Error as error:
        failed = failed or error
    if failed is not None:
        # Which statement failed, the pipeline does not say (the server's message does).
        text = "; ".join(sql if len(sql) < 200 else sql[:200] + "..." for sql in sent)
        raise _driver_error(conn, text, failed) from failed


#: ``conn.info`` key of the statements :func:`_pipelined` holds back.
_PIPELINE = "backflush.pipeline"

#: Most rows an insert holds back in a pipeline (more go by COPY).
PIPELINED_ROWS = 1_000


def _on_conflict(table: sa.Table, columns: Sequence[str], *, add: bool = False) -> str:
    """An upsert's ON CONFLICT clause (SQLite and PostgreSQL alike): on a primary key
    stored already, its other ``columns`` take the new values (with ``add``: the sums)."""
    keys = [c.name for c in table.primary_key.columns]
    values = [c for c in columns if c not in keys]
    conflict = ", ".join(f'"{c}"' for c in keys)
    if not values:
        return f"ON CONFLICT ({conflict}) DO NOTHING"
    stored = f'"{table.name}".'
    update = ", ".join(
        f'"{c}" = {stored}"{c}" + excluded."{c}"' if add else f'"{c}" = excluded."{c}"'
        for c in values
    )
    return f"ON CONFLICT ({conflict}) DO UPDATE SET {update}"


#: The statements of :func:`_pg_statement`, by table, columns, conflict clause and number
#: of rows (0: arrays).
_PG_WRITES: dict[tuple[str, tuple[str, ...], str, int], str] = {}

#: Most rows :func:`_pg_unnest` sends as VALUES.
VALUES_ROWS = 64


def _newer(where: str, revision: str) -> str:
    """What to say of a book whose schema a newer version of backflush wrote."""
    return (
        f"{where}: the book was written by a newer version of backflush (schema revision "
        f"{revision}; this version knows up to {SCHEMA_REVISION}): upgrade backflush to read it"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class SummaryEntry:
    """A summary journal entry and the events whose lines it sums (see
    :meth:`Store.summarised_entry`)."""

    entry_no: int
    entry: m.Entry
    events: tuple[str, ...]
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class EventTrail:
    """One recorded event as the book holds it (see :meth:`Store.trail`)."""

    settings: m.Settings
    #: The book's standards (every date's: the event was costed at those of its date).
    standards: Standards
    event: m.Event
    reversed_by: str
    #: The entries it posted, with their numbers.
    entries: tuple[tuple[int, m.Entry], ...]
    #: (event the movement belongs to, event that made it happen, movement): the movements
    #: of this event and those it made happen (a receipt clearing earlier queued consumption).
    movements: tuple[tuple[str, str, m.Movement], ...]
    #: Consumption it queued and flags it raised (their state now).
    shortages: tuple[m.ShortageEntry, ...]
    #: The production order it reports against (its state now; requirements as released).
    order: m.ProductionOrder | None
    #: Of those, the ones written off: (item, kind, written off by, reason).
    written_off: tuple[tuple[str, str, str, str], ...] = ()
    #: When it was recorded, and by whom (an API token's name; None: the command line, or
    #: a book older than the column).
    recorded_at: dt.datetime | None = None
    recorded_by: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    """An idempotency key: its owner's (an API token's name), with the digest of the request
    it came with. A request sent again with it is answered as it first was."""

    owner: str
    key: str
    digest: str


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What a request was answered: kept with its idempotency key, given again on a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


class KeyReused(ValueError):
    """An idempotency key came again with another request."""


@dataclasses.dataclass(frozen=True, slots=True)
class Posting(Generic[_T]):
    """One request's events, posted with other requests' in one write transaction
    (:meth:`Store.post_each`), yet all or nothing on its own."""

    #: The events, worked out inside the transaction from the book and ``kept`` (values read
    #: from the database, valid while no other writer writes: see :class:`_Kept`). It must
    #: not change the book; what it raises refuses this posting alone.
    events: Callable[[Connection, Book, dict[str, Any]], Sequence[m.Event]]
    #: What the posting answers, given which events were applied (it may write more in the
    #: transaction, e.g. an idempotency key); None: the list itself.
    done: Callable[[Connection, list[bool]], _T] | None = None
    #: Who posts them (an API token's name), recorded with each event.
    recorded_by: str | None = None
    #: The ids of its events, when known beforehand: whether they are recorded already is
    #: read for the whole group at once.
    ids: Sequence[str] = ()
    #: Its idempotency key: when an answer is kept under it, that :class:`Answer` is the
    #: posting's (replayed), after ``events`` checked the request but before anything is
    #: posted; else ``done`` must answer an :class:`Answer`, which is kept. The keys of a
    #: group are read in one query and written in one statement.
    key: Key | None = None


@dataclasses.dataclass(slots=True)
class _Kept:
    """The book a process posted on, kept in memory for its next write while the book's
    revision shows that no other writer has written since."""

    revision: int
    created_at: dt.datetime
    book: Book
    #: Other values read from the database, valid as long as the book (e.g. live API tokens).
    memo: dict[str, Any]
    #: The last journal entry number written (None: not known yet, read when needed).
    last_entry: int | None = None
    #: Sums as this book's writes left them in the tables :func:`_add_to` adds to: on
    #: SQLite the next write adds to them without reading them back.
    sums: Sums = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Imported:
    """What :meth:`Store.import_events` did: events applied, and already recorded (the
    same event again: no change)."""

    applied: int
    recorded: int


class _Unwritten(Exception):
    """Every posting of a group was refused before it changed the book, or replayed: the
    transaction is rolled back, its revision bump with it, so that the books other writers
    keep stay valid (a client posting into a closed period costs them no reload)."""

    def __init__(self, outcomes: dict[int, Any]) -> None:
        super().__init__(outcomes)
        self.outcomes = outcomes


class _Refused(Exception):
    """A posting was refused after it changed the book: the transaction is rolled back and
    the book it changed forgotten."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


@dataclasses.dataclass(slots=True)
class _Applied:
    """What a group's postings did to the book (:meth:`Store._apply_postings`), to be written."""

    #: Per posting (by its number): its answer, or what refused it.
    outcomes: dict[int, Any]
    changes: Changes
    #: Who posted each event of ``changes.events``.
    posted_by: list[str | None]
    #: The answers to keep under their keys.
    kept_answers: list[tuple[Key, Answer]]
    #: A posting's ``done`` was called: it may have written something.
    answered: bool


#: What :meth:`Store._post_group` answers for a posting that closes or reopens a period when
#: the stock moved per period was not loaded: it is posted on its own afterwards.
_ALONE = object()


#: Key in ``Connection.info``: this transaction checked the schema (see Store.transaction).
_CHECKED = "backflush_checked"

#: The bump of a write transaction (see :meth:`Store.transaction`).
_BUMP = (
    t.settings.update()
    .values(revision=t.settings.c.revision + 1)
    .returning(t.settings.c.revision, t.settings.c.created_at)
)


class Store:
    def __init__(self, url: str, *, create: bool = True) -> None:
        """Open the book at ``url``; with ``create`` False a SQLite file must exist already."""
        self.url = database_url(url)
        #: The URL as it may be shown (no password).
        self.display_url = display_url(self.url)
        path = _sqlite_path(self.url)
        if path is not None and not create and (not path.exists() or _empty(path)):
            # an empty file is no book either (and reading it must not make it a database)
            raise StoreError(f"no book at {path}; run `backflush init` first")
        self.engine = make_engine(self.url)
        self._cache: tuple[int, Standards] | None = None
        self._schema_checked = False
        #: Keep the book posted on in memory between writes (False: load it for each write).
        self.keep_book = True
        self._kept: _Kept | None = None
        self._kept_lock = threading.Lock()
        #: How many times a book was loaded to post on (it was not kept, or was stale).
        self.loads = 0

    def close(self) -> None:
        """Let go of the database. SQLite: what the write-ahead log holds is first written
        into the book's file (a copy of the file alone, taken after a server stopped, then
        holds every posting it acknowledged), as far as no one else is reading."""
        if self.engine.dialect.name == "sqlite":
            with (
                contextlib.suppress(sa.exc.SQLAlchemyError, sqlite3.Error),
                self.engine.connect() as conn,
            ):
                raw: Any = conn.connection.driver_connection  # (no transaction around it)
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)")  # (never waits for a reader)
        self.engine.dispose()

    def backup(self, target: Path) -> None:
        """Write a consistent copy of the SQLite book to the new file ``target``, as it
        stands at one moment, while others may go on posting (``VACUUM INTO``: what the
        write-ahead log holds included, which a copy of the file can miss). A book of an
        older schema is copied as it is: the copy to keep before ``backflush init``."""
        if self.engine.dialect.name != "sqlite":
            raise StoreError(
                f"{self.display_url}: a PostgreSQL book is backed up with PostgreSQL's own "
                "tools: pg_dump --format=custom (pg_restore brings it back)"
            )
        if target.exists():
            raise StoreError(f"{target}: exists already; a backup is written to a new file")
        with self.engine.connect() as conn:
            if self._revision(conn) is None:  # (a book of any version: the copy before init)
                raise StoreError(f"{self.display_url}: no book here")
            conn.rollback()
            raw: Any = conn.connection.driver_connection  # VACUUM runs outside a transaction
            new_file_like(target, self.url)
            try:
                raw.execute("VACUUM INTO ?", (str(target),))
            except BaseException:
                target.unlink(missing_ok=True)
                raise

    @contextmanager
    def transaction(
        self, *, write: bool = False, ahead: ReadAhead | None = None
    ) -> Iterator[Connection]:
        """One transaction. A ``write`` one takes the book's write lock first, before it reads
        anything: one writer at a time per book, and every state it reads is what the writers
        before it committed (SQLite: BEGIN IMMEDIATE; PostgreSQL: READ COMMITTED, the advisory
        lock :data:`WRITE_LOCK` as its first statement, so each later statement sees every
        commit made before the lock was granted; REPEATABLE READ would freeze the snapshot
        at that first statement, before the lock was granted). A write one also bumps the
        book's revision, whatever it writes, so that a book kept in memory is known stale:
        right after the lock, reading the new revision back (:data:`BUMPED` in
        ``conn.info``; PostgreSQL: sent with the lock, :func:`_lock`), or last when this store
        had not yet checked the schema. On PostgreSQL a write one holds its writes back
        (:func:`_pipelined`) and sends what is left of them with its COMMIT. A read one
        never blocks a writer and sees one consistent snapshot (SQLite: BEGIN in WAL mode;
        PostgreSQL: REPEATABLE READ). ``ahead``: what a write one reads first, on PostgreSQL
        read with the lock (:class:`ReadAhead`)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE: write})
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                level = "READ COMMITTED" if write else "REPEATABLE READ"
                conn.execution_options(isolation_level=level)
            with conn.begin():
                conn.info.pop(_CHECKED, None)  # a pooled connection's, from elsewhere
                checked = self._schema_checked
                bumped = write and checked
                if write and postgres:
                    # (read ahead once the schema is known: else it is checked first)
                    revision = _lock(conn, bump=bumped, ahead=ahead if bumped else None)
                    if bumped:
                        conn.info[BUMPED] = revision
                    conn.info[_PIPELINE] = []  # writes held back, to go with the COMMIT
                elif bumped:  # first, and read back: a writer learns what it follows at once
                    conn.info[BUMPED] = conn.execute(_BUMP).first()
                try:
                    yield conn
                    # checked meanwhile: by this transaction (another thread's migrate() may
                    # have cleared the store's flag since) or by another
                    if write and not bumped and (conn.info.get(_CHECKED) or self._schema_checked):
                        conn.execute(_BUMP)
                    if write and postgres:
                        _send_held_back(conn, commit=True)
                except BaseException:
                    if not checked:  # a schema checked here may be rolled back with it
                        self._schema_checked = False
                    raise
                finally:
                    if not conn.invalidated:  # (a lost connection's info went with it)
                        conn.info.pop(BUMPED, None)
                        conn.info.pop(_CHECKED, None)
                        conn.info.pop(_PIPELINE, None)
                        conn.info.pop(RECORDED_IN_GROUP, None)
                        conn.info.pop(READ_AHEAD, None)

    def _retrying(self, work: Callable[[], _T]) -> _T:
        """``work`` (one whole write transaction) run again, a bounded number of times after
        a jittered pause, when PostgreSQL rolled it back as a serialization failure or a
        deadlock victim: safe, since nothing of a rolled-back transaction stays."""
        for attempt in range(1, RETRIES + 1):
            try:
                return work()
            except sa.exc.DBAPIError as error:
                code = getattr(error.orig, "sqlstate", None)
                if code not in RETRYABLE or attempt == RETRIES:
                    raise
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------ schema and settings

    def migrate(self) -> str | None:
        """Bring the schema to the newest migration; the revision it was at (None: none)."""
        with self._migrating() as conn:
            return self._migrate(conn)

    def _migrating(self) -> AbstractContextManager[Connection]:
        """A write transaction that migrates first: the schema is checked again after it
        (the revision is bumped last, once the migration made its column)."""
        self._schema_checked = False
        return self.transaction(write=True)

    @staticmethod
    def _migrate(conn: Connection) -> str | None:
        """Run the migrations on ``conn``, inside its transaction: when that transaction is
        rolled back, so is the schema it made. Returns the revision the schema was at."""
        from alembic import command
        from alembic.config import Config

        before = Store._revision(conn)
        if before is not None and before > SCHEMA_REVISION:
            raise StoreError(_newer(display_url(conn.engine.url.render_as_string(False)), before))
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        # The schema is current now: the transaction bumps the revision at its end, so a
        # book kept elsewhere is stale after a migration (which may have changed data).
        conn.info[_CHECKED] = True
        return before

    @staticmethod
    def _revision(conn: Connection) -> str | None:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def initialized(self) -> bool:
        with self.engine.connect() as conn:
            if self._revision(conn) is None:
                return False
            return conn.execute(sa.select(t.settings.c.id)).first() is not None

    def _check_schema(self, conn: Connection) -> None:
        """The database holds a book at this version's schema (checked once per Store)."""
        if self._schema_checked:
            conn.info[_CHECKED] = True
            return
        current = self._revision(conn)
        if current is None:
            raise StoreError(f"{self.display_url}: no book here; run `backflush init` first")
        if current > SCHEMA_REVISION:
            raise StoreError(_newer(self.display_url, current))
        if current != SCHEMA_REVISION:
            raise StoreError(
                f"{self.display_url}: schema at revision {current}, this version needs "
                f"{SCHEMA_REVISION}; run `backflush init` to migrate"
            )
        self._schema_checked = True
        conn.info[_CHECKED] = True

    def init(self, settings: m.Settings) -> bool:
        """Create (or migrate) the schema and record the book's settings once.
        False when the same book was already there; a different book is refused."""
        with self._migrating() as conn:
            self._migrate(conn)
            return self._ensure_settings(conn, settings)

    def _ensure_settings(self, conn: Connection, settings: m.Settings) -> bool:
        existing = self._settings(conn)
        if existing is not None:
            if existing != settings:
                raise StoreError(_settings_conflict(existing, settings))
            return False
        conn.execute(
            t.settings.insert(),
            {
                "id": 1,
                "name": settings.name,
                "currency": settings.currency,
                "triggers": settings.triggers.value,
                "disposition": settings.disposition.value,
                "inventory_unsold_conversion": settings.inventory_unsold_conversion,
                "shortage": settings.shortage.value,
                "rounding": settings.rounding,
                "count_variance": settings.count_variance.value,
                "dispositions": json.dumps({k: v.value for k, v in settings.dispositions}),
                "exceptions_at_close": settings.exceptions_at_close.value,
                "lower_of_cost": settings.lower_of_cost.value,
                "journal_detail": settings.journal_detail.value,
                "master_revision": 0,
                "created_at": dt.datetime.now(dt.UTC),
            },
        )
        return True

    def _settings(self, conn: Connection) -> m.Settings | None:
        row = conn.execute(sa.select(t.settings).where(t.settings.c.id == 1)).mappings().first()
        if row is None:
            return None
        return m.Settings(
            name=row["name"],
            currency=row["currency"],
            triggers=m.Policy(row["triggers"]),
            disposition=m.Disposition(row["disposition"]),
            inventory_unsold_conversion=bool(row["inventory_unsold_conversion"]),
            shortage=m.Shortage(row["shortage"]),
            rounding=row["rounding"],
            count_variance=m.CountVariance(row["count_variance"]),
            dispositions=tuple(
                (kind, m.Disposition(how)) for kind, how in json.loads(row["dispositions"]).items()
            ),
            exceptions_at_close=m.ExceptionsAtClose(row["exceptions_at_close"]),
            lower_of_cost=m.LowerOfCost(row["lower_of_cost"]),
            journal_detail=m.JournalDetail(row["journal_detail"]),
        )

    def settings(self) -> m.Settings:
        with self.transaction() as conn:
            return self._require_settings(conn)

    def _require_settings(self, conn: Connection) -> m.Settings:
        self._check_schema(conn)
        found = self._settings(conn)
        if found is None:
            raise StoreError(f"{self.display_url}: no book here; run `backflush init` first")
        return found

    # ------------------------------------------------------------ master data

    def _master(self, conn: Connection) -> m.MasterData:
        items = {
            row.id: m.Item(
                row.id,
                m.Kind(row.kind),
                row.uom,
                m.Flush(row.flush),
                row.material_cost,
                tuple(_decimals(row.conversion).items()),
                m.Policy(row.triggers) if row.triggers else None,
                row.lot_size,
                row.family,
                row.site,
            )
            for row in conn.execute(sa.select(t.items).order_by(t.items.c.id))
        }
        lines: dict[tuple[str, dt.date, dt.date | None], list[m.BomLine]] = {}
        query = sa.select(t.bom_lines).order_by(
            t.bom_lines.c.item, t.bom_lines.c.effective_from, t.bom_lines.c.line_no
        )
        for row in conn.execute(query):
            lines.setdefault((row.item, row.effective_from, row.effective_to), []).append(
                m.BomLine(
                    row.component,
                    row.quantity,
                    row.scrap,
                    m.Flush(row.flush) if row.flush else None,
                    row.operation,
                )
            )
        boms: dict[str, list[m.Bom]] = {}
        for (item, effective, until), found in lines.items():
            boms.setdefault(item, []).append(m.Bom(item, tuple(found), effective, until))
        rates: dict[str, list[tuple[str, Decimal]]] = {}
        query = sa.select(t.work_center_rates).order_by(
            t.work_center_rates.c.work_center, t.work_center_rates.c.element
        )
        for row in conn.execute(query):
            rates.setdefault(row.work_center, []).append((row.element, row.rate))
        centers = {
            row.id: m.WorkCenter(row.id, tuple(rates.get(row.id, ())), row.name)
            for row in conn.execute(sa.select(t.work_centers).order_by(t.work_centers.c.id))
        }
        operations: dict[tuple[str, dt.date, dt.date | None], list[m.Operation]] = {}
        ops = t.routing_operations
        query = sa.select(ops).order_by(ops.c.item, ops.c.effective_from, ops.c.operation)
        for row in conn.execute(query):
            operations.setdefault((row.item, row.effective_from, row.effective_to), []).append(
                m.Operation(
                    row.operation,
                    row.work_center,
                    row.run_hours,
                    row.setup_hours,
                    row._mapping["yield"],
                )
            )
        routings: dict[str, list[m.Routing]] = {}
        for (item, effective, until), found_ops in operations.items():
            routings.setdefault(item, []).append(
                m.Routing(item, tuple(found_ops), effective, until)
            )
        materials: dict[str, list[tuple[str, Decimal]]] = {}
        query = sa.select(t.cost_set_materials).order_by(
            t.cost_set_materials.c.cost_set, t.cost_set_materials.c.item
        )
        for row in conn.execute(query):
            materials.setdefault(row.cost_set, []).append((row.item, row.cost))
        set_rates: dict[str, list[tuple[str, str, Decimal]]] = {}
        query = sa.select(t.cost_set_rates).order_by(
            t.cost_set_rates.c.cost_set, t.cost_set_rates.c.work_center, t.cost_set_rates.c.element
        )
        for row in conn.execute(query):
            set_rates.setdefault(row.cost_set, []).append((row.work_center, row.element, row.rate))
        sets = {
            row.name: m.CostSet(
                row.name,
                tuple(materials.get(row.name, ())),
                tuple(set_rates.get(row.name, ())),
                row.effective,
            )
            for row in conn.execute(sa.select(t.cost_sets).order_by(t.cost_sets.c.name))
        }
        return m.MasterData(
            items,
            {k: tuple(v) for k, v in boms.items()},
            centers,
            {k: tuple(v) for k, v in routings.items()},
            sets,
        )

    def _add_master(
        self, conn: Connection, master: m.MasterData, recorded_by: str | None = None
    ) -> None:
        """Add master data; what is already there must be identical. Standards that change
        (a new BOM or routing version, a cost set released) must take effect after the last
        event recorded: past postings never change. What it adds is logged as made by
        ``recorded_by`` (:data:`schema.master_changes`)."""
        stored = self._master(conn)
        problems: list[str] = []
        rows: dict[sa.Table, list[dict[str, Any]]] = {}

        def add(table: sa.Table, new: list[dict[str, Any]]) -> None:
            rows.setdefault(table, []).extend(new)

        for item in master.items.values():
            old = stored.items.get(item.id)
            if old is None:
                add(t.items, [_item_row(item)])
            elif old != item:
                problems.append(redefined_item(item.id))
        for center in master.work_centers.values():
            old_center = stored.work_centers.get(center.id)
            if old_center is None:
                add(t.work_centers, [{"id": center.id, "name": center.name}])
                add(
                    t.work_center_rates,
                    [{"work_center": center.id, "element": e, "rate": r} for e, r in center.rates],
                )
            elif old_center != center:
                problems.append(
                    f"work center {center.id}: already in the book with different rates "
                    "(rates change through a cost set released with an effective date)"
                )
        changes: list[tuple[str, dt.date]] = []
        new_versions: dict[str, list[str]] = {"BOM": [], "routing": []}  # for the log
        versions: list[m.Bom | m.Routing] = [v for vs in master.boms.values() for v in vs]
        versions += [v for vs in master.routings.values() for v in vs]
        for version in versions:
            what, stored_versions = (
                ("BOM", stored.boms) if isinstance(version, m.Bom) else ("routing", stored.routings)
            )
            old_version = next(
                (
                    v
                    for v in stored_versions.get(version.item, ())
                    if v.effective_from == version.effective_from
                ),
                None,
            )
            label = f"{what} of {version.item} effective {version.effective_from}"
            if old_version is None:
                add(*_version_rows(version))
                when = version.effective_from
                new_versions[what].append(
                    f"{version.item} from {'the start' if when == dt.date.min else when}"
                )
                if version.item in stored.items:  # a new item has no postings to change
                    changes.append((label, version.effective_from))
            elif old_version != version:
                problems.append(
                    f"{what} of {version.item}: {redefined_version(version.effective_from)}"
                )
        for cost_set in master.cost_sets.values():
            old_set = stored.cost_sets.get(cost_set.name)
            if old_set is None:
                add(
                    t.cost_sets,
                    [
                        {
                            "name": cost_set.name,
                            "effective": cost_set.effective,
                            "released_at": _now() if cost_set.effective else None,
                        }
                    ],
                )
                add(
                    t.cost_set_materials,
                    [
                        {"cost_set": cost_set.name, "item": i, "cost": c}
                        for i, c in cost_set.materials
                    ],
                )
                add(
                    t.cost_set_rates,
                    [
                        {"cost_set": cost_set.name, "work_center": w, "element": e, "rate": r}
                        for w, e, r in cost_set.rates
                    ],
                )
                if cost_set.effective is not None:
                    changes.append((f"cost set {cost_set.name} released", cost_set.effective))
            elif old_set != cost_set:
                problems.append(
                    f"cost set {cost_set.name}: already in the book with different content"
                )  # fmt: skip
        problems += self._check_changes(conn, changes)
        if problems:
            raise InputError(problems)
        combined = stored.merged(master)
        problems += check_versions(combined)
        if problems:
            raise InputError(problems)
        check_standards(combined, self._require_settings(conn))
        for table in t.metadata.sorted_tables:
            if rows.get(table):
                conn.execute(table.insert(), rows[table])
        if any(rows.values()):
            conn.execute(
                t.settings.update().values(master_revision=t.settings.c.master_revision + 1)
            )
            added = ", ".join(
                f"{table.name} {len(rows[table])}"
                for table in t.metadata.sorted_tables
                if rows.get(table)
            )
            # what was added, by name: what an auditor asks of a change of standards
            sets = rows.get(t.cost_sets, [])
            named = {
                "items": sorted(r["id"] for r in rows.get(t.items, [])),
                "BOM versions": sorted(new_versions["BOM"]),
                "routing versions": sorted(new_versions["routing"]),
                "work centers": sorted(r["id"] for r in rows.get(t.work_centers, [])),
                "cost sets": sorted(r["name"] for r in sets if r["effective"] is None),
                "cost sets released": sorted(
                    f"{r['name']} effective {r['effective']}"
                    for r in sets
                    if r["effective"] is not None
                ),
            }
            change = f"master data added ({added})" + "".join(
                f"; {what}: {_listed(names)}" for what, names in named.items() if names
            )
            _log_master_change(conn, change, recorded_by)

    @staticmethod
    def _check_changes(conn: Connection, changes: list[tuple[str, dt.date]]) -> list[str]:
        """Standards may change only after the last event recorded (past postings never
        change)."""
        last = conn.execute(_LAST_EVENT).scalar()
        found = ((what, too_early(on, last)) for what, on in changes)
        return [f"{what}: {early}" for what, early in found if early is not None]

    def last_event(self) -> dt.date | None:
        """The date of the latest event recorded (None: none yet)."""
        with self.transaction() as conn:
            self._check_schema(conn)
            return conn.execute(_LAST_EVENT).scalar()

    def add_master(
        self,
        master: m.MasterData,
        *,
        also: Callable[[Connection], None] | None = None,
        recorded_by: str | None = None,
    ) -> None:
        """Add master data to an existing book in one transaction (what is already there must
        be identical); ``also`` writes more in that transaction (an idempotency key)."""
        with self.transaction(write=True) as conn:
            self._check_schema(conn)
            self._require_settings(conn)
            self._add_master(conn, master, recorded_by)
            if also is not None:
                also(conn)

    def release_cost_set(
        self,
        name: str,
        effective: dt.date,
        *,
        also: Callable[[Connection], None] | None = None,
        recorded_by: str | None = None,
    ) -> m.CostSet:
        """Release a cost set: its costs and rates are the book's standards from ``effective``
        on; stock on hand is revalued when the first event of that date or later is posted.
        ``also`` writes more in the same transaction (an idempotency key)."""
        with self.transaction(write=True) as conn:
            self._check_schema(conn)
            stored = self._master(conn)
            found = stored.cost_sets.get(name)
            if found is None:
                known = ", ".join(sorted(stored.cost_sets)) or "none"
                raise InputError([f"cost set {name!r}: not in the book (cost sets: {known})"])
            if found.effective is not None:
                raise InputError(
                    [f"cost set {name}: already released, effective {found.effective}"]
                )
            problems = self._check_changes(conn, [(f"cost set {name}", effective)])
            for other in stored.released():
                if other.effective == effective:
                    problems.append(
                        f"cost set {name}: cost set {other.name} is already released "
                        f"effective {effective}; release one set per date"
                    )
            if problems:
                raise InputError(problems)
            released = dataclasses.replace(found, effective=effective)
            check_standards(
                dataclasses.replace(stored, cost_sets={**stored.cost_sets, name: released}),
                self._require_settings(conn),
            )
            conn.execute(
                t.cost_sets.update()
                .where(t.cost_sets.c.name == name)
                .values(effective=effective, released_at=_now())
            )
            conn.execute(
                t.settings.update().values(master_revision=t.settings.c.master_revision + 1)
            )
            change = f"cost set {name} released, effective {effective.isoformat()}"
            _log_master_change(conn, change, recorded_by)
            if also is not None:
                also(conn)
            return released

    def master_changes(self) -> list[tuple[dt.datetime, str | None, str]]:
        """Each change of the book's master data, oldest first: (when, by whom, what)."""
        with self.transaction() as conn:
            self._check_schema(conn)
            query = sa.select(
                t.master_changes.c.recorded_at,
                t.master_changes.c.recorded_by,
                t.master_changes.c.change,
            ).order_by(t.master_changes.c.seq)
            return [(_utc(at), by, change) for at, by, change in conn.execute(query)]

    def master(self) -> m.MasterData:
        """The book's master data (kept by this Store while the book's master revision is
        unchanged: checking an event against it costs one query, not a read of every item)."""
        with self.transaction() as conn:
            return self._standards(conn, self._require_settings(conn)).master

    # ------------------------------------------------------------ loading the book

    def _standards(self, conn: Connection, settings: m.Settings) -> Standards:
        """Master data and its rolled-up standards, read again only when they changed."""
        revision = conn.execute(sa.select(t.settings.c.master_revision)).scalar_one()
        cached = self._cache
        if cached is None or cached[0] != revision or cached[1].settings != settings:
            cached = self._cache = (revision, Standards(settings, self._master(conn)))
        return cached[1]

    def _load(
        self,
        conn: Connection,
        *,
        history: bool = True,
        by_item: bool = True,
        period_sums: bool = True,
    ) -> Book:
        """The book's state. Without ``history`` (the posting path) only the open shortage
        queue is read, not the cleared entries and negative-stock flags kept for reports, nor
        (as without ``by_item``) the journal summed per item that margin and variance
        analysis read. Without ``period_sums`` (posting what neither closes nor reopens) the
        stock moved per period, item and flow is not read either: only a close reads it, and
        :meth:`_write` adds what the events moved to the stored sums (``added_sums``)."""
        settings = self._require_settings(conn)
        standards = self._standards(conn, settings)
        book = Book(settings, standards.master, standards)
        book.keep_journal = False
        for row in conn.execute(sa.select(t.balances)):
            book.balances[(m.Account(row.account), row.element)] = row.amount
        for row in conn.execute(sa.select(t.period_activity)):
            book.activity.setdefault(row.period, {})[(m.Account(row.account), row.element)] = (
                row.amount
            )
        for row in conn.execute(sa.select(t.period_statistics)):
            book.statistics.setdefault(row.period, {})[row.name] = row.amount
        for row in conn.execute(sa.select(t.quantities).order_by(t.quantities.c.item)):
            book.on_hand[row.item] = row.on_hand
            book.in_process[row.item] = row.in_process
            if row.last_moved is not None:
                book.last_moved[row.item] = row.last_moved
        queue = sa.select(t.shortages).order_by(t.shortages.c.seq)
        if not history:
            queue = queue.where(
                t.shortages.c.kind == "shortage", t.shortages.c.cleared_by.is_(None)
            )
        for row in conn.execute(queue):
            book.restore_shortage(
                m.ShortageEntry(
                    row.event,
                    row.date,
                    row.item,
                    row.quantity,
                    row.open,
                    row.kind,
                    row.into_process,
                ),
                row.cleared_by or "",
            )
        for row in conn.execute(sa.select(t.orders).order_by(t.orders.c.id)):
            book.orders[row.id] = _order_from_row(row)
        for row in conn.execute(sa.select(t.periods).order_by(t.periods.c.period)):
            book.closed[row.period] = m.PeriodResult(
                row.period,
                row.close_event,
                tuple(_decimals(row.variances).items()),
                tuple(sorted(_decimals(row.balances).items())),
            )
        if period_sums:
            _load_period_sums(conn, book)
        if history and by_item:  # reports only: posting adds to these sums without reading them
            for row in conn.execute(sa.select(t.item_activity)):
                book.item_activity.setdefault(row.period, {})[
                    (m.Account(row.account), row.element, row.item)
                ] = row.amount
            _load_disposed(conn, book)
        revalued = conn.execute(
            sa.select(t.events.c.payload)
            .where(t.events.c.type == m.Revaluation.type)
            .order_by(t.events.c.seq.desc())
            .limit(1)
        ).scalar()
        if revalued is not None:
            event = event_from_payload("revaluation", revalued)
            assert isinstance(event, m.Revaluation)
            book.epoch = event.effective
        for row in conn.execute(sa.select(t.unsold_conversion)):
            book.unsold_conversion[(m.Account(row.account), row.element)] = row.amount
        self._load_close_procedure(conn, book)
        _load_nrv(conn, book)
        book.history = lambda ids: self._history(conn, ids)
        return book

    @staticmethod
    def _load_close_procedure(conn: Connection, book: Book) -> None:
        """Reopened periods and exceptions written off (both small: read always)."""
        reopens = t.period_reopens
        for row in conn.execute(sa.select(reopens).order_by(reopens.c.seq)):
            book.reopens.setdefault(row.period, []).append(
                ReopenRecord(row.period, row.event, row.date, row.close_event, row.reason)
            )
        for row in conn.execute(sa.select(t.exception_write_offs)):
            key = (row.event, row.item, row.kind)
            book.written_off[key] = row.reason
            book.cleared_by.setdefault(key, row.written_off_by)

    def close_check(self, period: str) -> tuple[Book, list[m.Event]]:
        """The book and the purchases and counts of ``period`` that stand (not reversed), read
        in one transaction: what the close checklist looks at."""
        first, last = m.period_bounds(period)
        events = t.events
        query = (
            sa.select(events.c.id, events.c.payload)
            .where(
                events.c.date.between(first, last),
                events.c.type.in_((m.Purchase.type, m.Count.type)),
                events.c.reversed_by.is_(None),
            )
            .order_by(events.c.seq)
        )
        with self.transaction() as conn:
            book = self._load(conn, by_item=False)
            found = [event_from_payload(row.id, row.payload) for row in conn.execute(query)]
        book.history = None
        return book, found

    def _history_of(
        self, conn: Connection, ahead: Sequence[str] = ()
    ) -> Callable[[Iterable[str]], dict[str, Recorded]]:
        """:meth:`_history` for a write transaction: an id once found not recorded is not
        read again (under the write lock only the book records events, and it knows what it
        recorded). ``ahead``: ids whose events the transaction read with its lock (their rows
        in ``conn.info``, :data:`READ_AHEAD`), not read again. It does not refer to the book
        it is given to: a book dropped without :func:`_forget` (a posting refused after it
        changed it) is freed by its reference count, even once frozen (see
        :mod:`backflush.api.writer`)."""
        absent: set[str] = set()
        read: dict[str, Recorded] = {}
        if ahead and READ_AHEAD in conn.info:
            read = self._recorded(conn, conn.info[READ_AHEAD][0])
            absent.update(i for i in ahead if i not in read)

        def history(ids: Iterable[str]) -> dict[str, Recorded]:
            wanted = [i for i in ids if i not in absent]
            found = {i: read.pop(i) for i in wanted if i in read}
            missing = [i for i in wanted if i not in found]
            found |= self._history(conn, missing) if missing else {}
            absent.update(i for i in wanted if i not in found)
            return found

        return history

    def _history(self, conn: Connection, ids: Iterable[str]) -> dict[str, Recorded]:
        """Recorded events by id, with the entries and movements a reversal needs."""
        wanted = sorted(set(ids))
        found: dict[str, Recorded] = {}
        for chunk in _chunks(wanted, 500):
            found |= self._recorded(conn, conn.execute(_HISTORY, {"ids": chunk}).all())
        return found

    @staticmethod
    def _recorded(conn: Connection, rows: Sequence[Sequence[Any]]) -> dict[str, Recorded]:
        """The recorded events of ``rows`` (as :data:`_HISTORY` reads them), with their
        entries and movements."""
        found: dict[str, Recorded] = {}
        for event_id, payload, statistics, reversed_by, detail in rows:
            found[event_id] = recorded = Recorded(
                event_from_payload(event_id, payload),
                payload,
                statistics=list(_decimals(statistics).items()),
                reversed_by=reversed_by or "",
            )
            if detail is not None:  # summarised: its own entries kept with it
                entries, movements = summaries.read_detail(event_id, detail)
                recorded.entries += entries
                recorded.movements += movements
        for present in _chunks(sorted(found), 500):
            for entry in _entries(conn, t.journal_lines.c.event.in_(present)):
                found[entry.event].entries.append(entry)
            query = (
                sa.select(t.movements)
                .where(t.movements.c.event.in_(present))
                .order_by(t.movements.c.id)
            )
            for row in conn.execute(query):
                found[row.event].movements.append(m.Movement(row.item, row.on_hand, row.in_process))
        return found

    def load(self, *, period_sums: Collection[str] = PERIOD_SUMS) -> Book:
        """The book's state (without its journal; see :meth:`entries`), for reading: post
        through :meth:`post`, which loads it again under the write lock. ``period_sums``:
        which sums of the stock moved per period to read (:data:`PERIOD_SUMS`, the most of a
        large book's load); one left out raises :class:`NotLoaded` when read."""
        with self.transaction() as conn:
            return self._load_reading(conn, period_sums)

    def _load_reading(self, conn: Connection, period_sums: Collection[str]) -> Book:
        """:meth:`load` on ``conn``."""
        unknown = sorted(set(period_sums) - PERIOD_SUMS.keys())
        if unknown:
            raise ValueError(f"no such sums of stock moved per period: {', '.join(unknown)}")
        book = self._load(conn, period_sums=False)
        _load_period_sums(conn, book, period_sums)
        book.history = None
        for name, what in PERIOD_SUMS.items():
            if name not in period_sums:
                setattr(book, name, Unloaded(what))
        return book

    def entries(self, period: str | None = None) -> list[m.Entry]:
        """The journal (of one period)."""
        with self.transaction() as conn:
            self._check_schema(conn)
            return self._entries(conn, period)

    def numbered_entries(self, period: str | None = None) -> list[tuple[int, m.Entry]]:
        """The journal (of one period), each entry with its number."""
        with self.transaction() as conn:
            self._check_schema(conn)
            where = t.journal_lines.c.period == period if period else sa.true()
            return list(_numbered_entries(conn, where))

    @staticmethod
    def _entries(conn: Connection, period: str | None) -> list[m.Entry]:
        where = t.journal_lines.c.period == period if period else sa.true()
        return list(_entries(conn, where))

    def snapshot(self, period: str | None = None) -> tuple[Book, list[m.Entry], int]:
        """The book's state, its journal (of one period) and its number of events, read in
        one transaction: the three agree even while others post."""
        book, numbered, count = self.numbered_snapshot(period)
        return book, [entry for _, entry in numbered], count

    def numbered_snapshot(
        self, period: str | None = None
    ) -> tuple[Book, list[tuple[int, m.Entry]], int]:
        """:meth:`snapshot`, each entry with its number (what ``backflush explain --entry``
        takes)."""
        with self.transaction() as conn:
            book = self._load(conn)
            where = t.journal_lines.c.period == period if period else sa.true()
            numbered = list(_numbered_entries(conn, where))
            count = self._event_count(conn)
        book.history = None
        return book, numbered, count

    def journal_page(
        self, period: str | None, limit: int, after: int | None = None
    ) -> tuple[Book, list[tuple[int, m.Entry]], int]:
        """The book, the first ``limit`` journal entries (of ``period``; numbered above
        ``after`` when given) and how many there are in all (of ``period``), read in one
        transaction: a page of a journal of millions of lines."""
        lines = t.journal_lines
        where = lines.c.period == period if period else sa.true()
        with self.transaction() as conn:
            book = self._load(conn, by_item=False)
            total = conn.execute(
                sa.select(sa.func.count(sa.distinct(lines.c.entry_no))).where(where)
            ).scalar_one()
            if after is not None:
                where = sa.and_(where, lines.c.entry_no > after)
            beyond = conn.execute(
                sa.select(lines.c.entry_no)
                .where(where)
                .group_by(lines.c.entry_no)
                .order_by(lines.c.entry_no)
                .limit(1)
                .offset(limit)
            ).scalar()
            if beyond is not None:
                where = sa.and_(where, lines.c.entry_no < beyond)
            numbered = list(_numbered_entries(conn, where))
        book.history = None
        return book, numbered, total

    def summarised_entry(self, entry_no: int) -> SummaryEntry | None:
        """Journal entry ``entry_no`` when it is a summary (``journal_detail`` day or period),
        with the events whose lines it sums in posting order; None when there is no such
        summary."""
        with self.transaction() as conn:
            currency = self._require_settings(conn).currency
            found = list(_numbered_entries(conn, t.journal_lines.c.entry_no == entry_no))
            if not found or found[0][1].event:
                return None
            ev = t.events
            query = sa.select(ev.c.id).where(ev.c.summary_entry == entry_no).order_by(ev.c.seq)
            events = tuple(conn.execute(query).scalars())
        return SummaryEntry(entry_no, found[0][1], events, currency)

    def trail(self, *, event: str | None = None, entry_no: int | None = None) -> EventTrail | None:
        """One recorded event, given by its id or by the number of an entry it posted, with
        what it posted and moved and the standards it was costed at, read in one transaction
        (the audit trail of ``backflush explain``); None when there is no such event or
        entry."""
        with self.transaction() as conn:
            settings = self._require_settings(conn)
            if event is None:
                event = conn.execute(
                    sa.select(t.journal_lines.c.event)
                    .where(t.journal_lines.c.entry_no == entry_no)
                    .limit(1)
                ).scalar()
                if not event:  # none, or a summary entry (see summarised_entry)
                    return None
            row = conn.execute(sa.select(t.events).where(t.events.c.id == event)).first()
            if row is None:
                return None
            recorded = event_from_payload(row.id, row.payload)
            entries = tuple(_numbered_entries(conn, t.journal_lines.c.event == event))
            own: tuple[tuple[str, str, m.Movement], ...] = ()
            if row.detail is not None:  # summarised: numbered as the summary it went to
                summed, moved = summaries.read_detail(row.id, row.detail)
                entries = tuple((row.summary_entry, entry) for entry in summed) + entries
                own = tuple((event, event, movement) for movement in moved)
            mv = t.movements
            query = sa.select(mv).where(sa.or_(mv.c.event == event, mv.c.cause == event))
            movements = own + tuple(
                (r.event, r.cause, m.Movement(r.item, r.on_hand, r.in_process))
                for r in conn.execute(query.order_by(mv.c.id))
            )
            query = sa.select(t.shortages).where(t.shortages.c.event == event)
            shortages = tuple(
                m.ShortageEntry(r.event, r.date, r.item, r.quantity, r.open, r.kind,
                                r.into_process)
                for r in conn.execute(query.order_by(t.shortages.c.seq))
            )  # fmt: skip
            offs = t.exception_write_offs
            query = sa.select(offs).where(offs.c.event == event).order_by(offs.c.item, offs.c.kind)
            written_off = tuple(
                (r.item, r.kind, r.written_off_by, r.reason) for r in conn.execute(query)
            )
            order_id = getattr(recorded, "order", "")
            order_row = (
                conn.execute(sa.select(t.orders).where(t.orders.c.id == order_id)).first()
                if order_id
                else None
            )
            return EventTrail(
                settings,
                self._standards(conn, settings),
                recorded,
                row.reversed_by or "",
                entries,
                movements,
                shortages,
                _order_from_row(order_row) if order_row is not None else None,
                written_off,
                _utc(row.recorded_at),
                row.recorded_by,
            )

    def summary(
        self, *, period_sums: Collection[str] = PERIOD_SUMS
    ) -> tuple[Book, JournalSummary, int]:
        """The book's state, the figures of its journal per period and kind (entries, lines,
        debits) and its number of events, read in one transaction: what the period report
        shows, without reading the journal itself (``period_sums`` as :meth:`load`)."""
        with self.transaction() as conn:
            book = self._load_reading(conn, period_sums)
            figures = self._journal_summary(conn)
            count = self._event_count(conn)
        return book, figures, count

    @staticmethod
    def _journal_summary(conn: Connection) -> JournalSummary:
        return {
            (row.period, row.kind): KindFigures(row.entries, row.lines, row.debits)
            for row in conn.execute(sa.select(t.journal_summary))
        }

    # ------------------------------------------------------------ writing

    def post(
        self,
        events: Sequence[m.Event],
        *,
        recorded_by: str | None = None,
        also: Callable[[Connection, list[bool]], None] | None = None,
    ) -> list[bool]:
        """Apply events in one transaction; True per event applied, False per duplicate.
        ``recorded_by`` names who posted them (an API token); ``also`` writes more in the
        same transaction, given what was applied (an idempotency key and its response). A
        serialization failure or deadlock runs the whole transaction again."""

        def done(conn: Connection, applied: list[bool]) -> list[bool]:
            assert also is not None
            also(conn, applied)
            return applied

        ids = [e.id for e in events]
        posting = Posting(
            lambda _conn, _book, _kept: events, None if also is None else done, recorded_by, ids
        )
        # Only a close or a reopen reads the stock moved per period.
        sums = any(e.type in CLOSING_EVENTS for e in events)
        try:
            found = self._retrying(partial(self._post_group, [(0, posting)], sums=sums))
        except _Refused as refused:
            raise refused.error from None
        outcome = found[0]
        if isinstance(outcome, Exception):
            raise outcome
        assert isinstance(outcome, list)
        return outcome

    def post_each(self, postings: Sequence[Posting[Any]]) -> list[Any]:
        """Post each posting's events, all or nothing per posting, in as few transactions as
        it takes (group commit): one for them all, unless one is refused after it changed the
        book (they are posted again without it), and one more for each that closes or
        reopens a period. Per posting: what its ``done`` answered (else the list of events
        applied), or the exception that refused it. A database error refuses every posting
        of the transaction it failed: raised when that is the group's, the outcome of the
        close or reopen when it is that one's (the group's postings are committed then)."""
        outcomes: dict[int, Any] = {}
        group = list(enumerate(postings))
        while group:
            try:
                outcomes.update(self._retrying(partial(self._post_group, group, sums=False)))
            except _Refused as refused:
                outcomes[refused.index] = refused.error
                group = [(i, p) for i, p in group if i != refused.index]
                continue
            break
        for index in [i for i, outcome in outcomes.items() if outcome is _ALONE]:
            alone = [(index, postings[index])]
            try:
                outcomes.update(self._retrying(partial(self._post_group, alone, sums=True)))
            except _Refused as refused:
                outcomes[index] = refused.error
            except sa.exc.DBAPIError as error:
                outcomes[index] = error
        return [outcomes[i] for i in range(len(postings))]

    def _post_group(
        self, group: Sequence[tuple[int, Posting[Any]]], *, sums: bool
    ) -> dict[int, Any]:
        """Post ``group`` (numbered postings) in one write transaction on the kept book.
        Without ``sums`` a posting that closes or reopens a period is answered
        :data:`_ALONE`, as that needs the stock moved per period loaded."""
        written = True
        ids = [i for _index, posting in group for i in posting.ids]
        keys = [p.key for _i, p in group if p.key is not None]
        try:
            with self.transaction(write=True, ahead=ReadAhead(ids, keys)) as conn:
                kept = self._posting_book(conn)
                book = kept.book
                book.history = self._history_of(conn, ids)
                try:
                    outcomes = self._post_postings(conn, kept, group, sums=sums)
                finally:  # the lookup is this transaction's only
                    book.history = None
        except _Unwritten as unwritten:
            outcomes, written = unwritten.outcomes, False
        _forget(book)
        if written:
            kept.revision += 1  # the transaction's own bump
        if self.keep_book:
            with self._kept_lock:
                self._kept = kept
        return outcomes

    def _post_postings(
        self,
        conn: Connection,
        kept: _Kept,
        group: Sequence[tuple[int, Posting[Any]]],
        *,
        sums: bool,
    ) -> dict[int, Any]:
        """The body of :meth:`_post_group`: each posting on the book, then what they changed
        and the answers kept under their keys written."""
        applied = self._apply_postings(conn, kept, group, sums=sums)
        if not (applied.changes.events or applied.answered):  # every one refused or replayed
            raise _Unwritten(applied.outcomes)
        self._write_applied(conn, kept, applied, sums=sums)
        return applied.outcomes

    def _apply_postings(
        self,
        conn: Connection,
        kept: _Kept,
        group: Sequence[tuple[int, Posting[Any]]],
        *,
        sums: bool,
    ) -> _Applied:
        """Each posting of ``group`` on the book (what it refuses refuses it alone, unless it
        changed the book: :class:`_Refused`)."""
        book = kept.book
        outcomes: dict[int, Any] = {}
        known = [i for _index, posting in group for i in posting.ids]
        assert book.history is not None  # bound to this transaction by the caller
        book.recorded.update(book.history(known))  # one read for the group
        if sums:
            _load_period_sums(conn, book)
        keys = [p.key for _i, p in group if p.key is not None]
        ahead = conn.info.get(READ_AHEAD)
        answers = dict(ahead[1]) if ahead is not None else _answers(conn, keys)
        kept_answers: list[tuple[Key, Answer]] = []
        posted_by: list[str | None] = []
        answered = False  # a posting's done was called: it may have written something
        recorded_in_group: dict[str, str | None] = {}
        conn.info[RECORDED_IN_GROUP] = recorded_in_group
        for index, posting in group:
            try:
                events = list(posting.events(conn, book, kept.memo))
                replay = _replay(answers, posting.key)
            except sa.exc.DBAPIError:
                raise
            except Exception as error:  # refused before it changed anything
                outcomes[index] = error
                continue
            if replay is not None:
                outcomes[index] = replay
                continue
            if not sums and any(e.type in CLOSING_EVENTS for e in events):
                outcomes[index] = _ALONE
                continue
            try:
                applied = book.post_many(events)
            except PostingError as error:
                if error.changed_book:
                    raise _Refused(index, error) from error
                outcomes[index] = error  # the book is as it was: the group goes on
                continue
            except sa.exc.DBAPIError:
                raise
            except Exception as error:
                raise _Refused(index, error) from error
            try:
                done = posting.done
                answered = answered or done is not None
                outcome = applied if done is None else done(conn, applied)
            except sa.exc.DBAPIError:
                raise
            except Exception as error:
                raise _Refused(index, error) from error
            if posting.key is not None:
                assert isinstance(outcome, Answer), "a keyed posting answers an Answer"
                answers[(posting.key.owner, posting.key.key)] = (posting.key.digest, outcome)
                kept_answers.append((posting.key, outcome))
            outcomes[index] = outcome
            for record in book.changes.events[len(posted_by) :]:
                recorded_in_group[record.event.id] = posting.recorded_by
            posted_by += [posting.recorded_by] * (len(book.changes.events) - len(posted_by))
        return _Applied(outcomes, book.take_changes(), posted_by, kept_answers, answered)

    def _write_applied(
        self, conn: Connection, kept: _Kept, applied: _Applied, *, sums: bool
    ) -> None:
        """Write what :meth:`_apply_postings` changed, and the answers kept under keys."""
        with _pipelined(conn):  # what it writes and the answers: one round trip
            if applied.changes.events:  # else its events were all recorded already
                kept.last_entry = self._write(
                    conn,
                    kept.book,
                    applied.changes,
                    applied.posted_by,
                    added_sums=not sums,
                    last_entry=kept.last_entry,
                    sums=kept.sums,
                )
            keep_answers(conn, applied.kept_answers)

    def warm(self) -> None:
        """Load the book to post on ahead of the first write (a server starting): revision
        and state read in one snapshot."""
        with self.transaction() as conn:
            row = conn.execute(sa.select(t.settings.c.revision, t.settings.c.created_at)).first()
            if row is None:
                return
            book = self._load(conn, history=False, period_sums=False)
        book.history = None
        self.loads += 1
        with self._kept_lock:
            self._kept = _Kept(row.revision, row.created_at, book, {})

    def _posting_book(self, conn: Connection) -> _Kept:
        """The book to post on: the kept one when no other writer wrote since (same revision
        of the same book), else loaded. Taken out of the store until the transaction
        commits, so a write that fails leaves no book behind."""
        bumped = conn.info.get(BUMPED)
        if bumped is not None:  # what this transaction follows: the revision before its bump
            row: tuple[int, dt.datetime] | None = (bumped[0] - 1, bumped[1])
        else:  # the store's first write (or first after a migration): its bump comes last,
            self._check_schema(conn)  # once the schema is checked, even on the kept book
            found = conn.execute(sa.select(t.settings.c.revision, t.settings.c.created_at)).first()
            row = None if found is None else (found.revision, found.created_at)
        with self._kept_lock:
            kept, self._kept = self._kept, None
        if kept is None or row is None or (kept.revision, kept.created_at) != row:
            # Another process wrote: it may have migrated the schema (a migration bumps the
            # revision), which this version may not know; checked again before reading.
            self._schema_checked = False
            self._check_schema(conn)
            self.loads += 1
            book = self._load(conn, history=False, period_sums=False)
            assert row is not None  # the load found the settings
            kept = _Kept(row[0], row[1], book, {})
        return kept

    def import_scenario(
        self,
        settings: m.Settings,
        master: m.MasterData,
        events: Sequence[m.Event],
        on_progress: Callable[[int], None] | None = None,
        batch: int = 5000,
        recorded_by: str | None = None,
    ) -> list[bool]:
        """A scenario's master data and events in one transaction (book created if new,
        its schema made in that same transaction: a refused import leaves no trace), written
        in batches so the book's memory stays bounded (:func:`_forget`). ``recorded_by``:
        who imports them (the command line's user)."""
        with self._migrating() as conn:
            self._migrate(conn)
            self._ensure_settings(conn, settings)
            self._add_master(conn, master, recorded_by)
            book = self._load(conn, history=False)
            applied: list[bool] = []
            stock = Changes()
            for start in range(0, len(events), batch):
                chunk = events[start : start + batch]
                with collector_paused():  # see there: the batch's objects live till written
                    applied += book.post_many(chunk)
                    self._write_batch(conn, book, stock, recorded_by)
                if on_progress is not None:
                    on_progress(len(chunk))
            self._write(conn, book, stock)
            return applied

    def import_events(
        self,
        read: Callable[[m.Settings, m.MasterData], Iterable[tuple[str, m.Event]]],
        *,
        batch: int = 5000,
        on_progress: Callable[[int], None] | None = None,
        refuse: Callable[[str, m.Event, Book], Exception | None] | None = None,
        recorded_by: str | None = None,
    ) -> Imported:
        """Stream events into a book that holds its settings and master data already, in one
        write transaction: a bad row or a refused event anywhere writes nothing. ``read``
        gives the events, each with where it was read (file and row), from the book's
        settings and master data; they are posted and written ``batch`` at a time, and what
        the next batch does not need is dropped after each (:func:`_forget`), so
        memory does not grow with the number of events. An event the rules refuse raises
        its :class:`PostingError` with where it was read. ``refuse``: a shell's own check of
        an event, where it was read and the book (what it answers is raised), skipped for an
        event whose id the book records already (sent again: a no-op, or a conflict when it
        differs).
        ``recorded_by``: who imports them (the command line's user)."""
        if batch < 1:
            raise ValueError(f"batch: expected 1 or more, got {batch}")
        applied = recorded = 0
        stock = Changes()
        with self.transaction(write=True) as conn:
            book = self._load(conn, history=False)
            if not book.master.items:
                raise StoreError(
                    f"{self.display_url}: the book has no master data (items, BOMs) to cost "
                    "events with; import a scenario file or master data tables first "
                    "(`backflush import FILE.yaml`, `backflush master import`)"
                )
            events = iter(read(book.settings, book.master))
            while True:
                # (see there: a batch's objects, read, posted and written, live till written)
                with collector_paused():
                    chunk = list(itertools.islice(events, batch))
                    if not chunk:
                        break
                    if refuse is not None:
                        _refused(refuse, chunk, book)
                    try:
                        done = book.post_many(event for _where, event in chunk)
                    except PostingError as error:
                        raise _located(error, chunk) from None
                    self._write_batch(conn, book, stock, recorded_by)
                new = sum(done)
                applied, recorded = applied + new, recorded + len(done) - new
                if on_progress is not None:
                    on_progress(len(chunk))
            self._write(conn, book, stock)
        return Imported(applied, recorded)

    def _write_batch(
        self, conn: Connection, book: Book, stock: Changes, recorded_by: str | None = None
    ) -> None:
        """Write what a batch of an import changed, but the stock on hand and moved per
        period and the journal's sums per item, which ``stock`` collects to be written once,
        at the end: nothing reads them back before (the book holds the stock whole, and adds
        to the sums per item without reading them), and PostgreSQL would keep every version
        of a row updated batch after batch in one transaction (each update slower than the
        one before). Then drop what the next batch does not need (:func:`_forget`)."""
        changes = book.take_changes()
        changes.move_stock_into(stock)
        self._write(conn, book, changes, [recorded_by] * len(changes.events))
        _forget(book, importing=True)

    def recorded_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` name events the book records."""
        wanted = sorted({i for i in ids if is_reference(i)})  # (no id holds a NUL)
        found: set[str] = set()
        with self.transaction() as conn:
            for chunk in _chunks(wanted, 500):
                query = sa.select(t.events.c.id).where(t.events.c.id.in_(chunk))
                found.update(conn.execute(query).scalars())
        return found

    def has_event(self, event_id: str) -> bool:
        """Whether the book records an event ``event_id`` (one read of its key)."""
        if not is_reference(event_id):  # (PostgreSQL refuses NUL in text: no id holds one)
            return False
        with self.transaction() as conn:
            query = sa.select(sa.literal(1)).where(t.events.c.id == event_id)
            return conn.execute(query).first() is not None

    def event_count(self) -> int:
        with self.transaction() as conn:
            return self._event_count(conn)

    @staticmethod
    def _event_count(conn: Connection) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(t.events)).scalar_one())

    def _write(
        self,
        conn: Connection,
        book: Book,
        changes: Changes,
        posted_by: Sequence[str | None] = (),
        *,
        added_sums: bool = False,
        last_entry: int | None = None,
        sums: Sums | None = None,
    ) -> int | None:
        """Write what ``changes`` changed. With ``added_sums`` the book's stock moved per
        period (``moved``, ``flows``, ``daily``) holds only what was moved since it was loaded
        (see :meth:`_load`): it is added to the stored sums, then forgotten. ``posted_by``
        names who posted each event of ``changes.events`` (an API token), in their order.
        ``last_entry``: the last journal entry number, when known (else read). ``sums``: the
        stored sums as this book's last writes left them (see :func:`_add_to`). Returns the
        last entry number afterwards (None: not read, as no entry was written). On
        PostgreSQL its writes go in as few round trips as they can (:func:`_pipelined`)."""
        with _pipelined(conn):
            return self._write_changes(
                conn,
                book,
                changes,
                posted_by,
                added_sums=added_sums,
                last_entry=last_entry,
                sums=sums,
            )

    def _write_changes(
        self,
        conn: Connection,
        book: Book,
        changes: Changes,
        posted_by: Sequence[str | None],
        *,
        added_sums: bool,
        last_entry: int | None,
        sums: Sums | None,
    ) -> int | None:
        """The body of :meth:`_write`."""
        now = dt.datetime.now(dt.UTC)
        split = summaries.split(changes, book.settings.journal_detail)
        numbered: list[tuple[int, m.Entry]] = []
        if changes.entries:
            if last_entry is None:
                found = conn.execute(sa.select(sa.func.max(t.journal_lines.c.entry_no))).scalar()
                last_entry = found or 0
            numbered, last_entry = summaries.numbered(changes.entries, split.details, last_entry)
        if changes.events:
            _insert(
                conn,
                t.events,
                [
                    {
                        "id": r.event.id,
                        "type": r.event.type,
                        "date": r.event.date,
                        "payload": r.fingerprint,
                        "statistics": _json(totals(r.statistics)) if r.statistics else "{}",
                        "reversed_by": r.reversed_by or None,
                        "recorded_at": now,
                        "recorded_by": by,
                        "detail": d.to_json() if (d := split.details.get(r.event.id)) else None,
                        "summary_entry": d.entry_no if d else None,
                    }
                    for r, by in itertools.zip_longest(changes.events, posted_by)
                ],
            )
        for original, by in changes.reversed:
            conn.execute(t.events.update().where(t.events.c.id == original).values(reversed_by=by))
        if numbered:
            _insert(
                conn,
                t.journal_lines,
                [
                    {
                        "entry_no": number,
                        "event": entry.event,
                        "date": entry.date,
                        "period": entry.period,
                        "memo": entry.memo,
                        "account": line.account.value,
                        "element": line.element,
                        "item": line.item,
                        "amount": line.amount,
                    }
                    for number, entry in numbered
                    for line in entry.lines
                ],
            )
        if split.movements:
            _insert(
                conn,
                t.movements,
                [
                    {
                        "event": owner,
                        "cause": cause,
                        "item": mv.item,
                        "on_hand": mv.on_hand,
                        "in_process": mv.in_process,
                    }
                    for owner, cause, mv in split.movements
                ],
            )
        if numbered:
            self._add_journal_summary(conn, summarize(changes.entries), sums)
        _upsert(
            conn,
            t.balances,
            [
                {"account": a.value, "element": e, "amount": book.balances[(a, e)]}
                for a, e in sorted(changes.balances)
            ],
        )
        _upsert(
            conn,
            t.period_activity,
            [
                {
                    "period": p,
                    "account": a.value,
                    "element": e,
                    "amount": book.activity[p][(a, e)],
                }
                for p, (a, e) in sorted(changes.activity)
            ],
        )
        _upsert(
            conn,
            t.period_statistics,
            [
                {"period": p, "name": n, "amount": book.statistics[p][n]}
                for p, n in sorted(changes.statistics)
            ],
        )
        _upsert(
            conn,
            t.quantities,
            [
                {
                    "item": i,
                    "on_hand": book.on_hand.get(i, ZERO),
                    "in_process": book.in_process.get(i, ZERO),
                    "last_moved": book.last_moved.get(i),
                }
                for i in sorted(changes.quantities)
            ],
        )
        if added_sums:
            _add_sums(conn, t.period_quantities, "on_hand", _flat(book.moved, changes.moved), sums)
            _add_sums(conn, t.period_flows, "quantity", _flat(book.flows, changes.flows), sums)
            _add_sums(conn, t.period_held, "quantity", _flat(book.held_moved, changes.held), sums)
            _add_sums(conn, t.daily_flows, "quantity", _flat(book.daily, changes.daily), sums)
            book.moved.clear()
            book.flows.clear()
            book.held_moved.clear()
            book.daily.clear()
        else:
            if sums is not None:  # these sums are written whole below, not added to
                sums.clear()
            _upsert(
                conn,
                t.period_quantities,
                [
                    {"period": p, "item": i, "on_hand": book.moved[p][i]}
                    for p, i in sorted(changes.moved)
                ],
            )
            _upsert(
                conn,
                t.period_flows,
                [
                    {"period": p, "item": i, "flow": f, "quantity": book.flows[p][(i, f)]}
                    for p, i, f in sorted(changes.flows)
                ],
            )
            _upsert(
                conn,
                t.period_held,
                [
                    {"period": p, "item": i, "part": k, "quantity": book.held_moved[p][(i, k)]}
                    for p, i, k in sorted(changes.held)
                ],
            )
            _upsert(
                conn,
                t.daily_flows,
                [
                    {"period": p, "date": d, "flow": f, "quantity": book.daily[p][(d, f)]}
                    for p, d, f in sorted(changes.daily)
                ],
            )
        # The journal per item is never loaded to post: its new sums are added to the stored.
        item_sums = {(p, a.value, e, i): v for (p, a, e, i), v in changes.item_activity.items()}
        _add_sums(conn, t.item_activity, "amount", item_sums, sums)
        _upsert(
            conn,
            t.unsold_conversion,
            [
                {"account": a.value, "element": e, "amount": book.unsold_conversion[(a, e)]}
                for a, e in sorted(changes.unsold_conversion)
            ],
        )
        _upsert(conn, t.orders, [_order_row(book.orders[o]) for o in sorted(changes.orders)])
        if changes.shortages:
            order = {key: n for n, key in enumerate(book.shortages)}
            base = conn.execute(sa.select(sa.func.max(t.shortages.c.seq))).scalar() or 0
            known: dict[tuple[str, str, str], int] = {}
            columns = (
                t.shortages.c.event,
                t.shortages.c.item,
                t.shortages.c.kind,
                t.shortages.c.seq,
            )
            for chunk in _chunks(sorted({key[0] for key in changes.shortages}), 500):
                query = sa.select(*columns).where(t.shortages.c.event.in_(chunk))
                known.update({(r.event, r.item, r.kind): r.seq for r in conn.execute(query)})
            rows = []
            for key, short in sorted(changes.shortages.items(), key=lambda kv: order[kv[0]]):
                rows.append(
                    {
                        "seq": known.get(key, base + 1 + order[key]),
                        "event": short.event,
                        "item": short.item,
                        "kind": short.kind,
                        "date": short.date,
                        "quantity": short.quantity,
                        "open": short.open,
                        "into_process": short.into_process,
                        "cleared_by": book.cleared_by.get(key),
                    }
                )
            _upsert(conn, t.shortages, rows)
        self._write_close_procedure(conn, changes, now)
        _write_nrv(conn, book, changes)
        if changes.closes:
            conn.execute(
                t.periods.insert(),
                [
                    {
                        "period": r.period,
                        "close_event": r.close_event,
                        "variances": _json(dict(r.variances)),
                        "balances": _json(dict(r.balances)),
                        "closed_at": now,
                    }
                    for r in changes.closes
                ],
            )
        return last_entry

    @staticmethod
    def _add_journal_summary(
        conn: Connection, added: JournalSummary, sums: Sums | None = None
    ) -> None:
        """Add the figures of entries just written to those kept per period and kind."""
        _add_to(
            conn,
            t.journal_summary,
            {
                key: {"entries": f.entries, "lines": f.lines, "debits": f.debits}
                for key, f in added.items()
            },
            sums,
        )

    @staticmethod
    def _write_close_procedure(conn: Connection, changes: Changes, now: dt.datetime) -> None:
        """Reopened periods lose their close (a close in the same batch is written after);
        the reopen and the write-offs are kept for the audit trail."""
        reopened = sorted({r.period for r in changes.reopens})
        if reopened:
            conn.execute(t.periods.delete().where(t.periods.c.period.in_(reopened)))
            conn.execute(
                t.period_reopens.insert(),
                [
                    {
                        "event": r.event,
                        "period": r.period,
                        "date": r.date,
                        "close_event": r.close_event,
                        "reason": r.reason,
                        "reopened_at": now,
                    }
                    for r in changes.reopens
                ],
            )
        if changes.written_off:
            conn.execute(
                t.exception_write_offs.insert(),
                [
                    {
                        "event": event,
                        "item": item,
                        "kind": kind,
                        "written_off_by": changes.cleared[(event, item, kind)],
                        "reason": reason,
                    }
                    for (event, item, kind), reason in sorted(changes.written_off.items())
                ],
            )


# ---------------------------------------------------------------- net realisable value


# ---------------------------------------------------------------- idempotency keys


def _answers(conn: Connection, keys: Sequence[Key]) -> dict[tuple[str, str], tuple[str, Answer]]:
    """The answers kept under ``keys``, by (owner, key): (request digest, answer)."""
    found: dict[tuple[str, str], tuple[str, Answer]] = {}
    pairs = sorted({(k.owner, k.key) for k in keys})
    postgres = conn.dialect.name == "postgresql"
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        if postgres:
            read = conn.execute(
                _ANSWERS_PG, {"owners": [o for o, _ in chunk], "keys": [k for _, k in chunk]}
            )
        else:
            read = conn.execute(_ANSWERS, {"pairs": chunk})
        found |= _answers_from(read.all())
    return found


def _answers_from(
    rows: Iterable[Sequence[Any]],
) -> dict[tuple[str, str], tuple[str, Answer]]:
    """:func:`_answers` of the rows read (token, key, request_hash, status, response)."""
    return {
        (token, key): (digest, Answer(status, json.loads(response), replayed=True))
        for token, key, digest, status, response in rows
    }


#: What :func:`_answers` reads on PostgreSQL: the pairs joined as a table, looked up one by
#: one in the primary key whatever the planner knows. (Given as a list of pairs, a table grown
#: since its last ANALYZE, as a new book's is, was planned as a scan of every key of the
#: owner: 2-3 ms a group commit, a third of the database's time.) ``_ANSWERS_PG_SQL``: the
#: same as the driver runs it (:func:`_lock`).
_ANSWERS_OF = (
    "SELECT k.token, k.key, k.request_hash, k.status, k.response"
    " FROM unnest({owners}, {keys}) AS wanted (token, key)"
    f" JOIN {t.idempotency_keys.name} AS k ON k.token = wanted.token AND k.key = wanted.key"
)
_ANSWERS_PG_SQL = _ANSWERS_OF.format(owners="%s::TEXT[]", keys="%s::TEXT[]")
_ANSWERS_PG = sa.text(
    _ANSWERS_OF.format(owners="CAST(:owners AS TEXT[])", keys="CAST(:keys AS TEXT[])")
)

#: What :func:`_answers` reads on SQLite (built once: every keyed request's group runs it).
_ANSWERS = sa.select(
    *(t.idempotency_keys.c[c] for c in ("token", "key", "request_hash", "status", "response"))
).where(
    sa.tuple_(t.idempotency_keys.c.token, t.idempotency_keys.c.key).in_(
        sa.bindparam("pairs", expanding=True)
    )
)


def _replay(
    answers: Mapping[tuple[str, str], tuple[str, Answer]], key: Key | None
) -> Answer | None:
    """The answer kept under ``key`` (replayed), None when there is none."""
    if key is None:
        return None
    found = answers.get((key.owner, key.key))
    if found is None:
        return None
    digest, answer = found
    if digest != key.digest:
        raise KeyReused(f"the idempotency key {key.key!r} was used with another request")
    return dataclasses.replace(answer, replayed=True)


def answer_kept(conn: Connection, key: Key) -> Answer | None:
    """The answer kept under ``key`` (replayed), None when there is none; :class:`KeyReused`
    when it came with another request."""
    return _replay(_answers(conn, [key]), key)


def keep_answers(conn: Connection, answers: Sequence[tuple[Key, Answer]]) -> None:
    """Keep each answer under its key, in one statement."""
    if not answers:
        return
    now = _now()
    rows = [
        {
            "token": key.owner,
            "key": key.key,
            "request_hash": key.digest,
            "status": answer.status,
            "response": json.dumps(answer.body),
            "created_at": now,
        }
        for key, answer in answers
    ]
    _insert(conn, t.idempotency_keys, rows)


def _load_period_sums(conn: Connection, book: Book, which: Collection[str] = PERIOD_SUMS) -> None:
    """The stock moved per period (``which`` of :data:`PERIOD_SUMS`): by item, by item and
    flow, by item and part held, by day and flow."""
    if "moved" in which:
        for row in conn.execute(sa.select(t.period_quantities)):
            book.moved.setdefault(row.period, {})[row.item] = row.on_hand
    if "flows" in which:
        for row in conn.execute(sa.select(t.period_flows)):
            book.flows.setdefault(row.period, {})[(row.item, row.flow)] = row.quantity
    if "held_moved" in which:
        for row in conn.execute(sa.select(t.period_held)):
            book.held_moved.setdefault(row.period, {})[(row.item, row.part)] = row.quantity
    if "daily" in which:
        for row in conn.execute(sa.select(t.daily_flows)):
            book.daily.setdefault(row.period, {})[(row.date, row.flow)] = row.quantity


def _forget(book: Book, *, importing: bool = False) -> None:
    """Drop from a book just written what :meth:`Store._load` does not read to post
    (``history=False, period_sums=False``): the book kept for the next write is the one that
    load would give (a test compares them), and its memory stays bounded. ``importing``: the
    book of an import, in the middle of its transaction, which holds the stock moved per
    period in full (loaded, and written as totals) and keeps its lookup of recorded events
    (those dropped are read again when an event names them)."""
    if not importing:
        book.history = None
        for stock in (book.moved, book.flows, book.held_moved, book.daily):
            stock.clear()
    book.recorded.clear()
    book.item_activity.clear()
    book.disposed.clear()
    for by_period in (book.activity, book.statistics):  # a period is read with its sums
        for period in [p for p, figures in by_period.items() if not figures]:
            del by_period[period]
    # Only the open queue is read (a flag, a cleared entry: history); of what cleared entries,
    # the write-offs (exception_write_offs).
    waiting = [
        (key, entry)
        for key, entry in book.shortages.items()
        if entry.kind == "shortage" and key not in book.cleared_by
    ]
    written_off = {key: book.cleared_by[key] for key in book.written_off}
    book.shortages.clear()
    book.queue.clear()
    book.cleared_by.clear()
    for _key, entry in waiting:
        book.restore_shortage(entry)
    book.cleared_by.update(written_off)


def _refused(
    refuse: Callable[[str, m.Event, Book], Exception | None],
    chunk: Sequence[tuple[str, m.Event]],
    book: Book,
) -> None:
    """Raise what ``refuse`` answers for an event of ``chunk`` (see :meth:`Store.import_events`)
    whose id ``book`` does not record already."""
    flagged = [(e, error) for where, e in chunk if (error := refuse(where, e, book)) is not None]
    if flagged:
        recorded = book.recorded_ids([event for event, _ in flagged])
        for event, error in flagged:
            if event.id not in recorded:
                raise error


@overload
def _utc(value: dt.datetime) -> dt.datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time the book stored (always UTC), with its zone: SQLite gives it back without."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _located(error: PostingError, chunk: Sequence[tuple[str, m.Event]]) -> PostingError:
    """``error`` with where its event was read (one of ``chunk``'s), when known: by its
    place in ``chunk`` (an id given twice names the row refused, not the first)."""
    at = error.position
    if at is not None and 0 <= at < len(chunk) and chunk[at][1].id == error.event_id:
        place: str | None = chunk[at][0]
    else:
        place = next((where for where, event in chunk if event.id == error.event_id), None)
    if place is None:
        return error
    found = type(error)(f"{place}: {error}")
    found.event_id, found.position = error.event_id, error.position
    return found


def _load_nrv(conn: Connection, book: Book) -> None:
    """Estimates (in posting order), allowances per item and what closes found."""
    query = sa.select(t.nrv_estimates).order_by(t.nrv_estimates.c.seq)
    for row in conn.execute(query):
        book.nrv_estimates.setdefault(row.item, []).append((row.date, row.event, row.unit_value))
    for row in conn.execute(sa.select(t.nrv_allowances)):
        book.nrv_allowance[row.item] = row.amount
    query = sa.select(t.nrv_writedowns).order_by(t.nrv_writedowns.c.period, t.nrv_writedowns.c.item)
    for row in conn.execute(query):
        book.nrv_writedowns.setdefault(row.period, {})[row.item] = m.NrvWritedown(
            row.period,
            row.item,
            row.quantity,
            row.standard,
            row.nrv,
            row.unit_writedown,
            row.allowance,
            row.change,
            row.carrying,
        )


def _write_nrv(conn: Connection, book: Book, changes: Changes) -> None:
    if changes.nrv_estimates:
        conn.execute(
            t.nrv_estimates.insert(),
            [
                {"event": e.id, "item": e.item, "date": e.date, "unit_value": e.unit_value}
                for e in changes.nrv_estimates
            ],
        )
    _upsert(
        conn,
        t.nrv_allowances,
        [{"item": i, "amount": book.nrv_allowance[i]} for i in sorted(changes.nrv_allowance)],
    )
    for period in sorted(changes.nrv_periods):  # a period closed again is found anew
        conn.execute(t.nrv_writedowns.delete().where(t.nrv_writedowns.c.period == period))
        rows = [
            {
                "period": f.period,
                "item": f.item,
                "quantity": f.quantity,
                "standard": f.standard,
                "nrv": f.nrv,
                "unit_writedown": f.unit_writedown,
                "allowance": f.allowance,
                "change": f.change,
                "carrying": f.carrying,
            }
            for _, f in sorted(book.nrv_writedowns.get(period, {}).items())
        ]
        if rows:
            conn.execute(t.nrv_writedowns.insert(), rows)


def _load_disposed(conn: Connection, book: Book) -> None:
    """What disposal entries posted, per item: the few lines of closes and reopens."""
    closing = sa.select(t.events.c.id).where(t.events.c.type.in_(sorted(CLOSING_EVENTS)))
    lines = t.journal_lines
    columns = (lines.c.period, lines.c.account, lines.c.element, lines.c.item, lines.c.amount)
    for row in conn.execute(sa.select(*columns, lines.c.memo).where(lines.c.event.in_(closing))):
        if not is_disposal(row.memo):
            continue
        by_item = book.disposed.setdefault(row.period, {})
        key = (m.Account(row.account), row.element, row.item)
        by_item[key] = by_item.get(key, ZERO) + row.amount


def _flat(
    by_period: Mapping[str, Mapping[Any, Decimal]], keys: Iterable[tuple[Any, ...]]
) -> dict[tuple[Any, ...], Decimal]:
    """``by_period[period][rest]`` for each key (period, *rest), keyed (period, *rest)."""
    found = {}
    for period, *rest in keys:
        found[(period, *rest)] = by_period[period][rest[0] if len(rest) == 1 else tuple(rest)]
    return found


def _add_sums(
    conn: Connection,
    table: sa.Table,
    value: str,
    deltas: Mapping[tuple[Any, ...], Decimal],
    sums: Sums | None = None,
) -> None:
    """Add ``deltas`` (keyed by ``table``'s primary key, period first) to the stored sums
    in column ``value`` (see :func:`_add_to`)."""
    _add_to(conn, table, {key: {value: delta} for key, delta in deltas.items()}, sums)


#: Stored sums by table name and primary key, as a book's own writes left them (see
#: :func:`_add_to`); valid while no other writer has written (the kept book's revision).
Sums = dict[tuple[str, tuple[Any, ...]], dict[str, Any]]

#: The most stored sums kept in :data:`Sums` (about 300 bytes each); beyond, it starts over.
MAX_KEPT_SUMS = 100_000


def _add_to(
    conn: Connection,
    table: sa.Table,
    deltas: Mapping[tuple[Any, ...], Mapping[str, Any]],
    sums: Sums | None = None,
) -> None:
    """Add ``deltas`` (keyed by ``table``'s primary key, period first: column -> amount) to
    the stored figures, under the book's write lock: on PostgreSQL in the upsert itself
    (NUMERIC adds exactly); on SQLite read, added in Python and written back, as it keeps
    amounts as exact text. ``sums``, when given, holds figures as the book's own writes
    left them: those are not read again, and it is updated (a posting of an item posted
    before reads nothing)."""
    if not deltas:
        return
    keys = [c.name for c in table.primary_key.columns]
    assert keys[0] == "period"
    rows = [dict(zip(keys, k, strict=True)) | dict(d) for k, d in sorted(deltas.items())]
    columns = list(rows[0].keys() - set(keys))
    if conn.dialect.name == "postgresql":
        _pg_upsert(conn, table, rows, add=True)
        return
    # Per period, the rows whose every other key column holds a value added to: the index
    # finds them (a row-value IN would make SQLite scan the table).
    query = _ADDED_TO.get((table.name, tuple(columns)))
    if query is None:  # built once: a statement built per call costs more than it reads
        query = _ADDED_TO[(table.name, tuple(columns))] = sa.select(
            *(table.c[k] for k in keys), *(table.c[c] for c in columns)
        ).where(
            table.c.period == sa.bindparam("period"),
            *(table.c[k].in_(sa.bindparam(k, expanding=True)) for k in keys[1:]),
        )
    known: Sums = {} if sums is None else sums
    kind = table.name
    unknown = [k for k in deltas if (kind, k) not in known]
    stored: dict[tuple[Any, ...], Any] = {}
    for period in sorted({k[0] for k in unknown}):
        mine = [k for k in unknown if k[0] == period]
        values = {name: sorted({k[n] for k in mine}) for n, name in enumerate(keys) if n}
        for found in conn.execute(query, {"period": period, **values}):
            stored[tuple(found._mapping[k] for k in keys)] = found._mapping
    added = []
    for key, row in zip(sorted(deltas), rows, strict=True):
        before = known.get((kind, key)) or stored.get(key)
        if before is not None:
            row.update({c: before[c] + row[c] for c in columns})
        added.append(((kind, key), {c: row[c] for c in columns}))
    if len(known) + len(added) > MAX_KEPT_SUMS:
        known.clear()
    known.update(added)
    _upsert(conn, table, rows)


#: What :meth:`Store._history` reads of the events it is given (built once: a posting runs it).
_HISTORY = sa.select(
    *(t.events.c[c] for c in ("id", "payload", "statistics", "reversed_by", "detail"))
).where(t.events.c.id.in_(sa.bindparam("ids", expanding=True)))
#: :data:`_HISTORY` as the driver runs it on PostgreSQL, of an array of ids (:func:`_lock`).
_HISTORY_PG = (
    f"SELECT id, payload, statistics, reversed_by, detail FROM {t.events.name}"
    " WHERE id = ANY(%s::TEXT[])"
)

#: The queries of :func:`_add_to` on SQLite, by table and value columns.
_ADDED_TO: dict[tuple[str, tuple[str, ...]], sa.Select[Any]] = {}


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


#: Accounts by name: a dict lookup per journal line instead of the Enum's call.
_ACCOUNTS = {account.value: account for account in m.Account}


def _entries(conn: Connection, where: sa.ColumnElement[bool]) -> Iterator[m.Entry]:
    return (entry for _, entry in _numbered_entries(conn, where))


def _numbered_entries(
    conn: Connection, where: sa.ColumnElement[bool]
) -> Iterator[tuple[int, m.Entry]]:
    """Journal entries with their numbers (``journal_lines.entry_no``), in number order."""
    query = (
        sa.select(t.journal_lines)
        .where(where)
        .order_by(t.journal_lines.c.entry_no, t.journal_lines.c.id)
    )
    current: int | None = None
    head: Any = None
    lines: list[m.Line] = []
    for row in conn.execute(query):
        if row.entry_no != current:
            if head is not None:
                yield head.entry_no, m.Entry(head.date, head.event, head.memo, tuple(lines))
            current, head, lines = row.entry_no, row, []
        lines.append(m.Line(_ACCOUNTS[row.account], row.amount, row.element, row.item))
    if head is not None:
        yield head.entry_no, m.Entry(head.date, head.event, head.memo, tuple(lines))


def event_from_payload(event_id: str, payload: str) -> m.Event:
    """Rebuild a recorded event from its canonical content (see :func:`book.fingerprint`)."""
    body = json.loads(payload)
    cls = m.RECORDED_TYPES[body.pop("type")]
    fields = set(cls.__dataclass_fields__)
    values: dict[str, Any] = {}
    for name, text in body.items():
        if name in ("date", "effective"):
            values[name] = dt.date.fromisoformat(text)
        elif name in (
            "element",
            "reverses",
            "reason",
            "item",
            "period",
            "order",
            "event",
            "work_center",
        ):
            values[name] = text
        else:
            values[name] = Decimal(text)
    unknown = set(values) - fields
    if unknown:
        raise StoreError(f"event {event_id}: stored payload has unknown fields {sorted(unknown)}")
    event = cls(id=event_id, **values)
    if fingerprint(event) != payload:
        raise StoreError(f"event {event_id}: stored payload does not round-trip")
    return event


def _settings_conflict(existing: m.Settings, wanted: m.Settings) -> str:
    differences = [
        f"{name}: book has {_setting(getattr(existing, name))}, "
        f"given {_setting(getattr(wanted, name))}"
        for name in existing.__dataclass_fields__
        if getattr(existing, name) != getattr(wanted, name)
    ]
    return "the database holds a different book: " + "; ".join(differences)


def _setting(value: object) -> str:
    """A setting as a scenario file's book section writes it (no Python reprs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple):  # dispositions by variance type
        return "{" + ", ".join(f"{k}: {_setting(v)}" for k, v in value) + "}"
    return str(value)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _listed(names: Sequence[str], most: int = 20) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _log_master_change(conn: Connection, change: str, recorded_by: str | None) -> None:
    row = {"recorded_at": _now(), "recorded_by": recorded_by, "change": change}
    conn.execute(t.master_changes.insert(), [row])


def _item_row(item: m.Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind.value,
        "uom": item.uom,
        "flush": item.flush.value,
        "material_cost": item.material_cost,
        "conversion": _json(dict(item.conversion)),
        "triggers": item.policy.value if item.policy else None,
        "lot_size": item.lot_size,
        "family": item.family,
        "site": item.site,
    }


def _version_rows(version: m.Bom | m.Routing) -> tuple[sa.Table, list[dict[str, Any]]]:
    """The table a BOM or routing version is stored in, and its rows."""
    if isinstance(version, m.Bom):
        return t.bom_lines, _bom_rows(version)
    return t.routing_operations, _routing_rows(version)


def _bom_rows(bom: m.Bom) -> list[dict[str, Any]]:
    return [
        {
            "item": bom.item,
            "effective_from": bom.effective_from,
            "effective_to": bom.effective_to,
            "line_no": n,
            "component": line.component,
            "quantity": line.quantity,
            "scrap": line.scrap,
            "flush": line.flush.value if line.flush else None,
            "operation": line.operation,
        }
        for n, line in enumerate(bom.lines, 1)
    ]


def _routing_rows(routing: m.Routing) -> list[dict[str, Any]]:
    return [
        {
            "item": routing.item,
            "effective_from": routing.effective_from,
            "effective_to": routing.effective_to,
            "operation": op.number,
            "work_center": op.work_center,
            "setup_hours": op.setup_hours,
            "run_hours": op.run_hours,
            "yield": op.yield_,
        }
        for op in routing.operations
    ]


def _order_from_row(row: Any) -> m.ProductionOrder:
    return m.ProductionOrder(
        row.id,
        row.item,
        row.quantity,
        row.released,
        row.release_event,
        tuple((c, Decimal(q), m.Flush(f)) for c, q, f in json.loads(row.requirements)),
        row.completed,
        row.scrapped,
        tuple(_decimals(row.issued).items()),
        tuple(_decimals(row.consumed).items()),
        tuple(_decimals(row.returned).items()),
        row.closed_by or "",
    )


def _order_row(order: m.ProductionOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "item": order.item,
        "quantity": order.quantity,
        "released": order.released,
        "release_event": order.release_event,
        "requirements": json.dumps(
            [[c, fmt(q), f.value] for c, q, f in order.requirements], separators=(",", ":")
        ),
        "completed": order.completed,
        "scrapped": order.scrapped,
        "issued": _json(dict(order.issued)),
        "consumed": _json(dict(order.consumed)),
        "returned": _json(dict(order.returned)),
        "closed_by": order.closed_by or None,
    }
