"""The audit trail (issue 5): a journal figure drills down to its event, the BOM version and
standard used, and the component quantities (``backflush explain``). Figures worked by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from backflush.cli import app
from backflush.domain.model import Account, Completion, Kind
from backflush.formats.scenario import Scenario, parse_scenario, read_scenario
from backflush.reports.drilldown import (
    Drilldown,
    NotFound,
    StandardUsed,
    drilldown,
    drilldown_document,
    drilldown_report,
)
from backflush.store.repository import Store
from helpers import EXAMPLES

D = Decimal

#: Two BOM versions and a cost set: F = 2 M + labor 1.00 until January (5.00); from February
#: 3 M with 10% scrap (3.3 x 2.00 + 1.00 = 7.60); from March M costs 2.50 (3.3 x 2.50 + 1.00
#: = 9.25).
VERSIONS = """
book: {name: Versions, currency: USD, triggers: purchase+completion, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "2"}]}
  - {item: F, effective_from: 2026-02-01, lines: [{component: M, quantity: "3", scrap: "0.1"}]}
cost_sets:
  - {name: march, effective: 2026-03-01, materials: {M: "2.50"}}
events:
  - {id: buy, date: 2026-01-05, type: purchase, item: M, quantity: "100", unit_cost: "2.00"}
  - {id: jan, date: 2026-01-10, type: completion, item: F, quantity: "10"}
  - {id: feb, date: 2026-02-10, type: completion, item: F, quantity: "10"}
  - {id: mar, date: 2026-03-10, type: completion, item: F, quantity: "5"}
  - {id: short, date: 2026-03-11, type: completion, item: F, quantity: "10"}
  - {id: more, date: 2026-03-12, type: purchase, item: M, quantity: "10", unit_cost: "2.50"}
