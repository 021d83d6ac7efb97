"""Applying what a poll fetched, effectively once: the part of the tracked consumer that
decides, per message, whether it is new, a repeat or a sign of a gap, and saves the
effects of a whole poll with the consumer positions in one transaction.

Positions come from the producer's own log, not from Kafka offsets, so a refilled topic
or a redelivery is recognised: a position at or below the tracked one is a repeat and is
dropped; a message whose `previous_position` is ahead of the tracked one means something
was missed, and the caller reads the partition again from the beginning instead of
skipping. A message that cannot be decoded or applied is handed to `dead_letter` (which
returns once the dead letter is stored) and the rest go on. Runs in a worker thread.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import ConsumerRecord, TopicPartition
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import PersistenceError, RecordConflictError
from pydantic import ValidationError
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.registry import EVENTS, read_payload
from shopfloor_contracts.topics import TOPICS

from shopfloor_runtime.deadletters import Rejected
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork
from shopfloor_runtime.metrics import EVENT_AGE_SECONDS
from shopfloor_runtime.recorders import TrackingMove
from shopfloor_runtime.store import ServiceApplication

CONFLICT_RETRIES = 200
#: Failures of the store or the network, not of the message: never a dead letter.
TRANSIENT = (PersistenceError, OSError, TimeoutError)

Record: TypeAlias = ConsumerRecord[bytes, bytes]
DeadLetterSink = Callable[[Rejected], None]


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


class Poison(Exception):
    """A message that can never be applied (bad bytes, bad payload)."""


class _HandlerFailed(Exception):
    pass


def by_event_type(handlers: Handlers) -> dict[str, Handler]:
    """Handlers by the event type on the wire; each key must be the registered contract
    model of its event type (a look-alike class would never be handed its payload)."""
    named: dict[str, Handler] = {}
    for model, handler in handlers.items():
        spec = EVENTS.get(model.__name__)
        if spec is None or spec.model is not model:
            raise TypeError(f"{model.__qualname__} is not a registered contract event")
        named[model.__name__] = handler
    return named


class BatchApplier:
    def __init__(self, service: str, app: ServiceApplication, handlers: Handlers) -> None:
        self.service, self.app = service, app
        self.handlers = by_event_type(handlers)
        self._positions: dict[str, int] = {}  # tracking name -> position, see _position
        # Below these offsets a partition was handled before a rewind: unreadable bytes
        # met there again are not dead-lettered twice.
        self.handled_below: dict[TopicPartition, int] = {}

    # -- decoding -------------------------------------------------------------------------

    @staticmethod
    def envelope(record: Record) -> InboundEnvelope:
        try:
            return InboundEnvelope.model_validate_json(record.value or b"")
        except ValidationError as error:
            raise Poison(f"undecodable envelope: {first_error(error)}") from None

    def payload(self, envelope: InboundEnvelope) -> Any:
        """The typed payload, or None for event types this service does not handle."""
        if envelope.event_type not in self.handlers:
            return None
        try:
            return read_payload(envelope.event_type, envelope.payload)
        except ValidationError as error:
            raise Poison(f"invalid {envelope.event_type} payload: {first_error(error)}") from None

    # -- applying ---------------------------------------------------------------------------

    def apply_poll(
        self, batches: Mapping[TopicPartition, Sequence[Record]], dead_letter: DeadLetterSink
    ) -> dict[TopicPartition, BatchResult]:
        """Apply everything one poll fetched, every partition, in one transaction; on a
        failing handler, fall back to one message per transaction."""
        sent: set[tuple[TopicPartition, int]] = set()

        def dead_letter_once(dead: Rejected) -> None:  # retries re-meet the same poison
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
                self.forget_positions()
                pause(attempt)
        raise RuntimeError(f"gave up after {CONFLICT_RETRIES} write conflicts in a row")

    def forget_positions(self) -> None:
        """Read positions from the store again (after a conflict or a rebalance)."""
        self._positions.clear()

    def _apply(
        self,
        batches: Mapping[TopicPartition, Sequence[Record]],
        dead_letter: DeadLetterSink,
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
                    envelope = self.envelope(record)
                except Poison as poison:  # no position to track: it is outside every chain
                    if record.offset < self.handled_below.get(tp, 0):
                        result.duplicates += 1  # met again on a re-read: already dead-lettered
                        continue
                    dead_letter(Rejected(record, str(poison)))
                    result.dead += 1
                    continue
                if not chained(tp.topic):  # handlers apply these idempotently
                    outcome = self._handle_one(record, envelope, uow, isolate, dead_letter)
                    if isolate and outcome == "applied":
                        self._save(uow.take(), [])
                    setattr(result, outcome, getattr(result, outcome) + 1)
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
                observe_age(self.service, tp.topic, envelope.occurred_at)
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
        record: Record,
        envelope: InboundEnvelope,
        uow: UnitOfWork,
        isolate: bool,
        dead_letter: DeadLetterSink,
    ) -> str:
        """Apply one message in order; returns the outcome counted for it. Isolated, a
        handler's failure dead-letters the message and undoes only its own changes."""
        try:
            payload = self.payload(envelope)
        except Poison as poison:
            dead_letter(Rejected(record, str(poison)))
            return "dead"
        if payload is None:
            return "ignored"
        handler = self.handlers[envelope.event_type]
        try:
            handler(envelope, payload, uow)
        except TRANSIENT:
            raise  # the store is away, not the message: nothing moves, try again later
        except Exception as error:  # noqa: BLE001 - isolated: the message goes to the DLQ
            if not isolate:
                raise _HandlerFailed from error
            uow.take()  # its half-made changes are dropped
            dead_letter(Rejected(record, f"{type(error).__name__}: {error}"))
            return "dead"
        return "applied"


def chained(topic: str) -> bool:
    """Whether a topic's messages carry the producer's chained positions (an unknown
    topic is treated as chained: its messages are tracked)."""
    known = TOPICS.get(topic)
    return known is None or known.chained


def pause(attempt: int) -> None:
    """After a write conflict: a short random pause, longer each time, so two workers
    contending for one aggregate part ways."""
    time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.1)))


def first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    return f"{where}: {first.get('msg')}"


def observe_age(service: str, topic: str, occurred_at: datetime) -> None:
    age = (datetime.now(UTC) - occurred_at).total_seconds()
    EVENT_AGE_SECONDS.labels(service, topic).observe(max(age, 0.0))
