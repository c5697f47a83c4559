"""Commands over standards and master data: pick lists, indented BOMs, where-used, cost
rollups, comparing and releasing cost sets, master data import and export.

Master data comes from a book (``--db``, the same default as every other command) or from a
scenario file (``--file``). Refused input (an unknown item or cost set, a bad date or
quantity, master data that does not validate) exits with code 2 and a message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from backflush.book import Book
from backflush.cli import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    RunFileOption,
    cli_user,
    fail,
    guarded,
    out,
    print_json,
    print_report,
)
from backflush.domain import model as m
from backflush.domain.money import decimals, fmt
from backflush.engine.standards import Standards
from backflush.formats.inputs import (
    QUANTITY_DECIMALS,
    QUANTITY_LIMIT,
    to_date,
    to_decimal,
    too_large,
)
from backflush.formats.scenario import read_scenario
from backflush.formats.tabular import load_master_tables, write_master_tables
from backflush.reports import accuracy
from backflush.reports import standards as reports
from backflush.reports import variants as comparison
from backflush.reports.document import money
from backflush.run import run_scenario
from backflush.store.repository import Store

#: The name ``--against`` (and the compared set) take for the standards in force.
CURRENT = "current"

standards_app = typer.Typer(
    name="standards",
    help="Cost rollups, cost set comparison and release.",
    no_args_is_help=True,
)
master_app = typer.Typer(
    name="master",
    help="Master data (items, BOMs, work centers, routings, cost sets) as CSV or XLSX.",
    no_args_is_help=True,
)

FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        "-f",
        help="Read master data from this scenario file instead of the book.",
        show_default=False,
    ),
]
DateOption = Annotated[
    str | None,
    typer.Option("--date", help="Standards effective on this date (YYYY-MM-DD); default: today."),
]
CostSetOption = Annotated[
    str | None,
    typer.Option(
        "--cost-set", help="Roll up with this cost set's material costs and rates on top."
    ),
]


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Master data and settings read from a book or a scenario file."""

    settings: m.Settings
    master: m.MasterData
    #: The book (None: a scenario file): its stock is revalued by a release.
    book: Book | None = None


def load_source(db: str, file: Path | None) -> Source:
    if file is not None:
        scenario = read_scenario(file)
        return Source(scenario.settings, scenario.master)
    store = Store(db, create=False)
    try:
        book = store.load()
    finally:
        store.close()
    return Source(book.settings, book.master, book)


def parse_date(value: str | None, option: str = "--date") -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return to_date(value)
    except ValueError as error:
        fail(f"{option}: {error}", 2)


def parse_quantity(value: str) -> Decimal:
    try:
        quantity = to_decimal(value)
    except ValueError as error:
        fail(f"QTY: {error}", 2)
    problem = too_large(quantity, QUANTITY_LIMIT)
    if quantity <= 0:
        problem = f"expected more than zero, got {value}"
    elif problem is None and decimals(quantity) > QUANTITY_DECIMALS:
        problem = f"at most {QUANTITY_DECIMALS} decimals, got {value}"
    if problem is not None:
        fail(f"QTY: {problem}", 2)
    return quantity


def cost_set_of(master: m.MasterData, name: str) -> m.CostSet:
    found = master.cost_sets.get(name)
    if found is None:
        known = ", ".join(sorted(master.cost_sets)) or "none"
        fail(f"unknown cost set {name!r} (cost sets: {known})", 2)
    return found


def standards_of(source: Source, cost_set: str | None) -> Standards:
    """The standards in force (``cost_set`` None or ``current``), or with a cost set on top."""
    if cost_set is None or cost_set == CURRENT:
        if source.book is not None:
            return source.book.standards
        return Standards(source.settings, source.master)
    return Standards(source.settings, source.master, cost_set_of(source.master, cost_set))


def held_quantities(book: Book) -> dict[str, Decimal]:
    """Units whose standard value the book holds, per item: what a change of standards
    revalues (on hand and in process, less consumption waiting in the shortage queue)."""
    return {item: sum(book.held(item), Decimal(0)) for item in book.stocked_items()}


# ---------------------------------------------------------------- top-level commands


