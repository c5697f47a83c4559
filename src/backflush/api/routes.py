"""The accountant's routes of the API (issue 6): close and reopen periods with their
checklist, retry and resolve backflush exceptions, master data and cost sets, items with
their BOMs and standards; lists a page at a time (``limit`` and an ``after`` cursor).

Close, reopen, retry and resolve post ordinary events (as ``backflush close``, ``reopen`` and
``exceptions retry | resolve`` do) through the same path as ``POST /events``: recorded_by,
one transaction, ``Idempotency-Key`` replays. Master data and releases keep their key in the
transaction that writes them.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, some of
# which name dependencies given to add_routes.
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from backflush.api import app as base
from backflush.api.answers import event_answers
from backflush.api.posting import key_reused, recorded_by
from backflush.api.problems import Problem, field_error, invalid
from backflush.api.tokens import (
    LastAdminError,
    Role,
    Token,
    create_token,
    list_tokens,
    reserved_name,
    revoke_token,
    token_document,
)
from backflush.api.writer import EventWriter
from backflush.book import Book, exception_key, write_off_id
from backflush.domain import model as m
from backflush.domain.money import fmt
from backflush.engine.standards import StandardError, Standards
from backflush.formats.inputs import (
    BomModel,
    CostSetModel,
    Date,
    Identifier,
    InputError,
    ItemModel,
    Reason,
    RoutingModel,
    WorkCenterModel,
    build_master,
    describe,
    fields_of,
    to_decimal,
)
from backflush.reports import close as close_reports
from backflush.reports import standards as standards_reports
from backflush.reports.document import exception_document
from backflush.store.repository import (
    Answer,
    KeyReused,
    Store,
    answer_kept,
    keep_answers,
)

#: Most rows one page of ``/items`` or ``/exceptions`` may hold.
MAX_LIST = 1000

# ---------------------------------------------------------------- request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenBody(_Body):
    name: Identifier
    role: Role

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        reserved = reserved_name(name)
        if reserved is not None:
            raise ValueError(reserved)
        return name


class CloseBody(_Body):
    id: Identifier | None = None


class ReopenBody(_Body):
    reason: Reason
    date: Date | None = None
    id: Identifier | None = None


class RetryBody(_Body):
    date: Date | None = None
    id: Identifier | None = None


class ResolveBody(ReopenBody):
    pass


class ReleaseBody(_Body):
    effective: Date


_MASTER_SECTIONS = {
    "items": ItemModel,
    "boms": BomModel,
    "work_centers": WorkCenterModel,
    "routings": RoutingModel,
    "cost_sets": CostSetModel,
}


def _master_schema() -> dict[str, Any]:
    """``POST /master``'s body in the OpenAPI document: the sections of a scenario file."""
    properties = {}
    for name, model in _MASTER_SECTIONS.items():
        section = base._body_schema(list[model])  # type: ignore[valid-type]
        properties[name] = section["requestBody"]["content"]["application/json"]["schema"]
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _parsed(raw: Any, model: type[_Body]) -> Any:
    """The body checked against ``model``: a problem naming every bad field otherwise."""
    if not isinstance(raw, dict):
        raise invalid([field_error("body", "body", "expected a JSON object", "")])
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        errors = []
        for text in describe(error, allowed=fields_of(model)):
            field, _, detail = text.partition(": ")
            errors.append(field_error("body", field, detail or text, "/" + field.replace(".", "/")))
        raise invalid(errors) from None


async def _body(request: Request) -> Any:
    """The request body as JSON; an empty body is an empty object."""
    return await base._read_json(request, empty={})


# ---------------------------------------------------------------- documents


def item_document(item: m.Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind.value,
        "uom": item.uom,
        "flush": item.flush.value,
        "material_cost": None if item.material_cost is None else fmt(item.material_cost),
        "conversion": {e: fmt(v) for e, v in item.conversion},
        "triggers": None if item.policy is None else item.policy.value,
        "lot_size": fmt(item.lot_size),
        "family": item.family,
        "site": item.site,
    }


