"""Topic registry: every topic, its key and its partition count, in one place.

Partition counts are part of the contract: producers place each key on a partition with
Kafka's default (murmur2) partitioner, and a refilled topic must get the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key: str
    producer: str


ORDERS = Topic("orders.v1", 6, "order id", "order")
INVENTORY = Topic("inventory.v1", 6, "order id for reservations, SKU otherwise", "inventory")

TOPICS: dict[str, Topic] = {t.name: t for t in (ORDERS, INVENTORY)}

#: Written by every relay that finds it empty; offset 0 names the broker's incarnation.
INCARNATION_TOPIC = "shopfloor.incarnation"


def dlq_topic(service: str) -> str:
    """Dead letters of one consuming service."""
    return f"dlq.{service}"
