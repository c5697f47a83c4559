"""Variances split and disposed of, against figures worked by hand.

The widget plant (``examples/widgets_prorate.yaml``): W = 3 M at 2.00 (material 6.00) and
0.5 h at ASM, rated labor 20.00/h and overhead 10.00/h (labor 10.00, overhead 5.00): 21.00.

January: 100 M bought at 2.0007 (PPV 0.07); 20 W made (60 M backflushed; 10 standard hours);
12 W sold. Labor 231.00 for 11 h and overhead 95.00 at ASM; the ASM clock says 11 h.
At the end of January RIP holds 40 M (material 80), FG 8 W (material 48, labor 80, overhead
40) and COGS took 12 W (material 72, labor 120, overhead 60).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backflush.book import Book
from backflush.cli import app
from backflush.domain.model import Account, Disposition, Line
from backflush.engine.close import hours_variances, largest_remainder
from backflush.formats.inputs import InputError
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.reports.accuracy import bom_accuracy
from backflush.reports.document import document, gross_margin
from backflush.reports.html import period_report_html
from backflush.reports.tables import valuation_reconciliation, valuation_table
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import EXAMPLES

D = Decimal
CENT = D("0.01")
WIDGETS = EXAMPLES / "widgets_prorate.yaml"


def widgets(disposition: str | None = None) -> Book:
    text = WIDGETS.read_text()
    if disposition is not None:
        text = text.replace(
            "disposition: {default: cogs, purchase_price: prorate, conversion: prorate}",
            f"disposition: {disposition}",
        )
    return run_scenario(parse_scenario(text, "widgets.yaml"))


def lines_of(book: Book, event: str) -> list[tuple[str, str, Decimal]]:
    entry = next(e for e in book.journal if e.event == event)
    return [(ln.account.value, ln.element, ln.amount) for ln in entry.lines]


def test_largest_remainder_spreads_to_the_cent() -> None:
    # 0.07 by 80 : 48 : 72 is 0.028, 0.0168, 0.0252: 0.02, 0.01, 0.02 and two cents left,
    # to the largest remainders (0.008 and 0.0068), not to the largest share.
    assert largest_remainder(D("0.07"), [D(80), D(48), D(72)], CENT) == [
        D("0.03"),
        D("0.02"),
        D("0.02"),
    ]
    # Favorable amounts round toward zero too, and the pennies go the same way.
    assert largest_remainder(D("-0.07"), [D(80), D(48), D(72)], CENT) == [
        D("-0.03"),
        D("-0.02"),
        D("-0.02"),
    ]
    # Ties go to the earlier account; zero weights get nothing.
    assert largest_remainder(D("0.01"), [D(1), D(0), D(1)], CENT) == [D("0.01"), D(0), D(0)]
    assert largest_remainder(D("100"), [D(1), D(1), D(1)], D(1)) == [D(34), D(33), D(33)]


def test_hours_split_conversion_into_spending_and_efficiency() -> None:
    found = widgets().closed["2026-01"].variances
    v = dict(found)
    # Labor: actual 231.00, 11 h at 20.00 = 220.00, standard 20 W x 0.5 h = 10 h.
    assert v["conversion_spending:ASM:labor"] == D("11.00")  # 231 - 220
    assert v["conversion_efficiency:ASM:labor"] == D("20.00")  # (11 - 10) x 20
    # Overhead: actual 95.00; the ASM clock (no element) gives its 11 h.
    assert v["conversion_spending:ASM:overhead"] == D("-15.00")  # 95 - 110
    assert v["conversion_efficiency:ASM:overhead"] == D("10.00")  # (11 - 10) x 10
    assert v["conversion_spending"] == D("-4.00")
    assert v["conversion_efficiency"] == D("30.00")
    # They explain the whole under-allocation: 231 + 95 - (200 + 100) = 26.
    assert v["conversion"] == D("26.00") == v["conversion_spending"] + v["conversion_efficiency"]
    assert v["purchase_price"] == D("0.07")


RATE_CHANGE = """
book: {name: O, currency: USD, triggers: purchase+completion, shortage: allow,
       disposition: {default: cogs, conversion: keep}}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
  - {id: F, kind: finished}
