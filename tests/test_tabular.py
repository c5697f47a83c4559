"""Master data as CSV files and XLSX workbooks (DESIGN §1: the ERP implementer's import and
export): written and read back unchanged, hand-made files read the way a spreadsheet shows
them, and every problem named by file (and sheet), row and column."""

from __future__ import annotations

import datetime as dt
import inspect
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from backflush.domain import model as m
from backflush.formats.inputs import InputError, build_master
from backflush.formats.scenario import read_scenario
from backflush.formats.tabular import (
    WHERE,
    load_master_tables,
    locate,
    read_master_tables,
    write_master_tables,
)
from helpers import EXAMPLES

D = Decimal
SETTINGS = m.Settings("Tables plant")

#: load_master_tables calls build_master with work centers, routings and cost sets.
needs_full_build_master = pytest.mark.skipif(
    "cost_sets" not in inspect.signature(build_master).parameters,
    reason="build_master does not take work_centers, routings and cost_sets yet",
)

JUNE_30, JULY_1 = dt.date(2026, 6, 30), dt.date(2026, 7, 1)


def rich_master() -> m.MasterData:
    """Every table and column in use: versions, one-figure and per-element conversion, a lot
    size no binary float holds, flush overrides, operations, released and what-if cost sets."""
    items = [
        m.Item("CHIP", m.Kind.MATERIAL, material_cost=D("2.40")),
        m.Item("RESIN", m.Kind.MATERIAL, "KG", m.Flush.MANUAL, D("0.125")),
        m.Item("KIT", m.Kind.PHANTOM),
        m.Item(
            "BOARD",
            m.Kind.SUBASSEMBLY,
            conversion=(("", D("0.80")),),
            lot_size=D("123456789012.345678"),
        ),
        m.Item(
            "ROUTER",
            m.Kind.FINISHED,
            conversion=(("labor", D("4.00")), ("overhead", D("8.00"))),
            policy=m.Policy.COMPLETION,
            lot_size=D("500"),
        ),
    ]
    boms = {
        "BOARD": (m.Bom("BOARD", (m.BomLine("CHIP", D("10"), D("0.02"), m.Flush.BACKWARD, 10),)),),
        "KIT": (m.Bom("KIT", (m.BomLine("RESIN", D("0.5")),)),),
        "ROUTER": (
            m.Bom(
                "ROUTER",
                (m.BomLine("BOARD", D("1")), m.BomLine("KIT", D("2"), flush=m.Flush.FORWARD)),
                effective_to=JUNE_30,
            ),
            m.Bom(
                "ROUTER",
                (
                    m.BomLine("BOARD", D("1")),
                    m.BomLine("KIT", D("3")),
                    m.BomLine("CHIP", D("1.000001"), operation=20),
                ),
                JULY_1,
            ),
        ),
    }
    centers = {
        "ASSY": m.WorkCenter("ASSY", (("labor", D("30.00")), ("overhead", D("45.00"))), "Assembly"),
        "SMT": m.WorkCenter("SMT", (("machine", D("120.5")),)),
    }
    routings = {
        "BOARD": (m.Routing("BOARD", (m.Operation(10, "SMT", D("0.01")),)),),
        "ROUTER": (
            m.Routing(
                "ROUTER",
                (
                    m.Operation(10, "ASSY", D("0.1"), D("2"), D("0.98")),
                    m.Operation(20, "ASSY", D("0.05")),
                ),
                effective_to=JUNE_30,
            ),
            m.Routing(
                "ROUTER",
                (m.Operation(10, "ASSY", D("0.08")), m.Operation(20, "SMT", D("0.02"))),
                JULY_1,
            ),
        ),
    }
    cost_sets = {
        "2027": m.CostSet(
            "2027", (("CHIP", D("2.50")),), (("ASSY", "labor", D("32.00")),), dt.date(2027, 1, 1)
        ),
        "what-if": m.CostSet("what-if", (("RESIN", D("0.13")), ("CHIP", D("2.2")))),
    }
    return m.MasterData({i.id: i for i in items}, boms, centers, routings, cost_sets)


