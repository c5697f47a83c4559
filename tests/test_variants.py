"""The same events under every trigger policy, side by side (issue 5, item 2)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import httpx
import openpyxl
import pytest
from typer.testing import CliRunner

from backflush.api.app import create_app
from backflush.api.tokens import Role, create_token
from backflush.book import Book
from backflush.cli import app
from backflush.domain.model import Account, Policy
from backflush.domain.money import ZERO
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.reports.flags import standard_cogs
from backflush.reports.statements import statements
from backflush.reports.throughput import throughput, throughput_periods
from backflush.reports.variants import compare_variants, explain
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import EXAMPLE_NAMES, EXAMPLES, SOLD_AFTER_THE_CLOSE, serving

D = Decimal


def test_northshore_sells_everything_so_only_unposted_price_differences_move_income() -> None:
    """Two months, every router sold: no inventory under any policy. The variants without a
    purchase trigger never post the 71,000 unfavorable price difference (reported apart), so
    their income is that much higher; every other variant agrees with sequential costing."""
    variants = compare_variants(read_scenario(EXAMPLES / "northshore.yaml"))
    assert all(not v.refused for v in variants)
    seen = {v.policy: v for v in variants}
    base = seen[Policy.SEQUENTIAL]
    assert base.sales == D("11000000") and base.cogs == D("8220000")
    for v in variants:
        assert v.inventory == 0 and v.off_book == 0 and v.sales == base.sales
        assert v.income - base.income == v.unrecorded_price
        assert v.unrecorded_price == (
            D("71000") if v.policy in (Policy.COMPLETION, Policy.SALE) else 0
        )
    # Fewer triggers, fewer journal lines: the point of backflush.
    lines = {p.value: v.lines for p, v in seen.items()}
    assert lines == {
        "sequential": 67,
        "purchase+completion": 61,
        "purchase+sale": 57,
        "count": 54,
        "cogs-first": 50,
        "completion": 37,
        "sale": 33,
    }
    said = explain(variants, "USD")
    assert said[2] == (
        "completion: inventory 0.00 against sequential; income 71000.00; of which 71000.00 "
        "is a purchase price variance it does not post"
    )


def test_stock_off_the_books_explains_each_backflush_variant_against_sequential() -> None:
    """philippine_v1 ends with stock: sequential costing holds 13,480.00 of it at standard;
    each backflush variant holds part of it off the books, and on + off = 13,480.00."""
    seen = {v.policy: v for v in compare_variants(read_scenario(EXAMPLES / "philippine_v1.yaml"))}
    assert seen[Policy.SEQUENTIAL].inventory == D("13480")
    expected_off = {
        Policy.PURCHASE_COMPLETION: D(0),
        Policy.PURCHASE_SALE: D("1500"),  # conversion of unsold goods, costed at sale
        Policy.COMPLETION: D("10000"),  # material not recognised until used
        Policy.SALE: D("13480"),  # nothing on the books until sold
    }
    for policy, off in expected_off.items():
        assert seen[policy].off_book == off, policy
        assert seen[policy].inventory + off == D("13480"), policy


def test_conversion_a_close_inventoried_is_not_called_stock_off_the_books() -> None:
    """purchase+sale with unsold conversion inventoried: January's close puts 8 x 3.00 = 24.00
    of conversion on FG; February sells 6 of the 8. Against sequential costing the books hold
    18.00 more: 6.00 (2 units' conversion) off the books, less the 24.00 the close put on."""
    seen = {v.policy: v for v in compare_variants(parse_scenario(SOLD_AFTER_THE_CLOSE, "s.yaml"))}
    said = explain(list(seen.values()), "USD")
    line = next(s for s in said if s.startswith("purchase+sale:"))
    assert line.startswith(
        "purchase+sale: inventory 18.00 against sequential; 6.00 of it is stock at standard "
        "held off the books; all of it conversion cost of units not yet costed, expensed as "
        "incurred; less 24.00 conversion of unsold units the last close put on the books"
    )
    assert seen[Policy.PURCHASE_SALE].inventoried == D("24.00")


def test_what_else_sets_a_variant_apart_is_named() -> None:
    """nrv: the write-down to NRV is each book's own (stock off the books is not written
    down): under the completion trigger 3,600.00 of stock is off the books and 240.00 less
    written down. widgets_prorate: the price variance a close prorates into stock differs
    by 0.03 where purchases post nothing. Neither is work in process (there is none). (The
    March cost roll raises CHIP by 0.50: payables will be credited 400.00 more for the 800 off
    the books than they were invoiced.)"""
    said = explain(compare_variants(read_scenario(EXAMPLES / "nrv.yaml")), "USD")
    line = next(s for s in said if s.startswith("completion:"))
    assert line == (
        "completion: inventory -3360.00 against sequential; 3600.00 of it is stock at standard "
        "held off the books; all of it material not recognised until used; 240.00 a write-down "
        "to NRV of its own (stock off the books is not written down); income -160.00; of which "
        "-400.00 is a purchase price variance it does not post"
    )
    said = explain(compare_variants(read_scenario(EXAMPLES / "widgets_prorate.yaml")), "USD")
    line = next(s for s in said if s.startswith("completion:"))
    assert "; -0.03 variances prorated into stock; income 0.04" in line
    assert "other" not in line


def test_variants_command_prints_json_and_tables() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["variants", str(EXAMPLES / "philippine_v1.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    rows = {row["policy"]: row for row in doc["variants"]}
    assert rows["sale"]["off_book"] == "13480.00" and rows["sale"]["inventory"] == "0.00"
    assert doc["against_sequential"][1] == (
        "purchase+sale: inventory -1500.00 against sequential; 1500.00 of it is stock at "
        "standard held off the books; all of it conversion cost of units not yet costed, "
        "expensed as incurred; income -1500.00"
    )
    assert doc["against_sequential"][3] == (
        "sale: inventory -13480.00 against sequential; 13480.00 of it is stock at standard held "
        "off the books; 11980.00 material not recognised until used and 1500.00 conversion cost "
        "of units not yet costed, expensed as incurred; income -1500.00"
    )
    assert (rows["sale"]["off_book_material"], rows["completion"]["off_book_material"]) == (
        "11980.00",
        "10000.00",
    )
    table = runner.invoke(app, ["variants", str(EXAMPLES / "philippine_v1.yaml")])
    assert table.exit_code == 0
    assert "cogs-first: inventory 0.00 against sequential; income 0.00" in table.output


def test_throughput_beside_absorption_on_the_widget_plant() -> None:
    """January: sales 12 W x 30 = 360; their material 12 x 6.00 = 72; PPV 0.07: throughput
    287.93; all of January's conversion (231 + 95 = 326) is an expense: net profit -38.07.
    Absorption inventories 8 W of conversion (8 x 15 = 120) plus prorated shares (10.45):
    income 92.38. February sells the 8 W: throughput 240 - 48 = 192, income 61.58."""
    book = run_scenario(read_scenario(EXAMPLES / "widgets_prorate.yaml"))
    jan, feb = (throughput(book, p) for p in ("2026-01", "2026-02"))
    assert (jan.sales, jan.material_sold, jan.material_variances) == (360, 72, D("0.07"))
    assert (jan.throughput, jan.operating_expense, jan.net_profit) == (
        D("287.93"),
        326,
        D("-38.07"),
    )
    assert (jan.inventory_material, jan.inventory, jan.income) == (128, D("258.45"), D("92.38"))
    assert (feb.throughput, feb.net_profit, feb.income, feb.inventory_material) == (
        192,
        192,
        D("61.58"),
        80,
    )
    # The two differ by what inventory absorbs beyond its material, period by period.
    absorbed = ZERO
    for t in (jan, feb):
        now = t.inventory - t.inventory_material
        assert t.income - t.net_profit == now - absorbed, t.period
        absorbed = now


#: F is one M and 1.00 of conversion; M's standard rises from 2.00 to 3.00 on 15 January.
#: Ten F made, four sold on the 10th; the events go on from there.
F_OF_M = """
book: {name: TP, currency: USD, triggers: purchase+completion, disposition: cogs}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: "1.00"}}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
cost_sets:
  - {name: up, effective: 2026-01-15, materials: {M: "3.00"}}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "10", unit_cost: "2.00"}
  - {id: c1, date: 2026-01-03, type: completion, item: F, quantity: "10"}
  - {id: s1, date: 2026-01-10, type: sale, item: F, quantity: "4", unit_price: "10.00"}
"""


def test_throughput_counts_the_material_a_revaluation_adds_to_stock(tmp_path: Path) -> None:
    """M's standard rises from 2.00 to 3.00 in February, with 6 F (1 M + 1.00 conversion)
    in stock: the stock's material gains 6.00 against the revaluation variance. February:
    sales 10, material of the unit sold 3, material variances -6: throughput 13, net profit
    13; absorption income 10 - 4 + 6 = 12. Net profit and income still differ by what
    inventory absorbs beyond its material (5 F x 1.00 against 6 F x 1.00)."""
    text = F_OF_M.replace("2026-01-15", "2026-02-01") + (
        "  - {id: cv, date: 2026-01-31, type: conversion, amount: '10.00'}\n"
        "  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}\n"
        "  - {id: s2, date: 2026-02-10, type: sale, item: F, quantity: '1', unit_price: '10'}\n"
    )
    scenario = parse_scenario(text, "rv.yaml")
    book = run_scenario(scenario)
    assert book.revalued("2026-02") == {"material": D(6)} and book.revalued("2026-01") == {}
    store = Store(str(tmp_path / "rv.db"))  # a stored book keeps it
    store.import_scenario(scenario.settings, scenario.master, scenario.events)
    assert store.load().revalued("2026-02") == {"material": D(6)}
    jan, feb = (throughput(book, p) for p in ("2026-01", "2026-02"))
    assert (feb.sales, feb.material_sold, feb.material_variances) == (10, 3, -6)
    assert (feb.throughput, feb.net_profit, feb.income) == (13, 13, 12)
    assert (feb.inventory, feb.inventory_material) == (20, 15)
    absorbed = ZERO
    for t in (jan, feb):
        now = t.inventory - t.inventory_material
        assert t.income - t.net_profit == now - absorbed, t.period
        absorbed = now


def test_throughput_counts_a_count_adjustment_as_material() -> None:
    """Twelve M bought, ten used; M's standard rises to 3.00 on the 15th (revaluing the two
    left and the six F held); a count on the 20th finds one M: 3.00 to the inventory
    adjustment account, material lost, which throughput takes as it takes usage."""
    text = F_OF_M.replace("disposition: cogs}", "disposition: cogs, count_variance: adjustment}")
    text = text.replace('quantity: "10", unit_cost: "2.00"', 'quantity: "12", unit_cost: "2.00"')
    text += (
        "  - {id: n1, date: 2026-01-20, type: count, item: M, quantity: '1'}\n"
        "  - {id: cv, date: 2026-01-31, type: conversion, amount: '10.00'}\n"
    )
    book = run_scenario(parse_scenario(text, "count.yaml"))
    assert book.period_variances("2026-01")["inventory_adjustment"] == 3
    assert book.revalued("2026-01") == {"material": D(8)}  # 2 M and 6 F, 1.00 each
    jan = throughput(book, "2026-01")
    assert jan.material_variances == 3 - 8  # no price or usage variance
    assert jan.income - jan.net_profit == jan.inventory - jan.inventory_material


def test_throughput_leaves_out_the_conversion_of_finished_goods_scrapped_or_lost() -> None:
    """F sits in finished goods at its whole standard (2.00 of M + 1.00 conversion): a scrap
    report of one F on the 5th takes 3.00 to usage, a count on the 10th that finds four where
    the book holds five takes 3.00 to usage too. Their conversion, 2 x 1.00, was an operating
    expense when incurred: throughput takes only their material, 4.00, less the 4.00 of
    material the new standards of the 15th add to the four F left."""
    text = F_OF_M + (
        "  - {id: x1, date: 2026-01-05, type: scrap, item: F, quantity: '1'}\n"
        "  - {id: n1, date: 2026-01-10, type: count, item: F, quantity: '4'}\n"
        "  - {id: cv, date: 2026-01-31, type: conversion, amount: '10.00'}\n"
    )
    book = run_scenario(parse_scenario(text, "lost.yaml"))
    assert book.period_variances("2026-01")["material_usage"] == 6
    assert book.lost_conversion("2026-01") == 2
    jan = throughput(book, "2026-01")
    assert jan.material_variances == 4 - 4  # usage 6 less conversion 2; revaluation of 4 F
    assert jan.income - jan.net_profit == jan.inventory - jan.inventory_material


def _absorbed_apart(book: Book) -> dict[str, Decimal]:
    """Per period, how far net profit and income are apart beyond what inventory absorbs
    beyond its material in the period (nothing: the two views agree)."""
    found, absorbed = {}, ZERO
    for period in book.periods():
        t = throughput(book, period)
        now = t.inventory - t.inventory_material
        found[period] = t.income - t.net_profit - (now - absorbed)
        absorbed = now
    return found


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_throughput_and_income_differ_by_what_inventory_absorbs(name: str) -> None:
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    assert set(_absorbed_apart(book).values()) == {ZERO}


def test_throughput_of_a_periodic_book_counts_what_the_close_finds_missing() -> None:
    """The periodic count example: January buys 1000 PART at 2.10 and 300 BOARD at 4.90
    (3,570.00; 3,500.00 at standard, 70.00 of price variance) and ends with 1,830.00 of
    material at standard; the count finds 290 PART where 300 should be: 10 x 2.00 lost,
    which the close leaves in COGS. The material spent is 3,570 - 1,830 = 1,740: the 150
    GADGET sold hold 150 x 11.00 = 1,650, the rest, 90.00, is variance (70 price, 20 lost).
    February: 20.00 of price variance on BOARD and 2 BOARD counted missing (10.00)."""
    book = run_scenario(read_scenario(EXAMPLES / "count_periodic.yaml"))
    jan, feb = (throughput(book, p) for p in ("2026-01", "2026-02"))
    assert (jan.material_sold, jan.material_variances, jan.inventory_material) == (
        1650,
        90,
        1830,
    )
    assert (jan.net_profit, feb.material_variances, feb.net_profit) == (260, 30, 2890)


#: A count book: 10 A bought in January, 1.00 of labor in March, and a completion of 4 F
#: with one scrapped (5 A) backdated into February, a month that posts nothing.
BACKDATED_INTO_A_QUIET_MONTH = """
book: {name: P, currency: USD, triggers: count, disposition: cogs, shortage: allow}
items:
  - {id: A, kind: material, standard_cost: "1.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: A, quantity: "1"}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: A, quantity: "10", unit_cost: "1.00"}
  - {id: labor, date: 2026-03-05, type: conversion, amount: "1.00", element: labor}
  - {id: c1, date: 2026-02-10, type: completion, item: F, quantity: "4", scrapped: "1"}
"""


def test_throughput_shows_the_month_a_backdated_completion_lost_material_in(
    tmp_path: Path,
) -> None:
    """February posts no line (the count method moves quantities only), yet the scrapped F
    lost 1.00 of A there: throughput lists February with that material variance, in the
    library, on the command line, through the API and in the workbook."""
    scenario = parse_scenario(BACKDATED_INTO_A_QUIET_MONTH, "quiet.yaml")
    book = run_scenario(scenario)
    assert book.periods() == ["2026-01", "2026-03"]
    assert throughput_periods(book) == ["2026-01", "2026-02", "2026-03"]
    feb = throughput(book, "2026-02")
    assert (feb.material_variances, feb.net_profit, feb.inventory_material) == (1, -1, 9)
    path = tmp_path / "quiet.yaml"
    path.write_text(BACKDATED_INTO_A_QUIET_MONTH)
    db = tmp_path / "q.db"
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(path), "--db", str(db)]).exit_code == 0
    report = ["report", "--db", str(db), "--what", "throughput"]
    table = runner.invoke(app, report, env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "2026-02" in table.output, table.output
    picked = runner.invoke(app, [*report, "--from", "2026-02", "--to", "2026-02"])
    assert "2026-02" in picked.output and "2026-01" not in picked.output, picked.output
    store = Store(f"sqlite:///{db}", create=False)
    secret = create_token(store, "viewer", Role.viewer)[1]
    store.close()
    served = create_app(f"sqlite:///{db}")
    try:
        with serving(served) as url:
            headers = {"Authorization": f"Bearer {secret}"}
            answer = httpx.get(f"{url}/reports/throughput", headers=headers, timeout=30)
    finally:
        served.state.store.close()
    assert answer.status_code == 200, answer.text
    months = {p["period"]: p for p in answer.json()["periods"]}
    assert list(months) == ["2026-01", "2026-02", "2026-03"]
    assert months["2026-02"]["material_variances"] == "1.00"
    assert sum(Decimal(p["net_profit"]) for p in months.values()) == -2
    out = tmp_path / "q.xlsx"
    assert runner.invoke(app, ["report", "--db", str(db), "--xlsx", str(out)]).exit_code == 0
    sheet = openpyxl.load_workbook(out)["Throughput"]
    assert [c.value for c in sheet[1]] == ["figure", "2026-01", "2026-02", "2026-03"]


#: Costing sequentially: SUB is one A (1.00) and 1.00 of labor, F one SUB and 1.00 of labor.
SUB_IN_F = """
book: {name: S, currency: USD, triggers: sequential, disposition: cogs}
items:
  - {id: A, kind: material, standard_cost: "1.00"}
  - {id: SUB, kind: subassembly, standard_cost: {conversion: {labor: "1.00"}}}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: SUB, lines: [{component: A, quantity: "1"}]}
  - {item: F, lines: [{component: SUB, quantity: "1"}]}
events:
"""


def test_throughput_leaves_out_the_conversion_a_scrapped_assembly_held_in_sequential() -> None:
    """Sequential costing values SUB at 1.00 of A and 1.00 of labor: an F completed with one
    scrapped takes its SUB, 2.00, to usage, of which 1.00 is SUB's conversion (an operating
    expense when incurred): throughput counts 1.00 of material."""
    text = (
        SUB_IN_F
        + """\
  - {id: p1, date: 2026-01-05, type: purchase, item: A, quantity: "10", unit_cost: "1.00"}
  - {id: cs, date: 2026-01-10, type: completion, item: SUB, quantity: "5"}
  - {id: cf, date: 2026-01-12, type: completion, item: F, quantity: "1", scrapped: "1"}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
"""
    )
    book = run_scenario(parse_scenario(text, "sequential.yaml"))
    assert book.period_variances("2026-01")["material_usage"] == 2
    assert book.lost_conversion("2026-01") == 1
    jan = throughput(book, "2026-01")
    assert (jan.material_variances, jan.net_profit, jan.inventory_material) == (1, -1, 9)
    assert _absorbed_apart(book) == {"2026-01": ZERO}


def test_throughput_leaves_out_the_conversion_a_scrapped_good_held_in_its_component() -> None:
    """F (one M, 1.00 of conversion) is costed at completion: it sits in finished goods at
    2.00. G is made of one F: a G completed with one scrapped takes the F, 2.00, to usage,
    of which F's conversion (1.00) was an operating expense when incurred."""
    text = """
book: {name: G, currency: USD, triggers: purchase+completion, disposition: cogs}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
  - {id: F, kind: finished, standard_cost: {conversion: "1.00"}}
  - {id: G, kind: finished}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
  - {item: G, lines: [{component: F, quantity: "1"}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "4", unit_cost: "1.00"}
  - {id: cf, date: 2026-01-10, type: completion, item: F, quantity: "4"}
  - {id: cg, date: 2026-01-12, type: completion, item: G, quantity: "1", scrapped: "1"}
"""
    book = run_scenario(parse_scenario(text, "component.yaml"))
    assert book.period_variances("2026-01")["material_usage"] == 2
    assert book.lost_conversion("2026-01") == 1
    jan = throughput(book, "2026-01")
    assert (jan.material_variances, jan.inventory_material) == (1, 3)  # 2 F and 1 G
    assert _absorbed_apart(book) == {"2026-01": ZERO}


def test_throughput_takes_back_the_conversion_a_written_off_shortage_holds() -> None:
    """Costing sequentially, an F completed without its SUB (1.00 of A, 1.00 of labor) queues
    the SUB; written off ("found on the shelf"), the SUB comes back to stock at 2.00 against
    usage, its labor with it, as a count gain: throughput takes back only its material."""
    text = (
        SUB_IN_F.replace("cogs}", "cogs, shortage: queue}")
        + """\
  - {id: cf, date: 2026-01-12, type: completion, item: F, quantity: "1"}
  - {id: wo, date: 2026-01-20, type: write_off, event: cf, item: SUB, reason: on the shelf}
"""
    )
    book = run_scenario(parse_scenario(text, "written-off.yaml"))
    assert book.lost_conversion("2026-01") == -1
    assert _absorbed_apart(book) == {"2026-01": ZERO}


def test_throughput_values_stock_at_the_standards_the_book_holds_it_at() -> None:
    """M's new standard (3.00 from 15 January) is adopted by the first event on or after
    that day: until then the stock of the open period is at 2.00, in both views."""
    text = F_OF_M.replace("2026-01-15", "2026-01-20")
    book = run_scenario(parse_scenario(text, "pending.yaml"))
    assert book.epoch < dt.date(2026, 1, 20)
    jan = throughput(book, "2026-01")
    assert (jan.inventory_material, jan.inventory) == (12, 18)  # 6 F at 2.00 (+ 1.00)
    assert _absorbed_apart(book) == {"2026-01": ZERO}


def test_throughput_report_through_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    runner = CliRunner()
    imported = runner.invoke(
        app, ["import", str(EXAMPLES / "widgets_prorate.yaml"), "--db", str(db)]
    )
    assert imported.exit_code == 0, imported.output
    result = runner.invoke(app, ["report", "--db", str(db), "--what", "throughput"])
    assert result.exit_code == 0, result.output
    assert "-38.07" in result.output and "287.93" in result.output


def test_reports_workbook_has_numeric_cells_that_reconcile(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    runner = CliRunner()
    scenario = str(EXAMPLES / "widgets_prorate.yaml")
    assert runner.invoke(app, ["import", scenario, "--db", str(db)]).exit_code == 0
    out = tmp_path / "reports.xlsx"
    result = runner.invoke(app, ["report", "--db", str(db), "--xlsx", str(out)])
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == [
        "Trial balance",
        "Valuation",
        "Variances",
        "Throughput",
        "Margin by product",
        "Variance analysis",
        "Flags",
        "Journal",
    ]
    rows = book["Trial balance"].iter_rows(min_row=2, values_only=True)
    trial = {r[0]: (r[1] or 0) - (r[2] or 0) for r in rows}
    assert trial["cogs"] == pytest.approx(446.04) and trial["raw_in_process"] == pytest.approx(
        80.03
    )
    assert sum(trial.values()) == pytest.approx(0)
    amounts = [c for row in book["Trial balance"]["B2:C7"] for c in row if c.value is not None]
    assert amounts and all(isinstance(c.value, (int, float)) for c in amounts)
    assert {c.number_format for c in amounts} == {"#,##0.00"}
    figures = book["Throughput"].iter_rows(min_row=2, values_only=True)
    throughput_rows = {r[0]: r[1:] for r in figures}
    assert throughput_rows["net_profit"] == pytest.approx((-38.07, 192))
    margin = list(book["Margin by product"].iter_rows(min_row=2, values_only=True))
    assert sum(r[5] for r in margin) == pytest.approx(446.04)  # = COGS on the trial balance
    assert all(isinstance(r[5], (int, float)) for r in margin)
    analysis = list(book["Variance analysis"].iter_rows(min_row=2, values_only=True))
    assert analysis and all(isinstance(r[5], (int, float)) for r in analysis)
    journal = list(book["Journal"].iter_rows(min_row=2, values_only=True))
    assert sum(r[7] or 0 for r in journal) == pytest.approx(sum(r[8] or 0 for r in journal))
    assert (journal[0][0], journal[0][1].date()) == (1, dt.date(2026, 1, 2))  # entry 1's line


def test_statements_of_the_widget_plant_by_hand() -> None:
    """January: sales 360.00, COGS 267.62 (12 x 21.00 + 15.62 prorated): income 92.38.
    At its end RIP 80.03 and FG 178.42, receivables 360.00 = assets 618.45, against payables
    200.07, accrued conversion 326.00 (231 + 95) and the result 92.38."""
    book = run_scenario(read_scenario(EXAMPLES / "widgets_prorate.yaml"))
    jan = statements(book, "2026-01")
    assert (jan.sales, jan.cogs, jan.gross_margin, jan.income) == (
        360,
        D("267.62"),
        D("92.38"),
        D("92.38"),
    )
    assert (jan.raw_in_process, jan.finished_goods, jan.assets) == (
        D("80.03"),
        D("178.42"),
        D("618.45"),
    )
    assert (jan.payables, jan.accrued_conversion, jan.result_to_date) == (
        D("200.07"),
        326,
        D("92.38"),
    )
    feb = statements(book, "2026-02")
    assert feb.income == D("61.58") and feb.result_to_date == D("153.96")


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_statements_balance_and_reconcile_with_the_trial_balance(name: str) -> None:
    """Assets = payables + accrued conversion + result to date, every period; the result to
    date is the sum of the periods' incomes; the last period's extract is the trial balance."""
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    to_date = ZERO
    for period in book.periods():
        s = statements(book, period)
        to_date += s.income
        assert s.assets == s.payables + s.accrued_conversion + s.result_to_date, period
        assert s.result_to_date == to_date, period
    if book.periods():
        last = statements(book, book.periods()[-1])
        balances = book.account_balances()
        assert last.finished_goods == balances.get("finished_goods", ZERO)
        assert last.receivables == balances.get("accounts_receivable", ZERO)


def test_reports_as_csv_files_with_exact_decimals(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    runner = CliRunner()
    scenario = str(EXAMPLES / "widgets_prorate.yaml")
    assert runner.invoke(app, ["import", scenario, "--db", str(db)]).exit_code == 0
    folder = tmp_path / "csv"
    result = runner.invoke(app, ["report", "--db", str(db), "--csv", str(folder)])
    assert result.exit_code == 0 and "8 CSV files written" in result.output
    assert sorted(p.name for p in folder.iterdir()) == [
        "flags.csv",
        "journal.csv",
        "margin_by_product.csv",
        "throughput.csv",
        "trial_balance.csv",
        "valuation.csv",
        "variance_analysis.csv",
        "variances.csv",
    ]
    with (folder / "trial_balance.csv").open(newline="") as handle:
        trial = {r["account"]: r for r in csv.DictReader(handle)}
    assert trial["cogs"]["debit"] == "446.04" and trial["raw_in_process"]["debit"] == "80.03"
    assert trial["accounts_payable"] == {
        "account": "accounts_payable",
        "debit": "",
        "credit": "200.07",
    }
    with (folder / "journal.csv").open(newline="") as handle:
        journal = list(csv.DictReader(handle))
    assert (journal[0]["entry"], journal[0]["date"], journal[0]["event"]) == (
        "1",
        "2026-01-02",
        "p1",
    )
    # the valuation's total taken to the inventory accounts of the trial balance, as on screen
    with (folder / "valuation.csv").open(newline="") as handle:
        valued = {r["item"]: r for r in csv.DictReader(handle)}
    labels = list(valued)
    stock = sum(D(valued[i]["on books"]) for i in labels[: labels.index("total")])
    assert D(valued["total"]["on books"]) == stock and not valued["total"]["kind"]
    prorated = [r for label, r in valued.items() if label.endswith("variance prorated")]
    assert prorated and all(r["kind"] in {"raw_in_process", "finished_goods"} for r in prorated)
    assert D(valued["inventory on the books"]["on books"]) == stock + sum(
        D(r["on books"]) for r in prorated
    )
    inventory = sum(
        D(trial[a]["debit"] or 0) - D(trial[a]["credit"] or 0)
        for a in ("raw_materials", "raw_in_process", "finished_goods")
        if a in trial
    )
    assert D(valued["inventory accounts"]["on books"]) == inventory
    debits = sum(D(r["debit"] or 0) for r in journal)
    assert debits == sum(D(r["credit"] or 0) for r in journal)


def test_units_sold_are_costed_at_the_standards_each_sale_used() -> None:
    """M's standard rises from 2.00 to 3.00 on 15 January (F: 1 M + 1.00 conversion). Four F
    sold on the 10th took 4 x 3.00 to COGS, one sold on the 20th 4.00: 16.00, of which
    material 4 x 2.00 + 3.00 = 11.00 (conversion, of no element, 5.00), not the 15.00 of
    five at the month's end. Throughput, the red flags and a prorated disposal read it so."""
    text = F_OF_M + (
        '  - {id: s2, date: 2026-01-20, type: sale, item: F, quantity: "1", unit_price: "10.00"}\n'
        '  - {id: cv, date: 2026-01-31, type: conversion, amount: "10.00"}\n'
    )
    book = run_scenario(parse_scenario(text, "tp.yaml"))
    cogs = [ln.amount for e in book.journal for ln in e.lines if ln.account.value == "cogs"]
    assert cogs == [D(12), D(4)]
    assert book.sold_at_standard("2026-01") == {"material": D(11), "": D(5)}
    assert throughput(book, "2026-01").material_sold == D(11)
    assert standard_cogs(book, "2026-01") == D(16)
    assert book.standard_content("2026-01")[Account.COGS] == {"material": D(11), "": D(5)}
    # a reversal takes its sale's cost back out
    undone = run_scenario(
        parse_scenario(
            text + "  - {id: r1, date: 2026-01-25, type: reversal, reverses: s2}\n", "tp.yaml"
        )
    )
    assert undone.sold_at_standard("2026-01") == {"material": D(8), "": D(4)}
