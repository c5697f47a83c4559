"""Throwaway PostgreSQL clusters for the test suite.

A :class:`PgCluster` is a private ``initdb``-created cluster in a temporary
directory, listening on ``127.0.0.1`` on a free TCP port with trust
authentication and durability switched off. It never touches a system cluster.

PostgreSQL refuses to run as root, so when the tests run as root the server
binaries are run as the ``postgres`` OS user through ``runuser``.

This module must not import anything from ``backflush``.
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

PG_USER = "postgres"
HOST = "127.0.0.1"
INSTALL_HINT = (
    "PostgreSQL 15 server binaries (initdb, pg_ctl, postgres) must be installed to run the "
    "postgres-marked tests, e.g. `apt-get install -y postgresql` (or run .ci/run)."
)

_SETTINGS: dict[str, str] = {
    "listen_addresses": f"'{HOST}'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


#: What a production server runs with (``PgCluster(durable=True)``): every commit flushed to
#: disk before it is answered, whole pages written after a checkpoint.
DURABLE: dict[str, str] = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


class PgUnavailableError(RuntimeError):
    """The PostgreSQL server binaries could not be found."""


def _has_server_binaries(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> sort numerically on <version>.
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def find_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl/postgres, or None if not installed.

    ``pg_config --bindir`` wins when it points at a directory that really has the
    server binaries (on Debian, ``pg_config`` may come from libpq-dev alone), else
    the newest ``/usr/lib/postgresql/*/bin``.
    """
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server_binaries(Path(out)):
            return Path(out)
    candidates = [
        path for path in Path("/usr/lib/postgresql").glob("*/bin") if _has_server_binaries(path)
    ]
    if not candidates:
        return None
    return max(candidates, key=_version_key)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _world_traversable(path: Path) -> bool:
    """True if every directory from / down to ``path`` is executable by others."""
    current = path.resolve()
    for directory in (current, *current.parents):
        try:
            if not directory.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


class PgCluster:
    """A private PostgreSQL cluster; :meth:`start` it, :meth:`stop` it (idempotent). Fast and
    not crash-safe (no fsync), as tests want; ``durable``: as a production server runs."""

    def __init__(self, bindir: Path, *, name_prefix: str = "pg-", durable: bool = False) -> None:
        self.bindir = bindir
        self.settings = {**_SETTINGS, **(DURABLE if durable else {})}
        self.root: Path | None = None
        self.port: int = 0
        self._name_prefix = name_prefix
        self._owner: pwd.struct_passwd | None = None

    # -- paths ---------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.root is not None, "cluster not created"
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        assert self.root is not None, "cluster not created"
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        assert self.root is not None, "cluster not created"
        return self.root / "server.log"

    # -- running commands -----------------------------------------------------

    def _command(self, args: Sequence[str]) -> list[str]:
        if _is_root():
            return ["runuser", "-u", PG_USER, "--", *args]
        return list(args)

    def _run(self, args: Sequence[str], *, timeout: float = 120) -> None:
        result = subprocess.run(
            self._command(args),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"command failed ({result.returncode}): {' '.join(args)}\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}\n"
                f"--- server log ---\n{self._read_log()}"
            )

    def _read_log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-4000:]
        except (OSError, AssertionError):
            return "(no server log)"

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """initdb a fresh cluster in a new temp dir and start it on a free port."""
        if _is_root():
            try:
                self._owner = pwd.getpwnam(PG_USER)
            except KeyError as exc:
                raise RuntimeError(
                    f"running as root but there is no {PG_USER!r} OS user to run "
                    f"PostgreSQL as. {INSTALL_HINT}"
                ) from exc
        # The postgres user must be able to reach the temp dir; $TMPDIR may not allow it.
        parent = Path(tempfile.gettempdir())
        if _is_root() and not _world_traversable(parent):
            parent = Path("/tmp")
        # mkdtemp gives each pytest-xdist worker (and each run) its own directory.
        self.root = Path(tempfile.mkdtemp(prefix=self._name_prefix, dir=parent))
        atexit.register(self.stop)
        self._chown(self.root)
        self.sockdir.mkdir()
        self._chown(self.sockdir)

        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                PG_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]
        )
        conf = "".join(f"{key} = {value}\n" for key, value in self.settings.items())
        conf += f"unix_socket_directories = '{self.sockdir}'\n"
        with (self.datadir / "postgresql.conf").open("a") as fh:
            fh.write("\n# backflush test settings\n" + conf)

        # A port from free_port() can be grabbed by someone else (e.g. another
        # xdist worker) before postgres binds it, so retry on a fresh port.
        last_error: RuntimeError | None = None
        for _attempt in range(5):
            self.port = free_port()
            try:
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "start",
                        "-D",
                        str(self.datadir),
                        "-l",
                        str(self.logfile),
                        "-w",
                        "-t",
                        "60",
                        "-o",
                        f"-p {self.port}",
                    ]
                )
            except RuntimeError as exc:
                last_error = exc
                self._pg_ctl_stop()
                continue
            return
        self.stop()
        assert last_error is not None
        raise last_error

    def _pg_ctl_stop(self) -> None:
        if self.root is None or not self.datadir.is_dir():
            return
        subprocess.run(
            self._command(
                [
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                ]
            ),
            cwd=self.root,
            capture_output=True,
            timeout=60,
            check=False,
        )

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory. Safe to call twice."""
        if self.root is None:
            return
        try:
            self._pg_ctl_stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
            atexit.unregister(self.stop)

    # -- databases ------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL for ``dbname`` in this cluster."""
        return f"postgresql+psycopg://{PG_USER}@{HOST}:{self.port}/{dbname}"

    def admin_connect(self) -> psycopg.Connection[TupleRow]:
        """Autocommit connection to the ``postgres`` maintenance database."""
        return psycopg.connect(
            host=HOST, port=self.port, user=PG_USER, dbname="postgres", autocommit=True
        )

    def create_database(self, prefix: str = "t") -> str:
        """CREATE a new uniquely named database and return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:20]}"
        with self.admin_connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """DROP the database, kicking out any connections a test left open."""
        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
