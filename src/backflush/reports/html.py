"""The period report as one self-contained HTML file a controller can mail (issue 5, outputs).

No external URL, no script: inline CSS and the three charts as inline SVG. Every figure in its
tables is formatted from the book's Decimal figures, as the terminal reports print them; all
user text (book name, item ids, element names) is escaped by the template's autoescape.
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from backflush.book import Book
from backflush.domain.model import Account
from backflush.domain.money import ZERO
from backflush.reports import analysis, charts, flags
from backflush.reports.charts import Chart
from backflush.reports.document import gross_margin
from backflush.reports.statements import ROWS as STATEMENT_ROWS
from backflush.reports.statements import statements
from backflush.reports.tables import (
    INVENTORIED_OFF,
    _amount,
    _quantity,
    _unit,
    unsold_conversion_inventoried,
    valuation,
    valuation_reconciliation,
)

CAPTIONS = {
    Chart.waterfall: "From the standard gross margin of {period} to its income, variance by "
    "variance.",
    Chart.margin: "Sales, cost of goods sold and gross margin (with margin %) per period.",
    Chart.inventory: "Inventories at each period end (net of any allowance to net realisable "
    "value) against the cost of goods sold in the period.",
}


def amount(value: Decimal, currency: str) -> str:
    """Money with thousands separators and the currency's minor units (as the tables print)."""
    return _amount(value, currency)


def variance(value: Decimal, currency: str) -> str:
    """A variance, + unfavorable and − favorable, marked U or F (nothing when zero)."""
    text = amount(value, currency)
    if value > 0:
        return f"+{text} U"
    if value < 0:
        return f"{text} F"
    return text


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    label: str
    values: list[str]
    style: str = ""  # "section", "total", "part" (of the row above) or ""


def inline_svg(svg: bytes, prefix: str) -> Markup:
    """An SVG file made fit to sit in an HTML page beside others: without its XML prolog and
    metadata, and with every id (and every reference to one) prefixed: charts share no id."""
    text = svg.decode("utf-8")
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF, no use
    text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", text)
    return Markup(text.replace("<svg ", f'<svg role="img" aria-label="{prefix} chart" ', 1))


