"""RFC 9457 problem details: every error the API sends is ``application/problem+json`` with
``type``, ``title``, ``status``, ``detail`` and, for bad input, ``errors`` naming each field
(``location``: body, query, path or header; ``pointer``: a JSON pointer into the body)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backflush.formats.inputs import PATTERN_WORDS
from backflush.store.repository import StoreError

PROBLEM = "application/problem+json"
log = logging.getLogger("backflush.api")
#: A period (YYYY-MM) in a path or query; a value that does not match is told so in words.

TITLES = {
    400: "Malformed request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    500: "Internal error",
    503: "Book unavailable",
}


class Problem(Exception):
    """An error answered with a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        errors: Sequence[dict[str, str]] = (),
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = list(errors)
        self.title = title or TITLES.get(status, "Error")
        self.headers = headers

    def document(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "type": f"/problems/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            found["errors"] = self.errors
        return found

    def response(self) -> JSONResponse:
        return JSONResponse(
            self.document(), status_code=self.status, media_type=PROBLEM, headers=self.headers
        )


def field_error(location: str, field: str, detail: str, pointer: str = "") -> dict[str, str]:
    found = {"location": location, "field": field, "detail": detail}
    if pointer:
        found["pointer"] = pointer
    return found


def invalid(errors: Iterable[dict[str, str]], detail: str = "") -> Problem:
    errors = list(errors)
    detail = detail or "; ".join(f"{e['field']}: {e['detail']}" for e in errors[:5])
    return Problem(422, "validation", detail, errors, title="Invalid input")


async def _problem(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return error.response()


async def _http(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http")
    headers = dict(error.headers) if error.headers else None
    return Problem(error.status_code, slug, str(error.detail), headers=headers).response()


async def _validation(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = []
    for found in error.errors():
        loc = [str(p) for p in found["loc"]]
        location, rest = (loc[0], loc[1:]) if loc else ("body", [])
        message = str(found["msg"]).removeprefix("Value error, ")
        pattern = (found.get("ctx") or {}).get("pattern")
        if pattern in PATTERN_WORDS:  # not the regex
            message = PATTERN_WORDS[pattern]
        if "input" in found and found["type"] != "missing":
            message = f"{message}, got {found['input']!r}"
        pointer = "/" + "/".join(rest) if location == "body" else ""
        errors.append(field_error(location, ".".join(rest) or location, message, pointer))
    return invalid(errors).response()


async def _store(_request: Request, error: Exception) -> JSONResponse:
    return Problem(503, "unavailable", str(error)).response()


#: Seconds a client is asked to wait before it tries again when the book is unavailable.
RETRY_AFTER = "5"


async def _database(request: Request, error: Exception) -> JSONResponse:
    """The database busy past its timeout (SQLite: locked by a long write such as an import)
    or unreachable (PostgreSQL stopped, the connection lost), or a transaction PostgreSQL
    could not serialise: 503, to send again. A book that cannot be written (SQLite on a
    read-only share): 403. Any other failure is the server's (500)."""
    assert isinstance(error, OperationalError)
    reason = str(error.orig).lower()
    if "readonly database" in reason:
        return Problem(
            403, "read-only", "the book is read-only here (a read-only copy?); nothing was written"
        ).response()
    sqlite = error.orig.__class__.__module__.startswith("sqlite3")
    if sqlite and not error.connection_invalidated and not ("locked" in reason or "busy" in reason):
        return await _unexpected(request, error)
    log.warning("the book's database is unavailable: %s", error)  # details for the log only
    return Problem(
        503,
        "unavailable",
        "the book's database is busy or unreachable; send the request again (under the same "
        "Idempotency-Key a write is not applied twice)",
        headers={"Retry-After": RETRY_AFTER},
    ).response()


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, OperationalError):  # not raised again for the server's log: log it
        log.error("the book's database failed: %s", error, exc_info=error)
    return Problem(500, "internal", "the server failed; nothing was written").response()


HANDLERS = {
    Problem: _problem,
    StarletteHTTPException: _http,
    RequestValidationError: _validation,
    StoreError: _store,
    OperationalError: _database,
    Exception: _unexpected,
}
