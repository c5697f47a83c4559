"""Event streams (issue 7, the bulk path of ``backflush import``): one event per JSON line,
CSV row or Parquet row, read lazily (never the whole file in memory) and validated once, at
the edge, by :func:`~backflush.formats.inputs.build_event`.

- JSON lines (``.jsonl``, ``.ndjson``): one event object per line, with a scenario file's
  event fields. Numbers are exact: decimals written as JSON numbers are read as Decimal,
  never float. Blank lines are skipped. Rows are the file's lines (``plant.jsonl:12``).
- CSV (``.csv``): a header naming event fields (any subset of them, in any order), one event
  per row; an empty cell is an absent field. Rows count like a spreadsheet's: the header is
  row 1 (``plant.csv row 2``). Blank rows are skipped.
- Parquet (``.parquet``): the same columns as the CSV, read one record batch at a time
  (:meth:`pyarrow.parquet.ParquetFile.iter_batches`); strings, integers, decimals and dates
  are fine, a null (or empty string) is an absent field, a binary float is refused (it is
  inexact). Rows count from 1 (``plant.parquet row 1``).

Every event gives its id, unlike a scenario file's (whose events may take the file's stem and
position): a feed exported again under another name, or with its rows in another order, would
post its events again under new ids. After the first bad row no more events are handed on, but
the rest of the file is still checked, so one run reports up to :data:`MAX_PROBLEMS` problems;
then :class:`InputError` is raised (inside the import's transaction: nothing is written).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from backflush.domain import model as m
from backflush.formats.inputs import (
    EVENT_FIELDS,
    DuplicateKey,
    InputError,
    build_event,
    unique_keys,
)

JSON_LINES = frozenset({".jsonl", ".ndjson"})
CSV = ".csv"
PARQUET = ".parquet"
#: File suffixes read as event streams (anything else is a scenario file).
SUFFIXES = frozenset({*JSON_LINES, CSV, PARQUET})
#: Problems reported at most by one run (the rest are counted).
MAX_PROBLEMS = 20
#: Rows read from a Parquet file at a time.
PARQUET_ROWS = 4096

#: A row as read: where it was read, and its fields, or what is wrong with it.
Row = tuple[str, "dict[str, Any] | str"]


def is_stream(path: Path) -> bool:
    """Whether ``path`` names an event stream (by its suffix), not a scenario file."""
    return path.suffix.lower() in SUFFIXES


def row_count(path: Path) -> int | None:
    """The number of rows of ``path`` when its format tells it without reading it (Parquet's
    metadata), else None."""
    if path.suffix.lower() != PARQUET:
        return None
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # read_events names what is wrong with the file
        return None


def read_events(
    path: Path, master: m.MasterData, settings: m.Settings
) -> Iterator[tuple[str, m.Event]]:
    """The events of ``path``, each with where it was read, lazily. Raises
    :class:`InputError` naming the file, row and field: at once for what is wrong with the
    whole file (unreadable, a header naming an unknown field), at the end for bad rows (no
    event is yielded after the first)."""
    return _events(str(path), _rows(path), master, settings)


def read_json_lines(
    name: str, lines: Iterable[bytes], master: m.MasterData, settings: m.Settings
) -> Iterator[tuple[str, m.Event]]:
    """The events of JSON lines read from ``lines`` (``post --file``, standard input
    included), as :func:`read_events` reads a ``.jsonl`` file."""
    return _events(name, _json_lines(name, lines), master, settings)


#: The formats a stream may come in through a pipe (Parquet needs a file it can seek in).
PIPED = ("jsonl", "csv")


def read_piped(
    name: str, data: IO[bytes], kind: str, master: m.MasterData, settings: m.Settings
) -> Iterator[tuple[str, m.Event]]:
    """The events of a stream read from ``data`` (standard input) in format ``kind`` (one of
    :data:`PIPED`), as :func:`read_events` reads a file of that format."""
    if kind not in PIPED:
        raise ValueError(f"kind: expected one of {', '.join(PIPED)}, got {kind!r}")
    if not isinstance(data, io.BufferedReader):  # (one that can peek)
        data = io.BufferedReader(data)  # type: ignore[type-var]
    if data.peek(4)[:4] == b"PAR1":  # how Parquet data opens
        raise InputError(
            [f"{name}: Parquet data; import a Parquet file by its name (FILE.parquet)"]
        )
    if kind == "csv":
        return _events(name, _csv_stream(name, data), master, settings)
    return read_json_lines(name, data, master, settings)


def _events(
    source: str,
    rows: Iterable[Row],
    master: m.MasterData,
    settings: m.Settings,
) -> Iterator[tuple[str, m.Event]]:
    problems: list[str] = []
    more = 0
    for where, raw in rows:
        if isinstance(raw, dict):
            try:
                event = build_event(raw, master, settings, where=where)
            except InputError as error:
                found = error.problems
            else:
                if not problems and not more:
                    yield where, event
                continue
        else:
            found = [f"{where}: {raw}"]
        room = max(MAX_PROBLEMS - len(problems), 0)
        problems += found[:room]
        more += len(found[room:])
    if more:
        problems.append(f"{source}: ... and {more} more problem(s)")
    if problems:
        raise InputError(problems)


def _rows(path: Path) -> Iterator[Row]:
    suffix = path.suffix.lower()
    if suffix in JSON_LINES:
        return _json_rows(path)
    if suffix == CSV:
        return _csv_rows(path)
    if suffix == PARQUET:
        return _parquet_rows(path)
    raise InputError(
        [f"{path}: not an event stream; expected one of {', '.join(sorted(SUFFIXES))}"]
    )


def _cannot_read(path: Path, error: OSError) -> InputError:
    return InputError([f"{path}: cannot read: {error.strerror or error}"])


# ---------------------------------------------------------------- JSON lines


class _NotJson(ValueError):
    """NaN or Infinity: not JSON, and no decimal number."""


def _constant(name: str) -> Any:
    raise _NotJson(name)


#: What ``json.loads(text, parse_float=Decimal, parse_constant=_constant,
#: object_pairs_hook=unique_keys)`` decodes with, made once (loads makes one per call).
_DECODER = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_constant, object_pairs_hook=unique_keys
)


def _loads(line: str) -> Any:
    """``json.loads`` of ``line`` as above, through :data:`_DECODER` (per row)."""
    if line.startswith("\ufeff"):  # as json.loads refuses it (one opening the file is read)
        raise json.JSONDecodeError("a byte order mark (U+FEFF) opens the line", line, 0)
    return _DECODER.decode(line)


def _json_rows(path: Path) -> Iterator[Row]:
    try:
        stream = path.open("rb")
    except OSError as error:
        raise _cannot_read(path, error) from None
    with stream:
        yield from _json_lines(str(path), stream)


def _json_lines(name: str, lines: Iterable[bytes]) -> Iterator[Row]:
    for number, data in enumerate(lines, 1):
        where = f"{name}:{number}"
        try:  # a BOM that opens the file (as Windows tools write it) is no content
            line = data.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield where, "not UTF-8 text"
            continue
        if not line.strip():
            continue
        try:
            raw = _loads(line)
        except DuplicateKey as error:
            yield where, f"duplicate key {error.args[0]!r}"
            continue
        except _NotJson as error:
            yield where, f"malformed JSON: {error.args[0]} is not a number; write a decimal"
            continue
        except json.JSONDecodeError as error:
            yield where, f"malformed JSON: {error.msg} (column {error.colno})"
            continue
        if not isinstance(raw, dict):
            yield where, "expected a JSON object per line"
            continue
        yield where, raw


# ---------------------------------------------------------------- CSV and Parquet


def _check_columns(where: str, names: list[str]) -> None:
    """A table's columns: event fields, each once."""
    problems = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"{where}: column {name!r}: given twice")
        elif name not in EVENT_FIELDS:
            problems.append(
                f"{where}: column {name!r}: unknown field; expected event fields: "
                + ", ".join(sorted(EVENT_FIELDS))
            )
        seen.add(name)
    if "type" not in seen:
        problems.append(f"{where}: no column 'type'; every event needs its type")
    if "id" not in seen:
        problems.append(
            f"{where}: no column 'id'; every event of a stream needs its id (what makes "
            "importing it again safe; a book that took unnamed events from an earlier version "
            "named them <file stem>:<row>)"
        )
    if len(problems) > MAX_PROBLEMS:  # (a header of 100,000 columns, or a row of data read as one)
        more = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"{where}: ... and {more} more problem(s)"]
    if problems:
        raise InputError(problems)