def context(book: Book, events: int) -> dict[str, object]:
    """What the template shows, every figure already a string."""
    currency = book.settings.currency
    periods = book.periods()
    found = [statements(book, p) for p in periods]
    statement_rows = [
        Row(label, [], "section")
        if name is None
        else Row(
            label,
            [amount(getattr(s, name), currency) for s in found],
            "total" if name in ("gross_margin", "income", "inventories", "assets") else "",
        )
        for label, name in STATEMENT_ROWS
    ]

    balances = book.account_balances()
    trial: list[Row] = []
    debits = credits = ZERO
    for account in Account:
        value = balances.get(account.value, ZERO)
        if not value:
            continue
        debit, credit = (value, ZERO) if value > 0 else (ZERO, -value)
        debits, credits = debits + debit, credits + credit
        trial.append(
            Row(
                account.value,
                [
                    amount(debit, currency) if debit else "",
                    amount(credit, currency) if credit else "",
                ],
            )
        )
    trial.append(Row("total", [amount(debits, currency), amount(credits, currency)], "total"))

    stock: list[Row] = []
    on_total = off_total = ZERO
    for r in valuation(book):
        on_total, off_total = on_total + r.on_books, off_total + r.off_books
        stock.append(
            Row(
                r.item,
                [
                    r.kind.value,
                    _quantity(r.on_hand),
                    _quantity(r.in_process) if r.in_process else "",
                    _unit(r.unit_standard, currency),
                    amount(r.on_books, currency),
                    amount(r.off_books, currency) if r.off_books else "",
                ],
            )
        )
    inventoried = unsold_conversion_inventoried(book)
    if inventoried:  # (see tables.INVENTORIED_OFF)
        off_total -= inventoried
        stock.append(Row(INVENTORIED_OFF, ["", "", "", "", "", amount(-inventoried, currency)]))
    stock.append(
        Row(
            "total",
            ["", "", "", "", amount(on_total, currency), amount(off_total, currency)],
            "total",
        )
    )
    # to the inventory accounts of the balance sheet, as the terminal's table reconciles
    for label, where, value in valuation_reconciliation(book, on_total):
        style = "total" if label == "inventory on the books" else ""
        stock.append(Row(label, [where, "", "", "", amount(value, currency), ""], style))

    by_period = {p: book.period_variances(p) for p in periods}
    keys = list(dict.fromkeys(k for p in periods for k in by_period[p]))
    variance_rows = [
        Row(
            key,
            [variance(by_period[p].get(key, ZERO), currency) for p in periods],
            "part" if ":" in key else "",  # conversion:labor is a part of conversion
        )
        for key in keys
    ]
    variance_rows.append(
        Row(
            "gross margin",
            [amount(gross_margin(book.activity.get(p, {})), currency) for p in periods],
            "total",
        )
    )
    variance_rows.append(Row("status", ["closed" if p in book.closed else "open" for p in periods]))

    margin: list[Row] = []
    margin_rows = analysis.margins(book)
    totals = analysis.margin_totals(margin_rows)
    for period in totals:
        for m in [*(r for r in margin_rows if r.period == period), totals[period]]:
            percent = m.margin_percent
            margin.append(
                Row(
                    f"{period} · {m.item}",
                    [
                        _quantity(m.sold) if m.sold else "",
                        amount(m.sales, currency),
                        amount(m.cogs, currency),
                        amount(m.gross_margin, currency),
                        "" if percent is None else f"{percent}",
                    ],
                    "total" if m.item == "total" else "",
                )
            )
    red = [
        Row(
            f.kind.replace("_", " "),
            [f.subject, f.period, f"{f.value_text} vs {f.threshold_text}", f.message],
        )
        for f in flags.red_flags(book)
    ]

    summary: list[tuple[str, str]] = []
    if found:
        last = found[-1]
        summary = [
            ("periods", f"{len(periods)} ({sum(p in book.closed for p in periods)} closed)"),
            ("sales", amount(sum((s.sales for s in found), ZERO), currency)),
            ("gross margin", amount(sum((s.gross_margin for s in found), ZERO), currency)),
            ("income", amount(sum((s.income for s in found), ZERO), currency)),
            (f"inventories at the end of {last.period}", amount(last.inventories, currency)),
            ("trial balance, each side", amount(debits, currency)),
            ("open backflush exceptions", str(len(book.open_shortages()))),
        ]

    chart_list = []
    if periods:
        for chart in Chart:
            svg = charts.chart_bytes(book, chart, "svg", salt=f"backflush-{chart.value}")
            chart_list.append(
                {
                    "id": f"chart-{chart.value}",
                    "caption": CAPTIONS[chart].format(period=periods[-1]),
                    "svg": inline_svg(svg, f"chart-{chart.value}"),
                }
            )

    s = book.settings
    return {
        "name": s.name,
        "currency": currency,
        "first": periods[0] if periods else "",
        "last": periods[-1] if periods else "",
        "settings": f"triggers {s.triggers.value} · disposition {s.disposal_memo} · "
        f"shortage {s.shortage.value} · {events} events",
        "periods": periods,
        "summary": summary,
        "statements": statement_rows,
        "trial_balance": trial,
        "valuation": stock,
        "variances": variance_rows,
        "margin": margin,
        "flags": red,
        "charts": chart_list,
    }


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("backflush.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def period_report_html(book: Book, events: int) -> str:
    """The whole period report as one HTML document."""
    return _environment().get_template("period_report.html.j2").render(context(book, events))


def write_html(book: Book, events: int, path: Path) -> None:
    path.write_text(period_report_html(book, events), encoding="utf-8")
