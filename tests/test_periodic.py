"""The count-based variants ``count`` and ``cogs-first`` (issue 4, item 3), checked against
figures worked by hand on examples/count_periodic.yaml and examples/cogs_first.yaml (the same
plant and events; the books differ only in ``triggers``).

The plant, USD, no scrap factors:

* PART 2.00, BOARD 5.00 (materials);
* SUB (subassembly) = 1 BOARD + 2 PART, conversion labor 1.00, overhead 2.00:
  material 5.00 + 4.00 = 9.00, standard 12.00;
* GADGET (finished) = 1 SUB + 1 PART, conversion labor 4.00, overhead 6.00:
  material content 9.00 + 2.00 = 11.00, labor 1.00 + 4.00 = 5.00, overhead 2.00 + 6.00 = 8.00,
  standard 24.00.

January (no opening inventories):
  purchases PART 1,000 @ 2.10 (std 2,000.00, PPV 100.00 U), BOARD 300 @ 4.90 (std 1,500.00,
  PPV 30.00 F); conversion labor 1,500.00, overhead 2,500.00; SUB 250 made (BOARD -250,
  PART -500); GADGET 200 made (SUB -200, PART -200); 150 GADGET sold @ 40.00 (6,000.00);
  PART counted 290 (book 1,000 - 500 - 200 = 300: 10 lost).
  On hand at the end: PART 290, BOARD 50, SUB 50, GADGET 50.
  Ending inventory at standard:
    FG  material 50 x 11 = 550.00, labor 50 x 5 = 250.00, overhead 50 x 8 = 400.00;
    RIP material PART 290 x 2 = 580.00 + BOARD 50 x 5 = 250.00 + SUB 50 x 9 = 450.00
        = 1,280.00; SUB's estimates labor 50 x 1 = 50.00, overhead 50 x 2 = 100.00.
  RIP 1,280 + 150 = 1,430.00; FG 550 + 650 = 1,200.00.
  Actual costs 2,100 + 1,470 + 4,000 = 7,570.00 = RIP 1,430 + FG 1,200 + COGS 4,940.
  COGS 4,940.00 = standard of the 150 sold 3,600 + conversion not absorbed (4,000 actual -
  standard conversion of output: SUB 250 x 3 = 750, GADGET 200 x 10 = 2,000) 1,250 + the 10
  PART lost 20 + PPV 70. Gross margin 6,000 - 4,940 = 1,060.00.

February (opening RIP 1,430.00 and FG 1,200.00, conversion estimates included):
  purchases PART 400 @ 2.00 (800.00), BOARD 100 @ 5.20 (std 500.00, PPV 20.00 U); conversion
  labor 900.00, overhead 1,400.00; SUB 120 made (BOARD 150 -> 30, PART 690 -> 450); GADGET 150
  made (SUB 170 -> 20, PART 450 -> 300); 180 GADGET sold @ 40.00 (7,200.00); BOARD counted 28
  (2 lost), SUB counted 20 (as the book says).
  On hand at the end: PART 300, BOARD 28, SUB 20, GADGET 20.
  Ending inventory at standard:
    FG  material 20 x 11 = 220.00, labor 100.00, overhead 160.00;
    RIP material 300 x 2 + 28 x 5 + 20 x 9 = 600 + 140 + 180 = 920.00; labor 20.00,
        overhead 40.00.
  RIP 980.00; FG 480.00. Actual costs 4,890 + 6,300 = 11,190 = 980 + 480 + COGS 9,730.
  February's COGS 4,790.00 = standard sold 180 x 24 = 4,320 + conversion not absorbed
  (2,300 - 120 x 3 - 150 x 10 = 440) + 2 BOARD lost 10 + PPV 20. Gross margin 2,410.00.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from backflush.book import Book
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.engine.standards import Standards
from backflush.formats.inputs import InputError
from backflush.formats.scenario import Scenario, parse_scenario, read_scenario
from backflush.reports.document import document
from backflush.reports.standards import compare
from backflush.reports.tables import valuation
from backflush.run import run_scenario
from helpers import EXAMPLES

D = Decimal
A = m.Account
RIP, FG, COGS = A.RAW_IN_PROCESS, A.FINISHED_GOODS, A.COGS


def count_plant() -> Scenario:
    return read_scenario(EXAMPLES / "count_periodic.yaml")


def cogs_first_plant() -> Scenario:
    return read_scenario(EXAMPLES / "cogs_first.yaml")


def run_until(sc: Scenario, last: str) -> Book:
    events = []
    for event in sc.events:
        events.append(event)
        if event.id == last:
            break
    return run_scenario(Scenario(sc.settings, sc.master, tuple(events), sc.sources))


def entries_of(book: Book, event: str) -> list[tuple[str, list[tuple[str, str, Decimal]]]]:
    """(memo, lines as (account, element, signed amount)) of ``event``'s entries."""
    return [
        (e.memo, [(ln.account.value, ln.element, ln.amount) for ln in e.lines])
        for e in book.journal
        if e.event == event
    ]


