"""The bulk path of ``backflush import`` (issue 7): events streamed from JSON lines, CSV and
Parquet into a book that holds its master data, in one transaction, in batches, with memory
that does not grow with the number of events. Each format gives exactly the book the same
events give through a scenario import; a bad row or a refused event writes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import gc
import json
import tracemalloc
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from backflush.book import Book, ConflictError
from backflush.cli import app
from backflush.domain import model as m
from backflush.engine.flush import PostingError
from backflush.formats import streams
from backflush.formats.inputs import InputError
from backflush.formats.scenario import (
    Scenario,
    default_id,
    load_yaml,
    parse_scenario,
    strip_lines,
)
from backflush.store import repository
from backflush.store.repository import Imported, Store, StoreError, event_from_payload
from helpers import EXAMPLE_NAMES, EXAMPLES, dump_tables
from test_kept_book import state

FORMATS = ("jsonl", "csv", "parquet")

PLANT = """\
book: {name: Stream plant, currency: USD, triggers: purchase+completion, shortage: reject}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: K, kind: material, standard_cost: "0.50"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "1.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "3"}, {component: K, quantity: "2"}]}
"""


# ---------------------------------------------------------------- writing event files


def _text(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def write_events(path: Path, rows: Sequence[dict[str, Any]], *, row_group: int = 3) -> Path:
    """``rows`` (raw events) as the file ``path`` names: JSON lines, CSV (header: the union
    of fields, an empty cell for an absent one) or Parquet (the same columns, all strings,
    small row groups so that a file is read in several batches)."""
    texts = [{k: _text(v) for k, v in row.items()} for row in rows]
    columns = list(dict.fromkeys(k for row in texts for k in row))
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in texts), encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(columns)
            writer.writerows([[row.get(c, "") for c in columns] for row in texts])
    else:
        table = pa.table({c: pa.array([row.get(c) for row in texts], pa.string()) for c in columns})
        pq.write_table(table, path, row_group_size=row_group)
    return path


def example(name: str) -> tuple[Scenario, list[dict[str, Any]]]:
    """An example scenario and its raw events (as written in its file, each with its id: the
    one the scenario gives an event without one)."""
    path = EXAMPLES / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    raws = strip_lines(load_yaml(text, str(path)).get("events") or [])
    named = [{"id": default_id(str(path), n), **raw} for n, raw in enumerate(raws, 1)]
    return parse_scenario(text, str(path)), named


def plant_events(count: int, *, first: int = 0) -> list[dict[str, str]]:
    """``count`` events of a small steady plant (purchases, then completions and sales of
    what was bought), every day of January: what a large plant does, in small."""
    found: list[dict[str, str]] = []
    for n in range(first, first + count):
        day = f"2026-01-{n % 28 + 1:02d}"
        step = n % 4
        if step == 0:
            raw = {"type": "purchase", "item": "M", "quantity": "3", "unit_cost": "2.05"}
        elif step == 1:
            raw = {"type": "purchase", "item": "K", "quantity": "2", "unit_cost": "0.50"}
        elif step == 2:
            raw = {"type": "completion", "item": "F", "quantity": "1"}
        else:
            raw = {"type": "sale", "item": "F", "quantity": "1", "unit_price": "12.00"}
        found.append({"id": f"e{n}", "date": day, **raw})
    return found


# ---------------------------------------------------------------- books


def master_book(url: str, scenario: Scenario) -> Store:
    """A book holding ``scenario``'s settings and master data, no events."""
    store = Store(url)
    store.import_scenario(scenario.settings, scenario.master, [])
    return store


def stream(store: Store, path: Path, *, batch: int = 5000) -> Imported:
    return store.import_events(
        lambda settings, master: streams.read_events(path, master, settings), batch=batch
    )


@pytest.fixture
def other_url(db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second new book on the same database system as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = cluster.create_database("o")
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


@pytest.fixture
def plant_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'plant.db'}"


