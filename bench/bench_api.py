"""The HTTP API under load: events per second and latency of single and batched posts.

A throwaway PostgreSQL cluster (or, with ``--sqlite``, a SQLite file) holds the plant of
``bench_writers.py`` (``--materials``, ``--products``) with ``--history`` past events and an
opening purchase of every material. ``backflush serve`` runs as a subprocess on a free loopback
port (``--writer``: its writer in a process of its own, the default on PostgreSQL, or a thread
of the server's; ``--workers N`` runs uvicorn's own ``--workers`` over the same app, as
``backflush serve`` has no such option: each process has its own group writer and kept book,
which the other's writes make stale). An operator
token is created with ``backflush.api.tokens.create_token``. Then ``--clients`` keep-alive
connections (coroutines of one asyncio loop writing HTTP/1.1 by hand, a load generator
costing little CPU) post, each one request at a time,

(a) single completions (``POST /events``, a unique id and Idempotency-Key each),
(b) batches of ``--batch`` completions (``POST /events/batch``, a key per batch),

each phase for ``--seconds`` or ``--max-events`` events, whichever comes first. Prints events/s,
requests/s, p50/p95/p99 latency, errors (any non-2xx; the first problem document is shown) and
the CPU seconds spent by the clients, the server and PostgreSQL. Then checks the book: events
stored = history + accepted posts, a replayed key answers the first answer, and
``GET /reports/trial-balance`` balances. Exits 1 when a check fails or a request failed.
Asserts nothing about time (issue 6 targets on the 2-core machine: 1,000 single completions/s
with p99 under 50 ms, 20,000 events/s in batches).

``--profile`` samples the server with py-spy (on PATH, or ``--py-spy``) for a few seconds of
each phase and prints the functions that cost most.

``--durable``: the PostgreSQL cluster runs as a production server does (fsync and
synchronous commit on); by default it runs as the tests' (off: faster, not crash-safe).

    .venv/bin/python bench/bench_api.py [--clients 16] [--seconds 15] [--quick] [--sqlite]
        [--workers 2] [--writer auto|process|thread] [--profile] [--no-access-log]
        [--batch 100] [--durable]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from bench_writers import DAY, build_book  # noqa: E402  (puts tests/ on sys.path)

from backflush.api.tokens import Role, create_token  # noqa: E402
from backflush.store import schema as t  # noqa: E402
from backflush.store.repository import Store  # noqa: E402
from pg import PgCluster, find_bindir  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
#: Where ``--profile`` keeps py-spy's samples (collapsed stacks).
PROFILE = Path(tempfile.gettempdir()) / "bench_api_profile.txt"


def say(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------- processes and CPU


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(parent pid, session id, CPU seconds) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / TICKS


def _processes() -> dict[int, tuple[int, int, float]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def _tree_cpu(root: int, processes: dict[int, tuple[int, int, float]]) -> float:
    children = collections.defaultdict(list)
    for pid, (parent, _, _) in processes.items():
        children[parent].append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            total += processes[pid][2]
        todo.extend(children[pid])
    return total


@dataclass
class Cpu:
    """CPU seconds used so far by the bench (clients), the server and PostgreSQL."""

    server_pid: int
    postmaster: int | None

    def now(self) -> dict[str, float]:
        found = _processes()
        times = os.times()
        used = {
            "clients": times.user + times.system,
            "server": _tree_cpu(self.server_pid, found),
        }
        if self.postmaster is not None:
            used["postgres"] = _tree_cpu(self.postmaster, found)
        return used


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(
    url: str, workers: int, log: Path, *, access_log: bool = True, writer: str = "auto"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``backflush serve`` (or uvicorn with ``workers`` processes) on a free loopback port, in
    its own session so that it, and its workers, can be stopped whatever happens."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench")]))
    if workers <= 1:
        command = [sys.executable, "-m", "backflush", "serve", "--db", url, "--port", str(port)]
        command += ["--writer", writer] + ([] if access_log else ["--no-access-log"])
    else:
        env["BACKFLUSH_DB"] = url
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "_api_app:make",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{_tail(log)}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /health in 60 s:\n{_tail(log)}")
            time.sleep(0.1)
        yield process, base
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError):  # workers left behind by a dead parent
        os.killpg(process.pid, signal.SIGKILL)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------- the clients


@dataclass
class Outcome:
    label: str
    events: int = 0  # events the server applied (201 answers)
    requests: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    first_problem: str | None = None
    cpu: dict[str, float] = field(default_factory=dict)


def run_phase(
    label: str,
    base: str,
    secret: str,
    clients: int,
    seconds: float,
    max_requests: int,
    make: Callable[[int], tuple[str, bytes, str, int]],
    cpu: Cpu,
    during: Callable[[], None] | None = None,
) -> Outcome:
    """``clients`` connections (kept alive) sending ``make(n)`` = (path, body, key, events in
    it) for n = 0, 1, ... until ``max_requests`` requests or ``seconds``, one request at a
    time each. The clients are coroutines of one asyncio loop writing HTTP/1.1 by hand (in a
    thread of their own): a load generator costing little CPU, so that the server has the
    machine (httpx threads cost about 0.7 ms of CPU per request)."""
    outcome = Outcome(label)
    counter = itertools.count()
    host, port = base.removeprefix("http://").split(":")

    def failed(kind: str, problem: str) -> None:
        outcome.errors[kind] += 1
        outcome.first_problem = outcome.first_problem or problem

    async def client(deadline: float) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                n = next(counter)
                if n >= max_requests:
                    break
                path, body, key, _ = make(n)
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
                    f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                began = time.perf_counter()
                writer.write(head.encode() + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                outcome.latencies.append(time.perf_counter() - began)
                if 200 <= status < 300:
                    applied = json.loads(answer)["applied"]
                    outcome.events += int(applied)  # a bool (one event) or a count (a batch)
                else:
                    failed(str(status), f"{status} {answer.decode(errors='replace')}")
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as error:
            failed(type(error).__name__, repr(error))
        finally:
            writer.close()

    async def all_clients() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(client(deadline) for _ in range(clients)))

    before = cpu.now()
    began = time.perf_counter()
    loop = threading.Thread(target=asyncio.run, args=(all_clients(),), daemon=True)
    loop.start()
    if during is not None:
        during()
    loop.join()
    outcome.wall = time.perf_counter() - began
    after = cpu.now()
    outcome.cpu = {name: after[name] - before[name] for name in after}
    outcome.requests = len(outcome.latencies)
    return outcome


def show(outcome: Outcome) -> None:
    ordered = sorted(outcome.latencies) or [0.0]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

    wall = outcome.wall or 1e-9
    p50 = statistics.median(ordered) * 1000
    say(
        f"{outcome.label}: {outcome.events:,} events in {outcome.requests:,} requests, "
        f"{outcome.wall:.2f} s: {outcome.events / wall:,.0f} events/s, "
        f"{outcome.requests / wall:,.0f} requests/s; latency p50 {p50:.1f} ms, "
        f"p95 {pct(0.95):.1f} ms, "
        f"p99 {pct(0.99):.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    cpu = ", ".join(f"{name} {used:.1f}" for name, used in outcome.cpu.items())
    say(f"  CPU seconds: {cpu} (of {outcome.wall * (os.cpu_count() or 1):.1f} available)")
    errors = sum(outcome.errors.values())
    say(f"  errors: {errors}" + (f" {dict(outcome.errors)}" if errors else ""))
    if outcome.first_problem:
        say(f"  first problem: {outcome.first_problem[:2000]}")


# ---------------------------------------------------------------- profile


def profile(py_spy: str, pid: int, seconds: float, out: Path) -> None:
    """Sample ``pid`` (and its workers) for ``seconds``; print the costliest functions."""
    command = [
        py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
        "--rate", "250", "--format", "raw", "--output", str(out), "--subprocesses",
        "--nonblocking",
    ]  # fmt: skip
    subprocess.run(command, check=False, capture_output=True)
    if not out.exists():
        say("profile: py-spy wrote nothing (ptrace not allowed?)")
        return
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += samples
        own[_frame(frames[-1])] += samples
        for name in {_frame(f) for f in frames}:
            inclusive[name] += samples
    say(f"profile of the server: {total:,} samples of busy threads ({out})")
    say("  most time spent in (own):")
    for name, samples in own.most_common(15):
        say(f"    {samples / total:6.1%}  {name}")
    say("  most time spent under (inclusive, backflush, SQLAlchemy, psycopg, starlette):")
    chosen = [
        (name, samples)
        for name, samples in inclusive.most_common()
        if any(p in name for p in ("backflush", "sqlalchemy", "psycopg", "starlette", "uvicorn"))
    ]
    for name, samples in chosen[:25]:
        say(f"    {samples / total:6.1%}  {name}")


def _frame(frame: str) -> str:
    """``function (path/to/file.py:line)`` as ``function (short/path.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


# ---------------------------------------------------------------- main


def count_events(url: str) -> int:
    store = Store(url, create=False)
    try:
        with store.transaction() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.events)).scalar_one())
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--max-events", type=int, default=300_000, help="per phase")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--materials", type=int, default=200)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--history", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--writer",
        choices=("auto", "process", "thread"),
        default="auto",
        help="backflush serve --writer: events posted in a process of their own or a thread",
    )
    parser.add_argument(
        "--journal-detail",
        choices=("event", "day", "period"),
        default="event",
        help="the book's journal detail (day: a high-volume book's routine lines summed per day)",
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="backflush serve --no-access-log"
    )
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not PostgreSQL")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="PostgreSQL with fsync and synchronous commit on (default: off, as the tests)",
    )
    parser.add_argument("--quick", action="store_true", help="3 s per phase, a smoke run")
    parser.add_argument("--profile", action="store_true", help="py-spy the server (each phase)")
    beside = Path(sys.executable).with_name("py-spy")  # (installed in the virtualenv)
    found = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
    parser.add_argument("--py-spy", default=found)
    args = parser.parse_args()
    if args.profile and (args.py_spy is None or shutil.which(args.py_spy) is None):
        sys.exit("--profile: py-spy not found (on PATH or beside python; or give --py-spy)")
    if args.quick:
        args.seconds, args.history = 3.0, 1_000

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with &
    work = Path(tempfile.mkdtemp(prefix="backflush-bench-api-"))
    cluster: PgCluster | None = None
    failed = False
    try:
        if args.sqlite:
            url = f"sqlite:///{work / 'book.db'}"
        else:
            bindir = find_bindir()
            if bindir is None:
                sys.exit("PostgreSQL server binaries not found (see tests/pg.py); try --sqlite")
            cluster = PgCluster(bindir, name_prefix="backflush-bench-api-", durable=args.durable)
            cluster.start()
            say(f"PostgreSQL: fsync and synchronous_commit {'on' if args.durable else 'off'}")
            url = cluster.url(cluster.create_database("bench"))
        began = time.perf_counter()
        store = build_book(url, args.materials, args.products, args.history, args.journal_detail)
        _, secret = create_token(store, "bench-operator", Role.operator)
        store.close()
        stored_before = count_events(url)
        say(
            f"book ({'SQLite' if args.sqlite else 'PostgreSQL'}): {stored_before:,} events "
            f"({args.history:,} of history), {args.materials} materials, {args.products} "
            f"products; built in {time.perf_counter() - began:.1f} s"
        )
        server_kind = (
            "backflush serve (uvicorn, 1 process)"
            if args.workers <= 1
            else f"uvicorn --workers {args.workers} (backflush serve has no --workers)"
        )
        served = server(
            url,
            args.workers,
            work / "server.log",
            access_log=not args.no_access_log,
            writer=args.writer,
        )
        with served as (process, base):
            postmaster = None
            if cluster is not None:
                postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
            cpu = Cpu(process.pid, postmaster)
            say(f"server: {server_kind} at {base}; {args.clients} clients (asyncio)")
            headers = {"Authorization": f"Bearer {secret}"}
            limits = httpx.Limits(
                max_connections=args.clients, max_keepalive_connections=args.clients
            )
            with httpx.Client(base_url=base, headers=headers, limits=limits, timeout=120) as client:
                day = DAY.isoformat()

                def single(n: int) -> tuple[str, bytes, str, int]:
                    event = {
                        "id": f"s{n}",
                        "date": day,
                        "type": "completion",
                        "item": f"F{n % args.products}",
                        "quantity": "1",
                    }
                    return "/events", json.dumps(event).encode(), f"key-s{n}", 1

                def batch(n: int) -> tuple[str, bytes, str, int]:
                    events = [
                        {
                            "id": f"b{n}-{k}",
                            "date": day,
                            "type": "completion",
                            "item": f"F{(n + k) % args.products}",
                            "quantity": "1",
                        }
                        for k in range(args.batch)
                    ]
                    return "/events/batch", json.dumps(events).encode(), f"key-b{n}", args.batch

                def profiling(out: Path) -> Callable[[], None] | None:
                    if not args.profile:
                        return None
                    sample = min(5.0, max(1.0, args.seconds - 2))

                    def during() -> None:
                        time.sleep(1)  # past the first requests
                        profile(args.py_spy, process.pid, sample, out)

                    return during

                singles = run_phase(
                    "single completions (POST /events)", base, secret,
                    args.clients, args.seconds, args.max_events, single, cpu,
                    profiling(PROFILE),
                )  # fmt: skip
                show(singles)
                batches = run_phase(
                    f"batches of {args.batch} (POST /events/batch)", base, secret,
                    args.clients, args.seconds, args.max_events // args.batch, batch, cpu,
                    profiling(PROFILE.with_name("bench_api_profile_batches.txt")),
                )  # fmt: skip
                show(batches)
                failed = bool(singles.errors or batches.errors)

                # The book afterwards.
                say("checks:")
                stored = count_events(url)
                expected = stored_before + singles.events + batches.events
                ok = stored == expected
                failed |= not ok
                say(
                    f"  events stored {stored:,}, before + accepted {expected:,}: "
                    f"{'ok' if ok else 'MISMATCH'}"
                )
                path, body, key, _ = single(0)
                replay = client.post(
                    path, content=body, headers={"Idempotency-Key": key, **headers}
                )
                ok = replay.status_code in (200, 201) and (
                    replay.headers.get("Idempotent-Replayed") == "true"
                )
                failed |= not ok
                say(
                    f"  replay of the first key: {replay.status_code}, "
                    f"Idempotent-Replayed {replay.headers.get('Idempotent-Replayed')}: "
                    f"{'ok' if ok else 'WRONG'}"
                )
                began = time.perf_counter()
                response = client.get("/reports/trial-balance")
                took = time.perf_counter() - began
                if response.status_code != 200:
                    failed = True
                    say(f"  trial balance: {response.status_code} {response.text[:2000]}")
                else:
                    total = response.json()["total"]
                    ok = total["debit"] == total["credit"]
                    failed |= not ok
                    say(
                        f"  trial balance ({took:.1f} s): debit {total['debit']}, credit "
                        f"{total['credit']}: {'balanced' if ok else 'NOT BALANCED'}"
                    )
                if count_events(url) != stored:
                    failed = True
                    say("  the replay stored an event: WRONG")
    except KeyboardInterrupt:
        say("interrupted: stopping the server and the cluster")
        failed = True
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
