"""A faust Table with the two repairs its recovery needs on the embedded broker, for
every faust worker of the project (risk's velocity windows, analytics). Imported only
by those workers: the runtime itself does not depend on faust.

The broker's end offset: faust recovers a changelog partition up to its end offset,
which the embedded broker reports as the first offset of the partition's last batch + 1,
so the rest of that batch would never be read back (state lost on every restart). Before
recovery, one tombstone, alone in its batch, is written to every non-empty changelog
partition this worker is about to recover: the end offset is then exact and recovery
reads everything before it. It runs after the old owner stopped writing (a rebalance
revokes every partition first). Its key names no entry, so applying it deletes nothing.

faust's resume after a recovery that read anything: see `_recovered`.

faust's cost per input record: see `_deliver_directly`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import faust
from faust.types import TP, EventT
from mode.services import WaitResults

from shopfloor_runtime.settings import BrokerSettings

log = logging.getLogger(__name__)

#: A tombstone's key that names no entry: applied on recovery, it deletes nothing.
SEAL_KEY = b'"~seal"'

#: the largest batch of records sent to one partition at once (faust's default: 16 KiB)
PRODUCER_BATCH_BYTES = 512 * 1024

#: faust's fetcher asks for records with a 1 s timeout; a fetch begun before the flow
#: stopped has returned after this long.
FETCH_SETTLE_S = 1.5


def worker_options(
    broker: BrokerSettings, replication: int, commit_interval_s: float
) -> dict[str, Any]:
    """The faust.App settings every faust worker of the project shares."""
    return {
        "broker": [f"kafka://{s.strip()}" for s in broker.bootstrap_servers.split(",")],
        "topic_replication_factor": replication,
        "broker_session_timeout": broker.session_timeout_ms / 1000,
        "broker_heartbeat_interval": broker.heartbeat_interval_ms / 1000,
        "broker_commit_interval": commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        # exactly_once needs Kafka transactions: the embedded broker has none
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        # aiokafka holds one open batch per partition and makes a send wait for the
        # sender once it is full: faust's 16 KiB (about 30 table records) made the
        # changelog writes of a batch wait for the broker again and again
        "producer_max_batch_size": PRODUCER_BATCH_BYTES,
        # no standby copies: with the memory store a standby is read again from the start
        # when it becomes active, so it would only double the changelog reads
        "table_standby_replicas": 0,
        # faust's web server stays off (or is replaced); never on 0.0.0.0 in any case
        "web_bind": "127.0.0.1",
        "web_host": "127.0.0.1",
    }


class RawTopic(faust.Topic):
    """A topic whose records reach the agent as the bytes the broker holds (the agent
    parses them with the contract models). faust's own decoding runs every key and value
    through its serializer registry, a few microseconds a record for nothing when both
    stay bytes; a tombstone's value arrives as None."""

    async def decode(self, message: Any, *, propagate: bool = False) -> EventT:
        return self._create_event(message.key, message.value, message.headers, message=message)


def raw_topic(app: faust.App, *names: str) -> RawTopic:
    return RawTopic(app, topics=list(names), key_serializer="raw", value_serializer="raw")


