"""Publishing the alerts: every `check_s` the leader worker evaluates the rules on the
group's figures (never on part of them: with a partition missing it waits) and sends each
change as AlertRaised / AlertCleared to analytics.v1 (keyed by alert id, positions chained
per partition like every producer's), waiting for the broker's acknowledgement before it
counts the change as made. When it starts, it reads analytics.v1 back to know which alerts
are up and where its positions stand; the other workers read it back every few seconds,
to show the same alerts."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID, uuid5

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TopicT
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import ANALYTICS
from shopfloor_runtime import broker as brokerlib
from shopfloor_runtime.chain import partition_for
from shopfloor_runtime.settings import BrokerSettings

from analytics.alerts import AlertBook, Verdict, evaluate
from analytics.group import GroupView
from analytics.rules import AnalyticsRules
from analytics.timeutil import day_date

log = logging.getLogger(__name__)
NAMESPACE = UUID("0b6a9f8e-37c4-4d51-8f0e-5a3c2d7e9b14")


class AlertPublisher:
    def __init__(
        self,
        topic: TopicT,
        broker: BrokerSettings,
        group: Callable[[], Awaitable[GroupView]],
        rules: Callable[[], AnalyticsRules],
    ) -> None:
        self.topic, self.broker, self.group, self.rules = topic, broker, group, rules
        self.book = AlertBook()
        self.loaded = False
        self.position = 0  # the last position written, over all partitions
        self.chains: dict[int, int] = {}  # partition -> its last position
        self.versions: dict[str, int] = {}  # alert id -> events so far

    async def load(self) -> None:
        """The alerts and positions as analytics.v1 holds them."""
        self._take(await self._read())
        self.loaded = True

    def _take(self, state: tuple[AlertBook, int, dict[int, int], dict[str, int]]) -> None:
        self.book, self.position, self.chains, self.versions = state

    async def _read(self) -> tuple[AlertBook, int, dict[int, int], dict[str, int]]:
        await brokerlib.ensure_topics(self.broker, [ANALYTICS.name])
        book, position, chains, versions = AlertBook(), 0, dict[int, int](), dict[str, int]()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = [TopicPartition(ANALYTICS.name, p) for p in range(ANALYTICS.partitions)]
            ends = await consumer.end_offsets(tps)
            async for record in brokerlib.records_until(consumer, ends):
                envelope = json.loads(record.value or b"{}")
                book.apply(envelope["event_type"], envelope["payload"])
                at = int(envelope["position"])
                position = max(position, at)
                chains[record.partition] = max(chains.get(record.partition, 0), at)
                alert = envelope["payload"]["alert_id"]
                versions[alert] = versions.get(alert, 0) + 1
        finally:
            await consumer.stop()
        return book, position, chains, versions

    def follow(self, is_leader: Callable[[], bool]) -> Callable[[], Awaitable[None]]:
        """A timer's work for the workers that are not the leader: read the alerts back,
        so their API shows what the leader raised. A worker that becomes the leader
        reads them once more before it judges (its book may be a few seconds old)."""

        async def read_back() -> None:
            if is_leader():
                return
            state = await self._read()
            if not is_leader():  # it may have become the leader, and published, meanwhile
                self._take(state)
                self.loaded = False

        return read_back

    async def tick(self) -> None:
        if not self.loaded:
            await self.load()
            active = [a.alert_id for a in self.book.alerts.values() if a.active]
            log.info("alerts read back from %s: %d active %s", ANALYTICS.name, len(active), active)
        group = await self.group()
        if not group.complete:
            missing = sorted(set(range(group.partitions)) - group.covered)
            log.warning("alerts not judged: the figures of partitions %s are missing", missing)
            return
        as_of = group.newest_day()
        if as_of is None:
            return  # nothing seen yet: no figures to judge
        for verdict in self.book.changes(evaluate(group.figures, self.rules().alerts, as_of)):
            await self._publish(verdict, day_date(as_of).isoformat())

    async def _publish(self, verdict: Verdict, as_of: str) -> None:
        alert_id = verdict.rule
        now = datetime.now(UTC)
        kind = "AlertRaised" if verdict.tripped else "AlertCleared"
        payload: dict[str, object] = {
            "alert_id": alert_id,
            "rule": verdict.rule,
            "level": verdict.level,
            "summary": verdict.summary,
            "figures": verdict.figures,
            "as_of": as_of,
            ("raised_at" if verdict.tripped else "cleared_at"): now,
        }
        spec = EVENTS[kind]
        key = alert_id.encode()
        partition = partition_for(key, ANALYTICS.partitions)
        position = self.position + 1
        version = self.versions.get(alert_id, 0) + 1
        message = spec.message_model().model_validate(
            {
                "event_id": uuid5(NAMESPACE, f"{alert_id}:{version}"),
                "event_type": kind,
                "schema_version": spec.version,
                "occurred_at": now,
                "producer": "analytics",
                "aggregate_id": alert_id,
                "aggregate_version": version,
                "correlation_id": alert_id,
                "position": position,
                "previous_position": self.chains.get(partition, 0),
                "payload": payload,
            }
        )
        sent = await self.topic.send(
            key=key, value=message.model_dump_json().encode(), partition=partition
        )
        await sent  # acknowledged before the book changes
        self.position, self.chains[partition], self.versions[alert_id] = position, position, version
        self.book.apply(kind, message.model_dump(mode="json")["payload"])
        log.warning("alert %s %s: %s", alert_id, kind, verdict.summary)
