"""The group writer in a process of its own (``backflush serve --writer process``).

In one process the event loop (parsing and answering HTTP) and the writer thread (posting)
take turns under the GIL, so a server posting single events spends much of each group
commit with one core idle. Here the writer (:class:`GroupWriter`, with its own store and
kept book) runs in a child process, spawned as a fresh interpreter: requests travel to it as
:class:`EventRequest` over a pipe, and each comes back as its :class:`Answer` or its
:class:`Problem`. Everything else (reads, master data, the web pages' forms) stays in the
server's process; what it writes bumps the book's revision, which tells the child to read
the book again, as any other writer's write would.

A child that dies (killed, out of memory) fails the requests in flight with a 503 (sent
again, an event id or an Idempotency-Key keeps them from being applied twice) and is started
again; until it is ready, posts get a 503 too, and so does ``GET /health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import logging
import multiprocessing
import signal
import threading
import time
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from backflush.api.posting import EventRequest, posting, refusal
from backflush.api.problems import RETRY_AFTER, Problem, problem_of
from backflush.api.writer import GroupWriter
from backflush.store.repository import Answer, Store, StoreError

log = logging.getLogger("backflush.api")

#: Seconds the child may take to load the book (else the server gives up starting it), and
#: to post what it holds when stopped (else it is killed).
START_TIMEOUT = 600.0
#: Seconds between tries to start a child again that could not start (the database down):
#: the first, doubled after each failure up to the last.
RESTART_DELAYS = (1.0, 30.0)


def _unavailable(why: str) -> Problem:
    return Problem(
        503,
        "unavailable",
        f"{why}; send the request again (an event already recorded, or one sent under the "
        "same Idempotency-Key, is not applied twice)",
        headers={"Retry-After": RETRY_AFTER},
    )


class WriterProcess:
    """Posts the API's events through a :class:`GroupWriter` in a child process (see the
    module)."""

    def __init__(
        self,
        db_url: str,
        *,
        start_timeout: float = START_TIMEOUT,  # float-ok (seconds)
    ) -> None:
        self.db_url = db_url
        self.start_timeout = start_timeout
        self._numbers = itertools.count()
        #: Requests sent and not answered yet: their loop and future, by number.
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = {}
        #: Requests to send at the end of the event loop's turn, together.
        self._outbox: list[tuple[int, EventRequest]] = []
        self._lock = threading.Lock()  # the pipe's sending end, _waiting, _outbox, the state
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        """The child's process id (None: not running)."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    @property
    def ready(self) -> bool:
        return self._pipe is not None and not self._stopping

    def start(self) -> None:
        """Start the child and wait until its book is loaded; what stopped it is raised (a
        :class:`StoreError`)."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve, args=(theirs, self.db_url), name="backflush-writer", daemon=True
        )
        process.start()
        theirs.close()
        try:
            ready = ours.recv() if ours.poll(self.start_timeout) else None
        except EOFError:
            ready = None
        if ready != "ready":
            ours.close()
            process.join(5)
            if process.is_alive():
                process.kill()
            why = ready if isinstance(ready, str) else f"exit code {process.exitcode}"
            raise StoreError(f"the writer process could not start: {why}")
        with self._lock:
            first = self._process is None
            self._pipe, self._process, self._stopping = ours, process, False
        if first:  # full collections stop walking what the server holds for good
            gc.collect()
            gc.freeze()
        threading.Thread(
            target=self._answers, args=(ours, process), name="backflush-answers", daemon=True
        ).start()

    def stop(self) -> None:
        """Let the child post what is waiting and answer it, then end it."""
        with self._lock:
            self._stopping = True
            pipe, process = self._pipe, self._process
            if pipe is not None:
                with contextlib.suppress(OSError):  # already gone: its reader fails what waited
                    pipe.send(None)
        if process is not None:
            process.join(self.start_timeout)
            if process.is_alive():
                process.kill()
                process.join()

    async def post_events(self, request: EventRequest) -> Answer:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if self._pipe is None:
                raise _unavailable("the writer process is starting")
            number = next(self._numbers)
            self._waiting[number] = (loop, answer)
            self._outbox.append((number, request))
            if len(self._outbox) == 1:
                loop.call_soon(self._send_outbox)
        outcome = await answer
        if isinstance(outcome, Problem):
            raise outcome
        assert isinstance(outcome, Answer)
        return outcome

    def _send_outbox(self) -> None:
        """Send the requests of the event loop's turn in one message (a syscall and a wakeup
        of the child for them all, not one each)."""
        with self._lock:
            sent, self._outbox = self._outbox, []
            try:
                if self._pipe is None:
                    raise OSError("no writer process")
                self._pipe.send(sent)
                lost = []
            except OSError:  # gone: what its reader has not failed yet is failed here
                lost = [self._waiting.pop(n) for n, _request in sent if n in self._waiting]
        for _loop, answer in lost:
            _settle(answer, _unavailable("the writer process stopped"))

    def _answers(self, pipe: Connection, process: multiprocessing.process.BaseProcess) -> None:
        """Hand the answers of each group to their requests, until the child closes its end."""
        while True:
            try:
                answered: list[tuple[int, Any]] = pipe.recv()
            except (EOFError, OSError):
                break
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
            with self._lock:
                for number, outcome in answered:
                    waiting = self._waiting.pop(number, None)
                    if waiting is not None:
                        by_loop.setdefault(waiting[0], []).append((waiting[1], outcome))
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle_all, settled)
        process.join(5)
        with self._lock:
            self._pipe = None
            lost, self._waiting = self._waiting, {}
            stopping = self._stopping
        for loop, answer in lost.values():
            loop.call_soon_threadsafe(_settle, answer, _unavailable("the writer process stopped"))
        pipe.close()
        if stopping:
            return
        log.error("the writer process stopped (exit code %s); starting it again", process.exitcode)
        delay, longest = RESTART_DELAYS
        while True:  # until it starts, or the server stops
            try:
                self.start()
                return
            except StoreError as error:
                log.error("%s; events are refused (503); trying again in %g s", error, delay)
            time.sleep(delay)
            with self._lock:
                if self._stopping:
                    return
            delay = min(delay * 2, longest)


def _settle(answer: asyncio.Future[Any], outcome: Any) -> None:
    if not answer.done():  # (its request gone: the client hung up)
        answer.set_result(outcome)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for answer, outcome in settled:
        _settle(answer, outcome)


# ---------------------------------------------------------------- the child


def _serve(pipe: Connection, db_url: str) -> None:
    """The child: load the book, say so, then post each request received until told to
    stop (None) or the server is gone."""
    # Ctrl-C reaches the whole process group, as a service manager's SIGTERM does (systemd's
    # KillMode=control-group): the server stops the child after it has posted what waits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    said = logging.StreamHandler()  # (stderr, as the server's own log)
    said.setFormatter(logging.Formatter("%(levelname)-9s [writer] %(message)s"))
    ours = logging.getLogger("backflush")  # what the store and the writer say
    ours.addHandler(said)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    answers = _Answers(pipe)
    try:
        store = Store(db_url, create=False)
        writer = GroupWriter(store, after_group=answers.send)
        writer.start()
    except Exception as error:  # (said to the server, which names it)
        pipe.send(f"{type(error).__name__}: {error}")
        return
    pipe.send("ready")
    while True:
        try:
            message = pipe.recv()
        except (EOFError, OSError):  # the server is gone
            break
        if message is None:
            break
        for number, request in message:
            posted = writer.submit(posting(request), len(request.raws))
            posted.add_done_callback(functools.partial(answers.add, number, request.batch))
    writer.stop()  # posts what waits (its answers are sent)
    store.close()
    pipe.close()


class _Answers:
    """The answers of a group, sent to the server together once the group is posted."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.answered: list[tuple[int, Answer | Problem]] = []
        self.lock = threading.Lock()

    def add(self, number: int, batch: bool, posted: Future[Any]) -> None:
        try:
            outcome = posted.result()
        except Exception as error:  # the database failed the group
            outcome = error
        if isinstance(outcome, Exception):
            outcome = refusal(outcome, batch) or problem_of(outcome)
        with self.lock:
            self.answered.append((number, outcome))

    def send(self) -> None:
        with self.lock:
            answered, self.answered = self.answered, []
            if answered:
                with contextlib.suppress(OSError):  # (the server is gone)
                    self.pipe.send(answered)
