"""Red flags: what a controller should look at, each with its threshold and the figures behind
it (issue 5). Pure functions over a :class:`~backflush.book.Book`; nothing here changes it.

Every test reads the sums the book keeps (quantities moved per period, item and flow; per day
and flow; the journal per period and account; the variances of each period; the open backflush
exceptions; the master data), so a book read from a store judges as the same book run in
memory. Each ratio is a ``Decimal`` worked to :data:`PLACES` decimal places (half even), and a
flag is raised only when that ratio, as shown, is beyond the threshold.

The flags and their exact definitions (defaults in :class:`Thresholds`):

``scrap_unstable``
    An item's scrap rate in a period is the quantity scrapped (scrap reports) over what left
    its stock for production, sale or scrap: scrapped / (scrapped + backflushed + issued +
    released + sold), in periods where something left. Over at least ``scrap_periods`` such
    periods, a flag when the spread (highest rate less lowest) is more than ``scrap_spread``,
    and another when the coefficient of variation (population standard deviation over the
    mean) is more than ``scrap_cv`` while the mean rate is at least ``scrap_cv_min_mean``
    (below it scrap is too small for its wobble to matter). Units lost inside a completion
    (its ``scrapped``) are not kept per item by the book: they show as material usage
    variance, which the variance flags watch.
``bom_changes``
    More than ``bom_versions`` BOM versions of one item taking effect within
    ``bom_window_days`` days (first to last effective date), the first version (effective
    from the beginning) not counted.
``variance_large``
    A variance pool of a period (purchase price, price not recorded, material usage,
    conversion, conversion spending and efficiency, revaluation, inventory adjustment: the
    top-level keys of :meth:`~backflush.book.Book.period_variances`, rounding left out) whose
    absolute amount is more than ``variance_share`` of the period's standard cost of goods
    sold (units sold x the standard unit cost in force at the period end). Periods without
    sales are not judged.
``variance_recurring``
    The same pool with one sign (all unfavorable or all favorable, none zero) in at least
    ``variance_run`` consecutive months.
``inventory_outgrows_sales``
    Between two consecutive months: the period-end inventories (the statements' inventories,
    net of the allowance) grew more than ``inventory_gap`` (in percentage points) faster than
    sales at standard cost (units sold x the standard unit cost at each period end, so the
    variances written off to COGS do not blur the volume): inventory growth - COGS growth.
    Judged where both the earlier inventories and the earlier standard COGS are positive, and
    only once the later month is closed (an open month's sales are partial).
``completions_bunched``
    More than ``bunched_share`` of a period's completed quantity (all items) reported in its
    last ``bunched_days`` calendar days.
``standards_drift`` (IAS 2.21: standards must approximate cost)
    ``purchases``: the period's purchase price variance (recorded and not recorded) over the
    purchases at standard (quantities received x the standard unit cost at the period end),
    in absolute value more than ``price_drift``; and, where two materials or more were bought,
    the same for each material (its recorded price variance; subject: the material).
    ``conversion``: actual conversion (what was accrued) against conversion applied at
    standard (actual less the conversion variance), off by more than ``conversion_drift`` of
    the applied. Books of the periodic methods charge conversion as incurred and apply none:
    not judged for conversion.
``exceptions_piling``
    At the last posted date (the latest day stock moved, an exception was raised or a closed
    period ended; or the date asked for): more than ``exceptions_open`` open backflush
    exceptions, or the oldest open one more than ``exceptions_age_days`` days old.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.markup import escape
from rich.table import Table

from backflush.book import Book
from backflush.domain.model import Account, next_period, period_bounds, period_of
from backflush.domain.money import CONTEXT, ZERO, fmt
from backflush.engine.standards import StandardError
from backflush.reports.analysis import by_item, own_activity
from backflush.reports.close import aging
from backflush.reports.document import money
from backflush.reports.statements import statements

#: Decimal places every ratio is worked to (and compared at).
PLACES = 10
_QUANTUM = Decimal(1).scaleb(-PLACES)

#: Flows that take stock out of an item into production or a sale (negative quantities).
USED = ("backflushed", "issued", "released", "sold")
#: Variance pools left out of the variance flags (pennies of rounding).
NOT_WATCHED = ("rounding",)

KINDS = (
    "scrap_unstable",
    "bom_changes",
    "variance_large",
    "variance_recurring",
    "inventory_outgrows_sales",
    "completions_bunched",
    "standards_drift",
    "exceptions_piling",
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What each flag compares with. Shares are fractions (0.05 = 5 %); see the module's
    docstring for the exact definitions."""

    #: Scrap rate: highest less lowest across periods, more than this (0.02 = 2 points).
    scrap_spread: Decimal = Decimal("0.02")
    #: Scrap rate: coefficient of variation across periods, more than this.
    scrap_cv: Decimal = Decimal("0.5")
    #: ... judged only where the mean rate is at least this.
    scrap_cv_min_mean: Decimal = Decimal("0.005")
    #: Scrap rates are judged over at least this many periods.
    scrap_periods: int = 3
    #: BOM versions of one item taking effect within the window: more than this.
    bom_versions: int = 2
    bom_window_days: int = 90
    #: A variance larger (in absolute value) than this share of the standard COGS.
    variance_share: Decimal = Decimal("0.05")
    #: A variance of one sign in at least this many consecutive months.
    variance_run: int = 3
    #: Inventory growth less COGS growth, more than this.
    inventory_gap: Decimal = Decimal("0.10")
    #: Share of the completed quantity reported in the period's last days, more than this.
    bunched_share: Decimal = Decimal("0.40")
    bunched_days: int = 3
    #: Purchase price variance over purchases at standard, more than this (absolute).
    price_drift: Decimal = Decimal("0.05")
    #: Actual conversion against applied, off by more than this share of the applied.
    conversion_drift: Decimal = Decimal("0.05")
    #: Open backflush exceptions: more than this many, or the oldest older than the days.
    exceptions_open: int = 10
    exceptions_age_days: int = 30


