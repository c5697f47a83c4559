"""Standards from BOMs and routings, production orders and cost set releases, checked against
figures worked by hand on the gearbox plant (examples/gearbox_orders.yaml).

The plant, purchase+completion, USD:

* STEEL 2.00, BALL 0.50, HOUSING 10.00 (manual), BOLT 1.00 (forward on GEARBOX's BOM);
* KIT (phantom) = 4 BALL;
* SHAFT (subassembly) = 2 STEEL with 5% scrap + 1 KIT; routed 0.1 h at LATHE
  (labor 30.00/h, overhead 45.00/h);
* GEARBOX (finished, lot size 50) = 2 SHAFT + 1 HOUSING + 3 BOLT at operation 20;
  routed op 10 LATHE setup 5 h per lot, run 0.2 h, yield 0.5; op 20 TEST (machine 20.00/h)
  run 0.5 h, yield 0.8. From 2026-02-01: 2 BOLT instead of 3.

SHAFT: material 2 x 1.05 x 2.00 + 4 x 0.50 = 4.20 + 2.00 = 6.20; conversion labor 0.1 x 30
= 3.00, overhead 0.1 x 45 = 4.50; total 13.70.

GEARBOX: good units out of op 10 reach the end at 0.5 x 0.8 = 0.4, out of op 20 at 0.8.
Lines without an operation are consumed at the first one: per good gearbox
2 / 0.4 = 5 SHAFT, 1 / 0.4 = 2.5 HOUSING, 3 / 0.8 = 3.75 BOLT.
Hours: op 10 = 5 / 50 + 0.2 / 0.4 = 0.6 h -> labor 18.00, overhead 27.00;
op 20 = 0.5 / 0.8 = 0.625 h -> machine 12.50. Conversion 57.50.
Material 5 x 13.70 + 2.5 x 10.00 + 3.75 x 1.00 = 68.50 + 25.00 + 3.75 = 97.25; total 154.75.
Lower levels by element: material 5 x 6.20 + 25.00 + 3.75 = 59.75, labor 5 x 3.00 = 15.00,
overhead 5 x 4.50 = 22.50 (59.75 + 15.00 + 22.50 = 97.25).
From 2026-02-01: BOLT 2 / 0.8 = 2.5 -> material 96.00, total 153.50.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backflush.book import Book
from backflush.cli import app
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.engine.standards import Standards
from backflush.formats.inputs import InputError
from backflush.formats.scenario import Scenario, parse_scenario, read_scenario
from backflush.reports.close import checklist
from backflush.reports.standards import order_pick_list
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import EXAMPLES, dump_file

D = Decimal
JAN = dt.date(2026, 1, 15)
FEB = dt.date(2026, 2, 15)
MAR = dt.date(2026, 3, 15)


@pytest.fixture(scope="module")
def plant() -> Scenario:
    return read_scenario(EXAMPLES / "gearbox_orders.yaml")


def run_until(sc: Scenario, last: str) -> Book:
    events = []
    for event in sc.events:
        events.append(event)
        if event.id == last:
            break
    return run_scenario(Scenario(sc.settings, sc.master, tuple(events), sc.sources))


def lines_of(book: Book, event: str) -> list[tuple[str, Decimal, str, str]]:
    return [
        (line.account.value, line.amount, line.element, line.item)
        for entry in book.journal
        if entry.event == event
        for line in entry.lines
    ]


# ---------------------------------------------------------------- rollup


def test_rollup_with_phantom_scrap_routing_setup_and_yields(plant: Scenario) -> None:
    std = Standards(plant.settings, plant.master)
    shaft = std.unit_cost("SHAFT", JAN)
    assert shaft.material == D("6.20")
    assert dict(shaft.conversion) == {"labor": D("3.00"), "overhead": D("4.50")}
    assert shaft.total == D("13.70")
    assert {(r.component, r.quantity) for r in shaft.requirements} == {
        ("STEEL", D("2.10")),
        ("BALL", D("4")),  # through the phantom kit
    }
    gearbox = std.unit_cost("GEARBOX", JAN)
    assert {(r.component, r.quantity, r.flush) for r in gearbox.requirements} == {
        ("SHAFT", D("5"), m.Flush.BACKWARD),
        ("HOUSING", D("2.5"), m.Flush.MANUAL),
        ("BOLT", D("3.75"), m.Flush.FORWARD),
    }
    assert dict(gearbox.conversion) == {
        "labor": D("18.00"),
        "overhead": D("27.00"),
        "machine": D("12.50"),
    }
    assert gearbox.material == D("97.25")
    assert gearbox.total == D("154.75")
    # This level (conversion) and lower levels kept apart, adding up to the standard.
    assert dict(gearbox.rolled) == {
        "material": D("59.75"),
        "labor": D("15.00"),
        "overhead": D("22.50"),
    }
    assert sum(gearbox.by_element().values()) == gearbox.total
    # A completion after the BOM change uses the version of its date.
    assert std.unit_cost("GEARBOX", FEB).total == D("153.50")


def test_cost_sets_roll_up_before_and_after_release(plant: Scenario) -> None:
    std = Standards(plant.settings, plant.master)
    # march: STEEL 2.20 and LATHE labor 33.00 from 2026-03-01.
    # SHAFT: 2.10 x 2.20 + 2.00 = 6.62; labor 3.30, overhead 4.50: 14.42.
    # GEARBOX: 5 x 14.42 + 25.00 + 2.50 = 99.60; labor 0.6 x 33 = 19.80, overhead 27.00,
    # machine 12.50: 158.90.
    assert std.unit_cost("SHAFT", MAR).total == D("14.42")
    assert std.unit_cost("GEARBOX", MAR).total == D("158.90")
    # A set that is not released changes nothing, but rolls up as a what-if: BALL 0.40 makes
    # SHAFT 13.70 - 4 x 0.10 = 13.30 and GEARBOX 154.75 - 5 x 0.40 = 152.75.
    assert std.unit_cost("SHAFT", JAN).total == D("13.70")
    what_if = Standards(plant.settings, plant.master, plant.master.cost_sets["what-if"])
    assert what_if.unit_cost("SHAFT", JAN).total == D("13.30")
    assert what_if.unit_cost("GEARBOX", JAN).total == D("152.75")


def test_setup_and_yield_that_do_not_divide_evenly_keep_twelve_decimals() -> None:
    sc = parse_scenario(
        MINIMAL.replace('run_hours: "1"', 'run_hours: "1", setup_hours: "1", yield: "0.9"').replace(
            'lot_size: "10"', 'lot_size: "3"'
        )
    )
    cost = Standards(sc.settings, sc.master).unit_cost("F", JAN)
    # 1 / 0.9 = 1.111111111111 (12 decimals) of M per unit; hours 1/3 (setup over a lot of
    # 3) + 1/0.9, at 10.00 an hour.
    assert {r.component: r.quantity for r in cost.requirements} == {"M": D("1.111111111111")}
    assert dict(cost.conversion) == {"labor": (D("0.333333333333") + D("1.111111111111")) * 10}


# ---------------------------------------------------------------- production orders


def test_partial_completions_consume_exactly_what_the_order_released(plant: Scenario) -> None:
    book = run_until(plant, "c1")
    order = book.orders["WO-1"]
    # Released 8: 8 x 3.75 = 30 BOLT forward-flushed into process; 20 HOUSING issued.
    assert dict(order.issued) == {"BOLT": D("30.00"), "HOUSING": D("20")}
    # 3 made: 3 x 2.5 HOUSING and 3 x 3.75 BOLT consumed out of what the order was given,
    # 15 SHAFT backflushed from stock.
    assert dict(order.consumed) == {"HOUSING": D("7.5"), "BOLT": D("11.25")}
    assert book.quantity("SHAFT") == 70 - 15
    # Dr FG 3 x 154.75 = 464.25; Cr RIP 15 x 6.20 + 7.5 x 10 + 11.25 = 179.25; Cr allocated
    # labor 15 x 3 + 3 x 18 = 99, overhead 15 x 4.5 + 3 x 27 = 148.50, machine 3 x 12.50.
    assert sorted(lines_of(book, "c1")) == sorted(
        [
            ("raw_in_process", D("-179.25"), "", ""),
            ("conversion_allocated", D("-99.00"), "labor", ""),
            ("conversion_allocated", D("-148.50"), "overhead", ""),
            ("conversion_allocated", D("-37.50"), "machine", ""),
            ("finished_goods", D("464.25"), "", "GEARBOX"),
        ]
    )
    book = run_until(plant, "x1")
    order = book.orders["WO-1"]
    # 3 + 5 = 8 made: 20 HOUSING and 30 BOLT consumed, exactly what was released and issued.
    assert order.completed == 8
    assert order.left() == {"BOLT": 0, "HOUSING": 0}
    assert order.returned == ()
    assert order.closed_by == "x1"
    assert book.in_process.get("BOLT") == 0 and book.in_process.get("HOUSING") == 0


def test_an_order_keeps_the_bom_it_was_released_with(plant: Scenario) -> None:
    book = run_until(plant, "c3")
    # WO-2 was released in January (3 BOLT a gearbox); completed on 2026-02-05 under the new
    # BOM (2 BOLT): it consumes 4 x 3.75 = 15 BOLT as released, not 4 x 2.5 = 10.
    assert dict(book.orders["WO-2"].consumed) == {"HOUSING": D("10"), "BOLT": D("15.00")}
    # FG at today's standard 4 x 153.50 = 614.00; the 5 BOLT used beyond today's BOM are a
    # usage variance of 5.00. Credits: RIP 20 x 6.20 + 100 + 15 = 239; allocated labor
    # 20 x 3 + 4 x 18 = 132, overhead 20 x 4.5 + 4 x 27 = 198, machine 4 x 12.50 = 50.
    assert sorted(lines_of(book, "c3")) == sorted(
        [
            ("raw_in_process", D("-239.00"), "", ""),
            ("conversion_allocated", D("-132.00"), "labor", ""),
            ("conversion_allocated", D("-198.00"), "overhead", ""),
            ("conversion_allocated", D("-50.00"), "machine", ""),
            ("material_usage_variance", D("5.00"), "", "GEARBOX"),
            ("finished_goods", D("614.00"), "", "GEARBOX"),
        ]
    )
    # The two gearboxes left on 2026-02-01 were revalued 154.75 -> 153.50 first.
    assert lines_of(book, "revaluation-2026-02-01") == [
        ("finished_goods", D("-2.50"), "", ""),
        ("revaluation_variance", D("2.50"), "", "GEARBOX"),
    ]


def test_release_of_a_cost_set_revalues_stock_per_item_to_the_cent(plant: Scenario) -> None:
    book = run_scenario(plant)
    # On hand on 2026-03-01: STEEL 1000 - 70 x 2.1 = 853, SHAFT 10, GEARBOX 6.
    # STEEL 853 x 0.20 = 170.60; SHAFT 10 x (6.62 - 6.20) = 4.20 on the books (its labor
    # change waits unallocated, off the books); GEARBOX 6 x (158.90 - 153.50) = 32.40.
    revaluation = [e for e in book.journal if e.event == "revaluation-2026-03-01"]
    assert {
        e.memo: [(ln.account.value, ln.amount, ln.item) for ln in e.lines] for e in revaluation
    } == {
        "revaluation of GEARBOX to the standards of 2026-03-01": [
            ("finished_goods", D("32.40"), ""),
            ("revaluation_variance", D("-32.40"), "GEARBOX"),
        ],
        "revaluation of SHAFT to the standards of 2026-03-01": [
            ("raw_in_process", D("4.20"), ""),
            ("revaluation_variance", D("-4.20"), "SHAFT"),
        ],
        "revaluation of STEEL to the standards of 2026-03-01": [
            ("raw_in_process", D("170.60"), ""),
            ("revaluation_variance", D("-170.60"), "STEEL"),
        ],
    }
    # Past postings never change: January's entries are as they were.
    assert lines_of(book, "c1") == lines_of(run_until(plant, "c1"), "c1")
    # Stock is worth quantities x new standards: FG 6 x 158.90; RIP STEEL 863 x 2.20 +
    # BALL 720 x 0.50 + HOUSING 70 x 10 + BOLT 55 x 1 + SHAFT parts 10 x 6.62.
    balances = book.account_balances()
    assert balances["finished_goods"] == D("953.40")
    assert balances["raw_in_process"] == D("1898.60") + 360 + 700 + 55 + D("66.20")
    assert book.off_book() == {"SHAFT": D("78.00")}  # 10 x (3.30 + 4.50) not yet allocated


def test_order_rules(plant: Scenario) -> None:
    book = run_until(plant, "i2")

    def refused(event: m.Event, message: str) -> None:
        with pytest.raises(PostingError, match=message):
            book.post(event)

    on = dt.date(2026, 1, 21)
    refused(m.Release("r9", on, "GEARBOX", D(1), "WO-2"), "already released by r2")
    refused(m.Completion("c9", on, "SHAFT", D(1), order="WO-2"), "makes 'GEARBOX', not 'SHAFT'")
    refused(m.Completion("c9", on, "GEARBOX", D(1), order="WO-9"), "unknown production order")
    refused(m.Completion("c9", on, "GEARBOX", D(1), order="WO-1"), "was closed by x1")
    refused(m.Issue("i9", on, "STEEL", D(1), "WO-2"), "not on the BOM of production order WO-2")
    refused(m.Reversal("v9", on, "r2"), "release cannot be reversed")
    refused(m.Reversal("v9", on, "c1"), "closed by x1")
    # Under reject, a completion beyond what was issued is refused: 5 x 2.5 > 10 HOUSING.
    refused(
        m.Completion("c9", on, "GEARBOX", D(5), order="WO-2"),
        "needs 12.5 of 'HOUSING' issued to production but only 10 is in process",
    )
    assert not book.orders["WO-2"].completed


def test_reversal_and_close_of_an_order_under_production(plant: Scenario) -> None:
    book = run_until(plant, "i2")
    on = dt.date(2026, 1, 21)
    book.post(m.Completion("c8", on, "GEARBOX", D(1), order="WO-2"))
    assert book.orders["WO-2"].completed == 1
    book.post(m.Reversal("v8", on, "c8"))
    order = book.orders["WO-2"]
    assert (order.completed, dict(order.consumed)) == (0, {"HOUSING": 0, "BOLT": 0})
    book.post(m.Completion("c7", on, "GEARBOX", D(2), order="WO-2"))
    book.post(m.OrderClose("x7", on, "WO-2"))
    order = book.orders["WO-2"]
    # 2 of 4 made: 10 - 5 HOUSING and 15 - 7.5 BOLT left over go back to stock.
    assert dict(order.returned) == {"HOUSING": D("5.0"), "BOLT": D("7.50")}
    assert order.completed - order.quantity == -2
    assert book.in_process == {"BOLT": 0, "HOUSING": 0} | {
        k: v for k, v in book.in_process.items() if k not in ("BOLT", "HOUSING")
    }
    assert book.quantity("HOUSING") == 100 - 20 - 10 + 5
    assert book.quantity("BOLT") == 100 - 30 - 15 + D("7.5")


def test_pick_list_of_an_order_is_what_is_still_to_pick(plant: Scenario) -> None:
    book = run_until(plant, "r2")
    on = dt.date(2026, 1, 20)

    def still(order_book: Book) -> dict[str, Decimal]:
        found = order_pick_list(order_book.standards, order_book.orders["WO-2"], on)
        return {line.component: line.quantity for line in found.lines}

    # WO-2: 4 gearboxes released; 4 x 3.75 = 15 BOLT forward-flushed already; 4 x 2.5 = 10
    # HOUSING to issue; 4 x 5 = 20 SHAFT backflushed as they are reported.
    assert still(book) == {"SHAFT": 20, "BOLT": 0, "HOUSING": 10}
    book.post(m.Issue("i5", on, "HOUSING", D(4), "WO-2"))
    book.post(m.Completion("c5", on, "GEARBOX", D(1), order="WO-2"))
    assert still(book) == {"SHAFT": 15, "BOLT": 0, "HOUSING": 6}
    result = CliRunner().invoke(
        app, ["picklist", "--order", "WO-1", "--file", str(EXAMPLES / "gearbox_orders.yaml")]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        app, ["picklist", "--order", "WO-7", "--file", str(EXAMPLES / "gearbox_orders.yaml")]
    )
    assert result.exit_code == 2 and "unknown production order 'WO-7'" in result.output


def test_an_order_waiting_for_released_stock_cannot_close() -> None:
    text = (
        (EXAMPLES / "gearbox_orders.yaml")
        .read_text()
        .replace("shortage: reject", "shortage: queue")
    )
    sc = parse_scenario(text)
    book = run_until(sc, "x1")  # BOLT: 100 - 30 on hand
    on = dt.date(2026, 1, 16)
    book.post(m.Release("r9", on, "GEARBOX", D(20), "WO-9"))  # 20 x 3.75 = 75 BOLT wanted
    assert dict(book.orders["WO-9"].issued) == {"BOLT": D("75.00")}
    assert book.in_process["BOLT"] == 70
    with pytest.raises(PostingError, match="still waits for 5 BOLT released by r9"):
        book.post(m.OrderClose("x9", on, "WO-9"))
    book.post(m.Purchase("p9", on, "BOLT", D(5), D(1)))
    book.post(m.OrderClose("x9", on, "WO-9"))
    assert dict(book.orders["WO-9"].returned) == {"BOLT": D("75.00")}
    assert book.quantity("BOLT") == 75 and book.in_process["BOLT"] == 0


def test_orders_through_the_store_and_the_cli(plant: Scenario, tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(EXAMPLES / "gearbox_orders.yaml"), "--db", str(db)])
    assert result.exit_code == 0, result.output
    stored = Store(str(db)).load()
    assert stored.orders == run_scenario(plant).orders
    result = runner.invoke(
        app,
        ["post", "--db", str(db), "--type", "release", "--date", "2026-03-03",
         "--item", "GEARBOX", "--quantity", "2", "--order", "WO-3", "--id", "r3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    order = Store(str(db)).load().orders["WO-3"]
    # Released under the March standards and the February BOM: 2 x 2.5 BOLT.
    assert dict(order.issued) == {"BOLT": D("5.0")}
    assert order.requirements[0][0] == "SHAFT"
    result = runner.invoke(app, ["report", "--db", str(db), "--what", "orders"])
    assert result.exit_code == 0, result.output
    assert "WO-3" in result.output
    result = runner.invoke(app, ["report", "--db", str(db), "--json"])
    orders = {o["order"]: o for o in json.loads(result.output)["orders"]}
    assert orders["WO-3"] == {
        "order": "WO-3",
        "item": "GEARBOX",
        "released": "2026-03-03",
        "quantity": "2",
        "completed": "0",
        "scrapped": "0",
        "difference": "-2",
        "status": "open",
        "issued": {"BOLT": "5"},
        "consumed": {},
        "returned": {},
    }
    assert orders["WO-1"]["status"] == "closed" and orders["WO-1"]["closed_by"] == "x1"


# ---------------------------------------------------------------- refused master data

MINIMAL = """\
book: {name: Edge plant}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, lot_size: "10"}
work_centers:
  - {id: W, rates: {labor: "10"}}
