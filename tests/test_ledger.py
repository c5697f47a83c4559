"""The journal exported as a beancount ledger, checked by the real beancount (issue 5, item 6)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from typer.testing import CliRunner

from backflush.cli import app
from backflush.formats.beancount import account_name, component, ledger
from backflush.formats.scenario import read_scenario
from backflush.run import run_scenario
from backflush.store.repository import Store
from helpers import EXAMPLE_NAMES, EXAMPLES


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_loads_in_beancount_with_the_books_balances(name: str) -> None:
    scenario = read_scenario(EXAMPLES / f"{name}.yaml")
    book = run_scenario(scenario)
    entries, errors, _ = loader.load_string(ledger(scenario.settings, enumerate(book.entries(), 1)))
    assert errors == []
    totals: dict[str, Decimal] = {}
    for entry in entries:
        if isinstance(entry, data.Transaction):
            assert entry.meta["event"] in book.recorded
            for posting in entry.postings:
                assert posting.units is not None and posting.units.number is not None
                totals[posting.account] = totals.get(posting.account, Decimal(0)) + (
                    posting.units.number
                )
    want = {account_name(a, e): v for (a, e), v in book.balances.items()}
    assert {k: v for k, v in totals.items() if v} == {k: v for k, v in want.items() if v}


def test_bean_check_accepts_the_export_of_a_book_and_refuses_a_broken_one(
    tmp_path: Path,
) -> None:
    scenario = read_scenario(EXAMPLES / "widgets_prorate.yaml")
    db = tmp_path / "w.db"
    Store(str(db)).import_scenario(scenario.settings, scenario.master, scenario.events)
    out = tmp_path / "w.beancount"
    result = CliRunner().invoke(app, ["ledger", "--db", str(db), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "10 entries written" in result.output
    bean_check = Path(sys.executable).with_name("bean-check")
    assert subprocess.run([bean_check, out], capture_output=True).returncode == 0
    text = out.read_text()
    assert '  event: "p1"' in text and '    item: "W"' in text
    # An entry that does not balance: bean-check says so (the check can fail).
    broken = tmp_path / "broken.beancount"
    broken.write_text(
        text.replace(
            "Expenses:Variances:PurchasePrice  0.07 USD",
            "Expenses:Variances:PurchasePrice  0.08 USD",
        )
    )
    checked = subprocess.run([bean_check, broken], capture_output=True, text=True)
    assert checked.returncode != 0 and "does not balance" in checked.stderr


def test_elements_become_valid_account_components() -> None:
    assert component("labor") == "Labor"
    assert component("variance:conversion:labor") == "Variance-Conversion-Labor"
    assert component("3d print") == "X3d-Print"
    assert component("") == "X"
