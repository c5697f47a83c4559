"""Red flags (issue 5): each flag tripped by a small scenario with its figures worked by hand,
and the same scenario nudged just under the threshold raising nothing; the worked examples;
random event streams; the command line."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import event as hypothesis_event
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from backflush.book import Book
from backflush.cli import app
from backflush.domain.model import next_period
from backflush.domain.money import CONTEXT, ZERO
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.reports.flags import (
    KINDS,
    Flag,
    Thresholds,
    parse_thresholds,
    red_flags,
    standard_cogs,
)
from backflush.reports.statements import statements
from backflush.run import run_scenario
from helpers import EXAMPLE_NAMES, EXAMPLES
from test_properties import Stream, budget, plants

D = Decimal

HEAD = """
book: {name: Flags, currency: USD, triggers: purchase+completion, shortage: queue}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: N, kind: material, standard_cost: "1.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "%(labor)s"}}}
boms:
  - {item: F, lines: [{component: M, quantity: 1}]}
%(boms)s
events:
"""


def book_of(events: str, *, labor: str = "0", boms: str = "") -> Book:
    text = HEAD % {"labor": labor, "boms": boms} + events
    return run_scenario(parse_scenario(text, "test"))


def flags_of(book: Book, kind: str, thresholds: Thresholds | None = None) -> list[Flag]:
    return [f for f in red_flags(book, thresholds) if f.kind == kind]


def ratio(part: str | Decimal, whole: str | Decimal) -> Decimal:
    """A ratio as the flags work it: 10 places, half even."""
    return CONTEXT.divide(D(part), D(whole)).quantize(D("1e-10"), context=CONTEXT)


# ---------------------------------------------------------------- scrap


def scrap_book(scrapped: tuple[int, int, int]) -> Book:
    """M in three months: 1000 bought, 1000 - s backflushed by completions, s scrapped."""
    lines = []
    for month, lost in zip((1, 2, 3), scrapped, strict=True):
        day = f"2026-{month:02d}"
        lines += [
            f"  - {{id: p{month}, type: purchase, date: {day}-02, item: M, quantity: 1000,"
            ' unit_cost: "2.00"}',
            f"  - {{id: c{month}, type: completion, date: {day}-10, item: F,"
            f" quantity: {1000 - lost}}}",
            f"  - {{id: s{month}, type: scrap, date: {day}-12, item: M, quantity: {lost}}}",
        ]
    return book_of("\n".join(lines) + "\n")


def test_scrap_rate_spread_over_two_points_is_a_flag() -> None:
    """Rates 2 %, 2 %, 5 %: spread 3 points > 2; mean 3 %, standard deviation 1.414 %,
    coefficient of variation 0.471 (not over 0.5)."""
    (flag,) = flags_of(scrap_book((20, 20, 50)), "scrap_unstable")
    assert (flag.subject, flag.periods) == ("M", ("2026-01", "2026-02", "2026-03"))
    assert (flag.value, flag.comparison, flag.threshold) == (D("0.03"), ">", D("0.02"))
    assert flag.figures["rate 2026-01"] == flag.figures["rate 2026-02"] == D("0.02")
    assert flag.figures["rate 2026-03"] == D("0.05")
    assert flag.figures["mean"] == D("0.03")
    assert flag.figures["cv"] == ratio(D("0.0002").sqrt(CONTEXT), "0.03")  # 0.4714045208
    assert flag.figures["cv"] == D("0.4714045208")
    assert flag.value_text == "3 pp" and flag.threshold_text == "> 2 pp"
    assert "M: scrap rate moves 3 pp" in flag.message


def test_scrap_rate_spread_of_two_points_is_no_flag() -> None:
    assert flags_of(scrap_book((20, 20, 40)), "scrap_unstable") == []


def test_scrap_rate_coefficient_of_variation_over_half_is_a_flag() -> None:
    """Rates 1 %, 1 %, 2.7 %: spread 1.7 points (no flag); for a, a, b the coefficient of
    variation is sqrt(2) x (b - a) / (2a + b) = 1.41421 x 0.017 / 0.047 = 0.5115 > 0.5."""
    (flag,) = flags_of(scrap_book((10, 10, 27)), "scrap_unstable")
    assert flag.subject == "M" and flag.threshold == D("0.5")
    assert flag.figures["spread"] == D("0.017")
    assert flag.value == flag.figures["cv"]
    want = D(2).sqrt(CONTEXT) * D("0.017") / D("0.047")
    assert abs(flag.value - want) < D("1e-8")
    assert flag.value.quantize(D("0.0001")) == D("0.5115")


def test_scrap_rate_coefficient_of_variation_under_half_is_no_flag() -> None:
    """1 %, 1 %, 2.6 %: 1.41421 x 0.016 / 0.046 = 0.4919."""
    assert flags_of(scrap_book((10, 10, 26)), "scrap_unstable") == []


def test_scrap_rates_need_three_periods() -> None:
    book = book_of(
        """  - {id: p1, type: purchase, date: 2026-01-02, item: M, quantity: 1000, unit_cost: "2"}
  - {id: c1, type: completion, date: 2026-01-10, item: F, quantity: 900}
  - {id: s1, type: scrap, date: 2026-02-12, item: M, quantity: 100}
