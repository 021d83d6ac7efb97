"""Returns the service desk received (order.policies on service-desk.v1): the order
service is the authority on money, so it refunds a return once, as `return:<return id>`,
and never more than was paid and not yet refunded; a return asking more is refused once
and published (RefundRefused). Every test runs on SQLite and PostgreSQL (`store`), and
feeds the desk's events as the tracked consumer hands them over, each delivery with a
position of its own (as after a re-publish into a new broker)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from order.bootstrap import OrderService
from order.domain import Address, Line, Placement
from shopfloor_contracts import orders as contract
from shopfloor_contracts.service_desk import ReceivedLine, ReturnReceived
from shopfloor_contracts.topics import ORDERS
from shopfloor_runtime.testing import fresh

from .conftest import Feed


@pytest.fixture
def desk(service: OrderService, feed_for: Any) -> Feed:
    return feed_for(service.app)  # type: ignore[no-any-return]


def delivered_order(service: OrderService, desk: Feed, sku: str, qty: int = 4) -> UUID:
    """Placed, paid (20.00 a unit), shipped and delivered."""
    placement = Placement(
        customer_id=fresh("customer"),
        channel="shop",
        lines=(Line(sku, qty, Decimal("20.00")),),
        address=Address("Ada Lovelace", "Hauptstrasse 1", "Berlin", "10115", "DE"),
        payment_method="card",
    )
    order = service.app.place_order(placement, None).order
    service.app.pay_order(order.id, order.total, "card", fresh("psp"))
    desk.hand_over(order.id)
    return order.id


def received(desk: Feed, order_id: UUID, sku: str, refund: str, qty: int = 1) -> ReturnReceived:
    """The desk's word that one return of the order came back, asking `refund`."""
    return ReturnReceived(
        return_id=fresh("return"),
        ticket_id=fresh("ticket"),
        order_id=str(order_id),
        lines=[ReceivedLine(sku=sku, qty=qty, condition="resellable", warehouse="WH-BER")],
        refund_amount=Decimal(refund),
        received_at=desk.app.clock.now(),
    )


def published(service: OrderService, order_id: UUID, kind: type) -> list[Any]:
    """What the relay publishes on orders.v1 for the order's stored events, of `kind`."""
    messages = [
        out
        for e in service.app.events.get(order_id)
        for out in service.translate.to_outbound(e)
        if out.topic == ORDERS.name
    ]
    return [out for out in messages if isinstance(out.payload, kind)]


def refunds(service: OrderService, order_id: UUID) -> dict[str, Decimal]:
    return dict(service.app.get_order(order_id).refunds)


def test_a_received_return_is_refunded_once_as_return_and_its_return_id(service, desk, sku):
    order_id = delivered_order(service, desk, sku)
    event = received(desk, order_id, sku, "20.00")

    envelope = desk.deliver(event)

    assert refunds(service, order_id) == {f"return:{event.return_id}": Decimal("20.00")}
    [issued] = published(service, order_id, contract.RefundIssued)
    assert issued.payload.refund_id == f"return:{event.return_id}"
    assert (issued.payload.amount, issued.payload.refunded_total) == (Decimal(20), Decimal(20))
    assert issued.payload.fully_refunded is False
    assert issued.key == issued.correlation_id == str(order_id)
    assert issued.causation_id == str(envelope.event_id)  # the desk's ReturnReceived
    assert service.app.get_order(order_id).status == "delivered"


def test_the_same_return_delivered_again_with_new_positions_changes_nothing(service, desk, sku):
    order_id = delivered_order(service, desk, sku)
    event = received(desk, order_id, sku, "20.00")
    desk.deliver(event)
    version = service.app.get_order(order_id).version

    for _ in range(3):  # redelivered, re-published, refilled after a broker loss
        desk.deliver(event)

    assert service.app.get_order(order_id).version == version
    assert service.app.get_order(order_id).refunded_total == Decimal("20.00")
    assert len(published(service, order_id, contract.RefundIssued)) == 1


def test_returns_of_one_order_are_refunded_each_and_the_last_penny_makes_it_refunded(
    service, desk, sku
):
    order_id = delivered_order(service, desk, sku, qty=2)

    desk.deliver(received(desk, order_id, sku, "20.00"))
    desk.deliver(received(desk, order_id, sku, "20.00"))

    order = service.app.get_order(order_id)
    assert order.refunded_total == order.paid_amount == Decimal("40.00")
    assert order.status == "refunded"
    assert [
        m.payload.fully_refunded for m in published(service, order_id, contract.RefundIssued)
    ] == [
        False,
        True,
    ]


