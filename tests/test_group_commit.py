"""Group commit on a kept book (issue 6): random streams cut into postings of one to three
events, posted a few postings per transaction (:meth:`Store.post_each`), give what posting
them one at a time on a store that loads its book for every write gives: the same answers,
refusals included, the same kept book as a load, the same tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backflush.domain import model as m
from backflush.store.repository import Posting, Store
from helpers import dump_tables
from test_kept_book import kept, loaded, state
from test_properties import Plant, Stream, budget, plants

CLOSING = ("close", "reopen")


def tables(store: Store) -> dict[str, Any]:
    """Every table; queued shortages by their order, not their numbers (a group numbers
    them from where the group began)."""
    found = dump_tables(store, times=False)
    rows = sorted(found["shortages"], key=lambda r: r[0])
    found["shortages"] = sorted((n, *r[1:]) for n, r in enumerate(rows))
    return found


def check_groups(data: st.DataObject, open_store: Callable[[str], Store]) -> None:
    plant: Plant = data.draw(plants(), label="plant")
    stream = Stream(data, plant, backdating=data.draw(st.booleans(), label="backdating"))
    stream.run(data.draw(st.integers(1, 30), label="steps"))
    events = [e for e, _ in stream.posted]
    if data.draw(st.booleans(), label="shuffle"):  # refusals in new places
        events = data.draw(st.permutations(events), label="order")
    postings: list[list[m.Event]] = []
    while len(events) > sum(map(len, postings)):
        start = sum(map(len, postings))
        postings.append(events[start : start + data.draw(st.integers(1, 3), label="size")])
    grouped, alone = open_store("grouped"), open_store("alone")
    alone.keep_book = False
    try:
        for store in (grouped, alone):
            store.import_scenario(plant.settings, plant.master, [])
        while postings:
            size = data.draw(st.integers(1, 4), label="group")
            group, postings = postings[:size], postings[size:]
            outcomes = grouped.post_each([Posting(lambda _c, _b, _k, p=p: p) for p in group])
            # A close or reopen is posted after the rest of its group.
            pairs = sorted(
                zip(group, outcomes, strict=True),
                key=lambda pair: any(e.type in CLOSING for e in pair[0]),
            )
            for posting, outcome in pairs:
                try:
                    expected: Any = alone.post(posting)
                except Exception as error:
                    assert type(outcome) is type(error), (posting, outcome, error)
                else:
                    assert outcome == expected, (posting, outcome, expected)
            book = kept(grouped)
            if book is not None:
                assert state(book) == state(loaded(grouped))
            assert tables(grouped) == tables(alone)
    finally:
        grouped.close()
        alone.close()


@given(data=st.data())
@budget(15)
def test_groups_on_a_kept_book_equal_postings_one_by_one(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("groups")
    check_groups(data, lambda name: Store(str(folder / f"{name}.db")))


@pytest.mark.postgres
@given(data=st.data())
@budget(10)
def test_groups_on_a_kept_book_equal_postings_one_by_one_on_postgresql(
    data: st.DataObject, pg_cluster: Any
) -> None:
    check_groups(data, lambda name: Store(pg_cluster.url(pg_cluster.create_database(name))))
