"""Many writers on one book (issue 6, point 3): clients posting at once through their own
:class:`Store` lose nothing, apply nothing twice and keep the invariants of DESIGN §3.5; the
stored book is exactly what posting the accepted events one after another, in the order they
were committed, gives in memory. On PostgreSQL 16 clients, on a SQLite file 4."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backflush.api.app import create_app
from backflush.api.tokens import Role, create_token
from backflush.book import Book, fingerprint
from backflush.domain import model as m
from backflush.domain.journal import summarize
from backflush.domain.money import ZERO
from backflush.engine.flush import PostingError
from backflush.formats.scenario import Scenario, parse_scenario
from backflush.reports.document import document
from backflush.store import schema as t
from backflush.store.repository import RETRIES, Store, event_from_payload
from helpers import serving

PLANT = """\
book: {name: Many writers, currency: USD, triggers: purchase+completion, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: K, kind: material, standard_cost: "0.50"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00", overhead: "2.00"}}}
  - {id: G, kind: finished, standard_cost: {conversion: {labor: "1.50"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "3", scrap: "0.10"}, {component: K, quantity: 2}]}
  - {item: G, lines: [{component: M, quantity: "1"}, {component: K, quantity: "4"}]}
events:
  - {id: seed-m, date: 2026-01-02, type: purchase, item: M, quantity: "400", unit_cost: "2.10"}
  - {id: seed-k, date: 2026-01-02, type: purchase, item: K, quantity: "900", unit_cost: "0.45"}
  - {id: seed-f, date: 2026-01-03, type: completion, item: F, quantity: "20"}
"""

JAN, FEB = dt.date(2026, 1, 1), dt.date(2026, 2, 1)
CLOSE = m.Close("close-jan", dt.date(2026, 1, 31), "2026-01")


def plant() -> Scenario:
    return parse_scenario(PLANT, "many_writers.yaml")


def round_events(client: int, rnd: int, clients: int) -> list[m.Event]:
    """What client ``client`` posts in round ``rnd``: a January completion consuming the
    components every client consumes, a sale of the same finished item, a purchase and a
    February conversion; clients i and i + clients/2 also send the same event (same id)."""
    product = "F" if (client + rnd) % 3 else "G"
    jan = JAN + dt.timedelta(days=3 + (client + rnd) % 27)
    feb = FEB + dt.timedelta(days=(client * 7 + rnd) % 27)
    prefix = f"c{client}-r{rnd}"
    found: list[m.Event] = [
        m.Completion(f"{prefix}-make", jan, product, Decimal(2 + rnd % 3)),
        m.Sale(f"{prefix}-sell", feb, "F", Decimal(1), Decimal("11.00")),
        m.Purchase(f"{prefix}-buy", feb, "KM"[rnd % 2], Decimal(7 + client), Decimal("2.05")),
        m.Conversion(f"{prefix}-labor", feb, Decimal(f"{client + 1}.25"), "labor"),
    ]
    twin = client % (clients // 2)
    twin_date = FEB + dt.timedelta(days=twin + rnd)
    found.append(m.Completion(f"dup-{twin}-r{rnd}", twin_date, "G", Decimal(1)))
    return found


@dataclass
class Outcome:
    """What one client was told."""

    applied: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    refused: list[tuple[list[m.Event], str]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


#: A client's way to post: True per event applied, False per duplicate; PostingError when
#: the whole posting was refused.
Poster = Callable[[list[m.Event]], list[bool]]


@contextmanager
def through_store(url: str, _client: int) -> Iterator[Poster]:
    """A client posting through its own :class:`Store`."""
    store = Store(url)
    try:
        yield store.post
    finally:
        store.close()


def run_clients(
    connect: Callable[[int], AbstractContextManager[Poster]],
    clients: int,
    rounds: int,
    close_after: int,
) -> list[Outcome]:
    """``clients`` threads, each with its own way to post (``connect(n)``), posting ``rounds``
    rounds at once (even clients one event per transaction, odd ones a round per
    transaction); after round ``close_after`` client 0 closes January while the others go
    on posting into it."""
    outcomes = [Outcome() for _ in range(clients)]
    start = threading.Barrier(clients)
    halfway = threading.Barrier(clients)

    def post(poster: Poster, outcome: Outcome, batch: list[m.Event]) -> None:
        try:
            applied = poster(batch)
        except PostingError as error:
            outcome.refused.append((batch, str(error)))
            return
        for event, was_applied in zip(batch, applied, strict=True):
            (outcome.applied if was_applied else outcome.duplicates).append(event.id)

    def client(n: int) -> None:
        outcome = outcomes[n]
        try:
            with connect(n) as poster:
                start.wait()
                for rnd in range(rounds):
                    if rnd == close_after:
                        halfway.wait()
                        if n == 0:
                            post(poster, outcome, [CLOSE])
                    events = round_events(n, rnd, clients)
                    if n % 2:
                        post(poster, outcome, events)
                    else:
                        for event in events:
                            post(poster, outcome, [event])
        except BaseException as error:  # reported by the test, not lost in the thread
            outcome.errors.append(error)
            start.abort()
            halfway.abort()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def stored_events(conn: sa.Connection) -> list[m.Event]:
    query = sa.select(t.events.c.id, t.events.c.payload).order_by(t.events.c.seq)
    return [event_from_payload(row.id, row.payload) for row in conn.execute(query)]


def sums(
    rows: list[Any], key: Callable[[Any], tuple[str, ...]], value: str = "amount"
) -> dict[tuple[str, ...], Decimal]:
    found: dict[tuple[str, ...], Decimal] = {}
    for row in rows:
        found[key(row)] = found.get(key(row), ZERO) + getattr(row, value)
    return {k: v for k, v in found.items() if v}


def nonzero(rows: list[Any], key: Callable[[Any], tuple[str, ...]]) -> dict[tuple[str, ...], Any]:
    return {key(row): row.amount for row in rows if row.amount}


def check_book(url: str, sc: Scenario, outcomes: list[Outcome], clients: int) -> None:
    """The stored book against what its clients were told and against memory."""
    errors = [e for o in outcomes for e in o.errors]
    # the first cause first: the others only saw their barrier broken by it
    assert sorted(errors, key=lambda e: isinstance(e, threading.BrokenBarrierError)) == []
    store = Store(url)
    try:
        with store.transaction() as conn:
            events = stored_events(conn)
            lines = list(conn.execute(sa.select(t.journal_lines)))
            balances = list(conn.execute(sa.select(t.balances)))
            activity = list(conn.execute(sa.select(t.period_activity)))
            by_item = list(conn.execute(sa.select(t.item_activity)))
            quantities = list(conn.execute(sa.select(t.quantities)))
            movements = list(conn.execute(sa.select(t.movements)))
            summary = list(conn.execute(sa.select(t.journal_summary)))
        loaded = store.load()
        got = document(loaded, store.numbered_entries())
        entries = store.entries()
    finally:
        store.close()
    ids = [e.id for e in events]
    seed = [e.id for e in sc.events]

    # nothing lost, nothing applied twice: what clients were told was applied is stored, once
    applied = [i for o in outcomes for i in o.applied]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(seed + applied)
    # twins sent the same event: applied by one of them, the other told it is a duplicate
    duplicates = Counter(i for o in outcomes for i in o.duplicates)
    assert duplicates, "no client's event was a duplicate"
    assert all(i.startswith("dup-") and n == 1 for i, n in duplicates.items())
    assert set(duplicates) <= set(applied)

    # the close raced with postings into January: each landed before it or was refused whole
    refused = [(batch, why) for o in outcomes for batch, why in o.refused]
    close_seq = ids.index(CLOSE.id)
    for batch, why in refused:
        assert "which is closed" in why, why
        # a refused batch writes nothing (its twin event may come from the other twin)
        assert not {e.id for e in batch if not e.id.startswith("dup-")} & set(ids)
    assert refused, "no posting raced with the close"
    for n, event in enumerate(events):
        if event.date < FEB and n > close_seq:
            raise AssertionError(f"{event.id} in closed January, committed after the close")

    # the exact state of posting the stored events one by one, in commit order, in memory
    book = Book(sc.settings, sc.master)
    assert all(book.post_many(events))
    want = document(book)
    assert list(got) == list(want)
    for key in want:
        assert got[key] == want[key], key
    # stock moved per period, item and flow (added to, not read, by postings)
    assert (loaded.moved, loaded.flows, loaded.daily) == (book.moved, book.flows, book.daily)
    assert loaded.held_moved == book.held_moved
    assert loaded.moved and loaded.flows and loaded.daily

    # invariants: entries balance, numbers unique and gap-free, sums kept agree with lines
    numbers = sorted({row.entry_no for row in lines})
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == len(entries)
    per_entry = sums(lines, lambda r: (str(r.entry_no),))
    assert per_entry == {}  # every entry balances
    assert all(len({(r.event, r.date, r.memo) for r in lines if r.entry_no == n}) == 1
               for n in numbers[:50])  # fmt: skip
    assert nonzero(balances, lambda r: (r.account, r.element)) == sums(
        lines, lambda r: (r.account, r.element)
    )
    assert nonzero(activity, lambda r: (r.period, r.account, r.element)) == sums(
        lines, lambda r: (r.period, r.account, r.element)
    )
    assert nonzero(by_item, lambda r: (r.period, r.account, r.element, r.item)) == sums(
        lines, lambda r: (r.period, r.account, r.element, r.item)
    )
    assert {(r.item,): r.on_hand for r in quantities if r.on_hand} == sums(
        movements, lambda r: (r.item,), "on_hand"
    )
    assert {(r.period, r.kind): (r.entries, r.lines) for r in summary} == {
        k: (f.entries, f.lines) for k, f in summarize(entries).items()
    }


def open_book(url: str) -> Scenario:
    sc = plant()
    store = Store(url)
    try:
        assert all(store.import_scenario(sc.settings, sc.master, sc.events))
    finally:
        store.close()
    return sc


@pytest.mark.postgres
def test_sixteen_writers_on_postgresql_lose_nothing_and_apply_nothing_twice(
    pg_db_url: str,
) -> None:
    sc = open_book(pg_db_url)
    outcomes = run_clients(partial(through_store, pg_db_url), clients=16, rounds=6, close_after=2)
    check_book(pg_db_url, sc, outcomes, clients=16)


def test_four_writers_on_a_sqlite_file_keep_working(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.db'}"
    sc = open_book(url)
    outcomes = run_clients(partial(through_store, url), clients=4, rounds=5, close_after=2)
    check_book(url, sc, outcomes, clients=4)


def _body(event: m.Event) -> dict[str, str]:
    """An event as the API takes it (the fields of a scenario file's event)."""
    return {"id": event.id, **json.loads(fingerprint(event))}


@contextmanager
def through_http(base: str, secret: str, client: int) -> Iterator[Poster]:
    """A client posting over HTTP: single events to ``/events`` (every other one with an
    Idempotency-Key), rounds to ``/events/batch``."""
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:

        def post(batch: list[m.Event]) -> list[bool]:
            if len(batch) == 1:
                key = {"Idempotency-Key": f"{client}-{batch[0].id}"} if client % 4 == 0 else {}
                response = http.post("/events", json=_body(batch[0]), headers=key)
            else:
                response = http.post("/events/batch", json=[_body(e) for e in batch])
            found = response.json()
            if response.status_code == 422 and found["type"] == "/problems/posting-refused":
                raise PostingError(found["detail"])
            assert response.status_code in (200, 201), response.text
            if len(batch) == 1:  # who recorded it: this client, or the one that did first
                by = found["recorded_by"]
                assert by == f"client {client}" if found["applied"] else by.startswith("client ")
                return [found["applied"]]
            return [e["applied"] for e in found["events"]]

        yield post


@pytest.mark.postgres
@pytest.mark.parametrize("writer", ["thread", "process"])
def test_sixteen_clients_posting_over_http_lose_nothing_and_apply_nothing_twice(
    pg_db_url: str, writer: str
) -> None:
    """Through the API's group writer (a thread of the server, or a process of its own, as
    ``backflush serve`` runs on PostgreSQL: a turn of the event loop's requests travel to it
    together, a group's answers come back together): concurrent requests share
    transactions, each still all or nothing (a batch refused whole by the close), with the
    exact state of posting the stored events one by one."""
    sc = open_book(pg_db_url)
    store = Store(pg_db_url)
    secrets = [create_token(store, f"client {n}", Role.accountant)[1] for n in range(16)]
    store.close()
    app = create_app(pg_db_url, writer_process=writer == "process")
    groups: list[int] = []
    if writer == "process":
        app.state.writer.start()  # (served without the lifespan that starts it)
    else:
        post_each = app.state.store.post_each

        def counted(postings: Any) -> Any:
            groups.append(len(postings))
            return post_each(postings)

        app.state.store.post_each = counted
    try:
        with serving(app) as base:
            outcomes = run_clients(
                lambda n: through_http(base, secrets[n], n), clients=16, rounds=6, close_after=2
            )
    finally:
        app.state.store.close()
    check_book(pg_db_url, sc, outcomes, clients=16)
    if writer == "thread":  # requests waiting while a group posted went in one transaction
        assert max(groups) > 1


@pytest.fixture
def failing_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the first ``n`` write transactions of :meth:`Store.post` fail as PostgreSQL
    serialization failures (raised by the server, SQLSTATE 40001) after writing their
    events; append ``n`` to the list returned. Counts the attempts in its second item."""
    control = [0, 0]
    write = Store._write

    def failing(
        self: Store, conn: sa.Connection, book: Book, changes: Any, *args: Any, **kw: Any
    ) -> None:
        write(self, conn, book, changes, *args, **kw)
        control[1] += 1
        if control[1] <= control[0]:
            conn.exec_driver_sql(
                "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END $$"
            )

    monkeypatch.setattr(Store, "_write", failing)
    return control


@pytest.mark.postgres
@pytest.mark.parametrize("failures", [1, RETRIES - 1, RETRIES])
def test_a_serialization_failure_is_retried_a_bounded_number_of_times(
    pg_db_url: str, failing_writes: list[int], failures: int
) -> None:
    sc = open_book(pg_db_url)
    failing_writes[:] = [failures, 0]
    store = Store(pg_db_url)
    try:
        event = m.Purchase("p1", dt.date(2026, 1, 9), "M", Decimal(5), Decimal("2.00"))
        if failures < RETRIES:
            assert store.post([event]) == [True]
        else:
            with pytest.raises(sa.exc.OperationalError, match="injected"):
                store.post([event])
        assert failing_writes[1] == min(failures + 1, RETRIES)  # attempts made
        assert [e.id for e in _events(store)].count("p1") == (failures < RETRIES)
        assert _events(store)[: len(sc.events)] == list(sc.events)
    finally:
        store.close()


@pytest.mark.postgres
def test_a_refused_event_is_not_retried(pg_db_url: str, failing_writes: list[int]) -> None:
    open_book(pg_db_url)
    store = Store(pg_db_url)
    try:
        assert store.post([CLOSE]) == [True]
        failing_writes[:] = [RETRIES, 0]
        late = m.Purchase("p1", dt.date(2026, 1, 9), "M", Decimal(5), Decimal("2.00"))
        with pytest.raises(PostingError, match="which is closed"):
            store.post([late])
        assert failing_writes[1] == 0  # refused before writing: tried once, not again
        assert [e.id for e in _events(store)][-1] == CLOSE.id
    finally:
        store.close()


def _events(store: Store) -> list[m.Event]:
    with store.transaction() as conn:
        return stored_events(conn)
