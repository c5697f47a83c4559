"""Charts of a book (issue 5, outputs): the variance waterfall of a period, the margin trend and
inventory against cost of goods sold over the periods, as PNG or SVG.

The figures come first, as exact decimals (:func:`waterfall`, :func:`trend`), taken from the
same :class:`~backflush.reports.statements.Statements` the income statement prints; the
drawing comes last. Float appears only there, as chart coordinates (bar heights and
positions): every label printed on a chart is formatted from the Decimal figure itself.

matplotlib is imported when a chart is drawn, not when this module is, so the command line
does not pay for it on every start. It draws with the Agg canvas, never a window. The SVG is
deterministic: fixed ``svg.hashsalt``, no date in the metadata, so the same book gives the
same bytes.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from backflush.book import Book
from backflush.domain.model import INVENTORY_ACCOUNTS, Account
from backflush.domain.money import CONTEXT, ZERO
from backflush.engine.close import DISPOSABLE, PRORATED
from backflush.reports.document import money
from backflush.reports.statements import Statements, statements

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.container import Container
    from matplotlib.figure import Figure


class Chart(StrEnum):
    waterfall = "waterfall"
    margin = "margin"
    inventory = "inventory"


FORMATS = ("png", "svg")

# ---------------------------------------------------------------- figures (exact decimals)


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    label: str
    amount: Decimal  # the change to income: a variance enters with its sign turned


@dataclasses.dataclass(frozen=True, slots=True)
class Waterfall:
    """From the standard gross margin of a period to its income.

    ``standard_cogs`` is cost of goods sold without the variances a close wrote off to it;
    the steps are the period's variances on the books (:meth:`Book.period_variances`, the
    types a close disposes of; + unfavorable reduces income), the write-down to net realisable
    value, and the part of the variances a close prorated into inventory (it leaves income
    for the balance sheet; shares released from inventory come back negative)."""

    period: str
    sales: Decimal
    standard_cogs: Decimal
    variances: tuple[tuple[str, Decimal], ...]  # + unfavorable
    nrv_writedown: Decimal
    prorated_to_inventory: Decimal
    income: Decimal  # Statements.income of the period

    @property
    def standard_margin(self) -> Decimal:
        return self.sales - self.standard_cogs

    def steps(self) -> list[Step]:
        """The bars between the first and the last, zero ones left out."""
        found = [Step(f"{key.replace('_', ' ')} variance", -value) for key, value in self.variances]
        found.append(Step("write-down to net realisable value", -self.nrv_writedown))
        found.append(Step("prorated variances, net into inventory", self.prorated_to_inventory))
        return [s for s in found if s.amount]

    @property
    def reconciles(self) -> bool:
        steps = sum((s.amount for s in self.steps()), ZERO)
        return self.standard_margin + steps == self.income


def _total(balances: dict[tuple[Account, str], Decimal], *accounts: Account) -> Decimal:
    return sum((v for (a, _), v in balances.items() if a in accounts), ZERO)


def waterfall(book: Book, period: str, found: Statements | None = None) -> Waterfall:
    """The figures of the variance waterfall of ``period``.

    A close moves the variance accounts' balances to cost of goods sold, to inventory
    (prorated, under elements ``variance:<pool>``) or to accounts kept as their own lines;
    what the variance accounts (``Statements.variances``) still show of the period's
    variances is what the close did not move out. So: moved to COGS = the variances -
    what stays on the variance accounts - what went into inventory, and the standard COGS is
    COGS less that."""
    s = found if found is not None else statements(book, period)
    activity = book.activity.get(period, {})
    on_books = book.period_variances(period)
    variances = tuple((k, on_books[k]) for k in on_books if k in DISPOSABLE)
    arisen = sum((v for _, v in variances), ZERO)
    prorated = sum(
        (v for (a, e), v in activity.items() if a in INVENTORY_ACCOUNTS and e.startswith(PRORATED)),
        ZERO,
    )
    to_cogs = arisen - s.variances - prorated
    return Waterfall(
        period,
        sales=s.sales,
        standard_cogs=s.cogs - to_cogs,
        variances=variances,
        nrv_writedown=s.nrv_writedown,
        prorated_to_inventory=prorated,
        income=s.income,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class PeriodFigures:
    """One period of the trend charts, from its :class:`Statements`."""

    period: str
    sales: Decimal
    cogs: Decimal  # with the write-down to net realisable value (shown with cost of sales)
    gross_margin: Decimal
    raw_in_process: Decimal
    finished_goods: Decimal
    other_inventory: Decimal
    nrv_allowance: Decimal  # negative: a credit
    inventories: Decimal  # net of the allowance

    @property
    def margin_percent(self) -> Decimal | None:
        if not self.sales:
            return None
        return (self.gross_margin * 100 / self.sales).quantize(Decimal("0.1"), context=CONTEXT)


def trend(book: Book) -> list[PeriodFigures]:
    found = []
    for period in book.periods():
        s = statements(book, period)
        found.append(
            PeriodFigures(
                period,
                sales=s.sales,
                cogs=s.cogs + s.nrv_writedown,
                gross_margin=s.gross_margin,
                raw_in_process=s.raw_in_process,
                finished_goods=s.finished_goods,
                other_inventory=s.other_inventory,
                nrv_allowance=s.nrv_allowance,
                inventories=s.inventories,
            )
        )
    return found


def amount(value: Decimal, currency: str, signed: bool = False) -> str:
    """Money as a label: the currency's minor units, thousands separators, a true minus."""
    text = f"{Decimal(money(value, currency)):,}"
    if signed and value > 0:
        text = "+" + text
    return text.replace("-", "−")


