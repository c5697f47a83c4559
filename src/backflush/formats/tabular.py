"""Master data as tables, the way an ERP exports it (DESIGN §1, §5): a directory with one CSV
file per table (``items.csv``, ``boms.csv``, ...) or one XLSX workbook with a sheet per table,
same names and columns.

- ``items``, one row per item: id, kind, uom, flush, lot_size, triggers, material_cost,
  conversion (one figure), family, site, and conversion:<element> (one column per element:
  conversion:labor).
- ``boms``, one row per BOM line: item, effective_from, effective_to, line, component, quantity,
  scrap, flush, operation.
- ``work_centers``, one row per rate: work_center, name, element, rate.
- ``routings``, one row per operation: item, effective_from, effective_to, operation,
  work_center, setup_hours, run_hours, yield.
- ``cost_sets``, one row per material cost (item) or rate (work_center and element): cost_set,
  effective, item, work_center, element, value.

Only ``items`` is required. Rows of ``boms`` (``routings``) with the same item and effective
dates form one version; an empty ``effective_from`` is "from the beginning". Rows count like a
spreadsheet's (the header is row 1); blank rows are skipped.

Reading turns the tables into the raw records :func:`backflush.formats.inputs.build_master`
validates (the scenario file's layout), after checking what only the tables can show: columns,
cell types, numbering, grouping. Every problem names the file (and sheet), row and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backflush.domain import model as m
from backflush.formats import inputs
from backflush.formats.inputs import (
    ELEMENT_PATTERN,
    PATTERN_WORDS,
    InputError,
    build_master,
    to_date,
    to_decimal,
)
from backflush.formats.output import written

if TYPE_CHECKING:  # openpyxl is imported where a workbook is read or written (a faster CLI)
    from openpyxl.cell.cell import Cell as XlsxCell
    from openpyxl.styles import Font

#: Key of a BOM line's (routing operation's) own location in a raw record.
WHERE: str = getattr(inputs, "WHERE", "@where")

#: Raw records by section name, each with where it was read (``items.csv row 3``).
Records = dict[str, list[tuple[str, dict[str, Any]]]]

TEXT, DECIMAL, WHOLE, DATE = "text", "decimal", "whole number", "date"
CONVERSION_PREFIX = "conversion:"


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    #: Column -> cell type, in the order they are written.
    columns: dict[str, str]
    #: Columns the header must have; their cells must not be empty either.
    required: tuple[str, ...]
    #: Columns named PREFIX<element> (items: conversion:<element>), of type decimal.
    prefix: str = ""


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "items",
            {
                "id": TEXT,
                "kind": TEXT,
                "uom": TEXT,
                "flush": TEXT,
                "lot_size": DECIMAL,
                "triggers": TEXT,
                "material_cost": DECIMAL,
                "conversion": DECIMAL,
                "family": TEXT,
                "site": TEXT,
            },
            ("id", "kind"),
            CONVERSION_PREFIX,
        ),
        Table(
            "boms",
            {
                "item": TEXT,
                "effective_from": DATE,
                "effective_to": DATE,
                "line": WHOLE,
                "component": TEXT,
                "quantity": DECIMAL,
                "scrap": DECIMAL,
                "flush": TEXT,
                "operation": WHOLE,
            },
            ("item", "component", "quantity"),
        ),
        Table(
            "work_centers",
            {"work_center": TEXT, "name": TEXT, "element": TEXT, "rate": DECIMAL},
            ("work_center",),
        ),
        Table(
            "routings",
            {
                "item": TEXT,
                "effective_from": DATE,
                "effective_to": DATE,
                "operation": WHOLE,
                "work_center": TEXT,
                "setup_hours": DECIMAL,
                "run_hours": DECIMAL,
                "yield": DECIMAL,
            },
            ("item", "operation", "work_center", "run_hours"),
        ),
        Table(
            "cost_sets",
            {
                "cost_set": TEXT,
                "effective": DATE,
                "item": TEXT,
                "work_center": TEXT,
                "element": TEXT,
                "value": DECIMAL,
            },
            ("cost_set",),
        ),
    )
}
REQUIRED_TABLES = ("items",)

#: Where a field of a raw record was read: record location -> field path -> (row, column).
#: Field paths are build_master's ("standard_cost.material", "rates.labor"); a BOM line's or
#: an operation's fields are also keyed "line 2/quantity" ("operation 10/run_hours").
Index = dict[str, dict[str, tuple[str, str]]]


@dataclass(slots=True)
class _Row:
    number: int
    where: str
    #: Column -> parsed value (str, Decimal, int, date); empty cells are absent.
    values: dict[str, Any]

    def cell(self, column: str) -> str:
        return f"{self.where}, column {column}"


@dataclass(slots=True)
class _Reader:
    #: Build :attr:`index` too (only needed to explain build_master's problems).
    indexing: bool = False
    problems: list[str] = field(default_factory=list)
    records: Records = field(default_factory=lambda: {name: [] for name in TABLES})
    index: Index = field(default_factory=dict)
    #: The parsed rows of each table read.
    rows: dict[str, list[_Row]] = field(default_factory=dict)

    def locate(self, where: str, key: str, row: _Row, column: str) -> None:
        if self.indexing:
            self.index.setdefault(where, {})[key] = (row.where, column)

    def assemble(self, name: str, rows: list[_Row]) -> None:
        self.rows[name] = rows
        _ASSEMBLE[name](rows, self)


# ---------------------------------------------------------------- public API


def read_master_tables(path: Path) -> Records:
    """Raw master data records, by section, from a directory of CSV files or an XLSX workbook;
    every problem the tables show by themselves is raised at once as one InputError."""
    return _read(path).records


def load_master_tables(
    path: Path,
    settings: m.Settings,
    known: m.MasterData | None = None,
    last_event: dt.date | None = None,
) -> m.MasterData:
    """Master data from a directory of CSV files or an XLSX workbook, validated (with the
    book's ``known`` master data and the date of its ``last_event``, as
    :func:`build_master`); problems name the file, row and column."""
    reader = _read(path)
    records = reader.records
    try:
        return build_master(
            records["items"],
            records["boms"],
            settings,
            work_centers=records["work_centers"],
            routings=records["routings"],
            cost_sets=records["cost_sets"],
            known=known,
            last_event=last_event,
        )
    except InputError as error:
        again = _Reader(indexing=True)  # the same records, now noting where each field was
        for name, rows in reader.rows.items():
            again.assemble(name, rows)
        raise InputError([locate(p, again.index) for p in error.problems]) from None


def write_master_tables(master: m.MasterData, path: Path) -> None:
    """Write ``master`` as an XLSX workbook (``path`` ends in .xlsx) or as a directory of CSV
    files (created when missing), every table with its header, rows in a deterministic order."""
    tables = master_tables(master)
    if _is_workbook(path):
        _write_workbook(tables, path)
        return
    path.mkdir(parents=True, exist_ok=True)
    for name, (header, rows) in tables.items():
        with (path / f"{name}.csv").open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows([_csv_text(v) for v in row] for row in rows)


# ---------------------------------------------------------------- reading


def _is_workbook(path: Path) -> bool:
    return path.suffix.lower() == ".xlsx"


def _read(path: Path) -> _Reader:
    reader = _Reader()
    workbook = _is_workbook(path)
    if workbook:
        sources = _workbook_sheets(path, reader.problems)
    elif path.is_dir():
        sources = _csv_files(path, reader.problems)
    else:
        what = "no such directory" if not path.exists() else "not a directory"
        reader.problems.append(
            f"{path}: {what}; expected a directory of CSV files (items.csv, ...) "
            "or an .xlsx workbook"
        )
        sources = {}
    for name, (label, rows) in sources.items():
        parsed = _parse_table(TABLES[name], label, rows, reader.problems, whole_rows=not workbook)
        reader.assemble(name, parsed)
    if reader.problems:
        raise InputError(reader.problems)
    return reader


def _expected_tables(suffix: str) -> str:
    return ", ".join(f"{name}{suffix}" for name in TABLES)


def _csv_files(directory: Path, problems: list[str]) -> dict[str, tuple[str, list[Sequence[Any]]]]:
    found: dict[str, tuple[str, list[Sequence[Any]]]] = {}
    for file in sorted(directory.glob("*.csv")):
        if file.stem not in TABLES:
            problems.append(f"{file.name}: unknown table; expected {_expected_tables('.csv')}")
    for name in TABLES:
        file = directory / f"{name}.csv"
        if not file.is_file():
            if name in REQUIRED_TABLES:
                problems.append(f"{file}: missing; the {name} table is required")
            continue
        rows = _csv_rows(file, problems)
        if rows is not None:
            found[name] = (file.name, rows)
    return found


def _csv_rows(file: Path, problems: list[str]) -> list[Sequence[Any]] | None:
    try:
        data = file.read_bytes()
    except OSError as error:
        problems.append(f"{file.name}: cannot read: {error.strerror}")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problems.append(
            f"{file.name} line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); "
            "save the file as CSV UTF-8"
        )
        return None
    rows: list[Sequence[Any]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), strict=True):
            rows.append(row)
    except csv.Error as error:
        problems.append(f"{file.name} row {len(rows) + 1}: malformed CSV: {error}")
        return None
    return rows


def _workbook_sheets(path: Path, problems: list[str]) -> dict[str, tuple[str, list[Sequence[Any]]]]:
    if not path.is_file():
        problems.append(f"{path}: no such file")
        return {}
    from openpyxl import load_workbook

    def read(values: bool) -> dict[str, list[Sequence[Any]]]:
        """Each sheet's rows: the values a spreadsheet program saved, or the formulas."""
        book = load_workbook(path, read_only=True, data_only=values)
        try:
            return {ws.title: list(ws.iter_rows(values_only=True)) for ws in book.worksheets}
        finally:
            book.close()

    try:
        sheets = read(values=False)  # constants as they are, formulas as their text
        cells = (cell for rows in sheets.values() for row in rows for cell in row)
        if any(isinstance(cell, str) and cell[:1] == "=" for cell in cells):
            # The values saved for the formulas; none (a workbook written by a program that
            # does not compute formulas) is not an empty cell.
            for title, rows in read(values=True).items():
                sheets[title] = [
                    [
                        _Uncomputed(f) if v is None and isinstance(f, str) and f[:1] == "=" else v
                        for v, f in zip(saved, formulas, strict=False)
                    ]
                    for saved, formulas in zip(rows, sheets[title], strict=False)
                ]
    except Exception as error:  # openpyxl raises many kinds for a file that is not a workbook
        problems.append(f"{path.name}: not an XLSX workbook ({type(error).__name__}: {error})")
        return {}
    for title in sheets:
        if title not in TABLES:
            problems.append(
                f"{path.name}: unknown sheet {title!r}; expected {_expected_tables('')}"
            )
    found: dict[str, tuple[str, list[Sequence[Any]]]] = {}
    for name in TABLES:
        if name in sheets:
            found[name] = (f"{path.name} sheet {name}", sheets[name])
        elif name in REQUIRED_TABLES:
            problems.append(f"{path.name}: no sheet {name}; the {name} table is required")
    return found


