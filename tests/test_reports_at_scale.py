"""Reports on big books (issue 5, performance): the summary reads the journal's figures kept per
period and kind instead of the journal; big tables are drawn without Rich's layout, the same
text where Rich would draw them at their natural width."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from tests.helpers import EXAMPLE_NAMES, EXAMPLES, downgrade

from backflush.domain.journal import KindFigures, entry_kind, summarize
from backflush.formats.scenario import read_scenario
from backflush.reports import plain, tables
from backflush.reports.accuracy import accuracy_table, bom_accuracy
from backflush.reports.analysis import margin_table, variance_analysis_table
from backflush.reports.close import aging, aging_table
from backflush.reports.flags import flags_table, red_flags
from backflush.reports.standards import rollup, rollup_table
from backflush.reports.statements import statements_table
from backflush.reports.throughput import throughput_table
from backflush.run import run_scenario
from backflush.store.repository import Store


def test_entry_kind_is_the_first_word_of_the_memo() -> None:
    assert entry_kind("completion 20 W") == "completion"
    assert entry_kind("close 2026-01: dispose variances (cogs)") == "close"
    assert entry_kind("reopen: x") == "reopen"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_the_store_keeps_the_journal_figures_of_its_entries(tmp_path: Path, name: str) -> None:
    scenario = read_scenario(EXAMPLES / f"{name}.yaml")
    store = Store(str(tmp_path / "book.db"))
    half = len(scenario.events) // 2  # two writes: the second adds to the figures of the first
    store.import_scenario(scenario.settings, scenario.master, scenario.events[:half])
    store.post(scenario.events[half:])
    book, figures, count = store.summary()
    entries = store.entries()
    assert figures == summarize(entries) == summarize(run_scenario(scenario).entries())
    assert count == store.event_count() >= len(scenario.events)
    assert sum(f.entries for f in figures.values()) == len(entries)
    assert sum(f.lines for f in figures.values()) == sum(len(e.lines) for e in entries)
    text = Console(file=io.StringIO(), width=200)
    text.print(tables.journal_summary(book, figures))
    memory = Console(file=io.StringIO(), width=200)
    memory.print(tables.journal_summary(book, entries))
    assert text.file.getvalue() == memory.file.getvalue()  # type: ignore[attr-defined]
    store.close()


def test_the_migration_makes_the_figures_of_a_journal_written_before_it(tmp_path: Path) -> None:
    scenario = read_scenario(EXAMPLES / "northshore.yaml")
    store = Store(str(tmp_path / "book.db"))
    store.import_scenario(scenario.settings, scenario.master, scenario.events)
    want = summarize(store.entries())
    downgrade(store, "0004")
    assert not sa.inspect(store.engine).has_table("journal_summary")
    store.migrate()
    assert store.summary()[1] == want
    purchases = [e for e in store.entries("2026-01") if e.memo.startswith("purchase ")]
    assert want[("2026-01", "purchase")] == KindFigures(
        len(purchases),
        sum(len(e.lines) for e in purchases),
        sum(line.debit for e in purchases for line in e.lines),
    )
    store.close()


def _rendered(table: Table, width: int) -> str:
    console = Console(file=io.StringIO(), width=width)
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def _drawn(table: Table, width: int) -> str:
    console = Console(file=io.StringIO(), width=width)
    plain.print_table(console, table)
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


YEAR_END = dt.date(2026, 12, 31)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_tables_drawn_fast_are_what_rich_prints(name: str) -> None:
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    makers = [
        tables.trial_balance,
        tables.valuation_table,
        tables.variances_table,
        tables.exceptions_table,
        tables.orders_table,
        tables.nrv_table,
        throughput_table,
        statements_table,
        lambda b: tables.journal_table(b, b.entries()),
        lambda b: flags_table(red_flags(b)),  # cells of two lines
        variance_analysis_table,
        margin_table,  # no vertical rules, collapsed padding
        lambda b: accuracy_table(bom_accuracy(b, b.periods()[0])),
        lambda b: aging_table(aging(b, YEAR_END, every=True), YEAR_END),
        lambda b: rollup_table(YEAR_END, rollup(b.standards, YEAR_END), b.settings.currency, None),
    ]
    fast = 0
    for make in makers:
        for width in (80, 250):
            table = make(book)
            assert _drawn(table, width) == _rendered(table, width)
            fast += plain.table_lines(table) is not None
    assert fast == 2 * len(makers)  # every report table can be drawn fast


def test_a_large_table_is_drawn_whole_one_line_per_row() -> None:
    table = Table(title="Journal", title_justify="left")
    table.add_column("event")
    table.add_column("memo")
    table.add_column("amount", justify="right")
    for n in range(plain.LARGE + 1):
        table.add_row(f"e{n}", "a memo far too long to fit in twenty columns " * 2, f"{n:,}.00")
        table.add_section()
    text = _drawn(table, 20).splitlines()
    assert text[0].startswith("Journal") and text[2].startswith("┃ event ┃ memo ")
    body = text[4:-1]
    assert len(body) == 2 * (plain.LARGE + 1) - 1  # rows and the lines between them
    assert body[0].endswith("│     0.00 │") and body[-1].endswith("│ 1,000.00 │")
    assert text[-1].startswith("└") and len({len(line) for line in text[1:]}) == 1


def test_a_large_table_with_cells_of_two_lines_draws_each_line() -> None:
    table = Table(title="Red flags", title_justify="left")
    table.add_column("subject")
    table.add_column("figure vs threshold")
    for n in range(plain.LARGE + 1):
        table.add_row(f"C{n:04}", f"{n}.0%\nvs > 5%")
    text = _drawn(table, 20).splitlines()
    body = text[4:-1]
    assert len(body) == 2 * (plain.LARGE + 1)  # two lines a row, nothing between rows
    assert body[:2] == ["│ C0000   │ 0.0%                │", "│         │ vs > 5%             │"]
    assert len({len(line) for line in text[1:]}) == 1
