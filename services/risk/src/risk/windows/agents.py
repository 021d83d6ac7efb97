"""The two agents. `rekey` reads orders.v1 (keyed by order id, so one customer's orders
are spread over its partitions) in batches and sends each OrderPlaced once per dimension
it has a key for to the partition of the repartition topic that key belongs to, the
records of one batch bound for one partition in one message. `count` reads the
repartition topic, so every order of a key is counted on one partition, against that
partition's buckets.

At-least-once throughout: faust commits an input offset only after flushing the producer
(every message sent and the changelog written), so a crash repeats work, never loses it.
A repeated order finds itself in the table and changes nothing; its own count is told
again (same event id). A late order's corrections of later orders are acknowledged by the
broker before the table records it, because a replay that finds it recorded does not
tell them again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable
from typing import Any

import faust
from faust.types import EventT, Message
from shopfloor_contracts.topics import RISK_VELOCITY
from shopfloor_runtime.chain import partition_for

from risk.velocity import Tally, observe, reach_us
from risk.windows.rules_file import RulesFile
from risk.windows.tables import Buckets
from risk.windows.topics import Topics
from risk.windows.translation import (
    KeyedOrder,
    keyed_batch,
    keyed_orders,
    keyed_records,
    observed_message,
    order_placed,
)

log = logging.getLogger(__name__)


class Velocity:
    def __init__(
        self, topics: Topics, buckets: Buckets, rules: RulesFile, tell_all: bool = False
    ) -> None:
        self.topics, self.buckets, self.rules = topics, buckets, rules
        #: False: a count is told only when it is over its dimension's limit (the only
        #: counts that change an assessment: a count never goes down, so one under the
        #: limit can never have to be taken back); True: every count, for a risk service
        #: that waits for the counts before its first assessment (RISK_VELOCITY_WAIT_S)
        self.tell_all = tell_all

    async def rekey(self, stream: AsyncIterable[Any], size: int, within: float) -> None:
        """A batch of orders.v1 records at a time, sent on as one message per partition of
        the repartition topic holding every keyed order of the batch bound for it (faust's
        cost is per message: one per order and dimension made the re-key most of the
        worker's work)."""
        async for events in stream.take_events(size, within):  # type: ignore[attr-defined]
            by_partition: dict[int, list[KeyedOrder]] = {}
            for event in events:
                for record in self._keyed_orders(event.message):
                    by_partition.setdefault(self._partition(record), []).append(record)
            sending = [
                await self.topics.keyed.send(
                    key=records[0].table_key.encode(),
                    value=keyed_batch(records),
                    partition=partition,
                )
                for partition, records in sorted(by_partition.items())
            ]
            # acknowledged by the broker before the batch's input offsets count as done
            await asyncio.gather(*sending)

    async def count(self, stream: AsyncIterable[Any]) -> None:
        async for event in stream.events():  # type: ignore[attr-defined]
            for record in self._keyed_records(event):
                await self.count_one(record)

    def _partition(self, record: KeyedOrder) -> int:
        """The partition Kafka's default partitioner gives the record's key (where a
        record per order and dimension went before batching, so the table's changelog
        partitions keep their keys across an upgrade)."""
        return partition_for(record.table_key.encode(), self.topics.keyed.partitions or 1)

    async def count_one(self, record: KeyedOrder) -> None:
        limit = getattr(self.rules.current().velocity, record.dimension)
        order = record.placed
        known = self.buckets.known(record.table_key, reach_us(order, limit.window_s))
        tallies = observe(order, known, limit.window_s)
        told = [t for t in tallies if self.tell_all or t.count > limit.limit]
        sending = [await self._tell(record, tally) for tally in told]
        if any(t.order.order_id != order.order_id for t in told):
            # a late order's corrections of later orders: acked before it is recorded
            await asyncio.gather(*sending)
        if order.order_id not in known:
            self.buckets.add(record.table_key, order)

    async def _tell(self, record: KeyedOrder, tally: Tally) -> Awaitable[Any]:
        key = tally.order.order_id.encode()
        return await self.topics.observed.send(
            key=key,
            value=observed_message(record.dimension, record.key, tally),
            partition=partition_for(key, RISK_VELOCITY.partitions),
        )

    @staticmethod
    def _keyed_orders(message: Message) -> list[KeyedOrder]:
        try:
            found = order_placed(message.value)
            return [] if found is None else keyed_orders(*found)
        except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
            _skipped(message, error)
            return []

    @staticmethod
    def _keyed_records(event: EventT) -> list[KeyedOrder]:
        try:
            return keyed_records(event.value)
        except ValueError as error:
            _skipped(event.message, error)
            return []


def _skipped(message: Message, error: Exception) -> None:
    reason = " ".join(str(error).split())[:300]
    log.warning(
        "skipped unreadable message %s[%d]@%d: %s",
        message.topic,
        message.partition,
        message.offset,
        reason,
    )


def register_agents(
    app: faust.App, topics: Topics, velocity: Velocity, batch_size: int, batch_within_s: float
) -> None:
    async def rekey(stream: AsyncIterable[Any]) -> None:
        await velocity.rekey(stream, batch_size, batch_within_s)

    app.agent(topics.orders, name="risk-windows.rekey")(rekey)
    app.agent(topics.keyed, name="risk-windows.count")(velocity.count)
