"""Each trigger policy on one small plant, checked against figures computed by hand.

The gadget plant: FG = 3 M1 + 1 SUB + 1 PH (phantom of 2 M3); SUB = 4 M2 with 5% scrap.
Standards: M1 2.00, M2 0.50, M3 1.25; SUB = 4.2 x 0.50 = 2.10 material + 1.00 labor = 3.10;
FG material = 6.00 + 3.10 + 2.50 = 11.60, conversion labor 2.00 + overhead 3.00: 16.60.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from backflush.book import Book
from backflush.domain.model import Account
from backflush.engine.flush import PostingError
from backflush.formats.scenario import parse_scenario
from backflush.reports.tables import valuation
from backflush.run import run_scenario

GADGET = """
book: {{name: Gadgets, currency: USD, triggers: {policy}, disposition: cogs,
       shortage: queue, inventory_unsold_conversion: {unsold}}}
items:
  - {{id: M1, kind: material, standard_cost: "2.00"}}
  - {{id: M2, kind: material, standard_cost: "0.50"}}
  - {{id: M3, kind: material, standard_cost: "1.25"}}
  - {{id: PH, kind: phantom}}
  - {{id: SUB, kind: subassembly, standard_cost: {{conversion: {{labor: "1.00"}}}}}}
  - {{id: FG, kind: finished, standard_cost: {{conversion: {{labor: "2.00", overhead: "3.00"}}}}}}
boms:
  - {{item: PH, lines: [{{component: M3, quantity: 2}}]}}
  - {{item: SUB, lines: [{{component: M2, quantity: 4, scrap: 0.05}}]}}
  - {{item: FG, lines: [{{component: M1, quantity: 3}}, {{component: SUB, quantity: 1}},
                      {{component: PH, quantity: 1}}]}}
events:
  - {{id: p1, date: 2026-01-02, type: purchase, item: M1, quantity: 100, unit_cost: "2.10"}}
  - {{id: p2, date: 2026-01-02, type: purchase, item: M2, quantity: 100, unit_cost: "0.50"}}
  - {{id: p3, date: 2026-01-02, type: purchase, item: M3, quantity: 50, unit_cost: "1.20"}}
  - {{id: sub, date: 2026-01-10, type: completion, item: SUB, quantity: 20}}
  - {{id: lab, date: 2026-01-31, type: conversion, amount: "100.00", element: labor}}
  - {{id: ovh, date: 2026-01-31, type: conversion, amount: "40.00", element: overhead}}
  - {{id: fg, date: 2026-01-20, type: completion, item: FG, quantity: 10, scrapped: 1}}
  - {{id: sold, date: 2026-01-25, type: sale, item: FG, quantity: 8, unit_price: "25.00"}}
  - {{id: close, date: 2026-01-31, type: close, period: 2026-01}}
