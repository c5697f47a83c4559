"""The close procedure's commands on a real SQLite book: close --check, reopen, exceptions
list | retry | resolve, and the exceptions policy of ``backflush close``."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from backflush.cli import app
from backflush.store.repository import Store
from helpers import EXAMPLES

#: Who the command line's writes are recorded as: the login name of the account it runs as.
ME = f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


def cli(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args: Any) -> str:
    result = cli(*args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def refused(*args: Any) -> str:
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    return " ".join(result.stderr.split())  # Rich wraps long lines


def parse(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def january(tmp_path: Path, policy: str = "refuse") -> Path:
    """The reopen example up to its first close: c1 still waits for 2 M."""
    text = (EXAMPLES / "reopen.yaml").read_text()
    text = text[: text.index("  - {id: close-jan,")]
    source = tmp_path / "january.yaml"
    source.write_text(text.replace("exceptions_at_close: refuse", f"exceptions_at_close: {policy}"))
    db = tmp_path / "book.db"
    ok("import", source, "--db", db)
    return db


def test_close_check_reopen_and_exceptions_through_the_command_line(tmp_path: Path) -> None:
    db = january(tmp_path)
    checked = parse(ok("close", "2026-01", "--check", "--json", "--db", db))
    assert checked["status"] == "warn"
    assert {c["check"]: c["status"] for c in checked["checks"]} == {
        "periods close in order": "ok",
        "the period has ended": "ok",
        "backflush exceptions": "warn",
        "production orders": "ok",
        "counts and receipts": "warn",
        "standards drift": "ok",  # M at 2.10 against 2.00: +5.0%, not over 5%
    }
    drift = parse(ok("close", "2026-01", "--check", "--json", "--drift", "0.04", "--db", db))
    assert drift["checks"][-1]["details"] == [
        "M: paid 2.10 a unit on average against a standard of 2.00 (+5.0%, threshold 4.0%)"
    ]
    assert "Close checklist 2026-01" in ok("close", "2026-01", "--check", "--db", db)
    assert "--drift: expected zero or more" in refused(
        "close", "2026-01", "--check", "--drift", "-1", "--db", db
    )
    result = cli("close", "2026-01", "--db", db)  # c1's exception is of January: closes
    assert result.exit_code == 0 and "still wait for stock" in result.stderr
    assert "only the latest closed period, 2026-01, can be reopened" in refused(
        "reopen", "2025-12", "--reason", "x", "--db", db
    )
    assert "reason: String should" in refused(
        "reopen", "2026-01", "--reason", " ", "--date", "2026-02-02", "--db", db
    )
    text = ok("reopen", "2026-01", "--reason", "late invoice", "--date", "2026-02-02", "--db", db)
    assert "period 2026-01 reopened by reopen-2026-01-1 (late invoice)" in " ".join(text.split())
    ok("post", "--db", db, "--type", "conversion", "--id", "l2", "--date", "2026-01-31",
       "--amount", "1.50", "--element", "labor")  # fmt: skip
    result = cli("close", "2026-01", "--db", db)
    assert result.exit_code == 0, result.stderr
    document = parse(ok("report", "--json", "--db", db))
    (period,) = document["periods"]
    assert period["close_event"] == "close-2026-01-2"
    assert period["variances"]["conversion"] == "2.50"  # 7.00 + 1.50 - 6.00
    assert period["reopened"] == [
        {
            "event": "reopen-2026-01-1",
            "date": "2026-02-02",
            "reason": "late invoice",
            "close_event": "close-2026-01",
        }
    ]
    # refuse: February does not close while January's exception is open
    assert "older than 2026-02 still open: c1/M (2 since 2026-01-10)" in refused(
        "close", "2026-02", "--db", db
    )
    aged = parse(ok("exceptions", "list", "--as-of", "2026-02-15", "--json", "--db", db))
    assert aged == {
        "as_of": "2026-02-15",
        "exceptions": [
            {
                "event": "c1",
                "date": "2026-01-10",
                "age_days": 36,
                "kind": "shortage",
                "item": "M",
                "quantity": "2",
                "open": "2",
                "status": "open",
            }
        ],
    }
    table = ok("exceptions", "list", "--as-of", "2026-02-15", "--db", db)
    assert "c1" in table and "36" in table
    before = parse(ok("exceptions", "list", "--as-of", "2026-01-09", "--json", "--db", db))
    assert before["exceptions"] == []  # queued on the 10th: not there yet (no age of -1)
    far = (dt.date.today() + dt.timedelta(days=400)).isoformat()  # a typo: refused, as post does
    for command in (["retry"], ["resolve", "c1", "M", "--reason", "found"]):
        message = refused("exceptions", *command, "--date", far, "--db", db)
        assert f"date: {far} is more than 366 days ahead" in message
    assert "no stock available" in ok("exceptions", "retry", "--date", "2026-02-03", "--db", db)
    assert "written off by write-off:c1/M" in ok(
        "exceptions", "resolve", "c1", "M", "--reason", "found", "--date", "2026-02-03", "--db", db
    )
    assert "already recorded" in ok(
        "exceptions", "resolve", "c1", "M", "--reason", "found", "--date", "2026-02-03", "--db", db
    )
    assert "already written off by write-off:c1/M" in refused(
        "exceptions", "resolve", "c1", "M", "--reason", "x", "--id", "w9", "--db", db
    )
    assert "No open backflush exceptions." in ok("exceptions", "list", "--db", db)
    every = parse(ok("exceptions", "list", "--all", "--json", "--db", db))["exceptions"]
    assert [(x["status"], x["reason"]) for x in every] == [("written off", "found")]
    ok("close", "2026-02", "--db", db)
    balances = parse(ok("report", "--json", "--db", db))["balances"]
    # RIP -4.00 + 4.00 written off; COGS 20.00 + 3.50 (January) - 4.00 (February's usage)
    assert balances["cogs"] == "19.50"
    assert "raw_in_process" not in balances


def test_close_warns_about_older_exceptions_under_warn(tmp_path: Path) -> None:
    db = january(tmp_path, policy="warn")
    assert cli("close", "2026-01", "--db", db).exit_code == 0
    result = cli("close", "2026-02", "--db", db)
    assert result.exit_code == 0, result.stderr
    assert "1 backflush exception(s) older than 2026-02 are still open" in " ".join(
        result.stderr.split()
    )


def test_the_period_report_shows_reopens_and_write_offs() -> None:
    text = " ".join(ok("run", EXAMPLES / "reopen.yaml").split())
    assert "Reopened periods" in text
    assert "2026-01 │ reopen-jan │ 2026-02-02 │ close-jan │ labor invoice" in text
    assert "written off by w1:" in text


def test_init_takes_the_exceptions_policy(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    ok("init", "--db", db, "--name", "Plant", "--exceptions-at-close", "refuse")
    store = Store(str(db))
    try:
        assert store.settings().exceptions_at_close.value == "refuse"
    finally:
        store.close()


def test_closing_again_with_the_id_of_an_undone_close_is_refused(tmp_path: Path) -> None:
    db = january(tmp_path, "warn")
    assert cli("close", "2026-01", "--db", db, "--id", "close-jan").exit_code == 0  # warns
    ok("reopen", "2026-01", "--reason", "late invoice", "--db", db, "--id", "reopen-jan")
    # undated, a reopen is dated the period's last day (not today, months later, which would
    # be the book's last event and hold back a release of standards dated before it)
    (reopened,) = Store(str(db)).load().reopened("2026-01")
    assert (reopened.event, reopened.date) == ("reopen-jan", dt.date(2026, 1, 31))
    message = refused("close", "2026-01", "--db", db, "--id", "close-jan")
    assert message == (
        "error: close close-jan of 2026-01 was undone by reopen-jan; the period is open: close it "
        "with a new id (or without --id)"
    )
    assert "2026-01" not in Store(str(db)).load().closed
    assert cli("close", "2026-01", "--db", db).exit_code == 0  # a new id: closed again
    assert "2026-01" in Store(str(db)).load().closed


def test_close_prints_the_period_closed_as_json(tmp_path: Path) -> None:
    """A script asking for JSON gets JSON, not the variances table (the warnings go to
    standard error); closing again answers the same period, not applied."""
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / "northshore.yaml", "--db", db)
    ok("post", "--db", db, "--type", "purchase", "--id", "p-mar", "--date", "2026-03-02",
       "--item", "PCB", "--quantity", "10", "--unit-cost", "12.50")  # fmt: skip
    closed = parse(ok("close", "2026-03", "--json", "--db", db))
    assert (closed["applied"], closed["period"], closed["closed"]) == (True, "2026-03", True)
    assert closed["close_event"] == "close-2026-03"
    assert closed["variances"]["purchase_price"] == "5.00"  # 10 x (12.50 - 12.00)
    again = parse(ok("close", "2026-03", "--json", "--db", db))
    assert again == {**closed, "applied": False}
    ok("post", "--db", db, "--type", "completion", "--id", "short", "--date", "2026-04-02",
       "--item", "ROUTER", "--quantity", "500")  # fmt: skip
    result = cli("close", "2026-04", "--json", "--db", db)  # 500 routers' parts wait for stock
    assert result.exit_code == 0, result.stderr
    assert parse(result.stdout)["period"] == "2026-04"  # the warning is not in it
    assert "still wait for stock" in result.stderr


def test_the_command_line_records_who_wrote_each_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imports, posts, closes, reopens and write-offs from the command line are recorded as
    ``cli:<login name>`` (an auditor asks who reopened a month): they recorded nobody. The
    name is the account's the process runs as: LOGNAME and USER, which anyone sets, do not
    change it."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "cfo")
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / "potter.yaml", "--db", db)
    ok("post", "--db", db, "--type", "purchase", "--id", "p-9", "--date", "2026-06-02",
       "--item", "DM", "--quantity", "5", "--unit-cost", "1.00")  # fmt: skip
    ok("reopen", "2026-05", "--reason", "late invoice", "--db", db)
    with sqlite3.connect(db) as conn:
        found = dict(conn.execute("SELECT id, recorded_by FROM events").fetchall())
    conn.close()
    assert set(found.values()) == {ME}, found
    assert {"p-9", "reopen-2026-05-1"} <= set(found)


def test_who_changed_the_standards_is_logged(tmp_path: Path) -> None:
    """Master data written and a cost set released from the command line are logged with who
    did it and when (`master log`): a release revalues stock, and nothing said who made it."""
    db, scenario = tmp_path / "book.db", tmp_path / "plant.yaml"
    scenario.write_text(
        """\