def _present(names: list[str], values: Any) -> dict[str, Any]:
    """A row's fields, without the empty cells (absent fields)."""
    return {k: v for k, v in zip(names, values, strict=False) if v is not None and v != ""}


def _csv_rows(path: Path) -> Iterator[Row]:
    try:
        stream = path.open("rb")
    except OSError as error:
        raise _cannot_read(path, error) from None
    with stream:
        yield from _csv_stream(str(path), stream)


class _NotText(Exception):
    """Line ``line`` of a text stream is not UTF-8: at ``byte``."""

    def __init__(self, line: int, byte: int) -> None:
        super().__init__(line, byte)
        self.line, self.byte = line, byte


#: What a byte that is not UTF-8 decodes to under ``errors="surrogateescape"``.
_ESCAPED = re.compile("[\udc80-\udcff]")


def _decoded(data: IO[bytes]) -> Iterator[str]:
    """The lines of UTF-8 ``data`` as text (a BOM opening it dropped; any line ending, as
    ``newline=""`` reads them). A byte that is not UTF-8 is named on its own line
    (:class:`_NotText`), where a decoder reading ahead by blocks fails rows earlier."""
    text = io.TextIOWrapper(data, encoding="utf-8-sig", errors="surrogateescape", newline="")
    for number, line in enumerate(text, 1):
        if (bad := _ESCAPED.search(line)) is not None:
            raise _NotText(number, ord(bad.group()) - 0xDC00)
        yield line


