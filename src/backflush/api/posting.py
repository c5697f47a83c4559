"""Posting a request's events (``POST /events``, ``/events/batch`` and the routes that post
one event for the caller): what the group writer runs in the posting's transaction, whether
it runs in the server's process or in a writer process of its own (:mod:`backflush.api.process`).
A request travels to that process as an :class:`EventRequest`, plain data, and its outcome
comes back as an :class:`Answer` or a :class:`Problem`."""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backflush.api.problems import Problem, field_error, invalid
from backflush.api.tokens import Token, live_tokens
from backflush.book import Book, ConflictError
from backflush.domain import model as m
from backflush.domain.money import fmt
from backflush.engine.flush import PostingError
from backflush.engine.standards import StandardError
from backflush.formats.inputs import InputError, build_event, is_reference, live_date_problem
from backflush.store import schema as t
from backflush.store.repository import RECORDED_IN_GROUP, Answer, Key, KeyReused, Posting

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclasses.dataclass(frozen=True, slots=True)
class EventRequest:
    """A request's events as its body gave them (parsed JSON), checked in the posting's
    transaction against the book: who sends them, under which idempotency key, and whether
    the body was a batch (a list: problems point into it by position)."""

    token: Token
    key: Key | None
    raws: list[Any]
    batch: bool

    @property
    def ids(self) -> list[str]:
        """The ids read ahead for the group: only what could be an id (PostgreSQL refuses
        NUL in text)."""
        return [r["id"] for r in self.raws if isinstance(r, dict) and is_reference(r.get("id"))]


def posting(request: EventRequest) -> Posting[Answer]:
    """The request's posting: in the posting's transaction, the token is checked again, the
    events are read against the book's master data, and a replayed key answers as it first
    did (see :class:`Posting`)."""
    token, batch = request.token, request.batch
    built: list[m.Event] = []
    posted_on: list[Book] = []

    def events(conn: Connection, book: Book, kept: dict[str, Any]) -> list[m.Event]:
        live = kept.get("tokens")
        if live is None:  # read again whenever another writer wrote (a token revoked...)
            live = kept["tokens"] = live_tokens(conn)
        if token.id not in live:
            raise unauthenticated("unknown or revoked token")
        built[:] = _events(book, token, request.raws, batch)
        posted_on[:] = [book]
        return built

    def done(conn: Connection, applied: list[bool]) -> Answer:
        pairs = list(zip(built, applied, strict=True))
        # An event already recorded names who recorded it: perhaps another token, or this
        # request itself, earlier in a batch, or another request of the group commit (their
        # rows are written after the group).
        # Only the events sent again are looked up: never the whole group's record per request.
        group: dict[str, str | None] = conn.info.get(RECORDED_IN_GROUP, {})
        earlier: dict[str, str | None] = {e.id: token.name for e, a in pairs if a}
        again = [e.id for e, a in pairs if not a and e.id not in earlier]
        earlier |= {i: group[i] for i in again if i in group}
        earlier |= recorded_by(conn, [i for i in again if i not in earlier])
        cleared: dict[str, list[dict[str, str]]] = {}
        applied_ids = [e.id for e, a in pairs if a]
        for cause, owner, item, quantity in posted_on[0].consumption_cleared(applied_ids):
            taken = {"event": owner, "item": item, "quantity": fmt(quantity)}
            cleared.setdefault(cause, []).append(taken)
        rows: list[dict[str, Any]] = [
            {"id": e.id, "type": e.type, "applied": a}
            | ({} if a else {"recorded_by": earlier.get(e.id)})
            # the queued consumption it cleared (a retry says so when it cleared none)
            | (
                {"cleared": cleared.get(e.id, [])}
                if a and (e.id in cleared or e.type == "retry")
                else {}
            )
            for e, a in pairs
        ]
        body: dict[str, Any] = (
            {"events": rows, "applied": sum(applied), "already_recorded": len(rows) - sum(applied)}
            if batch
            else rows[0]
        )
        body.setdefault("recorded_by", token.name)  # a batch: who sent it
        return Answer(201 if any(applied) else 200, body)

    return Posting(events, done, token.name, request.ids, request.key)


