"""Validation at the edge: raw mappings (YAML, JSON, CLI flags) into domain values.

Every problem is reported with where it was found (file, line, event id) and what was expected.
The core never sees unvalidated input.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from backflush.domain import model as m
from backflush.domain.money import AMOUNT_LIMIT, decimals, fmt, minor_units
from backflush.engine.close import DISPOSABLE
from backflush.engine.standards import StandardError, Standards

#: Digits allowed after the point in quantities, unit costs and prices
#: (money totals: the currency's minor units).
QUANTITY_DECIMALS = 6
PRICE_DECIMALS = 6

#: Magnitudes refused at the edge (absolute values must be below these): quantities, unit
#: costs, unit prices and standards; money amounts. They keep every figure the engine makes
#: well inside its decimal context (see backflush.domain.money.CONTEXT).
QUANTITY_LIMIT = Decimal(10) ** 12

#: Lengths of the database columns these values are stored in (PostgreSQL enforces them).
ID_LENGTH = m.ID_LENGTH
ELEMENT_LENGTH = 64
UOM_LENGTH = 16
NAME_LENGTH = 200

#: ASCII digits only: ``Decimal`` also reads "1_000" and full-width "１０", which a plain
#: decimal (and every other program reading the file) does not.
_DECIMAL_TEXT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


#: How far ahead of today an event written to a book (``post``, ``import``, the HTTP API) may
#: be dated: beyond it a date is taken for a typo (2062 for 2026) that would open a period years
#: ahead and hold back every change of standards until then. ``import --allow-future`` and
#: scenarios run in memory are not bound by it (they may simulate years).
MAX_DAYS_AHEAD = 366


def too_far_ahead(date: dt.date, today: dt.date | None = None) -> str | None:
    """What is wrong with an event's ``date`` posted live, or None."""
    latest = (today or dt.date.today()) + dt.timedelta(days=MAX_DAYS_AHEAD)
    return f"{date} is more than {MAX_DAYS_AHEAD} days ahead (a typo?)" if date > latest else None


#: Days past today an event may be dated on a change of standards not yet in force: a plant
#: east of the server posts its morning's events before the server's midnight.
STANDARDS_GRACE_DAYS = 1


def ahead_of_standards(
    date: dt.date,
    standards: Standards,
    today: dt.date | None = None,
    in_force: dt.date = dt.date.min,
) -> str | None:
    """What is wrong with an event's ``date`` posted live when it falls on or after a change
    of standards not yet in force (a cost set or BOM version released ahead, for the new
    year), beyond a day's grace, or None. The book would put those standards in force at once,
    revaluing stock at them, and refuse events dated before the change from then on, the
    event reversed or not: a typo (2027 for 2026) would stop the plant's postings.
    ``in_force``: the change the book values stock at already (a plan imported ahead)."""
    latest = (today or dt.date.today()) + dt.timedelta(days=STANDARDS_GRACE_DAYS)
    change = standards.first_change_after(max(latest, in_force))
    if change is None or date < change:
        return None
    return (
        f"{date} is on or after {change}, when standards not yet in force change: posting it "
        f"would revalue stock at them now and refuse events dated before {change} (a typo?)"
    )


def live_date_problem(
    date: dt.date,
    standards: Standards,
    today: dt.date | None = None,
    in_force: dt.date = dt.date.min,
) -> str | None:
    """What is wrong with an event's ``date`` posted live (:func:`too_far_ahead`,
    :func:`ahead_of_standards`), or None."""
    return too_far_ahead(date, today) or ahead_of_standards(date, standards, today, in_force)


def too_early(on: dt.date, last: dt.date | None) -> str | None:
    """What is wrong with a change of standards taking effect ``on`` in a book whose last
    event is dated ``last``, or None: past postings never change."""
    if last is None or on > last:
        return None
    after = (
        "standards may change no more"
        if last == dt.date.max
        else f"standards may change from {last + dt.timedelta(days=1)} on"
    )
    return f"takes effect on {on}, on or before the last event recorded ({last}); {after}"


def too_large(value: Decimal, limit: Decimal) -> str | None:
    """The complaint about ``value`` when its magnitude is not below ``limit``, else None."""
    if value.is_finite() and value.adjusted() < limit.adjusted() + 1 and abs(value) < limit:
        return None  # (adjusted() first: abs() of 1e999999999999 overflows the context)
    limited = f"expected less than 10^{limit.adjusted()} in absolute value"
    return f"too large, got {shown(value)}; {limited}"


def shown(value: Decimal) -> str:
    """``value`` as an error message shows it: as :func:`fmt` writes it (``0.00000001``, not
    ``1E-8``) unless that takes more than 40 digits (``1E-999999`` would take a million: a
    message must not be an input's size many times over)."""
    if not value.is_finite() or not -40 < value.adjusted() < 40:
        return f"{value:E}"
    return clipped(fmt(value), 60)


class InputError(ValueError):
    """Input that cannot be accepted; ``problems`` each name where and what was expected."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DuplicateKey(ValueError):
    """A key given twice in one JSON object (json.loads would keep the last silently)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s ``object_pairs_hook`` refusing a key given twice."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


def clipped(text: str, limit: int = 80) -> str:
    """``text`` as an error message shows it: at most ``limit`` characters (an id of 5,000
    characters is named by its start)."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def to_decimal(value: Any) -> Decimal:
    """Exact decimal from a string, an int or a Decimal; floats are refused (they are inexact)."""
    if isinstance(value, bool):
        raise ValueError("expected a decimal number, got a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"expected a finite decimal number, got {value}")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise ValueError("expected a decimal number written as a string, got a binary float")
    if isinstance(value, str):
        text = value.strip()
        if _DECIMAL_TEXT.match(text):
            try:
                return Decimal(text)
            except InvalidOperation:  # pragma: no cover - the pattern admits only valid text
                pass
        raise ValueError(f'expected a decimal number such as "12.50", got {value!r}')
    if value is None:
        raise ValueError("expected a decimal number, got null")
    raise ValueError(f"expected a decimal number, got {type(value).__name__}")


_DATE_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def to_date(value: Any) -> dt.date:
    """A date from a YAML date or a string YYYY-MM-DD; numbers (which pydantic would read as
    Unix timestamps) and dates with a time are refused."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"expected a date YYYY-MM-DD, got a date and time {value.isoformat()}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        if _DATE_TEXT.match(value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError as error:
                raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}: {error}") from None
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")
    raise ValueError(f"expected a date YYYY-MM-DD, got {type(value).__name__} {value!r}")


