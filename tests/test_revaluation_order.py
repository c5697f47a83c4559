"""A change of standards revalues stock on the date the standards take effect (DESIGN §3.3),
whichever event adopts them: the close of the period they took effect in does not depend on
the order events were posted in (a later-dated event posted before that close, or the close
first).

Standards effective 15 January 2026 raise CHIP from 4.00 to 4.50 (WIDGET, 2 CHIP + 2.00 of
labor, from 10.00 to 11.00). Bought 1,000 CHIP at 4.10 and made 100 WIDGET by the 10th: on
the 15th 800 CHIP and 100 WIDGET are on hand, revalued by 800 x 0.50 = 400.00 (RIP) and
100 x 1.00 = 100.00 (FG), 500.00 credited to the revaluation variance, in January.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backflush.book import Book
from backflush.domain import model as m
from backflush.domain.model import Account, Entry, Event, PeriodResult
from backflush.formats.scenario import Scenario, parse_scenario
from backflush.store.repository import Store

HEAD = """
book: {{name: Revalued mid-month, currency: USD, triggers: {policy}, disposition: cogs}}
items:
  - {{id: CHIP, kind: material, standard_cost: "4.00"}}
  - {{id: WIDGET, kind: finished, standard_cost: {{conversion: {{labor: "2.00"}}}}}}
boms:
  - {{item: WIDGET, {first}lines: [{{component: CHIP, quantity: "2"}}]}}
cost_sets:
  - {{name: mid, effective: {effective}, materials: {{CHIP: "4.50"}}}}