RICH_CSV = {
    "items.csv": """\
id,kind,uom,flush,lot_size,triggers,material_cost,conversion,conversion:labor,conversion:overhead
BOARD,subassembly,EA,backward,123456789012.345678,,,0.80,,
CHIP,material,EA,backward,1,,2.40,,,
KIT,phantom,EA,backward,1,,,,,
RESIN,material,KG,manual,1,,0.125,,,
ROUTER,finished,EA,backward,500,completion,,,4.00,8.00
""",
    "boms.csv": """\
item,effective_from,effective_to,line,component,quantity,scrap,flush,operation
BOARD,,,1,CHIP,10,0.02,backward,10
KIT,,,1,RESIN,0.5,0,,
ROUTER,,2026-06-30,1,BOARD,1,0,,
ROUTER,,2026-06-30,2,KIT,2,0,forward,
ROUTER,2026-07-01,,1,BOARD,1,0,,
ROUTER,2026-07-01,,2,KIT,3,0,,
ROUTER,2026-07-01,,3,CHIP,1.000001,0,,20
""",
    "work_centers.csv": """\
work_center,name,element,rate
ASSY,Assembly,labor,30.00
ASSY,Assembly,overhead,45.00
SMT,,machine,120.5
""",
    "routings.csv": """\
item,effective_from,effective_to,operation,work_center,setup_hours,run_hours,yield
BOARD,,,10,SMT,0,0.01,1
ROUTER,,2026-06-30,10,ASSY,2,0.1,0.98
ROUTER,,2026-06-30,20,ASSY,0,0.05,1
ROUTER,2026-07-01,,10,ASSY,0,0.08,1
ROUTER,2026-07-01,,20,SMT,0,0.02,1
""",
    "cost_sets.csv": """\
cost_set,effective,item,work_center,element,value
2027,2027-01-01,CHIP,,,2.50
2027,2027-01-01,,ASSY,labor,32.00
what-if,,CHIP,,,2.2
what-if,,RESIN,,,0.13
""",
}


def write_csv(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        read_master_tables(path)
    return caught.value.problems


def load_problems(path: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_master_tables(path, SETTINGS)
    return caught.value.problems


# ---------------------------------------------------------------- writing and reading back


def test_csv_layout(tmp_path: Path) -> None:
    write_master_tables(rich_master(), tmp_path / "master")
    written = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "master").iterdir()}
    assert written == RICH_CSV


def test_csv_records(tmp_path: Path) -> None:
    """What build_master gets: the scenario file's layout, each line with its own row."""
    records = read_master_tables(write_csv(tmp_path, RICH_CSV))
    assert records["items"][1] == (
        "items.csv row 3",
        {"id": "CHIP", "kind": "material", "uom": "EA", "flush": "backward",
         "lot_size": D(1), "standard_cost": D("2.40")},
    )  # fmt: skip
    assert records["items"][4][1]["standard_cost"] == {
        "conversion": {"labor": D("4.00"), "overhead": D("8.00")}
    }
    assert records["items"][0][1]["standard_cost"] == {"conversion": D("0.80")}
    assert records["boms"][3] == (
        "boms.csv row 6",
        {"item": "ROUTER", "effective_from": JULY_1, "lines": [
            {"component": "BOARD", "quantity": D(1), "scrap": D(0), WHERE: "boms.csv row 6"},
            {"component": "KIT", "quantity": D(3), "scrap": D(0), WHERE: "boms.csv row 7"},
            {"component": "CHIP", "quantity": D("1.000001"), "scrap": D(0), "operation": 20,
             WHERE: "boms.csv row 8"},
        ]},
    )  # fmt: skip
    assert records["work_centers"] == [
        ("work_centers.csv row 2",
         {"id": "ASSY", "name": "Assembly", "rates": {"labor": D("30.00"), "overhead": D(45)}}),
        ("work_centers.csv row 4", {"id": "SMT", "rates": {"machine": D("120.5")}}),
    ]  # fmt: skip
    assert records["routings"][1][1]["operations"][0] == {
        "operation": 10, "work_center": "ASSY", "setup_hours": D(2), "run_hours": D("0.1"),
        "yield": D("0.98"), WHERE: "routings.csv row 3",
    }  # fmt: skip
    assert records["cost_sets"] == [
        ("cost_sets.csv row 2", {"name": "2027", "effective": dt.date(2027, 1, 1),
                                 "materials": {"CHIP": D("2.50")},
                                 "rates": {"ASSY": {"labor": D("32.00")}}}),
        ("cost_sets.csv row 4", {"name": "what-if",
                                 "materials": {"CHIP": D("2.2"), "RESIN": D("0.13")}}),
    ]  # fmt: skip