Dec = Annotated[Decimal, BeforeValidator(to_decimal)]
Date = Annotated[dt.date, BeforeValidator(to_date)]
#: What an id may not hold: control characters (NUL is not text to PostgreSQL) and
#: bidirectional overrides (an id that displays as another one).
_CONTROL = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
#: Nor, in an id given now, an invisible character (Unicode's format characters and default
#: ignorables: zero-width spaces and joiners, soft hyphens, byte order marks, variation
#: selectors, fillers, tags) or a line or paragraph separator.
_INVISIBLE = (
    r"\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    r"\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028\u2029\u2060-\u206f\u3164"
    r"\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
)
#: (those past U+FFFF, which a JSON Schema pattern, ECMA-262's, writes only with its "u" flag)
_INVISIBLE_ASTRAL = (
    r"\U000110bd\U000110cd\U00013430-\U0001343f"
    r"\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
_UNPRINTABLE = _CONTROL + _INVISIBLE + _INVISIBLE_ASTRAL


def _id_pattern(refused: str) -> str:
    """Not empty, no white space at either end (an id that differs only by a space is another
    id), none of ``refused``."""
    return rf"^[^\s{refused}]([^{refused}]*[^\s{refused}])?$"


def _composed(value: str) -> str:
    """``value`` if it is in Unicode's composed form (NFC): written decomposed, ``café`` (an
    e and a combining accent) shows as ``café`` and would be another id."""
    if not unicodedata.is_normalized("NFC", value):
        composed = unicodedata.normalize("NFC", value)
        raise ValueError(
            "expected an id in Unicode's composed form (NFC): a letter and a combining accent "
            "look like the accented letter, another id; got "
            f"{clipped(ascii(value))}, composed {clipped(ascii(composed))}"
        )
    return value


#: The id of what is made now: an item, a work center, a cost set, an event, an order, in
#: Unicode's composed form. (The OpenAPI document gives clients the pattern without the
#: characters past U+FFFF, in escapes every ECMA-262 regex reads: the server still refuses
#: those.)
Identifier = Annotated[
    str,
    Field(
        min_length=1,
        max_length=ID_LENGTH,
        pattern=_id_pattern(_UNPRINTABLE),
        json_schema_extra={"pattern": _id_pattern(_CONTROL + _INVISIBLE)},
    ),
    AfterValidator(_composed),
]
#: An id naming what the book holds (an event's item, the event a reversal takes back): as an
#: :data:`Identifier`, except that what a book took before invisible characters were refused
#: is still named (reversed, written off, explained).
Reference = Annotated[str, Field(min_length=1, max_length=ID_LENGTH, pattern=_id_pattern(_CONTROL))]
#: An element's name holds no ":": it separates the parts of the keys that name an element
#: (``conversion_spending:LATHE:labor``, ``actual_cost:LATHE:labor``).
ELEMENT_PATTERN = r"^[^:]*$"
Element = Annotated[str, Field(max_length=ELEMENT_LENGTH, pattern=ELEMENT_PATTERN)]
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
_REFERENCE: TypeAdapter[str] = TypeAdapter(Reference)


#: A period, YYYY-MM from 0001-01 (a date has no year 0); a currency, ISO 4217's three
#: capital letters.
PERIOD_PATTERN = r"^(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-(0[1-9]|1[0-2])$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
#: What a value that does not match a pattern was expected to be, in words (not the regex).
PATTERN_WORDS = {
    PERIOD_PATTERN: "expected a period YYYY-MM",
    CURRENCY_PATTERN: "expected an ISO 4217 currency code, three capital letters (USD)",
    ELEMENT_PATTERN: "expected an element's name without ':' (it separates the parts of keys)",
}


def is_identifier(value: object) -> bool:
    """Whether ``value`` could be the id of something made now (item, event, token, ...)."""
    return _valid(_IDENTIFIER, value)


def is_reference(value: object) -> bool:
    """Whether ``value`` could name something a book holds (an id it took, then or now)."""
    return _valid(_REFERENCE, value)


def _valid(adapter: TypeAdapter[str], value: object) -> bool:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def _disposition_key(key: str) -> str:
    if key != "default" and key not in DISPOSABLE:
        raise ValueError(f"expected default or one of {', '.join(DISPOSABLE)}, got {key!r}")
    return key


#: A variance type a disposition is chosen for (``default``: every other type).
DispositionKey = Annotated[str, AfterValidator(_disposition_key)]


def _currency(code: str) -> str:
    """An ISO 4217 code (CLDR's list, through Babel, withdrawn codes included): a book's
    currency cannot change once it has one, so a typo (UDS) is refused, not kept."""
    from babel.numbers import list_currencies  # only when a book's settings are read

    if code not in list_currencies():
        raise ValueError(f"unknown currency code {code!r}; expected an ISO 4217 code (USD, EUR)")
    return code


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BookModel(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=NAME_LENGTH)]
    currency: Annotated[str, Field(pattern=CURRENCY_PATTERN), AfterValidator(_currency)] = "USD"
    triggers: m.Policy = m.Policy.PURCHASE_COMPLETION
    #: One disposition for every variance, or one per variance type (``default`` for the rest).
    disposition: m.Disposition | dict[DispositionKey, m.Disposition] = m.Disposition.COGS
    inventory_unsold_conversion: bool = False
    shortage: m.Shortage = m.Shortage.QUEUE
    rounding: Literal["half-even", "half-up"] = "half-even"
    count_variance: m.CountVariance = m.CountVariance.USAGE
    exceptions_at_close: m.ExceptionsAtClose = m.ExceptionsAtClose.WARN
    lower_of_cost: m.LowerOfCost = m.LowerOfCost.IFRS
    journal_detail: m.JournalDetail = m.JournalDetail.EVENT

    def to_domain(self) -> m.Settings:
        if isinstance(self.disposition, dict):
            chosen = dict(self.disposition)
            default = chosen.pop("default", m.Disposition.COGS)
            overrides = tuple(
                (k, chosen[k]) for k in DISPOSABLE if chosen.get(k, default) != default
            )
        else:
            default, overrides = self.disposition, ()
        return m.Settings(
            name=self.name,
            currency=self.currency,
            triggers=self.triggers,
            disposition=default,
            dispositions=overrides,
            inventory_unsold_conversion=self.inventory_unsold_conversion,
            shortage=self.shortage,
            rounding=self.rounding,
            count_variance=self.count_variance,
            exceptions_at_close=self.exceptions_at_close,
            lower_of_cost=self.lower_of_cost,
            journal_detail=self.journal_detail,
        )