# ---------------------------------------------------------------- drawing (floats from here on)

FAVORABLE = "#2e7d32"
UNFAVORABLE = "#c62828"
TOTAL = "#455a64"
SALES = "#90a4ae"
COGS = "#ef8a62"
MARGIN = "#1f4e79"
INVENTORY_COLORS = ("#4e79a7", "#76b7b2", "#b9d3e8")
SALT = "backflush"
LABEL_BOX = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


def _figure(width: float = 8.0, height: float = 4.5) -> Figure:  # float-ok: chart coordinates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _money_axis(axes: Axes, currency: str) -> None:
    from matplotlib.ticker import FuncFormatter

    axes.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}".replace("-", "−")))
    axes.set_ylabel(currency)
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def _legend(figure: Figure, handles: Sequence[Artist | Container]) -> None:
    """One row of legend under the plot, where it covers nothing."""
    figure.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False
    )


def _plain(text: str) -> str:
    """User text shown as typed: matplotlib would read $...$ as mathematics."""
    return text.replace("$", r"\$")


def _wrap(label: str, width: int = 14) -> str:
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines)


def draw_waterfall(book: Book, period: str) -> Figure:
    figures = waterfall(book, period)
    currency = book.settings.currency
    steps = figures.steps()
    labels = ["standard gross margin", *(s.label for s in steps), "income"]
    figure = _figure(max(8.0, 1.3 * len(labels)), 4.8)
    axes = figure.add_subplot()
    level = figures.standard_margin
    bottoms: list[float] = [0.0]  # float-ok: chart coordinates
    heights: list[float] = [float(level)]  # float-ok: chart coordinates
    colors = [TOTAL]
    texts = [amount(level, currency)]
    for step in steps:
        after = level + step.amount
        bottoms.append(float(min(level, after)))  # float-ok: chart coordinates
        heights.append(float(abs(step.amount)))  # float-ok: chart coordinates
        colors.append(FAVORABLE if step.amount > 0 else UNFAVORABLE)
        texts.append(amount(step.amount, currency, signed=True))
        level = after
    bottoms.append(0.0)
    heights.append(float(figures.income))  # float-ok: chart coordinates
    colors.append(TOTAL)
    texts.append(amount(figures.income, currency))
    xs = list(range(len(labels)))
    bars = axes.bar(xs, heights, bottom=bottoms, color=colors, width=0.6)
    tops = [b + h if h >= 0 else b for b, h in zip(bottoms, heights, strict=True)]
    span = max([*tops, 0.0]) - min([*bottoms, 0.0]) or 1.0
    for x, bar, text, top, bottom, height in zip(
        xs, bars, texts, tops, bottoms, heights, strict=True
    ):
        below = height < 0 and x in (0, len(xs) - 1)  # a negative total: label under it
        y = bottom + height - 0.02 * span if below else top + 0.02 * span
        axes.text(
            bar.get_x() + bar.get_width() / 2,
            y,
            text,
            ha="center",
            va="top" if below else "bottom",
            fontsize=9,
        )
    running = figures.standard_margin
    for x in xs[:-1]:  # connectors at the running total, from each bar to the next
        level_y = [float(running)] * 2  # float-ok: chart coordinates
        axes.plot([x + 0.3, x + 0.7], level_y, color="#888888", linewidth=0.7)
        if x < len(steps):
            running += steps[x].amount
    axes.axhline(0, color="#444444", linewidth=0.8)
    axes.set_xticks(xs, [_wrap(label) for label in labels], fontsize=9)
    axes.set_ylim(min([*bottoms, *tops, 0.0]) - 0.08 * span, max([*tops, 0.0]) + 0.1 * span)
    _money_axis(axes, currency)
    axes.set_title(
        f"{_plain(book.settings.name)}: from standard margin to income, {period}",
        loc="left",
        fontsize=11,
    )
    from matplotlib.patches import Patch

    _legend(
        figure,
        [
            Patch(color=FAVORABLE, label="favorable: raises income"),
            Patch(color=UNFAVORABLE, label="unfavorable: lowers income"),
        ],
    )
    return figure