@needs_full_build_master
@pytest.mark.parametrize("target", ["master", "master.xlsx"])
def test_round_trip(tmp_path: Path, target: str) -> None:
    master = rich_master()
    write_master_tables(master, tmp_path / target)
    assert load_master_tables(tmp_path / target, SETTINGS) == master


@needs_full_build_master
@pytest.mark.parametrize("target", ["northshore", "northshore.xlsx"])
def test_northshore_round_trip(tmp_path: Path, target: str) -> None:
    scenario = read_scenario(EXAMPLES / "northshore.yaml")
    write_master_tables(scenario.master, tmp_path / target)
    assert load_master_tables(tmp_path / target, scenario.settings) == scenario.master


def test_writing_is_deterministic(tmp_path: Path) -> None:
    master = rich_master()
    shuffled = m.MasterData(
        dict(reversed(master.items.items())),
        dict(reversed(master.boms.items())),
        dict(reversed(master.work_centers.items())),
        {k: tuple(reversed(v)) for k, v in master.routings.items()},
        dict(reversed(master.cost_sets.items())),
    )
    write_master_tables(shuffled, tmp_path / "again")
    written = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "again").iterdir()}
    assert written == RICH_CSV


def test_xlsx_cells(tmp_path: Path) -> None:
    """Numbers as numeric cells (text when no binary float holds the value), dates as date
    cells, "from the beginning" as an empty cell, ids as text even when they look like a
    formula."""
    master = rich_master()
    odd = m.Item("=SUM(A1)", m.Kind.MATERIAL, material_cost=D("0.000001"))
    master.items[odd.id] = odd
    write_master_tables(master, tmp_path / "master.xlsx")
    book = load_workbook(tmp_path / "master.xlsx")
    assert book.sheetnames == ["items", "boms", "work_centers", "routings", "cost_sets"]
    items = book["items"]
    assert [c.value for c in items[1]][:8] == [
        "id", "kind", "uom", "flush", "lot_size", "triggers", "material_cost", "conversion",
    ]  # fmt: skip
    assert [c.value for c in items[2]][:8] == [
        "=SUM(A1)", "material", "EA", "backward", 1, None, 1e-06, None,
    ]  # fmt: skip
    assert items["A2"].data_type == "s"
    assert items["E3"].value == "123456789012.345678"  # BOARD's lot size: text, exactly
    assert items["H3"].value == 0.8
    assert items["G4"].value == 2.4 and items["G4"].data_type == "n"
    boms = book["boms"]
    assert [c.value for c in boms[4]] == [
        "ROUTER", None, dt.datetime(2026, 6, 30), 1, "BOARD", 1, 0, None, None,
    ]  # fmt: skip
    assert boms["C4"].is_date
    assert read_master_tables(tmp_path / "master.xlsx")["items"][0][1]["id"] == "=SUM(A1)"


@needs_full_build_master
def test_xlsx_round_trip_of_odd_values(tmp_path: Path) -> None:
    master = rich_master()
    master.items["=SUM(A1)"] = m.Item("=SUM(A1)", m.Kind.MATERIAL, material_cost=D("0.000001"))
    write_master_tables(master, tmp_path / "master.xlsx")
    assert load_master_tables(tmp_path / "master.xlsx", SETTINGS) == master


def test_dates_before_spreadsheet_dates(tmp_path: Path) -> None:
    """The 1900 date system has no such dates: they are written as ISO text and read back."""
    master = rich_master()
    old = dt.date(1899, 12, 31)
    master.boms["KIT"] = (m.Bom("KIT", master.boms["KIT"][0].lines, old),)
    write_master_tables(master, tmp_path / "master.xlsx")
    assert load_workbook(tmp_path / "master.xlsx")["boms"]["B3"].value == "1899-12-31"
    kit = read_master_tables(tmp_path / "master.xlsx")["boms"][1]
    assert kit == (
        "master.xlsx sheet boms row 3",
        {"item": "KIT", "effective_from": old, "lines": [
            {"component": "RESIN", "quantity": D("0.5"), "scrap": D(0),
             WHERE: "master.xlsx sheet boms row 3"},
        ]},
    )  # fmt: skip