class StandardCostModel(_Strict):
    material: Dec | None = None
    conversion: Dec | dict[Annotated[Element, Field(min_length=1)], Dec] | None = None


class ItemModel(_Strict):
    id: Identifier
    kind: m.Kind
    uom: Annotated[str, Field(max_length=UOM_LENGTH)] = "EA"
    flush: m.Flush = m.Flush.BACKWARD
    standard_cost: Dec | StandardCostModel | None = None
    triggers: m.Policy | None = None
    lot_size: Dec = Decimal(1)
    family: Annotated[str, Field(max_length=200)] = ""
    site: Annotated[str, Field(max_length=200)] = ""


OperationNumber = Annotated[int, Field(ge=1, le=99999)]


class BomLineModel(_Strict):
    component: Reference
    quantity: Dec
    scrap: Dec = Decimal(0)
    flush: m.Flush | None = None
    operation: OperationNumber | None = None


class BomModel(_Strict):
    item: Reference
    effective_from: Date | None = None
    effective_to: Date | None = None
    lines: Annotated[list[BomLineModel], Field(min_length=1)]


class WorkCenterModel(_Strict):
    id: Identifier
    name: Annotated[str, Field(max_length=NAME_LENGTH)] = ""
    rates: dict[Annotated[Element, Field(min_length=1)], Dec]


class OperationModel(_Strict):
    operation: OperationNumber
    work_center: Reference
    run_hours: Dec = Decimal(0)
    setup_hours: Dec = Decimal(0)
    yield_: Annotated[Dec, Field(alias="yield")] = Decimal(1)


class RoutingModel(_Strict):
    item: Reference
    effective_from: Date | None = None
    effective_to: Date | None = None
    operations: Annotated[list[OperationModel], Field(min_length=1)]


class CostSetModel(_Strict):
    name: Identifier
    effective: Date | None = None
    materials: dict[Reference, Dec] = Field(default_factory=dict)
    rates: dict[Reference, dict[Annotated[Element, Field(min_length=1)], Dec]] = Field(
        default_factory=dict
    )


class _GivenId(_Strict):
    """An id given apart from the event's fields (its file position, ``--id``), checked as
    one given with them."""

    id: Identifier


class _EventModel(_Strict):
    id: Identifier | None = None
    date: Date


class PurchaseModel(_EventModel):
    type: Literal["purchase"]
    item: Reference
    quantity: Dec
    unit_cost: Dec


class ConversionModel(_EventModel):
    type: Literal["conversion"]
    amount: Dec
    element: Element = ""
    work_center: Reference | None = None
    hours: Dec | None = None


class HoursModel(_EventModel):
    type: Literal["hours"]
    work_center: Reference
    hours: Dec
    element: Element = ""


class CompletionModel(_EventModel):
    type: Literal["completion"]
    item: Reference
    quantity: Dec
    scrapped: Dec = Decimal(0)
    order: Reference | None = None


class SaleModel(_EventModel):
    type: Literal["sale"]
    item: Reference
    quantity: Dec
    unit_price: Dec | None = None


class ScrapModel(_EventModel):
    type: Literal["scrap"]
    item: Reference
    quantity: Dec


class IssueModel(_EventModel):
    type: Literal["issue"]
    item: Reference
    quantity: Dec
    order: Reference | None = None


class ReleaseModel(_EventModel):
    type: Literal["release"]
    item: Reference
    quantity: Dec
    order: Identifier | None = None


class OrderCloseModel(_EventModel):
    type: Literal["order_close"]
    order: Reference


class CountModel(_EventModel):
    type: Literal["count"]
    item: Reference
    quantity: Dec


class ReversalModel(_EventModel):
    type: Literal["reversal"]
    reverses: Reference
    reason: str = ""


class CloseModel(_EventModel):
    type: Literal["close"]
    period: Annotated[str, Field(pattern=PERIOD_PATTERN)]


#: A reason given for the audit trail: some text, not only white space.
Reason = Annotated[str, Field(min_length=1, max_length=1000, pattern=r"\S")]


class ReopenModel(_EventModel):
    type: Literal["reopen"]
    period: Annotated[str, Field(pattern=PERIOD_PATTERN)]
    reason: Reason


class RetryModel(_EventModel):
    type: Literal["retry"]
    item: Reference | None = None


class WriteOffModel(_EventModel):
    type: Literal["write_off"]
    event: Reference
    item: Reference
    reason: Reason


class NrvModel(_EventModel):
    type: Literal["nrv"]
    item: Reference
    unit_value: Dec


EventModel = Annotated[
    PurchaseModel
    | ConversionModel
    | HoursModel
    | CompletionModel
    | SaleModel
    | ScrapModel
    | IssueModel
    | ReleaseModel
    | OrderCloseModel
    | CountModel
    | ReversalModel
    | CloseModel
    | ReopenModel
    | RetryModel
    | WriteOffModel
    | NrvModel,
    Field(discriminator="type"),
]


