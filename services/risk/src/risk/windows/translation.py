"""The only place that knows both the contracts (OrderPlaced in, VelocityObserved out) and
the counting (risk.velocity): what an order contributes to each dimension, the record
that carries it to the partition of its key, and the message that tells a count."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.orders import OrderPlaced
from shopfloor_contracts.registry import EVENTS, read_payload
from shopfloor_contracts.risk import VelocityObserved, WindowCount

from risk.velocity import Dimension, Placed, Tally, from_micros, to_micros

PRODUCER = "risk-windows"
NAMESPACE = uuid5(NAMESPACE_URL, "urn:shopfloor:risk-windows")
_OBSERVED = EVENTS["VelocityObserved"]


class KeyedOrder(BaseModel):
    """An order re-keyed to one dimension's key: the repartition topic's value, so every
    order of a key reaches the one partition (and table partition) that counts it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dimension: Dimension
    key: str = Field(min_length=1)
    order_id: str
    customer_id: str
    placed_at_us: int
    event_id: str = Field(description="the OrderPlaced event's id: the cause of what is told")

    @property
    def table_key(self) -> str:
        """Also the record's Kafka key: a customer id and a device id may be equal."""
        return f"{self.dimension}:{self.key}"

    @property
    def placed(self) -> Placed:
        return Placed(self.placed_at_us, self.order_id, self.customer_id, self.event_id)


class KeyedBatch(BaseModel):
    """The repartition topic's value: the keyed orders of one input batch bound for one
    partition (all their keys belong to it)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    orders: list[KeyedOrder]


def keyed_batch(records: list[KeyedOrder]) -> dict[str, Any]:
    return {"orders": [record.model_dump() for record in records]}


def keyed_records(value: Any) -> list[KeyedOrder]:
    """A repartition message's keyed orders: a batch, or one record as written before
    batching (still on the topic during an upgrade). Raises ValueError."""
    if isinstance(value, dict) and "orders" in value:
        return KeyedBatch.model_validate(value).orders
    return [KeyedOrder.model_validate(value)]


def order_placed(raw: bytes | None) -> tuple[InboundEnvelope, OrderPlaced] | None:
    """An orders.v1 message as an OrderPlaced; None for the other event types.
    Raises ValueError (pydantic's ValidationError is one) for what cannot be read."""
    if raw is None:
        raise ValueError("no value (a tombstone)")
    if b'"event_type":"' in raw and b'"event_type":"OrderPlaced"' not in raw:
        return None  # another event type (relays write compact JSON): not parsed at all
    envelope = InboundEnvelope.model_validate_json(raw)
    if envelope.event_type != "OrderPlaced":
        return None
    order = read_payload(envelope.event_type, envelope.payload)
    assert isinstance(order, OrderPlaced)
    return envelope, order


def keyed_orders(envelope: InboundEnvelope, order: OrderPlaced) -> list[KeyedOrder]:
    """One record per dimension the order has a key for."""
    keys: list[tuple[Dimension, str | None]] = [
        ("customer", order.customer_id),
        ("address", order.destination.address_fingerprint if order.destination else None),
        ("device", order.device_id),
    ]
    return [
        KeyedOrder(
            dimension=dimension,
            key=key,
            order_id=order.order_id,
            customer_id=order.customer_id,
            placed_at_us=to_micros(order.placed_at),
            event_id=str(envelope.event_id),
        )
        for dimension, key in keys
        if key
    ]


def observed_id(order_id: str, dimension: str, key: str, window_s: int, count: int) -> UUID:
    """The same count told again is the same event; the window is part of it, since a
    count under another window is another statement."""
    return uuid5(NAMESPACE, f"{order_id}|{dimension}|{key}|{window_s}|{count}")


def observed_message(dimension: Dimension, key: str, tally: Tally) -> bytes:
    """A VelocityObserved envelope for one (order, dimension). The topic is unchained:
    position 1 after 0, consumers keep the latest per order and dimension."""
    order = tally.order
    payload = VelocityObserved(
        order_id=order.order_id,
        customer_id=order.customer_id,
        placed_at=from_micros(order.at_us),
        counts=[
            WindowCount(
                dimension=dimension,
                key=key,
                window_s=tally.window_s,
                count=tally.count,
                order_ids=tally.order_ids,
            )
        ],
    )
    message = _OBSERVED.message_model()(
        event_id=observed_id(order.order_id, dimension, key, tally.window_s, tally.count),
        event_type=_OBSERVED.event_type,
        schema_version=_OBSERVED.version,
        occurred_at=payload.placed_at,
        producer=PRODUCER,
        aggregate_id=order.order_id,
        aggregate_version=1,
        correlation_id=order.order_id,
        causation_id=order.event_id,
        position=1,
        previous_position=0,
        payload=payload,
    )
    return message.model_dump_json().encode()
