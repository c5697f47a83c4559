"""The accountant's routes of the HTTP API through real HTTP (the ``service`` fixture of
test_api: uvicorn on loopback, a SQLite book and a PostgreSQL one): close and reopen with the
checklist, exceptions retried and resolved, master data, cost set releases, items with their
standards, CSV reports and pages of lists."""

from __future__ import annotations

import csv
import hashlib
import io
from decimal import Decimal
from typing import Any

import httpx

from backflush.api.tokens import Role, create_token
from helpers import dump_tables
from test_api import COMPLETION, Service, _problem, conforms, service

__all__ = ["service"]  # the fixture, used by name

SHORT = {**COMPLETION, "id": "c40", "quantity": "40"}  # 120 M wanted, 100 bought: 20 queued
PURCHASE = {
    "id": "p2",
    "date": "2026-01-16",
    "type": "purchase",
    "item": "M",
    "quantity": "50",
    "unit_cost": "2.00",
}


def _post(
    service: Service, path: str, body: Any, role: Role = Role.accountant, **headers: str
) -> httpx.Response:
    return service.client.post(path, json=body, headers={**service.as_(role), **headers})


def _refused_by_every_other_role(service: Service, path: str, body: Any) -> None:
    before = dump_tables(service.store)
    for role in (Role.viewer, Role.operator, Role.admin):
        problem = _problem(_post(service, path, body, role), 403)
        assert problem["type"] == "/problems/forbidden"
    assert dump_tables(service.store) == before


# ---------------------------------------------------------------- close and reopen


def test_close_reopen_and_the_checklist(service: Service) -> None:
    accountant, viewer = service.as_(Role.accountant), service.as_(Role.viewer)
    assert _post(service, "/events", COMPLETION, Role.operator).status_code == 201
    checklist = service.client.get("/periods/2026-01/checklist", headers=viewer)
    assert checklist.status_code == 200, checklist.text
    found = checklist.json()
    assert found["period"] == "2026-01"
    assert found["status"] in ("ok", "warn", "fail")
    assert {c["check"] for c in found["checks"]}
    problem = _problem(
        service.client.get("/periods/2026-01/checklist?drift=-1", headers=viewer), 422
    )
    assert problem["errors"][0]["field"] == "drift"
    _refused_by_every_other_role(service, "/periods/2026-01/close", {})
    # the close: an event with who posted it, replayed under its key
    headers = {"Idempotency-Key": "close-jan"}
    first = _post(service, "/periods/2026-01/close", None, **headers)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "id": "close-2026-01",
        "type": "close",
        "applied": True,
        "recorded_by": "accountant",
    }
    after = dump_tables(service.store)
    again = _post(service, "/periods/2026-01/close", None, **headers)
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert dump_tables(service.store) == after
    # closed: a second close (no key) changes nothing; a posting in January is refused
    again = _post(service, "/periods/2026-01/close", {})
    assert (again.status_code, again.json()["applied"]) == (200, False)
    late = _post(service, "/events", {**COMPLETION, "id": "late"}, Role.operator)
    _problem(late, 422)
    assert dump_tables(service.store) == after
    # reopen: reason required, named; then the close again under a new id
    _refused_by_every_other_role(service, "/periods/2026-01/reopen", {"reason": "late count"})
    problem = _problem(_post(service, "/periods/2026-01/reopen", {}), 422)
    assert problem["errors"][0]["field"] == "reason"
    assert problem["errors"][0]["pointer"] == "/reason"
    problem = _problem(_post(service, "/periods/2026-01/reopen", {"reason": "x", "y": 1}), 422)
    assert problem["errors"][0]["field"] == "y"
    problem = _problem(_post(service, "/periods/2026-13/reopen", {"reason": "x"}), 422)
    assert problem["errors"][0]["location"] == "path"
    assert dump_tables(service.store) == after
    reopened = _post(
        service, "/periods/2026-01/reopen", {"reason": "late count", "date": "2026-02-01"}
    )
    assert reopened.status_code == 201, reopened.text
    assert reopened.json()["id"] == "reopen-2026-01-1"
    for again in ({"reason": "late count"}, {"reason": "late count", "date": "2026-02-01"}):
        answer = _post(service, "/periods/2026-01/reopen", again)  # sent again: as recorded
        assert answer.status_code == 200, answer.text
        assert (answer.json()["id"], answer.json()["applied"]) == ("reopen-2026-01-1", False)
    other = _post(service, "/periods/2026-01/reopen", {"reason": "another"})
    assert "nothing to reopen" in _problem(other, 422)["detail"]
    assert _post(service, "/events", {**COMPLETION, "id": "late"}, Role.operator).is_success
    old = _post(service, "/periods/2026-01/close", {"id": "close-2026-01"})  # reopened since
    assert "2026-01 is open (reopened since)" in _problem(old, 409)["detail"]
    closed = _post(service, "/periods/2026-01/close", {}, **{"Idempotency-Key": "close-jan-2"})
    assert (closed.status_code, closed.json()["id"]) == (201, "close-2026-01-2")
    with service.store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, recorded_by FROM events WHERE type IN ('close', 'reopen') ORDER BY id"
        ).all()
    assert [tuple(r) for r in rows] == [
        ("close-2026-01", "accountant"),
        ("close-2026-01-2", "accountant"),
        ("reopen-2026-01-1", "accountant"),
    ]
    summary = service.client.get("/reports/summary", headers=accountant).json()
    assert summary["quantities"]["W"] == "40"


