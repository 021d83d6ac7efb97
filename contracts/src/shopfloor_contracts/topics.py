"""Topic registry: every topic, its key and its partition count, in one place.

Partition counts are part of the contract: producers place each key on a partition with
Kafka's default (murmur2) partitioner, and a refilled topic must get the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    """A topic and who may read it. `private` topics carry personal data (names, street
    lines, phone numbers, e-mail addresses): only the services in `readers` get read
    access on a real cluster, and no event with a personal field may live anywhere else
    (tests/test_contracts.py enforces it)."""

    name: str
    partitions: int
    key: str
    producer: str
    private: bool = False
    readers: tuple[str, ...] = ()
    #: Positions chained per partition (the outbox's `previous_position`), so consumers
    #: drop repeats and notice gaps. An unchained topic (a stream processor's output)
    #: carries no usable positions: its consumers must apply each message idempotently.
    chained: bool = True


#: Principals that read every public topic: the analysts' own clients.
ANALYSTS = "analysts"

ORDERS = Topic(
    "orders.v1",
    6,
    "order id",
    "order",
    readers=("inventory", "risk", "fulfilment", "service-desk", "analytics", ANALYSTS),
)
#: The personal part of an order. Same key and partition count as orders.v1, so a
#: reader of both finds one order's two halves on the same partition number.
ORDERS_PRIVATE = Topic(
    "orders.private.v1",
    ORDERS.partitions,
    "order id",
    "order",
    private=True,
    readers=("fulfilment", "service-desk"),
)
INVENTORY = Topic(
    "inventory.v1",
    6,
    "order id for reservations, SKU otherwise",
    "inventory",
    readers=("order", "fulfilment", "analytics", ANALYSTS),
)
FULFILMENT = Topic(
    "fulfilment.v1",
    6,
    "the shipment's first order id (wave events: wave id)",
    "fulfilment",
    readers=("order", "inventory", "service-desk", "analytics", ANALYSTS),
)

RISK = Topic(
    "risk.v1",
    6,
    "order id (blacklist events: entry id)",
    "risk",
    readers=("order", "fulfilment", "service-desk", "analytics", ANALYSTS),
)
#: The risk service's faust worker's counts, for the risk service alone.
RISK_VELOCITY = Topic(
    "risk.velocity.v1", 6, "order id", "risk-windows", readers=("risk",), chained=False
)

SERVICE_DESK = Topic(
    "service-desk.v1",
    6,
    "ticket id",
    "service-desk",
    readers=("order", "inventory", "fulfilment", "analytics", ANALYSTS),
)

ANALYTICS = Topic(
    "analytics.v1",
    6,
    "alert id",
    "analytics",
    readers=(ANALYSTS,),
)

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        ORDERS,
        ORDERS_PRIVATE,
        INVENTORY,
        FULFILMENT,
        RISK,
        RISK_VELOCITY,
        SERVICE_DESK,
        ANALYTICS,
    )
}

#: Written by every relay that finds it empty; offset 0 names the broker's incarnation.
INCARNATION_TOPIC = "shopfloor.incarnation"


def dlq_topic(service: str) -> str:
    """Dead letters of one consuming service."""
    return f"dlq.{service}"