def test_a_return_asking_more_than_is_left_refunds_nothing_and_is_refused_once(service, desk, sku):
    order_id = delivered_order(service, desk, sku)  # 80.00 paid
    service.app.refund_order(order_id, Decimal("70.00"), "goodwill", "ops-1")
    event = received(desk, order_id, sku, "20.00")

    envelope = desk.deliver(event)

    order = service.app.get_order(order_id)
    assert order.refunded_total == Decimal("70.00")
    assert f"return:{event.return_id}" not in order.refunds
    assert order.refused_refunds == {f"return:{event.return_id}": Decimal("20.00")}
    [refused] = published(service, order_id, contract.RefundRefused)
    assert refused.payload == contract.RefundRefused(
        order_id=str(order_id),
        refund_id=f"return:{event.return_id}",
        amount=Decimal("20.00"),
        refundable=Decimal("10.00"),
        reason="exceeds_refundable",
    )
    assert refused.key == str(order_id) and refused.causation_id == str(envelope.event_id)
    history = [e.event_type for e in service.app.order_history(order_id)]
    assert history[-1] == "RefundRefused"


def test_a_refused_return_delivered_again_is_not_decided_again_even_with_money_left(
    service, desk, sku
):
    order_id = delivered_order(service, desk, sku)
    service.app.refund_order(order_id, Decimal("70.00"), "goodwill", "ops-1")
    event = received(desk, order_id, sku, "20.00")
    desk.deliver(event)
    version = service.app.get_order(order_id).version

    desk.deliver(event)

    order = service.app.get_order(order_id)
    assert order.version == version
    assert order.refunded_total == Decimal("70.00")
    assert len(published(service, order_id, contract.RefundRefused)) == 1


def test_a_refund_of_exactly_what_is_left_is_issued(service, desk, sku):
    order_id = delivered_order(service, desk, sku)
    service.app.refund_order(order_id, Decimal("60.00"), "goodwill", "ops-1")

    desk.deliver(received(desk, order_id, sku, "20.00"))

    order = service.app.get_order(order_id)
    assert order.refunded_total == Decimal("80.00") and order.status == "refunded"
    assert published(service, order_id, contract.RefundRefused) == []


def test_a_return_after_a_cancellation_refunded_everything_is_refused(service, desk, sku):
    placement = Placement(
        customer_id=fresh("customer"),
        channel="shop",
        lines=(Line(sku, 1, Decimal("20.00")),),
        address=Address("Ada Lovelace", "Hauptstrasse 1", "Berlin", "10115", "DE"),
        payment_method="card",
    )
    order = service.app.place_order(placement, None).order
    service.app.pay_order(order.id, order.total, "card", fresh("psp"))
    service.app.cancel_order(order.id, "customer", "changed my mind")

    desk.deliver(received(desk, order.id, sku, "20.00"))

    [refused] = published(service, order.id, contract.RefundRefused)
    assert (refused.payload.refundable, refused.payload.reason) == (
        Decimal("0.00"),
        "exceeds_refundable",
    )
    assert service.app.get_order(order.id).refunded_total == Decimal("20.00")


def test_a_return_refunding_nothing_leaves_the_order_as_it_was(service, desk, sku):
    order_id = delivered_order(service, desk, sku)
    version = service.app.get_order(order_id).version

    desk.deliver(received(desk, order_id, sku, "0.00"))

    assert service.app.get_order(order_id).version == version


def test_an_operator_refund_may_not_take_a_return_reference(service, client, desk, sku):
    order_id = delivered_order(service, desk, sku)

    response = client.post(
        f"/orders/{order_id}/refunds",
        json={"amount": "5.00", "reason": "goodwill", "reference": "return:r-1"},
    )

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == "reference"
    assert service.app.get_order(order_id).refunded_total == 0


def test_an_operator_refund_after_a_return_refund_counts_what_the_return_took(
    service, client, desk, sku
):
    order_id = delivered_order(service, desk, sku)
    desk.deliver(received(desk, order_id, sku, "20.00"))

    too_much = client.post(
        f"/orders/{order_id}/refunds", json={"amount": "60.01", "reason": "goodwill"}
    )
    rest = client.post(f"/orders/{order_id}/refunds", json={"amount": "60.00", "reason": "x"})

    assert too_much.status_code == 422, too_much.text
    assert rest.status_code == 200 and rest.json()["status"] == "refunded"
