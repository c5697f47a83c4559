"""The HTTP API through real HTTP: uvicorn on a loopback port (``helpers.serving``), httpx as
the client, a SQLite book and a PostgreSQL one."""

from __future__ import annotations

import ast
import datetime as dt
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import sqlalchemy as sa

from backflush.api.app import MAX_BATCH, _prefers_csv, create_app
from backflush.api.problems import HTTP_KINDS, KINDS
from backflush.api.tokens import Role, create_token, list_tokens, revoke_token
from backflush.domain import model as m
from backflush.formats.inputs import build_event
from backflush.formats.scenario import read_scenario
from backflush.store import schema as t
from backflush.store.repository import Store
from helpers import EXAMPLES, dump_tables, serving, widgets_book

PROBLEM = "application/problem+json"
SOURCE = Path(__file__).resolve().parent.parent / "src" / "backflush"
COMPLETION = {"id": "c1", "date": "2026-01-15", "type": "completion", "item": "W", "quantity": "20"}


@dataclass
class Service:
    store: Store
    client: httpx.Client
    secrets: dict[Role, str]
    app: Any

    def as_(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"}


@pytest.fixture(params=["thread", "process"])
def service(db_url: str, request: pytest.FixtureRequest) -> Iterator[Service]:
    """The widgets book (its master data and first purchase) served on a free loopback port,
    with a token per role (named after it); events posted by a thread of the server, or by
    a process of its own."""
    scenario = read_scenario(EXAMPLES / "widgets_prorate.yaml")
    store = Store(db_url)
    store.import_scenario(scenario.settings, scenario.master, scenario.events[:1])
    secrets = {role: create_token(store, role.value, role)[1] for role in Role}
    app = create_app(db_url, writer_process=request.param == "process")
    if request.param == "process":
        app.state.writer.start()  # (served without the lifespan that starts it)
    try:
        with (
            serving(app) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            yield Service(store, client, secrets, app)
    finally:
        app.state.store.close()
        store.close()


def test_posting_answers_are_what_the_openapi_document_says(service: Service) -> None:
    """Each answer of ``/events`` and ``/events/batch`` (posted, recorded already, refused)
    matches its status's documented schema, which allows no undocumented field."""
    operator = service.as_(Role.operator)
    posted = conforms(
        service, "/events", service.client.post("/events", json=COMPLETION, headers=operator)
    )
    assert posted == {"id": "c1", "type": "completion", "applied": True, "recorded_by": "operator"}
    again = service.client.post("/events", json=COMPLETION, headers=operator)
    assert conforms(service, "/events", again)["applied"] is False
    batch = [COMPLETION, {**COMPLETION, "id": "c2"}]
    answer = service.client.post("/events/batch", json=batch, headers=operator)
    assert answer.status_code == 201
    assert conforms(service, "/events/batch", answer)["already_recorded"] == 1
    answer = service.client.post("/events/batch", json=batch, headers=operator)
    assert answer.status_code == 200
    assert conforms(service, "/events/batch", answer)["applied"] == 0
    refused = service.client.post("/events", json={**COMPLETION, "id": "c3", "item": "nope"})
    assert conforms(service, "/events", refused)["status"] == 401
    refused = service.client.post("/events", json={**COMPLETION, "item": "nope"}, headers=operator)
    assert conforms(service, "/events", refused)["status"] == 422
    # a field the document does not name is refused by it: the check can fail
    undocumented = httpx.Response(200, json={**again.json(), "posted_at": "now"})
    undocumented.request = again.request
    with pytest.raises(jsonschema_rs.ValidationError, match="posted_at"):
        conforms(service, "/events", undocumented)


def test_an_event_sent_again_names_who_recorded_it(service: Service) -> None:
    """Another token sending an event already recorded is told who recorded it, not itself;
    a batch holding an event twice names itself for the second."""
    operator, accountant = service.as_(Role.operator), service.as_(Role.accountant)
    assert service.client.post("/events", json=COMPLETION, headers=operator).status_code == 201
    response = service.client.post("/events", json=COMPLETION, headers=accountant)
    assert (response.status_code, response.json()["recorded_by"]) == (200, "operator")
    batch = [COMPLETION, {**COMPLETION, "id": "c2"}, {**COMPLETION, "id": "c2"}]
    response = service.client.post("/events/batch", json=batch, headers=accountant)
    assert response.status_code == 201, response.text
    assert response.json()["recorded_by"] == "accountant"  # who sent the batch
    assert [(e["applied"], e.get("recorded_by")) for e in response.json()["events"]] == [
        (False, "operator"),
        (True, None),
        (False, "accountant"),
    ]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    found: dict[str, Any] = response.json()
    assert found["status"] == status
    assert found["title"] and found["detail"] and found["type"].startswith("/problems/")
    return found


def conforms(service: Service, path: str, response: httpx.Response) -> dict[str, Any]:
    """``response`` is what the OpenAPI document says of its status for the operation at
    ``path`` (its template), its media type and its body's schema; returns the body."""
    document = service.client.get("/openapi.json", headers=service.as_(Role.viewer)).json()
    method = response.request.method.lower()
    responses = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    documented = responses.get(status) or responses[f"{status[0]}XX"]
    ((media, content),) = documented["content"].items()
    assert response.headers["content-type"] == media
    schema = {**content["schema"], "components": document["components"]}
    body: dict[str, Any] = response.json()
    jsonschema_rs.validator_for(schema).validate(body)
    return body


def _trial_balance(service: Service) -> dict[str, str]:
    response = service.client.get("/reports/trial-balance", headers=service.as_(Role.viewer))
    assert response.status_code == 200, response.text
    return {a["account"]: a["debit"] or a["credit"] for a in response.json()["accounts"]}


def _accounts(service: Service) -> dict[str, tuple[str, str]]:
    response = service.client.get("/reports/trial-balance", headers=service.as_(Role.viewer))
    return {a["account"]: (a["debit"], a["credit"]) for a in response.json()["accounts"]}


# ---------------------------------------------------------------- authentication and roles


def test_health_needs_no_token(service: Service) -> None:
    response = service.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_every_other_route_refuses_a_request_without_a_valid_token(service: Service) -> None:
    revoked = create_token(service.store, "gone", Role.admin)
    revoke_token(service.store, revoked[0].id)
    routes = [
        (method, route.path.replace("{event_id}", "c1").replace("{kind}", "summary"))
        for route in service.app.routes
        for method in sorted(getattr(route, "methods", None) or ())
        if route.path != "/health" and method != "HEAD"
    ]
    assert ("GET", "/openapi.json") in routes and ("POST", "/events") in routes
    for wanted in (  # the accounting routes too (the /ui pages redirect to a sign-in instead)
        ("POST", "/master"),
        ("POST", "/periods/{period}/close"),
        ("POST", "/periods/{period}/reopen"),
        ("POST", "/exceptions/{key:path}/resolve"),
        ("GET", "/items"),
    ):
        assert wanted in routes, wanted
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {revoked[1]}"},
        {"Authorization": f"Basic {service.secrets[Role.admin]}"},
    ):
        for method, path in routes:
            response = service.client.request(method, path, headers=headers, json=COMPLETION)
            problem = _problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer", (method, path)
            assert problem["type"] == "/problems/unauthenticated"


def test_roles(service: Service) -> None:
    purchase = {
        "id": "p2",
        "date": "2026-01-03",
        "type": "purchase",
        "item": "M",
        "quantity": "10",
        "unit_cost": "2.00",
    }
    before = dump_tables(service.store)
    for role in (Role.viewer, Role.admin):  # read only
        response = service.client.post("/events", json=COMPLETION, headers=service.as_(role))
        _problem(response, 403)
    # an operator posts production, not purchases (nor anything in a batch with one)
    problem = _problem(
        service.client.post("/events", json=purchase, headers=service.as_(Role.operator)), 403
    )
    assert problem["errors"][0]["field"] == "type"
    response = service.client.post(
        "/events/batch", json=[COMPLETION, purchase], headers=service.as_(Role.operator)
    )
    _problem(response, 403)
    assert dump_tables(service.store) == before
    for role in Role:  # every role reads
        response = service.client.get("/reports/summary", headers=service.as_(role))
        assert response.status_code == 200
    response = service.client.post("/events", json=purchase, headers=service.as_(Role.accountant))
    assert response.status_code == 201, response.text
    response = service.client.post("/events", json=COMPLETION, headers=service.as_(Role.operator))
    assert response.status_code == 201, response.text


def test_openapi_document(service: Service) -> None:
    response = service.client.get("/openapi.json", headers=service.as_(Role.viewer))
    assert response.status_code == 200
    found = response.json()
    assert found["openapi"].startswith("3.")
    assert {"/events", "/events/batch", "/reports/{kind}", "/journal"} <= set(found["paths"])
    body = found["paths"]["/events"]["post"]["requestBody"]["content"]["application/json"]
    assert "CompletionModel" in json.dumps(body)
    assert "CompletionModel" in found["components"]["schemas"]
    assert found["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    # as served: errors are problem documents; an event's id is required; a close's body not
    assert "HTTPValidationError" not in json.dumps(found)
    for operations in found["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            assert not [s for s in responses if s[0] in "45" and s not in ("4XX", "5XX")]
            assert PROBLEM in responses["4XX"]["content"] and PROBLEM in responses["5XX"]["content"]
    completion = found["components"]["schemas"]["CompletionModel"]
    assert "id" in completion["required"] and completion["properties"]["id"]["maxLength"] == 200
    close = found["paths"]["/periods/{period}/close"]["post"]
    assert close["requestBody"]["required"] is False
    (key,) = [p for p in found["paths"]["/events"]["post"]["parameters"] if p["in"] == "header"]
    assert key["schema"]["pattern"] == "^[\\x21-\\x7e]{1,200}$"
    # Patterns as a client's JSON Schema validator reads them (ECMA-262, with or without its
    # "u" flag): escapes \xHH and \uHHHH only, never Python's \UHHHHHHHH.
    patterns = set(re.findall(r'"pattern": ("(?:[^"\\\\]|\\\\.)*")', json.dumps(found)))
    assert len(patterns) >= 5
    for pattern in (json.loads(p) for p in patterns):
        assert not re.search(r"\\[UxN]\{|\\U", pattern), pattern
        compiled = re.compile(pattern)
        if "\\x00-\\x1f" in pattern:  # an id's
            assert all(compiled.search(i) for i in ("c-1", "WO-42", "line1-000042")), pattern
    event_id = completion["properties"]["id"]["pattern"]
    assert not re.match(event_id, "a\u200bb") and re.match(event_id, "c-1")


# ---------------------------------------------------------------- posting


def test_a_completion_posted_shows_in_the_trial_balance_with_who_posted_it(
    service: Service,
) -> None:
    before = _accounts(service)
    assert "finished_goods" not in before
    response = service.client.post("/events", json=COMPLETION, headers=service.as_(Role.operator))
    assert response.status_code == 201
    assert response.json() == {
        "id": "c1",
        "type": "completion",
        "applied": True,
        "recorded_by": "operator",
    }
    # 20 W at 21.00 standard into finished goods (M at 2.00 a unit, 3 a W, and conversion)
    assert _accounts(service)["finished_goods"] == ("420.00", "0.00")
    with service.store.engine.connect() as conn:
        rows = dict(conn.execute(sa.select(t.events.c.id, t.events.c.recorded_by)).all())
    assert rows == {"p1": None, "c1": "operator"}
    # posted again (no key): the book sees an exact duplicate and changes nothing
    response = service.client.post("/events", json=COMPLETION, headers=service.as_(Role.operator))
    assert response.status_code == 200
    assert response.json()["applied"] is False
    assert _accounts(service)["finished_goods"] == ("420.00", "0.00")
    # the same id with another content is a conflict
    other = {**COMPLETION, "quantity": "21"}
    before_tables = dump_tables(service.store)
    response = service.client.post("/events", json=other, headers=service.as_(Role.operator))
    problem = _problem(response, 409)
    assert problem["type"] == "/problems/conflict"
    assert problem["errors"] == [
        {"location": "body", "field": "id", "detail": "event c1", "pointer": "/id"}
    ]
    assert dump_tables(service.store) == before_tables
    # drill-down
    response = service.client.get("/events/c1", headers=service.as_(Role.viewer))
    assert response.status_code == 200
    event = response.json()["event"]
    assert (event["id"], event["recorded_by"]) == ("c1", "operator")  # (an auditor asks)
    recorded = dt.datetime.fromisoformat(event["recorded_at"])
    assert abs(recorded - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    imported = service.client.get("/events/p1", headers=service.as_(Role.viewer)).json()
    assert imported["event"]["recorded_by"] is None  # (not through the API)
    _problem(service.client.get("/events/nope", headers=service.as_(Role.viewer)), 404)


def test_a_token_revoked_after_posting_posts_no_more(service: Service) -> None:
    """The posting routes know a token seen before without reading the database; the group
    writer checks it again in the posting's transaction, where a revocation is seen."""
    token, secret = create_token(service.store, "terminal 9", Role.operator)
    headers = {"Authorization": f"Bearer {secret}"}
    assert service.client.post("/events", json=COMPLETION, headers=headers).status_code == 201
    revoke_token(service.store, token.id)
    before = dump_tables(service.store)
    late = {**COMPLETION, "id": "c2"}
    response = service.client.post("/events", json=late, headers=headers)
    assert _problem(response, 401)["detail"] == "unknown or revoked token"
    assert response.headers["www-authenticate"] == "Bearer"
    response = service.client.post("/events/batch", json=[late], headers=headers)
    _problem(response, 401)
    assert dump_tables(service.store) == before


def test_an_idempotent_replay_returns_the_first_answer_and_posts_once(service: Service) -> None:
    headers = {**service.as_(Role.operator), "Idempotency-Key": "terminal-7-000123"}
    first = service.client.post("/events", json=COMPLETION, headers=headers)
    assert first.status_code == 201
    after_first = dump_tables(service.store)
    # the same body, written differently (key order, spacing), is the same request
    text = json.dumps(dict(reversed(list(COMPLETION.items()))), indent=2)
    again = service.client.post(
        "/events", content=text, headers={**headers, "Content-Type": "application/json"}
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert dump_tables(service.store) == after_first
    assert len(after_first["idempotency_keys"]) == 1
    # the same key with another body: refused, nothing written
    other = {**COMPLETION, "id": "c2"}
    problem = _problem(service.client.post("/events", json=other, headers=headers), 422)
    assert problem["type"] == "/problems/idempotency-key-reused"
    assert problem["errors"][0]["location"] == "header"
    assert dump_tables(service.store) == after_first
    # a batch with a key replays too
    batch = [{**COMPLETION, "id": f"b{n}", "quantity": "1"} for n in range(3)]
    headers["Idempotency-Key"] = "batch-1"
    first = service.client.post("/events/batch", json=batch, headers=headers)
    assert first.status_code == 201
    assert first.json()["applied"] == 3
    again = service.client.post("/events/batch", json=batch, headers=headers)
    assert again.json() == first.json()
    assert _accounts(service)["finished_goods"] == ("483.00", "0.00")  # 23 W at 21.00


def test_a_refused_posting_is_not_kept_under_its_key(service: Service) -> None:
    headers = {**service.as_(Role.accountant), "Idempotency-Key": "k1"}
    sale = {
        "id": "s1",
        "date": "2026-01-20",
        "type": "sale",
        "item": "W",
        "quantity": "5",
        "unit_price": "30.00",
    }
    before = dump_tables(service.store)
    response = service.client.post("/events", json={**sale, "quantity": "-5"}, headers=headers)
    _problem(response, 422)
    assert dump_tables(service.store) == before
    response = service.client.post("/events", json=sale, headers=headers)
    assert response.status_code in (201, 422)  # whatever the book says, the key was free


def test_a_batch_over_the_limit_is_refused(service: Service) -> None:
    before = dump_tables(service.store)
    batch = [{**COMPLETION, "id": f"b{n}", "quantity": "1"} for n in range(MAX_BATCH + 1)]
    response = service.client.post("/events/batch", json=batch, headers=service.as_(Role.operator))
    assert _problem(response, 413)["type"] == "/problems/batch-too-large"
    assert dump_tables(service.store) == before


def test_a_batch_is_one_transaction(service: Service) -> None:
    before = dump_tables(service.store)
    batch = [
        {**COMPLETION, "id": "b1", "quantity": "1"},
        {**COMPLETION, "id": "b2", "item": "NOPE"},
        {**COMPLETION, "id": "b3", "quantity": "x"},
    ]
    response = service.client.post("/events/batch", json=batch, headers=service.as_(Role.operator))
    problem = _problem(response, 422)
    assert [(e["pointer"], e["field"]) for e in problem["errors"]] == [
        ("/1/item", "item"),
        ("/2/quantity", "quantity"),
    ]
    assert dump_tables(service.store) == before


BAD_BODIES = [
    ('{"id": "c1", "date": "2026-01-15",', 400, "body", None),
    ('{"id": "c1", "id": "c2"}', 400, "body", None),
    (
        '{"id": "c1", "date": "2026-01-15", "type": "completion", "item": "W", "quantity": NaN}',
        400,
        "body",
        None,
    ),
    (b'{"id": "c\xff"}', 400, "body", None),
    ("[1, 2]", 422, "body", None),
    (json.dumps({**COMPLETION, "colour": "red"}), 422, "colour", "/colour"),
    (json.dumps({**COMPLETION, "quantity": [1]}), 422, "quantity", "/quantity"),
    (json.dumps({**COMPLETION, "quantity": True}), 422, "quantity", "/quantity"),
    (json.dumps({**COMPLETION, "quantity": {"a": 1}}), 422, "quantity", "/quantity"),
    (json.dumps({**COMPLETION, "date": 20260115}), 422, "date", "/date"),
    (json.dumps({**COMPLETION, "quantity": "1e400"}), 422, "quantity", "/quantity"),
    (json.dumps(COMPLETION).replace('"20"', "1" + "0" * 60), 422, "quantity", "/quantity"),
    (json.dumps(COMPLETION).replace('"20"', "1" * 5000), 400, "body", None),
    (json.dumps({**COMPLETION, "type": "teleport"}), 422, "type", "/type"),
    (json.dumps({k: v for k, v in COMPLETION.items() if k != "id"}), 422, "id", "/id"),
]


def test_bad_input_gets_a_problem_naming_the_field_and_writes_nothing(service: Service) -> None:
    before = dump_tables(service.store)
    headers = {
        **service.as_(Role.accountant),
        "Content-Type": "application/json",
        "Idempotency-Key": "bad-1",
    }
    for body, status, field, pointer in BAD_BODIES:
        response = service.client.post("/events", content=body, headers=headers)
        problem = _problem(response, status)
        assert problem["errors"][0]["field"] == field, (body, problem)
        assert problem["errors"][0]["location"] == "body"
        assert problem["errors"][0].get("pointer") == pointer, (body, problem)
    assert dump_tables(service.store) == before


def test_bad_query_and_unknown_report(service: Service) -> None:
    viewer = service.as_(Role.viewer)
    problem = _problem(service.client.get("/journal?limit=x", headers=viewer), 422)
    assert problem["errors"][0] == {
        "location": "query",
        "field": "limit",
        "detail": "Input should be a valid integer, unable to parse string as an integer, got 'x'",
    }
    problem = _problem(service.client.get("/reports/nothing", headers=viewer), 404)
    assert problem["type"] == "/problems/unknown-report"
    problem = _problem(service.client.get("/reports/margin?item=NOPE", headers=viewer), 422)
    assert "NOPE" in problem["detail"]


def _kinds_raised() -> set[str]:
    """The problem kinds the API's source raises: each ``Problem(status, "kind", ...)`` and
    the framework's errors' kinds."""
    found = {"http", *HTTP_KINDS.values()}
    for path in (SOURCE / "api").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Problem":
                kind = node.args[1]
                assert isinstance(kind, ast.Constant | ast.Name), (path, ast.unparse(node))
                if isinstance(kind, ast.Constant):
                    found.add(kind.value)
    return found


def test_a_problems_type_leads_to_the_page_that_documents_it(service: Service) -> None:
    """RFC 9457 §3.1.1: a problem's ``type``, dereferenced, documents it; every kind raised
    has its page (statuses, meaning, what to do), to token holders like every route."""
    raised = _kinds_raised()
    assert {"validation", "malformed-json", "posting-refused", "unavailable"} <= raised
    assert raised <= set(KINDS), raised - set(KINDS)
    viewer = service.as_(Role.viewer)
    response = service.client.post(
        "/events",
        content=b"{",
        headers={**service.as_(Role.operator), "content-type": "application/json"},
    )
    problem = _problem(response, 400)
    page = service.client.get(str(response.url.join(problem["type"])), headers=viewer)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<h1>{problem['title']}</h1>" in page.text
    assert html.escape(KINDS["malformed-json"].meaning) in page.text
    listed = service.client.get("/problems", headers=viewer)
    assert listed.status_code == 200
    assert all(f'<tr id="{kind}">' in listed.text for kind in KINDS)
    missing = _problem(service.client.get("/problems/nothing", headers=viewer), 404)
    assert "/problems lists them" in missing["detail"]


# ---------------------------------------------------------------- reads


def test_reports_and_the_journal_a_page_at_a_time(service: Service) -> None:
    operator, viewer = service.as_(Role.operator), service.as_(Role.viewer)
    batch = [{**COMPLETION, "id": f"b{n}", "quantity": "1"} for n in range(5)]
    assert service.client.post("/events/batch", json=batch, headers=operator).status_code == 201
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "period": "2026-01"}
        if after is not None:
            params["after"] = after
        page = service.client.get("/journal", params=params, headers=viewer).json()
        assert page["total"] == 6
        seen += [e["event"] for e in page["entries"]]
        for entry in page["entries"]:  # numbered as GET /journal/{no} numbers it
            one = service.client.get(f"/journal/{entry['entry_no']}", headers=viewer).json()
            assert one["entry_no"] == entry["entry_no"] and one["event"]["id"] == entry["event"]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert seen == ["p1", "b0", "b1", "b2", "b3", "b4"]
    assert pages == 3
    for kind in (
        "summary",
        "trial-balance",
        "valuation",
        "variances",
        "exceptions",
        "orders",
        "statements",
        "nrv",
        "margin",
        "variance-analysis",
        "flags",
    ):
        response = service.client.get(f"/reports/{kind}", headers=viewer)
        assert response.status_code == 200, (kind, response.text)
    summary = service.client.get("/reports/summary", headers=viewer).json()
    assert summary["quantities"]["W"] == "5"
    assert "entries" not in summary
    valuation = service.client.get("/reports/valuation", headers=viewer).json()
    assert {"item": "W", "on_books": "105.00"}.items() <= next(
        r for r in valuation["items"] if r["item"] == "W"
    ).items()
    on_books = sum(Decimal(r["on_books"]) for r in valuation["items"])
    assert Decimal(valuation["total"]["on_books"]) == on_books
    assert valuation["reconciliation"] == [
        {"label": "inventory accounts", "account": None, "amount": valuation["total"]["on_books"]}
    ]  # nothing prorated nor inventoried, no rounding: the accounts hold the stock at standard
    only_w = service.client.get("/reports/valuation?item=W", headers=viewer).json()
    assert only_w["total"]["on_books"] == "105.00" and "reconciliation" not in only_w
    response = service.client.get("/exceptions", headers=viewer)
    assert response.json() == {"total": 0, "exceptions": [], "next": None}


def test_token_commands(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from backflush.cli import app

    scenario = read_scenario(EXAMPLES / "widgets_prorate.yaml")
    db = str(tmp_path / "book.db")
    store = Store(db)
    store.import_scenario(scenario.settings, scenario.master, [])
    runner = CliRunner()
    result = runner.invoke(
        app, ["token", "create", "--db", db, "--name", "line 1", "--role", "operator", "--json"]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert len(created["secret"]) >= 40
    (token,) = list_tokens(store)
    assert (token.name, token.role, token.revoked_at) == ("line 1", Role.operator, None)
    with store.engine.connect() as conn:  # only the hash is kept
        kept = conn.execute(sa.select(t.api_tokens.c.secret_hash)).scalar_one()
    assert created["secret"] not in kept and len(kept) == 64
    result = runner.invoke(app, ["token", "list", "--db", db, "--json"])
    assert created["secret"] not in result.output
    assert json.loads(result.output)[0]["name"] == "line 1"
    result = runner.invoke(app, ["token", "revoke", "--db", db, str(token.id)])
    assert result.exit_code == 0, result.output
    assert list_tokens(store)[0].revoked_at is not None
    result = runner.invoke(app, ["token", "revoke", "--db", db, "99"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["token", "create", "--db", db, "--name", "x", "--role", "boss"])
    assert result.exit_code == 2
    made = ["token", "create", "--db", db, "--name", "cli:cfo", "--role", "accountant"]
    result = runner.invoke(app, made)
    assert result.exit_code == 2 and "may not be 'cli' nor start with 'cli:'" in result.output
    assert len(list_tokens(store)) == 1
    store.close()


# ---------------------------------------------------------------- review findings


def test_idempotency_keys_are_each_tokens_own(service: Service) -> None:
    """Another token's key neither replays its answer (nor skips the role check) nor tells
    that the key exists."""
    purchase = {
        "id": "p9",
        "date": "2026-01-03",
        "type": "purchase",
        "item": "M",
        "quantity": "1",
        "unit_cost": "2.00",
    }
    key = {"Idempotency-Key": "shared-key-1"}
    first = service.client.post(
        "/events", json=purchase, headers={**service.as_(Role.accountant), **key}
    )
    assert first.status_code == 201, first.text
    stolen = service.client.post(
        "/events", json=purchase, headers={**service.as_(Role.operator), **key}
    )
    _problem(stolen, 403)  # judged as the operator's own request: operators buy nothing
    own = service.client.post(
        "/events", json=COMPLETION, headers={**service.as_(Role.operator), **key}
    )
    assert own.status_code == 201 and own.json()["recorded_by"] == "operator", own.text
    again = service.client.post(
        "/events", json=COMPLETION, headers={**service.as_(Role.operator), **key}
    )
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_hostile_input_is_a_problem_not_a_crash(service: Service) -> None:
    writer = service.as_(Role.accountant)
    before = dump_tables(service.store)
    nested = '{"a":' * 3000 + "1" + "}" * 3000
    response = service.client.post(
        "/events", content=nested, headers={**writer, "Content-Type": "application/json"}
    )
    assert "nested too deeply" in _problem(response, 400)["detail"]
    huge = {**COMPLETION, "quantity": 1, "id": "h1"}
    text = json.dumps(huge).replace('"quantity": 1', '"quantity": 1e999999999999')
    response = service.client.post(
        "/events", content=text, headers={**writer, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    long = json.dumps(huge).replace('"quantity": 1', '"quantity": ' + "9" * 5000)
    response = service.client.post(
        "/events", content=long, headers={**writer, "Content-Type": "application/json"}
    )
    detail = _problem(response, 400)["detail"]
    assert detail == "malformed JSON: an integer of 5,000 digits (at most 4,300)", detail
    # A few bytes written out as a million digits would make the answer many times the body.
    tiny = json.dumps([{**huge, "id": f"t{n}"} for n in range(10)])
    tiny = tiny.replace('"quantity": 1', '"quantity": 1e-999999')
    response = service.client.post(
        "/events/batch", content=tiny, headers={**writer, "Content-Type": "application/json"}
    )
    assert "quantity: 1E-999999 has more than 6 decimals" in _problem(response, 422)["detail"]
    assert len(response.content) < 10 * len(tiny), len(response.content)
    for path in ("/journal?after=99999999999999999999999", "/events/a%00b", "/events/a%E2%80%AEb"):
        response = service.client.get(path, headers=writer)
        assert response.status_code in (404, 422), (path, response.text)
    for day in ("0", "20260101", "2026-1-5", "２０２６-01-05"):  # not read as a Unix time
        response = service.client.get(f"/items/W?date={day}", headers=writer)
        (error,) = _problem(response, 422)["errors"]
        assert error["field"] == "date" and "expected a date YYYY-MM-DD" in error["detail"]
    assert dump_tables(service.store) == before


def test_a_form_too_large_is_refused_before_it_is_read(service: Service) -> None:
    """No token is needed to sign in: a chunked body (no Content-Length) over the limit is
    refused without being read whole."""

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB against a limit of 64 KiB
            yield b"a" * 65536

    response = service.client.post(
        "/ui/login",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413


def test_token_names_are_unique(service: Service) -> None:
    with pytest.raises(ValueError, match="a token named 'viewer' exists"):
        create_token(service.store, "viewer", Role.viewer)


def test_an_admin_manages_tokens_over_the_api(service: Service) -> None:
    admin = service.as_(Role.admin)
    for role in (Role.operator, Role.accountant, Role.viewer):  # tokens are the admin's
        assert service.client.get("/tokens", headers=service.as_(role)).status_code == 403
        body = {"name": "x", "role": "viewer"}
        response = service.client.post("/tokens", json=body, headers=service.as_(role))
        assert response.status_code == 403
    response = service.client.post(
        "/tokens", json={"name": "terminal 12", "role": "operator"}, headers=admin
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["name"], created["role"], created["created_by"]) == (
        "terminal 12",
        "operator",
        "admin",
    )
    secret = created.pop("secret")
    headers = {"Authorization": f"Bearer {secret}"}
    assert service.client.post("/events", json=COMPLETION, headers=headers).status_code == 201
    listed = service.client.get("/tokens", headers=admin).json()["tokens"]
    assert created in listed and all("secret" not in t for t in listed)
    assert secret not in json.dumps(listed)
    # a name taken, a bad name, a role that is none
    again = service.client.post(
        "/tokens", json={"name": "terminal 12", "role": "viewer"}, headers=admin
    )
    assert _problem(again, 409)["errors"][0]["field"] == "name"
    for bad in ({"name": " x", "role": "viewer"}, {"name": "x", "role": "boss"}, {"name": ""}):
        _problem(service.client.post("/tokens", json=bad, headers=admin), 422)
    # a name the command line's writes are recorded under: no token passes for them
    for reserved in ("cli", "cli:root"):
        body = {"name": reserved, "role": "accountant"}
        (error,) = _problem(service.client.post("/tokens", json=body, headers=admin), 422)["errors"]
        assert (
            error["field"] == "name" and "may not be 'cli' nor start with 'cli:'" in error["detail"]
        ), error
    # revoked: refused from now on, and who revoked it is kept
    revoked = service.client.post(f"/tokens/{created['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "admin"
    late = {**COMPLETION, "id": "c2"}
    _problem(service.client.post("/events", json=late, headers=headers), 401)
    _problem(service.client.post("/tokens/999/revoke", headers=admin), 404)


def test_the_last_admin_token_is_not_revoked_over_the_api(service: Service) -> None:
    """Revoking it would leave no one to manage tokens over HTTP; with another admin token
    live, an admin may revoke their own (rotation). The CLI revokes any."""
    admin = service.as_(Role.admin)
    own = next(t for t in list_tokens(service.store) if t.name == "admin")
    refused = _problem(service.client.post(f"/tokens/{own.id}/revoke", headers=admin), 409)
    assert "last live admin token" in refused["detail"]
    assert refused["errors"][0]["field"] == "token_id"
    assert list_tokens(service.store)[own.id - 1].revoked_at is None
    created = service.client.post(
        "/tokens", json={"name": "admin 2", "role": "admin"}, headers=admin
    ).json()
    revoked = service.client.post(f"/tokens/{own.id}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "admin"
    _problem(service.client.get("/tokens", headers=admin), 401)
    other = {"Authorization": f"Bearer {created['secret']}"}
    last = _problem(service.client.post(f"/tokens/{created['id']}/revoke", headers=other), 409)
    assert f"token {created['id']} is the last live admin token" in last["detail"]
    revoke_token(service.store, created["id"])  # as the CLI does: no admin left is allowed
    assert not [t for t in list_tokens(service.store) if t.role is Role.admin and not t.revoked_at]


def test_an_event_dated_more_than_a_year_ahead_is_refused(service: Service) -> None:
    ahead = (dt.date.today() + dt.timedelta(days=367)).isoformat()
    before = dump_tables(service.store)
    headers = service.as_(Role.operator)
    response = service.client.post("/events", json={**COMPLETION, "date": ahead}, headers=headers)
    (error,) = _problem(response, 422)["errors"]
    assert error["field"] == "date" and "a typo?" in error["detail"]
    batch = [COMPLETION, {**COMPLETION, "id": "c2", "date": ahead}]
    response = service.client.post("/events/batch", json=batch, headers=headers)
    assert _problem(response, 422)["errors"][0]["pointer"] == "/1/date"
    assert dump_tables(service.store) == before
    # One recorded anyway (import --allow-future: a plan) and sent again is a no-op.
    planned = {**COMPLETION, "id": "plan", "date": ahead, "quantity": "1"}
    master, settings = service.store.master(), service.store.settings()
    service.store.post([build_event(planned, master, settings, where="plan")])
    before = dump_tables(service.store)
    response = service.client.post("/events", json=planned, headers=headers)
    assert response.status_code == 200 and response.json()["applied"] is False, response.text
    response = service.client.post("/events", json={**planned, "quantity": "2"}, headers=headers)
    assert "id already recorded with different content" in _problem(response, 409)["detail"]
    assert dump_tables(service.store) == before


def test_an_event_dated_on_standards_not_yet_in_force_is_refused(service: Service) -> None:
    """A cost roll released for next month: a completion dated after it (a typo of the year)
    would put it in force now and lock out the month's postings; it is refused as the date's
    problem, and writes nothing. Tomorrow is taken (a plant ahead of the server's clock)."""
    change = dt.date.today() + dt.timedelta(days=30)
    roll = m.CostSet("roll", materials=(("M", Decimal("2.50")),))
    service.store.add_master(m.MasterData(items={}, boms={}, cost_sets={"roll": roll}))
    service.store.release_cost_set("roll", change)
    before = dump_tables(service.store)
    headers = service.as_(Role.operator)
    typo = {**COMPLETION, "date": (change + dt.timedelta(days=3)).isoformat()}
    (error,) = _problem(service.client.post("/events", json=typo, headers=headers), 422)["errors"]
    assert error["field"] == "date" and f"on or after {change}, when standards" in error["detail"]
    assert dump_tables(service.store) == before
    tomorrow = {**COMPLETION, "date": (dt.date.today() + dt.timedelta(days=1)).isoformat()}
    assert service.client.post("/events", json=tomorrow, headers=headers).status_code == 201


def test_a_book_locked_by_another_writer_answers_503_to_try_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long import holds SQLite's write lock: a posting waits the busy timeout, then is
    told the book is unavailable for now (503, Retry-After), not that the server failed."""
    import sqlite3

    from backflush.store import repository

    monkeypatch.setattr(repository, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "book.db"
    secret = widgets_book(f"sqlite:///{path}")
    app = create_app(f"sqlite:///{path}")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            assert client.get("/journal", headers=headers).status_code == 200  # schema checked
            writer.execute("BEGIN IMMEDIATE")
            response = client.post("/events", json=COMPLETION, headers=headers)
            problem = _problem(response, 503)
            assert response.headers["Retry-After"] == "5"
            assert "busy or unreachable; send the request again" in problem["detail"]
            writer.execute("ROLLBACK")
            assert client.post("/events", json=COMPLETION, headers=headers).status_code == 201
    finally:
        writer.close()
        app.state.store.close()


def test_a_body_said_to_be_other_than_json_is_refused(service: Service) -> None:
    """415 for form data or plain text, however JSON-like the body; none given is JSON."""
    headers = service.as_(Role.operator)
    before = dump_tables(service.store)
    body = json.dumps(COMPLETION)
    for media in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = service.client.post(
            "/events", content=body, headers={**headers, "Content-Type": media}
        )
        problem = _problem(response, 415)
        assert problem["errors"][0]["field"] == "content-type", problem
    assert dump_tables(service.store) == before
    sent = {**headers, "Content-Type": "application/merge-patch+json; charset=utf-8"}
    assert service.client.post("/events", content=body, headers=sent).status_code == 201
    empty = service.client.post(  # curl -d '' says form data: no body is no form
        "/exceptions/nope/M/shortage/retry",
        content=b"",
        headers={
            **service.as_(Role.accountant),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    _problem(empty, 404)  # an optional body left out: not 415
    bare = service.client.post("/events", content=json.dumps({**COMPLETION, "id": "c9"}))
    assert bare.status_code == 401  # (no token) and with one, no Content-Type is read as JSON
    response = service.client.post(
        "/events", content=json.dumps({**COMPLETION, "id": "c9"}), headers=headers
    )
    assert response.status_code == 201, response.text


def test_a_query_parameter_the_route_does_not_take_is_refused(service: Service) -> None:
    """A typo in a filter would answer with everything, unfiltered."""
    viewer = service.as_(Role.viewer)
    for path, typo in (("/exceptions", "statuss"), ("/journal", "perod"), ("/tokens", "x")):
        response = service.client.get(path, params={typo: "open"}, headers=viewer)
        if path == "/tokens":  # the role first: a viewer learns nothing of an admin's route
            _problem(response, 403)
            continue
        problem = _problem(response, 422)
        assert problem["errors"][0]["field"] == typo
        assert problem["errors"][0]["location"] == "query"
        _problem(service.client.get(path, params={typo: "open"}), 401)  # the token first
    posted = service.client.post(
        "/events", params={"dry_run": "1"}, json=COMPLETION, headers=service.as_(Role.operator)
    )
    assert _problem(posted, 422)["errors"][0]["field"] == "dry_run"
    assert service.client.get("/health", params={"probe": "lb"}).status_code == 200
    taken = service.client.get("/exceptions", params={"status": "open"}, headers=viewer)
    assert taken.status_code == 200
    report = service.client.get("/reports/valuation", params={"format": "csv"}, headers=viewer)
    assert report.status_code == 200


def test_a_nul_in_an_id_is_refused_not_a_server_error(service: Service) -> None:
    """PostgreSQL refuses NUL in text: an id holding one was looked up as it came (a 500)."""
    headers = service.as_(Role.accountant)
    before = dump_tables(service.store)
    posted = service.client.post("/events", json={**COMPLETION, "id": "\x00"}, headers=headers)
    assert _problem(posted, 422)["errors"][0]["field"] == "id"
    for path in ("/events/%00", "/events/a%00b", "/items/%00", "/exceptions/%00/M/shortage"):
        response = service.client.get(path, headers=headers)
        assert response.status_code in (404, 405), (path, response.text)
    resolved = service.client.post(
        "/exceptions/%00/M/shortage/resolve", json={"reason": "r"}, headers=headers
    )
    _problem(resolved, 404)
    assert dump_tables(service.store) == before


@pytest.mark.parametrize(
    ("accept", "csv"),
    [
        ("text/csv", True),
        ("application/json;q=1, text/csv;q=0.1", False),  # was CSV: "text/csv" was in it
        ("text/csv;q=0.9, application/json;q=0.5", True),
        ("text/csv, application/json", False),  # a tie: JSON
        ("*/*", False),
        ("text/*", True),
        ("TEXT/CSV", True),
        ("text/csv;q=nan, */*;q=0.1", False),
        ("", False),
    ],
)
def test_accept_weighs_csv_against_json(accept: str, csv: bool) -> None:
    assert _prefers_csv(accept) is csv


def test_a_book_on_a_read_only_mount_is_served_to_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write is refused as such (403): a 503 "try again" would be sent again for ever."""
    from backflush.store import repository

    path = tmp_path / "book.db"
    secret = widgets_book(f"sqlite:///{path}")
    monkeypatch.setattr(repository, "_read_only_mount", lambda _path: True)
    app = create_app(f"sqlite:///{path}")
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {secret}"}
            assert client.get("/journal", headers=headers).status_code == 200
            response = client.post("/events", json=COMPLETION, headers=headers)
            assert "read-only" in _problem(response, 403)["detail"]
            assert "Retry-After" not in response.headers
    finally:
        app.state.store.close()
