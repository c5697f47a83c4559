"""The command line: thin verbs over the scenario runner and the persistent book."""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import inspect
import io
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from enum import StrEnum
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from backflush.book import Book
from backflush.domain import model as m
from backflush.domain.model import period_bounds
from backflush.engine.flush import PostingError
from backflush.engine.standards import StandardError, Standards
from backflush.formats import beancount, streams
from backflush.formats.inputs import (
    MAX_DAYS_AHEAD,
    BookModel,
    InputError,
    build_event,
    describe,
    fields_of,
    live_date_problem,
)
from backflush.formats.scenario import Scenario, parse_scenario, read_scenario
from backflush.reports import PERIOD_SUMS_READ, plain, tables
from backflush.reports.analysis import (
    By,
    Selection,
    SelectionError,
    margin_document,
    margin_table,
    variance_analysis_table,
    variance_document,
)
from backflush.reports.charts import Chart, chart_bytes, suffix_format
from backflush.reports.document import document, money
from backflush.reports.flags import flags_document, flags_table, parse_thresholds, red_flags
from backflush.reports.statements import statements_table
from backflush.reports.throughput import throughput_periods, throughput_table
from backflush.reports.workbook import write_csv, write_workbook
from backflush.run import run_scenario
from backflush.store.repository import (
    PERIOD_SUMS,
    SCHEMA_REVISION,
    Imported,
    Store,
    StoreError,
    database_reason,
    database_url,
    display_url,
)