def by_key(book: Book, *accounts: m.Account) -> dict[tuple[str, str], Decimal]:
    return {
        (a.value, e): v
        for (a, e), v in book.balances.items()
        if v and (not accounts or a in accounts)
    }


def assert_conserved(book: Book) -> None:
    """Actual costs incurred = RIP + FG + COGS + variances (nothing is off the books)."""
    b = book.account_balances()
    incurred = -b.get("accounts_payable", D(0)) - b.get("accrued_conversion", D(0))
    held = sum(
        (
            b.get(a.value, D(0))
            for a in (RIP, FG, COGS, A.PURCHASE_PRICE_VARIANCE, A.ROUNDING_VARIANCE)
        ),
        D(0),
    )
    assert incurred == held
    for entry in book.journal:
        assert sum(ln.amount for ln in entry.lines) == 0, entry


# ---------------------------------------------------------------- count


def test_count_receipts_go_to_rip_conversion_to_cogs_and_the_rest_moves_quantities_only() -> None:
    book = run_until(count_plant(), "jan-count-part")
    # PART 1,000 x 2.00 = 2,000.00 into RIP; paid 2,100.00: PPV 100.00 U.
    assert entries_of(book, "jan-part") == [
        (
            "purchase 1000 PART",
            [
                ("raw_in_process", "", D("2000.00")),
                ("accounts_payable", "", D("-2100.00")),
                ("purchase_price_variance", "", D("100.00")),
            ],
        )
    ]
    # Actual conversion charged to COGS as incurred, by element.
    assert entries_of(book, "jan-labor") == [
        (
            "conversion labor",
            [("cogs", "labor", D("1500.00")), ("accrued_conversion", "", D("-1500.00"))],
        )
    ]
    # Completions, counts: no entry; the sale posts its revenue only.
    for event in ("jan-sub", "jan-gadget", "jan-count-part"):
        assert entries_of(book, event) == []
    assert entries_of(book, "jan-sale") == [
        (
            "revenue 150 GADGET",
            [("accounts_receivable", "", D("6000.00")), ("sales", "", D("-6000.00"))],
        )
    ]
    # Quantities move all the same: PART 1,000 - 500 - 200 = 300, counted 290.
    assert book.on_hand == {"PART": D(290), "BOARD": D(50), "SUB": D(50), "GADGET": D(50)}
    # RIP holds the receipts at standard (2,000 + 1,500); FG nothing yet.
    assert by_key(book, RIP, FG) == {("raw_in_process", ""): D("3500.00")}
    assert_conserved(book)


