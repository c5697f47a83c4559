"""Margin by product and variance analysis (reports/analysis.py): the worked examples' known
figures, reconciliation with the statements and the close on every example, selections by
period, item, family and site, the stored book, and the command line. Random streams check
the same reconciliation after every event (tests/test_properties.py, invariant 7)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backflush.book import Book
from backflush.cli import app
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.reports import analysis as a
from backflush.reports.statements import statements
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import EXAMPLE_NAMES, EXAMPLES, SOLD_AFTER_THE_CLOSE

D = Decimal


def example(name: str) -> Book:
    return run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_reports_reconcile_with_the_statements_and_the_close(name: str) -> None:
    book = example(name)
    totals = a.margin_totals(a.margins(book))
    by_type = a.posted_by_type(a.variance_rows(book))
    posted = {*a.POSTED_TYPES.values(), "conversion"}
    for period in book.periods():
        found = statements(book, period)
        total = totals.get(period)
        margin = (total.sales, total.cogs) if total is not None else (D(0), D(0))
        # (its cost of goods sold with the write-down to NRV: the statement's gross margin)
        assert margin == (found.sales, found.cogs + found.nrv_writedown), period
        assert margin[0] - margin[1] == found.gross_margin, period
        want = {k: v for k, v in book.period_variances(period).items() if k in posted and v}
        assert {k: v for k, v in by_type.get(period, {}).items() if v} == want, period


def test_northshore_variances_by_item_and_element() -> None:
    """DESIGN's worked example: January 8,000 U price (the PCBs) and 12,000 U conversion
    (5,000 labor, 7,000 overhead); February 60,000 U usage and 63,000 U price, both PCB."""
    rows = a.variance_rows(example("northshore"))
    found = {(r.period, r.type, r.element, r.item): (r.amount, r.sign) for r in rows}
    assert found == {
        ("2026-01", "purchase_price", "", "PCB"): (D("8000.00"), "U"),
        ("2026-01", "conversion", "labor", ""): (D("5000.00"), "U"),
        ("2026-01", "conversion", "overhead", ""): (D("7000.00"), "U"),
        ("2026-02", "material_usage", "", "PCB"): (D("60000.00"), "U"),
        ("2026-02", "purchase_price", "", "PCB"): (D("63000.00"), "U"),
        ("2026-02", "conversion", "labor", ""): (D("40000.00"), "U"),
        ("2026-02", "conversion", "overhead", ""): (D("37000.00"), "U"),
    }
    by_item = a.pivot(rows, a.By.item)
    assert by_item[("purchase_price", "PCB")] == {"2026-01": D("8000.00"), "2026-02": D("63000.00")}
    assert next(iter(by_item)) == ("purchase_price", "PCB")  # in the close's order


def test_northshore_margin_by_product() -> None:
    rows = a.margins(example("northshore"))
    assert [(r.period, r.item, r.sold, r.sales, r.cogs, r.margin_percent) for r in rows] == [
        ("2026-01", "ROUTER", D(98000), D("5390000.00"), D("3920000.00"), D("27.3")),
        ("2026-01", a.CLOSED_TO_COGS, D(0), D(0), D("20000.00"), None),
        ("2026-02", "ROUTER", D(102000), D("5610000.00"), D("4080000.00"), D("27.3")),
        ("2026-02", a.CLOSED_TO_COGS, D(0), D(0), D("200000.00"), None),
    ]


def test_gearbox_favorable_conversion_and_revaluation_by_item() -> None:
    rows = a.variance_rows(example("gearbox_orders"))
    march = {(r.type, r.item): r for r in rows if r.period == "2026-03"}
    assert {k: (r.amount, r.sign) for k, r in march.items()} == {
        ("revaluation", "GEARBOX"): (D("-32.40"), "F"),
        ("revaluation", "SHAFT"): (D("-4.20"), "F"),
        ("revaluation", "STEEL"): (D("-170.60"), "F"),
    }
    january = [r for r in rows if r.period == "2026-01" and r.type == "conversion"]
    assert sum((r.amount for r in january), D(0)) == D("-760.00")
    assert {r.sign for r in january} == {"F"}


PLANT = """
book: {name: Families, currency: USD, triggers: completion}
items:
  - {id: RES, kind: material, standard_cost: "2.00"}
  - {id: CHAIR, kind: finished, family: seating, site: Lyon, standard_cost: {conversion: "3"}}
  - {id: STOOL, kind: finished, family: seating, site: Porto, standard_cost: {conversion: "1"}}
  - {id: DESK, kind: finished, family: tables, site: Lyon, standard_cost: {conversion: "5"}}
