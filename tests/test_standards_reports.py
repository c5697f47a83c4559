"""Standard cost reports (backflush.reports.standards) and their commands: pick list, indented
BOM, where-used, rollup, cost set comparison and release, master data import and export.

Every figure of the three-level plant below is computed by hand in the comments and asserted
exactly (Decimal equality).

The plant (finished good -> subassembly -> phantom -> materials)::

    FG  finished, lot size 50
      routing  op 10 ASSY  setup 2 h per lot, run 0.19 h, yield 0.95
               op 20 TEST  run 0.05 h
      BOM (from the beginning)
        SUB  1.9   scrap 0.05  at op 10
        M3   0.38              (no operation: the first, op 10)   M3 flushes forward
        M4   1                 at op 20, flush manual
      BOM (from 2026-07-01): the same with M3 0.76
    SUB subassembly          routing op 10 ASSY run 0.1 h
        PH   1
        M1   0.5   scrap 0.1
    PH  phantom              routing op 10 TEST run 0.02 h
        M2   4     scrap 0.25
        M1   0.2
    M1 4.00/KG  M2 0.10  M3 0.50  M4 1.25
    ASSY labor 30/h overhead 45/h   TEST labor 40/h overhead 20/h
    cost set 2027 (not released): M1 4.40, ASSY labor 33/h

Yields from each operation of FG to the end: op 20: 1; op 10: 0.95 x 1 = 0.95. A line consumed
at op 10 (SUB; M3, by default) is inflated by 1/0.95, one at op 20 (M4) is not.

PH  conversion (TEST 0.02 h): labor 0.02 x 40 = 0.80, overhead 0.02 x 20 = 0.40 -> 1.20
    M2 4 x 1.25 = 5 per PH -> 5 x 0.10 = 0.50;  M1 0.2 -> 0.2 x 4.00 = 0.80
    material 1.30, total 2.50
SUB conversion own (ASSY 0.1 h): labor 3.00, overhead 4.50; PH's flows through (phantom):
    labor 3.00 + 0.80 = 3.80, overhead 4.50 + 0.40 = 4.90 -> 8.70
    PH 1 -> material 1.30;  M1 0.5 x 1.1 = 0.55 -> 2.20;  material 3.50;  total 12.20
    stocked requirements: M2 5, M1 0.2 + 0.55 = 0.75
FG  op 10 hours: 2 / 50 + 0.19 / 0.95 = 0.04 + 0.2 = 0.24 -> labor 7.20, overhead 10.80
    op 20 hours: 0.05 / 1 = 0.05 -> labor 2.00, overhead 1.00
    conversion this level: labor 9.20, overhead 11.80 -> 21.00
    SUB 1.9 x 1.05 / 0.95 = 1.995 / 0.95 = 2.1 -> 2.1 x 12.20 = 25.62
    M3 0.38 / 0.95 = 0.4 -> 0.20;  M4 1 -> 1.25
    material 25.62 + 0.20 + 1.25 = 27.07;  total 27.07 + 21.00 = 48.07
    lower levels by element: material 2.1 x 3.50 + 0.20 + 1.25 = 7.35 + 1.45 = 8.80,
    labor 2.1 x 3.80 = 7.98, overhead 2.1 x 4.90 = 10.29 (8.80 + 7.98 + 10.29 = 27.07)
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from backflush.cli import app
from backflush.domain.model import Flush, Kind, MasterData
from backflush.engine.standards import StandardError, Standards
from backflush.formats.scenario import Scenario, parse_scenario
from backflush.reports import standards as r
from backflush.store.repository import Store
from helpers import dump_file

D = Decimal
JAN = dt.date(2026, 1, 20)
JUL = dt.date(2026, 7, 1)

PLANT = """\
book:
  name: Three Level Plant
  currency: USD
  triggers: purchase+completion
work_centers:
  - {id: ASSY, name: Assembly, rates: {labor: "30", overhead: "45"}}
  - {id: TEST, name: Test, rates: {labor: "40", overhead: "20"}}
items:
  - {id: FG, kind: finished, lot_size: "50"}
  - {id: SUB, kind: subassembly}
  - {id: PH, kind: phantom}
  - {id: M1, kind: material, uom: KG, standard_cost: "4.00"}
  - {id: M2, kind: material, standard_cost: "0.10"}
  - {id: M3, kind: material, flush: forward, standard_cost: "0.50"}
  - {id: M4, kind: material, standard_cost: "1.25"}
routings:
  - item: FG
    operations:
      - {operation: 10, work_center: ASSY, setup_hours: "2", run_hours: "0.19", yield: "0.95"}
      - {operation: 20, work_center: TEST, run_hours: "0.05"}
  - item: SUB
    operations:
      - {operation: 10, work_center: ASSY, run_hours: "0.1"}
  - item: PH
    operations:
      - {operation: 10, work_center: TEST, run_hours: "0.02"}
