"""Allocation: every confirmed order gets one warehouse and one carrier, explained; it
waits for all of its facts (in any order); merges; capacity; inventory's refusals."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from fulfilment.domain import Shipment
from fulfilment.translation import to_contract
from shopfloor_contracts.fulfilment import ShipmentAllocated


def published(app, aggregate_id):
    """The contract events an aggregate's stored events become."""
    found = [to_contract(e) for e in app.events.get(aggregate_id)]
    return [payload for key_payload in found if key_payload for payload in [key_payload[1]]]


def test_a_confirmed_order_held_in_its_nearest_warehouse_ships_from_there(feed):
    order = feed.confirmed_order({"TEE-M": 2}, warehouse="WH-BER")

    shipment = feed.shipment_of(order)
    assert shipment.warehouse == "WH-BER"
    assert shipment.status == "waiting"  # units already there: straight to its lane
    ranked = shipment.warehouses
    assert [r["warehouse"] for r in ranked] == ["WH-BER", "WH-AMS"]
    assert ranked[0]["chosen"] and ranked[0]["reason"] is None
    assert ranked[1]["reason"] == "WH-AMS: not enough stock: TEE-M (2 needed, 0 free)"


def test_allocation_waits_for_every_fact_whatever_order_they_arrive_in(feed):
    order = feed.order({"TEE-M": 1})
    feed.confirmed(order)
    feed.reserved(order, {"TEE-M": "WH-BER"})
    assert feed.file_of(order).shipments == []  # not placed yet: lines and destination unknown
    feed.placed(order)
    assert feed.shipment_of(order).warehouse == "WH-BER"


def test_nearest_warehouse_with_stock_wins_and_the_others_say_why(feed):
    order = feed.order({"MUG-WHITE": 1}, country="NL")
    feed.placed(order)
    feed.reserved(order, {"MUG-WHITE": "WH-BER"}, free={("MUG-WHITE", "WH-AMS"): 5})
    feed.confirmed(order)

    shipment = feed.shipment_of(order)
    assert shipment.warehouse == "WH-AMS"  # 40 km against 650 km; inventory must move it
    assert shipment.status == "awaiting_stock"
    assert shipment.warehouses[1]["reason"] == "WH-BER: farther (650 km vs 40 km)"
    payload = published(feed.app, shipment.id)[0]
    assert isinstance(payload, ShipmentAllocated)
    assert payload.warehouse == "WH-AMS" and payload.order_id == order.order_id

    feed.moved(order, str(shipment.id), "WH-AMS")
    assert feed.shipment_of(order).status == "waiting"


def test_an_inventory_refusal_makes_the_next_warehouse_take_it(feed):
    order = feed.order({"MUG-WHITE": 1}, country="NL")
    feed.placed(order)
    feed.reserved(order, {"MUG-WHITE": "WH-BER"}, free={("MUG-WHITE", "WH-AMS"): 5})
    feed.confirmed(order)
    first = feed.shipment_of(order)

    feed.move_refused(order, str(first.id), "WH-AMS")

    second = feed.shipment_of(order)
    assert second.id != first.id
    assert second.warehouse == "WH-BER" and second.status == "waiting"
    reasons = {r["warehouse"]: r["reason"] for r in second.warehouses}
    assert reasons["WH-AMS"].startswith("WH-AMS: inventory refused: not enough stock")
    assert feed.app.get_shipment(first.id).status == "reallocated"
    used, _ = feed.app.capacity("WH-AMS", feed.app.clock.now().date().isoformat())
    assert used == 0  # the refused warehouse got its capacity back


@pytest.mark.parametrize(
    "rules_settings",
    [{"warehouses": {"WH-BER": {"daily_capacity": 1}, "WH-AMS": {"daily_capacity": 400}}}],
)
def test_a_warehouse_over_todays_capacity_is_passed_over_with_the_figures(feed):
    feed.confirmed_order({"TEE-M": 1}, warehouse="WH-BER")
    order = feed.order({"TEE-M": 1})
    feed.placed(order)
    feed.reserved(order, {"TEE-M": "WH-BER"}, free={("TEE-M", "WH-AMS"): 3})
    feed.confirmed(order)

    shipment = feed.shipment_of(order)
    assert shipment.warehouse == "WH-AMS"
    reasons = {r["warehouse"]: r["reason"] for r in shipment.warehouses}
    assert reasons["WH-BER"] == "WH-BER: over today's capacity 1/1"


