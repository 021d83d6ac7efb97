"""How orders react to the inventory and fulfilment services' events (order.policies),
applied the way the tracked consumer applies them: a unit of work, then one `record`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from order import policies, translation
from order.application import OrderApplication
from order.bootstrap import rules_from
from order.domain import Address, Line, OrderNotFound, Placement
from order.privacy import AddressFingerprints
from order.settings import Settings
from pydantic import BaseModel
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.fulfilment import ShipmentDispatched, ShipmentLine, TrackingUpdated
from shopfloor_contracts.inventory import (
    RejectedLine,
    ReservationRejected,
    ReservedLine,
    StockReserved,
)
from shopfloor_contracts.risk import HoldReleased, OrderAssessed, OrderCancellationRequested
from shopfloor_contracts.service_desk import ReturnReceived
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.testing import fresh

TRANSLATION = translation.Translation(AddressFingerprints(b"test-key-of-32-bytes-for-hmac!!!"))

Deliver = Callable[[BaseModel], InboundEnvelope]


def make_app(clock: ManualClock, required_checks: list[str]) -> OrderApplication:
    rules = rules_from(Settings(rules={"required_checks": required_checks}))
    # eventsourcing's in-memory store: its process recorder keeps tracking like the real ones
    return OrderApplication(
        rules, clock, {"PERSISTENCE_MODULE": "eventsourcing.popo"}, TRANSLATION.describe
    )


@pytest.fixture
def app(clock: ManualClock) -> Iterator[OrderApplication]:
    application = make_app(clock, ["inventory"])
    yield application
    application.close()


@pytest.fixture
def feed(app, feed_for):
    return feed_for(app)


@pytest.fixture
def deliver(feed) -> Deliver:
    """Wraps a payload in an envelope from its producer and applies it."""
    return feed.deliver  # type: ignore[no-any-return]


def place(app: OrderApplication, sku: str, qty: int = 2) -> UUID:
    placement = Placement(
        customer_id=f"customer-{uuid4().hex[:8]}",
        channel="shop",
        lines=(Line(sku, qty, Decimal("12.50")),),
        address=Address("Ada Lovelace", "Hauptstrasse 1", "Berlin", "10115", "DE"),
        payment_method="card",
    )
    return app.place_order(placement, None).order.id


def pay(app: OrderApplication, order_id: UUID) -> None:
    order = app.get_order(order_id)
    app.pay_order(order_id, order.total, "card", f"psp-{uuid4().hex[:8]}")


def reserved(order_id: UUID, sku: str, qty: int = 2) -> StockReserved:
    return StockReserved(
        order_id=str(order_id),
        reservation_id=f"res-{uuid4().hex[:8]}",
        lines=[ReservedLine(sku=sku, qty=qty, warehouse="berlin-1")],
    )


def rejected(order_id: UUID, sku: str, requested: int = 2, available: int = 1) -> Any:
    return ReservationRejected(
        order_id=str(order_id),
        short_lines=[RejectedLine(sku=sku, requested=requested, available=available)],
    )


def story(app: OrderApplication, order_id: UUID) -> list[str]:
    return [entry.event_type for entry in app.order_history(order_id)]


def test_stock_reserved_confirms_a_paid_order_that_needs_the_inventory_check(app, deliver, sku):
    order_id = place(app, sku)
    pay(app, order_id)
    assert app.get_order(order_id).status == "paid"

    envelope = deliver(reserved(order_id, sku))

    order = app.get_order(order_id)
    assert order.status == "confirmed"
    assert order.passed_checks == {"inventory": str(envelope.event_id)}
    assert story(app, order_id)[-2:] == ["CheckPassed", "OrderConfirmed"]


def test_stock_reserved_before_payment_confirms_the_order_once_it_is_paid(app, deliver, sku):
    order_id = place(app, sku)

    deliver(reserved(order_id, sku))
    assert app.get_order(order_id).status == "awaiting_payment"
    pay(app, order_id)

    assert app.get_order(order_id).status == "confirmed"


def test_stock_reserved_twice_passes_the_check_once(app, deliver, sku):
    order_id = place(app, sku)
    pay(app, order_id)
    deliver(reserved(order_id, sku))
    version = app.get_order(order_id).version

    deliver(reserved(order_id, sku))

    assert app.get_order(order_id).version == version
    assert story(app, order_id).count("CheckPassed") == 1


def test_a_paid_order_needing_the_inventory_check_is_not_confirmed_without_it(app, sku):
    order_id = place(app, sku)

    pay(app, order_id)

    assert app.get_order(order_id).status == "paid"
    assert "OrderConfirmed" not in story(app, order_id)


def test_a_rejected_reservation_cancels_the_order_naming_the_short_lines(app, deliver, sku):
    order_id = place(app, sku)

    envelope = deliver(rejected(order_id, sku, requested=2, available=1))

    order = app.get_order(order_id)
    assert order.status == "cancelled"
    assert order.cancel_reason == "reservation_rejected"
    cancelled = app.order_history(order_id)[-1]
    assert cancelled.event_type == "OrderCancelled"
    assert f"{sku} (wanted 2, 1 available)" in cancelled.payload["detail"]
    assert cancelled.payload["short_lines"] == [
        {"sku": sku, "requested": 2, "available": 1, "reason": "insufficient_stock"}
    ]
    assert "RefundIssued" not in story(app, order_id)
    stored = [e for e in app.events.get(order_id) if type(e).__name__ == "Cancelled"]
    assert stored[0].caused_by == str(envelope.event_id)


def test_a_rejected_reservation_refunds_a_paid_order_in_full(app, deliver, sku):
    order_id = place(app, sku)
    pay(app, order_id)

    deliver(rejected(order_id, sku))

    order = app.get_order(order_id)
    assert order.status == "cancelled"
    assert order.refunded_total == order.total == Decimal("25.00")
    assert story(app, order_id)[-2:] == ["OrderCancelled", "RefundIssued"]


def test_a_rejection_after_cancellation_changes_nothing(app, deliver, sku):
    order_id = place(app, sku)
    app.cancel_order(order_id, "customer", "changed my mind")
    before = story(app, order_id)

    deliver(rejected(order_id, sku))

    assert story(app, order_id) == before
    assert app.get_order(order_id).cancel_reason == "customer"


def test_a_rejection_after_a_payment_timeout_refunds_nothing(app, deliver, clock, sku):
    order_id = place(app, sku)
    clock.advance(timedelta(minutes=30))
    assert app.fire_deadlines([order_id]) == 1

    deliver(rejected(order_id, sku))

    assert app.get_order(order_id).cancel_reason == "payment_timeout"
    assert story(app, order_id) == ["OrderPlaced", "OrderCancelled"]


@pytest.mark.parametrize("make", [reserved, rejected], ids=["StockReserved", "Rejected"])
def test_an_event_for_an_unknown_order_is_refused(deliver, make, sku):
    with pytest.raises(OrderNotFound):
        deliver(make(uuid4(), sku))


def test_the_handlers_cover_every_event_the_service_reads_from_the_other_services(app):
    assert set(policies.handlers(app)) == {
        StockReserved,
        ReservationRejected,
        ShipmentDispatched,
        TrackingUpdated,
        OrderAssessed,
        HoldReleased,
        OrderCancellationRequested,
        ReturnReceived,
    }


def test_stock_reserved_for_an_order_needing_no_check_is_recorded_and_keeps_it_confirmed(
    clock, sku, feed_for
):
    app = make_app(clock, [])
    order_id = place(app, sku)
    pay(app, order_id)
    assert app.get_order(order_id).status == "confirmed"

    feed_for(app).deliver(reserved(order_id, sku))

    order = app.get_order(order_id)
    assert order.status == "confirmed"
    assert "inventory" in order.passed_checks
    assert story(app, order_id).count("OrderConfirmed") == 1
    app.close()


# -- fulfilment: shipped, delivered -------------------------------------------------------


def confirmed(app: OrderApplication, deliver: Deliver, sku: str, qty: int = 2) -> UUID:
    order_id = place(app, sku, qty)
    pay(app, order_id)
    deliver(reserved(order_id, sku, qty))
    assert app.get_order(order_id).status == "confirmed"
    return order_id


def stored_events(app: OrderApplication, order_id: UUID, name: str) -> list[Any]:
    return [e for e in app.events.get(order_id) if type(e).__name__ == name]


def test_a_dispatch_ships_every_order_of_a_merged_shipment_with_its_own_lines(app, deliver, feed):
    mugs, teas = fresh("SKU"), fresh("SKU")
    first, second = confirmed(app, deliver, mugs, 2), confirmed(app, deliver, teas, 3)
    dispatch = feed.dispatched(first, second)

    envelope = deliver(dispatch)

    for order_id, sku, qty in ((first, mugs, 2), (second, teas, 3)):
        assert app.get_order(order_id).status == "shipped"
        shipped = app.order_history(order_id)[-1]
        assert shipped.event_type == "OrderShipped"
        assert shipped.payload == {
            "order_id": str(order_id),
            "carrier": "dhl",
            "tracking_number": dispatch.tracking_number,
            "lines": [{"sku": sku, "qty": qty}],
            "shipped_at": dispatch.dispatched_at.isoformat().replace("+00:00", "Z"),
        }
        (event,) = stored_events(app, order_id, "Shipped")
        assert event.caused_by == str(envelope.event_id)
        assert app.get_order(order_id).shipment["shipment_id"] == dispatch.shipment_id


def test_an_order_shipped_once_is_not_shipped_again_by_a_repeated_or_second_dispatch(
    app, deliver, feed, sku
):
    order_id = confirmed(app, deliver, sku)
    first = feed.ship(order_id)
    version = app.get_order(order_id).version

    deliver(first)  # re-sent with a new event id
    deliver(feed.dispatched(order_id))  # another shipment naming it

    assert app.get_order(order_id).version == version
    assert story(app, order_id).count("OrderShipped") == 1
    assert app.get_order(order_id).shipment["tracking_number"] == first.tracking_number


@pytest.mark.parametrize("state", ["cancelled", "awaiting_payment", "paid"])
def test_a_dispatch_for_an_order_that_cannot_ship_changes_it_not_and_is_logged(
    app, deliver, feed, sku, caplog, state
):
    order_id = place(app, sku)
    if state == "cancelled":
        app.cancel_order(order_id, "customer", "changed my mind")
    if state == "paid":
        pay(app, order_id)  # the inventory check has not passed
    fine = confirmed(app, deliver, sku)
    before = story(app, order_id)

    with caplog.at_level(logging.WARNING, logger="order.application"):
        deliver(feed.dispatched(order_id, fine))

    assert story(app, order_id) == before
    assert app.get_order(order_id).status == state
    assert app.get_order(fine).status == "shipped"  # the rest of the shipment ships
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"cannot ship order {order_id}: it is {state}" in warning.getMessage()


def test_delivery_starts_the_return_window(app, deliver, feed, clock, sku):
    order_id = confirmed(app, deliver, sku)
    dispatch = feed.ship(order_id)
    clock.advance(timedelta(days=2))

    envelope = deliver(feed.tracked(dispatch, "delivered"))

    order = app.get_order(order_id)
    assert order.status == "delivered"
    assert order.delivered_at == clock.now()
    assert order.completes_at == clock.now() + timedelta(days=7)
    delivered = app.order_history(order_id)[-1]
    assert delivered.event_type == "OrderDelivered"
    assert delivered.payload["completes_at"] == (
        (clock.now() + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    )
    (event,) = stored_events(app, order_id, "Delivered")
    assert event.caused_by == str(envelope.event_id)


@pytest.mark.parametrize("milestone", ["picked_up", "in_transit", "out_for_delivery", "failed"])
def test_tracking_on_the_way_changes_nothing_for_the_order(app, deliver, feed, sku, milestone):
    order_id = confirmed(app, deliver, sku)
    dispatch = feed.ship(order_id)
    before = story(app, order_id)

    deliver(feed.tracked(dispatch, milestone))

    assert story(app, order_id) == before
    assert app.get_order(order_id).status == "shipped"


def test_a_delivery_reported_twice_is_recorded_once(app, deliver, feed, clock, sku):
    order_id = confirmed(app, deliver, sku)
    dispatch = feed.hand_over(order_id)
    delivered_at = app.get_order(order_id).delivered_at
    clock.advance(timedelta(hours=1))

    deliver(feed.tracked(dispatch, "delivered"))

    assert story(app, order_id).count("OrderDelivered") == 1
    assert app.get_order(order_id).delivered_at == delivered_at


def test_a_delivery_for_an_order_that_never_shipped_is_ignored_with_a_warning(
    app, deliver, feed, sku, caplog
):
    order_id = confirmed(app, deliver, sku)
    dispatch = feed.dispatched(order_id)
    before = story(app, order_id)

    with caplog.at_level(logging.WARNING, logger="order.application"):
        deliver(feed.tracked(dispatch, "delivered"))

    assert story(app, order_id) == before
    assert f"cannot deliver order {order_id}: it is confirmed" in caplog.text
    deliver(dispatch)  # a dispatch arriving after all still ships it...
    assert app.get_order(order_id).status == "shipped"  # ...but delivers nothing


def test_a_delivery_for_a_merged_shipment_delivers_each_order(app, deliver, feed):
    first, second = confirmed(app, deliver, fresh("SKU")), confirmed(app, deliver, fresh("SKU"))

    feed.hand_over(first, second)

    assert {app.get_order(o).status for o in (first, second)} == {"delivered"}


def test_a_delivered_order_completes_once_when_its_return_window_closes(
    app, deliver, feed, clock, sku
):
    order_id = confirmed(app, deliver, sku)
    feed.hand_over(order_id)

    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert app.fire_deadlines([order_id]) == 0
    clock.advance(timedelta(seconds=1))
    assert app.fire_deadlines([order_id]) == 1
    assert app.fire_deadlines([order_id]) == 0

    assert app.get_order(order_id).status == "completed"
    assert story(app, order_id)[-2:] == ["OrderDelivered", "OrderCompleted"]
    assert app.order_history(order_id)[-1].payload["completed_at"] == (
        clock.now().isoformat().replace("+00:00", "Z")
    )


@pytest.mark.parametrize("make", ["dispatched", "tracked"])
def test_a_fulfilment_event_for_an_unknown_order_is_refused(app, deliver, feed, sku, make):
    order_id = confirmed(app, deliver, sku)
    dispatch = feed.dispatched(order_id)
    stranger = str(uuid4())
    payload = (
        dispatch.model_copy(update={"order_ids": [stranger]})
        if make == "dispatched"
        else feed.tracked(dispatch, order_ids=[stranger])
    )

    with pytest.raises(OrderNotFound):
        deliver(payload)


def test_a_service_desk_replacement_in_inventory_and_fulfilment_events_is_no_order(
    app, deliver, feed, sku
):
    order_id = confirmed(app, deliver, sku, 2)
    feed.ship(order_id)
    replacement = f"rep-{uuid4()}"  # not an order id: an unknown order would be refused
    held = reserved(uuid4(), sku).model_copy(
        update={"order_id": replacement, "replaces": str(order_id)}
    )
    short = rejected(uuid4(), sku).model_copy(
        update={"order_id": replacement, "replaces": str(order_id)}
    )
    deliver(held)
    deliver(short)
    now = app.clock.now()
    dispatch = ShipmentDispatched(
        shipment_id=fresh("shipment"),
        order_ids=[replacement],
        warehouse="WH-BER",
        carrier="dhl",
        service="parcel",
        tracking_number=fresh("T"),
        lines=[ShipmentLine(order_id=replacement, sku=sku, qty=1)],
        promised_by=now,
        dispatched_at=now,
        replaces={replacement: str(order_id)},
    )
    deliver(dispatch)
    deliver(feed.tracked(dispatch).model_copy(update={"replaces": {replacement: str(order_id)}}))
    assert app.get_order(order_id).status == "shipped"  # the original is untouched