# ---------------------------------------------------------------- the same book


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_a_stream_gives_the_book_a_scenario_import_gives(
    name: str, fmt: str, db_url: str, other_url: str, tmp_path: Path
) -> None:
    """Every example's events streamed two at a time (batch boundaries everywhere: reversals,
    retries, write-offs and reopens of events in earlier batches) give, table for table and
    row for row, the book the scenario import gives."""
    scenario, raws = example(name)
    reference = Store(db_url)
    reference.import_scenario(scenario.settings, scenario.master, scenario.events)
    store = master_book(other_url, scenario)
    path = write_events(tmp_path / f"{name}.{fmt}", raws)
    imported = stream(store, path, batch=2)
    assert imported == Imported(len(scenario.events), 0)
    assert dump_tables(store, times=False) == dump_tables(reference, times=False)


def test_batch_size_does_not_change_the_book(tmp_path: Path) -> None:
    scenario = parse_scenario(PLANT)
    path = write_events(tmp_path / "plant.jsonl", plant_events(203))
    dumps = []
    for batch in (1, 7, 5000):
        store = master_book(f"sqlite:///{tmp_path / f'b{batch}.db'}", scenario)
        assert stream(store, path, batch=batch) == Imported(203, 0)
        dumps.append(dump_tables(store, times=False))
    assert dumps[0] == dumps[1] == dumps[2]
    assert len(dumps[0]["events"]) == 203


def test_json_numbers_are_exact_decimals(plant_url: str, tmp_path: Path) -> None:
    """A decimal written as a JSON number is read as the Decimal it spells (a float would
    make 2.675 2.67499999...); an integer too."""
    path = tmp_path / "numbers.jsonl"
    path.write_text(
        '{"id": "p1", "date": "2026-01-05", "type": "purchase", "item": "M", '
        '"quantity": 10, "unit_cost": 2.675}\n'
        '{"id": "l1", "date": "2026-01-06", "type": "conversion", "amount": 0.30}\n',
        encoding="utf-8",
    )
    store = master_book(plant_url, parse_scenario(PLANT))
    assert stream(store, path) == Imported(2, 0)
    payloads = {row[1]: row[4] for row in dump_tables(store)["events"]}  # id, payload
    purchase = event_from_payload("p1", payloads["p1"])
    assert isinstance(purchase, m.Purchase)
    assert (purchase.quantity, purchase.unit_cost) == (Decimal(10), Decimal("2.675"))
    conversion = event_from_payload("l1", payloads["l1"])
    assert isinstance(conversion, m.Conversion)
    assert conversion.amount == Decimal("0.30")
    balances = {(a.value, e): v for (a, e), v in store.load().balances.items()}
    assert balances[("purchase_price_variance", "")] == Decimal("6.75")  # 10 x 0.675


def test_csv_layout(plant_url: str, tmp_path: Path) -> None:
    """Columns in any order, a byte order mark, blank rows, empty cells, spaces around cells
    (RFC 4180: every row has a cell for each column; a row cut short is refused)."""
    path = tmp_path / "plant.csv"
    path.write_text(
        "\ufeffquantity, type ,item,date,id,unit_cost\n"
        "10,purchase,M,2026-01-05,p1,2.10\n"
        "\n"
        " 4 , purchase , K , 2026-01-05 , k1 , 0.50 \n"
        "1,completion,F,2026-01-06,c1,\n",
        encoding="utf-8",
    )
    store = master_book(plant_url, parse_scenario(PLANT))
    assert stream(store, path) == Imported(3, 0)
    assert [row[1] for row in dump_tables(store)["events"]] == ["p1", "k1", "c1"]  # file order
    assert store.load().on_hand == {"M": Decimal(7), "K": Decimal(2), "F": Decimal(1)}