events:
"""
EVENTS = {
    "buy": "{id: buy, date: 2026-01-05, type: purchase, item: CHIP, quantity: 1000, "
    'unit_cost: "4.10"}',
    "labor": '{id: labor, date: 2026-01-10, type: conversion, amount: "200.00", element: labor}',
    "make": "{id: make, date: 2026-01-10, type: completion, item: WIDGET, quantity: 100}",
    # dated after the standards took effect: at 11.00
    "make2": "{id: make2, date: 2026-01-20, type: completion, item: WIDGET, quantity: 50}",
    "labor2": '{id: labor2, date: 2026-01-25, type: conversion, amount: "150.00", element: labor}',
    "close-jan": "{id: close-jan, date: 2026-01-31, type: close, period: 2026-01}",
    "sell": "{id: sell, date: 2026-02-10, type: sale, item: WIDGET, quantity: 40, "
    'unit_price: "15.00"}',
    "buy2": "{id: buy2, date: 2026-02-12, type: purchase, item: CHIP, quantity: 100, "
    'unit_cost: "4.40"}',
    "close-feb": "{id: close-feb, date: 2026-02-28, type: close, period: 2026-02}",
}
#: Posting orders of the same events. Each event dated before the 15th comes before every
#: event dated on or after it (the book refuses the others once the new standards apply).
ORDERS = {
    "date order": "buy labor make make2 labor2 close-jan sell buy2 close-feb",
    # February's sale adopts the new standards, before January's close
    "sale first": "buy labor make sell buy2 make2 labor2 close-jan close-feb",
    # February's purchase adopts them, between January's own events
    "purchase first": "buy labor make buy2 make2 sell labor2 close-jan close-feb",
    # January's close adopts them
    "close adopts": "buy labor make close-jan sell buy2 close-feb",
}


def scenario(
    order: str,
    policy: str = "purchase+completion",
    effective: str = "2026-01-15",
    first: str = "",
) -> Scenario:
    text = HEAD.format(policy=policy, effective=effective, first=first)
    return parse_scenario(text + "".join(f"  - {EVENTS[k]}\n" for k in order.split()))


def posted(sc: Scenario) -> Book:
    book = Book(sc.settings, sc.master)
    assert book.post_many(sc.events) == [True] * len(sc.events)
    return book


def journal(book: Book) -> list[tuple[str, dt.date, str, str]]:
    """The journal as a sorted list: the same entries, whatever order they were posted in."""
    return sorted((e.event, e.date, e.memo, repr(e.lines)) for e in book.journal)


def revaluation(book: Book, effective: str = "2026-01-15") -> list[Entry]:
    return [e for e in book.journal if e.event == f"revaluation-{effective}"]


JANUARY_BALANCES = {
    "accounts_payable": D("-4100.00"),  # 1,000 x 4.10
    "accrued_conversion": D("-350.00"),
    # variances disposed of: PPV 100.00 + under-allocated 50.00 - revaluation 500.00
    "cogs": D("-350.00"),
    "finished_goods": D("1650.00"),  # 150 x 11.00: 100 x 10.00 + 100.00 + 50 x 11.00
    "raw_in_process": D("3150.00"),  # 700 x 4.50: 4,000 - 800 + 400 - 100 x 4.50
}


@pytest.mark.parametrize("order", ["date order", "sale first", "purchase first"])
def test_the_close_of_the_month_the_standards_took_effect_in_is_the_same_in_any_order(
    order: str,
) -> None:
    book = posted(scenario(ORDERS[order]))
    january = book.closed["2026-01"]
    assert dict(january.variances) == {
        "purchase_price": D("100.00"),  # 1,000 x (4.10 - 4.00)
        "material_usage": D(0),
        "conversion": D("50.00"),  # 350.00 spent - (100 + 50) x 2.00 allocated
        "conversion:labor": D("50.00"),
        "revaluation": D("-500.00"),
    }
    assert dict(january.balances) == JANUARY_BALANCES
    through = book.balances_through("2026-01")
    assert through[(Account.RAW_IN_PROCESS, "")] == D("3150.00")
    assert through[(Account.FINISHED_GOODS, "")] == D("1650.00")
    assert through[(Account.REVALUATION_VARIANCE, "")] == 0  # disposed of by January's close
    # The revaluation, in January, whichever event adopted the standards.
    assert [
        (e.date, e.memo, [(ln.account, ln.amount) for ln in e.lines]) for e in revaluation(book)
    ] == [
        (
            dt.date(2026, 1, 15),
            "revaluation of CHIP to the standards of 2026-01-15",
            [(Account.RAW_IN_PROCESS, D("400.00")), (Account.REVALUATION_VARIANCE, D("-400.00"))],
        ),
        (
            dt.date(2026, 1, 15),
            "revaluation of WIDGET to the standards of 2026-01-15",
            [(Account.FINISHED_GOODS, D("100.00")), (Account.REVALUATION_VARIANCE, D("-100.00"))],
        ),
    ]
    assert book.recorded["revaluation-2026-01-15"].event.date == dt.date(2026, 1, 15)
    # February: 40 sold at 11.00; 100 bought at 4.40 against 4.50; nothing revalued.
    february = book.closed["2026-02"]
    assert dict(february.variances) == {
        "purchase_price": D("-10.00"),
        "material_usage": D(0),
        "conversion": D(0),
    }
    reference = posted(scenario(ORDERS["date order"]))
    assert february == reference.closed["2026-02"]
    assert book.balances_through("2026-01") == reference.balances_through("2026-01")
    assert book.account_balances() == reference.account_balances()
    assert journal(book) == journal(reference)


def test_a_close_that_adopts_the_standards_posts_the_revaluation_on_their_date() -> None:
    """January's close is the first event dated on or after the 15th: it revalues the stock
    of the 10th, 800 CHIP and 100 WIDGET, dated the 15th as when a February event adopts
    them."""
    book = posted(scenario(ORDERS["close adopts"]))
    assert [
        (e.date, sum(ln.amount for ln in e.lines if ln.amount > 0)) for e in revaluation(book)
    ] == [(dt.date(2026, 1, 15), D("400.00")), (dt.date(2026, 1, 15), D("100.00"))]
    assert book.closed["2026-01"].variances == (
        ("purchase_price", D("100.00")),
        ("material_usage", D(0)),
        ("conversion", D("0.00")),
        ("conversion:labor", D("0.00")),
        ("revaluation", D("-500.00")),
    )
    # The same close as when February's sale is posted first (January has no make2 here).
    sold_first = posted(scenario("buy labor make sell buy2 close-jan close-feb"))
    assert sold_first.closed["2026-01"] == book.closed["2026-01"]
    assert sold_first.balances_through("2026-01") == book.balances_through("2026-01")


@pytest.mark.parametrize(
    "policy",
    [
        "purchase+completion",
        "purchase+sale",
        "completion",
        "sale",
        "sequential",
        "count",
        "cogs-first",
    ],
)
def test_every_policy_closes_the_month_alike_in_every_order(policy: str) -> None:
    reference = posted(scenario(ORDERS["date order"], policy))
    for order in ("sale first", "purchase first"):
        book = posted(scenario(ORDERS[order], policy))
        assert book.closed == reference.closed, order
        assert book.balances_through("2026-01") == reference.balances_through("2026-01")
        assert journal(book) == journal(reference)
    revalued = {
        e.memo: sum(ln.amount for ln in e.lines if ln.account is Account.REVALUATION_VARIANCE)
        for e in revaluation(reference)
    }
    # Where the stock's value sits on the books, it is revalued in January; a periodic book
    # revalues nothing between closes (the next close values its quantities anew).
    expected = {
        "purchase+completion": {"CHIP": D("-400.00"), "WIDGET": D("-100.00")},
        "purchase+sale": {"CHIP": D("-400.00"), "WIDGET": D("-100.00")},
        "sequential": {"CHIP": D("-400.00"), "WIDGET": D("-100.00")},
        "completion": {"WIDGET": D("-100.00")},  # the chips are off the books
        "sale": {},
        "count": {},
        "cogs-first": {},
    }[policy]
    assert revalued == {
        f"revaluation of {item} to the standards of 2026-01-15": amount
        for item, amount in expected.items()
    }
    assert reference.recorded["revaluation-2026-01-15"].event.date == dt.date(2026, 1, 15)
    assert all(e.date == dt.date(2026, 1, 15) for e in revaluation(reference))


def test_standards_effective_in_the_next_month_stay_out_of_the_close() -> None:
    """Standards effective 1 February, adopted by January's close dated 3 February or by a
    February sale posted before that close: the revaluation is February's either way."""
    late_close = EVENTS["close-jan"].replace("date: 2026-01-31", "date: 2026-02-03")
    closes: list[PeriodResult] = []
    for order in ("buy labor make close-jan sell", "buy labor make sell close-jan"):
        text = HEAD.format(policy="purchase+completion", effective="2026-02-01", first="")
        text += "".join(
            f"  - {late_close if k == 'close-jan' else EVENTS[k]}\n" for k in order.split()
        )
        book = posted(parse_scenario(text))
        assert {e.date for e in revaluation(book, "2026-02-01")} == {dt.date(2026, 2, 1)}
        assert book.period_variances("2026-02")["revaluation"] == D("-500.00")
        closes.append(book.closed["2026-01"])
    assert closes[0] == closes[1]
    assert "revaluation" not in dict(closes[0].variances)