app = typer.Typer(
    name="backflush",
    help="Backflush costing: standard costs flushed at trigger points, variances at close.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: The width of output written to a file or a pipe (Rich's default, 80 columns, would cut
#: a wide report's columns to "…"); a terminal's own width, or COLUMNS, wins.
PIPE_WIDTH = 200


def _console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal, or :data:`PIPE_WIDTH` when writing elsewhere."""
    stream = sys.stderr if stderr else sys.stdout
    wide = "COLUMNS" in os.environ or (stream is not None and stream.isatty())
    # emoji off: a work center named A or OK is no :A: or :OK: shortcode in a variance key
    return Console(stderr=stderr, width=None if wide else PIPE_WIDTH, emoji=False)


out = _console()
err = _console(stderr=True)

DEFAULT_DB = "backflush.db"
DEMO_DB = "backflush-demo.db"
DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="BACKFLUSH_DB",
        help="SQLAlchemy URL or SQLite file path (postgresql://user@host/db for PostgreSQL).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the JSON document instead.")]

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(
    action: Callable[[], T],
    *,
    writes: bool = True,
    db: str | None = None,
    outcome: str | None = None,
) -> T:
    """Run ``action``; turn the errors a user can fix into a clear message and exit code 2
    (a command that ``writes`` wrote nothing: every write is one transaction; ``outcome``
    says what else a refusal means). A database that cannot be used (unreachable, not a
    database, a bad URL) is exit code 1, named by ``db`` without its password."""
    if outcome is None:
        outcome = "nothing was written" if writes else ""
    then = f"\n{outcome}" if outcome else ""
    try:
        return action()
    except InputError as error:
        refused = f"input refused, {outcome}" if outcome else "input refused"
        fail(f"{refused}:\n  " + "\n  ".join(error.problems), 2)
    except (PostingError, StandardError) as error:
        fail(f"{error}{then}", 2)
    except (StoreError, SelectionError) as error:
        fail(str(error), 2)
    except BrokenPipeError:
        raise  # the reader of our output went away: main() ends quietly
    except OSError as error:  # a report or chart file that cannot be written
        fail(f"{error.filename or ''}: {error.strerror or error}", 2)
    except SQLAlchemyError as error:
        where = f"database {display_url(db)}" if db is not None else "database"
        fail(f"{where}: {database_reason(error)}{then}", 1)


def cli_user() -> str:
    """Who writes from the command line, as the book records it: ``cli:<login name>``, the
    name of the account the process runs as (not what LOGNAME or USER say: anyone can set
    those)."""
    try:
        import pwd  # (POSIX)
    except ImportError:  # pragma: no cover - elsewhere, the name the system gives
        return f"cli:{getpass.getuser()}"
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:  # no name for this user id
        return f"cli:uid {os.getuid()}"


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=1) + "\n")


# ---------------------------------------------------------------- run


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Run a scenario file in memory and print its period report."""

    def go() -> None:
        scenario = read_scenario(file)
        try:
            book = run_scenario(scenario)
        except PostingError as error:
            raise scenario.where(error) from None
        if as_json:
            print_json(document(book))
        else:
            print_report(tables.period_report(book, book.journal, len(scenario.events)))

    guarded(go, writes=False, outcome="the run stops here")


# ---------------------------------------------------------------- the persistent book


def _given(ctx: typer.Context, parameter: str) -> bool:
    """Whether ``parameter`` was set on the command line (not left at its default)."""
    return getattr(ctx.get_parameter_source(parameter), "name", "") == "COMMANDLINE"


class Rounding(StrEnum):
    """How amounts are rounded to the currency's minor unit (a scenario's ``rounding``)."""

    HALF_EVEN = "half-even"
    HALF_UP = "half-up"


@app.command()
def init(
    ctx: typer.Context,
    db: DbOption = DEFAULT_DB,
    name: Annotated[str, typer.Option(help="Name of the book.")] = "Plant",
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "USD",
    triggers: Annotated[
        m.Policy, typer.Option(help="Trigger points.")
    ] = m.Policy.PURCHASE_COMPLETION,
    disposition: Annotated[m.Disposition, typer.Option()] = m.Disposition.COGS,
    shortage: Annotated[m.Shortage, typer.Option()] = m.Shortage.QUEUE,
    inventory_unsold_conversion: Annotated[bool, typer.Option()] = False,
    rounding: Annotated[
        Rounding, typer.Option(help="Amounts to the currency's minor unit: ties to even or up.")
    ] = Rounding.HALF_EVEN,
    count_variance: Annotated[
        m.CountVariance,
        typer.Option(
            help="Where a count difference (or queued consumption written off) goes: the "
            "material usage variance or inventory adjustment."
        ),
    ] = m.CountVariance.USAGE,
    exceptions_at_close: Annotated[
        m.ExceptionsAtClose,
        typer.Option(help="A close while older backflush exceptions are open: warn or refuse."),
    ] = m.ExceptionsAtClose.WARN,
    lower_of_cost: Annotated[
        m.LowerOfCost, typer.Option(help="Write-downs to net realisable value that recover.")
    ] = m.LowerOfCost.IFRS,
    journal_detail: Annotated[
        m.JournalDetail,
        typer.Option(
            help="Journal lines of routine events: one entry per event, or summed per event "
            "type and day or period (each event keeps its own lines for drill-down)."
        ),
    ] = m.JournalDetail.EVENT,
    settings_from: Annotated[
        Path | None, typer.Option(help="Take the settings from a scenario file's book section.")
    ] = None,
) -> None:
    """Create a book (or bring an existing one's schema up to date)."""
    given = [p for p in ctx.params if p not in ("db", "settings_from") and _given(ctx, p)]
    settings_given = settings_from is not None or bool(given)
    if settings_from is not None and given:
        flags = ", ".join("--" + p.replace("_", "-") for p in given)
        fail(f"{flags}: give either --settings-from or the settings as options, not both", 2)

    def go() -> None:
        if not settings_given:  # an existing book is only migrated, whatever its settings
            existing = Store(db)
            if existing.initialized():
                before = existing.migrate()
                where = f"book at {escape(existing.display_url)}: schema"
                if before == SCHEMA_REVISION:
                    out.print(f"{where} up to date (revision {before})")
                else:
                    out.print(f"{where} migrated from revision {before} to {SCHEMA_REVISION}")
                return
        if settings_from is not None:
            settings = read_scenario(settings_from).settings
        else:
            flags = {
                "name": name,
                "currency": currency.upper(),
                "triggers": triggers,
                "disposition": disposition,
                "shortage": shortage,
                "inventory_unsold_conversion": inventory_unsold_conversion,
                "rounding": rounding.value,
                "count_variance": count_variance,
                "exceptions_at_close": exceptions_at_close,
                "lower_of_cost": lower_of_cost,
                "journal_detail": journal_detail,
            }
            try:  # the same rules as a scenario's book section
                settings = BookModel.model_validate(flags).to_domain()
            except ValidationError as error:
                found = describe(error, allowed=fields_of(BookModel))
                raise InputError([f"command line: --{p}" for p in found]) from None
        store = Store(db)
        if given and store.initialized():  # the settings given are checked, no defaults
            settings = dataclasses.replace(
                store.settings(), **{field: getattr(settings, field) for field in given}
            )
        created = store.init(settings)
        what = "created" if created else "already there, schema up to date"
        out.print(f"book [bold]{escape(settings.name)}[/] at {escape(store.display_url)}: {what}")

    guarded(go, db=db)


class PipedFormat(StrEnum):
    """The formats ``import -`` reads from standard input (Parquet needs a file)."""

    jsonl = "jsonl"
    csv = "csv"


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="Scenario YAML file, or an event stream into an existing book: JSON lines "
            "(.jsonl, .ndjson), CSV (.csv) or Parquet (.parquet); - reads a stream from "
            "standard input (see --format).",
            show_default=False,
        ),
    ],
    db: DbOption = DEFAULT_DB,
    batch: Annotated[
        int,
        typer.Option("--batch", min=1, max=1_000_000, help="Events posted and written at a time."),
    ] = 5000,
    allow_future: Annotated[
        bool,
        typer.Option(
            "--allow-future",
            help=f"Take events dated more than {MAX_DAYS_AHEAD} days ahead, or on a change of "
            "standards not yet in force (a plan, a simulation); without it they are refused as "
            "typos, as post and the API refuse them.",
        ),
    ] = False,
    piped: Annotated[
        PipedFormat | None,
        typer.Option(
            "--format",
            help="The format of a stream read from standard input (-): jsonl (the default) "
            "or csv (Parquet is read from a file).",
        ),
    ] = None,
) -> None:
    """Import a scenario's master data and events, or a stream of events, into the book
    (one transaction: a bad row or a refused event writes nothing)."""

    def go() -> None:
        stdin = str(file) == "-"
        if piped is not None and not stdin:
            fail("--format is for standard input (-): a file's format is its suffix", 2)
        if stdin or streams.is_stream(file):
            store = Store(db, create=False)
            kind = (piped or PipedFormat.jsonl) if stdin else None
            imported = _import_stream(store, file, batch, allow_future, kind)
            out.print(
                f"{imported.applied} event(s) applied, {imported.recorded} already recorded "
                "(no change)"
            )
            return
        scenario = read_scenario(file)
        if not allow_future:
            standards = Standards(scenario.settings, scenario.master)
            last = _last_event(db)  # the standards stock is valued at: those of its date
            in_force = dt.date.min if last is None else standards.epoch(last)
            ahead = [
                e
                for e in scenario.events
                if live_date_problem(e.date, standards, in_force=in_force) is not None
            ]
            recorded = _recorded_ids(db, ahead)
            for event in ahead:
                if event.id not in recorded:
                    where = scenario.sources.get(event.id, str(file))
                    error = _ahead(where, event, standards, in_force)
                    if error is not None:
                        raise error
        store = Store(db)
        try:
            applied = _import(store, scenario, batch)
        except PostingError as error:
            raise scenario.where(error) from None
        _print_applied(applied)

    guarded(go, db=db)


