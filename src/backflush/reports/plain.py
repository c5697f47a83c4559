"""Big tables drawn fast: the lines Rich draws for a table at its natural width.

Rich lays a table out cell by cell (measuring, wrapping, cropping): a valuation of thousands
of items takes seconds, the journal of one period of a book of a million events (hundreds of
thousands of lines) minutes. These functions draw the same box (Rich's default, heavy head,
or the simple head of tables without vertical rules) with columns at the width of their
contents, one line per row (or per line of its tallest cell): when the table fits the console
that is exactly what Rich prints without a terminal; a wider table is not wrapped or cut to
the console's width (a journal stays one line per journal line, nothing elided).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rich import box
from rich.box import HEAVY_HEAD, Box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import render
from rich.table import Table

#: Tables with more rows than this are drawn here even when they do not fit the console.
LARGE = 1000

#: A row of cells, or None: a line between two sections.
Row = Sequence[str] | None


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


@dataclass(frozen=True, slots=True)
class Frame:
    """How a table is framed: its box (Rich's), whether its outer cells are padded, whether
    the padding of neighbouring cells collapses into one space, each column's least width."""

    box: Box = HEAVY_HEAD
    pad_edge: bool = True
    collapse_padding: bool = False
    min_widths: Sequence[int] = ()


def lines(
    title: str,
    header: Sequence[str],
    right: Sequence[bool],
    rows: Iterable[Row],
    frame: Frame = Frame(),
) -> Iterator[str]:
    """The table's lines: ``title`` above it (plain text), ``header`` and ``rows`` of plain
    text, columns flagged in ``right`` justified right."""
    kept = list(rows)
    while kept and kept[-1] is None:  # no line between the last section and the bottom
        kept.pop()
    cells = [row for row in kept if row is not None]
    least = list(frame.min_widths) or [0] * len(header)
    widths = [
        max((_width(h), floor, *(_cell_width(c) for c in column)))
        for h, floor, column in zip(
            header,
            least,
            zip(*cells, strict=True) if cells else [()] * len(header),
            strict=True,
        )
    ]
    ascii_only = all(c.isascii() for row in cells for c in row)
    # Each column's padding (left, right) as Rich pads cells of padding (0, 1, 0, 1).
    last = len(widths) - 1
    pads = [
        (
            0 if (n == 0 and not frame.pad_edge) or (n > 0 and frame.collapse_padding) else 1,
            0 if n == last and not frame.pad_edge else 1,
        )
        for n in range(len(widths))
    ]
    spans = [left + width + right for width, (left, right) in zip(widths, pads, strict=True)]
    b = frame.box

    def draw_row(row: Sequence[str]) -> Iterator[str]:
        """A row's lines: a cell of several lines (split at newlines) makes the row as tall,
        its other cells blank below their text."""
        edges = (b.mid_left, b.mid_vertical, b.mid_right)
        if not any("\n" in cell for cell in row):
            yield draw(row, edges)
            return
        parts = [cell.split("\n") for cell in row]
        for n in range(max(map(len, parts))):
            yield draw([part[n] if n < len(part) else "" for part in parts], edges)

    margins = [(" " * before, " " * after) for before, after in pads]

    def draw(row: Sequence[str], edges: tuple[str, str, str]) -> str:
        if ascii_only:
            padded = [
                before + (cell.rjust(width) if flush_right else cell.ljust(width)) + after
                for cell, width, (before, after), flush_right in zip(
                    row, widths, margins, right, strict=True
                )
            ]
        else:
            padded = []
            for cell, width, (before, after), flush_right in zip(
                row, widths, margins, right, strict=True
            ):
                pad = " " * (width - _width(cell))
                padded.append(before + (pad + cell if flush_right else cell + pad) + after)
        start, between, end = edges
        return start + between.join(padded) + end

    def rule(left: str, line: str, cross: str, end: str) -> str:
        return left + cross.join(line * span for span in spans) + end

    total = sum(spans) + len(spans) + 1
    if title:
        yield title + " " * (total - _width(title))
    yield rule(b.top_left, b.top, b.top_divider, b.top_right)
    yield draw(header, (b.head_left, b.head_vertical, b.head_right))
    yield rule(b.head_row_left, b.head_row_horizontal, b.head_row_cross, b.head_row_right)
    between = rule(b.row_left, b.row_horizontal, b.row_cross, b.row_right)
    for row in kept:
        if row is None:
            yield between
        else:
            yield from draw_row(row)
    yield rule(b.bottom_left, b.bottom, b.bottom_divider, b.bottom_right)


def _cell_width(cell: str) -> int:
    return max(map(_width, cell.split("\n"))) if "\n" in cell else _width(cell)


def _plain(cell: object) -> str | None:
    """A cell's text without markup (lines split at newlines); None for a cell not text."""
    if not isinstance(cell, str):
        return None
    return cell if "[" not in cell else render(cell, emoji=False).plain


def table_lines(table: Table) -> Iterator[str] | None:
    """The lines of a Rich ``table`` made as the reports make theirs (Rich's default box or
    the simple head, header, edges, default padding; text cells; a plain title); None when
    it is made otherwise."""
    if (
        table.box not in (box.HEAVY_HEAD, box.SIMPLE_HEAD)
        or table.safe_box
        or not table.show_header
        or not table.show_edge
        or table.show_footer
        or table.show_lines
        or table.leading
        or table.padding != (0, 1, 0, 1)
        or table.caption
        or table.expand
        or table.min_width
        or table.width
        or not isinstance(table.title or "", str)
        or (table.title_justify not in ("left", "default") and table.title)
    ):
        return None
    header = [_plain(c.header) for c in table.columns]
    right = [c.justify == "right" for c in table.columns]
    if any(h is None or "\n" in h for h in header) or any(
        c.justify not in ("left", "right", "default") or c.max_width or c.width
        for c in table.columns
    ):
        return None
    rows: list[Row] = []
    cells = [c._cells for c in table.columns]
    for n, row in enumerate(table.rows):
        found = [_plain(column[n]) for column in cells]
        if any(c is None for c in found):
            return None
        rows.append(found)  # type: ignore[arg-type]
        if row.end_section:
            rows.append(None)
    title = _plain(table.title or "")
    if title is None or "\n" in title:
        return None
    frame = Frame(
        table.box,
        table.pad_edge,
        table.collapse_padding,
        [c.min_width or 0 for c in table.columns],
    )
    return lines(title, header, right, rows, frame)  # type: ignore[arg-type]


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` as Rich would; drawn here when that gives the same text (no terminal,
    the table fits) or when it is large (see the module's docstring)."""
    if table.row_count > LARGE or not console.is_terminal:
        found = table_lines(table)
        if found is not None:
            drawn = list(found)
            widest = max(_width(line) for line in drawn)
            title_wraps = bool(table.title) and _width(drawn[0].rstrip()) > _width(drawn[1])
            if table.row_count > LARGE or (widest <= console.width and not title_wraps):
                write_lines(console, drawn)
                return
    console.print(table)


def write_lines(console: Console, found: Iterable[str]) -> None:
    """Write lines to the console's file as they are (no markup, no wrapping)."""
    file = console.file
    batch: list[str] = []
    for line in found:
        batch.append(line)
        if len(batch) >= 10_000:
            file.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        file.write("\n".join(batch) + "\n")
