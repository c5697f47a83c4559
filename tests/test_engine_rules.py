"""Focused rules of the engine, each with figures computed by hand (regressions found by the
property tests in test_properties.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from backflush.book import Book
from backflush.domain.model import (
    Account,
    Bom,
    BomLine,
    Close,
    Completion,
    Conversion,
    Count,
    Flush,
    Issue,
    Item,
    Kind,
    MasterData,
    Policy,
    Purchase,
    Settings,
    Shortage,
)
from backflush.engine.flush import PostingError
from backflush.store.repository import Store

D = Decimal


def day(n: int, month: int = 1) -> dt.date:
    return dt.date(2026, month, n)


def master(items: list[Item], boms: dict[str, list[BomLine]]) -> MasterData:
    return MasterData(
        {item.id: item for item in items},
        {parent: (Bom(parent, tuple(lines)),) for parent, lines in boms.items()},
    )


def balance(book: Book, account: Account) -> Decimal:
    return sum((v for (a, _), v in book.balances.items() if a is account), D(0))


def test_subassembly_made_of_a_finished_good_is_not_costed_at_completion() -> None:
    """KIT is a finished good costed at completion (3.00 = 2.00 of M + 1.00 conversion); SUB,
    a subassembly of 1 KIT + 2 M + 0.50 conversion, must post nothing when completed: its value
    stays where its parts sit. (It used to be costed into finished goods because its first
    part sits in finished goods, crediting RIP for material still in stock.)"""
    plant = master(
        [
            Item("M", Kind.MATERIAL, material_cost=D("2.00")),
            Item("KIT", Kind.FINISHED, conversion=(("", D("1.00")),)),
            Item("SUB", Kind.SUBASSEMBLY, conversion=(("", D("0.50")),)),
            Item("BIG", Kind.FINISHED, conversion=(("", D("3.00")),)),
        ],
        {
            "KIT": [BomLine("M", D(1))],
            "SUB": [BomLine("KIT", D(1)), BomLine("M", D(2))],
            "BIG": [BomLine("SUB", D(1))],
        },
    )
    book = Book(Settings("kits", triggers=Policy.PURCHASE_COMPLETION), plant)
    book.post(Purchase("p", day(2), "M", D(10), D("2.00")))  # RIP 20.00
    book.post(Completion("kit", day(3), "KIT", D(2)))  # RIP -4.00, CA -2.00, FG +6.00
    entries = len(book.journal)
    book.post(Completion("sub", day(4), "SUB", D(1)))
    assert len(book.journal) == entries  # no entry: a subassembly is not costed
    assert book.quantity("SUB") == 1 and book.quantity("KIT") == 1 and book.quantity("M") == 6
    # FG: 1 KIT on hand + 1 KIT inside SUB at 3.00; RIP: 6 M on hand + 2 M inside SUB at 2.00.
    assert balance(book, Account.FINISHED_GOODS) == D("6.00")
    assert balance(book, Account.RAW_IN_PROCESS) == D("16.00")
    # BIG takes SUB's parts out of FG (3.00), RIP (4.00) and allocates SUB's and its own
    # conversion (0.50 + 3.00): FG = 6.00 - 3.00 + 10.50.
    book.post(Completion("big", day(5), "BIG", D(1)))
    assert balance(book, Account.FINISHED_GOODS) == D("13.50")
    assert balance(book, Account.RAW_IN_PROCESS) == D("12.00")
    assert balance(book, Account.CONVERSION_ALLOCATED) == D("-5.50")


def test_close_disposes_of_what_the_period_holds_at_its_end() -> None:
    """January's close, posted after a February conversion cost, writes off January's 100.00
    only; February's 40.00 stays in Conversion Control for February's close."""
    plant = master(
        [Item("M", Kind.MATERIAL, material_cost=D("1.00")), Item("FG", Kind.FINISHED)],
        {"FG": [BomLine("M", D(1))]},
    )
    book = Book(Settings("late close"), plant)
    book.post(Conversion("jan", day(31), D("100.00"), "labor"))
    book.post(Conversion("feb", day(2, 2), D("40.00"), "labor"))
    book.post(Close("close-jan", day(31), "2026-01"))
    january = book.closed["2026-01"]
    assert dict(january.variances)["conversion"] == D("100.00")
    assert dict(january.balances) == {"accrued_conversion": D("-100.00"), "cogs": D("100.00")}
    assert balance(book, Account.COGS) == D("100.00")
    assert balance(book, Account.CONVERSION_CONTROL) == D("40.00")
    assert book.activity["2026-01"][(Account.COGS, "")] == D("100.00")
    book.post(Close("close-feb", day(28, 2), "2026-02"))
    assert dict(book.closed["2026-02"].variances)["conversion"] == D("40.00")
    assert balance(book, Account.COGS) == D("140.00")
    assert balance(book, Account.CONVERSION_CONTROL) == 0


def test_off_book_stock_counts_units_in_process_and_queued_consumption() -> None:
    """Under the completion trigger M (2.00) is off the books until used; a SUB (1 M + 1.00
    conversion, issued manually) holds 2.00 of material and 1.00 of unallocated conversion, in
    stock or in process alike. M still owed to the shortage queue is already inside the SUBs:
    it counts against M's off-book stock."""
    plant = master(
        [
            Item("M", Kind.MATERIAL, material_cost=D("2.00")),
            Item("SUB", Kind.SUBASSEMBLY, flush=Flush.MANUAL, conversion=(("", D("1.00")),)),
            Item("FG", Kind.FINISHED, conversion=(("", D("0.50")),)),
        ],
        {"SUB": [BomLine("M", D(1))], "FG": [BomLine("SUB", D(1)), BomLine("M", D(1))]},
    )
    book = Book(Settings("consigned", triggers=Policy.COMPLETION), plant)
    book.post(Purchase("p", day(2), "M", D(5), D("2.10")))
    book.post(Completion("sub", day(3), "SUB", D(2)))
    book.post(Issue("issue", day(4), "SUB", D(1)))
    # M: 3 x 2.00; SUB: 1 on hand + 1 in process, x (2.00 + 1.00).
    assert book.off_book() == {"M": D("6.00"), "SUB": D("6.00")}
    # FG takes the SUB in process and 1 M: 2.00 + 1.00 + 2.00 + 0.50 into finished goods.
    book.post(Completion("fg", day(5), "FG", D(1)))
    assert balance(book, Account.FINISHED_GOODS) == D("5.50")
    assert balance(book, Account.ACCOUNTS_PAYABLE) == D("-4.00")
    # 4 more SUB need 4 M; 2 are on hand, 2 wait in the queue.
    book.post(Completion("sub2", day(6), "SUB", D(4)))
    assert [(s.item, s.open) for s in book.open_shortages()] == [("M", D(2))]
    # Bought 5 M (10.00 at standard), 4.00 recognised: 6.00 of material is off the books, all
    # of it inside the 5 SUB (10.00) less the 2 M they still owe (-4.00); plus SUB conversion.
    assert book.off_book() == {"M": D("-4.00"), "SUB": D("15.00")}
    # The 2 M arrive and are taken by the queue: nothing left to owe.
    book.post(Purchase("p2", day(7), "M", D(2), D("2.00")))
    assert book.open_shortages() == []
    assert book.off_book() == {"SUB": D("15.00")}


