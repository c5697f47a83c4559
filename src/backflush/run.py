"""Run a scenario in memory: the book folded from a scenario's events."""

from __future__ import annotations

from backflush.book import Book
from backflush.formats.scenario import Scenario


def run_scenario(scenario: Scenario) -> Book:
    book = Book(scenario.settings, scenario.master)
    book.post_many(scenario.events)
    return book