def draw_margin(book: Book) -> Figure:
    rows = trend(book)
    currency = book.settings.currency
    figure = _figure(max(8.0, 1.1 * len(rows) + 3), 4.5)
    axes = figure.add_subplot()
    xs = list(range(len(rows)))
    width = 0.36
    sales = axes.bar(
        [x - width / 2 for x in xs],
        [float(r.sales) for r in rows],  # float-ok: chart coordinates
        width,
        color=SALES,
        label="sales",
    )
    cogs = axes.bar(
        [x + width / 2 for x in xs],
        [float(r.cogs) for r in rows],  # float-ok: chart coordinates
        width,
        color=COGS,
        label="cost of goods sold (with write-downs to NRV)",
    )
    (margin,) = axes.plot(
        xs,
        [float(r.gross_margin) for r in rows],  # float-ok: chart coordinates
        color=MARGIN,
        marker="o",
        label="gross margin",
    )
    for x, r in zip(xs, rows, strict=True):
        percent = r.margin_percent
        text = amount(r.gross_margin, currency)
        if percent is not None:
            text += f"\n{str(percent).replace('-', '−')} %"
        axes.annotate(
            text,
            (x, float(r.gross_margin)),  # float-ok: chart coordinates
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
            color=MARGIN,
            bbox=LABEL_BOX,
        )
    axes.axhline(0, color="#444444", linewidth=0.8)
    axes.set_xticks(xs, [r.period for r in rows])
    axes.margins(y=0.15)
    _money_axis(axes, currency)
    title = f"{_plain(book.settings.name)}: sales, cost of goods sold and gross margin"
    axes.set_title(title, loc="left", fontsize=11)
    _legend(figure, [sales, cogs, margin])
    return figure


