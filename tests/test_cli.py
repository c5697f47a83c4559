"""The real command line (Typer app ``backflush.cli.app``) on SQLite books in tmp_path, and the
installed program as a subprocess: output, exit codes (0 done, 1 database unusable, 2 input
refused), stderr."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console
from typer.testing import CliRunner, Result

from backflush.cli import app
from backflush.domain import model as m
from backflush.formats.scenario import read_scenario
from backflush.reports.document import document
from backflush.reports.tables import valuation_table
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import EXAMPLE_NAMES, EXAMPLES, ROOT, assert_matches_expected, downgrade, dump_file

NORTHSHORE = EXAMPLES / "northshore.yaml"


def cli(*args: Any, input: str | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def ok(*args: Any, input: str | None = None) -> str:
    """Run a command that must succeed; its standard output."""
    result = cli(*args, input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def refused(*args: Any, input: str | None = None, code: int = 2) -> str:
    """Run a command whose input must be refused; its message on standard error."""
    result = cli(*args, input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    return result.stderr


def parse(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in leaves(v)]
    return [value]


def without_closes(source: Path, target: Path, before: str = "") -> Path:
    """A copy of a scenario without its close events (and without what follows ``before``)."""
    text = source.read_text()
    if before:
        text = text[: text.index(before)]
    lines = text.splitlines(keepends=True)
    target.write_text("".join(line for line in lines if "type: close" not in line))
    return target


# ---------------------------------------------------------------- run


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_run_json_prints_the_document(name: str) -> None:
    found = parse(ok("run", EXAMPLES / f"{name}.yaml", "--json"))
    assert_matches_expected(name, found)
    assert set(found) >= {"balances", "entries", "periods", "quantities", "exceptions"}
    # every amount and quantity is a decimal string; the only non-strings are the closed flags
    # and the entries' numbers (1, 2, ... in the journal's order)
    numbers = [entry.pop("entry_no") for entry in found["entries"]]
    assert numbers == list(range(1, len(numbers) + 1))
    assert all(isinstance(leaf, str | bool) for leaf in leaves(found))
    assert all(isinstance(p["closed"], bool) for p in found["periods"])
    for entry in found["entries"]:
        assert sum(Decimal(ln["debit"]) - Decimal(ln["credit"]) for ln in entry["lines"]) == 0
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    every = json.loads(json.dumps(document(book)))
    assert found["entries"] == [
        {k: v for k, v in e.items() if k != "entry_no"} for e in every["entries"]
    ]
    assert found == {**every, "entries": found["entries"]}


def test_run_prints_a_readable_period_report() -> None:
    text = ok("run", NORTHSHORE)
    for expected in [
        "Northshore Devices",
        "triggers purchase+completion",
        "21 events",
        "Journal summary",
        "Trial balance",
        "Variances by period",
        "2026-01",
        "2026-02",
        "purchase_price",
        "8,000.00",  # January PPV
        "63,000.00",  # February PPV
        "60,000.00",  # February scrap
        "77,000.00",  # February conversion
        "1,450,000.00",  # January gross margin
        "11,000,000.00",  # sales
        "closed",
        "No backflush exceptions.",
    ]:
        assert expected in text, expected
    assert "{" not in text  # a report, not the JSON document


def test_run_refuses_a_bad_file_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(NORTHSHORE.read_text().replace('quantity: "98000"', 'quantity: "-98000"'))
    message = refused("run", bad)
    assert f"{bad}:36: event jan-sold: quantity: expected more than zero, got -98000" in message
    assert "cannot read" in refused("run", tmp_path / "missing.yaml")


# ---------------------------------------------------------------- the persistent book


def test_init_from_flags_and_again(tmp_path: Path) -> None:
    db = tmp_path / "plant.db"
    args = ["init", "--db", db, "--name", "Test plant", "--currency", "eur"]
    args += ["--triggers", "purchase+sale", "--shortage", "reject"]
    args += ["--rounding", "half-up", "--count-variance", "adjustment"]
    assert "created" in ok(*args)
    assert "already there" in ok(*args)
    book = parse(ok("report", "--db", db, "--json"))["book"]
    assert book == {
        "name": "Test plant",
        "currency": "EUR",
        "triggers": "purchase+sale",
        "disposition": "cogs",
        "shortage": "reject",
        "inventory_unsold_conversion": False,
        "rounding": "half-up",
        "count_variance": "adjustment",
        "exceptions_at_close": "warn",
        "lower_of_cost": "ifrs",
        "journal_detail": "event",
    }
    before = dump_file(db)
    # the settings given are checked against the book's, not the defaults of those not given
    assert "already there" in ok("init", "--db", db, "--name", "Test plant", "--currency", "eur")
    message = refused(
        "init", "--db", db, "--name", "Test plant", "--triggers", "purchase+completion"
    )
    assert "different book" in message and "triggers" in message and "currency" not in message
    assert dump_file(db) == before
    # a value Typer itself refuses: usage error, exit 2
    result = cli("init", "--db", tmp_path / "other.db", "--triggers", "bogus")
    assert result.exit_code == 2 and "bogus" in result.stderr


def test_a_book_that_is_not_there(tmp_path: Path) -> None:
    message = refused("report", "--db", tmp_path / "nothing.db", code=2)
    assert "nothing.db; run `backflush init` first" in message
    assert not (tmp_path / "nothing.db").exists()  # reading never creates a file
    empty = tmp_path / "empty.db"
    empty.touch()
    assert "no book at" in refused("report", "--db", empty, code=2)
    assert empty.stat().st_size == 0  # nor makes a database of an empty one


def test_import_close_and_report_a_book(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    january = without_closes(NORTHSHORE, tmp_path / "january.yaml", before="  # February")
    both = without_closes(NORTHSHORE, tmp_path / "both.yaml")
    assert "created" in ok("init", "--db", db, "--settings-from", january)
    assert "9 event(s) applied, 0 already recorded" in ok("import", january, "--db", db)
    assert "0 event(s) applied, 9 already recorded (no change)" in ok("import", january, "--db", db)
    periods = parse(ok("report", "--db", db, "--json"))["periods"]
    assert [(p["period"], p["closed"]) for p in periods] == [("2026-01", False)]

    before = dump_file(db)
    assert "2026-01 is still open; close periods in order" in refused(
        "close", "2026-02", "--db", db
    )
    assert "period: expected YYYY-MM, got '2026-13'" in refused("close", "2026-13", "--db", db)
    assert dump_file(db) == before

    closed = ok("close", "2026-01", "--db", db)
    assert "Variances by period" in closed and "8,000.00" in closed and "closed" in closed
    again = ok("close", "2026-01", "--db", db)
    assert "period 2026-01 was already closed by close-2026-01: no change" in again
    before = dump_file(db)
    again = ok("close", "2026-01", "--db", db, "--id", "another-close")
    assert "period 2026-01 was already closed by close-2026-01: no change" in again
    assert dump_file(db) == before
    assert "10 event(s) applied, 9 already recorded" in ok("import", both, "--db", db)
    ok("close", "2026-02", "--db", db)

    found = parse(ok("report", "--db", db, "--json"))
    assert_matches_expected("northshore", found)
    # the same figures as running the file with its own close events, up to the close ids
    ran = parse(ok("run", NORTHSHORE, "--json"))
    renamed = {"jan-close": "close-2026-01", "feb-close": "close-2026-02"}
    for entry in ran["entries"]:
        entry["event"] = renamed.get(entry["event"], entry["event"])
    for period in ran["periods"]:
        period["close_event"] = renamed[period["close_event"]]
    assert found == ran


def test_post_from_flags_is_idempotent_and_conflicts_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    ok("import", NORTHSHORE, "--db", db)
    purchase = ["post", "--db", db, "--type", "purchase", "--date", "2026-03-02"]
    purchase += ["--item", "PCB", "--quantity", "10", "--unit-cost", "12.50"]
    assert "event m1: applied" in ok(*purchase, "--id", "m1")
    assert "event m1: already recorded with the same content: no change" in ok(
        *purchase, "--id", "m1"
    )
    before = dump_file(db)
    message = refused(*purchase[:-4], "--quantity", "11", "--unit-cost", "12.50", "--id", "m1")
    assert "event m1: id already recorded with different content" in message
    assert "nothing was written" in message
    message = refused(*purchase[:7], "--item", "NOPE", "--quantity", "1", "--unit-cost", "1")
    assert "command line: event cli-" in message and "item: unknown item 'NOPE'" in message
    late = ["post", "--db", db, "--type", "conversion", "--date", "2026-02-10"]
    message = refused(*late, "--amount", "5.00", "--id", "late")
    assert "event late: dated 2026-02-10 in period 2026-02, which is closed" in message
    assert "nothing to post" in refused("post", "--db", db)
    assert dump_file(db) == before
    # no --id: a fresh key each time
    first = ok(*purchase)
    assert first.startswith("event cli-") and first.rstrip().endswith(": applied")
    state = parse(ok("report", "--db", db, "--json"))
    assert state["quantities"]["PCB"] == "20"


def test_post_refuses_a_date_more_than_a_year_ahead(tmp_path: Path) -> None:
    """A typo (9999 for 2026) would open a period years ahead and hold back every change of
    standards until then: post refuses it, as the HTTP API and import do (import
    --allow-future may simulate years). A book that took one anyway answers a later release in
    words, not with a traceback."""
    db = tmp_path / "book.db"
    ok("import", NORTHSHORE, "--db", db)
    before = dump_file(db)
    ahead = (dt.date.today() + dt.timedelta(days=367)).isoformat()
    message = refused(
        "post", "--db", db, "--type", "conversion", "--id", "typo", "--date", ahead,
        "--amount", "1",
    )  # fmt: skip
    assert f"command line: event typo: date: {ahead} is more than 366 days ahead" in message
    line = f'{{"id": "far", "type": "conversion", "date": "{ahead}", "amount": "1"}}\n'
    message = refused("post", "--db", db, "-f", "-", input=line)
    assert f"<stdin>:1: event far: date: {ahead} is more than 366 days ahead" in message
    assert dump_file(db) == before
    far = tmp_path / "far.jsonl"
    far.write_text(line.replace(ahead, "9999-12-31"))
    assert "--allow-future takes it" in refused("import", far, "--db", db)
    assert dump_file(db) == before
    ok("import", far, "--db", db, "--allow-future")
    # Sent again, an event recorded is a no-op (a conflict if it differs), whatever its date.
    before = dump_file(db)
    again = far.read_text()
    assert "already recorded" in ok("post", "--db", db, "-f", "-", input=again)
    assert "0 event(s) applied, 1 already recorded" in ok("import", far, "--db", db)
    changed = tmp_path / "changed.jsonl"
    changed.write_text(again.replace('"amount": "1"', '"amount": "2"'))
    conflict = "event far: id already recorded with different content"  # not its date
    assert conflict in refused("post", "--db", db, "-f", changed)
    assert conflict in refused("import", changed, "--db", db)
    assert dump_file(db) == before
    ok("master", "export", tmp_path / "master", "--db", db)
    with (tmp_path / "master" / "boms.csv").open("a", encoding="utf-8") as boms:
        boms.write("ROUTER,2027-01-01,,1,PCB,2,0,,\n")  # a new version of ROUTER's BOM
    message = refused("master", "import", tmp_path / "master", "--db", db)
    assert "on or before the last event recorded (9999-12-31); standards may change no more" in (
        message
    )


def test_an_event_dated_on_a_change_of_standards_not_yet_in_force_is_refused_live(
    tmp_path: Path,
) -> None:
    """A cost roll released ahead (next month's standards): an event dated on or after it, a
    typo of the year most often, would revalue stock at standards not in force yet and lock
    out every event dated before the change, reversed or not. post, import and the close
    commands refuse it (import --allow-future takes it); a day past today is grace (a plant
    ahead of the server's clock); the day before the change is taken."""
    today = dt.date.today()
    change = today + dt.timedelta(days=30)
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        "book: {name: P, currency: USD, triggers: purchase+completion}\n"
        "items:\n"
        '  - {id: M, kind: material, standard_cost: "2.00"}\n'
        "cost_sets:\n"
        f'  - {{name: roll, effective: {change.isoformat()}, materials: {{M: "2.50"}}}}\n'
        "events: []\n",
        encoding="utf-8",
    )
    db = tmp_path / "book.db"
    ok("import", plant, "--db", db)
    before = dump_file(db)

    def purchase(event_id: str, on: dt.date) -> list[Any]:
        fields = ["--item", "M", "--quantity", "1", "--unit-cost", "2.00"]
        return ["post", "--db", db, "--type", "purchase", "--id", event_id, "--date", on, *fields]

    typo = change + dt.timedelta(days=3)
    message = " ".join(refused(*purchase("typo", typo)).split())
    assert (
        f"command line: event typo: date: {typo} is on or after {change}, when standards not "
        f"yet in force change: posting it would revalue stock at them now and refuse events "
        f"dated before {change} (a typo?)"
    ) in message
    line = json.dumps({"id": "typo", "type": "purchase", "date": typo.isoformat(), "item": "M",
                       "quantity": "1", "unit_cost": "2.00"})  # fmt: skip
    stream = tmp_path / "typo.jsonl"
    stream.write_text(line + "\n", encoding="utf-8")
    assert f"typo.jsonl:1: event typo: date: {typo} is on or after {change}" in " ".join(
        refused("import", stream, "--db", db).split()
    )
    assert dump_file(db) == before
    # a scenario file's event too, where it was read (the book's standards not yet changed)
    typo_file = tmp_path / "typo.yaml"
    typo_file.write_text(
        plant.read_text(encoding="utf-8").replace(
            "events: []",
            "events:\n"
            f'  - {{id: typo, type: purchase, date: {typo.isoformat()}, item: M, quantity: "1",'
            ' unit_cost: "2.00"}',
        ),
        encoding="utf-8",
    )
    assert f"event typo: date: {typo} is on or after {change}" in " ".join(
        refused("import", typo_file, "--db", db).split()
    )
    assert dump_file(db) == before
    ok(*purchase("the-day-before", change - dt.timedelta(days=1)))
    ok(*purchase("tomorrow", today + dt.timedelta(days=1)))
    ok("import", stream, "--db", db, "--allow-future")  # a plan: taken when asked for
    # In force now in the book: later events dated after the change revalue nothing more.
    stream.write_text(line.replace('"typo"', '"after-the-plan"') + "\n", encoding="utf-8")
    ok("import", stream, "--db", db)
    ok(*purchase("posted-after-the-plan", typo))
    # so is a scenario file's event (its standards: the book's, in force since the plan)
    more = plant.read_text(encoding="utf-8").replace(
        "events: []",
        "events:\n"
        f'  - {{id: in-a-file, type: purchase, date: {typo.isoformat()}, item: M, quantity: "1",'
        ' unit_cost: "2.00"}',
    )
    plant.write_text(more, encoding="utf-8")
    ok("import", plant, "--db", db)
    valuation = parse(ok("report", "--db", db, "--json"))["balances"]
    assert Decimal(valuation["raw_in_process"]) == Decimal("15.00")  # at 2.50, as told


def test_post_hours_and_a_conversion_cost_at_a_work_center_from_flags(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / "widgets_prorate.yaml", "--db", db)
    ok("post", "--db", db, "--type", "hours", "--id", "h1", "--date", "2026-03-02",
       "--work-center", "ASM", "--hours", "7.5", "--element", "labor")  # fmt: skip
    ok("post", "--db", db, "--type", "conversion", "--id", "cv1", "--date", "2026-03-02",
       "--work-center", "ASM", "--hours", "2", "--element", "labor", "--amount", "44")  # fmt: skip
    march = parse(ok("report", "--db", db, "--json", "--period", "2026-03"))
    assert [e["event"] for e in march["entries"]] == ["cv1"]  # hours post no entry
    message = refused(
        "post", "--db", db, "--type", "hours", "--date", "2026-03-02", "--work-center", "NOPE",
        "--hours", "1",
    )  # fmt: skip
    assert "work_center: unknown work center 'NOPE'" in message


def test_post_json_lines_from_a_file_and_from_stdin(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    ok("import", NORTHSHORE, "--db", db)
    lines = tmp_path / "march.jsonl"
    lines.write_text(
        '{"id": "mar-po", "type": "purchase", "date": "2026-03-02", "item": "PCB",'
        ' "quantity": 100, "unit_cost": 12.25}\n'
        "\n"
        '{"id": "mar-labor", "type": "conversion", "date": "2026-03-31",'
        ' "amount": "450.00", "element": "labor"}\n'
    )
    assert "2 event(s) applied, 0 already recorded" in ok("post", "--db", db, "-f", lines)
    again = ok("post", "--db", db, "--file", "-", input=lines.read_text())
    assert "0 event(s) applied, 2 already recorded (no change)" in again
    as_json = parse(ok("post", "--db", db, "-f", "-", "--json", input=lines.read_text()))
    assert as_json == [{"id": "mar-po", "applied": False}, {"id": "mar-labor", "applied": False}]
    state = parse(ok("report", "--db", db, "--json"))
    assert state["quantities"]["PCB"] == "100"
    assert state["balances"]["purchase_price_variance"] == "25.00"  # 100 x (12.25 - 12.00)
    march = parse(ok("report", "--db", db, "--json", "--period", "2026-03"))
    assert [e["event"] for e in march["entries"]] == ["mar-po", "mar-labor"]

    before = dump_file(db)
    bad = (
        '{"id": "ok-1", "type": "conversion", "date": "2026-03-31", "amount": "1.00"}\n'
        '{"id": "bad-2", "type": "conversion", "date": "2026-03-31", "amount": "1.001"}\n'
    )
    message = refused("post", "--db", db, "-f", "-", input=bad)
    assert "<stdin>:2: event bad-2: amount: 1.001 has more decimals than USD allows (2)" in message
    assert "nothing was written" in message
    assert dump_file(db) == before
    assert "cannot read" in refused("post", "--db", db, "-f", tmp_path / "missing.jsonl")
    # read as `import` reads a .jsonl file, but an event's id (its idempotency key) is required
    odd = (
        '{"id": "nan-1", "type": "conversion", "date": "2026-03-31", "amount": NaN}\n'
        '{"type": "conversion", "date": "2026-03-31", "amount": "1.00"}\n'
        "[1, 2]\n"
    )
    message = refused("post", "--db", db, "-f", "-", input=odd)
    assert "<stdin>:1: malformed JSON: NaN is not a number; write a decimal" in message
    assert "<stdin>:2: event ?: id: required" in message
    assert "<stdin>:3: expected a JSON object per line" in message
    assert dump_file(db) == before


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_report_json_equals_run_json(tmp_path: Path, name: str) -> None:
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / f"{name}.yaml", "--db", db)
    assert ok("report", "--db", db, "--json") == ok("run", EXAMPLES / f"{name}.yaml", "--json")


@pytest.mark.parametrize(
    ("what", "title", "figure"),
    [
        ("summary", "Journal summary", "1,450,000.00"),
        ("trial-balance", "Trial balance", "8,220,000.00"),
        ("valuation", "Quantities and valuation at standard", "ROUTER"),
        ("variances", "Variances by period", "63,000.00"),
        ("journal", "Journal", "jan-po-pcb"),
        ("exceptions", "Backflush exceptions", "event"),
    ],
)
def test_each_report(tmp_path: Path, what: str, title: str, figure: str) -> None:
    db = tmp_path / "book.db"
    ok("import", NORTHSHORE, "--db", db)
    text = ok("report", "--db", db, "--what", what)
    assert title in text and figure in text
    if what == "journal":
        february = ok("report", "--db", db, "--what", "journal", "--period", "2026-02")
        assert "feb-po-pcb" in february and "jan-po-pcb" not in february


def test_exceptions_report_shows_the_queue(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    scenario = tmp_path / "short.yaml"
    text = NORTHSHORE.read_text().split("events:")[0]
    scenario.write_text(
        text + "events:\n"
        "  - {id: early, date: 2026-01-05, type: completion, item: ROUTER, quantity: 5}\n"
    )
    ok("import", scenario, "--db", db)
    report = ok("report", "--db", db, "--what", "exceptions")
    assert "early" in report and "shortage" in report and "open" in report
    ok("post", "--db", db, "--type", "purchase", "--date", "2026-01-06", "--item", "ANT",
       "--quantity", "10", "--unit-cost", "1.75", "--id", "ants")  # fmt: skip
    report = ok("report", "--db", db, "--what", "exceptions")
    assert "cleared by ants" in report


def test_demo_builds_a_book_with_two_closed_periods(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    text = ok("demo", "--db", db)
    assert "Northshore Devices" in text and "Variances by period" in text
    assert "2026-01" in text and "2026-02" in text
    assert text.count("closed") >= 2
    assert f"backflush report --db {db} --json" in " ".join(text.split())
    found = parse(ok("report", "--db", db, "--json"))
    assert [(p["period"], p["closed"]) for p in found["periods"]] == [
        ("2026-01", True),
        ("2026-02", True),
    ]
    assert_matches_expected("northshore", found)
    assert "exists" in refused("demo", "--db", db, code=2)


# ---------------------------------------------------------------- the installed program


def test_python_dash_m_backflush_runs_a_scenario() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backflush", "run", str(NORTHSHORE), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert_matches_expected("northshore", parse(done.stdout))


def test_installed_program_posts_from_stdin_and_refuses_with_code_2(tmp_path: Path) -> None:
    program = Path(sys.executable).parent / "backflush"
    if not program.exists():
        program = ROOT / ".venv" / "bin" / "backflush"
    db = str(tmp_path / "book.db")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(program), *args], input=stdin, capture_output=True, text=True, timeout=120
        )

    done = run("import", str(EXAMPLES / "potter.yaml"), "--db", db)
    assert done.returncode == 0, done.stderr
    line = '{"id": "jun-dm", "type": "purchase", "date": "2026-06-01", "item": "DM", '
    line += '"quantity": "500", "unit_cost": "1.02"}\n'
    done = run("post", "--db", db, "-f", "-", stdin=line)
    assert done.returncode == 0, done.stderr
    assert "event jun-dm: applied" in done.stdout
    done = run("post", "--db", db, "-f", "-", stdin=line.replace('"500"', '"-500"'))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "<stdin>:1: event jun-dm: quantity: expected more than zero, got -500" in done.stderr
    done = run("report", "--db", db, "--json")
    assert done.returncode == 0
    assert parse(done.stdout)["quantities"]["DM"] == "500"
    # a workbook into a folder that is not there: the one line of the error, nothing written
    for args in (("report", "--db", db, "--xlsx"), ("master", "export", "--db", db)):
        target = tmp_path / "missing" / "book.xlsx"
        done = run(*args, str(target))
        assert done.returncode == 2, done.stderr
        assert f"{target}: No such file or directory" in done.stderr
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    done = run("report", "--db", db, "--xlsx", str(tmp_path / "book.xlsx"))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir() if "xlsx" in p.name] == ["book.xlsx"]