# ---------------------------------------------------------------- exceptions


def test_exceptions_paged_retried_and_resolved(service: Service) -> None:
    viewer = service.as_(Role.viewer)
    assert _post(service, "/events", SHORT, Role.operator).status_code == 201
    second = {**SHORT, "id": "c41", "quantity": "1"}
    assert _post(service, "/events", second, Role.operator).status_code == 201
    page = service.client.get("/exceptions?limit=1", headers=viewer).json()
    assert page["total"] == 2
    (first,) = page["exceptions"]
    assert first["key"] == "c40/M/shortage" and first["open"] == "20"
    rest = service.client.get(f"/exceptions?limit=1&after={page['next']}", headers=viewer).json()
    assert [e["key"] for e in rest["exceptions"]] == ["c41/M/shortage"]
    assert rest["next"] is None
    problem = _problem(service.client.get("/exceptions?after=nope", headers=viewer), 422)
    assert problem["errors"][0]["field"] == "after"
    _refused_by_every_other_role(service, "/exceptions/c40/M/shortage/retry", {})
    _refused_by_every_other_role(service, "/exceptions/c40/M/shortage/resolve", {"reason": "r"})
    before = dump_tables(service.store)
    _problem(_post(service, "/exceptions/nope/M/shortage/retry", {}), 404)
    problem = _problem(_post(service, "/exceptions/c40/M/shortage/resolve", {}), 422)
    assert problem["errors"][0]["field"] == "reason"
    assert dump_tables(service.store) == before
    # a retry with no stock yet: recorded, nothing consumed; sent again, the same answer
    headers = {"Idempotency-Key": "retry-1"}
    retried = _post(service, "/exceptions/c40/M/shortage/retry", {"date": "2026-01-17"}, **headers)
    assert retried.status_code == 201, retried.text
    assert retried.json()["type"] == "retry" and retried.json()["recorded_by"] == "accountant"
    assert retried.json()["cleared"] == []  # recorded, and says it cleared nothing
    conforms(service, "/exceptions/{key}/retry", retried)
    after = dump_tables(service.store)
    again = _post(service, "/exceptions/c40/M/shortage/retry", {"date": "2026-01-17"}, **headers)
    assert again.json() == retried.json() and dump_tables(service.store) == after
    # stock arrives and consumes what waits for M: a retry then has nothing to do
    received = _post(service, "/events", PURCHASE)
    assert received.status_code == 201
    assert received.json()["cleared"] == [  # oldest first
        {"event": "c40", "item": "M", "quantity": "20"},
        {"event": "c41", "item": "M", "quantity": "3"},  # 1 x 3 M
    ]
    conforms(service, "/events", received)
    cleared = service.client.get("/exceptions?status=open", headers=viewer).json()
    assert cleared["exceptions"] == []
    after = dump_tables(service.store)
    late = _problem(_post(service, "/exceptions/c40/M/shortage/retry", {"date": "2026-01-18"}), 409)
    assert (
        late["detail"] == "backflush exception 'c40/M/shortage' is cleared, not open: nothing to do"
    )
    assert dump_tables(service.store) == after


