"""How inventory reacts to orders and their shipments (inventory.policies), applied the
way the tracked consumer applies them: a unit of work, then one `record`; what it then
publishes (inventory.translation); and the race for the last unit on the real stores."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import RecordConflictError
from inventory import translation
from inventory.application import InventoryApplication
from inventory.domain import PRESALE, Reservation, reservation_id, sku_id
from inventory.policies import handlers
from shopfloor_contracts import inventory as contract
from shopfloor_contracts.fulfilment import ShipmentAllocated, ShipmentDispatched
from shopfloor_contracts.orders import OrderCancelled, OrderPlaced
from shopfloor_contracts.service_desk import ReplacementRequested, ReturnReceived
from shopfloor_contracts.topics import INVENTORY
from shopfloor_runtime.edge import UnitOfWork

# -- helpers ------------------------------------------------------------------------


@pytest.fixture
def app(memory_app: InventoryApplication) -> InventoryApplication:
    return memory_app


@pytest.fixture
def feed(feed_for, app):
    return feed_for(app)


def stock(app: InventoryApplication, sku: str, **warehouses: int) -> None:
    for code, qty in warehouses.items():
        app.receive_stock(sku, code, qty, [])


def totals(app: InventoryApplication, sku: str) -> tuple[int, int, int]:
    item = app.get_sku(sku)
    return item.on_hand, item.reserved, item.available


def versions(app: InventoryApplication, order_id: str, *skus: str) -> list[int]:
    reservation = app.find_reservation(order_id)
    return [reservation.version, *(app.get_sku(s).version for s in skus)]


def stored(app: InventoryApplication, aggregate_id: UUID) -> list[Any]:
    return list(app.events.get(aggregate_id))


# -- placing ---------------------------------------------------------------------------


def test_the_handlers_cover_exactly_the_events_inventory_reacts_to(app):
    # OrderShipped is not among them: stock is committed on fulfilment's dispatch
    assert set(handlers(app)) == {
        OrderPlaced,
        OrderCancelled,
        ShipmentAllocated,
        ShipmentDispatched,
        ReturnReceived,
        ReplacementRequested,
    }


def test_an_order_whose_lines_all_fit_is_held_with_a_warehouse_allocation(app, feed, new_id):
    shirts, mugs = new_id("SKU"), new_id("SKU")
    stock(app, shirts, berlin=2, hamburg=5)
    stock(app, mugs, berlin=4)

    order_id = feed.place({shirts: 6, mugs: 1})

    reservation = app.find_reservation(order_id)
    assert reservation.status == "held"
    assert reservation.short_lines == []
    assert sorted((line["sku"], line["warehouse"], line["qty"]) for line in reservation.lines) == (
        sorted([(shirts, "hamburg", 5), (shirts, "berlin", 1), (mugs, "berlin", 1)])
    )
    assert totals(app, shirts) == (7, 6, 1)
    assert totals(app, mugs) == (4, 1, 3)
    assert app.get_sku(shirts).holds[order_id] == [
        {"warehouse": "hamburg", "qty": 5, "serials": []},
        {"warehouse": "berlin", "qty": 1, "serials": []},
    ]


def test_lines_for_the_same_sku_are_added_up_before_deciding(app, feed, sku):
    stock(app, sku, berlin=3)

    order_id = feed.place([(sku, 2), (sku, 2)])

    reservation = app.find_reservation(order_id)
    assert reservation.status == "rejected"
    assert reservation.short_lines == [
        {"sku": sku, "requested": 4, "available": 3, "reason": "insufficient_stock"}
    ]


def test_an_order_with_one_short_line_holds_nothing_on_any_sku(app, feed, new_id):
    plenty, scarce = new_id("SKU"), new_id("SKU")
    stock(app, plenty, berlin=50)
    stock(app, scarce, berlin=1)

    order_id = feed.place({plenty: 3, scarce: 2})

    reservation = app.find_reservation(order_id)
    assert reservation.status == "rejected"
    assert reservation.lines == []
    assert reservation.short_lines == [
        {"sku": scarce, "requested": 2, "available": 1, "reason": "insufficient_stock"}
    ]
    assert totals(app, plenty) == (50, 0, 50)
    assert totals(app, scarce) == (1, 0, 1)
    assert order_id not in app.get_sku(plenty).holds


def test_a_rejection_lists_every_short_line_with_its_reason(app, feed, new_id, customer_id):
    fits, scarce, limited, unknown = (new_id("SKU") for _ in range(4))
    stock(app, fits, berlin=10)
    stock(app, scarce, berlin=1)
    stock(app, limited, berlin=10)
    app.set_policy(limited, safety_stock=0, lead_time_days=7, purchase_limit=2, presale_allowance=0)
    feed.place({limited: 1}, customer_id)

    order_id = feed.place({fits: 1, scarce: 3, limited: 2, unknown: 1}, customer_id)

    short = {line["sku"]: line for line in app.find_reservation(order_id).short_lines}
    assert short == {
        scarce: {"sku": scarce, "requested": 3, "available": 1, "reason": "insufficient_stock"},
        limited: {"sku": limited, "requested": 2, "available": 1, "reason": "purchase_limit"},
        unknown: {"sku": unknown, "requested": 1, "available": 0, "reason": "unknown_sku"},
    }
    assert totals(app, fits)[1] == 0
    assert totals(app, limited)[1] == 1  # only the earlier order's unit


def test_the_same_order_placed_twice_is_held_once(app, feed, sku):
    stock(app, sku, berlin=10)
    placed = feed.placed({sku: 3})
    feed.deliver(placed)
    before = versions(app, placed.order_id, sku)

    feed.deliver(placed)

    assert versions(app, placed.order_id, sku) == before
    assert totals(app, sku) == (10, 3, 7)
    decided = stored(app, reservation_id(placed.order_id))
    assert [type(e).__name__ for e in decided] == ["Decided"]


def test_an_order_placed_again_after_stock_arrived_keeps_its_first_decision(app, feed, sku):
    stock(app, sku, berlin=1)
    placed = feed.placed({sku: 3})
    feed.deliver(placed)
    stock(app, sku, berlin=10)

    feed.deliver(placed)

    assert app.find_reservation(placed.order_id).status == "rejected"
    assert totals(app, sku) == (11, 0, 11)


def test_a_presale_order_takes_presale_units_once_stock_runs_out(app, feed, sku):
    stock(app, sku, berlin=2)
    app.set_policy(sku, safety_stock=0, lead_time_days=7, purchase_limit=None, presale_allowance=3)

    order_id = feed.place({sku: 4})
    refused = feed.place({sku: 2})

    assert [(line["warehouse"], line["qty"]) for line in app.find_reservation(order_id).lines] == [
        ("berlin", 2),
        (PRESALE, 2),
    ]
    item = app.get_sku(sku)
    assert (item.available, item.presold, item.presale_left) == (0, 2, 1)
    assert app.find_reservation(refused).short_lines == [
        {"sku": sku, "requested": 2, "available": 1, "reason": "insufficient_stock"}
    ]


# -- cancelling and dispatching ---------------------------------------------------------


def test_cancelling_an_order_makes_its_stock_available_again(app, feed, sku, customer_id):
    stock(app, sku, berlin=5)
    app.set_policy(sku, safety_stock=0, lead_time_days=7, purchase_limit=3, presale_allowance=0)
    order_id = feed.place({sku: 3}, customer_id)

    feed.cancel(order_id)

    assert app.find_reservation(order_id).status == "released"
    assert totals(app, sku) == (5, 0, 5)
    assert app.get_sku(sku).shortfall(customer_id, 3) is None  # the limit is free again


def test_a_second_cancellation_changes_nothing(app, feed, sku):
    stock(app, sku, berlin=5)
    order_id = feed.place({sku: 3})
    feed.cancel(order_id)
    before = versions(app, order_id, sku)

    feed.cancel(order_id)

    assert versions(app, order_id, sku) == before
    assert totals(app, sku) == (5, 0, 5)


def test_cancelling_a_rejected_or_unknown_order_changes_nothing(app, feed, new_id, sku):
    stock(app, sku, berlin=1)
    other = feed.place({sku: 1})
    rejected = feed.place({sku: 5})
    before = versions(app, rejected, sku)

    feed.cancel(rejected)
    feed.cancel(new_id("order"))

    assert versions(app, rejected, sku) == before
    assert app.find_reservation(rejected).status == "rejected"
    assert app.find_reservation(other).status == "held"
    assert totals(app, sku) == (1, 1, 0)


def test_dispatching_an_order_commits_its_stock(app, feed, new_id):
    shirts, mugs = new_id("SKU"), new_id("SKU")
    stock(app, shirts, berlin=2, hamburg=5)
    stock(app, mugs, berlin=4)
    order_id = feed.place({shirts: 6, mugs: 1})

    feed.ship(order_id, {shirts: 6, mugs: 1})

    assert app.find_reservation(order_id).status == "committed"
    assert totals(app, shirts) == (1, 0, 1)
    assert totals(app, mugs) == (3, 0, 3)
    assert [(c, w["on_hand"]) for c, w in sorted(app.get_sku(shirts).stock.items())] == [
        ("berlin", 1),
        ("hamburg", 0),
    ]


def test_a_cancellation_or_a_second_dispatch_after_dispatch_changes_nothing(app, feed, sku):
    stock(app, sku, berlin=5)
    order_id = feed.place({sku: 2})
    feed.ship(order_id, {sku: 2})
    before = versions(app, order_id, sku)

    feed.cancel(order_id)
    feed.ship(order_id, {sku: 2})

    assert versions(app, order_id, sku) == before
    assert app.find_reservation(order_id).status == "committed"
    assert totals(app, sku) == (3, 0, 3)


def test_dispatching_a_cancelled_order_changes_nothing(app, feed, sku):
    stock(app, sku, berlin=5)
    order_id = feed.place({sku: 2})
    feed.cancel(order_id)
    before = versions(app, order_id, sku)

    feed.ship(order_id, {sku: 2})

    assert versions(app, order_id, sku) == before
    assert totals(app, sku) == (5, 0, 5)


def test_a_merged_shipment_commits_every_order_it_carries(app, feed, new_id):
    shirts, mugs = new_id("SKU"), new_id("SKU")
    stock(app, shirts, berlin=5)
    stock(app, mugs, berlin=5)
    first, second = feed.place({shirts: 2}), feed.place({shirts: 1, mugs: 3})

    feed.deliver(feed.dispatched({first: {shirts: 2}, second: {shirts: 1, mugs: 3}}))

    assert {app.find_reservation(o).status for o in (first, second)} == {"committed"}
    assert totals(app, shirts) == (2, 0, 2)
    assert totals(app, mugs) == (2, 0, 2)


def test_a_dispatch_naming_an_order_inventory_never_reserved_changes_nothing(
    app, feed, new_id, sku
):
    stock(app, sku, berlin=5)
    held = feed.place({sku: 2})
    before = versions(app, held, sku)

    feed.ship(new_id("order"), {sku: 1})

    assert versions(app, held, sku) == before
    assert totals(app, sku) == (5, 2, 3)


# -- holding the units where the shipment leaves from -------------------------------------


def lines_of(app: InventoryApplication, order_id: str) -> list[tuple[str, str, int]]:
    lines = app.find_reservation(order_id).lines
    return sorted((line["sku"], line["warehouse"], line["qty"]) for line in lines)


def per_warehouse(app: InventoryApplication, sku: str) -> dict[str, tuple[int, int]]:
    return {code: (w["on_hand"], w["reserved"]) for code, w in app.get_sku(sku).stock.items()}


def spread_order(app: InventoryApplication, feed: Any, new_id: Any) -> tuple[str, str, str]:
    """Shirts 5 in berlin and 5 in hamburg, mugs 4 in berlin and 2 in hamburg, and an
    order holding 7 shirts (5 berlin, 2 hamburg) and 1 mug (berlin)."""
    shirts, mugs = new_id("SKU"), new_id("SKU")
    stock(app, shirts, berlin=5, hamburg=5)
    stock(app, mugs, berlin=4)
    order_id = feed.place({shirts: 7, mugs: 1})
    stock(app, mugs, hamburg=2)
    assert lines_of(app, order_id) == sorted(
        [(shirts, "berlin", 5), (shirts, "hamburg", 2), (mugs, "berlin", 1)]
    )
    return order_id, shirts, mugs


def test_an_allocation_holds_every_unit_of_the_order_in_the_shipping_warehouse(app, feed, new_id):
    order_id, shirts, mugs = spread_order(app, feed, new_id)
    stock(app, shirts, hamburg=5)  # hamburg: 10 shirts, 2 of them held

    feed.allocate(order_id, "hamburg")

    assert lines_of(app, order_id) == sorted([(shirts, "hamburg", 7), (mugs, "hamburg", 1)])
    assert per_warehouse(app, shirts) == {"berlin": (5, 0), "hamburg": (10, 7)}
    assert per_warehouse(app, mugs) == {"berlin": (4, 0), "hamburg": (2, 1)}
    assert app.get_sku(shirts).holds[order_id] == [
        {"warehouse": "hamburg", "qty": 7, "serials": []}
    ]


def test_a_dispatch_after_a_move_takes_the_units_from_the_shipping_warehouse(app, feed, new_id):
    order_id, shirts, mugs = spread_order(app, feed, new_id)
    stock(app, shirts, hamburg=5)
    feed.allocate(order_id, "hamburg")

    feed.ship(order_id, {shirts: 7, mugs: 1}, warehouse="hamburg")

    assert per_warehouse(app, shirts) == {"berlin": (5, 0), "hamburg": (3, 0)}
    assert per_warehouse(app, mugs) == {"berlin": (4, 0), "hamburg": (1, 0)}
    committed = outbound(app, reservation_id(order_id))[-1].payload
    assert isinstance(committed, contract.StockCommitted)
    assert sorted((ln.sku, ln.warehouse, ln.qty) for ln in committed.lines) == sorted(
        [(shirts, "hamburg", 7), (mugs, "hamburg", 1)]
    )


def test_a_cancellation_after_a_move_gives_the_units_back_in_the_shipping_warehouse(
    app, feed, new_id
):
    order_id, shirts, mugs = spread_order(app, feed, new_id)
    stock(app, shirts, hamburg=5)
    feed.allocate(order_id, "hamburg")

    feed.cancel(order_id)

    assert per_warehouse(app, shirts) == {"berlin": (5, 0), "hamburg": (10, 0)}
    released = outbound(app, reservation_id(order_id))[-1].payload
    assert isinstance(released, contract.ReservationReleased)
    assert {line.warehouse for line in released.lines} == {"hamburg"}


def test_an_allocation_one_sku_cannot_follow_moves_nothing_on_any_sku(app, feed, new_id):
    order_id, shirts, mugs = spread_order(app, feed, new_id)  # hamburg: 3 shirts free
    before = (lines_of(app, order_id), *versions(app, order_id, shirts, mugs)[1:])

    feed.allocate(order_id, "hamburg")  # needs 5 shirts there

    assert (lines_of(app, order_id), *versions(app, order_id, shirts, mugs)[1:]) == before
    assert per_warehouse(app, mugs) == {"berlin": (4, 1), "hamburg": (2, 0)}
    assert app.find_reservation(order_id).status == "held"


def test_the_same_allocation_again_moves_nothing_more_and_answers_again(app, feed, new_id):
    order_id, shirts, mugs = spread_order(app, feed, new_id)
    stock(app, shirts, hamburg=5)
    allocation = feed.allocated(order_id, "hamburg")
    feed.deliver(allocation)
    skus_before = versions(app, order_id, shirts, mugs)[1:]

    feed.deliver(allocation)  # re-sent with a new event id

    assert versions(app, order_id, shirts, mugs)[1:] == skus_before
    assert per_warehouse(app, shirts) == {"berlin": (5, 0), "hamburg": (10, 7)}
    answers = [m.payload for m in outbound(app, reservation_id(order_id))[-2:]]
    assert [type(a).__name__ for a in answers] == ["ReservationMoved", "ReservationMoved"]
    assert answers[0] == answers[1]


def test_a_new_allocation_to_another_warehouse_moves_the_units_again(app, feed, new_id):
    order_id, shirts, mugs = spread_order(app, feed, new_id)
    stock(app, shirts, hamburg=5)
    feed.allocate(order_id, "hamburg")
    stock(app, shirts, berlin=2)

    feed.allocate(order_id, "berlin")

    assert lines_of(app, order_id) == sorted([(shirts, "berlin", 7), (mugs, "berlin", 1)])
    assert per_warehouse(app, shirts) == {"berlin": (7, 7), "hamburg": (10, 0)}


def test_an_allocation_for_a_merged_order_moves_only_that_order(app, feed, sku):
    stock(app, sku, berlin=2, hamburg=2)
    first, second = feed.place({sku: 2}), feed.place({sku: 2})  # berlin, then hamburg
    stock(app, sku, hamburg=2)
    merged = feed.allocated(second, "hamburg").model_copy(
        update={"order_ids": [first, second], "merged": True}
    )
    feed.deliver(feed.allocated(first, "hamburg"))

    feed.deliver(merged)

    assert lines_of(app, first) == [(sku, "hamburg", 2)]
    assert lines_of(app, second) == [(sku, "hamburg", 2)]
    assert per_warehouse(app, sku) == {"berlin": (2, 0), "hamburg": (4, 4)}


@pytest.mark.parametrize("state", ["released", "committed", "rejected", "never made"])
def test_an_allocation_for_an_order_that_holds_nothing_changes_nothing_and_says_nothing(
    app, feed, new_id, sku, state
):
    stock(app, sku, berlin=2, hamburg=5)
    order_id = feed.place({sku: 9 if state == "rejected" else 2})
    if state == "released":
        feed.cancel(order_id)
    if state == "committed":
        feed.ship(order_id, {sku: 2})
    if state == "never made":
        order_id = new_id("order")
    before = per_warehouse(app, sku), app.get_sku(sku).version
    events = len(stored(app, reservation_id(order_id)))

    feed.allocate(order_id, "hamburg")

    assert (per_warehouse(app, sku), app.get_sku(sku).version) == before
    assert len(stored(app, reservation_id(order_id))) == events


# -- what is published ---------------------------------------------------------------------


def published_as(domain_event: Any) -> Any:
    """The one message inventory publishes for an event, or None for one kept inside."""
    messages = translation.to_outbound(domain_event)
    assert len(messages) <= 1, "inventory publishes at most one message per event"
    return messages[0] if messages else None


def outbound(app: InventoryApplication, aggregate_id: Any) -> list[Any]:
    return [published_as(e) for e in app.events.get(aggregate_id)]


def test_a_held_reservation_is_published_as_stock_reserved_keyed_by_order(app, feed, sku):
    stock(app, sku, berlin=5)
    placed = feed.placed({sku: 2})
    envelope = feed.deliver(placed)

    (message,) = outbound(app, reservation_id(placed.order_id))

    assert message.topic == INVENTORY.name
    assert message.key == message.correlation_id == placed.order_id
    assert message.causation_id == str(envelope.event_id)
    assert message.payload == contract.StockReserved(
        order_id=placed.order_id,
        reservation_id=str(reservation_id(placed.order_id)),
        lines=[contract.ReservedLine(sku=sku, qty=2, warehouse="berlin", serials=[])],
        availability=[contract.WarehouseAvailability(sku=sku, warehouse="berlin", available=3)],
    )


def test_stock_reserved_says_what_every_warehouse_of_each_sku_still_has_free(app, feed, new_id):
    shirts, mugs = new_id("SKU"), new_id("SKU")
    stock(app, shirts, berlin=5, hamburg=3, munich=2)
    app.adjust_stock(shirts, "munich", 0, "count")  # a record, nothing on it
    stock(app, mugs, hamburg=1)
    app.set_policy(mugs, safety_stock=0, lead_time_days=7, purchase_limit=None, presale_allowance=5)
    feed.place({shirts: 1})  # another order: berlin 4 free
    order_id = feed.place({shirts: 6, mugs: 3})  # shirts: 4 berlin + 2 hamburg; mugs: 1 + presale

    (message,) = [m for m in outbound(app, reservation_id(order_id))]

    assert message.payload.availability == [
        contract.WarehouseAvailability(sku=sku, warehouse=code, available=free)
        for sku, code, free in sorted(
            [
                (shirts, "berlin", 0),
                (shirts, "hamburg", 1),
                (shirts, "munich", 0),
                (mugs, "hamburg", 0),
            ]
        )
    ]


def test_a_decision_stored_before_the_availability_hint_is_published_without_one(app, feed, sku):
    stock(app, sku, berlin=5)
    order_id = feed.place({sku: 2})
    (decided,) = stored(app, reservation_id(order_id))
    del decided.__dict__["availability"]  # as a decision stored by the older code reads back

    assert published_as(decided).payload.availability == []


def test_a_rejected_reservation_is_published_as_reservation_rejected_keyed_by_order(app, feed, sku):
    stock(app, sku, berlin=1)
    order_id = feed.place({sku: 2})

    (message,) = outbound(app, reservation_id(order_id))

    assert message.key == order_id
    assert message.payload == contract.ReservationRejected(
        order_id=order_id,
        short_lines=[contract.RejectedLine(sku=sku, requested=2, available=1)],
    )


def test_release_and_commit_are_published_keyed_by_order(app, feed, sku):
    stock(app, sku, berlin=5)
    cancelled, shipped = feed.place({sku: 1}), feed.place({sku: 2})
    feed.cancel(cancelled)
    feed.ship(shipped, {sku: 2})

    released = outbound(app, reservation_id(cancelled))[-1]
    committed = outbound(app, reservation_id(shipped))[-1]

    assert isinstance(released.payload, contract.ReservationReleased)
    assert released.key == cancelled
    assert released.payload.lines == [contract.ReservedLine(sku=sku, qty=1, warehouse="berlin")]
    assert released.payload.reason.startswith("order cancelled")
    assert isinstance(committed.payload, contract.StockCommitted)
    assert (committed.key, committed.payload.order_id) == (shipped, shipped)


def test_a_move_is_published_as_reservation_moved_with_the_whole_reservation(app, feed, new_id):
    order_id, shirts, mugs = spread_order(app, feed, new_id)
    stock(app, shirts, hamburg=5)
    allocation = feed.allocated(order_id, "hamburg")
    envelope = feed.deliver(allocation)

    message = outbound(app, reservation_id(order_id))[-1]

    assert message.topic == INVENTORY.name
    assert message.key == message.correlation_id == order_id
    assert message.causation_id == str(envelope.event_id)
    assert message.payload == contract.ReservationMoved(
        order_id=order_id,
        reservation_id=str(reservation_id(order_id)),
        shipment_id=allocation.shipment_id,
        warehouse="hamburg",
        lines=[
            contract.ReservedLine(sku=sku, qty=qty, warehouse="hamburg")
            for sku, qty in sorted([(shirts, 7), (mugs, 1)])
        ],
    )
    # the SKUs' own move is bookkeeping: it stays inside
    assert published_as(stored(app, sku_id(shirts))[-1]) is None


def test_a_move_already_made_is_still_answered_with_reservation_moved(app, feed, sku):
    stock(app, sku, berlin=5)
    order_id = feed.place({sku: 2})

    feed.allocate(order_id, "berlin")

    message = outbound(app, reservation_id(order_id))[-1]
    assert isinstance(message.payload, contract.ReservationMoved)
    assert message.payload.lines == [contract.ReservedLine(sku=sku, qty=2, warehouse="berlin")]


def test_a_refused_move_is_published_with_the_units_needed_and_free_there(app, feed, new_id):
    order_id, shirts, mugs = spread_order(app, feed, new_id)
    allocation = feed.allocated(order_id, "hamburg")
    feed.deliver(allocation)

    message = outbound(app, reservation_id(order_id))[-1]

    assert message.key == order_id
    assert message.payload == contract.ReservationMoveRefused(
        order_id=order_id,
        shipment_id=allocation.shipment_id,
        warehouse="hamburg",
        short_lines=[contract.RejectedLine(sku=shirts, requested=5, available=3)],
    )


def test_stock_events_are_published_keyed_by_sku_and_bookkeeping_stays_inside(app, feed, sku):
    stock(app, sku, berlin=5)
    app.set_policy(sku, safety_stock=4, lead_time_days=7, purchase_limit=None, presale_allowance=0)
    app.adjust_stock(sku, "berlin", 6, "count")
    feed.place({sku: 3})  # 3 available: below 4

    messages = {type(e).__name__: published_as(e) for e in stored(app, sku_id(sku))}

    assert {kind for kind, m in messages.items() if m is None} == {
        "Registered",
        "PolicySet",
        "Reserved",
    }
    published = {kind: m for kind, m in messages.items() if m is not None}
    assert set(published) == {"Received", "Adjusted", "LowStockDetected", "ReorderSuggested"}
    assert {m.key for m in published.values()} == {sku}
    assert published["Adjusted"].payload == contract.StockAdjusted(
        sku=sku, warehouse="berlin", counted=6, delta=1, reason="count", on_hand=6
    )
    assert published["LowStockDetected"].payload == contract.LowStockDetected(
        sku=sku, available=3, safety_stock=4
    )


def test_transfers_are_published_keyed_by_sku(app, sku):
    stock(app, sku, berlin=5)
    _, transfer_id = app.transfer_stock(sku, "berlin", "hamburg", 2)
    app.receive_transfer(sku, transfer_id)

    messages = [published_as(e) for e in stored(app, sku_id(sku))][-2:]

    assert [m.key for m in messages] == [sku, sku]
    assert messages[0].payload == contract.StockTransferred(
        transfer_id=transfer_id, sku=sku, from_warehouse="berlin", to_warehouse="hamburg", qty=2
    )
    assert messages[1].payload == contract.TransferReceived(
        transfer_id=transfer_id, sku=sku, to_warehouse="hamburg", qty=2
    )


# -- the race for the last unit, on the real stores -----------------------------------------


def test_two_decisions_on_the_same_stored_state_cannot_both_take_the_last_unit(
    service, feed_for, sku
):
    app, feed = service.app, feed_for(service.app)
    stock(app, sku, berlin=1)
    first, second = feed.placed({sku: 1}), feed.placed({sku: 1})
    first_uow, second_uow = UnitOfWork(app), UnitOfWork(app)
    feed.apply(first, first_uow)
    feed.apply(second, second_uow)  # both saw one unit available
    assert app.find_reservation(first.order_id) is None

    app.record(first_uow.aggregates)
    with pytest.raises(RecordConflictError):
        app.record(second_uow.aggregates)

    assert app.find_reservation(second.order_id) is None  # nothing of the loser was saved
    assert totals(app, sku) == (1, 1, 0)

    feed.deliver(second)  # the consumer's retry: fresh state, decided again

    assert app.find_reservation(first.order_id).status == "held"
    loser = app.find_reservation(second.order_id)
    assert loser.status == "rejected"
    assert loser.short_lines == [
        {"sku": sku, "requested": 1, "available": 0, "reason": "insufficient_stock"}
    ]
    assert totals(app, sku) == (1, 1, 0)


def test_a_redelivered_order_racing_its_first_delivery_is_decided_once(service, feed_for, sku):
    app, feed = service.app, feed_for(service.app)
    stock(app, sku, berlin=5)
    placed = feed.placed({sku: 2})
    first_uow, second_uow = UnitOfWork(app), UnitOfWork(app)
    feed.apply(placed, first_uow)
    feed.apply(placed, second_uow)

    app.record(first_uow.aggregates)
    with pytest.raises(RecordConflictError):
        app.record(second_uow.aggregates)
    feed.deliver(placed)

    assert totals(app, sku) == (5, 2, 3)
    reservation = app.find_reservation(placed.order_id)
    assert [type(e).__name__ for e in stored(app, reservation.id)] == ["Decided"]
    assert isinstance(reservation, Reservation)


def test_two_moves_on_the_same_stored_state_cannot_both_take_the_last_free_units(
    service, feed_for, sku
):
    app, feed = service.app, feed_for(service.app)
    stock(app, sku, berlin=4, hamburg=2)
    first, second = feed.place({sku: 2}), feed.place({sku: 2})  # both in berlin
    first_uow, second_uow = UnitOfWork(app), UnitOfWork(app)
    feed.apply(feed.allocated(first, "hamburg"), first_uow)
    feed.apply(feed.allocated(second, "hamburg"), second_uow)  # both saw 2 free there

    app.record(first_uow.aggregates)
    with pytest.raises(RecordConflictError):
        app.record(second_uow.aggregates)
    feed.deliver(feed.allocated(second, "hamburg"))  # the retry: fresh state, decided again

    item = app.get_sku(sku)
    assert item.holds[first] == [{"warehouse": "hamburg", "qty": 2, "serials": []}]
    assert item.holds[second] == [{"warehouse": "berlin", "qty": 2, "serials": []}]
    assert (item.warehouse("hamburg")["reserved"], item.warehouse("berlin")["reserved"]) == (2, 2)
    refused = outbound(app, reservation_id(second))[-1].payload
    assert refused.short_lines == [contract.RejectedLine(sku=sku, requested=2, available=0)]