def test_count_is_what_is_on_hand_even_with_consumption_queued() -> None:
    """5 FG were completed with no M in the book (5 M queued, RIP credited 10.00). A count then
    finds 10 M on the shelf: production took 5 the book never had, so the book gains 15
    (30.00 favourable usage), the queue clears and the book holds the 10 counted. The same
    count again changes nothing. (The count used to gain only 10, leave 5 in the book, and
    every recount gained 5 more.)"""
    plant = master(
        [Item("M", Kind.MATERIAL, material_cost=D("2.00")), Item("FG", Kind.FINISHED)],
        {"FG": [BomLine("M", D(1))]},
    )
    book = Book(Settings("recount"), plant)
    book.post(Completion("fg", day(2), "FG", D(5)))
    assert [(s.item, s.open) for s in book.open_shortages()] == [("M", D(5))]
    assert balance(book, Account.RAW_IN_PROCESS) == D("-10.00")
    book.post(Count("count", day(3), "M", D(10)))
    assert book.quantity("M") == 10
    assert book.open_shortages() == []
    assert balance(book, Account.RAW_IN_PROCESS) == D("20.00")  # 10 M at 2.00
    assert balance(book, Account.MATERIAL_USAGE_VARIANCE) == D("-30.00")
    entries = len(book.journal)
    book.post(Count("recount", day(4), "M", D(10)))
    assert len(book.journal) == entries
    assert book.quantity("M") == 10