"""


def gadget(policy: str, unsold: bool = False) -> Book:
    text = GADGET.format(policy=policy, unsold=str(unsold).lower())
    return run_scenario(parse_scenario(text, "gadget.yaml"))


def balance(book: Book, account: Account) -> Decimal:
    return sum((v for (a, _), v in book.balances.items() if a is account), Decimal(0))


def variances(book: Book) -> dict[str, Decimal]:
    return dict(book.closed["2026-01"].variances)


QUANTITIES = {"M1": 67, "M2": 16, "M3": 28, "SUB": 9, "FG": 2}


def test_standards_roll_up_through_subassembly_phantom_and_scrap() -> None:
    book = gadget("purchase+completion")
    fg = book.standards.unit_cost("FG", dt.date(2026, 1, 1))
    assert fg.material == Decimal("11.60")
    assert dict(fg.conversion) == {"labor": Decimal("2.00"), "overhead": Decimal("3.00")}
    assert fg.total == Decimal("16.60")
    needs = {r.component: r.quantity for r in fg.requirements}
    assert needs == {"M1": 3, "SUB": 1, "M3": 2}  # the phantom is exploded, never stocked


def test_purchase_completion() -> None:
    book = gadget("purchase+completion")
    assert {k: book.quantity(k) for k in QUANTITIES} == QUANTITIES
    # Completion of 10 good + 1 scrapped: FG 166.00, scrapped material 10.60 to usage variance.
    fg_entry = next(e for e in book.journal if e.event == "fg")
    lines = {(ln.account, ln.element): ln.amount for ln in fg_entry.lines}
    assert lines[(Account.FINISHED_GOODS, "")] == Decimal("166.00")
    assert lines[(Account.MATERIAL_USAGE_VARIANCE, "")] == Decimal("10.60")
    assert lines[(Account.RAW_IN_PROCESS, "")] == Decimal("-116.60")
    assert lines[(Account.CONVERSION_ALLOCATED, "labor")] == Decimal("-30.00")  # 10 SUB + 20 FG
    assert lines[(Account.CONVERSION_ALLOCATED, "overhead")] == Decimal("-30.00")
    assert variances(book) == {
        "purchase_price": Decimal("7.50"),
        "material_usage": Decimal("10.60"),
        "conversion": Decimal("80.00"),
        "conversion:labor": Decimal("70.00"),
        "conversion:overhead": Decimal("10.00"),
    }
    # RIP holds raw stock at standard plus the subassemblies' material: 134 + 8 + 35 + 18.90.
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("195.90")
    assert balance(book, Account.FINISHED_GOODS) == Decimal("33.20")
    assert balance(book, Account.COGS) == Decimal("230.90")
    assert balance(book, Account.CONVERSION_CONTROL) == 0
    assert balance(book, Account.CONVERSION_ALLOCATED) == 0


def test_purchase_sale_keeps_only_material_in_stock() -> None:
    book = gadget("purchase+sale")
    assert {k: book.quantity(k) for k in QUANTITIES} == QUANTITIES
    assert balance(book, Account.FINISHED_GOODS) == 0
    # Unsold goods keep their material in RIP: 177.00 raw + 18.90 in SUB + 2 x 10.60 in FG.
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("217.10")
    assert variances(book)["conversion"] == Decimal("92.00")  # 140 - 8 x (3 labor + 3 overhead)
    assert balance(book, Account.COGS) == Decimal("242.90")
    assert book.off_book() == {"FG": Decimal("12.00"), "SUB": Decimal("9.00")}


def test_purchase_sale_with_unsold_conversion_inventoried_matches_variant_one() -> None:
    book = gadget("purchase+sale", unsold=True)
    # 2 unsold FG x 6.00 conversion are inventoried at close: the variance falls to 80.00 and
    # COGS is the same as under purchase+completion.
    assert balance(book, Account.FINISHED_GOODS) == Decimal("12.00")
    assert variances(book)["conversion"] == Decimal("80.00")
    assert balance(book, Account.COGS) == Decimal("230.90")


def test_completion_trigger_keeps_material_off_the_books_until_used() -> None:
    book = gadget("completion")
    assert balance(book, Account.RAW_IN_PROCESS) == 0
    assert balance(book, Account.PURCHASE_PRICE_VARIANCE) == 0
    # Payables recognised at standard for what completions used (106.00) and scrapped (10.60).
    assert balance(book, Account.ACCOUNTS_PAYABLE) == Decimal("-116.60")
    assert balance(book, Account.FINISHED_GOODS) == Decimal("33.20")
    assert balance(book, Account.COGS) == Decimal("223.40")  # 132.80 + 10.60 + 80.00
    found = variances(book)
    assert "purchase_price" in found and found["purchase_price"] == 0
    assert found["purchase_price_unrecorded"] == Decimal("7.50")  # reported, not posted
    # Stock held off the books at standard: 134 + 8 + 35 + SUB 9 x (2.10 material + 1.00 labor).
    assert sum(book.off_book().values()) == Decimal("204.90")


def test_sale_trigger() -> None:
    book = gadget("sale")
    assert balance(book, Account.FINISHED_GOODS) == 0
    assert balance(book, Account.RAW_IN_PROCESS) == 0
    assert balance(book, Account.ACCOUNTS_PAYABLE) == Decimal("-95.40")  # 84.80 sold + 10.60
    assert balance(book, Account.COGS) == Decimal("235.40")  # 132.80 + 10.60 + 92.00


def test_sequential_costing_goes_through_wip() -> None:
    book = gadget("sequential")
    assert balance(book, Account.WORK_IN_PROCESS) == 0
    # Materials hold raw stock (177.00) and the subassemblies at full standard (9 x 3.10).
    assert balance(book, Account.MATERIALS) == Decimal("204.90")
    assert balance(book, Account.FINISHED_GOODS) == Decimal("33.20")
    found = variances(book)
    assert found["material_usage"] == Decimal("11.60")  # the scrapped FG's full material
    assert found["conversion"] == Decimal("70.00")  # 140 - (20 on SUB + 50 on FG)
    assert balance(book, Account.COGS) == Decimal("221.90")
    # Every completion is three entries: issue to WIP, conversion applied, WIP to stock.
    assert [e.memo.split()[0] for e in book.journal if e.event == "fg"] == [
        "issue",
        "conversion",
        "completion",
    ]


def test_inventory_difference_between_variants_is_conversion_in_subassemblies() -> None:
    sequential, backflush = gadget("sequential"), gadget("purchase+completion")

    def inventory(book: Book) -> Decimal:
        return sum(
            (
                balance(book, a)
                for a in (Account.MATERIALS, Account.RAW_IN_PROCESS, Account.FINISHED_GOODS)
            ),
            Decimal(0),
        )

    assert inventory(sequential) - inventory(backflush) == 9 * Decimal("1.00")


SHORT = """
book: {{name: Short, currency: USD, triggers: purchase+completion, shortage: {shortage}}}
items:
  - {{id: M, kind: material, standard_cost: "1.00"}}
  - {{id: FG, kind: finished, standard_cost: {{conversion: "1.00"}}}}
