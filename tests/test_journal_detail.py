"""Journal detail (issue 7): a book that sums routine events' journal lines per day or per
period holds exactly the figures of one that keeps an entry per event, keeps each summarised
event's own entries and movements (drill-down, reversal), and finds a summary's events."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from backflush.api.app import create_app
from backflush.api.tokens import Role, create_token
from backflush.book import Book
from backflush.cli import app
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.run import run_scenario
from backflush.store import schema as t
from backflush.store import summaries
from backflush.store.repository import Store
from helpers import EXAMPLE_NAMES, EXAMPLES, dump_tables, serving
from test_policies import COST_ROLL
from test_properties import Stream, budget, plants

DETAILS = list(m.JournalDetail)
#: What only the journal's detail changes: left out of the comparison of two books' tables.
DETAIL_TABLES = {"journal_lines", "movements"}

PLANT = """\
book: {name: Summed, currency: USD, triggers: purchase+completion, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: N, kind: material, standard_cost: "0.50"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "3"}, {component: N, quantity: "2"}]}
"""
DAY, NEXT = dt.date(2026, 1, 10), dt.date(2026, 1, 11)


def plain(value: Any) -> Any:
    """A stored value as both databases give it back (SQLite keeps decimals and dates as text)."""
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def figures(store: Store) -> dict[str, Any]:
    """Every table but the journal's own rows, with the events' detail left out; and the
    journal's lines summed by period, account, element and item."""
    tables = dump_tables(store, times=False)
    found = {
        name: [tuple(plain(v) for v in row) for row in rows]
        for name, rows in tables.items()
        if name not in DETAIL_TABLES
    }
    found.pop("book_settings")
    columns = [c.name for c in t.events.columns if not isinstance(c.type, sa.DateTime)]
    kept = [n for n, name in enumerate(columns) if name not in ("detail", "summary_entry")]
    found["events"] = [tuple(row[n] for n in kept) for row in found["events"]]
    sums: dict[tuple[str, str, str, str], Decimal] = {}
    for entry in store.entries():
        for line in entry.lines:
            key = (entry.period, line.account.value, line.element, line.item)
            sums[key] = sums.get(key, Decimal(0)) + line.amount
    found["journal sums"] = sorted((k, v) for k, v in sums.items() if v)
    return found


def own(store: Store, event: str) -> tuple[list[m.Entry], list[m.Movement]]:
    """What ``event`` posted and moved itself, as a reversal reads it."""
    with store.transaction() as conn:
        recorded = store._history(conn, [event])[event]
    return recorded.entries, recorded.movements


@pytest.fixture
def stores(db_url: str, tmp_path: Path) -> Iterator[dict[m.JournalDetail, Store]]:
    """A book of each journal detail: summed per day on the database of ``db_url``, the two
    others on SQLite."""
    opened = {d: Store(f"sqlite:///{tmp_path / f'{d.value}.db'}") for d in DETAILS}
    opened[m.JournalDetail.DAY].close()
    opened[m.JournalDetail.DAY] = Store(db_url)
    try:
        yield opened
    finally:
        for store in opened.values():
            store.close()


def summed(text: str, detail: m.JournalDetail) -> tuple[m.Settings, m.MasterData]:
    found = parse_scenario(text, "plant.yaml")
    return dataclasses.replace(found.settings, journal_detail=detail), found.master


def same_in_every_detail(scenario: Any, folder: Path) -> dict[m.JournalDetail, Store]:
    """Import ``scenario`` into a book of each journal detail (SQLite files in ``folder``):
    the same figures and, for each event, the same own entries and moves. The stores are
    returned closed (open one again to read it)."""
    found = {}
    stores = {}
    for detail in DETAILS:
        store = stores[detail] = Store(f"sqlite:///{folder / f'{detail.value}.db'}")
        try:
            settings = dataclasses.replace(scenario.settings, journal_detail=detail)
            store.import_scenario(settings, scenario.master, scenario.events)
            found[detail] = figures(store)
            assert store.settings().journal_detail is detail
            for event in scenario.events:
                found[detail][f"own {event.id}"] = own(store, event.id)
        finally:
            store.close()
    assert found[m.JournalDetail.DAY] == found[m.JournalDetail.EVENT]
    assert found[m.JournalDetail.PERIOD] == found[m.JournalDetail.EVENT]
    return stores


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_holds_the_same_figures_in_every_detail(name: str, tmp_path: Path) -> None:
    same_in_every_detail(read_scenario(EXAMPLES / f"{name}.yaml"), tmp_path)