def _work_center_problems(label: str, values: dict[str, Any], master: m.MasterData) -> list[str]:
    """A work center named by an event must exist and rate the element it names; hours
    reported on a conversion cost need the work center they were worked at."""
    center = values.get("work_center")
    if center is None:
        if values.get("hours") is not None:
            return [f"{label}: hours: hours are reported at a work center; give work_center"]
        return []
    known = master.work_centers.get(center)
    if known is None:
        return [f"{label}: work_center: unknown work center {center!r}"]
    element, rated = values.get("element", ""), [e for e, _ in known.rates]
    if element and element not in rated:
        return [
            f"{label}: element: work center {center} has no rate for {element!r} "
            f"(it rates {', '.join(rated)})"
        ]
    if not element and "amount" in values:
        return [
            f"{label}: element: a conversion cost at a work center needs its element "
            f"(one of {', '.join(rated)})"
        ]
    return []


#: The conversion elements of master data seen lately, by the master data's identity (it
#: is kept alongside, so the identity cannot be reused): a stream checks each conversion.
_ELEMENTS: dict[int, tuple[m.MasterData, frozenset[str]]] = {}


def elements_of(master: m.MasterData) -> frozenset[str]:
    """The conversion elements ``master`` names: items' conversion standards, work centers'
    rates, cost sets' rates."""
    found = _ELEMENTS.get(id(master))
    if found is not None and found[0] is master:
        return found[1]
    named = {e for item in master.items.values() for e, _ in item.conversion}
    named |= {e for center in master.work_centers.values() for e, _ in center.rates}
    named |= {e for cost_set in master.cost_sets.values() for _, e, _ in cost_set.rates}
    if len(_ELEMENTS) >= 8:
        _ELEMENTS.clear()
    elements = frozenset(named - {""})
    _ELEMENTS[id(master)] = (master, elements)
    return elements


_EVENT_MODELS: dict[str, type[_EventModel]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in _EventModel.__subclasses__()
}


#: Every field an event of some type may have (the columns an event table may have).
EVENT_FIELDS: frozenset[str] = frozenset(
    name for model in _EVENT_MODELS.values() for name in model.model_fields
)


class _EventEnvelope(BaseModel):
    event: EventModel


def _is_tag(part: object) -> bool:
    """A location part naming a union member ('function-before[...]', 'StandardCostModel')."""
    return isinstance(part, str) and ("[" in part or part[:1].isupper())


_TYPE_MISMATCH = {"model_type", "dict_type", "model_attributes_type"}


def fields_of(*models: type[BaseModel]) -> Callable[[tuple[Any, ...]], Iterable[str]]:
    """The fields allowed where an unknown one was found: the first model at the top level,
    the next inside the first list (a BOM's lines)."""

    def allowed(loc: tuple[Any, ...]) -> Iterable[str]:
        depth = min(sum(isinstance(p, int) for p in loc), len(models) - 1)
        return models[depth].model_fields

    return allowed


def describe(
    error: ValidationError,
    skip: int = 0,
    allowed: Callable[[tuple[Any, ...]], Iterable[str]] | None = None,
) -> list[str]:
    """Pydantic errors as 'field: message' lines, worded for people: union members that the
    input was clearly not meant for are left out, the bad value is echoed, list positions
    count from 1. ``skip`` drops leading location parts; ``allowed`` lists the known fields."""
    problems = error.errors()
    fields: dict[object, int] = {}
    for problem in problems:
        key = next((p for p in problem["loc"][skip:] if not _is_tag(p)), None)
        fields[key] = fields.get(key, 0) + 1
    found = []
    for problem in problems:
        loc = problem["loc"][skip:]
        field = next((p for p in loc if not _is_tag(p)), None)
        message = problem["msg"].removeprefix("Value error, ")
        if fields[field] > 1 and (
            problem["type"] in _TYPE_MISMATCH or message.endswith("got dict")
        ):
            continue  # another member of the union explains what is wrong
        location = ".".join(str(p) for p in loc if not _is_tag(p))
        location = re.sub(r"lines\.(\d+)(\.|$)", lambda g: f"line {int(g[1]) + 1}: ", location)
        location = location.rstrip(": ") or "event"
        kind = problem["type"]
        if kind == "union_tag_invalid":
            given = problem.get("ctx", {}).get("tag")
            message = f"unknown event type {given!r}; expected one of " + ", ".join(
                sorted(m.EVENT_TYPES)
            )
            location = "type"
        elif kind == "union_tag_not_found":
            message = "missing; expected one of " + ", ".join(sorted(m.EVENT_TYPES))
            location = "type"
        elif kind == "extra_forbidden":
            known = sorted(allowed(loc)) if allowed else []
            message = "unknown field" + (f"; expected one of {', '.join(known)}" if known else "")
        elif kind != "missing" and message.startswith("Input should"):
            message = f"{message}, got {clipped(repr(problem['input']))}"
        elif kind == "string_pattern_mismatch" and problem["ctx"]["pattern"] in PATTERN_WORDS:
            message = (
                f"{PATTERN_WORDS[problem['ctx']['pattern']]}, got {clipped(repr(problem['input']))}"
            )
        elif kind == "string_pattern_mismatch" and _CONTROL in problem["ctx"]["pattern"]:
            message = (
                "expected an id: no white space at either end, no control, bidirectional or "
                f"invisible characters, got {clipped(repr(problem['input']))}"
            )
        found.append(f"{location}: {message}")
    return found


# ---------------------------------------------------------------- master data


#: Key of a BOM line or routing operation mapping that gives its own location (a table's row).
WHERE = "@where"

Raw = Iterable[tuple[str, Mapping[str, Any]]]


