"""Risk's word on an order (order.policies on risk.v1): an assessment without a hold
passes the risk check; a serious one holds the order, which is then never confirmed
until an operator releases it; an operator's cancel cancels it (and refunds it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from order.application import OrderApplication
from order.privacy import AddressFingerprints
from order.translation import Translation
from shopfloor_contracts.risk import (
    HoldReleased,
    OrderAssessed,
    OrderCancellationRequested,
    Reason,
)
from shopfloor_runtime.clock import ManualClock

from .test_policies import make_app, pay, place, reserved, story


@pytest.fixture
def app(clock: ManualClock) -> Iterator[OrderApplication]:
    application = make_app(clock, ["inventory", "risk"])
    yield application
    application.close()


@pytest.fixture
def deliver(app, feed_for):
    return feed_for(app).deliver


def assessed(order_id: UUID, hold: bool, assessment: int = 1, exception: str | None = None):
    reasons = (
        [Reason(rule="velocity.customer", level="serious", detail="5 orders in 10 min", inputs={})]
        if hold
        else []
    )
    return OrderAssessed(
        order_id=str(order_id),
        customer_id="c-1",
        assessment=assessment,
        outcome="flagged" if hold else "cleared",
        level="serious" if hold else None,
        hold=hold,
        queue="specialist" if hold else None,
        exception_id=exception or (f"exc-{order_id}" if hold else None),
        reasons=reasons,
        assessed_at=ManualClock().now(),
    )


def released(order_id: UUID, operator: str = "ops-1") -> HoldReleased:
    return HoldReleased(
        order_id=str(order_id),
        exception_id=f"exc-{order_id}",
        operator=operator,
        comment="known wholesaler",
        released_at=ManualClock().now(),
    )


def cancel_requested(order_id: UUID) -> OrderCancellationRequested:
    return OrderCancellationRequested(
        order_id=str(order_id),
        exception_id=f"exc-{order_id}",
        operator="ops-2",
        comment="stolen card",
        fraud=True,
        requested_at=ManualClock().now(),
    )


def test_a_cleared_assessment_passes_the_risk_check_and_confirms_a_paid_reserved_order(
    app, deliver, sku
):
    order_id = place(app, sku)
    pay(app, order_id)
    deliver(reserved(order_id, sku))
    assert app.get_order(order_id).status == "paid"  # risk has not spoken yet

    deliver(assessed(order_id, hold=False))

    assert app.get_order(order_id).status == "confirmed"


def test_a_held_order_is_not_confirmed_until_released(app, deliver, sku):
    order_id = place(app, sku)
    deliver(assessed(order_id, hold=True))
    pay(app, order_id)
    deliver(reserved(order_id, sku))

    order = app.get_order(order_id)
    assert order.state == "on_hold" and order.status == "paid"
    assert order.held["exception_id"] == f"exc-{order_id}"
    assert order.held["reason"] == "velocity.customer"
    assert "OrderConfirmed" not in story(app, order_id)

    deliver(released(order_id))

    order = app.get_order(order_id)
    assert order.state == "confirmed" and order.held is None
    assert story(app, order_id)[-3:] == ["OrderReleased", "CheckPassed", "OrderConfirmed"]


def test_a_hold_after_confirmation_is_published_so_fulfilment_pulls_the_order(app, deliver, sku):
    order_id = place(app, sku)
    pay(app, order_id)
    deliver(reserved(order_id, sku))
    deliver(assessed(order_id, hold=False))
    assert app.get_order(order_id).status == "confirmed"

    deliver(assessed(order_id, hold=True, assessment=2))  # a blacklist entry came in

    assert app.get_order(order_id).state == "on_hold"
    assert story(app, order_id)[-1] == "OrderHeld"
    deliver(released(order_id))
    assert app.get_order(order_id).state == "confirmed"
    assert story(app, order_id)[-1] == "OrderReleased"


def test_risk_lifting_its_own_hold_on_a_new_look_releases_the_order(app, deliver, sku):
    order_id = place(app, sku)
    pay(app, order_id)
    deliver(reserved(order_id, sku))
    deliver(assessed(order_id, hold=True))
    deliver(assessed(order_id, hold=False, assessment=2))  # the blacklist entry was removed

    order = app.get_order(order_id)
    assert order.state == "confirmed"
    assert "OrderReleased" in story(app, order_id)


def test_a_repeated_hold_changes_nothing(app, deliver, sku):
    order_id = place(app, sku)
    deliver(assessed(order_id, hold=True))
    version = app.get_order(order_id).version

    deliver(assessed(order_id, hold=True, assessment=2))  # more reasons, same exception

    assert app.get_order(order_id).version == version


def test_risk_cancelling_a_held_paid_order_cancels_and_refunds_it(app, deliver, sku):
    order_id = place(app, sku)
    deliver(assessed(order_id, hold=True))
    pay(app, order_id)

    deliver(cancel_requested(order_id))

    order = app.get_order(order_id)
    assert order.status == "cancelled" and order.cancel_reason == "operator"
    assert order.refunded_total == order.total
    history = app.order_history(order_id)
    cancelled = next(e for e in history if e.event_type == "OrderCancelled")
    assert cancelled.payload["detail"] == f"risk exception exc-{order_id}, ops-2 (fraud)"
    assert [e.event_type for e in history][-2:] == ["OrderCancelled", "RefundIssued"]
    stored = [e for e in app.events.get(order_id) if type(e).__name__ == "Cancelled"]
    public = Translation(AddressFingerprints(b"k" * 32)).to_contract(stored[0])
    assert public.detail == "cancelled by a risk operator (risk.v1 has the exception)"


def test_risk_cancelling_an_order_already_cancelled_leaves_it_as_it_is(app, deliver, sku):
    order_id = place(app, sku)
    app.cancel_order(order_id, "customer", "changed my mind")
    version = app.get_order(order_id).version

    deliver(cancel_requested(order_id))

    assert app.get_order(order_id).version == version
    assert app.get_order(order_id).cancel_reason == "customer"


def test_a_hold_on_a_shipped_order_is_too_late_and_changes_nothing(app, deliver, feed_for, sku):
    order_id = place(app, sku)
    pay(app, order_id)
    deliver(reserved(order_id, sku))
    deliver(assessed(order_id, hold=False))
    feed = feed_for(app)
    feed.deliver(feed.dispatched(order_id))
    version = app.get_order(order_id).version

    deliver(assessed(order_id, hold=True, assessment=2))

    order = app.get_order(order_id)
    assert order.version == version and order.state == "shipped"


def test_an_unpaid_held_order_still_times_out(app, deliver, clock, sku):
    order_id = place(app, sku)
    deliver(assessed(order_id, hold=True))
    clock.advance(timedelta(minutes=30))

    assert app.fire_deadlines([order_id]) == 1
    assert app.get_order(order_id).cancel_reason == "payment_timeout"


def test_a_risk_event_for_an_unknown_order_is_refused(deliver):
    from order.domain import OrderNotFound

    with pytest.raises(OrderNotFound):
        deliver(assessed(uuid4(), hold=False))
