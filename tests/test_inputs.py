"""Validation at the edge (DESIGN §5): every bad input is refused with a message that says where
(file:line of the YAML mapping, line of a JSON-lines file, or the event id), which field, and what
was expected; and when it goes through the store, nothing is written."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backflush.book import ConflictError
from backflush.cli import app
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats.inputs import InputError
from backflush.formats.scenario import Scenario, parse_scenario, read_scenario
from backflush.reports.document import money
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import dump_file

BASE = """\
book: {name: Edge plant, currency: USD, triggers: purchase+completion, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: K, kind: material, standard_cost: "0.50"}
  - {id: F, kind: finished, standard_cost: {conversion: "1.00"}}
boms:
  - item: F
    lines:
      - {component: M, quantity: "3"}
      - {component: K, quantity: "2", scrap: "0.05"}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "100", unit_cost: "2.10"}
  - {id: k1, date: 2026-01-05, type: purchase, item: K, quantity: "100", unit_cost: "0.50"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "10"}
  - {id: close-jan, date: 2026-01-31, type: close, period: 2026-01}
"""

EVENT = "  - {id: x1, date: 2026-02-02, type: purchase, item: M, quantity: 5, unit_cost: 2}\n"


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the ``occurrence``-th ``fragment``."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    return found[occurrence - 1]


def problems_of(text: str, source: str = "bad.yaml") -> str:
    with pytest.raises(InputError) as caught:
        parse_scenario(text, source)
    assert caught.value.problems
    assert str(caught.value) == "\n".join(caught.value.problems)
    return str(caught.value)


def replace(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def change(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, count)

    return change


def add_event(line: str) -> Callable[[str], str]:
    return lambda text: text + line


# Each case: how BASE is spoiled, the fragment whose line the message must name (None: no line),
# and what else the message must say (the field and what was expected).
YAML_CASES: dict[str, tuple[Callable[[str], str], str | None, list[str]]] = {
    "unknown item in an event": (
        add_event(EVENT.replace("item: M", "item: NOPE")),
        "id: x1",
        ["event x1: item: unknown item 'NOPE'"],
    ),
    "unknown item in a BOM line": (
        replace("component: K", "component: NOPE"),
        "component: NOPE",
        ["BOM of F: line 2: component: unknown item 'NOPE'"],
    ),
    "negative quantity": (
        add_event(EVENT.replace("quantity: 5", 'quantity: "-5"')),
        "id: x1",
        ["event x1: quantity: expected more than zero, got -5"],
    ),
    "zero quantity": (
        add_event(EVENT.replace("quantity: 5", "quantity: 0")),
        "id: x1",
        ["event x1: quantity: expected more than zero, got 0"],
    ),
    "zero completion": (
        add_event("  - {id: x1, date: 2026-02-02, type: completion, item: F, quantity: 0}\n"),
        "id: x1",
        ["event x1: quantity: a completion needs good or scrapped units"],
    ),
    "negative BOM quantity": (
        replace('component: M, quantity: "3"', 'component: M, quantity: "-3"'),
        "component: M",
        ["BOM of F: line 1: quantity: expected more than zero, got -3"],
    ),
    "non-numeric amount": (
        add_event(EVENT.replace("unit_cost: 2", 'unit_cost: "two"')),
        "id: x1",
        ["event x1: unit_cost: expected a decimal number such as \"12.50\", got 'two'"],
    ),
    "non-numeric standard": (
        replace('standard_cost: "0.50"', 'standard_cost: "cheap"'),
        "id: K",
        ["item K: standard_cost", "expected a decimal number"],
    ),
    "too many decimals for the currency": (
        add_event('  - {id: x1, date: 2026-02-02, type: conversion, amount: "10.001"}\n'),
        "id: x1",
        ["event x1: amount: 10.001 has more decimals than USD allows (2)"],
    ),
    "too many decimals for yen": (
        lambda text: (
            text.replace("currency: USD", "currency: JPY")
            + "  - {id: x1, date: 2026-02-02, type: conversion, amount: 10.5}\n"
        ),
        "id: x1",
        ["event x1: amount: 10.5 has more decimals than JPY allows (0)"],
    ),
    "too many decimals in a unit cost": (
        add_event(EVENT.replace("unit_cost: 2", "unit_cost: 2.1234567")),
        "id: x1",
        ["event x1: unit_cost: 2.1234567 has more than 6 decimals"],
    ),
    "material without a standard": (
        replace('{id: K, kind: material, standard_cost: "0.50"}', "{id: K, kind: material}"),
        "id: K",
        ["item K: standard_cost: empty; a material needs its standard cost"],
    ),
    "unknown shortage policy": (
        replace("shortage: queue", "shortage: sometimes"),
        "book:",
        ["book.shortage:", "'queue', 'allow' or 'reject'"],
    ),
    "unknown triggers": (
        replace("triggers: purchase+completion", "triggers: purchase+shipping"),
        "book:",
        ["book.triggers:", "'purchase+completion', 'purchase+sale', 'completion', 'sale'"],
    ),
    "unknown item triggers": (
        replace('{conversion: "1.00"}}', '{conversion: "1.00"}, triggers: whenever}'),
        "id: F",
        ["item F: triggers:", "'purchase+completion'"],
    ),
    "unknown disposition": (
        replace("shortage: queue", "shortage: queue, disposition: shred"),
        "book:",
        ["book.disposition:", "'cogs'"],
    ),
    "unknown flush method": (
        replace('quantity: "2", scrap', 'quantity: "2", flush: sideways, scrap'),
        "component: K",
        ["BOM of F: line 2: flush:", "'backward', 'forward' or 'manual', got 'sideways'"],
    ),
    "unknown field in an event": (
        add_event(EVENT.replace("unit_cost: 2", "unit_cost: 2, colour: red")),
        "id: x1",
        ["event x1: colour: unknown field"],
    ),
    "unknown field in an item": (
        replace("{id: K, kind: material,", "{id: K, colour: red, kind: material,"),
        "id: K",
        ["item K: colour: unknown field"],
    ),
    "unknown section": (
        lambda text: text + "routes: []\n",
        None,
        [
            "bad.yaml: unknown section(s) routes; expected book, items, work_centers, "
            "routings, boms, cost_sets, events"
        ],
    ),
    "unknown event type": (
        add_event("  - {id: x1, date: 2026-02-02, type: shipment, item: M, quantity: 1}\n"),
        "id: x1",
        [
            "event x1: type: unknown event type 'shipment'; expected one of",
            "purchase",
            "completion",
        ],
    ),
    "missing field": (
        add_event("  - {id: x1, date: 2026-02-02, type: purchase, item: M, quantity: 1}\n"),
        "id: x1",
        ["event x1: unit_cost: Field required"],
    ),
    "duplicate item ids": (
        replace("  - {id: F,", '  - {id: M, kind: material, standard_cost: "3.00"}\n  - {id: F,'),
        None,  # checked below: the line of the second M
        ["item M: duplicate item id"],
    ),
    "scrap factor above range": (
        replace('scrap: "0.05"', 'scrap: "1.5"'),
        "component: K",
        ["BOM of F: line 2: scrap: expected a factor from 0 up to 1 (0.02 = 2%), got 1.5"],
    ),
    "scrap factor of one": (
        replace('scrap: "0.05"', "scrap: 1"),
        "component: K",
        ["line 2: scrap: expected a factor from 0 up to 1", "got 1"],
    ),
    "negative scrap factor": (
        replace('scrap: "0.05"', 'scrap: "-0.05"'),
        "component: K",
        ["line 2: scrap: expected a factor from 0 up to 1", "got -0.05"],
    ),
    # magnitudes: beyond these, figures outgrow the decimal context of the engine and reports
    "huge quantity": (
        add_event(EVENT.replace("quantity: 5", 'quantity: "99999999999999999999999999999"')),
        "id: x1",
        [
            "event x1: quantity: too large, got 99999999999999999999999999999; "
            "expected less than 10^12 in absolute value"
        ],
    ),
    "huge unit cost as a YAML float": (
        add_event(EVENT.replace("unit_cost: 2", "unit_cost: 1.0e+30")),
        "id: x1",
        ["event x1: unit_cost: too large, got 1000000000000000000000000000000; expected less"],
    ),
    "quantity of 10^12": (
        add_event(EVENT.replace("quantity: 5", "quantity: 1_000_000_000_000")),
        "id: x1",
        ["event x1: quantity: too large, got 1000000000000; expected less than 10^12"],
    ),
    "huge unit price": (
        add_event(
            "  - {id: x1, date: 2026-02-02, type: sale, item: F, quantity: 1,"
            " unit_price: -1.0e+12}\n"
        ),
        "id: x1",
        ["event x1: unit_price: too large, got -1000000000000; expected less than 10^12"],
    ),
    "amount of 10^15": (
        add_event("  - {id: x1, date: 2026-02-02, type: conversion, amount: 1.0e+15}\n"),
        "id: x1",
        ["event x1: amount: too large, got 1000000000000000; expected less than 10^15"],
    ),
    "huge standard": (
        replace('standard_cost: "0.50"', "standard_cost: 1.0e+100"),
        "id: K",
        ["item K: standard_cost.material: too large, got 1.0E+100; expected less than 10^12"],
    ),
    "huge conversion standard": (
        replace('{conversion: "1.00"}', '{conversion: {labor: "2000000000000"}}'),
        "id: F",
        ["item F: standard_cost.conversion.labor: too large, got 2000000000000"],
    ),
    "huge BOM quantity": (
        replace('component: M, quantity: "3"', "component: M, quantity: 1.0e+12"),
        "component: M",
        ["BOM of F: line 1: quantity: too large, got 1000000000000; expected less than 10^12"],
    ),
    # lengths of the database columns (PostgreSQL refuses longer ones; SQLite would not)
    "element longer than 64": (
        add_event(
            f"  - {{id: x1, date: 2026-02-02, type: conversion, amount: 1, element: {'e' * 65}}}\n"
        ),
        "id: x1",
        ["event x1: element: String should have at most 64 characters"],
    ),
    "standard element longer than 64": (
        replace('{conversion: "1.00"}', f'{{conversion: {{{"e" * 65}: "1.00"}}}}'),
        "id: F",
        ["item F: standard_cost", "at most 64 characters"],
    ),
    "uom longer than 16": (
        replace("{id: K, kind: material,", "{id: K, uom: kilograms-per-pallet, kind: material,"),
        "id: K",
        ["item K: uom: String should have at most 16 characters"],
    ),
    "book name longer than 200": (
        replace("name: Edge plant", f"name: {'n' * 201}"),
        "book:",
        ["book.name: String should have at most 200 characters"],
    ),
    # ids that differ from another only by white space
    "id with a trailing space": (
        add_event(EVENT.replace("id: x1", 'id: "x1 "')),
        'id: "x1 "',
        ["event x1 : id: expected an id: no white space at either end"],
    ),
    "id with a leading space": (
        add_event(EVENT.replace("id: x1", 'id: " x1"')),
        'id: " x1"',
        ["event  x1: id: expected an id: no white space at either end"],
    ),
    "BOM component with a trailing space": (
        replace("component: K", 'component: "K "'),
        'component: "K "',
        ["BOM of F: line 2: component: expected an id: no white space at either end"],
    ),
    # dates: a YAML date or YYYY-MM-DD, never a number of seconds
    "a number for a date": (
        add_event(EVENT.replace("date: 2026-02-02", "date: 86400")),
        "id: x1",
        ["event x1: date: expected a date YYYY-MM-DD, got int 86400"],
    ),
    "a date and time for a date": (
        add_event(EVENT.replace("date: 2026-02-02", "date: 2026-02-02 10:30:00")),
        "id: x1",
        ["event x1: date: expected a date YYYY-MM-DD, got a date and time"],
    ),
    "a date in another format": (
        add_event(EVENT.replace("date: 2026-02-02", 'date: "2026-2-2"')),
        "id: x1",
        ["event x1: date: expected a date YYYY-MM-DD, got '2026-2-2'"],
    ),
    "a BOM effective from a number": (
        replace("  - item: F\n", "  - item: F\n    effective_from: 20260101\n"),
        "item: F",
        ["BOM of F: effective_from: expected a date YYYY-MM-DD, got int 20260101"],
    ),
    "two events with one id and different content": (
        add_event(EVENT + EVENT.replace("quantity: 5", "quantity: 6")),
        None,  # checked below: both lines
        ["event x1: id already used at bad.yaml:", "by an event with different content"],
    ),
}


@pytest.fixture
def book_db(tmp_path: Path) -> Path:
    """A SQLite book holding BASE, built through the command line."""
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    db = tmp_path / "book.db"
    result = CliRunner().invoke(app, ["import", str(base), "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    return db


def refused_by_cli(db: Path, *args: str, input: str | None = None) -> str:
    """Run a command against ``db`` that must be refused with exit code 2 and write nothing."""
    before = dump_file(db)
    result = CliRunner().invoke(app, [*args, "--db", str(db)], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "nothing was written" in result.stderr
    assert dump_file(db) == before
    return result.stderr


def test_base_scenario_is_good() -> None:
    sc = parse_scenario(BASE, "base.yaml")
    assert len(sc.events) == 4
    run_scenario(sc)


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_bad_scenario_is_refused_naming_where_and_what(
    case: str, book_db: Path, tmp_path: Path
) -> None:
    spoil, fragment, expected = YAML_CASES[case]
    text = spoil(BASE)
    message = problems_of(text)
    if fragment is not None:
        assert f"bad.yaml:{line_of(text, fragment)}: " in message
    if case == "duplicate item ids":
        assert f"bad.yaml:{line_of(text, '{id: M,', occurrence=2)}: " in message
    if case == "two events with one id and different content":
        first, second = line_of(text, "id: x1"), line_of(text, "id: x1", occurrence=2)
        assert f"bad.yaml:{second}: event x1: id already used at bad.yaml:{first} " in message
    for part in expected:
        assert part in message, (part, message)
    # the same file through the store: refused, exit code 2, nothing written
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    stderr = refused_by_cli(book_db, "import", str(bad))
    for part in expected:
        assert part.replace("bad.yaml", str(bad)) in stderr


def test_bom_cycle_names_the_cycle(book_db: Path, tmp_path: Path) -> None:
    subassemblies = "  - {id: A, kind: subassembly}\n  - {id: B, kind: subassembly}\n"
    boms = (
        "  - {item: A, lines: [{component: B, quantity: 1}]}\n"
        "  - {item: B, lines: [{component: A, quantity: 1}]}\n"
    )
    text = BASE.replace("  - {id: F,", subassemblies + "  - {id: F,").replace(
        "boms:\n", "boms:\n" + boms
    )
    message = problems_of(text)
    assert "BOM cycle" in message
    assert "A -> B -> A" in message or "B -> A -> B" in message
    bad = tmp_path / "cycle.yaml"
    bad.write_text(text)
    assert "BOM cycle" in refused_by_cli(book_db, "import", str(bad))


def test_a_line_beyond_the_amount_limit_is_refused(book_db: Path) -> None:
    """Each figure below its limit, their product far beyond: 999,999,999,999 M at as much
    would post about 10^24 to payables (a spreadsheet keeps no cents of it)."""
    big = "999999999999"
    message = refused_by_cli(
        book_db, "post", "--type", "purchase", "--id", "big", "--date", "2026-02-02",
        "--item", "M", "--quantity", big, "--unit-cost", big,
    )  # fmt: skip
    assert "event big: it would post " in message
    assert "an amount must stay below 1000000000000000" in message


def test_an_item_with_no_standard_is_named_where_it_was_read() -> None:
    text = BASE.replace("  - {id: F,", "  - {id: G, kind: finished}\n  - {id: F,")
    message = problems_of(text)
    assert message == "bad.yaml:5: item 'G' has no standard: expected a BOM or a material cost"


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        # an unterminated flow mapping
        (add_event('  - {id: x1, date: 2026-02-02, type: conversion, amount: "1"\n'), "expected"),
        # a key used twice in one mapping
        (add_event('  - {id: x1, id: x2, date: 2026-02-02, type: conversion, amount: "1"}\n'),
         "duplicate key 'id'"),
        # something that looks like a date but is not one
        (add_event('  - {id: x1, date: 2026-13-02, type: conversion, amount: "1"}\n'),
         "invalid date '2026-13-02'"),
        # a tab where YAML wants spaces
        (replace("  - {id: c1,", "\t- {id: c1,"), "cannot start any token"),
        # integers YAML 1.1 reads as something else than the decimal they look like
        (add_event(EVENT.replace("quantity: 5", "quantity: 010")), "ambiguous number '010'"),
        (add_event(EVENT.replace("quantity: 5", "quantity: 1:30")), "ambiguous number '1:30'"),
        (add_event(EVENT.replace("quantity: 5", "quantity: 0x10")), "ambiguous number '0x10'"),
        (add_event(EVENT.replace("quantity: 5", "quantity: 0b11")), "ambiguous number '0b11'"),
        (add_event(EVENT.replace("quantity: 5", "quantity: -0_7")), "ambiguous number '-0_7'"),
        # a base-60 float
        (add_event(EVENT.replace("unit_cost: 2", "unit_cost: 1:30.5")), "'1:30.5'"),
    ],
)  # fmt: skip
def test_malformed_yaml_names_file_line_and_column(
    spoil: Callable[[str], str], expected: str, book_db: Path, tmp_path: Path
) -> None:
    text = spoil(BASE)
    message = problems_of(text)
    found = re.search(r"bad\.yaml:(\d+):(\d+): malformed YAML: ", message)
    assert found is not None, message
    assert int(found.group(1)) >= line_of(BASE, "id: c1") - 1
    assert expected in message
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert re.search(rf"{re.escape(str(bad))}:\d+:\d+: malformed YAML", refused_by_cli(
        book_db, "import", str(bad)
    ))  # fmt: skip


def test_event_in_a_closed_period_names_the_event(book_db: Path, tmp_path: Path) -> None:
    text = BASE + '  - {id: late, date: 2026-01-20, type: conversion, amount: "5.00"}\n'
    scenario = parse_scenario(text, "late.yaml")  # well-formed: only the book can tell
    with pytest.raises(PostingError, match="late: dated 2026-01-20 in period 2026-01, which is"):
        run_scenario(scenario)
    bad = tmp_path / "late.yaml"
    bad.write_text(text)
    message = refused_by_cli(book_db, "import", str(bad))
    assert "event late: dated 2026-01-20 in period 2026-01, which is closed" in message
    message = refused_by_cli(
        book_db, "post", "-f", "-",
        input='{"id": "late", "type": "conversion", "date": "2026-01-31", "amount": "5.00"}\n',
    )  # fmt: skip
    assert "event late: dated 2026-01-31 in period 2026-01, which is closed" in message


# ---------------------------------------------------------------- exact decimals from YAML


def test_yaml_plain_floats_are_read_as_exact_decimals(tmp_path: Path) -> None:
    text = BASE.replace('standard_cost: "0.50"', "standard_cost: 0.1") + (
        "  - {id: x1, date: 2026-02-02, type: purchase, item: K, quantity: 0.3,"
        " unit_cost: 2.675}\n"
        "  - {id: x2, date: 2026-02-03, type: conversion, amount: 0.1}\n"
        "  - {id: x3, date: 2026-02-03, type: conversion, amount: 1_000.10}\n"
    )
    sc: Scenario = parse_scenario(text, "floats.yaml")
    assert sc.master.items["K"].material_cost == Decimal("0.1")
    purchase, conversion, grouped = sc.events[-3:]
    assert isinstance(purchase, m.Purchase) and isinstance(conversion, m.Conversion)
    assert isinstance(grouped, m.Conversion)
    assert (purchase.quantity, purchase.unit_cost) == (Decimal("0.3"), Decimal("2.675"))
    assert str(purchase.unit_cost) == "2.675"  # not 2.67499999999999982236431605997495353221893
    assert str(conversion.amount) == "0.1"
    assert grouped.amount == Decimal("1000.10")
    assert all(type(v) is Decimal for v in (purchase.quantity, purchase.unit_cost))
    # and so they are stored
    store = Store(str(tmp_path / "floats.db"))
    try:
        store.import_scenario(sc.settings, sc.master, sc.events)
        assert store.load().quantity("K") == Decimal("100") - Decimal("21.0") + Decimal("0.3")
        ppv = next(e for e in store.entries() if e.event == "x1").lines
        assert {ln.account.value: ln.amount for ln in ppv}["accounts_payable"] == Decimal("-0.80")
    finally:
        store.close()


# ---------------------------------------------------------------- JSON lines

GOOD_LINE = '{"id": "j1", "type": "conversion", "date": "2026-02-10", "amount": "5.00"}'

JSON_CASES: dict[str, tuple[str, list[str]]] = {
    "malformed JSON": (
        '{"id": "j2", "type": "conversion", "date": "2026-02-10", "amount": }',
        ["events.jsonl:2: malformed JSON: Expecting value", "column"],
    ),
    "not an object": ('["j2", "conversion"]', ["events.jsonl:2: expected a JSON object per line"]),
    "unknown field": (
        '{"id": "j2", "type": "conversion", "date": "2026-02-10", "amount": "1", "colour": 1}',
        ["events.jsonl:2: event j2: colour: unknown field"],
    ),
    "unknown event type": (
        '{"id": "j2", "type": "shipment", "date": "2026-02-10"}',
        ["events.jsonl:2: event j2: type: unknown event type 'shipment'; expected", "purchase"],
    ),
    "unknown item": (
        '{"id": "j2", "type": "purchase", "date": "2026-02-10", "item": "NOPE",'
        ' "quantity": 1, "unit_cost": 1}',
        ["events.jsonl:2: event j2: item: unknown item 'NOPE'"],
    ),
    "negative quantity": (
        '{"id": "j2", "type": "sale", "date": "2026-02-10", "item": "F", "quantity": -1}',
        ["events.jsonl:2: event j2: quantity: expected more than zero, got -1"],
    ),
    "non-numeric amount": (
        '{"id": "j2", "type": "conversion", "date": "2026-02-10", "amount": "lots"}',
        ['events.jsonl:2: event j2: amount: expected a decimal number such as "12.50"'],
    ),
    "too many decimals": (
        '{"id": "j2", "type": "conversion", "date": "2026-02-10", "amount": 10.001}',
        ["events.jsonl:2: event j2: amount: 10.001 has more decimals than USD allows (2)"],
    ),
    "a boolean for a number": (
        '{"id": "j2", "type": "conversion", "date": "2026-02-10", "amount": true}',
        ["events.jsonl:2: event j2: amount: expected a decimal number, got a boolean"],
    ),
    "bad date": (
        '{"id": "j2", "type": "conversion", "date": "2026-02-30", "amount": "1"}',
        ["events.jsonl:2: event j2: date:", "date"],
    ),
    "no id": (
        '{"type": "conversion", "date": "2026-02-10", "amount": "1"}',
        ["events.jsonl:2: event ?: id: required"],
    ),
    "a number for a date": (  # pydantic alone reads it as seconds since 1970
        '{"id": "j2", "type": "conversion", "date": 86400, "amount": "1"}',
        ["events.jsonl:2: event j2: date: expected a date YYYY-MM-DD, got int 86400"],
    ),
    "a key given twice": (  # json.loads alone keeps the last one
        '{"id": "j2", "type": "conversion", "date": "2026-02-10", "amount": "1", "amount": "9"}',
        ["events.jsonl:2: duplicate key 'amount'"],
    ),
    "a key given twice in a nested object": (
        '{"id": "j2", "type": "conversion", "date": "2026-02-10", "amount": {"a": 1, "a": 2}}',
        ["events.jsonl:2: duplicate key 'a'"],
    ),
    "a huge quantity": (
        '{"id": "j2", "type": "purchase", "date": "2026-02-10", "item": "M",'
        ' "quantity": 1e30, "unit_cost": 1}',
        ["events.jsonl:2: event j2: quantity: too large, got 1000000000000000000000000000000"],
    ),
    "an id with a trailing space": (
        '{"id": "j2 ", "type": "conversion", "date": "2026-02-10", "amount": "1"}',
        ["events.jsonl:2: event j2 : id: expected an id: no white space at either end"],
    ),
}


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_bad_json_line_is_refused_naming_line_and_field(
    case: str, book_db: Path, tmp_path: Path
) -> None:
    line, expected = JSON_CASES[case]
    lines = tmp_path / "events.jsonl"
    lines.write_text(f"{GOOD_LINE}\n{line}\n")
    message = refused_by_cli(book_db, "post", "-f", str(lines))
    for part in expected:
        assert part.replace("events.jsonl", str(lines)) in message, (part, message)
    # from standard input the line is named the same way
    message = refused_by_cli(book_db, "post", "-f", "-", input=f"{GOOD_LINE}\n{line}\n")
    assert expected[0].replace("events.jsonl", "<stdin>") in message


def test_every_bad_line_is_reported_at_once(book_db: Path) -> None:
    text = "\n".join(
        [GOOD_LINE, JSON_CASES["unknown item"][0], "", JSON_CASES["malformed JSON"][0]]
    )
    message = refused_by_cli(book_db, "post", "-f", "-", input=text)
    assert "<stdin>:2: event j2: item: unknown item 'NOPE'" in message
    assert "<stdin>:4: malformed JSON" in message


def test_a_refused_third_event_keeps_the_first_two_out(book_db: Path) -> None:
    text = "\n".join(
        [
            GOOD_LINE,
            GOOD_LINE.replace("j1", "j2"),
            '{"id": "j3", "type": "reversal", "date": "2026-02-11", "reverses": "nowhere"}',
        ]
    )
    message = refused_by_cli(book_db, "post", "-f", "-", input=text)
    assert "event j3: reverses unknown event 'nowhere'" in message


def test_not_utf8_files_are_refused(book_db: Path, tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match=r"bin\.yaml: not UTF-8 text"):
        read_scenario(binary)
    assert f"{binary}: not UTF-8 text" in refused_by_cli(book_db, "import", str(binary))
    assert f"{binary}:1: not UTF-8 text" in refused_by_cli(book_db, "post", "-f", str(binary))
    result = CliRunner().invoke(app, ["post", "-f", "-", "--db", str(book_db)], input=b"\xff\n")
    assert result.exit_code == 2 and "<stdin>:1: not UTF-8 text" in result.stderr
    result = CliRunner().invoke(app, ["run", str(binary)])
    assert result.exit_code == 2 and f"{binary}: not UTF-8 text" in result.stderr


# ---------------------------------------------------------------- ids given by position


UNNAMED = BASE.split("events:")[0] + (
    "events:\n"
    '  - {id: plant:2, date: 2026-01-05, type: conversion, amount: "1.00"}\n'
    '  - {date: 2026-01-06, type: conversion, amount: "2.00"}\n'
    '  - {id: e2, date: 2026-01-07, type: conversion, amount: "3.00"}\n'
)


def test_events_without_ids_are_named_by_file_stem_and_position() -> None:
    text = UNNAMED.replace("id: plant:2", "id: p1")
    sc = parse_scenario(text, "some/dir/plant.yaml")
    assert [e.id for e in sc.events] == ["p1", "plant:2", "e2"]
    unnamed = line_of(text, 'amount: "2.00"')
    assert sc.sources["plant:2"] == f"some/dir/plant.yaml:{unnamed}"
    assert [e.id for e in parse_scenario(text).events] == ["p1", "<scenario>:2", "e2"]
    # an explicit id that really collides with a default one, with other content: refused
    message = problems_of(UNNAMED, "x/plant.yaml")
    first, second = line_of(UNNAMED, 'amount: "1.00"'), line_of(UNNAMED, 'amount: "2.00"')
    assert (
        f"x/plant.yaml:{second}: event plant:2: id already used at x/plant.yaml:{first} "
        "by an event with different content"
    ) in message


def test_an_explicit_id_never_swallows_an_unnamed_event() -> None:
    text = UNNAMED.replace("id: plant:2", "id: p1")
    sc = parse_scenario(text, "plant.yaml")
    book = run_scenario(sc)
    assert book.balances[(m.Account.CONVERSION_CONTROL, "")] == Decimal("6.00")  # all three


def test_the_same_event_twice_in_a_file_is_applied_once() -> None:
    twice = BASE + EVENT + EVENT
    sc = parse_scenario(twice, "twice.yaml")
    assert [e.id for e in sc.events].count("x1") == 2
    assert sc.sources["x1"] == f"twice.yaml:{line_of(twice, 'id: x1')}"
    assert run_scenario(sc).quantity("M") == 100 - 30 + 5


def test_unnamed_events_of_two_files_are_both_imported(book_db: Path, tmp_path: Path) -> None:
    master = BASE.split("events:")[0]
    event = "  - {date: 2026-02-02, type: purchase, item: M, quantity: 5, unit_cost: 2}\n"
    for name in ("monday", "tuesday"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(master + "events:\n" + event)
        result = CliRunner().invoke(app, ["import", str(path), "--db", str(book_db)])
        assert result.exit_code == 0, result.stderr
        assert "1 event(s) applied, 0 already recorded" in result.stdout
    store = Store(str(book_db))
    try:
        assert store.load().quantity("M") == 100 - 30 + 5 + 5
        assert {"monday:1", "tuesday:1"} <= {e.event for e in store.entries()}
    finally:
        store.close()


def test_a_default_id_is_checked_like_a_given_one(book_db: Path) -> None:
    args = ["post", "--type", "conversion", "--date", "2026-02-02", "--amount", "1.00"]
    message = refused_by_cli(book_db, *args, "--id", "x1 ")
    assert "command line: event x1 : id: expected an id: no white space at either end" in message
    message = refused_by_cli(book_db, *args, "--id", "x" * 201)
    assert "id: String should have at most 200 characters" in message


def test_where_keeps_the_class_of_the_error() -> None:
    sc = parse_scenario(BASE, "base.yaml")
    error = ConflictError("event c1: id already recorded with different content")
    error.event_id = "c1"
    located = sc.where(error)
    assert isinstance(located, ConflictError)
    assert located.event_id == "c1"
    assert str(located) == f"base.yaml:{line_of(BASE, 'id: c1')}: {error}"


# ---------------------------------------------------------------- the last period, large figures


def test_period_helpers_reach_the_last_month() -> None:
    assert m.period_bounds("9999-12") == (dt.date(9999, 12, 1), dt.date(9999, 12, 31))
    assert m.period_bounds("2024-02") == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    assert m.next_period("2026-12") == "2027-01"
    assert m.next_period("2026-01") == "2026-02"
    beyond = m.next_period("9999-12")  # no such period: equal to none, and no crash
    assert beyond == "10000-01"
    with pytest.raises(ValueError):
        m.period_bounds(beyond)
    for bad in ("2026-13", "2026-00", "2026", "x-y"):
        with pytest.raises(ValueError):
            m.period_bounds(bad)
        with pytest.raises(ValueError):
            m.next_period(bad)


def test_the_last_period_can_be_closed() -> None:
    text = BASE.split("events:")[0] + (
        "events:\n"
        "  - {id: last, date: 9999-12-05, type: purchase, item: M, quantity: 1, unit_cost: 2}\n"
        "  - {id: close-end, date: 9999-12-31, type: close, period: 9999-12}\n"
    )
    book = run_scenario(parse_scenario(text, "end.yaml"))
    assert book.closed["9999-12"].close_event == "close-end"
    # afterwards: refused by the book's rules, never a crash
    with pytest.raises(PostingError, match="9999-12, which is closed"):
        book.post(m.Conversion("late", dt.date(9999, 12, 31), Decimal(1)))
    with pytest.raises(PostingError, match="again: dated 9999-12-31 in period 9999-12, which"):
        book.post(m.Close("again", dt.date(9999, 12, 31), "9999-12"))


def test_reports_never_crash_on_large_figures() -> None:
    assert money(Decimal("1e30"), "USD") == "1" + "0" * 30 + ".00"
    assert money(Decimal("-123456789012345678901234567.895"), "USD") == (
        "-123456789012345678901234567.90"
    )
    assert money(Decimal("-0.001"), "USD") == "0.00"
    assert money(Decimal("12.5"), "JPY") == "12"


def test_an_element_named_with_a_colon_is_refused() -> None:
    """A colon separates the parts of the keys an element is named in: labor:night made the
    hours split read work center LATHE:labor and element night, and vanish."""
    text = """