def _day(value: dt.date | None) -> str | None:
    return None if value is None or value in (dt.date.min, dt.date.max) else value.isoformat()


def bom_document(bom: m.Bom) -> dict[str, Any]:
    return {
        "effective_from": _day(bom.effective_from),
        "effective_to": _day(bom.effective_to),
        "lines": [
            {
                "component": line.component,
                "quantity": fmt(line.quantity),
                "scrap": fmt(line.scrap),
                "flush": None if line.flush is None else line.flush.value,
                "operation": line.operation,
            }
            for line in bom.lines
        ],
    }


def routing_document(routing: m.Routing) -> dict[str, Any]:
    return {
        "effective_from": _day(routing.effective_from),
        "effective_to": _day(routing.effective_to),
        "operations": [
            {
                "operation": op.number,
                "work_center": op.work_center,
                "run_hours": fmt(op.run_hours),
                "setup_hours": fmt(op.setup_hours),
                "yield": fmt(op.yield_),
            }
            for op in routing.operations
        ],
    }


def item_detail_document(
    settings: m.Settings, master: m.MasterData, item_id: str, on: dt.date
) -> dict[str, Any]:
    """An item with its BOM and routing versions, its standard rolled up on ``on`` and its
    indented BOM (None with ``standard_error`` when its standards cannot be rolled up)."""
    found = item_document(master.items[item_id])
    found["boms"] = [bom_document(b) for b in master.boms.get(item_id, ())]
    found["routings"] = [routing_document(r) for r in master.routings.get(item_id, ())]
    standards = Standards(settings, master)
    found["date"] = on.isoformat()
    try:
        rows = standards_reports.rollup(standards, on, [item_id])
        found["standard"] = standards_reports.rollup_document(on, rows, None)["items"][0]
        found["indented_bom"] = (
            standards_reports.indented_bom_document(
                standards_reports.indented_bom(standards, item_id, on)
            )
            if master.bom_on(item_id, on) is not None
            else None
        )
    except StandardError as error:
        found["standard"] = found["indented_bom"] = None
        found["standard_error"] = str(error)
    return found


#: What ``GET /exceptions?status=`` selects (:meth:`Book.exception_status`).
EXCEPTION_STATUSES = ("open", "cleared", "flagged", "written off")