def test_count_first_close_builds_the_opening_inventories() -> None:
    book = run_until(count_plant(), "jan-close")
    assert entries_of(book, "jan-close") == [
        # 1. FG holds no material yet: the 550.00 of the 50 GADGET on hand comes out of RIP.
        (
            "close 2026-01: material backflushed RIP -> FG",
            [("finished_goods", "", D("550.00")), ("raw_in_process", "", D("-550.00"))],
        ),
        # 2. RIP material 3,500 - 550 = 2,950; on hand in RIP 1,280.00: 1,670.00 was used
        #    (material of the 150 sold 150 x 11 = 1,650 + the 10 PART lost 20).
        (
            "close 2026-01: material used RIP -> COGS",
            [("cogs", "", D("1670.00")), ("raw_in_process", "", D("-1670.00"))],
        ),
        # 3. No estimates to reset (a first period). 4. The new estimates: FG labor 250,
        #    overhead 400; RIP (SUB) labor 50, overhead 100; out of COGS labor 300, overhead 500.
        (
            "close 2026-01: conversion estimates inventoried out of COGS",
            [
                ("finished_goods", "labor", D("250.00")),
                ("finished_goods", "overhead", D("400.00")),
                ("raw_in_process", "labor", D("50.00")),
                ("raw_in_process", "overhead", D("100.00")),
                ("cogs", "labor", D("-300.00")),
                ("cogs", "overhead", D("-500.00")),
            ],
        ),
        # Disposal (cogs): PPV 100 - 30 = 70.00 U.
        (
            "close 2026-01: dispose variances (cogs)",
            [("purchase_price_variance", "", D("-70.00")), ("cogs", "", D("70.00"))],
        ),
    ]
    assert by_key(book, RIP, FG) == {
        ("raw_in_process", ""): D("1280.00"),
        ("raw_in_process", "labor"): D("50.00"),
        ("raw_in_process", "overhead"): D("100.00"),
        ("finished_goods", ""): D("550.00"),
        ("finished_goods", "labor"): D("250.00"),
        ("finished_goods", "overhead"): D("400.00"),
    }
    # COGS 1,500 + 2,500 + 1,670 - 300 - 500 + 70 = 4,940.00.
    assert book.account_balances()["cogs"] == D("4940.00")
    assert book.periodic_difference() == 0  # right after a close: at quantities x standard
    assert_conserved(book)


def test_count_second_period_opens_with_inventories_and_resets_the_estimates() -> None:
    sc = count_plant()
    before = run_until(sc, "feb-count-sub")
    # Receipts at standard join the opening RIP: 1,430 + 800 + 500 = 2,730.00; FG unchanged.
    assert before.account_balances()["raw_in_process"] == D("2730.00")
    assert before.account_balances()["finished_goods"] == D("1200.00")
    # Between closes the books are not at quantities x standard: the stock is worth
    # 600 + 140 + 240 + 480 = 1,460.00 at standard, RIP + FG hold 3,930.00; the close
    # will take 2,470.00 out of them (1,990 used + 800 reset - 320 new estimates).
    assert before.periodic_difference() == D("-2470.00")
    assert document(before)["periodic_difference"] == "-2470.00"
    assert sum(r.on_books for r in valuation(before)) == D("1460.00")

    book = run_scenario(sc)
    assert entries_of(book, "feb-close") == [
        # 1. FG should hold 20 x 11 = 220.00 of material and holds 550.00: 330.00 back to RIP.
        (
            "close 2026-02: material backflushed RIP -> FG",
            [("finished_goods", "", D("-330.00")), ("raw_in_process", "", D("330.00"))],
        ),
        # 2. RIP material 1,280 + 1,300 + 330 = 2,910; on hand in RIP 920.00: 1,990.00 used
        #    (180 sold x 11 = 1,980 + 2 BOARD lost 10).
        (
            "close 2026-02: material used RIP -> COGS",
            [("cogs", "", D("1990.00")), ("raw_in_process", "", D("-1990.00"))],
        ),
        # 3. January's estimates reset against COGS.
        (
            "close 2026-02: conversion estimates of the last close reset against COGS",
            [
                ("finished_goods", "labor", D("-250.00")),
                ("finished_goods", "overhead", D("-400.00")),
                ("raw_in_process", "labor", D("-50.00")),
                ("raw_in_process", "overhead", D("-100.00")),
                ("cogs", "labor", D("300.00")),
                ("cogs", "overhead", D("500.00")),
            ],
        ),
        # 4. February's: FG 20 x 5 = 100, 20 x 8 = 160; SUB 20 x 1 = 20, 20 x 2 = 40.
        (
            "close 2026-02: conversion estimates inventoried out of COGS",
            [
                ("finished_goods", "labor", D("100.00")),
                ("finished_goods", "overhead", D("160.00")),
                ("raw_in_process", "labor", D("20.00")),
                ("raw_in_process", "overhead", D("40.00")),
                ("cogs", "labor", D("-120.00")),
                ("cogs", "overhead", D("-200.00")),
            ],
        ),
        (
            "close 2026-02: dispose variances (cogs)",
            [("purchase_price_variance", "", D("-20.00")), ("cogs", "", D("20.00"))],
        ),
    ]
    assert by_key(book, RIP, FG) == {
        ("raw_in_process", ""): D("920.00"),
        ("raw_in_process", "labor"): D("20.00"),
        ("raw_in_process", "overhead"): D("40.00"),
        ("finished_goods", ""): D("220.00"),
        ("finished_goods", "labor"): D("100.00"),
        ("finished_goods", "overhead"): D("160.00"),
    }
    balances = book.account_balances()
    # 4,940 + 900 + 1,400 + 1,990 + 800 - 320 + 20 = 9,730.00
    assert balances["cogs"] == D("9730.00")
    assert balances["raw_in_process"] == D("980.00")
    assert balances["finished_goods"] == D("480.00")
    assert book.periodic_difference() == 0
    assert book.off_book() == {}
    for account in ("conversion_control", "conversion_allocated", "material_usage_variance"):
        assert account not in balances
    assert_conserved(book)


