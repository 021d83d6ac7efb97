"""How orders react to the inventory service's events (order.policies), applied the way
the tracked consumer applies them: a unit of work, then one `record`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from itertools import count
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
from shopfloor_contracts.inventory import (
    RejectedLine,
    ReservationRejected,
    ReservedLine,
    StockReserved,
)
from shopfloor_runtime.applier import by_event_type
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.testing import inbound

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


def deliver_to(app: OrderApplication) -> Deliver:
    """Wraps a payload in an envelope from the inventory service and applies it."""
    handlers = by_event_type(policies.handlers(app))
    positions = count(1)

    def apply(payload: BaseModel) -> InboundEnvelope:
        envelope = inbound(payload, "inventory", next(positions), app.clock.now())
        uow = UnitOfWork(app)
        handlers[envelope.event_type](envelope, payload, uow)
        app.record(uow.aggregates)
        return envelope

    return apply


@pytest.fixture
def deliver(app: OrderApplication) -> Deliver:
    return deliver_to(app)


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


def test_the_handlers_cover_every_inventory_event_the_service_reads(app):
    assert set(policies.handlers(app)) == {StockReserved, ReservationRejected}


def test_stock_reserved_for_an_order_needing_no_check_is_recorded_and_keeps_it_confirmed(
    clock, sku
):
    app = make_app(clock, [])
    order_id = place(app, sku)
    pay(app, order_id)
    assert app.get_order(order_id).status == "confirmed"

    deliver_to(app)(reserved(order_id, sku))

    order = app.get_order(order_id)
    assert order.status == "confirmed"
    assert "inventory" in order.passed_checks
    assert story(app, order_id).count("OrderConfirmed") == 1
    app.close()
