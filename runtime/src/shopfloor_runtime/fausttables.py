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

faust's cost per input record: see `_deliver_directly` and `BulkIntake`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable
from typing import Any, cast

import faust
from faust.types import TP, EventT, Message
from mode.services import WaitResults

from shopfloor_runtime.settings import BrokerSettings

log = logging.getLogger(__name__)

#: A tombstone's key that names no entry: applied on recovery, it deletes nothing.
SEAL_KEY = b'"~seal"'

#: the largest batch of records sent to one partition at once (faust's default: 16 KiB)
PRODUCER_BATCH_BYTES = 512 * 1024

#: the app's attribute listing its `BulkIntake`s
INTAKES = "_shopfloor_bulk_intakes"

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
    stay bytes; a tombstone's value arrives as None. (faust sets `decode` on the instance
    when it compiles the topic's schema, so it is replaced there, not overridden.)"""

    def _compile_decode(self) -> None:
        self.decode = self._decode_raw  # type: ignore[method-assign]

    async def _decode_raw(self, message: Any, *, propagate: bool = False) -> EventT:
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
        self._unsent: dict[Any, Any] = {}
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
        for intake in getattr(self.app, INTAKES, ()):
            intake.install()
        if self.seal:
            await self._seal(await self._nonempty_changelog_partitions())
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_changelog_event(self, event: EventT) -> None:
        self._recovered_events += 1
        await super().on_changelog_event(event)

    def recovered(self, seconds: float) -> None:
        """Called once the table is recovered after a rebalance (this worker's start
        included), before any input is processed."""

    def put_unsent(self, key: Any, value: Any) -> None:
        """Store a value now and write its changelog record at the next `send_unsent`,
        with every other record put since, a batch per partition (the last value of a
        key put twice is written once).

        faust writes each change as it is made: a future, a buffered message, a task
        turn and an aiokafka send per record, which measured as about a fifth of the
        analytics worker's time. Here the records go to aiokafka as whole batches. The
        input offsets behind the changes must be acknowledged only after `send_unsent`
        returned: faust's commit waits for aiokafka's batches (its producer flush), so
        what it commits is then in the changelog. Needs `partition_for_key` to name
        the partition (the default names the current event's, and there is none)."""
        self.data[key] = value
        self._unsent[key] = value

    async def send_unsent(self) -> None:
        unsent, self._unsent = self._unsent, {}
        if not unsent:
            return
        topic = self.changelog_topic
        name, schema, serializers = topic.get_topic_name(), topic.schema, self.app.serializers
        by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
        for key, value in unsent.items():
            partition = self.partition_for_key(key)
            if partition is None:
                raise TypeError(f"{type(self).__name__} names no partition for {key!r}")
            by_partition.setdefault(partition, []).append(
                (
                    serializers.dumps_key(None, key, serializer=schema.key_serializer),
                    serializers.dumps_value(None, value, serializer=schema.value_serializer),
                )
            )
        producer = cast(Any, self.app.producer)._ensure_producer()  # aiokafka's
        for partition, records in by_partition.items():
            batch = producer.create_batch()
            for key_bytes, value_bytes in records:
                if batch.append(timestamp=None, key=key_bytes, value=value_bytes) is None:
                    await producer.send_batch(batch, name, partition=partition)
                    batch = producer.create_batch()
                    if batch.append(timestamp=None, key=key_bytes, value=value_bytes) is None:
                        raise ValueError(f"a changelog record of {name} is over a batch's size")
            await producer.send_batch(batch, name, partition=partition)

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
        if len(coros) == 2 and timeout is None:
            delivery, waiting = coros
            if delivery is TAKEN or (asyncio.iscoroutine(delivery) and clear()):
                if asyncio.iscoroutine(waiting):
                    waiting.close()  # never started: suspend_flow.wait()
                return WaitResults([delivery], [await delivery], False)
        return await original(*coros, timeout=timeout)

    consumer.wait_first = wait_first
    consumer._delivers_directly = True


class _Taken:
    """What the intake's callback gives faust's fetch loop for a record it took: an
    awaitable that is done at once (the record is in the deque), so that the fetch loop
    need not set up a delivery that could wait."""

    def __await__(self) -> Generator[Any, None, None]:
        return (yield from ())


TAKEN = _Taken()


