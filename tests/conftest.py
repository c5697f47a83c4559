"""Shared fixtures. Must not import ``backflush`` (it may be half-written).

PostgreSQL fixtures (mark tests using them ``@pytest.mark.postgres``):

* ``pg_cluster`` (session): a throwaway cluster, one per pytest-xdist worker.
* ``pg_url`` (session): SQLAlchemy URL of a fresh database in that cluster.
* ``pg_db_url`` (function): URL of a brand-new database, dropped after the test.
* ``db_url`` (function): a new book's URL, once on SQLite and once on PostgreSQL.
* ``store`` (function): a ``Store`` opened on ``db_url``, closed after the test.

Without PostgreSQL binaries these skip, or fail if ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pg import INSTALL_HINT, PgCluster, find_bindir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but PostgreSQL was not found. {INSTALL_HINT}", pytrace=False)
        pytest.skip(f"PostgreSQL not found. {INSTALL_HINT}")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    cluster = PgCluster(bindir, name_prefix=f"backflush-pg-{worker}-")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    """``postgresql+psycopg://`` URL of a fresh database shared by the session."""
    return pg_cluster.url(pg_cluster.create_database("session"))


@pytest.fixture
def pg_db_url(pg_cluster: PgCluster) -> Iterator[str]:
    """``postgresql+psycopg://`` URL of a new database, dropped after the test."""
    name = pg_cluster.create_database("t")
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new book's URL: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'book.db'}"
    url: str = request.getfixturevalue("pg_db_url")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Any]:
    """A ``Store`` on ``db_url`` (imported here, not above: see the module's docstring)."""
    from backflush.store.repository import Store

    found = Store(db_url)
    try:
        yield found
    finally:
        found.close()
