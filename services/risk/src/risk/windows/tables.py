"""The velocity table: a faust tumbling windowed table keyed "<dimension>:<key>", one
bucket per `bucket_s` of placement time (event time), each bucket's value the orders placed
in it: {order_id: [placed_at µs, customer_id, OrderPlaced event id]}. A set by order id, so
an order applied twice (a redelivery, a re-publish, a replay after a crash) is one order.
The customer and the event id are kept because an order counted earlier may have to be
told again (a late arrival changed its count), and its message needs both.

Buckets are addressed by explicit window ranges, never through faust's time-relativity:
`WindowSet.current()` and `.delta()` always use the Kafka record's timestamp, whatever
`relative_to` says (only `.value()` and assignment follow it), and a window here spans
many buckets, behind and ahead of the order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import faust
from faust.types import TP, EventT
from faust.types.tables import WindowWrapperT
from faust.types.windows import WindowRange, WindowT

from risk.velocity import Placed, bucket_of

log = logging.getLogger(__name__)

#: A tombstone's key that names no bucket: applied on recovery, it deletes nothing.
SEAL_KEY = b'"~seal"'


#: faust's fetcher asks for records with a 1 s timeout; a fetch begun before the flow
#: stopped has returned after this long.
FETCH_SETTLE_S = 1.5


class VelocityTable(faust.Table):
    """A faust Table with two repairs to its recovery, each for a fault measured here.

    The broker's end offset: faust recovers a changelog partition up to its end offset,
    which the embedded broker reports as the first offset of the partition's last batch
    + 1, so the rest of that batch would never be read back (buckets lost on every
    restart). Before recovery, one tombstone, alone in its batch, is written to every
    non-empty changelog partition this worker is about to recover: the end offset is then
    exact and recovery reads everything before it. It runs after the old owner stopped
    writing (a rebalance revokes every partition first).

    faust's resume after a recovery that read anything: see `_recovered`."""

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
        if self.seal:
            await self._seal(await self._nonempty_changelog_partitions())
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_changelog_event(self, event: EventT) -> None:
        self._recovered_events += 1
        await super().on_changelog_event(event)

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
        buckets, orders = _sizes(self.data.items())
        log.info(
            "velocity table recovered in %.2fs: %d buckets, %d order entries",
            time.monotonic() - self._rebalanced_at,
            buckets,
            orders,
        )
        if self._recovered_events:
            self.app.consumer.stop_flow()
            self.app.flow_control.suspend()
            await asyncio.sleep(FETCH_SETTLE_S)


def _sizes(items: Iterable[tuple[Any, Any]]) -> tuple[int, int]:
    buckets = orders = 0
    for _, bucket in items:
        buckets += 1
        orders += len(bucket)
    return buckets, orders


class Buckets:
    """One key's orders by bucket, read and written through the windowed table."""

    def __init__(self, windowed: WindowWrapperT, bucket_s: int) -> None:
        self.windowed, self.bucket_s = windowed, bucket_s
        window = windowed.table.window
        assert window is not None, "a windowed table has a window"
        self.window: WindowT = window

    def known(self, key: str, span_us: tuple[int, int]) -> dict[str, Placed]:
        """The key's orders in every bucket touching the span (a superset of it)."""
        first, last = (bucket_of(at, self.bucket_s) for at in span_us)
        found: dict[str, Placed] = {}
        for index in range(first, last + 1):
            found.update(_decode(self.windowed[key][self._range(index)]))
        return found

    def add(self, key: str, order: Placed) -> None:
        """A new value, never the stored one changed in place: faust writes to the
        changelog only what is assigned."""
        window = self._range(bucket_of(order.at_us, self.bucket_s))
        bucket = self.windowed[key][window]
        self.windowed[key][window] = {**bucket, order.order_id: _encode(order)}

    def _range(self, index: int) -> WindowRange:
        return self.window.current(float(index * self.bucket_s))


def _encode(order: Placed) -> list[Any]:
    return [order.at_us, order.customer_id, order.event_id]


def _decode(bucket: Mapping[str, list[Any]]) -> Iterable[tuple[str, Placed]]:
    for order_id, (at_us, customer_id, event_id) in bucket.items():
        yield order_id, Placed(at_us, order_id, customer_id, event_id)
