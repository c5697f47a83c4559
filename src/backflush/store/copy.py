"""Copy a book into a new database: from SQLite to PostgreSQL when a plant outgrows one PC,
or back (``backflush copy``).

The source is read in one snapshot (others may go on posting); the target is written in one
transaction, created at this version's schema and refused unless empty. Every row is read
back from the target before its commit and compared with what was read from the source, as
values (an exact decimal's digits and scale, a time as an instant), so a copy either matches
row for row or is not there at all."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backflush.store import schema as t
from backflush.store.repository import (
    Store,
    StoreError,
    _empty,
    _insert,
    _log_master_change,
    _sqlite_path,
    database_url,
    new_file_like,
)

#: Rows read and written at a time.
CHUNK = 5_000
#: Not copied: sign-ins to the web pages of the server of the old database (a controller
#: signs in again; the API tokens they came from are copied).
SKIPPED = frozenset({t.web_sessions.name})


@dataclasses.dataclass(frozen=True)
class Copied:
    """What a copy wrote: rows per table, in the order written."""

    rows: dict[str, int]
    #: A digest of every row copied (the same of source and target: each row read back),
    #: but the copy's own line in the log of master data changes.
    digest: str

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def copy_book(
    source: Store,
    target_url: str,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    recorded_by: str | None = None,
) -> Copied:
    """Copy the book of ``source`` into a new book at ``target_url`` (see the module).
    ``on_progress(rows done, rows in all)`` after each chunk written. The copy's log of
    master data changes records it, made by ``recorded_by``."""
    into = _sqlite_path(database_url(target_url))
    if into is not None and into.exists() and not _empty(into):
        raise StoreError(f"{into}: exists already; a book is copied into a new file")
    made = into is not None and not into.exists()
    if made and into is not None:
        new_file_like(into, source.url)  # (a SQLite source's permissions)
    try:
        target = Store(target_url)
        try:  # (a connection that fails here is the target's: said so, not the source's)
            with target.engine.connect():
                pass
        except sa.exc.DBAPIError as error:
            target.close()
            lines = str(error.orig or error).strip().splitlines() or [type(error).__name__]
            raise StoreError(f"{target.display_url}: cannot connect: {lines[0]}") from error
    except BaseException:
        if made and into is not None:
            into.unlink(missing_ok=True)
        raise
    try:
        if target.url == source.url:
            raise StoreError(f"{source.display_url}: a book is copied into another database")
        with source.transaction() as reading:
            source._require_settings(reading)  # a book, at this version's schema
            tables = [table for table in t.metadata.sorted_tables if table.name not in SKIPPED]
            counts = {table.name: _count(reading, table) for table in tables}
            total = sum(counts.values())
            with target._migrating() as writing:
                target._migrate(writing)
                held = [table.name for table in tables if _count(writing, table)]
                if held:
                    raise StoreError(
                        f"{target.display_url}: holds a book already ({', '.join(held)}); "
                        "a book is copied into a new, empty database"
                    )
                done = 0
                sent: dict[str, int] = {}
                read: dict[str, int] = {}  # each table's digest, of the rows as read
                for table in tables:
                    sent[table.name] = read[table.name] = 0
                    for rows in _read(reading, table):
                        _insert(
                            writing,
                            table,
                            [dict(zip(rows.keys, r, strict=True)) for r in rows.values],
                        )
                        read[table.name] += _hashed(rows.values)
                        sent[table.name] += len(rows.values)
                        done += len(rows.values)
                        if on_progress is not None:
                            on_progress(done, total)
                _restart_sequences(writing, tables)
                digest = _compare(read, writing, tables)
                origin = _sqlite_path(source.url)
                named = source.display_url if origin is None else origin.resolve()
                copied = f"book copied from {named}: {done:,} rows, each read back"
                _log_master_change(writing, copied, recorded_by)
        made = False  # (kept)
        return Copied(sent, digest)
    finally:
        target.close()
        if made and into is not None:  # refused: the new file goes, as nothing was written
            for suffix in ("", "-wal", "-shm"):
                Path(f"{into}{suffix}").unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class _Rows:
    keys: list[str]
    values: list[tuple[Any, ...]]


def _read(conn: Connection, table: sa.Table) -> Iterator[_Rows]:
    """The rows of ``table`` a chunk at a time, times as UTC instants (SQLite keeps them as
    UTC without a zone)."""
    result = conn.execute(sa.select(table).execution_options(yield_per=CHUNK))
    keys = list(result.keys())
    times = [i for i, c in enumerate(table.columns) if isinstance(c.type, sa.DateTime)]
    for chunk in result.partitions():
        values = [tuple(r) for r in chunk]
        if times:
            values = [_in_utc(row, times) for row in values]
        yield _Rows(keys, values)


def _in_utc(row: tuple[Any, ...], times: list[int]) -> tuple[Any, ...]:
    found = list(row)
    for i in times:
        value = found[i]
        if value is not None:
            aware = value.tzinfo is not None
            found[i] = value.astimezone(dt.UTC) if aware else value.replace(tzinfo=dt.UTC)
    return tuple(found)


def _count(conn: Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _restart_sequences(conn: Connection, tables: list[sa.Table]) -> None:
    """PostgreSQL: each numbering column's sequence goes on after the highest number copied
    (the rows came with their numbers; the sequence has not moved)."""
    if conn.dialect.name != "postgresql":
        return  # SQLite numbers a row after the highest in its table
    for table in tables:
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                name = f'"{table.name}"'
                conn.execute(
                    sa.text(
                        "SELECT setval(pg_get_serial_sequence(:table, :column), "
                        f'COALESCE(MAX("{column.name}"), 0) + 1, false) FROM {name}'
                    ),
                    {"table": name, "column": column.name},
                )


def _compare(read: dict[str, int], target: Connection, tables: list[sa.Table]) -> str:
    """Read every table of ``target`` back and compare it with the digest of the rows read
    from the source (``read``, by table; see :func:`_hashed`); the digest of all. Raises
    :class:`StoreError` naming the first table that differs."""
    whole = hashlib.blake2b(digest_size=16)
    for table in tables:
        written = sum(_hashed(rows.values) for rows in _read(target, table)) % 2**128
        if read[table.name] % 2**128 != written:
            raise StoreError(
                f"table {table.name}: the rows read back from the copy differ from the "
                "source's; nothing was written"
            )
        whole.update(f"{table.name}:{written:x};".encode())
    return whole.hexdigest()


def _hashed(rows: list[tuple[Any, ...]]) -> int:
    """The sum of the rows' hashes: summed over a table modulo 2**128, the same for the same
    rows in any order (the two databases may sort text differently)."""
    total = 0
    for row in rows:
        text = repr(tuple(_canonical(v) for v in row)).encode()
        total += int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")
    return total


def _canonical(value: Any) -> Any:
    """A value as both databases give it back alike: an exact decimal's digits and scale
    (SQLite's text and PostgreSQL's NUMERIC), a time as its ISO instant."""
    if isinstance(value, Decimal):
        return t.scaled_text(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
