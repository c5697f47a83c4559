"""Lower of cost and net realisable value: write-downs at close, releases, IFRS reversals,
US GAAP cost basis, standard changes; figures worked out by hand.

The worked examples ``examples/nrv.yaml`` (IFRS) and ``examples/nrv_us_gaap.yaml`` share one
story. CHIP is a material at 4.00; WIDGET is made of 2 CHIP and 2.00 labor: 10.00. A cost set
raises CHIP to 4.50 from March: WIDGET 11.00.

    Jan  buy 1,000 CHIP, make 100 WIDGET (200 CHIP used: 800 left); NRV WIDGET 7.50, CHIP 4.20
    Feb  sell 40 WIDGET (60 left)
    Mar  NRV WIDGET 10.40 (the new standards revalue stock first)
    Apr  sell 20 WIDGET (40 left); NRV WIDGET 12.00

The examples also run through SQLite and PostgreSQL (tests/test_store.py runs every example,
event by event, reloading the book from the database after each).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backflush.book import Book
from backflush.cli import app
from backflush.domain import model as m
from backflush.domain.model import Account, LowerOfCost, NrvWritedown
from backflush.engine.flush import PostingError
from backflush.engine.nrv import Assessment, unit_writedown
from backflush.formats.inputs import InputError
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.reports.document import document
from backflush.run import run_scenario
from helpers import EXAMPLES
from test_cli import UNSOLD

D = Decimal


def findings(book: Book, period: str) -> dict[str, tuple[str, str, str, str]]:
    """Per item: quantity, unit write-down, allowance standing, change posted."""
    return {
        item: (str(f.quantity), str(f.unit_writedown.normalize()), str(f.allowance), str(f.change))
        for item, f in book.nrv_findings(period).items()
    }


def close_lines(book: Book, close_event: str) -> list[tuple[str, str, str]]:
    """The NRV lines a close posted: (account, item, amount)."""
    return [
        (line.account.value, line.item, str(line.amount))
        for entry in book.journal
        if entry.event == close_event
        for line in entry.lines
        if line.account in (Account.NRV_ALLOWANCE, Account.NRV_WRITEDOWN)
    ]


# ---------------------------------------------------------------- the worked examples


def test_ifrs_write_down_release_standard_change_and_recovery_capped_at_standard() -> None:
    book = run_scenario(read_scenario(EXAMPLES / "nrv.yaml"))
    # January: WIDGET 100 x (10.00 - 7.50) = 250.00 written down. CHIP's NRV 4.20 is above its
    # standard 4.00: nothing.
    assert findings(book, "2026-01") == {
        "CHIP": ("800", "0", "0.00", "0.00"),
        "WIDGET": ("100", "2.5", "250.00", "250.00"),
    }
    assert close_lines(book, "close-jan") == [
        ("nrv_writedown", "WIDGET", "250.00"),
        ("nrv_allowance", "WIDGET", "-250.00"),
    ]
    # February: 40 sold at an unchanged NRV. 60 x 2.50 = 150.00 stands: 100.00 released.
    assert findings(book, "2026-02")["WIDGET"] == ("60", "2.5", "150.00", "-100.00")
    assert close_lines(book, "close-feb") == [
        ("nrv_writedown", "WIDGET", "-100.00"),
        ("nrv_allowance", "WIDGET", "100.00"),
    ]
    # March: standards 4.50 / 11.00. CHIP: 800 x (4.50 - 4.20) = 240.00 written down (its
    # January estimate still stands). WIDGET: 60 x (11.00 - 10.40) = 36.00; 114.00 reversed.
    assert findings(book, "2026-03") == {
        "CHIP": ("800", "0.3", "240.00", "240.00"),
        "WIDGET": ("60", "0.6", "36.00", "-114.00"),
    }
    # April: WIDGET's NRV 12.00 is above its standard 11.00: the write-down is reversed in
    # full (36.00), never beyond: the allowance ends at 0, not at a debit of 40 x 1.00.
    assert findings(book, "2026-04") == {
        "CHIP": ("800", "0.3", "240.00", "0.00"),
        "WIDGET": ("40", "0", "0.00", "-36.00"),
    }
    assert book.nrv_allowance == {"WIDGET": D("0.00"), "CHIP": D("-240.00")}
    # Expense: 250 - 100 + 240 - 114 - 36 = 240.00, the CHIP allowance that stands.
    balances = book.account_balances()
    assert balances["nrv_writedown"] == D("240.00")
    assert balances["nrv_allowance"] == D("-240.00")
    # Inventory stays at standard: 800 x 4.50 and 40 x 11.00.
    assert balances["raw_in_process"] == D("3600.00")
    assert balances["finished_goods"] == D("440.00")


def test_us_gaap_keeps_the_written_down_basis_and_releases_only_what_leaves() -> None:
    book = run_scenario(read_scenario(EXAMPLES / "nrv_us_gaap.yaml"))
    # January and February as under IFRS: 250.00 written down, 100.00 released by the sale.
    assert findings(book, "2026-01")["WIDGET"] == ("100", "2.5", "250.00", "250.00")
    assert findings(book, "2026-02")["WIDGET"] == ("60", "2.5", "150.00", "-100.00")
    # March: the basis of the 60 widgets stays 10.00 - 2.50 = 7.50 when the standard rises to
    # 11.00 (the revaluation debited finished goods 60 x 1.00): the write-down per unit is
    # 11.00 - 7.50 = 3.50, above 11.00 - 10.40 = 0.60. 60 x 3.50 = 210.00: 60.00 more.
    assert findings(book, "2026-03") == {
        "CHIP": ("800", "0.3", "240.00", "240.00"),
        "WIDGET": ("60", "3.5", "210.00", "60.00"),
    }
    # April: NRV 12.00 recovers above the standard, but the units still held keep their
    # basis: only the 20 sold release theirs, 20 x 3.50 = 70.00; 40 x 3.50 = 140.00 stands.
    assert findings(book, "2026-04")["WIDGET"] == ("40", "3.5", "140.00", "-70.00")
    assert book.nrv_allowance == {"WIDGET": D("-140.00"), "CHIP": D("-240.00")}
    # Expense: 250 - 100 + 240 + 60 - 70 = 380.00 = 140.00 + 240.00 standing.
    assert book.account_balances()["nrv_writedown"] == D("380.00")
    # Carrying amount of the widgets: 440.00 at standard less 140.00 = 40 x 7.50.
    assert book.account_balances()["finished_goods"] - 140 == 40 * D("7.50")


def test_the_document_has_a_net_realisable_value_section() -> None:
    section = document(run_scenario(read_scenario(EXAMPLES / "nrv.yaml")))["net_realisable_value"]
    assert section["policy"] == "ifrs"
    assert section["estimates"] == {
        "CHIP": {"date": "2026-01-20", "event": "nrv-chip-jan", "unit_value": "4.2"},
        "WIDGET": {"date": "2026-04-15", "event": "nrv-widget-apr", "unit_value": "12"},
    }
    assert section["allowance"] == {"CHIP": "240.00"}
    # Posted per period: 250.00, -100.00, 240.00 - 114.00 = 126.00, -36.00.
    assert [(p["period"], p["writedown"]) for p in section["periods"]] == [
        ("2026-01", "250.00"),
        ("2026-02", "-100.00"),
        ("2026-03", "126.00"),
        ("2026-04", "-36.00"),
    ]
    assert section["periods"][2]["items"]["WIDGET"] == {
        "quantity": "60",
        "standard": "11",
        "nrv": "10.4",
        "unit_writedown": "0.6",
        "allowance": "36.00",
        "change": "-114.00",
    }


# ---------------------------------------------------------------- the rule, unit by unit


def previous(quantity: str, standard: str, unit: str) -> NrvWritedown:
    return NrvWritedown("2026-01", "X", D(quantity), D(standard), None, D(unit), D(0), D(0))


def assess(
    quantity: str, standard: str, nrv: str | None, before: NrvWritedown | None = None
) -> Assessment:
    return Assessment(
        "X", D(quantity), D(standard), D(standard), None if nrv is None else D(nrv), before, D(0)
    )


def test_us_gaap_units_arriving_come_in_at_standard_and_the_item_averages() -> None:
    # 60 units held at a write-down of 2.50 (basis 7.50); 40 more arrive at the standard 10.00.
    # Average write-down: 60 x 2.50 / 100 = 1.50, above 10.00 - 9.00 = 1.00: 1.50 stands.
    before = previous("60", "10", "2.5")
    assert unit_writedown(LowerOfCost.US_GAAP, assess("100", "10", "9", before)) == D("1.5")
    # NRV falls to 8.00: below the average basis 8.50, so 2.00 per unit.
    assert unit_writedown(LowerOfCost.US_GAAP, assess("100", "10", "8", before)) == D("2")
    # Under IFRS only today's estimate counts: 1.00.
    assert unit_writedown(LowerOfCost.IFRS, assess("100", "10", "9", before)) == D("1")
    # 3 units held at 2.50 among 7, kept to 12 decimals: 3 x 2.50 / 7 = 1.071428571429(57...).
    assert unit_writedown(
        LowerOfCost.US_GAAP, assess("7", "10", None, previous("3", "10", "2.5"))
    ) == D("1.071428571429")


def test_us_gaap_a_standard_below_the_basis_ends_the_write_down() -> None:
    # Basis 10.00 - 2.50 = 7.50; the standard falls to 7.00: below the basis, nothing stands.
    before = previous("60", "10", "2.5")
    assert unit_writedown(LowerOfCost.US_GAAP, assess("60", "7", None, before)) == 0
    # Stock that left entirely leaves no basis behind.
    assert unit_writedown(LowerOfCost.US_GAAP, assess("0", "10", "5", before)) == 0


def test_us_gaap_a_standard_held_off_the_books_moves_no_basis() -> None:
    """purchase+sale: F carries its material (10.00) on the books, its labor (5.00, 7.00 from
    February) off them. January writes 10 F down to NRV 8.00: 2.00 a unit, basis 8.00. The
    labor rate moves nothing the books carry: February keeps 20.00 standing (it wrote down
    20.00 more, to 6.00 a unit, below NRV). Under IFRS too: 20.00."""
    text = """