work_centers:
  - {id: LATHE, rates: {labor: "30.00"}}
routings:
  - {item: F, operations: [{operation: 10, work_center: LATHE, run_hours: "1"}]}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
cost_sets:
  - {name: mid, effective: 2026-01-16, rates: {LATHE: {labor: "40.00"}}}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "20", unit_cost: "1.00"}
  - {id: c1, date: 2026-01-05, type: completion, item: F, quantity: "10"}
  - {id: h1, date: 2026-01-10, type: hours, work_center: LATHE, hours: "12"}
  - {id: c2, date: 2026-01-20, type: completion, item: F, quantity: "10"}
  - {id: h2, date: 2026-01-25, type: hours, work_center: LATHE, hours: "9"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "800.00", element: labor,
     work_center: LATHE}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
"""


def test_hours_are_priced_at_the_rate_in_force_when_worked() -> None:
    """The labor rate goes from 30 to 40 on the 16th. c1 allocated 10 h x 30 = 300, c2 10 h
    x 40 = 400: 700 against 800 actual, 100 under. Hours worked: 12 before (at 30), 9 after
    (at 40). Spending 800 - (12 x 30 + 9 x 40) = 80; efficiency (12 - 10) x 30 + (9 - 10) x
    40 = 20: the hours explain all 100, none is left unexplained. (Priced at the period
    end's 40, all 21 h gave spending -40, efficiency 40, and 100 unexplained.)"""
    book = widgets_book(RATE_CHANGE)
    v = dict(book.closed["2026-01"].variances)
    assert v["conversion"] == D("100.00")
    assert v["conversion_spending:LATHE:labor"] == D("80.00")
    assert v["conversion_efficiency:LATHE:labor"] == D("20.00")
    assert sorted(lines_of(book, "close-jan")) == [
        ("cogs", "", D("-100.00")),  # the revaluation of F made before the 16th, to COGS
        ("conversion_allocated", "labor", D("700.00")),
        ("conversion_control", "labor", D("-800.00")),
        ("conversion_efficiency_variance", "labor", D("20.00")),
        ("conversion_spending_variance", "labor", D("80.00")),
        ("revaluation_variance", "", D("100.00")),
    ]


def test_hours_kept_without_their_date_are_priced_at_the_period_end() -> None:
    """Statistics of a book posted before hours were kept by the standards they were worked
    under: those hours are priced at the rate in force at the period's end, the rest at
    their own."""

    def rates(center: str, element: str, on: dt.date | None) -> D | None:
        return D(30) if on is not None and on < dt.date(2026, 1, 16) else D(40)

    old = {
        "actual_cost:LATHE:labor": D(800),
        "actual_hours:LATHE:": D(21),
        "standard_hours:LATHE": D(20),
    }
    assert hours_variances(old, rates) == {
        "conversion_spending:LATHE:labor": D(-40),  # 800 - 21 x 40
        "conversion_efficiency:LATHE:labor": D(40),  # (21 - 20) x 40
    }
    # 12 h of the 21 dated before the change, and the standard hours of c1: the rest at 40
    mixed = {
        **old,
        "actual_hours@0001-01-01:LATHE:": D(12),
        "standard_hours@0001-01-01:LATHE": D(10),
    }
    assert hours_variances(mixed, rates) == {
        "conversion_spending:LATHE:labor": D(80),  # 800 - (12 x 30 + 9 x 40)
        "conversion_efficiency:LATHE:labor": D(20),  # 720 - (10 x 30 + 10 x 40)
    }


def test_prorate_spreads_each_variance_by_the_standard_of_its_element() -> None:
    book = widgets()
    assert lines_of(book, "close-jan") == [
        ("conversion_allocated", "labor", D("200.00")),
        ("conversion_allocated", "overhead", D("100.00")),
        ("conversion_control", "labor", D("-231.00")),
        ("conversion_control", "overhead", D("-95.00")),
        ("purchase_price_variance", "", D("-0.07")),
        # labor 31.00 by FG 80 : COGS 120 (RIP holds no labor)
        ("finished_goods", "variance:conversion:labor", D("12.40")),
        # COGS: labor 18.60, overhead -3.00, purchase price 0.02
        ("cogs", "", D("15.62")),
        # overhead -5.00 by FG 40 : COGS 60
        ("finished_goods", "variance:conversion:overhead", D("-2.00")),
        # purchase price 0.07 by material RIP 80 : FG 48 : COGS 72
        ("raw_in_process", "variance:purchase_price", D("0.03")),
        ("finished_goods", "variance:purchase_price", D("0.02")),
    ]
    at_close = dict(book.closed["2026-01"].balances)
    assert at_close["raw_in_process"] == D("80.03")  # 40 x 2.00 + 0.03
    assert at_close["finished_goods"] == D("178.42")  # 8 x 21.00 + 12.40 - 2.00 + 0.02
    assert at_close["cogs"] == D("267.62")  # 12 x 21.00 + 15.62
    for account in ("purchase_price_variance", "conversion_control", "conversion_allocated"):
        assert account not in at_close


def test_prorated_variances_follow_the_stock_out() -> None:
    """February sells the last 8 W: what January prorated into FG goes to COGS; the purchase
    price pool (RIP 0.03 + FG 0.02) is spread again by material, RIP 80 : COGS 48."""
    book = widgets()
    assert lines_of(book, "close-feb") == [
        ("finished_goods", "variance:conversion:labor", D("-12.40")),
        ("finished_goods", "variance:conversion:overhead", D("2.00")),
        ("finished_goods", "variance:purchase_price", D("-0.02")),
        ("cogs", "", D("10.42")),  # 12.40 - 2.00 + 0.02 (0.05 x 48/128 = 0.01875)
    ]
    assert book.balances.get((Account.RAW_IN_PROCESS, "variance:purchase_price")) == D("0.03")
    assert not any(v for (a, _), v in book.balances.items() if a is Account.FINISHED_GOODS)


def test_keep_closes_conversion_into_spending_and_efficiency() -> None:
    book = widgets("keep")
    assert lines_of(book, "close-jan") == [
        ("conversion_allocated", "labor", D("200.00")),
        ("conversion_allocated", "overhead", D("100.00")),
        ("conversion_control", "labor", D("-231.00")),
        ("conversion_control", "overhead", D("-95.00")),
        ("conversion_spending_variance", "labor", D("11.00")),
        ("conversion_efficiency_variance", "labor", D("20.00")),
        ("conversion_spending_variance", "overhead", D("-15.00")),
        ("conversion_efficiency_variance", "overhead", D("10.00")),
    ]
    # Nothing left unexplained: no conversion_variance line; PPV stays as its own line.
    assert book.balances[(Account.PURCHASE_PRICE_VARIANCE, "")] == D("0.07")


def test_dispositions_by_variance_type() -> None:
    # Purchase price to COGS, conversion left open (a textbook's intermediate step).
    book = widgets("{purchase_price: cogs, conversion: none}")
    assert lines_of(book, "close-jan") == [
        ("purchase_price_variance", "", D("-0.07")),
        ("cogs", "", D("0.07")),
    ]
    assert book.settings.disposition_of("conversion") is Disposition.NONE
    assert book.settings.disposition_of("material_usage") is Disposition.COGS
    # Everything prorated: the same shares as above, conversion and purchase price.
    everything = widgets("prorate")
    assert lines_of(everything, "close-jan") == lines_of(widgets(), "close-jan")


def test_a_variance_nothing_holds_the_element_of_goes_to_cogs() -> None:
    """Prorated by labor when no stock holds labor and nothing was sold: all to COGS."""
    text = """
book: {name: Bare, disposition: prorate}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
events:
  - {id: p, date: 2026-01-02, type: purchase, item: M, quantity: 3, unit_cost: "1.10"}
  - {id: l, date: 2026-01-05, type: conversion, amount: "10.00", element: labor}
  - {id: c, date: 2026-01-31, type: close, period: 2026-01}
"""
    book = run_scenario(parse_scenario(text))
    assert lines_of(book, "c") == [
        ("conversion_control", "labor", D("-10.00")),
        ("purchase_price_variance", "", D("-0.30")),
        ("cogs", "", D("10.00")),
        ("raw_in_process", "variance:purchase_price", D("0.30")),
    ]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            "{type: hours, work_center: NOPE, hours: 1}",
            "w.yaml:22: event w:1: work_center: unknown work center 'NOPE'",
        ),
        (
            "{type: hours, work_center: ASM, element: machine, hours: 1}",
            "w.yaml:22: event w:1: element: work center ASM has no rate for 'machine'",
        ),
        (
            '{type: conversion, amount: "5.00", work_center: ASM}',
            "w.yaml:22: event w:1: element: a conversion cost at a work center needs its "
            "element (one of labor, overhead)",
        ),
        (
            '{type: conversion, amount: "5.00", element: labor, hours: 2}',
            "w.yaml:22: event w:1: hours: hours are reported at a work center",
        ),
        ("{type: hours, work_center: ASM, hours: 0}", "hours: expected more than zero, got 0"),
    ],
)
def test_hours_and_work_center_costs_are_checked(event: str, message: str) -> None:
    text = (
        WIDGETS.read_text().split("events:")[0] + f"events:\n  - {{date: 2026-01-05, {event[1:]}\n"
    )
    with pytest.raises(InputError) as error:
        parse_scenario(text, "w.yaml")
    assert message in str(error.value)


