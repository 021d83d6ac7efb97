"""The one envelope every message on every topic carries."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

#: Money travels as a decimal string ("19.99") so no consumer loses cents to floats.
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=14, decimal_places=2),
    PlainSerializer(lambda v: f"{v:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$"}, mode="serialization"),
]

P = TypeVar("P", bound=BaseModel)


class Strict(BaseModel):
    """Producers emit strict models: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(Strict, Generic[P]):
    """Metadata shared by all events, around a typed payload.

    `position` is the event's place in the producer's own event log (its outbox), and
    `previous_position` the position of the previous event the same producer wrote to
    the same partition (0 for the first). Offsets change when a topic is refilled; these
    do not, so consumers track positions, never offsets, and notice a gap instead of
    skipping over it.
    """

    event_id: UUID = Field(description="Stable id: the same event re-published keeps it")
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str = Field(description="Service that wrote the event")
    aggregate_id: str
    aggregate_version: int = Field(ge=1)
    correlation_id: str = Field(description="The order or ticket the story belongs to")
    causation_id: str | None = Field(default=None, description="Event id that caused it")
    position: int = Field(ge=1)
    previous_position: int = Field(ge=0)
    payload: P


class InboundEnvelope(BaseModel):
    """How consumers read an envelope: tolerant of fields added later."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime
    producer: str
    aggregate_id: str
    aggregate_version: int
    correlation_id: str
    causation_id: str | None = None
    position: int
    previous_position: int
    payload: dict[str, Any]