boms:
  - {{item: FG, lines: [{{component: M, quantity: 2}}]}}
events:
  - {{id: buy, date: 2026-01-02, type: purchase, item: M, quantity: 5, unit_cost: "1.00"}}
  - {{id: make, date: 2026-01-03, type: completion, item: FG, quantity: 4}}
"""


def short_book(shortage: str) -> Book:
    return run_scenario(parse_scenario(SHORT.format(shortage=shortage)))


def test_queue_posts_the_completion_and_waits_for_stock() -> None:
    book = short_book("queue")
    assert book.quantity("M") == 0  # 5 taken, 3 wait
    assert book.quantity("FG") == 4
    (waiting,) = book.open_shortages()
    assert (waiting.event, waiting.item, waiting.open) == ("make", "M", 3)
    # Money was posted in full: RIP is short by the 3 units still owed.
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("-3.00")
    book.post(
        parse_scenario(
            SHORT.format(shortage="queue")
            + "  - {id: more, date: 2026-01-04, type: purchase, item: M, quantity: 10,"
            " unit_cost: 1}\n"
        ).events[-1]
    )
    assert book.open_shortages() == []
    assert book.quantity("M") == 7
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("7.00")
    assert book.cleared_by[("make", "M", "shortage")] == "more"


def test_allow_goes_negative_and_flags_it() -> None:
    book = short_book("allow")
    assert book.quantity("M") == -3
    (flag,) = book.shortages.values()
    assert flag.kind == "negative_stock"
    assert flag.quantity == 3


def test_reject_refuses_the_whole_completion() -> None:
    with pytest.raises(PostingError, match=r"event make: needs 8 of 'M' but only 5 is on hand"):
        short_book("reject")


def test_reversal_undoes_an_event_in_an_open_period() -> None:
    text = SHORT.format(shortage="queue") + (
        "  - {id: undo, date: 2026-01-05, type: reversal, reverses: make}\n"
    )
    book = run_scenario(parse_scenario(text))
    assert book.quantity("M") == 5
    assert book.quantity("FG") == 0
    assert book.open_shortages() == []  # the queued consumption never happened
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("5.00")
    assert balance(book, Account.FINISHED_GOODS) == 0
    assert balance(book, Account.CONVERSION_ALLOCATED) == 0
    with pytest.raises(PostingError, match="already reversed by undo"):
        book.post(parse_scenario(text + "  - {id: again, date: 2026-01-06, type: reversal, "
                                 "reverses: make}\n").events[-1])  # fmt: skip


@pytest.mark.parametrize("day", ["2026-01-02", "2025-12-20"])
def test_a_reversal_dated_before_its_original_is_refused(day: str) -> None:
    """It would take back stock and value not yet there on its date (in an earlier period
    even, whose close would then hold half of a later event): refused, the book unchanged."""
    book = short_book("queue")
    before = (book.account_balances(), book.quantity("M"), book.quantity("FG"))
    undo = parse_scenario(
        SHORT.format(shortage="queue")
        + f"  - {{id: undo, date: {day}, type: reversal, reverses: make}}\n"
    ).events[-1]
    refused = rf"event undo: dated {day}, before event make \(2026-01-03\) that it reverses"
    with pytest.raises(PostingError, match=refused + "; date it on or after 2026-01-03"):
        book.post(undo)
    assert (book.account_balances(), book.quantity("M"), book.quantity("FG")) == before
    assert book.post(dataclasses.replace(undo, date=dt.date(2026, 1, 3)))  # the same day: taken


def test_rounding_residue_goes_to_the_rounding_variance() -> None:
    text = """
book: {name: Pennies, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "0.333"}
  - {id: FG, kind: finished, standard_cost: {conversion: "0.333"}}
boms:
  - {item: FG, lines: [{component: M, quantity: 1}]}
events:
  - {id: buy, date: 2026-01-02, type: purchase, item: M, quantity: 1, unit_cost: "0.333"}
  - {id: make, date: 2026-01-03, type: completion, item: FG, quantity: 1}
"""
    book = run_scenario(parse_scenario(text))
    (entry,) = [e for e in book.journal if e.event == "make"]
    lines = {ln.account: ln.amount for ln in entry.lines}
    # 0.666 -> 0.67 debit; 0.333 -> 0.33 twice in credits; the cent left goes to rounding.
    assert lines == {
        Account.RAW_IN_PROCESS: Decimal("-0.33"),
        Account.CONVERSION_ALLOCATED: Decimal("-0.33"),
        Account.FINISHED_GOODS: Decimal("0.67"),
        Account.ROUNDING_VARIANCE: Decimal("-0.01"),
    }


def test_per_item_override_keeps_a_consigned_material_off_the_books() -> None:
    text = """