book: {name: S4, currency: USD, triggers: purchase+sale, disposition: cogs, shortage: queue,
       lower_of_cost: us-gaap}
items:
  - {id: M, kind: material, standard_cost: "10.00"}
  - {id: F, kind: finished}
work_centers: [{id: W, name: Cell, rates: {labor: "5.00"}}]
routings: [{item: F, operations: [{operation: 10, work_center: W, run_hours: "1"}]}]
boms: [{item: F, lines: [{component: M, quantity: "1"}]}]
cost_sets: [{name: feb, effective: 2026-02-01, rates: {W: {labor: "7.00"}}}]
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "10", unit_cost: "10.00"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "10"}
  - {id: n1, date: 2026-01-20, type: nrv, item: F, unit_value: "8.00"}
  - {id: k1, date: 2026-01-31, type: close, period: 2026-01}
  - {id: k2, date: 2026-02-28, type: close, period: 2026-02}
"""
    for policy in ("us-gaap", "ifrs"):
        book = run_scenario(parse_scenario(text.replace("us-gaap", policy), "s4.yaml"))
        assert findings(book, "2026-01")["F"] == ("10", "2", "20.00", "20.00"), policy
        assert findings(book, "2026-02")["F"] == ("10", "2", "20.00", "0.00"), policy
        assert book.nrv_findings("2026-02")["F"].carrying == D("10")
    # January's finding made before books kept what they carried (a book upgraded to 0013):
    # worked out again at February's close, which writes nothing more down.
    sc = parse_scenario(text, "s4.yaml")
    book = Book(sc.settings, sc.master)
    book.post_many(sc.events[:-1])
    january = book.nrv_writedowns["2026-01"]
    january["F"] = dataclasses.replace(january["F"], carrying=None)
    book.post(sc.events[-1])
    assert findings(book, "2026-02")["F"] == ("10", "2", "20.00", "0.00")
    # A finding recorded before books kept what they carried: the standard stands in.
    before = previous("10", "15", "2")
    found = dataclasses.replace(assess("10", "17", "8", before), carrying=D(10))
    assert unit_writedown(LowerOfCost.US_GAAP, found) == D("4")
    found = dataclasses.replace(found, previous=dataclasses.replace(before, carrying=D(10)))
    assert unit_writedown(LowerOfCost.US_GAAP, found) == D("2")


def test_the_write_down_is_taken_from_what_the_books_carry() -> None:
    # Carrying 6.00 of a standard of 10.00 (the rest off the books): NRV 1.00 writes down
    # 6.00 - 1.00, not 10.00 - 1.00; NRV 8.00, above what is carried, writes down nothing
    # (the 4.00 off the books was never on them); a negative NRV, all that is carried.
    found = dataclasses.replace(assess("5", "10", "1"), carrying=D(6))
    assert unit_writedown(LowerOfCost.IFRS, found) == D(5)
    found = dataclasses.replace(assess("5", "10", "8"), carrying=D(6))
    assert unit_writedown(LowerOfCost.IFRS, found) == 0
    found = dataclasses.replace(assess("5", "10", "-2"), carrying=D(6))
    assert unit_writedown(LowerOfCost.IFRS, found) == D(6)


OFF_BOOK_PLANT = """\
book: {name: Off book, triggers: completion}
items:
  - {id: CHIP, kind: material, standard_cost: "4.00"}
  - {id: WIDGET, kind: finished, standard_cost: {conversion: "2.00"}}
