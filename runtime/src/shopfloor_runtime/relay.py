"""Transactional outbox relay: tails a service's notification log and publishes each
event, in order, keyed, to its topic.

Its state (position, per-partition chains, broker incarnation) is saved after every
acknowledged round, so a restart repeats at most one round (at-least-once; consumers
drop repeats by position). When the broker's incarnation changes, the broker lost its
data: the relay starts again from position 1 and refills every topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import TOPICS

from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.chain import PartitionChains, partition_for
from shopfloor_runtime.edge import Outbound, Translate
from shopfloor_runtime.metrics import EVENTS_PUBLISHED, RELAY_BACKLOG, RELAY_POSITION, REPUBLISHES
from shopfloor_runtime.settings import BrokerSettings, RelaySettings
from shopfloor_runtime.store import ServiceApplication, SqlStore

log = logging.getLogger(__name__)

EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:shopfloor:event")


@dataclass
class RelayState:
    incarnation: int
    position: int
    chains: PartitionChains


def event_id(producer: str, aggregate_id: UUID, version: int, part: str = "") -> UUID:
    """Stable per stored event, so a re-published event keeps its id. The first message
    of an event has the id events always had; a further one (`part`: its event type)
    gets an id of its own."""
    suffix = f":{part}" if part else ""
    return uuid5(EVENT_ID_NAMESPACE, f"{producer}:{aggregate_id}:{version}{suffix}")


def envelope_bytes(
    producer: str, domain_event: Any, out: Outbound, position: int, previous: int, part: str = ""
) -> bytes:
    name = type(out.payload).__name__
    message = EVENTS[name].message_model()(
        event_id=event_id(
            producer, domain_event.originator_id, domain_event.originator_version, part
        ),
        event_type=name,
        schema_version=EVENTS[name].version,
        occurred_at=domain_event.timestamp,
        producer=producer,
        aggregate_id=str(domain_event.originator_id),
        aggregate_version=domain_event.originator_version,
        correlation_id=out.correlation_id,
        causation_id=out.causation_id,
        position=position,
        previous_position=previous,
        payload=out.payload,
    )
    return message.model_dump_json().encode()


class RelayStateStore:
    def __init__(self, sql: SqlStore, name: str) -> None:
        self.sql, self.name = sql, name
        with sql.transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS relay_state (name TEXT PRIMARY KEY, "
                "incarnation BIGINT NOT NULL, position BIGINT NOT NULL, chains TEXT NOT NULL)"
            )

    def load(self) -> RelayState | None:
        with self.sql.transaction(write=False) as cur:
            cur.execute(
                "SELECT incarnation, position, chains FROM relay_state WHERE name = ?",
                (self.name,),
            )
            row = cur.fetchone()
        return None if row is None else RelayState(row[0], row[1], PartitionChains.loads(row[2]))

    def save(self, state: RelayState, expected: RelayState | None = None) -> bool:
        """Write the state; with `expected`, only if nobody changed it meanwhile (an
        operator's `republish` resets it under a running relay)."""
        with self.sql.transaction() as cur:
            if expected is not None:
                cur.execute(
                    "UPDATE relay_state SET incarnation = ?, position = ?, chains = ? "
                    "WHERE name = ? AND incarnation = ? AND position = ?",
                    (
                        state.incarnation,
                        state.position,
                        state.chains.dumps(),
                        self.name,
                        expected.incarnation,
                        expected.position,
                    ),
                )
                return bool(cur.rowcount == 1)
            cur.execute(
                "INSERT INTO relay_state (name, incarnation, position, chains) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "incarnation = excluded.incarnation, position = excluded.position, "
                "chains = excluded.chains",
                (self.name, state.incarnation, state.position, state.chains.dumps()),
            )
            return True

    def reset(self) -> int:
        """Make the relay publish everything again from position 1; returns the old one."""
        state = self.load()
        if state is None:
            return 0
        self.save(RelayState(state.incarnation, 0, PartitionChains()))
        return state.position


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        app: ServiceApplication,
        translate: Translate,
        sql: SqlStore,
        broker: BrokerSettings,
        settings: RelaySettings,
    ) -> None:
        self.service, self.app, self.translate = service, app, translate
        self.broker, self.settings = broker, settings
        self.states = RelayStateStore(sql, f"{service}.outbox")
        self.state: RelayState | None = None
        self._producer: Any = None
        self._checked_at = 0.0
        self.published = 0

    async def start(self) -> None:
        # Topics first: a producer started before its topics exist keeps metadata without
        # them, and its first sends to a topic created just after were refused
        # (NotLeaderForPartition), stalling the first orders for seconds while it recovered.
        await self.check_incarnation(force=True)
        self._producer = brokerlib.producer(self.broker)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def check_incarnation(self, force: bool = False) -> None:
        """Start again from position 1 when the broker is not the one we published to."""
        if not force and time.monotonic() - self._checked_at < self.settings.incarnation_check_s:
            return
        current = await brokerlib.incarnation(self.broker)
        self._checked_at = time.monotonic()
        state = await asyncio.to_thread(self.states.load)
        if state is None or state.incarnation != current:
            if state is not None and state.position > 0:
                REPUBLISHES.labels(self.service).inc()
                log.warning(
                    "%s: broker lost its data (incarnation %s -> %s); re-publishing "
                    "%s events from position 1",
                    self.service,
                    state.incarnation,
                    current,
                    state.position,
                )
            state = RelayState(current, 0, PartitionChains())
            await brokerlib.ensure_topics(self.broker, TOPICS)
            await asyncio.to_thread(self.states.save, state)
        self.state = state

    async def republish_all(self) -> None:
        """Operator command: publish every stored event again, from position 1."""
        await self.check_incarnation(force=True)
        await asyncio.to_thread(self.states.reset)
        self.state = await asyncio.to_thread(self.states.load)

    def _read(self, after: int) -> list[Any]:
        return list(
            self.app.recorder.select_notifications(
                start=after, limit=self.settings.batch_size, inclusive_of_start=False
            )
        )

    async def publish_once(self) -> int:
        """One round: read a batch after the position, send it, wait for acks, save."""
        await self.check_incarnation()
        state = self.state
        assert state is not None and self._producer is not None
        notifications = await asyncio.to_thread(self._read, state.position)
        if not notifications:
            RELAY_BACKLOG.labels(self.service).set(0)
            return 0
        chains = PartitionChains.loads(state.chains.dumps())
        futures, topics = [], []
        for notification in notifications:
            domain_event = self.app.domain_event(notification)
            for value, out, partition in self._messages(domain_event, notification.id, chains):
                futures.append(
                    await self._producer.send(
                        out.topic, value, key=out.key.encode(), partition=partition
                    )
                )
                topics.append(out.topic)
        await asyncio.gather(*futures)
        new_state = RelayState(state.incarnation, notifications[-1].id, chains)
        if not await asyncio.to_thread(self.states.save, new_state, state):
            log.warning("%s relay: its position was reset (republish); starting over", self.service)
            self.state = await asyncio.to_thread(self.states.load)
            return len(notifications)
        self.state = new_state
        for topic in topics:
            EVENTS_PUBLISHED.labels(self.service, topic).inc()
        self.published += len(topics)
        RELAY_POSITION.labels(self.service).set(new_state.position)
        if len(notifications) == self.settings.batch_size:  # behind: say by how much
            top = await asyncio.to_thread(self.app.recorder.max_notification_id)
            RELAY_BACKLOG.labels(self.service).set((top or 0) - new_state.position)
        else:
            RELAY_BACKLOG.labels(self.service).set(0)
        return len(notifications)

    def _messages(
        self, domain_event: Any, position: int, chains: PartitionChains
    ) -> list[tuple[bytes, Outbound, int]]:
        """The event's messages, each linked into its own topic's partition chain (an
        event on two topics is one position on two chains)."""
        outbound = list(self.translate(domain_event))
        topics = [out.topic for out in outbound]
        if len(set(topics)) != len(topics):
            raise ValueError(
                f"{type(domain_event).__name__} translates to two messages on one topic"
            )
        messages = []
        for index, out in enumerate(outbound):
            partition = partition_for(out.key.encode(), TOPICS[out.topic].partitions)
            previous = chains.link(out.topic, partition, position)
            part = type(out.payload).__name__ if index else ""
            value = envelope_bytes(self.service, domain_event, out, position, previous, part)
            messages.append((value, out, partition))
        return messages

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = 0.2
        while not stopping.is_set():
            try:
                if self._producer is None:
                    await self.start()
                seen = self.app.saves
                moved = await self.publish_once()
                backoff = 0.2
                if moved == 0:
                    await asyncio.to_thread(
                        self.app.wait_for_saves, seen, self.settings.poll_interval_s
                    )
            except Exception as error:  # noqa: BLE001 - keep relaying; state is reloaded
                log.warning("%s relay: %s; retrying in %.1fs", self.service, error, backoff)
                await self._reset()
                await _wait(stopping, backoff)
                backoff = min(backoff * 2, 5.0)
        await self.stop()

    async def _reset(self) -> None:
        self.state = None
        self._checked_at = 0.0
        with contextlib.suppress(Exception):  # the producer is being thrown away anyway
            await self.stop()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