book: {name: Mixed, currency: USD, triggers: purchase+completion}
items:
  - {id: OWN, kind: material, standard_cost: "1.00"}
  - {id: CONSIGNED, kind: material, standard_cost: "2.00", triggers: completion}
  - {id: FG, kind: finished, standard_cost: {conversion: "0.50"}}
boms:
  - {item: FG, lines: [{component: OWN, quantity: 1}, {component: CONSIGNED, quantity: 1}]}
events:
  - {date: 2026-01-02, type: purchase, item: OWN, quantity: 10, unit_cost: "1.00"}
  - {date: 2026-01-02, type: purchase, item: CONSIGNED, quantity: 10, unit_cost: "2.20"}
  - {date: 2026-01-03, type: completion, item: FG, quantity: 4}
"""
    book = run_scenario(parse_scenario(text))
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("6.00")  # 10 bought - 4 used
    assert balance(book, Account.FINISHED_GOODS) == Decimal("14.00")  # 4 x 3.50
    assert balance(book, Account.ACCOUNTS_PAYABLE) == Decimal("-18.00")  # 10.00 + 4 x 2.00
    assert book.off_book() == {"CONSIGNED": Decimal("12.00")}


def test_closed_period_refuses_postings_and_periods_close_in_order() -> None:
    book = gadget("purchase+completion")
    late = parse_scenario(
        GADGET.format(policy="purchase+completion", unsold="false")
        + "  - {id: late, date: 2026-01-31, type: sale, item: FG, quantity: 1}\n"
        + "  - {id: mar, date: 2026-03-31, type: close, period: 2026-03}\n"
    ).events
    with pytest.raises(PostingError, match="period 2026-01, which is closed"):
        book.post(late[-2])
    with pytest.raises(PostingError, match="2026-02 is still open; close periods in order"):
        book.post(late[-1])


def test_disposition_keep_leaves_variances_as_separate_lines() -> None:
    book = run_scenario(
        parse_scenario(
            GADGET.format(policy="purchase+completion", unsold="false").replace(
                "disposition: cogs", "disposition: keep"
            )
        )
    )
    assert balance(book, Account.COGS) == Decimal("132.80")  # standard cost of 8 sold only
    assert balance(book, Account.PURCHASE_PRICE_VARIANCE) == Decimal("7.50")
    assert balance(book, Account.MATERIAL_USAGE_VARIANCE) == Decimal("10.60")
    assert balance(book, Account.CONVERSION_CONTROL) == 0
    assert balance(book, Account.CONVERSION_ALLOCATED) == 0
    by_element = {e: v for (a, e), v in book.balances.items() if a is Account.CONVERSION_VARIANCE}
    assert by_element == {"labor": Decimal("70.00"), "overhead": Decimal("10.00")}


def test_disposition_none_leaves_control_and_allocated_open() -> None:
    book = run_scenario(
        parse_scenario(
            GADGET.format(policy="purchase+completion", unsold="false").replace(
                "disposition: cogs", "disposition: none"
            )
        )
    )
    assert balance(book, Account.CONVERSION_CONTROL) == Decimal("140.00")
    assert balance(book, Account.CONVERSION_ALLOCATED) == Decimal("-60.00")
    assert balance(book, Account.COGS) == Decimal("132.80")
    assert variances(book)["conversion"] == Decimal("80.00")
    assert "2026-01" in book.closed


def test_a_completion_uses_the_bom_versions_effective_on_its_date_at_every_level() -> None:
    text = """
book: {name: Versions, currency: USD}
items:
  - {id: A, kind: material, standard_cost: "1.00"}
  - {id: B, kind: material, standard_cost: "5.00"}
  - {id: SUB, kind: subassembly}
  - {id: FG, kind: finished, standard_cost: {conversion: "1.00"}}
boms:
  - {item: FG, lines: [{component: SUB, quantity: 1}]}
  - {item: SUB, lines: [{component: A, quantity: 1}]}
  - {item: SUB, effective_from: 2026-02-01, lines: [{component: B, quantity: 1}]}
events: []
"""
    book = run_scenario(parse_scenario(text))
    # Only the subassembly's BOM changed; the finished good's standard follows it.
    assert book.standards.unit_cost("FG", dt.date(2026, 1, 31)).total == Decimal("2.00")
    assert book.standards.unit_cost("FG", dt.date(2026, 2, 1)).total == Decimal("6.00")
    assert book.standards.unit_cost("FG", dt.date(2026, 1, 15)).total == Decimal("2.00")


REVALUED = """
book: {{name: Revalued, currency: USD, triggers: {policy}}}
items:
  - {{id: CHIP, kind: material, standard_cost: "1.00"}}
  - {{id: FG, kind: finished, standard_cost: {{conversion: "5.00"}}}}
