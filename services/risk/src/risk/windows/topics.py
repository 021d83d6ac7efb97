"""The worker's topics: orders.v1 in, the repartition topic that carries each order to the
partition of each of its keys, risk.velocity.v1 out. Values stay bytes where they are
contract envelopes (the agents parse and build them with the contract models)."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT
from shopfloor_contracts.topics import ORDERS, RISK_VELOCITY
from shopfloor_runtime.fausttables import raw_topic

from risk.windows.settings import WindowsSettings


@dataclass(frozen=True)
class Topics:
    orders: TopicT
    keyed: TopicT
    observed: TopicT


def declare_topics(app: faust.App, settings: WindowsSettings) -> Topics:
    return Topics(
        orders=raw_topic(app, ORDERS.name),
        # faust creates it (internal); its partitions are the table's changelog's, one
        # to one: a key's records and its buckets live on the same partition number
        keyed=app.topic(
            f"{settings.app_id}-{ORDERS.name}-velocity-key-repartition",
            internal=True,
            partitions=ORDERS.partitions,
            replicas=settings.replication,
            key_serializer="raw",
            value_serializer="json",
        ),
        observed=app.topic(RISK_VELOCITY.name, key_serializer="raw", value_serializer="raw"),
    )
