"""The per-event fast paths (issue 7) write what the plain code they replace wrote.

Each is checked against the general form it stands for: ``Detail.to_json`` against
``json.dumps`` of the same body, ``scaled_text`` against ``format(..., "f")``, the frozen
dataclasses' direct ``__init__`` against dataclass behaviour, the cached holdings without
conversion and standard hours against what they are worked out from, the JSON lines decoder
against ``json.loads``, a completion's consumption summed per unit against valuing one
component at a time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from decimal import Decimal, Inexact, localcontext
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backflush.book import Book
from backflush.domain import model as m
from backflush.domain.journal import KindFigures, summarize
from backflush.domain.money import CONTEXT
from backflush.engine.flush import EntryBuilder, take_consumed, take_each
from backflush.engine.standards import Standards, without_conversion
from backflush.formats.inputs import InputError
from backflush.formats.scenario import read_scenario
from backflush.formats.streams import read_events
from backflush.store.schema import scaled_text
from backflush.store.summaries import Detail, read_detail
from helpers import EXAMPLE_NAMES, EXAMPLES

#: Text a memo, an element or an item may hold: quotes, backslashes, control characters,
#: non-ASCII letters and characters JSON escapes.
TEXT = st.text(alphabet=st.sampled_from('ab "\\/\n\t\x01\x7féÉ中\u2028\U0001f600'), max_size=8)
AMOUNTS = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d.adjusted()) < 30
)


def reference_scaled_text(value: Decimal) -> str:
    return format(abs(value) if value.is_zero() else value, "f")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1E+2", "100"),
        ("-0.00", "0.00"),
        ("-0", "0"),
        ("0E-8", "0.00000000"),
        ("-0E+3", "0"),
        ("1E-7", "0.0000001"),
        ("-1.50", "-1.50"),
        ("123456789012345678901234567890.123", "123456789012345678901234567890.123"),
    ],
)
def test_scaled_text_examples(value: str, text: str) -> None:
    assert scaled_text(Decimal(value)) == text


@given(AMOUNTS)
def test_scaled_text_is_format_f(value: Decimal) -> None:
    assert scaled_text(value) == reference_scaled_text(value)
    assert scaled_text(-value) == reference_scaled_text(-value)


def reference_json(detail: Detail) -> str:
    body = {
        "entries": [
            [
                entry.date.isoformat(),
                entry.memo,
                [
                    [line.account.value, line.element, line.item, scaled_text(line.amount)]
                    for line in entry.lines
                ],
            ]
            for entry in detail.entries
        ],
        "movements": [
            [mv.item, scaled_text(mv.on_hand), scaled_text(mv.in_process)]
            for mv in detail.movements
        ],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


LINES = st.builds(m.Line, st.sampled_from(list(m.Account)), AMOUNTS, TEXT, TEXT)
ENTRIES = st.builds(
    m.Entry,
    st.dates(dt.date(2000, 1, 1), dt.date(2100, 12, 31)),
    st.just("e1"),
    TEXT,
    st.lists(LINES, max_size=4).map(tuple),
)
MOVEMENTS = st.builds(m.Movement, TEXT, AMOUNTS, AMOUNTS)


@given(st.lists(ENTRIES, max_size=3), st.lists(MOVEMENTS, max_size=4))
def test_detail_json_is_json_dumps(entries: list[m.Entry], movements: list[m.Movement]) -> None:
    detail = Detail("completion 2026-01-05", entries, movements)
    text = detail.to_json()
    assert text == reference_json(detail)
    kept_entries, kept_movements = read_detail("e1", text)
    assert [e.memo for e in kept_entries] == [e.memo for e in entries]
    assert [mv.item for mv in kept_movements] == [mv.item for mv in movements]


def test_direct_init_keeps_dataclass_behaviour() -> None:
    movement = m.Movement("M", Decimal("2"))
    assert movement == m.Movement(item="M", on_hand=Decimal("2"), in_process=Decimal(0))
    assert repr(movement) == ("Movement(item='M', on_hand=Decimal('2'), in_process=Decimal('0'))")
    assert hash(movement) == hash(m.Movement("M", Decimal("2")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        movement.on_hand = Decimal(1)  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'item'"):
        m.Movement()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'quantity'"):
        m.Movement("M", quantity=Decimal(1))  # type: ignore[call-arg]
    line = dataclasses.replace(m.Line(m.Account.COGS, Decimal("1.00")), item="F")
    assert (line.account, line.amount, line.element, line.item) == (
        m.Account.COGS,
        Decimal("1.00"),
        "",
        "F",
    )
    short = m.ShortageEntry("e", dt.date(2026, 1, 1), "M", Decimal(1), Decimal(1))
    assert (short.kind, short.into_process) == ("shortage", False)
    assert m.Entry.__init__.__qualname__ == "Entry.__init__"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_cached_holdings_and_hours(name: str) -> None:
    scenario = read_scenario(EXAMPLES / f"{name}.yaml")
    standards = Standards(scenario.settings, scenario.master)
    dates = [dt.date.min, *scenario.master.change_dates()]
    for on in dates:
        for item_id, item in scenario.master.items.items():
            if item.kind is m.Kind.PHANTOM:
                continue
            try:
                holding = standards.holding(item_id, on)
            except (ValueError, KeyError):
                continue
            bare = standards.holding(item_id, on, conversion=False)
            assert bare == without_conversion(holding)
            assert standards.holdings([item_id], on, conversion=False) == [bare]
            hours = standards.work_center_hours(item_id, on)
            assert standards.standard_hours(item_id, on) == tuple(hours.items())


def test_summarize_adds_to_what_was_there() -> None:
    day = dt.date(2026, 1, 5)
    lines = (m.Line(m.Account.COGS, Decimal("2.50")), m.Line(m.Account.SALES, Decimal("-2.50")))
    entries = [
        m.Entry(day, "a", "sale 1 F", lines),
        m.Entry(day, "b", "completion 1 F", lines[:1]),
        m.Entry(day, "c", "sale 2 F", lines),
    ]
    before = {("2026-01", "sale"): KindFigures(3, 7, Decimal("1.000"))}
    found = summarize(entries, before)
    assert found is before
    assert list(found) == [("2026-01", "sale"), ("2026-01", "completion")]
    assert found[("2026-01", "sale")] == KindFigures(5, 11, Decimal("6.000"))
    assert found[("2026-01", "completion")] == KindFigures(1, 1, Decimal("2.50"))
    assert str(found[("2026-01", "sale")].debits) == "6.000"


def test_json_lines_with_a_byte_order_mark(tmp_path: Path) -> None:
    """A byte order mark opening the file (as Windows tools write one) is read past, as in a
    CSV file; one opening a later line is refused, as json.loads refuses it."""
    scenario = read_scenario(EXAMPLES / "potter.yaml")
    path = tmp_path / "events.jsonl"
    row = '{"id": "p1", "date": "2026-01-05", "type": "conversion", "amount": "1.00"}\r\n'
    path.write_text("\ufeff" + row + row.replace("p1", "p2"), encoding="utf-8")
    found = list(read_events(path, scenario.master, scenario.settings))
    assert [event.id for _, event in found] == ["p1", "p2"]
    path.write_text(row + "\ufeff" + row.replace("p1", "p2"), encoding="utf-8")
    with pytest.raises(InputError) as error:
        list(read_events(path, scenario.master, scenario.settings))
    assert error.value.problems == [
        f"{path}:2: malformed JSON: a byte order mark (U+FEFF) opens the line (column 1)"
    ]


def component_at_a_time(
    standards: Standards, item: str, on: dt.date, good: Decimal, scrapped: Decimal
) -> dict[tuple[m.Account, str, str], Decimal]:
    """The parts a completion made before :func:`take_consumed`: every component valued."""
    builder = EntryBuilder(on, "e", "")
    requirements = standards.unit_cost(item, on).requirements
    components = [req.component for req in requirements]
    holdings = standards.holdings(components, on)
    bare = standards.holdings(components, on, conversion=False)
    for req, held, less in zip(requirements, holdings, bare, strict=True):
        if good:
            builder.add_holding(held, good * req.quantity)
        if scrapped:
            value = builder.add_holding(less, scrapped * req.quantity)
            builder.add(m.Account.MATERIAL_USAGE_VARIANCE, value, item=item)
    return builder.parts


QUANTITIES = st.decimals(min_value=0, max_value=10**6, places=3)


@functools.cache
def standards_of(name: str) -> tuple[Standards, list[tuple[str, dt.date]]]:
    """The example's standards and every (made item, epoch) they give a standard for."""
    scenario = read_scenario(EXAMPLES / f"{name}.yaml")
    standards = Standards(scenario.settings, scenario.master)
    made = []
    for on in [dt.date.min, *scenario.master.change_dates()]:
        for item_id, item in scenario.master.items.items():
            if item.kind in (m.Kind.MATERIAL, m.Kind.PHANTOM):
                continue
            try:
                standards.unit_cost(item_id, on)
            except (ValueError, KeyError):
                continue
            made.append((item_id, on))
    return standards, made


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
@given(good=QUANTITIES, scrapped=QUANTITIES)
def test_consumption_per_unit_is_each_component_valued(
    name: str, good: Decimal, scrapped: Decimal
) -> None:
    standards, made = standards_of(name)
    for item, on in made:
        with localcontext(CONTEXT):  # the book's precision, as it posts
            expected = component_at_a_time(standards, item, on, good, scrapped)
            parts = consumed(standards, item, on, good, scrapped)
        assert list(parts) == list(expected)  # the same lines, in the same order
        assert parts == expected