boms:
  - {{item: FG, lines: [{{component: CHIP, quantity: 1}}]}}
  - {{item: FG, effective_from: 2026-02-01, lines: [{{component: CHIP, quantity: 2}}]}}
events:
  - {{id: buy, date: 2026-01-05, type: purchase, item: CHIP, quantity: 100, unit_cost: "1.00"}}
  - {{id: make, date: 2026-01-20, type: completion, item: FG, quantity: 10}}
  - {{id: sell, date: 2026-02-10, type: sale, item: FG, quantity: 10}}
"""


def test_a_new_bom_version_revalues_finished_goods_on_hand() -> None:
    book = run_scenario(parse_scenario(REVALUED.format(policy="purchase+completion")))
    # 10 FG made at 6.00 are revalued to 7.00 before the February sale: 10.00 to revaluation,
    # dated when the new BOM took effect (the sale of 10 February adopted it).
    (entry,) = [e for e in book.journal if e.event == "revaluation-2026-02-01"]
    assert entry.date == dt.date(2026, 2, 1)
    lines = {ln.account: ln.amount for ln in entry.lines}
    assert lines == {
        Account.FINISHED_GOODS: Decimal("10.00"),
        Account.REVALUATION_VARIANCE: Decimal("-10.00"),
    }
    assert balance(book, Account.FINISHED_GOODS) == 0
    assert balance(book, Account.COGS) == Decimal("70.00")
    assert book.period_variances("2026-02")["revaluation"] == Decimal("-10.00")


def test_a_new_bom_version_leaves_raw_stock_alone_when_only_the_recipe_changed() -> None:
    book = run_scenario(parse_scenario(REVALUED.format(policy="purchase+sale")))
    # Under purchase+sale FG units keep their material in RIP: 10 x (2 - 1) chips more.
    assert balance(book, Account.REVALUATION_VARIANCE) == Decimal("-10.00")
    # 90 chips on hand stay at 1.00 each; the 10 FG sold took 2 chips' worth each.
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("90.00")


def test_an_event_dated_before_standards_already_applied_is_refused() -> None:
    book = run_scenario(parse_scenario(REVALUED.format(policy="purchase+completion")))
    late = parse_scenario(
        REVALUED.format(policy="purchase+completion")
        + "  - {id: back, date: 2026-01-25, type: completion, item: FG, quantity: 1}\n"
    ).events[-1]
    with pytest.raises(PostingError, match="before the standards effective 2026-02-01"):
        book.post(late)


COST_ROLL = """
book: {{name: Cost roll, currency: USD, triggers: {policy}}}
items:
  - {{id: CHIP, kind: material, standard_cost: "1.00"}}
  - {{id: FG, kind: finished, standard_cost: {{conversion: "5.00"}}}}
boms:
  - {{item: FG, lines: [{{component: CHIP, quantity: 2}}]}}
cost_sets:
  - {{name: feb, effective: 2026-02-01, materials: {{CHIP: "1.50"}}}}
events:
  - {{id: buy, date: 2026-01-05, type: purchase, item: CHIP, quantity: 100, unit_cost: "1.00"}}
  - {{id: close-jan, date: 2026-01-31, type: close, period: 2026-01}}
  - {{id: make, date: 2026-02-03, type: completion, item: FG, quantity: 10}}
  - {{id: reopen-jan, date: 2026-02-05, type: reopen, period: 2026-01, reason: late invoice}}
  - {{id: late, date: 2026-01-28, type: purchase, item: CHIP, quantity: 40, unit_cost: "1.10"}}
  - {{id: close-jan-2, date: 2026-01-31, type: close, period: 2026-01}}
  - {{id: close-feb, date: 2026-02-28, type: close, period: 2026-02}}