"""
    )  # January 0 %, February 100 %: a spread of 100 points over two periods only
    assert flags_of(book, "scrap_unstable") == []
    spread, cv = flags_of(book, "scrap_unstable", Thresholds(scrap_periods=2))
    assert spread.value == 1 and spread.figures["rate 2026-02"] == 1
    assert (cv.value, cv.figures["mean"]) == (1, D("0.5"))  # deviations of 0.5 on a mean of 0.5


# ---------------------------------------------------------------- BOM changes


def bom_versions(third: str) -> str:
    return "\n".join(
        f"  - {{item: F, effective_from: {day}, lines: [{{component: M, quantity: {n}}}]}}"
        for n, day in enumerate(("2026-01-01", "2026-02-01", third), 2)
    )


def test_three_bom_versions_within_ninety_days_are_a_flag() -> None:
    """Versions of 1 January, 1 February and 1 April: 90 days apart (the first, undated
    version not counted)."""
    (flag,) = flags_of(book_of("", boms=bom_versions("2026-04-01")), "bom_changes")
    assert (flag.subject, flag.periods) == ("F", ("2026-01", "2026-02", "2026-04"))
    assert (flag.value, flag.threshold) == (3, 2)
    assert flag.figures == {"versions": 3, "days": 90}
    assert flag.value_text == "3 versions in 90 days"
    assert "between 2026-01-01 and 2026-04-01" in flag.message


def test_three_bom_versions_over_ninety_one_days_are_no_flag() -> None:
    assert flags_of(book_of("", boms=bom_versions("2026-04-02")), "bom_changes") == []


# ---------------------------------------------------------------- variances


def large_book(unit_cost: str) -> Book:
    """200 M bought above the standard of 2.00; 100 F made and sold: standard COGS 200.00."""
    return book_of(
        f"""  - {{id: p1, type: purchase, date: 2026-01-02, item: M, quantity: 200,
     unit_cost: "{unit_cost}"}}
  - {{id: c1, type: completion, date: 2026-01-10, item: F, quantity: 100}}
  - {{id: s1, type: sale, date: 2026-01-11, item: F, quantity: 100, unit_price: "3.00"}}