def test_a_disposition_for_an_unknown_variance_type_is_refused() -> None:
    text = WIDGETS.read_text().replace(
        "disposition: {default: cogs, purchase_price: prorate, conversion: prorate}",
        "disposition: {purchase_prize: prorate}",
    )
    with pytest.raises(InputError) as error:
        parse_scenario(text, "w.yaml")
    assert "book.disposition" in str(error.value)
    assert "purchase_prize" in str(error.value)


def test_flows_say_what_moved_stock_per_period() -> None:
    book = widgets()
    assert book.flows["2026-01"] == {
        ("M", "received"): D(100),
        ("M", "backflushed"): D(-60),
        ("W", "completed"): D(20),
        ("W", "sold"): D(-12),
    }
    assert book.flows["2026-02"] == {("W", "sold"): D(-8)}


def test_a_reversal_takes_back_the_flow_it_reverses() -> None:
    text = WIDGETS.read_text().split("  - {id: lab")[0] + (
        "  - {id: r1, date: 2026-01-16, type: reversal, reverses: c1}\n"
    )
    book = run_scenario(parse_scenario(text))
    assert book.flows["2026-01"] == {
        ("M", "received"): D(100),
        ("M", "backflushed"): D(0),
        ("W", "completed"): D(0),
    }


def test_the_store_keeps_dispositions_hours_and_flows(tmp_path: Path) -> None:
    scenario = read_scenario(WIDGETS)
    store = Store(str(tmp_path / "w.db"))
    store.import_scenario(scenario.settings, scenario.master, scenario.events)
    loaded = store.load()
    memory = run_scenario(scenario)
    assert loaded.settings == memory.settings
    assert loaded.flows == memory.flows
    assert loaded.closed == memory.closed
    assert store.entries() == memory.journal
    assert loaded.statistics == memory.statistics
    assert loaded.statistics["2026-01"]["standard_hours:ASM"] == D(10)
    assert dt.date(2026, 2, 28) == memory.journal[-1].date
    assert Line(Account.COGS, D("10.42")) in memory.journal[-1].lines


