"""The close as a procedure (issue 4, items 5 and 6): reopen of the latest closed period,
write-off and retry of backflush exceptions, the exceptions policy of the close, the close
checklist. Figures worked by hand in the comments.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from backflush.book import Book
from backflush.domain.model import (
    Account,
    Close,
    Completion,
    Conversion,
    Count,
    Entry,
    Purchase,
    Release,
    Reopen,
    Retry,
    Reversal,
    Sale,
    WriteOff,
)
from backflush.engine.flush import PostingError
from backflush.formats.inputs import InputError
from backflush.formats.scenario import parse_scenario
from backflush.reports import close as reports
from backflush.reports.document import document

D = Decimal
JAN31 = dt.date(2026, 1, 31)

# purchase+sale with the GAAP adjustment: the close inventories the conversion of unsold units,
# state (Book.unsold_conversion) a reopen must put back.
#   p1: Dr RIP 20.00, Cr AP 20.00 (10 M at 2.00)
#   c1: 4 F made, no entry (costed at sale); M 10 - 8 = 2, F 4
#   s1: Dr COGS 5.00 (1 x 4.00 + 1.00), Cr RIP 4.00, Cr Allocated (labor) 1.00; AR/Sales 9.00
#   l1: Dr Control (labor) 3.50
#   close: 3 F unsold x 1.00 labor: Dr FG 3.00, Cr Allocated 3.00; then
#          conversion 3.50 - 1.00 - 3.00 = -0.50 (favorable): Cr Control 3.50, Dr Allocated
#          4.00, Cr COGS 0.50 -> COGS 4.50
GAAP = """
book: {name: GAAP plant, currency: USD, triggers: purchase+sale, disposition: cogs,
       inventory_unsold_conversion: true, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "2"}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "10", unit_cost: "2.00"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "4"}
  - {id: s1, date: 2026-01-20, type: sale, item: F, quantity: "1", unit_price: "9.00"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "3.50", element: labor}
"""

# A completion runs ahead of stock: M standard 0.333, F needs 1.5 M and 1.00 labor.
#   p1: 10 M: Dr RIP 3.33, Dr PPV 0.17, Cr AP 3.50
#   c1: 11 F need 16.5 M, 10 on hand: 6.5 M queued.
#       Dr FG 16.49 (11 x 1.4995 = 16.4945), Cr RIP 5.49 (16.5 x 0.333 = 5.4945),
#       Cr Allocated 11.00; RIP 3.33 - 5.49 = -2.16 (the 6.5 M credited, not yet taken)
SHORT = """
book: {name: Short plant, currency: USD, triggers: purchase+completion, disposition: cogs,
       shortage: queue, count_variance: {variance}, exceptions_at_close: {policy}}
items:
  - {id: M, kind: material, standard_cost: "0.333"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}, flush: backward}
  - {id: G, kind: finished, standard_cost: {conversion: "0.50"}}
  - {id: K, kind: material, standard_cost: "1.00", flush: forward}
