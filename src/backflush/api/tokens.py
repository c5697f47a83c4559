"""API tokens: a name, a role, a secret shown once and kept only as its SHA-256."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import threading
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from backflush.formats.inputs import is_identifier
from backflush.store import schema as t
from backflush.store.repository import Store


class Role(StrEnum):
    #: Posts production events from the shop floor (see :data:`OPERATOR_EVENTS`).
    operator = "operator"
    #: Everything an operator can, plus purchases, conversion, sales, counts, close, reopen...
    accountant = "accountant"
    #: Reads only.
    viewer = "viewer"
    #: Manages tokens, and reads.
    admin = "admin"

    @property
    def token(self) -> str:
        """ "an operator token", "a viewer token": how messages name a token of the role."""
        return f"{'an' if self.value[0] in 'aeiou' else 'a'} {self.value} token"


#: The event types an operator may post: what the shop floor reports (DESIGN §1: completions
#: and scrap many times a minute; orders released, issued to and closed; hours worked). Sales,
#: purchases, conversion costs, counts, reversals, NRV estimates, retries and write-offs of
#: exceptions, close and reopen are the accountant's.
OPERATOR_EVENTS = frozenset({"completion", "scrap", "release", "issue", "order_close", "hours"})

#: What the book records the command line's writes under (``cli:<login name>``, see
#: ``backflush.cli.cli_user``): no token is named so.
CLI = "cli"

#: Every role reads.
READERS = frozenset(Role)


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    id: int
    name: str
    role: Role
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    created_by: str | None = None
    revoked_by: str | None = None

    def may_post(self, event_type: str) -> bool:
        if self.role is Role.accountant:
            return True
        return self.role is Role.operator and event_type in OPERATOR_EVENTS


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _token(row: sa.Row[tuple[object, ...]]) -> Token:
    return Token(
        row.id,
        row.name,
        Role(row.role),
        row.created_at,
        row.revoked_at,
        row.created_by,
        row.revoked_by,
    )


def token_document(token: Token) -> dict[str, object]:
    """A token as JSON (never its secret, which is not kept)."""
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role.value,
        "created_at": token.created_at.isoformat(),
        "created_by": token.created_by,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "revoked_by": token.revoked_by,
    }


def reserved_name(name: str) -> str | None:
    """Why a token may not be named ``name`` (None: it may): the book records the command
    line's writes as ``cli:<login name>``, which no token's writes may pass for."""
    if name == CLI or name.startswith(f"{CLI}:"):
        return (
            f"a token's name may not be {CLI!r} nor start with '{CLI}:': the book records the "
            "command line's writes under those (cli:<login name>)"
        )
    return None


def create_token(
    store: Store, name: str, role: Role, *, by: str | None = None
) -> tuple[Token, str]:
    """A new token and its secret (the only time the secret is known: keep it); ``by``: who
    created it."""
    if not is_identifier(name):
        raise ValueError(
            "a token's name is 1 to 200 characters, no white space at either end, no control "
            "characters"
        )
    reserved = reserved_name(name)
    if reserved is not None:
        raise ValueError(reserved)
    store.settings()  # a book at this schema
    secret = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    with store.transaction(write=True) as conn:
        taken = t.api_tokens.c.name == name
        if conn.execute(sa.select(t.api_tokens.c.id).where(taken)).first() is not None:
            raise ValueError(
                f"a token named {name!r} exists: names are unique (events record the name)"
            )
        new_id = conn.execute(
            t.api_tokens.insert().values(
                name=name,
                role=role.value,
                secret_hash=hash_secret(secret),
                created_at=now,
                created_by=by,
            )
        ).inserted_primary_key
        assert new_id is not None
        row = conn.execute(sa.select(t.api_tokens).where(t.api_tokens.c.id == new_id[0])).one()
    return _token(row), secret


def list_tokens(store: Store) -> list[Token]:
    store.settings()
    with store.transaction() as conn:
        rows = conn.execute(sa.select(t.api_tokens).order_by(t.api_tokens.c.id))
        return [_token(row) for row in rows]


class LastAdminError(ValueError):
    """Revoking the token would leave no live admin token to manage tokens over HTTP."""


def revoke_token(
    store: Store, token_id: int, *, by: str | None = None, keep_an_admin: bool = False
) -> Token | None:
    """Revoke a token (one revoked already keeps its first revocation); None: no such token.
    ``by``: who revoked it. ``keep_an_admin``: refuse (:class:`LastAdminError`) to revoke the
    last live admin token, checked under the write lock so two admins revoking each other at
    once cannot both succeed (the HTTP API's rule; the CLI can always create another)."""
    store.settings()
    tokens = t.api_tokens
    with store.transaction(write=True) as conn:
        if keep_an_admin:
            admins = {token.id for token in live_tokens(conn).values() if token.role is Role.admin}
            if admins == {token_id}:
                raise LastAdminError(
                    f"token {token_id} is the last live admin token: revoking it would leave "
                    "no one to manage tokens over HTTP; create another admin token first, or "
                    "revoke it with `backflush token revoke`"
                )
        conn.execute(
            tokens.update()
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=dt.datetime.now(dt.UTC), revoked_by=by)
        )
        row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
        return None if row is None else _token(row)