def test_hand_made_workbook(tmp_path: Path) -> None:
    """A workbook typed by hand: numbers as numbers or text, a date cell and an ISO text date,
    a numeric id, blank rows, spaces around text."""
    book = Workbook()
    items = book.active
    assert items is not None
    items.title = "items"
    items.append(["id", "kind", "uom", "material_cost", "conversion:labor", "lot_size"])
    items.append([1001, "material", "EA", 2.4, None, None])
    items.append([" CASE ", "material", "EA", " 4.50 ", None, 12])
    items.append([])
    items.append(["ROUTER", "finished", "EA", None, 0.1, "250"])
    boms = book.create_sheet("boms")
    boms.append(["item", "effective_from", "line", "component", "quantity"])
    boms.append(["ROUTER", dt.date(2026, 1, 1), 20, "CASE", 1])
    boms.append(["ROUTER", "2026-01-01", 10.0, "1001", "2.5"])
    book.save(tmp_path / "typed.xlsx")

    records = read_master_tables(tmp_path / "typed.xlsx")
    assert records["items"] == [
        ("typed.xlsx sheet items row 2",
         {"id": "1001", "kind": "material", "uom": "EA", "standard_cost": D("2.4")}),
        ("typed.xlsx sheet items row 3",
         {"id": "CASE", "kind": "material", "uom": "EA", "lot_size": D(12),
          "standard_cost": D("4.50")}),
        ("typed.xlsx sheet items row 5",
         {"id": "ROUTER", "kind": "finished", "uom": "EA", "lot_size": D(250),
          "standard_cost": {"conversion": {"labor": D("0.1")}}}),
    ]  # fmt: skip
    assert records["boms"] == [
        ("typed.xlsx sheet boms row 2",
         {"item": "ROUTER", "effective_from": dt.date(2026, 1, 1), "lines": [
             {"component": "1001", "quantity": D("2.5"), WHERE: "typed.xlsx sheet boms row 3"},
             {"component": "CASE", "quantity": D(1), WHERE: "typed.xlsx sheet boms row 2"},
         ]}),
    ]  # fmt: skip
    assert records["work_centers"] == records["routings"] == records["cost_sets"] == []


def test_hand_made_workbook_problems(tmp_path: Path) -> None:
    book = Workbook()
    items = book.active
    assert items is not None
    items.title = "items"
    items.append(["id", "kind", "material_cost", "lot_size"])
    items.append(["CHIP", "material", True, dt.datetime(2026, 1, 1, 12, 30)])
    items.append([dt.date(2026, 1, 1), "material", "1,50", 1])
    boms = book.create_sheet("boms")
    boms.append(["item", "effective_from", "line", "component", "quantity"])
    boms.append(["ROUTER", dt.datetime(2026, 1, 1, 8, 0), 1.5, "CHIP", 1])
    boms.append(["ROUTER", 46023, 2, "CHIP", 1])
    book.create_sheet("Notes")
    book.save(tmp_path / "typed.xlsx")
    assert problems(tmp_path / "typed.xlsx") == [
        "typed.xlsx: unknown sheet 'Notes'; expected items, boms, work_centers, routings, "
        "cost_sets",
        "typed.xlsx sheet items row 2, column material_cost: expected a decimal number, "
        "got a boolean",
        "typed.xlsx sheet items row 2, column lot_size: expected a decimal number, got a date "
        "2026-01-01T12:30:00",
        "typed.xlsx sheet items row 3, column id: expected text, got a date 2026-01-01T00:00:00",
        "typed.xlsx sheet items row 3, column material_cost: expected a decimal number such as "
        "\"12.50\", got '1,50'",
        "typed.xlsx sheet boms row 2, column effective_from: expected a date YYYY-MM-DD, got a "
        "date and time 2026-01-01T08:00:00",
        "typed.xlsx sheet boms row 2, column line: expected a whole number such as 10, got 1.5",
        "typed.xlsx sheet boms row 3, column effective_from: expected a date YYYY-MM-DD, "
        "got int 46023",
    ]


# ---------------------------------------------------------------- problems the tables show


