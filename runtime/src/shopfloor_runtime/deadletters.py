"""Dead letters of one service: write them, list them, show one, redrive them after a fix.

A dead letter is the original message (key and bytes) on `dlq.<service>` with headers
saying where it came from and why it failed. Redriving applies it again with the
service's current handlers, outside the partition chain it came from (the consumer moved
past it when it dead-lettered it). Each redriven letter is recorded in the service's own
store with its effects, in one transaction (a tracking row named after the letter), so a
letter is applied at most once however often `redrive` runs, in however many processes.
A letter that fails again stays pending, with its new error reported.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from shopfloor_contracts.topics import dlq_topic

from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.metrics import DEAD_LETTERS
from shopfloor_runtime.settings import BrokerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejected:
    """A consumed message that cannot be applied, and why: a dead letter to write."""

    record: ConsumerRecord[bytes, bytes]
    error: str


def letter_headers(
    service: str, topic: str, partition: int, offset: int, error: str
) -> list[tuple[str, bytes]]:
    """The headers of a dead letter (where it came from, why, when), logging it: the
    one shape every writer of `dlq.<service>` uses, so `read` and `redrive` find it."""
    log.error("%s: dead letter from %s[%s]@%s: %s", service, topic, partition, offset, error)
    return [
        ("dlq.error", error.encode()[:4000]),
        ("dlq.topic", topic.encode()),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
        ("dlq.service", service.encode()),
        ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
    ]


class DeadLetterProducer:
    """Writes the rejected messages of one service to `dlq.<service>`: the original key
    and bytes, with headers saying where they came from, why and when."""

    def __init__(self, service: str, broker: BrokerSettings) -> None:
        self.service, self.broker = service, broker
        self._producer: Any = None

    async def start(self) -> None:
        self._producer = brokerlib.producer(self.broker)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def send(self, dead: Rejected) -> None:
        """Returns once the broker acknowledged it (before the message counts as consumed)."""
        assert self._producer is not None, "start() first"
        record = dead.record
        headers = letter_headers(
            self.service, record.topic, record.partition, record.offset, dead.error
        )
        await self._producer.send_and_wait(
            dlq_topic(self.service), record.value, key=record.key, headers=headers
        )
        DEAD_LETTERS.labels(self.service, record.topic).inc()


@dataclass(frozen=True)
class DeadLetter:
    """One record of `dlq.<service>`; `ref` ("partition:offset") names it for commands."""

    record: ConsumerRecord[bytes, bytes]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def tracking_name(self) -> str:
        """Named after the event, so two copies of one dead letter (dead-lettered twice,
        e.g. by two workers during a rebalance) are redriven once between them."""
        event_id = self._envelope_field("event_id")
        if event_id is not None:
            return f"redrive:{event_id}"
        return f"redrive:{self.record.topic}#{self.record.partition}@{self.record.offset}"

    def _envelope_field(self, name: str) -> str | None:
        try:
            value = json.loads(self.record.value or b"")
        except ValueError:
            return None
        return str(value[name]) if isinstance(value, dict) and name in value else None

    @property
    def error(self) -> str:
        return self.headers.get("dlq.error", "?")

    @property
    def source(self) -> str:
        topic, partition, offset = (
            self.headers.get(f"dlq.{name}", "?") for name in ("topic", "partition", "offset")
        )
        return f"{topic}[{partition}]@{offset}"

    @property
    def event_type(self) -> str:
        return self._envelope_field("event_type") or "(undecodable)"

    def describe(self) -> dict[str, Any]:
        raw = self.record.value or b""
        try:
            message: Any = json.loads(raw)
        except ValueError:
            message = raw.decode("utf-8", "replace")
        return {
            "ref": self.ref,
            "from": self.source,
            "event_type": self.event_type,
            "key": (self.record.key or b"").decode("utf-8", "replace"),
            "headers": self.headers,
            "message": message,
        }


def _letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers or ()}
    return DeadLetter(record, headers)


async def read(broker: BrokerSettings, service: str, timeout_s: float = 10.0) -> list[DeadLetter]:
    """Every dead letter of the service, oldest first (an empty or absent topic: none)."""
    topic = dlq_topic(service)
    await brokerlib.ensure_topics(broker, [topic])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or {0})
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        records = brokerlib.records_until(consumer, {tp: n for tp, n in ends.items() if n > 0})
        letters = await asyncio.wait_for(_collect(records), timeout_s)
    finally:
        await consumer.stop()
    return sorted(letters, key=lambda d: (d.record.partition, d.record.offset))


async def _collect(records: AsyncIterator[ConsumerRecord[bytes, bytes]]) -> list[DeadLetter]:
    return [_letter(record) async for record in records]


def pick(letters: Sequence[DeadLetter], refs: Sequence[str]) -> list[DeadLetter]:
    """The letters named by `refs` ("partition:offset", or "offset" on partition 0)."""
    by_ref = {letter.ref: letter for letter in letters}
    chosen = []
    for ref in refs:
        key = ref if ":" in ref else f"0:{ref}"
        if key not in by_ref:
            raise LookupError(f"no dead letter {ref} (see the list for the refs)")
        chosen.append(by_ref[key])
    return chosen