def test_a_count_dated_before_its_items_stock_last_moved_is_refused(tmp_path: Path) -> None:
    """100 M received on the 20th; a count of 0 dated the 10th (true then) posted afterwards
    compared with the 100 on hand now and wrote them all off. It is refused; one dated the
    20th or later is compared as before. A stored book keeps the date (and a migrated one
    finds it in its movements: tests/test_late_close.py)."""
    plant = master([Item("M", Kind.MATERIAL, material_cost=D("2.00"))], {})
    book = Book(Settings("backdated"), plant)
    book.post(Purchase("p", day(20), "M", D(100), D("2.00")))
    with pytest.raises(PostingError, match="a count of 'M' dated 2026-01-10, before its stock"):
        book.post(Count("early", day(10), "M", D(0)))
    assert book.quantity("M") == 100
    assert book.post(Count("count", day(20), "M", D(98)))
    store = Store(str(tmp_path / "book.db"))
    store.import_scenario(book.settings, plant, [Purchase("p", day(20), "M", D(100), D("2"))])
    store.close()
    again = Store(str(tmp_path / "book.db"), create=False)
    with pytest.raises(PostingError, match="before its stock moved on 2026-01-20"):
        again.post([Count("early", day(10), "M", D(0))])
    again.close()


def glue_plant(shortage: Shortage) -> Book:
    """F = 1 M (backward) + 4 G (manual, issued by hand); M 4.00, G 0.25, F conversion 1.00."""
    plant = master(
        [
            Item("M", Kind.MATERIAL, material_cost=D("4.00")),
            Item("G", Kind.MATERIAL, flush=Flush.MANUAL, material_cost=D("0.25")),
            Item("F", Kind.FINISHED, conversion=(("", D("1.00")),)),
        ],
        {"F": [BomLine("M", D(1)), BomLine("G", D(4))]},
    )
    book = Book(Settings("Glue", shortage=shortage), plant)
    book.post_many(
        [
            Purchase("pm", day(2), "M", D(10), D("4.00")),
            Purchase("pg", day(2), "G", D(100), D("0.25")),
            Issue("ig", day(3), "G", D(12)),  # enough for 3 units, not 5
        ]
    )
    return book


def test_a_manual_line_consumed_beyond_what_was_issued_is_refused_under_reject() -> None:
    book = glue_plant(Shortage.REJECT)
    with pytest.raises(PostingError, match=r"needs 20 of 'G' issued to production but only 12"):
        book.post(Completion("c", day(4), "F", D(5)))
    assert book.in_process == {"G": D(12)}
    assert "c" not in book.recorded


def test_a_manual_line_consumed_beyond_what_was_issued_is_flagged_until_issued() -> None:
    book = glue_plant(Shortage.QUEUE)
    book.post(Completion("c", day(4), "F", D(5)))
    assert book.in_process["G"] == D(-8)
    (flag,) = book.shortages.values()
    assert (flag.kind, flag.item, flag.quantity, flag.status) == ("unissued", "G", D(8), "flagged")
    # Money does not wait: FG 5 x 6.00; RIP credited 5 x (4.00 + 1.00) whether issued or not.
    fg = sum((v for (a, _), v in book.balances.items() if a is Account.FINISHED_GOODS), D(0))
    assert fg == D("30.00")
    book.post(Issue("late", day(5), "G", D(8)))
    assert book.in_process["G"] == 0
    assert book.quantity("G") == 80