"""
    )


def test_variance_over_five_percent_of_standard_cogs_is_a_flag() -> None:
    """Purchase price variance 200 x 0.0501 = 10.02 on standard COGS 200.00: 5.01 %."""
    book = large_book("2.0501")
    assert standard_cogs(book, "2026-01") == 200
    (flag,) = flags_of(book, "variance_large")
    assert (flag.subject, flag.periods) == ("purchase_price", ("2026-01",))
    assert (flag.value, flag.threshold) == (D("0.0501"), D("0.05"))
    assert flag.figures == {"variance": D("10.02"), "standard_cogs": 200, "share": D("0.0501")}
    assert "10.02 USD unfavorable, 5% of the standard cost of goods sold" in flag.message
    assert flags_of(book, "standards_drift") == []  # 10.02 on 400.00 bought at standard


def test_variance_of_five_percent_of_standard_cogs_is_no_flag() -> None:
    assert flags_of(large_book("2.05"), "variance_large") == []  # 10.00 on 200.00


def recurring_book(march: str) -> Book:
    return book_of(
        "".join(
            f"  - {{id: p{m}, type: purchase, date: 2026-0{m}-05, item: M, quantity: 100,"
            f' unit_cost: "{cost}"}}\n'
            for m, cost in ((1, "2.01"), (2, "2.02"), (3, march))
        )
    )


def test_variance_of_one_sign_three_months_running_is_a_flag() -> None:
    (flag,) = flags_of(recurring_book("2.01"), "variance_recurring")
    assert (flag.subject, flag.periods) == ("purchase_price", ("2026-01", "2026-02", "2026-03"))
    assert (flag.value, flag.comparison, flag.threshold) == (3, ">=", 3)
    assert flag.figures == {
        "2026-01": D("1.00"),
        "2026-02": D("2.00"),
        "2026-03": D("1.00"),
        "periods": 3,
        "total": D("4.00"),
    }
    assert "unfavorable in 3 consecutive periods" in flag.message


def test_a_sign_change_in_the_third_month_is_no_flag() -> None:
    assert flags_of(recurring_book("1.99"), "variance_recurring") == []
    assert flags_of(recurring_book("2.00"), "variance_recurring") == []  # zero breaks the run


# ---------------------------------------------------------------- inventory against sales


def stock_book(february_sold: str) -> Book:
    """January: 100 F made, 50 sold (FG 100.00, standard COGS 100.00). February: 45 made,
    ``february_sold`` sold."""
    return book_of(
        f"""  - {{id: p1, type: purchase, date: 2026-01-02, item: M, quantity: 100, unit_cost: "2"}}
  - {{id: c1, type: completion, date: 2026-01-10, item: F, quantity: 100}}
  - {{id: s1, type: sale, date: 2026-01-12, item: F, quantity: 50}}
  - {{id: p2, type: purchase, date: 2026-02-02, item: M, quantity: 45, unit_cost: "2"}}
  - {{id: c2, type: completion, date: 2026-02-10, item: F, quantity: 45}}
  - {{id: s2, type: sale, date: 2026-02-12, item: F, quantity: {february_sold}}}
  - {{id: k1, type: close, date: 2026-02-28, period: 2026-01}}
  - {{id: k2, type: close, date: 2026-02-28, period: 2026-02}}
"""
    )


def test_inventory_growing_ten_points_faster_than_sales_is_a_flag() -> None:
    """February sells 44: inventories 100.00 -> 102.00 (+2 %), standard COGS 100.00 -> 88.00
    (-12 %): a gap of 14 points."""
    book = stock_book("44")
    assert statements(book, "2026-02").inventories == 102
    (flag,) = flags_of(book, "inventory_outgrows_sales")
    assert flag.periods == ("2026-01", "2026-02")
    assert (flag.value, flag.threshold) == (D("0.14"), D("0.10"))
    assert flag.figures == {
        "inventory_before": 100,
        "inventory": 102,
        "standard_cogs_before": 100,
        "standard_cogs": 88,
        "inventory_growth": D("0.02"),
        "cogs_growth": D("-0.12"),
        "gap": D("0.14"),
    }
    assert "inventories changed +2% on 2026-01 while sales at standard cost changed -12%" in (
        flag.message
    )


def test_an_open_period_is_not_judged_on_its_partial_sales() -> None:
    book = book_of(
        """  - {id: p1, type: purchase, date: 2026-01-02, item: M, quantity: 100, unit_cost: "2"}
  - {id: c1, type: completion, date: 2026-01-10, item: F, quantity: 100}
  - {id: s1, type: sale, date: 2026-01-12, item: F, quantity: 50}
  - {id: k1, type: close, date: 2026-01-31, period: 2026-01}
  - {id: s2, type: sale, date: 2026-02-02, item: F, quantity: 2}
"""
    )
    assert flags_of(book, "inventory_outgrows_sales") == []  # February is open


def test_inventory_growing_exactly_ten_points_faster_is_no_flag() -> None:
    """February sells 45: inventories flat (0 %), COGS -10 %: a gap of exactly 10 points."""
    assert flags_of(stock_book("45"), "inventory_outgrows_sales") == []


# ---------------------------------------------------------------- completions bunched


def bunched_book(early: int, late: int) -> Book:
    return book_of(
        f"""  - {{id: p1, type: purchase, date: 2026-01-02, item: M, quantity: 100, unit_cost: "2"}}
  - {{id: c1, type: completion, date: 2026-01-10, item: F, quantity: {early}}}
  - {{id: c2, type: completion, date: 2026-01-29, item: F, quantity: {late}}}
