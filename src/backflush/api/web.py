"""Web pages for controllers (issue 6): server-rendered HTML under ``/ui`` in the API's app.

Sign-in takes an API token and opens a session kept in the book (``web_sessions``): the
HttpOnly, SameSite=Strict cookie scoped to ``/ui`` holds the session's random id, never the
token's secret. A session ends at sign-out, after :data:`~backflush.api.tokens.SESSION_HOURS`
or when its token is revoked. Every page needs one (else a redirect to the sign-in form) and
the API's role rules apply: every role reads, only a role that may post ``retry`` /
``write_off`` events (the accountant) retries or resolves exceptions. Every form posted
carries the session's CSRF token (random, kept with the session: a page of another site can
neither read nor guess it); the sign-in form itself uses a double-submit cookie. Cookies are
``Secure`` when the request came over HTTPS (behind a proxy: ``backflush serve
--forwarded-allow-ips``) or when the server is told so (``--secure-cookies``). Pages carry no
script, and a Content-Security-Policy that allows none. All user text is escaped by the
templates.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
import datetime as dt
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from backflush.api.app import MAX_ENTRY_NO, limited_body
from backflush.api.tokens import WebSession, end_session, find_session, find_token, open_session
from backflush.book import Book, ConflictError, write_off_id
from backflush.domain.model import period_bounds
from backflush.domain.money import fmt
from backflush.engine.flush import PostingError
from backflush.engine.standards import StandardError
from backflush.formats.inputs import (
    PERIOD_PATTERN,
    InputError,
    build_event,
    live_date_problem,
    to_date,
)
from backflush.reports import close as close_reports
from backflush.reports import flags as flag_reports
from backflush.reports import standards as std_reports
from backflush.reports.charts import Chart, chart_bytes
from backflush.reports.document import entry_document
from backflush.reports.drilldown import (
    NotFound,
    drilldown,
    drilldown_document,
    entry_drilldown,
    summary_entry_document,
)
from backflush.reports.html import amount, inline_svg, variance
from backflush.reports.statements import statements
from backflush.reports.tables import _unit as unit_cost
from backflush.store.repository import Store, SummaryEntry

COOKIE = "backflush_session"
LOGIN_COOKIE = "backflush_login"
PAGE = 50  # journal entries, or exceptions, a page
#: Events a summary entry's page lists (the API's ``GET /journal/{no}`` lists them all).
LISTED = 1_000
_PERIOD = re.compile(PERIOD_PATTERN)
_MAX_FORM = 64 * 1024

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class _SignIn(Exception):
    """No valid session: go to the sign-in page."""


class _Refused(Exception):
    """An error page: status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("backflush.api", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlpart"] = lambda value: quote(str(value), safe="")
    env.filters["grouped"] = _grouped
    return env


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (last value of each field)."""
    body = await limited_body(request, _MAX_FORM)  # no token needed here: never read it all
    if body is None:
        raise _Refused(413, "the form is too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise _Refused(415, "expected a form (application/x-www-form-urlencoded)")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "malformed form") from None
    return {k: v[-1] for k, v in fields.items()}


def web_router(
    store: Store, *, secure_cookies: bool = False
) -> tuple[APIRouter, Callable[..., HTMLResponse]]:
    """The ``/ui`` pages over ``store``, and the function that renders a page. With
    ``secure_cookies`` the cookies are sent over HTTPS only, whatever the request's scheme."""
    env = _environment()
    router = APIRouter(prefix="/ui", include_in_schema=False)

    def page(
        name: str, status: int = 200, session: WebSession | None = None, **values: Any
    ) -> HTMLResponse:
        text = env.get_template(name).render(
            session=session, book_name=values.pop("book_name", None), **values
        )
        return HTMLResponse(text, status_code=status, headers=_HEADERS)

    def session_of(request: Request) -> WebSession:
        session_id = request.cookies.get(COOKIE)
        session = find_session(store, session_id) if session_id else None
        if session is None:
            raise _SignIn()
        return session

    UiSession = Annotated[WebSession, Depends(session_of)]

    async def checked_form(request: Request, session: WebSession) -> dict[str, str]:
        form = await _form(request)
        given = form.get("csrf", "")
        if not hmac.compare_digest(given.encode("utf-8"), session.csrf.encode("utf-8")):
            raise _Refused(403, "the form's CSRF token is missing or wrong: reload the page")
        return form

    def secure(request: Request) -> bool:
        return secure_cookies or request.url.scheme == "https"

    # ------------------------------------------------------------ sign-in

    @router.get("/login")
    def login_form(request: Request) -> HTMLResponse:
        nonce = secrets.token_urlsafe(32)
        response = page("login.html.j2", csrf=nonce, error=None)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            path="/ui",
            secure=secure(request),
        )
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        given = form.get("csrf", "")
        if not nonce or not hmac.compare_digest(given.encode(), nonce.encode()):
            raise _Refused(403, "the sign-in form's CSRF token is missing or wrong: reload it")
        secret = form.get("token", "").strip()
        token = await run_in_threadpool(find_token, store, secret) if secret else None
        if token is None:
            response: Response = page(
                "login.html.j2", 401, csrf=nonce, error="unknown or revoked token"
            )
            return response
        session_id = await run_in_threadpool(open_session, store, token)
        response = RedirectResponse("/ui/", status_code=303, headers=_HEADERS)
        response.set_cookie(
            COOKIE, session_id, httponly=True, samesite="strict", path="/ui", secure=secure(request)
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return response

    @router.post("/logout")
    async def logout(request: Request, session: UiSession) -> Response:
        await checked_form(request, session)
        await run_in_threadpool(end_session, store, request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/ui/login", status_code=303, headers=_HEADERS)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    # ------------------------------------------------------------ dashboard

    @router.get("/")
    def dashboard(
        session: UiSession, period: Annotated[str | None, Query(max_length=7)] = None
    ) -> HTMLResponse:
        book = store.load()
        currency = book.settings.currency
        periods = book.periods()
        if period is not None and period not in periods:
            raise _Refused(404, f"the book has no period {period}")
        chosen = period or (periods[-1] if periods else None)
        figures = []
        for p in periods:
            s = statements(book, p)
            figures.append(
                {
                    "period": p,
                    "closed": p in book.closed,
                    "sales": amount(s.sales, currency),
                    "cogs": amount(s.cogs, currency),
                    "gross_margin": amount(s.gross_margin, currency),
                    "income": amount(s.income, currency),
                    "inventories": amount(s.inventories, currency),
                }
            )
        charts = []
        if chosen is not None:
            for chart, title, which in (
                (Chart.waterfall, f"Variance waterfall {chosen}", chosen),
                (Chart.margin, "Margin trend", None),
            ):
                svg = chart_bytes(book, chart, "svg", which, salt=f"ui-{chart.value}")
                charts.append(
                    {"id": f"chart-{chart.value}", "title": title, "svg": inline_svg(svg, chart)}
                )
        variances = []
        if chosen is not None:
            variances = [
                (key, variance(value, currency))
                for key, value in book.period_variances(chosen).items()
            ]
        red = [
            {
                "kind": f.kind.replace("_", " "),
                "subject": f.subject,
                "period": f.period,
                "value": f"{f.value_text} vs {f.threshold_text}",
                "message": f.message,
            }
            for f in flag_reports.red_flags(book)
        ]
        return page(
            "dashboard.html.j2",
            session=session,
            book_name=book.settings.name,
            currency=currency,
            periods=periods,
            chosen=chosen,
            figures=figures,
            charts=charts,
            variances=variances,
            flags=red,
            open_exceptions=len(book.open_shortages()),
        )

    # ------------------------------------------------------------ exceptions

    @router.get("/exceptions")
    def exceptions(
        session: UiSession,
        posted: Annotated[str | None, Query(max_length=300)] = None,
        number: Annotated[str | None, Query(alias="page", max_length=12)] = None,
    ) -> HTMLResponse:
        if number is not None and not (number.isdecimal() and int(number) >= 1):
            raise _Refused(422, f"page: expected a page number (1, 2, ...), got {number!r}")
        book = store.load()
        today = dt.date.today()
        queue = close_reports.aging(book, today)
        pages = max(1, -(-len(queue) // PAGE))
        shown = min(int(number or 1), pages)
        rows = queue[(shown - 1) * PAGE : shown * PAGE]
        if posted is not None and not store.has_event(posted):
            posted = None  # a notice only of an event the book holds, not of any text
        return page(
            "exceptions.html.j2",
            session=session,
            book_name=book.settings.name,
            rows=[
                {
                    "event": r.event,
                    "date": r.date.isoformat(),
                    "age": r.age,
                    "kind": r.kind,
                    "item": r.item,
                    "quantity": _qty(r.quantity),
                    "open": _qty(r.open),
                }
                for r in rows
            ],
            as_of=today.isoformat(),
            default_date=_open_day(book, today).isoformat(),
            posted=posted,
            total=len(queue),
            first=(shown - 1) * PAGE + 1,
            page_no=shown,
            pages=pages,
        )

    def post_from_form(
        session: WebSession, raw: dict[str, Any], event_id: Callable[[Book], str]
    ) -> str:
        """Post the form's event under the id ``event_id`` gives from the book; that id."""
        book = store.load()
        try:
            event = build_event(
                raw, book.master, book.settings, where="form", default_id=event_id(book)
            )
        except InputError as error:
            raise _Refused(422, "; ".join(error.problems)) from None
        if (
            ahead := live_date_problem(event.date, book.standards, in_force=book.epoch)
        ) is not None:
            raise _Refused(422, f"form: event {event.id}: date: {ahead}")
        if not session.token.may_post(event.type):
            raise _Refused(403, f"{session.token.role.token} may not post {event.type} events")
        try:
            store.post([event], recorded_by=session.token.name)
        except ConflictError as error:
            raise _Refused(409, str(error)) from None
        except (PostingError, StandardError) as error:
            raise _Refused(422, f"{error}; nothing was written") from None
        return event.id

    def require_accountant(session: WebSession) -> None:
        if not session.may_work_exceptions:
            raise _Refused(403, f"{session.token.role.token} may not retry or resolve")

    @router.post("/exceptions/retry")
    async def retry(request: Request, session: UiSession) -> Response:
        form = await checked_form(request, session)
        require_accountant(session)
        raw: dict[str, Any] = {"type": "retry", "date": form.get("date", "")}
        if form.get("item"):
            raw["item"] = form["item"]
        event_id = f"web-retry-{uuid.uuid4()}"
        return _back(await run_in_threadpool(post_from_form, session, raw, lambda _: event_id))

    @router.post("/exceptions/resolve")
    async def resolve(request: Request, session: UiSession) -> Response:
        form = await checked_form(request, session)
        require_accountant(session)
        event, item = form.get("event", ""), form.get("item", "")
        if not form.get("reason", "").strip():
            raise _Refused(422, "give a reason to resolve (write off) an exception")
        raw = {
            "type": "write_off",
            "event": event,
            "item": item,
            "reason": form["reason"],
            "date": form.get("date", ""),
        }

        def event_id(book: Book) -> str:  # submitted twice: answered as recorded
            return book.write_off_of(event, item) or write_off_id(event, item)

        return _back(await run_in_threadpool(post_from_form, session, raw, event_id))

    # ------------------------------------------------------------ item and BOM

    @router.get("/items/{item_id:path}")
    def item(
        item_id: str, session: UiSession, on: Annotated[str | None, Query(max_length=10)] = None
    ) -> HTMLResponse:
        book = store.load()
        master = book.master
        found = master.items.get(item_id)
        if found is None:
            raise _Refused(404, f"no item {item_id!r}")
        try:
            day = to_date(on) if on else (flag_reports.last_posted(book) or dt.date.today())
        except ValueError as error:
            raise _Refused(422, f"on: {error}") from None
        currency = book.settings.currency
        try:
            bom = std_reports.indented_bom(book.standards, item_id, day)
            (roll,) = std_reports.rollup(book.standards, day, [item_id])
        except StandardError as error:
            raise _Refused(422, str(error)) from None
        versions = [
            {
                "from": "the beginning"
                if v.effective_from == dt.date.min
                else v.effective_from.isoformat(),
                "to": v.effective_to.isoformat() if v.effective_to else "",
                "current": master.bom_on(item_id, day) is v,
                "lines": [
                    {
                        "component": line.component,
                        "quantity": _qty(line.quantity),
                        "scrap": _qty(line.scrap),
                        "operation": "" if line.operation is None else str(line.operation),
                    }
                    for line in v.lines
                ],
            }
            for v in master.boms.get(item_id, ())
        ]
        where = std_reports.where_used(master, item_id, day)
        return page(
            "item.html.j2",
            session=session,
            book_name=book.settings.name,
            item=found,
            on=day.isoformat(),
            currency=currency,
            versions=versions,
            rows=[
                {
                    "depth": r.depth,
                    "component": r.component,
                    "kind": r.kind.value,
                    "per_top": _qty(r.per_top),
                    "unit_cost": unit_cost(r.unit_cost, currency),
                    "extended": unit_cost(r.extended, currency),
                }
                for r in bom.rows
            ],
            elements=[
                (
                    e.element,
                    unit_cost(e.this_level, currency),
                    unit_cost(e.lower_level, currency),
                    unit_cost(e.total, currency),
                )
                for e in bom.summary
            ],
            total=unit_cost(bom.total, currency),
            rollup={
                "material": unit_cost(roll.material, currency),
                "conversion": [(e, unit_cost(a, currency)) for e, a in roll.conversion],
                "lower": [(e, unit_cost(a, currency)) for e, a in roll.lower],
                "total": unit_cost(roll.total, currency),
            },
            where_used=sorted({r.parent for r in where}) if where else [],
        )

    # ------------------------------------------------------------ journal and drill-down

    @router.get("/journal")
    def journal(
        session: UiSession,
        period: Annotated[str | None, Query(max_length=7)] = None,
        after_entry: Annotated[str | None, Query(alias="after", max_length=20)] = None,
    ) -> HTMLResponse:
        if period is not None and not period:
            period = None
        if period is not None and not _PERIOD.match(period):
            raise _Refused(422, "period: expected YYYY-MM")
        after = None  # checked here, so that a bad one gets a page, not a problem document
        if after_entry:
            if not after_entry.isdecimal() or int(after_entry) > MAX_ENTRY_NO:
                raise _Refused(422, f"after: expected an entry number, got {after_entry!r}")
            after = int(after_entry)
        book, numbered, total = store.journal_page(period, PAGE + 1, after)
        currency = book.settings.currency
        shown = numbered[:PAGE]
        entries = [{"entry_no": n, **entry_document(e, currency)} for n, e in shown]
        following = shown[-1][0] if len(numbered) > PAGE else None
        return page(
            "journal.html.j2",
            session=session,
            book_name=book.settings.name,
            currency=currency,
            periods=book.periods(),
            period=period,
            entries=entries,
            total=total,
            following=following,
            after=after,
        )

    @router.get("/events/{event_id:path}")
    def event(event_id: str, session: UiSession) -> HTMLResponse:
        try:
            found = drilldown_document(drilldown(store, event=event_id))
        except NotFound as error:
            raise _Refused(404, str(error)) from None
        return page("event.html.j2", session=session, doc=found, book_name=store.settings().name)

    @router.get("/entries/{entry_no}")
    def entry(entry_no: int, session: UiSession) -> HTMLResponse:
        """A journal entry: a summary with the events it sums, or its event's drill-down."""
        if not 1 <= entry_no <= MAX_ENTRY_NO:
            raise _Refused(404, f"journal entry {entry_no}: not in the book")
        try:
            found = entry_drilldown(store, entry_no)
        except NotFound as error:
            raise _Refused(404, str(error)) from None
        name = store.settings().name
        if isinstance(found, SummaryEntry):
            doc = summary_entry_document(found)
            shown = doc["events"][:LISTED]
            return page("summary.html.j2", session=session, doc=doc, shown=shown, book_name=name)
        return page("event.html.j2", session=session, doc=drilldown_document(found), book_name=name)

    # ------------------------------------------------------------ close checklist

    @router.get("/close/{period}")
    def close(period: str, session: UiSession) -> HTMLResponse:
        if not _PERIOD.match(period):
            raise _Refused(404, f"no period {period!r}: expected YYYY-MM")
        book, events = store.close_check(period)
        checks = close_reports.checklist(book, period, events)
        found = close_reports.checklist_document(period, checks)
        return page(
            "close.html.j2",
            session=session,
            book_name=book.settings.name,
            doc=found,
            periods=book.periods(),
            closed=period in book.closed,
        )

    router.add_api_route("", lambda: RedirectResponse("/ui/", status_code=308), methods=["GET"])
    return router, page


def install(app: Any, store: Store, *, secure_cookies: bool = False) -> Callable[..., HTMLResponse]:
    """Mount the ``/ui`` pages on ``app`` with their error handling; the function that
    renders a page (``name``, ``status``, ``session``, the template's values)."""
    router, page = web_router(store, secure_cookies=secure_cookies)
    app.include_router(router)

    async def sign_in(_request: Request, _error: Exception) -> Response:
        return RedirectResponse("/ui/login", status_code=303, headers=_HEADERS)

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, _Refused)
        return page("error.html.j2", error.status, message=error.message)

    app.add_exception_handler(_SignIn, sign_in)
    app.add_exception_handler(_Refused, refused)
    return page


def _open_day(book: Book, today: dt.date) -> dt.date:
    """The date a retry or write-off form offers: the last day the book posted on, but never
    in a closed period (right after a month-end close that day is the close's)."""
    day = flag_reports.last_posted(book) or today
    if book.last_closed is not None:
        day = max(day, period_bounds(book.last_closed)[1] + dt.timedelta(days=1))
    return day


def _back(event_id: str) -> RedirectResponse:
    return RedirectResponse(
        f"/ui/exceptions?posted={quote(event_id, safe='')}", status_code=303, headers=_HEADERS
    )


def _grouped(text: str) -> str:
    """A decimal string of a JSON document with thousands separators ("" for zero)."""
    value = Decimal(text)
    return f"{value:,}" if value else ""


def _qty(value: Decimal) -> str:
    return fmt(value)