def test_the_first_standards_revalue_nothing_on_their_date() -> None:
    """A BOM in force since June 2025, long before the first event: the first event adopts
    those standards with nothing on hand. The revaluation is recorded on its date (the book
    knows which standards its stock is at) and posts nothing: no period of 2025 appears,
    January closes as with the BOM in force since ever."""
    first = "effective_from: 2025-06-01, "
    book = posted(scenario(ORDERS["sale first"], first=first))
    assert book.recorded["revaluation-2025-06-01"].event.date == dt.date(2025, 6, 1)
    assert book.recorded["revaluation-2025-06-01"].entries == []
    assert book.periods() == ["2026-01", "2026-02"]
    reference = posted(scenario(ORDERS["date order"]))
    assert book.closed == reference.closed
    assert journal(book) == journal(reference)
    assert book.epoch == dt.date(2026, 1, 15)


def test_a_reopened_month_keeps_its_revaluation() -> None:
    """The revaluation is not the close's: reopening January leaves it there, and the close
    again finds it with the late invoice posted into the reopened month."""
    sc = scenario(ORDERS["close adopts"])
    reopen = m.Reopen("reopen-jan", dt.date(2026, 2, 15), "2026-01", "late invoice")
    invoice = m.Conversion("late-labor", dt.date(2026, 1, 28), D("30.00"), "labor")
    again = m.Close("close-jan-2", dt.date(2026, 2, 15), "2026-01")
    events = [e for e in sc.events if e.id != "close-feb"]
    book = Book(sc.settings, sc.master)
    book.post_many([*events, reopen, invoice, again])
    assert {e.date for e in revaluation(book)} == {dt.date(2026, 1, 15)}
    variances = dict(book.closed["2026-01"].variances)
    assert variances["revaluation"] == D("-500.00")
    assert variances["conversion"] == D("30.00")  # 230.00 spent - 100 x 2.00


