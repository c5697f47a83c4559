"""``backflush copy``: a book moved between SQLite and PostgreSQL, row for row, or not at all."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from backflush.api.app import create_app
from backflush.api.tokens import Role, create_token, find_token, open_session
from backflush.cli import app as cli
from backflush.formats.scenario import read_scenario
from backflush.store import copy as copying
from backflush.store.copy import copy_book
from backflush.store.repository import Store, StoreError, database_url, display_url
from helpers import EXAMPLE_NAMES, EXAMPLES, dump_tables, serving

#: A session whose times PostgreSQL gives in Berlin's zone: a copy keeps instants, not clocks.
BERLIN = "?options=-c%20timezone%3DEurope/Berlin"


def _book(path: Path, name: str) -> Store:
    store = Store(f"sqlite:///{path}")
    found = read_scenario(EXAMPLES / f"{name}.yaml")
    store.import_scenario(found.settings, found.master, found.events, recorded_by="cli:test")
    return store


def _without_copy_lines(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    found = dict(tables)
    found["master_changes"] = [r for r in found["master_changes"] if "book copied" not in r[3]]
    found.pop("book_settings")  # its revision: bumped by each write, the copy's too
    return found


def _settings_row(store: Store) -> tuple[Any, ...]:
    return dump_tables(store)["book_settings"][0]


@pytest.mark.postgres
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_a_book_copied_to_postgresql_and_back_is_the_same_row_for_row(
    tmp_path: Path, pg_db_url: str, name: str
) -> None:
    source = _book(tmp_path / "book.db", name)
    back = None
    try:
        to_pg = copy_book(source, pg_db_url + BERLIN)
        back_url = f"sqlite:///{tmp_path / 'back.db'}"
        postgres = Store(pg_db_url)
        try:
            assert postgres.snapshot()[0].balances == source.snapshot()[0].balances
            again = copy_book(postgres, back_url)
        finally:
            postgres.close()
        assert again.rows == {**to_pg.rows, "master_changes": to_pg.rows["master_changes"] + 1}
        assert copy_book(source, str(tmp_path / "twin.db")).digest == to_pg.digest
        assert to_pg.total == sum(len(rows) for rows in dump_tables(source).values())
        back = Store(back_url)
        assert _without_copy_lines(dump_tables(back)) == _without_copy_lines(dump_tables(source))
        assert _settings_row(back)[:-1] == _settings_row(source)[:-1]  # (but the revision)
        log = [row[3] for row in dump_tables(back)["master_changes"]]
        assert log[-2:] == [
            f"book copied from {tmp_path / 'book.db'}: {to_pg.total:,} rows, each read back",
            f"book copied from {display_url(database_url(pg_db_url))}: {to_pg.total + 1:,} rows, "
            "each read back",
        ]
    finally:
        source.close()
        if back is not None:
            back.close()


@pytest.mark.postgres
def test_the_copy_goes_on_posting_where_the_source_stopped(tmp_path: Path, pg_db_url: str) -> None:
    """Tokens, idempotent answers and numbering come along: the API answers a replayed key
    as before, the old token works, new rows take the next numbers; web sign-ins stay."""
    source = _book(tmp_path / "book.db", "gearbox_orders")
    token, secret = create_token(source, "line-1", Role.operator)
    open_session(source, token)
    event = {
        "id": "late-1",
        "type": "completion",
        "date": "2026-03-03",
        "item": "SHAFT",
        "quantity": "1",
    }
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "k-1"}
    service = create_app(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        with serving(service) as url, httpx.Client(base_url=url, timeout=30) as client:
            first = client.post("/events", json=event, headers=headers)
    finally:
        service.state.store.close()
    assert first.status_code == 201, first.text
    before = dump_tables(source, times=False)
    copied = copy_book(source, pg_db_url)
    source.close()
    assert "web_sessions" not in copied.rows

    target = Store(pg_db_url)
    try:
        after = dump_tables(target, times=False)
        assert after["web_sessions"] == [] and before["web_sessions"] != []
        assert after["api_tokens"] == before["api_tokens"]
        assert after["idempotency_keys"] == before["idempotency_keys"]
        assert find_token(target, secret) is not None
        service = create_app(pg_db_url)
        try:
            with serving(service) as url, httpx.Client(base_url=url, timeout=30) as client:
                replay = client.post("/events", json=event, headers=headers)
                assert (replay.status_code, replay.json()) == (201, first.json())
                later = {**event, "id": "late-2"}
                fresh = client.post(
                    "/events", json=later, headers={**headers, "Idempotency-Key": "k-2"}
                )
                assert fresh.status_code == 201, fresh.text
        finally:
            service.state.store.close()
        create_token(target, "line-2", Role.viewer)
        rows = dump_tables(target)
        assert [r[0] for r in rows["api_tokens"]] == [1, 2]
        events = rows["events"]
        assert events[-1][1] == "late-2" and events[-1][0] == events[-2][0] + 1
        moved = [r[0] for r in rows["movements"]]  # (a number given twice: refused, 500)
        assert moved[-1] == max(r[0] for r in before["movements"]) + len(moved) - len(
            before["movements"]
        )
        assert rows["master_changes"][-1][0] == len(rows["master_changes"])
    finally:
        target.close()


@pytest.mark.postgres
def test_a_copy_into_a_database_holding_a_book_is_refused_and_changes_nothing(
    tmp_path: Path, pg_db_url: str
) -> None:
    source = _book(tmp_path / "book.db", "northshore")
    held = _book(tmp_path / "other.db", "reopen")
    try:
        copy_book(held, pg_db_url)
        target = Store(pg_db_url)
        before = dump_tables(target)
        with pytest.raises(StoreError, match=r"holds a book already .*new, empty database"):
            copy_book(source, pg_db_url)
        assert dump_tables(target) == before
        target.close()
    finally:
        source.close()
        held.close()


def test_a_copy_onto_an_existing_file_or_from_no_book_is_refused(tmp_path: Path) -> None:
    source = _book(tmp_path / "book.db", "northshore")
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"not a book")
    try:
        with pytest.raises(StoreError, match=r"taken\.db: exists already"):
            copy_book(source, str(taken))
        with pytest.raises(StoreError, match="exists already"):
            copy_book(source, str(tmp_path / "book.db"))
        assert taken.read_bytes() == b"not a book"
    finally:
        source.close()
    empty = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    empty.migrate()
    try:
        with pytest.raises(StoreError, match="no book here"):
            copy_book(empty, str(tmp_path / "new.db"))
    finally:
        empty.close()
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize(
    "target", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_copy_that_reads_back_different_is_not_written(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    """A driver that lost an amount's scale (2.50 written as 2.5) fails the read back: the
    copy names the table and leaves nothing (no new file; no schema in the database)."""
    source = _book(tmp_path / "book.db", "northshore")
    url = str(tmp_path / "copy.db") if target == "sqlite" else request.getfixturevalue("pg_db_url")
    real = copying._insert

    def losing_scale(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if table.name == "journal_lines":
            rows = [{**rows[0], "amount": rows[0]["amount"].normalize()}, *rows[1:]]
        real(conn, table, rows)

    monkeypatch.setattr(copying, "_insert", losing_scale)
    try:
        assert dump_tables(source)["journal_lines"][0][-1] != "0"
        with pytest.raises(StoreError, match="table journal_lines: the rows read back"):
            copy_book(source, url)
    finally:
        source.close()
    if target == "sqlite":
        assert not (tmp_path / "copy.db").exists()
    else:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert not sa.inspect(conn).get_table_names()
        engine.dispose()


def test_times_are_copied_as_instants(tmp_path: Path) -> None:
    """SQLite keeps UTC times without their zone; a copy reads them as UTC."""
    source = _book(tmp_path / "book.db", "northshore")
    try:
        copy_book(source, str(tmp_path / "copy.db"))
    finally:
        source.close()
    target = Store(str(tmp_path / "copy.db"))
    try:
        recorded = [when for when, _by, _change in target.master_changes()]
        assert all(when.tzinfo == dt.UTC for when in recorded)
        assert abs(recorded[-1] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    finally:
        target.close()


def test_the_command_copies_and_says_so(tmp_path: Path) -> None:
    _book(tmp_path / "book.db", "northshore").close()
    runner = CliRunner()
    args = ["copy", str(tmp_path / "copy.db"), "--db", str(tmp_path / "book.db")]
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output
    # (compared without whitespace: the console folds a long path anywhere, even before ":")
    said = "".join(done.output.split())
    told = f"to {tmp_path / 'copy.db'}: 263 rows of 17 tables, each read back and compared"
    assert "".join(told.split()) in said
    again = runner.invoke(cli, args)
    assert again.exit_code == 2
    assert "copy.db: exists already; a book is copied into a new file" in again.output
    report = runner.invoke(cli, ["report", "--db", str(tmp_path / "copy.db"), "--json"])
    source = runner.invoke(cli, ["report", "--db", str(tmp_path / "book.db"), "--json"])
    assert report.exit_code == 0 and report.output == source.output
    # a target that cannot be reached is named, not the source (nothing listens on port 9)
    unreachable = "postgresql://plant:secret@127.0.0.1:9/plant"
    failed = runner.invoke(cli, ["copy", unreachable, "--db", str(tmp_path / "book.db")])
    assert failed.exit_code == 2, failed.output
    said = " ".join(failed.output.split())
    assert "plant:***@127.0.0.1:9/plant: cannot connect: connection failed" in said, said
    assert "book.db" not in said and "secret" not in said


def test_a_backup_or_copy_keeps_the_books_permissions(tmp_path: Path) -> None:
    """A book kept from other users' eyes (0600) is backed up and copied to files just as
    closed, whatever the umask: they hold the whole ledger and the token hashes."""
    source = _book(tmp_path / "book.db", "widgets_prorate")
    (tmp_path / "book.db").chmod(0o600)
    try:
        source.backup(tmp_path / "backup.db")
        copy_book(source, f"sqlite:///{tmp_path / 'copy.db'}")
    finally:
        source.close()
    for name in ("backup.db", "copy.db"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    books = [
        Store(f"sqlite:///{tmp_path / name}", create=False) for name in ("backup.db", "copy.db")
    ]
    try:
        assert books[0].load().on_hand == books[1].load().on_hand
    finally:
        for book in books:
            book.close()