def test_an_exception_resolved_with_a_reason(service: Service) -> None:
    assert _post(service, "/events", SHORT, Role.operator).status_code == 201
    body = {"reason": "found on the shelf", "date": "2026-01-20"}
    resolved = _post(service, "/exceptions/c40/M/shortage/resolve", body)
    assert resolved.status_code == 201, resolved.text
    assert resolved.json()["id"] == "write-off:c40/M"
    (row,) = service.client.get("/exceptions", headers=service.as_(Role.viewer)).json()[
        "exceptions"
    ]
    assert (row["status"], row["reason"]) == ("written off", "found on the shelf")
    again = _post(service, "/exceptions/c40/M/shortage/resolve", body)
    assert (again.status_code, again.json()["applied"]) == (200, False)
    # Sent again without its date (today's by default) by another accountant: as recorded,
    # on whatever day, naming who wrote it off.
    _, secret = create_token(service.store, "accountant-2", Role.accountant)
    before = dump_tables(service.store)
    again = service.client.post(
        "/exceptions/c40/M/shortage/resolve",
        json={"reason": "found on the shelf"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert again.status_code == 200, again.text
    assert again.json() == {
        "id": "write-off:c40/M",
        "type": "write_off",
        "applied": False,
        "recorded_by": "accountant",
    }
    assert dump_tables(service.store) == before


def test_a_resolve_sent_again_is_answered_under_the_write_off_made(service: Service) -> None:
    """A write-off made under its own id (or under write-off-E-I, before ids were escaped):
    the same request sent again without an id is answered as recorded, not refused as the
    write-off of an exception written off already."""
    second = {**SHORT, "id": "c41", "quantity": "1"}
    for event in (SHORT, second):
        assert _post(service, "/events", event, Role.operator).status_code == 201
    for event, made in (("c40", "wo-7"), ("c41", "write-off-c41-M")):  # the second as before
        body = {"reason": "found", "date": "2026-01-20"}
        resolved = _post(service, f"/exceptions/{event}/M/shortage/resolve", {**body, "id": made})
        assert resolved.status_code == 201, resolved.text
        again = _post(service, f"/exceptions/{event}/M/shortage/resolve", body)
        assert again.status_code == 200, again.text
        assert (again.json()["id"], again.json()["applied"]) == (made, False)
    other = _post(
        service, "/exceptions/c40/M/shortage/resolve", {"reason": "other", "date": "2026-01-20"}
    )
    assert "already recorded with different content" in _problem(other, 409)["detail"]
    # without a date (the write-off's, whatever day it is sent again): another reason is
    # refused too, not answered as recorded
    undated = _post(service, "/exceptions/c40/M/shortage/resolve", {"reason": "other"})
    problem = _problem(undated, 409)
    assert problem["errors"][0]["field"] == "reason"
    assert "written off already, by wo-7, for another reason ('found')" in problem["detail"]
    same = _post(service, "/exceptions/c40/M/shortage/resolve", {"reason": "found"})
    assert (same.status_code, same.json()["id"]) == (200, "wo-7")


def test_one_key_names_one_exception_whatever_the_ids_hold(service: Service) -> None:
    """Ids may hold / (and -): event x/y short of z and event x short of y/z were both
    x/y/z/shortage, and resolving it wrote off the first; the default write-off ids
    write-off-{event}-{item} of (d-1, m) and (d, 1-m) were one. Each part of a key is now
    escaped (% and /), and a write-off's id too, or made a digest when too long."""
    master = {
        "items": [
            {"id": "z", "kind": "material", "standard_cost": "2"},
            {"id": "y/z", "kind": "material", "standard_cost": "3"},
            {"id": "FZ", "kind": "finished", "standard_cost": {"conversion": "1"}},
            {"id": "FYZ", "kind": "finished", "standard_cost": {"conversion": "1"}},
        ],
        "boms": [
            {"item": "FZ", "lines": [{"component": "z", "quantity": "1"}]},
            {"item": "FYZ", "lines": [{"component": "y/z", "quantity": "1"}]},
        ],
    }
    assert _post(service, "/master", master).status_code == 201
    long_id = "L" * 195
    made = [
        {"id": event, "date": "2026-01-20", "type": "completion", "item": item, "quantity": "4"}
        for event, item in (("x/y", "FZ"), ("x", "FYZ"), (long_id, "FZ"))
    ]
    assert _post(service, "/events/batch", made, Role.operator).status_code == 201
    viewer = service.as_(Role.viewer)
    page = service.client.get("/exceptions", headers=viewer).json()["exceptions"]
    keys = {(e["event"], e["item"]): e["key"] for e in page}
    assert keys[("x/y", "z")] == "x%2Fy/z/shortage"
    assert keys[("x", "y/z")] == "x/y%2Fz/shortage"

    def resolve(key: str) -> httpx.Response:
        quoted = key.replace("%", "%25").replace("/", "%2F")  # as a client quotes a path part
        return _post(service, f"/exceptions/{quoted}/resolve", {"reason": "r"})

    _problem(resolve("x/y/z/shortage"), 404)  # names neither
    resolved = resolve("x/y%2Fz/shortage")
    assert resolved.status_code == 201, resolved.text
    assert resolved.json()["id"] == "write-off:x/y%2Fz"
    statuses = {
        (e["event"], e["item"]): e["status"]
        for e in service.client.get("/exceptions", headers=viewer).json()["exceptions"]
    }
    assert statuses[("x", "y/z")] == "written off" and statuses[("x/y", "z")] == "open"
    other = resolve("x%2Fy/z/shortage")
    assert other.status_code == 201 and other.json()["id"] == "write-off:x%2Fy/z"
    longest = resolve(f"{long_id}/z/shortage")
    assert longest.status_code == 201, longest.text
    assert (
        longest.json()["id"]
        == "write-off:" + hashlib.sha256(f"write-off:{long_id}/z".encode()).hexdigest()
    )


def test_the_next_page_of_exceptions_follows_one_resolved_meanwhile(service: Service) -> None:
    """``after`` marks a place in the queue, not in the list as filtered now: the exception
    it names may have been resolved or cleared since the page was read."""
    for n in range(3):
        event = {**SHORT, "id": f"c4{n}", "quantity": "40" if n == 0 else "1"}
        assert _post(service, "/events", event, Role.operator).status_code == 201
    viewer = service.as_(Role.viewer)
    first = service.client.get("/exceptions?status=open&limit=1", headers=viewer).json()
    assert [e["key"] for e in first["exceptions"]] == ["c40/M/shortage"] and first["total"] == 3
    resolved = _post(service, "/exceptions/c40/M/shortage/resolve", {"reason": "found"})
    assert resolved.status_code == 201
    rest = service.client.get(
        "/exceptions", params={"status": "open", "after": first["next"]}, headers=viewer
    ).json()
    assert [e["key"] for e in rest["exceptions"]] == ["c41/M/shortage", "c42/M/shortage"]
    assert rest["total"] == 2 and rest["next"] is None


# ---------------------------------------------------------------- master data and cost sets

ASM = {"id": "ASM", "name": "Assembly", "rates": {"labor": "20.00", "overhead": "10.00"}}
G_LINES = [{"component": "M", "quantity": "2"}, {"component": "K", "quantity": "4"}]
G_STEPS = [{"operation": 10, "work_center": "ASM", "run_hours": "0.25"}]
MASTER = {
    "items": [
        {"id": "M", "kind": "material", "standard_cost": "2.00"},
        {"id": "K", "kind": "material", "standard_cost": "1.25"},
        {"id": "G", "kind": "finished"},
    ],
    "work_centers": [ASM],
    "boms": [{"item": "G", "effective_from": "2026-02-01", "lines": G_LINES}],
    "routings": [{"item": "G", "effective_from": "2026-02-01", "operations": G_STEPS}],
    "cost_sets": [{"name": "next", "materials": {"K": "1.50"}}],
}


def test_master_data_items_and_a_cost_set_release(service: Service) -> None:
    viewer = service.as_(Role.viewer)
    _refused_by_every_other_role(service, "/master", MASTER)
    before = dump_tables(service.store)
    bad = {**MASTER, "items": [*MASTER["items"][:2], {"id": "G", "kind": "teleporter"}]}
    problem = _problem(_post(service, "/master", bad), 422)
    assert problem["errors"][0]["field"] == "items"
    assert problem["errors"][0]["pointer"].startswith("/items/2")
    problem = _problem(_post(service, "/master", {"colours": []}), 422)
    assert problem["errors"][0]["field"] == "colours"
    changed = {**MASTER, "items": [{"id": "M", "kind": "material", "standard_cost": "9.00"}]}
    _problem(_post(service, "/master", {"items": changed["items"]}), 422)  # M differs
    assert dump_tables(service.store) == before
    headers = {"Idempotency-Key": "master-1"}
    added = _post(service, "/master", MASTER, **headers)
    assert added.status_code == 201, added.text
    assert added.json() == {
        "read": {"items": 3, "boms": 1, "work_centers": 1, "routings": 1, "cost_sets": 1},
        "recorded_by": "accountant",
    }
    after = dump_tables(service.store)
    again = _post(service, "/master", MASTER, **headers)
    assert again.json() == added.json() and again.headers["idempotent-replayed"] == "true"
    assert dump_tables(service.store) == after
    # items a page at a time, in id order
    seen, after_id = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after_id} if after_id else {})}
        page = service.client.get("/items", params=params, headers=viewer).json()
        assert page["total"] == 4
        seen += [i["id"] for i in page["items"]]
        after_id = page["next"]
        if after_id is None:
            break
    assert seen == ["G", "K", "M", "W"]
    # G = 2 M at 2.00 + 4 K at 1.25 + 0.25 h at 30.00: 4.00 + 5.00 + 7.50 = 16.50
    item = service.client.get("/items/G?date=2026-03-01", headers=viewer).json()
    assert item["kind"] == "finished"
    assert item["boms"][0]["lines"][1] == {
        "component": "K",
        "quantity": "4",
        "scrap": "0",
        "flush": None,
        "operation": None,
    }
    assert item["standard"]["material"] == "9"
    assert item["standard"]["total"] == "16.5"
    assert item["indented_bom"]["total"] == "16.5"
    problem = _problem(service.client.get("/items/NOPE", headers=viewer), 404)
    assert problem["errors"][0]["field"] == "item_id"
    # release: effective date required, after the last event; replay under its key
    _refused_by_every_other_role(service, "/cost-sets/next/release", {"effective": "2026-03-01"})
    problem = _problem(_post(service, "/cost-sets/next/release", {}), 422)
    assert problem["errors"][0]["field"] == "effective"
    _problem(_post(service, "/cost-sets/nope/release", {"effective": "2026-03-01"}), 404)
    _problem(_post(service, "/cost-sets/next/release", {"effective": "2025-12-01"}), 422)
    assert dump_tables(service.store) == after
    headers = {"Idempotency-Key": "release-1"}
    released = _post(service, "/cost-sets/next/release", {"effective": "2026-03-01"}, **headers)
    assert released.status_code == 201, released.text
    assert released.json()["released"] == {
        "name": "next",
        "effective": "2026-03-01",
        "materials": {"K": "1.5"},
        "rates": [],
    }
    again = _post(service, "/cost-sets/next/release", {"effective": "2026-03-01"}, **headers)
    assert again.json() == released.json()
    released_again = dump_tables(service.store)
    again = _post(service, "/cost-sets/next/release", {"effective": "2026-03-01"})  # no key
    assert (again.status_code, again.json()["released"]) == (200, released.json()["released"])
    other = _post(service, "/cost-sets/next/release", {"effective": "2026-04-01"})
    assert _problem(other, 409)["errors"][0]["field"] == "effective"
    assert dump_tables(service.store) == released_again
    item = service.client.get("/items/G?date=2026-03-01", headers=viewer).json()
    assert item["standard"]["total"] == "17.5"  # K at 1.50
    # a later product needs send only itself: its BOM and routing name the book's parts
    h: dict[str, Any] = {"items": [{"id": "H", "kind": "finished"}]}
    h_lines = [{"component": "G", "quantity": "1"}, G_LINES[1]]
    h["boms"] = [{"item": "H", "effective_from": "2026-02-01", "lines": h_lines}]
    h["routings"] = [{"item": "H", "effective_from": "2026-02-01", "operations": G_STEPS}]
    added_h = _post(service, "/master", h)
    assert added_h.status_code == 201, added_h.text
    assert added_h.json()["read"]["items"] == 1
    item = service.client.get("/items/H?date=2026-02-15", headers=viewer).json()
    assert item["standard"]["total"] == "29"  # G 16.50 + K 5.00 + 7.50
    item = service.client.get("/items/H?date=2026-03-01", headers=viewer).json()
    assert item["standard"]["total"] == "31"  # G 17.50 + K 6.00 + 7.50
    # who changed the standards: the token's name, as the answers said
    log = [(by, change) for _, by, change in service.store.master_changes()]
    assert log[-3:] == [
        ("accountant", log[-3][1]),
        ("accountant", "cost set next released, effective 2026-03-01"),
        (
            "accountant",
            "master data added (items 1, bom_lines 2, routing_operations 1); items: H; "
            "BOM versions: H from 2026-02-01; routing versions: H from 2026-02-01",
        ),
    ]


