"""Shared test helpers: the worked examples and how to compare their expected answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent

#: purchase+sale, unsold conversion inventoried: January's close puts 8 x 3.00 of conversion
#: on FG; February sells 6 of the 8 (what closes keep on the books until the next one).
SOLD_AFTER_THE_CLOSE = """
book: {name: S, currency: USD, triggers: purchase+sale, inventory_unsold_conversion: true}
items:
  - {id: M, kind: material, standard_cost: "2.00"}
  - {id: F, kind: finished, standard_cost: {conversion: {labor: "3.00"}}}
boms:
  - {item: F, lines: [{component: M, quantity: "1"}]}
events:
  - {id: p1, date: 2026-01-05, type: purchase, item: M, quantity: "10", unit_cost: "2.10"}
  - {id: c1, date: 2026-01-10, type: completion, item: F, quantity: "10"}
  - {id: s1, date: 2026-01-20, type: sale, item: F, quantity: "2", unit_price: "9.00"}
  - {id: l1, date: 2026-01-31, type: conversion, amount: "31.00", element: labor}
  - {id: close1, date: 2026-01-31, type: close, period: 2026-01}
  - {id: s2, date: 2026-02-10, type: sale, item: F, quantity: "6", unit_price: "9.00"}
"""
EXAMPLES = ROOT / "examples"
EXAMPLE_NAMES = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))


def expected(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.expect.json").read_text(), parse_float=Decimal)


def assert_matches_expected(name: str, document: dict[str, Any]) -> None:
    """Compare a §4.1 document with NAME.expect.json: listed balances exactly (a listed "0"
    means zero or absent), variances and extra figures of each period, quantities."""
    want = expected(name)
    balances = {k: Decimal(v) for k, v in document["balances"].items()}
    for account, value in want["balances"].items():
        assert balances.get(account, Decimal(0)) == Decimal(value), (name, account)
    periods = {p["period"]: p for p in document["periods"]}
    for period, figures in want["periods"].items():
        got = periods[period]
        assert got["closed"] is True
        for key, value in figures["variances"].items():
            assert Decimal(got["variances"].get(key, "0")) == Decimal(value), (name, period, key)
        for account, value in figures.get("balances_at_close", {}).items():
            at_close = got["balances_at_close"].get(account, "0")
            assert Decimal(at_close) == Decimal(value), (name, period, account)
        if "gross_margin" in figures:
            assert Decimal(got["gross_margin"]) == Decimal(figures["gross_margin"]), (name, period)
    for item, quantity in want["quantities"].items():
        assert Decimal(document["quantities"].get(item, "0")) == Decimal(quantity), (name, item)


def dump_file(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the SQLite book at ``path`` (see :func:`dump_tables`)."""
    from backflush.store.repository import Store

    store = Store(str(path))
    try:
        return dump_tables(store)
    finally:
        store.close()


def dump_tables(
    store: Any, *, times: bool = True, logs: bool = True
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a ``Store``, raw as the driver returns it, in primary-key
    order: compare two dumps to prove a refused write left nothing behind. The book's
    revision is left out: every write transaction bumps it, one that writes nothing else too
    (see ``test_kept_book``). Without ``times``, no timestamps either, nor (nor without
    ``logs``) the log of master data changes: two books written apart, or a book taken back to
    an older schema, which kept no such log, and migrated again."""
    from backflush.store.schema import metadata

    found = {}
    with store.engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for table in metadata.sorted_tables:
            if not (times and logs) and table.name == "master_changes":
                continue
            order = ", ".join(quote(c.name) for c in table.primary_key.columns)
            columns = ", ".join(
                quote(c.name)
                for c in table.columns
                if c.name != "revision" and (times or not isinstance(c.type, sa.DateTime))
            )
            query = f"SELECT {columns} FROM {quote(table.name)} ORDER BY {order}"
            found[table.name] = [tuple(row) for row in conn.exec_driver_sql(query)]
    return found


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port (its socket listening before the
    server thread starts, so no waiting); yields the base URL. The app's group writer is
    stopped after the server."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue until the server accepts them
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        app.state.writer.stop()


def widgets_book(db_url: str) -> str:
    """The widgets example's book (its master data and first purchase) at ``db_url``; the
    secret of an operator token named "line 1"."""
    from backflush.api.tokens import Role, create_token
    from backflush.formats.scenario import read_scenario
    from backflush.store.repository import Store

    scenario = read_scenario(EXAMPLES / "widgets_prorate.yaml")
    store = Store(db_url)
    try:
        store.import_scenario(scenario.settings, scenario.master, scenario.events[:1])
        return create_token(store, "line 1", Role.operator)[1]
    finally:
        store.close()


def downgrade(store: Any, revision: str) -> None:
    """Take ``store``'s schema back to ``revision``: the book as an older version left it
    (``Store.migrate`` brings it back). Not through a Store's write, which bumps the book's
    revision."""
    from alembic import command
    from alembic.config import Config

    from backflush.store.repository import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)