def refusal(error: Exception, batch: bool) -> Problem | None:
    """The problem the book's refusal of a posting answers (None: not a refusal)."""
    if isinstance(error, KeyReused):
        return key_reused()
    if isinstance(error, ConflictError):
        detail = f"{error}; nothing was written"
        return Problem(409, "conflict", detail, _refused_at(error, batch, "/id"))
    if isinstance(error, PostingError | StandardError):
        detail = f"{error}; nothing was written"
        return Problem(422, "posting-refused", detail, _refused_at(error, batch))
    return None


def _events(book: Book, token: Token, raws: list[Any], batch: bool) -> list[m.Event]:
    """The events of the body, or a problem naming every bad field (pointer into the body).
    An event whose id the book records already is sent again (a no-op, or a conflict when it
    differs), whatever its date."""
    settings, master = book.settings, book.master
    errors: list[dict[str, str]] = []
    found: list[m.Event] = []
    for number, raw in enumerate(raws):
        base = f"/{number}" if batch else ""
        if not isinstance(raw, dict):
            errors.append(field_error("body", base or "body", "expected a JSON object", base))
            continue
        where = f"event {number}" if batch else "event"
        try:
            event = build_event(raw, master, settings, where=where)
        except InputError as error:
            label = f"{where}: event {raw.get('id') or '?'}: "
            for problem in error.problems:
                text = problem.removeprefix(label)
                field, _, detail = text.partition(": ")
                if not detail:
                    field, detail = "event", text
                pointer = f"{base}/{field}" if field != "event" else base
                errors.append(field_error("body", field, detail, pointer))
            continue
        if not token.may_post(event.type):
            raise Problem(
                403,
                "forbidden",
                f"{token.role.token} may not post {event.type} events",
                [field_error("body", "type", "not for this role", f"{base}/type")],
            )
        ahead = live_date_problem(event.date, book.standards, in_force=book.epoch)
        if ahead is not None and event.id not in book.recorded_ids([event]):
            errors.append(field_error("body", "date", ahead, f"{base}/date"))
            continue
        found.append(event)
    if errors:
        # in a batch the detail names each event by its pointer (/3/item), not just the field
        raise invalid(errors, _pointed(errors) if batch else "")
    return found


def _pointed(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e.get('pointer') or e['field']}: {e['detail']}" for e in errors[:5])


def recorded_by(conn: Connection, ids: list[str]) -> dict[str, str | None]:
    """Who recorded each of the events ``ids`` (None: recorded before books kept it)."""
    found: dict[str, str | None] = {}
    for start in range(0, len(ids), 500):  # within SQLite's limit of bound parameters
        query = sa.select(t.events.c.id, t.events.c.recorded_by).where(
            t.events.c.id.in_(ids[start : start + 500])
        )
        found.update({row.id: row.recorded_by for row in conn.execute(query)})
    return found


def _refused_at(error: Exception, batch: bool, field: str = "") -> list[dict[str, str]]:
    """Where in the body the event the book refused is (a JSON pointer: in a batch, its
    position; ``field``, the part of it at fault, if one)."""
    at = getattr(error, "position", None)
    if batch and at is None:
        return []
    event = getattr(error, "event_id", "")
    pointer = f"/{at}{field}" if batch else field
    name = f"event {event}" if event else "the event"
    return [field_error("body", field.lstrip("/") or "event", name, pointer)]


def key_reused() -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "this Idempotency-Key was used with another request; use a new key",
        [field_error("header", "Idempotency-Key", "used before with another request")],
    )


def unauthenticated(detail: str) -> Problem:
    return Problem(401, "unauthenticated", detail, headers=_CHALLENGE)