def test_an_order_no_warehouse_can_take_asks_inventory_then_waits_with_the_reasons(feed):
    order = feed.order({"TEE-M": 3})
    feed.placed(order)
    feed.reserved(order, [("TEE-M", "WH-BER", 2), ("TEE-M", "WH-AMS", 1)])
    feed.confirmed(order)

    # by inventory's figures no warehouse has all 3: the nearest is asked all the same
    asked = feed.shipment_of(order)
    assert (asked.warehouse, asked.status) == ("WH-BER", "awaiting_stock")
    chosen = asked.warehouses[0]
    assert chosen["chosen"] and "inventory is asked to hold it here" in chosen["reason"]
    feed.move_refused(order, str(asked.id), "WH-BER")
    feed.move_refused(order, str(feed.shipment_of(order).id), "WH-AMS")

    file = feed.file_of(order)
    assert file.shipments == []
    assert file.unallocated == "no warehouse can take the whole order"


@pytest.mark.parametrize("rules_settings", [{"split": True}])
def test_with_splits_allowed_an_order_ships_from_each_warehouse_holding_it(feed):
    order = feed.order({"TEE-M": 3})
    feed.placed(order)
    feed.reserved(order, [("TEE-M", "WH-BER", 2), ("TEE-M", "WH-AMS", 1)])
    feed.confirmed(order)

    file = feed.file_of(order)
    parts = sorted(
        (s.warehouse, s.units) for s in map(feed.app.get_shipment, map(UUID, file.shipments))
    )
    assert parts == [("WH-AMS", 1), ("WH-BER", 2)]


def test_the_cheapest_carrier_that_keeps_the_promise_is_chosen(feed):
    standard = feed.confirmed_order({"TEE-M": 1})
    express = feed.confirmed_order({"TEE-M": 1}, service_level="express")

    s = feed.shipment_of(standard)
    assert (s.carrier, s.service) == ("DPD", "standard")  # 3 days <= 4, 5.00 for 1 kg
    reasons = {(c["carrier"], c["service"]): c["reason"] for c in s.carriers}
    assert reasons[("DHL", "standard")] == "DHL standard: dearer (5.30 vs 5.00)"
    assert reasons[("PostNL", "standard")] == "PostNL standard: does not serve DE-1"
    assert s.promised_by == feed.file_of(standard).confirmed_at + timedelta(days=4)
    e = feed.shipment_of(express)
    assert (e.carrier, e.service) == ("DHL", "express")  # 1 day, cheaper than UPS
    reasons = {(c["carrier"], c["service"]): c["reason"] for c in e.carriers}
    assert reasons[("DPD", "standard")] == "DPD standard: 3 days misses the 1-day promise"
    assert reasons[("UPS", "express")].startswith("UPS express: dearer (")


def test_orders_of_one_customer_to_one_address_merge_while_waiting(feed):
    first = feed.confirmed_order({"TEE-M": 1}, customer_id="cust-1", fingerprint="addr-1")
    second = feed.confirmed_order({"TEE-M": 2}, customer_id="cust-1", fingerprint="addr-1")
    other_address = feed.confirmed_order({"TEE-M": 1}, customer_id="cust-1", fingerprint="addr-2")

    merged = feed.shipment_of(first)
    assert feed.shipment_of(second).id == merged.id
    assert merged.order_ids == [first.order_id, second.order_id]
    assert merged.units == 3
    assert feed.shipment_of(other_address).id != merged.id
    joined = published(feed.app, merged.id)[-1]
    assert joined.merged and joined.order_id == second.order_id


@pytest.mark.parametrize("rules_settings", [{"merge": False}])
def test_merging_can_be_switched_off(feed):
    first = feed.confirmed_order({"TEE-M": 1}, customer_id="cust-1", fingerprint="addr-1")
    second = feed.confirmed_order({"TEE-M": 1}, customer_id="cust-1", fingerprint="addr-1")
    assert feed.shipment_of(first).id != feed.shipment_of(second).id


def test_a_repeated_fact_changes_nothing(feed):
    order = feed.confirmed_order({"TEE-M": 1})
    shipment = feed.shipment_of(order)
    feed.confirmed(order)
    feed.reserved(order, {"TEE-M": "WH-BER"})
    again = feed.shipment_of(order)
    assert (again.id, again.version) == (shipment.id, shipment.version)
    assert isinstance(again, Shipment)


def test_a_waiting_order_is_tried_again_and_refusals_are_forgotten(feed):
    order = feed.order({"MUG-WHITE": 1}, country="NL")
    feed.placed(order)
    feed.reserved(order, [("MUG-WHITE", "presale", 1)])  # presold: held nowhere yet
    feed.confirmed(order)
    first = feed.shipment_of(order)
    feed.move_refused(order, str(first.id), first.warehouse)
    second = feed.shipment_of(order)
    feed.move_refused(order, str(second.id), second.warehouse)
    assert feed.file_of(order).shipments == []  # both refused: it waits
    assert feed.app.retry_unallocated([order.order_id]) == 1  # stock may have arrived
    third = feed.shipment_of(order)
    assert third.warehouse == "WH-AMS" and third.status == "awaiting_stock"
