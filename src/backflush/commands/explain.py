"""``backflush explain``: drill down from a journal figure to the event that posted it, the BOM
version and standard used, and the component quantities (the audit trail)."""

from __future__ import annotations

from typing import Annotated

import typer

from backflush.cli import DEFAULT_DB, DbOption, JsonOption, fail, guarded, out, print_json
from backflush.reports.drilldown import (
    NotFound,
    drilldown,
    drilldown_document,
    drilldown_report,
    entry_drilldown,
    summary_entry_document,
    summary_entry_report,
)
from backflush.store.repository import Store, SummaryEntry


def explain(
    event: Annotated[
        str | None,
        typer.Argument(
            help="Event id (the event column of `report --what journal`).", show_default=False
        ),
    ] = None,
    entry: Annotated[
        int | None,
        typer.Option(
            "--entry", help="Journal entry number (the no. column) instead.", show_default=False
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Drill down from an entry or event: the entries it posted, the BOM version and standard
    used, the stock it moved, and a check that the amounts are quantity x standard."""
    if (event is None) == (entry is None):
        fail("give an event id or --entry N (one of them)", 2)

    def go() -> None:
        store = Store(db, create=False)
        try:
            found = (
                drilldown(store, event=event) if entry is None else entry_drilldown(store, entry)
            )
        except NotFound as error:
            fail(str(error.args[0]), 2)
        finally:
            store.close()
        if isinstance(found, SummaryEntry):  # a summary entry: its lines and their events
            if as_json:
                print_json(summary_entry_document(found))
            else:
                out.print(summary_entry_report(found))
        elif as_json:
            print_json(drilldown_document(found))
        else:
            out.print(drilldown_report(found))

    guarded(go, writes=False, db=db)


def register(app: typer.Typer) -> None:
    """Add this command to the ``backflush`` app."""
    app.command("explain")(explain)
