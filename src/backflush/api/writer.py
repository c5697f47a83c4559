"""Group commit for the HTTP API: one thread posts what concurrent requests send.

Every write to a book is serialised by its write lock; a request holding the lock alone pays
for a transaction and a commit per event. The writer thread instead takes every request
waiting and posts them together (:meth:`Store.post_each`): one lock, one commit for all, each
request still all or nothing and answered on its own. Under light load a group is one
request, so nothing waits for a group to fill.

The book the store keeps between writes is large and long-lived. A server starting the
writer (:meth:`GroupWriter.start`) loads it first, then moves every object alive into the
collector's permanent generation (``gc.freeze``), so full collections stop walking the book
(they made the slowest 1% of requests several times slower). That happens once, before any
request: frozen garbage cycles are never collected, and only then is nothing in flight. A
book loaded later (after another process wrote) is not frozen; a frozen book dropped is freed
by its reference count (it holds no cycle: ``tests/test_kept_book.py``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import OperationalError

from backflush.api.posting import EventRequest, posting, refusal
from backflush.api.problems import unavailable
from backflush.store.repository import Answer, Posting, Store, database_reason

_T = TypeVar("_T")
log = logging.getLogger("backflush.api")

#: Most events one group commit takes (more requests wait for the next).
GROUP_EVENTS = 10_000


@dataclass(slots=True)
class _Request:
    posting: Posting[Any]
    events: int
    answer: Future[Any]


class EventWriter(Protocol):
    """What posts the API's events: :class:`GroupWriter` in the server's process, or
    :class:`backflush.api.process.WriterProcess` in a process of its own."""

    @property
    def ready(self) -> bool:
        """Events can be posted now (``GET /health`` says so)."""

    async def post_events(self, request: EventRequest) -> Answer:
        """The request's answer; a refusal raises its :class:`Problem`."""

    def start(self) -> None:
        """Ready to post: for a server starting, before it takes requests."""

    def stop(self) -> None:
        """Post what is waiting, then stop."""


class GroupWriter:
    """Posts requests' events through one thread, in groups (see the module)."""

    def __init__(
        self,
        store: Store,
        *,
        group_events: int = GROUP_EVENTS,
        after_group: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.group_events = group_events
        #: Called once a group's answers are all set (a writer process sends them then).
        self.after_group = after_group
        self._waiting: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    @property
    def ready(self) -> bool:
        return True  # (its thread starts when a request comes)

    async def post_events(self, request: EventRequest) -> Answer:
        try:
            return await self.post(posting(request), len(request.raws))
        except Exception as error:
            refused = refusal(error, request.batch)
            if refused is None:
                raise
            raise refused from None

    async def post(self, posting: Posting[_T], events: int) -> _T:
        """Post one request's events; what its ``done`` answered, or what refused it is
        raised."""
        outcome = await asyncio.wrap_future(self.submit(posting, events))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def submit(self, posting: Posting[_T], events: int) -> Future[_T | Exception]:
        """Queue one request's events for the next group: the future of what ``done``
        answered, or of the exception that refused the posting (raised: the database failed
        the whole group)."""
        request = _Request(posting, events, Future())
        self._running()
        self._waiting.put(request)
        return request.answer

    def start(self) -> None:
        """Load the book and freeze what is alive (see the module), then start the thread:
        for a server starting, before it takes requests."""
        self.store.warm()
        gc.collect()
        gc.freeze()
        self._running()

    def stop(self) -> None:
        """Post what is waiting, then end the thread."""
        with self._start:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._waiting.put(None)
            thread.join()

    def _running(self) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="backflush-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            group, events, last = [first], first.events, False
            while events < self.group_events:
                try:
                    more = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    last = True
                    break
                group.append(more)
                events += more.events
            self._post(group)
            if last:
                return

    def _post(self, group: list[_Request]) -> None:
        # A request given up while it waited (its future cancelled) is not posted; the others
        # can no longer be cancelled, so their answers can always be set.
        group = [r for r in group if r.answer.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            outcomes = self.store.post_each([r.posting for r in group])
        except Exception as error:  # the database failed them all
            if isinstance(error, OperationalError) and unavailable(error):
                # (its requests are answered 503, each said once)
                said = database_reason(error)
                log.warning("group commit of %d requests failed: %s", len(group), said)
            else:
                log.exception("group commit of %d requests failed", len(group))
            for request in group:
                request.answer.set_exception(error)
        else:
            for request, outcome in zip(group, outcomes, strict=True):
                request.answer.set_result(outcome)
        if self.after_group is not None:
            self.after_group()
