"""RFC 9457 problem details: every error the API sends is ``application/problem+json`` with
``type``, ``title``, ``status``, ``detail`` and, for bad input, ``errors`` naming each field
(``location``: body, query, path or header; ``pointer``: a JSON pointer into the body)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backflush.formats.inputs import PATTERN_WORDS, clipped
from backflush.store.repository import StoreError, database_reason

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


@dataclass(frozen=True, slots=True)
class Kind:
    """A problem type as its page at ``/problems/<kind>`` describes it (RFC 9457 §3.1.1: the
    ``type`` URI, dereferenced, should document the problem)."""

    statuses: tuple[int, ...]
    meaning: str
    remedy: str
    title: str = ""  # else the status's (TITLES)


#: Every problem type the API answers with (a test checks that each one used is here).
KINDS: dict[str, Kind] = {
    "validation": Kind(
        (422,),
        "The request was read, but a field of its body, query, path or headers is not what the "
        "route takes. ``errors`` names each field (``location``, ``field``, and for the body a "
        "JSON ``pointer``) with what was expected. Nothing was written.",
        "Correct the fields named and send the request again.",
        title="Invalid input",
    ),
    "malformed-json": Kind(
        (400,),
        "The body is not JSON: it does not parse, is not UTF-8, repeats a key in an object, "
        "holds NaN or nests too deep. Nothing was written.",
        "Send a well-formed JSON body (numbers may be strings; both are read as exact decimals).",
    ),
    "unsupported-media-type": Kind(
        (415,),
        "The body's Content-Type is not application/json (or, for a web form, "
        "application/x-www-form-urlencoded). Nothing was written.",
        "Send the body as application/json.",
    ),
    "body-too-large": Kind(
        (413,),
        "The body is larger than the server reads for this route. Nothing was written.",
        "Send fewer events per request (a batch holds at most 10,000).",
    ),
    "batch-too-large": Kind(
        (413,),
        "A batch holds more events than one transaction takes. Nothing was written.",
        "Split the batch; each part may go under its own Idempotency-Key.",
    ),
    "unauthenticated": Kind(
        (401,),
        "No token was sent (``Authorization: Bearer <secret>``), or it is unknown or revoked.",
        "Ask an administrator for a token (``backflush token create``) and send it.",
    ),
    "forbidden": Kind(
        (403,),
        "The token's role may not do this (operator: production events; accountant: master "
        "data, purchases, conversion, close; viewer: read; admin: tokens).",
        "Use a token of a role that may, or ask an administrator.",
    ),
    "read-only": Kind(
        (403,),
        "The book cannot be written here (a SQLite book on a read-only mount, a read-only "
        "copy). Nothing was written.",
        "Serve the book from where it can be written.",
    ),
    "not-found": Kind(
        (404,),
        "No such route, or the event, item, entry, period, token or exception named in the "
        "path is not in the book.",
        "Check the identifier (path segments are percent-encoded).",
    ),
    "unknown-report": Kind(
        (404,),
        "There is no report of that name.",
        "Use one of the reports the OpenAPI document lists under /reports/{kind}.",
    ),
    "method-not-allowed": Kind(
        (405,),
        "The route does not take this HTTP method.",
        "The response's Allow header lists the methods it takes.",
    ),
    "no-csv": Kind(
        (406,),
        "CSV was asked for (``format=csv`` or ``Accept: text/csv``) of a report that has no "
        "table to give as CSV.",
        "Ask for JSON.",
    ),
    "conflict": Kind(
        (409,),
        "The request contradicts the book: an event id recorded before with other content (a "
        "close's id among them, the period reopened since), a cost set released already for "
        "another date, an exception no longer open, a token name taken, the last "
        "administrator's token to be revoked. Nothing was written.",
        "Read the book's state (the detail says what conflicts) before sending again.",
    ),
    "idempotency-key-reused": Kind(
        (422,),
        "The Idempotency-Key was used before for a different request (another body, route or "
        "token). Nothing was written.",
        "Use a new key for a new request; send a replay with the same body.",
    ),
    "posting-refused": Kind(
        (422,),
        "The accounting rules refuse an event (e.g. dated in a closed period, a close of a "
        "period closed already under another id, a reopen of a period not the latest closed, "
        "dated before the standards in force, or short of stock under the reject policy). The "
        "detail names the event. A batch is all or nothing: nothing was written.",
        "Correct the event named and send the request again.",
    ),
    "unavailable": Kind(
        (503,),
        "The book's database is busy (a long write holds it), unreachable, or the book cannot "
        "be read. Nothing was written.",
        "Send the request again after the Retry-After seconds; under the same Idempotency-Key "
        "a write is not applied twice.",
    ),
    "internal": Kind(
        (500,),
        "The server failed; the server's log holds the details. Nothing was written.",
        "Tell the book's administrator; sending again under the same Idempotency-Key is safe.",
    ),
    "http": Kind(
        (400,),
        "The HTTP request could not be served as sent (the detail says why).",
        "Correct the request.",
    ),
}


def type_uri(kind: str) -> str:
    """A problem document's ``type``: a reference to the page of its kind, resolved against
    the request's URL (RFC 9457 allows a relative reference)."""
    return f"/problems/{kind}"


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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled whole (a writer process sends it back to the server's)."""
        arguments = (self.status, self.kind, self.detail, self.errors)
        return (_problem_again, (*arguments, self.title, self.headers))

    def document(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "type": type_uri(self.kind),
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


def _problem_again(
    status: int,
    kind: str,
    detail: str,
    errors: list[dict[str, str]],
    title: str,
    headers: dict[str, str] | None,
) -> Problem:
    return Problem(status, kind, detail, errors, title=title, headers=headers)


def field_error(location: str, field: str, detail: str, pointer: str = "") -> dict[str, str]:
    found = {"location": location, "field": field, "detail": detail}
    if pointer:
        found["pointer"] = pointer
    return found


def invalid(errors: Iterable[dict[str, str]], detail: str = "") -> Problem:
    errors = list(errors)
    detail = detail or "; ".join(f"{e['field']}: {e['detail']}" for e in errors[:5])
    return Problem(422, "validation", detail, errors, title=KINDS["validation"].title)


async def _problem(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Problem)
    return error.response()


#: The kinds of the errors the framework raises, by status (any other: "http").
HTTP_KINDS = {404: "not-found", 405: "method-not-allowed"}


async def _http(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    slug = HTTP_KINDS.get(error.status_code, "http")
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
            message = f"{message}, got {clipped(repr(found['input']))}"
        pointer = "/" + "/".join(rest) if location == "body" else ""
        errors.append(field_error(location, ".".join(rest) or location, message, pointer))
    return invalid(errors).response()


async def _store(_request: Request, error: Exception) -> JSONResponse:
    return problem_of(error).response()


#: Seconds a client is asked to wait before it tries again when the book is unavailable.
RETRY_AFTER = "5"


def unavailable(error: OperationalError) -> bool:
    """Whether ``error`` is the database busy or unreachable (:func:`database_problem`'s 503),
    which a server rides out: said in one line, not with its traceback."""
    found = database_problem(error, said=False)
    return found is not None and found.status == 503


def database_problem(error: OperationalError, *, said: bool = True) -> Problem | None:
    """The database busy past its timeout (SQLite: locked by a long write such as an import)
    or unreachable (PostgreSQL stopped, the connection lost), or a transaction PostgreSQL
    could not serialise: 503, to send again. A book that cannot be written (SQLite on a
    read-only share): 403. Any other failure is the server's: None (a 500)."""
    reason = str(error.orig).lower()
    if "readonly database" in reason:
        return Problem(
            403, "read-only", "the book is read-only here (a read-only copy?); nothing was written"
        )
    sqlite = error.orig.__class__.__module__.startswith("sqlite3")
    if sqlite and not error.connection_invalidated and not ("locked" in reason or "busy" in reason):
        return None
    if said:
        # one line: a database down for seconds under load would fill the log otherwise
        log.warning("the book's database is unavailable: %s", database_reason(error))
    return Problem(
        503,
        "unavailable",
        "the book's database is busy or unreachable; send the request again (under the same "
        "Idempotency-Key a write is not applied twice)",
        headers={"Retry-After": RETRY_AFTER},
    )


def problem_of(error: Exception) -> Problem:
    """The problem :data:`HANDLERS` answers ``error`` with, for an error raised away from a
    request (in a writer process); one of the server's own is logged here."""
    if isinstance(error, Problem):
        return error
    if isinstance(error, StoreError):
        return Problem(503, "unavailable", str(error))
    found = database_problem(error) if isinstance(error, OperationalError) else None
    if found is not None:
        return found
    log.error("posting failed: %s", error, exc_info=error)
    return _internal()


def _internal() -> Problem:
    return Problem(500, "internal", "the server failed; nothing was written")


async def _database(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, OperationalError)
    found = database_problem(error)
    return await _unexpected(request, error) if found is None else found.response()


async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, OperationalError):  # not raised again for the server's log: log it
        log.error("the book's database failed: %s", error, exc_info=error)
    return _internal().response()


HANDLERS = {
    Problem: _problem,
    StarletteHTTPException: _http,
    RequestValidationError: _validation,
    StoreError: _store,
    OperationalError: _database,
    Exception: _unexpected,
}
