"""Small broker operations: reachability, topic creation, the broker's incarnation."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shopfloor_contracts.topics import INCARNATION_TOPIC, TOPICS
from shopfloor_runtime.settings import BrokerSettings

log = logging.getLogger(__name__)


def producer(broker: BrokerSettings, **overrides: object) -> AIOKafkaProducer:
    # acks=all and no idempotence: the embedded broker cannot do InitProducerId > v0.
    options: dict[str, object] = {
        "bootstrap_servers": broker.bootstrap_servers,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": 2,
        "request_timeout_ms": broker.request_timeout_ms,
        "max_batch_size": 1 << 20,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)  # type: ignore[arg-type]


async def ensure_topics(broker: BrokerSettings, names: Iterable[str]) -> None:
    """Create the topics that are missing, with the partitions the contracts give."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(n, TOPICS[n].partitions if n in TOPICS else 1, 1)
            for n in dict.fromkeys(names)
            if n not in existing
        ]
        for topic in wanted:
            try:
                await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def ping(broker: BrokerSettings, timeout: float = 2.0) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=int(timeout * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    finally:
        await admin.close()


async def _first_marker(broker: BrokerSettings) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(INCARNATION_TOPIC, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        for message in batch.get(tp, []):
            return int(message.value or b"0")
        raise RuntimeError("could not read the broker incarnation marker")
    finally:
        await consumer.stop()


async def incarnation(broker: BrokerSettings) -> int:
    """A number that changes whenever the broker starts again without its data.

    The first message ever written to the marker topic names the incarnation; whoever
    finds the topic empty writes a random one, and offset 0 settles any race.
    """
    await ensure_topics(broker, [INCARNATION_TOPIC])
    found = await _first_marker(broker)
    if found is not None:
        return found
    prod = producer(broker)
    await prod.start()
    try:
        await prod.send_and_wait(INCARNATION_TOPIC, str(secrets.randbits(62)).encode(), partition=0)
    finally:
        await prod.stop()
    found = await _first_marker(broker)
    assert found is not None
    return found