"""
    )


def test_completions_over_forty_percent_in_the_last_three_days_are_a_flag() -> None:
    """41 of 100 completed on the 29th (the 29th, 30th and 31st are the last three days)."""
    (flag,) = flags_of(bunched_book(59, 41), "completions_bunched")
    assert (flag.subject, flag.periods) == ("completions", ("2026-01",))
    assert (flag.value, flag.threshold) == (D("0.41"), D("0.40"))
    assert flag.figures == {"completed": 100, "completed_last_days": 41, "share": D("0.41")}
    assert flag.threshold_text == "> 40% in the last 3 days"


def test_completions_of_forty_percent_in_the_last_three_days_are_no_flag() -> None:
    assert flags_of(bunched_book(60, 40), "completions_bunched") == []


# ---------------------------------------------------------------- standards drift


def drift_book(unit_cost: str, labor: str) -> Book:
    """100 M bought (standard 200.00), 100 F made applying labor 1.00 each (100.00)."""
    return book_of(
        f"""  - {{id: p1, type: purchase, date: 2026-01-02, item: M, quantity: 100,
     unit_cost: "{unit_cost}"}}
  - {{id: c1, type: completion, date: 2026-01-10, item: F, quantity: 100}}
  - {{id: l1, type: conversion, date: 2026-01-31, amount: "{labor}", element: labor}}
""",
        labor="1.00",
    )


def test_one_material_drifting_behind_the_others_is_a_flag() -> None:
    """M costs 10 % over its standard (20.00 on 200.00); N, bought for 800.00, at standard:
    the book's purchases are off 2 % (no flag), M alone 10 %."""
    book = book_of(
        """  - {id: p1, type: purchase, date: 2026-01-02, item: M, quantity: 100, unit_cost: "2.20"}
  - {id: p2, type: purchase, date: 2026-01-03, item: N, quantity: 800, unit_cost: "1.00"}
"""
    )
    (flag,) = flags_of(book, "standards_drift")
    assert (flag.subject, flag.value, flag.periods) == ("M", D("0.1"), ("2026-01",))
    assert flag.figures == {
        "price_variance": D("20.00"),
        "purchases_at_standard": 200,
        "share": D("0.1"),
    }
    assert "M costs +10% against its standard" in flag.message


def test_standards_drifting_over_five_percent_from_cost_are_flags() -> None:
    """Purchase price variance 10.01 on 200.00 at standard (5.005 %); labor 105.01 actual
    against 100.00 applied (5.01 %)."""
    purchases, conversion = flags_of(drift_book("2.1001", "105.01"), "standards_drift")
    assert (purchases.subject, purchases.value) == ("purchases", D("0.05005"))
    assert purchases.figures == {
        "price_variance": D("10.01"),
        "purchases_at_standard": 200,
        "share": D("0.05005"),
    }
    assert "IAS 2.21" in purchases.message
    assert (conversion.subject, conversion.value, conversion.threshold) == (
        "conversion",
        D("0.0501"),
        D("0.05"),
    )
    assert conversion.figures == {
        "actual": D("105.01"),
        "applied": 100,
        "variance": D("5.01"),
        "share": D("0.0501"),
    }


def test_standards_within_five_percent_of_cost_are_no_flag() -> None:
    assert flags_of(drift_book("2.10", "105.00"), "standards_drift") == []
    assert flags_of(drift_book("1.90", "95.00"), "standards_drift") == []  # favorable too
    (favorable,) = flags_of(drift_book("1.90", "94.99"), "standards_drift")
    assert favorable.value == D("0.0501") and favorable.figures["share"] == D("-0.0501")


# ---------------------------------------------------------------- exceptions


def waiting_book(completions: int, later: str = "") -> Book:
    """Completions of one F each with no M on hand: each waits in the shortage queue."""
    events = "".join(
        f"  - {{id: c{n}, type: completion, date: 2026-01-{n:02d}, item: F, quantity: 1}}\n"
        for n in range(1, completions + 1)
    )
    if later:
        events += (
            f'  - {{id: pn, type: purchase, date: {later}, item: N, quantity: 1, unit_cost: "1"}}\n'
        )
    return book_of(events)