def test_a_write_sums_its_events_per_type_and_day_and_never_changes_an_entry(
    stores: dict[m.JournalDetail, Store],
) -> None:
    """One write (here one posting of six events) makes one summary entry per event type
    and day (or period); a later write makes entries of its own and leaves the earlier ones
    as they were. The figures and each event's own lines equal a book keeping an entry per
    event."""
    events: list[m.Event] = [m.Purchase("p1", DAY, "M", Decimal("100"), Decimal("2.10"))]
    events += [m.Purchase("p2", DAY, "N", Decimal("100"), Decimal("0.40"))]
    events += [m.Completion(f"c{n}", NEXT if n % 2 else DAY, "F", Decimal(n)) for n in range(1, 5)]
    later = m.Completion("c5", DAY, "F", Decimal("1"))
    for detail, store in stores.items():
        store.import_scenario(*summed(PLANT, detail), [])
        assert store.post(events) == [True] * len(events)
    event_book, day_book = stores[m.JournalDetail.EVENT], stores[m.JournalDetail.DAY]
    first = day_book.entries()
    assert [(e.date, e.event, e.memo, len(e.lines)) for e in first] == [
        (DAY, "", "purchase events of 2026-01-10, summarised by day", 4),
        (NEXT, "", "completion events of 2026-01-11, summarised by day", 3),
        (DAY, "", "completion events of 2026-01-10, summarised by day", 3),
    ]
    period = [(e.date, e.memo) for e in stores[m.JournalDetail.PERIOD].entries()]
    assert period == [
        (dt.date(2026, 1, 31), "purchase events of 2026-01, summarised by period"),
        (dt.date(2026, 1, 31), "completion events of 2026-01, summarised by period"),
    ]
    for store in stores.values():
        assert store.post([later]) == [True]
    assert day_book.entries()[:3] == first
    assert day_book.entries()[3].memo == "completion events of 2026-01-10, summarised by day"
    assert figures(day_book) == figures(event_book)
    assert figures(stores[m.JournalDetail.PERIOD]) == figures(event_book)
    with day_book.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.movements)).scalar() == 0
    for event in [*events, later]:
        assert own(day_book, event.id) == own(event_book, event.id)
    # c1 and c3 on the 11th: the summary's lines are their lines summed
    (c1,), (c3,) = own(day_book, "c1")[0], own(day_book, "c3")[0]
    by_key = {(ln.account, ln.element, ln.item): ln.amount for ln in first[1].lines}
    for line in c1.lines + c3.lines:
        by_key[(line.account, line.element, line.item)] -= line.amount
    assert set(by_key.values()) == {Decimal(0)}
    summary = day_book.summarised_entry(2)
    assert summary is not None and summary.events == ("c1", "c3")
    assert day_book.summarised_entry(4) is not None
    assert day_book.summarised_entry(4).events == ("c5",)  # type: ignore[union-attr]
    assert day_book.summarised_entry(99) is None


def test_a_summarised_event_is_reversed_from_its_own_lines(
    stores: dict[m.JournalDetail, Store],
) -> None:
    for detail, store in stores.items():
        store.import_scenario(*summed(PLANT, detail), [])
        store.post([m.Purchase("p1", DAY, "M", Decimal("30"), Decimal("2.10"))])
        store.post([m.Purchase("p2", DAY, "N", Decimal("30"), Decimal("0.50"))])
        store.post([m.Completion("c1", DAY, "F", Decimal("4"))])
        store.keep_book = False  # the reversal reads c1 back from the database
        store.post([m.Reversal("r1", DAY, "c1")])
        with pytest.raises(PostingError, match="already reversed"):
            store.post([m.Reversal("r2", DAY, "c1")])
    event_book = stores[m.JournalDetail.EVENT]
    for detail in (m.JournalDetail.DAY, m.JournalDetail.PERIOD):
        assert figures(stores[detail]) == figures(event_book)
        reversal = [e for e in stores[detail].entries() if e.event == "r1"]
        assert reversal == [e for e in event_book.entries() if e.event == "r1"]
        assert stores[detail].load().on_hand == event_book.load().on_hand