"""


def test_a_late_receipt_into_a_reopened_month_after_a_cost_roll() -> None:
    """CHIP went from 1.00 to 1.50 on February 1. January is reopened for a receipt of 40
    CHIP at 1.10 on the 28th: posted at January's standard (RIP 40.00, price variance 4.00, in
    January), its 40 units revalued on February 1 as the stock then was (RIP 20.00 against the
    revaluation variance, in February). Stock is then at today's standard: 120 CHIP and 10 FG
    (2 CHIP each) at 1.50, 180.00 + 10 x 3.00 + 10 x 5.00 in FG."""
    book = run_scenario(parse_scenario(COST_ROLL.format(policy="purchase+completion")))
    (purchase, revaluation) = [e for e in book.journal if e.event == "late"]
    assert (purchase.date, revaluation.date) == (dt.date(2026, 1, 28), dt.date(2026, 2, 1))
    assert {(ln.account, ln.amount) for ln in purchase.lines} == {
        (Account.RAW_IN_PROCESS, Decimal("40.00")),
        (Account.ACCOUNTS_PAYABLE, Decimal("-44.00")),
        (Account.PURCHASE_PRICE_VARIANCE, Decimal("4.00")),
    }
    assert {(ln.account, ln.amount, ln.item) for ln in revaluation.lines} == {
        (Account.RAW_IN_PROCESS, Decimal("20.00"), ""),
        (Account.REVALUATION_VARIANCE, Decimal("-20.00"), "CHIP"),
    }
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("180.00")  # 120 x 1.50
    assert balance(book, Account.FINISHED_GOODS) == Decimal("80.00")  # 10 x (3.00 + 5.00)
    assert book.period_variances("2026-01")["purchase_price"] == Decimal("4.00")
    # February's revaluation: the 100 CHIP on hand on the 1st and the 40, 140 x 0.50
    assert book.period_variances("2026-02")["revaluation"] == Decimal("-70.00")
    # the same as had the receipt come in time
    text = COST_ROLL.format(policy="purchase+completion")
    late = next(line for line in text.splitlines() if "{id: late," in line)
    first = "  - {id: close-jan,"
    in_time = run_scenario(
        parse_scenario(text.replace(late + "\n", "").replace(first, f"{late}\n{first}"))
    )
    assert [e.date for e in in_time.journal if e.event == "late"] == [dt.date(2026, 1, 28)]
    assert book.balances == in_time.balances
    assert book.period_variances("2026-02") == in_time.period_variances("2026-02")


@pytest.mark.parametrize("policy", ["completion", "sale", "count"])
def test_a_late_receipt_off_the_books_or_counted_is_not_revalued(policy: str) -> None:
    """Under the completion and sale triggers CHIP is off the books until used: nothing to
    revalue; but payables will be credited at 1.50 for what was bought at 1.00 (the 100) and
    1.10 (the 40, against 1.00 on its day): the price difference held off the books moves by
    140 x -0.50 on February 1 (else value went unaccounted for; found by the accountant's
    review). Under count the next close values the stock."""
    book = run_scenario(parse_scenario(COST_ROLL.format(policy=policy)))
    assert len([e for e in book.journal if e.event == "late"]) == (1 if policy == "count" else 0)
    assert book.on_hand["CHIP"] == Decimal("120")
    unrecorded = {p: s.get("purchase_price_unrecorded") for p, s in book.statistics.items()}
    if policy == "count":
        assert not any(unrecorded.values())
    else:
        assert unrecorded == {"2026-01": Decimal("4.00"), "2026-02": Decimal("-70.00")}


def test_purchase_rounding_goes_to_the_rounding_variance_not_ppv() -> None:
    text = """
book: {name: Pennies, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "0.005"}
events:
"""
    text += "".join(
        f"  - {{id: p{n}, date: 2026-01-02, type: purchase, item: M, quantity: 1,"
        f' unit_cost: "0.015"}}\n'
        for n in range(4)
    )
    book = run_scenario(parse_scenario(text))
    # Each: RIP 0.005 -> 0.00 (half-even), AP 0.015 -> 0.02, PPV 0.01: the 0.01 left is rounding.
    assert balance(book, Account.PURCHASE_PRICE_VARIANCE) == Decimal("0.04")
    assert balance(book, Account.ROUNDING_VARIANCE) == Decimal("0.04")
    assert balance(book, Account.ACCOUNTS_PAYABLE) == Decimal("-0.08")


def test_conversion_without_an_element_shows_as_unassigned() -> None:
    text = GADGET.format(policy="purchase+completion", unsold="false").replace(
        ", element: labor", ""
    )
    found = variances(run_scenario(parse_scenario(text)))
    assert found["conversion"] == Decimal("80.00")
    assert found["conversion:unassigned"] == Decimal("100.00")  # actual labor with no element
    assert found["conversion:labor"] == Decimal("-30.00")  # allocated, no actual given
    assert found["conversion:overhead"] == Decimal("10.00")


def test_unsold_conversion_is_inventoried_for_the_units_on_hand_at_the_period_end() -> None:
    text = """
book: {name: Late, currency: USD, triggers: purchase+sale, inventory_unsold_conversion: true}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
  - {id: FG, kind: finished, standard_cost: {conversion: "5.00"}}
boms:
  - {item: FG, lines: [{component: M, quantity: 1}]}
events:
  - {id: buy, date: 2026-01-02, type: purchase, item: M, quantity: 100, unit_cost: "1.00"}
  - {id: conv, date: 2026-01-31, type: conversion, amount: "50.00"}
  - {id: jan, date: 2026-01-20, type: completion, item: FG, quantity: 10}
  - {id: feb, date: 2026-02-03, type: completion, item: FG, quantity: 20}
  - {id: close, date: 2026-01-31, type: close, period: 2026-01}