boms:
  - item: FG
    lines:
      - {component: SUB, quantity: "1.9", scrap: "0.05", operation: 10}
      - {component: M3, quantity: "0.38"}
      - {component: M4, quantity: "1", operation: 20, flush: manual}
  - item: FG
    effective_from: 2026-07-01
    lines:
      - {component: SUB, quantity: "1.9", scrap: "0.05", operation: 10}
      - {component: M3, quantity: "0.76"}
      - {component: M4, quantity: "1", operation: 20, flush: manual}
  - item: SUB
    lines:
      - {component: PH, quantity: "1"}
      - {component: M1, quantity: "0.5", scrap: "0.1"}
  - item: PH
    lines:
      - {component: M2, quantity: "4", scrap: "0.25"}
      - {component: M1, quantity: "0.2"}
cost_sets:
  - {name: "2027", materials: {M1: "4.40"}, rates: {ASSY: {labor: "33"}}}
events:
  - {id: po-1, date: 2026-01-05, type: purchase, item: M1, quantity: "1000", unit_cost: "4.00"}
  - {id: po-2, date: 2026-01-05, type: purchase, item: M2, quantity: "5000", unit_cost: "0.10"}
  - {id: po-3, date: 2026-01-05, type: purchase, item: M3, quantity: "500", unit_cost: "0.50"}
  - {id: po-4, date: 2026-01-05, type: purchase, item: M4, quantity: "500", unit_cost: "1.25"}
  - {id: sub-1, date: 2026-01-10, type: completion, item: SUB, quantity: "20"}
  - {id: rel-1, date: 2026-01-12, type: release, item: FG, quantity: "5"}
  - {id: iss-1, date: 2026-01-12, type: issue, item: M4, quantity: "5"}
  - {id: fg-1, date: 2026-01-15, type: completion, item: FG, quantity: "5"}