class SealedTable(faust.Table):
    """Subclasses override `recovered(seconds)` to report what came back."""

    def __init__(self, *args: Any, seal: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seal = seal
        self._rebalanced_at = time.monotonic()
        self._recovered_events = 0
        self.on_recover(self._recovered)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        self._rebalanced_at, self._recovered_events = time.monotonic(), 0
        _seek_uncommitted_too(self.app)
        _deliver_directly(self.app)
        if self.seal:
            await self._seal(await self._nonempty_changelog_partitions())
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_changelog_event(self, event: EventT) -> None:
        self._recovered_events += 1
        await super().on_changelog_event(event)

    def recovered(self, seconds: float) -> None:
        """Called once the table is recovered after a rebalance (this worker's start
        included), before any input is processed."""

    async def _nonempty_changelog_partitions(self) -> list[int]:
        """An empty partition needs no seal, and leaving it empty spares a first start
        the recovery path altogether."""
        topic = self.changelog_topic_name
        mine = [tp for tp in self.app.assignor.assigned_actives() if tp.topic == topic]
        ends = await self.app.consumer.highwaters(*mine) if mine else {}
        return sorted(tp.partition for tp in mine if ends.get(tp))

    async def _seal(self, partitions: list[int]) -> None:
        topic, producer = self.changelog_topic_name, self.app.producer
        sending = [
            await producer.send(topic, SEAL_KEY, None, partition, None, None)
            for partition in partitions
        ]
        sent = await asyncio.gather(*sending)
        offsets = {p: metadata.offset for p, metadata in zip(partitions, sent, strict=True)}
        log.info("sealed %s before recovery at offsets %s", topic, json.dumps(offsets))

    async def _recovered(self) -> None:
        """Runs inside faust's `Recovery.on_recovery_completed`, before it resumes the
        input partitions, seeks them to their committed offsets and resumes flow control,
        which empties every stream's queue. If recovery read anything, faust's fetcher is
        running by then, and input records it fetches in between are dropped from the
        queues; a partition never committed is not sought back, so they are never read
        again, and as faust commits only up to the first offset not acknowledged, that
        partition never commits again (measured: 55 of 1000 orders never processed and
        the worker stalled, in about half of the starts with a backlog). Stopping the
        flow here, and waiting out a fetch already under way, keeps every input record in
        the broker until faust resumes the flow, after the queues were emptied."""
        self.recovered(time.monotonic() - self._rebalanced_at)
        if self._recovered_events:
            self.app.consumer.stop_flow()
            self.app.flow_control.suspend()
            await asyncio.sleep(FETCH_SETTLE_S)


def _seek_uncommitted_too(app: Any) -> None:
    """After faust seeks the input partitions to their committed offsets, seek those
    that have none to their beginning (the consumers start from the earliest offset).

    aiokafka's `seek_to_committed` seeks only a partition whose committed offset is
    above 0 and leaves the others where the fetcher left them; records the fetcher got
    while faust resumed after a recovery are dropped from the stream queues, so on such
    a partition they were never read again (measured: after a SIGKILL, every record of
    the two topics whose partitions had not been committed yet lost in 2 of 4 restarts
    of the analytics worker). Installed once per consumer."""
    consumer = app.consumer
    if getattr(consumer, "_seeks_uncommitted", False):
        return
    original = consumer.perform_seek
    changelogs = {table.changelog_topic.get_topic_name() for table in app.tables.values()}

    async def perform_seek() -> None:
        await original()
        committed = await consumer.seek_to_committed()
        fresh = [
            tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
        ]
        if fresh:
            earliest = await consumer.earliest_offsets(*fresh)
            for tp in fresh:
                await consumer.seek(tp, earliest.get(tp) or 0)
            log.info("sought %d never committed partitions to their beginning", len(fresh))

    consumer.perform_seek = perform_seek
    consumer._seeks_uncommitted = True


def _deliver_directly(app: Any) -> None:
    """Hand each fetched record to the streams without four asyncio tasks per record.

    faust's fetch loop delivers every record as `wait_first(deliver(record),
    suspend_flow.wait())`, so that a rebalance can abandon a delivery that waits (for
    flow control, a full stream queue, a full producer buffer). mode's `wait_first` makes
    a task of each of the two, and of the service's stopped and crashed events, waits
    for the first and cancels the other three: per record, four tasks and several turns
    of the event loop. When nothing can make the delivery wait (the flow runs, no stream
    queue is full, the producer buffer is under its limit: the usual case), it is awaited
    directly instead; otherwise faust's own way is kept. Installed once per consumer."""
    consumer = app.consumer
    if getattr(consumer, "_delivers_directly", False):
        return
    original = consumer.wait_first
    suspended, flow, buffer = consumer.suspend_flow.is_set, app.flow_control, app.producer.buffer
    channels = app.topics._topics  # the conductor's channels: every stream queue

    def clear() -> bool:
        return (
            not suspended()
            and flow.is_active()
            and buffer.size <= buffer.max_messages
            and not any(channel.queue.full() for channel in channels)
        )

    async def wait_first(*coros: Any, timeout: Any = None) -> Any:
        if len(coros) == 2 and timeout is None and asyncio.iscoroutine(coros[0]) and clear():
            delivery, waiting = coros
            if asyncio.iscoroutine(waiting):
                waiting.close()  # never started: suspend_flow.wait()
            return WaitResults([delivery], [await delivery], False)
        return await original(*coros, timeout=timeout)

    consumer.wait_first = wait_first
    consumer._delivers_directly = True