class BulkIntake:
    """An agent's input records handed over in batches, without faust's per-record path.

    faust hands every record it fetches to the conductor, which makes an event of it and
    puts it on the queue of each stream reading its topic; the stream takes it off,
    tracks it, sets it as the current event, yields it, and acknowledges it after the
    agent's next step. Measured on the analytics worker, that path cost about as much as
    applying the event. A worker that applies whole batches itself needs none of it:
    this object takes the records of its topics straight from faust's fetch loop into
    one deque, and `batches` gives them out as lists of `faust.types.Message`. faust's
    guarantees are kept by doing what its streams do:

    - nothing is taken while flow control is suspended (a rebalance, a recovery), and
      faust empties this deque with its stream queues when a rebalance begins and when
      the flow resumes (it is one of the flow control's managed queues); a record
      fetched under an older generation of the group is dropped, never applied;
    - a batch's messages are tracked as unacknowledged while they are applied, so a
      rebalance waits for them (faust's `wait_empty`), and acknowledged one by one
      afterwards, so faust commits an offset only once everything before it is applied;
    - when the deque holds `high_water` records, the partition of each further record is
      taken off the fetch (faust's `on_buffer_full`) until the deque is half empty;
    - a batch waits for faust's producer buffer to ebb before it is applied, as every
      record did.

    The agent that owns the topics stays registered with faust (so it subscribes, and
    the table's partitions are assigned with the topics'); its body runs `batches`
    instead of iterating its stream. The fetch loop reads the consumer's callback once,
    when it starts, and faust restarts it after recovering the tables on every
    rebalance; the callback is installed before that, when a `SealedTable` of the app
    hears of the rebalance (so the app needs one: every faust worker here has)."""

    def __init__(self, app: faust.App, topics: Iterable[str], high_water: int) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.high_water = high_water
        self._records: deque[Message] = deque()
        self._arrived = asyncio.Event()
        self._paused: set[TP] = set()
        setattr(app, INTAKES, [*getattr(app, INTAKES, ()), self])

    def install(self) -> None:
        """Take the topics' records from the consumer's callback (idempotent)."""
        consumer: Any = self.app.consumer
        if getattr(consumer, "_bulk_intake", None) is self:
            return
        others = consumer.callback  # the conductor's: every other topic's records
        topics, records, arrived, paused = self.topics, self._records, self._arrived, self._paused
        high_water, take_off = self.high_water, consumer.on_buffer_full

        def callback(message: Message) -> Awaitable[None]:
            if message.topic not in topics:
                return others(message)
            records.append(message)
            arrived.set()
            if len(records) >= high_water and message.tp not in paused:
                paused.add(message.tp)
                take_off(message.tp)
            return TAKEN

        consumer.callback = callback
        consumer._bulk_intake = self
        self.app.flow_control.manage_queue(self)  # type: ignore[arg-type]

    def clear(self) -> None:
        """Called by faust's flow control (see the class's notes)."""
        self._records.clear()
        self._put_back()

    def __len__(self) -> int:
        return len(self._records)

    def _put_back(self) -> None:
        put_back = self.app.consumer.on_buffer_drop
        for tp in self._paused:
            put_back(tp)
        self._paused.clear()

    async def batches(self, size: int, within: float) -> AsyncIterator[list[Message]]:
        """Batches of up to `size` records, each given out once it is full or `within`
        seconds after its first record arrived; acknowledged when the consumer of the
        iterator asks for the next one (so an exception while applying leaves them
        unacknowledged, as faust's streams do)."""
        app, records, arrived = self.app, self._records, self._arrived
        flow, ebb = app.flow_control, app.producer.buffer.wait_until_ebb
        consumer = app.consumer
        unacked, ack = consumer.unacked, consumer.ack
        loop = asyncio.get_running_loop()
        while True:
            await flow.acquire()
            if not records:
                arrived.clear()
                await arrived.wait()
                continue  # the flow may have stopped meanwhile
            deadline = loop.time() + within
            while len(records) < size and (left := deadline - loop.time()) > 0:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), left)
                except TimeoutError:
                    break
            if not flow.is_active():
                continue
            generation = app.consumer_generation_id
            take = min(size, len(records))
            taken = [records.popleft() for _ in range(take)]
            batch = [m for m in taken if m.generation_id == generation]
            if self._paused and len(records) <= self.high_water // 2:
                self._put_back()
            if not batch:
                continue
            for message in batch:
                unacked.add(message)
            await ebb()
            yield batch
            for message in batch:
                ack(message)