def test_csv_cell_problems(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        {
            "items.csv": """\
id,kind,uom,lot_size,material_cost,conversion,conversion:labor,conversion:overhead
CHIP,material,EA,1,2.40,,,
BOLT,material,EA,abc,0.10,,,
,material,EA,1,1.00,,,

ROUTER,finished,EA,1,,,4.00,8.00
BAD,finished,EA,1,,12,x,8.00
TWO,finished,EA,1,,12,4.00,
""",
            "boms.csv": """\
item,effective_from,effective_to,line,component,quantity,scrap
ROUTER,,,1,CHIP,10,0.02
ROUTER,,,1.5,BOLT,4,0
ROUTER,2026-13-01,,1,CHIP,,0
ROUTER,,,1,BOLT,2,0,
ROUTER,,,,BOLT,2,0
ROUTER,,,3,BOLT,2,0,,7
""",
            "routings.csv": """\
item,effective_from,effective_to,operation,work_center,run_hours
ROUTER,,,10,ASSY,0.1
ROUTER,,,10,ASSY,0.2
ROUTER,,,,ASSY,0.2
""",
        },
    )
    assert problems(tmp_path) == [
        "items.csv row 3, column lot_size: expected a decimal number such as \"12.50\", got 'abc'",
        "items.csv row 4, column id: empty; a value is required",
        "items.csv row 7, column conversion:labor: expected a decimal number such as "
        "\"12.50\", got 'x'",
        "items.csv row 8, column conversion: give conversion as one figure (column conversion) "
        "or by element (conversion:<element>), not both",
        "boms.csv row 3, column line: expected a whole number such as 10, got '1.5'",
        "boms.csv row 4, column effective_from: expected a date YYYY-MM-DD, got '2026-13-01': "
        "month must be in 1..12",
        "boms.csv row 4, column quantity: empty; a value is required",
        "boms.csv row 7: a value in column 9, which has no header, got '7'",
        "boms.csv row 5, column line: line 1 already at row 2",
        "boms.csv row 6, column line: empty while other lines of this version have a number; "
        "number every line or none",
        "routings.csv row 4, column operation: empty; a value is required",
        "routings.csv row 3, column operation: operation 10 already at row 2",
    ]


def test_a_csv_row_cut_short_is_refused(tmp_path: Path) -> None:
    """Its last cells would read as empty (a scrap of 0, a cost cut to its first digits);
    a row may end in blank columns the header does not name."""
    write_csv(
        tmp_path,
        {
            "items.csv": "id,kind,material_cost,,\nCHIP,material,2.40\nBOLT,material,0.1\n"[:-1],
            "boms.csv": "item,line,component,quantity,scrap\nCASE,1,CHIP,2\n",
        },
    )
    assert problems(tmp_path) == ["boms.csv row 2: 4 cells, but the header names 5 columns"]


def test_a_formula_without_a_saved_value_is_not_an_empty_cell(tmp_path: Path) -> None:
    """A workbook written by a program that does not compute formulas (openpyxl here) holds
    no value for them: each is named, not read as empty (a scrap of 0)."""
    book = Workbook()
    items = book.active
    assert items is not None
    items.title = "items"
    items.append(["id", "kind", "material_cost"])
    items.append(["CHIP", "material", "=1+1.5"])
    items.append(["CASE", "finished", None])
    boms = book.create_sheet("boms")
    boms.append(["item", "line", "component", "quantity", "scrap"])
    boms.append(["CASE", 1, "CHIP", 2, "=0.02+0.03"])
    book.save(tmp_path / "formulas.xlsx")
    saved = "has no value saved in the workbook; open and save it in a spreadsheet program"
    assert [p.split(" (which")[0] for p in problems(tmp_path / "formulas.xlsx")] == [
        f"formulas.xlsx sheet items row 2, column material_cost: the formula =1+1.5 {saved}",
        f"formulas.xlsx sheet boms row 2, column scrap: the formula =0.02+0.03 {saved}",
    ]


def test_csv_header_problems(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        {
            "items.csv": "id,kind,colour,kind,conversion:\nCHIP,material,red,material,1\n",
            "boms.csv": "item,component\nROUTER,CHIP\n",
            "work_centers.csv": "work_center;name;element;rate\nASSY;Assembly;labor;30\n",
            "routings.csv": "item\toperation\twork_center\nROUTER\t10\tASSY\n",
            "cost_sets.csv": "\n2027,2027-01-01,CHIP,,,2.50\n",
        },
    )
    assert problems(tmp_path) == [
        "items.csv row 1, column colour: unknown column; expected id, kind, uom, flush, "
        "lot_size, triggers, material_cost, conversion, family, site or conversion:<element>",
        "items.csv row 1, column kind: duplicated column",
        "items.csv row 1, column conversion:: no element after 'conversion:'",
        "boms.csv row 1: missing column quantity",
        "work_centers.csv row 1: columns separated by ';'; expected commas",
        "work_centers.csv row 1: missing column work_center",
        "routings.csv row 1: columns separated by tabs; expected commas",
        *(
            f"routings.csv row 1: missing column {name}"
            for name in ("item", "operation", "work_center", "run_hours")
        ),
        "cost_sets.csv row 1: empty; the first row names the columns",
    ]


