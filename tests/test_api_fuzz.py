"""The API's OpenAPI document fuzzed with schemathesis (issue 6): every operation with
generated requests under an accountant's token, bounded (a few examples per operation, no
deadline); no answer is a 500, each is what the document says of its status (media type
and, where it gives one, schema), and afterwards the book still holds its invariants: every
journal entry balances and every stored balance is the sum of its journal lines."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backflush.api.app import create_app
from backflush.api.tokens import Role, create_token
from backflush.formats.scenario import read_scenario
from backflush.store import schema as t
from backflush.store.repository import Store
from helpers import EXAMPLES

#: Examples per operation: enough to reach every route's validation, bounded in time.
EXAMPLES_PER_OPERATION = 25


def book_invariants(store: Store) -> list[str]:
    """What is wrong with the stored book: entries that do not balance, balances that are
    not the sum of the journal's lines (an empty list: nothing)."""
    lines = t.journal_lines
    entries: dict[int, Decimal] = defaultdict(Decimal)
    summed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with store.engine.connect() as conn:  # amounts summed exactly here, not by the database
        for row in conn.execute(
            sa.select(lines.c.entry_no, lines.c.account, lines.c.element, lines.c.amount)
        ):
            entries[row.entry_no] += row.amount
            summed[(row.account, row.element)] += row.amount
        stored = {(r.account, r.element): r.amount for r in conn.execute(sa.select(t.balances))}
    problems = [f"entry {n} does not balance: {v}" for n, v in entries.items() if v]
    for key in sorted(set(summed) | set(stored)):
        if summed.get(key, Decimal(0)) != stored.get(key, Decimal(0)):
            problems.append(f"balance {key}: stored {stored.get(key)}, lines {summed.get(key)}")
    return problems


def test_no_operation_answers_500_and_the_book_stays_whole(db_url: str) -> None:
    """On SQLite and on PostgreSQL (whose errors differ: e.g. NUL in text)."""
    db = db_url
    scenario = read_scenario(EXAMPLES / "widgets_prorate.yaml")
    store = Store(db)
    store.import_scenario(scenario.settings, scenario.master, scenario.events[:2])
    secret = create_token(store, "fuzz", Role.accountant)[1]
    auth = {"Authorization": f"Bearer {secret}"}
    app = create_app(db)
    schema = from_asgi("/openapi.json", app, headers=auth)
    failures: list[str] = []
    operations = 0
    answered: dict[int, int] = defaultdict(int)
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call(headers=auth)
            answered[response.status_code] += 1
            try:
                case.validate_response(
                    response,
                    checks=[
                        not_a_server_error,
                        status_code_conformance,
                        content_type_conformance,
                        response_schema_conformance,
                    ],
                )
            except Exception as error:  # collected, reported together below
                failures.append(f"{case.method} {case.formatted_path}: {error}"[:2000])

        fuzz()
    assert operations >= 15
    assert sum(answered.values()) >= operations * 5, answered
    assert set(answered) & {200, 201}, answered  # not only refusals
    assert not failures, "\n\n".join(failures[:5])
    assert book_invariants(store) == []
    app.state.writer.stop()
    app.state.store.close()
    store.close()


def test_the_invariant_check_finds_a_balance_that_drifted(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    scenario = read_scenario(EXAMPLES / "widgets_prorate.yaml")
    store.import_scenario(scenario.settings, scenario.master, scenario.events[:2])
    assert book_invariants(store) == []
    goods = t.balances.c.account == "finished_goods"
    with store.engine.begin() as conn:
        amount = conn.execute(sa.select(t.balances.c.amount).where(goods)).scalar_one()
        conn.execute(t.balances.update().where(goods).values(amount=amount + Decimal(1)))
    (problem,) = book_invariants(store)
    assert problem.startswith("balance ('finished_goods'")
    store.close()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