def picklist(
    item: Annotated[str | None, typer.Argument(help="Item to make.", show_default=False)] = None,
    quantity: Annotated[
        str | None, typer.Argument(metavar="QTY", help="Units to make.", show_default=False)
    ] = None,
    order: Annotated[
        str | None, typer.Option(help="A production order: what is still to pick for it.")
    ] = None,
    date: DateOption = None,
    db: DbOption = DEFAULT_DB,
    file: FileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Components to pick for QTY units of ITEM (or for a production order) by flush method,
    at standard (scrap and yields included, phantoms exploded)."""

    def go() -> None:
        on = parse_date(date)
        if order is not None:
            if item is not None or quantity is not None:
                fail("give either ITEM QTY or --order, not both", 2)
            book = load_book(db, file)
            found_order = book.orders.get(order)
            if found_order is None:
                known = ", ".join(sorted(book.orders)) or "none"
                fail(f"unknown production order {order!r} (orders: {known})", 2)
            found = reports.order_pick_list(book.standards, found_order, on)
            currency = book.settings.currency
        else:
            if item is None or quantity is None:
                fail("give ITEM and QTY, or --order", 2)
            qty = parse_quantity(quantity)
            source = load_source(db, file)
            reports.require_item(source.master, item)
            if source.master.items[item].kind is m.Kind.MATERIAL:
                fail(f"{item} is a purchased material: it has no components to pick", 2)
            found = reports.pick_list(standards_of(source, None), item, qty, on)
            currency = source.settings.currency
        if as_json:
            print_json(reports.pick_list_document(found))
        else:
            print_report(reports.pick_list_table(found, currency))

    guarded(go, writes=False, db=db)


def load_book(db: str, file: Path | None) -> Book:
    """The book with its production orders: a store's, or a scenario file run in memory."""
    if file is not None:
        return run_scenario(read_scenario(file))
    store = Store(db, create=False)
    try:
        return store.load()
    finally:
        store.close()


def bom(
    item: Annotated[str, typer.Argument(help="Item whose BOM to show.", show_default=False)],
    date: DateOption = None,
    cost_set: CostSetOption = None,
    db: DbOption = DEFAULT_DB,
    file: FileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Indented multi-level BOM of ITEM with each line's cost contribution, the routing
    operations of every level, and the standard by element (this level vs lower levels)."""

    def go() -> None:
        on = parse_date(date)
        source = load_source(db, file)
        reports.require_item(source.master, item)
        found = reports.indented_bom(standards_of(source, cost_set), item, on)
        if as_json:
            print_json({"cost_set": cost_set, **reports.indented_bom_document(found)})
        else:
            print_report(reports.indented_bom_table(found, source.settings.currency))

    guarded(go, writes=False, db=db)


def where_used(
    component: Annotated[str, typer.Argument(help="Component item.", show_default=False)],
    date: DateOption = None,
    db: DbOption = DEFAULT_DB,
    file: FileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every item that uses COMPONENT, directly or through other levels, with the path."""

    def go() -> None:
        on = parse_date(date)
        source = load_source(db, file)
        rows = reports.where_used(source.master, component, on)
        if as_json:
            print_json(reports.where_used_document(component, on, rows))
        elif not rows:
            out.print(f"{escape(component)} is on no BOM effective on {on.isoformat()}")
        else:
            print_report(reports.where_used_table(component, on, rows))

    guarded(go, writes=False, db=db)


def bom_accuracy(
    period: Annotated[
        str | None,
        typer.Option(help="Period (YYYY-MM); default: the latest with stock moved."),
    ] = None,
    threshold: Annotated[
        str, typer.Option(help="Flag real usage differing from the BOM's by more than this.")
    ] = str(accuracy.DEFAULT_THRESHOLD),
    db: DbOption = DEFAULT_DB,
    file: RunFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Real usage of each component (BOM usage less count adjustments) against the BOMs, per
    period; names the BOM lines of components whose usage is off by more than THRESHOLD."""

    def go() -> None:
        try:
            limit = to_decimal(threshold)
        except ValueError as error:
            fail(f"--threshold: {error}", 2)
        if limit < 0:
            fail(f"--threshold: expected zero or more, got {threshold}", 2)
        if file is not None:
            book = run_scenario(read_scenario(file))
        else:
            store = Store(db, create=False)
            try:
                book = store.load()
            finally:
                store.close()
        chosen = period or max(book.flows, default=None)
        if chosen is None:
            fail("no stock has moved in this book yet", 2)
        if chosen not in book.flows:
            moved = ", ".join(sorted(book.flows))
            fail(f"--period: no stock moved in {chosen} (periods: {moved})", 2)
        found = accuracy.bom_accuracy(book, chosen, limit)
        if as_json:
            print_json(accuracy.accuracy_document(found))
        else:
            print_report(accuracy.accuracy_table(found))

    guarded(go, writes=False, db=db)


def variants(
    file: Annotated[Path, typer.Argument(help="Scenario file.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Run FILE's events under every trigger policy side by side: inventory, stock off the
    books, COGS, margin, income, journal size; and each variant against sequential costing."""

    def go() -> None:
        scenario = read_scenario(file)
        found = comparison.compare_variants(scenario)
        currency = scenario.settings.currency
        if as_json:
            print_json(comparison.variants_document(found, currency))
            return
        out.print(comparison.variants_table(found, currency))
        for line in comparison.explain(found, currency):
            out.print(f"  {escape(line)}")
        for v in found:
            if v.refused:
                out.print(f"  {v.policy.value}: refused: {escape(v.refused)}")

    guarded(go, writes=False)


# ---------------------------------------------------------------- backflush standards ...


@standards_app.command("rollup")
def rollup(
    date: DateOption = None,
    cost_set: CostSetOption = None,
    items: Annotated[
        list[str] | None,
        typer.Option("--item", help="Only this item (repeat for more); default: every item."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    file: FileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Standard cost per item: purchased material, conversion this level and lower levels by
    element, total."""

    def go() -> None:
        on = parse_date(date)
        source = load_source(db, file)
        rows = reports.rollup(standards_of(source, cost_set), on, items or None)
        if as_json:
            print_json(reports.rollup_document(on, rows, cost_set))
        else:
            print_report(reports.rollup_table(on, rows, source.settings.currency, cost_set))

    guarded(go, writes=False, db=db)


@standards_app.command("compare")
def compare(
    cost_set: Annotated[
        str, typer.Argument(metavar="SET", help="Cost set to compare.", show_default=False)
    ],
    against: Annotated[
        str, typer.Option("--against", help="A cost set, or 'current': the standards in force.")
    ] = CURRENT,
    date: DateOption = None,
    all_items: Annotated[
        bool, typer.Option("--all", help="Every item, also those whose standard is the same.")
    ] = False,
    db: DbOption = DEFAULT_DB,
    file: FileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Standards under SET against the standards in force (or another set), item by item;
    with a book, the revaluation releasing SET would post on the stock held now."""

    def go() -> None:
        on = parse_date(date)
        source = load_source(db, file)
        b = standards_of(source, cost_set)
        a = standards_of(source, against)
        quantities = held_quantities(source.book) if source.book is not None else None
        found = reports.compare(
            a, b, on, quantities, all_items=all_items, a_name=against, b_name=cost_set
        )
        if as_json:
            print_json(reports.comparison_document(found))
        elif not found.rows:
            out.print(f"no standard differs between {escape(against)} and {escape(cost_set)}")
        else:
            print_report(reports.comparison_table(found))

    guarded(go, writes=False, db=db)


@standards_app.command("release")
def release(
    cost_set: Annotated[
        str, typer.Argument(metavar="SET", help="Cost set to release.", show_default=False)
    ],
    effective: Annotated[
        str,
        typer.Option(
            "--effective", help="First day of the new standards (YYYY-MM-DD).", show_default=False
        ),
    ],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Release SET: its material costs and rates become the book's standards from
    --effective on. Prints the revaluation of the stock held now, which the book posts with
    the first event dated on or after that day."""

    def go() -> None:
        on = parse_date(effective, "--effective")
        store = Store(db, create=False)
        try:
            book = store.load()
            cost_set_of(book.master, cost_set)
            released = store.release_cost_set(cost_set, on, recorded_by=cli_user())
        finally:
            store.close()
        before = book.master
        after = dataclasses.replace(before, cost_sets={**before.cost_sets, cost_set: released})
        found = reports.compare(
            Standards(book.settings, before),
            Standards(book.settings, after),
            on,
            held_quantities(book),
            a_name="before",
            b_name=cost_set,
        )
        if as_json:
            print_json(
                {
                    "released": {
                        "name": released.name,
                        "effective": on.isoformat(),
                        "materials": {i: fmt(c) for i, c in released.materials},
                        "rates": [
                            {"work_center": w, "element": e, "rate": fmt(r)}
                            for w, e, r in released.rates
                        ],
                    },
                    "comparison": reports.comparison_document(found),
                }
            )
            return
        changes = [f"{i} {fmt(c)}" for i, c in released.materials]
        changes += [f"{w} {e} {fmt(r)}/h" for w, e, r in released.rates]
        out.print(
            f"cost set [bold]{escape(cost_set)}[/] released, effective {on.isoformat()}: "
            f"{escape(', '.join(changes))}",
            soft_wrap=True,
        )
        if found.rows:
            print_report(reports.comparison_table(found))
        else:
            out.print("no standard changes")
        out.print(
            f"stock on hand is revalued by {found.currency} "
            f"{money(found.posted, found.currency)} on the books when the first event "
            f"dated on or after {on.isoformat()} is posted",
            soft_wrap=True,
        )

    guarded(go, db=db)


# ---------------------------------------------------------------- backflush master ...


def _counts(master: m.MasterData) -> dict[str, int]:
    return {
        "items": len(master.items),
        "BOM versions": sum(len(v) for v in master.boms.values()),
        "work centers": len(master.work_centers),
        "routing versions": sum(len(v) for v in master.routings.values()),
        "cost sets": len(master.cost_sets),
    }


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {what if n != 1 else what[:-1]}" for what, n in counts.items())


@master_app.command("import")
def master_import(
    path: Annotated[
        Path,
        typer.Argument(help="Directory of CSV files or an .xlsx workbook.", show_default=False),
    ],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Add master data from CSV files or a workbook to the book, in one transaction (what is
    already there must be identical; new standards take effect after the last event)."""

    def go() -> None:
        store = Store(db, create=False)
        try:
            settings = store.settings()
            known = store.master()
            master = load_master_tables(path, settings, known, store.last_event())
            before = _counts(known)
            store.import_scenario(settings, master, (), recorded_by=cli_user())
            after = _counts(store.master())
        finally:
            store.close()
        new = {what: after[what] - before[what] for what in after}
        out.print(
            f"read {_describe(_counts(master))} from {escape(str(path))}; "
            f"new in the book: {_describe(new)}",
            soft_wrap=True,
        )

    guarded(go, db=db)


@master_app.command("export")
def master_export(
    path: Annotated[
        Path,
        typer.Argument(
            help="Directory for CSV files (created when missing), or a file ending in .xlsx.",
            show_default=False,
        ),
    ],
    db: DbOption = DEFAULT_DB,
    file: FileOption = None,
) -> None:
    """Write the master data of the book (or of a scenario file) as CSV files or a workbook."""

    def go() -> None:
        source = load_source(db, file)
        write_master_tables(source.master, path)  # an OSError names the path: exit 2
        out.print(f"wrote {_describe(_counts(source.master))} to {escape(str(path))}")

    guarded(go, writes=False, db=db)


@master_app.command("log")
def master_log(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Who changed the book's master data and standards, and when: each write of master data
    and each release of a cost set, oldest first (the command line records cli:<login name>,
    the API the token's name)."""

    def go() -> None:
        store = Store(db, create=False)
        try:
            found = store.master_changes()
        finally:
            store.close()
        if as_json:
            rows = [
                {"recorded_at": a.isoformat(), "recorded_by": b, "change": c} for a, b, c in found
            ]
            print_json({"master_changes": rows})
            return
        table = Table(title="Master data changes")
        for column in ("recorded at (UTC)", "by", "change"):
            table.add_column(column)
        for at, by, change in found:
            table.add_row(at.strftime("%Y-%m-%d %H:%M:%S"), escape(by or ""), escape(change))
        out.print(table)

    guarded(go, writes=False, db=db)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``backflush`` app."""
    app.command("picklist")(picklist)
    app.command("bom")(bom)
    app.command("where-used")(where_used)
    app.command("bom-accuracy")(bom_accuracy)
    app.command("variants")(variants)
    app.add_typer(standards_app, name="standards")
    app.add_typer(master_app, name="master")