def test_cost_set_and_work_center_rows(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        {
            "items.csv": "id,kind,material_cost\nCHIP,material,2.40\n",
            "work_centers.csv": """\
work_center,name,element,rate
ASSY,Assembly,labor,30
ASSY,Assy,overhead,45
ASSY,,labor,31
ASSY,,machine,
SMT,,,120
""",
            "cost_sets.csv": """\
cost_set,effective,item,work_center,element,value
2027,2027-01-01,CHIP,ASSY,labor,2.50
2027,2027-02-01,CHIP,,,2.50
2027,,CHIP,,,2.60
2027,,CHIP,,labor,2.60
2027,,,ASSY,,32
2027,,,ASSY,labor,32
2027,,,ASSY,labor,33
2027,,,,,33
2027,,CHIP,,,
""",
        },
    )
    assert problems(tmp_path) == [
        "work_centers.csv row 3, column name: 'Assy' differs from 'Assembly' at row 2",
        "work_centers.csv row 4, column element: rate 'labor' already at row 2",
        "work_centers.csv row 5, column rate: empty; a value is required",
        "work_centers.csv row 6, column element: empty; a rate needs its cost element "
        "(labor, overhead, ...)",
        "cost_sets.csv row 2, columns item and work_center: a row sets either a material cost "
        "(item) or a rate (work_center and element), not both",
        "cost_sets.csv row 3, column effective: 2027-02-01 differs from 2027-01-01 at row 2",
        "cost_sets.csv row 4, column item: CHIP already at row 3",
        "cost_sets.csv row 5, column element: only for a rate (a row with work_center); "
        "a material cost has none",
        "cost_sets.csv row 6, column element: empty; a rate needs its cost element "
        "(labor, overhead, ...)",
        "cost_sets.csv row 8, column element: rate 'labor' of ASSY already at row 7",
        "cost_sets.csv row 9, column value: sets nothing; give item (a material cost) or "
        "work_center and element (a rate)",
        "cost_sets.csv row 10, column value: empty; a value is required",
    ]


def test_file_problems(tmp_path: Path) -> None:
    latin = tmp_path / "latin"
    write_csv(latin, {"boms.csv": "item,component,quantity\n", "bom.csv": "item\n"})
    (latin / "routings.csv").write_bytes(
        b"item,operation,work_center,run_hours\nCAF\xc9,10,ASSY,1\n"
    )
    (latin / "cost_sets.csv").write_text('cost_set,value\n"2027,1\n', encoding="utf-8")
    assert problems(latin) == [
        "bom.csv: unknown table; expected items.csv, boms.csv, work_centers.csv, "
        "routings.csv, cost_sets.csv",
        f"{latin / 'items.csv'}: missing; the items table is required",
        "routings.csv line 2: not UTF-8 text (byte 0xc9); save the file as CSV UTF-8",
        "cost_sets.csv row 2: malformed CSV: unexpected end of data",
    ]
    (tmp_path / "fake.xlsx").write_text("id,kind\n", encoding="utf-8")
    (found,) = problems(tmp_path / "fake.xlsx")
    assert found.startswith("fake.xlsx: not an XLSX workbook (")
    assert problems(tmp_path / "nowhere") == [
        f"{tmp_path / 'nowhere'}: no such directory; expected a directory of CSV files "
        "(items.csv, ...) or an .xlsx workbook"
    ]
    assert problems(tmp_path / "absent.xlsx") == [f"{tmp_path / 'absent.xlsx'}: no such file"]
    book = Workbook()
    assert book.active is not None
    book.active.title = "boms"
    book.save(tmp_path / "no_items.xlsx")
    assert problems(tmp_path / "no_items.xlsx") == [
        "no_items.xlsx: no sheet items; the items table is required"
    ]