@dataclass(frozen=True, slots=True)
class _Uncomputed:
    """A workbook's formula cell without a saved value."""

    formula: str


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _parse_table(
    table: Table,
    label: str,
    rows: Sequence[Sequence[Any]],
    problems: list[str],
    *,
    whole_rows: bool = True,
) -> list[_Row]:
    """The data rows of one table with their cells parsed; header and cell problems added to
    ``problems``. Rows with a problem are left out (so that they cause no other), and so is
    every row of a table with a bad header. ``whole_rows``: a row has a cell for every column
    the header names (CSV: one with fewer was cut short; a workbook's row ends at its last
    value)."""
    if not rows or all(_empty(v) for v in rows[0]):
        if rows and any(not _empty(v) for row in rows for v in row):
            problems.append(f"{label} row 1: empty; the first row names the columns")
        elif table.name in REQUIRED_TABLES:
            problems.append(
                f"{label}: empty; expected a header row with {', '.join(table.required)}, ..."
            )
        return []
    header = [_header_name(v) for v in rows[0]]
    before = len(problems)
    types: list[str | None] = []  # by position; None: a column without a header
    seen: set[str] = set()
    expected = ", ".join(table.columns) + (f" or {table.prefix}<element>" if table.prefix else "")
    for name in header:
        kind: str | None = None
        if not name:
            pass
        elif name in seen:
            problems.append(f"{label} row 1, column {name}: duplicated column")
        elif name in table.columns:
            kind = table.columns[name]
        elif table.prefix and name.startswith(table.prefix):
            if name == table.prefix:
                problems.append(f"{label} row 1, column {name}: no element after {name!r}")
            kind = DECIMAL
        elif len(header) == 1 and (";" in name or "\t" in name):
            separator = "';'" if ";" in name else "tabs"
            problems.append(f"{label} row 1: columns separated by {separator}; expected commas")
        else:
            problems.append(f"{label} row 1, column {name}: unknown column; expected {expected}")
        seen.add(name)
        types.append(kind)
    for name in table.required:
        if name not in seen:
            problems.append(f"{label} row 1: missing column {name}")
    if len(problems) > before:
        return []
    parsed = []
    named = max(n for n, name in enumerate(header) if name) + 1  # (a blank column may end it)
    for number, cells in enumerate(rows[1:], 2):
        if all(_empty(v) for v in cells):
            continue
        row = _Row(number, f"{label} row {number}", {})
        if whole_rows and len(cells) < named:  # (cut short, it would read as what is left)
            problems.append(
                f"{row.where}: {len(cells)} cells, but the header names {named} columns"
            )
            continue
        before = len(problems)
        refused: set[str] = set()
        for position, value in enumerate(cells):
            kind = types[position] if position < len(types) else None
            if _empty(value):
                continue
            if kind is None:
                shown = value.formula if isinstance(value, _Uncomputed) else value
                problems.append(
                    f"{row.where}: a value in column {position + 1}, which has no header, "
                    f"got {shown!r}"
                )
                continue
            if isinstance(value, _Uncomputed):
                problems.append(
                    f"{row.cell(header[position])}: the formula {value.formula} has no value "
                    "saved in the workbook; open and save it in a spreadsheet program (which "
                    "computes it), or enter the value"
                )
                refused.add(header[position])
                continue
            try:
                row.values[header[position]] = _PARSERS[kind](value)
            except ValueError as error:
                problems.append(f"{row.cell(header[position])}: {error}")
                refused.add(header[position])
        for name in table.required:
            if name not in row.values and name not in refused:
                problems.append(f"{row.cell(name)}: empty; a value is required")
        if len(problems) == before:
            parsed.append(row)
    return parsed