def test_more_than_ten_open_exceptions_are_a_flag() -> None:
    book = waiting_book(11)
    (flag,) = flags_of(book, "exceptions_piling")
    assert (flag.subject, flag.value, flag.threshold) == ("open exceptions", 11, 10)
    assert flag.figures == {"open": 11, "oldest_age_days": 10}  # c1 on the 1st, as of the 11th
    assert flag.periods == ("2026-01",)


def test_ten_open_exceptions_are_no_flag() -> None:
    assert flags_of(waiting_book(10), "exceptions_piling") == []


def test_an_exception_older_than_thirty_days_is_a_flag() -> None:
    """c1 waits since 1 January; N arrives on 1 February: 31 days later."""
    (flag,) = flags_of(waiting_book(1, "2026-02-01"), "exceptions_piling")
    assert (flag.subject, flag.value, flag.threshold) == ("oldest: c1/M", 31, 30)
    assert flag.figures == {"open": 1, "oldest_age_days": 31}
    assert flag.periods == ("2026-02",)
    assert "since 2026-01-01, as of 2026-02-01" in flag.message


def test_an_exception_thirty_days_old_is_no_flag() -> None:
    book = waiting_book(1, "2026-01-31")
    assert flags_of(book, "exceptions_piling") == []
    (flag,) = flags_of(book, "exceptions_piling", Thresholds(exceptions_age_days=29))
    assert flag.value == 30
    later = red_flags(book, as_of=dt.date(2026, 3, 1))  # aged at a date asked for
    assert [(f.kind, f.value) for f in later] == [("exceptions_piling", 59)]


# ---------------------------------------------------------------- thresholds


def test_thresholds_from_name_value_pairs() -> None:
    found = parse_thresholds(["variance_share=3%", "bom_versions=4", " scrap_cv = 0.25 "])
    assert found.variance_share == D("0.03") and found.bom_versions == 4
    assert found.scrap_cv == D("0.25") and found.price_drift == D("0.05")
    with pytest.raises(ValueError, match="unknown threshold 'nope'; valid names: scrap_spread"):
        parse_thresholds(["nope=1"])
    with pytest.raises(ValueError, match=r"bom_versions: '1\.5' is not a whole number"):
        parse_thresholds(["bom_versions=1.5"])
    with pytest.raises(ValueError, match="price_drift: 'x' is not a decimal"):
        parse_thresholds(["price_drift=x"])
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_thresholds(["price_drift"])
    with pytest.raises(ValueError, match="zero or more"):
        parse_thresholds(["price_drift=-1"])
    with pytest.raises(ValueError, match="zero or more"):
        parse_thresholds(["price_drift=NaN"])


# ---------------------------------------------------------------- the worked examples


def summary(flags: list[Flag]) -> list[tuple[str, str, str, Decimal]]:
    return [(f.kind, f.subject, f.period, f.value) for f in flags]


def test_northshore_flags_month_end_completions_and_february_conversion() -> None:
    """Each month's 100,000 routers are reported in one completion on its last day; February's
    conversion overran: 1,277,000 actual against 1,200,000 applied (6.4 %). January's 1 %
    overrun, February's PCB at 12.60 (2.2 % of the 2,860,000 bought at standard) and the
    5,000 PCBs scrapped (one month of scrap only) raise nothing."""
    book = run_scenario(read_scenario(EXAMPLES / "northshore.yaml"))
    assert summary(red_flags(book)) == [
        ("completions_bunched", "completions", "2026-01", 1),
        ("completions_bunched", "completions", "2026-02", 1),
        ("standards_drift", "conversion", "2026-02", ratio("77000", "1200000")),
    ]


def test_widgets_flags_a_conversion_overrun_on_a_small_sale() -> None:
    """January: conversion 326.00 actual against 300.00 applied (26.00, 8.7 %), of which
    efficiency 30.00 (1 hour over at 30.00), on 12 widgets sold at 21.00 (252.00)."""
    book = run_scenario(read_scenario(EXAMPLES / "widgets_prorate.yaml"))
    assert summary(red_flags(book)) == [
        ("variance_large", "conversion", "2026-01", ratio("26", "252")),
        ("variance_large", "conversion_efficiency", "2026-01", ratio("30", "252")),
        ("standards_drift", "conversion", "2026-01", ratio("26", "300")),
    ]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_flag_is_beyond_its_threshold(name: str) -> None:
    book = run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))
    limits = Thresholds()
    for flag in red_flags(book, limits):
        check(book, flag, limits)