book: {name: Log, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
cost_sets: [{name: apr, materials: {M: "2.50"}}]
events:
  - {id: p1, date: 2026-03-02, type: purchase, item: M, quantity: "5", unit_cost: "2.00"}
""",
        encoding="utf-8",
    )
    ok("import", scenario, "--db", db)
    ok("standards", "release", "apr", "--effective", "2026-04-01", "--db", db)
    # a product with its first versions, a new work center and a what-if set: named in the log
    tables = tmp_path / "tables"
    tables.mkdir()
    for name, text in {
        "items.csv": "id,kind,material_cost\nM,material,2.00\nKIT,finished,\n",
        "boms.csv": "item,component,quantity\nKIT,M,2\n",
        "work_centers.csv": "work_center,element,rate\nCELL,labor,10\n",
        "routings.csv": "item,effective_from,operation,work_center,run_hours\n"
        "KIT,2026-05-01,10,CELL,0.5\n",
        "cost_sets.csv": "cost_set,item,value\nwhat-if,M,2.20\n",
    }.items():
        (tables / name).write_text(text, encoding="utf-8")
    ok("master", "import", tables, "--db", db)
    log = json.loads(ok("master", "log", "--json", "--db", db))["master_changes"]
    me = ME
    assert [(row["recorded_by"], row["change"]) for row in log] == [
        (
            me,
            "master data added (cost_sets 1, items 1, cost_set_materials 1); items: M; cost "
            "sets: apr",
        ),
        (me, "cost set apr released, effective 2026-04-01"),
        (
            me,
            "master data added (cost_sets 1, items 1, work_centers 1, bom_lines 1, "
            "cost_set_materials 1, routing_operations 1, work_center_rates 1); items: KIT; BOM "
            "versions: KIT from the start; routing versions: KIT from 2026-05-01; work centers: "
            "CELL; cost sets: what-if",
        ),
    ]
    assert all(dt.datetime.fromisoformat(row["recorded_at"]).tzinfo for row in log)
    assert "cost set apr released" in ok("master", "log", "--db", db)