routings:
  - item: F
    operations:
      - {operation: 10, work_center: W, run_hours: "1"}
boms:
  - item: F
    lines:
      - {component: M, quantity: "1"}
"""

BAD_MASTER = {
    "BOM cycle": (
        MINIMAL.replace(
            '  - {id: M, kind: material, standard_cost: "2.00"}',
            '  - {id: M, kind: material, standard_cost: "2.00"}\n  - {id: S, kind: subassembly}',
        )
        + "  - {item: S, lines: [{component: F, quantity: '1'}]}\n"
        + "  - {item: F, effective_from: 2026-02-01, lines: [{component: S, quantity: '1'}]}\n",
        "BOM cycle: S -> F -> S",
    ),
    "missing rate": (
        MINIMAL.replace('rates: {labor: "10"}', "rates: {}"),
        "work center 'W' has no cost rate (routing of 'F', operation 10)",
    ),
    "unknown work center": (
        MINIMAL.replace("work_center: W,", "work_center: NOPE,"),
        "work_center: unknown work center 'NOPE'",
    ),
    "component without standard": (
        MINIMAL.replace('standard_cost: "2.00"', "uom: KG"),
        "item M: standard_cost: empty; a material needs its standard cost",
    ),
    "version gap": (
        MINIMAL.replace(
            "  - item: F\n    lines:", "  - item: F\n    effective_to: 2026-01-31\n    lines:"
        )
        + "  - {item: F, effective_from: 2026-03-01, lines: [{component: M, quantity: '2'}]}\n",
        "BOM of F: gap between versions: nothing is effective from 2026-02-01 to 2026-02-28",
    ),
    "version overlap": (
        MINIMAL.replace(
            "  - item: F\n    lines:", "  - item: F\n    effective_to: 2026-03-31\n    lines:"
        )
        + "  - {item: F, effective_from: 2026-03-01, lines: [{component: M, quantity: '2'}]}\n",
        "BOM of F: versions overlap: the version from 0001-01-01 runs to 2026-03-31, the next "
        "starts 2026-03-01",
    ),
    "open end": (
        MINIMAL.replace(
            "  - item: F\n    lines:", "  - item: F\n    effective_to: 2026-03-31\n    lines:"
        ),
        "BOM of F: gap after the last version: nothing is effective after 2026-03-31",
    ),
    "zero lot size": (
        MINIMAL.replace('lot_size: "10"', 'lot_size: "0"'),
        "item F: lot_size: expected more than zero (units per lot), got 0",
    ),
    "line at an operation the routing lacks": (
        MINIMAL.replace('quantity: "1"}', 'quantity: "1", operation: 20}'),
        "component 'M' is consumed at operation 20, which the routing of 'F' does not have",
    ),
    "yield above one": (
        MINIMAL.replace('run_hours: "1"', 'run_hours: "1", yield: "1.2"'),
        "yield: expected a share above 0 up to 1",
    ),
    "cost set of a made item": (
        MINIMAL + "cost_sets:\n  - {name: next, materials: {F: '3'}}\n",
        "cost set next: materials.F: F is a finished; a made item's standard is rolled up",
    ),
}


@pytest.mark.parametrize("case", BAD_MASTER)
def test_bad_master_data_is_refused_and_nothing_is_written(case: str, tmp_path: Path) -> None:
    text, message = BAD_MASTER[case]
    with pytest.raises(InputError) as caught:
        parse_scenario(text, "bad.yaml")
    assert message in str(caught.value)
    path = tmp_path / "bad.yaml"
    path.write_text(text + "events: []\n")
    db = tmp_path / "book.db"
    result = CliRunner().invoke(app, ["import", str(path), "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert message.split(":")[0] in result.output
    assert not db.exists() or not any(dump_file(db)["items"])


def test_a_new_product_has_no_standard_before_its_first_bom() -> None:
    text = MINIMAL.replace(
        "  - item: F\n    lines:", "  - item: F\n    effective_from: 2026-03-01\n    lines:"
    )
    sc = parse_scenario(text)
    book = Book(sc.settings, sc.master)
    book.post(m.Purchase("p", JAN, "M", D(5), D(2)))
    with pytest.raises(PostingError, match="event c: item 'F' has no BOM effective on 2026-01-15"):
        book.post(m.Completion("c", JAN, "F", D(1)))
    book.post(m.Completion("c", dt.date(2026, 3, 1), "F", D(1)))
    assert book.quantity("F") == 1


def test_store_refuses_standards_that_would_change_past_postings(tmp_path: Path) -> None:
    sc = parse_scenario(MINIMAL + "events:\n  - {id: p, date: 2026-02-10, type: purchase, "
                        "item: M, quantity: 5, unit_cost: 2}\n")  # fmt: skip
    store = Store(str(tmp_path / "book.db"))
    store.import_scenario(sc.settings, sc.master, sc.events)
    later = parse_scenario(
        MINIMAL
        + "  - {item: F, effective_from: 2026-02-01, lines: [{component: M, quantity: '2'}]}\n"
        "cost_sets:\n  - {name: next, materials: {M: '3'}}\n"
    )  # fmt: skip
    before = dump_file(tmp_path / "book.db")
    with pytest.raises(InputError, match="BOM of F effective 2026-02-01: takes effect on "
                       "2026-02-01, on or before the last event recorded"):  # fmt: skip
        store.import_scenario(later.settings, later.master, ())
    assert dump_file(tmp_path / "book.db") == before
    # A set added unreleased, then released after the last event: accepted once.
    unreleased = parse_scenario(MINIMAL + "cost_sets:\n  - {name: next, materials: {M: '3'}}\n")
    store.import_scenario(unreleased.settings, unreleased.master, ())
    with pytest.raises(InputError, match="on or before the last event recorded"):
        store.release_cost_set("next", dt.date(2026, 2, 10))
    released = store.release_cost_set("next", dt.date(2026, 2, 11))
    assert released.effective == dt.date(2026, 2, 11)
    with pytest.raises(InputError, match="already released"):
        store.release_cost_set("next", dt.date(2026, 3, 1))
    book = store.load()
    assert book.standards.unit_cost("M", dt.date(2026, 2, 11)).total == 3
    store.post([m.Conversion("k", dt.date(2026, 2, 12), D("1.00"))])
    # 5 M revalued 2.00 -> 3.00 when the first event of the new standards was posted.
    revalued = [e for e in store.entries() if e.event == "revaluation-2026-02-11"]
    assert [(ln.account.value, ln.amount) for e in revalued for ln in e.lines] == [
        ("raw_in_process", D("5.00")),
        ("revaluation_variance", D("-5.00")),
    ]


SEQUENTIAL_ECO = """\
book: {name: ECO, currency: USD, triggers: sequential, disposition: cogs}
items:
  - {id: BOLT, kind: material, standard_cost: "1.00"}
  - {id: G, kind: finished, standard_cost: {conversion: "5.00"}}