# ---------------------------------------------------------------- cogs-first


def test_cogs_first_charges_every_cost_to_cogs_and_backflushes_inventories_at_close() -> None:
    book = run_until(cogs_first_plant(), "jan-close")
    # Purchases to COGS at standard, the price difference to PPV.
    assert entries_of(book, "jan-board") == [
        (
            "purchase 300 BOARD",
            [
                ("cogs", "", D("1500.00")),
                ("accounts_payable", "", D("-1470.00")),
                ("purchase_price_variance", "", D("-30.00")),
            ],
        )
    ]
    # January: nothing inventoried yet; the ending inventory (as under count) comes out of
    # COGS: material 1,280 + 550 = 1,830, labor 300, overhead 500.
    assert entries_of(book, "jan-close")[0] == (
        "close 2026-01: inventories backflushed from COGS (counts at standard)",
        [
            ("finished_goods", "", D("550.00")),
            ("finished_goods", "labor", D("250.00")),
            ("finished_goods", "overhead", D("400.00")),
            ("raw_in_process", "", D("1280.00")),
            ("raw_in_process", "labor", D("50.00")),
            ("raw_in_process", "overhead", D("100.00")),
            ("cogs", "", D("-1830.00")),
            ("cogs", "labor", D("-300.00")),
            ("cogs", "overhead", D("-500.00")),
        ],
    )
    # COGS 2,000 + 1,500 + 1,500 + 2,500 - 2,630 + PPV 70 = 4,940.00, as under count.
    assert book.account_balances()["cogs"] == D("4940.00")
    assert_conserved(book)

    book = run_scenario(cogs_first_plant())
    # February: each part moves by its change from what January inventoried:
    # FG 220 - 550 = -330, 100 - 250 = -150, 160 - 400 = -240;
    # RIP 920 - 1,280 = -360, 20 - 50 = -30, 40 - 100 = -60; back to COGS 690, 180, 300.
    assert entries_of(book, "feb-close")[0] == (
        "close 2026-02: inventories backflushed from COGS (counts at standard)",
        [
            ("finished_goods", "", D("-330.00")),
            ("finished_goods", "labor", D("-150.00")),
            ("finished_goods", "overhead", D("-240.00")),
            ("raw_in_process", "", D("-360.00")),
            ("raw_in_process", "labor", D("-30.00")),
            ("raw_in_process", "overhead", D("-60.00")),
            ("cogs", "", D("690.00")),
            ("cogs", "labor", D("180.00")),
            ("cogs", "overhead", D("300.00")),
        ],
    )
    # COGS 4,940 + 1,300 + 2,300 + 1,170 + PPV 20 = 9,730.00.
    assert book.account_balances()["cogs"] == D("9730.00")
    assert_conserved(book)


def test_cogs_first_between_closes_reports_what_the_close_will_move() -> None:
    book = run_until(cogs_first_plant(), "feb-count-sub")
    # RIP and FG hold January's 1,430 + 1,200 = 2,630.00; the stock is worth 1,460.00.
    assert book.account_balances()["raw_in_process"] == D("1430.00")
    assert book.periodic_difference() == D("-1170.00")