def test_explain_shows_a_summarised_event_and_drills_down_from_a_summary(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    scenario = tmp_path / "plant.yaml"
    scenario.write_text(
        PLANT.replace("shortage: queue", "shortage: queue, journal_detail: day")
        + """events:
  - {id: p1, date: 2026-01-10, type: purchase, item: M, quantity: "30", unit_cost: "2.10"}
  - {id: p2, date: 2026-01-10, type: purchase, item: N, quantity: "30", unit_cost: "0.50"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "2"}
  - {id: c2, date: 2026-01-10, type: completion, item: F, quantity: "3"}
  - {id: c3, date: 2026-01-12, type: completion, item: F, quantity: "1"}
"""
    )
    runner = CliRunner()
    done = runner.invoke(app, ["import", str(scenario), "--db", str(db)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["explain", "--entry", "2", "--db", str(db), "--json"])
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert body["memo"] == "completion events of 2026-01-10, summarised by day"
    assert body["events"] == ["c1", "c2"]
    assert body["balanced"] is True
    # 5 units of F: 15 M at 2.00 and 10 N at 0.50 out of raw in process, 5 x 1.00 of labor
    assert {(ln["account"], ln.get("item"), ln["debit"], ln["credit"]) for ln in body["lines"]} == {
        ("raw_in_process", None, "0.00", "35.00"),
        ("conversion_allocated", None, "0.00", "5.00"),
        ("finished_goods", "F", "40.00", "0.00"),
    }
    done = runner.invoke(app, ["explain", "--entry", "2", "--db", str(db)])
    assert done.exit_code == 0, done.output
    assert "Sums the lines of 2 events" in done.output and "c1, c2" in done.output
    done = runner.invoke(app, ["explain", "c2", "--db", str(db), "--json"])
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert [e["entry_no"] for e in body["entries"]] == [2]
    assert body["check"]["status"] == "agrees"
    assert {mv["item"]: mv["on_hand"] for mv in body["movements"]} == {
        "M": "-9",
        "N": "-6",
        "F": "3",
    }
    # every export names each line's entry: a summary's lines (no event of their own) lead
    # to `explain --entry N`, and two summaries of one memo are told apart
    folder = tmp_path / "csv"
    assert runner.invoke(app, ["report", "--db", str(db), "--csv", str(folder)]).exit_code == 0
    with (folder / "journal.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    completions = [
        (r["entry"], r["date"], r["event"]) for r in rows if r["memo"].startswith("comp")
    ]
    assert sorted(set(completions)) == [("2", "2026-01-10", ""), ("3", "2026-01-12", "")]
    out = tmp_path / "book.xlsx"
    assert runner.invoke(app, ["report", "--db", str(db), "--xlsx", str(out)]).exit_code == 0
    sheet = openpyxl.load_workbook(out)["Journal"]
    assert {r[0] for r in sheet.iter_rows(min_row=2, values_only=True)} == {1, 2, 3}
    shown = runner.invoke(app, ["report", "--db", str(db), "--json"])
    numbered = [(e["entry_no"], e["memo"]) for e in json.loads(shown.output)["entries"]]
    assert numbered[1] == (2, "completion events of 2026-01-10, summarised by day")
    ledger = runner.invoke(app, ["ledger", "--db", str(db)]).output
    assert '* "completion events of 2026-01-10, summarised by day"\n  entry: 2\n' in ledger


@given(data=st.data())
@budget(15)
def test_random_streams_hold_the_same_figures_in_every_detail(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A random stream (closes, reopens, reversals, queued consumption, write-offs,
    revaluations...) posted one event at a time: a book summing per day or per period holds
    the figures of one keeping an entry per event, and each event's own lines and moves."""
    plant = data.draw(plants(), label="plant")
    stream = Stream(data, plant, backdating=data.draw(st.booleans(), label="backdating"))
    stream.run(data.draw(st.integers(1, 30), label="steps"))
    folder = tmp_path_factory.mktemp("detail")
    stores = {d: Store(str(folder / f"{d.value}.db")) for d in DETAILS}
    stores[m.JournalDetail.DAY].keep_book = False  # history read back for each reversal
    try:
        for detail, store in stores.items():
            store.import_scenario(
                dataclasses.replace(plant.settings, journal_detail=detail), plant.master, []
            )
        for event, outcome in stream.posted:
            for store in stores.values():
                try:
                    assert store.post([event]) == [True]
                except PostingError:
                    assert outcome == "refused", event
                else:
                    assert outcome == "accepted", event
        found = {d: figures(store) for d, store in stores.items()}
        assert found[m.JournalDetail.DAY] == found[m.JournalDetail.EVENT]
        assert found[m.JournalDetail.PERIOD] == found[m.JournalDetail.EVENT]
        accepted = [event.id for event, outcome in stream.posted if outcome == "accepted"]
        for event in accepted:
            assert own(stores[m.JournalDetail.DAY], event) == own(
                stores[m.JournalDetail.EVENT], event
            )
    finally:
        for store in stores.values():
            store.close()


def test_the_api_drills_down_from_a_summary_entry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.db'}"
    store = Store(url)
    try:
        store.import_scenario(*summed(PLANT, m.JournalDetail.DAY), [])
        store.post(
            [
                m.Purchase("p1", DAY, "M", Decimal("30"), Decimal("2.10")),
                m.Purchase("p2", DAY, "N", Decimal("30"), Decimal("0.50")),
                m.Completion("c1", DAY, "F", Decimal("2")),
                m.Close("close-1", dt.date(2026, 1, 31), "2026-01"),
            ]
        )
        secret = create_token(store, "viewer", Role.viewer)[1]
    finally:
        store.close()
    app = create_app(url)
    try:
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            summary = client.get("/journal/1", headers=headers).json()
            assert summary["memo"] == "purchase events of 2026-01-10, summarised by day"
            assert summary["events"] == ["p1", "p2"]
            assert client.get("/journal/2", headers=headers).json()["events"] == ["c1"]
            closing = client.get("/journal/3", headers=headers).json()
            assert closing["event"]["id"] == "close-1"  # an entry of its own: its event's trail
            assert client.get("/journal/99", headers=headers).status_code == 404
            assert client.get("/journal/0", headers=headers).status_code == 422
            # entry numbers are 32-bit in SQL: a larger one is refused, not an error
            assert client.get("/journal/2147483648", headers=headers).status_code == 422
            beyond = {"after": "2147483648"}
            assert client.get("/journal", params=beyond, headers=headers).status_code == 422
    finally:
        app.state.store.close()


def test_a_summary_never_spans_an_entry_of_its_own() -> None:
    """Completions of one day around a reversal in one write: two summaries, numbered
    before and after the reversal's own entry (the journal in number order is the order of
    posting)."""
    day = [m.Completion(f"c{n}", DAY, "F", Decimal(1)) for n in (1, 2)]
    reversal = m.Reversal("r1", DAY, "c1")
    book = Book(*summed(PLANT, m.JournalDetail.DAY))
    book.post_many([*day[:1], reversal, *day[1:]])
    changes = book.take_changes()
    split = summaries.split(changes, m.JournalDetail.DAY)
    numbered, last = summaries.numbered(changes.entries, split.details, 10)
    assert [(n, e.event) for n, e in numbered] == [(11, ""), (12, "r1"), (13, "")]
    assert last == 13
    assert (split.details["c1"].entry_no, split.details["c2"].entry_no) == (11, 13)


def test_a_late_receipt_revalued_on_a_later_day_keeps_its_entries(tmp_path: Path) -> None:
    """A receipt posted into a reopened January after February's cost roll has an entry dated
    February 1 (its units revalued): summed into its day's summary, that would land in
    January. It keeps its own entries; the figures are those of a book keeping every entry."""
    scenario = parse_scenario(COST_ROLL.format(policy="purchase+completion"), "roll.yaml")
    for store in same_in_every_detail(scenario, tmp_path).values():
        entries, _ = own(store, "late")
        store.close()
        assert [e.date for e in entries] == [dt.date(2026, 1, 28), dt.date(2026, 2, 1)]


#: M rises from 1.00 to 1.30 on 1 February; W is one M and 1.00 of labor. Two W sold in
#: January come back in February, and a January purchase goes back to its vendor.
RETURNED_AFTER_A_COST_ROLL = """
book: {name: R, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
  - {id: W, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: W, lines: [{component: M, quantity: "1"}]}
cost_sets: [{name: feb, effective: 2026-02-01, materials: {M: "1.30"}}]
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "10", unit_cost: "1.00"}
  - {id: p0, date: 2026-01-03, type: purchase, item: M, quantity: "3", unit_cost: "0.90"}
  - {id: c1, date: 2026-01-10, type: completion, item: W, quantity: "4"}
  - {id: s1, date: 2026-01-20, type: sale, item: W, quantity: "2", unit_price: "5.00"}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: p2, date: 2026-02-02, type: purchase, item: M, quantity: "1", unit_cost: "1.30"}
  - {id: rs1, date: 2026-02-05, type: reversal, reverses: s1, reason: customer return}
  - {id: rp0, date: 2026-02-06, type: reversal, reverses: p0, reason: vendor return}
"""


@pytest.mark.parametrize("detail", DETAILS)
def test_reversals_across_a_cost_roll_read_from_the_store_revalue_as_in_memory(
    detail: m.JournalDetail, tmp_path: Path
) -> None:
    """Each event posted in a transaction of its own: the reversals read their originals
    back from the store (their own lines, kept with them when summarised) and revalue what
    they take back as the book in memory does."""
    scenario = parse_scenario(RETURNED_AFTER_A_COST_ROLL, "returned.yaml")
    memory = run_scenario(scenario)
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        settings = dataclasses.replace(scenario.settings, journal_detail=detail)
        store.import_scenario(settings, scenario.master, [])
        for event in scenario.events:
            assert store.post([event]) == [True]
        book = store.load()
        assert book.account_balances() == memory.account_balances()
        assert book.on_hand == memory.on_hand == {"M": Decimal(7), "W": Decimal(4)}
        for reversal in ("rs1", "rp0"):
            assert own(store, reversal)[0] == memory.recorded[reversal].entries
    finally:
        store.close()
    # 4 W at 2.30, and 7 M at 1.30 (13 bought in January, 4 in the W, 1 bought at 1.30, 3 sent back)
    assert memory.account_balances()["finished_goods"] == Decimal("9.20")
    assert memory.account_balances()["raw_in_process"] == Decimal("9.10")