def consumed(
    standards: Standards, item: str, on: dt.date, good: Decimal, scrapped: Decimal
) -> dict[tuple[m.Account, str, str], Decimal]:
    """The parts a completion makes: per unit, or a component at a time where that is not
    exact."""
    builder = EntryBuilder(on, "e", "")
    if take_consumed(builder, standards.consumption(item, on), good, scrapped, item) is None:
        assert builder.parts == {}  # nothing taken
        requirements = standards.unit_cost(item, on).requirements
        components = [req.component for req in requirements]
        holdings = standards.holdings(components, on)
        bare = standards.holdings(components, on, conversion=False)
        take_each(builder, requirements, holdings, bare, good, scrapped, item)
    return builder.parts


@st.composite
def deep_plants(draw: st.DrawFn) -> tuple[Standards, list[str]]:
    """A chain of subassemblies, each of the one below and two materials, through routings
    with yields: per-unit figures past 50 digits."""
    amounts = st.integers(1, 10**12).map(lambda n: Decimal(n).scaleb(-draw(st.integers(0, 6))))
    items = {
        f"M{n}": m.Item(f"M{n}", m.Kind.MATERIAL, material_cost=draw(amounts)) for n in range(2)
    }
    centers = {"W": m.WorkCenter("W", (("labor", draw(amounts)),))}
    boms: dict[str, tuple[m.Bom, ...]] = {}
    routings: dict[str, tuple[m.Routing, ...]] = {}
    made: list[str] = []
    below = "M0"
    for n in range(draw(st.integers(1, 7))):
        item_id = f"S{n}"
        kind = draw(st.sampled_from([m.Kind.SUBASSEMBLY, m.Kind.SUBASSEMBLY, m.Kind.FINISHED]))
        items[item_id] = m.Item(item_id, kind, lot_size=Decimal(7))
        yield_ = draw(st.sampled_from(["1", "0.97", "0.83"]))
        operation = m.Operation(10, "W", draw(amounts), Decimal("0.75"), Decimal(yield_))
        routings[item_id] = (m.Routing(item_id, (operation,)),)
        lines = (
            m.BomLine(below, draw(amounts), Decimal(draw(st.integers(0, 999))).scaleb(-3)),
            *(m.BomLine(f"M{k}", draw(amounts)) for k in range(2)),
        )
        boms[item_id] = (m.Bom(item_id, lines),)
        made.append(item_id)
        below = item_id
    settings = m.Settings("deep", triggers=draw(st.sampled_from(BACKFLUSH_POLICIES)))
    return Standards(settings, m.MasterData(items, boms, centers, routings)), made