def exceptions_page(
    book: Book, status: str | None, limit: int, after: str | None
) -> dict[str, Any]:
    """The exceptions in queue order (as they were raised). ``after`` is a key: the page
    starts after it in that order, whatever its status now (an exception resolved or cleared
    since the last page was read still marks the place)."""
    if status is not None and status not in EXCEPTION_STATUSES:
        expected = ", ".join(repr(s) for s in EXCEPTION_STATUSES)
        raise invalid(
            [field_error("query", "status", f"expected one of {expected}, got {status!r}")]
        )
    every = list(book.shortages)
    start = 0
    if after is not None:
        place = {exception_key(k): n for n, k in enumerate(every)}.get(after)
        if place is None:
            raise invalid([field_error("query", "after", "not the key of an exception")])
        start = place + 1

    def listed(keys: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        return keys if status is None else [k for k in keys if book.exception_status(k) == status]

    following = listed(every[start:])
    page = following[:limit]
    rows = [{"key": exception_key(k), **exception_document(book, k)} for k in page]
    return {
        "total": len(listed(every)),
        "exceptions": rows,
        "next": exception_key(page[-1]) if len(following) > limit and page else None,
    }


# ---------------------------------------------------------------- idempotent writes


class _Replayed(Exception):
    """An answer kept under the key meanwhile: the write is rolled back, that answer given."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer)
        self.answer = answer


def keyed(
    store: Store,
    token: Token,
    key: str | None,
    request: Request,
    raw: Any,
    write: Callable[[Callable[[Connection, dict[str, Any], int], None]], None],
) -> JSONResponse:
    """Run ``write`` (one transaction) with ``Idempotency-Key`` replays: ``write`` calls the
    given ``keep(conn, body, status)`` inside its transaction with its answer."""
    found = base.request_key(token, key, request, raw)
    if found is not None:
        replay = base.stored_answer(store, found)
        if replay is not None:
            return replay
    answer: dict[str, Any] = {}

    def keep(conn: Connection, body: dict[str, Any], status: int) -> None:
        body = {**body, "recorded_by": token.name}
        answer.update(body=body, status=status)
        if found is None:
            return
        replay = answer_kept(conn, found)
        if replay is not None:
            raise _Replayed(replay)
        keep_answers(conn, [(found, Answer(status, body))])

    try:
        write(keep)
    except InputError as error:
        raise invalid(
            [field_error("body", "body", p) for p in error.problems],
            f"refused; nothing was written: {'; '.join(error.problems[:5])}",
        ) from None
    except KeyReused:
        raise key_reused() from None
    except _Replayed as replayed:
        return base.respond(replayed.answer)
    return JSONResponse(answer["body"], status_code=answer["status"])


def _period(period: str) -> tuple[dt.date, dt.date]:
    try:
        return m.period_bounds(period)
    except ValueError:
        raise invalid(
            [field_error("path", "period", f"expected YYYY-MM, got {period!r}")]
        ) from None


# ---------------------------------------------------------------- the routes


def add_routes(
    app: FastAPI,
    store: Store,
    writer: EventWriter,
    reader: Callable[..., Token],
    accountant: Callable[..., Token],
    admin: Callable[..., Token],
) -> None:
    """Add the routes above to ``app`` (``writer`` posts events; ``reader``, ``accountant``,
    ``admin``: the token dependencies)."""
    Reader = Annotated[Token, Depends(reader)]
    Accountant = Annotated[Token, Depends(accountant)]
    Admin = Annotated[Token, Depends(admin)]
    IdempotencyKey = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A replay with the same key and body gets the first answer back.",
        ),
    ]
    Limit = Annotated[int, Query(ge=1, le=MAX_LIST)]
    Period = Annotated[str, base.PathPeriod]

    async def post_one(
        token: Token,
        key: str | None,
        request: Request,
        raw: Any,
        event: dict[str, Any] | JSONResponse,
    ) -> JSONResponse:
        """Post ``event`` (worked out from the body); a response is the answer already."""
        if isinstance(event, JSONResponse):
            return event
        return await base._post(writer, token, key, request, raw, [event], False)

    # ------------------------------------------------------------ close and reopen

    @app.get("/periods/{period}/checklist", tags=["close"])
    def get_checklist(
        period: Period,
        _token: Reader,
        drift: Annotated[
            str, Query(max_length=40, description="Standards drift threshold (0.05: 5%).")
        ] = "0.05",
    ) -> dict[str, Any]:
        """The close checklist of ``period`` (``backflush close --check --json``)."""
        _period(period)
        try:
            threshold = to_decimal(drift)
        except ValueError as error:
            raise invalid([field_error("query", "drift", str(error))]) from None
        if not threshold >= 0 or threshold > 1000:
            raise invalid([field_error("query", "drift", f"expected 0 to 1000, got {drift}")])
        book, events = store.close_check(period)
        checks = close_reports.checklist(book, period, events, drift=threshold)
        return close_reports.checklist_document(period, checks)

    @app.post(
        "/periods/{period}/close",
        tags=["close"],
        status_code=201,
        openapi_extra=base._body_schema(CloseBody | None, required=False),
        responses=event_answers("Already closed: no change"),
    )
    async def close_period(
        period: Period, request: Request, token: Accountant, key: IdempotencyKey = None
    ) -> Any:
        """Close ``period`` (``backflush close``): variances disposed, the period locked. Body
        (optional): ``id`` of the close event (default close-PERIOD, -2 after a reopen)."""
        end = _period(period)[1]
        raw = await _body(request)
        body: CloseBody = _parsed(raw, CloseBody)

        def go() -> dict[str, Any] | JSONResponse:
            found = base.request_key(token, key, request, raw)
            if found is not None:
                replay = base.stored_answer(store, found)
                if replay is not None:
                    return replay
            book = store.load()
            done = book.closed.get(period)
            if done is not None and body.id in (None, done.close_event):
                return _already(store, done.close_event, "close")
            if body.id is not None and body.id in store.recorded_ids([body.id]):
                # (the same close again would be a no-op, and leave the period as it is)
                state = "open" if done is None else f"closed by {done.close_event}"
                raise Problem(
                    409,
                    "conflict",
                    f"event {body.id} is recorded already, and {period} is {state} (reopened "
                    "since): close it under a new id, or none",
                    [field_error("body", "id", "recorded already", "/id")],
                )
            event_id = body.id or _close_id(book, period)
            return {"id": event_id, "type": "close", "period": period, "date": end.isoformat()}

        return await post_one(token, key, request, raw, await run_in_threadpool(go))

    @app.post(
        "/periods/{period}/reopen",
        tags=["close"],
        status_code=201,
        openapi_extra=base._body_schema(ReopenBody),
        responses=event_answers("Already recorded with the same content: no change"),
    )
    async def reopen_period(
        period: Period, request: Request, token: Accountant, key: IdempotencyKey = None
    ) -> Any:
        """Reopen the latest closed period (``backflush reopen``): its close is negated.
        Body: ``reason`` (required), ``date`` (default: the period's last day), ``id``."""
        _period(period)
        raw = await _body(request)
        body: ReopenBody = _parsed(raw, ReopenBody)

        def go() -> dict[str, Any] | JSONResponse:
            found = base.request_key(token, key, request, raw)
            if found is not None and (replay := base.stored_answer(store, found)) is not None:
                return replay
            book = store.load()
            reopens = book.reopened(period)
            last = reopens[-1] if reopens and period not in book.closed else None
            if (  # the same reopen sent again (its default id counts the reopens made)
                last is not None
                and body.id in (None, last.event)
                and body.reason == last.reason
                and body.date in (None, last.date)
            ):
                return _already(store, last.event, "reopen")
            return {
                "id": body.id or f"reopen-{period}-{len(reopens) + 1}",
                "type": "reopen",
                "period": period,
                "reason": body.reason,
                "date": (body.date or m.period_bounds(period)[1]).isoformat(),
            }

        return await post_one(token, key, request, raw, await run_in_threadpool(go))

    # ------------------------------------------------------------ exceptions

    @app.get("/exceptions", tags=["reports"])
    def get_exceptions(
        _token: Reader,
        status: Annotated[str | None, Query(max_length=32)] = None,
        limit: Limit = 100,
        after: Annotated[
            str | None, Query(max_length=1000, description="The key of the last one shown.")
        ] = None,
    ) -> dict[str, Any]:
        """The backflush exceptions queue a page at a time (``status``: only those, e.g.
        open); ``next`` is the ``after`` of the next page. ``key`` names one in the routes
        below."""
        return exceptions_page(store.load(), status, limit, after)

    def exception(book: Book, key: str, *also: str) -> tuple[str, str, str]:
        """The open exception ``key`` names (404: none; 409: not open, nor a status of
        ``also``)."""
        found = next((k for k in book.shortages if exception_key(k) == key), None)
        if found is None:
            raise Problem(
                404,
                "not-found",
                f"no backflush exception {key!r}",
                [field_error("path", "key", "not the key of an exception")],
            )
        status = book.exception_status(found)
        if status != "open" and status not in also:
            detail = f"backflush exception {key!r} is {status}, not open: nothing to do"
            raise Problem(409, "conflict", detail, [field_error("path", "key", detail)])
        return found

    @app.post(
        "/exceptions/{key:path}/retry",
        tags=["close"],
        status_code=201,
        openapi_extra=base._body_schema(RetryBody | None, required=False),
        responses=event_answers("Already recorded with the same content: no change"),
    )
    async def retry_exception(
        key: str, request: Request, token: Accountant, idempotency: IdempotencyKey = None
    ) -> Any:
        """Retry the queued consumption of the exception's item where stock is available
        (``backflush exceptions retry --item``). Body (optional): ``date``, ``id``."""
        raw = await _body(request)
        body: RetryBody = _parsed(raw, RetryBody)

        def go() -> dict[str, Any]:
            _event, item, _kind = exception(store.load(), key)
            return {
                "id": body.id or f"api-retry-{uuid.uuid4()}",
                "type": "retry",
                "item": item,
                "date": (body.date or dt.date.today()).isoformat(),
            }

        return await post_one(token, idempotency, request, raw, await run_in_threadpool(go))

    @app.post(
        "/exceptions/{key:path}/resolve",
        tags=["close"],
        status_code=201,
        openapi_extra=base._body_schema(ResolveBody),
        responses=event_answers("Already recorded with the same content: no change"),
    )
    async def resolve_exception(
        key: str, request: Request, token: Accountant, idempotency: IdempotencyKey = None
    ) -> Any:
        """Write off a queued consumption with a reason (``backflush exceptions resolve``).
        Body: ``reason`` (required), ``date`` (default today), ``id``."""
        raw = await _body(request)
        body: ResolveBody = _parsed(raw, ResolveBody)

        def go() -> dict[str, Any] | JSONResponse:
            found = base.request_key(token, idempotency, request, raw)
            if found is not None and (replay := base.stored_answer(store, found)) is not None:
                return replay
            book = store.load()
            # written off: the same request again is answered as recorded, under the id of
            # the write-off made (one made before ids were write_off_id's, or given its own);
            # without a date, whatever day it is sent again (the date is the write-off's);
            # with another reason, refused (as the write-off with other content would be)
            open_key = exception(book, key, "written off")
            event_id, item, _kind = open_key
            made = book.write_off_of(event_id, item)
            if made is not None and body.date is None and body.id in (None, made):
                if book.written_off[open_key] != body.reason:
                    detail = (
                        f"backflush exception {key!r} is written off already, by {made}, for "
                        f"another reason ({book.written_off[open_key]!r}): a write-off stands"
                    )
                    error = field_error("body", "reason", detail, "/reason")
                    raise Problem(409, "conflict", detail, [error])
                return _already(store, made, "write_off")
            return {
                "id": body.id or made or write_off_id(event_id, item),
                "type": "write_off",
                "event": event_id,
                "item": item,
                "reason": body.reason,
                "date": (body.date or dt.date.today()).isoformat(),
            }

        return await post_one(token, idempotency, request, raw, await run_in_threadpool(go))

    # ------------------------------------------------------------ master data

    @app.get("/items", tags=["master"])
    def get_items(
        _token: Reader,
        limit: Limit = 100,
        after: Annotated[
            str | None, Query(max_length=1000, description="The id of the last item shown.")
        ] = None,
    ) -> dict[str, Any]:
        """Items in id order, a page at a time; ``next`` is the ``after`` of the next page."""
        master = store.master()
        ids = sorted(master.items)
        if after is not None:
            ids = [i for i in ids if i > after]
        page = ids[:limit]
        return {
            "total": len(master.items),
            "items": [item_document(master.items[i]) for i in page],
            "next": page[-1] if len(ids) > limit else None,
        }

    @app.get("/items/{item_id:path}", tags=["master"])
    def get_item(
        item_id: str,
        _token: Reader,
        on: Annotated[
            Date | None,
            Query(alias="date", description="Standards on, YYYY-MM-DD (default today)."),
        ] = None,
    ) -> dict[str, Any]:
        """An item, its BOM and routing versions, its standard rolled up and indented BOM."""
        settings, master = store.settings(), store.master()
        if item_id not in master.items:
            raise Problem(
                404,
                "not-found",
                f"no item {item_id!r}",
                [field_error("path", "item_id", "not an item of the book")],
            )
        return item_detail_document(settings, master, item_id, on or dt.date.today())

    @app.post(
        "/master",
        tags=["master"],
        status_code=201,
        openapi_extra=_master_schema(),
    )
    async def post_master(request: Request, token: Accountant, key: IdempotencyKey = None) -> Any:
        """Add master data (items, BOMs, work centers, routings, cost sets in the scenario
        file's layout) in one transaction: what is already in the book must be identical,
        new standards take effect after the last event. Every item a BOM, routing or cost set
        names is in the body."""
        raw = await base._read_json(request)
        if not isinstance(raw, dict):
            raise invalid([field_error("body", "body", "expected a JSON object", "")])
        unknown = sorted(set(raw) - set(_MASTER_SECTIONS))
        if unknown:
            raise invalid(
                [field_error("body", str(u), "unknown section", f"/{u}") for u in unknown]
            )
        errors = [
            field_error("body", name, "expected a list of objects", f"/{name}")
            for name, value in raw.items()
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value)
        ]
        if errors:
            raise invalid(errors)

        def go() -> JSONResponse:
            settings = store.settings()

            def records(name: str) -> list[tuple[str, Any]]:
                return [(f"{name}/{n}", r) for n, r in enumerate(raw.get(name, []))]

            master = build_master(
                records("items"),
                records("boms"),
                settings,
                work_centers=records("work_centers"),
                routings=records("routings"),
                cost_sets=records("cost_sets"),
                known=store.master(),
                last_event=store.last_event(),
            )

            def write(keep: Callable[[Connection, dict[str, Any], int], None]) -> None:
                def also(conn: Connection) -> None:
                    counts = _counts(master)
                    keep(conn, {"read": counts}, 201)

                store.add_master(master, also=also, recorded_by=token.name)

            return keyed(store, token, key, request, raw, write)

        try:
            return await run_in_threadpool(go)
        except InputError as error:
            raise _input_problem(error) from None

    @app.post(
        "/cost-sets/{name}/release",
        tags=["master"],
        status_code=201,
        openapi_extra=base._body_schema(ReleaseBody),
        responses={200: {"description": "Released already on that date: no change"}},
    )
    async def release_cost_set(
        name: str, request: Request, token: Accountant, key: IdempotencyKey = None
    ) -> Any:
        """Release a cost set (``backflush standards release``): its material costs and rates
        are the book's standards from ``effective`` (body, YYYY-MM-DD) on."""
        raw = await base._read_json(request)
        body: ReleaseBody = _parsed(raw, ReleaseBody)

        def go() -> JSONResponse:
            master = store.master()
            if name not in master.cost_sets:
                known = ", ".join(sorted(master.cost_sets)) or "none"
                raise Problem(
                    404,
                    "not-found",
                    f"no cost set {name!r} (cost sets: {known})",
                    [field_error("path", "name", "not a cost set of the book")],
                )
            found = master.cost_sets[name]
            if found.effective is not None:  # sent again (as recorded), or a conflict
                asked = base.request_key(token, key, request, raw)
                if asked is not None and (replay := base.stored_answer(store, asked)):
                    return replay
                if found.effective == body.effective:
                    return JSONResponse(_released(name, found.effective, found), status_code=200)
                raise Problem(
                    409,
                    "conflict",
                    f"cost set {name} is released already, effective {found.effective}; "
                    "release a new cost set for another date",
                    [field_error("body", "effective", f"released effective {found.effective}")],
                )

            def write(keep: Callable[[Connection, dict[str, Any], int], None]) -> None:
                def also(conn: Connection) -> None:
                    keep(conn, _released(name, body.effective, found), 201)

                store.release_cost_set(name, body.effective, also=also, recorded_by=token.name)

            return keyed(store, token, key, request, raw, write)

        return await run_in_threadpool(go)

    # ------------------------------------------------------------ tokens (admin)

    @app.get("/tokens", tags=["tokens"])
    def get_tokens(_token: Admin) -> dict[str, Any]:
        """Every token, live or revoked (never a secret: only hashes are kept)."""
        return {"tokens": [token_document(t) for t in list_tokens(store)]}

    @app.post(
        "/tokens", tags=["tokens"], status_code=201, openapi_extra=base._body_schema(TokenBody)
    )
    async def post_token(request: Request, token: Admin) -> Any:
        """Create a token (body: ``name``, unique, recorded with every write it makes;
        ``role``). Its ``secret`` is in this answer only: it is kept as a hash. Not
        idempotent by key (an answer kept would keep the secret): after a lost answer,
        find the token in ``GET /tokens``, revoke it and create another."""
        body: TokenBody = _parsed(await base._read_json(request), TokenBody)
        try:
            created, secret = await run_in_threadpool(
                create_token, store, body.name, body.role, by=token.name
            )
        except ValueError as error:
            raise Problem(
                409, "conflict", str(error), [field_error("body", "name", str(error), "/name")]
            ) from None
        return JSONResponse({**token_document(created), "secret": secret}, status_code=201)

    @app.post("/tokens/{token_id}/revoke", tags=["tokens"])
    def post_revoke(token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], token: Admin) -> Any:
        """Revoke a token: refused from now on, its web sessions ended (a token revoked
        already keeps its first revocation)."""
        try:
            found = revoke_token(store, token_id, by=token.name, keep_an_admin=True)
        except LastAdminError as error:
            raise Problem(
                409, "conflict", str(error), [field_error("path", "token_id", str(error))]
            ) from None
        if found is None:
            raise Problem(
                404,
                "not-found",
                f"no token {token_id}",
                [field_error("path", "token_id", "not a token's id")],
            )
        return token_document(found)


