"""Reading a topic to its end on the embedded broker, which reports a partition's end as
the first offset of its last batch + 1: the operator tools (`shopfloor trace`, dead
letters, analytics' alert book) must still see the rest of that batch."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.testing import broker_settings

pytestmark = pytest.mark.integration


async def test_records_sent_as_one_batch_are_all_read_though_the_end_offset_says_one(
    own_broker,
) -> None:
    settings = broker_settings(own_broker)
    await brokerlib.ensure_topics(settings, ["orders.v1"])
    producer = brokerlib.producer(settings)
    await producer.start()
    try:
        sent = [
            await producer.send("orders.v1", f"m{n}".encode(), key=b"k", partition=2)
            for n in range(10)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=own_broker.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition("orders.v1", 2)
        ends = await consumer.end_offsets([tp])
        assert ends[tp] < 10  # the broker's short answer this test is about
        read = [r.value async for r in brokerlib.records_until(consumer, ends)]
    finally:
        await consumer.stop()
    assert read == [f"m{n}".encode() for n in range(10)]
    assert ends[tp] == 10  # updated to where the reading ended