def test_parquet_reads_typed_columns(plant_url: str, tmp_path: Path) -> None:
    """Decimal, integer and date columns are exact; a null is an absent field."""
    table = pa.table(
        {
            "id": ["p1", "c1"],
            "type": ["purchase", "completion"],
            "date": pa.array([dt.date(2026, 1, 5), dt.date(2026, 1, 6)], pa.date32()),
            "item": ["M", "F"],
            "quantity": pa.array([30, 2], pa.int64()),
            "unit_cost": pa.array([Decimal("2.125"), None], pa.decimal128(9, 3)),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    store = master_book(plant_url, parse_scenario(PLANT))
    purchase = m.Purchase("k1", dt.date(2026, 1, 5), "K", Decimal(10), Decimal("0.5"))
    store.post([purchase])
    assert streams.row_count(path) == 2
    assert stream(store, path) == Imported(2, 0)
    assert store.load().on_hand == {"M": Decimal(24), "K": Decimal(6), "F": Decimal(2)}


# ---------------------------------------------------------------- nothing written


def bad_rows(tmp_path: Path) -> list[tuple[Path, list[str]]]:
    """Files with one bad row (the third event), and what the error must name."""
    good = plant_events(6)
    bad_field = [*good[:2], {**good[2], "quantity": "three"}, *good[3:]]
    unknown_item = [*good[:2], {**good[2], "item": "NOPE"}, *good[3:]]
    floats = tmp_path / "floats.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b", "c"],
                "type": ["purchase"] * 3,
                "date": ["2026-01-05"] * 3,
                "item": ["M"] * 3,
                "quantity": pa.array([None, None, 1.5], pa.float64()),
                "unit_cost": ["2.00"] * 3,
            }
        ),
        floats,
    )
    malformed = tmp_path / "malformed.jsonl"
    lines = [json.dumps(row) for row in good]
    lines[2] = lines[2][:-3]
    malformed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # A last line cut short (a copy stopped half way) would post what is left of it.
    cut = write_events(tmp_path / "cut.csv", good[:3])
    text = cut.read_text(encoding="utf-8").rstrip("\n")
    cut.write_text(text[: text.rindex(",")] + "\n", encoding="utf-8")
    columns = len(text.splitlines()[0].split(","))
    return [
        (cut, [f"cut.csv row 4: {columns - 1} cells, but the header names {columns} columns"]),
        (write_events(tmp_path / "bad.jsonl", bad_field), ["bad.jsonl:3", "quantity", "three"]),
        (write_events(tmp_path / "bad.csv", bad_field), ["bad.csv row 4", "quantity", "three"]),
        (write_events(tmp_path / "bad.parquet", bad_field), ["bad.parquet row 3", "quantity"]),
        (write_events(tmp_path / "item.csv", unknown_item), ["item.csv row 4", "item", "NOPE"]),
        (floats, ["floats.parquet row 3", "quantity", "binary floating-point", "1.5"]),
        (malformed, ["malformed.jsonl:3", "malformed JSON"]),
    ]


def test_a_bad_row_writes_nothing(db_url: str, tmp_path: Path) -> None:
    """A bad row is an error naming the file, the row and the field; the events before it
    (in earlier batches, already written in the transaction) are rolled back with it."""
    store = master_book(db_url, parse_scenario(PLANT))
    store.post([m.Purchase("p0", dt.date(2026, 1, 2), "M", Decimal(1), Decimal(2))])
    before = dump_tables(store)
    for path, named in bad_rows(tmp_path):
        with pytest.raises(InputError) as caught:
            stream(store, path, batch=1)
        message = str(caught.value)
        for part in named:
            assert part in message, (path.name, part, message)
        assert dump_tables(store) == before, path.name


def test_problems_are_reported_together_up_to_a_limit(plant_url: str, tmp_path: Path) -> None:
    rows = [{**row, "quantity": "-1"} for row in plant_events(30)]
    path = write_events(tmp_path / "many.jsonl", rows)
    store = master_book(plant_url, parse_scenario(PLANT))
    with pytest.raises(InputError) as caught:
        stream(store, path)
    problems = caught.value.problems
    assert len(problems) == streams.MAX_PROBLEMS + 1
    assert problems[0].startswith(f"{path}:1: event e0: quantity: expected more than zero")
    assert problems[-1] == f"{path}: ... and 10 more problem(s)"