def find_token(store: Store, secret: str) -> Token | None:
    """The live (not revoked) token with this secret, else None."""
    tokens = t.api_tokens
    with store.transaction() as conn:
        row = conn.execute(
            sa.select(tokens).where(
                tokens.c.secret_hash == hash_secret(secret), tokens.c.revoked_at.is_(None)
            )
        ).first()
    return None if row is None else _token(row)


def live_tokens(conn: Connection) -> dict[int, Token]:
    """Every live token by id, read in ``conn``'s transaction."""
    rows = conn.execute(sa.select(t.api_tokens).where(t.api_tokens.c.revoked_at.is_(None)))
    return {row.id: _token(row) for row in rows}


class SeenTokens:
    """Tokens found by their secret before, for a quick first check of a posting request
    (before its body is read) without a database read. The group writer checks the token
    again in the posting's transaction: one revoked since is refused there."""

    def __init__(self, store: Store, most: int = 10_000) -> None:
        self.store, self.most = store, most
        self._found: dict[str, Token] = {}
        self._lock = threading.Lock()

    def known(self, secret: str) -> Token | None:
        """The token seen with this secret, None when not seen yet."""
        return self._found.get(hash_secret(secret))

    def find(self, secret: str) -> Token | None:
        """The live token with this secret (read from the database), remembered."""
        token = find_token(self.store, secret)
        if token is not None:
            with self._lock:
                if len(self._found) >= self.most:
                    self._found.clear()
                self._found[hash_secret(secret)] = token
        return token


#: How long a web session lasts after sign-in.
SESSION_HOURS = 8


@dataclasses.dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in session of the web pages: its token and the CSRF token of its forms."""

    token: Token
    csrf: str

    @property
    def may_work_exceptions(self) -> bool:
        return self.token.may_post("retry") and self.token.may_post("write_off")


def open_session(store: Store, token: Token) -> str:
    """A new web session for ``token``: the id for the cookie (kept only as its hash)."""
    session_id = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    with store.transaction(write=True) as conn:
        conn.execute(
            t.web_sessions.insert().values(
                id_hash=hash_secret(session_id),
                token_id=token.id,
                csrf=secrets.token_hex(32),
                created_at=now,
                expires_at=now + dt.timedelta(hours=SESSION_HOURS),
            )
        )
    return session_id


def find_session(store: Store, session_id: str) -> WebSession | None:
    """The live session with this id: not ended, not expired, its token not revoked."""
    sessions, tokens = t.web_sessions, t.api_tokens
    query = (
        sa.select(tokens, sessions.c.csrf)
        .join(sessions, sessions.c.token_id == tokens.c.id)
        .where(
            sessions.c.id_hash == hash_secret(session_id),
            sessions.c.ended_at.is_(None),
            sessions.c.expires_at > dt.datetime.now(dt.UTC),
            tokens.c.revoked_at.is_(None),
        )
    )
    with store.transaction() as conn:
        row = conn.execute(query).first()
    return None if row is None else WebSession(_token(row), row.csrf)


def end_session(store: Store, session_id: str) -> None:
    """Sign out: the session ends (kept, for the record)."""
    sessions = t.web_sessions
    with store.transaction(write=True) as conn:
        conn.execute(
            sessions.update()
            .where(sessions.c.id_hash == hash_secret(session_id), sessions.c.ended_at.is_(None))
            .values(ended_at=dt.datetime.now(dt.UTC))
        )
