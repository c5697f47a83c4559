"""The book's fast paths give what the plain code they replace gives."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from backflush.book import fingerprint
from backflush.domain import model as m
from backflush.engine.standards import Standards


def reference_fingerprint(event: m.Event) -> str:
    """The fingerprint as ``json.dumps`` writes it (what stores hold for recorded events)."""
    body: dict[str, str] = {"type": event.type}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name == "id" or value is None or value == "":
            continue
        if isinstance(value, Decimal):
            body[f.name] = format(value.normalize(), "f") if value else "0"
        elif isinstance(value, dt.date):
            body[f.name] = value.isoformat()
        else:
            body[f.name] = str(value)
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


texts = st.text(max_size=12)  # quotes, backslashes, control and non-ASCII characters included
amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False)
days = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31))
events = st.one_of(
    st.builds(m.Purchase, texts, days, texts, amounts, amounts),
    st.builds(m.Completion, texts, days, texts, amounts, amounts, texts),
    st.builds(m.Sale, texts, days, texts, amounts, st.none() | amounts),
    st.builds(m.Conversion, texts, days, amounts, texts, texts, st.none() | amounts),
    st.builds(m.Reversal, texts, days, texts, texts),
    st.builds(m.WriteOff, texts, days, texts, texts, texts),
    st.builds(m.Close, texts, days, texts),
)


@given(events)
def test_fingerprint_is_canonical_json(event: m.Event) -> None:
    assert fingerprint(event) == reference_fingerprint(event)


def test_fingerprint_of_a_sale() -> None:
    sale = m.Sale("s1", dt.date(2026, 1, 31), 'Gâteau "A"', Decimal("2.50"), None)
    assert fingerprint(sale) == (
        '{"date":"2026-01-31","item":"G\\u00e2teau \\"A\\"","quantity":"2.5","type":"sale"}'
    )


def test_holdings_are_each_items_holding() -> None:
    items = {
        "C1": m.Item("C1", m.Kind.MATERIAL, material_cost=Decimal("1.25")),
        "C2": m.Item("C2", m.Kind.MATERIAL, material_cost=Decimal("0.40")),
        "S1": m.Item("S1", m.Kind.SUBASSEMBLY, conversion=(("labor", Decimal("0.75")),)),
        "F1": m.Item("F1", m.Kind.FINISHED, conversion=(("labor", Decimal(2)),)),
    }
    boms = {
        "S1": (m.Bom("S1", (m.BomLine("C1", Decimal(2)), m.BomLine("C2", Decimal(3)))),),
        "F1": (m.Bom("F1", (m.BomLine("S1", Decimal(1)), m.BomLine("C2", Decimal(1)))),),
    }
    master = m.MasterData(items, boms)
    on = dt.date(2026, 1, 5)
    wanted = ["S1", "C1", "F1", "S1"]
    found = Standards(m.Settings("x"), master).holdings(wanted, on)
    each = Standards(m.Settings("x"), master)
    assert found == [each.holding(item, on) for item in wanted]
    assert found[0] == (
        (m.Account.RAW_IN_PROCESS, "", Decimal("3.70")),
        (m.Account.CONVERSION_ALLOCATED, "labor", Decimal("0.75")),
    )