def test_a_store_posts_the_revaluation_on_its_date_in_any_order(tmp_path: Path) -> None:
    """Through a SQLite book, February's sale posted before January's close: the events
    table, the journal and January's close as in memory in date order."""
    sc = scenario(ORDERS["sale first"])
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        assert store.import_scenario(sc.settings, sc.master, sc.events) == [True] * 9
        book = store.load()
        trail = store.trail(event="revaluation-2026-01-15")
        stored = store.entries("2026-01")
    finally:
        store.close()
    reference = posted(scenario(ORDERS["date order"]))
    assert book.closed == reference.closed
    assert book.epoch == dt.date(2026, 1, 15)
    assert trail is not None and trail.event.date == dt.date(2026, 1, 15)
    assert [e.date for e in stored if e.event == "revaluation-2026-01-15"] == [
        dt.date(2026, 1, 15)
    ] * 2
    assert dict(book.closed["2026-01"].balances) == JANUARY_BALANCES


# ---------------------------------------------------------------- any order, any date

START = dt.date(2026, 1, 1)
JANUARY_END, FEBRUARY_END = dt.date(2026, 1, 31), dt.date(2026, 2, 28)


@st.composite
def books(draw: st.DrawFn) -> tuple[dt.date, list[Event], list[Event]]:
    """Standards effective on a day of January or early February; purchases, completions,
    sales and conversion costs over the two months, closed: the events in date order, and
    in an order a user may post them in (those dated before the standards first, then the
    rest with February's interleaved anywhere before January's close). No shortages: stock
    of 5,000 CHIP and 100 WIDGET from the first day covers whatever follows."""
    effective = START + dt.timedelta(days=draw(st.integers(1, 44), label="effective day"))
    opening: list[Event] = [
        m.Purchase("buy", START, "CHIP", D(5000), D("4.10")),
        m.Completion("make", START, "WIDGET", D(100)),
    ]
    drawn: list[Event] = []
    for n in range(draw(st.integers(0, 12), label="events")):
        day = START + dt.timedelta(days=draw(st.integers(0, 58)))
        kind = draw(st.sampled_from(["purchase", "completion", "sale", "conversion"]))
        if kind == "purchase":
            cost = D(draw(st.integers(390, 460))) / 100
            drawn.append(m.Purchase(f"e{n}", day, "CHIP", D(draw(st.integers(1, 200))), cost))
        elif kind == "completion":
            drawn.append(m.Completion(f"e{n}", day, "WIDGET", D(draw(st.integers(1, 50)))))
        elif kind == "sale":  # at most 12 x 8 of the 100 made on the first day
            drawn.append(m.Sale(f"e{n}", day, "WIDGET", D(draw(st.integers(1, 8))), D(15)))
        else:
            amount = D(draw(st.integers(1, 50000))) / 100
            drawn.append(m.Conversion(f"e{n}", day, amount, "labor"))
    drawn.sort(key=lambda e: e.date)  # stable: one day's events in the order drawn
    january = m.Close("close-jan", JANUARY_END, "2026-01")
    february = m.Close("close-feb", FEBRUARY_END, "2026-02")
    in_january = [e for e in drawn if e.date <= JANUARY_END]
    in_february = [e for e in drawn if e.date > JANUARY_END]
    in_date_order = [*opening, *in_january, january, *in_february, february]
    before = [e for e in drawn if e.date < effective]
    # January's events from the effective day on, then its close; February's from that day.
    rest_january = [*(e for e in in_january if e.date >= effective), january]
    rest_february = [e for e in in_february if e.date >= effective]
    order: list[Event] = []
    while rest_january or rest_february:
        if rest_february and (not rest_january or draw(st.booleans())):
            order.append(rest_february.pop(0))
        else:
            order.append(rest_january.pop(0))
    return effective, in_date_order, [*opening, *before, *order, february]