def build_master(
    items: Raw,
    boms: Raw,
    settings: m.Settings,
    *,
    work_centers: Raw = (),
    routings: Raw = (),
    cost_sets: Raw = (),
    known: m.MasterData | None = None,
    last_event: dt.date | None = None,
) -> m.MasterData:
    """Master data from raw mappings, each with a description of where it came from. With
    ``known`` (the book's master data), BOMs, routings and cost sets may name its items and
    work centers, and the standards are checked with it merged in; what is returned is only
    what the mappings hold. With ``last_event`` (the date of the book's), a new version of a
    known item's BOM or routing, or a cost set released, must take effect after it."""
    book = known or m.MasterData({}, {})
    problems: list[str] = []
    parsed_items: dict[str, m.Item] = {}
    refused: set[str] = set()  # items already reported: BOMs naming them are not reported again
    sources: dict[str, str] = {}  # where each item's BOMs were read
    version_at: dict[tuple[str, str, dt.date], str] = {}  # where each version was read
    items_at: dict[str, str] = {}  # where each item was read
    for where, raw in items:
        try:
            model = ItemModel.model_validate(raw)
        except ValidationError as error:
            problems += [
                f"{where}: item {raw.get('id', '?')}: {p}"
                for p in describe(error, allowed=fields_of(ItemModel))
            ]
            refused.add(str(raw.get("id")))
            continue
        if model.id in parsed_items:
            problems.append(f"{where}: item {model.id}: duplicate item id")
            continue
        item = _item(model, settings, where, problems)
        if item is not None and book.items.get(model.id, item) != item:
            # (the store refuses it too; here, where it was read is known)
            problems.append(f"{where}: {redefined_item(model.id)}")
            item = None
        if item is None:
            refused.add(model.id)
        else:
            parsed_items[model.id] = item
            items_at[model.id] = where
    centers = _work_centers(work_centers, problems)
    versions: dict[str, list[m.Bom]] = {}
    for where, raw in boms:
        line_wheres, raw = _line_wheres(raw, "lines")
        here = f"{where}: BOM of {raw.get('item', '?')}"
        try:
            bom_model = BomModel.model_validate(raw)
        except ValidationError as error:
            found = describe(error, allowed=fields_of(BomModel, BomLineModel))
            problems += _located(found, here, line_wheres)
            continue
        if {bom_model.item, *(line.component for line in bom_model.lines)} & refused:
            continue
        bom = _bom(bom_model, ChainMap(parsed_items, book.items), here, line_wheres, problems)
        if bom is not None:
            _check_change(bom, book.boms, book, last_event, here, problems)
            versions.setdefault(bom.item, []).append(bom)
            sources.setdefault(bom.item, where)
            version_at[("BOM", bom.item, bom.effective_from)] = where
    routing_versions: dict[str, list[m.Routing]] = {}
    for where, raw in routings:
        line_wheres, raw = _line_wheres(raw, "operations")
        here = f"{where}: routing of {raw.get('item', '?')}"
        try:
            routing_model = RoutingModel.model_validate(raw)
        except ValidationError as error:
            found = describe(error, allowed=fields_of(RoutingModel, OperationModel))
            problems += _located(found, here, line_wheres)
            continue
        if routing_model.item in refused:
            continue
        routing = _routing(
            routing_model,
            ChainMap(parsed_items, book.items),
            ChainMap(centers, book.work_centers),
            here,
            line_wheres,
            problems,
        )
        if routing is not None:
            _check_change(routing, book.routings, book, last_event, here, problems)
            routing_versions.setdefault(routing.item, []).append(routing)
            version_at[("routing", routing.item, routing.effective_from)] = where
    sets = _cost_sets(
        cost_sets,
        ChainMap(parsed_items, book.items),
        ChainMap(centers, book.work_centers),
        problems,
        known=book.cost_sets,
        last_event=last_event,
    )
    ordered = {k: tuple(sorted(v, key=lambda b: b.effective_from)) for k, v in versions.items()}
    ordered_routings = {
        k: tuple(sorted(v, key=lambda r: r.effective_from)) for k, v in routing_versions.items()
    }
    master = m.MasterData(parsed_items, ordered, centers, ordered_routings, sets)
    whole = book.merged(master)
    problems += check_versions(whole, version_at)
    if problems:
        raise InputError(problems)
    check_standards(whole, settings, sources, items_at)
    return master


def redefined_item(item_id: str) -> str:
    """The problem of an item given again with another definition than the book's."""
    return (
        f"item {item_id}: already in the book with a different definition (standards change "
        "through a new BOM version or a cost set, not a re-import)"
    )


def redefined_version(effective_from: dt.date) -> str:
    """The problem of a BOM or routing version given again with other content."""
    when = "the start" if effective_from == dt.date.min else effective_from.isoformat()
    return (
        f"a version effective from {when} is in the book already, with other content; add a "
        "new version with a later effective_from"
    )


def _check_change(
    version: m.Bom | m.Routing,
    stored: Mapping[str, Sequence[m.Bom | m.Routing]],
    book: m.MasterData,
    last_event: dt.date | None,
    here: str,
    problems: list[str],
) -> None:
    """A new version of a known item's BOM or routing takes effect after the last event (a
    new item has no postings to change; a version the book holds already changes nothing)."""
    if version.item not in book.items:
        return
    same = [v for v in stored.get(version.item, ()) if v.effective_from == version.effective_from]
    if same:
        if same[0] != version:  # (the store refuses it too; here, where it was read is known)
            problems.append(f"{here}: effective_from: {redefined_version(version.effective_from)}")
        return
    early = too_early(version.effective_from, last_event)
    if early is not None:
        problems.append(f"{here}: effective_from: {early}")


def _line_wheres(raw: Mapping[str, Any], key: str) -> tuple[list[str | None], Mapping[str, Any]]:
    """The locations the lines under ``key`` carry (:data:`WHERE`), and ``raw`` without them."""
    lines = raw.get(key)
    if not isinstance(lines, list):
        return [], raw
    wheres = [line.get(WHERE) if isinstance(line, Mapping) else None for line in lines]
    if not any(wheres):
        return wheres, raw
    stripped = [
        {k: v for k, v in line.items() if k != WHERE} if isinstance(line, Mapping) else line
        for line in lines
    ]
    return wheres, {**raw, key: stripped}


_LINE_PREFIX = re.compile(r"^(?:line|operations line) (\d+): (.*)$")


def _located(problems: list[str], here: str, line_wheres: list[str | None]) -> list[str]:
    """``problems`` prefixed with ``here``; a problem of a line that has its own location is
    told at that location instead."""
    found = []
    for problem in problems:
        match = _LINE_PREFIX.match(problem)
        if match and int(match[1]) <= len(line_wheres) and line_wheres[int(match[1]) - 1]:
            parent = here.split(": ", 1)[-1]
            label = problem.split(": ", 1)[0]
            found.append(f"{line_wheres[int(match[1]) - 1]}: {parent}: {label}: {match[2]}")
        else:
            found.append(f"{here}: {problem}")
    return found