"""


def imported(url: str, sc: Scenario) -> Store:
    """A book at ``url`` holding the scenario (close it when done)."""
    store = Store(url)
    store.import_scenario(sc.settings, sc.master, sc.events)
    return store


@pytest.fixture
def northshore(tmp_path: Path) -> Iterator[Store]:
    with closing(imported(f"{tmp_path}/book.db", read_scenario(EXAMPLES / "northshore.yaml"))) as s:
        yield s


@pytest.fixture
def versions(tmp_path: Path) -> Iterator[Store]:
    with closing(imported(f"{tmp_path}/book.db", parse_scenario(VERSIONS, "versions.yaml"))) as s:
        yield s


def posted(found: Drilldown) -> dict[tuple[Account, str, str], Decimal]:
    lines: dict[tuple[Account, str, str], Decimal] = {}
    for e in found.entries:
        for line in e.entry.lines:
            key = (line.account, line.element, line.item)
            lines[key] = lines.get(key, D(0)) + line.amount
    return lines


def standard(found: Drilldown, item: str) -> StandardUsed:
    return next(s for s in found.standards if s.item == item)


def moved(found: Drilldown) -> dict[str, Decimal]:
    return {mv.item: mv.on_hand for owner, _, mv in found.movements if owner == found.event.id}


def test_a_completion_is_quantity_times_the_standard_by_element(northshore: Store) -> None:
    """ROUTER: materials 12 + 4.50 + 2 x 1.75 + 6 + 2 = 28.00, labor 5, overhead 7 = 40.00;
    100,000 made."""
    found = drilldown(northshore, event="jan-done")
    assert found.event.type == "completion" and found.event.date == dt.date(2026, 1, 31)
    assert dict(found.fields)["quantity"] == "100000"
    assert [e.entry.memo for e in found.entries] == ["completion 100000 ROUTER"]
    assert found.balanced and found.entries[0].debits == D("4000000.00")
    router = standard(found, "ROUTER")
    assert router.kind is Kind.FINISHED and router.bom is not None
    assert router.bom.effective_from == dt.date.min and router.since is None
    assert [(ln.component, ln.quantity) for ln in router.bom.lines] == [
        ("PCB", 1), ("CASE", 1), ("ANT", 2), ("PSU", 1), ("WIFI", 1),
    ]  # fmt: skip
    assert dict(router.by_element) == {"material": 28, "labor": 5, "overhead": 7}
    assert router.total == D("40.00")
    assert posted(found) == {
        (Account.RAW_IN_PROCESS, "", ""): D("-2800000.00"),
        (Account.CONVERSION_ALLOCATED, "labor", ""): D("-500000.00"),
        (Account.CONVERSION_ALLOCATED, "overhead", ""): D("-700000.00"),
        (Account.FINISHED_GOODS, "", "ROUTER"): D("4000000.00"),
    }
    # components moved = 100,000 x quantity per
    assert moved(found) == {
        "PCB": -100000, "CASE": -100000, "ANT": -200000, "PSU": -100000, "WIFI": -100000,
        "ROUTER": 100000,
    }  # fmt: skip
    check = found.check
    assert check.status == "agrees"
    assert {(a.account, a.element): a.expected for a in check.amounts} == {
        (Account.RAW_IN_PROCESS, ""): D("-2800000.00"),
        (Account.CONVERSION_ALLOCATED, "labor"): D("-500000.00"),
        (Account.CONVERSION_ALLOCATED, "overhead"): D("-700000.00"),
        (Account.FINISHED_GOODS, ""): D("4000000.00"),
    }
    assert {c.component: (c.required, c.moved) for c in check.components} == {
        "PCB": (100000, 100000), "CASE": (100000, 100000), "ANT": (200000, 200000),
        "PSU": (100000, 100000), "WIFI": (100000, 100000),
    }  # fmt: skip


def test_an_entry_number_leads_to_its_event(northshore: Store) -> None:
    _, numbered, _ = northshore.numbered_snapshot()
    number = next(n for n, e in numbered if e.event == "jan-sold" and e.memo.startswith("sale"))
    found = drilldown(northshore, entry_no=number)
    assert found.event.id == "jan-sold" and found.entry_no == number
    assert [e.entry.memo for e in found.entries] == ["sale 98000 ROUTER", "revenue 98000 ROUTER"]
    assert posted(found) == {
        (Account.FINISHED_GOODS, "", ""): D("-3920000.00"),  # 98,000 x 40.00
        (Account.COGS, "", "ROUTER"): D("3920000.00"),
        (Account.ACCOUNTS_RECEIVABLE, "", ""): D("5390000.00"),  # 98,000 x 55.00
        (Account.SALES, "", "ROUTER"): D("-5390000.00"),
    }
    assert found.check.status == "agrees" and found.check.components == ()
    assert moved(found) == {"ROUTER": -98000}


def test_a_purchase_is_checked_against_its_standard_and_price(northshore: Store) -> None:
    found = drilldown(northshore, event="jan-po-pcb")  # 100,000 PCB at 12.08, standard 12.00
    assert found.check.status == "agrees"
    assert {(a.account, a.expected) for a in found.check.amounts} == {
        (Account.RAW_IN_PROCESS, D("1200000.00")),
        (Account.ACCOUNTS_PAYABLE, D("-1208000.00")),
        (Account.PURCHASE_PRICE_VARIANCE, D("8000.00")),
    }
    assert posted(found)[(Account.PURCHASE_PRICE_VARIANCE, "", "PCB")] == D("8000.00")


def test_other_events_are_shown_not_checked(northshore: Store) -> None:
    found = drilldown(northshore, event="jan-labor")
    assert (found.check.status, found.check.note) == (
        "not checked",
        "a conversion event: shown as recorded",
    )
    close = drilldown(northshore, event="jan-close")
    assert close.check.note == "a close event: shown as recorded"
    scrap = drilldown(northshore, event="feb-scrap-pcb")  # 5,000 x 12.00 to usage
    assert scrap.check.status == "agrees"
    assert posted(scrap)[(Account.MATERIAL_USAGE_VARIANCE, "", "PCB")] == D("60000.00")


def test_an_issue_to_an_order_is_shown_not_checked(tmp_path: Path) -> None:
    scenario = read_scenario(EXAMPLES / "gearbox_orders.yaml")
    with closing(imported(f"{tmp_path}/book.db", scenario)) as store:
        found = drilldown(store, event="i1")
    assert found.check.note == "an issue event: shown as recorded"


def test_the_bom_version_and_cost_set_in_force_on_the_event_date(versions: Store) -> None:
    jan = drilldown(versions, event="jan")
    f = standard(jan, "F")
    assert f.bom is not None and f.bom.effective_from == dt.date.min
    assert f.total == D("5.00") and f.cost_sets == ()
    assert posted(jan)[(Account.FINISHED_GOODS, "", "F")] == D("50.00")
    assert moved(jan)["M"] == -20  # 10 x 2

    feb = drilldown(versions, event="feb")
    f = standard(feb, "F")
    assert f.bom is not None and f.bom.effective_from == dt.date(2026, 2, 1)
    assert [(ln.quantity, ln.scrap) for ln in f.bom.lines] == [(3, D("0.1"))]
    assert f.since == dt.date(2026, 2, 1)
    assert dict(f.by_element) == {"material": D("6.6"), "labor": 1} and f.total == D("7.60")
    assert posted(feb) == {
        (Account.RAW_IN_PROCESS, "", ""): D("-66.00"),  # 10 x 3.3 x 2.00
        (Account.CONVERSION_ALLOCATED, "labor", ""): D("-10.00"),
        (Account.FINISHED_GOODS, "", "F"): D("76.00"),
    }
    assert moved(feb)["M"] == -33  # 10 x 3 x 1.1: scrap included
    assert [(c.per_unit, c.required) for c in feb.check.components] == [(D("3.3"), 33)]
    assert feb.check.status == "agrees"

    mar = drilldown(versions, event="mar")
    f = standard(mar, "F")
    assert f.bom is not None and f.bom.effective_from == dt.date(2026, 2, 1)
    assert f.since == dt.date(2026, 3, 1) and f.cost_sets == ("march",)
    assert standard(mar, "M").total == D("2.50") and f.total == D("9.25")
    assert posted(mar)[(Account.FINISHED_GOODS, "", "F")] == D("46.25")  # 5 x 9.25
    assert posted(mar)[(Account.RAW_IN_PROCESS, "", "")] == D("-41.25")  # 5 x 3.3 x 2.50
    assert mar.check.status == "agrees"


def test_queued_consumption_and_the_receipt_that_cleared_it(versions: Store) -> None:
    """100 M bought, 20 + 33 + 16.5 used: 30.5 left; ``short`` needs 33, 2.5 wait until
    ``more`` brings 10."""
    found = drilldown(versions, event="short")
    (component,) = found.check.components
    assert (component.required, component.moved, component.queued) == (33, 33, 0)
    assert [(o, c, mv.on_hand) for o, c, mv in found.movements if mv.item == "M"] == [
        ("short", "short", D("-30.5")),
        ("short", "more", D("-2.5")),
    ]
    assert [(s.quantity, s.open) for s in found.shortages] == [(D("2.5"), 0)]
    receipt = drilldown(versions, event="more")
    assert ("short", "more") in {(o, c) for o, c, _ in receipt.movements}
    assert receipt.check.status == "agrees"  # the receipt itself: at standard and price


def test_queued_consumption_written_off_names_the_write_off_and_its_reason(
    tmp_path: Path,
) -> None:
    """reopen.yaml writes off c1's 2 M waiting for stock (w1): the drill-down of c1 names w1
    and its reason beside the exception (it said only "2 written off")."""
    with closing(imported(f"{tmp_path}/book.db", read_scenario(EXAMPLES / "reopen.yaml"))) as s:
        found = drilldown(s, event="c1")
    (shortage,) = found.shortages
    assert found.write_off(shortage) == ("w1", "c1 used material from the scrap bin")
    (row,) = drilldown_document(found)["exceptions"]
    assert (row["written_off_by"], row["reason"]) == ("w1", "c1 used material from the scrap bin")
    console = Console(width=200, record=True)
    console.print(drilldown_report(found))
    assert "by w1: c1 used material from the scrap bin" in console.export_text()


def test_an_order_completion_uses_the_bom_as_released(tmp_path: Path) -> None:
    """gearbox_orders c3: dated after the February BOM (2 bolts) but reported against WO-2,
    released in January with 3 bolts (3 / yield 0.8 = 3.75 per gearbox): the 4 x 1.25 extra
    bolts at 1.00 are a usage variance of 5.00."""
    sc = read_scenario(EXAMPLES / "gearbox_orders.yaml")
    with closing(imported(f"{tmp_path}/book.db", sc)) as store:
        found = drilldown(store, event="c3")
    gearbox = standard(found, "GEARBOX")
    assert gearbox.bom is not None and gearbox.bom.effective_from == dt.date(2026, 2, 1)
    assert [ln.quantity for ln in gearbox.bom.lines if ln.component == "BOLT"] == [2]
    assert gearbox.routing is not None and [op.number for op in gearbox.routing.operations] == [
        10,
        20,
    ]
    assert found.order is not None and found.order.id == "WO-2"
    assert {c.component: (c.per_unit, c.required, c.moved) for c in found.check.components} == {
        "SHAFT": (5, 20, 20), "HOUSING": (D("2.5"), 10, 10), "BOLT": (D("3.75"), 15, 15),
    }  # fmt: skip
    assert posted(found)[(Account.MATERIAL_USAGE_VARIANCE, "", "GEARBOX")] == D("5.00")
    assert posted(found)[(Account.FINISHED_GOODS, "", "GEARBOX")] == 4 * gearbox.total
    assert found.check.status == "agrees"
    # Shown: the standard's 2.5 bolts a gearbox (2 / 0.8) and the order's 3.75, as released.
    console = Console(width=200, record=True)
    console.print(drilldown_report(found))
    text = console.export_text()
    gearbox_table = text[text.index("Standard of GEARBOX") : text.index("Standard of SHAFT")]
    standard_rows, order_rows = gearbox_table.split("order WO-2 ")
    assert order_rows.lstrip(" │").startswith("its BOM as released 2026-01-20")
    assert re.search(r"BOLT +│ +2\.5 +│", standard_rows)
    assert re.search(r"BOLT +│ +3\.75 +│", order_rows)
    assert "3.75" not in standard_rows
    ordered = drilldown_document(found)["order"]["requirements"]
    assert {"component": "BOLT", "quantity": "3.75", "flush": "forward"} in ordered


def test_philippine_completion(tmp_path: Path) -> None:
    """UNIT = 19.80 DM x 1.00 + conversion 15.00 = 34.80; 50,000 made."""
    sc = read_scenario(EXAMPLES / "philippine_v1.yaml")
    (event,) = [e for e in sc.events if isinstance(e, Completion)]
    with closing(imported(f"{tmp_path}/book.db", sc)) as store:
        found = drilldown(store, event=event.id)
    assert standard(found, "UNIT").total == D("34.80")
    assert posted(found) == {
        (Account.RAW_IN_PROCESS, "", ""): D("-990000.00"),
        (Account.CONVERSION_ALLOCATED, "", ""): D("-750000.00"),
        (Account.FINISHED_GOODS, "", "UNIT"): D("1740000.00"),
    }
    assert [(c.component, c.required) for c in found.check.components] == [("DM", 990000)]
    assert found.check.status == "agrees"


def test_not_found_names_what_is_missing(northshore: Store) -> None:
    with pytest.raises(NotFound, match="event 'nope'"):
        drilldown(northshore, event="nope")
    with pytest.raises(NotFound, match="journal entry 9999"):
        drilldown(northshore, entry_no=9999)


# ---------------------------------------------------------------- the command line


def cli(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_explain_prints_the_trail_and_its_json_round_trips(tmp_path: Path, versions: Store) -> None:
    db = versions.display_url.removeprefix("sqlite:///")
    result = cli("explain", "--db", db, "feb")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "Event feb" in text and "effective 2026-02-01" in text and "Check: agrees" in text
    assert "10 x 3.3 = 33" in text and "76.00" in text
    assert re.search(r"recorded\W+20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC", text), text
    result = cli("explain", "--db", db, "feb", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout, parse_float=Decimal)
    assert document == json.loads(json.dumps(drilldown_document(drilldown(versions, event="feb"))))
    recorded = dt.datetime.fromisoformat(document["event"].pop("recorded_at"))
    assert recorded.tzinfo is not None and document["event"].pop("recorded_by") is None
    assert document["event"] == {
        "id": "feb", "type": "completion", "date": "2026-02-10",
        "fields": {"date": "2026-02-10", "item": "F", "quantity": "10", "scrapped": "0"},
    }  # fmt: skip
    (f,) = [s for s in document["standards"] if s["item"] == "F"]
    assert f["bom"]["effective_from"] == "2026-02-01"
    assert f["unit_standard"]["by_element"] == {"material": "6.6", "labor": "1"}
    check = document["check"]
    assert check["status"] == "agrees"
    assert {(a["account"], a["expected"], a["posted"]) for a in check["amounts"]} == {
        ("raw_in_process", "-66.00", "-66.00"),
        ("conversion_allocated", "-10.00", "-10.00"),
        ("finished_goods", "76.00", "76.00"),
    }
    assert check["components"][0]["required"] == "33"
    # every figure is a string (no float anywhere)
    assert not any(isinstance(v, float) for v in _leaves(document))
    number = document["entries"][0]["entry_no"]
    by_entry = json.loads(cli("explain", "--db", db, "--entry", number, "--json").stdout)
    assert by_entry["event"].pop("recorded_at") == recorded.isoformat()
    assert by_entry == {
        "entry_no": number,
        **document,
        "event": {**document["event"], "recorded_by": None},
    }


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_explain_refuses_what_is_not_there(versions: Store) -> None:
    db = versions.display_url.removeprefix("sqlite:///")
    for args, named in (
        (("nope",), "event 'nope': not in the book"),
        (("--entry", "999"), "journal entry 999: not in the book"),
        ((), "give an event id or --entry N"),
    ):
        result = cli("explain", "--db", db, *args)
        assert result.exit_code == 2 and result.stdout == ""
        assert named in result.stderr


def test_the_journal_report_numbers_its_entries(versions: Store) -> None:
    db = versions.display_url.removeprefix("sqlite:///")
    _, numbered, _ = versions.numbered_snapshot("2026-02")
    # 1 buy and 2 jan in January; the 10 F on hand revalued to the February BOM, then feb
    assert [(n, e.event) for n, e in numbered] == [(3, "revaluation-2026-02-01"), (4, "feb")]
    result = cli("report", "--db", db, "--what", "journal", "--period", "2026-02")
    assert result.exit_code == 0
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    events = [row[1] for row in cells if row[1]]  # the event column: id, then its number
    assert "".join(events) == "revaluation-2026-02-01no. 3febno. 4"  # a long id is folded
    assert events[-2:] == ["feb", "no. 4"]


# ---------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_the_same_drilldown_on_postgresql(tmp_path: Path, pg_db_url: str) -> None:
    sc = read_scenario(EXAMPLES / "gearbox_orders.yaml")
    with (
        closing(imported(f"{tmp_path}/book.db", sc)) as lite,
        closing(imported(pg_db_url, sc)) as pg,
    ):
        for event in sc.events:
            on_sqlite, on_pg = (  # (each book recorded its events when it was made)
                dataclasses.replace(drilldown(book, event=event.id), recorded_at=None)
                for book in (lite, pg)
            )
            assert on_pg == on_sqlite, event.id
            assert drilldown_document(on_pg) == drilldown_document(on_sqlite), event.id
        _, numbered, _ = pg.numbered_snapshot()
        for number, entry in numbered:
            assert drilldown(pg, entry_no=number).event.id == entry.event


def test_a_summary_entry_names_its_events_as_they_are() -> None:
    """Event ids such as h:A:2 are no emoji shortcodes (:A: was printed as 🅰)."""
    import datetime as dt

    from rich.console import Console

    from backflush.domain import model as m
    from backflush.reports.drilldown import summary_entry_report
    from backflush.store.repository import SummaryEntry

    entry = m.Entry(dt.date(2026, 1, 31), "day 2026-01-31", "summary", ())
    found = SummaryEntry(7, entry, ("h:A:2", "conv:ok:1"), "USD")
    console = Console(width=200, record=True, emoji=False)
    console.print(summary_entry_report(found))
    text = console.export_text()
    assert "h:A:2, conv:ok:1" in text


def test_the_basis_of_scrapped_units_names_their_unit_standard(tmp_path: Path) -> None:
    """2 F scrapped, each of 3 M at 2.00: the usage variance's basis is 2 x 3 M x 2 (it read
    '2 scrapped x 3 M x', the unit standard left out)."""
    scenario = parse_scenario(
        VERSIONS.split("boms:")[0]
        + "boms:\n  - {item: F, lines: [{component: M, quantity: '3'}]}\nevents:\n"
        "  - {id: buy, date: 2026-01-05, type: purchase, item: M, quantity: '100', "
        "unit_cost: '2.00'}\n"
        "  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: '5', "
        "scrapped: '2'}\n",
        "scrap.yaml",
    )
    with closing(imported(f"{tmp_path}/book.db", scenario)) as store:
        found = drilldown(store, event="c1")
    assert found.check.status == "agrees"
    (usage,) = [a for a in found.check.amounts if a.account is Account.MATERIAL_USAGE_VARIANCE]
    assert usage.expected == D("12.00")
    assert usage.basis == ("2 scrapped x 3 M x 2",)