def test_count_and_cogs_first_end_every_period_with_the_same_balances() -> None:
    count, first = run_scenario(count_plant()), run_scenario(cogs_first_plant())
    for period in ("2026-01", "2026-02"):
        assert count.closed[period].balances == first.closed[period].balances
        assert count.closed[period].variances == first.closed[period].variances
    assert by_key(count) == by_key(first)


# ---------------------------------------------------------------- standards, refusals


def test_a_change_of_standards_revalues_nothing_between_closes_and_the_close_uses_the_new() -> None:
    """PART goes from 2.00 to 3.00 on 2026-02-01 (a cost set): SUB 5 + 2 x 3 = 11.00 material,
    14.00 standard; GADGET material 11 + 3 = 14.00, standard 27.00."""
    sc = count_plant()
    january = [e for e in sc.events if e.date <= dt.date(2026, 1, 31)]
    feb = m.CostSet("feb", materials=(("PART", D("3.00")),), effective=dt.date(2026, 2, 1))
    master = dataclasses.replace(sc.master, cost_sets={"feb": feb})
    events = [
        *january,
        m.Purchase("feb-part", dt.date(2026, 2, 3), "PART", D(100), D("3.00")),
        m.Close("feb-close", dt.date(2026, 2, 28), "2026-02"),
    ]
    book = Book(sc.settings, master)
    book.post_many(events[:-1])
    # The standards moved on; nothing was revalued (RIP 1,430 + 300 received; FG 1,200).
    assert "revaluation-2026-02-01" in book.recorded
    assert entries_of(book, "revaluation-2026-02-01") == []
    assert book.account_balances()["raw_in_process"] == D("1730.00")
    # At the new standards the stock is worth PART 390 x 3 = 1,170 + BOARD 250 + SUB
    # 50 x 14 = 700 + GADGET 50 x 27 = 1,350 = 3,470.00: 540.00 more than RIP + FG hold.
    assert book.periodic_difference() == D("540.00")
    book.post(events[-1])
    memo_lines = dict(entries_of(book, "feb-close"))
    # FG material 50 x 14 = 700 - 550 = 150 out of RIP; RIP material 1,280 + 300 - 150 =
    # 1,430 against 390 x 3 + 250 + 50 x 11 = 1,970: 540.00 back out of COGS (the new
    # standard on the stock carried over: PART 290 x 1 + SUB 50 x 2 + GADGET 50 x 3).
    assert memo_lines["close 2026-02: material backflushed RIP -> FG"] == [
        ("finished_goods", "", D("150.00")),
        ("raw_in_process", "", D("-150.00")),
    ]
    assert memo_lines["close 2026-02: material used RIP -> COGS"] == [
        ("cogs", "", D("-540.00")),
        ("raw_in_process", "", D("540.00")),
    ]
    balances = book.account_balances()
    assert balances["raw_in_process"] == D("2120.00")  # 1,970 + 50 + 100
    assert balances["finished_goods"] == D("1350.00")  # 700 + 250 + 400
    assert "revaluation_variance" not in balances
    assert book.periodic_difference() == 0
    assert_conserved(book)


SCENARIO = """
book: {name: Periodic, triggers: TRIGGERS}
items:
  - {id: PART, kind: material, standard_cost: "2.00"ITEM}
  - {id: GADGET, kind: finished, standard_cost: {conversion: "1.00"}}
boms:
  - {item: GADGET, lines: [{component: PART, quantity: "1"}]}
events: []
"""


@pytest.mark.parametrize(
    ("book", "item", "expected"),
    [
        (
            "purchase+completion",
            "count",
            "plant.yaml:4: item PART: triggers: count is a periodic method for the whole book, not "
            "for one item: set it as book: triggers: count",
        ),
        (
            "cogs-first",
            "cogs-first",
            "triggers: cogs-first is a periodic method for the whole book, not for one item",
        ),
        (
            "count",
            "purchase+sale",
            "triggers: the book's count is a periodic method for the whole book; an item "
            "cannot override it (got purchase+sale)",
        ),
    ],
)
def test_the_periodic_methods_are_refused_per_item(book: str, item: str, expected: str) -> None:
    text = SCENARIO.replace("TRIGGERS", book).replace("ITEM", f", triggers: {item}")
    with pytest.raises(InputError) as refused:
        parse_scenario(text, "plant.yaml")
    assert any(expected in problem for problem in refused.value.problems), refused.value.problems