def check_versions(
    master: m.MasterData, at: Mapping[tuple[str, str, dt.date], str] | None = None
) -> list[str]:
    """The versions of each BOM and routing follow each other without a gap or an overlap.
    ``at``: where versions were read, by ("BOM" or "routing", item, effective_from): a
    problem is told where the version it is about (the later of two) was read."""
    problems = []
    for kind, by_parent in (("BOM", master.boms), ("routing", master.routings)):
        for parent, versions in by_parent.items():

            def where(version: m.Bom | m.Routing, parent: str = parent, kind: str = kind) -> str:
                found = (at or {}).get((kind, parent, version.effective_from))
                return f"{found}: " if found else ""

            problems += _check_versions(f"{kind} of {parent}", versions, where)
    return problems


def _check_versions(
    what: str,
    versions: Sequence[m.Bom | m.Routing],
    where: Callable[[m.Bom | m.Routing], str],
) -> list[str]:
    """Versions of one BOM or routing follow each other without a gap or an overlap."""
    problems = []
    for earlier, later in itertools.pairwise(versions):
        start, here = later.effective_from, f"{where(later)}{what}"
        if earlier.effective_from == start:
            problems.append(f"{here}: two versions effective from {start}")
        elif earlier.effective_to is not None:
            end = earlier.effective_to
            if end >= start:
                problems.append(
                    f"{here}: versions overlap: the version from {earlier.effective_from} runs "
                    f"to {end}, the next starts {start}"
                )
            elif end + dt.timedelta(days=1) < start:
                problems.append(
                    f"{here}: gap between versions: nothing is effective from "
                    f"{end + dt.timedelta(days=1)} to {start - dt.timedelta(days=1)}"
                )
    for version in versions:
        if version.effective_to is not None and version.effective_to < version.effective_from:
            problems.append(
                f"{where(version)}{what}: the version from {version.effective_from} ends before "
                f"it starts (effective_to {version.effective_to})"
            )
    last = versions[-1] if versions else None
    if last is not None and last.effective_to is not None:
        problems.append(
            f"{where(last)}{what}: gap after the last version: nothing is effective after "
            f"{last.effective_to}; leave effective_to empty on the last version"
        )
    return problems


def _check_figure(here: str, value: Decimal, limit_decimals: int, problems: list[str]) -> bool:
    """A standard's figure: zero or more, below the limit, with few enough decimals."""
    if value < 0:
        problems.append(f"{here}: expected zero or more, got {value}")
        return False
    large = too_large(value, QUANTITY_LIMIT)
    if large is not None:
        problems.append(f"{here}: {large}")
        return False
    if decimals(value) > limit_decimals:
        problems.append(f"{here}: at most {limit_decimals} decimals, got {value}")
        return False
    return True


def _work_centers(raws: Raw, problems: list[str]) -> dict[str, m.WorkCenter]:
    centers: dict[str, m.WorkCenter] = {}
    for where, raw in raws:
        here = f"{where}: work center {raw.get('id', '?')}"
        try:
            model = WorkCenterModel.model_validate(raw)
        except ValidationError as error:
            problems += [
                f"{here}: {p}" for p in describe(error, allowed=fields_of(WorkCenterModel))
            ]
            continue
        if model.id in centers:
            problems.append(f"{here}: duplicate work center id")
            continue
        before = len(problems)
        for element, rate in model.rates.items():
            _check_figure(f"{here}: rates.{element}", rate, PRICE_DECIMALS, problems)
        if len(problems) == before:
            centers[model.id] = m.WorkCenter(model.id, tuple(model.rates.items()), model.name)
    return centers


def _check_made(
    item: str, items: Mapping[str, m.Item], here: str, what: str, problems: list[str]
) -> None:
    """``item`` is a made item (a BOM's or routing's parent)."""
    parent = items.get(item)
    if parent is None:
        problems.append(f"{here}: unknown item {item!r}")
    elif parent.kind is m.Kind.MATERIAL:
        problems.append(f"{here}: {item} is a purchased material; only made items {what}")


def _routing(
    model: RoutingModel,
    items: Mapping[str, m.Item],
    centers: Mapping[str, m.WorkCenter],
    here: str,
    line_wheres: list[str | None],
    problems: list[str],
) -> m.Routing | None:
    before = len(problems)
    _check_made(model.item, items, here, "are routed", problems)
    operations = []
    seen: set[int] = set()
    for n, op in enumerate(model.operations, 1):
        own = line_wheres[n - 1] if n <= len(line_wheres) else None
        at = (
            f"{own}: routing of {model.item}: operations line {n}"
            if own
            else f"{here}: operations line {n}"
        )
        if op.operation in seen:
            problems.append(f"{at}: operation: {op.operation} appears twice")
        seen.add(op.operation)
        if op.work_center not in centers:
            problems.append(f"{at}: work_center: unknown work center {op.work_center!r}")
        _check_figure(f"{at}: run_hours", op.run_hours, QUANTITY_DECIMALS, problems)
        _check_figure(f"{at}: setup_hours", op.setup_hours, QUANTITY_DECIMALS, problems)
        if not 0 < op.yield_ <= 1:
            problems.append(
                f"{at}: yield: expected a share above 0 up to 1 (0.98 = 2% lost), got {op.yield_}"
            )
        elif decimals(op.yield_) > QUANTITY_DECIMALS:
            problems.append(f"{at}: yield: at most {QUANTITY_DECIMALS} decimals")
        operations.append(
            m.Operation(op.operation, op.work_center, op.run_hours, op.setup_hours, op.yield_)
        )
    if len(problems) > before:
        return None
    operations.sort(key=lambda o: o.number)
    return m.Routing(
        model.item, tuple(operations), model.effective_from or dt.date.min, model.effective_to
    )


