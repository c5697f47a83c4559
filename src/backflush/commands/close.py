"""The close as a procedure: ``backflush close PERIOD --check`` (the checklist), ``backflush
reopen``, and the backflush exceptions queue (``backflush exceptions list | retry | resolve``).

Every change is an event (reopen, retry, write_off) posted in one transaction, so it is in the
audit trail, replays the same and is applied once. Refused input exits with code 2.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.markup import escape

from backflush.book import Book, write_off_id
from backflush.cli import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    cli_user,
    err,
    fail,
    guarded,
    out,
    print_json,
    print_report,
)
from backflush.domain import model as m
from backflush.domain.money import fmt
from backflush.formats.inputs import InputError, build_event, live_date_problem, to_date, to_decimal
from backflush.reports import close as reports
from backflush.reports import tables
from backflush.store.repository import Store

exceptions_app = typer.Typer(
    name="exceptions",
    help="The backflush exceptions queue: list with ages, retry, resolve (write off).",
    no_args_is_help=True,
)

DateOption = Annotated[
    str | None, typer.Option("--date", help="Date of the event (YYYY-MM-DD); default: today.")
]
IdOption = Annotated[
    str | None, typer.Option("--id", help="Idempotency key (a default is made when omitted).")
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why (kept in the audit trail).", show_default=False)
]


def _date(value: str | None, option: str) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return to_date(value)
    except ValueError as error:
        raise InputError([f"command line: {option}: {error}"]) from None


def _post(store: Store, book: Book, raw: dict[str, Any], event_id: str) -> tuple[m.Event, bool]:
    event = build_event(raw, book.master, book.settings, where="command line", default_id=event_id)
    if (ahead := live_date_problem(event.date, book.standards, in_force=book.epoch)) is not None:
        raise InputError([f"command line: event {event.id}: date: {ahead}"])
    return event, store.post([event], recorded_by=cli_user())[0]


# ---------------------------------------------------------------- close --check and the close


def close_id(book: Book, period: str) -> str:
    """Default id of the close of ``period``: close-PERIOD, close-PERIOD-2 after a reopen, ..."""
    reopens = len(book.reopened(period))
    return f"close-{period}" + (f"-{reopens + 1}" if reopens else "")


def print_checklist(db: str, period: str, drift: str, as_json: bool) -> None:
    """The close checklist of ``period``; changes nothing."""
    try:
        threshold = to_decimal(drift)
    except ValueError as error:
        raise InputError([f"command line: --drift: {error}"]) from None
    if threshold < 0:
        raise InputError([f"command line: --drift: expected zero or more, got {drift}"])
    store = Store(db, create=False)
    book, events = store.close_check(period)
    checks = reports.checklist(book, period, events, drift=threshold)
    if as_json:
        print_json(reports.checklist_document(period, checks))
    else:
        out.print(reports.checklist_table(period, checks))


def warn_older_exceptions(book: Book, period: str) -> None:
    """Under ``exceptions_at_close: warn`` a close goes ahead with older exceptions: say so."""
    older = book.exceptions_before(m.period_bounds(period)[0])
    if older:
        err.print(
            f"[yellow]warning:[/] {len(older)} backflush exception(s) older than {period} are "
            "still open (exceptions_at_close warn): "
            + escape(", ".join(f"{s.event}/{s.item}" for s in older[:10]))
            + "; see `backflush exceptions list`",
            soft_wrap=True,
        )


# ---------------------------------------------------------------- reopen


def reopen(
    period: Annotated[str, typer.Argument(help="YYYY-MM: the latest closed period.")],
    reason: ReasonOption,
    db: DbOption = DEFAULT_DB,
    date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="Date of the event (YYYY-MM-DD); default: the period's last day (its "
            "close's entries are negated on the dates the close gave them).",
        ),
    ] = None,
    event_id: IdOption = None,
) -> None:
    """Reopen the latest closed period: its close is negated and it accepts postings again."""

    def go() -> None:
        try:
            m.period_bounds(period)
        except ValueError:
            fail(f"period: expected YYYY-MM, got {period!r}", 2)
        store = Store(db, create=False)
        book = store.load()
        given = event_id or f"reopen-{period}-{len(book.reopened(period)) + 1}"
        on = m.period_bounds(period)[1] if date is None else _date(date, "--date")
        raw = {"type": "reopen", "period": period, "reason": reason, "date": on.isoformat()}
        event, applied = _post(store, book, raw, given)
        if not applied:
            out.print(
                f"event {escape(event.id)}: already recorded with the same content: no change"
            )
            return
        book = store.load()
        out.print(tables.variances_table(book))
        out.print(
            f"period {period} reopened by {escape(event.id)} ({escape(reason)}); "
            f"close it again with `backflush close {period}`"
        )

    guarded(go, db=db)


# ---------------------------------------------------------------- exceptions


@exceptions_app.command("list")
def list_(
    db: DbOption = DEFAULT_DB,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Ages as of this date (exceptions queued later are left out); default: today.",
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Also cleared, written off and flagged ones.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Open backflush exceptions with their age in days."""

    def go() -> None:
        on = _date(as_of, "--as-of")
        book = Store(db, create=False).load()
        rows = reports.aging(book, on, every=every)
        if as_json:
            print_json(reports.aging_document(rows, on))
            return
        print_report(reports.aging_table(rows, on))
        if not rows:
            out.print("No backflush exceptions." if every else "No open backflush exceptions.")

    guarded(go, writes=False, db=db)


