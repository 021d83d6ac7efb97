"""Tracked consumer: broker -> application, effectively once.

The aiokafka side: polls every assigned partition, hands a whole poll to the
`BatchApplier` (one transaction, with the consumer positions), writes dead letters
through the `DeadLetterProducer` before a message counts as consumed, reads a partition
again from the start when the applier finds a gap (pausing only that partition when the
gap stays), and commits offsets only as a hint of where to resume: the positions in the
store are what keeps it effectively once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.protocol.group import LeaveGroupRequest
from shopfloor_contracts.topics import dlq_topic

from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.applier import BatchApplier, BatchResult, Record
from shopfloor_runtime.deadletters import DeadLetterProducer, Rejected
from shopfloor_runtime.edge import Handlers
from shopfloor_runtime.metrics import CONSUMER_LAG, EVENTS_CONSUMED, GAPS, PROCESSING_SECONDS
from shopfloor_runtime.redrive import redrive
from shopfloor_runtime.settings import BrokerSettings, ConsumerSettings
from shopfloor_runtime.store import ServiceApplication

#: how old this consumer's view of the topics may grow before it is read again
METADATA_MAX_AGE_MS = 5_000

log = logging.getLogger(__name__)


class TrackedConsumer:
    def __init__(
        self,
        *,
        service: str,
        app: ServiceApplication,
        topics: Sequence[str],
        handlers: Handlers,
        broker: BrokerSettings,
        settings: ConsumerSettings,
        group_id: str | None = None,
    ) -> None:
        self.service, self.app, self.topics = service, app, list(topics)
        self.broker, self.settings = broker, settings
        self.applier = BatchApplier(service, app, handlers)
        self.group_id = group_id or f"{service}.{'+'.join(self.topics)}"
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq = DeadLetterProducer(service, broker)
        self._gap_streak: dict[TopicPartition, int] = {}
        self._resume_at: dict[TopicPartition, float] = {}  # paused after repeated gaps
        self.applied = 0

    def redrive(self, record: Record, name: str) -> str:
        """A dead letter applied again with the current handlers (see redrive.py)."""
        return redrive(self.applier, record, name)

    # -- the asyncio side ---------------------------------------------------------

    async def start(self) -> None:
        self.applier.handled_below.clear()  # a new connection's offsets may be a new topic's
        self._resume_at.clear()
        await brokerlib.ensure_topics(self.broker, [*self.topics, dlq_topic(self.service)])
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.broker.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.broker.session_timeout_ms,
            heartbeat_interval_ms=self.broker.heartbeat_interval_ms,
            max_poll_records=self.settings.batch_size,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            # Partition n of every topic (same key, same count) goes to one member: a
            # worker sees all of an order's messages, and owns its shard (fulfilment).
            partition_assignment_strategy=(RangePartitionAssignor,),
            # A topic that appears after the group formed (a broker that lost its data,
            # refilled by the relays) is assigned only once this consumer's metadata shows
            # its partitions; aiokafka's default of 5 minutes left a consumer that rejoined
            # before the refill without partitions that long (a flaky broker-loss test)
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        await self._dlq.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self._leave_group()
        for client in (self._consumer, self._dlq):
            if client is not None:
                with contextlib.suppress(Exception):  # stopping anyway
                    await client.stop()
        self._consumer = None

    async def _leave_group(self) -> None:
        """Tell the coordinator this member goes, so its partitions move at once rather
        than after the session timeout. aiokafka sends LeaveGroup only for generations
        above 0, and the embedded broker (Tansu) runs every group at generation 0;
        measured: a leaving worker's partitions waited 4.6 s instead of 2.0 s at a 3 s
        session timeout."""
        coordinator: Any = getattr(self._consumer, "_coordinator", None)
        if coordinator is None or coordinator.generation != 0 or not coordinator.member_id:
            return
        request = LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
        try:
            await asyncio.wait_for(coordinator._send_req(request), 2.0)
        except Exception as error:  # noqa: BLE001 - best effort: the session timeout still works
            log.info("%s: LeaveGroup not sent (%s)", self.service, error)

    async def poll_once(self) -> int:
        """Fetch what is there (every assigned partition) and apply it; returns the
        number of messages handled."""
        assert self._consumer is not None
        await self._resume_due()
        batches = await self._consumer.getmany(
            timeout_ms=self.settings.fetch_timeout_ms, max_records=self.settings.batch_size
        )
        if not batches:
            return 0
        return await self._handle(batches)

    async def _handle(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> int:
        assert self._consumer is not None
        started = time.perf_counter()
        loop = asyncio.get_running_loop()

        def dead_letter(dead: Rejected) -> None:
            asyncio.run_coroutine_threadsafe(self._dlq.send(dead), loop).result(timeout=60)

        results = await asyncio.to_thread(self.applier.apply_poll, batches, dead_letter)
        took = time.perf_counter() - started
        for topic in {tp.topic for tp in batches}:
            PROCESSING_SECONDS.labels(self.service, topic).observe(took)
        offsets: dict[TopicPartition, int] = {}
        for tp, result in results.items():
            records = batches[tp]
            self._count(tp.topic, result)
            if result.gap:
                offsets[tp] = result.gap_at  # all before it is handled: resume there
                below = self.applier.handled_below
                below[tp] = max(below.get(tp, 0), result.gap_at)
                await self._rewind(tp, progressed=result.progressed)
                continue
            if result.progressed:
                self._gap_streak.pop(tp, None)
            offsets[tp] = records[-1].offset + 1
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.service, tp.topic).set(
                    max(highwater - records[-1].offset - 1, 0)
                )
        if offsets:
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                log.info(
                    "%s: offset commit skipped (%s); tracking keeps it safe", self.service, error
                )
        return sum(len(records) for records in batches.values())

    async def _rewind(self, tp: TopicPartition, progressed: bool) -> None:
        """A predecessor is missing: read the partition again rather than skip it. If it
        stays missing (its producer has not re-published it yet), wait longer each time,
        with only that partition paused: the others go on."""
        assert self._consumer is not None
        GAPS.labels(self.service, tp.topic).inc()
        streak = 0 if progressed else self._gap_streak.get(tp, 0) + 1
        self._gap_streak[tp] = streak
        if streak >= 3:
            wait = min(2.0 ** (streak - 2), 30.0)
            log.error(
                "%s: %s still misses a message its producer wrote before; waiting "
                "%.0fs for it to be re-published (nothing is skipped)",
                self.service,
                tp,
                wait,
            )
            self._consumer.pause(tp)
            self._resume_at[tp] = time.monotonic() + wait
            return
        log.warning("%s: gap on %s; reading the partition again from the start", self.service, tp)
        await self._consumer.seek_to_beginning(tp)

    async def _resume_due(self) -> None:
        assert self._consumer is not None
        now = time.monotonic()
        for tp, at in list(self._resume_at.items()):
            if at <= now:
                del self._resume_at[tp]
                if tp in self._consumer.assignment():
                    self._consumer.resume(tp)
                    await self._consumer.seek_to_beginning(tp)

    def _count(self, topic: str, result: BatchResult) -> None:
        self.applied += result.applied
        for outcome, n in (
            ("applied", result.applied),
            ("duplicate", result.duplicates),
            ("ignored", result.ignored),
            ("dead_letter", result.dead),
        ):
            if n:
                EVENTS_CONSUMED.labels(self.service, topic, outcome).inc(n)

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = 0.5
        while not stopping.is_set():
            try:
                if self._consumer is None:
                    await self.start()
                await self.poll_once()
                backoff = 0.5
            except Exception as error:  # noqa: BLE001 - reconnect; committed work is safe
                log.warning("%s consumer: %s; restarting in %.1fs", self.service, error, backoff)
                await self.stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), backoff)
                backoff = min(backoff * 2, 10.0)
        await self.stop()
