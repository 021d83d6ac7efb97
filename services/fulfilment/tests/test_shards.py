"""Lanes and capacity kept per shard (the default deployment: 6 shards, one per input
partition), so workers owning different partitions never write the same aggregate:
each shard numbers its own waves, a shard that runs out of capacity borrows from one
with room, and the shards together never take more than the warehouse's limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fulfilment.domain import Lane, lane_id, wave_id
from fulfilment.settings import Settings
from pydantic import ValidationError
from shopfloor_contracts.topics import ORDERS
from shopfloor_runtime.chain import partition_for

from .conftest import Feed, Order

BER, AMS = "WH-BER", "WH-AMS"
TEE_IN_B = {"warehouses": {BER: {"bins": {"TEE-M": "B-01-3"}}, AMS: {}}}


@pytest.fixture
def shards() -> int:
    return 6


def order_in_shard(feed: Feed, shard: int, **kwargs) -> Order:
    while True:
        order = feed.order({"TEE-M": 1}, **kwargs)
        if feed.app.rules.shard_of(order.order_id) == shard:
            return order


def confirm(feed: Feed, order: Order, warehouse: str = BER) -> None:
    feed.placed(order)
    feed.recipient(order)
    feed.reserved(order, {"TEE-M": warehouse}, free={("TEE-M", AMS): 50})
    feed.confirmed(order)


def today(feed: Feed) -> str:
    return feed.app.clock.now().date().isoformat()


def test_a_shard_is_the_partition_range_its_order_lands_on(feed):
    rules = feed.app.rules
    for n in range(200):
        order_id = f"order-{n}"
        assert rules.shard_of(order_id) == partition_for(order_id.encode(), ORDERS.partitions)


@pytest.mark.parametrize("rules_settings", [{**TEE_IN_B, "wave_size": 2, "merge": False}])
def test_each_shard_fills_and_numbers_its_own_waves(feed):
    first = [order_in_shard(feed, 1) for _ in range(2)]
    other = order_in_shard(feed, 4)
    for order in (first[0], other, first[1]):
        confirm(feed, order)

    wave = feed.app.get_wave(wave_id(BER, "B", 1, 1))  # shard 1's first wave
    assert sorted(wave.order_ids) == sorted(o.order_id for o in first)
    assert wave.warehouse == BER and wave.zone == "B" and wave.trigger == "size"
    waiting = feed.app.find(lane_id(BER, "B", 4), Lane, fresh=True)
    assert list(waiting.waiting) == [str(feed.shipment_of(other).id)]  # not yet full

    clock = feed.app.clock
    clock.advance(feed.app.rules.wave_window + timedelta(seconds=1))
    assert feed.app.release_due_waves() == 1
    assert feed.app.get_wave(wave_id(BER, "B", 4, 1)).order_ids == [other.order_id]


@pytest.mark.parametrize(
    "rules_settings",
    [{**TEE_IN_B, "merge": False, "warehouses": {BER: {"daily_capacity": 3}, AMS: {}}}],
)
def test_shards_lend_capacity_and_never_exceed_the_limit_together(feed):
    # 3 slots over 6 shards: shards 0-2 own one each, 3-5 none; orders in shard 5 borrow.
    late = [order_in_shard(feed, 5) for _ in range(3)]
    for order in late:
        confirm(feed, order)
    assert [feed.shipment_of(o).warehouse for o in late] == [BER, BER, BER]
    assert feed.app.capacity(BER, today(feed)) == (3, 3)

    spill = order_in_shard(feed, 0)
    confirm(feed, spill)
    shipment = feed.shipment_of(spill)
    assert shipment.warehouse == AMS
    reasons = {r["warehouse"]: r["reason"] for r in shipment.warehouses}
    assert reasons[BER] == "WH-BER: over today's capacity 3/3"

    feed.cancelled(late[0])  # its slot goes back to shard 5, and can be lent again
    assert feed.app.capacity(BER, today(feed)) == (2, 3)
    again = order_in_shard(feed, 2)
    confirm(feed, again)
    assert feed.shipment_of(again).warehouse == BER
    assert feed.app.capacity(BER, today(feed)) == (3, 3)


@pytest.mark.parametrize("shards", [4, 5, 0])
def test_a_shard_count_that_does_not_divide_the_partitions_is_refused(shards):
    with pytest.raises(ValidationError) as refused:
        Settings(shards=shards)
    (error,) = refused.value.errors()
    assert error["loc"] == ("shards",)
