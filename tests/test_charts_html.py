"""Charts (PNG and SVG) and the self-contained HTML period report, down to a real headless
Chromium (Debian's /usr/bin/chromium, driven by playwright; never a downloaded browser)."""

from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backflush.book import Book
from backflush.cli import app
from backflush.domain.model import Account
from backflush.domain.money import ZERO
from backflush.formats.scenario import parse_scenario, read_scenario
from backflush.reports import charts
from backflush.reports.charts import Chart, chart_bytes, waterfall
from backflush.reports.html import period_report_html
from backflush.reports.statements import statements
from backflush.run import run_scenario
from helpers import EXAMPLE_NAMES, EXAMPLES, ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@functools.cache
def book_of(name: str) -> Book:
    return run_scenario(read_scenario(EXAMPLES / f"{name}.yaml"))


def cli(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------- the figures


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_waterfall_ends_at_the_income_of_the_statement(name: str) -> None:
    book = book_of(name)
    for period in book.periods():
        found = waterfall(book, period)
        s = statements(book, period)
        steps = found.steps()
        assert found.income == s.income
        assert found.sales == s.sales
        assert found.standard_margin + sum((x.amount for x in steps), ZERO) == s.income
        # standard margin - the variances (+ unfavorable) - write-down + prorated = income
        variances = sum((v for _, v in found.variances), ZERO)
        assert (
            found.standard_margin - variances - s.nrv_writedown + found.prorated_to_inventory
            == s.income
        )
        # The standard COGS, read another way: the COGS lines of the journal outside the
        # entries that dispose of variances at a close.
        journal = sum(
            (
                line.amount
                for entry in book.entries()
                if entry.period == period and "dispose variances" not in entry.memo
                for line in entry.lines
                if line.account is Account.COGS
            ),
            ZERO,
        )
        assert found.standard_cogs == journal, (name, period)


def test_waterfall_steps_on_known_figures() -> None:
    # Northshore February: 1,530,000 at standard, three unfavorable variances, 1,330,000 income.
    found = waterfall(book_of("northshore"), "2026-02")
    assert found.standard_margin == Decimal("1530000.00")
    assert [(s.label, s.amount) for s in found.steps()] == [
        ("purchase price variance", Decimal("-63000.00")),
        ("material usage variance", Decimal("-60000.00")),
        ("conversion variance", Decimal("-77000.00")),
    ]
    assert found.income == Decimal("1330000.00")
    # Prorated: part of January's variances waits in inventory, and follows it out in February.
    january, february = (waterfall(book_of("widgets_prorate"), p) for p in ("2026-01", "2026-02"))
    assert january.prorated_to_inventory == Decimal("10.45")
    assert february.prorated_to_inventory == Decimal("-10.42")
    assert february.standard_margin == Decimal("72.00")
    assert february.income == Decimal("61.58")
    # Open periods: the variances still sit on their accounts, COGS is all at standard.
    gearbox = waterfall(book_of("gearbox_orders"), "2026-01")
    assert gearbox.standard_cogs == statements(book_of("gearbox_orders"), "2026-01").cogs
    assert gearbox.standard_margin == Decimal("271.50")
    assert gearbox.income == Decimal("981.50")


def test_waterfall_bars_are_the_figures() -> None:
    """What is drawn: the first bar is the standard margin, the last the income, and each
    label is the decimal figure itself."""
    book = book_of("northshore")
    figure = charts.draw(book, Chart.waterfall, "2026-02")
    axes = figure.axes[0]
    bars = axes.patches
    assert bars[0].get_height() == 1530000.0
    assert bars[-1].get_height() == 1330000.0
    labels = [t.get_text() for t in axes.texts]
    assert labels == ["1,530,000.00", "−63,000.00", "−60,000.00", "−77,000.00", "1,330,000.00"]
    # the running total after the three steps is where the income bar ends
    steps = bars[1:-1]
    assert min(steps[-1].get_y(), steps[-1].get_y() + steps[-1].get_height()) == 1330000.0


def test_trend_figures_come_from_the_statements() -> None:
    book = book_of("nrv")
    for row in charts.trend(book):
        s = statements(book, row.period)
        assert row.gross_margin == s.gross_margin == row.sales - row.cogs
        assert row.inventories == s.inventories
    assert [r.margin_percent for r in charts.trend(book)] == [
        None,
        Decimal("16.7"),
        None,
        Decimal("23.3"),
    ]


# ---------------------------------------------------------------- PNG and SVG


@pytest.mark.parametrize("chart", list(Chart))
def test_png_chart(chart: Chart) -> None:
    from PIL import Image

    data = chart_bytes(book_of("northshore"), chart, "png")
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        width, height = image.size
        assert image.format == "PNG"
    assert 700 <= width <= 2000 and 350 <= height <= 1000, (width, height)


@pytest.mark.parametrize("chart", list(Chart))
def test_svg_chart_parses_and_is_deterministic(chart: Chart) -> None:
    data = chart_bytes(book_of("widgets_prorate"), chart, "svg")
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert b"<dc:date>" not in data
    again = run_scenario(read_scenario(EXAMPLES / "widgets_prorate.yaml"))
    assert chart_bytes(again, chart, "svg") == data


def test_chart_of_a_period_the_book_does_not_have() -> None:
    with pytest.raises(ValueError, match="period 2030-01"):
        charts.draw(book_of("northshore"), Chart.waterfall, "2030-01")


def test_startup_does_not_import_matplotlib() -> None:
    code = "import sys, backflush.cli; print('matplotlib' in sys.modules, 'jinja2' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- the HTML report


def trial_balance_total(book: Book) -> Decimal:
    return sum((v for v in book.balances.values() if v > 0), ZERO)


@pytest.mark.parametrize("name", ["northshore", "nrv", "widgets_prorate"])
def test_html_holds_the_trial_balance_total_exactly(name: str) -> None:
    book = book_of(name)
    text = period_report_html(book, 7)
    by_account: dict[Account, Decimal] = {}
    for (account, _), value in book.balances.items():
        by_account[account] = by_account.get(account, ZERO) + value
    debits = sum((v for v in by_account.values() if v > 0), ZERO)
    credits = -sum((v for v in by_account.values() if v < 0), ZERO)
    assert debits == credits
    section = text[text.index('<section id="trial-balance">') :]
    section = section[: section.index("</section>")]
    total = f"{debits.quantize(Decimal('0.01')):,}"
    assert re.search(
        rf'<tr class="total"><td>total</td><td class="num">{total}</td>'
        rf'<td class="num">{total}</td></tr>',
        section,
    ), (total, section)
    # no external resource, no script
    assert "<script" not in text
    assert not re.search(r'(src|href)="(?!#)', text)
    assert "http://" not in text.replace("http://www.w3.org/", "")
    assert "https://" not in text


def test_html_variances_are_marked() -> None:
    text = period_report_html(book_of("gearbox_orders"), 1)
    section = text[text.index('<section id="variances">') :]
    assert '<td class="num">+50.00 U</td>' in section  # purchase price, January
    assert '<td class="num">-760.00 F</td>' in section  # conversion, January


def test_html_margin_by_product_and_red_flags() -> None:
    text = period_report_html(book_of("northshore"), 1)
    margin = text[text.index('<section id="margin">') :]
    margin = margin[: margin.index("</section>")]
    assert (  # sales 5,610,000 less COGS 4,280,000 (4,080,000 at standard + 200,000 closed)
        '<tr class="total"><td>2026-02 · total</td><td class="num">102,000</td>'
        '<td class="num">5,610,000.00</td><td class="num">4,280,000.00</td>'
        '<td class="num">1,330,000.00</td><td class="num">23.7</td></tr>'
    ) in margin
    flags = text[text.index('<section id="flags">') :]
    flags = flags[: flags.index("</section>")]
    assert "<td>standards drift</td><td>conversion</td><td>2026-02</td>" in flags
    assert "6.4% vs &gt; 5% of conversion applied" in flags


def test_html_escapes_user_text() -> None:
    source = (EXAMPLES / "northshore.yaml").read_text(encoding="utf-8")
    name = re.search(r"^  name: (.*)$", source, re.M)
    assert name is not None
    hostile = "<script>alert(1)</script> & $x$ Co"
    scenario = parse_scenario(source.replace(name.group(0), f"  name: '{hostile}'"), "t.yaml")
    book = run_scenario(scenario)
    assert book.settings.name == hostile
    text = period_report_html(book, 1)
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; $x$ Co" in text


def test_the_book_without_periods() -> None:
    source = (EXAMPLES / "northshore.yaml").read_text(encoding="utf-8")
    scenario = parse_scenario(source[: source.index("\nevents:")] + "\nevents: []\n", "t.yaml")
    book = run_scenario(scenario)
    assert "nothing to report" in period_report_html(book, 0)
    with pytest.raises(ValueError, match="no period"):
        charts.draw(book, Chart.margin)


def chromium() -> Path:
    """Debian's Chromium; skip without it, except under CI (CI=true), where it must be."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but /usr/bin/chromium is missing (apt-get install chromium)")
        pytest.skip("/usr/bin/chromium is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.mark.parametrize("name", ["northshore", "nrv"])
def test_html_renders_in_headless_chromium(name: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    page_file = tmp_path / "report.html"
    page_file.write_text(period_report_html(book_of(name), 3), encoding="utf-8")
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")
            boxes = {}
            for chart in Chart:
                found = page.locator(f"#chart-{chart.value} svg")
                assert found.count() == 1
                boxes[chart] = found.bounding_box()
            assert page.locator("svg").count() == 3
            assert page.title().startswith(book_of(name).settings.name)
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [page_file.as_uri()]  # nothing fetched beside the file itself
    for chart, box in boxes.items():
        assert box is not None and box["width"] > 300 and box["height"] > 200, (chart, box)
    assert shot.read_bytes().startswith(PNG_SIGNATURE)


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("book") / "book.db"
    result = cli("import", EXAMPLES / "northshore.yaml", "--db", db)
    assert result.exit_code == 0, result.stderr
    return db


def test_cli_chart(stored: Path, tmp_path: Path) -> None:
    png, svg = tmp_path / "w.png", tmp_path / "m.SVG"
    result = cli("chart", "--db", stored, "--what", "waterfall", "--period", "2026-01", "-o", png)
    assert result.exit_code == 0, result.stderr
    assert "waterfall chart written to" in result.stdout
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    result = cli("chart", "--db", stored, "--what", "margin", "-o", svg)
    assert result.exit_code == 0, result.stderr
    assert ET.fromstring(svg.read_bytes()).tag.endswith("svg")
    # the same as drawn from the book run in memory
    assert svg.read_bytes() == chart_bytes(book_of("northshore"), Chart.margin, "svg")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "chart.pdf"], "give a file ending in .png or .svg"),
        (["-o", "chart"], "give a file ending in .png or .svg"),
        (["--what", "margin", "--period", "2026-01", "-o", "c.png"], "waterfall chart only"),
        (["--period", "2027-01", "-o", "c.png"], "period 2027-01: the book has none"),
    ],
)
def test_cli_chart_refused(stored: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("chart", "--db", stored, *[tmp_path / a if a.startswith("c") else a for a in args])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_chart_without_a_book(tmp_path: Path) -> None:
    result = cli("chart", "--db", tmp_path / "none.db", "-o", tmp_path / "c.png")
    assert result.exit_code == 2
    assert "no book at" in result.stderr


def test_cli_report_html(stored: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    result = cli("report", "--db", stored, "--html", target)
    assert result.exit_code == 0, result.stderr
    assert f"period report written to {target}" in result.stdout.replace("\n", "")
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "Northshore Devices: period report 2026-01 to 2026-02" in text
    total = f"{trial_balance_total(book_of('northshore')):,}"
    assert f'<td class="num">{total}</td>' in text