def _released(name: str, effective: dt.date, found: m.CostSet) -> dict[str, Any]:
    return {
        "released": {
            "name": name,
            "effective": effective.isoformat(),
            "materials": {i: fmt(c) for i, c in found.materials},
            "rates": [{"work_center": w, "element": e, "rate": fmt(r)} for w, e, r in found.rates],
        }
    }


def _counts(master: m.MasterData) -> dict[str, int]:
    return {
        "items": len(master.items),
        "boms": sum(len(v) for v in master.boms.values()),
        "work_centers": len(master.work_centers),
        "routings": sum(len(v) for v in master.routings.values()),
        "cost_sets": len(master.cost_sets),
    }


def _input_problem(error: InputError) -> Problem:
    """Master data refused: each problem names its section and position (items/0: ...)."""
    errors = []
    for text in error.problems:
        where, _, detail = text.partition(": ")
        section = where.split("/")[0]
        if section in _MASTER_SECTIONS:
            errors.append(field_error("body", section, detail, "/" + where))
        else:
            errors.append(field_error("body", "body", text))
    return invalid(errors, f"refused; nothing was written: {'; '.join(error.problems[:5])}")


def _already(store: Store, event_id: str, kind: str) -> JSONResponse:
    """The answer to a request whose event the book records already (200: no change), naming
    who recorded it."""
    with store.transaction() as conn:
        who = recorded_by(conn, [event_id]).get(event_id)
    answer = {"id": event_id, "type": kind, "applied": False, "recorded_by": who}
    return JSONResponse(answer, status_code=200)


def _close_id(book: Book, period: str) -> str:
    """As ``backflush close``: close-PERIOD, close-PERIOD-2 after a reopen, ..."""
    reopens = len(book.reopened(period))
    return f"close-{period}" + (f"-{reopens + 1}" if reopens else "")