#: Runs the command line with a standard output whose reader has gone (``... | head``):
#: every write fails as a closed pipe's does (EPIPE), whatever the pipe's buffer holds.
CLOSED_PIPE = """
import io, os, sys
from backflush.cli import main

class Closed(io.TextIOWrapper):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

sys.stdout = Closed(os.fdopen(os.dup(1), "wb"))
sys.argv = ["backflush", *sys.argv[1:]]
main()
"""


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """``report ... | head``: the closed pipe is no refused input (exit 2 with "error: :
    Broken pipe", as it was) nor a traceback: the command ends, exit code 1, no message."""
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / "potter.yaml", "--db", db)
    for what in (("--what", "journal"), ("--json",)):
        done = subprocess.run(
            [sys.executable, "-c", CLOSED_PIPE, "report", "--db", str(db), *what],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (done.returncode, done.stderr) == (1, ""), what


def test_ids_that_look_like_markup_are_printed_as_they_are(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / "potter.yaml", "--db", db)
    lines = (
        '{"id": "[/]", "type": "conversion", "date": "2026-06-02", "amount": "1.00"}\n'
        '{"id": "[bold]x", "type": "conversion", "date": "2026-06-02", "amount": "2.00",'
        ' "element": "labor"}\n'
    )
    assert "2 event(s) applied" in ok("post", "--db", db, "-f", "-", input=lines)
    journal = ok("report", "--db", db, "--what", "journal", "--period", "2026-06")
    assert "[/]" in journal and "[bold]x" in journal
    message = refused(
        "post", "--db", db, "--type", "conversion", "--date", "2026-06-03",
        "--amount", "1.00", "--element", "[red]labor",
    )  # fmt: skip
    assert "unknown conversion element '[red]labor'; the master data names labor" in message
    bare = tmp_path / "bare.db"  # standards of no element: any element is the plant's own
    ok("import", EXAMPLES / "philippine_v1.yaml", "--db", bare)
    ok("post", "--db", bare, "--type", "conversion", "--date", "2026-04-02", "--amount", "2.00",
       "--element", "[red]labor")  # fmt: skip
    assert "[red]labor" in ok("report", "--db", bare, "--what", "variances")
    message = refused(
        "post", "--db", db, "--type", "conversion", "--date", "2026-06-03",
        "--amount", "1.001", "--id", "[/]",
    )  # fmt: skip
    assert "command line: event [/]: amount: 1.001 has more decimals" in message
    assert "event [bold]x: already recorded with the same content: no change" in ok(
        "post", "--db", db, "--type", "conversion", "--date", "2026-06-02",
        "--amount", "2.00", "--element", "labor", "--id", "[bold]x",
    )  # fmt: skip


REJECTED = """\
book: {name: Tight, currency: USD, shortage: reject}
items:
  - {id: M, kind: material, standard_cost: 1}
  - {id: F, kind: finished, standard_cost: {conversion: 1}}
boms:
  - {item: F, lines: [{component: M, quantity: 2}]}
events:
  - {date: 2026-01-02, type: purchase, item: M, quantity: 3, unit_cost: 1}
  - {date: 2026-01-03, type: completion, item: F, quantity: 2}
"""


def test_an_event_the_rules_refuse_is_named_by_file_and_line(tmp_path: Path) -> None:
    scenario = tmp_path / "tight.yaml"
    scenario.write_text(REJECTED)
    message = refused("run", scenario)
    assert f"{scenario}:9: event tight:2: needs 4 of 'M' but only 3 is on hand" in message
    assert "the run stops here" in message
    db = tmp_path / "tight.db"
    message = refused("import", scenario, "--db", db)
    assert f"{scenario}:9: event tight:2:" in message and "nothing was written" in message
    # not even the schema: the migration ran in the refused import's transaction
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_close_of_a_period_the_file_closed(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    ok("import", NORTHSHORE, "--db", db)
    before = dump_file(db)
    text = ok("close", "2026-01", "--db", db)
    assert "Variances by period" in text
    assert "period 2026-01 was already closed by jan-close: no change" in text
    assert dump_file(db) == before


def test_close_of_the_last_period(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    ok("init", "--db", db)
    assert "9999-12" in ok("close", "9999-12", "--db", db)
    again = ok("close", "9999-12", "--db", db)
    assert "period 9999-12 was already closed by close-9999-12: no change" in again


def test_book_settings_from_flags_fit_the_database(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    message = refused("init", "--db", db, "--name", "n" * 201)
    assert "command line: --name: String should have at most 200 characters" in message
    assert "command line: --currency:" in refused("init", "--db", db, "--currency", "euro")
    message = refused("init", "--db", db, "--currency", "UDS")  # a typo no book could undo
    assert "command line: --currency: unknown currency code 'UDS'; expected an ISO 4217" in message
    assert not db.exists()


def test_database_errors_name_the_database_and_exit_1(tmp_path: Path) -> None:
    url = "postgresql://nobody:s3cret@127.0.0.1:1/x"
    message = refused("report", "--db", url, code=1)
    assert message.startswith("error: database postgresql://nobody:***@127.0.0.1:1/x: ")
    assert "s3cret" not in message and "Traceback" not in message
    assert len(message.strip().splitlines()) == 1
    garbage = tmp_path / "notdb.db"
    garbage.write_text("hello\n")
    message = refused("report", "--db", garbage, code=1)
    assert message == f"error: database {garbage}: file is not a database\n"
    message = refused("init", "--db", tmp_path / "missing" / "x.db", code=1)
    assert f"error: database {tmp_path / 'missing' / 'x.db'}: unable to open database" in message
    assert "nothing was written" in message
    assert "Can't load plugin" in refused("report", "--db", "nosuch://x/y", code=1)
    assert "no driver" in refused("report", "--db", "mysql://u:pw@h/x", code=1)


def test_init_shows_the_url_without_its_password(tmp_path: Path) -> None:
    # the password is still refused by the unreachable server; what matters is the output
    message = refused("init", "--db", "postgresql://u:s3cret@127.0.0.1:1/x", code=1)
    assert "s3cret" not in message and "u:***@127.0.0.1:1/x" in message


@pytest.mark.postgres
def test_a_postgres_url_is_a_postgresql_one(pg_db_url: str) -> None:
    """libpq (psql, most tools' settings) takes postgres:// as postgresql://; so does the CLI."""
    url = pg_db_url.replace("postgresql+psycopg://", "postgres://", 1)
    ok("init", "--db", url, "--settings-from", NORTHSHORE)
    assert "Northshore Devices" in ok("report", "--db", url, "--what", "summary")


def test_packaged_demo_scenario_is_the_example() -> None:
    packaged = ROOT / "src" / "backflush" / "data" / "northshore.yaml"
    assert packaged.read_bytes() == NORTHSHORE.read_bytes()


def test_close_warns_about_consumption_still_waiting_for_stock(tmp_path: Path) -> None:
    db = tmp_path / "plant.db"
    ok("import", EXAMPLES / "northshore.yaml", "--db", db)
    ok("post", "--db", db, "--type", "completion", "--id", "done-42", "--date", "2026-03-02",
       "--item", "ROUTER", "--quantity", "500")  # fmt: skip
    result = cli("close", "2026-03", "--db", db)
    assert result.exit_code == 0, result.stderr
    # 500 routers' materials were credited at 28.00 each: 14,000.00 short until stock arrives.
    assert "5 backflush exception(s) still wait for stock" in result.stderr
    assert "short by 14000.00 at standard" in result.stderr


def test_init_brings_an_older_book_up_to_date_whatever_its_settings(tmp_path: Path) -> None:
    from backflush.store.repository import SCHEMA_REVISION, Store

    db = str(tmp_path / "old.db")
    runner = CliRunner()
    assert (
        runner.invoke(app, ["import", str(EXAMPLES / "northshore.yaml"), "--db", db]).exit_code == 0
    )
    store = Store(db)
    downgrade(store, "0003")
    store.close()
    stale = runner.invoke(app, ["report", "--db", db, "--what", "margin"])
    assert stale.exit_code == 2 and "run `backflush init` to migrate" in stale.output
    migrated = runner.invoke(app, ["init", "--db", db])
    assert migrated.exit_code == 0
    assert f"schema migrated from revision 0003 to {SCHEMA_REVISION}" in migrated.output
    again = runner.invoke(app, ["init", "--db", db])
    assert f"schema up to date (revision {SCHEMA_REVISION})" in again.output
    shown = runner.invoke(app, ["report", "--db", db, "--what", "margin"])
    assert shown.exit_code == 0 and "5,390,000.00" in shown.output  # sums made by the upgrade
    other = runner.invoke(app, ["init", "--db", db, "--name", "Other"])
    assert other.exit_code == 2 and "holds a different book" in other.output


def test_a_book_of_a_newer_version_is_named_so_and_left_alone(tmp_path: Path) -> None:
    """A book an upgraded backflush wrote, opened by this one: every command, init among them,
    says to upgrade backflush (init raised alembic's traceback) and leaves the file as it was."""
    from backflush.store.repository import SCHEMA_REVISION

    db = tmp_path / "new.db"
    ok("import", EXAMPLES / "potter.yaml", "--db", db)
    newer = f"{int(SCHEMA_REVISION) + 1:04d}"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (newer,))
    conn.close()
    before = _dump(db)
    for command in (["report"], ["init"], ["post", "-f", "-"]):
        result = cli(*command, "--db", db)
        assert result.exit_code == 2, result.output
        assert (
            f"the book was written by a newer version of backflush (schema revision {newer}; "
            f"this version knows up to {SCHEMA_REVISION}): upgrade backflush to read it"
        ) in " ".join(result.stderr.split()), command
        assert "Traceback" not in result.output
    assert _dump(db) == before


def _dump(db: Path) -> list[str]:
    """The book's content as SQL (not its bytes: a store's close may move what the
    write-ahead log holds into the file, the same content)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


def test_backup_copies_what_the_write_ahead_log_holds_and_close_checkpoints_it(
    tmp_path: Path,
) -> None:
    """A posting another process holds in SQLite's write-ahead log is in a backup (a copy of
    the file alone missed it, even after a server stopped); closing the store writes the log
    into the file (a copy of the file alone then holds it). A backup never overwrites a
    file."""
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / "potter.yaml", "--db", db)
    store = Store(str(db), create=False)
    event = m.Purchase("late-1", dt.date(2026, 6, 2), "DM", Decimal(5), Decimal("1.00"))
    assert store.post([event]) == [True]
    shutil.copy(db, tmp_path / "copy.db")  # the file alone, the log left behind
    assert "late-1" not in cli("explain", "late-1", "--db", tmp_path / "copy.db").stdout
    assert "backed up" in ok("backup", tmp_path / "backup.db", "--db", db)
    assert "late-1" in ok("explain", "late-1", "--db", tmp_path / "backup.db")
    refused = cli("backup", tmp_path / "backup.db", "--db", db)
    assert refused.exit_code == 2 and "exists already" in refused.stderr
    store.close()
    shutil.copy(db, tmp_path / "copy.db")
    assert "late-1" in ok("explain", "late-1", "--db", tmp_path / "copy.db")


def test_the_journal_on_screen_is_paged(tmp_path: Path) -> None:
    db = str(tmp_path / "book.db")
    runner = CliRunner()
    assert (
        runner.invoke(app, ["import", str(EXAMPLES / "northshore.yaml"), "--db", db]).exit_code == 0
    )
    args = ["report", "--db", db, "--what", "journal", "--period", "2026-01"]
    page = runner.invoke(app, [*args, "--limit", "2"])
    assert page.exit_code == 0, page.output
    assert "no. 1" in page.output and "no. 2" in page.output and "no. 3" not in page.output
    assert "the first 2 of 11 entries of 2026-01" in " ".join(page.output.split())
    whole = runner.invoke(app, [*args, "--limit", "0"])
    assert "no. 11" in whole.output and "the first" not in whole.output


def test_the_command_list_gives_each_summary_unbroken() -> None:
    """A docstring's line breaks stayed in the command list (Typer's rich help), cutting
    sentences where the source wrapped them."""
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    lines = {line.strip("│ ").split("  ", 1)[0]: line for line in result.stdout.splitlines()}
    assert "into the book (one transaction: a bad row" in lines["import"]
    assert "the margin trend, or inventory against" in lines["chart"]
    result = CliRunner().invoke(app, ["exceptions", "--help"], env={"COLUMNS": "250"})
    assert "the units stay on the shelf (Dr inventory at standard" in result.stdout


def test_the_cli_starts_without_the_web_server_or_the_spreadsheet_library() -> None:
    """Every command pays for what the CLI imports at start: FastAPI (0.3 s) is loaded only
    by ``serve``, openpyxl (0.3 s) only where a workbook is read or written."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, backflush.cli; print(' '.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"fastapi", "starlette", "openpyxl", "matplotlib", "uvicorn"}.isdisjoint(loaded)
    assert "typer" in loaded and "backflush.commands.serve" in loaded


def test_ids_that_look_like_emoji_shortcodes_are_printed_as_they_are(tmp_path: Path) -> None:
    """Rich turns :A: and :OK: into emoji: work centers A and OK would vanish from the
    variance keys (conversion_spending:A:labor), and a token named :smile: would change."""
    scenario = tmp_path / "centers.yaml"
    scenario.write_text(
        """
book: {name: W, currency: USD, triggers: purchase+completion, shortage: allow,
       disposition: {default: cogs, conversion: keep}}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
  - {id: F, kind: finished}
work_centers:
  - {id: A, rates: {labor: "10.00"}}
  - {id: OK, rates: {labor: "15.00"}}
routings:
  - {item: F, operations: [{operation: 10, work_center: A, run_hours: "1"},
                           {operation: 20, work_center: OK, run_hours: "2"}]}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "10", unit_cost: "1.00"}
  - {id: c1, date: 2026-01-05, type: completion, item: F, quantity: "10"}
  - {id: h1, date: 2026-01-10, type: hours, work_center: A, hours: "12"}
  - {id: h2, date: 2026-01-10, type: hours, work_center: OK, hours: "18"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "130.00", element: labor, work_center: A}
  - {id: l2, date: 2026-01-31, type: conversion, amount: "260.00", element: labor,
     work_center: OK}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
"""
    )
    result = CliRunner().invoke(app, ["run", str(scenario)])
    assert result.exit_code == 0, result.output
    assert "conversion_spending:A:labor" in result.output
    assert "conversion_efficiency:OK:labor" in result.output
    db = str(tmp_path / "book.db")
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(scenario), "--db", db]).exit_code == 0
    made = runner.invoke(
        app, ["token", "create", "--db", db, "--name", ":smile:", "--role", "viewer"]
    )
    assert made.exit_code == 0, made.output
    assert ":smile:" in made.output and "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in (
        made.output
    )


