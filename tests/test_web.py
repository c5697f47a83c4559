"""The web pages (``/ui``) end to end: uvicorn on a loopback port, httpx for the rules
(sign-in, roles, CSRF) and Debian's headless Chromium through Playwright for the pages."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backflush.api import web
from backflush.api.app import create_app
from backflush.api.tokens import Role, create_token, list_tokens, revoke_token
from backflush.formats.scenario import read_scenario
from backflush.store import schema as t
from backflush.store.repository import Store
from helpers import EXAMPLES, dump_tables, serving
from test_charts_html import CHROMIUM_ARGS, PNG_SIGNATURE, chromium

SHOTS = Path(tempfile.gettempdir()) / "backflush-web-screenshots"  # looked at by hand


@dataclass
class Site:
    store: Store
    base: str
    secrets: dict[Role, str]
    problems: list[str] = field(default_factory=list)


@contextmanager
def served(
    db_url: str,
    events: int | None = None,
    source: Path | None = None,
    *,
    secure_cookies: bool = False,
) -> Iterator[Site]:
    """A book (``source``: a scenario, its first ``events`` events) served on a free loopback
    port, with a token per role named after it (a book served before: served again)."""
    store = Store(db_url)
    secrets: dict[Role, str] = {}
    if not store.initialized():
        scenario = read_scenario(source or EXAMPLES / "northshore.yaml")
        chosen = scenario.events if events is None else scenario.events[:events]
        store.import_scenario(scenario.settings, scenario.master, chosen)
        secrets = {role: create_token(store, role.value, role)[1] for role in Role}
    app = create_app(db_url, secure_cookies=secure_cookies)
    try:
        with serving(app) as base:
            yield Site(store, base, secrets)
    finally:
        app.state.store.close()
        store.close()


@pytest.fixture(scope="module")
def northshore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    db = tmp_path_factory.mktemp("web") / "book.db"
    with served(f"sqlite:///{db}") as site:
        yield site


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield found
        finally:
            found.close()


def signed_in(browser: Any, site: Site, role: Role) -> Any:
    """A browser page signed in through the form, console and page errors kept in
    ``site.problems``."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.on(
        "console",
        lambda m: site.problems.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: site.problems.append(f"pageerror: {e}"))
    page.goto(f"{site.base}/ui/")
    assert page.url == f"{site.base}/ui/login"  # no page without signing in
    page.fill("input[name=token]", site.secrets[role])
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.base}/ui/")
    (cookie,) = [c for c in context.cookies() if c["name"] == "backflush_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    return page


@contextmanager
def client_for(site: Site, role: Role | None) -> Iterator[httpx.Client]:
    """An httpx client signed in as ``role`` through the form (None: not signed in)."""
    with httpx.Client(base_url=site.base, timeout=30) as client:
        if role is not None:
            _sign_in(client, site.secrets[role])
        yield client


def _sign_in(client: httpx.Client, secret: str) -> None:
    form = client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    response = client.post("/ui/login", data={"csrf": csrf.group(1), "token": secret})
    assert response.status_code == 303 and response.headers["location"] == "/ui/"


# ---------------------------------------------------------------- the pages, as a viewer


def test_every_page_in_chromium_as_a_viewer(northshore: Site, browser: Any) -> None:
    site = northshore
    page = signed_in(browser, site, Role.viewer)
    SHOTS.mkdir(parents=True, exist_ok=True)
    # the dashboard: key figures, the two charts, red flags
    january = page.locator("#period-2026-01")
    assert january.locator(".gross-margin").inner_text() == "1,450,000.00"
    assert page.locator("#period-2026-02 .gross-margin").inner_text() == "1,330,000.00"
    for chart in ("waterfall", "margin"):
        box = page.locator(f"#chart-{chart} svg").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 200, (chart, box)
    assert "Variance waterfall 2026-02" in page.locator("#chart-waterfall").inner_text()
    flags = page.locator("#flags").inner_text()
    assert "standards drift" in flags and "conversion" in flags
    shot = page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
    assert shot.startswith(PNG_SIGNATURE)
    page.click("#period-2026-01 a >> text=2026-01")
    assert "Variance waterfall 2026-01" in page.locator("#chart-waterfall").inner_text()

    # the close checklist of a period, from the dashboard
    page.click("#period-2026-01 >> text=checklist")
    assert page.url.endswith("/ui/close/2026-01")
    assert page.locator("#checks tbody tr").count() == 6
    checks = page.locator("#checks").inner_text()
    assert "periods close in order" in checks and "2026-01 ended on 2026-01-31" in checks

    # the journal, a page at a time, and the drill-down of an entry's event
    page.goto(f"{site.base}/ui/journal")
    total = int(page.locator("p.muted").inner_text().split()[0])
    first = page.locator("a.event").first
    event_id = first.inner_text()
    first.click()
    assert page.url == f"{site.base}/ui/events/{event_id}"
    assert page.locator("h1").inner_text().startswith(f"Event {event_id}:")
    assert page.locator("#entries h3").count() >= 1
    assert page.locator("#check-status").inner_text() == "agrees"
    page.screenshot(path=str(SHOTS / "event.png"), full_page=True)
    page.goto(f"{site.base}/ui/journal?period=2026-02")
    numbers = [int(n) for n in page.locator("tr.entry td.num").first.all_inner_texts()]
    assert numbers
    if total > 50:
        page.click("#next")
        assert "after=" in page.url

    # an item with its BOM and cost rollup
    page.goto(f"{site.base}/ui/items/ROUTER")
    standard = site.store.load().standards.unit_cost("ROUTER", dt.date(2026, 2, 28))
    assert page.locator("#standard").inner_text() == f"{standard.total:,}"
    assert page.locator("#bom tbody tr").count() == 5
    page.click("#bom >> text=PCB")
    assert page.url == f"{site.base}/ui/items/PCB"
    assert "ROUTER" in page.locator("#where-used").inner_text()

    # the exceptions queue: a viewer sees it without the buttons
    page.goto(f"{site.base}/ui/exceptions")
    assert page.locator("form[action='/ui/exceptions/retry']").count() == 0
    assert page.locator("text=Refused").count() == 0
    page.context.close()
    assert site.problems == []


def test_a_summarised_journal_links_each_entry_to_a_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A book summing routine events per day (journal_detail: day): a summary entry has no
    event of its own, so its row links to no event page (an empty id is no page)."""
    source = tmp_path / "summed.yaml"
    text = (EXAMPLES / "northshore.yaml").read_text()
    source.write_text(
        text.replace("  shortage: queue\n", "  shortage: queue\n  journal_detail: day\n")
    )
    with (
        served(f"sqlite:///{tmp_path / 'book.db'}", source=source) as site,
        client_for(site, Role.viewer) as client,
    ):
        page = client.get("/ui/journal").text
        assert "summarised by day" in page
        links = re.findall(r'href="/ui/events/([^"]*)"', page)
        assert links, "the closes keep an entry each"
        for link in sorted(set(links)):
            assert client.get(f"/ui/events/{link}").status_code == 200, link
        summaries = re.findall(r'href="/ui/entries/(\d+)"', page)
        assert summaries
        for number in summaries:  # each summary lists its events, each a page of its own
            shown = client.get(f"/ui/entries/{number}")
            assert shown.status_code == 200, number
            assert "summarised by day" in shown.text
            events = re.findall(r'class="event" href="/ui/events/([^"]*)"', shown.text)
            assert events, number
            assert client.get(f"/ui/events/{events[0]}").status_code == 200
        assert client.get("/ui/entries/1").status_code == 200
        assert client.get("/ui/entries/999999").status_code == 404
        monkeypatch.setattr(web, "LISTED", 1)  # a long list is cut, and says where the rest is
        cut = 0
        for number in summaries:
            shown = client.get(f"/ui/entries/{number}").text
            total = int(re.findall(r"The (\d+) events it sums", shown)[0])
            assert len(re.findall(r'class="event" href=', shown)) == 1
            if total > 1:
                assert f"and {total - 1} more" in shown and f"GET /journal/{number}" in shown
                cut += 1
        assert cut


def test_an_id_with_slashes_has_its_pages(tmp_path: Path) -> None:
    """Plants number documents ``PO/2026/0001``: such an event (and item) is found over the
    API and in the pages, whether the slashes come encoded or not."""
    with served(f"sqlite:///{tmp_path / 'book.db'}", events=5) as site:
        purchase = {"id": "PO/2026/0001", "date": "2026-01-06", "type": "purchase",
                    "item": "PCB", "quantity": "10", "unit_cost": "12.08"}  # fmt: skip
        with httpx.Client(base_url=site.base, timeout=30) as api:
            bearer = {"Authorization": f"Bearer {site.secrets[Role.accountant]}"}
            assert api.post("/events", json=purchase, headers=bearer).status_code == 201
            for path in ("/events/PO%2F2026%2F0001", "/events/PO/2026/0001"):
                found = api.get(path, headers=bearer)
                assert found.status_code == 200, path
                assert found.json()["event"]["id"] == "PO/2026/0001"
            assert api.get("/events/PO/2026/0002", headers=bearer).status_code == 404
        with client_for(site, Role.viewer) as client:
            journal = client.get("/ui/journal").text
            assert 'href="/ui/events/PO%2F2026%2F0001"' in journal
            page = client.get("/ui/events/PO%2F2026%2F0001")
            assert page.status_code == 200 and "PO/2026/0001" in page.text


def test_a_bad_query_gets_a_page_that_says_so(northshore: Site) -> None:
    """A browser is answered with a page (not a problem document) naming what is wrong."""
    with client_for(northshore, Role.viewer) as client:
        for query, message in (
            ("after=abc", "after: expected an entry number, got &#39;abc&#39;"),
            ("period=2026-13", "period: expected YYYY-MM"),
        ):
            refused = client.get(f"/ui/journal?{query}")
            assert refused.status_code == 422, query
            assert refused.headers["content-type"].startswith("text/html"), query
            assert message in refused.text, refused.text
        assert client.get("/ui/journal?after=1").status_code == 200


# ---------------------------------------------------------------- sign-in, roles and CSRF


def test_no_page_without_the_cookie(northshore: Site) -> None:
    with client_for(northshore, None) as client:
        for path in (
            "/ui/",
            "/ui/exceptions",
            "/ui/journal",
            "/ui/items/ROUTER",
            "/ui/events/x",
            "/ui/close/2026-01",
        ):
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == "/ui/login"
        for path in ("/ui/exceptions/retry", "/ui/exceptions/resolve", "/ui/logout"):
            response = client.post(path, data={"csrf": "x"})
            assert response.status_code == 303 and response.headers["location"] == "/ui/login"
        # a revoked or made-up token in the cookie is no session
        client.cookies.set("backflush_session", "nonsense", path="/ui")
        assert client.get("/ui/").status_code == 303


def test_sign_in_refusals(northshore: Site) -> None:
    with client_for(northshore, None) as client:
        form = client.get("/ui/login")
        assert "script-src" not in form.headers["content-security-policy"]  # none allowed
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        wrong = client.post("/ui/login", data={"csrf": csrf.group(1), "token": "nope"})
        assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
        assert "backflush_session" not in client.cookies
        # the sign-in form without its CSRF token (another site posting it) is refused
        good = northshore.secrets[Role.viewer]
        assert client.post("/ui/login", data={"token": good}).status_code == 403
    with client_for(northshore, None) as fresh:  # nor with a token but no login cookie
        response = fresh.post("/ui/login", data={"csrf": csrf.group(1), "token": good})
        assert response.status_code == 403 and "backflush_session" not in fresh.cookies


def test_a_session_is_no_secret_and_ends(tmp_path: Path) -> None:
    """The cookie holds a random session id, not the token's secret; each sign-in has its
    own CSRF token; a session ends at sign-out, at its expiry and when its token is
    revoked."""
    url = f"sqlite:///{tmp_path / 'book.db'}"
    with served(url, 4, EXAMPLES / "reopen.yaml") as site:
        secret = site.secrets[Role.accountant]
        with client_for(site, Role.accountant) as first, client_for(site, Role.accountant) as two:
            cookie = first.cookies["backflush_session"]
            assert secret not in cookie and cookie != two.cookies["backflush_session"]
            assert _csrf(first) != _csrf(two)
            with site.store.engine.connect() as conn:
                kept = conn.execute(sa.select(t.web_sessions.c.id_hash)).scalars().all()
            assert len(kept) == 2 and cookie not in kept  # only hashes are kept
            # sign-out ends the session: its cookie, sent again, is no session
            assert first.post("/ui/logout", data={"csrf": _csrf(first)}).status_code == 303
            first.cookies.set("backflush_session", cookie, path="/ui")
            assert first.get("/ui/").status_code == 303
            assert two.get("/ui/").status_code == 200
            # expired
            with site.store.engine.begin() as conn:
                past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
                conn.execute(t.web_sessions.update().values(expires_at=past))
            assert two.get("/ui/").status_code == 303
        with client_for(site, Role.viewer) as viewer:
            assert viewer.get("/ui/").status_code == 200
            (token,) = [k for k in list_tokens(site.store) if k.name == "viewer"]
            revoke_token(site.store, token.id)
            assert viewer.get("/ui/").status_code == 303  # revoked: the session is gone


def test_cookies_are_secure_over_https_or_when_told(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.db'}"
    with served(url, 4, EXAMPLES / "reopen.yaml") as site, httpx.Client(base_url=site.base) as c:
        assert "secure" not in c.get("/ui/login").headers["set-cookie"].lower()
        # behind a proxy on an allowed address (uvicorn believes 127.0.0.1 by default)
        behind = c.get("/ui/login", headers={"X-Forwarded-Proto": "https"})
        assert "; secure" in behind.headers["set-cookie"].lower()
    with served(url, secure_cookies=True) as site, httpx.Client(base_url=site.base) as client:
        assert "; secure" in client.get("/ui/login").headers["set-cookie"].lower()


def _csrf(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/exceptions").text)
    assert found is not None
    return found.group(1)


def test_viewer_refused_and_csrf_required(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.db'}"
    with served(url, 4, EXAMPLES / "reopen.yaml") as site:
        before = dump_tables(site.store)
        resolve = {"event": "c1", "item": "M", "reason": "found", "date": "2026-01-31"}
        with client_for(site, Role.viewer) as viewer:
            csrf = viewer_csrf = _csrf(viewer)
            for path, form in (
                ("/ui/exceptions/retry", {"date": "2026-01-31"}),
                ("/ui/exceptions/resolve", resolve),
            ):
                response = viewer.post(path, data={**form, "csrf": csrf})
                assert response.status_code == 403, response.text
                assert "a viewer token may not retry or resolve" in response.text
        with client_for(site, Role.accountant) as accountant:
            for csrf in (None, "", "0" * 64, viewer_csrf):  # the last: another session's
                form = resolve if csrf is None else {**resolve, "csrf": csrf}
                response = accountant.post("/ui/exceptions/resolve", data=form)
                assert response.status_code == 403, response.text
                assert "CSRF token is missing or wrong" in response.text
            # a reason is required
            response = accountant.post(
                "/ui/exceptions/resolve",
                data={**resolve, "reason": " ", "csrf": _csrf(accountant)},
            )
            assert response.status_code == 422 and "give a reason" in response.text
            far = (dt.date.today() + dt.timedelta(days=400)).isoformat()  # a typo
            for path, form in (
                ("/ui/exceptions/retry", {"date": far}),
                ("/ui/exceptions/resolve", {**resolve, "date": far}),
            ):
                response = accountant.post(path, data={**form, "csrf": _csrf(accountant)})
                assert response.status_code == 422, response.text
                assert f"date: {far} is more than 366 days ahead" in response.text
        after = dump_tables(site.store)
        assert len(after.pop("web_sessions")) == 2  # the sign-ins
        before.pop("web_sessions")
        assert after == before  # nothing else written


# ---------------------------------------------------------------- an accountant works the queue


def test_accountant_retries_and_resolves_through_the_page(
    tmp_path: Path, browser: Any, db_url: str
) -> None:
    # the reopen example before its close: completion c1 waits for 2 M
    with served(db_url, 4, EXAMPLES / "reopen.yaml") as site:
        page = signed_in(browser, site, Role.accountant)
        page.goto(f"{site.base}/ui/exceptions")
        row = page.locator("#queue tbody tr")
        assert row.count() == 1
        assert row.locator("td").nth(0).inner_text() == "c1"
        assert row.locator("td").nth(6).inner_text() == "2"
        # one M arrives: the purchase clears what it can at once (every arrival retries)
        purchase = {
            "id": "p-late",
            "date": "2026-01-25",
            "type": "purchase",
            "item": "M",
            "quantity": "1",
            "unit_cost": "2.00",
        }
        with httpx.Client(base_url=site.base) as api:
            headers = {"Authorization": f"Bearer {site.secrets[Role.accountant]}"}
            assert api.post("/events", json=purchase, headers=headers).status_code == 201
        rip_before = _balance(site.store, "raw_in_process")
        assert rip_before == -2  # 12 M credited at 2.00, 11 bought
        page.reload()
        assert page.locator("#queue tbody tr td").nth(6).inner_text() == "1"
        # a retry by hand: nothing on the shelf, the event is recorded and nothing moves
        page.fill("#retry input[name=date]", "2026-01-26")
        page.click("#retry button")
        assert page.locator("#posted").inner_text().startswith("Event web-retry-")
        assert page.locator("#queue tbody tr td").nth(6).inner_text() == "1"
        assert site.store.load().on_hand.get("M", 0) == 0
        assert _balance(site.store, "raw_in_process") == rip_before
        # the last one is written off with a reason
        page.fill("#queue input[name=reason]", "found on the shelf")
        page.fill("#queue input[name=date]", "2026-01-31")
        page.click("#queue button")
        assert page.locator("#posted").inner_text() == "Event write-off:c1/M posted."
        assert page.locator("#none").inner_text() == "No open backflush exceptions."
        assert _balance(site.store, "raw_in_process") == 0  # Dr RIP 2.00: 1 M at standard
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "exceptions.png"), full_page=True)
        page.context.close()
        with site.store.transaction() as conn:
            who = dict(
                conn.execute(
                    sa.select(t.events.c.type, t.events.c.recorded_by).where(
                        t.events.c.type.in_(("retry", "write_off"))
                    )
                ).all()
            )
        assert who == {"retry": "accountant", "write_off": "accountant"}
        book = site.store.load()
        assert list(book.written_off.values()) == ["found on the shelf"]
        assert site.problems == []


def test_the_exceptions_page_is_paged_and_offers_an_open_date(db_url: str) -> None:
    """A queue of thousands of exceptions was one page of megabytes; after a month-end close
    the forms offered the close's date, in the closed period; any text in ``posted`` showed
    as a notice."""
    reopen = EXAMPLES / "reopen.yaml"
    with (
        served(db_url, 5, reopen) as site,  # January closed
        client_for(site, Role.accountant) as client,
    ):
        page = client.get("/ui/exceptions").text
        assert 'name="date" value="2026-02-01"' in page  # not 2026-01-31, the close's
        assert 'id="pages"' not in page
        made = [
            {"id": f"c{n}", "date": "2026-02-05", "type": "completion", "item": "F",
             "quantity": "1"}
            for n in range(100, 220)
        ]  # fmt: skip
        bearer = {"Authorization": f"Bearer {site.secrets[Role.operator]}"}
        response = client.post("/events/batch", json=made, headers=bearer)
        assert response.status_code == 201, response.text
        first = client.get("/ui/exceptions").text
        assert first.count("/ui/exceptions/resolve") == 50
        assert "1–50 of 121 (page 1 of 3)" in first
        assert 'id="next" href="/ui/exceptions?page=2"' in first and "previous" not in first
        assert 'name="date" value="2026-02-05"' in first
        last = client.get("/ui/exceptions?page=3").text
        assert last.count("/ui/exceptions/resolve") == 21 and "101–121 of 121" in last
        assert 'id="previous" href="/ui/exceptions?page=2"' in last and 'id="next"' not in last
        assert ">c219<" in last and ">c1<" not in last
        beyond = client.get("/ui/exceptions?page=9").text  # past the end: the last page
        assert "page 3 of 3" in beyond
        refused = client.get("/ui/exceptions?page=0")
        assert refused.status_code == 422 and "page: expected a page number" in refused.text
        told = client.get("/ui/exceptions", params={"posted": "c100"}).text
        assert 'id="posted">Event c100 posted.' in told
        for made_up in ("all resolved by IT", "a\x00b"):
            page = client.get("/ui/exceptions", params={"posted": made_up})
            assert page.status_code == 200 and 'id="posted"' not in page.text


def _balance(store: Store, account: str) -> Any:
    return store.load().account_balances().get(account, 0)
