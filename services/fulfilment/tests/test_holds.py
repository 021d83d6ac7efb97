"""Risk holds: a held order is never allocated; one held after confirmation leaves its
lane or wave before dispatch (capacity and picks given back) and is allocated again,
once, when released. Redelivered holds and releases change nothing twice."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from fulfilment.domain import Lane, lane_id
from fulfilment.translation import to_contract
from shopfloor_contracts import fulfilment as contract

from .test_floor import BINS, pick_all, wave_of

BER = "WH-BER"


@pytest.fixture
def rules_settings():
    return {**BINS, "wave_size": 3, "merge": False}


def used(feed) -> int:
    return feed.app.capacity(BER, feed.app.clock.now().date().isoformat())[0]


def pulled_events(feed, shipment_id: UUID) -> list[contract.ShipmentPulled]:
    payloads = [p for e in feed.app.events.get(shipment_id) if (p := to_contract(e))]
    return [p for _, p in payloads if isinstance(p, contract.ShipmentPulled)]


def test_an_order_held_before_confirmation_is_not_allocated_until_released(feed):
    order = feed.order({"TEE-M": 1})
    feed.placed(order)
    feed.recipient(order)
    feed.reserved(order, {"TEE-M": BER})
    feed.held(order)
    feed.confirmed(order)  # the order service would not; fulfilment must not rely on it
    assert feed.file_of(order).shipments == []
    assert used(feed) == 0
    feed.released(order)
    shipment = feed.shipment_of(order)
    assert shipment.status == "waiting" and used(feed) == 1


def test_a_hold_after_confirmation_pulls_the_order_from_its_lane_and_gives_capacity_back(feed):
    order = feed.confirmed_order({"TEE-M": 1})
    first = feed.shipment_of(order)
    assert used(feed) == 1
    feed.held(order)
    assert feed.app.get_shipment(first.id).status == "pulled"
    assert feed.file_of(order).shipments == []
    assert feed.app.find(lane_id(BER, "B", 0), Lane, fresh=True).waiting == {}
    assert used(feed) == 0
    [pulled] = pulled_events(feed, first.id)
    assert pulled.reason == "held" and pulled.order_id == order.order_id


def test_a_released_order_gets_one_new_shipment_and_goes_back_in_its_lane(feed):
    order = feed.confirmed_order({"TEE-M": 1})
    first = feed.shipment_of(order)
    feed.held(order)
    feed.released(order)
    feed.released(order)  # redelivered
    second = feed.shipment_of(order)
    assert second.id != first.id
    assert feed.file_of(order).shipments == [str(second.id)]
    assert second.status == "waiting"
    lane = feed.app.find(lane_id(BER, "B", 0), Lane, fresh=True)
    assert list(lane.waiting) == [str(second.id)]
    assert used(feed) == 1


def test_a_hold_in_a_released_wave_pulls_the_order_and_its_picks_go_back(feed):
    orders = [feed.confirmed_order({"TEE-M": 1}) for _ in range(3)]
    wave = wave_of(feed, orders[0])
    feed.app.pick(wave.id, "p", "B-01-3", "TEE-M", 1, None)
    first = wave.pick_list[0]["order_id"]
    held = next(o for o in orders if o.order_id == first)
    shipment = feed.shipment_of(held)
    feed.held(held)
    assert feed.app.get_wave(wave.id).pulled == [first]
    [pulled] = pulled_events(feed, shipment.id)
    assert pulled.reason == "held"
    assert [(r.sku, r.qty) for r in pulled.returned_picks] == [("TEE-M", 1)]
    pick_all(feed.app, feed.app.get_wave(wave.id))
    assert feed.app.get_wave(wave.id).status == "picked"  # the others go on
    feed.released(held)
    again = feed.shipment_of(held)
    assert again.id != shipment.id and again.wave_id is None and again.status == "waiting"


def test_a_redelivered_hold_pulls_nothing_twice(feed):
    order = feed.confirmed_order({"TEE-M": 1})
    first = feed.shipment_of(order)
    feed.held(order)
    feed.held(order)
    assert len(pulled_events(feed, first.id)) == 1
    assert used(feed) == 0


def test_a_hold_after_dispatch_changes_nothing_and_its_release_allocates_nothing(feed, clock):
    orders = [feed.confirmed_order({"TEE-M": 1}) for _ in range(3)]
    pick_all(feed.app, wave_of(feed, orders[0]))
    order = orders[0]
    shipment = feed.app.pack(feed.shipment_of(order).id, 500, [{"sku": "TEE-M", "qty": 1}])
    assert shipment.status == "dispatched"
    feed.held(order)
    assert feed.app.get_shipment(shipment.id).status == "dispatched"
    assert pulled_events(feed, shipment.id) == []
    feed.released(order)
    assert feed.file_of(order).shipments == [str(shipment.id)]


def test_a_held_order_cancelled_is_never_allocated_again(feed, clock):
    order = feed.confirmed_order({"TEE-M": 1})
    feed.held(order)
    feed.cancelled(order)
    feed.released(order)
    clock.advance(timedelta(minutes=5))
    assert feed.file_of(order).shipments == []
    assert used(feed) == 0