book: {name: O, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {"labor:night": "2.00"}}}
work_centers:
  - {id: LATHE, rates: {"labor:night": "30.00"}}
events:
  - {id: l1, date: 2026-01-31, type: conversion, amount: "800.00", element: "a:b"}
"""
    with pytest.raises(InputError) as refused:
        parse_scenario(text, "colon.yaml")
    problems = "\n".join(refused.value.problems)
    assert "colon.yaml:5: item F: standard_cost.conversion.labor:night: expected an element's" in (
        problems
    )
    assert "colon.yaml:7: work center LATHE: rates.labor:night: expected an element's" in problems


def test_a_period_of_year_0000_is_refused_in_words() -> None:
    """A date has no year 0: a close of 0000-01 raised ValueError (over HTTP, a 500)."""
    text = """
book: {name: O, currency: USD}
items:
  - {id: M, kind: material, standard_cost: "1.00"}
events:
  - {id: x, date: 2026-01-31, type: close, period: "0000-01"}
"""
    with pytest.raises(InputError) as refused:
        parse_scenario(text, "zero.yaml")
    assert "period: expected a period YYYY-MM, got '0000-01'" in "\n".join(refused.value.problems)
    assert parse_scenario(text.replace("0000-01", "0001-01"), "one.yaml").events


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("quantity", "1_000", "expected a decimal number such as \"12.50\", got '1_000'"),
        ("quantity", "\uff11\uff10", "expected a decimal number such as \"12.50\", got '１０'"),
        ("quantity", "\u0661\u0660", "expected a decimal number such as \"12.50\", got '١٠'"),
        (
            "date",
            "\uff12\uff10\uff12\uff16-01-05",
            "expected a date YYYY-MM-DD, got '２０２６-01-05'",
        ),
        (
            "id",
            "po\u200b-3",
            r"no control, bidirectional or invisible characters, got 'po\u200b-3'",
        ),
        ("id", "po\u00ad3", r"got 'po\xad3'"),
        ("id", "\ufeffpo3", r"got '\ufeffpo3'"),
        ("id", "po\u20603", r"got 'po\u20603'"),
        ("id", "po3\ufe0f", "invisible characters"),  # a variation selector
        ("id", "po\U000e00413", "invisible characters"),  # a tag
        ("id", "po\u31643", "invisible characters"),  # a Hangul filler
        # decomposed: an e and a combining acute accent show as the é of another id
        (
            "id",
            "po-cafe\u0301",
            r"composed form (NFC): a letter and a combining accent look "
            r"like the accented letter, another id; got 'po-cafe\u0301', "
            r"composed 'po-caf\xe9'",
        ),
    ],
)
def test_look_alike_numbers_dates_and_ids_are_refused(
    field: str, value: str, expected: str
) -> None:
    """What ``Decimal`` reads but no other program does (underscores, digits of other
    scripts), and ids that display as another id (an invisible character in them) are
    refused, naming the field: any text, as CSV, JSON and quoted YAML give it (a plain YAML
    number may have underscores, as YAML reads 1_000)."""
    event = {
        "id": "x",
        "date": "2026-01-05",
        "type": "purchase",
        "item": "M",
        "quantity": "10",
        "unit_cost": "1.00",
        field: value,
    }
    fields = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in event.items())
    text = BASE + "  - {" + fields + "}\n"
    with pytest.raises(InputError) as refused:
        parse_scenario(text, "look.yaml")
    problems = "\n".join(refused.value.problems)
    assert f"{field}: expected" in problems and expected in problems, problems


def test_messages_show_values_as_written_and_long_ids_by_their_start() -> None:
    """A tiny quantity as a decimal (not 1E-8), a JSON null as null (not NoneType), an id of
    5,000 characters by its start and length (not the whole of it, in every message)."""
    long = "x" * 5000
    cases = [
        ('quantity: "0.00000001"', "quantity: 0.00000001 has more than 6 decimals"),
        ("quantity: null", "quantity: expected a decimal number, got null"),
        (f"id: {long}", f"event {'x' * 79}… (5,000 characters): id: String should have at most"),
    ]
    for field, expected in cases:
        name = field.split(":")[0]
        event = (
            "  - {id: x, date: 2026-01-05, type: purchase, item: M, quantity: 10, unit_cost: 1}\n"
        )
        event = event.replace(f"{name}: {'x' if name == 'id' else '10'}", field)
        with pytest.raises(InputError) as refused:
            parse_scenario(BASE + event, "shown.yaml")
        problems = "\n".join(refused.value.problems)
        assert expected in problems, problems
        assert long not in problems


def test_a_json_array_of_events_is_pointed_to_the_stream_formats(tmp_path: Path) -> None:
    """What an API user tries first: the events as a JSON array (read as YAML, a list)."""
    path = tmp_path / "events.json"
    path.write_text('[{"id": "p1", "date": "2026-01-05", "type": "purchase"}]', encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read_scenario(path)
    assert "a list, not a scenario" in refused.value.problems[0]
    assert "JSON lines (.jsonl: one event object per line)" in refused.value.problems[0]