def _import(store: Store, scenario: Scenario, batch: int = 5000) -> list[bool]:
    total = len(scenario.events)
    with _counting(disable=total < 5000) as progress:
        task = progress.add_task("posting events", total=total)
        return store.import_scenario(
            scenario.settings,
            scenario.master,
            scenario.events,
            on_progress=lambda n: progress.update(task, advance=n),
            batch=batch,
            recorded_by=cli_user(),
        )


def _counting(*, disable: bool = False) -> Progress:
    """A progress bar on standard error counting done of all; none off a terminal."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable or not err.is_terminal,
    )


class _Rate(ProgressColumn):
    """Events per second (Rich's estimate over the last seconds)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s", style="progress.data.speed")


class _Count(ProgressColumn):
    """Events posted, of how many when the total is known."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        if task.total is not None:
            done += f"/{int(task.total):,}"
        return Text(f"{done} events", style="progress.download")


def _ahead(
    where: str, event: m.Event, standards: Standards, in_force: dt.date = dt.date.min
) -> InputError | None:
    """What refuses an event imported without ``--allow-future``: dated more than
    :data:`MAX_DAYS_AHEAD` ahead (a typo such as 2062 would open a period decades ahead, and
    standards could change only after it), or on a change of standards not yet in force."""
    problem = live_date_problem(event.date, standards, in_force=in_force)
    if problem is None:
        return None
    return InputError([f"{where}: event {event.id}: date: {problem}; --allow-future takes it"])


def _ahead_of(where: str, event: m.Event, book: Book) -> InputError | None:
    return _ahead(where, event, book.standards, book.epoch)


def _last_event(db: str) -> dt.date | None:
    """The date of the latest event of the book at ``db``; None when it has none, or there
    is no book yet (and none is made)."""
    try:
        store = Store(db, create=False)
        try:
            return store.last_event()
        finally:
            store.close()
    except (StoreError, SQLAlchemyError):  # no book (yet): the import makes it
        return None


def _recorded_ids(book: Store | str, events: Sequence[m.Event]) -> set[str]:
    """The ids of ``events`` the book (a store, or its URL) records already: sent again, such
    an event is a no-op (or a conflict when it differs), whatever its date. None when there is
    no book yet (and none is made)."""
    if not events:
        return set()
    try:
        store = book if isinstance(book, Store) else Store(book, create=False)
        try:
            return store.recorded_ids(e.id for e in events)
        finally:
            if store is not book:
                store.close()
    except (StoreError, SQLAlchemyError):  # no book (yet): the import says so
        return set()


@dataclasses.dataclass
class _DateOrder:
    """Where a stream first goes back in time (an extract sorted by document number or by
    type): events post in the file's order, so a sale may come before the stock it sells."""

    latest: tuple[dt.date, str] | None = None  # the latest date read, and where
    back: str = ""  # the first event dated before one above it, in words

    def see(self, where: str, event: m.Event) -> None:
        if not self.back and self.latest is not None and event.date < self.latest[0]:
            date, above = self.latest
            self.back = (
                f"{where} is dated {event.date.isoformat()}, before {above} "
                f"({date.isoformat()}); events post in the file's order: sort it by date"
            )
        if self.latest is None or event.date > self.latest[0]:
            self.latest = (event.date, where)

    def explained(self, error: PostingError) -> PostingError:
        """``error`` with where the file went back in time, if it did in what was read (the
        event refused, the batch it was read with, the batches before)."""
        if not self.back:
            return error
        found = type(error)(f"{error}\n(the file is not in date order: {self.back})")
        found.event_id, found.position = error.event_id, error.position
        return found


def _import_stream(
    store: Store, file: Path, batch: int, allow_future: bool, piped: PipedFormat | None
) -> Imported:
    """The events of ``file`` (JSON lines, CSV, Parquet; standard input in format ``piped``)
    streamed into the book, with a progress bar on standard error."""
    order = _DateOrder()
    read: Callable[[m.MasterData, m.Settings], Iterator[tuple[str, m.Event]]]
    if piped is None:
        name, total = file.name, streams.row_count(file)
        read = partial(streams.read_events, file)
    else:
        name, total = "<stdin>", None
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # (a test runner's text stream)
            stdin = io.BytesIO(sys.stdin.read().encode("utf-8"))
        read = partial(streams.read_piped, name, stdin, piped.value)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _Count(),
        _Rate(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # a log or a pipe: no bar (it left a blank line there)
    ) as progress:
        task = progress.add_task(f"importing {name}", total=total)
        try:
            return store.import_events(
                partial(_stream_events, read, order),
                batch=batch,
                on_progress=lambda n: progress.update(task, advance=n),
                refuse=None if allow_future else _ahead_of,
                recorded_by=cli_user(),
            )
        except PostingError as error:
            raise order.explained(error) from None


def _stream_events(
    read: Callable[[m.MasterData, m.Settings], Iterator[tuple[str, m.Event]]],
    order: _DateOrder,
    settings: m.Settings,
    master: m.MasterData,
) -> Iterator[tuple[str, m.Event]]:
    for where, event in read(master, settings):
        order.see(where, event)
        yield where, event


def _print_applied(applied: Sequence[bool]) -> None:
    new = sum(applied)
    out.print(f"{new} event(s) applied, {len(applied) - new} already recorded (no change)")


#: What ``post --type`` takes: the events its flags can describe (close, reopen and write-off
#: have their own commands; events of any shape go through ``post --file``).
EventType = StrEnum(  # type: ignore[misc]
    "EventType",
    [(n, n) for n in m.EVENT_TYPES if n not in ("close", "reopen", "write_off")],
)


@app.command()
def post(
    db: DbOption = DEFAULT_DB,
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "-f", help="JSON lines of events, each with its id; '-' for standard input."
        ),
    ] = None,
    type_: Annotated[EventType | None, typer.Option("--type", help="Event type.")] = None,
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency key (generated when omitted).")
    ] = None,
    item: Annotated[str | None, typer.Option()] = None,
    quantity: Annotated[str | None, typer.Option()] = None,
    unit_cost: Annotated[str | None, typer.Option()] = None,
    unit_price: Annotated[str | None, typer.Option()] = None,
    amount: Annotated[str | None, typer.Option()] = None,
    element: Annotated[str | None, typer.Option()] = None,
    scrapped: Annotated[str | None, typer.Option()] = None,
    reverses: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    order: Annotated[str | None, typer.Option(help="Production order id.")] = None,
    unit_value: Annotated[
        str | None, typer.Option(help="nrv: net realisable value per unit.")
    ] = None,
    work_center: Annotated[
        str | None, typer.Option(help="conversion, hours: the work center.")
    ] = None,
    hours: Annotated[str | None, typer.Option(help="conversion, hours: hours worked.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Post one event from flags, or many from JSON lines, in one transaction."""

    def go() -> None:
        store = Store(db, create=False)
        settings = store.settings()
        master = store.master()
        if file is not None:
            if type_ is not None:
                fail("give either --file or --type with its fields, not both", 2)
            suffix = Path(file).suffix.lower()
            if suffix in (streams.CSV, streams.PARQUET):
                fail(
                    f"{file}: post --file reads JSON lines; import a {suffix} file with "
                    f"backflush import {file}",
                    2,
                )
            read = _events_from_lines(file, master, settings)
        elif type_ is not None:
            raw: dict[str, Any] = {
                "type": type_.value,
                "date": date,
                "item": item,
                "quantity": quantity,
                "unit_cost": unit_cost,
                "unit_price": unit_price,
                "amount": amount,
                "element": element,
                "scrapped": scrapped,
                "reverses": reverses,
                "reason": reason,
                "order": order,
                "unit_value": unit_value,
                "work_center": work_center,
                "hours": hours,
            }
            raw = {k: v for k, v in raw.items() if v is not None}
            given_id = event_id or f"cli-{uuid.uuid4()}"
            where = "command line"
            read = [(where, build_event(raw, master, settings, where=where, default_id=given_id))]
        else:
            fail("nothing to post: give --type and the event's fields, or --file", 2)
        standards = Standards(settings, master)
        last = store.last_event()  # the standards stock is valued at: those of its date
        in_force = dt.date.min if last is None else standards.epoch(last)
        far = [
            (where, e, problem)
            for where, e in read
            if (problem := live_date_problem(e.date, standards, in_force=in_force)) is not None
        ]
        recorded = _recorded_ids(store, [e for _where, e, _problem in far])
        ahead = [
            f"{where}: event {event.id}: date: {problem}"
            for where, event, problem in far
            if event.id not in recorded
        ]
        if ahead:
            raise InputError(ahead)
        events = [event for _where, event in read]
        try:
            applied = store.post(events, recorded_by=cli_user())
        except PostingError as error:
            if file is None:
                raise
            raise _at_line(error, read) from None
        if as_json:
            print_json([{"id": e.id, "applied": a} for e, a in zip(events, applied, strict=True)])
        elif len(events) == 1:
            state = "applied" if applied[0] else "already recorded with the same content: no change"
            out.print(f"event {escape(events[0].id)}: {state}")
        else:
            _print_applied(applied)

    guarded(go, db=db)


def _at_line(error: PostingError, read: Sequence[tuple[str, m.Event]]) -> PostingError:
    """``error`` with the file and line of the event it refused (``post --file``)."""
    at = error.position
    if at is None or not 0 <= at < len(read) or read[at][1].id != error.event_id:
        return error
    found = type(error)(f"{read[at][0]}: {error}")
    found.event_id, found.position = error.event_id, at
    return found


def _events_from_lines(
    source: str, master: m.MasterData, settings: m.Settings
) -> list[tuple[str, m.Event]]:
    if source == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        lines = stdin if stdin is not None else (t.encode() for t in sys.stdin)
        return list(streams.read_json_lines("<stdin>", lines, master, settings))
    try:
        with Path(source).open("rb") as stream:
            return list(streams.read_json_lines(source, stream, master, settings))
    except OSError as error:
        raise InputError([f"{source}: cannot read: {error.strerror or error}"]) from None


@app.command()
def close(
    period: Annotated[str, typer.Argument(help="YYYY-MM.", show_default=False)],
    db: DbOption = DEFAULT_DB,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Idempotency key (default close-PERIOD).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Print the close checklist only; change nothing.")
    ] = False,
    drift: Annotated[
        str, typer.Option(help="--check: standards drift threshold (0.05: 5%).")
    ] = "0.05",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the period closed (with --check: the checklist) as JSON."
        ),
    ] = False,
) -> None:
    """Close a period: variances, disposal, lock (--check: the checklist, no change)."""
    from backflush.commands import close as procedure

    def go() -> None:
        try:
            end = period_bounds(period)[1]
        except ValueError:
            fail(f"period: expected YYYY-MM, got {period!r}", 2)
        if check:
            procedure.print_checklist(db, period, drift, as_json)
            return
        store = Store(db, create=False)
        book = store.load()
        done = book.closed.get(period)
        if done is None:
            raw = {"type": "close", "period": period, "date": end.isoformat()}
            event = build_event(
                raw,
                book.master,
                book.settings,
                where="command line",
                default_id=event_id or procedure.close_id(book, period),
            )
            applied = store.post([event], recorded_by=cli_user())[0]
            book = store.load()
            if applied:
                if as_json:
                    print_json(_closed_document(book, period, applied=True))
                else:
                    out.print(tables.variances_table(book))
                _warn_open_shortages(book)
                procedure.warn_older_exceptions(book, period)
                return
            done = book.closed.get(period)  # closed meanwhile by this very event
            if done is None:  # the id is a close that a reopen has undone
                undone = [r for r in book.reopened(period) if r.close_event == event.id]
                by_reopen = f" by {undone[-1].event}" if undone else ""
                fail(
                    f"close {event.id} of {period} was undone{by_reopen}; the period is open: "
                    "close it with a new id (or without --id)",
                    2,
                )
        by = done.close_event if done is not None else event_id or f"close-{period}"
        if as_json:
            print_json(_closed_document(book, period, applied=False))
            return
        out.print(tables.variances_table(book))
        out.print(f"period {period} was already closed by {escape(by)}: no change")

    guarded(go, db=db)