def _cost_sets(
    raws: Raw,
    items: Mapping[str, m.Item],
    centers: Mapping[str, m.WorkCenter],
    problems: list[str],
    *,
    known: Mapping[str, m.CostSet],
    last_event: dt.date | None,
) -> dict[str, m.CostSet]:
    """Cost sets from raw mappings. One the book holds (``known``) must be the same; one new
    and released must take effect after the book's last event (``last_event``)."""
    sets: dict[str, m.CostSet] = {}
    for where, raw in raws:
        here = f"{where}: cost set {raw.get('name', '?')}"
        try:
            model = CostSetModel.model_validate(raw)
        except ValidationError as error:
            problems += [f"{here}: {p}" for p in describe(error, allowed=fields_of(CostSetModel))]
            continue
        before = len(problems)
        if model.name in sets:
            problems.append(f"{here}: duplicate cost set name")
        for item_id, cost in model.materials.items():
            item = items.get(item_id)
            if item is None:
                problems.append(f"{here}: materials.{item_id}: unknown item")
            elif item.kind is not m.Kind.MATERIAL:
                problems.append(
                    f"{here}: materials.{item_id}: {item_id} is a {item.kind.value}; "
                    "a made item's standard is rolled up"
                )
            _check_figure(f"{here}: materials.{item_id}", cost, PRICE_DECIMALS, problems)
        rates = []
        for center, by_element in model.rates.items():
            if center not in centers:
                problems.append(f"{here}: rates.{center}: unknown work center")
            for element, rate in by_element.items():
                _check_figure(f"{here}: rates.{center}.{element}", rate, PRICE_DECIMALS, problems)
                rates.append((center, element, rate))
        if not model.materials and not rates:
            problems.append(f"{here}: sets nothing: expected materials or rates")
        if len(problems) > before:
            continue
        materials = tuple(model.materials.items())
        cost_set = m.CostSet(model.name, materials, tuple(rates), model.effective)
        held = known.get(model.name)
        early = None if model.effective is None else too_early(model.effective, last_event)
        if held is not None and held != cost_set:
            # (the store refuses both too; here, where it was read is known)
            problems.append(f"{here}: already in the book with different content")
        elif held is None and early is not None:
            problems.append(f"{here}: effective: {early}")
        else:
            sets[model.name] = cost_set
    released: dict[dt.date, str] = {}
    for cost_set in sets.values():
        if cost_set.effective is None:
            continue
        other = released.setdefault(cost_set.effective, cost_set.name)
        if other != cost_set.name:
            problems.append(
                f"cost sets {other} and {cost_set.name}: both released effective "
                f"{cost_set.effective}; release one set per date"
            )
    return sets


def _item(model: ItemModel, settings: m.Settings, where: str, problems: list[str]) -> m.Item | None:
    here = f"{where}: item {model.id}"
    cost = model.standard_cost
    material: Decimal | None = None
    conversion: tuple[tuple[str, Decimal], ...] = ()
    if isinstance(cost, Decimal):
        if model.kind is not m.Kind.MATERIAL:
            problems.append(
                f"{here}: standard_cost: a made item's standard is "
                "{material: ..., conversion: ...}; its material is rolled up from its BOM"
            )
            return None
        material = cost
    elif cost is not None:
        material = cost.material
        if isinstance(cost.conversion, Decimal):
            conversion = (("", cost.conversion),)
        elif cost.conversion:
            conversion = tuple(cost.conversion.items())
        if model.kind is m.Kind.MATERIAL and conversion:
            problems.append(f"{here}: standard_cost.conversion: a purchased material has none")
    for field_name, value in [
        ("material", material),
        *((f"conversion.{e or ''}".rstrip("."), v) for e, v in conversion),
    ]:
        if value is not None and value < 0:
            problems.append(
                f"{here}: standard_cost.{field_name}: expected zero or more, got {value}"
            )
        large = None if value is None else too_large(value, QUANTITY_LIMIT)
        if large is not None:
            problems.append(f"{here}: standard_cost.{field_name}: {large}")
        elif value is not None and decimals(value) > PRICE_DECIMALS:
            problems.append(
                f"{here}: standard_cost.{field_name}: "
                f"at most {PRICE_DECIMALS} decimals, got {value}"
            )
    if model.kind is m.Kind.MATERIAL and material is None:
        problems.append(f"{here}: standard_cost: empty; a material needs its standard cost")
    policy = model.triggers
    if policy is not None and (policy is m.Policy.SEQUENTIAL) != (
        settings.triggers is m.Policy.SEQUENTIAL
    ):
        problems.append(
            f"{here}: triggers: {policy.value} cannot be mixed with the book's "
            f"{settings.triggers.value}; sequential costing is a whole-book comparison"
        )
    elif policy is not None and policy.periodic:
        problems.append(
            f"{here}: triggers: {policy.value} is a periodic method for the whole book, not "
            f"for one item: set it as book: triggers: {policy.value}"
        )
    elif policy is not None and settings.triggers.periodic:
        problems.append(
            f"{here}: triggers: the book's {settings.triggers.value} is a periodic method for "
            f"the whole book; an item cannot override it (got {policy.value})"
        )
    if model.lot_size <= 0:
        problems.append(
            f"{here}: lot_size: expected more than zero (units per lot), got {model.lot_size}"
        )
    elif not _check_figure(f"{here}: lot_size", model.lot_size, QUANTITY_DECIMALS, problems):
        pass
    return m.Item(
        model.id,
        model.kind,
        model.uom,
        model.flush,
        material,
        conversion,
        policy,
        model.lot_size,
        model.family.strip(),
        model.site.strip(),
    )