# ---------------------------------------------------------------- random streams


def check(book: Book, flag: Flag, limits: Thresholds) -> None:
    """The flag's value is beyond its threshold, the threshold is the one asked for, and the
    value follows from its figures (and they from the book)."""
    assert flag.kind in KINDS
    assert flag.tripped, flag
    figures = flag.figures
    if flag.kind == "scrap_unstable":
        rates = [v for k, v in figures.items() if k.startswith("rate ")]
        assert len(rates) >= limits.scrap_periods and len(rates) == len(flag.periods)
        assert figures["spread"] == max(rates) - min(rates)
        if flag.threshold == limits.scrap_spread and flag.value == figures["spread"]:
            assert flag.value > limits.scrap_spread
        else:
            assert (flag.value, flag.threshold) == (figures["cv"], limits.scrap_cv)
            assert figures["mean"] >= limits.scrap_cv_min_mean
    elif flag.kind == "bom_changes":
        assert flag.value == figures["versions"] > limits.bom_versions
        assert figures["days"] <= limits.bom_window_days
    elif flag.kind == "variance_large":
        (period,) = flag.periods
        assert figures["variance"] == book.period_variances(period)[flag.subject]
        assert figures["standard_cogs"] == standard_cogs(book, period) > 0
        assert flag.value == ratio(abs(figures["variance"]), figures["standard_cogs"])
        assert flag.value > limits.variance_share == flag.threshold
    elif flag.kind == "variance_recurring":
        amounts = [book.period_variances(p)[flag.subject] for p in flag.periods]
        assert all(a > 0 for a in amounts) or all(a < 0 for a in amounts)
        assert [figures[p] for p in flag.periods] == amounts
        assert all(next_period(a) == b for a, b in itertools.pairwise(flag.periods))
        assert flag.value == len(amounts) >= limits.variance_run
    elif flag.kind == "inventory_outgrows_sales":
        before, period = flag.periods
        assert figures["inventory"] == statements(book, period).inventories
        assert figures["inventory_before"] == statements(book, before).inventories > 0
        grew = ratio(
            figures["inventory"] - figures["inventory_before"], figures["inventory_before"]
        )
        sold = ratio(
            figures["standard_cogs"] - figures["standard_cogs_before"],
            figures["standard_cogs_before"],
        )
        assert flag.value == grew - sold > limits.inventory_gap
    elif flag.kind == "completions_bunched":
        assert flag.value == ratio(figures["completed_last_days"], figures["completed"])
        assert flag.value > limits.bunched_share
    elif flag.kind == "standards_drift":
        if "price_variance" in figures:  # the book's purchases, or one material's
            share = ratio(figures["price_variance"], figures["purchases_at_standard"])
            assert flag.threshold == limits.price_drift
        else:
            assert figures["applied"] == figures["actual"] - figures["variance"] > 0
            share = ratio(figures["variance"], figures["applied"])
            assert flag.threshold == limits.conversion_drift
        assert figures["share"] == share and flag.value == abs(share) > flag.threshold
    else:
        assert flag.kind == "exceptions_piling"
        if flag.subject == "open exceptions":
            assert flag.value == figures["open"] > limits.exceptions_open
        else:
            assert flag.value == figures["oldest_age_days"] > limits.exceptions_age_days


def low_thresholds() -> st.SearchStrategy[Thresholds]:
    """Thresholds from zero up to the defaults, so that random books trip flags."""
    share = st.sampled_from([D(0), D("0.001"), D("0.01"), D("0.05"), D("0.4")])
    return st.builds(
        Thresholds,
        scrap_spread=share,
        scrap_cv=share,
        scrap_cv_min_mean=share,
        scrap_periods=st.integers(0, 3),
        bom_versions=st.integers(0, 2),
        bom_window_days=st.integers(0, 120),
        variance_share=share,
        variance_run=st.integers(0, 3),
        inventory_gap=share,
        bunched_share=share,
        bunched_days=st.integers(0, 31),
        price_drift=share,
        conversion_drift=share,
        exceptions_open=st.integers(0, 10),
        exceptions_age_days=st.integers(0, 30),
    )