BACKFLUSH_POLICIES = [p for p in m.Policy if p is not m.Policy.SEQUENTIAL and not p.periodic]


@given(plant=deep_plants(), good=QUANTITIES, scrapped=QUANTITIES)
def test_consumption_past_fifty_digits_is_each_component_valued(
    plant: tuple[Standards, list[str]], good: Decimal, scrapped: Decimal
) -> None:
    standards, made = plant
    on = dt.date(2026, 1, 1)
    for item in made:
        with localcontext(CONTEXT):
            expected = component_at_a_time(standards, item, on, good, scrapped)
            parts = consumed(standards, item, on, good, scrapped)
        assert list(parts) == list(expected)
        assert parts == expected


def test_taking_per_unit_leaves_the_callers_inexact_flag_as_it_found_it() -> None:
    """:func:`take_consumed` looks at the context's ``Inexact`` flag, which is sticky: one a
    caller's arithmetic raised before stays raised, and an exact take raises none."""
    standards, made = standards_of("northshore")
    item, on = made[0]
    used = standards.consumption(item, on)
    for raised in (True, False):
        with localcontext(CONTEXT) as context:
            context.clear_flags()
            if raised:
                _ = Decimal(1) / Decimal(3)
            assert context.flags[Inexact] is raised
            builder = EntryBuilder(on, "e", "")
            assert take_consumed(builder, used, Decimal(2), Decimal(1), item) is not None
            assert context.flags[Inexact] is raised


