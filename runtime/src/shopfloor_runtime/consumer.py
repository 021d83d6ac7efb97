"""Tracked consumer: broker -> application, effectively once.

Messages of one partition are applied in one transaction per batch, with a tracking
record naming the last producer position applied (`<topic>#<partition>@<producer>`).
Positions come from the producer's own log, not from Kafka offsets, so a refilled topic
or a redelivery is recognised: a position at or below the tracked one is a repeat and is
dropped; a message whose `previous_position` is ahead of the tracked one means something
was missed, and the partition is read again from the beginning instead of skipping.
A message that cannot be decoded or applied goes to `dlq.<service>` and the rest go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import PersistenceError, RecordConflictError
from pydantic import ValidationError
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.registry import read_payload
from shopfloor_contracts.topics import dlq_topic

from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.edge import Handler, UnitOfWork
from shopfloor_runtime.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENT_AGE_SECONDS,
    EVENTS_CONSUMED,
    GAPS,
    PROCESSING_SECONDS,
)
from shopfloor_runtime.recorders import TrackingMove
from shopfloor_runtime.settings import BrokerSettings, ConsumerSettings
from shopfloor_runtime.store import ServiceApplication

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 200


class GapDetected(Exception):
    pass


@dataclass
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    error: str


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead: int = 0
    gap: bool = False
    gap_at: int = 0  # offset of the message whose predecessor is missing

    @property
    def progressed(self) -> bool:
        """A position moved (dead letters of unreadable bytes move none)."""
        return self.applied + self.ignored > 0


def tracking_name(topic: str, partition: int, producer: str) -> str:
    return f"{topic}#{partition}@{producer}"


class _Poison(Exception):
    """A message that can never be applied (bad bytes, bad payload, handler refusal)."""


class TrackedConsumer:
    def __init__(
        self,
        *,
        service: str,
        app: ServiceApplication,
        topics: Sequence[str],
        handlers: dict[str, Handler],
        broker: BrokerSettings,
        settings: ConsumerSettings,
        group_id: str | None = None,
    ) -> None:
        self.service, self.app, self.topics = service, app, list(topics)
        self.handlers, self.broker, self.settings = handlers, broker, settings
        self.group_id = group_id or f"{service}.{'+'.join(self.topics)}"
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: Any = None
        self._gap_streak: dict[TopicPartition, int] = {}
        # Below these offsets a partition was handled before a rewind: unreadable bytes
        # met there again are not dead-lettered twice.
        self._handled_below: dict[TopicPartition, int] = {}
        self._resume_at: dict[TopicPartition, float] = {}  # paused after repeated gaps
        self._positions: dict[str, int] = {}  # tracking name -> position, see _position
        self.applied = 0

    # -- applying one partition's batch (runs in a worker thread) -----------------

    @staticmethod
    def _envelope(record: ConsumerRecord[bytes, bytes]) -> InboundEnvelope:
        try:
            return InboundEnvelope.model_validate_json(record.value or b"")
        except ValidationError as error:
            raise _Poison(f"undecodable envelope: {_first_error(error)}") from None

    def _payload(self, envelope: InboundEnvelope) -> Any:
        """The typed payload, or None for event types this service does not handle."""
        if envelope.event_type not in self.handlers:
            return None
        try:
            return read_payload(envelope.event_type, envelope.payload)
        except ValidationError as error:
            raise _Poison(f"invalid {envelope.event_type} payload: {_first_error(error)}") from None

    def apply_poll(
        self,
        batches: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        dead_letter: Callable[[DeadLetter], None],
    ) -> dict[TopicPartition, BatchResult]:
        """Apply everything one poll fetched, every partition, in one transaction; on a
        failing handler, fall back to one message per transaction.

        `dead_letter` must return only once the dead letter is stored, so a message is
        never marked consumed before its dead letter exists.
        """
        sent: set[tuple[TopicPartition, int]] = set()

        def dead_letter_once(dead: DeadLetter) -> None:  # retries re-meet the same poison
            key = (TopicPartition(dead.record.topic, dead.record.partition), dead.record.offset)
            if key not in sent:
                dead_letter(dead)
                sent.add(key)

        isolate = False
        for attempt in range(CONFLICT_RETRIES):
            try:
                return self._apply(batches, dead_letter_once, isolate, attempt > 0)
            except _HandlerFailed:
                isolate = True  # find the failing message, apply the others
            except RecordConflictError:
                # Another worker changed an aggregate this batch touches (a hot SKU) or
                # moved a position: load again and decide again, after a short random
                # pause so the two part ways.
                self._positions.clear()
                _pause(attempt)
        raise RuntimeError(f"gave up after {CONFLICT_RETRIES} write conflicts in a row")

    def _apply(
        self,
        batches: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        dead_letter: Callable[[DeadLetter], None],
        isolate: bool,
        careful: bool,
    ) -> dict[TopicPartition, BatchResult]:
        results = {tp: BatchResult() for tp in batches}
        uow = UnitOfWork(self.app, careful or isolate)
        # Where each position stood when this attempt began (what its move expects),
        # and where the applied messages took it.
        started: dict[str, int] = {}
        positions: dict[str, int] = {}
        for tp, records in batches.items():
            result = results[tp]
            for record in records:
                try:
                    envelope = self._envelope(record)
                except _Poison as poison:  # no position to track: it is outside every chain
                    if record.offset < self._handled_below.get(tp, 0):
                        result.duplicates += 1  # met again on a re-read: already dead-lettered
                        continue
                    dead_letter(DeadLetter(record, str(poison)))
                    result.dead += 1
                    continue
                name = tracking_name(tp.topic, tp.partition, envelope.producer)
                if name not in positions:
                    started[name] = positions[name] = self._position(name)
                last = positions[name]
                if envelope.position <= last:
                    result.duplicates += 1
                    continue
                if envelope.previous_position > last:
                    self._confirm_gap(name, started[name])
                    result.gap, result.gap_at = True, record.offset
                    break
                outcome = self._handle_one(record, envelope, uow, isolate, dead_letter)
                if isolate and outcome == "applied":
                    move = TrackingMove(name, started[name], envelope.position)
                    self._save(uow.take(), [move])
                    started[name] = envelope.position
                setattr(result, outcome, getattr(result, outcome) + 1)
                positions[name] = envelope.position
                _observe_age(self.service, tp.topic, envelope.occurred_at)
        moves = [TrackingMove(n, started[n], p) for n, p in positions.items() if p > started[n]]
        self._save(uow.take(), moves)
        return results

    def _position(self, name: str) -> int:
        """The position as this worker last read or moved it. Kept between polls: every
        move checks it is still where it was, so a stale one costs a retry, never a
        message applied twice."""
        if name not in self._positions:
            self._positions.update(self.app.tracked_positions([name]))
        return self._positions[name]

    def _confirm_gap(self, name: str, believed: int) -> None:
        """A gap is only real if the stored position agrees (another worker may have
        moved it while this one held a stale copy)."""
        if self.app.tracked_positions([name])[name] != believed:
            raise RecordConflictError(f"{name} moved on elsewhere")

    def _save(self, aggregates: list[Aggregate], moves: list[TrackingMove]) -> None:
        if not aggregates and not moves:
            return
        try:
            self.app.record(aggregates, moves=moves)
        except RecordConflictError:
            self.app.forget([a.id for a in aggregates])  # cached copies were stale
            raise
        for move in moves:
            self._positions[move.name] = move.position

    def _handle_one(
        self,
        record: ConsumerRecord[bytes, bytes],
        envelope: InboundEnvelope,
        uow: UnitOfWork,
        isolate: bool,
        dead_letter: Callable[[DeadLetter], None],
    ) -> str:
        """Apply one message in order; returns the outcome counted for it. Isolated, a
        handler's failure dead-letters the message and undoes only its own changes."""
        try:
            payload = self._payload(envelope)
        except _Poison as poison:
            dead_letter(DeadLetter(record, str(poison)))
            return "dead"
        if payload is None:
            return "ignored"
        handler = self.handlers[envelope.event_type]
        if not isolate:
            try:
                handler(envelope, payload, uow)
            except TRANSIENT:
                raise  # the store is away, not the message: nothing moves, try again later
            except Exception as error:
                raise _HandlerFailed from error
            return "applied"
        try:
            handler(envelope, payload, uow)
        except TRANSIENT:
            raise
        except Exception as error:  # noqa: BLE001 - the message goes to the DLQ
            uow.take()  # its half-made changes are dropped
            dead_letter(DeadLetter(record, f"{type(error).__name__}: {error}"))
            return "dead"
        return "applied"

    # -- dead letters, after a fix ------------------------------------------------

    def redrive(self, record: ConsumerRecord[bytes, bytes], name: str) -> str:
        """Apply a dead letter's message again with the current handlers, outside its
        partition chain. `name` records it as redriven, with its effects, in one
        transaction; returns "applied", "ignored" (no handler wants it) or
        "already" (redriven before), or raises `RedriveFailed` with the new error."""
        if self.app.tracked_positions([name])[name]:
            return "already"
        try:
            envelope = self._envelope(record)
            payload = self._payload(envelope)
        except _Poison as poison:
            raise RedriveFailed(str(poison)) from None
        outcome = "ignored" if payload is None else "applied"
        for attempt in range(CONFLICT_RETRIES):
            uow = UnitOfWork(self.app, careful=True)
            if payload is not None:
                try:
                    self.handlers[envelope.event_type](envelope, payload, uow)
                except TRANSIENT:
                    raise  # the store is away: the redrive fails, the letter is untouched
                except Exception as error:  # noqa: BLE001 - reported; the letter stays
                    raise RedriveFailed(f"{type(error).__name__}: {error}") from None
            try:
                self.app.record(uow.take(), moves=[TrackingMove(name, 0, 1)])
                return outcome
            except RecordConflictError:
                self.app.forget(uow.ids)
                if self.app.tracked_positions([name])[name]:
                    return "already"  # another redrive got there first
                _pause(attempt)
        raise RedriveFailed(f"gave up after {CONFLICT_RETRIES} write conflicts in a row")

    # -- the asyncio side ---------------------------------------------------------

    async def start(self) -> None:
        self._handled_below.clear()  # offsets of a new connection may be a new topic's
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
        )
        self._dlq = brokerlib.producer(self.broker)
        await self._dlq.start()
        await self._consumer.start()

    async def stop(self) -> None:
        for client in (self._consumer, self._dlq):
            if client is not None:
                with contextlib.suppress(Exception):  # stopping anyway
                    await client.stop()
        self._consumer = self._dlq = None

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

        def dead_letter(dead: DeadLetter) -> None:
            asyncio.run_coroutine_threadsafe(self._dead_letter(dead), loop).result(timeout=60)

        results = await asyncio.to_thread(self.apply_poll, batches, dead_letter)
        took = time.perf_counter() - started
        for topic in {tp.topic for tp in batches}:
            PROCESSING_SECONDS.labels(self.service, topic).observe(took)
        offsets: dict[TopicPartition, int] = {}
        for tp, result in results.items():
            records = batches[tp]
            self._count(tp.topic, result)
            if result.gap:
                offsets[tp] = result.gap_at  # all before it is handled: resume there
                self._handled_below[tp] = max(self._handled_below.get(tp, 0), result.gap_at)
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

    async def _dead_letter(self, dead: DeadLetter) -> None:
        record = dead.record
        log.error(
            "%s: dead letter from %s[%s]@%s: %s",
            self.service,
            record.topic,
            record.partition,
            record.offset,
            dead.error,
        )
        headers = [
            ("dlq.error", dead.error.encode()[:4000]),
            ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()),
            ("dlq.offset", str(record.offset).encode()),
            ("dlq.service", self.service.encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self._dlq.send_and_wait(
            dlq_topic(self.service), record.value, key=record.key, headers=headers
        )
        DEAD_LETTERS.labels(self.service, record.topic).inc()

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


class _HandlerFailed(Exception):
    pass


def _pause(attempt: int) -> None:
    """After a write conflict: a short random pause, longer each time, so two workers
    contending for one aggregate part ways."""
    time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.1)))


#: Failures of the store or the network, not of the message: never a dead letter.
TRANSIENT = (PersistenceError, OSError, TimeoutError)


class RedriveFailed(Exception):
    """A dead letter that still cannot be applied; it stays pending."""


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    return f"{where}: {first.get('msg')}"


def _observe_age(service: str, topic: str, occurred_at: datetime) -> None:
    age = (datetime.now(UTC) - occurred_at).total_seconds()
    EVENT_AGE_SECONDS.labels(service, topic).observe(max(age, 0.0))