def test_a_periodic_book_without_overrides_is_accepted() -> None:
    for triggers in ("count", "cogs-first"):
        sc = parse_scenario(SCENARIO.replace("TRIGGERS", triggers).replace("ITEM", ""))
        assert sc.settings.triggers is m.Policy(triggers)
        assert Book(sc.settings, sc.master).standards.policy("PART") is m.Policy(triggers)


def test_the_standards_compare_previews_no_revaluation_for_a_periodic_book() -> None:
    """PART 2.00 -> 3.00 on the 290 PART, 50 SUB and 50 GADGET left at January's close: the
    revaluation at quantity x difference is 290 + 100 + 150 = 540.00, as information; the book
    posts none of it (the next close values its counts at the new standards)."""
    sc = count_plant()
    book = run_until(sc, "jan-close")
    what_if = m.CostSet("what-if", materials=(("PART", D("3.00")),))
    compared = compare(
        book.standards,
        Standards(sc.settings, sc.master, what_if),
        dt.date(2026, 2, 1),
        book.on_hand,
    )
    assert compared.revaluation == D("540.00")
    assert compared.posted == 0


def test_negating_a_close_restores_what_the_next_close_starts_from() -> None:
    """What a reopen does to a periodic close: its entries negated, the period open again.
    The close keeps no state but balances, so closing again posts the same entries."""
    book = run_scenario(count_plant())
    first = entries_of(book, "feb-close")
    for entry in [e for e in book.journal if e.event == "feb-close"]:
        lines = tuple(dataclasses.replace(ln, amount=-ln.amount) for ln in entry.lines)
        book._post_entry(dataclasses.replace(entry, event="reopen", lines=lines), None)
    del book.closed["2026-02"]
    assert book.account_balances()["raw_in_process"] == D("2730.00")  # as before the close
    assert book.account_balances()["finished_goods"] == D("1200.00")
    book.post(m.Close("feb-close-again", dt.date(2026, 2, 28), "2026-02"))
    assert entries_of(book, "feb-close-again") == first


def test_standards_that_cannot_value_the_stock_are_refused_before_anything_changes() -> None:
    """GADGET's BOM ends on 2026-01-31 with no next version: the 50 GADGET left at January's
    close have no standard in February, so the first February event is refused, as it is
    under the other policies, and the book is left as it was."""
    sc = count_plant()
    end = dt.date(2026, 1, 31)
    ended = tuple(dataclasses.replace(b, effective_to=end) for b in sc.master.boms["GADGET"])
    master = dataclasses.replace(sc.master, boms={**sc.master.boms, "GADGET": ended})
    book = Book(sc.settings, master)
    book.post_many([e for e in sc.events if e.date <= dt.date(2026, 1, 31)])
    balances, epoch = dict(book.balances), book.epoch
    with pytest.raises(PostingError, match="GADGET"):
        book.post(m.Purchase("feb-part", dt.date(2026, 2, 3), "PART", D(1), D("2.00")))
    assert book.balances == balances
    assert book.epoch == epoch
    assert not any(i.startswith("revaluation-") for i in book.recorded)


CUT_OFF = """
book: {name: Cut-off, triggers: count}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
cost_sets:
  - {name: feb, effective: 2026-02-01, materials: {M: "3.00"}}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "10", unit_cost: "2.00"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "4"}
"""


@pytest.mark.parametrize("february_first", [False, True])
def test_a_periodic_close_values_stock_at_the_standards_of_its_period_end(
    february_first: bool,
) -> None:
    """January is valued at January's standards (M 2.00) even when a February event, under
    the standards released on 1 February (M 3.00), was posted before January's close:
    RIP 6 M x 2.00 = 12.00; FG 4 F: material 8.00 from RIP, labor estimate 4.00 out of COGS."""
    close = "  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}\n"
    february = (
        '  - {id: p2, date: 2026-02-05, type: purchase, item: M, quantity: "1", '
        'unit_cost: "3.00"}\n'
    )
    events = february + close if february_first else close + february
    book = run_scenario(parse_scenario(CUT_OFF + events))
    assert dict(book.closed["2026-01"].balances) == {
        "accounts_payable": Decimal("-20.00"),
        "cogs": Decimal("-4.00"),
        "finished_goods": Decimal("12.00"),
        "raw_in_process": Decimal("12.00"),
    }