def draw_inventory(book: Book) -> Figure:
    rows = trend(book)
    currency = book.settings.currency
    figure = _figure(max(8.0, 1.1 * len(rows) + 3), 4.5)
    axes = figure.add_subplot()
    xs = list(range(len(rows)))
    parts: list[tuple[str, Callable[[PeriodFigures], Decimal]]] = [
        ("raw and in process", lambda r: r.raw_in_process),
        ("finished goods", lambda r: r.finished_goods),
        ("materials and WIP", lambda r: r.other_inventory),
    ]
    base = [0.0] * len(rows)
    for (label, part), color in zip(parts, INVENTORY_COLORS, strict=True):
        values = [part(r) for r in rows]
        if not any(values):
            continue
        heights = [float(v) for v in values]  # float-ok: chart coordinates
        axes.bar(xs, heights, 0.5, bottom=base, color=color, label=label)
        base = [b + h for b, h in zip(base, heights, strict=True)]
    if any(r.nrv_allowance for r in rows):
        axes.bar(
            xs,
            [float(r.nrv_allowance) for r in rows],  # float-ok: chart coordinates
            0.5,
            color="#bbbbbb",
            hatch="//",
            label="allowance to NRV",
        )
    for x, r, top in zip(xs, rows, base, strict=True):
        axes.annotate(
            ("net " if r.nrv_allowance else "") + amount(r.inventories, currency),
            (x, max(top, 0.0)),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=8,
            bbox=LABEL_BOX,
        )
    axes.plot(
        xs,
        [float(r.cogs) for r in rows],  # float-ok: chart coordinates
        color=COGS,
        marker="o",
        linewidth=2,
        label="cost of goods sold in the period",
    )
    for x, r in zip(xs, rows, strict=True):
        axes.annotate(
            amount(r.cogs, currency),
            (x, float(r.cogs)),  # float-ok: chart coordinates
            textcoords="offset points",
            xytext=(12, 0),
            ha="left",
            va="center",
            fontsize=8,
            color="#b3542d",
            bbox=LABEL_BOX,
        )
    axes.axhline(0, color="#444444", linewidth=0.8)
    axes.set_xticks(xs, [r.period for r in rows])
    axes.margins(x=0.12, y=0.12)
    _money_axis(axes, currency)
    title = f"{_plain(book.settings.name)}: inventories at the period end and cost of goods sold"
    axes.set_title(title, loc="left", fontsize=11)
    handles, labels = axes.get_legend_handles_labels()
    line = labels.index("cost of goods sold in the period")  # the bars first, as drawn
    _legend(figure, [*handles[:line], *handles[line + 1 :], handles[line]])
    return figure


def draw(book: Book, chart: Chart, period: str | None = None) -> Figure:
    """The chart as a matplotlib figure; the waterfall of ``period`` (default: the last)."""
    if chart is Chart.waterfall:
        periods = book.periods()
        if not periods:
            raise ValueError("the book has no period yet: nothing to chart")
        if period is None:
            period = periods[-1]
        if period not in periods:
            raise ValueError(f"period {period}: the book has none (periods: {', '.join(periods)})")
        return draw_waterfall(book, period)
    if not book.periods():
        raise ValueError("the book has no period yet: nothing to chart")
    return draw_margin(book) if chart is Chart.margin else draw_inventory(book)


def render(figure: Figure, fmt: str, salt: str = SALT) -> bytes:
    """The figure as PNG or SVG bytes, the same bytes for the same figure."""
    if fmt not in FORMATS:
        raise ValueError(f"chart format {fmt!r}: expected one of {', '.join(FORMATS)}")
    import matplotlib

    buffer = io.BytesIO()
    metadata: dict[str, str | None] = (
        {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
    )
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        figure.savefig(buffer, format=fmt, metadata=metadata, dpi=100)
    return buffer.getvalue()


def chart_bytes(
    book: Book, chart: Chart, fmt: str, period: str | None = None, salt: str = SALT
) -> bytes:
    return render(draw(book, chart, period), fmt, salt)


def suffix_format(path: Path) -> str | None:
    """The chart format a file name asks for (``.png``, ``.svg``), None for another."""
    found = path.suffix.lower().removeprefix(".")
    return found if found in FORMATS else None