"""
    book = run_scenario(parse_scenario(text))
    # Only the 10 units made in January were on hand at its end: 10 x 5.00 inventoried.
    assert balance(book, Account.FINISHED_GOODS) == Decimal("50.00")
    assert variances(book)["conversion"] == 0
    assert balance(book, Account.COGS) == 0


@pytest.mark.parametrize(
    "policy", ["purchase+completion", "purchase+sale", "completion", "sale", "sequential"]
)
def test_the_valuation_report_reconciles_with_the_inventory_accounts(policy: str) -> None:
    book = gadget(policy)
    on_books = sum((row.on_books for row in valuation(book)), Decimal(0))
    inventory = sum(
        (balance(book, a) for a in (Account.RAW_IN_PROCESS, Account.MATERIALS,
                                    Account.WORK_IN_PROCESS, Account.FINISHED_GOODS)),
        Decimal(0),
    )  # fmt: skip
    assert on_books == inventory
    off_books = sum((row.off_books for row in valuation(book)), Decimal(0))
    assert off_books == sum(book.off_book().values(), Decimal(0))


def test_a_completion_reversed_across_a_standards_change_is_revalued() -> None:
    """10 FG made in January at 6.00 (one CHIP at 1.00, 5.00 of conversion); from February
    FG takes two CHIP: 7.00. Undone on 10 February, after the new BOM revalued them to 70.00:
    the reversal takes back what the completion posted (Dr raw in process 10.00, Dr conversion
    allocated 50.00, Cr finished goods 60.00), then the 10 FG it takes out of stock from 6.00
    to 7.00 (Cr finished goods 10.00, Dr revaluation 10.00): no finished goods left, the 10
    CHIP back in stock, the revaluation variance back to nothing."""
    text = REVALUED.format(policy="purchase+completion").replace(
        "  - {id: sell, date: 2026-02-10, type: sale, item: FG, quantity: 10}\n",
        "  - {id: undo, date: 2026-02-10, type: reversal, reverses: make}\n",
    )
    book = run_scenario(parse_scenario(text))
    taken = [e for e in book.entries() if e.event == "undo"]
    assert [{(ln.account, ln.amount) for ln in e.lines} for e in taken] == [
        {
            (Account.RAW_IN_PROCESS, Decimal("10.00")),
            (Account.CONVERSION_ALLOCATED, Decimal("50.00")),
            (Account.FINISHED_GOODS, Decimal("-60.00")),
        },
        {
            (Account.FINISHED_GOODS, Decimal("-10.00")),
            (Account.REVALUATION_VARIANCE, Decimal("10.00")),
        },
    ]
    assert taken[1].date == dt.date(2026, 2, 10)
    assert (balance(book, Account.FINISHED_GOODS), balance(book, Account.RAW_IN_PROCESS)) == (
        0,
        100,
    )
    assert balance(book, Account.REVALUATION_VARIANCE) == 0
    assert book.on_hand == {"CHIP": 100, "FG": 0}


def test_a_sale_returned_after_a_cost_roll_comes_back_at_the_new_standard() -> None:
    """M rises from 1.00 to 1.30 on 1 February; W is one M and 1.00 of labor (2.00, then
    2.30). Two W sold in January at 5.00 come back on 5 February: Dr finished goods 4.00 and
    Cr COGS 4.00, Dr sales 10.00 and Cr receivables 10.00, then the two units revalued to the
    new standard (Dr finished goods 0.60, Cr revaluation 0.60): finished goods 4 x 2.30."""
    text = """
book: {name: R, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
  - {id: W, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: W, lines: [{component: M, quantity: "1"}]}
cost_sets: [{name: feb, effective: 2026-02-01, materials: {M: "1.30"}}]
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "10", unit_cost: "1.00"}
  - {id: c1, date: 2026-01-10, type: completion, item: W, quantity: "4"}
  - {id: s1, date: 2026-01-20, type: sale, item: W, quantity: "2", unit_price: "5.00"}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: p2, date: 2026-02-02, type: purchase, item: M, quantity: "1", unit_cost: "1.30"}
  - {id: rs1, date: 2026-02-05, type: reversal, reverses: s1, reason: customer return}
"""
    book = run_scenario(parse_scenario(text))
    taken = [
        {(ln.account, ln.amount) for ln in e.lines} for e in book.entries() if e.event == "rs1"
    ]
    assert taken == [
        {(Account.FINISHED_GOODS, Decimal("4.00")), (Account.COGS, Decimal("-4.00"))},
        {(Account.ACCOUNTS_RECEIVABLE, Decimal("-10.00")), (Account.SALES, Decimal("10.00"))},
        {
            (Account.FINISHED_GOODS, Decimal("0.60")),
            (Account.REVALUATION_VARIANCE, Decimal("-0.60")),
        },
    ]
    assert balance(book, Account.FINISHED_GOODS) == Decimal("9.20")
    assert book.period_variances("2026-02")["revaluation"] == Decimal("-3.00")  # 1.80 + 0.60 + 0.60


def test_actual_conversion_is_reversed_across_a_standards_change() -> None:
    """An accrual of 500.00 of labor posted twice in January, taken back in February after M's
    standard rose from 1.00 to 1.30: conversion holds no standard, so the reversal takes back
    its lines as they were (Dr accrued conversion 500.00, Cr conversion control 500.00), a
    500.00 favourable conversion variance in February. A purchase returned then takes its
    units out at the newer standard (they were revalued with the stock)."""
    text = """