def test_file_level_problems(plant_url: str, tmp_path: Path) -> None:
    store = master_book(plant_url, parse_scenario(PLANT))
    header = tmp_path / "header.csv"
    header.write_text("id,type,date,colour\nx,close,2026-01-31,red\n", encoding="utf-8")
    not_parquet = tmp_path / "text.parquet"
    not_parquet.write_text("hello", encoding="utf-8")
    cases = [
        (header, "header.csv row 1: column 'colour': unknown field"),
        (not_parquet, "text.parquet: not a Parquet file"),
        (tmp_path / "missing.jsonl", "missing.jsonl: cannot read"),
    ]
    before = dump_tables(store)
    for path, named in cases:
        with pytest.raises(InputError, match=named):
            stream(store, path)
    assert dump_tables(store) == before
    wide = tmp_path / "wide.csv"
    wide.write_text("type," + ",".join(f"c{n}" for n in range(1000)) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as refused:
        stream(store, wide)
    assert len(refused.value.problems) == streams.MAX_PROBLEMS + 1  # not a line per column
    assert refused.value.problems[-1] == f"{wide} row 1: ... and 981 more problem(s)"
    unnamed = tmp_path / "unnamed.csv"  # refused once, not row by row
    unnamed.write_text("type,date\nclose,2026-01-31\nclose,2026-02-28\n", encoding="utf-8")
    with pytest.raises(InputError) as refused:
        stream(store, unnamed)
    assert refused.value.problems == [
        f"{unnamed} row 1: no column 'id'; every event of a stream needs its id (what makes "
        "importing it again safe; a book that took unnamed events from an earlier version "
        "named them <file stem>:<row>)"
    ]
    for separator, named in ((";", "';'"), ('";"', "';'"), ("\t", "tabs")):  # as saved
        other = tmp_path / "other.csv"  # (the second quoted, which the CSV reader refuses)
        other.write_text(separator.join(["id", "type", "date"]) + "\nx;close;2026-01-31\n")
        with pytest.raises(InputError) as refused:
            stream(store, other)
        assert refused.value.problems == [
            f"{other} row 1: columns separated by {named}; expected commas"
        ]


def test_a_refused_event_writes_nothing(db_url: str, tmp_path: Path) -> None:
    """An event the rules refuse (a completion short of components under shortage: reject;
    an id used again with other content, in a later batch) is a posting error naming the
    file and row; nothing of the import stays."""
    store = master_book(db_url, parse_scenario(PLANT))
    before = dump_tables(store)
    good = plant_events(12)
    short = [*good, {"id": "big", "date": "2026-01-20", "type": "completion", "item": "F",
                     "quantity": "100"}, *plant_events(4, first=12)]  # fmt: skip
    again = [*good, {**good[0], "quantity": "4"}]
    for fmt in FORMATS:
        with pytest.raises(PostingError, match=rf"short\.{fmt}(:| row )1[34]: event big"):
            stream(store, write_events(tmp_path / f"short.{fmt}", short), batch=5)
        assert dump_tables(store) == before
        with pytest.raises(ConflictError, match=rf"again\.{fmt}(:| row )1[34]: event e0"):
            stream(store, write_events(tmp_path / f"again.{fmt}", again), batch=5)
        assert dump_tables(store) == before


def test_importing_again_changes_nothing(db_url: str, tmp_path: Path) -> None:
    store = master_book(db_url, parse_scenario(PLANT))
    path = write_events(tmp_path / "plant.csv", plant_events(40))
    assert stream(store, path, batch=16) == Imported(40, 0)
    after = dump_tables(store)
    assert stream(store, path, batch=16) == Imported(0, 40)
    assert dump_tables(store) == after
    longer = write_events(tmp_path / "longer.jsonl", plant_events(48))  # the same 40, 8 more
    assert stream(store, longer, batch=16) == Imported(8, 40)


def test_a_book_without_master_data_is_refused(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "bare.db"))
    store.init(parse_scenario(PLANT).settings)
    path = write_events(tmp_path / "plant.jsonl", plant_events(4))
    with pytest.raises(StoreError, match="no master data"):
        stream(store, path)
    assert store.event_count() == 0


# ---------------------------------------------------------------- bounded memory


