"""The group writer (api/writer.py) and group commit (Store.post_each) under the conditions a
server meets: a request given up while it waits, a posting refused after it changed the book
the writer froze when it started (gc.freeze), a database error after part of a group was
committed."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backflush.api.writer import GroupWriter
from backflush.book import Book
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.store import repository
from backflush.store import schema as t
from backflush.store.repository import Posting, Store
from test_kept_book import DAY, buy, given_events, kept, make, opened


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    found = opened(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def writer(store: Store) -> Iterator[GroupWriter]:
    found = GroupWriter(store)
    found.start()  # as a server does: the book loaded and frozen
    try:
        yield found
    finally:
        found.stop()
        gc.unfreeze()  # the writer froze what was alive: give it back to the collector


def event_ids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(sa.select(t.events.c.id)).scalars())


def refused_after_a_change() -> list[m.Event]:
    """A completion the book takes, then a reversal of nothing: refused after the change."""
    return [make(9), m.Reversal("r", DAY, "nothing", "typo")]


def freed(dropped: weakref.ref[Book], writer: GroupWriter) -> bool:
    """Whether the book is gone once the writer stopped (its thread holds the last group it
    posted until it takes the next) and the collector ran."""
    writer.stop()
    gc.collect()
    return dropped() is None


class Held:
    """A posting that holds the writer thread inside its transaction until released, so
    that the requests sent meanwhile wait and are taken as one group."""

    def __init__(self) -> None:
        self.started, self.released = threading.Event(), threading.Event()

    def events(self, _conn: Connection, _book: Book, _kept: dict[str, Any]) -> list[m.Event]:
        self.started.set()
        self.released.wait()
        return [buy(1)]


def test_a_request_given_up_while_it_waits_does_not_stop_the_writer(
    store: Store, writer: GroupWriter
) -> None:
    """A request cancelled while it waits (a client gone, a server shutting down): it is not
    posted, and the requests after it are posted and answered."""
    held = Held()

    async def scenario() -> list[bool]:
        first = asyncio.ensure_future(writer.post(Posting(held.events), 1))
        await asyncio.to_thread(held.started.wait)
        given_up = asyncio.ensure_future(writer.post(given_events([make(1)]), 1))
        await asyncio.sleep(0)  # it waits in the writer's queue
        given_up.cancel()
        later = asyncio.ensure_future(writer.post(given_events([make(2)]), 1))
        await asyncio.sleep(0)
        held.released.set()
        assert await first == [True]
        with pytest.raises(asyncio.CancelledError):
            await given_up
        # (a bound on the wait, not a timing: the answer never comes if the writer died)
        return await asyncio.wait_for(later, 60)

    assert asyncio.run(scenario()) == [True]
    assert event_ids(store) == ["c2", "p1"]


def test_a_posting_refused_after_it_changed_the_book_leaves_a_book_that_can_be_freed(
    store: Store, writer: GroupWriter
) -> None:
    """The writer froze the book it loaded; a posting refused after it changed that book
    drops it: the collector (or its reference count) must still be able to free it."""

    async def scenario() -> weakref.ref[Book]:
        # on the book frozen at the start
        assert await writer.post(given_events([buy(1)]), 1) == [True]
        book = kept(store)
        assert book is not None
        dropped = weakref.ref(book)
        del book
        with pytest.raises(PostingError):
            await writer.post(given_events(refused_after_a_change()), 2)
        return dropped

    assert freed(asyncio.run(scenario()), writer)


def test_a_posting_refused_in_a_group_leaves_a_book_that_can_be_freed(
    store: Store, writer: GroupWriter
) -> None:
    """One group: a posting refused after it changed the book and one posted. The group is
    posted again on a book loaded again; the first book (frozen at the start) must still be
    freed once the refusal was answered."""
    held = Held()

    async def scenario() -> weakref.ref[Book]:
        # on the book frozen at the start
        assert await writer.post(given_events([make(1)]), 1) == [True]
        book = kept(store)
        assert book is not None
        dropped = weakref.ref(book)
        del book
        first = asyncio.ensure_future(writer.post(Posting(held.events), 1))
        await asyncio.to_thread(held.started.wait)
        refused = asyncio.ensure_future(writer.post(given_events(refused_after_a_change()), 2))
        posted = asyncio.ensure_future(writer.post(given_events([make(2)]), 1))
        await asyncio.sleep(0)
        held.released.set()
        assert await first == [True]
        assert await posted == [True]
        with pytest.raises(PostingError):
            await refused
        return dropped

    assert freed(asyncio.run(scenario()), writer)


def test_a_database_error_after_the_group_was_committed_fails_only_what_it_failed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close in a group is posted in its own transaction after the group's commit: when
    that transaction fails, the postings already committed are still answered as posted
    (not as failed, which would tell their clients nothing was written)."""
    store.post([buy(1)])
    load_sums = repository._load_period_sums

    def failing(conn: Connection, book: Book) -> None:
        raise sa.exc.OperationalError("SELECT ...", {}, Exception("connection lost"))

    monkeypatch.setattr(repository, "_load_period_sums", failing)
    close = m.Close("close", dt.date(2026, 1, 31), "2026-01")
    answers = store.post_each([given_events([make(1)]), given_events([close])])
    assert answers[0] == [True]
    assert isinstance(answers[1], sa.exc.OperationalError)
    assert event_ids(store) == ["c1", "p1"]  # the completion was committed
    monkeypatch.setattr(repository, "_load_period_sums", load_sums)
    assert store.post_each([given_events([close])]) == [[True]]


def test_a_database_unavailable_is_said_in_one_line_and_other_failures_with_their_trace(
    store: Store, writer: GroupWriter, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A database down for seconds under load fails many groups: each is said in one line
    (the driver's reason), not with its traceback and statement, which filled megabytes of
    log; a failure of the server's own keeps its traceback."""
    caplog.set_level(logging.WARNING, logger="backflush")
    lost = sa.exc.OperationalError("SELECT ...", {}, Exception("connection lost\nDETAIL: x"))
    failures: list[Exception] = [lost, RuntimeError("a bug")]

    def failing(_postings: Any) -> Any:
        raise failures.pop(0)

    monkeypatch.setattr(store, "post_each", failing)

    async def scenario() -> None:
        with pytest.raises(sa.exc.OperationalError):
            await asyncio.wait_for(writer.post(given_events([make(1)]), 1), 60)
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(writer.post(given_events([make(2)]), 1), 60)

    asyncio.run(scenario())
    said = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert said == [
        ("WARNING", "group commit of 1 requests failed: connection lost", False),
        ("ERROR", "group commit of 1 requests failed", True),
    ]