book: {name: R, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
cost_sets: [{name: feb, effective: 2026-02-01, materials: {M: "1.30"}}]
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "10", unit_cost: "1.10"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "500.00", element: labor}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: p2, date: 2026-02-02, type: purchase, item: M, quantity: "1", unit_cost: "1.30"}
  - {id: rl1, date: 2026-02-05, type: reversal, reverses: l1, reason: posted twice}
"""
    book = run_scenario(parse_scenario(text))
    (entry,) = [e for e in book.entries() if e.event == "rl1"]
    assert {(ln.account, ln.amount) for ln in entry.lines} == {
        (Account.ACCRUED_CONVERSION, Decimal("500.00")),
        (Account.CONVERSION_CONTROL, Decimal("-500.00")),
    }
    assert book.period_variances("2026-02")["conversion"] == Decimal("-500.00")
    assert balance(book, Account.ACCRUED_CONVERSION) == 0
    returned = text + "  - {id: rp1, date: 2026-02-06, type: reversal, reverses: p1}\n"
    book = run_scenario(parse_scenario(returned))  # 11 M less the 10 returned: 1 at 1.30
    assert balance(book, Account.RAW_IN_PROCESS) == Decimal("1.30")


#: KIT is costed at sale, its unsold conversion inventoried at closes; its conversion is one
#: amount (element ""). From February its BOM also takes a PART, a finished good costed at
#: completion whose value (material and conversion) sits in finished goods, element "", and a
#: SUB, a subassembly whose conversion (0.25) becomes part of the KIT's, costed at sale.
KITS = """
book: {name: Kits, currency: USD, triggers: purchase+completion, disposition: cogs,
       inventory_unsold_conversion: true}
items:
  - {id: CHIP, kind: material, standard_cost: "1.00"}
  - {id: PART, kind: finished, standard_cost: {conversion: "0.50"}}
  - {id: SUB, kind: subassembly, standard_cost: {conversion: "0.25"}}
  - {id: KIT, kind: finished, triggers: sale, standard_cost: {conversion: "2.00"}}
boms:
  - {item: PART, lines: [{component: CHIP, quantity: 1}]}
  - {item: SUB, lines: [{component: CHIP, quantity: 1}]}
  - {item: KIT, lines: [{component: CHIP, quantity: 2}]}
  - {item: KIT, effective_from: 2026-02-01, lines: [{component: CHIP, quantity: 2},
                                                  {component: PART, quantity: 1},
                                                  {component: SUB, quantity: 1}]}
events:
  - {id: buy, date: 2026-01-05, type: purchase, item: CHIP, quantity: 100, unit_cost: "1.00"}
  - {id: make, date: 2026-01-10, type: completion, item: KIT, quantity: 10}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: feb, date: 2026-02-02, type: purchase, item: CHIP, quantity: 1, unit_cost: "1.00"}
  - {id: close-feb, date: 2026-02-28, type: close, period: 2026-02}
"""


def test_a_revaluation_inventories_only_the_change_of_unsold_conversion() -> None:
    """The 10 KITs on hand are revalued to February's BOM: 10.00 more material in RIP (the
    SUB's CHIP), and in finished goods, on the line of element "" that their conversion
    inventoried at January's close (10 x 2.00) shares, the PART's value (10 x 1.50) and the
    SUB's conversion (10 x 0.25). Only that conversion is inventoried with them (it was the
    whole line): February's close finds the KITs' conversion inventoried already."""
    book = run_scenario(parse_scenario(KITS, "kits.yaml"))
    (entry,) = [e for e in book.journal if e.event == "revaluation-2026-02-01"]
    lines = {(ln.account, ln.element): ln.amount for ln in entry.lines}
    assert lines[(Account.RAW_IN_PROCESS, "")] == Decimal("10.00")
    assert lines[(Account.FINISHED_GOODS, "")] == Decimal("17.50")
    inventoried = {k: v for k, v in book.unsold_conversion.items() if v}
    assert inventoried == {(Account.FINISHED_GOODS, ""): Decimal("22.50")}  # 10 x 2.25
    assert not [e for e in book.journal if e.event == "close-feb" and "inventoried" in e.memo]
    # Finished goods: the PARTs in the KITs at standard and the KITs' conversion.
    assert balance(book, Account.FINISHED_GOODS) == Decimal("37.50")
