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

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust.types.tables import WindowWrapperT
from faust.types.windows import WindowRange, WindowT
from shopfloor_runtime.fausttables import SealedTable

from risk.velocity import Placed, bucket_of

log = logging.getLogger(__name__)


class VelocityTable(SealedTable):
    """The sealed faust Table (shopfloor_runtime.fausttables: the repairs its recovery
    needs on the embedded broker), reporting what its recovery brought back."""

    def recovered(self, seconds: float) -> None:
        buckets, orders = _sizes(self.data.items())
        log.info(
            "velocity table recovered in %.2fs: %d buckets, %d order entries",
            seconds,
            buckets,
            orders,
        )


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