boms:
  - {item: F, lines: [{component: M, quantity: "1.5"}]}
  - {item: G, lines: [{component: K, quantity: "1"}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "10", unit_cost: "0.35"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "11"}
"""


def book_of(text: str) -> Book:
    scenario = parse_scenario(text, "test.yaml")
    book = Book(scenario.settings, scenario.master)
    book.post_many(scenario.events)
    return book


def short(variance: str = "usage", policy: str = "warn") -> Book:
    return book_of(SHORT.replace("{variance}", variance).replace("{policy}", policy))


def balance(book: Book, account: Account) -> Decimal:
    return sum((v for (a, _), v in book.balances.items() if a is account), D(0))


def lines(entry: Entry) -> list[tuple[str, str, str, Decimal]]:
    return [(ln.account.value, ln.element, ln.item, ln.amount) for ln in entry.lines]


def of(book: Book, event: str) -> list[Entry]:
    return [e for e in book.journal if e.event == event]


# ---------------------------------------------------------------- reopen


def test_reopen_then_close_again_gives_the_journal_of_one_close() -> None:
    once = book_of(GAAP)
    once.post(Close("close-jan", JAN31, "2026-01"))
    twice = book_of(GAAP)
    twice.post(Close("close-jan", JAN31, "2026-01"))
    assert twice.post(Reopen("reopen-jan", dt.date(2026, 2, 3), "2026-01", "invoice missing"))
    assert "2026-01" not in twice.closed
    assert twice.unsold_conversion == {(Account.FINISHED_GOODS, "labor"): D(0)}
    # the close's two entries negated, dated as the close dated them (in January)
    undone = of(twice, "reopen-jan")
    assert [e.date for e in undone] == [JAN31, JAN31]
    assert [lines(e) for e in undone] == [
        [(a, el, i, -v) for a, el, i, v in lines(e)] for e in of(once, "close-jan")
    ]
    assert balance(twice, Account.COGS) == D("5.00")  # s1 alone
    assert balance(twice, Account.FINISHED_GOODS) == 0
    assert balance(twice, Account.CONVERSION_CONTROL) == D("3.50")
    assert twice.post(Close("close-jan-2", JAN31, "2026-01"))
    assert [lines(e) for e in of(twice, "close-jan-2")] == [lines(e) for e in of(once, "close-jan")]
    assert [lines(e) for e in of(once, "close-jan")] == [
        [("finished_goods", "labor", "", D("3.00")), ("conversion_allocated", "labor", "", D(-3))],
        [
            ("conversion_allocated", "labor", "", D("4.00")),
            ("conversion_control", "labor", "", D("-3.50")),
            ("cogs", "", "", D("-0.50")),
        ],
    ]
    assert twice.balances == once.balances
    assert twice.unsold_conversion == once.unsold_conversion
    assert twice.closed["2026-01"].variances == once.closed["2026-01"].variances
    assert twice.closed["2026-01"].balances == once.closed["2026-01"].balances
    assert balance(twice, Account.COGS) == D("4.50")


def test_an_event_posted_into_the_reopened_period_changes_its_variances() -> None:
    book = book_of(GAAP)
    book.post(Close("close-jan", JAN31, "2026-01"))
    book.post(Reopen("reopen-jan", dt.date(2026, 2, 1), "2026-01", "a sale was missed"))
    # s2: Dr COGS 5.00, Cr RIP 4.00, Cr Allocated 1.00; 2 F left
    book.post(Sale("s2", dt.date(2026, 1, 25), "F", D(1), D("9.00")))
    book.post(Close("close-jan-2", JAN31, "2026-01"))
    # unsold: 2 F x 1.00 = 2.00 inventoried; conversion 3.50 - 1.00 - 1.00 - 2.00 = -0.50
    assert book.unsold_conversion == {(Account.FINISHED_GOODS, "labor"): D("2.00")}
    assert dict(book.closed["2026-01"].variances)["conversion"] == D("-0.50")
    # COGS 5.00 + 5.00 - 0.50; RIP 20.00 - 4.00 - 4.00; FG the 2.00 inventoried
    assert balance(book, Account.COGS) == D("9.50")
    assert balance(book, Account.RAW_IN_PROCESS) == D("12.00")
    assert balance(book, Account.FINISHED_GOODS) == D("2.00")
    assert balance(book, Account.CONVERSION_CONTROL) == 0
    assert balance(book, Account.CONVERSION_ALLOCATED) == 0
    periods = document(book)["periods"]
    assert periods[0]["closed"] is True
    assert periods[0]["close_event"] == "close-jan-2"
    assert periods[0]["reopened"] == [
        {
            "event": "reopen-jan",
            "date": "2026-02-01",
            "reason": "a sale was missed",
            "close_event": "close-jan",
        }
    ]


def test_reopen_only_the_latest_closed_period() -> None:
    book = book_of(GAAP)
    with pytest.raises(PostingError, match="no period is closed; nothing to reopen"):
        book.post(Reopen("r0", dt.date(2026, 2, 1), "2026-01", "why"))
    book.post(Close("close-jan", JAN31, "2026-01"))
    book.post(Close("close-feb", dt.date(2026, 2, 28), "2026-02"))
    with pytest.raises(PostingError, match="period 2026-01 is closed; only the latest closed "
                       "period, 2026-02, can be reopened"):  # fmt: skip
        book.post(Reopen("r1", dt.date(2026, 3, 1), "2026-01", "why"))
    with pytest.raises(PostingError, match="period 2026-03 is not closed; only the latest"):
        book.post(Reopen("r2", dt.date(2026, 4, 1), "2026-03", "why"))
    with pytest.raises(PostingError, match="dated 2026-02-27, before the period ends"):
        book.post(Reopen("r3", dt.date(2026, 2, 27), "2026-02", "why"))
    assert book.post(Reopen("r4", dt.date(2026, 2, 28), "2026-02", "why"))
    # January stays closed; February accepts postings again
    with pytest.raises(PostingError, match="which is closed \\(last closed period 2026-01\\)"):
        book.post(Conversion("late", JAN31, D("1.00")))
    assert book.post(Conversion("feb", dt.date(2026, 2, 10), D("1.00"), "labor"))
    with pytest.raises(PostingError, match="period 2026-02 is not closed"):
        book.post(Reopen("r5", dt.date(2026, 3, 1), "2026-02", "again"))
    # now January is the latest closed period
    assert book.post(Reopen("r6", dt.date(2026, 3, 1), "2026-01", "also January"))
    assert book.closed == {}


def test_a_closed_period_refuses_postings_and_a_reopen_is_final() -> None:
    book = book_of(GAAP)
    book.post(Close("close-jan", JAN31, "2026-01"))
    reopen = Reopen("reopen-jan", dt.date(2026, 2, 2), "2026-01", "wrong labor")
    book.post(reopen)
    book.post(Close("close-jan-2", JAN31, "2026-01"))
    with pytest.raises(PostingError, match="in period 2026-01, which is closed"):
        book.post(Conversion("late", dt.date(2026, 1, 30), D("1.00")))
    journal = len(book.journal)
    assert book.post(reopen) is False  # re-sent: no change, January stays closed
    assert "2026-01" in book.closed and len(book.journal) == journal
    for target in ("reopen-jan", "close-jan", "close-jan-2"):
        with pytest.raises(PostingError, match="cannot be reversed"):
            book.post(Reversal(f"undo-{target}", dt.date(2026, 2, 5), target))
    # the original close id sent again is a no-op: it does not close anything
    assert book.post(Close("close-jan", JAN31, "2026-01")) is False
    assert book.recorded["close-jan"].reversed_by == "reopen-jan"


def test_a_reopen_needs_a_reason_at_the_edge() -> None:
    text = GAAP + "  - {id: r, date: 2026-02-01, type: reopen, period: 2026-01, reason: ' '}\n"
    with pytest.raises(InputError, match="reason: String should match pattern"):
        parse_scenario(text, "t.yaml")


# ---------------------------------------------------------------- write-off and retry


@pytest.mark.parametrize(
    ("variance", "account"),
    [("usage", Account.MATERIAL_USAGE_VARIANCE), ("adjustment", Account.INVENTORY_ADJUSTMENT)],
)
def test_write_off_puts_back_the_value_of_what_was_never_taken(
    variance: str, account: Account
) -> None:
    book = short(variance)
    assert balance(book, Account.RAW_IN_PROCESS) == D("-2.16")
    assert book.post(WriteOff("w1", dt.date(2026, 1, 15), "c1", "M", "used scrap-bin stock"))
    # 6.5 M x 0.333 = 2.1645 -> 2.16 (half-even): Dr RIP 2.16, Cr the variance 2.16
    (entry,) = of(book, "w1")
    assert lines(entry) == [
        ("raw_in_process", "", "", D("2.16")),
        (account.value, "", "M", D("-2.16")),
    ]
    assert entry.memo == "write-off 6.5 M queued by c1: used scrap-bin stock"
    assert balance(book, Account.RAW_IN_PROCESS) == 0
    assert book.quantity("M") == 0 and book.waiting("M") == 0
    key = ("c1", "M", "shortage")
    assert book.exception_status(key) == "written off"
    (exception,) = document(book)["exceptions"]
    assert exception["status"] == "written off"
    assert exception["cleared_by"] == "w1"
    assert exception["reason"] == "used scrap-bin stock"
    # stock that arrives later stays on hand: nothing waits for it any more
    book.post(Purchase("p2", dt.date(2026, 1, 20), "M", D(3), D("0.333")))
    assert book.quantity("M") == 3
    assert balance(book, Account.RAW_IN_PROCESS) == D("1.00")  # 3 x 0.333 = 0.999


def test_write_off_refusals() -> None:
    book = short()
    on = dt.date(2026, 1, 15)
    with pytest.raises(PostingError, match="no open backflush exception of event c9 for 'M'"):
        book.post(WriteOff("w0", on, "c9", "M", "why"))
    early = dt.date(2026, 1, 9)  # c1 queued its 6.5 M on the 10th
    with pytest.raises(PostingError, match="dated 2026-01-09, before c1 queued the shortage on"):
        book.post(WriteOff("w1", early, "c1", "M", "why"))
    book.post(WriteOff("w1", on, "c1", "M", "why"))
    with pytest.raises(PostingError, match="already written off by w1"):
        book.post(WriteOff("w2", on, "c1", "M", "again"))
    with pytest.raises(PostingError, match="cannot be reversed"):
        book.post(Reversal("r1", on, "w1"))
    with pytest.raises(PostingError, match="written off by w1; correct with new events"):
        book.post(Reversal("r2", on, "c1"))
    # a release waiting to be picked is not written off
    book.post(Release("rel", on, "G", D(4)))
    with pytest.raises(PostingError, match="release waiting to be picked"):
        book.post(WriteOff("w3", on, "rel", "K", "why"))
    assert book.post(WriteOff("w1", on, "c1", "M", "why")) is False  # re-sent


def test_retry_clears_after_a_count_gain_and_is_audited() -> None:
    book = short()
    # the shelf holds 2 M although the book says 0 with 6.5 waiting: the count gain is
    # 2 - (0 - 6.5) = 8.5 M; the queue takes its 6.5, 2 stay. Dr RIP 8.5 x 0.333 = 2.8305
    # -> 2.83, Cr usage variance 2.83; RIP -2.16 + 2.83 = 0.67 (2 x 0.333 = 0.666)
    book.post(Count("n1", dt.date(2026, 1, 12), "M", D(2)))
    assert book.waiting("M") == 0 and book.quantity("M") == 2
    assert book.cleared_by[("c1", "M", "shortage")] == "n1"
    assert balance(book, Account.RAW_IN_PROCESS) == D("0.67")
    before = document(book)
    assert book.post(Retry("t1", dt.date(2026, 1, 13)))  # nothing waits: recorded, no change
    assert book.recorded["t1"].entries == [] and document(book) == before
    assert book.post(Retry("t1", dt.date(2026, 1, 13))) is False


def test_retry_of_one_item_takes_only_what_is_on_hand() -> None:
    book = short()
    # the queue is taken oldest first when stock arrives; a retry of M with none on hand
    # changes nothing, and the exception keeps its open quantity
    book.post(Retry("t1", dt.date(2026, 1, 11), "M"))
    assert book.waiting("M") == D("6.5")
    book.post(Purchase("p2", dt.date(2026, 1, 12), "M", D(4), D("0.333")))
    assert book.waiting("M") == D("2.5") and book.quantity("M") == 0  # 4 of 6.5 taken
    book.post(Retry("t2", dt.date(2026, 1, 13), "M"))
    assert book.waiting("M") == D("2.5")


def test_exceptions_are_aged_in_days() -> None:
    book = short()
    book.post(Completion("c2", dt.date(2026, 2, 3), "F", D(2)))  # 3 M more waiting
    rows = reports.aging(book, dt.date(2026, 2, 10))
    assert [(r.event, r.item, r.open, r.age) for r in rows] == [
        ("c1", "M", D("6.5"), 31),  # 2026-01-10 to 2026-02-10
        ("c2", "M", D(3), 7),
    ]
    book.post(WriteOff("w1", dt.date(2026, 2, 11), "c1", "M", "found"))
    assert [r.event for r in reports.aging(book, dt.date(2026, 2, 11))] == ["c2"]
    every = reports.aging(book, dt.date(2026, 2, 11), every=True)
    assert [(r.event, r.status, r.by, r.reason) for r in every] == [
        ("c1", "written off", "w1", "found"),
        ("c2", "open", "", ""),
    ]


# ---------------------------------------------------------------- the exceptions policy


def test_refuse_policy_refuses_the_close_while_older_exceptions_are_open() -> None:
    book = short(policy="refuse")
    # c1's exception is of January itself: January closes
    assert book.post(Close("close-jan", JAN31, "2026-01"))
    feb = Close("close-feb", dt.date(2026, 2, 28), "2026-02")
    with pytest.raises(
        PostingError,
        match=r"1 backflush exception\(s\) older than 2026-02 still open: "
        r"c1/M \(6.5 since 2026-01-10\)",
    ):
        book.post(feb)
    assert "2026-02" not in book.closed
    book.post(WriteOff("w1", dt.date(2026, 2, 5), "c1", "M", "found"))
    assert book.post(feb)


def test_warn_policy_lets_the_close_go_ahead() -> None:
    book = short(policy="warn")
    book.post(Close("close-jan", JAN31, "2026-01"))
    assert book.post(Close("close-feb", dt.date(2026, 2, 28), "2026-02"))
    assert [s.event for s in book.exceptions_before(dt.date(2026, 2, 1))] == ["c1"]


# ---------------------------------------------------------------- the checklist

CHECKED = """
book: {name: Checked plant, currency: USD, triggers: purchase+completion, disposition: cogs,
       shortage: allow, exceptions_at_close: refuse}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: N, kind: material, standard_cost: "1.00"}
  - {id: F, kind: finished, standard_cost: {conversion: "1.00"}}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