boms:
  - {item: CHAIR, lines: [{component: RES, quantity: 2}]}
  - {item: STOOL, lines: [{component: RES, quantity: 1}]}
  - {item: DESK, lines: [{component: RES, quantity: 4}]}
events:
  - {id: p1, type: purchase, date: 2026-01-02, item: RES, quantity: 40, unit_cost: "2.10"}
  - {id: c1, type: completion, date: 2026-01-20, item: CHAIR, quantity: 4}
  - {id: c2, type: completion, date: 2026-01-21, item: STOOL, quantity: 5}
  - {id: c3, type: completion, date: 2026-01-22, item: DESK, quantity: 2}
  - {id: s1, type: sale, date: 2026-01-25, item: CHAIR, quantity: 3, unit_price: "12.00"}
  - {id: s2, type: sale, date: 2026-01-26, item: STOOL, quantity: 5, unit_price: "4.00"}
  - {id: s3, type: sale, date: 2026-02-02, item: DESK, quantity: 1, unit_price: "20.00"}
"""


def plant() -> Book:
    return run_scenario(parse_scenario(PLANT, "plant.yaml"))


def test_selection_by_family_site_item_and_periods() -> None:
    book = plant()

    def shown(selection: a.Selection) -> list[tuple[str, str, Decimal, Decimal]]:
        return [(r.period, r.item, r.sales, r.cogs) for r in a.margins(book, selection)]

    assert shown(a.Selection(family="seating")) == [
        ("2026-01", "CHAIR", D("36.00"), D("21.00")),  # 3 x (2 x 2.00 + 3)
        ("2026-01", "STOOL", D("20.00"), D("15.00")),  # 5 x (2.00 + 1)
    ]
    assert shown(a.Selection(site="Lyon")) == [
        ("2026-01", "CHAIR", D("36.00"), D("21.00")),
        ("2026-02", "DESK", D("20.00"), D("13.00")),
    ]
    assert shown(a.Selection(first="2026-02")) == [("2026-02", "DESK", D("20.00"), D("13.00"))]
    assert shown(a.Selection(items=frozenset({"STOOL"}), last="2026-01")) == [
        ("2026-01", "STOOL", D("20.00"), D("15.00"))
    ]
    assert a.variance_rows(book, a.Selection(family="seating")) == []  # nothing by item
    assert [(r.type, r.item, r.amount, r.posted) for r in a.variance_rows(book)] == [
        ("conversion", "", D("-27.00"), True),  # applied 4 x 3 + 5 x 1 + 2 x 5, none spent
        ("purchase_price_unrecorded", "", D("4.00"), False),  # purchases are no trigger here
    ]


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (a.Selection(items=frozenset({"SOFA"})), "--item: no item SOFA in this book"),
        (
            a.Selection(family="beds"),
            "--family: no item has family 'beds'; the book has 'seating', 'tables'",
        ),
        (a.Selection(site="Oslo"), "--site: no item has site 'Oslo'; the book has 'Lyon', 'Porto'"),
        (a.Selection("2026-03", "2026-01"), "--from 2026-03 is after --to 2026-01"),
    ],
)
def test_a_selection_of_nothing_is_refused(selection: a.Selection, message: str) -> None:
    with pytest.raises(a.SelectionError) as caught:
        a.margins(plant(), selection)
    assert str(caught.value) == message


@pytest.mark.parametrize("name", ["northshore", "reopen", "gearbox_orders", "widgets_prorate"])
def test_a_stored_book_reports_as_the_book_in_memory(db_url: str, name: str) -> None:
    sc = read_scenario(EXAMPLES / f"{name}.yaml")
    store = Store(db_url)
    try:
        store.import_scenario(sc.settings, sc.master, sc.events)
        stored, _, _ = store.snapshot()
    finally:
        store.close()
    in_memory = run_scenario(sc)
    assert a.margins(stored) == a.margins(in_memory)
    assert a.variance_rows(stored) == a.variance_rows(in_memory)
    assert stored.disposed == {p: d for p, d in in_memory.disposed.items() if d}


def test_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    runner = CliRunner()
    assert (
        runner.invoke(app, ["import", str(EXAMPLES / "northshore.yaml"), "--db", db]).exit_code == 0
    )
    shown = runner.invoke(app, ["report", "--db", db, "--what", "margin"])
    assert shown.exit_code == 0, shown.output
    assert "5,390,000.00" in shown.output and "27.3" in shown.output  # figures never cut
    args = ["report", "--db", db, "--what", "variance-analysis", "--json"]
    found = json.loads(runner.invoke(app, args).output)
    assert found["posted_by_type"]["2026-02"] == {
        "material_usage": "60000.00",
        "purchase_price": "63000.00",
        "conversion": "77000.00",
    }
    assert {r["item"] for r in found["rows"] if r["type"] == "purchase_price"} == {"PCB"}
    for what in ("statements", "variances", "throughput"):
        ranged = runner.invoke(app, ["report", "--db", db, "--what", what, "--from", "2026-02"])
        assert ranged.exit_code == 0 and "2026-02" in ranged.output, what
        assert "2026-01" not in ranged.output, what
    refused = runner.invoke(app, ["report", "--db", db, "--what", "margin", "--to", "2026-1"])
    assert refused.exit_code == 2
    assert "--to: expected a period YYYY-MM, got '2026-1'" in refused.output
    refused = runner.invoke(app, ["report", "--db", db, "--what", "margin", "--item", "NOPE"])
    assert refused.exit_code == 2 and "no item NOPE" in refused.output


#: The same book with a family that looks like a spreadsheet formula.
FORMULA_FAMILY = SOLD_AFTER_THE_CLOSE.replace(
    "{id: F, kind: finished,",
    '{id: F, kind: finished, family: "=HYPERLINK(\\"http://x.test\\",\\"x\\")",',
)


def test_workbook_text_is_never_a_formula(tmp_path: Path) -> None:
    import openpyxl

    from backflush.reports.workbook import write_workbook

    book = run_scenario(parse_scenario(FORMULA_FAMILY, "s.yaml"))
    write_workbook(book, list(enumerate(book.entries(), 1)), tmp_path / "r.xlsx")
    sheet = openpyxl.load_workbook(tmp_path / "r.xlsx")["Margin by product"]
    family = [row[2] for row in sheet.iter_rows(min_row=2) if row[1].value == "F"]
    assert family and all(c.data_type == "s" and c.value.startswith("=HYPERLINK") for c in family)


def test_a_count_based_book_has_one_margin_per_period() -> None:
    book = example("cogs_first")
    rows = a.margins(book)
    assert {r.item for r in rows} == {a.ALL_PRODUCTS}
    for row in rows:
        found = statements(book, row.period)
        assert (row.sales, row.cogs) == (found.sales, found.cogs)
    assert [(r.period, r.sold) for r in rows] == [("2026-01", D(150)), ("2026-02", D(180))]
    with pytest.raises(a.SelectionError, match="no cost of goods sold by product"):
        a.margins(book, a.Selection(items=frozenset({"GADGET"})))


def test_a_range_outside_the_book_is_refused() -> None:
    with pytest.raises(a.SelectionError) as caught:
        a.margins(plant(), a.Selection(first="2027-01"))
    assert str(caught.value) == (
        "no period of the book is in 2027-01 to …; it has 2026-01 to 2026-02"
    )


def test_hours_split_reads_as_part_of_conversion() -> None:
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(a.variance_analysis_table(example("widgets_prorate")))
    text = console.export_text()
    assert "  of which spending" in text and "  of which efficiency" in text


def test_a_report_file_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    runner = CliRunner()
    runner.invoke(app, ["import", str(EXAMPLES / "northshore.yaml"), "--db", db])
    for args in (
        ["report", "--db", db, "--html", str(tmp_path / "missing" / "r.html")],
        ["chart", "--db", db, "-o", str(tmp_path / "missing" / "c.png")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "No such file or directory" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--what", "margin", "--by", "item"], "--by does not apply to --what margin;"),
        (["--what", "journal", "--to", "2026-01"], "--to does not apply to --what journal;"),
        (["--what", "summary", "--item", "ROUTER"], "--item does not apply to --what summary;"),
        (
            ["--what", "variance-analysis", "--by", "item", "--json"],
            "--by does not apply to --what variance-analysis written as JSON or to a file;",
        ),
        (["--what", "trial-balance", "--limit", "5"], "--limit does not apply"),
    ],
)
def test_an_option_the_report_does_not_take_is_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = str(tmp_path / "book.db")
    runner = CliRunner()
    runner.invoke(app, ["import", str(EXAMPLES / "northshore.yaml"), "--db", db])
    result = runner.invoke(app, ["report", "--db", db, *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