def _header_name(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        raise ValueError(f"expected text, got a boolean {value}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.date):
        raise ValueError(f"expected text, got a date {value.isoformat()}")
    return str(value)


def _decimal(value: Any) -> Decimal:
    """Exact decimal of a cell: text as written; a spreadsheet number through the shortest
    text that reads back as the same binary number (0.1, not 0.1000000000000000055...)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite decimal number, got {value}")
        return Decimal(repr(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, dt.date):
        raise ValueError(f"expected a decimal number, got a date {value.isoformat()}")
    return to_decimal(value)


_WHOLE_TEXT = re.compile(r"^[+-]?\d+$")


def _whole(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE_TEXT.match(value.strip()):
        return int(value.strip())
    raise ValueError(f"expected a whole number such as 10, got {value!r}")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.time() == dt.time() and value.tzinfo is None:
            return value.date()  # a spreadsheet date cell
        raise ValueError(f"expected a date YYYY-MM-DD, got a date and time {value.isoformat()}")
    if isinstance(value, str):
        return to_date(value.strip())
    return to_date(value)


_PARSERS = {TEXT: _text, DECIMAL: _decimal, WHOLE: _whole, DATE: _date}


def _copy(row: _Row, raw: dict[str, Any], columns: Iterable[tuple[str, str]]) -> None:
    """Copy the non-empty cells of ``columns`` (column, raw key) into ``raw``."""
    for column, key in columns:
        if column in row.values:
            raw[key] = row.values[column]


def _items(rows: list[_Row], reader: _Reader) -> None:
    for row in rows:
        values = row.values
        raw: dict[str, Any] = {}
        plain = ("id", "kind", "uom", "flush", "lot_size", "triggers", "family", "site")
        _copy(row, raw, ((c, c) for c in plain))
        for column in plain:
            reader.locate(row.where, column, row, column)
        by_element = {
            column.removeprefix(CONVERSION_PREFIX): value
            for column, value in values.items()
            if column.startswith(CONVERSION_PREFIX)
        }
        material = values.get("material_cost")
        single = values.get("conversion")
        if single is not None and by_element:
            reader.problems.append(
                f"{row.cell('conversion')}: give conversion as one figure (column conversion) "
                f"or by element ({CONVERSION_PREFIX}<element>), not both"
            )
        conversion = single if single is not None else by_element or None
        reader.locate(row.where, "standard_cost.material", row, "material_cost")
        first = next(iter(by_element), None)
        reader.locate(
            row.where,
            "standard_cost.conversion",
            row,
            "conversion" if single is not None or first is None else CONVERSION_PREFIX + first,
        )
        for element in by_element:
            reader.locate(
                row.where, f"standard_cost.conversion.{element}", row, CONVERSION_PREFIX + element
            )
        if values.get("kind") == m.Kind.MATERIAL.value and conversion is None:
            if material is not None:
                raw["standard_cost"] = material  # a purchased material: one figure
            reader.locate(row.where, "standard_cost", row, "material_cost")
        elif material is not None or conversion is not None:
            cost: dict[str, Any] = {}
            if material is not None:
                cost["material"] = material
            if conversion is not None:
                cost["conversion"] = conversion
            raw["standard_cost"] = cost
        reader.records["items"].append((row.where, raw))


def _group(rows: list[_Row], *columns: str) -> dict[tuple[Any, ...], list[_Row]]:
    groups: dict[tuple[Any, ...], list[_Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.values.get(c) for c in columns), []).append(row)
    return groups


def _numbered(rows: list[_Row], column: str, what: str, problems: list[str]) -> list[_Row]:
    """The rows of one version in the order of ``column`` (file order when no row gives one);
    a number given twice, or given on some rows only, is a problem."""
    given = [r for r in rows if column in r.values]
    if not given:
        return rows
    first: dict[int, _Row] = {}
    for row in rows:
        if column not in row.values:
            problems.append(
                f"{row.cell(column)}: empty while other {what}s of this version have a "
                f"number; number every {what} or none"
            )
            continue
        number = row.values[column]
        if number in first:
            problems.append(
                f"{row.cell(column)}: {what} {number} already at row {first[number].number}"
            )
        else:
            first[number] = row
    return sorted(given, key=lambda r: int(r.values[column]))


def _versions(
    rows: list[_Row],
    reader: _Reader,
    section: str,
    list_key: str,
    order_column: str,
    what: str,
    line_columns: tuple[tuple[str, str], ...],
) -> None:
    """BOM or routing versions: rows grouped by (item, effective_from, effective_to)."""
    for (item, _, _), group in _group(rows, "item", "effective_from", "effective_to").items():
        head = group[0]
        raw: dict[str, Any] = {"item": item}
        _copy(head, raw, (("effective_from", "effective_from"), ("effective_to", "effective_to")))
        for column in ("item", "effective_from", "effective_to"):
            reader.locate(head.where, column, head, column)
        lines = []
        for position, row in enumerate(_numbered(group, order_column, what, reader.problems), 1):
            line: dict[str, Any] = {}
            _copy(row, line, line_columns)
            line[WHERE] = row.where
            lines.append(line)
            if not reader.indexing:
                continue
            # how build_master may name the line: by position, or an operation by number
            names = [f"line {position}"]
            if list_key == "operations":
                names = [f"operations line {position}", f"operation {row.values.get(order_column)}"]
            for column, key in (*line_columns, ("item", "item")):
                reader.locate(row.where, key, row, column)
                reader.locate(head.where, f"{list_key}.{position - 1}.{key}", row, column)
                for name in names:
                    reader.locate(row.where, f"{name}/{key}", row, column)
                    reader.locate(head.where, f"{name}/{key}", row, column)
        raw[list_key] = lines
        reader.records[section].append((head.where, raw))


def _boms(rows: list[_Row], reader: _Reader) -> None:
    columns = ("component", "quantity", "scrap", "flush", "operation")
    _versions(rows, reader, "boms", "lines", "line", "line", tuple((c, c) for c in columns))


def _routings(rows: list[_Row], reader: _Reader) -> None:
    columns = ("operation", "work_center", "setup_hours", "run_hours", "yield")
    operations = tuple((c, c) for c in columns)
    _versions(rows, reader, "routings", "operations", "operation", "operation", operations)


def _work_centers(rows: list[_Row], reader: _Reader) -> None:
    for (center,), group in _group(rows, "work_center").items():
        head = group[0]
        raw: dict[str, Any] = {"id": center}
        rates: dict[str, Decimal] = {}
        at: dict[str, _Row] = {}
        reader.locate(head.where, "id", head, "work_center")
        reader.locate(head.where, "rates", head, "rate")
        named: _Row | None = None
        for row in group:
            named = _agreed(row, "name", named, reader)
            element = row.values.get("element")
            rate = row.values.get("rate")
            if rate is None:
                if element is not None:
                    reader.problems.append(f"{row.cell('rate')}: empty; a value is required")
                continue
            if element is None:
                reader.problems.append(f"{row.cell('element')}: {_NO_ELEMENT}")
                continue
            if element in at:
                reader.problems.append(
                    f"{row.cell('element')}: rate {element!r} already at row {at[element].number}"
                )
                continue
            at[element] = row
            rates[element] = rate
            reader.locate(head.where, f"rates.{element}", row, "rate")
            reader.locate(head.where, f"rates.{element}{_ABOUT_ID}", row, "element")
        if named is not None:
            raw["name"] = named.values["name"]
            reader.locate(head.where, "name", named, "name")
        raw["rates"] = rates
        reader.records["work_centers"].append((head.where, raw))


def _agreed(row: _Row, column: str, first: _Row | None, reader: _Reader) -> _Row | None:
    """The first row that fills ``column``, a value of the whole group (a work center's name,
    a cost set's date), once ``row`` is looked at; a row that fills it otherwise is reported."""
    value = row.values.get(column)
    if value is None:
        return first
    if first is None:
        return row
    if value != first.values[column]:
        was = first.values[column]
        shown = (repr(value), repr(was)) if isinstance(value, str) else (value, was)
        reader.problems.append(
            f"{row.cell(column)}: {shown[0]} differs from {shown[1]} at row {first.number}"
        )
    return first


_NO_ELEMENT = "empty; a rate needs its cost element (labor, overhead, ...)"


def _cost_sets(rows: list[_Row], reader: _Reader) -> None:
    for (name,), group in _group(rows, "cost_set").items():
        head = group[0]
        raw: dict[str, Any] = {"name": name}
        materials: dict[str, Decimal] = {}
        rates: dict[str, dict[str, Decimal]] = {}
        material_at: dict[str, _Row] = {}
        rate_at: dict[tuple[str, str], _Row] = {}
        reader.locate(head.where, "name", head, "cost_set")
        reader.locate(head.where, "effective", head, "effective")
        dated: _Row | None = None
        for row in group:
            dated = _agreed(row, "effective", dated, reader)
            values = row.values
            item: str | None = values.get("item")
            center: str | None = values.get("work_center")
            element: str = values.get("element", "")
            value: Decimal | None = values.get("value")
            if item is not None and center is not None:
                reader.problems.append(
                    f"{row.where}, columns item and work_center: a row sets either a material "
                    "cost (item) or a rate (work_center and element), not both"
                )
                continue
            if item is None and center is None:
                if value is not None:
                    reader.problems.append(
                        f"{row.cell('value')}: sets nothing; give item (a material cost) or "
                        "work_center and element (a rate)"
                    )
                continue
            if value is None:
                reader.problems.append(f"{row.cell('value')}: empty; a value is required")
                continue
            if item is not None:
                if element:
                    reader.problems.append(
                        f"{row.cell('element')}: only for a rate (a row with work_center); "
                        "a material cost has none"
                    )
                elif item in material_at:
                    reader.problems.append(
                        f"{row.cell('item')}: {item} already at row {material_at[item].number}"
                    )
                else:
                    material_at[item] = row
                    materials[item] = value
                    reader.locate(head.where, f"materials.{item}", row, "value")
                    reader.locate(head.where, f"materials.{item}{_ABOUT_ID}", row, "item")
                continue
            if center is None:  # pragma: no cover - item or center is given here
                continue
            if not element:
                reader.problems.append(f"{row.cell('element')}: {_NO_ELEMENT}")
                continue
            if (center, element) in rate_at:
                reader.problems.append(
                    f"{row.cell('element')}: rate {element!r} of {center} already at row "
                    f"{rate_at[center, element].number}"
                )
                continue
            rate_at[center, element] = row
            rates.setdefault(center, {})[element] = value
            reader.locate(head.where, f"rates.{center}", row, "work_center")
            reader.locate(head.where, f"rates.{center}.{element}", row, "value")
        if dated is not None:
            raw["effective"] = dated.values["effective"]
            reader.locate(head.where, "effective", dated, "effective")
        if materials:
            raw["materials"] = materials
        if rates:
            raw["rates"] = rates
        reader.records["cost_sets"].append((head.where, raw))


_ASSEMBLE = {
    "items": _items,
    "boms": _boms,
    "work_centers": _work_centers,
    "routings": _routings,
    "cost_sets": _cost_sets,
}

_NUMBERED = re.compile(r"(operations line|line|operation) \d+")
#: Suffix of an index key used when a problem is about the id a field names, not its value
#: ("materials.CHIP: unknown item" is about the item column, not the value column; so is
#: "rates.lab:or: expected an element's name ..." about the element column).
_ABOUT_ID = "#id"
#: How a problem with an element's name begins.
ELEMENT_NAME = PATTERN_WORDS[ELEMENT_PATTERN]


def locate(problem: str, index: Index) -> str:
    """``problem`` (``where: label: field: message``) with the field named as the column, and
    the row, it was read from: ``where, column C: label: message``. Unchanged when its where or
    field is not known."""
    start = 0
    while True:
        cut = problem.find(": ", start)
        if cut < 0:
            return problem
        fields = index.get(problem[:cut])
        if fields is not None:
            break
        start = cut + 2
    segments = problem[cut + 2 :].split(": ")
    context = ""
    for position, segment in enumerate(segments[:-1]):
        if _NUMBERED.fullmatch(segment):
            context = segment + "/"
            continue
        found = fields.get(context + segment)
        if found is None:
            continue
        text = ": ".join(segments[position + 1 :])
        if text.startswith(("unknown ", ELEMENT_NAME)) or " is a " in text:
            found = fields.get(context + segment + _ABOUT_ID, found)
        where, column = found
        rest = segments[:position] + segments[position + 1 :]
        return f"{where}, column {column}: {': '.join(rest)}"
    return problem


# ---------------------------------------------------------------- writing

Cell = str | Decimal | int | dt.date | None


def master_tables(master: m.MasterData) -> dict[str, tuple[list[str], list[list[Cell]]]]:
    """``master`` as tables: header and rows of each, ids sorted, versions by date, lines by
    number."""

    def since(day: dt.date) -> dt.date | None:
        return None if day == dt.date.min else day

    items = [master.items[i] for i in sorted(master.items)]
    elements = list(dict.fromkeys(e for item in items for e, _ in item.conversion if e))
    #: family and site only where some item has one: an ERP's export without them stays as is
    grouping = [c for c in ("family", "site") if any(getattr(item, c) for item in items)]
    item_rows: list[list[Cell]] = []
    for item in items:
        conversion = dict(item.conversion)
        item_rows.append(
            [
                item.id,
                item.kind.value,
                item.uom,
                item.flush.value,
                item.lot_size,
                item.policy.value if item.policy is not None else None,
                item.material_cost,
                conversion.get(""),
                *(getattr(item, c) for c in grouping),
                *(conversion.get(e) for e in elements),
            ]
        )

    def by_date(version: m.Bom | m.Routing) -> tuple[dt.date, dt.date]:
        return version.effective_from, version.effective_to or dt.date.max

    bom_rows: list[list[Cell]] = []
    for parent in sorted(master.boms):
        for bom in sorted(master.boms[parent], key=by_date):
            for number, line in enumerate(bom.lines, 1):
                bom_rows.append(
                    [
                        bom.item,
                        since(bom.effective_from),
                        bom.effective_to,
                        number,
                        line.component,
                        line.quantity,
                        line.scrap,
                        line.flush.value if line.flush is not None else None,
                        line.operation,
                    ]
                )
    center_rows: list[list[Cell]] = []
    for center in (master.work_centers[c] for c in sorted(master.work_centers)):
        name = center.name or None
        rates = center.rates or (("", None),)
        center_rows += [[center.id, name, e or None, rate] for e, rate in rates]
    routing_rows: list[list[Cell]] = []
    for parent in sorted(master.routings):
        for routing in sorted(master.routings[parent], key=by_date):
            for op in sorted(routing.operations, key=lambda o: o.number):
                routing_rows.append(
                    [
                        routing.item,
                        since(routing.effective_from),
                        routing.effective_to,
                        op.number,
                        op.work_center,
                        op.setup_hours,
                        op.run_hours,
                        op.yield_,
                    ]
                )
    set_rows: list[list[Cell]] = []
    for cost_set in (master.cost_sets[n] for n in sorted(master.cost_sets)):
        head: list[Cell] = [cost_set.name, cost_set.effective]
        rows: list[list[Cell]] = [
            [*head, item, None, None, value] for item, value in cost_set.materials
        ]
        rows += [[*head, None, c, e or None, value] for c, e, value in cost_set.rates]
        set_rows += rows or [[*head, None, None, None, None]]

    def header(name: str) -> list[str]:
        return list(TABLES[name].columns)

    return {
        "items": (
            [c for c in header("items") if c not in ("family", "site")]
            + grouping
            + [CONVERSION_PREFIX + e for e in elements],
            item_rows,
        ),
        "boms": (header("boms"), bom_rows),
        "work_centers": (header("work_centers"), center_rows),
        "routings": (header("routings"), routing_rows),
        "cost_sets": (header("cost_sets"), set_rows),
    }


def _csv_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, never with an exponent
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


#: Dates before this are no spreadsheet date (the 1900 date system): written as ISO text.
_FIRST_SPREADSHEET_DATE = dt.date(1900, 3, 1)


def spreadsheet_number(value: Decimal) -> int | float | None:
    """The number to store for ``value`` in a numeric cell, when one reads back as exactly
    ``value`` (openpyxl writes 16 significant digits; reading takes the float's shortest
    text); None when none does (more digits than a binary float holds)."""
    number: int | float
    # XLSX numbers are binary doubles: one is written only when it reads back exactly.
    number = int(value) if value == value.to_integral_value() else float(value)  # float-ok
    written = f"{number:.16g}"
    back = float(written) if any(c in written for c in ".eE") else int(written)  # float-ok
    return number if Decimal(repr(back)) == value else None


def _write_workbook(tables: dict[str, tuple[list[str], list[list[Cell]]]], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    with written(path) as out:  # nothing half-written: no sheet made before it opens
        book = Workbook(write_only=True)
        bold = Font(bold=True)
        for name, (header, rows) in tables.items():
            sheet = book.create_sheet(name)
            sheet.freeze_panes = "A2"
            sheet.append([_xlsx_cell(sheet, h, bold) for h in header])
            for row in rows:
                sheet.append([_xlsx_value(sheet, value) for value in row])
        book.save(out)


def _xlsx_value(sheet: Any, value: Cell) -> Any:
    """What to store for ``value`` to hold it exactly: a number (text when no binary float
    holds it), a date (ISO text before 1900-03-01), text (never a formula, even when it
    starts with =)."""
    if isinstance(value, Decimal):
        number = spreadsheet_number(value)
        return number if number is not None else format(value, "f")
    if isinstance(value, dt.date) and value < _FIRST_SPREADSHEET_DATE:
        return value.isoformat()
    if isinstance(value, str) and value.startswith("="):
        return _xlsx_cell(sheet, value)
    return value


def _xlsx_cell(sheet: Any, value: str, font: Font | None = None) -> XlsxCell:
    """A text cell (openpyxl would take text starting with = for a formula)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    if font is not None:
        cell.font = font
    return cell