WAITING = """
book: {{name: Waiting, currency: USD, triggers: {policy}, disposition: cogs, shortage: {shortage}}}
items:
  - {{id: M, kind: material, standard_cost: "2.00"}}
  - {{id: F, kind: finished, standard_cost: {{conversion: {{labor: "1.00"}}}}}}
boms:
  - {{item: F, lines: [{{component: M, quantity: "2"}}]}}
events:
  - {{id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "2", unit_cost: "2.00"}}
  - {{id: c1, date: 2026-01-10, type: completion, item: F, quantity: "2"}}
  - {{id: close-jan, date: 2026-01-31, type: close, period: 2026-01}}
  - {{id: p2, date: 2026-02-03, type: purchase, item: M, quantity: "2", unit_cost: "2.00"}}
  - {{id: close-feb, date: 2026-02-28, type: close, period: 2026-02}}
"""


@pytest.mark.parametrize(
    ("policy", "shortage"),
    [
        ("count", "queue"),
        ("cogs-first", "queue"),
        ("count", "allow"),
        ("purchase+completion", "queue"),
    ],
)
def test_a_periodic_close_values_consumption_waiting_for_stock_as_negative_stock(
    policy: str, shortage: str
) -> None:
    """2 M bought (4.00), 2 F made of 4 M: 2 M wait for stock. By hand: FG 2 x 5.00 = 10.00,
    RIP -2 x 2.00 = -4.00 (the material the goods hold, not bought yet), the labor allocated
    (2.00) against none incurred to COGS: January's COGS -2.00, as a perpetual book and a
    periodic one under ``shortage: allow`` have it, whatever the shortage policy. February's
    purchase clears the queue: RIP 0.00, nothing to COGS."""
    text = WAITING.format(policy=policy, shortage=shortage)
    book = run_until(parse_scenario(text), "close-jan")
    held = by_key(book, m.Account.RAW_IN_PROCESS, m.Account.FINISHED_GOODS)
    assert sum(v for (a, _), v in held.items() if a == "raw_in_process") == Decimal("-4.00")
    assert sum(v for (a, _), v in held.items() if a == "finished_goods") == Decimal("10.00")
    assert book.account_balances()["cogs"] == Decimal("-2.00")
    assert book.periodic_difference() == 0
    assert_conserved(book)
    book = run_until(parse_scenario(text), "close-feb")
    held = by_key(book, m.Account.RAW_IN_PROCESS, m.Account.FINISHED_GOODS)
    assert sum(v for (a, _), v in held.items() if a == "raw_in_process") == 0
    assert book.account_balances()["cogs"] == Decimal("-2.00")  # February: nothing


@pytest.mark.parametrize("policy", ["count", "purchase+completion"])
def test_the_nrv_writedown_at_a_close_is_of_the_units_the_close_values(policy: str) -> None:
    """A February completion waits for M; a purchase dated in January then clears it (its
    consumption stays February's). At January's close RIP holds the 10 units bought (20.00),
    so the write-down to an NRV of 1.00 is of 10 units (10.00), not of the 6 left after the
    consumption was taken from stock."""
    text = (
        WAITING.format(policy=policy, shortage="queue").split("events:")[0]
        + """events:
  - {id: c1, date: 2026-02-10, type: completion, item: F, quantity: "2"}
  - {id: p1, date: 2026-01-20, type: purchase, item: M, quantity: "10", unit_cost: "2.00"}
  - {id: n1, date: 2026-01-25, type: nrv, item: M, unit_value: "1.00"}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
"""
    )
    book = run_scenario(parse_scenario(text))
    finding = book.nrv_findings("2026-01")["M"]
    assert (finding.quantity, finding.allowance) == (Decimal(10), Decimal("10.00"))
    assert book.balances_through("2026-01")[(m.Account.RAW_IN_PROCESS, "")] == Decimal("20.00")