events:
  # M bought at 2.20 and 2.00: 5 x 2.20 + 5 x 2.00 = 21.00 against 20.00: +5.0%, not over 5%
  - {id: p1, date: 2026-02-02, type: purchase, item: M, quantity: "5", unit_cost: "2.20"}
  - {id: p2, date: 2026-02-03, type: purchase, item: M, quantity: "5", unit_cost: "2.00"}
  # N at 1.06: +6.0%, over 5%
  - {id: p3, date: 2026-02-03, type: purchase, item: N, quantity: "10", unit_cost: "1.06"}
  # 12 F need 12 M, 10 on hand: -2 (shortage allow)
  - {id: c1, date: 2026-02-10, type: completion, item: F, quantity: "12"}
  - {id: rel, date: 2026-02-11, type: release, item: F, quantity: "5", order: O1}
"""


def test_the_checklist_warns_of_a_period_not_ended() -> None:
    """Read on 28 February, February has not ended: closing it would refuse postings of its
    last day; read on 1 March, it has."""
    book = book_of(CHECKED)
    for today, status in ((dt.date(2026, 2, 28), "warn"), (dt.date(2026, 3, 1), "ok")):
        (ended,) = [
            c for c in reports.checklist(book, "2026-02", today=today) if "ended" in c.check
        ]
        assert ended.status == status
    assert ended.details == ("2026-02 ended on 2026-02-28",)
    (early,) = [
        c
        for c in reports.checklist(book, "2026-02", today=dt.date(2026, 2, 3))
        if "ended" in c.check
    ]
    assert early.details == (
        "2026-02 ends on 2026-02-28; today is 2026-02-03: once it is closed, postings dated in "
        "its remaining days are refused",
    )


def test_checklist_rows() -> None:
    book = book_of(CHECKED)
    checks = {c.check: c for c in reports.checklist(book, "2026-02")}
    assert list(checks) == [
        "periods close in order",
        "the period has ended",
        "backflush exceptions",
        "production orders",
        "counts and receipts",
        "standards drift",
    ]
    assert checks["periods close in order"].status == "ok"
    assert checks["the period has ended"].details == ("2026-02 ended on 2026-02-28",)
    assert checks["backflush exceptions"].status == "ok"  # allow: flags, no queue
    assert checks["production orders"].status == "warn"
    assert checks["production orders"].details == (
        "O1 (F) released 2026-02-11: made 0 of 5, still open",
    )
    assert checks["counts and receipts"].status == "warn"
    assert checks["counts and receipts"].details == (
        "M: -2 on hand at the period end (missing receipt?)",
    )
    assert checks["standards drift"].status == "warn"
    assert checks["standards drift"].details == (
        "N: paid 1.06 a unit on average against a standard of 1.00 (+6.0%, threshold 5.0%)",
    )
    # a 4% threshold names M too (+5.0%)
    (drift,) = [
        c for c in reports.checklist(book, "2026-02", drift=D("0.04")) if "drift" in c.check
    ]
    assert [d.split(":")[0] for d in drift.details] == ["M", "N"]
    # January has no activity, February is checked: in order. March: February still open.
    (order,) = [
        c for c in reports.checklist(book, "2026-03") if c.check == "periods close in order"
    ]
    assert (order.status, order.details) == ("fail", ("2026-02 is still open",))
    book.post(Close("close-feb", dt.date(2026, 2, 28), "2026-02"))
    (order,) = [
        c for c in reports.checklist(book, "2026-02") if c.check == "periods close in order"
    ]
    assert (order.status, order.details) == ("fail", ("2026-02 is already closed by close-feb",))
    assert reports.worst(reports.checklist(book, "2026-02")) == "fail"


def test_checklist_of_exceptions_by_age_and_policy() -> None:
    for policy, status in (("refuse", "fail"), ("warn", "warn")):
        book = short(policy=policy)
        (jan,) = [c for c in reports.checklist(book, "2026-01") if "exceptions" in c.check]
        assert jan.status == "warn"  # of the period itself
        assert jan.details == (
            "1 of 2026-01 still open",
            "c1 M: 6.5 open since 2026-01-10 (21 days at the period end)",
        )
        book.post(Close("close-jan", JAN31, "2026-01"))
        (feb,) = [c for c in reports.checklist(book, "2026-02") if "exceptions" in c.check]
        assert feb.status == status
        assert feb.details[0] == "1 older than 2026-02"
        (counts,) = [c for c in reports.checklist(book, "2026-02") if "counts" in c.check]
        assert counts.details == ("M: 6.5 still waits for stock (missing receipt or count?)",)


def test_a_checklist_names_fifty_exceptions_and_counts_the_rest() -> None:
    """A queue of thousands made a checklist of megabytes (and a page, and a screen)."""
    book = short()
    for n in range(60):  # each waits for 1.5 M
        book.post(Completion(f"more-{n}", dt.date(2026, 1, 20), "F", D(1)))
    (jan,) = [c for c in reports.checklist(book, "2026-01") if "exceptions" in c.check]
    assert jan.details[0] == "61 of 2026-01 still open"
    assert len(jan.details) == 1 + reports.LISTED + 1
    assert jan.details[-1].startswith("and 11 more: the exceptions queue lists them all")


def test_checklist_names_items_not_counted_under_a_count_based_policy() -> None:
    """Under a count-based policy (count, cogs-first) the close values stock from counts:
    stocked items not counted in the period fail the check."""
    book = book_of(
        SHORT.replace("{variance}", "usage")
        .replace("{policy}", "warn")
        .replace("triggers: purchase+completion", "triggers: count")
    )
    (counts,) = [c for c in reports.checklist(book, "2026-01") if "counts" in c.check]
    assert counts.status == "fail"
    # F: 11 on hand; M: 0 on hand (not stocked at the period end)
    assert counts.details[-1] == "not counted in the period (count-based policy): F"
    book.post(Count("n1", dt.date(2026, 1, 30), "F", D(11)))
    (counts,) = [c for c in reports.checklist(book, "2026-01") if "counts" in c.check]
    assert counts.status == "warn"  # M still waits for stock