@given(data=st.data())
@budget(80)
def test_random_books_raise_only_flags_beyond_their_thresholds(data: st.DataObject) -> None:
    plant = data.draw(plants(), label="plant")
    stream = Stream(data, plant, backdating=data.draw(st.booleans(), label="backdating"))
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        event = stream.event()
        if event is not None:
            stream.post(event)
    book = stream.book
    for limits in (Thresholds(), data.draw(low_thresholds(), label="thresholds")):
        found = red_flags(book, limits)
        assert [KINDS.index(f.kind) for f in found] == sorted(KINDS.index(f.kind) for f in found)
        for flag in found:
            hypothesis_event(f"flag {flag.kind}")
            check(book, flag, limits)


# ---------------------------------------------------------------- the command line


@pytest.fixture
def stored(tmp_path: Path) -> str:
    db = str(tmp_path / "flags.db")
    result = CliRunner().invoke(app, ["import", str(EXAMPLES / "northshore.yaml"), "--db", db])
    assert result.exit_code == 0, result.output
    return db


def test_flags_command_prints_the_table(stored: str) -> None:
    result = CliRunner().invoke(app, ["flags", "--db", stored])
    assert result.exit_code == 0, result.output
    assert "Red flags" in result.output
    assert result.output.count("completions_bunched") == 2
    lines = result.output.splitlines()
    row = next(n for n, line in enumerate(lines) if "standards_drift" in line)
    assert "│ conversion  │ 2026-02 │ 6.4%" in lines[row] and "vs > 5% of" in lines[row + 1]


def test_flags_command_json_with_thresholds(stored: str) -> None:
    args = ["flags", "--db", stored, "--json", "-t", "conversion_drift=0.07"]
    result = CliRunner().invoke(app, [*args, "--threshold", "bunched_share=1"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["thresholds"]["conversion_drift"] == "0.07"
    assert found["thresholds"]["bunched_share"] == "1"
    assert found["flags"] == []
    result = CliRunner().invoke(app, ["flags", "--db", stored, "--json"])
    flags = json.loads(result.stdout)["flags"]
    assert [f["kind"] for f in flags] == ["completions_bunched"] * 2 + ["standards_drift"]
    drift = flags[2]
    assert drift["value"] == "0.0641666667" and drift["threshold"] == "0.05"
    assert drift["figures"] == {
        "actual": "1277000",
        "applied": "1200000",
        "variance": "77000",
        "share": "0.0641666667",
    }
    assert drift["periods"] == ["2026-02"] and drift["comparison"] == ">"


def test_the_stored_book_flags_as_the_book_run_in_memory(stored: str) -> None:
    from_file = CliRunner().invoke(
        app, ["flags", "--file", str(EXAMPLES / "northshore.yaml"), "--json"]
    )
    from_db = CliRunner().invoke(app, ["flags", "--db", stored, "--json"])
    assert from_file.exit_code == from_db.exit_code == 0
    assert json.loads(from_file.stdout) == json.loads(from_db.stdout)


def test_flags_command_refuses_an_unknown_threshold(stored: str) -> None:
    result = CliRunner().invoke(app, ["flags", "--db", stored, "-t", "scrap=1"])
    assert result.exit_code == 2
    assert "unknown threshold 'scrap'" in result.output
    assert "exceptions_age_days" in result.output
    result = CliRunner().invoke(app, ["flags", "--db", stored, "-t", "variance_run=many"])
    assert result.exit_code == 2 and "variance_run: 'many' is not a whole number" in result.output


def test_report_what_flags_and_the_flags_sheet(stored: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--db", stored, "--what", "flags"])
    assert result.exit_code == 0 and "standards_drift" in result.output
    folder = tmp_path / "csv"
    result = CliRunner().invoke(app, ["report", "--db", stored, "--csv", str(folder)])
    assert result.exit_code == 0, result.output
    rows = (folder / "flags.csv").read_text().splitlines()
    assert rows[0] == "kind,subject,periods,figure,comparison,threshold,message"
    assert rows[3].startswith("standards_drift,conversion,2026-02,0.0641666667,>,0.05,")
    assert len(rows) == 4


def test_a_book_without_events_raises_no_flag() -> None:
    assert red_flags(book_of("")) == []
    assert standard_cogs(book_of(""), "2026-01") == ZERO
