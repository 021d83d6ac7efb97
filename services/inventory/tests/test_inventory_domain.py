"""The stock rules themselves (inventory.domain), without any store: receiving, counting,
transfers, allocation, shortfalls, purchase limits, presale, moving holds to the shipping
warehouse, safety stock and reorder advice, and the stock invariant under a long random
run of operations."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from inventory.domain import (
    PRESALE,
    InvalidStock,
    Reservation,
    Shortfall,
    Sku,
    UnknownTransfer,
    decide,
    move,
)
from shopfloor_runtime.aggregates import copy_isolates
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.errors import DomainError

# -- helpers ------------------------------------------------------------------------


def new(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:10]}"


def stocked(clock: ManualClock, **warehouses: int) -> Sku:
    """A SKU with the given units on hand per warehouse; its pending events cleared."""
    item = Sku(new("SKU"))
    for code, qty in warehouses.items():
        item.receive(code, qty, [], clock.now())
    item.collect_events()
    return item


def policy(item: Sku, clock: ManualClock, **changes: Any) -> None:
    current = {
        "safety_stock": item.safety_stock,
        "lead_time_days": item.lead_time_days,
        "purchase_limit": item.purchase_limit,
        "presale_allowance": item.presale_allowance,
    }
    item.set_policy(now=clock.now(), **{**current, **changes})


def pending(item: Sku | Reservation) -> list[str]:
    """Names of the events recorded since the last call (and clears them)."""
    return [type(e).__name__ for e in item.collect_events()]


def reserve(item: Sku, clock: ManualClock, qty: int, customer: str | None = None) -> str:
    order_id = new("order")
    item.reserve(order_id, customer or new("customer"), qty, clock.now())
    return order_id


def per_warehouse(item: Sku) -> dict[str, tuple[int, int]]:
    return {code: (w["on_hand"], w["reserved"]) for code, w in item.stock.items()}


@pytest.fixture
def now(clock: ManualClock) -> Any:
    return clock.now()


# -- receiving ------------------------------------------------------------------------


def test_receiving_adds_units_on_hand_in_that_warehouse_only(clock, now):
    item = Sku(new("SKU"))

    item.receive("berlin", 5, [], now)
    item.receive("berlin", 3, [], now)
    item.receive("hamburg", 2, [], now)

    assert per_warehouse(item) == {"berlin": (8, 0), "hamburg": (2, 0)}
    assert (item.on_hand, item.reserved, item.available) == (10, 0, 10)
    received = [e for e in item.collect_events() if isinstance(e, Sku.Received)]
    assert [e.on_hand for e in received] == [5, 8, 2]


def test_a_receipt_needs_one_serial_number_per_unit(now):
    item = Sku(new("SKU"))
    item.collect_events()

    with pytest.raises(InvalidStock) as refused:
        item.receive("berlin", 3, ["SN-1", "SN-2"], now)

    assert refused.value.field == "serials"
    assert "2 serial numbers for 3 units" in refused.value.reason
    assert item.on_hand == 0
    assert pending(item) == []


def test_a_serial_number_repeated_within_one_receipt_is_refused(now):
    item = Sku(new("SKU"))
    item.collect_events()

    with pytest.raises(InvalidStock) as refused:
        item.receive("berlin", 3, ["SN-1", "SN-2", "SN-1"], now)

    assert refused.value.field == "serials"
    assert "SN-1" in refused.value.reason
    assert (item.on_hand, item.known_serials, pending(item)) == (0, {}, [])


def test_a_serial_number_already_received_is_refused_even_in_another_warehouse(now):
    item = Sku(new("SKU"))
    item.receive("berlin", 2, ["SN-1", "SN-2"], now)
    item.collect_events()

    with pytest.raises(InvalidStock) as refused:
        item.receive("hamburg", 2, ["SN-3", "SN-2"], now)

    assert "SN-2" in refused.value.reason
    assert per_warehouse(item) == {"berlin": (2, 0)}
    assert pending(item) == []


def test_received_serial_numbers_are_known_with_their_warehouse(now):
    item = Sku(new("SKU"))

    item.receive("berlin", 2, ["SN-1", "SN-2"], now)
    item.receive("hamburg", 1, ["SN-3"], now)

    assert item.known_serials == {"SN-1": "berlin", "SN-2": "berlin", "SN-3": "hamburg"}
    assert item.warehouse("berlin")["serials"] == ["SN-1", "SN-2"]


# -- counting ---------------------------------------------------------------------------


def test_a_count_sets_on_hand_and_records_the_difference(clock, now):
    item = stocked(clock, berlin=10)

    item.adjust("berlin", 7, "cycle count", now)

    assert per_warehouse(item) == {"berlin": (7, 0)}
    (adjusted,) = [e for e in item.collect_events() if isinstance(e, Sku.Adjusted)]
    assert (adjusted.counted, adjusted.delta, adjusted.reason) == (7, -3, "cycle count")


def test_a_count_cannot_go_below_the_units_reserved_in_that_warehouse(clock, now):
    item = stocked(clock, berlin=10)
    reserve(item, clock, 4)
    item.collect_events()

    with pytest.raises(InvalidStock) as refused:
        item.adjust("berlin", 3, "cycle count", now)

    assert refused.value.field == "counted"
    assert per_warehouse(item) == {"berlin": (10, 4)}
    assert pending(item) == []
    item.adjust("berlin", 4, "cycle count", now)  # exactly the reserved units is fine
    assert (item.on_hand, item.available) == (4, 0)


# -- transfers --------------------------------------------------------------------------


def test_transferred_units_are_in_transit_until_received(clock, now):
    item = stocked(clock, berlin=10)

    item.transfer("T-1", "berlin", "hamburg", 4, now)

    assert per_warehouse(item) == {"berlin": (6, 0)}
    assert (item.on_hand, item.in_transit, item.available) == (6, 4, 6)

    item.receive_transfer("T-1", now)

    assert per_warehouse(item) == {"berlin": (6, 0), "hamburg": (4, 0)}
    assert (item.on_hand, item.in_transit) == (10, 0)


def test_a_transfer_is_received_only_once(clock, now):
    item = stocked(clock, berlin=10)
    item.transfer("T-1", "berlin", "hamburg", 4, now)
    item.receive_transfer("T-1", now)
    item.collect_events()

    with pytest.raises(UnknownTransfer):
        item.receive_transfer("T-1", now)
    with pytest.raises(UnknownTransfer):
        item.receive_transfer("T-never-sent", now)

    assert item.warehouse("hamburg")["on_hand"] == 4
    assert pending(item) == []


def test_reserved_units_cannot_be_transferred(clock, now):
    item = stocked(clock, berlin=10)
    reserve(item, clock, 7)
    item.collect_events()

    with pytest.raises(InvalidStock) as refused:
        item.transfer("T-1", "berlin", "hamburg", 4, now)

    assert refused.value.field == "qty"
    assert "only 3 units" in refused.value.reason
    assert (per_warehouse(item), item.in_transit, pending(item)) == ({"berlin": (10, 7)}, 0, [])
    item.transfer("T-2", "berlin", "hamburg", 3, now)
    assert per_warehouse(item) == {"berlin": (7, 7)}


def test_a_transfer_within_one_warehouse_is_refused(clock, now):
    item = stocked(clock, berlin=10)

    with pytest.raises(InvalidStock) as refused:
        item.transfer("T-1", "berlin", "berlin", 1, now)

    assert refused.value.field == "to_warehouse"
    assert (item.on_hand, item.in_transit, pending(item)) == (10, 0, [])


def test_transferred_serialized_units_keep_their_serial_numbers(clock, now):
    """Each serialized unit is tracked from receiving to shipment, also across a move."""
    item = Sku(new("SKU"))
    item.receive("berlin", 2, ["SN-1", "SN-2"], now)
    item.transfer("T-1", "berlin", "hamburg", 2, now)
    item.receive_transfer("T-1", now)

    allocation = item.reserve(new("order"), new("customer"), 2, now)

    assert allocation == [{"warehouse": "hamburg", "qty": 2, "serials": ["SN-1", "SN-2"]}]
    assert item.warehouse("berlin")["serials"] == []


# -- allocation -------------------------------------------------------------------------


def test_a_reservation_takes_units_from_the_warehouse_with_most_available_first(clock, now):
    item = stocked(clock, berlin=5, hamburg=8, munich=2)

    allocation = item.reserve(new("order"), new("customer"), 3, now)

    assert allocation == [{"warehouse": "hamburg", "qty": 3, "serials": []}]
    assert per_warehouse(item) == {"berlin": (5, 0), "hamburg": (8, 3), "munich": (2, 0)}


def test_a_reservation_larger_than_one_warehouse_spans_several_in_order_of_availability(clock, now):
    item = stocked(clock, berlin=5, hamburg=8, munich=2)

    allocation = item.reserve(new("order"), new("customer"), 14, now)

    assert [(p["warehouse"], p["qty"]) for p in allocation] == [
        ("hamburg", 8),
        ("berlin", 5),
        ("munich", 1),
    ]
    assert (item.reserved, item.available) == (14, 1)


def test_ties_between_equally_available_warehouses_go_to_the_first_code(clock, now):
    item = stocked(clock, hamburg=4, berlin=4)

    allocation = item.reserve(new("order"), new("customer"), 2, now)

    assert allocation[0]["warehouse"] == "berlin"


def test_once_stock_runs_out_a_reservation_takes_presale_units_up_to_the_allowance(clock, now):
    item = stocked(clock, berlin=3)
    policy(item, clock, presale_allowance=5)

    allocation = item.reserve(new("order"), new("customer"), 7, now)

    assert allocation == [
        {"warehouse": "berlin", "qty": 3, "serials": []},
        {"warehouse": PRESALE, "qty": 4, "serials": []},
    ]
    assert (item.available, item.presold, item.presale_left) == (0, 4, 1)
    assert item.shortfall(new("customer"), 2) == Shortfall(item.sku, 2, 1)
    assert item.shortfall(new("customer"), 1) is None


def test_serialized_units_are_held_by_serial_number_and_never_twice(now):
    item = Sku(new("SKU"))
    item.receive("berlin", 3, ["SN-1", "SN-2", "SN-3"], now)

    first = item.reserve(new("order"), new("customer"), 2, now)
    second = item.reserve(new("order"), new("customer"), 1, now)

    assert first[0]["serials"] == ["SN-1", "SN-2"]
    assert second[0]["serials"] == ["SN-3"]


def test_reserving_again_for_the_same_order_returns_the_first_allocation_and_records_nothing(
    clock, now
):
    item = stocked(clock, berlin=10)
    order_id = new("order")
    first = item.reserve(order_id, new("customer"), 3, now)
    item.collect_events()

    again = item.reserve(order_id, new("customer"), 5, now)

    assert again == first
    assert (item.reserved, pending(item)) == (3, [])


def test_reserving_more_than_available_and_presale_is_refused_without_a_change(clock, now):
    item = stocked(clock, berlin=3)
    policy(item, clock, presale_allowance=1)
    item.collect_events()

    with pytest.raises(InvalidStock):
        item.reserve(new("order"), new("customer"), 5, now)

    assert (item.reserved, item.presold, pending(item)) == (0, 0, [])


# -- shortfalls and purchase limits ------------------------------------------------------


def test_a_shortfall_names_insufficient_stock_with_what_is_available(clock):
    item = stocked(clock, berlin=2, hamburg=1)
    reserve(item, clock, 1)

    assert item.shortfall(new("customer"), 3) == Shortfall(
        item.sku, requested=3, available=2, reason="insufficient_stock"
    )
    assert item.shortfall(new("customer"), 2) is None


def test_a_customer_cannot_hold_more_than_the_purchase_limit(clock):
    item = stocked(clock, berlin=100)
    policy(item, clock, purchase_limit=3)
    fan = new("customer")
    reserve(item, clock, 2, fan)

    assert item.shortfall(fan, 2) == Shortfall(item.sku, 2, 1, "purchase_limit")
    assert item.shortfall(fan, 1) is None
    assert item.shortfall(new("customer"), 3) is None  # the limit is per customer


def test_shipped_units_still_count_against_the_purchase_limit(clock, now):
    item = stocked(clock, berlin=100)
    policy(item, clock, purchase_limit=3)
    fan = new("customer")
    order_id = reserve(item, clock, 3, fan)

    item.commit(order_id, now)

    assert item.shortfall(fan, 1) == Shortfall(item.sku, 1, 0, "purchase_limit")


def test_released_units_free_the_purchase_limit_again(clock, now):
    item = stocked(clock, berlin=100)
    policy(item, clock, purchase_limit=3)
    fan = new("customer")
    order_id = reserve(item, clock, 3, fan)
    assert item.shortfall(fan, 1) is not None

    item.release(order_id, fan, now)

    assert item.shortfall(fan, 3) is None


def test_the_purchase_limit_is_checked_before_stock(clock):
    item = stocked(clock, berlin=1)
    policy(item, clock, purchase_limit=2)

    assert item.shortfall(new("customer"), 5).reason == "purchase_limit"


# -- release and commit ------------------------------------------------------------------


def test_releasing_gives_the_units_back(clock, now):
    item = stocked(clock, berlin=10)
    customer = new("customer")
    order_id = reserve(item, clock, 4, customer)

    assert item.release(order_id, customer, now) is True

    assert (per_warehouse(item), item.available, item.holds) == ({"berlin": (10, 0)}, 10, {})


def test_releasing_presale_units_gives_the_presale_allowance_back(clock, now):
    item = stocked(clock, berlin=1)
    policy(item, clock, presale_allowance=3)
    customer = new("customer")
    order_id = reserve(item, clock, 3, customer)
    assert item.presold == 2

    item.release(order_id, customer, now)

    assert (item.presold, item.presale_left, item.available) == (0, 3, 1)


def test_committing_lowers_on_hand_and_reserved(clock, now):
    item = stocked(clock, berlin=5, hamburg=8)
    order_id = reserve(item, clock, 10)

    assert item.commit(order_id, now) is True

    assert per_warehouse(item) == {"berlin": (3, 0), "hamburg": (0, 0)}
    assert (item.on_hand, item.reserved, item.available) == (3, 0, 3)


def test_committing_serialized_units_removes_their_serial_numbers_from_stock(now):
    item = Sku(new("SKU"))
    item.receive("berlin", 3, ["SN-1", "SN-2", "SN-3"], now)
    order_id = new("order")
    item.reserve(order_id, new("customer"), 2, now)

    item.commit(order_id, now)

    assert item.warehouse("berlin")["serials"] == ["SN-3"]
    assert "SN-1" in item.known_serials  # shipped units stay known: no second receipt


@pytest.mark.parametrize("finish", ["release", "commit"])
def test_releasing_or_committing_an_unknown_or_finished_order_changes_nothing(clock, now, finish):
    item = stocked(clock, berlin=10)
    customer = new("customer")
    order_id = reserve(item, clock, 4, customer)
    getattr(item, finish)(order_id, *([customer] if finish == "release" else []), now)
    item.collect_events()
    before = (per_warehouse(item), dict(item.customers), item.version)

    assert item.release(order_id, customer, now) is False
    assert item.commit(order_id, now) is False
    assert item.release(new("order"), customer, now) is False
    assert item.commit(new("order"), now) is False

    assert (per_warehouse(item), dict(item.customers), item.version) == before
    assert pending(item) == []


# -- presale after the stock arrived -------------------------------------------------------


def test_units_received_after_a_presale_first_serve_the_presold_orders(clock, now):
    """Presold units are promised: when the goods arrive they are not free for others."""
    item = stocked(clock)
    policy(item, clock, presale_allowance=2)
    reserve(item, clock, 2)
    assert item.presold == 2

    item.receive("berlin", 2, [], now)

    assert item.available == 0
    assert item.shortfall(new("customer"), 1) is not None


def test_shipping_a_presold_order_after_its_stock_arrived_lowers_on_hand(clock, now):
    item = stocked(clock)
    policy(item, clock, presale_allowance=2)
    order_id = reserve(item, clock, 2)
    item.receive("berlin", 5, [], now)

    item.commit(order_id, now)

    assert item.on_hand == 3


# -- moving an order's holds to the warehouse it ships from ---------------------------------


def spread(clock: ManualClock) -> tuple[Sku, str]:
    """A SKU with 5 units in berlin and 5 in hamburg, and an order holding 7 of them:
    5 in berlin, 2 in hamburg."""
    item = stocked(clock, berlin=5, hamburg=5)
    order_id = reserve(item, clock, 7)
    assert item.holds[order_id] == [
        {"warehouse": "berlin", "qty": 5, "serials": []},
        {"warehouse": "hamburg", "qty": 2, "serials": []},
    ]
    item.collect_events()
    return item, order_id


def test_moving_a_hold_takes_free_units_in_the_target_and_frees_them_where_they_were(clock, now):
    item, order_id = spread(clock)
    item.receive("hamburg", 5, [], now)  # hamburg: 10 on hand, 2 held, 8 free
    item.collect_events()

    assert item.move_shortfall(order_id, "hamburg") is None
    allocation = item.move_hold(order_id, "hamburg", now)

    assert allocation == [{"warehouse": "hamburg", "qty": 7, "serials": []}]
    assert item.holds[order_id] == allocation
    assert per_warehouse(item) == {"berlin": (5, 0), "hamburg": (10, 7)}
    assert (item.on_hand, item.reserved, item.available) == (15, 7, 8)
    (moved,) = item.collect_events()
    assert type(moved).__name__ == "HoldMoved"
    assert moved.moved == [{"warehouse": "berlin", "qty": 5, "serials": []}]


def test_units_already_in_the_target_stay_and_only_the_others_need_free_units_there(clock, now):
    item, order_id = spread(clock)  # berlin: 5 on hand, 5 held, 0 free

    # the 2 hamburg units need 2 free in berlin, there are none
    assert item.move_shortfall(order_id, "berlin") == Shortfall(item.sku, 2, 0)
    item.receive("berlin", 2, [], now)
    assert item.move_shortfall(order_id, "berlin") is None

    item.move_hold(order_id, "berlin", now)

    assert item.holds[order_id] == [{"warehouse": "berlin", "qty": 7, "serials": []}]
    assert per_warehouse(item) == {"berlin": (7, 7), "hamburg": (5, 0)}


def test_a_move_the_target_cannot_take_is_refused_and_changes_nothing(clock, now):
    item, order_id = spread(clock)
    before = (per_warehouse(item), item.holds[order_id], item.version)

    assert item.move_shortfall(order_id, "hamburg") == Shortfall(
        item.sku, requested=5, available=3, reason="insufficient_stock"
    )
    with pytest.raises(InvalidStock):
        item.move_hold(order_id, "hamburg", now)

    assert (per_warehouse(item), item.holds[order_id], item.version) == before
    assert pending(item) == []


def test_a_warehouse_the_sku_never_had_has_nothing_free(clock):
    item, order_id = spread(clock)

    assert item.move_shortfall(order_id, "munich") == Shortfall(item.sku, 7, 0)


def test_moving_a_hold_to_where_it_is_already_changes_nothing(clock, now):
    item = stocked(clock, berlin=5)
    order_id = reserve(item, clock, 3)
    item.collect_events()

    allocation = item.move_hold(order_id, "berlin", now)

    assert allocation == [{"warehouse": "berlin", "qty": 3, "serials": []}]
    assert (per_warehouse(item), pending(item)) == ({"berlin": (5, 3)}, [])


def test_a_moved_hold_takes_free_serial_numbers_there_and_frees_its_old_ones(now):
    item = Sku(new("SKU"))
    item.receive("berlin", 2, ["A-1", "A-2"], now)
    item.receive("hamburg", 2, ["B-1", "B-2"], now)
    order_id = new("order")
    item.reserve(order_id, new("customer"), 3, now)  # in berlin; B-1 in hamburg
    item.receive("hamburg", 2, ["B-3", "B-4"], now)

    allocation = item.move_hold(order_id, "hamburg", now)

    assert allocation == [{"warehouse": "hamburg", "qty": 3, "serials": ["B-1", "B-2", "B-3"]}]
    later = item.reserve(new("order"), new("customer"), 2, now)
    assert later == [{"warehouse": "berlin", "qty": 2, "serials": ["A-1", "A-2"]}]
    item.commit(order_id, now)
    assert item.warehouse("hamburg")["serials"] == ["B-4"]


def test_presold_units_move_onto_free_units_in_the_target(clock, now):
    item = stocked(clock, berlin=2)
    policy(item, clock, presale_allowance=2)
    customer = new("customer")
    first = reserve(item, clock, 2, customer)  # berlin's two
    presold = reserve(item, clock, 2)  # promised, not on any shelf
    item.release(first, customer, now)  # berlin: 2 free again, the presale waits
    assert (item.presold, item.available) == (2, 2)
    item.collect_events()

    item.move_hold(presold, "berlin", now)

    assert item.holds[presold] == [{"warehouse": "berlin", "qty": 2, "serials": []}]
    assert (item.presold, item.available, item.presale_left) == (0, 0, 0)
    assert per_warehouse(item) == {"berlin": (2, 2)}
    item.commit(presold, now)
    assert per_warehouse(item) == {"berlin": (0, 0)}


def test_presold_units_cannot_move_where_nothing_is_free(clock, now):
    item = stocked(clock, berlin=1)
    policy(item, clock, presale_allowance=2)
    order_id = reserve(item, clock, 3)  # 1 in berlin, 2 presold

    assert item.move_shortfall(order_id, "berlin") == Shortfall(item.sku, 2, 0)


def test_moving_the_hold_of_an_order_the_sku_does_not_hold_is_an_error(clock, now):
    item = stocked(clock, berlin=5)

    with pytest.raises(LookupError):
        item.move_hold(new("order"), "berlin", now)


def held_order(clock: ManualClock, items: dict[str, Sku], wanted: dict[str, int]) -> Reservation:
    reservation = decide(new("order"), new("customer"), wanted, items, clock.now(), None)
    assert reservation.status == "held"
    reservation.collect_events()
    for item in items.values():
        item.collect_events()
    return reservation


def test_an_order_moves_on_every_sku_and_records_its_whole_reservation_afterwards(clock, now):
    shirts, mugs = stocked(clock, berlin=5, hamburg=5), stocked(clock, hamburg=5)
    items = {shirts.sku: shirts, mugs.sku: mugs}
    reservation = held_order(clock, items, {shirts.sku: 7, mugs.sku: 1})  # shirts: 5 + 2
    shirts.receive("hamburg", 5, [], now)
    shirts.collect_events()

    assert move(reservation, items, "S-1", "hamburg", now, "evt-1") is True

    assert sorted((ln["sku"], ln["warehouse"], ln["qty"]) for ln in reservation.lines) == sorted(
        [(shirts.sku, "hamburg", 7), (mugs.sku, "hamburg", 1)]
    )
    assert (reservation.warehouse, reservation.shipment_id) == ("hamburg", "S-1")
    (moved,) = reservation.collect_events()
    assert (type(moved).__name__, moved.caused_by) == ("Moved", "evt-1")
    assert pending(shirts) == ["HoldMoved"]
    assert pending(mugs) == []  # its unit was there already


def test_an_order_one_sku_cannot_move_moves_on_no_sku_and_says_which_fell_short(clock, now):
    shirts, mugs = stocked(clock, berlin=5, hamburg=5), stocked(clock, berlin=3)
    items = {shirts.sku: shirts, mugs.sku: mugs}
    reservation = held_order(clock, items, {shirts.sku: 2, mugs.sku: 1})  # all in berlin
    before = (per_warehouse(shirts), per_warehouse(mugs), reservation.lines)

    assert move(reservation, items, "S-1", "hamburg", now) is False

    assert (per_warehouse(shirts), per_warehouse(mugs), reservation.lines) == before
    assert (pending(shirts), pending(mugs)) == ([], [])
    (refused,) = reservation.collect_events()
    assert type(refused).__name__ == "MoveRefused"
    assert refused.short_lines == [
        {"sku": mugs.sku, "requested": 1, "available": 0, "reason": "insufficient_stock"}
    ]
    assert reservation.warehouse is None


def test_a_finished_reservation_cannot_record_a_move():
    lines = [{"sku": new("SKU"), "warehouse": "berlin", "qty": 1, "serials": []}]
    reservation = Reservation(new("order"), new("customer"), lines, [])
    reservation.commit()

    with pytest.raises(DomainError):
        reservation.move("S-1", "berlin", lines, None)


# -- safety stock and reorder advice -------------------------------------------------------


def test_low_stock_is_detected_once_per_crossing_below_safety_stock(clock, now):
    item = stocked(clock, berlin=10)
    policy(item, clock, safety_stock=5)
    customer = new("customer")
    assert pending(item) == ["PolicySet"]

    first = reserve(item, clock, 3, customer)  # 7 available
    assert "LowStockDetected" not in pending(item)
    second = reserve(item, clock, 3, customer)  # 4: crosses
    assert pending(item) == ["Reserved", "LowStockDetected", "ReorderSuggested"]
    third = reserve(item, clock, 3, customer)  # 1: still below, no second alert
    assert pending(item) == ["Reserved"]
    assert item.below_safety is True

    item.release(third, customer, now)  # 4: still below
    assert pending(item) == ["Released"]
    item.release(second, customer, now)  # 7: recovered
    assert pending(item) == ["Released", "Recovered"]
    assert item.below_safety is False

    reserve(item, clock, 3, customer)  # 4: crosses again
    assert pending(item) == ["Reserved", "LowStockDetected", "ReorderSuggested"]
    assert first in item.holds


def test_raising_the_safety_stock_above_available_raises_the_alert(clock):
    item = stocked(clock, berlin=4)

    policy(item, clock, safety_stock=5)

    events = item.collect_events()
    assert [type(e).__name__ for e in events] == [
        "PolicySet",
        "LowStockDetected",
        "ReorderSuggested",
    ]
    assert (events[1].available, events[1].safety_stock) == (4, 5)


def test_available_equal_to_safety_stock_is_not_low(clock):
    item = stocked(clock, berlin=5)

    policy(item, clock, safety_stock=5)

    assert item.below_safety is False
    assert pending(item) == ["PolicySet"]


def test_the_reorder_suggestion_covers_lead_time_demand_and_safety_stock_minus_in_transit(
    clock,
):
    item = stocked(clock, berlin=200, hamburg=20)
    reserve(item, clock, 50)  # 40 days before the alert: outside the velocity window
    clock.advance(timedelta(days=40))
    policy(item, clock, safety_stock=10, lead_time_days=5)
    reserve(item, clock, 20)
    clock.advance(timedelta(days=3))
    reserve(item, clock, 8)  # 28 units in the last 28 days: 1.0 a day
    item.transfer("T-1", "hamburg", "munich", 4, clock.now())
    item.adjust("berlin", 78, "count", clock.now())  # berlin: 0 available; 16 left
    item.collect_events()

    item.adjust("hamburg", 3, "count", clock.now())  # 3 available: below 10

    suggested = [e for e in item.collect_events() if isinstance(e, Sku.ReorderSuggested)]
    assert len(suggested) == 1
    # 1.0 a day * 5 days + 10 safety - 3 available - 4 in transit
    assert suggested[0].quantity == 8
    assert (suggested[0].available, suggested[0].daily_velocity) == (3, 1.0)
    assert (suggested[0].lead_time_days, suggested[0].safety_stock) == (5, 10)


def test_the_reorder_suggestion_rounds_up_to_whole_units(clock):
    item = stocked(clock, berlin=11)
    reserve(item, clock, 10)  # 10/28 a day
    item.collect_events()

    policy(item, clock, safety_stock=3, lead_time_days=7)  # 1 available

    (suggested,) = [e for e in item.collect_events() if isinstance(e, Sku.ReorderSuggested)]
    # 10/28 * 7 + 3 - 1 = 4.5
    assert suggested.quantity == 5
    assert suggested.daily_velocity == round(10 / 28, 3)


def test_the_reorder_suggestion_asks_for_at_least_one_unit_when_enough_is_in_transit(clock):
    item = stocked(clock, berlin=31)
    reserve(item, clock, 10)  # 10/28 a day
    item.transfer("T-1", "berlin", "munich", 20, clock.now())  # 20 in transit
    item.collect_events()

    policy(item, clock, safety_stock=3, lead_time_days=7)  # 1 available

    (suggested,) = [e for e in item.collect_events() if isinstance(e, Sku.ReorderSuggested)]
    # 10/28 * 7 + 3 - 1 - 20 < 0
    assert suggested.quantity == 1


def test_the_velocity_counts_only_the_last_28_days(clock):
    item = stocked(clock, berlin=1000)
    reserve(item, clock, 56)
    assert item.daily_velocity(clock.now()) == 2.0

    clock.advance(timedelta(days=27))
    assert item.daily_velocity(clock.now()) == 2.0
    clock.advance(timedelta(days=1))
    assert item.daily_velocity(clock.now()) == 0.0


# -- the reservation decision --------------------------------------------------------------


def test_a_decision_with_short_lines_is_rejected_and_cannot_be_released_or_committed():
    short = [{"sku": new("SKU"), "requested": 2, "available": 0, "reason": "unknown_sku"}]
    reservation = Reservation(new("order"), new("customer"), [], short)

    assert reservation.status == "rejected"
    assert reservation.release("cancelled") is False
    assert reservation.commit() is False
    assert pending(reservation) == ["Decided"]


def test_a_held_decision_is_finished_once_by_release_or_commit():
    lines = [{"sku": new("SKU"), "warehouse": "berlin", "qty": 1, "serials": []}]
    released = Reservation(new("order"), new("customer"), lines, [])
    committed = Reservation(new("order"), new("customer"), lines, [])
    assert released.status == committed.status == "held"

    assert released.release("cancelled") is True
    assert committed.commit() is True

    assert (released.status, committed.status) == ("released", "committed")
    for finished in (released, committed):
        assert finished.release("again") is False
        assert finished.commit() is False
    assert pending(released) == ["Decided", "Released"]
    assert pending(committed) == ["Decided", "Committed"]


def test_a_held_decision_notes_the_units_still_free_per_warehouse_and_a_rejection_none(clock):
    shirts = stocked(clock, berlin=5, hamburg=2)
    policy(shirts, clock, presale_allowance=3)
    items = {shirts.sku: shirts}

    held = decide(new("order"), new("customer"), {shirts.sku: 8}, items, clock.now(), None)
    rejected = decide(new("order"), new("customer"), {shirts.sku: 5}, items, clock.now(), None)

    (decided,) = held.collect_events()
    assert decided.availability == [  # presold units are on no shelf: not listed
        {"sku": shirts.sku, "warehouse": "berlin", "available": 0},
        {"sku": shirts.sku, "warehouse": "hamburg", "available": 0},
    ]
    assert rejected.status == "rejected"
    assert rejected.collect_events()[0].availability == []


def test_decision_ids_derive_from_the_order_so_a_redelivery_finds_the_first():
    order_id = new("order")

    first = Reservation(order_id, new("customer"), [], [])
    second = Reservation(order_id, new("customer"), [], [])

    assert first.id == second.id == Reservation.create_id(order_id)
    sku, other = new("SKU"), new("SKU")
    assert Sku(sku).id == Sku(sku).id == Sku.create_id(sku) != Sku(other).id


# -- the invariant under a long random run ---------------------------------------------------


class Model:
    """What the stock must be, kept by the test from the operations that succeeded."""

    def __init__(self) -> None:
        self.on_hand: Counter[str] = Counter()
        self.holds: dict[str, tuple[str, int]] = {}  # order -> customer, units
        self.taken: Counter[str] = Counter()  # customer -> units held or shipped
        self.transfers: dict[str, tuple[str, int]] = {}
        self.refusals: Counter[str] = Counter()  # shortfall reason -> reservations refused


def check(item: Sku, model: Model) -> None:
    # the aggregate's own allocations must match the orders the test knows are held...
    assert {o: sum(p["qty"] for p in a) for o, a in item.holds.items()} == {
        o: qty for o, (_, qty) in model.holds.items()
    }
    # ...and its per-warehouse counters must add up to those allocations
    reserved: Counter[str] = Counter()
    presold = 0
    for allocation in item.holds.values():
        for part in allocation:
            if part["warehouse"] == PRESALE:
                presold += part["qty"]
            else:
                reserved[part["warehouse"]] += part["qty"]
    for code in set(item.stock) | set(model.on_hand):
        w = item.warehouse(code)
        available = w["on_hand"] - w["reserved"]
        assert w["on_hand"] == model.on_hand[code], code
        assert w["reserved"] == reserved[code], code
        assert w["on_hand"] == available + w["reserved"]
        assert available >= 0, code
    assert item.available >= 0
    assert item.on_hand == item.available + item.reserved
    assert item.presold == presold <= item.presale_allowance
    assert {c: n for c, n in item.customers.items() if n} == +model.taken
    assert item.in_transit == sum(qty for _, qty in model.transfers.values())
    assert item.below_safety == (item.available < item.safety_stock)


def step(rng: random.Random, item: Sku, model: Model, clock: ManualClock, n: int) -> None:
    warehouses = ["berlin", "hamburg", "munich"]
    customers = [f"c{i}" for i in range(6)]
    now = clock.now()
    op = rng.choice(
        ["receive", "adjust", "transfer", "arrive", "reserve", "reserve", "reserve"]
        + ["release", "commit", "move", "move", "policy", "tick", "return"]
    )
    if op == "receive":
        code, qty = rng.choice(warehouses), rng.randint(1, 6)
        item.receive(code, qty, [], now)
        model.on_hand[code] += qty
    elif op == "adjust":
        code = rng.choice(warehouses)
        counted = rng.randint(0, model.on_hand[code] + 3)
        try:
            item.adjust(code, counted, "count", now)
        except InvalidStock:
            assert counted < item.warehouse(code)["reserved"]
        else:
            model.on_hand[code] = counted
    elif op == "transfer":
        source, target = rng.sample(warehouses, 2)
        qty, transfer_id = rng.randint(1, 5), f"T-{n}"
        try:
            item.transfer(transfer_id, source, target, qty, now)
        except InvalidStock:
            w = item.warehouse(source)
            assert qty > w["on_hand"] - w["reserved"]
        else:
            model.on_hand[source] -= qty
            model.transfers[transfer_id] = (target, qty)
    elif op == "arrive" and model.transfers:
        transfer_id = rng.choice(sorted(model.transfers))
        item.receive_transfer(transfer_id, now)
        target, qty = model.transfers.pop(transfer_id)
        model.on_hand[target] += qty
    elif op == "reserve":
        order_id, customer, qty = f"o{n}", rng.choice(customers), rng.randint(1, 5)
        short = item.shortfall(customer, qty)
        limit_left = (item.purchase_limit or 10**9) - model.taken[customer]
        fits = qty <= limit_left and qty <= item.available + item.presale_left
        assert (short is None) == fits
        if short is None:
            allocation = item.reserve(order_id, customer, qty, now)
            assert sum(part["qty"] for part in allocation) == qty
            model.holds[order_id] = (customer, qty)
            model.taken[customer] += qty
        else:
            model.refusals[short.reason] += 1
            with pytest.raises(InvalidStock):
                item.reserve(order_id, customer, qty, now)
    elif op in ("release", "commit") and model.holds:
        order_id = rng.choice(sorted(model.holds))
        customer, qty = model.holds.pop(order_id)
        allocation = item.holds[order_id]
        if op == "release":
            assert item.release(order_id, customer, now)
            model.taken[customer] -= qty
        else:
            assert item.commit(order_id, now)
            for part in allocation:
                if part["warehouse"] != PRESALE:
                    model.on_hand[part["warehouse"]] -= part["qty"]
    elif op == "move" and model.holds:
        order_id, code = rng.choice(sorted(model.holds)), rng.choice(warehouses)
        elsewhere = sum(p["qty"] for p in item.holds[order_id] if p["warehouse"] != code)
        short = item.move_shortfall(order_id, code)
        assert (short is None) == (elsewhere <= item.free(code))
        if short is None:
            allocation = item.move_hold(order_id, code, now)
            assert [part["warehouse"] for part in allocation] == [code]
            assert sum(part["qty"] for part in allocation) == model.holds[order_id][1]
        else:
            model.refusals["move"] += 1
            with pytest.raises(InvalidStock):
                item.move_hold(order_id, code, now)
    elif op == "policy":
        policy(
            item,
            clock,
            safety_stock=rng.randint(0, 8),
            lead_time_days=rng.randint(1, 14),
            purchase_limit=rng.choice([None, 4, 8]),
            presale_allowance=item.presold + rng.randint(0, 3),
        )
    elif op == "tick":
        clock.advance(timedelta(hours=rng.randint(1, 72)))
    elif op == "return":  # resellable units go back on hand (presale first); damaged do not
        code, qty = rng.choice(warehouses), rng.randint(1, 2)
        if rng.random() < 0.5:
            item.accept_return(code, qty, [], f"o{n}", now, f"r{n}", f"event-{n}")
            model.on_hand[code] += qty
        else:
            item.set_aside_damaged(code, qty, [], f"o{n}", f"r{n}", f"event-{n}")


@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_on_hand_is_available_plus_reserved_in_every_warehouse_after_every_step(clock, seed):
    rng = random.Random(seed)
    item, model = Sku(new("SKU")), Model()
    events: list[Any] = []
    alerts: defaultdict[str, int] = defaultdict(int)

    for n in range(1500):
        # Each step acts on a copy made as the repository's cache makes them, and the
        # original must come out untouched: the cheap copy is right for every field.
        item = copy_isolates(item, lambda twin, n=n: step(rng, twin, model, clock, n))
        check(item, model)
        for e in item.collect_events():
            events.append(e)
            alerts[type(e).__name__] += 1

    assert alerts["Reserved"] > 100 and alerts["Committed"] > 30 and alerts["Released"] > 30
    assert alerts["LowStockDetected"] > 5 and alerts["Transferred"] > 30
    assert alerts["HoldMoved"] > 20 and model.refusals["move"] > 20  # both ways, often
    assert alerts["Returned"] > 20 and alerts["ReturnedDamaged"] > 20
    # the walk must have met both kinds of refusal often enough to mean something
    assert min(model.refusals["insufficient_stock"], model.refusals["purchase_limit"]) >= 5
    # alerts alternate with recoveries, and each alert carries a suggestion
    assert alerts["LowStockDetected"] - alerts["Recovered"] in (0, 1)
    assert alerts["ReorderSuggested"] == alerts["LowStockDetected"]
    # the same story replayed from its events gives the same stock
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert replayed.__dict__ == item.__dict__
