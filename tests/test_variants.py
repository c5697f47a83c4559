"""The same events under every trigger policy, side by side (issue 5, item 2)."""

from __future__ import annotations

import json
from decimal import Decimal

from typer.testing import CliRunner

from backflush.cli import app
from backflush.domain.model import Policy
from backflush.formats.scenario import read_scenario
from backflush.reports.variants import compare_variants, explain
from helpers import EXAMPLES

D = Decimal


def test_northshore_sells_everything_so_only_unposted_price_differences_move_income() -> None:
    """Two months, every router sold: no inventory under any policy. The variants without a
    purchase trigger never post the 71,000 unfavorable price difference (reported apart), so
    their income is that much higher; every other variant agrees with sequential costing."""
    variants = compare_variants(read_scenario(EXAMPLES / "northshore.yaml"))
    assert all(not v.refused for v in variants)
    seen = {v.policy: v for v in variants}
    base = seen[Policy.SEQUENTIAL]
    assert base.sales == D("11000000") and base.cogs == D("8220000")
    for v in variants:
        assert v.inventory == 0 and v.off_book == 0 and v.sales == base.sales
        assert v.income - base.income == v.unrecorded_price
        assert v.unrecorded_price == (
            D("71000") if v.policy in (Policy.COMPLETION, Policy.SALE) else 0
        )
    # Fewer triggers, fewer journal lines: the point of backflush.
    lines = {p.value: v.lines for p, v in seen.items()}
    assert lines == {
        "sequential": 67,
        "purchase+completion": 61,
        "purchase+sale": 57,
        "count": 54,
        "cogs-first": 50,
        "completion": 37,
        "sale": 33,
    }
    said = explain(variants, "USD")
    assert said[2] == (
        "completion: inventory 0.00 against sequential; income 71000.00; of which 71000.00 "
        "is a purchase price variance it does not post"
    )


def test_stock_off_the_books_explains_each_backflush_variant_against_sequential() -> None:
    """philippine_v1 ends with stock: sequential costing holds 13,480.00 of it at standard;
    each backflush variant holds part of it off the books, and on + off = 13,480.00."""
    seen = {v.policy: v for v in compare_variants(read_scenario(EXAMPLES / "philippine_v1.yaml"))}
    assert seen[Policy.SEQUENTIAL].inventory == D("13480")
    expected_off = {
        Policy.PURCHASE_COMPLETION: D(0),
        Policy.PURCHASE_SALE: D("1500"),  # conversion of unsold goods, costed at sale
        Policy.COMPLETION: D("10000"),  # material not recognised until used
        Policy.SALE: D("13480"),  # nothing on the books until sold
    }
    for policy, off in expected_off.items():
        assert seen[policy].off_book == off, policy
        assert seen[policy].inventory + off == D("13480"), policy


def test_variants_command_prints_json_and_tables() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["variants", str(EXAMPLES / "philippine_v1.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    rows = {row["policy"]: row for row in doc["variants"]}
    assert rows["sale"]["off_book"] == "13480.00" and rows["sale"]["inventory"] == "0.00"
    assert doc["against_sequential"][1] == (
        "purchase+sale: inventory -1500.00 against sequential; 1500.00 of it is stock at "
        "standard held off the books; income -1500.00"
    )
    table = runner.invoke(app, ["variants", str(EXAMPLES / "philippine_v1.yaml")])
    assert table.exit_code == 0
    assert "cogs-first: inventory 0.00 against sequential; income 0.00" in table.output
