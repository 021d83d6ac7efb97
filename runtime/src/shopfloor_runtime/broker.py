"""Small broker operations: reachability, topic creation, the broker's incarnation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterable

import aiokafka.client
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest
from shopfloor_contracts.topics import INCARNATION_TOPIC, TOPICS

from shopfloor_runtime.settings import BrokerSettings

log = logging.getLogger(__name__)


class TopicLayoutError(RuntimeError):
    pass


class _NoImplicitTopics(MetadataRequest):
    """aiokafka asks the broker to create any topic it looks up. A consumer that looks
    up `orders.v1` on an empty broker would then create it with the broker's default
    partition count before the relay creates it with the contract's, and keys would
    land on the wrong partitions. Topics here are made only by `ensure_topics`."""

    def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool = False):
        super().__init__(topics, allow_auto_topic_creation)


aiokafka.client.MetadataRequest = _NoImplicitTopics  # type: ignore[misc]


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


def partitions_of(name: str) -> int:
    return TOPICS[name].partitions if name in TOPICS else 1


async def ensure_topics(broker: BrokerSettings, names: Iterable[str]) -> None:
    """Create missing topics with the partitions the contracts give; an empty topic
    that some other client created with another count is made again."""
    wanted = list(dict.fromkeys(names))
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        for name in (n for n in wanted if n in existing):
            await _check_layout(admin, broker, name)
        existing = set(await admin.list_topics())
        for name in (n for n in wanted if n not in existing):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions_of(name), 1)])
    finally:
        await admin.close()


async def _check_layout(admin: AIOKafkaAdminClient, broker: BrokerSettings, name: str) -> None:
    [described] = await admin.describe_topics([name])
    found = len(described["partitions"])
    if found == partitions_of(name):
        return
    if await _message_count(broker, name, found):
        raise TopicLayoutError(
            f"topic {name} has {found} partitions but the contracts say "
            f"{partitions_of(name)}, and it holds messages: fix the topic by hand"
        )
    log.warning(
        "topic %s was created with %s partitions; making it again with %s",
        name,
        found,
        partitions_of(name),
    )
    await admin.delete_topics([name])


async def _message_count(broker: BrokerSettings, name: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


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


#: How long one look at the marker may wait for the broker's metadata to name the topic
#: (aiokafka's default is 40 s); `incarnation` looks again after making sure it exists.
MARKER_TIMEOUT_MS = 5000
MARKER_TRIES = 6


async def _first_marker(broker: BrokerSettings) -> int | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_auto_commit=False,
        request_timeout_ms=MARKER_TIMEOUT_MS,
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
    for attempt in range(1, MARKER_TRIES + 1):
        await ensure_topics(broker, [INCARNATION_TOPIC])
        try:
            found = await _first_marker(broker)
            break
        except KafkaTimeoutError:
            # measured once in CI: a broker started again without its data answered
            # metadata without the just-made topic for the whole 40 s default timeout
            if attempt == MARKER_TRIES:
                raise
            log.warning("the incarnation marker topic is not known yet; making sure of it")
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


#: After a partition is read to the end offset reported at the start: how long records
#: past it are still taken while fetches keep finding some (see `records_until`).
PAST_END_S = 2.0


async def records_until(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record up to the end offsets taken at the start; later ones are not waited
    for, so the command ends even while producers keep writing.

    The embedded broker reports a partition's end as the first offset of its last batch
    + 1 (measured: ten records sent as one batch, end offset 1), so the rest of that
    batch lies past the reported end. A partition is therefore read on past its end
    until a fetch finds nothing more, for at most PAST_END_S; on Apache Kafka that is
    one empty fetch. `ends` is updated to the positions reached."""
    if not ends:
        return
    consumer.assign(list(ends))
    await consumer.seek_to_beginning(*ends)
    pending = set(ends)
    past: dict[TopicPartition, float] = {}  # when a partition reached its reported end
    loop = asyncio.get_running_loop()
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=200, max_records=5000)
        for records in batch.values():
            for record in records:
                yield record
        for tp in list(pending):
            # The position, not the last offset seen: offsets can skip (transaction
            # markers, compaction on a real Kafka).
            position = await consumer.position(tp)
            if position < ends[tp]:
                continue
            reached = past.setdefault(tp, loop.time())
            if not batch.get(tp) or loop.time() - reached > PAST_END_S:
                ends[tp] = position
                pending.discard(tp)
                consumer.pause(tp)
