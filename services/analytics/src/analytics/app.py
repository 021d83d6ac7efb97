"""The faust app of the analytics worker, built from settings (nothing at import time).

One agent reads every public topic analytics uses (never a private one) in batches
(`BulkIntake`: straight from faust's fetch loop, not through its streams), applies each
batch's facts to the entity table (one read and at most one write per entity per batch:
an order's placement, assessment, payment, reservation and confirmation arriving
together cost one changelog record), and keeps the figures up to date from the entities
that changed. After every recovery or rebalance the figures are
rebuilt from the entities of the partitions this worker holds."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import Message
from shopfloor_contracts.topics import ANALYTICS, ORDERS, dlq_topic
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.deadletters import letter_headers
from shopfloor_runtime.fausttables import BulkIntake, SealedTable, raw_topic, worker_options
from shopfloor_runtime.rulesfile import WatchedRules

from analytics.alerting import AlertPublisher
from analytics.entities import State
from analytics.facts import TOPICS, message_key_of
from analytics.figures import Figures
from analytics.group import GroupFigures
from analytics.processing import Processor, Progress, Rejected
from analytics.rules import AnalyticsRules
from analytics.settings import AnalyticsSettings

log = logging.getLogger(__name__)

TABLE = "entities"
SERVICE = "analytics"
#: every topic read has this many partitions (the contracts' layout), and so has the table
PARTITIONS = ORDERS.partitions
#: how often a worker that is not the leader reads back the alerts the leader raised
ALERTS_READ_S = 5.0
#: how often a worker beside others puts the group's figures together for its metrics
GROUP_REFRESH_S = 5.0


def partition_of(entity: str) -> int:
    """The partition an entity's events come from: its message key's."""
    return partition_for(message_key_of(entity).encode(), PARTITIONS)


class EntityTable(SealedTable):
    """Entity states, one per key. A key's changelog record goes to the partition its
    events come from (not the partition of the event that happens to be current while a
    batch is applied), so it is recovered by whichever worker reads those events."""

    figures: Figures | None = None

    def partition_for_key(self, key: Any) -> int | None:
        return partition_of(str(key))

    def recovered(self, seconds: float) -> None:
        held = self.held_partitions()
        entities = 0
        if self.figures is not None:
            mine = list(self.entities(held))
            entities = len(mine)
            self.figures.rebuild(mine)
            self.figures.held = set(held)  # what the figures now count, for the group
        log.info(
            "entity table recovered in %.2fs: %d entities on partitions %s",
            seconds,
            entities,
            sorted(held),
        )

    def held_partitions(self) -> set[int]:
        topic = self.changelog_topic_name
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def entities(self, partitions: set[int]) -> Iterator[tuple[str, State]]:
        for key, state in self.data.items():
            if ":" in str(key) and state and partition_of(str(key)) in partitions:
                yield str(key), state


class Unsent:
    """The entity table as the processor sees it in the worker: read from the table's
    store, written there at once, and sent to the changelog a batch per partition after
    each batch of input (`SealedTable.put_unsent`)."""

    def __init__(self, table: EntityTable) -> None:
        self.table = table

    def get(self, key: str, /) -> State | None:
        state: State | None = self.table.data.get(key)
        return state

    def __setitem__(self, key: str, value: State, /) -> None:
        self.table.put_unsent(key, value)


class Analytics:
    """The agent's work: batches of input records through the processor; what it rejects
    goes to `dlq.analytics` (acknowledged by the broker before the batch's offsets count
    as done: faust commits only after flushing its producer)."""

    def __init__(self, table: EntityTable, figures: Figures, dead: faust.TopicT) -> None:
        self.table = table
        self.processor = Processor(Unsent(table), figures)
        self.dead = dead

    @property
    def progress(self) -> Progress:
        return self.processor.progress

    async def consume(self, batches: AsyncIterable[Sequence[Message]]) -> None:
        async for messages in batches:
            rejected = self.apply_batch(messages)
            await self.table.send_unsent()
            for one in rejected:
                await self._dead_letter(one.handle, one.error)

    def apply_batch(self, messages: Sequence[Message]) -> list[Rejected[Message]]:
        return self.processor.apply((m, m.topic, m.key, m.value) for m in messages)

    async def _dead_letter(self, m: Message, error: str) -> None:
        headers = letter_headers(SERVICE, m.topic, m.partition, m.offset, error)
        await self.dead.send(key=m.key, value=m.value, headers=headers)


@dataclass
class Worker:
    app: faust.App
    analytics: Analytics
    alerts: AlertPublisher
    rules: WatchedRules[AnalyticsRules]
    group: GroupFigures


def create_app(settings: AnalyticsSettings) -> Worker:
    app = faust.App(
        settings.app_id,
        **worker_options(settings.broker, settings.replication, settings.commit_interval_s),
        store="memory://",
        datadir=str(settings.datadir),
        topic_partitions=PARTITIONS,
        # a whole batch in one poll (measured with faust's streams: 3.8k events/s with
        # faust's 4096 / unlimited, 4.6-4.7k with these, batches of 5,000-10,000)
        stream_buffer_maxsize=4 * settings.batch_size,
        broker_max_poll_records=settings.batch_size,
        Table=EntityTable,
        web_enabled=True,  # serves the service's own API (FastAPI, serve_asgi), not faust's
        # what faust's assignor tells the other workers: where this one's API answers
        canonical_url=settings.url(),
    )
    table = app.Table(
        TABLE,
        default=None,
        partitions=PARTITIONS,
        # JSON keys: a recovered key is the same str the agent writes (raw would give bytes)
        schema=faust.Schema(key_serializer="json", value_serializer="json"),
        seal=settings.seal_changelog,
    )
    assert isinstance(table, EntityTable)
    figures = Figures()
    figures.held = set()  # nothing counted until the table's first recovery
    table.figures = figures
    source = raw_topic(app, *TOPICS)
    dead = app.topic(dlq_topic(SERVICE), key_serializer="raw", value_serializer="raw")
    analytics = Analytics(table, figures, dead)
    # the input bypasses faust's streams (BulkIntake); the agent stays registered for
    # its subscription and its partitions, and runs the batches instead of its stream
    intake = BulkIntake(app, TOPICS, high_water=4 * settings.batch_size)

    async def consume(stream: AsyncIterable[Any]) -> None:
        await analytics.consume(intake.batches(settings.batch_size, settings.batch_within_s))

    app.agent(source, name="analytics.apply")(consume)

    def members() -> dict[str, set[int]]:
        """Each member's URL and the entity table's partitions it holds, as faust's
        assignor told every member at the last rebalance."""
        topic = table.changelog_topic_name
        return {
            url: set(held.get(topic, ()))
            for url, held in app.assignor.table_metadata(topic).items()
        }

    group = GroupFigures(
        figures,
        str(app.conf.canonical_url),  # as faust's assignor names this member
        PARTITIONS,
        members,
        timeout_s=settings.peer_timeout_s,
    )
    rules = WatchedRules(settings.rules_file, AnalyticsRules, settings.rules_check_s)
    alerts = AlertPublisher(
        app.topic(ANALYTICS.name, key_serializer="raw", value_serializer="raw"),
        settings.broker,
        group.current,
        rules.current,
    )
    # the interval is set once: a new check_s in the rules file takes a restart
    app.timer(rules.current().alerts.check_s, on_leader=True, name="analytics.alerts")(alerts.tick)
    # the metrics of a worker beside others: the group's figures, at most this old
    app.timer(GROUP_REFRESH_S, name="analytics.group")(group.refresh)
    # the other workers show the alerts the leader raised: they read them back
    app.timer(ALERTS_READ_S, name="analytics.alerts.read")(alerts.follow(app.is_leader))
    return Worker(app, analytics, alerts, rules, group)