@exceptions_app.command("retry")
def retry(
    db: DbOption = DEFAULT_DB,
    item: Annotated[
        str | None, typer.Option(help="Only this item; default: every item waiting.")
    ] = None,
    date: DateOption = None,
    event_id: IdOption = None,
) -> None:
    """Retry queued consumption where stock is available (a retry event, audited)."""

    def go() -> None:
        store = Store(db, create=False)
        book = store.load()
        before = _open(book)
        raw: dict[str, Any] = {"type": "retry", "date": _date(date, "--date").isoformat()}
        if item is not None:
            raw["item"] = item
        event, applied = _post(store, book, raw, event_id or f"cli-{uuid.uuid4()}")
        if not applied:
            out.print(
                f"event {escape(event.id)}: already recorded with the same content: no change"
            )
            return
        after = _open(store.load())
        cleared = [
            f"{key[0]}/{key[1]}: {fmt(was - after.get(key, Decimal(0)))}"
            for key, was in before.items()
            if after.get(key, Decimal(0)) != was
        ]
        if cleared:
            out.print(f"retry {escape(event.id)} consumed " + escape(", ".join(cleared)))
        else:
            out.print(f"retry {escape(event.id)}: no stock available for what waits; no change")
        still = sum(after.values(), Decimal(0))
        if still:
            out.print(f"{len(after)} exception(s) still open ({fmt(still)} units waiting)")

    guarded(go, db=db)


def _open(book: Book) -> dict[tuple[str, str, str], Decimal]:
    return {key: s.open for key, s in book.shortages.items() if s.kind == "shortage" and s.open}


@exceptions_app.command("resolve")
def resolve(
    event: Annotated[str, typer.Argument(help="Id of the event that queued the consumption.")],
    item: Annotated[str, typer.Argument(help="The item it waits for.")],
    reason: ReasonOption,
    db: DbOption = DEFAULT_DB,
    date: DateOption = None,
    event_id: IdOption = None,
) -> None:
    """Write off a queued consumption with a reason: the units stay on the shelf (Dr inventory
    at standard, Cr usage variance or inventory adjustment)."""

    def go() -> None:
        store = Store(db, create=False)
        book = store.load()
        raw = {
            "type": "write_off",
            "event": event,
            "item": item,
            "reason": reason,
            "date": _date(date, "--date").isoformat(),
        }
        made = book.write_off_of(event, item)  # run again: answered as recorded
        posted, applied = _post(store, book, raw, event_id or made or write_off_id(event, item))
        if not applied:
            out.print(
                f"event {escape(posted.id)}: already recorded with the same content: no change"
            )
            return
        out.print(
            f"exception {escape(event)}/{escape(item)} written off by {escape(posted.id)}: "
            f"{escape(reason)}"
        )

    guarded(go, db=db)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``backflush`` app."""
    app.command("reopen")(reopen)
    app.add_typer(exceptions_app, name="exceptions")