THRESHOLD_NAMES = tuple(f.name for f in dataclasses.fields(Thresholds))


def parse_thresholds(pairs: Iterable[str], base: Thresholds | None = None) -> Thresholds:
    """``NAME=VALUE`` pairs over ``base`` (default: the defaults). A share may be written as a
    percentage (``5%``). ValueError naming the pair and the valid names when one is wrong."""
    changes: dict[str, Decimal | int] = {}
    types = {f.name: f.type for f in dataclasses.fields(Thresholds)}
    valid = "valid names: " + ", ".join(THRESHOLD_NAMES)
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name, text = name.strip(), text.strip()
        if not sep:
            raise ValueError(f"threshold {pair!r}: expected NAME=VALUE; {valid}")
        if name not in types:
            raise ValueError(f"unknown threshold {name!r}; {valid}")
        integral = types[name] in (int, "int")
        try:
            if integral:
                value: Decimal | int = int(text)
            elif text.endswith("%"):
                value = Decimal(text[:-1].strip()) / 100
            else:
                value = Decimal(text)
        except (ValueError, InvalidOperation):
            kind = "a whole number" if integral else "a decimal (0.05) or a percentage (5%)"
            raise ValueError(f"threshold {name}: {text!r} is not {kind}") from None
        if (isinstance(value, Decimal) and not value.is_finite()) or value < 0:
            raise ValueError(f"threshold {name}: {text!r} must be a number of zero or more")
        changes[name] = value
    return dataclasses.replace(base or Thresholds(), **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Flag:
    """One red flag: what tripped (``value``), what it was compared with (``threshold``,
    ``comparison``) and the figures behind it, in a sentence a controller understands."""

    kind: str
    subject: str
    periods: tuple[str, ...]
    value: Decimal
    comparison: str  # ">" or ">="
    threshold: Decimal
    #: The threshold in words, e.g. "> 5%" or ">= 3 consecutive periods".
    threshold_text: str
    #: The value as shown, e.g. "7.5%".
    value_text: str
    figures: Mapping[str, Decimal]
    message: str

    @property
    def period(self) -> str:
        if not self.periods:
            return ""
        if len(self.periods) == 1:
            return self.periods[0]
        return f"{self.periods[0]}..{self.periods[-1]}"

    @property
    def tripped(self) -> bool:
        """The value is beyond the threshold (always so for a flag :func:`red_flags` gives)."""
        return (
            self.value >= self.threshold if self.comparison == ">=" else self.value > self.threshold
        )


def ratio(part: Decimal, whole: Decimal) -> Decimal:
    return CONTEXT.divide(part, whole).quantize(_QUANTUM, context=CONTEXT)


def percent(share: Decimal, places: int = 1) -> str:
    """A share as a percentage: 0.0525 -> 5.3%, 0.05 -> 5%."""
    shown = (share * 100).quantize(Decimal(1).scaleb(-places), context=CONTEXT)
    return f"{fmt(shown)}%"


def points(share: Decimal) -> str:
    """A difference of shares in percentage points: 0.025 -> 2.5 pp."""
    shown = (share * 100).quantize(Decimal("0.1"), context=CONTEXT)
    return f"{fmt(shown)} pp"


def _number(value: Decimal) -> str:
    return fmt(value.quantize(Decimal("0.01"), context=CONTEXT))


def red_flags(
    book: Book, thresholds: Thresholds | None = None, as_of: dt.date | None = None
) -> list[Flag]:
    """Every red flag of ``book``, in the order of :data:`KINDS`, then by subject and period.
    ``as_of``: the date open exceptions are aged at (default: the last posted date)."""
    limits = thresholds or Thresholds()
    found: list[Flag] = []
    found += scrap_flags(book, limits)
    found += bom_flags(book, limits)
    found += variance_flags(book, limits)
    found += inventory_flags(book, limits)
    found += bunching_flags(book, limits)
    found += drift_flags(book, limits)
    found += exception_flags(book, limits, as_of)
    return found


# ---------------------------------------------------------------- scrap


def scrap_rates(book: Book) -> dict[str, dict[str, Decimal]]:
    """Scrap rate per item and period (see the module docstring), where something left."""
    found: dict[str, dict[str, Decimal]] = {}
    for period in sorted(book.flows):
        scrapped: dict[str, Decimal] = {}
        used: dict[str, Decimal] = {}
        for (item, flow), quantity in book.flows[period].items():
            if flow == "scrapped":
                scrapped[item] = scrapped.get(item, ZERO) - quantity
            elif flow in USED:
                used[item] = used.get(item, ZERO) - quantity
        for item in sorted(set(scrapped) | set(used)):
            lost = scrapped.get(item, ZERO)
            left = lost + used.get(item, ZERO)
            if left > 0:
                found.setdefault(item, {})[period] = ratio(lost, left)
    return found


def _sqrt(value: Decimal) -> Decimal:
    return value.sqrt(CONTEXT)


def scrap_flags(book: Book, limits: Thresholds) -> list[Flag]:
    flags: list[Flag] = []
    for item, rates in sorted(scrap_rates(book).items()):
        if len(rates) < max(limits.scrap_periods, 1) or not any(rates.values()):
            continue
        periods = tuple(rates)
        values = list(rates.values())
        count = Decimal(len(values))
        mean = ratio(sum(values, ZERO), count)
        spread = max(values) - min(values)
        variance = CONTEXT.divide(sum(((v - mean) ** 2 for v in values), ZERO), count)
        cv = ratio(_sqrt(variance), mean) if mean > 0 else ZERO
        figures = {f"rate {p}": r for p, r in rates.items()}
        figures |= {"mean": mean, "spread": spread, "cv": cv}
        listing = ", ".join(f"{p} {percent(r)}" for p, r in rates.items())
        if spread > limits.scrap_spread:
            flags.append(
                Flag(
                    "scrap_unstable",
                    item,
                    periods,
                    spread,
                    ">",
                    limits.scrap_spread,
                    f"> {points(limits.scrap_spread)}",
                    points(spread),
                    figures,
                    f"{item}: scrap rate moves {points(spread)} between periods ({listing}); "
                    "find out why before trusting its standard scrap",
                )
            )
        if mean >= limits.scrap_cv_min_mean and cv > limits.scrap_cv:
            flags.append(
                Flag(
                    "scrap_unstable",
                    item,
                    periods,
                    cv,
                    ">",
                    limits.scrap_cv,
                    f"> {fmt(limits.scrap_cv)} (coefficient of variation)",
                    _number(cv),
                    figures,
                    f"{item}: scrap rate varies by {_number(cv)} times its mean of "
                    f"{percent(mean)} ({listing})",
                )
            )
    return flags


# ---------------------------------------------------------------- BOM changes


def bom_flags(book: Book, limits: Thresholds) -> list[Flag]:
    flags: list[Flag] = []
    window = limits.bom_window_days
    for item, versions in sorted(book.master.boms.items()):
        dates = sorted(v.effective_from for v in versions if v.effective_from != dt.date.min)
        best: tuple[int, int] | None = None  # (first, last) index of the fullest window
        for first in range(len(dates)):
            last = first
            while last + 1 < len(dates) and (dates[last + 1] - dates[first]).days <= window:
                last += 1
            if best is None or last - first > best[1] - best[0]:
                best = (first, last)
        if best is None:
            continue
        count = best[1] - best[0] + 1
        if count <= limits.bom_versions:
            continue
        start, end = dates[best[0]], dates[best[1]]
        span = (end - start).days
        periods = tuple(dict.fromkeys(period_of(d) for d in dates[best[0] : best[1] + 1]))
        flags.append(
            Flag(
                "bom_changes",
                item,
                periods,
                Decimal(count),
                ">",
                Decimal(limits.bom_versions),
                f"> {limits.bom_versions} versions within {window} days",
                f"{count} versions in {span} days",
                {"versions": Decimal(count), "days": Decimal(span)},
                f"{item}: {count} BOM versions take effect between {start.isoformat()} and "
                f"{end.isoformat()}; standards and usage variances shift with each",
            )
        )
    return flags


# ---------------------------------------------------------------- variances


def at_standard(book: Book, period: str, flow: str) -> dict[str, Decimal]:
    """Per item, the quantity that moved in ``period`` by ``flow`` (signed as stock moved)
    x the standard unit cost in force at its end; items without a standard then left out."""
    on = period_bounds(period)[1]
    found: dict[str, Decimal] = {}
    for (item, moved), quantity in sorted(book.flows.get(period, {}).items()):
        if moved != flow or not quantity:
            continue
        try:
            found[item] = quantity * book.standards.unit_cost(item, on).total
        except StandardError:
            continue
    return found


def standard_cogs(book: Book, period: str) -> Decimal:
    """Standard cost of the units sold in ``period``, as the sales were costed."""
    return sum(book.sold_at_standard(period).values(), ZERO)


def watched_variances(book: Book, period: str) -> dict[str, Decimal]:
    return {
        key: value
        for key, value in book.period_variances(period).items()
        if ":" not in key and key not in NOT_WATCHED
    }


def variance_flags(book: Book, limits: Thresholds) -> list[Flag]:
    currency = book.settings.currency
    periods = book.periods()
    found = {p: watched_variances(book, p) for p in periods}
    large: list[Flag] = []
    for period in periods:
        cogs = standard_cogs(book, period)
        if cogs <= 0:
            continue
        for key, amount in sorted(found[period].items()):
            share = ratio(abs(amount), cogs)
            if share <= limits.variance_share:
                continue
            side = "unfavorable" if amount > 0 else "favorable"
            large.append(
                Flag(
                    "variance_large",
                    key,
                    (period,),
                    share,
                    ">",
                    limits.variance_share,
                    f"> {percent(limits.variance_share)} of standard COGS",
                    percent(share),
                    {"variance": amount, "standard_cogs": cogs, "share": share},
                    f"{key} variance of {period}: {money(amount, currency)} {currency} {side}, "
                    f"{percent(share)} of the standard cost of goods sold "
                    f"({money(cogs, currency)})",
                )
            )
    recurring: list[Flag] = []
    keys = sorted({k for p in periods for k in found[p]})
    for key in keys:
        run: list[str] = []
        for period in [*periods, ""]:  # "" ends the last run
            amount = found[period].get(key, ZERO) if period else ZERO
            continues = (
                run
                and period == next_period(run[-1])
                and amount
                and (amount > 0) == (found[run[-1]][key] > 0)
            )
            if continues:
                run.append(period)
                continue
            if len(run) >= limits.variance_run and run:
                recurring.append(_recurring(key, run, found, limits, currency))
            run = [period] if period and amount else []
    return large + sorted(recurring, key=lambda f: (f.subject, f.periods))


def _recurring(
    key: str,
    run: Sequence[str],
    found: Mapping[str, Mapping[str, Decimal]],
    limits: Thresholds,
    currency: str,
) -> Flag:
    amounts = {p: found[p][key] for p in run}
    side = "unfavorable" if amounts[run[0]] > 0 else "favorable"
    total = sum(amounts.values(), ZERO)
    return Flag(
        "variance_recurring",
        key,
        tuple(run),
        Decimal(len(run)),
        ">=",
        Decimal(limits.variance_run),
        f">= {limits.variance_run} consecutive periods of one sign",
        f"{len(run)} periods {side}",
        {**amounts, "periods": Decimal(len(run)), "total": total},
        f"{key} variance {side} in {len(run)} consecutive periods ({run[0]} to {run[-1]}, "
        f"{money(total, currency)} {currency} in all): the standard is biased, not unlucky",
    )


# ---------------------------------------------------------------- inventory against sales


def inventory_flags(book: Book, limits: Thresholds) -> list[Flag]:
    flags: list[Flag] = []
    periods = book.periods()
    stock = {p: statements(book, p).inventories for p in periods}
    sold = {p: standard_cogs(book, p) for p in periods}
    for before, period in itertools.pairwise(periods):
        if period != next_period(before) or period not in book.closed:
            continue  # an open period's sales are partial: no judgement yet
        if stock[before] <= 0 or sold[before] <= 0:
            continue
        grew = ratio(stock[period] - stock[before], stock[before])
        sales = ratio(sold[period] - sold[before], sold[before])
        gap = grew - sales
        if gap <= limits.inventory_gap:
            continue
        flags.append(
            Flag(
                "inventory_outgrows_sales",
                "inventories",
                (before, period),
                gap,
                ">",
                limits.inventory_gap,
                f"> {points(limits.inventory_gap)}",
                points(gap),
                {
                    "inventory_before": stock[before],
                    "inventory": stock[period],
                    "standard_cogs_before": sold[before],
                    "standard_cogs": sold[period],
                    "inventory_growth": grew,
                    "cogs_growth": sales,
                    "gap": gap,
                },
                f"{period}: inventories changed {_signed(grew)} on {before} while sales at "
                f"standard cost changed {_signed(sales)}: stock turns slower",
            )
        )
    return flags


def _signed(share: Decimal) -> str:
    text = percent(share)
    return text if text.startswith("-") else f"+{text}"


# ---------------------------------------------------------------- completions bunched


def bunching_flags(book: Book, limits: Thresholds) -> list[Flag]:
    flags: list[Flag] = []
    days = max(limits.bunched_days, 1)
    for period in sorted(book.daily):
        last = period_bounds(period)[1]
        start = last - dt.timedelta(days=days - 1)
        completed = late = ZERO
        for (day, flow), quantity in book.daily[period].items():
            if flow != "completed":
                continue
            completed += quantity
            if day >= start:
                late += quantity
        if completed <= 0:
            continue
        share = ratio(late, completed)
        if share <= limits.bunched_share:
            continue
        flags.append(
            Flag(
                "completions_bunched",
                "completions",
                (period,),
                share,
                ">",
                limits.bunched_share,
                f"> {percent(limits.bunched_share)} in the last {days} days",
                percent(share),
                {"completed": completed, "completed_last_days": late, "share": share},
                f"{period}: {percent(share)} of the quantity completed ({fmt(late)} of "
                f"{fmt(completed)}) was reported in the last {days} days: backflush late, "
                "stock and usage are wrong in between",
            )
        )
    return flags


# ---------------------------------------------------------------- standards drift


def purchases_at_standard(book: Book, period: str) -> Decimal:
    """Quantities received in ``period`` x the standard unit cost at its end."""
    return sum(at_standard(book, period, "received").values(), ZERO)


def _material_drift(book: Book, period: str, limits: Thresholds) -> list[Flag]:
    """One material whose recorded price variance is off its purchases at standard: what the
    whole book's figure can hide behind other materials (with one material bought, the whole
    book's figure is its own: no second flag)."""
    flags: list[Flag] = []
    currency = book.settings.currency
    prices = by_item(own_activity(book, period), (Account.PURCHASE_PRICE_VARIANCE,))
    received = {
        item: quantity
        for (item, flow), quantity in book.flows.get(period, {}).items()
        if flow == "received" and quantity > 0
    }
    if len(received) < 2:
        return flags
    for item, bought in at_standard(book, period, "received").items():
        price = prices.get((Account.PURCHASE_PRICE_VARIANCE, item), ZERO)
        if item not in received or bought <= 0 or not price:
            continue
        share = ratio(price, bought)
        if abs(share) <= limits.price_drift:
            continue
        flags.append(
            Flag(
                "standards_drift",
                item,
                (period,),
                abs(share),
                ">",
                limits.price_drift,
                f"> {percent(limits.price_drift)} of its purchases at standard",
                percent(abs(share)),
                {"price_variance": price, "purchases_at_standard": bought, "share": share},
                f"{period}: {item} costs {_signed(share)} against its standard "
                f"({money(price, currency)} {currency} on {money(bought, currency)}); "
                "IAS 2.21 wants standards that approximate cost: review its standard",
            )
        )
    return flags


def drift_flags(book: Book, limits: Thresholds) -> list[Flag]:
    flags: list[Flag] = []
    currency = book.settings.currency
    periodic = book.settings.triggers.periodic
    for period in book.periods():
        variances = book.period_variances(period)
        bought = purchases_at_standard(book, period)
        price = variances.get("purchase_price", ZERO) + variances.get(
            "purchase_price_unrecorded", ZERO
        )
        if bought > 0:
            share = ratio(price, bought)
            if abs(share) > limits.price_drift:
                flags.append(
                    Flag(
                        "standards_drift",
                        "purchases",
                        (period,),
                        abs(share),
                        ">",
                        limits.price_drift,
                        f"> {percent(limits.price_drift)} of purchases at standard",
                        percent(abs(share)),
                        {"price_variance": price, "purchases_at_standard": bought, "share": share},
                        f"{period}: purchases cost {_signed(share)} against standard "
                        f"({money(price, currency)} {currency} on {money(bought, currency)}); "
                        "IAS 2.21 wants "
                        "standards that approximate cost: review material standards",
                    )
                )
        flags += _material_drift(book, period, limits)
        if periodic:
            continue
        accrued = -sum(
            (
                v
                for (account, _), v in book.activity.get(period, {}).items()
                if account is Account.ACCRUED_CONVERSION
            ),
            ZERO,
        )
        variance = variances.get("conversion", ZERO)
        applied = accrued - variance
        if applied <= 0:
            continue
        share = ratio(variance, applied)
        if abs(share) <= limits.conversion_drift:
            continue
        if accrued:
            told = (
                f"actual conversion {money(accrued, currency)} "
                f"against {money(applied, currency)} applied"
            )
            todo = "review rates and routings"
        else:
            told = f"no actual conversion recorded against {money(applied, currency)} applied"
            todo = "post the conversion costs, or review rates and routings"
        flags.append(
            Flag(
                "standards_drift",
                "conversion",
                (period,),
                abs(share),
                ">",
                limits.conversion_drift,
                f"> {percent(limits.conversion_drift)} of conversion applied",
                percent(abs(share)),
                {"actual": accrued, "applied": applied, "variance": variance, "share": share},
                f"{period}: {told} at standard ({_signed(share)}); IAS 2.21: {todo}",
            )
        )
    return flags


# ---------------------------------------------------------------- exceptions


def last_posted(book: Book) -> dt.date | None:
    """The latest day stock moved, an exception was raised or a closed period ended."""
    days = [day for moved in book.daily.values() for day, _ in moved]
    days += [s.date for s in book.shortages.values()]
    days += [period_bounds(p)[1] for p in book.closed]
    return max(days, default=None)


def exception_flags(book: Book, limits: Thresholds, as_of: dt.date | None = None) -> list[Flag]:
    day = as_of or last_posted(book)
    if day is None:
        return []
    rows = aging(book, day)
    if not rows:
        return []
    oldest = max(rows, key=lambda r: (r.age, r.event))
    count, age = len(rows), oldest.age
    figures = {"open": Decimal(count), "oldest_age_days": Decimal(age)}
    period = (period_of(day),)
    flags: list[Flag] = []
    if count > limits.exceptions_open:
        flags.append(
            Flag(
                "exceptions_piling",
                "open exceptions",
                period,
                Decimal(count),
                ">",
                Decimal(limits.exceptions_open),
                f"> {limits.exceptions_open} open",
                f"{count} open",
                figures,
                f"{count} backflush exceptions open on {day.isoformat()} (oldest {age} days): "
                "stock records and costs are wrong until they are resolved",
            )
        )
    if age > limits.exceptions_age_days:
        flags.append(
            Flag(
                "exceptions_piling",
                f"oldest: {oldest.event}/{oldest.item}",
                period,
                Decimal(age),
                ">",
                Decimal(limits.exceptions_age_days),
                f"> {limits.exceptions_age_days} days old",
                f"{age} days",
                figures,
                f"the backflush exception of {oldest.event} for {oldest.item} has waited "
                f"{age} days (since {oldest.date.isoformat()}, as of {day.isoformat()}): "
                "receive, count or write it off",
            )
        )
    return flags


# ---------------------------------------------------------------- outputs


def flags_document(flags: Sequence[Flag], thresholds: Thresholds) -> dict[str, Any]:
    """The flags as JSON-ready data, decimals as strings."""
    return {
        "thresholds": {
            name: (fmt(v) if isinstance(v, Decimal) else v)
            for name, v in dataclasses.asdict(thresholds).items()
        },
        "flags": [
            {
                "kind": f.kind,
                "subject": f.subject,
                "periods": list(f.periods),
                "value": fmt(f.value),
                "comparison": f.comparison,
                "threshold": fmt(f.threshold),
                "threshold_text": f.threshold_text,
                "figures": {k: fmt(v) for k, v in f.figures.items()},
                "message": f.message,
            }
            for f in flags
        ],
    }


def flags_table(flags: Sequence[Flag]) -> Table:
    table = Table(title="Red flags", title_justify="left", title_style="bold")
    for column in ("kind", "subject", "period"):  # keys a reader searches for: never wrapped
        table.add_column(column, no_wrap=True)
    table.add_column("figure vs threshold")
    table.add_column("message", ratio=1)
    for f in flags:
        table.add_row(
            f.kind,
            escape(f.subject),
            f.period,
            f"{f.value_text}\nvs {f.threshold_text}",
            escape(f.message),
        )
    if not flags:
        table.add_row("", "", "", "", "no red flags at these thresholds")
    return table