def test_some_example_consumes_through_many_components() -> None:
    """The test above sees multi-component, multi-part consumption, scrapped units too."""
    widest = max(
        len(standards.consumption(item, on).both)
        for standards, made in map(standards_of, EXAMPLE_NAMES)
        for item, on in made
    )
    assert widest >= 4


def test_a_completion_past_fifty_digits_is_rounded_as_each_component_valued() -> None:
    """Summed per unit, a 10^10 material and a 4 x 10^-40 trace (five levels of 0.000001
    each) need 51 digits: the per-unit sum drops the trace, valuing one component at a time
    keeps it in the product (x 2) and rounds it up; the credit was then past a half cent and
    rounded away from it. Inputs the checks accept; the journal must not change."""
    items = {
        "BIG": m.Item("BIG", m.Kind.MATERIAL, material_cost=Decimal("10000000000.0025")),
        "DUST": m.Item("DUST", m.Kind.MATERIAL, material_cost=Decimal("0.000004")),
        "F": m.Item("F", m.Kind.FINISHED),
    }
    boms: dict[str, tuple[m.Bom, ...]] = {}
    below = "DUST"
    for n in range(1, 6):
        items[f"S{n}"] = m.Item(f"S{n}", m.Kind.SUBASSEMBLY)
        boms[f"S{n}"] = (m.Bom(f"S{n}", (m.BomLine(below, Decimal("0.000001")),)),)
        below = f"S{n}"
    boms["F"] = (m.Bom("F", (m.BomLine("BIG", Decimal(1)), m.BomLine("S5", Decimal("0.0001")))),)
    settings = m.Settings("tie", triggers=m.Policy.COMPLETION, shortage=m.Shortage.ALLOW)
    book = Book(settings, m.MasterData(items, boms))
    on = dt.date(2026, 1, 3)
    book.post(m.Completion("c1", on, "F", Decimal(2)))
    expected = EntryBuilder(on, "c1", "")
    with localcontext(CONTEXT):  # the book's precision, as it posts
        expected.parts = component_at_a_time(book.standards, "F", on, Decimal(2), Decimal(0))
        cost = book.standards.unit_cost("F", on)
        expected.add(m.Account.FINISHED_GOODS, 2 * cost.total, item="F")
        built = expected.build(settings)
    assert built is not None
    assert [entry.lines for entry in book.journal] == [built.lines]
    assert [(line.account, line.amount) for line in built.lines] == [
        (m.Account.ACCOUNTS_PAYABLE, Decimal("-20000000000.01")),
        (m.Account.FINISHED_GOODS, Decimal("20000000000.00")),
        (m.Account.ROUNDING_VARIANCE, Decimal("0.01")),
    ]