@given(drawn=books())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_closes_do_not_depend_on_the_order_events_are_posted_in(
    drawn: tuple[dt.date, list[Event], list[Event]],
) -> None:
    effective, in_date_order, posted_order = drawn
    sc = scenario("", effective=effective.isoformat())
    reference, book = Book(sc.settings, sc.master), Book(sc.settings, sc.master)
    assert reference.post_many(in_date_order) == [True] * len(in_date_order)
    assert book.post_many(posted_order) == [True] * len(posted_order)
    assert book.closed == reference.closed
    assert book.balances_through("2026-01") == reference.balances_through("2026-01")
    assert journal(book) == journal(reference)
    # What the new standards revalued: the stock held on the effective day, 0.50 a CHIP and
    # 2 x 0.50 a WIDGET more, in the period of that day.
    chip = widget = D(0)
    for event in in_date_order:
        if event.date < effective and isinstance(event, m.Purchase):
            chip += event.quantity
        elif event.date < effective and isinstance(event, m.Completion):
            chip, widget = chip - 2 * event.quantity, widget + event.quantity
        elif event.date < effective and isinstance(event, m.Sale):
            widget -= event.quantity
    entries = revaluation(book, effective.isoformat())
    assert {e.date for e in entries} == {effective}
    assert sum(ln.amount for e in entries for ln in e.lines if ln.amount < 0) == -(
        chip * D("0.50") + widget
    )
    january = dict(book.closed["2026-01"].variances)
    february = dict(book.closed["2026-02"].variances)
    if effective <= JANUARY_END:
        assert january["revaluation"] == -(chip * D("0.50") + widget)
        assert "revaluation" not in february
    else:
        assert "revaluation" not in january
        assert february["revaluation"] == -(chip * D("0.50") + widget)


def test_standards_changed_twice_before_an_event_are_revalued_each_on_its_date() -> None:
    """A February sale adopts both January's and February's standards at once: stock is
    revalued twice, on the 15th (4.00 to 4.50) and on 1 February (4.50 to 4.80), so that
    January's close, posted after the sale, finds January's revaluation as it would on time."""
    second = '  - {name: feb, effective: 2026-02-01, materials: {CHIP: "4.80"}}\nevents:\n'
    books = {}
    for name, order in [
        ("on time", "buy labor make close-jan sell buy2 close-feb"),
        ("late", "buy labor make sell buy2 close-jan close-feb"),
    ]:
        text = HEAD.format(policy="purchase+completion", effective="2026-01-15", first="")
        text = text.replace("events:\n", second)
        sc = parse_scenario(text + "".join(f"  - {EVENTS[k]}\n" for k in order.split()))
        books[name] = posted(sc)
    on_time, late = books["on time"], books["late"]
    revalued: dict[str, D] = {}
    for entry in late.journal:
        for line in entry.lines:
            if line.account is Account.REVALUATION_VARIANCE and entry.memo.startswith("reval"):
                revalued[entry.event] = revalued.get(entry.event, D(0)) + line.amount
    # 800 CHIP x 0.50 + 100 WIDGET x 1.00 on the 15th; 800 x 0.30 + 100 x 0.60 on the 1st
    assert revalued == {
        "revaluation-2026-01-15": D("-500.00"),
        "revaluation-2026-02-01": D("-300.00"),
    }
    for period in ("2026-01", "2026-02"):
        assert late.closed[period] == on_time.closed[period]
        assert late.balances_through(period) == on_time.balances_through(period)