# ---------------------------------------------------------------- BOM accuracy

ACCURACY = """
book: {name: Accuracy}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: N, kind: material, standard_cost: "1.00"}
  - {id: K, kind: phantom}
  - {id: W, kind: finished}
  - {id: V, kind: finished}
boms:
  - {item: K, lines: [{component: N, quantity: 1}]}
  - {item: W, lines: [{component: M, quantity: 3, scrap: "0.1"}, {component: K, quantity: 2}]}
  - {item: V, lines: [{component: M, quantity: 1}]}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: 100, unit_cost: "2.00"}
  - {id: p2, date: 2026-01-02, type: purchase, item: N, quantity: 50, unit_cost: "1.00"}
  - {id: c1, date: 2026-01-15, type: completion, item: W, quantity: 10}
  - {id: c2, date: 2026-01-16, type: completion, item: V, quantity: 7}
  - {id: s1, date: 2026-01-20, type: scrap, item: M, quantity: 1}
  - {id: k1, date: 2026-01-31, type: count, item: M, quantity: 50}
  - {id: k2, date: 2026-01-31, type: count, item: N, quantity: 30}
  - {id: p3, date: 2026-02-02, type: purchase, item: M, quantity: 10, unit_cost: "2.00"}
  - {id: c3, date: 2026-02-10, type: completion, item: V, quantity: 5}
"""


