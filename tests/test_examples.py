"""The published worked examples give exactly their known answers through the engine."""

from __future__ import annotations

import pytest

from backflush.formats.scenario import read_scenario
from backflush.reports.document import document
from backflush.run import run_scenario
from helpers import EXAMPLE_NAMES, EXAMPLES, assert_matches_expected


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_gives_known_answer(name: str) -> None:
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    assert_matches_expected(name, document(book))


def test_northshore_january_close_matches_the_seed_case() -> None:
    book = run_scenario(read_scenario(EXAMPLES / "northshore.yaml"))
    january = book.closed["2026-01"]
    at_close = dict(january.balances)
    # 2,000 routers at 40.00 left; 98,000 sold at 40.00 plus 20,000 unfavorable variances.
    assert at_close["finished_goods"] == 80000
    assert at_close["cogs"] == 3940000
    assert "raw_in_process" not in at_close


def test_every_entry_balances_in_every_example() -> None:
    for name in EXAMPLE_NAMES:
        book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
        for entry in book.journal:
            assert sum(line.amount for line in entry.lines) == 0, (name, entry)