"""
# Stock after the events (what a release revalues):
#   M1 1000 - 20 x 0.75 = 985;  M2 5000 - 20 x 5 = 4900;  M3 500 - 5 x 0.4 = 498;
#   M4 500 - 5 = 495;  SUB 20 - 5 x 2.1 = 9.5;  FG 5.


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return parse_scenario(PLANT, "plant.yaml")


@pytest.fixture(scope="module")
def standards(scenario: Scenario) -> Standards:
    return Standards(scenario.settings, scenario.master)


@pytest.fixture(scope="module")
def next_year(scenario: Scenario) -> Standards:
    return Standards(scenario.settings, scenario.master, scenario.master.cost_sets["2027"])


# ---------------------------------------------------------------- pick list


def test_pick_list_of_the_finished_good(standards: Standards) -> None:
    found = r.pick_list(standards, "FG", D(100), JAN)
    assert [flush for flush, _ in found.groups] == [Flush.BACKWARD, Flush.FORWARD, Flush.MANUAL]
    rows = [
        (ln.flush, ln.component, ln.kind, ln.uom, ln.per_unit, ln.quantity, ln.unit_cost, ln.value)
        for ln in found.lines
    ]
    assert rows == [
        # SUB: 1.9 x 1.05 / 0.95 = 2.1 per FG; 100 x 2.1 = 210; 210 x 12.20 = 2562.00
        (Flush.BACKWARD, "SUB", Kind.SUBASSEMBLY, "EA", D("2.1"), D(210), D("12.20"), D(2562)),
        # M3 (forward by its item): 0.38 / 0.95 = 0.4; 40; 40 x 0.50 = 20.00
        (Flush.FORWARD, "M3", Kind.MATERIAL, "EA", D("0.4"), D(40), D("0.50"), D(20)),
        # M4 (manual on the line), at op 20 (no loss after it): 1; 100; 100 x 1.25 = 125.00
        (Flush.MANUAL, "M4", Kind.MATERIAL, "EA", D(1), D(100), D("1.25"), D(125)),
    ]
    assert found.value(Flush.BACKWARD) == D(2562)
    # 2562 + 20 + 125 = 2707.00 = 100 x the material standard 27.07
    assert found.value() == D(2707) == 100 * standards.unit_cost("FG", JAN).material


def test_pick_list_explodes_through_the_phantom(standards: Standards) -> None:
    found = r.pick_list(standards, "SUB", D(10), JAN)
    rows = [(ln.component, ln.uom, ln.per_unit, ln.quantity, ln.value) for ln in found.lines]
    assert rows == [
        # M2 from PH: 1 x 4 x 1.25 = 5 per SUB; 50; 50 x 0.10 = 5.00
        ("M2", "EA", D(5), D(50), D("5.00")),
        # M1: through PH 0.2 + directly 0.5 x 1.1 = 0.55 -> 0.75 KG; 7.5; 7.5 x 4.00 = 30.00
        ("M1", "KG", D("0.75"), D("7.5"), D(30)),
    ]
    assert found.value() == D(35)  # = 10 x SUB's material 3.50
    assert {f for f, _ in found.groups} == {Flush.BACKWARD}


def test_pick_list_uses_the_bom_version_of_its_date(standards: Standards) -> None:
    found = r.pick_list(standards, "FG", D(100), JUL)
    m3 = next(ln for ln in found.lines if ln.component == "M3")
    assert (m3.per_unit, m3.quantity, m3.value) == (D("0.8"), D(80), D(40))  # 0.76 / 0.95 = 0.8


# ---------------------------------------------------------------- indented BOM


def test_indented_bom_rows(standards: Standards) -> None:
    found = r.indented_bom(standards, "FG", JAN)
    assert found.version is None  # the first version, from the beginning
    rows = [
        (
            x.depth,
            x.parent,
            x.component,
            x.phantom,
            x.quantity,
            x.scrap,
            x.operation,
            x.flush,
            x.per_parent,
            x.per_top,
            x.unit_cost,
            x.extended,
            x.share,
        )
        for x in found.rows
    ]
    B, F, M = Flush.BACKWARD, Flush.FORWARD, Flush.MANUAL
    assert rows == [
        # SUB 2.1 per FG (see above) x 12.20 = 25.62; 25.62 / 48.07 = 53.297...% -> 53.30
        (1, "FG", "SUB", False, D("1.9"), D("0.05"), 10, B, D("2.1"), D("2.1"), D("12.2"),
         D("25.62"), D("53.30")),
        # PH 1 per SUB (SUB has no loss), 2.1 per FG; 2.1 x 2.50 = 5.25; 2.50 / 12.20 -> 20.49
        (2, "SUB", "PH", True, D(1), D(0), None, B, D(1), D("2.1"), D("2.5"),
         D("5.25"), D("20.49")),
        # M2 4 x 1.25 = 5 per PH, 2.1 x 5 = 10.5 per FG; 10.5 x 0.10 = 1.05; 0.50 / 2.50 = 20%
        (3, "PH", "M2", False, D(4), D("0.25"), None, B, D(5), D("10.5"), D("0.1"),
         D("1.05"), D("20.00")),
        # M1 0.2 per PH, 2.1 x 0.2 = 0.42 per FG; 0.42 x 4 = 1.68; 0.80 / 2.50 = 32%
        (3, "PH", "M1", False, D("0.2"), D(0), None, B, D("0.2"), D("0.42"), D(4),
         D("1.68"), D("32.00")),
        # M1 0.5 x 1.1 = 0.55 per SUB, 2.1 x 0.55 = 1.155 per FG; x 4 = 4.62; 2.20 / 12.20 -> 18.03
        (2, "SUB", "M1", False, D("0.5"), D("0.1"), None, B, D("0.55"), D("1.155"), D(4),
         D("4.62"), D("18.03")),
        # M3 0.38 / 0.95 = 0.4; 0.4 x 0.50 = 0.20; 0.20 / 48.07 = 0.416...% -> 0.42
        (1, "FG", "M3", False, D("0.38"), D(0), None, F, D("0.4"), D("0.4"), D("0.5"),
         D("0.20"), D("0.42")),
        # M4 at op 20: 1; 1.25; 1.25 / 48.07 = 2.600...% -> 2.60
        (1, "FG", "M4", False, D(1), D(0), 20, M, D(1), D(1), D("1.25"),
         D("1.25"), D("2.60")),
    ]  # fmt: skip
    # the first level adds up to FG's material; a phantom's lines to the phantom's material
    assert sum(x.extended for x in found.rows if x.depth == 1) == D("27.07")
    # PH's lines: 1.05 + 1.68 = 2.73 = 2.1 x PH's material 1.30; with 2.1 x its conversion
    # 1.20 = 2.52 that is PH's row: 2.73 + 2.52 = 5.25
    assert sum(x.extended for x in found.rows if x.parent == "PH") == D("2.73")
    assert all(x.kind is Kind.PHANTOM for x in found.rows if x.phantom)


def test_indented_bom_operations_and_summary(standards: Standards) -> None:
    found = r.indented_bom(standards, "FG", JAN)
    operations = [
        (op.depth, op.item, op.operation, op.work_center, op.hours, op.costs, op.per_top,
         op.extended)
        for op in found.operations
    ]  # fmt: skip
    assert operations == [
        # 2 / 50 + 0.19 / 0.95 = 0.24 h: labor 0.24 x 30 = 7.20, overhead 0.24 x 45 = 10.80
        (0, "FG", 10, "ASSY", D("0.24"), (("labor", D("7.2")), ("overhead", D("10.8"))), D(1),
         D(18)),
        # 0.05 h: labor 0.05 x 40 = 2.00, overhead 0.05 x 20 = 1.00
        (0, "FG", 20, "TEST", D("0.05"), (("labor", D(2)), ("overhead", D(1))), D(1), D(3)),
        # SUB: 0.1 h: 3.00 + 4.50 = 7.50 per SUB; 2.1 SUB per FG -> 15.75
        (1, "SUB", 10, "ASSY", D("0.1"), (("labor", D(3)), ("overhead", D("4.5"))), D("2.1"),
         D("15.75")),
        # PH: 0.02 h: 0.80 + 0.40 = 1.20 per PH; 2.1 PH per FG -> 2.52
        (2, "PH", 10, "TEST", D("0.02"), (("labor", D("0.8")), ("overhead", D("0.4"))),
         D("2.1"), D("2.52")),
    ]  # fmt: skip
    summary = [(s.element, s.this_level, s.lower_level, s.total) for s in found.summary]
    assert summary == [
        ("material", D(0), D("8.80"), D("8.80")),
        ("labor", D("9.20"), D("7.98"), D("17.18")),  # 9.20 + 7.98
        ("overhead", D("11.80"), D("10.29"), D("22.09")),  # 11.80 + 10.29
    ]
    # 8.80 + 17.18 + 22.09 = 48.07, exactly the standard
    assert sum(s.total for s in found.summary) == found.total == D("48.07")
    assert found.total == standards.unit_cost("FG", JAN).total


def test_indented_bom_of_a_later_version(standards: Standards) -> None:
    found = r.indented_bom(standards, "FG", JUL)
    assert found.version == JUL
    m3 = next(x for x in found.rows if x.component == "M3")
    # 0.76 / 0.95 = 0.8 per FG, 0.8 x 0.50 = 0.40; FG: 27.07 - 0.20 + 0.40 = 27.27 + 21 = 48.27
    assert (m3.version, m3.per_parent, m3.extended) == (JUL, D("0.8"), D("0.40"))
    assert found.total == D("48.27")
    # the subassembly's lines are on its own version (from the beginning)
    assert {x.version for x in found.rows if x.parent == "SUB"} == {None}


def test_indented_bom_under_a_cost_set(next_year: Standards) -> None:
    found = r.indented_bom(next_year, "FG", JAN)
    # 2027: M1 4.40, ASSY labor 33
    # PH: M2 0.50 + M1 0.2 x 4.40 = 0.88 -> 1.38, + 1.20 = 2.58
    # SUB: 1.38 + 0.55 x 4.40 = 2.42 -> 3.80; labor 0.1 x 33 + 0.80 = 4.10, overhead 4.90 -> 12.80
    # FG: labor 0.24 x 33 + 2.00 = 9.92, overhead 11.80 -> 21.72;
    #     material 2.1 x 12.80 = 26.88 + 0.20 + 1.25 = 28.33; total 50.05
    assert [(x.component, x.unit_cost) for x in found.rows if x.depth <= 2] == [
        ("SUB", D("12.80")),
        ("PH", D("2.58")),
        ("M1", D("4.40")),
        ("M3", D("0.5")),
        ("M4", D("1.25")),
    ]
    assert found.total == D("50.05")
    assert {s.element: s.this_level for s in found.summary}["labor"] == D("9.92")


# ---------------------------------------------------------------- where-used


def test_where_used_through_the_phantom(scenario: Scenario) -> None:
    rows = r.where_used(scenario.master, "M2", JAN)
    assert [(x.level, x.parent, x.child, x.per_parent, x.per_unit, x.path) for x in rows] == [
        (1, "PH", "M2", D(5), D(5), ("PH", "M2")),  # 4 x 1.25
        (2, "SUB", "PH", D(1), D(5), ("SUB", "PH", "M2")),
        (3, "FG", "SUB", D("2.1"), D("10.5"), ("FG", "SUB", "PH", "M2")),  # 2.1 x 5
    ]
    assert rows[1].kind is Kind.SUBASSEMBLY and rows[0].kind is Kind.PHANTOM


def test_where_used_every_path(scenario: Scenario) -> None:
    rows = r.where_used(scenario.master, "M1", JAN)
    assert [(x.level, x.parent, x.quantity, x.scrap, x.per_unit, x.path) for x in rows] == [
        (1, "PH", D("0.2"), D(0), D("0.2"), ("PH", "M1")),
        (2, "SUB", D(1), D(0), D("0.2"), ("SUB", "PH", "M1")),
        (3, "FG", D("1.9"), D("0.05"), D("0.42"), ("FG", "SUB", "PH", "M1")),  # 2.1 x 0.2
        (1, "SUB", D("0.5"), D("0.1"), D("0.55"), ("SUB", "M1")),
        (2, "FG", D("1.9"), D("0.05"), D("1.155"), ("FG", "SUB", "M1")),  # 2.1 x 0.55
    ]
    m3 = r.where_used(scenario.master, "M3", JUL)
    assert [(x.parent, x.per_parent) for x in m3] == [("FG", D("0.8"))]  # 0.76 / 0.95
    assert r.where_used(scenario.master, "FG", JAN) == ()


# ---------------------------------------------------------------- rollup


def test_rollup(standards: Standards) -> None:
    rows = {x.item: x for x in r.rollup(standards, JAN)}
    assert list(rows) == ["FG", "SUB", "PH", "M1", "M2", "M3", "M4"]
    fg, sub, ph = rows["FG"], rows["SUB"], rows["PH"]
    assert (fg.material, fg.conversion, fg.lower, fg.total) == (
        D("8.80"),
        (("labor", D("9.20")), ("overhead", D("11.80"))),
        (("labor", D("7.98")), ("overhead", D("10.29"))),
        D("48.07"),
    )
    # SUB: material 3.50; this level includes its phantom's routing (3.00 + 0.80, 4.50 + 0.40)
    assert (sub.material, sub.conversion, sub.lower, sub.total) == (
        D("3.50"),
        (("labor", D("3.80")), ("overhead", D("4.90"))),
        (),
        D("12.20"),
    )
    assert (ph.material, ph.conversion_total, ph.total) == (D("1.30"), D("1.20"), D("2.50"))
    assert (rows["M1"].material, rows["M1"].conversion, rows["M1"].total) == (D(4), (), D(4))
    for row in rows.values():
        assert row.material + row.conversion_total + row.lower_total == row.total
    chosen = r.rollup(standards, JAN, ["SUB", "FG", "SUB"])
    assert [x.item for x in chosen] == ["SUB", "FG"]
    with pytest.raises(StandardError, match="unknown item 'FGX'; did you mean FG"):
        r.rollup(standards, JAN, ["FGX"])


# ---------------------------------------------------------------- compare


def test_compare_a_cost_set_against_current_with_on_hand(
    standards: Standards, next_year: Standards
) -> None:
    on_hand = {"FG": D(30), "SUB": D(15), "M1": D("100.3125"), "M2": D(7)}
    found = r.compare(standards, next_year, JAN, on_hand, a_name="current", b_name="2027")
    rows = [
        (x.item, x.a, x.b, x.difference, x.percent, x.quantity, x.revaluation, x.posted)
        for x in found.rows
    ]
    assert rows == [
        # 50.05 - 48.07 = 1.98, 1.98 / 48.07 = 4.119% -> 4.12; 30 x 1.98 = 59.40, all in FG
        ("FG", D("48.07"), D("50.05"), D("1.98"), D("4.12"), D(30), D("59.40"), D("59.40")),
        # 0.60 / 12.20 = 4.918% -> 4.92; 15 x 0.60 = 9.00. On the books a subassembly holds its
        # components in RIP (5 x 0.10 + 0.75 x 4.40 = 3.80 against 3.50): 15 x 0.30 = 4.50;
        # its conversion (+0.30) is not allocated yet, so not posted
        ("SUB", D("12.20"), D("12.80"), D("0.60"), D("4.92"), D(15), D("9.00"), D("4.50")),
        # a phantom is never held
        ("PH", D("2.50"), D("2.58"), D("0.08"), D("3.20"), D(0), D(0), D(0)),
        # 100.3125 x 0.40 = 40.125 -> 40.12 (half-even, to the cent)
        ("M1", D("4.00"), D("4.40"), D("0.40"), D("10.00"), D("100.3125"), D("40.12"),
         D("40.12")),
    ]  # fmt: skip
    # 59.40 + 9.00 + 40.12 = 108.52; on the books 59.40 + 4.50 + 40.12 = 104.02
    assert (found.revaluation, found.posted) == (D("108.52"), D("104.02"))

    every = r.compare(standards, next_year, JAN, on_hand, all_items=True)
    assert [x.item for x in every.rows] == ["FG", "SUB", "PH", "M1", "M2", "M3", "M4"]
    m2 = every.rows[4]
    assert (m2.difference, m2.percent, m2.quantity, m2.revaluation) == (D(0), D(0), D(7), D(0))

    plain = r.compare(standards, next_year, JAN)
    assert not plain.with_quantities and plain.rows[0].revaluation is None
    assert r.comparison_document(plain)["items"][0] == {
        "item": "FG",
        "kind": "finished",
        "a": "48.07",
        "b": "50.05",
        "difference": "1.98",
        "percent": "4.12",
    }
    assert r.compare(standards, standards, JAN).rows == ()


def test_unknown_items_are_refused(scenario: Scenario, standards: Standards) -> None:
    for report in (
        lambda: r.pick_list(standards, "NOPE", D(1), JAN),
        lambda: r.indented_bom(standards, "NOPE", JAN),
        lambda: r.where_used(scenario.master, "NOPE", JAN),
    ):
        with pytest.raises(StandardError, match="unknown item 'NOPE'"):
            report()


# ---------------------------------------------------------------- the command line


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args: Any) -> str:
    result = cli(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def ok_json(*args: Any) -> Any:
    return json.loads(ok(*args, "--json"))


def refused(*args: Any, code: int = 2) -> str:
    result = cli(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    return " ".join(result.stderr.split())  # Rich wraps long messages


@pytest.fixture
def plant_file(tmp_path: Path) -> Path:
    path = tmp_path / "plant.yaml"
    path.write_text(PLANT, encoding="utf-8")
    return path


@pytest.fixture
def book(tmp_path: Path, plant_file: Path) -> str:
    """A SQLite book with the plant imported through ``backflush import``."""
    db = str(tmp_path / "plant.db")
    assert "8 event(s) applied" in ok("import", plant_file, "--db", db)
    return db


def test_cli_picklist(book: str, plant_file: Path) -> None:
    found = ok_json("picklist", "FG", "100", "--date", "2026-01-20", "--db", book)
    assert found["item"] == "FG" and found["quantity"] == "100"
    assert [(g["flush"], [ln["component"] for ln in g["lines"]], g["value"])
            for g in found["groups"]] == [
        ("backward", ["SUB"], "2562"), ("forward", ["M3"], "20"), ("manual", ["M4"], "125"),
    ]  # fmt: skip
    assert found["groups"][0]["lines"][0] == {
        "component": "SUB",
        "kind": "subassembly",
        "uom": "EA",
        "per_unit": "2.1",
        "quantity": "210",
        "unit_cost": "12.2",
        "value": "2562",
    }
    assert found["value"] == "2707"
    from_file = ok_json("picklist", "FG", "100", "--date", "2026-01-20", "--file", plant_file)
    assert from_file == found
    text = ok("picklist", "SUB", "10", "--date", "2026-01-20", "--db", book)
    assert "Pick list: 10 SUB" in text and "35.00" in text

    assert "unknown item 'FGX'; did you mean FG?" in refused("picklist", "FGX", "1", "--db", book)
    assert "QTY: expected more than zero, got 0" in refused("picklist", "FG", "0", "--db", book)
    assert "QTY: expected a decimal number" in refused("picklist", "FG", "lots", "--db", book)
    assert "M1 is a purchased material" in refused("picklist", "M1", "1", "--db", book)
    assert "--date: expected a date YYYY-MM-DD" in refused(
        "picklist", "FG", "1", "--date", "20.1.2026", "--db", book
    )


def test_cli_bom_and_where_used(book: str) -> None:
    found = ok_json("bom", "FG", "--date", "2026-01-20", "--db", book)
    assert [(x["depth"], x["component"], x["phantom"], x["per_top"], x["extended"], x["share"])
            for x in found["lines"]] == [
        (1, "SUB", False, "2.1", "25.62", "53.3"),
        (2, "PH", True, "2.1", "5.25", "20.49"),
        (3, "M2", False, "10.5", "1.05", "20"),
        (3, "M1", False, "0.42", "1.68", "32"),
        (2, "M1", False, "1.155", "4.62", "18.03"),
        (1, "M3", False, "0.4", "0.2", "0.42"),
        (1, "M4", False, "1", "1.25", "2.6"),
    ]  # fmt: skip
    assert found["summary"] == {
        "material": {"this_level": "0", "lower_level": "8.8", "total": "8.8"},
        "labor": {"this_level": "9.2", "lower_level": "7.98", "total": "17.18"},
        "overhead": {"this_level": "11.8", "lower_level": "10.29", "total": "22.09"},
    }
    assert (found["material"], found["conversion"], found["total"]) == ("27.07", "21", "48.07")
    assert found["operations"][0]["hours"] == "0.24"
    later = ok_json("bom", "FG", "--date", "2026-07-01", "--db", book)
    assert (later["version"], later["total"]) == ("2026-07-01", "48.27")
    what_if = ok_json("bom", "FG", "--date", "2026-01-20", "--cost-set", "2027", "--db", book)
    assert (what_if["cost_set"], what_if["total"]) == ("2027", "50.05")
    text = ok("bom", "FG", "--date", "2026-01-20", "--db", book)
    assert "Indented BOM of FG" in text and "(phantom)" in text and "48.07" in text

    assert "unknown cost set '2028' (cost sets: 2027)" in refused(
        "bom", "FG", "--cost-set", "2028", "--db", book
    )
    assert "unknown item 'XX'" in refused("bom", "XX", "--db", book)
    assert "cannot read" in refused("bom", "FG", "--file", "/nonexistent/plant.yaml")

    used = ok_json("where-used", "M2", "--date", "2026-01-20", "--db", book)
    assert [(x["level"], x["parent"], x["per_unit"], x["path"]) for x in used["parents"]] == [
        (1, "PH", "5", ["PH", "M2"]),
        (2, "SUB", "5", ["SUB", "PH", "M2"]),
        (3, "FG", "10.5", ["FG", "SUB", "PH", "M2"]),
    ]
    assert "is on no BOM" in ok("where-used", "FG", "--date", "2026-01-20", "--db", book)
    assert "unknown item 'M9'" in refused("where-used", "M9", "--db", book)


def test_cli_rollup(book: str, plant_file: Path) -> None:
    found = ok_json("standards", "rollup", "--date", "2026-01-20", "--db", book)
    assert found["items"][0] == {
        "item": "FG",
        "kind": "finished",
        "uom": "EA",
        "material": "8.8",
        "conversion": {"labor": "9.2", "overhead": "11.8"},
        "lower_conversion": {"labor": "7.98", "overhead": "10.29"},
        "total": "48.07",
    }
    assert [x["item"] for x in found["items"]] == ["FG", "SUB", "PH", "M1", "M2", "M3", "M4"]
    chosen = ok_json(
        "standards", "rollup", "--date", "2026-01-20", "--cost-set", "2027",
        "--item", "SUB", "--item", "FG", "--file", plant_file,
    )  # fmt: skip
    # 2027: SUB labor 0.1 x 33 + 0.80 = 4.10; FG labor 0.24 x 33 + 2.00 = 9.92
    assert [(x["item"], x["conversion"]["labor"], x["total"]) for x in chosen["items"]] == [
        ("SUB", "4.1", "12.8"),
        ("FG", "9.92", "50.05"),
    ]
    assert "Cost rollup" in ok("standards", "rollup", "--date", "2026-01-20", "--db", book)
    assert "unknown item 'NOPE'" in refused("standards", "rollup", "--item", "NOPE", "--db", book)


def test_cli_compare_release_and_the_revaluation_it_posts(book: str, plant_file: Path) -> None:
    found = ok_json("standards", "compare", "2027", "--date", "2026-01-20", "--db", book)
    # at the stock held: FG 5 x 1.98 = 9.90; SUB 9.5 x 0.60 = 5.70 (on the books
    # 9.5 x 0.30 = 2.85); M1 985 x 0.40 = 394.00
    assert [(x["item"], x["difference"], x["quantity"], x["revaluation"], x["posted"])
            for x in found["items"]] == [
        ("FG", "1.98", "5", "9.90", "9.90"),
        ("SUB", "0.6", "9.5", "5.70", "2.85"),
        ("PH", "0.08", "0", "0.00", "0.00"),
        ("M1", "0.4", "985", "394.00", "394.00"),
    ]  # fmt: skip
    # 9.90 + 5.70 + 394.00 = 409.60; on the books 9.90 + 2.85 + 394.00 = 406.75
    assert (found["revaluation"], found["posted"]) == ("409.60", "406.75")
    assert (found["a"], found["b"]) == ("current", "2027")
    every = ok_json("standards", "compare", "2027", "--all", "--date", "2026-01-20", "--db", book)
    assert len(every["items"]) == 7
    reverse = ok_json(
        "standards", "compare", "current", "--against", "2027", "--date", "2026-01-20",
        "--file", plant_file,
    )  # fmt: skip
    assert "revaluation" not in reverse  # no stock without a book
    assert reverse["items"][0]["difference"] == "-1.98"
    text = ok("standards", "compare", "2027", "--date", "2026-01-20", "--db", book)
    assert "409.60" in text and "406.75" in text
    assert "unknown cost set 'nope'" in refused("standards", "compare", "nope", "--db", book)

    before = dump_file(Path(book))
    assert "on or before the last event recorded (2026-01-15)" in refused(
        "standards", "release", "2027", "--effective", "2026-01-15", "--db", book
    )
    assert "unknown cost set 'nope'" in refused(
        "standards", "release", "nope", "--effective", "2026-02-01", "--db", book
    )
    assert "--effective: expected a date" in refused(
        "standards", "release", "2027", "--effective", "soon", "--db", book
    )
    assert dump_file(Path(book)) == before  # nothing written

    released = ok_json("standards", "release", "2027", "--effective", "2026-02-01", "--db", book)
    assert released["released"] == {
        "name": "2027",
        "effective": "2026-02-01",
        "materials": {"M1": "4.4"},
        "rates": [{"work_center": "ASSY", "element": "labor", "rate": "33"}],
    }
    assert released["comparison"]["posted"] == "406.75"
    assert released["comparison"]["revaluation"] == "409.60"
    assert "already released, effective 2026-02-01" in refused(
        "standards", "release", "2027", "--effective", "2026-03-01", "--db", book
    )
    # the standards in force from then on, and the revaluation the book posts with the first
    # event of February is the preview's on-the-books figure
    assert ok_json("bom", "FG", "--date", "2026-02-01", "--db", book)["total"] == "50.05"
    assert ok_json("bom", "FG", "--date", "2026-01-31", "--db", book)["total"] == "48.07"
    ok(
        "post", "--db", book, "--type", "purchase", "--id", "po-5", "--date", "2026-02-02",
        "--item", "M2", "--quantity", "10", "--unit-cost", "0.10",
    )  # fmt: skip
    balances = json.loads(ok("report", "--db", book, "--json"))["balances"]
    assert D(balances["revaluation_variance"]) == D("-406.75")
    assert "no standard differs" in ok(
        "standards", "compare", "2027", "--date", "2026-02-02", "--db", book
    )


def test_cli_release_needs_a_book(tmp_path: Path) -> None:
    assert "no book at" in refused(
        "standards", "release", "2027", "--effective", "2026-02-01",
        "--db", tmp_path / "none.db",
    )  # fmt: skip
    assert "no book at" in refused("bom", "FG", "--db", tmp_path / "none.db")


def _tables(path: Path) -> dict[str, list[list[str]]]:
    return {f.name: list(csv.reader(f.open(encoding="utf-8"))) for f in sorted(path.glob("*.csv"))}


def _master(db: str) -> MasterData:
    store = Store(db, create=False)
    try:
        return store.master()
    finally:
        store.close()


def test_cli_master_export_and_import_round_trip(
    tmp_path: Path, book: str, plant_file: Path
) -> None:
    exported = tmp_path / "master"
    assert "wrote 7 items, 4 BOM versions" in ok("master", "export", exported, "--db", book)
    tables = _tables(exported)
    assert set(tables) == {
        "items.csv", "boms.csv", "work_centers.csv", "routings.csv", "cost_sets.csv",
    }  # fmt: skip
    ok("master", "export", tmp_path / "from-file", "--file", plant_file)
    assert _tables(tmp_path / "from-file") == tables  # the book holds what the file says

    other = str(tmp_path / "other.db")
    ok("init", "--db", other, "--settings-from", plant_file)
    text = ok("master", "import", exported, "--db", other)
    assert "new in the book: 7 items, 4 BOM versions, 2 work centers, 3 routing" in text
    again = ok("master", "import", exported, "--db", other)
    assert "new in the book: 0 items, 0 BOM versions" in again
    ok("master", "export", tmp_path / "again", "--db", other)
    assert _tables(tmp_path / "again") == tables
    assert ok_json("bom", "FG", "--date", "2026-01-20", "--db", other)["total"] == "48.07"

    workbook = tmp_path / "master.xlsx"
    ok("master", "export", workbook, "--db", book)
    third = str(tmp_path / "third.db")
    ok("init", "--db", third, "--settings-from", plant_file)
    ok("master", "import", workbook, "--db", third)
    # a workbook keeps numbers as numbers (4.40 comes back as 4.4): the same master data
    assert _master(third) == _master(book) == _master(other)

    # a different definition of an item already in the book: refused, nothing written
    items = (exported / "items.csv").read_text(encoding="utf-8")
    (exported / "items.csv").write_text(items.replace(",4.00,", ",4.10,"), encoding="utf-8")
    before = dump_file(Path(other))
    assert "item M1: already in the book with a different definition" in refused(
        "master", "import", exported, "--db", other
    )
    assert dump_file(Path(other)) == before
    assert "no such directory" in refused("master", "import", tmp_path / "none", "--db", other)
    assert "no book at" in refused("master", "import", exported, "--db", tmp_path / "x.db")


def test_cli_master_import_of_a_new_product_built_from_the_books_parts(
    tmp_path: Path, book: str
) -> None:
    """The tables need hold only what is new: a BOM, routing or cost set may name the book's
    items and work centers; a new product's first versions may take effect before the last
    event (nothing was posted for it), and a name in neither is still refused."""
    new = tmp_path / "new"
    new.mkdir()
    (new / "items.csv").write_text("id,kind\nKIT,finished\n", encoding="utf-8")
    (new / "boms.csv").write_text(
        "item,line,component,quantity\nKIT,1,SUB,2\nKIT,2,M2,10\n", encoding="utf-8"
    )
    (new / "routings.csv").write_text(
        "item,operation,work_center,run_hours\nKIT,10,TEST,0.5\n", encoding="utf-8"
    )
    text = ok("master", "import", new, "--db", book)
    assert "new in the book: 1 item, 1 BOM version, 0 work centers, 1 routing version" in text
    # SUB 12.20 (PH 2.50 + M1 0.55 x 4 + ASSY 0.1 h x 75) twice, M2 10 x 0.10, TEST 0.5 h x 60
    assert D(ok_json("bom", "KIT", "--date", "2026-01-20", "--db", book)["total"]) == D("55.40")
    ok("post", "--db", book, "--type", "completion", "--date", "2026-01-20", "--item", "KIT",
       "--quantity", "1")  # fmt: skip

    (new / "items.csv").write_text("id,kind\nBOX,finished\n", encoding="utf-8")
    (new / "boms.csv").write_text("item,line,component,quantity\nBOX,1,NOPE,1\n", "utf-8")
    (new / "routings.csv").write_text(
        "item,operation,work_center,run_hours\nBOX,10,PAINT,1\n", encoding="utf-8"
    )
    before = dump_file(Path(book))
    text = refused("master", "import", new, "--db", book)
    assert "boms.csv row 2, column component: BOM of BOX: line 1: unknown item 'NOPE'" in text
    assert "unknown work center 'PAINT'" in text
    (new / "items.csv").write_text("id,kind\nKIT,finished\n", encoding="utf-8")
    (new / "boms.csv").write_text(  # a new version of SUB's BOM, dated into the past
        "item,effective_from,line,component,quantity\nSUB,2026-01-02,1,M1,1\n", "utf-8"
    )
    (new / "routings.csv").unlink()
    text = refused("master", "import", new, "--db", book)
    assert (
        "boms.csv row 2, column effective_from: BOM of SUB: takes effect on 2026-01-02, on or "
        "before the last event recorded (2026-01-20)"
    ) in text
    (new / "items.csv").write_text("id,kind\nBOX,finished\n", encoding="utf-8")
    (new / "boms.csv").unlink()
    text = refused("master", "import", new, "--db", book)  # a made item with no BOM
    assert "items.csv row 2: item 'BOX' has no standard: expected a BOM or a material" in text
    assert dump_file(Path(book)) == before

    # a cost set written by hand, its materials in no order, sent again is the same set; one
    # released on the last event's day is refused at its row
    (new / "items.csv").write_text("id,kind\nKIT,finished\n", encoding="utf-8")
    hand = "cost_set,item,value\nhand,M2,0.11\nhand,M1,0.50\n"
    (new / "cost_sets.csv").write_text(hand, encoding="utf-8")
    assert (
        "new in the book: 0 items, 0 BOM versions, 0 work centers, 0 routing versions, 1 cost set"
        in ok("master", "import", new, "--db", book)
    )
    assert "0 routing versions, 0 cost sets" in ok("master", "import", new, "--db", book)
    late = "cost_set,effective,item,value\nlate,2026-01-20,M1,0.50\n"
    (new / "cost_sets.csv").write_text(late, encoding="utf-8")
    before = dump_file(Path(book))
    assert (
        "cost_sets.csv row 2, column effective: cost set late: takes effect on 2026-01-20, on "
        "or before the last event recorded (2026-01-20)"
    ) in refused("master", "import", new, "--db", book)
    assert dump_file(Path(book)) == before


def test_command_modules_import_in_any_order() -> None:
    code = (
        "import backflush.commands.standards\n"
        "from backflush.cli import app\n"
        "names = {c.name for c in app.registered_commands}\n"
        "groups = {g.name for g in app.registered_groups}\n"
        "assert {'picklist', 'bom', 'where-used'} <= names, names\n"
        "assert groups >= {'standards', 'master'}, groups\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