boms:
  - {item: WIDGET, lines: [{component: CHIP, quantity: "2"}]}
events:
  - {id: buy, date: 2026-01-05, type: purchase, item: CHIP, quantity: "100", unit_cost: "4.00"}
  - {id: make, date: 2026-01-06, type: completion, item: WIDGET, quantity: "10"}
  - {id: nrv-chip, date: 2026-01-07, type: nrv, item: CHIP, unit_value: "1.00"}
  - {id: nrv-widget, date: 2026-01-07, type: nrv, item: WIDGET, unit_value: "9.00"}
  - {id: close, date: 2026-01-31, type: close, period: 2026-01}
"""


def test_stock_held_off_the_books_is_not_written_down() -> None:
    # Under the completion trigger a purchase posts nothing: the 80 CHIP left are off the
    # books, so an NRV of 1.00 writes nothing down. WIDGET is in finished goods at 10.00:
    # 10 x (10.00 - 9.00) = 10.00.
    book = run_scenario(parse_scenario(OFF_BOOK_PLANT, "off_book.yaml"))
    assert findings(book, "2026-01") == {
        "CHIP": ("80", "0", "0.00", "0.00"),
        "WIDGET": ("10", "1", "10.00", "10.00"),
    }


def test_goods_carried_at_their_material_are_written_down_from_it() -> None:
    """purchase+sale: WIDGET (2 CHIP at 4.00 + 2.00 conversion) sits at its material, 8.00;
    its conversion was expensed as incurred. NRV 8.00 is not below what the books carry: no
    write-down (standard 10.00 - 8.00 took 20.00 and left the ten at 6.00 each, below their
    NRV). NRV 7.00: 1.00 a unit."""
    text = OFF_BOOK_PLANT.replace("triggers: completion", "triggers: purchase+sale")
    text = text.replace('unit_value: "9.00"', 'unit_value: "8.00"')
    book = run_scenario(parse_scenario(text, "material_only.yaml"))
    assert findings(book, "2026-01")["WIDGET"] == ("10", "0", "0.00", "0.00")
    lower = run_scenario(parse_scenario(text.replace('"8.00"', '"7.00"'), "lower.yaml"))
    assert findings(lower, "2026-01")["WIDGET"] == ("10", "1", "10.00", "10.00")


def test_variances_prorated_into_stock_are_part_of_its_cost() -> None:
    """Prorate: 30 M bought at 3.00 (standard 2.00) make 10 W (3 M + 4.00 labor: 10.00). The
    close spreads the 30.00 price variance by standard material: all of it to finished goods,
    which then hold 130.00, 13.00 a unit. NRV 11.00 writes down 2.00 a unit (the standard,
    10.00, is below it: the old rule wrote nothing down); NRV 9.00, 4.00."""
    text = """