def _csv_stream(source: str, stream: IO[bytes]) -> Iterator[Row]:
    """The rows of CSV text read from ``stream`` (named ``source`` in messages)."""
    lines = _decoded(stream)
    number = 0  # the last row read
    try:
        first = next(lines, None)
        if first is None:
            raise InputError([f"{source}: empty; expected a header row naming event fields"])
        if "," not in first and (";" in first or "\t" in first):  # as a spreadsheet may save
            separator = "';'" if ";" in first else "tabs"
            raise InputError([f"{source} row 1: columns separated by {separator}; expected commas"])
        # strict: a quote left open is an error, not the rest of the file read into one cell
        reader = csv.reader(itertools.chain([first], lines), strict=True)
        names = [name.strip() for name in next(reader)]
        number = 1
        _check_columns(f"{source} row 1", names)
        for number, cells in enumerate(reader, 2):  # (number read after the loop too)
            where = f"{source} row {number}"
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(names):  # fewer: a row cut short would post what is left
                yield where, f"{len(cells)} cells, but the header names {len(names)} columns"
                continue
            yield where, _present(names, (cell.strip() for cell in cells))
    except _NotText as error:  # (a row may span lines: a quoted cell holding a line break)
        yield (
            f"{source} line {error.line}",
            f"not UTF-8 text (byte 0x{error.byte:02x}); save the file as CSV UTF-8",
        )
    except csv.Error as error:
        yield f"{source} row {number + 1}", f"malformed CSV: {error}"


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except pa.ArrowException as error:
        raise InputError([f"{path}: not a Parquet file: {error}"]) from None
    except OSError as error:
        raise _cannot_read(path, error) from None
    with parquet:
        names = list(parquet.schema_arrow.names)
        _check_columns(str(path), names)
        number = 0
        batches = parquet.iter_batches(batch_size=PARQUET_ROWS)
        while True:
            try:
                batch = next(batches, None)
            except pa.ArrowException as error:
                yield f"{path} row {number + 1}", f"unreadable: {error}"
                return
            if batch is None:
                return
            columns = [column.to_pylist() for column in batch.columns]
            for values in zip(*columns, strict=True):
                number += 1
                where = f"{path} row {number}"
                raw = _present(names, values)
                floats = [name for name, value in raw.items() if isinstance(value, float)]
                if floats:
                    yield (
                        where,
                        "; ".join(
                            f"{name}: a binary floating-point value ({raw[name]!r}) is inexact; "
                            "write quantities and amounts as strings or decimals"
                            for name in floats
                        ),
                    )
                    continue
                yield where, raw
