"""The book over HTTP (FastAPI): events posted one at a time or in batches with idempotency
keys, reports, the journal a page at a time, drill-down and the exceptions queue.

Every route but ``GET /health`` needs ``Authorization: Bearer <secret>`` of a live token
(:mod:`backflush.api.tokens`); every error is an RFC 9457 problem document
(:mod:`backflush.api.problems`). A write is one transaction: a refused request writes nothing.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, some of
# which name dependencies local to create_app.
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool

from backflush.api.answers import BatchAnswer, event_answers
from backflush.api.documents import CSV_SHEETS, SELECTING, ReportKind, csv_report, journal_document
from backflush.api.documents import report_document as _report_document
from backflush.api.posting import EventRequest, key_reused, unauthenticated
from backflush.api.problems import (
    HANDLERS,
    KINDS,
    PROBLEM,
    TITLES,
    Problem,
    field_error,
    invalid,
)
from backflush.api.process import WriterProcess
from backflush.api.tokens import READERS, Role, SeenTokens, Token, find_token
from backflush.api.writer import EventWriter, GroupWriter
from backflush.formats.inputs import (
    PERIOD_PATTERN,
    DuplicateKey,
    EventModel,
    Identifier,
    unique_keys,
)
from backflush.reports import PERIOD_SUMS_READ
from backflush.reports.analysis import Selection, SelectionError
from backflush.reports.drilldown import (
    NotFound,
    drilldown,
    drilldown_document,
    entry_drilldown,
    summary_entry_document,
)
from backflush.reports.throughput import throughput_periods
from backflush.store.repository import (
    PERIOD_SUMS,
    Answer,
    Key,
    KeyReused,
    Store,
    StoreError,
    SummaryEntry,
    answer_kept,
)

#: Most events one batch may hold.
MAX_BATCH = 10_000
#: Largest request body, in bytes.
MAX_BODY = 32 * 1024 * 1024
#: The largest journal entry number a request may name: ``journal_lines.entry_no`` is a
#: 32-bit INTEGER in SQL (PostgreSQL refuses a larger number compared with it).
MAX_ENTRY_NO = 2**31 - 1
log = logging.getLogger("backflush.api")
#: Most journal entries one page may hold.
MAX_PAGE = 1000
_PERIOD = PERIOD_PATTERN
PathPeriod = Path(pattern=_PERIOD, description="YYYY-MM")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, as a header carries it

_bearer = HTTPBearer(auto_error=False, description="An API token: `backflush token create`.")
#: The roles that post events.
POSTERS = frozenset({Role.operator, Role.accountant})


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthenticated("give Authorization: Bearer <token>")
    return credentials.credentials


def create_app(
    db_url: str, *, secure_cookies: bool = False, writer_process: bool = False
) -> FastAPI:
    """The API over the book at ``db_url`` (which must exist: ``backflush init``). With
    ``secure_cookies`` the web pages' cookies go over HTTPS only (a server behind a proxy that
    terminates TLS without telling it so). With ``writer_process`` events are posted in a
    process of the server's own (:mod:`backflush.api.process`), else by a thread of this
    one's."""
    store = Store(db_url, create=False)
    writer: EventWriter = WriterProcess(db_url) if writer_process else GroupWriter(store)
    seen = SeenTokens(store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(writer.start)  # the book loaded before the first request
        yield
        await run_in_threadpool(writer.stop)  # what is waiting is posted first
        await run_in_threadpool(store.close)  # (SQLite: the write-ahead log into the file)

    app = FastAPI(
        title="backflush",
        version="0.1.0",
        description="Backflush costing over HTTP: post events, read reports.",
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        openapi_url=None,  # served below, to token holders only
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.writer = writer

    def authenticated(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Token:
        token = find_token(store, _secret(credentials))
        if token is None:
            raise unauthenticated("unknown or revoked token")
        return token

    async def poster(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Token:
        """A token that may post events, read from the database only when not seen before:
        the group writer checks it again in the posting's transaction."""
        secret = _secret(credentials)
        token = seen.known(secret) or await run_in_threadpool(seen.find, secret)
        if token is None:
            raise unauthenticated("unknown or revoked token")
        if token.role not in POSTERS:
            raise Problem(403, "forbidden", f"{token.role.token} may not do this")
        _known_query(request)
        return token

    def allowed(roles: frozenset[Role]) -> Callable[[Request, Token], Token]:
        def check(request: Request, token: Annotated[Token, Depends(authenticated)]) -> Token:
            if token.role not in roles:
                raise Problem(403, "forbidden", f"{token.role.token} may not do this")
            _known_query(request)  # after the token and role: no one else learns what it takes
            return token

        return check

    Reader = Annotated[Token, Depends(allowed(READERS))]
    Poster = Annotated[Token, Depends(poster)]
    IdempotencyKey = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="A replay with the same key and body gets the first answer back.",
        ),
    ]

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Up, the book readable and its writer ready to post (no token needed)."""
        try:
            store.settings()
        except (StoreError, sa.exc.SQLAlchemyError) as error:
            log.warning("health: the book cannot be read: %s", error)  # details for the log only
            raise Problem(503, "unavailable", "the book cannot be read") from None
        if not writer.ready:
            raise Problem(503, "unavailable", "events cannot be posted: the writer is not running")
        return {"status": "ok"}

    @app.post(
        "/events",
        tags=["events"],
        status_code=201,
        openapi_extra=_body_schema(EventModel),
        responses=event_answers("Already recorded with the same content: no change"),
    )
    async def post_event(request: Request, token: Poster, key: IdempotencyKey = None) -> Any:
        """Post one event (the fields of a scenario file's event; ``id`` required)."""
        raw = await _read_json(request)
        if not isinstance(raw, dict):
            raise invalid([field_error("body", "body", "expected a JSON object (one event)", "")])
        return await _post(writer, token, key, request, raw, [raw], False)

    @app.post(
        "/events/batch",
        tags=["events"],
        status_code=201,
        openapi_extra=_body_schema(list[EventModel]),
        responses={
            201: {"model": BatchAnswer, "description": "Posted, all or nothing"},
            200: {"model": BatchAnswer, "description": "Every event already recorded: no change"},
        },
    )
    async def post_batch(request: Request, token: Poster, key: IdempotencyKey = None) -> Any:
        """Post a list of events in one transaction (at most 10,000): all or nothing."""
        raw = await _read_json(request)
        if not isinstance(raw, list):
            raise invalid([field_error("body", "body", "expected a JSON array of events", "")])
        if len(raw) > MAX_BATCH:
            raise Problem(
                413, "batch-too-large", f"{len(raw):,} events; a batch holds at most {MAX_BATCH:,}"
            )
        if not raw:
            raise invalid([field_error("body", "body", "expected at least one event", "")])
        return await _post(writer, token, key, request, raw, raw, True)

    @app.get("/events/{event_id:path}", tags=["events"])
    def get_event(event_id: str, _token: Reader) -> dict[str, Any]:
        """One event's audit trail: entries posted, standards used, check of the amounts."""
        try:
            return drilldown_document(drilldown(store, event=event_id))
        except NotFound as error:
            raise Problem(404, "not-found", str(error)) from None

    @app.get(
        "/reports/{kind}",
        tags=["reports"],
        responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    )
    def get_report(
        request: Request,
        kind: str,
        _token: Reader,
        first: Annotated[str | None, Query(alias="from", pattern=_PERIOD)] = None,
        last: Annotated[str | None, Query(alias="to", pattern=_PERIOD)] = None,
        item: Annotated[list[str] | None, Query()] = None,
        family: str | None = None,
        site: str | None = None,
        form: Annotated[
            Literal["json", "csv"] | None,
            Query(alias="format", description="csv: the report's sheet of the workbook."),
        ] = None,
    ) -> Any:
        """A report as JSON: summary, trial-balance (at the end of ``to``), valuation,
        variances, exceptions, orders, statements, nrv, margin, variance-analysis, flags,
        throughput. As CSV (``format=csv`` or ``Accept: text/csv``; the whole book, decimals
        exact): trial-balance, valuation, variances, throughput, margin, variance-analysis,
        flags."""
        try:
            which = ReportKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in ReportKind)
            raise Problem(
                404,
                "unknown-report",
                f"no report {kind!r}; there are {known}",
                [field_error("path", "kind", f"expected one of {known}")],
            ) from None
        if form == "csv" or (form is None and _prefers_csv(request.headers.get("accept", ""))):
            if which not in CSV_SHEETS:
                known = ", ".join(k.value for k in CSV_SHEETS)
                raise Problem(
                    406,
                    "no-csv",
                    f"report {kind} has no CSV form; CSV: {known}",
                    [field_error("query", "format", f"CSV is for {known}")],
                )
            given = {"from": first, "to": last, "item": item, "family": family, "site": site}
            chosen = [name for name, value in given.items() if value]
            if chosen:
                raise invalid(
                    [field_error("query", n, "the CSV covers the whole book") for n in chosen]
                )
            return Response(
                csv_report(store.load(), which),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'},
            )
        given = {"from": first, "to": last, "item": item, "family": family, "site": site}
        wrong = [name for name, value in given.items() if value and which not in SELECTING[name]]
        if wrong:
            raise invalid(
                field_error(
                    "query",
                    name,
                    f"not for report {kind}; it is for "
                    + ", ".join(k.value for k in ReportKind if k in SELECTING[name]),
                )
                for name in wrong
            )
        selection = Selection(first, last, frozenset(item or ()), family, site)
        book = store.load(period_sums=PERIOD_SUMS_READ.get(which, PERIOD_SUMS))
        try:
            selection.check(book.master)
            every = throughput_periods(book) if which is ReportKind.throughput else None
            periods = selection.periods(book, every)
        except SelectionError as error:
            text = str(error)
            named = [n for n in given if text.startswith(f"--{n}:")]
            field = named[0] if named else "from" if text.startswith("--from") else "selection"
            detail = text.replace("--", "").removeprefix(f"{field}: ").removeprefix(f"{field} ")
            raise invalid([field_error("query", field, detail)]) from None
        return _report_document(book, which, selection, periods)

    @app.get("/journal", tags=["reports"])
    def get_journal(
        _token: Reader,
        period: Annotated[str | None, Query(pattern=_PERIOD)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        after: Annotated[
            int | None, Query(ge=0, le=MAX_ENTRY_NO, description="Entries numbered above.")
        ] = None,
    ) -> dict[str, Any]:
        """The journal a page at a time, in entry number order; ``next`` is the ``after`` of
        the next page."""
        book, numbered, total = store.journal_page(period, limit + 1, after)
        page = numbered[:limit]
        found = journal_document(book, page, total, limit)
        if len(numbered) <= limit:
            found["next"] = None
        return found

    @app.get("/journal/{entry_no}", tags=["reports"])
    def get_entry(
        entry_no: Annotated[int, Path(ge=1, le=MAX_ENTRY_NO)], _token: Reader
    ) -> dict[str, Any]:
        """One journal entry's drill-down: a summary entry (``journal_detail`` day or period)
        with the events whose lines it sums, or the audit trail of the event that posted it."""
        try:
            found = entry_drilldown(store, entry_no)
        except NotFound as error:
            raise Problem(404, "not-found", str(error)) from None
        if isinstance(found, SummaryEntry):
            return summary_entry_document(found)
        return drilldown_document(found)

    from backflush.api.routes import add_routes

    add_routes(
        app,
        store,
        writer,
        allowed(READERS),
        allowed(frozenset({Role.accountant})),
        allowed(frozenset({Role.admin})),
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(_EVENT_DEFS)
            _as_served(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    from backflush.api.web import install  # the /ui pages (imports jinja2)

    page = install(app, store, secure_cookies=secure_cookies)

    @app.get("/problems", tags=["service"], response_class=HTMLResponse)
    def get_problem_types(_token: Reader) -> HTMLResponse:
        """The page of every problem type the API answers with: what it means, what to do."""
        kinds = [
            (name, kind, kind.title or TITLES[kind.statuses[0]]) for name, kind in KINDS.items()
        ]
        return page("problems.html.j2", heading="Problem types", kinds=kinds)

    @app.get("/problems/{kind}", tags=["service"], response_class=HTMLResponse)
    def get_problem_type(kind: str, _token: Reader) -> HTMLResponse:
        """The page a problem document's ``type`` points to (RFC 9457 §3.1.1)."""
        found = KINDS.get(kind)
        if found is None:
            raise Problem(404, "not-found", f"no problem type {kind!r}; /problems lists them")
        title = found.title or TITLES[found.statuses[0]]
        return page("problems.html.j2", heading=title, kinds=[(kind, found, title)])

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(_token: Reader) -> JSONResponse:
        return JSONResponse(app.openapi())

    return app


# ---------------------------------------------------------------- request bodies

_REF = "#/components/schemas/{model}"
_EVENT_DEFS: dict[str, Any] = {}


def _body_schema(shape: Any, *, required: bool = True) -> dict[str, Any]:
    """The request body's schema in the OpenAPI document (the body is read by hand: JSON
    numbers as exact decimals, duplicate keys refused). ``required``: False where an empty
    body is taken for an empty object."""
    schema = TypeAdapter(shape).json_schema(ref_template=_REF, mode="validation")
    _EVENT_DEFS.update(schema.pop("$defs", {}))
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


#: The problem document every error is (RFC 9457; see :mod:`backflush.api.problems`).
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "What kind of problem: /problems/<kind>."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["location", "field", "detail"],
                "properties": {
                    "location": {"enum": ["body", "query", "path", "header"]},
                    "field": {"type": "string"},
                    "detail": {"type": "string"},
                    "pointer": {"type": "string", "description": "JSON pointer into the body"},
                },
            },
        },
    },
}


def _as_served(schema: dict[str, Any]) -> None:
    """Make FastAPI's document say what the server does: every error a problem document
    (``application/problem+json``, 4XX and 5XX; FastAPI documents 422 as its own
    ``HTTPValidationError``), an event's ``id`` required (a scenario file may leave it out, the
    API may not), an ``Idempotency-Key`` of 1 to 200 visible ASCII characters."""
    components = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components["Problem"] = _PROBLEM_SCHEMA
    problem = {
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in [s for s in responses if s.startswith(("4", "5"))]:
                del responses[status]
            responses["4XX"] = {"description": "Refused: a problem document", **problem}
            responses["5XX"] = {
                "description": "Unavailable (503, with Retry-After: send it again, under the "
                "same Idempotency-Key) or failed: a problem document",
                **problem,
            }
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "Idempotency-Key":
                    parameter["schema"] = {"type": "string", "pattern": _KEY.pattern}
    for found in _EVENT_DEFS:
        event = components.get(found, {})
        if "id" in event.get("properties", {}) and "type" in event.get("properties", {}):
            event["properties"]["id"] = TypeAdapter(Identifier).json_schema()
            event["required"] = sorted({*event.get("required", []), "id"})


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


#: Most digits of an integer in a body (Python's own limit on reading one).
MAX_DIGITS = 4300


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise ValueError(f"an integer of {digits:,} digits (at most {MAX_DIGITS:,})")
    return int(text)


async def limited_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is over ``limit`` bytes: what is sent beyond
    that is never read into memory (a chunked body has no Content-Length to check)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _prefers_csv(accept: str) -> bool:
    """Whether an Accept header ranks text/csv above JSON (RFC 9110 quality values; a media
    range such as */* or text/* counts for what it covers, ties go to JSON)."""

    def quality(media: str) -> Decimal:
        best, specific = Decimal(0), -1
        for part in accept.split(","):
            name, *params = (p.strip() for p in part.split(";"))
            kind, _, sub = name.lower().partition("/")
            want_kind, _, want_sub = media.partition("/")
            if kind not in ("*", want_kind) or sub not in ("*", want_sub):
                continue
            level = (kind != "*") + (sub != "*")  # the most specific range decides
            q = Decimal(1)
            for param in params:
                key, _, value = param.partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = Decimal(value.strip())
                    except ArithmeticError:
                        q = Decimal(0)
                    if not q.is_finite():
                        q = Decimal(0)
            if level > specific:
                best, specific = q, level
        return best

    return quality("text/csv") > quality("application/json")


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route (with its dependencies) takes."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def _known_query(request: Request) -> None:
    """A query parameter the route does not take is refused (422), not ignored: a typo in a
    filter (``statuss=open``, ``perod=2026-01``) would answer with everything unfiltered.
    Checked once the token is (the authentication dependencies call it); the web pages'
    links are their own, so they are left alone."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.path.startswith("/ui"):
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise invalid(
            field_error("query", name, f"not a parameter of this route (it takes: {expected})")
            for name in unknown
        )


async def _read_json(request: Request, *, empty: Any = None) -> Any:
    """The body as JSON: numbers with a fraction as exact decimals; malformed JSON, duplicate
    keys, NaN, nesting too deep and bodies over :data:`MAX_BODY` refused. An empty body is
    ``empty`` when one is given. A body said to be of another media type than JSON (form
    data, plain text) is refused (415); one sent without a Content-Type is read as JSON."""
    body = await limited_body(request, MAX_BODY)
    if body is None:
        raise Problem(413, "body-too-large", f"the body is over {MAX_BODY:,} bytes")
    if not body and empty is not None:
        return empty  # (curl -d '' says form data: no body is no form)
    given = request.headers.get("content-type")
    if given is not None:
        media = given.split(";", 1)[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            detail = f"the body must be JSON (Content-Type: application/json), not {media!r}"
            raise Problem(
                415,
                "unsupported-media-type",
                detail,
                [field_error("header", "content-type", detail)],
            )
    try:
        text = body.decode("utf-8")
        return json.loads(
            text,
            parse_float=Decimal,
            parse_int=_integer,
            parse_constant=_constant,
            object_pairs_hook=unique_keys,
        )
    except UnicodeDecodeError:
        detail = "the body is not UTF-8 text"
    except DuplicateKey as error:
        detail = f"duplicate key {error.args[0]!r}"
    except json.JSONDecodeError as error:
        detail = f"malformed JSON: {error.msg} (line {error.lineno}, column {error.colno})"
    except ValueError as error:  # NaN, or an integer of thousands of digits
        detail = f"malformed JSON: {error}"
    except RecursionError:
        detail = "malformed JSON: nested too deeply"
    raise Problem(400, "malformed-json", detail, [field_error("body", "body", detail, "")])


# ---------------------------------------------------------------- posting


def _request_hash(request: Request, raw: Any) -> str:
    canonical = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    text = f"{request.method} {request.url.path}\n{canonical}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def respond(answer: Answer) -> JSONResponse:
    """An answer as sent (a replay says so in ``Idempotent-Replayed``)."""
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


def request_key(token: Token, key: str | None, request: Request, raw: Any) -> Key | None:
    """The request's idempotency key (checked), with the digest of its method, path and
    body (canonical JSON: the same body written differently is the same request)."""
    if key is None:
        return None
    if not _KEY.match(key):
        raise invalid(
            [field_error("header", "Idempotency-Key", "1 to 200 visible ASCII characters")]
        )
    return Key(token.name, key, _request_hash(request, raw))


def stored_answer(store: Store, key: Key) -> JSONResponse | None:
    """The answer kept under ``key`` (its own read), None when there is none. Keys are each
    token's own: one client never sees another's answers, nor learns that its key exists."""
    try:
        with store.transaction() as conn:
            found = answer_kept(conn, key)
    except KeyReused:
        raise key_reused() from None
    return None if found is None else respond(found)


async def _post(
    writer: EventWriter,
    token: Token,
    key: str | None,
    request: Request,
    raw: Any,
    raws: list[Any],
    batch: bool,
) -> JSONResponse:
    """Post ``raws``, the events of the body ``raw``, through the group writer (see
    :mod:`backflush.api.posting`)."""
    sent = EventRequest(token, request_key(token, key, request, raw), raws, batch)
    return respond(await writer.post_events(sent))