def _bom(
    model: BomModel,
    items: Mapping[str, m.Item],
    here: str,
    line_wheres: list[str | None],
    problems: list[str],
) -> m.Bom | None:
    before = len(problems)
    _check_made(model.item, items, here, "have BOMs", problems)
    lines = []
    for n, line in enumerate(model.lines, 1):
        own = line_wheres[n - 1] if n <= len(line_wheres) else None
        at = f"{own}: BOM of {model.item}: line {n}" if own else f"{here}: line {n}"
        if line.component not in items:
            problems.append(f"{at}: component: unknown item {line.component!r}")
        if line.quantity <= 0:
            problems.append(f"{at}: quantity: expected more than zero, got {line.quantity}")
        large = too_large(line.quantity, QUANTITY_LIMIT)
        if large is not None:
            problems.append(f"{at}: quantity: {large}")
        elif decimals(line.quantity) > QUANTITY_DECIMALS:
            problems.append(f"{at}: quantity: at most {QUANTITY_DECIMALS} decimals")
        if not 0 <= line.scrap < 1:
            problems.append(
                f"{at}: scrap: expected a factor from 0 up to 1 (0.02 = 2%), got {line.scrap}"
            )
        elif decimals(line.scrap) > QUANTITY_DECIMALS:
            problems.append(f"{at}: scrap: at most {QUANTITY_DECIMALS} decimals")
        lines.append(
            m.BomLine(line.component, line.quantity, line.scrap, line.flush, line.operation)
        )
    if len(problems) > before:
        return None
    return m.Bom(model.item, tuple(lines), model.effective_from or dt.date.min, model.effective_to)


def check_standards(
    master: m.MasterData,
    settings: m.Settings,
    sources: Mapping[str, str] | None = None,
    items_at: Mapping[str, str] | None = None,
) -> None:
    """Roll up every item on every BOM version date: cycles and missing standards surface here,
    each once, with where its BOMs (``sources``) or the item itself (``items_at``) were read
    when that is known."""
    standards = Standards(settings, master)
    dates = {dt.date.min, *master.change_dates()}
    problems = []
    cycles: set[frozenset[str]] = set()
    for item_id, item in master.items.items():
        if item.kind is m.Kind.PHANTOM and not master.boms.get(item_id):
            problems.append(f"item {item_id}: a phantom needs a BOM")
            continue
        versions = master.boms.get(item_id, ())
        # A new product has no standard before its first BOM version: nothing to check there.
        first = versions[0].effective_from if versions and item.material_cost is None else None
        for on in sorted(d for d in dates if first is None or d >= first):
            try:
                standards.unit_cost(item_id, on)
            except StandardError as error:
                message = str(error)
                if message.startswith("BOM cycle: "):
                    members = message.removeprefix("BOM cycle: ").split(" -> ")
                    if frozenset(members) in cycles:
                        break
                    cycles.add(frozenset(members))
                    places = [
                        sources[i] for i in dict.fromkeys(members) if sources and i in sources
                    ]
                    if places:
                        message += f" (BOMs at {', '.join(places)})"
                elif items_at and item_id in items_at and f"item {item_id!r} " in message:
                    message = f"{items_at[item_id]}: {message}"
                if message not in problems:
                    problems.append(message)
                break
    if problems:
        raise InputError(problems)


# ---------------------------------------------------------------- events


def build_event(
    raw: Mapping[str, Any],
    master: m.MasterData,
    settings: m.Settings,
    *,
    where: str,
    default_id: str | None = None,
) -> m.Event:
    """One event from a raw mapping; raises InputError naming ``where``, the id and the field."""
    label = f"{where}: event {clipped(str(raw.get('id') or default_id or '?'))}"
    try:
        model = _EventEnvelope.model_validate({"event": dict(raw)}).event
    except ValidationError as error:
        model_class = _EVENT_MODELS.get(str(raw.get("type")))
        allowed = fields_of(model_class) if model_class else None
        raise InputError([f"{label}: {p}" for p in describe(error, 2, allowed)]) from None
    event_id = model.id or default_id
    if event_id is None:
        raise InputError([f"{label}: id: required (it makes sending an event again safe)"])
    problems: list[str] = []
    if model.id is None:  # a default id (file position, --id, generated) is checked the same
        try:
            _GivenId.model_validate({"id": event_id})
        except ValidationError as error:
            problems += [f"{label}: {p}" for p in describe(error)]
    values = model.model_dump(exclude={"type", "id"})
    for optional in ("order", "work_center", "hours"):
        if optional in values and values[optional] is None:
            del values[optional]  # e.g. reported without a production order
    problems += _work_center_problems(label, values, master)
    element = values.get("element")
    if model.type == "conversion" and element and "work_center" not in values:
        named = elements_of(master)  # none named: any element is the plant's own
        if named and element not in named:
            problems.append(
                f"{label}: element: unknown conversion element {element!r}; the master data "
                f"names {', '.join(sorted(named))} (or give none)"
            )
    if model.type == "retry" and values.get("item") is None:
        del values["item"]  # every item with consumption waiting
    item = values.get("item")
    if item is not None:
        known = master.items.get(item)
        if known is None:
            problems.append(f"{label}: item: unknown item {item!r}")
        elif known.kind is m.Kind.PHANTOM:
            problems.append(f"{label}: item: {item} is a phantom, never stocked or reported")
    money = minor_units(settings.currency)
    for name, value in values.items():
        if not isinstance(value, Decimal):
            continue
        large = too_large(value, AMOUNT_LIMIT if name == "amount" else QUANTITY_LIMIT)
        if large is not None:
            problems.append(f"{label}: {name}: {large}")
            continue
        if name == "amount":
            if value <= 0:
                problems.append(f"{label}: amount: expected more than zero, got {shown(value)}")
            if decimals(value) > money:
                problems.append(
                    f"{label}: amount: {shown(value)} has more decimals than {settings.currency} "
                    f"allows ({money})"
                )
            continue
        limit = PRICE_DECIMALS if name.startswith("unit_") else QUANTITY_DECIMALS
        if decimals(value) > limit:
            problems.append(f"{label}: {name}: {shown(value)} has more than {limit} decimals")
        if name in ("unit_cost", "unit_price", "unit_value", "scrapped") or (
            name == "quantity" and model.type in ("count", "completion")
        ):
            if value < 0:
                problems.append(f"{label}: {name}: expected zero or more, got {shown(value)}")
        elif value <= 0:
            problems.append(f"{label}: {name}: expected more than zero, got {shown(value)}")
    if model.type == "completion" and not problems and values["quantity"] + values["scrapped"] <= 0:
        problems.append(f"{label}: quantity: a completion needs good or scrapped units")
    if problems:
        raise InputError(problems)
    cls = m.EVENT_TYPES[model.type]
    return cls(id=event_id, **values)
