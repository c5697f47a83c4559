"""Validation at the edge (DESIGN §5): every bad input is refused with a message that says where
(file:line of the YAML mapping, line of a JSON-lines file, or the event id), which field, and what
was expected; and when it goes through the store, nothing is written."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backflush.cli import app
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats.inputs import InputError
from backflush.formats.scenario import Scenario, parse_scenario
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
        "item: F",
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
        "item: F",
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
        ["item K: missing standard: a material needs standard_cost"],
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
        "item: F",
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
        lambda text: text + "routings: []\n",
        None,
        ["bad.yaml: unknown section(s) routings; expected book, items, boms, events"],
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
        "item: F",
        ["BOM of F: line 2: scrap: expected a factor from 0 up to 1 (0.02 = 2%), got 1.5"],
    ),
    "scrap factor of one": (
        replace('scrap: "0.05"', "scrap: 1"),
        "item: F",
        ["line 2: scrap: expected a factor from 0 up to 1", "got 1"],
    ),
    "negative scrap factor": (
        replace('scrap: "0.05"', 'scrap: "-0.05"'),
        "item: F",
        ["line 2: scrap: expected a factor from 0 up to 1", "got -0.05"],
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