def northshore_book(folder: Path) -> Path:
    """The Northshore example imported into ``folder``/book.db."""
    db = folder / "book.db"
    imported = CliRunner().invoke(
        app, ["import", str(EXAMPLES / "northshore.yaml"), "--db", str(db)]
    )
    assert imported.exit_code == 0, imported.output
    return db


def test_a_book_on_a_read_only_mount_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An auditor's copy on a read-only share: SQLite could not make the journal files a WAL
    book needs to be read ("unable to open database file"). It is read as it is; a write
    says why it fails and writes nothing; a copy taken with its write-ahead log holding
    changes is read with them. (Here the mount is only said to be read-only: a read-only
    mount needs root; checked by hand with ``mount -o bind,ro``.)"""
    from backflush.store import repository

    db = northshore_book(tmp_path)
    runner = CliRunner()
    with sqlite3.connect(db) as conn:  # as a copy made once no process had it open
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = dump_file(str(db))
    monkeypatch.setattr(repository, "_read_only_mount", lambda _path: True)
    shown = runner.invoke(app, ["report", "--db", str(db), "--what", "trial-balance"])
    assert shown.exit_code == 0, shown.output
    assert "19,220,000.00" in shown.output
    refused = runner.invoke(
        app,
        ["post", "--db", str(db), "--type", "purchase", "--item", "PCB", "--quantity", "1",
         "--unit-cost", "12", "--date", "2026-03-01"],
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "attempt to write a readonly database" in refused.output
    assert "nothing was written" in refused.output
    assert dump_file(str(db)) == before
    # a copy taken while a writer had it open: what its log holds is read too
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE book_settings SET name = 'Northshore (late)'")
        writer.commit()
        copy = repository.Store(str(db), create=False)
        try:
            assert copy.settings().name == "Northshore (late)"
        finally:
            copy.close()
    finally:
        writer.close()


def test_a_command_that_only_reads_says_no_more_than_what_is_wrong(tmp_path: Path) -> None:
    db = northshore_book(tmp_path)
    message = refused("bom", "UNKNOWN", "--db", db)
    assert "unknown item 'UNKNOWN'" in message
    assert "run stops here" not in message and "nothing was written" not in message


def test_serve_on_a_port_taken_exits_1_saying_so(tmp_path: Path) -> None:
    import socket

    db = northshore_book(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = subprocess.run(
            [sys.executable, "-m", "backflush", "serve", "--db", str(db), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert served.returncode == 1  # uvicorn's own 3 is no code the README gives
    assert f"error: the server could not start on 127.0.0.1:{port}" in served.stderr


def test_an_id_a_book_took_before_invisible_characters_were_refused_is_still_named(
    tmp_path: Path,
) -> None:
    """A book written before ids were refused for invisible characters may hold one (a soft
    hyphen): that event is still explained and reversed, though no new id may hold one."""
    from backflush.domain import model as m
    from backflush.store.repository import Store

    db = tmp_path / "book.db"
    ok("import", NORTHSHORE, "--db", db)
    old = "po\u00ad9"  # as the book took it then (posted here past the input rules)
    store = Store(f"sqlite:///{db}", create=False)
    try:
        store.post([m.Purchase(old, dt.date(2026, 3, 2), "PCB", Decimal(10), Decimal("12.00"))])
    finally:
        store.close()
    assert old in ok("explain", old, "--db", db)
    ok("post", "--db", db, "--type", "reversal", "--id", "undo-9", "--date", "2026-03-03",
       "--reverses", old)  # fmt: skip
    message = refused("post", "--db", db, "--type", "purchase", "--id", "po\u00ad10",
                      "--date", "2026-03-03", "--item", "PCB", "--quantity", "1",
                      "--unit-cost", "12")  # fmt: skip
    assert "no control, bidirectional or invisible characters" in message


UNSOLD = """\
book: {name: PS, currency: USD, triggers: purchase+sale, disposition: prorate,
       inventory_unsold_conversion: true}
