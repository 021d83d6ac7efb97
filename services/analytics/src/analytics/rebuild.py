"""`python -m analytics rebuild`: the worker's state computed again from every topic,
from the beginning, as a new generation of it; the worker uses the newest generation
when it next starts.

Why a generation: a fix in how events become entity states (entities.py) needs every
event read again, and faust recovers a table from its changelog, which on this broker
can be neither compacted nor truncated. So the rebuild reads each topic up to the end
offsets it finds (with a progress bar), applies them with the worker's own code, writes
the states as the changelog of a new table (`<app id>-g<N>-entities-changelog`),
commits the new consumer group's offsets at those end offsets, and only then names the
generation in `<app id>-generation`: an interrupted rebuild changes nothing. The running
worker is not touched; restart it to use the new state (events published meanwhile are
read from the committed offsets on). A fix in the figures alone needs no rebuild: they
are computed from the states whenever a worker starts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata
from shopfloor_contracts.topics import TOPICS as CONTRACT_TOPICS
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.settings import BrokerSettings

from analytics.entities import State
from analytics.facts import TOPICS
from analytics.figures import Figures
from analytics.processing import Processor

BATCH = 5000


def generation_topic(app_id: str) -> str:
    return f"{app_id}-generation"


def group_for(app_id: str, generation: int) -> str:
    """The faust app id (consumer group, topic prefix) of a generation; 0 is the first."""
    return app_id if generation == 0 else f"{app_id}-g{generation}"


async def current_generation(broker: BrokerSettings, app_id: str) -> int:
    """The newest generation named in the marker topic (0 when there is none)."""
    topic = generation_topic(app_id)
    await brokerlib.ensure_topics(broker, [topic])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        ends = await consumer.end_offsets([tp])
        newest = 0
        async for record in brokerlib.records_until(consumer, ends):
            newest = max(newest, int(json.loads(record.value or b"{}").get("generation", 0)))
        return newest
    finally:
        await consumer.stop()


class Bar:
    """A progress line on stderr: redrawn in place on a terminal, else every 5 s."""

    def __init__(self, total: int, out: object = sys.stderr) -> None:
        self.total, self.out = max(total, 1), out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.started = self.shown = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and not self.tty and now - self.shown < 5:
            return
        if not final and self.tty and now - self.shown < 0.1:
            return
        self.shown = now
        share = min(done / self.total, 1.0)
        filled = int(share * 30)
        rate = done / max(now - self.started, 1e-9)
        line = (
            f"[{'#' * filled}{'.' * (30 - filled)}] {share:6.1%} {done:,}/{self.total:,} "
            f"events, {rate:,.0f}/s"
        )
        end = "\n" if final or not self.tty else ""
        print(("\r" if self.tty else "") + line, end=end, file=self.out, flush=True)  # type: ignore[call-overload]


async def rebuild(
    broker: BrokerSettings, app_id: str, say: Callable[[str], None] = print
) -> dict[str, float]:
    generation = await current_generation(broker, app_id) + 1
    group = group_for(app_id, generation)
    await brokerlib.ensure_topics(broker, list(TOPICS))
    reader = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await reader.start()
    began = time.monotonic()
    table: dict[str, State] = {}
    processor = Processor(table, Figures(), incremental=False)
    try:
        tps = [TopicPartition(t, p) for t in TOPICS for p in range(CONTRACT_TOPICS[t].partitions)]
        ends = await reader.end_offsets(tps)
        total = sum(ends.values())
        say(f"analytics rebuild: generation {generation}, {total:,} events in {len(TOPICS)} topics")
        # read past the reported ends (the embedded broker's are short: records_until);
        # `ends` becomes where the reading stopped, where the new generation goes on
        bar, done, pending = Bar(total), 0, []
        async for record in brokerlib.records_until(reader, ends):
            pending.append((None, record.topic, record.key, record.value))
            if len(pending) >= BATCH:
                processor.apply(pending)
                done += len(pending)
                pending.clear()
                bar.update(done)
        processor.apply(pending)
        done += len(pending)
        bar.update(done, final=True)
    finally:
        await reader.stop()
    read_s = time.monotonic() - began
    await _write_generation(broker, app_id, generation, group, table, ends)
    progress = processor.progress
    result = {
        "generation": generation,
        "events": done,
        "entities": len(table),
        "rejected": progress.rejected,
        "seconds": round(time.monotonic() - began, 2),
        "read_and_apply_per_s": round(done / max(read_s, 1e-9)),
    }
    say(
        f"analytics rebuild: {done:,} events ({progress.applied:,} applied, "
        f"{progress.duplicates:,} repeats, {progress.skipped:,} of other types, "
        f"{progress.rejected:,} unreadable) -> {len(table):,} entities in "
        f"{result['seconds']} s ({result['read_and_apply_per_s']:,}/s read and applied); "
        f"restart the worker to use generation {generation} (consumer group {group})"
    )
    return result


async def _write_generation(
    broker: BrokerSettings,
    app_id: str,
    generation: int,
    group: str,
    table: MutableMapping[str, Any],
    ends: dict[TopicPartition, int],
) -> None:
    from analytics.app import PARTITIONS, TABLE, partition_of

    changelog = f"{group}-{TABLE}-changelog"
    await _create(broker, changelog, PARTITIONS)
    producer = brokerlib.producer(broker)
    await producer.start()
    try:
        sent = []
        for entity, state in table.items():
            key = json.dumps(entity).encode()
            value = json.dumps(state, separators=(",", ":")).encode()
            sent.append(
                await producer.send(changelog, value, key=key, partition=partition_of(entity))
            )
            if len(sent) >= 5000:
                await asyncio.gather(*sent)
                sent.clear()
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    committer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign(list(ends))
        await committer.commit({tp: OffsetAndMetadata(end, "") for tp, end in ends.items() if end})
    finally:
        await committer.stop()
    producer = brokerlib.producer(broker)
    await producer.start()
    try:
        marker = json.dumps({"generation": generation, "group": group}).encode()
        await producer.send_and_wait(generation_topic(app_id), marker, partition=0)
    finally:
        await producer.stop()


async def _create(broker: BrokerSettings, name: str, partitions: int) -> None:
    """A topic of faust's own (not in the contracts): the table's partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