def test_byte_order_mark_and_blank_rows(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte order mark; blank rows still count."""
    (tmp_path / "items.csv").write_bytes(
        "\ufeffid,kind,material_cost\r\n\r\nÉCROU,material,0.05\r\n".encode()
    )
    assert read_master_tables(tmp_path)["items"] == [
        ("items.csv row 3", {"id": "ÉCROU", "kind": "material", "standard_cost": D("0.05")})
    ]


# ---------------------------------------------------------------- problems build_master finds


def test_locate_names_the_column() -> None:
    index = {
        "items.csv row 2": {"standard_cost.material": ("items.csv row 2", "material_cost")},
        "boms.csv row 2": {
            "item": ("boms.csv row 2", "item"),
            "line 2/quantity": ("boms.csv row 5", "quantity"),
            "quantity": ("boms.csv row 2", "quantity"),
        },
        "cost_sets.csv row 2": {
            "materials.CHIP": ("cost_sets.csv row 3", "value"),
            "materials.CHIP#id": ("cost_sets.csv row 3", "item"),
        },
    }
    assert locate("items.csv row 2: item X: standard_cost.material: negative", index) == (
        "items.csv row 2, column material_cost: item X: negative"
    )
    assert locate("boms.csv row 2: BOM of R: line 2: quantity: zero", index) == (
        "boms.csv row 5, column quantity: BOM of R: line 2: zero"
    )
    assert locate("cost_sets.csv row 2: cost set A: materials.CHIP: unknown item", index) == (
        "cost_sets.csv row 3, column item: cost set A: unknown item"
    )
    assert locate("cost_sets.csv row 2: cost set A: materials.CHIP: too large", index) == (
        "cost_sets.csv row 3, column value: cost set A: too large"
    )
    for unchanged in [
        "items.csv row 2: item X: missing standard: a material needs standard_cost",
        "items.csv row 12: item X: standard_cost.material: negative",
        "BOM of R: two versions effective from 2026-01-01",
        "boms.csv row 2: BOM of R: line 3: quantity: zero",
    ]:
        assert locate(unchanged, index) == unchanged


@needs_full_build_master
def test_load_problems_name_columns(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        {
            "items.csv": """\
id,kind,lot_size,material_cost,conversion,conversion:labor
CHIP,material,1,-2.40,,
BOLT,raw,1,0.10,,
ROUTER,finished,0,,,-4.00
KIT,finished,1,,1.1234567,
NUT,material,1,,,
""",
            "boms.csv": """\
item,line,component,quantity,scrap
ROUTER,2,CHIP,10,0.02
ROUTER,1,KIT,0,0
""",
            "work_centers.csv": "work_center,element,rate\nASSY,labor,30\n",
            "routings.csv": """\
item,operation,work_center,run_hours,yield
KIT,20,ASSY,0.1,1.5
KIT,10,NOWC,1,1
""",
            "cost_sets.csv": """\
cost_set,effective,item,work_center,element,value
2027,2027-01-01,ZZZ,,,2.50
2027,2027-01-01,,ASSY,labor,-1
""",
        },
    )
    assert load_problems(tmp_path) == [
        "items.csv row 2, column material_cost: item CHIP: expected zero or more, got -2.40",
        "items.csv row 3, column kind: item BOLT: Input should be 'material', 'subassembly', "
        "'phantom' or 'finished', got 'raw'",
        "items.csv row 4, column conversion:labor: item ROUTER: expected zero or more, got -4.00",
        "items.csv row 4, column lot_size: item ROUTER: expected more than zero (units per "
        "lot), got 0",
        "items.csv row 5, column conversion: item KIT: at most 6 decimals, got 1.1234567",
        "items.csv row 6, column material_cost: item NUT: empty; a material needs its standard "
        "cost",
        "boms.csv row 3, column quantity: BOM of ROUTER: line 1: expected more than zero, got 0",
        "routings.csv row 3, column work_center: routing of KIT: operations line 1: unknown "
        "work center 'NOWC'",
        "routings.csv row 2, column yield: routing of KIT: operations line 2: expected a share "
        "above 0 up to 1 (0.98 = 2% lost), got 1.5",
        "cost_sets.csv row 2, column item: cost set 2027: unknown item",
        "cost_sets.csv row 3, column value: cost set 2027: expected zero or more, got -1",
    ]


@needs_full_build_master
def test_load_problem_of_a_bom_line(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        {
            "items.csv": "id,kind,material_cost\nCHIP,material,1\nROUTER,finished,\n",
            "boms.csv": "item,line,component,quantity\nROUTER,2,CHIP,1\nROUTER,1,NOPE,0\n",
        },
    )
    assert load_problems(tmp_path) == [
        "boms.csv row 3, column component: BOM of ROUTER: line 1: unknown item 'NOPE'",
        "boms.csv row 3, column quantity: BOM of ROUTER: line 1: expected more than zero, got 0",
    ]


def test_a_bad_element_name_is_named_in_the_element_column(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        {
            "items.csv": "id,kind,material_cost\nM,material,1\n",
            "work_centers.csv": "work_center,element,rate\nW,labor,30\nW,lab:or,30\n",
        },
    )
    assert load_problems(tmp_path) == [
        "work_centers.csv row 3, column element: work center W: expected an element's name "
        "without ':' (it separates the parts of keys), got 'lab:or'"
    ]


def test_what_conflicts_with_the_book_is_named_by_its_row(tmp_path: Path) -> None:
    """The book's NUT costs 0.05 and its ROUTER's BOM from the start takes 10 CHIP: tables
    giving NUT at 0.06, or that BOM version with 12 CHIP, are refused at their rows (the store
    refuses them too, knowing no rows)."""
    book = load_master_tables(
        write_csv(
            tmp_path / "book",
            {
                "items.csv": "id,kind,material_cost,conversion\n"
                "CHIP,material,2.40,\nNUT,material,0.05,\nROUTER,finished,,1.00\n",
                "boms.csv": "item,component,quantity\nROUTER,CHIP,10\n",
            },
        ),
        SETTINGS,
    )
    write_csv(
        tmp_path / "again",
        {
            "items.csv": "id,kind,material_cost\nBOLT,material,0.10\nNUT,material,0.06\n",
            "boms.csv": "item,component,quantity\nROUTER,CHIP,12\n",
        },
    )
    with pytest.raises(InputError) as caught:
        load_master_tables(tmp_path / "again", SETTINGS, known=book)
    assert caught.value.problems == [
        "items.csv row 3: item NUT: already in the book with a different definition "
        "(standards change through a new BOM version or a cost set, not a re-import)",
        "boms.csv row 2, column effective_from: BOM of ROUTER: a version effective from the "
        "start is in the book already, with other content; add a new version with a later "
        "effective_from",
    ]


def test_a_cost_set_released_too_early_or_changed_is_named_by_its_row(tmp_path: Path) -> None:
    """The book's last event is dated 2026-01-15 and it holds the cost set 2027 at 2.50 for
    CHIP: a set released effective 2026-01-15 is refused at its row (past postings never
    change), as is 2027 with CHIP at 2.60; one effective the day after is taken."""
    book = load_master_tables(
        write_csv(
            tmp_path / "book",
            {
                "items.csv": "id,kind,material_cost\nCHIP,material,2.40\n",
                "cost_sets.csv": "cost_set,effective,item,value\n2027,2027-01-01,CHIP,2.50\n",
            },
        ),
        SETTINGS,
    )
    folder = write_csv(
        tmp_path / "again",
        {
            "items.csv": "id,kind,material_cost\nCHIP,material,2.40\n",
            "cost_sets.csv": "cost_set,effective,item,value\n"
            "2027,2027-01-01,CHIP,2.60\nearly,2026-01-15,CHIP,2.45\n"
            "later,2026-01-16,CHIP,2.45\n",
        },
    )
    with pytest.raises(InputError) as caught:
        load_master_tables(folder, SETTINGS, known=book, last_event=dt.date(2026, 1, 15))
    assert caught.value.problems == [
        "cost_sets.csv row 2: cost set 2027: already in the book with different content",
        "cost_sets.csv row 3, column effective: cost set early: takes effect on 2026-01-15, on "
        "or before the last event recorded (2026-01-15); standards may change from 2026-01-16 "
        "on",
    ]
    (folder / "cost_sets.csv").write_text(
        "cost_set,effective,item,value\n2027,2027-01-01,CHIP,2.50\nlater,2026-01-16,CHIP,2.45\n"
    )
    found = load_master_tables(folder, SETTINGS, known=book, last_event=dt.date(2026, 1, 15))
    assert sorted(found.cost_sets) == ["2027", "later"]


def test_a_gap_between_versions_is_named_at_the_later_version(tmp_path: Path) -> None:
    write_csv(
        tmp_path,
        {
            "items.csv": "id,kind,material_cost,conversion\nCHIP,material,2.40,\n"
            "ROUTER,finished,,1.00\n",
            "boms.csv": "item,effective_from,effective_to,component,quantity\n"
            "ROUTER,,2026-01-31,CHIP,10\nROUTER,2026-03-01,,CHIP,12\n",
        },
    )
    assert load_problems(tmp_path) == [
        "boms.csv row 3: BOM of ROUTER: gap between versions: nothing is effective from "
        "2026-02-01 to 2026-02-28"
    ]