items:
  - {id: M, kind: material, standard_cost: "4.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "6.00"}}}
boms: [{item: F, lines: [{component: M, quantity: "1"}]}]
events:
  - {id: p1, date: 2026-01-02, type: purchase, item: M, quantity: "100", unit_cost: "4.00"}
  - {id: c1, date: 2026-01-05, type: completion, item: F, quantity: "100"}
  - {id: s1, date: 2026-01-10, type: sale, item: F, quantity: "50", unit_price: "20.00"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "800.00", element: labor}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
"""


def test_the_valuation_counts_unsold_conversion_inventoried_off_the_books_once(
    tmp_path: Path,
) -> None:
    """50 F unsold hold 300.00 of conversion off the books item by item, which the close put on
    the books: the off-books total is 0.00 (as the JSON nets it), not 300.00 counted on both
    sides, on the screen and in CSV and HTML."""
    db, scenario = tmp_path / "book.db", tmp_path / "ps.yaml"
    scenario.write_text(UNSOLD, encoding="utf-8")
    ok("import", scenario, "--db", db)
    found = parse(ok("report", "--db", db, "--json"))
    assert sum(Decimal(v) for v in found["off_book"].values()) == 0
    console = Console(width=200, record=True)  # (as wide as the table: nothing cut short)
    console.print(valuation_table(Store(f"sqlite:///{db}", create=False).load()))
    text = console.export_text()
    assert re.search(r"inventoried at close\W+-300\.00", text), text
    assert re.search(r"total\W+200\.00\W+0\.00", text), text
    ok("report", "--db", db, "--csv", tmp_path / "csv")
    rows = (tmp_path / "csv" / "valuation.csv").read_text(encoding="utf-8").splitlines()
    assert "inventoried at close,,,,,,,-300.00" in rows and "total,,,,,,200.00,0.00" in rows
    ok("report", "--db", db, "--html", tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert re.search(r"inventoried at close</td>(<td[^>]*></td>)*<td[^>]*>-300\.00", html)


def test_a_stream_under_another_name_or_a_csv_posted_is_told_what_to_do(tmp_path: Path) -> None:
    """A stream of events named .txt is read as a scenario (YAML), which it is not: the error
    says so and names a stream's suffixes; post --file reads JSON lines, not a CSV file."""
    db = tmp_path / "book.db"
    ok("import", EXAMPLES / "potter.yaml", "--db", db)
    events = tmp_path / "events.txt"
    events.write_text('{"id": "a", "type": "close"}\n{"id": "b"}\n', encoding="utf-8")
    message = " ".join(refused("import", events, "--db", db).split())
    assert "malformed YAML" in message
    assert (
        f"{events}: read as a scenario file (YAML), as its suffix .txt is no stream's; a stream "
        "of events is named .jsonl, .ndjson, .csv or .parquet"
    ) in message
    table = tmp_path / "events.csv"
    table.write_text("id,type,date\nc,close,2026-05-31\n", encoding="utf-8")
    assert " ".join(refused("post", "--file", table, "--db", db).split()) == (
        f"error: {table}: post --file reads JSON lines; import a .csv file with backflush "
        f"import {table}"
    )
