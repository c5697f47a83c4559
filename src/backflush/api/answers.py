"""What the API answers a posting (``POST /events``, ``/events/batch``, and the close,
reopen, retry and resolve routes, which post one event each), as documented in its OpenAPI
document. The handlers build these bodies as plain dictionaries, not through these models (a
posting's answer costs no validation); tests check real answers against the documented
schemas."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClearedConsumption(BaseModel):
    """Consumption queued for want of stock that the event cleared."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(description="The event whose consumption had waited (a completion).")
    item: str = Field(description="The component it consumed.")
    quantity: str = Field(description="The quantity cleared: an exact decimal, as a string.")


class EventAnswer(BaseModel):
    """One event posted (201) or recorded already with the same content (200: no change)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    type: str = Field(description="The event's type (completion, purchase, ...).")
    applied: bool = Field(description="False: the book records this event already (no change).")
    recorded_by: str | None = Field(
        description="Who recorded it: this request's token when applied, else the one that "
        "first did (null: recorded before the book kept who)."
    )
    cleared: list[ClearedConsumption] = Field(
        default_factory=list,
        description="The queued consumption it cleared: present when a receipt cleared some, "
        "and always for a retry (empty: it cleared none).",
    )


class BatchedEvent(BaseModel):
    """One event of a batch: posted, or recorded already (with who first recorded it)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    type: str
    applied: bool
    recorded_by: str | None = Field(
        default=None,
        description="Present for an event recorded already: who first recorded it (null: "
        "recorded before the book kept who).",
    )
    cleared: list[ClearedConsumption] = Field(
        default_factory=list,
        description="As for a single event: the queued consumption it cleared.",
    )


class BatchAnswer(BaseModel):
    """A batch posted all or nothing (201), or every event of it recorded already (200)."""

    model_config = ConfigDict(extra="forbid")

    events: list[BatchedEvent] = Field(description="Each event of the batch, in its order.")
    applied: int = Field(description="How many events were posted.")
    already_recorded: int = Field(description="How many the book recorded already (no change).")
    recorded_by: str = Field(description="The token that sent the batch.")


def event_answers(unchanged: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that posts one event: what its 201 and its 200
    (``unchanged``: why nothing changed) answer."""
    return {
        201: {"model": EventAnswer, "description": "Posted"},
        200: {"model": EventAnswer, "description": unchanged},
    }
