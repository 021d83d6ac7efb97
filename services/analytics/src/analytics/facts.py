"""What analytics reads from a message: the entity the event belongs to, the event's
place in its producer's log on its partition (the envelope's `position`), its type and
payload. Only the event types the figures use are read; the rest are skipped unparsed.

The entity is named by the topic and the message key, never by a payload field: the
key picks the partition, so every event of one entity comes from one partition number
(orders.v1 and risk.v1 are both keyed by order id and have the same partition count, so
an order's events on both land on the same number), and the entity's state can live on
that partition of the table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from shopfloor_contracts.topics import FULFILMENT, INVENTORY, ORDERS, RISK, SERVICE_DESK

from analytics.timeutil import micros

#: topic -> (entity kind, the event types read)
READ: dict[str, tuple[str, frozenset[str]]] = {
    ORDERS.name: (
        "order",
        frozenset(
            {
                "OrderPlaced",
                "OrderPaid",
                "OrderConfirmed",
                "OrderShipped",
                "OrderDelivered",
                "OrderCancelled",
                "RefundIssued",
            }
        ),
    ),
    RISK.name: ("order", frozenset({"OrderAssessed"})),
    FULFILMENT.name: (
        "shipping",
        frozenset(
            {
                "ShipmentAllocated",
                "ShipmentFlagged",
                "ShipmentPacked",
                "ShipmentDispatched",
                "ItemPicked",
                "ScanRefused",
            }
        ),
    ),
    INVENTORY.name: ("stock", frozenset({"StockReceived"})),
    SERVICE_DESK.name: (
        "ticket",
        frozenset({"TicketOpened", "TicketAnswered", "TicketResolved", "TicketRated"}),
    ),
}
TOPICS = tuple(READ)


class Unreadable(ValueError):
    """A message that is not a readable envelope of a type analytics reads."""


@dataclass(frozen=True)
class Fact:
    topic: str
    entity: str  # "<kind>:<message key>"
    position: int
    event_type: str
    occurred_us: int
    payload: dict[str, Any]


def entity_key(kind: str, message_key: str) -> str:
    return f"{kind}:{message_key}"


def message_key_of(entity: str) -> str:
    return entity.split(":", 1)[1]


def _event_type(value: bytes) -> str | None:
    """The envelope's event type found without parsing (relays write compact JSON)."""
    marker = b'"event_type":"'
    at = value.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    end = value.find(b'"', start)
    return value[start:end].decode() if end > start else None


def read(topic: str, key: bytes | None, value: bytes | None) -> Fact | None:
    """The fact a message carries, None for a type analytics does not read. Raises
    Unreadable for a message that cannot be read (it goes to the dead letters)."""
    if topic not in READ:
        return None
    kind, wanted = READ[topic]
    if value is None:
        raise Unreadable("no value (a tombstone)")
    quick = _event_type(value)
    if quick is not None and quick not in wanted:
        return None
    try:
        envelope = orjson.loads(value)  # 1.3x pydantic's parser, 2x json.loads here
    except ValueError as error:
        raise Unreadable(f"not JSON: {error}") from None
    if not isinstance(envelope, dict):
        raise Unreadable("not an envelope (no JSON object)")
    event_type = envelope.get("event_type")
    if event_type not in wanted:
        return None
    if key is None:
        raise Unreadable(f"{event_type} without a message key")
    position, payload = envelope.get("position"), envelope.get("payload")
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        raise Unreadable(f"{event_type} without a position (analytics reads chained topics)")
    if not isinstance(payload, dict):
        raise Unreadable(f"{event_type} without a payload object")
    try:
        occurred = micros(datetime.fromisoformat(str(envelope.get("occurred_at"))))
    except ValueError as error:
        raise Unreadable(f"{event_type}: occurred_at: {error}") from None
    return Fact(
        topic=topic,
        entity=entity_key(kind, key.decode(errors="replace")),
        position=position,
        event_type=event_type,
        occurred_us=occurred,
        payload=payload,
    )