def test_the_book_holds_at_most_a_batch_of_events(
    plant_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When each batch is written the book holds that batch's events only, not all those
    imported before; the stock moved per period stays loaded in full (a close needs it), and
    the book after the import is the one loading it again would give."""
    store = master_book(plant_url, parse_scenario(PLANT))
    held: list[int] = []
    write = Store._write

    def counting(self: Store, conn: Any, book: Book, *args: Any, **kwargs: Any) -> None:
        held.append(len(book.recorded))
        write(self, conn, book, *args, **kwargs)

    monkeypatch.setattr(Store, "_write", counting)
    rows = [*plant_events(400), {"id": "close", "date": "2026-01-31", "type": "close",
                                 "period": "2026-01"}]  # fmt: skip
    forgotten: list[Book] = []
    forget = repository._forget

    def keep(book: Book, *, importing: bool = False) -> None:
        forget(book, importing=importing)
        forgotten.append(book)

    monkeypatch.setattr(repository, "_forget", keep)
    assert stream(store, write_events(tmp_path / "plant.jsonl", rows), batch=50) == Imported(401, 0)
    assert len(held) == 9 + 1  # and the stock on hand and moved, written last
    assert max(held) == 50
    book = forgotten[-1]
    with store.transaction() as conn:
        loaded = store._load(conn, history=False)
    assert state(book) == state(loaded)  # everything a load reads, and no more
    assert book.moved and book.flows and book.daily  # a close needed them
    assert book.recorded == book.item_activity == book.disposed == {}


def test_stock_is_written_once_at_the_end(
    plant_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stock on hand and moved per period are written once, after the last batch, not once a
    batch (PostgreSQL keeps every version of a row updated in one transaction): the same
    tables as written batch by batch (test_batch_size_does_not_change_the_book)."""
    store = master_book(plant_url, parse_scenario(PLANT))
    written: list[tuple[str, int]] = []
    upsert = repository._upsert

    def recording(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            written.append((table.name, len(rows)))
        upsert(conn, table, rows)

    monkeypatch.setattr(repository, "_upsert", recording)
    path = write_events(tmp_path / "plant.jsonl", plant_events(400))
    assert stream(store, path, batch=50) == Imported(400, 0)
    stock = ("quantities", "period_quantities", "period_flows", "daily_flows")
    assert [name for name, _rows in written if name in stock] == list(stock)
    assert sum(rows for name, rows in written if name == "journal_summary") > 1  # by batch
    with store.transaction() as conn:
        assert len(store._load(conn, history=False).on_hand) == dict(written)["quantities"]


def _import_peak(url: str, path: Path) -> int:
    store = master_book(url, parse_scenario(PLANT))
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        stream(store, path, batch=200)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        store.close()
    return peak - base


def test_memory_does_not_grow_with_the_number_of_events(tmp_path: Path) -> None:
    """Four times the events (the same days, items and periods) take about the same peak
    memory: what grows with events is in the database, not in the process."""
    small = write_events(tmp_path / "small.jsonl", plant_events(800))
    large = write_events(tmp_path / "large.jsonl", plant_events(3200))
    _import_peak(f"sqlite:///{tmp_path / 'warm.db'}", small)  # caches filled once
    peaks: dict[str, int] = {}
    for path in (small, large):
        peaks[path.stem] = _import_peak(f"sqlite:///{tmp_path / f'{path.stem}.db'}", path)
    assert peaks["large"] < 1.5 * peaks["small"], peaks


# ---------------------------------------------------------------- the command


def invoke(*args: Any, input: str | None = None) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def test_the_command_imports_streams(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    scenario = tmp_path / "plant.yaml"
    scenario.write_text(PLANT, encoding="utf-8")
    assert invoke("import", scenario, "--db", db).exit_code == 0
    path = write_events(tmp_path / "plant.parquet", plant_events(20))
    result = invoke("import", path, "--db", db, "--batch", "3")
    assert result.exit_code == 0, result.output
    assert "20 event(s) applied, 0 already recorded" in result.output
    ndjson = write_events(tmp_path / "more.jsonl", plant_events(24)).rename(tmp_path / "m.ndjson")
    result = invoke("import", ndjson, "--db", db)
    assert result.exit_code == 0, result.output
    assert "4 event(s) applied, 20 already recorded" in result.output


def test_the_command_imports_a_stream_from_standard_input(tmp_path: Path) -> None:
    """``import -``: JSON lines by default, CSV with ``--format csv``, named ``<stdin>`` in
    messages; a file's format is its suffix, so ``--format`` with a file is a usage error."""
    db = tmp_path / "book.db"
    (tmp_path / "plant.yaml").write_text(PLANT, encoding="utf-8")
    assert invoke("import", tmp_path / "plant.yaml", "--db", db).exit_code == 0
    lines = write_events(tmp_path / "a.jsonl", plant_events(8)).read_text(encoding="utf-8")
    result = invoke("import", "-", "--db", db, input=lines)
    assert result.exit_code == 0, result.output
    assert "8 event(s) applied, 0 already recorded" in result.output
    table = write_events(tmp_path / "b.csv", plant_events(12)).read_text(encoding="utf-8")
    result = invoke("import", "-", "--db", db, "--format", "csv", input=table)
    assert result.exit_code == 0, result.output
    assert "4 event(s) applied, 8 already recorded" in result.output
    before = dump_tables(Store(f"sqlite:///{db}", create=False))
    bad = table.replace("2.05", "two", 1)
    result = invoke("import", "-", "--db", db, "--format", "csv", input=bad)
    assert result.exit_code == 2, result.output
    assert "<stdin> row 2: event e0: unit_cost: expected a decimal" in result.output
    result = invoke("import", "-", "--db", db, input=table)  # CSV read as JSON lines
    assert result.exit_code == 2 and "<stdin>:1: malformed JSON" in result.output, result.output
    result = invoke("import", "-", "--db", db, input="PAR1\x15\x04")  # as a pipe would give
    assert result.exit_code == 2 and "<stdin>: Parquet data; import a Parquet file" in result.output
    result = invoke("import", tmp_path / "a.jsonl", "--db", db, "--format", "csv")
    assert result.exit_code == 2 and "--format is for standard input" in result.output
    assert dump_tables(Store(f"sqlite:///{db}", create=False)) == before


def test_the_command_names_bad_rows_and_missing_books(tmp_path: Path) -> None:
    db = tmp_path / "book.db"
    (tmp_path / "plant.yaml").write_text(PLANT, encoding="utf-8")
    path = write_events(tmp_path / "plant.csv", plant_events(8))
    result = invoke("import", path, "--db", db)
    assert result.exit_code == 2
    assert "no book at" in result.output
    assert not db.exists()
    assert invoke("import", tmp_path / "plant.yaml", "--db", db).exit_code == 0
    bad = write_events(
        tmp_path / "bad.csv", [*plant_events(3), {"id": "s", "type": "sale", "date": "x"}]
    )
    result = invoke("import", bad, "--db", db)
    assert result.exit_code == 2
    assert "bad.csv row 5: event s: date: expected a date" in result.output
    unnamed = write_events(tmp_path / "unnamed.csv", [{**plant_events(1)[0], "id": ""}])
    result = invoke("import", unnamed, "--db", db)  # exported again as another file: posted twice
    assert result.exit_code == 2
    assert "unnamed.csv row 2: event ?: id: required (it makes sending an event again safe)" in (
        " ".join(result.output.split())
    )
    assert "nothing was written" in result.output
    assert invoke("import", bad, "--db", db, "--batch", "0").exit_code == 2


def test_a_quote_left_open_in_a_csv_is_a_bad_row_not_the_rest_of_the_file(
    plant_url: str, tmp_path: Path
) -> None:
    """A reason opening a quote it never closes used to read every later row into that one
    cell: the rows after it were lost without a word."""
    store = master_book(plant_url, parse_scenario(PLANT))
    path = tmp_path / "open.csv"
    path.write_text(
        "id,date,type,item,quantity,unit_cost\n"
        "p1,2026-01-05,purchase,M,3,2.05\n"
        'p2,2026-01-06,purchase,"M,3,2.05\n'
        "p3,2026-01-07,purchase,M,3,2.05\n"
        "p4,2026-01-08,purchase,M,3,2.05\n",
        encoding="utf-8",
    )
    before = dump_tables(store)
    with pytest.raises(InputError, match=r"open\.csv row 3: malformed CSV: unexpected end of data"):
        stream(store, path)
    assert dump_tables(store) == before


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_a_byte_that_is_not_utf8_is_named_on_its_own_line(
    plant_url: str, tmp_path: Path, ending: str
) -> None:
    """A Latin-1 'é' in the fourth line, after a row holding a line break in a quoted cell:
    named there, on any line ending (the decoder reads ahead by blocks: it named row 1)."""
    store = master_book(plant_url, parse_scenario(PLANT))
    header = "id,date,type,item,quantity,unit_cost"
    lines = [header, 'p1,2026-01-05,purchase,"M', '",3,2.05', "p2,2026-01-06,purchase,M\xe9,3,2.05"]
    path = tmp_path / "latin1.csv"
    path.write_bytes(ending.join(lines).encode("latin-1") + ending.encode())
    before = dump_tables(store)
    expected = r"latin1\.csv line 4: not UTF-8 text \(byte 0xe9\); save the file as CSV UTF-8"
    with pytest.raises(InputError, match=expected):
        stream(store, path)
    assert dump_tables(store) == before
    good = tmp_path / "good.csv"
    rows = [header, "p1,2026-01-05,purchase,M,3,2.05", "p3,2026-01-07,purchase,M,3,2.05"]
    good.write_bytes(ending.join(rows).encode("utf-8-sig") + ending.encode())
    book = store.load()
    assert [e.id for _, e in streams.read_events(good, book.master, book.settings)] == ["p1", "p3"]


def test_the_command_refuses_a_date_years_ahead_unless_told(tmp_path: Path) -> None:
    """A typo such as 9999-12-31 in a feed would hold back every later change of standards:
    refused as ``post`` and the API refuse it; ``--allow-future`` takes a plan. A batch size
    past any use is a usage error, not a traceback."""
    db = tmp_path / "book.db"
    (tmp_path / "plant.yaml").write_text(PLANT, encoding="utf-8")
    assert invoke("import", tmp_path / "plant.yaml", "--db", db).exit_code == 0
    ahead = (dt.date.today() + dt.timedelta(days=400)).isoformat()
    path = write_events(
        tmp_path / "feed.csv", [*plant_events(3), {**plant_events(1)[0], "id": "t", "date": ahead}]
    )
    before = dump_tables(Store(f"sqlite:///{db}", create=False))
    result = invoke("import", path, "--db", db)
    assert result.exit_code == 2, result.output
    assert f"feed.csv row 5: event t: date: {ahead} is more than 366 days ahead" in result.output
    assert "--allow-future takes it" in result.output
    assert dump_tables(Store(f"sqlite:///{db}", create=False)) == before
    scenario = tmp_path / "plan.yaml"
    scenario.write_text(
        PLANT + "events:\n"
        f"  - {{id: t, date: {ahead}, type: purchase, item: M, quantity: 1, unit_cost: 2}}\n",
        encoding="utf-8",
    )
    result = invoke("import", scenario, "--db", db)
    assert result.exit_code == 2 and "plan.yaml:" in result.output, result.output
    assert dump_tables(Store(f"sqlite:///{db}", create=False)) == before
    result = invoke("import", path, "--db", db, "--allow-future")
    assert result.exit_code == 0, result.output
    assert "4 event(s) applied" in result.output
    # The feed sent again: what it holds is recorded as sent, its far date too (a no-op).
    result = invoke("import", path, "--db", db)
    assert result.exit_code == 0, result.output
    assert "0 event(s) applied, 4 already recorded" in result.output
    result = invoke("import", path, "--db", db, "--batch", "99999999999999999999")
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output


def test_a_refusal_in_a_file_out_of_date_order_says_so(tmp_path: Path) -> None:
    """An extract sorted by document number or by type: a sale comes before the completion of
    what it sells. The refusal names the first row dated before one above it; a file in date
    order is not told so."""
    db = tmp_path / "book.db"
    (tmp_path / "plant.yaml").write_text(PLANT, encoding="utf-8")
    assert invoke("import", tmp_path / "plant.yaml", "--db", db).exit_code == 0
    rows = plant_events(4)  # M and K bought on the 1st and 2nd, F made on the 3rd, sold the 4th
    result = invoke("import", write_events(tmp_path / "by-type.csv", rows[::-1]), "--db", db)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "by-type.csv row 2: event e3: needs 1 of 'F' but only 0 is on hand" in message
    assert (
        "(the file is not in date order: " + str(tmp_path / "by-type.csv") + " row 3 is dated "
        "2026-01-03, before " + str(tmp_path / "by-type.csv") + " row 2 (2026-01-04); events "
        "post in the file's order: sort it by date)"
    ) in message
    in_order = write_events(tmp_path / "short.csv", [rows[3]])
    result = invoke("import", in_order, "--db", db)
    assert result.exit_code == 2 and "date order" not in result.output
