"""Helpers for the whole-system tests: build services on real stores, read topics, and
play a producer that other services' tests need before that service exists."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from order.bootstrap import OrderService
from order.domain import Address, Line, Placement
from order.settings import Settings
from pydantic import BaseModel
from shopfloor_contracts.envelope import Envelope
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import TOPICS
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.chain import PartitionChains, partition_for
from shopfloor_runtime.testing import broker_settings


def order_service(
    broker: EmbeddedBroker, data_dir: Path, dsn: str | None = None, **overrides: Any
) -> OrderService:
    overrides["rules"] = {"required_checks": [], **overrides.get("rules", {})}
    settings = Settings(
        broker=broker_settings(broker),
        store={"data_dir": data_dir, "dsn": dsn},
        **overrides,
    )
    return OrderService(settings)


def placement(
    customer: str | None = None, sku: str = "SKU-1", qty: int = 1, price: str = "10.00"
) -> Placement:
    return Placement(
        customer_id=customer or f"cust-{uuid4().hex[:8]}",
        channel="shop",
        lines=(Line(sku, qty, Decimal(price)),),
        address=Address("Ada", "1 Main St", "Berlin", "10115", "DE"),
    )


def place_paid_orders(service: OrderService, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        order = service.app.place_order(placement(), None).order
        service.app.pay_order(order.id, order.total, "card", f"pay-{order.id}")
        ids.append(str(order.id))
    return ids


async def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list[ConsumerRecord]:
    """Everything on a topic right now, in partition order, without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        count = TOPICS[topic].partitions if topic in TOPICS else 1
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while any([await _behind(consumer, tp, ends[tp]) for tp in partitions]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            batch = await consumer.getmany(timeout_ms=500)
            for tp_records in batch.values():
                records.extend(tp_records)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> bool:
    return await consumer.position(tp) < end


def envelopes(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


class ContractProducer:
    """Publishes contract events the way a relay does (positions and partition chains),
    for a producer whose service does not exist yet (inventory)."""

    def __init__(self, broker: EmbeddedBroker, producer: str = "inventory") -> None:
        self.settings = broker_settings(broker)
        self.producer = producer
        self.position = 0
        self.chains = PartitionChains()

    def envelope(self, payload: BaseModel, key: str) -> tuple[str, int, bytes]:
        name = type(payload).__name__
        topic = EVENTS[name].topic
        self.position += 1
        partition = partition_for(key.encode(), TOPICS[topic].partitions)
        previous = self.chains.link(topic, partition, self.position)
        message = Envelope[type(payload)](  # type: ignore[misc]
            event_id=uuid4(),
            event_type=name,
            schema_version=1,
            occurred_at=datetime.now(UTC),
            producer=self.producer,
            aggregate_id=key,
            aggregate_version=1,
            correlation_id=key,
            position=self.position,
            previous_position=previous,
            payload=payload,
        )
        return topic, partition, message.model_dump_json().encode()

    async def publish(self, payloads: list[tuple[BaseModel, str]]) -> None:
        await brokerlib.ensure_topics(self.settings, TOPICS)
        producer = brokerlib.producer(self.settings)
        await producer.start()
        try:
            for payload, key in payloads:
                topic, partition, value = self.envelope(payload, key)
                await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
        finally:
            await producer.stop()

    async def publish_raw(self, topic: str, key: str, value: bytes, partition: int) -> None:
        await brokerlib.ensure_topics(self.settings, TOPICS)
        producer = brokerlib.producer(self.settings)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
        finally:
            await producer.stop()


async def eventually(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(every)