def test_bom_accuracy_joins_bom_usage_receipts_and_counts() -> None:
    book = run_scenario(parse_scenario(ACCURACY))
    found = bom_accuracy(book, "2026-01")
    m, n = found.rows
    # M: W takes 10 x 3 x 1.1 = 33, V takes 7: BOM usage 40; 1 scrapped. Book: 100 - 40 - 1
    # = 59, counted 50: 9 more used than the BOMs say, real usage 49, +22.5%.
    assert (m.component, m.opening, m.received, m.theoretical) == ("M", 0, 100, 40)
    assert (m.counted, m.actual, m.difference, m.other, m.closing) == (-9, 49, 9, -1, 50)
    assert m.ratio == D("0.225") and found.flagged(m)
    # Both lines that hold M are named, with the quantity that would have matched.
    assert [(u.parent, u.quantity, u.scrap, u.suggested) for u in m.lines] == [
        ("V", D(1), D(0), D("1.225")),
        ("W", D(3), D("0.1"), D("3.675")),
    ]
    # N, through the phantom K: 10 x 2 = 20 used, 50 - 20 = 30 counted: as the BOM says.
    assert (n.component, n.theoretical, n.counted, n.was_counted) == ("N", 20, 0, True)
    assert n.ratio == 0 and not found.flagged(n) and n.lines == ()
    # February: M opens at the counted 50; nothing counted, so nothing to tell.
    (feb,) = bom_accuracy(book, "2026-02").rows
    assert (feb.opening, feb.received, feb.theoretical, feb.closing) == (50, 10, 5, 55)
    assert not feb.was_counted and feb.difference == 0
    # A higher threshold flags nothing.
    assert not any(map(bom_accuracy(book, "2026-01", D("0.25")).flagged, found.rows))


