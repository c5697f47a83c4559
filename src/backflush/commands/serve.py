"""``backflush serve`` (the HTTP API) and ``backflush token create | list | revoke``."""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from backflush.api.tokens import Role, create_token, list_tokens, revoke_token, token_document
from backflush.cli import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    cli_user,
    fail,
    guarded,
    out,
    print_json,
)
from backflush.store.repository import Store, database_url


class Writer(StrEnum):
    auto = "auto"
    process = "process"
    thread = "thread"


tokens = typer.Typer(help="API tokens: create (the secret is shown once), list, revoke.")


def serve(
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Proxies (comma-separated addresses, or *) whose X-Forwarded-Proto and "
            "X-Forwarded-For are believed: behind a proxy terminating TLS, the scheme is "
            "https and the web pages' cookies are Secure."
        ),
    ] = "127.0.0.1",
    secure_cookies: Annotated[
        bool, typer.Option(help="The web pages' cookies go over HTTPS only, whatever the scheme.")
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(help="Log every request (off: a proxy in front logs them; saves CPU)."),
    ] = True,
    writer: Annotated[
        Writer,
        typer.Option(
            help="Where events are posted: a process of their own (uses a second core: more "
            "events per second), a thread of the server's (one process), or auto: a process "
            "on PostgreSQL, a thread on SQLite."
        ),
    ] = Writer.auto,
) -> None:
    """Serve the book over HTTP (the OpenAPI document at /openapi.json, to token holders; the
    web pages at /ui). One group writer (in a process of its own or a thread: --writer)
    posts what concurrent requests send in shared transactions and keeps the book in memory
    between them."""
    import uvicorn

    from backflush.api.app import create_app

    apart = writer is Writer.process or (
        writer is Writer.auto and not database_url(db).startswith("sqlite")
    )
    app = guarded(
        lambda: create_app(db, secure_cookies=secure_cookies, writer_process=apart),
        writes=False,
        db=db,
    )
    guarded(lambda: Store(db, create=False).settings(), writes=False, db=db)  # a book, migrated
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=_log_config(),
            log_level="info",
            forwarded_allow_ips=forwarded_allow_ips,
            access_log=access_log,
        )
    except SystemExit as stopped:  # uvicorn's 3: it could not start (the port taken...)
        if stopped.code not in (0, None):
            fail(f"the server could not start on {host}:{port} (see the log above)", 1)
        raise


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with the server's own messages (``backflush.*``) in its format."""
    import uvicorn.config

    found = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    found["loggers"]["backflush"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return found


@tokens.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="Who or what uses it (recorded with its writes).")],
    role: Annotated[Role, typer.Option(help="operator, accountant, viewer or admin.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Create a token; its secret is printed once (only its hash is kept)."""

    def go() -> None:
        try:
            token, secret = create_token(Store(db, create=False), name, role, by=cli_user())
        except ValueError as error:
            fail(str(error), 2)
        if as_json:
            print_json(
                {"id": token.id, "name": token.name, "role": token.role.value, "secret": secret}
            )
            return
        out.print(
            f"token {token.id} ({escape(token.name)}, {token.role}) created; its secret, "
            "shown this once:"
        )
        out.print(secret, highlight=False, soft_wrap=True)

    guarded(go, db=db)


@tokens.command("list")
def token_list(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """The tokens (never their secrets)."""

    def go() -> None:
        rows = [token_document(t) for t in list_tokens(Store(db, create=False))]
        if as_json:
            print_json(rows)
            return
        table = Table(title="API tokens")
        for column in ("id", "name", "role", "created at", "by", "revoked at", "by"):
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(str(v or "")) for v in row.values()))
        out.print(table)

    guarded(go, writes=False, db=db)


@tokens.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `token list`).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Revoke a token: it is refused from now on."""

    def go() -> None:
        found = revoke_token(Store(db, create=False), token_id, by=cli_user())
        if found is None:
            fail(f"no token {token_id}", 2)
        out.print(f"token {found.id} ({escape(found.name)}) revoked")

    guarded(go, db=db)


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(tokens, name="token")