def _closed_document(book: Book, period: str, *, applied: bool) -> dict[str, Any]:
    """``period`` as the JSON document shows it (variances, close event, balances at close),
    and whether this close applied it (False: it was closed already)."""
    from backflush.reports.document import period_document

    return {"applied": applied, **period_document(book, period)}


def _warn_open_shortages(book: Book) -> None:
    """Consumption still waiting for stock was credited already: say so at close."""
    waiting = book.open_shortages()
    if waiting:
        value = sum(
            (
                v
                for item in {s.item for s in waiting}
                for (account, _), v in book.stock_value(item).items()
                if v < 0
            ),
            Decimal(0),
        )
        err.print(
            f"[yellow]warning:[/] {len(waiting)} backflush exception(s) still wait for stock "
            f"(inventory short by {money(-value, book.settings.currency)} at standard); "
            "see `backflush report --what exceptions`",
            soft_wrap=True,
        )


class ReportKind(StrEnum):
    summary = "summary"
    trial_balance = "trial-balance"
    valuation = "valuation"
    variances = "variances"
    journal = "journal"
    exceptions = "exceptions"
    orders = "orders"
    throughput = "throughput"
    statements = "statements"
    nrv = "nrv"
    margin = "margin"
    variance_analysis = "variance-analysis"
    flags = "flags"