def test_bom_accuracy_command_on_a_book(tmp_path: Path) -> None:
    scenario = tmp_path / "acc.yaml"
    scenario.write_text(ACCURACY)
    db = str(tmp_path / "acc.db")
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(scenario), "--db", db]).exit_code == 0
    result = runner.invoke(app, ["bom-accuracy", "--db", db, "--period", "2026-01", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["components"][0]["actual"] == "49"
    assert doc["components"][0]["bom_lines"][1]["suggested_quantity"] == "3.675"
    wrong = runner.invoke(app, ["bom-accuracy", "--db", db, "--period", "2025-12"])
    assert wrong.exit_code == 2
    assert "no stock moved in 2025-12 (periods: 2026-01, 2026-02)" in wrong.output
    table = runner.invoke(app, ["bom-accuracy", "--file", str(scenario), "--period", "2026-01"])
    assert table.exit_code == 0 and "22.5" in table.output


def test_reports_show_what_is_prorated_into_inventory() -> None:
    book = widgets()
    assert document(book)["prorated"] == {"raw_in_process": {"purchase_price": "0.03"}}
    rows = valuation_table(book).columns[0]._cells
    assert rows[-3:] == [
        "purchase_price variance prorated",
        "inventory on the books",
        "inventory accounts",  # what it reconciles to: the same 80.03
    ]
    on_books = valuation_table(book).columns[-2]._cells
    assert on_books[-2:] == ["80.03", "80.03"]
    assert "prorated" not in document(widgets("cogs"))


# ---------------------------------------------------------------- review findings, by hand


def test_a_negative_holding_takes_no_share_of_a_prorated_variance() -> None:
    """January sells the one F made; February reverses the sale (FG +1, COGS -1 unit of
    labor 1.00): the 5.00 labor variance goes to FG alone, not 100% / -100%."""
    text = """
book: {name: Back, disposition: {conversion: prorate}}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: 1}]}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: 10, unit_cost: "2.00"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: 1}
  - {id: s1, date: 2026-01-20, type: sale, item: F, quantity: 1}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: r1, date: 2026-02-03, type: reversal, reverses: s1}
  - {id: l1, date: 2026-02-10, type: conversion, amount: "5.00", element: labor}
  - {id: close-feb, date: 2026-02-28, type: close, period: 2026-02}
"""
    book = run_scenario(parse_scenario(text))
    assert lines_of(book, "close-feb") == [
        ("conversion_control", "labor", D("-5.00")),
        ("finished_goods", "variance:conversion:labor", D("5.00")),
    ]


def test_prorate_counts_the_conversion_a_close_inventoried_in_unsold_goods() -> None:
    """purchase+sale with the GAAP adjustment: 10 F made, 5 sold; the close inventories the
    5.00 labor of the 5 unsold, so FG and COGS hold 5.00 of labor each: 2.50 / 2.50."""
    text = """
book: {name: Unsold, triggers: purchase+sale, inventory_unsold_conversion: true,
       disposition: {conversion: prorate}}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: 1}]}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: 10, unit_cost: "2.00"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: 10}
  - {id: s1, date: 2026-01-20, type: sale, item: F, quantity: 5}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "15.00", element: labor}
  - {id: close, date: 2026-01-31, type: close, period: 2026-01}
"""
    book = run_scenario(parse_scenario(text))
    (disposal,) = [e for e in book.journal if e.event == "close" and "dispose" in e.memo]
    shares = [(ln.account.value, ln.element, ln.amount) for ln in disposal.lines]
    # 15.00 actual - 5.00 allocated at sale - 5.00 inventoried = 5.00 under-allocated
    assert ("finished_goods", "variance:conversion:labor", D("2.50")) in shares
    assert ("cogs", "", D("2.50")) in shares


def test_hours_without_a_cost_at_the_work_center_give_no_spending_variance() -> None:
    """Labor posted for the plant (no work center), 10 h reported at ASM for 20 W x 0.5 h:
    no spending variance can be told; efficiency (10 - 10) x 20 = 0."""
    text = (
        WIDGETS.read_text().split("events:")[0]
        + """events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: 100, unit_cost: "2.00"}
  - {id: c1, date: 2026-01-15, type: completion, item: W, quantity: 20}
  - {id: lab, date: 2026-01-31, type: conversion, amount: "200.00", element: labor}
  - {id: h, date: 2026-01-31, type: hours, work_center: ASM, element: labor, hours: 10}
"""
    )
    variances = widgets_book(text).period_variances("2026-01")
    assert "conversion_spending:ASM:labor" not in variances
    assert variances["conversion_efficiency:ASM:labor"] == 0


def widgets_book(text: str) -> Book:
    return run_scenario(parse_scenario(text, "widgets.yaml"))


def test_bom_accuracy_takes_what_an_order_gave_back_off_its_usage() -> None:
    """20 M released forward for an order of 10 F (2 each); 5 F made; the close of the order
    returns 10 M: the BOM used 10, not 20."""
    text = """
book: {name: Returned}
items:
  - {id: M, kind: material, standard_cost: "1.00", flush: forward}
  - {id: F, kind: finished}
boms:
  - {item: F, lines: [{component: M, quantity: 2}]}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: 30, unit_cost: "1.00"}
  - {id: r1, date: 2026-01-05, type: release, item: F, quantity: 10, order: WO-1}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: 5, order: WO-1}
  - {id: o1, date: 2026-01-12, type: order_close, order: WO-1}
  - {id: k1, date: 2026-01-31, type: count, item: M, quantity: 19}
"""
    (row,) = bom_accuracy(run_scenario(parse_scenario(text)), "2026-01").rows
    assert (row.received, row.theoretical, row.counted, row.actual) == (30, 10, -1, 11)
    assert row.ratio == D("0.1") and row.closing == 19


PENNIES = """
book: {{name: Pennies, currency: USD, triggers: purchase+completion, disposition: {disposition}}}
items:
  - {{id: M, kind: material, standard_cost: "0.3333"}}
  - {{id: F, kind: finished, standard_cost: {{conversion: "0.00"}}}}
boms:
  - {{item: F, lines: [{{component: M, quantity: "1"}}]}}
events:
{events}
"""


def pennies(events: list[str], disposition: str = "cogs", after: tuple[str, ...] = ()) -> Book:
    """The events on 5 January, the close of January, then ``after`` (on 2 February)."""
    body = "\n".join(
        [f"  - {{{e}, date: 2026-01-05}}" for e in events]
        + ["  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}"]
        + [f"  - {{{e}, date: 2026-02-02}}" for e in after]
    )
    text = PENNIES.format(disposition=disposition, events=body)
    return run_scenario(parse_scenario(text, "pennies.yaml"))


def standing(book: Book) -> dict[str, Decimal]:
    return {account: value for account, value in book.account_balances().items() if value}


def test_a_close_moves_the_pennies_of_rounding_to_the_rounding_variance() -> None:
    """M at 0.3333: each posting rounds to the cent, so the accounts drift from quantity x
    standard; the close brings them back and the pennies go to the rounding variance, which
    its disposal disposes of (DESIGN §3: a residue is never silently lost)."""
    # 3 M bought at once (RIP 1.00 = 3 x 0.3333 rounded), made one F at a time: RIP gives
    # 0.33 three times. Before the close RIP holds 0.01 for no stock and FG 0.99 for 1.00:
    # the close moves the cent from RIP to FG, and nothing is left to the variance.
    purchase = "id: p, type: purchase, item: M, quantity: '3', unit_cost: '0.3333'"
    book = pennies(
        [purchase] + [f"id: c{n}, type: completion, item: F, quantity: '1'" for n in (1, 2, 3)]
    )
    (close,) = [e for e in book.journal if e.event == "close-jan"]
    assert close.memo == "close 2026-01: inventory accounts rounded to the stock at standard"
    assert {(ln.account.value, ln.amount) for ln in close.lines} == {
        ("finished_goods", CENT),
        ("raw_in_process", -CENT),
    }
    assert standing(book) == {
        "accounts_payable": D("-1.00"),
        "finished_goods": D("1.00"),
    }
    assert "rounding" not in book.period_variances("2026-01")
    # 3 M bought one at a time (0.33 each) are worth 1.00: a favorable cent of rounding,
    # written off to cost of goods sold (cogs) or kept on its own line (keep).
    buys = [
        f"id: p{n}, type: purchase, item: M, quantity: '1', unit_cost: '0.3333'" for n in (1, 2, 3)
    ]
    for disposition, left in (("cogs", {"cogs": -CENT}), ("keep", {"rounding_variance": -CENT})):
        book = pennies(buys, disposition)
        assert book.period_variances("2026-01")["rounding"] == -CENT
        assert standing(book) == {
            "accounts_payable": D("-0.99"),
            "raw_in_process": D("1.00"),
            **left,
        }, disposition
        assert "rounding of postings" not in valuation_table(book).columns[0]._cells
    # a reopen takes the close back, the cent with it
    reopened = pennies(
        buys, after=("id: r, type: reopen, period: 2026-01, reason: a late invoice",)
    )
    assert standing(reopened) == {
        "accounts_payable": D("-0.99"),
        "raw_in_process": D("0.99"),
    }
    # the valuation reconciles to the accounts in every form, the pennies shown while open
    rows = valuation_table(reopened).columns[0]._cells
    assert rows[-2:] == ["inventory accounts", "rounding of postings"]
    assert valuation_reconciliation(reopened, D("1.00")) == [
        ("inventory accounts", "", D("0.99")),
        ("rounding of postings", "", D("-0.01")),
    ]
    page = period_report_html(reopened, 4)
    assert re.search(r"<td>rounding of postings</td>(<td[^>]*></td>){4}<td[^>]*>-0.01</td>", page)


#: purchase+sale with unsold conversion inventoried, and a cost set raising labor from 20 to
#: 30 an hour (3.00 to 4.50 a unit) on 1 February, when 8 units are on hand.
CONVERSION_ROLL = """
book: {name: R, currency: USD, triggers: TRIGGERS, inventory_unsold_conversion: true,
       disposition: DISPOSITION}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished}
work_centers:
  - {id: ASM, name: Assembly, rates: {labor: "20.00"}}
routings:
  - {item: F, operations: [{operation: 10, work_center: ASM, run_hours: "0.15"}]}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
cost_sets:
  - {name: feb, effective: 2026-02-01, rates: {ASM: {labor: "30.00"}}}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "10", unit_cost: "2.10"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "10"}
  - {id: s1, date: 2026-01-20, type: sale, item: F, quantity: "2", unit_price: "9.00"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "31.00", element: labor}
  - {id: close1, date: 2026-01-31, type: close, period: 2026-01}
  - {id: s2, date: 2026-02-10, type: sale, item: F, quantity: "6", unit_price: "9.00"}
  - {id: l2, date: 2026-02-28, type: conversion, amount: "5.00", element: labor}
  - {id: close2, date: 2026-02-28, type: close, period: 2026-02}
"""


@pytest.mark.parametrize("disposition", ["keep", "cogs"])
def test_a_cost_roll_revalues_the_conversion_a_close_inventoried(
    tmp_path: Path, disposition: str
) -> None:
    """January's close inventories 8 unsold units at 3.00 of labor (24.00). February's roll
    to 4.50 revalues them by 8 x 1.50 = 12.00 on 1 February, against the revaluation variance,
    as purchase+completion books (which carry every unit's conversion) do; the close then
    allocates only the rest. February's variances are those of purchase+completion: labor
    5.00 spent against none allocated, revaluation -12.00 (it was a -7.00 conversion variance
    and no revaluation). Kept in a store, the book reloads the same."""

    def book(triggers: str) -> Book:
        text = CONVERSION_ROLL.replace("TRIGGERS", triggers)
        return run_scenario(parse_scenario(text.replace("DISPOSITION", disposition), "roll"))

    at_sale, at_completion = book("purchase+sale"), book("purchase+completion")
    (revaluation,) = [e for e in at_sale.journal if e.event == "revaluation-2026-02-01"]
    assert sorted((ln.account, ln.element, ln.amount) for ln in revaluation.lines) == [
        (Account.FINISHED_GOODS, "labor", Decimal("12.00")),
        (Account.REVALUATION_VARIANCE, "", Decimal("-12.00")),
    ]
    february = dict(at_sale.closed["2026-02"].variances)
    assert february == dict(at_completion.closed["2026-02"].variances)
    assert february["revaluation"] == Decimal("-12.00") and february["conversion"] == Decimal(
        "5.00"
    )
    assert at_sale.unsold_conversion == {(Account.FINISHED_GOODS, "labor"): Decimal("9.00")}
    for period in ("2026-01", "2026-02"):
        assert gross_margin(at_sale.activity[period]) == gross_margin(
            at_completion.activity[period]
        )
    sale_balances, completion_balances = (
        at_sale.account_balances(),
        at_completion.account_balances(),
    )
    stock = ("finished_goods", "raw_in_process")
    assert sum(sale_balances.get(a, Decimal(0)) for a in stock) == sum(
        completion_balances.get(a, Decimal(0)) for a in stock
    )
    text = CONVERSION_ROLL.replace("TRIGGERS", "purchase+sale")
    scenario = parse_scenario(text.replace("DISPOSITION", disposition), "roll")
    # January closed late, after February's sale put the roll in force: the same books.
    late_events = [
        *scenario.events[:4],
        scenario.events[5],
        scenario.events[4],
        *scenario.events[6:],
    ]
    late = run_scenario(dataclasses.replace(scenario, events=late_events))
    assert late.closed == at_sale.closed
    assert late.account_balances() == at_sale.account_balances()
    assert late.unsold_conversion == at_sale.unsold_conversion
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        store.import_scenario(scenario.settings, scenario.master, scenario.events[:5])
        store.import_scenario(scenario.settings, scenario.master, scenario.events[5:])
        kept = store.snapshot()[0]
        assert kept.unsold_conversion == at_sale.unsold_conversion
        assert kept.account_balances() == at_sale.account_balances()
    finally:
        store.close()
