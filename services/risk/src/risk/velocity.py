"""Velocity counting, pure: how many distinct orders of one key (a customer, an address
fingerprint, a device) were placed in the window ending at an order's placement.

The count for order X is the number of orders of the key with placed_at in
(X.placed_at - window, X.placed_at], ties at one instant broken by order id, so only
orders with (placed_at, order_id) <= X's count. It depends only on the set of orders, never
on the order they arrive in: an order arriving late (placed before orders already counted)
changes the counts of those later orders, and `observe` returns them too, so that whoever
keeps the latest count per order ends with the same answer as a crash-free, in-order run.

Times are integer microseconds since the epoch: exact, so ties and window edges never
depend on float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

Dimension = Literal["customer", "address", "device"]

#: VelocityObserved names at most this many of the counted orders.
ORDER_IDS_SHOWN = 20

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS = 1_000_000


def to_micros(moment: datetime) -> int:
    """An aware datetime as exact microseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@dataclass(frozen=True, order=True)
class Placed:
    """One order as a window knows it. Ordered by (placed_at, order_id): the tie-break."""

    at_us: int
    order_id: str
    customer_id: str = field(compare=False)
    event_id: str = field(compare=False, default="")


@dataclass(frozen=True)
class Tally:
    """An order's count in one window: the orders counted, oldest first (itself last)."""

    order: Placed
    window_s: int
    counted: tuple[Placed, ...]

    @property
    def count(self) -> int:
        return len(self.counted)

    @property
    def order_ids(self) -> list[str]:
        """The most recent orders counted (the ones nearest this order), oldest first."""
        return [o.order_id for o in self.counted[-ORDER_IDS_SHOWN:]]


def tally(order: Placed, orders: Iterable[Placed], window_s: int) -> Tally:
    """The count of `order` among `orders` (which must include it)."""
    start = order.at_us - window_s * _MICROS
    counted = sorted(o for o in orders if start < o.at_us and o <= order)
    return Tally(order, window_s, tuple(counted))


def observe(order: Placed, known: Mapping[str, Placed], window_s: int) -> list[Tally]:
    """What to tell when `order` arrives, given the key's orders already counted (`known`,
    by order id, covering at least `reach_us(order, window_s)`): its own tally first, then
    (only when it is new) the tallies of the later orders whose window it falls into.

    An order already known changes nothing: its own tally is told again (its earlier
    telling may not have reached the broker before a crash), the later orders' are not
    (the caller made sure they were delivered before it recorded the order)."""
    if order.order_id in known:
        return [tally(known[order.order_id], known.values(), window_s)]
    orders = [*known.values(), order]
    later = sorted(o for o in orders if o > order and o.at_us - window_s * _MICROS < order.at_us)
    return [tally(o, orders, window_s) for o in (order, *later)]


def reach_us(order: Placed, window_s: int) -> tuple[int, int]:
    """The placement times `observe` needs known orders from: an order's own window
    behind it, and the window ahead of it (the later orders it may count for)."""
    window_us = window_s * _MICROS
    return order.at_us - window_us, order.at_us + window_us


def bucket_of(at_us: int, bucket_s: int) -> int:
    """The index of the tumbling bucket a placement time falls into."""
    return at_us // (bucket_s * _MICROS)