boms:
  - {item: G, effective_to: 2026-01-31, lines: [{component: BOLT, quantity: "3", flush: forward}]}
  - {item: G, effective_from: 2026-02-01, lines: [{component: BOLT, quantity: "2", flush: forward}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: BOLT, quantity: "100", unit_cost: "1.00"}
  - {id: r1, date: 2026-01-20, type: release, item: G, quantity: "4", order: WO-1}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
  - {id: c1, date: 2026-02-05, type: completion, item: G, quantity: "4", order: WO-1}
  - {id: x1, date: 2026-02-06, type: order_close, order: WO-1}
  - {id: close-feb, date: 2026-02-28, type: close, period: 2026-02}
"""


def test_sequential_costing_of_an_order_released_under_an_older_bom() -> None:
    """WO-1 took 3 BOLT a G into WIP when released in January; G is made of 2 since February.
    The completion relieves WIP of today's 2: the 4 BOLT beyond are a usage variance of 4.00
    (WIP kept them, and the close swept them into rounding), as under purchase+completion."""
    book = run_scenario(parse_scenario(SEQUENTIAL_ECO, "eco.yaml"))
    assert ("material_usage_variance", D("4.00"), "", "G") in lines_of(book, "c1")
    found = {k: v for k, v in book.period_variances("2026-02").items() if v}
    assert found == {"material_usage": D("4.00"), "conversion": D("-20.00")}
    assert not book.balances.get((m.Account.WORK_IN_PROCESS, ""))


ECO_AT_SALE = """\
book: {{name: ECO, currency: USD, triggers: {triggers}, disposition: cogs}}
items:
  - {{id: BOLT, kind: material, standard_cost: "1.00"}}
  - {{id: S, kind: subassembly}}
  - {{id: G, kind: finished, standard_cost: {{conversion: "5.00"}}}}
boms:
  - {{item: S, effective_to: 2026-01-31, lines: [{{component: BOLT, quantity: "3"}}]}}
  - {{item: S, effective_from: 2026-02-01, lines: [{{component: BOLT, quantity: "2"}}]}}
  - {{item: G, effective_to: 2026-01-31, lines: [{{component: BOLT, quantity: "3"}}]}}
  - {{item: G, effective_from: 2026-02-01, lines: [{{component: BOLT, quantity: "2"}}]}}
events:
  - {{id: p1, date: 2026-01-05, type: purchase, item: BOLT, quantity: "100", unit_cost: "1.00"}}
  - {{id: r1, date: 2026-01-20, type: release, item: {made}, quantity: "4", order: WO-1}}
  - {{id: c1, date: 2026-02-05, type: completion, item: {made}, quantity: "4", order: WO-1}}
"""


@pytest.mark.parametrize(
    ("triggers", "made", "stock"),
    [
        ("purchase+sale", "G", "raw_in_process"),  # G costed at sale
        ("purchase+completion", "S", "raw_in_process"),  # a subassembly is never costed alone
        ("sale", "G", "accounts_payable"),  # BOLT off the books until consumed
    ],
)
def test_an_order_released_under_an_older_bom_and_not_costed_at_completion(
    triggers: str, made: str, stock: str
) -> None:
    """WO-1 was released in January, when a unit took 3 BOLT; since February it takes 2. The
    4 units made are not valued at completion (the sale or a parent takes them, later, at
    today's 2 BOLT): the 4 BOLT the order used beyond are a usage variance of 4.00 now, taken
    out of where BOLT sits; stock kept them (found by the accountant's review)."""
    text = ECO_AT_SALE.format(triggers=triggers, made=made)
    book = run_scenario(parse_scenario(text, "eco.yaml"))
    assert sorted(lines_of(book, "c1")) == sorted(
        [(stock, D("-4.00"), "", ""), ("material_usage_variance", D("4.00"), "", made)]
    )
    assert book.on_hand["BOLT"] == D("88")
    if stock == "raw_in_process":  # the 88 BOLT on hand and the 4 units made at 2 BOLT each
        assert book.balances[(m.Account.RAW_IN_PROCESS, "")] == D("96.00")


UNISSUED = """\
book: {{name: S5, currency: USD, triggers: {triggers}, disposition: cogs, shortage: {shortage}}}
items:
  - {{id: M1, kind: material, standard_cost: "2.00"}}
  - {{id: M2, kind: material, standard_cost: "5.00", flush: manual}}
  - {{id: F, kind: finished, standard_cost: {{conversion: "1.00"}}}}
boms: [{{item: F, lines: [{{component: M1, quantity: "1"}}, {{component: M2, quantity: "1"}}]}}]
events:
  - {{id: p1, date: 2026-01-05, type: purchase, item: M1, quantity: "20", unit_cost: "2.00"}}
  - {{id: p2, date: 2026-01-05, type: purchase, item: M2, quantity: "{bought}", unit_cost: "5.00"}}
  - {{id: r1, date: 2026-01-06, type: release, item: F, quantity: "10", order: WO1}}
  - {{id: i1, date: 2026-01-06, type: issue, item: M2, quantity: "5", order: WO1}}
  - {{id: c1, date: 2026-01-10, type: completion, item: F, quantity: "10", order: WO1}}
  - {{id: x1, date: 2026-01-11, type: order_close, order: WO1}}
"""


@pytest.mark.parametrize("triggers", ["purchase+completion", "sequential"])
def test_an_order_closed_issues_what_it_consumed_beyond_its_issues(triggers: str) -> None:
    """WO1 made 10 F of 1 M2 each, with only 5 M2 issued: 5 came off the shelf unissued. Its
    close issues them from stock: none left in process (it stayed at -5), 5 M2 on the shelf
    (it said 10), so a count of 5 finds nothing missing (it booked a loss of 25.00). Under
    sequential costing the issue moves 25.00 from materials to WIP, which the completion
    credited for all 10 (found by the accountant's review)."""
    text = UNISSUED.format(triggers=triggers, shortage="queue", bought="15")
    text += "  - {id: n1, date: 2026-01-20, type: count, item: M2, quantity: '5'}\n"
    book = run_scenario(parse_scenario(text, "unissued.yaml"))
    assert (book.on_hand["M2"], book.in_process.get("M2", D(0))) == (D("5"), D("0"))
    assert lines_of(book, "n1") == []
    assert dict(book.orders["WO1"].issued)["M2"] == D("10")
    if triggers == "sequential":
        assert sorted(lines_of(book, "x1")) == [
            ("materials", D("-25.00"), "", ""),
            ("work_in_process", D("25.00"), "", "F"),
        ]
        assert not book.balances.get((m.Account.WORK_IN_PROCESS, ""))
        assert book.balances[(m.Account.MATERIALS, "")] == D("45.00")  # 10 M1, 5 M2
    else:
        assert lines_of(book, "x1") == []
        assert book.balances[(m.Account.RAW_IN_PROCESS, "")] == D("45.00")
    # Short of stock to issue: the close waits for it, as an issue would.
    short = UNISSUED.format(triggers=triggers, shortage="queue", bought="8")
    with pytest.raises(PostingError, match=r"x1: needs 5 of 'M2' but only 3 is on hand"):
        run_scenario(parse_scenario(short, "short.yaml"))


def test_the_close_checklist_warns_of_stock_consumed_beyond_its_issue() -> None:
    """Before WO1 closes, 5 M2 were consumed beyond what was issued: -5 in process at the
    period end, which the checklist said nothing of ("no negative stock")."""
    text = UNISSUED.format(triggers="purchase+completion", shortage="queue", bought="15")
    book = run_scenario(parse_scenario(text.replace("  - {id: x1,", "  # {id: x1,"), "u.yaml"))
    (counts,) = [c for c in checklist(book, "2026-01") if c.check == "counts and receipts"]
    assert counts.status == "warn"
    assert counts.details == (
        "M2: -5 in process at the period end (consumed beyond what was issued: issue it, or "
        "close its order)",
    )
    closed = run_scenario(parse_scenario(text, "closed.yaml"))
    (counts,) = [c for c in checklist(closed, "2026-01") if c.check == "counts and receipts"]
    assert counts.status == "ok"


def test_an_order_on_todays_bom_is_valued_as_an_order_less_completion() -> None:
    """An order released under today's BOM: its completion posts what an order-less one posts
    (the pennies a per-unit value of 12 decimals leaves to rounding, not to the usage variance
    as a BOM difference there is none of)."""
    text = """\
book: {name: S9, currency: USD, triggers: purchase+completion, disposition: keep, shortage: allow}
items:
  - {id: M, kind: material, standard_cost: "7.00"}
  - {id: K, kind: phantom}
  - {id: F, kind: finished}
work_centers: [{id: W, name: Cell, rates: {labor: "3.00"}}]
routings: [{item: F, operations: [{operation: 10, work_center: W, run_hours: "1", yield: "0.7"}]}]
boms:
  - {item: K, lines: [{component: M, quantity: "1", scrap: "0.03"}]}
  - {item: F, lines: [{component: K, quantity: "1"}]}
events:
  - {id: r1, date: 2026-01-06, type: release, item: F, quantity: "30000000000", order: WO1}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "30000000000", order: WO1}
  - {id: c2, date: 2026-01-10, type: completion, item: F, quantity: "30000000000"}
"""
    book = run_scenario(parse_scenario(text, "s9.yaml"))
    assert sorted(lines_of(book, "c1")) == sorted(lines_of(book, "c2"))
    assert not any(account == "material_usage_variance" for account, *_ in lines_of(book, "c1"))
