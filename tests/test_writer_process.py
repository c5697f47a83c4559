"""The group writer in a process of its own (``backflush serve --writer process``), through the
real command on SQLite and PostgreSQL: it posts, a child killed is started again (requests
meanwhile answered 503, to send again), and the server stops it when it stops.
``tests/test_api.py`` runs every API test with both writers."""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backflush.api.app import create_app
from backflush.api.problems import Problem
from backflush.api.process import WriterProcess
from backflush.store.repository import Store, StoreError
from helpers import serving, widgets_book

ROOT = Path(__file__).resolve().parent.parent
COMPLETION = {"date": "2026-01-15", "type": "completion", "item": "W", "quantity": "2"}


def _writers(server: int) -> list[int]:
    """The server's writer processes (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == server and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def _until(what: str, check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {seconds} s")
        time.sleep(0.05)


@contextmanager
def served(db_url: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "backflush", "serve", "--db", db_url, "--port", str(port)]
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*command, "--writer", "process", "--no-access-log"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert server.poll() is None, log.read_text()
            try:
                return httpx.get(f"{base}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _until("serving", up)
        yield server, base
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_writer_process_killed_is_started_again_and_nothing_is_posted_twice(
    db_url: str, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {widgets_book(db_url)}"}
    log = tmp_path / "server.log"
    with served(db_url, log) as (server, base), httpx.Client(base_url=base, timeout=30) as client:
        first = client.post("/events", json={"id": "c1", **COMPLETION}, headers=auth)
        assert first.status_code == 201, first.text
        assert first.json()["recorded_by"] == "line 1"
        [writer] = _writers(server.pid)

        os.kill(writer, signal.SIGKILL)
        sent = {"id": "c2", **COMPLETION}
        key = {**auth, "Idempotency-Key": "k2"}
        statuses = []
        while True:  # 503 (to send again) until the new writer is ready
            answer = client.post("/events", json=sent, headers=key)
            statuses.append(answer.status_code)
            if answer.status_code != 503:
                break
            problem = answer.json()
            assert problem["type"].endswith("/unavailable"), problem
            assert "send the request again" in problem["detail"]
            assert answer.headers["Retry-After"]
            assert len(statuses) < 600, "the writer process did not come back"
            time.sleep(0.1)
        assert answer.status_code == 201, answer.text
        [again] = _writers(server.pid)
        assert again != writer
        # said in the server's log as uvicorn says its own
        assert re.search(r"^ERROR: +the writer process stopped", log.read_text(), re.MULTILINE)

        replay = client.post("/events", json=sent, headers=key)  # posted once: the first answer
        assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
        assert replay.json() == answer.json()
        refused = client.post("/events", json={**sent, "id": "c3", "item": "NOPE"}, headers=auth)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "item"

        server.send_signal(signal.SIGTERM)  # stops the writer after what it was given
        # (uvicorn shuts down, then takes the signal again: its exit says how it was stopped)
        assert server.wait(60) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text()
        _until("the writer gone", lambda: not Path(f"/proc/{again}").exists(), 10)

    store = Store(db_url, create=False)
    try:
        book = store.load()
        assert book.quantity("W") == 4  # c1 and c2, each once
    finally:
        store.close()


def test_a_writer_that_cannot_start_again_keeps_trying_and_a_group_sigterm_drains(
    tmp_path: Path,
) -> None:
    """The writer killed while its book cannot be opened (the database away) is tried again
    and again, requests answered 503 meanwhile, until the book is back; a SIGTERM to the
    whole process group (a service manager stopping the server) stops the writer through the
    server, after what it was given, not as a crash to recover from."""
    db = tmp_path / "book.db"
    auth = {"Authorization": f"Bearer {widgets_book(f'sqlite:///{db}')}"}
    log = tmp_path / "server.log"
    with (
        served(f"sqlite:///{db}", log) as (server, base),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        [writer] = _writers(server.pid)
        away = tmp_path / "away.db"
        db.rename(away)
        os.kill(writer, signal.SIGKILL)
        _until("tried again", lambda: log.read_text().count("trying again in") >= 2, 30)
        down = client.post("/events", json={"id": "c1", **COMPLETION}, headers=auth)
        assert down.status_code == 503 and down.headers["Retry-After"], down.text
        assert client.get("/health").status_code == 503
        away.rename(db)
        _until("started again", lambda: client.get("/health").status_code == 200, 60)
        posted = client.post("/events", json={"id": "c1", **COMPLETION}, headers=auth)
        assert posted.status_code == 201, posted.text
        [again] = _writers(server.pid)
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(60) in (0, -signal.SIGTERM), log.read_text()
        said = log.read_text()
        assert "Application shutdown complete" in said
        assert said.count("the writer process stopped") == 1  # the kill above, not the SIGTERM
        assert "Traceback" not in said, said
        _until("the writer gone", lambda: not Path(f"/proc/{again}").exists(), 10)
    store = Store(f"sqlite:///{db}", create=False)
    try:
        assert store.load().quantity("W") == 2
    finally:
        store.close()


def test_health_says_unavailable_while_the_writer_process_is_not_running(
    db_url: str,
) -> None:
    widgets_book(db_url)
    app = create_app(db_url, writer_process=True)
    try:
        with serving(app) as base:
            assert httpx.get(f"{base}/health").status_code == 503  # not started yet
            app.state.writer.start()
            assert httpx.get(f"{base}/health").json() == {"status": "ok"}
            app.state.writer.stop()
            answer = httpx.get(f"{base}/health")
            assert answer.status_code == 503
            assert answer.json()["detail"] == "events cannot be posted: the writer is not running"
    finally:
        app.state.store.close()


def test_a_writer_process_that_cannot_open_the_book_says_why(tmp_path: Path) -> None:
    writer = WriterProcess(f"sqlite:///{tmp_path / 'missing' / 'book.db'}", start_timeout=60)
    with pytest.raises(StoreError, match=r"the writer process could not start: .*book"):
        writer.start()
    assert writer.pid is None


def test_a_problem_travels_whole_between_processes() -> None:
    sent = Problem(
        401,
        "unauthenticated",
        "unknown or revoked token",
        [{"location": "header", "field": "Authorization", "detail": "unknown"}],
        headers={"WWW-Authenticate": "Bearer"},
    )
    found = pickle.loads(pickle.dumps(sent))
    assert isinstance(found, Problem)
    assert vars(found) == vars(sent)
    assert found.document() == sent.document()
