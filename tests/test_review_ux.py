"""What a user meets at the edges: options that do not apply are refused (not ignored), errors
name the row, line or JSON pointer of what they refuse and say what was expected, and the
CSV and workbook show what the screen shows. Through the real command line (Typer's runner,
SQLite books in tmp_path) and real HTTP (uvicorn on loopback, SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from typer.testing import CliRunner, Result

from backflush.api.app import create_app
from backflush.api.tokens import Role, create_token
from backflush.cli import app
from backflush.formats.scenario import read_scenario
from backflush.reports.workbook import csv_text
from backflush.store.repository import Store
from helpers import EXAMPLES, dump_file, dump_tables, serving

NORTHSHORE = EXAMPLES / "northshore.yaml"
WIDGETS = EXAMPLES / "widgets_prorate.yaml"
PROBLEM = "application/problem+json"


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(*args: Any) -> str:
    result = cli(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    message = result.stderr  # no progress bar where stderr is not a terminal
    assert message.startswith("error: ")
    return message


def northshore(tmp_path: Path) -> Path:
    db = tmp_path / "plant.db"
    assert cli("import", NORTHSHORE, "--db", db).exit_code == 0
    return db


# ---------------------------------------------------------------- report --period


def test_report_period_is_checked_and_refused_where_it_selects_nothing(tmp_path: Path) -> None:
    db = northshore(tmp_path)
    # a period report given --period printed every period as if it were not there
    message = refused("report", "--db", db, "--what", "margin", "--period", "2026-01")
    assert "--period does not apply" in message and "--from and --to" in message
    refused("report", "--db", db, "--what", "margin", "--json", "--period", "2026-01")
    refused("report", "--db", db, "--html", tmp_path / "p.html", "--period", "2026-01")
    assert not (tmp_path / "p.html").exists()
    # a malformed period printed an empty journal
    message = refused("report", "--db", db, "--what", "journal", "--period", "2026-1")
    assert "--period: expected a period YYYY-MM, got '2026-1'" in message
    message = refused("report", "--db", db, "--json", "--xlsx", tmp_path / "r.xlsx")
    assert "--json and --xlsx: give one output at a time" in message  # --json was ignored
    assert not (tmp_path / "r.xlsx").exists()
    message = refused("close", "2026-3", "--db", db)  # in words, not pydantic's regex
    assert "period: expected a period YYYY-MM, got '2026-3'" in message
    # where it applies it still selects the journal's entries
    result = cli("report", "--db", db, "--json", "--period", "2026-02")
    assert result.exit_code == 0, result.stderr
    dates = {e["date"][:7] for e in json.loads(result.stdout)["entries"]}
    assert dates == {"2026-02"}


# ---------------------------------------------------------------- init


def test_init_refuses_settings_given_twice(tmp_path: Path) -> None:
    db = tmp_path / "plant.db"
    message = refused(
        "init", "--db", db, "--settings-from", NORTHSHORE, "--name", "Other", "--triggers", "sale"
    )
    assert "--name, --triggers" in message and "--settings-from" in message
    assert not db.exists()  # the flags were silently dropped, the file's settings used


def test_a_different_book_is_named_in_the_scenario_files_words(tmp_path: Path) -> None:
    db = northshore(tmp_path)
    message = refused("import", WIDGETS, "--db", db)
    assert "holds a different book" in message
    assert "dispositions: book has {}, given {purchase_price: prorate, conversion: prorate}" in (
        message.replace("\n", "")
    )
    assert "<Disposition" not in message and "((" not in message


# ---------------------------------------------------------------- the row of a duplicate id


PURCHASE = {"date": "2026-03-02", "type": "purchase", "item": "PCB", "unit_cost": "12.00"}


def _lines(tmp_path: Path) -> Path:
    """Three events; the third repeats the first's id with other content."""
    path = tmp_path / "events.jsonl"
    rows = [
        {**PURCHASE, "id": "p-1", "quantity": "10"},
        {**PURCHASE, "id": "p-2", "quantity": "10"},
        {**PURCHASE, "id": "p-1", "quantity": "11"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_import_names_the_row_of_an_id_given_twice(tmp_path: Path) -> None:
    db = northshore(tmp_path)
    before = dump_file(db)
    events = _lines(tmp_path)
    message = refused("import", events, "--db", db)
    # named line 1, the first use of the id, which is fine
    assert "events.jsonl:3: event p-1: id already recorded with different content" in message
    assert dump_file(db) == before
    table = tmp_path / "events.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "date", "type", "item", "quantity", "unit_cost"])
        for line in events.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            writer.writerow([row[k] for k in ("id", "date", "type", "item", "quantity")] + ["12"])
    message = refused("import", table, "--db", db)
    assert "events.csv row 4: event p-1" in message  # the header is row 1
    assert dump_file(db) == before


def test_post_file_names_the_line_of_the_event_refused(tmp_path: Path) -> None:
    db = northshore(tmp_path)
    before = dump_file(db)
    message = refused("post", "--db", db, "--file", _lines(tmp_path))
    assert "events.jsonl:3: event p-1: id already recorded with different content" in message
    lines = tmp_path / "closed.jsonl"
    lines.write_text(
        json.dumps({**PURCHASE, "id": "ok", "quantity": "1"})
        + "\n\n"
        + json.dumps({**PURCHASE, "id": "late", "quantity": "1", "date": "2026-01-20"})
        + "\n",
        encoding="utf-8",
    )
    message = refused("post", "--db", db, "--file", lines)
    assert "closed.jsonl:3: event late: dated 2026-01-20 in period 2026-01, which is closed" in (
        message
    )
    assert dump_file(db) == before


# ---------------------------------------------------------------- valuation as CSV and XLSX


def test_csv_writes_true_and_false_as_json_does(tmp_path: Path) -> None:
    db = northshore(tmp_path)
    assert cli("report", "--db", db, "--csv", tmp_path / "csv").exit_code == 0
    with (tmp_path / "csv" / "variance_analysis.csv").open(encoding="utf-8") as handle:
        posted = {r["posted"] for r in csv.DictReader(handle)}
    assert posted == {"true"}  # every period closed; it wrote Python's True


def test_csv_reports_write_text_a_spreadsheet_would_run_as_a_formula_as_text(
    tmp_path: Path,
) -> None:
    """An item named =HYPERLINK(...) (ids may start with =, +, - or @) is written after an
    apostrophe, so a spreadsheet opening the CSV shows it rather than running it; negative
    amounts stay numbers."""
    evil = '=HYPERLINK("http://evil","x")'
    scenario = tmp_path / "evil.yaml"
    scenario.write_text(
        (EXAMPLES / "northshore.yaml")
        .read_text()
        .replace("id: PCB,", f"id: '{evil}',")
        .replace("component: PCB,", f"component: '{evil}',")
        .replace("item: PCB,", f"item: '{evil}',")
    )
    db = tmp_path / "book.db"
    assert cli("import", scenario, "--db", db).exit_code == 0
    assert cli("report", "--db", db, "--csv", tmp_path / "csv").exit_code == 0
    with (tmp_path / "csv" / "valuation.csv").open(encoding="utf-8") as handle:
        items = [r["item"] for r in csv.DictReader(handle)]
    assert "'" + evil in items and evil not in items
    assert csv_text(Decimal("-5.25")) == "-5.25"  # a number, not text
    assert csv_text("-5") == "'-5"  # text (an id)


def test_valuation_files_show_the_consumption_waiting_for_stock(tmp_path: Path) -> None:
    """Queued consumption was credited already: the CSV and the workbook showed on hand 0 and
    a negative value on the books with nothing to explain it (the screen and JSON had it)."""
    db = northshore(tmp_path)
    result = cli(
        "post", "--db", db, "--type", "completion", "--date", "2026-03-02", "--item", "ROUTER",
        "--quantity", "500",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert cli("report", "--db", db, "--csv", tmp_path / "csv").exit_code == 0
    with (tmp_path / "csv" / "valuation.csv").open(encoding="utf-8") as handle:
        rows = {r["item"]: r for r in csv.DictReader(handle)}
    pcb = rows["PCB"]
    assert (pcb["on hand"], pcb["waiting"], pcb["unit standard"], pcb["on books"]) == (
        "0", "500", "12.00", "-6000.00",
    )  # fmt: skip
    assert rows["ROUTER"]["waiting"] == "0"
    assert cli("report", "--db", db, "--xlsx", tmp_path / "r.xlsx").exit_code == 0
    sheet = openpyxl.load_workbook(tmp_path / "r.xlsx")["Valuation"]
    header = [c.value for c in sheet[1]]
    assert header[3:6] == ["in process", "waiting", "unit standard"]
    found = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert found["PCB"][4] == 500 and found["PCB"][6] == -6000
    money = {c.number_format for row in sheet.iter_rows(min_row=2, min_col=6) for c in row}
    assert money == {"#,##0.00"}
    quantities = {c.number_format for row in sheet.iter_rows(min_row=2, max_col=5) for c in row}
    assert "#,##0.00" not in quantities


# ---------------------------------------------------------------- HTTP


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[Store, httpx.Client, dict[Role, dict[str, str]]]]:
    """The widgets book up to its first sale, served on loopback; a token per role."""
    scenario = read_scenario(WIDGETS)
    store = Store(db_url)
    store.import_scenario(scenario.settings, scenario.master, scenario.events[:2])
    headers = {
        role: {"Authorization": f"Bearer {create_token(store, role.value, role)[1]}"}
        for role in Role
    }
    api = create_app(db_url)
    try:
        with serving(api) as url, httpx.Client(base_url=url, timeout=30) as client:
            yield store, client, headers
    finally:
        api.state.store.close()
        store.close()


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    found: dict[str, Any] = response.json()
    assert found["status"] == status
    return found


SALE = {"date": "2026-01-20", "type": "sale", "item": "W", "quantity": "1"}


def test_batch_problems_point_at_the_event_they_refuse(
    served: tuple[Store, httpx.Client, dict[Role, dict[str, str]]],
) -> None:
    store, client, headers = served
    before = dump_tables(store)
    accountant = headers[Role.accountant]
    # the same id twice in one batch: the second is the one refused
    batch = [{**SALE, "id": "s-1"}, {**SALE, "id": "s-2"}, {**SALE, "id": "s-1", "quantity": "2"}]
    problem = _problem(client.post("/events/batch", json=batch, headers=accountant), 409)
    assert problem["detail"].endswith("nothing was written")
    assert problem["errors"] == [
        {"location": "body", "field": "id", "detail": "event s-1", "pointer": "/2/id"}
    ]
    # an event the rules refuse (more sold than on hand under shortage: queue is fine; a
    # reversal of an unknown event is not)
    batch = [{**SALE, "id": "s-1"}, {"id": "r", "date": "2026-01-21", "type": "reversal",
                                     "reverses": "nothing"}]  # fmt: skip
    problem = _problem(client.post("/events/batch", json=batch, headers=accountant), 422)
    assert problem["type"] == "/problems/posting-refused"
    assert [e["pointer"] for e in problem["errors"]] == ["/1"]
    problem = _problem(client.post("/events", json=batch[1], headers=accountant), 422)
    assert problem["errors"] == [{"location": "body", "field": "event", "detail": "event r"}]
    # a bad field: the detail says which event, not only which field
    batch = [{**SALE, "id": "s-1"}, {**SALE, "id": "s-3", "item": "NOPE"}]
    problem = _problem(client.post("/events/batch", json=batch, headers=accountant), 422)
    assert problem["detail"] == "/1/item: unknown item 'NOPE'"
    assert problem["errors"][0]["field"] == "item"
    assert dump_tables(store) == before
    # a single event keeps its field's name
    single = {**SALE, "id": "s-4", "item": "NOPE"}
    problem = _problem(client.post("/events", json=single, headers=accountant), 422)
    assert problem["detail"] == "item: unknown item 'NOPE'"
    operator = headers[Role.operator]
    problem = _problem(client.post("/events", json={**SALE, "id": "s-5"}, headers=operator), 403)
    assert problem["detail"] == "an operator token may not post sale events"


def test_report_queries_that_do_not_apply_are_refused(
    served: tuple[Store, httpx.Client, dict[Role, dict[str, str]]],
) -> None:
    _store, client, headers = served
    viewer = headers[Role.viewer]
    # answered 200 as if the query were not there
    problem = _problem(client.get("/reports/orders?item=W", headers=viewer), 422)
    assert problem["errors"] == [
        {
            "location": "query",
            "field": "item",
            "detail": "not for report orders; it is for valuation, margin, variance-analysis",
        }
    ]
    problem = _problem(client.get("/reports/summary?from=2026-01&to=2026-01", headers=viewer), 422)
    assert [e["field"] for e in problem["errors"]] == ["from", "to"]
    problem = _problem(client.get("/reports/trial-balance?from=2026-01", headers=viewer), 422)
    assert problem["errors"][0]["field"] == "from"
    # where they apply they still select
    response = client.get("/reports/trial-balance?to=2026-01", headers=viewer)
    assert response.status_code == 200 and response.json()["through"] == "2026-01"
    response = client.get("/reports/valuation?item=M", headers=viewer)
    assert [r["item"] for r in response.json()["items"]] == ["M"]
    # the field named is the query parameter, the expected form said in words
    problem = _problem(client.get("/reports/margin?item=NOPE", headers=viewer), 422)
    assert problem["errors"][0]["field"] == "item"
    problem = _problem(client.get("/reports/margin?from=2026-1", headers=viewer), 422)
    assert problem["errors"][0]["detail"] == "expected a period YYYY-MM, got '2026-1'"
    problem = _problem(client.get("/journal?period=2026-13", headers=viewer), 422)
    assert problem["errors"][0]["detail"] == "expected a period YYYY-MM, got '2026-13'"
    problem = _problem(client.get("/reports/summary?format=csv", headers=viewer), 406)
    assert problem["title"] == "Not acceptable"


def test_exceptions_status_is_checked(
    served: tuple[Store, httpx.Client, dict[Role, dict[str, str]]],
) -> None:
    _store, client, headers = served
    viewer = headers[Role.viewer]
    # a status no exception can have answered an empty list
    problem = _problem(client.get("/exceptions?status=opened", headers=viewer), 422)
    assert problem["errors"] == [
        {
            "location": "query",
            "field": "status",
            "detail": "expected one of 'open', 'cleared', 'flagged', 'written off', got 'opened'",
        }
    ]
    response = client.get("/exceptions", params={"status": "written off"}, headers=viewer)
    assert response.status_code == 200 and response.json()["total"] == 0