#: A scenario file run in memory instead of the book in ``--db``.
RunFileOption = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="Run this scenario file instead of reading a book."),
]


@app.command()
def ledger(
    db: DbOption = DEFAULT_DB,
    file: RunFileOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: standard output).")
    ] = None,
) -> None:
    """The journal as a beancount ledger (bean-check, fava): accounts by type, elements as
    sub-accounts, the entry number, event id and item as metadata."""

    def go() -> None:
        if file is not None:
            scenario = read_scenario(file)
            book = run_scenario(scenario)
            settings, entries = scenario.settings, list(enumerate(book.entries(), 1))
        else:
            store = Store(db, create=False)
            try:
                settings, entries = store.settings(), store.numbered_entries()
            finally:
                store.close()
        text = beancount.ledger(settings, entries)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"{len(entries)} entries written to {escape(str(output))}")

    guarded(go, writes=False, db=db)


@app.command()
def report(
    ctx: typer.Context,
    db: DbOption = DEFAULT_DB,
    what: Annotated[ReportKind, typer.Option(help="Which report.")] = ReportKind.summary,
    period: Annotated[
        str | None,
        typer.Option(
            help="journal (and the entries of --json, --xlsx, --csv): one period (YYYY-MM)."
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(min=0, help="journal: at most this many entries on screen (0: all)."),
    ] = 1000,
    as_json: JsonOption = False,
    xlsx: Annotated[
        Path | None,
        typer.Option("--xlsx", help="Write the reports as an XLSX workbook, a sheet each."),
    ] = None,
    csv_folder: Annotated[
        Path | None,
        typer.Option("--csv", help="Write the reports as CSV files into this folder."),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the period report as one self-contained HTML file."),
    ] = None,
    first: Annotated[
        str | None,
        typer.Option("--from", help="Period reports (margin, variances, statements, ...): from."),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option(
            "--to", help="margin, variance-analysis: last period; trial-balance: at its end."
        ),
    ] = None,
    items: Annotated[
        list[str] | None,
        typer.Option(
            "--item", help="margin, variance-analysis, valuation: only this item (repeatable)."
        ),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(help="margin, variance-analysis, valuation: only this product family."),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(help="margin, variance-analysis, valuation: only items of this site."),
    ] = None,
    by: Annotated[
        By, typer.Option(help="variance-analysis: rows by type, item, element or work center.")
    ] = By.type,
) -> None:
    """Print the book's reports (or its JSON document, an XLSX workbook, CSV or HTML files)."""
    outputs = [
        flag
        for flag, given in (
            ("--json", as_json),
            ("--xlsx", xlsx is not None),
            ("--csv", csv_folder is not None),
            ("--html", html is not None),
        )
        if given
    ]
    if len(outputs) > 1:
        fail(f"{' and '.join(outputs)}: give one output at a time", 2)
    analysed = as_json and what in (ReportKind.margin, ReportKind.variance_analysis)
    on_screen = not (as_json or xlsx or html or csv_folder)
    for option, (flag, kinds) in REPORT_OPTIONS.items():
        takes = what in kinds and (on_screen or (analysed and option != "by"))
        if _given(ctx, option) and not takes:
            names = ", ".join(k.value for k in kinds)
            output = "" if on_screen else " written as JSON or to a file"
            fail(f"{flag} does not apply to --what {what.value}{output}; "
                 f"it is for --what {names}", 2)  # fmt: skip
    for name, value in (("--period", period), ("--from", first), ("--to", last)):
        if value is not None:
            check_period(name, value)
    # --period selects the journal's entries: on screen those of --what journal; in the JSON
    # document, the workbook and the CSV files the entries they hold (not the HTML page, nor
    # the margin and variance analysis documents, which hold no entries).
    if period is not None and (html or analysed or (on_screen and what is not ReportKind.journal)):
        fail(
            "--period does not apply here; it selects the journal's entries "
            "(--what journal, or --json, --xlsx, --csv); --from and --to select the periods "
            "of period reports",
            2,
        )
    selection = Selection(first, last, frozenset(items or ()), family, site)

    def go() -> None:
        store = Store(db, create=False)
        sums = PERIOD_SUMS_READ.get(what, PERIOD_SUMS)
        if as_json and what in (ReportKind.margin, ReportKind.variance_analysis):
            book = store.load(period_sums=sums)  # the sums kept per item: no journal lines
            found = margin_document if what is ReportKind.margin else variance_document
            print_json(found(book, selection))
            return
        if what is not ReportKind.journal and not (html or xlsx or csv_folder or as_json):
            # No journal lines needed: the summary's figures are kept per period and kind.
            if what is ReportKind.summary:
                # one transaction: the three agree
                book, figures, count = store.summary(period_sums=sums)
                print_report(tables.period_report(book, figures, count))
            else:
                book = store.load(period_sums=sums)
                print_report(_report_table(book, [], 0, what, selection, by))
            return
        if what is ReportKind.journal and limit and not (html or xlsx or csv_folder or as_json):
            book, page, total = store.journal_page(period, limit)
            print_report(tables.journal_table(book, [e for _, e in page], [n for n, _ in page]))
            if total > len(page):
                out.print(
                    f"the first {len(page):,} of {total:,} entries"
                    + (f" of {period}" if period else "")
                    + ": --limit 0 shows them all, --csv or --xlsx writes them to files"
                )
            return
        if html is not None:
            from backflush.reports.html import write_html  # matplotlib only when asked for

            book, _, count = store.summary()  # no journal lines: the sums kept by period
            write_html(book, count, html)
            out.print(f"period report written to {escape(str(html))}")
            return
        # one transaction: the three agree
        book, numbered, count = store.numbered_snapshot(period)
        entries = [entry for _, entry in numbered]
        if xlsx is not None:
            write_workbook(book, numbered, xlsx)
            out.print(f"reports written to {escape(str(xlsx))}")
            return
        if csv_folder is not None:
            written = write_csv(book, numbered, csv_folder)
            out.print(f"{len(written)} CSV files written to {escape(str(csv_folder))}")
            return
        if as_json:
            print_json(document(book, numbered))
        elif sum(len(e.lines) for e in entries) > plain.LARGE:  # the journal: not by Rich
            rows = tables.journal_rows(book, entries, [n for n, _ in numbered])
            header, right = tables.JOURNAL_HEADER, tables.JOURNAL_RIGHT
            plain.write_lines(out, plain.lines("Journal", header, right, rows))
        else:
            print_report(_report_table(book, numbered, count, what, selection, by))

    guarded(go, writes=False, db=db)


def print_report(report: RenderableType) -> None:
    """Print a report; its tables through :func:`plain.print_table` (fast for big ones)."""
    if isinstance(report, Group):
        for part in report.renderables:
            print_report(part)
    elif isinstance(report, Table):
        plain.print_table(out, report)
    else:
        out.print(report)


#: Options that only some reports take: parameter → (option, the reports that take it).
_RANGED = (
    ReportKind.margin,
    ReportKind.variance_analysis,
    ReportKind.statements,
    ReportKind.variances,
    ReportKind.throughput,
)
_BY_ITEM = (ReportKind.margin, ReportKind.variance_analysis, ReportKind.valuation)
REPORT_OPTIONS: dict[str, tuple[str, tuple[ReportKind, ...]]] = {
    "first": ("--from", _RANGED),
    "last": ("--to", (*_RANGED, ReportKind.trial_balance)),
    "items": ("--item", _BY_ITEM),
    "family": ("--family", _BY_ITEM),
    "site": ("--site", _BY_ITEM),
    "by": ("--by", (ReportKind.variance_analysis,)),
    "limit": ("--limit", (ReportKind.journal,)),
}


def check_period(option: str, value: str) -> None:
    """Stop with exit code 2 unless ``value`` is a period (YYYY-MM)."""
    try:
        if len(value) != 7:
            raise ValueError(value)
        period_bounds(value)
    except ValueError:
        fail(f"{option}: expected a period YYYY-MM, got {value!r}", 2)


def _report_table(
    book: Book,
    numbered: list[tuple[int, m.Entry]],
    count: int,
    what: ReportKind,
    selection: Selection,
    by: By,
) -> Any:
    entries = [entry for _, entry in numbered]
    selection.check(book.master)
    selected = None if selection.every_item else partial(selection.covers, master=book.master)
    periods = selection.periods(
        book, throughput_periods(book) if what is ReportKind.throughput else None
    )
    renderers: dict[ReportKind, Callable[[], Any]] = {
        ReportKind.summary: lambda: tables.period_report(book, entries, count),
        ReportKind.trial_balance: lambda: tables.trial_balance(book, selection.last),
        ReportKind.valuation: lambda: tables.valuation_table(book, selected),
        ReportKind.variances: lambda: tables.variances_table(book, periods),
        ReportKind.journal: lambda: tables.journal_table(book, entries, [n for n, _ in numbered]),
        ReportKind.exceptions: lambda: tables.exceptions_table(book),
        ReportKind.orders: lambda: tables.orders_table(book),
        ReportKind.throughput: lambda: throughput_table(book, periods),
        ReportKind.statements: lambda: statements_table(book, periods),
        ReportKind.nrv: lambda: tables.nrv_table(book),
        ReportKind.margin: lambda: margin_table(book, selection),
        ReportKind.variance_analysis: lambda: variance_analysis_table(book, selection, by),
        ReportKind.flags: lambda: flags_table(red_flags(book)),
    }
    return renderers[what]()


@app.command()
def chart(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Write here: FILE.png or FILE.svg.")
    ],
    what: Annotated[Chart, typer.Option(help="Which chart.")] = Chart.waterfall,
    period: Annotated[
        str | None, typer.Option(help="waterfall: the period (YYYY-MM; default the last).")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Draw a chart of the book as PNG or SVG (the format from the file's suffix): the variance
    waterfall of a period, the margin trend, or inventory against cost of goods sold."""

    def go() -> None:
        fmt = suffix_format(output)
        if fmt is None:
            fail(f"{output}: give a file ending in .png or .svg", 2)
        if period is not None and what is not Chart.waterfall:
            fail("--period is for the waterfall chart only", 2)
        if period is not None:
            check_period("--period", period)
        store = Store(db, create=False)
        try:
            book = store.load()
        finally:
            store.close()
        try:
            data = chart_bytes(book, what, fmt, period)  # matplotlib is imported only here
        except ValueError as error:
            fail(str(error), 2)
        output.write_bytes(data)
        out.print(f"{what.value} chart written to {escape(str(output))}")

    guarded(go, writes=False, db=db)


@app.command()
def flags(
    db: DbOption = DEFAULT_DB,
    file: RunFileOption = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            "-t",
            help="NAME=VALUE over a default (e.g. variance_share=3%); repeat for more.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Red flags: unstable scrap, frequent BOM changes, large or recurring variances,
    inventory outgrowing sales, completions bunched at period end, standards drifting from
    actual cost, exceptions piling up; each with its threshold and figures (exit code 0)."""

    def go() -> None:
        try:
            limits = parse_thresholds(threshold or [])
        except ValueError as error:
            fail(str(error), 2)
        if file is not None:
            scenario = read_scenario(file)
            try:
                book = run_scenario(scenario)
            except PostingError as error:
                raise scenario.where(error) from None
        else:
            store = Store(db, create=False)
            try:
                book = store.snapshot()[0]
            finally:
                store.close()
        found = red_flags(book, limits)
        if as_json:
            print_json(flags_document(found, limits))
        else:
            print_report(flags_table(found))

    guarded(go, writes=False, db=db)


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="The new SQLite file to write.", show_default=False)],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Copy a SQLite book to a new file, consistent at one moment, while others go on posting
    (a copy of the file alone can miss what its write-ahead log holds). PostgreSQL: pg_dump."""

    def go() -> None:
        store = Store(db, create=False)
        try:
            store.backup(file)
        finally:
            store.close()
        out.print(f"backed up {display_url(db)} to {file}")

    guarded(go, writes=False, db=db)


@app.command()
def copy(
    target: Annotated[
        str,
        typer.Argument(
            help="The new book: a PostgreSQL URL (an empty database) or a new SQLite file.",
            show_default=False,
        ),
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Copy a book into a new database: to PostgreSQL when a plant outgrows one PC (or
    back to a SQLite file), consistent at one moment while others go on posting. Every row
    is read back from the copy and compared before it is committed; a copy that differs is
    not written. Web sign-ins are not copied (API tokens are)."""
    from backflush.store.copy import copy_book

    def go() -> None:
        source = Store(db, create=False)
        try:
            with _counting() as progress:
                task = progress.add_task("copying rows", total=None)
                copied = copy_book(
                    source,
                    target,
                    on_progress=lambda done, total: progress.update(
                        task, completed=done, total=total
                    ),
                    recorded_by=cli_user(),
                )
        finally:
            source.close()
        tables = sum(1 for n in copied.rows.values() if n)
        out.print(
            f"copied {escape(display_url(db))} to {escape(display_url(target))}:\n"
            f"  {copied.total:,} rows of {tables} tables, each read back and compared "
            f"(digest {copied.digest})"
        )

    guarded(go, db=db)


@app.command()
def demo(
    db: Annotated[str, typer.Option("--db", help="Where to build the demo book.")] = DEMO_DB,
) -> None:
    """Build the Northshore Devices demo book on SQLite (two months posted and closed)."""

    def go() -> None:
        url = database_url(db)
        path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None
        if path is not None and path.exists():
            if db != DEMO_DB:
                fail(
                    f"{path} exists; the demo builds a new book (remove it or pick another --db)",
                    2,
                )
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        text = resources.files("backflush.data").joinpath("northshore.yaml").read_text("utf-8")
        scenario = parse_scenario(text, "northshore.yaml (demo)")
        store = Store(db)
        _import(store, scenario)
        book, figures, count = store.summary()
        print_report(tables.period_report(book, figures, count))
        out.print(
            f"\nThe demo book is in [bold]{escape(store.display_url)}[/]. Try:\n"
            f"  backflush report --db {escape(db)} --what journal --period 2026-01\n"
            f"  backflush report --db {escape(db)} --what margin\n"
            f"  backflush report --db {escape(db)} --html period.html\n"
            f"  backflush report --db {escape(db)} --json"
        )

    guarded(go, db=db)


#: The exit code of a command whose reader closed the pipe (``report ... | head``): Rich's
#: (its consoles end so when they find the pipe closed) and Python's documented choice.
CLOSED_PIPE = 1


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        # The reader has what it wanted: no message; output left unflushed goes nowhere (or
        # Python would report the same broken pipe again when it flushes at exit).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(CLOSED_PIPE)


# ---------------------------------------------------------------- standards and master data
# (backflush.commands.standards: picklist, bom, where-used, standards ..., master ...)
from backflush.commands import standards as _standards_commands  # noqa: E402

_standards_commands.register(app)
# ---------------------------------------------------------------- end of standards commands

# ---------------------------------------------------------------- close procedure (issue 4)
# (backflush.commands.close: reopen, exceptions list | retry | resolve; close --check)
from backflush.commands import close as _close_commands  # noqa: E402

_close_commands.register(app)
# ---------------------------------------------------------------- end of close procedure

# ---------------------------------------------------------------- drill-down (issue 5)
# (backflush.commands.explain: explain EVENT_ID | --entry N)
from backflush.commands import explain as _explain_command  # noqa: E402

_explain_command.register(app)
# ---------------------------------------------------------------- end of drill-down

# ---------------------------------------------------------------- the HTTP API (issue 6)
# (backflush.commands.serve: serve; token create | list | revoke)
from backflush.commands import serve as _serve_commands  # noqa: E402

_serve_commands.register(app)
# ---------------------------------------------------------------- end of the HTTP API


def _one_line_summaries(commands: typer.Typer) -> None:
    """A command's summary (its docstring's first paragraph) joined into one line: in the
    command list, Typer's rich help keeps the docstring's line breaks, which broke
    sentences in the middle; the command's own help joins them already."""
    for info in commands.registered_commands:
        doc = info.callback.__doc__ if info.callback is not None else None
        if info.help is None and doc:
            summary, gap, rest = inspect.cleandoc(doc).partition("\n\n")
            info.help = summary.replace("\n", " ") + gap + rest
    for group in commands.registered_groups:
        if group.typer_instance is not None:
            _one_line_summaries(group.typer_instance)


_one_line_summaries(app)