book: {name: Prorated, currency: USD, triggers: purchase+completion, disposition: prorate}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: W, kind: finished, standard_cost: {conversion: {labor: "4.00"}}}
boms:
  - {item: W, lines: [{component: M, quantity: "3"}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "30", unit_cost: "3.00"}
  - {id: c1, date: 2026-01-06, type: completion, item: W, quantity: "10"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "40.00", element: labor}
  - {id: nrv1, date: 2026-01-20, type: nrv, item: W, unit_value: "11.00"}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
"""
    book = run_scenario(parse_scenario(text, "prorated.yaml"))
    assert book.balances[(Account.FINISHED_GOODS, "variance:purchase_price")] == 30
    assert findings(book, "2026-01")["W"] == ("10", "2", "20.00", "20.00")
    lower = run_scenario(parse_scenario(text.replace('"11.00"', '"9.00"'), "lower.yaml"))
    assert findings(lower, "2026-01")["W"] == ("10", "4", "40.00", "40.00")


def test_conversion_prorated_into_unsold_goods_inventoried_at_close_is_part_of_its_cost() -> None:
    """purchase+sale, unsold conversion inventoried: F is 1 M at 4.00 and 6.00 labor. 100 made,
    50 sold; labor cost 800.00 against 600.00 standard. The close puts the 50 unsold units'
    300.00 of labor on the books and spreads the 200.00 labor variance by standard labor: 100.00
    to the unsold units. They carry 4.00 + 6.00 + 2.00 = 12.00 a unit: NRV 9.00 writes down 3.00
    a unit, 150.00 (the prorated labor was left out: 50.00)."""
    nrv = '  - {id: n1, date: 2026-01-20, type: nrv, item: F, unit_value: "9.00"}\n'
    text = UNSOLD.replace("  - {id: l1,", nrv + "  - {id: l1,")
    book = run_scenario(parse_scenario(text, "unsold.yaml"))
    assert book.balances[(Account.FINISHED_GOODS, "labor")] == D("300.00")
    assert findings(book, "2026-01")["F"] == ("50", "3", "150.00", "150.00")


# ---------------------------------------------------------------- estimates as events

PLANT = """\
book: {name: Estimates}
items:
  - {id: M, kind: material, standard_cost: "5.00"}
  - {id: P, kind: phantom}
  - {id: F, kind: finished, standard_cost: {conversion: "1.00"}}
boms:
  - {item: P, lines: [{component: M, quantity: "1"}]}
  - {item: F, lines: [{component: P, quantity: "1"}]}
"""


def plant_book() -> tuple[Book, Any]:
    sc = parse_scenario(PLANT, "plant.yaml")
    book = Book(sc.settings, sc.master)
    book.post(m.Purchase("buy", dt.date(2026, 1, 2), "M", D(10), D(5)))
    return book, sc


def test_the_estimate_in_force_at_the_period_end_is_used() -> None:
    book, _ = plant_book()
    jan, feb = dt.date(2026, 1, 31), dt.date(2026, 2, 3)
    book.post(m.NetRealisableValue("n1", dt.date(2026, 1, 10), "M", D("4.00")))
    book.post(m.NetRealisableValue("n2", dt.date(2026, 1, 10), "M", D("3.00")))  # same day: last
    book.post(m.NetRealisableValue("n3", feb, "M", D("1.00")))  # after January: not January's
    book.post(m.Close("close", jan, "2026-01"))
    # 10 x (5.00 - 3.00) = 20.00
    assert findings(book, "2026-01") == {"M": ("10", "2", "20.00", "20.00")}
    assert book.nrv_on("M", feb) == D("1.00")


def test_estimates_are_checked_resent_and_never_reversed() -> None:
    book, _ = plant_book()
    estimate = m.NetRealisableValue("n1", dt.date(2026, 1, 10), "M", D("4.00"))
    assert book.post(estimate) is True
    assert book.post(estimate) is False  # the same event again: no change
    with pytest.raises(PostingError, match="an nrv estimate is not reversed"):
        book.post(m.Reversal("undo", dt.date(2026, 1, 11), "n1"))
    with pytest.raises(PostingError, match="phantom"):
        book.post(m.NetRealisableValue("n2", dt.date(2026, 1, 10), "P", D("4.00")))
    book.post(m.Close("close", dt.date(2026, 1, 31), "2026-01"))
    with pytest.raises(PostingError, match="closed"):
        book.post(m.NetRealisableValue("late", dt.date(2026, 1, 30), "M", D("4.00")))
    text = PLANT + "events:\n  - {date: 2026-01-03, type: nrv, item: M, unit_value: '-1'}\n"
    with pytest.raises(InputError, match=r"plant.yaml:\d+: event plant:1: unit_value: expected"):
        parse_scenario(text, "plant.yaml")
    text = PLANT + "events:\n  - {date: 2026-01-03, type: nrv, item: M, value: '1'}\n"
    with pytest.raises(InputError, match="unit_value: Field required"):
        parse_scenario(text, "plant.yaml")


def test_a_reopened_period_restores_the_allowance_from_the_journal() -> None:
    """Reopening negates every entry of the close (another part of issue 4 adds the verb);
    the allowance per item follows the journal, and the findings of a period no longer closed
    are not used: closing it again finds the same, and posts it again."""
    book = run_scenario(read_scenario(EXAMPLES / "nrv_us_gaap.yaml"))
    before = dict(book.nrv_allowance)  # WIDGET -140.00, CHIP -240.00 after April
    april = [e for e in book.journal if e.event == "close-apr"]
    for entry in april:  # what a reopen does to the journal
        negated = tuple(dataclasses.replace(ln, amount=-ln.amount) for ln in entry.lines)
        book._post_entry(dataclasses.replace(entry, event="reopen-apr", lines=negated), None)
    del book.closed["2026-04"]
    # Back to March's close: WIDGET 210.00, CHIP 240.00.
    assert book.nrv_allowance == {"WIDGET": D("-210.00"), "CHIP": D("-240.00")}
    assert book.nrv_findings("2026-04") == {}
    book.post(m.Close("close-apr-again", dt.date(2026, 4, 30), "2026-04"))
    assert findings(book, "2026-04")["WIDGET"] == ("40", "3.5", "140.00", "-70.00")
    assert book.nrv_allowance == before


# ---------------------------------------------------------------- command line and store


def test_command_line_posts_estimates_and_reports_them(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    ok("init", "--db", db, "--settings-from", str(EXAMPLES / "nrv_us_gaap.yaml"))
    ok("import", str(EXAMPLES / "nrv_us_gaap.yaml"), "--db", db)
    ok("post", "--db", db, "--type", "nrv", "--id", "n-may", "--date", "2026-05-02",
       "--item", "WIDGET", "--unit-value", "6.50")  # fmt: skip
    ok("close", "2026-05", "--db", db)
    report = ok("report", "--db", db, "--what", "nrv")
    assert "Net realisable value (lower of cost, us-gaap)" in report
    # May: 40 WIDGET, basis 7.50 above the NRV 6.50: 40 x (11.00 - 6.50) = 180.00, 40.00 more.
    assert "180.00" in report and "40.00" in report
    found = runner.invoke(app, ["report", "--db", db, "--json"])
    section = json.loads(found.stdout)["net_realisable_value"]
    assert section["policy"] == "us-gaap"
    assert section["allowance"] == {"CHIP": "240.00", "WIDGET": "180.00"}
    assert section["periods"][-1]["items"]["WIDGET"]["change"] == "40.00"
    negative = ["--date", "2026-06-01", "--item", "WIDGET", "--unit-value", "-2"]
    refused = runner.invoke(app, ["post", "--db", db, "--type", "nrv", *negative])
    assert refused.exit_code == 2
    assert "unit_value: expected zero or more, got -2" in refused.stderr