# ---------------------------------------------------------------- CSV and throughput


def test_reports_as_csv_with_exact_decimals_and_throughput_as_json(service: Service) -> None:
    viewer = service.as_(Role.viewer)
    assert _post(service, "/events", COMPLETION, Role.operator).status_code == 201
    response = service.client.get("/reports/trial-balance?format=csv", headers=viewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["account", "debit", "credit"]
    # 100 M bought at 2.0007: 200.07, 60 of them at 2.00 standard into W
    assert ["finished_goods", "420.00", ""] in rows  # money to the cent, as JSON writes it
    assert ["purchase_price_variance", "0.07", ""] in rows
    json_form = service.client.get("/reports/trial-balance", headers=viewer).json()
    debits = {a["account"]: Decimal(a["debit"]) for a in json_form["accounts"]}
    assert {r[0]: Decimal(r[1] or "0") for r in rows[1:]} == debits
    accepted = service.client.get("/reports/valuation", headers={**viewer, "Accept": "text/csv"})
    assert accepted.text.splitlines()[0].startswith("item,kind,on hand")
    for kind in ("variances", "throughput", "margin", "variance-analysis", "flags"):
        response = service.client.get(f"/reports/{kind}?format=csv", headers=viewer)
        assert response.status_code == 200, (kind, response.text)
    problem = _problem(service.client.get("/reports/summary?format=csv", headers=viewer), 406)
    assert problem["errors"][0]["field"] == "format"
    problem = _problem(
        service.client.get("/reports/valuation?format=csv&from=2026-01", headers=viewer), 422
    )
    assert problem["errors"][0]["field"] == "from"
    throughput = service.client.get("/reports/throughput", headers=viewer).json()
    (january,) = throughput["periods"]
    assert january["period"] == "2026-01"
    assert january["sales"] == "0.00"
    assert january["inventory"] == "500.00"  # 40 M at 2.00 left (80) and 20 W at 21.00 (420)
