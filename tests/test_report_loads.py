"""Reports of the book's state now are read without the stock moved per period (the most of
a large book's load): on every example book they print exactly what they print with it, and a
report that needs it, given a book loaded without it, fails rather than print from nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from backflush.api.documents import ReportKind, report_document
from backflush.book import NotLoaded
from backflush.cli import By, _report_table
from backflush.formats.scenario import read_scenario
from backflush.reports import PERIOD_SUMS_READ
from backflush.reports.analysis import Selection
from backflush.store.repository import PERIOD_SUMS, Store
from helpers import EXAMPLES

BOOKS = sorted(EXAMPLES.glob("*.yaml"))
EVERY_ITEM = Selection(None, None, frozenset(), None, None)


def _printed(table: object) -> str:
    console = Console(file=io.StringIO(), width=240, color_system=None)
    console.print(table)
    written = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(written, str)
    return written


@pytest.mark.parametrize("scenario", BOOKS, ids=[p.stem for p in BOOKS])
def test_a_report_read_without_the_period_sums_prints_what_it_prints_with_them(
    scenario: Path, tmp_path: Path
) -> None:
    found = read_scenario(scenario)
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        store.import_scenario(found.settings, found.master, found.events)
        whole = store.load()
        lighter = {kind: store.load(period_sums=sums) for kind, sums in PERIOD_SUMS_READ.items()}
    finally:
        store.close()
    assert whole.flows  # the examples move stock: a load without the sums leaves something out
    periods = EVERY_ITEM.periods(whole)
    for name, book in sorted(lighter.items()):
        kind = ReportKind(name)  # on screen, and the API's JSON document
        expected = _printed(_report_table(whole, [], 0, kind, EVERY_ITEM, By.type))
        assert _printed(_report_table(book, [], 0, kind, EVERY_ITEM, By.type)) == expected
        document = report_document(whole, kind, EVERY_ITEM, periods)
        assert report_document(book, kind, EVERY_ITEM, periods) == document


@pytest.fixture(scope="module")
def example_books(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every example book in a SQLite file of its own (their URLs)."""
    folder = tmp_path_factory.mktemp("examples")
    urls = []
    for scenario in BOOKS:
        found = read_scenario(scenario)
        url = f"sqlite:///{folder / scenario.stem}.db"
        store = Store(url)
        try:
            store.import_scenario(found.settings, found.master, found.events)
        finally:
            store.close()
        urls.append(url)
    return urls


@pytest.mark.parametrize(
    ("kind", "name"), [(k, name) for k, sums in PERIOD_SUMS_READ.items() for name in sums]
)
def test_each_sum_the_table_names_for_a_report_is_one_it_reads(
    kind: str, name: str, example_books: list[str]
) -> None:
    """Left out, a sum the table names fails the report (on screen or as its JSON document)
    on some example book rather than let it print from nothing: the table names no sum a
    report does not need."""
    what = PERIOD_SUMS[name]
    report = ReportKind(kind)
    failed = 0
    for url in example_books:
        store = Store(url, create=False)
        try:
            book = store.load(period_sums=set(PERIOD_SUMS_READ[kind]) - {name})
        finally:
            store.close()
        try:
            _report_table(book, [], 0, report, EVERY_ITEM, By.type)
        except NotLoaded as refused:
            assert str(refused) == f"{what} was not loaded"
            failed += 1
            with pytest.raises(NotLoaded, match=rf"^{what} was not loaded$"):
                report_document(book, report, EVERY_ITEM, EVERY_ITEM.periods(book))
    assert failed, f"{kind} printed on every example book without {what}"


def test_a_book_loaded_without_a_sum_refuses_to_read_it(tmp_path: Path) -> None:
    found = read_scenario(EXAMPLES / "northshore.yaml")
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        store.import_scenario(found.settings, found.master, found.events)
        lighter = store.load(period_sums=())
    finally:
        store.close()
    with pytest.raises(NotLoaded, match=r"^the stock moved per period was not loaded"):
        lighter.on_hand_through("2026-01")


def test_sums_a_book_does_not_hold_are_refused_by_name(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'book.db'}")
    try:
        with pytest.raises(ValueError, match=r"no such sums of stock moved per period: flow$"):
            store.load(period_sums=("flow",))
    finally:
        store.close()
