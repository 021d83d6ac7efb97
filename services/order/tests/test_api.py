"""The order service through its HTTP API: the same behaviour on SQLite and PostgreSQL.

Each test gets a service of its own on a fresh store (see conftest `store`), a manual
clock, and no background tasks: the read model is caught up and deadlines are ticked
explicitly."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from order.bootstrap import OrderService
from shopfloor_runtime.clock import ManualClock

from .conftest import Feed
from .test_holds import assessed, released

# -- helpers ------------------------------------------------------------------------


def fresh_key() -> str:
    return f"key-{uuid4().hex}"


def place(client: TestClient, body: dict[str, Any], key: str | None = None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/orders", json=body, headers=headers)


def placed(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = place(client, body)
    assert response.status_code == 201, response.text
    return response.json()


def pay(
    client: TestClient,
    order: dict[str, Any],
    amount: str | None = None,
    reference: str | None = None,
    method: str = "card",
) -> Any:
    return client.post(
        f"/orders/{order['id']}/payments",
        json={
            "amount": amount or order["total"],
            "method": method,
            "reference": reference or f"pay-{uuid4().hex[:8]}",
        },
    )


def paid(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    order = placed(client, body)
    response = pay(client, order)
    assert response.status_code == 200, response.text
    return response.json()


def refund(
    client: TestClient, order: dict[str, Any], amount: str, reference: str | None = None
) -> Any:
    body = {"amount": amount, "reason": "damaged in transit"}
    if reference:
        body["reference"] = reference
    return client.post(f"/orders/{order['id']}/refunds", json=body)


def history(client: TestClient, order_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/orders/{order_id}/history")
    assert response.status_code == 200, response.text
    return response.json()


def event_types(client: TestClient, order_id: str) -> list[str]:
    return [entry["event_type"] for entry in history(client, order_id)]


def listed(service: OrderService, client: TestClient, **query: str) -> list[dict[str, Any]]:
    service.catch_up()
    response = client.get("/orders", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def status_of(client: TestClient, order_id: str) -> str:
    return client.get(f"/orders/{order_id}").json()["status"]


def tick(service: OrderService) -> int:
    # Deadlines are found through the read model, which the service's background
    # projector keeps current; here the test moves it.
    service.catch_up()
    return service.tick_deadlines()


# -- placing ------------------------------------------------------------------------


def test_placing_an_order_returns_201_with_the_total_worked_out(client, order_body):
    response = place(
        client,
        order_body(
            lines=[
                {"sku": "SKU-MUG", "qty": 2, "unit_price": "12.50"},
                {"sku": "SKU-TEA", "qty": 3, "unit_price": "1.99"},
            ]
        ),
    )

    assert response.status_code == 201
    order = response.json()
    assert order["status"] == "awaiting_payment"
    assert Decimal(order["subtotal"]) == Decimal("30.97")
    assert Decimal(order["discount"]) == Decimal("0.00")
    assert Decimal(order["total"]) == Decimal("30.97")
    assert order["duplicate"] is False
    assert client.get(f"/orders/{order['id']}").json()["total"] == order["total"]


def test_an_order_is_a_standard_delivery_unless_express_is_asked_for(client, order_body):
    standard = placed(client, order_body())
    express = placed(client, order_body(customer_id="customer-in-a-hurry", service_level="express"))

    assert standard["service_level"] == "standard"
    assert express["service_level"] == "express"
    assert client.get(f"/orders/{express['id']}").json()["service_level"] == "express"
    published = [
        history(client, o["id"])[0]["payload"]["service_level"] for o in (standard, express)
    ]
    assert published == ["standard", "express"]


def test_the_same_key_with_another_service_level_is_another_request(client, order_body):
    key = fresh_key()
    assert place(client, order_body(), key=key).status_code == 201

    again = place(client, order_body(service_level="standard"), key=key)
    other = place(client, order_body(service_level="express"), key=key)

    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert other.status_code == 409


def test_welcome10_takes_ten_percent_off_a_subtotal_of_at_least_20(client, order_body):
    order = placed(client, order_body(coupon="welcome10"))

    assert Decimal(order["subtotal"]) == Decimal("25.00")
    assert Decimal(order["discount"]) == Decimal("2.50")
    assert Decimal(order["total"]) == Decimal("22.50")
    assert order["coupon"] == "WELCOME10"


def test_shop5_takes_five_off_on_the_own_shop(client, order_body):
    order = placed(client, order_body(coupon="SHOP5", channel="shop"))

    assert Decimal(order["total"]) == Decimal("20.00")


def test_shop5_is_refused_on_a_marketplace(client, order_body):
    response = place(client, order_body(coupon="SHOP5", channel="marketplace-a"))

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "coupon"]


def test_the_same_idempotency_key_returns_the_first_order_as_a_duplicate(client, order_body):
    key = fresh_key()
    first = place(client, order_body(), key)
    again = place(client, order_body(), key)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["duplicate"] is True
    assert again.json()["notes"]


def test_the_same_idempotency_key_with_a_different_body_is_a_conflict(client, order_body):
    key = fresh_key()
    first = place(client, order_body(), key)
    other = place(client, order_body(payment_method="paypal"), key)

    assert first.status_code == 201
    assert other.status_code == 409
    assert first.json()["id"] in other.json()["detail"]


def test_a_keyless_resubmission_within_the_window_returns_the_first_order(
    client, clock, order_body
):
    first = placed(client, order_body())
    clock.advance(timedelta(seconds=59))
    again = place(client, order_body())

    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert again.json()["duplicate"] is True
    assert any("60s" in note for note in again.json()["notes"])


def test_a_keyless_resubmission_after_the_window_is_a_new_order(
    service, client, clock, order_body, customer_id
):
    first = placed(client, order_body())
    clock.advance(timedelta(seconds=61))
    again = place(client, order_body())

    assert again.status_code == 201
    assert again.json()["id"] != first["id"]
    assert again.json()["duplicate"] is False
    assert len(listed(service, client, customer=customer_id)) == 2


def test_the_same_lines_for_another_customer_are_another_order(client, order_body):
    first = placed(client, order_body())
    other = place(client, order_body(customer_id=f"customer-{uuid4().hex[:8]}"))

    assert other.status_code == 201
    assert other.json()["id"] != first["id"]


def test_concurrent_keyless_submissions_make_one_order(service, client, order_body, customer_id):
    submitters = 6
    start = threading.Barrier(submitters)

    def submit(_: int) -> Any:
        start.wait()
        return place(client, order_body())

    with ThreadPoolExecutor(submitters) as pool:
        responses = list(pool.map(submit, range(submitters)))

    assert sorted(r.status_code for r in responses) == [200] * (submitters - 1) + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(listed(service, client, customer=customer_id)) == 1


def test_concurrent_submissions_with_one_idempotency_key_make_one_order(
    service, client, order_body, customer_id
):
    submitters, key = 6, fresh_key()
    start = threading.Barrier(submitters)

    def submit(_: int) -> Any:
        start.wait()
        return place(client, order_body(), key)

    with ThreadPoolExecutor(submitters) as pool:
        responses = list(pool.map(submit, range(submitters)))

    assert sorted(r.status_code for r in responses) == [200] * (submitters - 1) + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(listed(service, client, customer=customer_id)) == 1


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _address(order_body, **changes: Any) -> dict[str, Any]:
    return {**order_body()["shipping_address"], **changes}


INVALID_PLACEMENTS = {
    "no lines": (lambda b: b(lines=[]), ["body", "lines"]),
    "qty 0": (
        lambda b: b(lines=[{"sku": "SKU-A", "qty": 0, "unit_price": "1.00"}]),
        ["body", "lines", 0, "qty"],
    ),
    "negative price": (
        lambda b: b(lines=[{"sku": "SKU-A", "qty": 1, "unit_price": "-1.00"}]),
        ["body", "lines", 0, "unit_price"],
    ),
    "unknown channel": (lambda b: b(channel="marketplace-z"), ["body", "channel"]),
    "unknown coupon": (lambda b: b(coupon="FREESTUFF"), ["body", "coupon"]),
    "coupon below min subtotal": (
        lambda b: b(coupon="WELCOME10", lines=[{"sku": "SKU-A", "qty": 1, "unit_price": "19.99"}]),
        ["body", "coupon"],
    ),
    "unknown payment method": (lambda b: b(payment_method="cash"), ["body", "payment_method"]),
    "unknown country": (
        lambda b: b(shipping_address=_address(b, country="XX")),
        ["body", "shipping_address", "country"],
    ),
    "missing address field": (
        lambda b: b(shipping_address=_without(b()["shipping_address"], "city")),
        ["body", "shipping_address", "city"],
    ),
    "duplicate sku lines": (
        lambda b: b(
            lines=[
                {"sku": "SKU-A", "qty": 1, "unit_price": "1.00"},
                {"sku": "SKU-A", "qty": 2, "unit_price": "1.00"},
            ]
        ),
        ["body", "lines"],
    ),
    "unknown extra field": (lambda b: b(gift_wrap=True), ["body", "gift_wrap"]),
    "unknown service level": (lambda b: b(service_level="overnight"), ["body", "service_level"]),
    "service level in capitals": (
        lambda b: b(service_level="EXPRESS"),
        ["body", "service_level"],
    ),
}


@pytest.mark.parametrize("case", list(INVALID_PLACEMENTS), ids=list(INVALID_PLACEMENTS))
def test_an_invalid_placement_is_422_naming_the_field_and_changes_nothing(
    service, client, order_body, case
):
    make, loc = INVALID_PLACEMENTS[case]

    response = place(client, make(order_body), key=fresh_key())

    assert response.status_code == 422
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert listed(service, client) == []
    assert service.app.recorder.max_notification_id() in (None, 0)


# -- payments -----------------------------------------------------------------------


def test_a_payment_of_the_wrong_amount_is_422_and_recorded_as_rejected(client, order_body):
    order = placed(client, order_body())

    response = pay(client, order, amount="1.00")

    assert response.status_code == 422
    assert response.json()["reason"] == "amount_mismatch"
    assert response.json()["detail"][0]["loc"] == ["body", "amount"]
    assert event_types(client, order["id"]) == ["OrderPlaced", "PaymentRejected"]
    assert status_of(client, order["id"]) == "awaiting_payment"


def test_a_payment_of_the_total_confirms_the_order_when_no_checks_are_required(client, order_body):
    order = placed(client, order_body())

    response = pay(client, order, reference="psp-1")

    assert response.status_code == 200
    assert response.json()["status"] == "confirmed"
    assert response.json()["payment"]["reference"] == "psp-1"
    assert event_types(client, order["id"]) == ["OrderPlaced", "OrderPaid", "OrderConfirmed"]


def test_a_repeated_payment_with_the_same_reference_is_idempotent(client, order_body):
    order = placed(client, order_body())
    first = pay(client, order, reference="psp-same")

    again = pay(client, order, reference="psp-same")

    assert first.status_code == again.status_code == 200
    assert again.json()["version"] == first.json()["version"]
    assert event_types(client, order["id"]).count("OrderPaid") == 1


def test_a_second_payment_with_another_reference_is_a_conflict(client, order_body):
    order = placed(client, order_body())
    assert pay(client, order, reference="psp-1").status_code == 200

    response = pay(client, order, reference="psp-2")

    assert response.status_code == 409
    assert response.json()["reason"] == "already_paid"
    assert event_types(client, order["id"]).count("OrderPaid") == 1


def test_paying_a_cancelled_order_is_a_conflict_and_recorded_as_rejected(client, order_body):
    order = placed(client, order_body())
    assert client.post(f"/orders/{order['id']}/cancel", json={}).status_code == 200

    response = pay(client, order)

    assert response.status_code == 409
    assert response.json()["reason"] == "order_cancelled"
    assert status_of(client, order["id"]) == "cancelled"
    rejections = [e for e in history(client, order["id"]) if e["event_type"] == "PaymentRejected"]
    assert [e["payload"]["reason"] for e in rejections] == ["order_cancelled"]


def test_a_payment_by_an_unavailable_method_is_422_naming_the_method(client, order_body):
    order = placed(client, order_body())

    response = pay(client, order, method="cash")

    assert response.status_code == 422
    assert response.json()["reason"] == "method_unavailable"
    assert response.json()["detail"][0]["loc"] == ["body", "method"]
    assert status_of(client, order["id"]) == "awaiting_payment"


def test_a_refused_payment_reported_again_with_the_same_reference_is_recorded_once(
    client, order_body
):
    # PaymentIn.reference: "the payment provider's id; repeats are idempotent". Providers
    # resend a webhook until they get a 2xx, so a refusal is reported again and again.
    order = placed(client, order_body())

    first = pay(client, order, amount="1.00", reference="psp-short")
    again = pay(client, order, amount="1.00", reference="psp-short")

    assert first.status_code == again.status_code == 422
    assert again.json()["reason"] == "amount_mismatch"
    assert event_types(client, order["id"]).count("PaymentRejected") == 1


def test_paying_an_unknown_order_is_404(client):
    response = client.post(
        f"/orders/{uuid4()}/payments", json={"amount": "1.00", "method": "card", "reference": "p"}
    )

    assert response.status_code == 404


# -- cancelling ---------------------------------------------------------------------


def test_an_unpaid_order_can_be_cancelled(client, order_body):
    order = placed(client, order_body())

    response = client.post(f"/orders/{order['id']}/cancel", json={"reason": "customer"})

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_reason"] == "customer"
    assert "RefundIssued" not in event_types(client, order["id"])


def test_cancelling_a_paid_order_refunds_it_in_full(client, order_body):
    order = paid(client, order_body())

    response = client.post(f"/orders/{order['id']}/cancel", json={"reason": "operator"})

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["refunded_total"] == order["total"]
    refunds = [e for e in history(client, order["id"]) if e["event_type"] == "RefundIssued"]
    assert len(refunds) == 1
    assert refunds[0]["payload"]["amount"] == order["total"]
    assert refunds[0]["payload"]["fully_refunded"] is True


@pytest.mark.parametrize("state", ["shipped", "delivered", "completed"])
def test_cancelling_an_order_fulfilment_has_sent_is_a_conflict_naming_its_state(
    service, client, clock, fulfilment, order_body, state
):
    order = paid(client, order_body())
    dispatch = fulfilment.ship(order["id"])
    if state != "shipped":
        fulfilment.deliver(fulfilment.tracked(dispatch, "delivered"))
    if state == "completed":
        clock.advance(timedelta(days=7))
        assert tick(service) == 1
    before = event_types(client, order["id"])

    response = client.post(f"/orders/{order['id']}/cancel", json={})

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"cannot cancel order {order['id']}: it is {state}",
        "status": state,
    }
    assert status_of(client, order["id"]) == state
    assert event_types(client, order["id"]) == before


def test_cancelling_a_cancelled_order_is_a_conflict(client, order_body):
    order = placed(client, order_body())
    assert client.post(f"/orders/{order['id']}/cancel", json={}).status_code == 200

    response = client.post(f"/orders/{order['id']}/cancel", json={})

    assert response.status_code == 409
    assert "cancelled" in response.json()["detail"]
    assert event_types(client, order["id"]).count("OrderCancelled") == 1


# -- refunds ------------------------------------------------------------------------


def test_partial_refunds_add_up(client, order_body):
    order = paid(client, order_body())  # 25.00

    first = refund(client, order, "5.00")
    second = refund(client, order, "7.50")

    assert first.status_code == second.status_code == 200
    assert Decimal(first.json()["refunded_total"]) == Decimal("5.00")
    assert Decimal(second.json()["refunded_total"]) == Decimal("12.50")
    assert second.json()["status"] == "confirmed"
    assert event_types(client, order["id"]).count("RefundIssued") == 2


def test_a_refund_of_more_than_is_left_is_refused(client, order_body):
    order = paid(client, order_body())
    assert refund(client, order, "20.00").status_code == 200

    response = refund(client, order, "5.01")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "amount"]
    assert Decimal(client.get(f"/orders/{order['id']}").json()["refunded_total"]) == 20


def test_refunding_the_rest_makes_the_order_refunded(service, client, order_body):
    order = paid(client, order_body())

    refund(client, order, "10.00")
    response = refund(client, order, "15.00")

    assert response.json()["status"] == "refunded"
    assert [o["status"] for o in listed(service, client)] == ["refunded"]
    assert refund(client, order, "0.01").status_code == 422


def test_a_repeated_refund_with_the_same_reference_is_idempotent(client, order_body):
    order = paid(client, order_body())

    first = refund(client, order, "5.00", reference="rma-1")
    again = refund(client, order, "5.00", reference="rma-1")

    assert first.status_code == again.status_code == 200
    assert Decimal(again.json()["refunded_total"]) == Decimal("5.00")
    assert event_types(client, order["id"]).count("RefundIssued") == 1


def test_refunding_an_unpaid_order_is_a_conflict(client, order_body):
    order = placed(client, order_body())

    response = refund(client, order, "5.00")

    assert response.status_code == 409
    assert "RefundIssued" not in event_types(client, order["id"])


# -- shipping, delivery, completion: fulfilment's doing ----------------------------------


@pytest.mark.parametrize("method", ["post", "put", "get"])
def test_orders_are_not_shipped_through_the_api_any_more(client, order_body, method):
    order = paid(client, order_body())

    response = client.request(
        method,
        f"/orders/{order['id']}/shipments",
        json={"carrier": "dhl", "tracking_number": "T1"},
    )

    assert response.status_code in (404, 405)
    assert status_of(client, order["id"]) == "confirmed"
    assert "/orders/{order_id}/shipments" not in client.get("/openapi.json").json()["paths"]


def test_a_dispatched_order_shows_its_shipment_and_then_its_delivery(
    client, clock, fulfilment, order_body
):
    order = paid(client, order_body())

    dispatch = fulfilment.ship(order["id"])
    shipped = client.get(f"/orders/{order['id']}").json()
    clock.advance(timedelta(days=1))
    fulfilment.deliver(fulfilment.tracked(dispatch, "delivered"))
    delivered = client.get(f"/orders/{order['id']}").json()

    assert shipped["status"] == "shipped"
    assert shipped["shipment"] == {
        "shipment_id": dispatch.shipment_id,
        "carrier": "dhl",
        "tracking_number": dispatch.tracking_number,
        "shipped_at": dispatch.dispatched_at.isoformat().replace("+00:00", "Z"),
    }
    assert (shipped["delivered_at"], shipped["completes_at"]) == (None, None)
    assert delivered["status"] == "delivered"
    assert datetime.fromisoformat(delivered["delivered_at"]) == clock.now()
    assert datetime.fromisoformat(delivered["completes_at"]) == clock.now() + timedelta(days=7)


def test_a_delivered_order_is_completed_once_by_the_deadline_loop_after_the_return_window(
    service, client, clock, fulfilment, order_body
):
    order = paid(client, order_body())
    fulfilment.hand_over(order["id"])

    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert tick(service) == 0
    clock.advance(timedelta(seconds=1))
    assert tick(service) == 1
    assert tick(service) == 0
    clock.advance(timedelta(days=30))
    assert tick(service) == 0

    assert status_of(client, order["id"]) == "completed"
    assert event_types(client, order["id"]).count("OrderCompleted") == 1
    assert [o["status"] for o in listed(service, client)] == ["completed"]
    assert service.queries.due_deadlines(clock.now()) == []


def test_the_return_window_is_a_setting(build_service, feed_for, clock, order_body):
    service = build_service({"return_window_s": 3600})
    client, fulfilment = TestClient(service.http), feed_for(service.app)
    order = paid(client, order_body())
    fulfilment.hand_over(order["id"])

    clock.advance(timedelta(hours=1))

    assert tick(service) == 1
    assert status_of(client, order["id"]) == "completed"


def test_a_delivered_order_refunded_in_full_never_completes(
    service, client, clock, fulfilment, order_body
):
    order = paid(client, order_body())
    fulfilment.hand_over(order["id"])
    assert refund(client, order, order["total"]).status_code == 200

    clock.advance(timedelta(days=8))

    assert tick(service) == 0
    assert status_of(client, order["id"]) == "refunded"
    assert service.queries.due_deadlines(clock.now()) == []


# -- reading ------------------------------------------------------------------------


def test_an_unknown_order_is_404(client):
    assert client.get(f"/orders/{uuid4()}").status_code == 404
    assert client.get(f"/orders/{uuid4()}/history").status_code == 404


def test_an_order_id_that_is_not_a_uuid_is_422(client):
    response = client.get("/orders/not-a-uuid")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "order_id"]


def test_the_history_lists_events_in_order_with_rising_versions(client, fulfilment, order_body):
    order = paid(client, order_body())
    refund(client, order, "1.00")
    fulfilment.hand_over(order["id"])

    entries = history(client, order["id"])

    assert [e["event_type"] for e in entries] == [
        "OrderPlaced",
        "OrderPaid",
        "OrderConfirmed",
        "RefundIssued",
        "OrderShipped",
        "OrderDelivered",
    ]
    assert [e["version"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["payload"]["order_id"] == order["id"]


def test_orders_can_be_listed_by_status_and_customer(service, client, order_body, customer_id):
    other_customer = f"customer-{uuid4().hex[:8]}"
    waiting = placed(client, order_body(lines=[{"sku": "SKU-A", "qty": 1, "unit_price": "3"}]))
    confirmed = paid(client, order_body(lines=[{"sku": "SKU-B", "qty": 1, "unit_price": "4"}]))
    theirs = paid(client, order_body(customer_id=other_customer))

    mine_confirmed = listed(service, client, status="confirmed", customer=customer_id)
    mine = listed(service, client, customer=customer_id)
    all_confirmed = listed(service, client, status="confirmed")

    assert [o["order_id"] for o in mine_confirmed] == [confirmed["id"]]
    assert {o["order_id"] for o in mine} == {waiting["id"], confirmed["id"]}
    assert {o["order_id"] for o in all_confirmed} == {confirmed["id"], theirs["id"]}
    assert listed(service, client, status="shipped") == []


def test_orders_are_listed_and_counted_by_how_far_fulfilment_took_them(
    service, client, clock, fulfilment, order_body
):
    shipped, delivered, completed = (
        paid(client, order_body(customer_id=f"customer-{uuid4().hex[:8]}")) for _ in range(3)
    )
    fulfilment.ship(shipped["id"])
    fulfilment.hand_over(completed["id"])
    clock.advance(timedelta(days=7))
    assert tick(service) == 1
    fulfilment.hand_over(delivered["id"])

    for state, order in (("shipped", shipped), ("delivered", delivered), ("completed", completed)):
        assert [o["order_id"] for o in listed(service, client, status=state)] == [order["id"]]
    counts = client.get("/orders/counts").json()
    assert counts == {"shipped": 1, "delivered": 1, "completed": 1}


def test_orders_are_listed_newest_first(service, client, clock, order_body):
    oldest = placed(client, order_body(lines=[{"sku": "SKU-A", "qty": 1, "unit_price": "3"}]))
    clock.advance(timedelta(minutes=1))
    middle = placed(client, order_body(lines=[{"sku": "SKU-B", "qty": 1, "unit_price": "3"}]))
    clock.advance(timedelta(minutes=1))
    newest = placed(client, order_body(lines=[{"sku": "SKU-C", "qty": 1, "unit_price": "3"}]))

    ids = [o["order_id"] for o in listed(service, client)]
    page = [o["order_id"] for o in listed(service, client, limit="1", offset="1")]

    assert ids == [newest["id"], middle["id"], oldest["id"]]
    assert page == [middle["id"]]


def test_the_order_list_shows_only_what_the_projector_has_seen(service, client, order_body):
    order = placed(client, order_body())

    before = client.get("/orders").json()
    after = listed(service, client)

    assert before == []
    assert [o["order_id"] for o in after] == [order["id"]]
    assert after[0]["status"] == "awaiting_payment"


def test_order_counts_by_status_come_from_the_read_model(service, client, order_body):
    placed(client, order_body(lines=[{"sku": "SKU-A", "qty": 1, "unit_price": "3"}]))
    paid(client, order_body(lines=[{"sku": "SKU-B", "qty": 1, "unit_price": "4"}]))
    paid(client, order_body(lines=[{"sku": "SKU-C", "qty": 1, "unit_price": "5"}]))
    service.catch_up()

    counts = client.get("/orders/counts")

    assert counts.status_code == 200
    assert counts.json() == {"awaiting_payment": 1, "confirmed": 2}


def test_an_unknown_status_filter_is_422(client):
    assert client.get("/orders", params={"status": "lost"}).status_code == 422


# -- payment deadlines --------------------------------------------------------------


def test_nothing_fires_before_the_reminder_is_due(service, client, clock, order_body):
    order = placed(client, order_body())
    clock.advance(timedelta(minutes=14, seconds=59))

    assert tick(service) == 0
    assert event_types(client, order["id"]) == ["OrderPlaced"]


def test_an_unpaid_order_is_reminded_once_after_15_minutes(service, client, clock, order_body):
    order = placed(client, order_body())
    clock.advance(timedelta(minutes=15))

    fired = tick(service)
    fired_again = tick(service)

    assert (fired, fired_again) == (1, 0)
    assert event_types(client, order["id"]).count("PaymentReminderSent") == 1
    assert status_of(client, order["id"]) == "awaiting_payment"


def test_a_payment_the_read_model_has_not_seen_still_prevents_the_timeout(
    service, client, clock, order_body
):
    order = placed(client, order_body())
    service.catch_up()
    assert pay(client, order).status_code == 200
    clock.advance(timedelta(minutes=31))

    fired = service.tick_deadlines()  # the read model still says awaiting_payment

    assert fired == 0
    assert status_of(client, order["id"]) == "confirmed"
    assert event_types(client, order["id"]) == ["OrderPlaced", "OrderPaid", "OrderConfirmed"]


def test_an_unpaid_order_is_cancelled_after_30_minutes(service, client, clock, order_body):
    order = placed(client, order_body())
    clock.advance(timedelta(minutes=15))
    tick(service)
    clock.advance(timedelta(minutes=15))

    assert tick(service) == 1
    assert tick(service) == 0

    current = client.get(f"/orders/{order['id']}").json()
    assert current["status"] == "cancelled"
    assert current["cancel_reason"] == "payment_timeout"
    assert event_types(client, order["id"]) == [
        "OrderPlaced",
        "PaymentReminderSent",
        "OrderCancelled",
    ]
    assert [o["status"] for o in listed(service, client)] == ["cancelled"]


def test_a_paid_order_is_never_cancelled_for_want_of_payment(service, client, clock, order_body):
    order = paid(client, order_body())
    clock.advance(timedelta(hours=2))

    assert tick(service) == 0
    assert status_of(client, order["id"]) == "confirmed"
    assert "OrderCancelled" not in event_types(client, order["id"])
    assert "PaymentReminderSent" not in event_types(client, order["id"])


def test_payment_deadlines_come_from_settings(build_service, clock, order_body):
    service = build_service(rules={"payment_reminder_after_s": 60, "payment_timeout_s": 120})
    client = TestClient(service.http)
    order = placed(client, order_body())
    placed_at = datetime.fromisoformat(order["placed_at"])
    assert datetime.fromisoformat(order["payment_reminder_at"]) - placed_at == timedelta(minutes=1)
    assert datetime.fromisoformat(order["payment_due_at"]) - placed_at == timedelta(minutes=2)

    clock.advance(timedelta(seconds=59))
    assert tick(service) == 0
    clock.advance(timedelta(seconds=1))
    assert tick(service) == 1
    clock.advance(timedelta(seconds=60))
    assert tick(service) == 1

    current = client.get(f"/orders/{order['id']}").json()
    assert current["status"] == "cancelled"
    assert current["cancel_reason"] == "payment_timeout"
    assert event_types(client, order["id"]) == [
        "OrderPlaced",
        "PaymentReminderSent",
        "OrderCancelled",
    ]


def test_payment_deadlines_survive_a_restart(build_service, clock, order_body):
    first = build_service()
    order = placed(TestClient(first.http), order_body())
    first.close()

    later = ManualClock(clock.now() + timedelta(minutes=31))
    restarted = build_service(clock=later)
    client = TestClient(restarted.http)

    assert tick(restarted) == 1
    assert tick(restarted) == 0
    assert status_of(client, order["id"]) == "cancelled"
    assert event_types(client, order["id"]).count("OrderCancelled") == 1


def test_two_processes_ticking_the_same_deadline_cancel_the_order_once(
    build_service, clock, order_body
):
    services = [build_service(), build_service()]
    order = placed(TestClient(services[0].http), order_body())
    clock.advance(timedelta(minutes=30))
    for service in services:
        service.catch_up()
    start = threading.Barrier(len(services))

    def run(service: OrderService) -> int:
        start.wait()
        return service.tick_deadlines()

    with ThreadPoolExecutor(len(services)) as pool:
        fired = list(pool.map(run, services))

    assert sorted(fired) == [0, 1]
    assert event_types(TestClient(services[1].http), order["id"]).count("OrderCancelled") == 1


# -- operations ---------------------------------------------------------------------


def test_health_is_ok(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_metrics_are_exposed_for_prometheus(client):
    response = client.get("/metrics")

    assert response.status_code == 200
    assert "shopfloor_" in response.text


# -- risk: holds, device and client address -------------------------------------------


def test_a_held_order_shows_on_hold_with_its_exception_and_is_listed_and_counted_so(
    build_service, order_body, customer_id
):
    service = build_service(rules={"required_checks": ["risk"]})
    client = TestClient(service.http)
    risk = Feed(service.app)
    order = paid(client, order_body())
    assert order["status"] == "paid"
    risk.deliver(assessed(order["id"], hold=True))

    shown = client.get(f"/orders/{order['id']}").json()
    assert shown["status"] == "on_hold"
    assert shown["hold"]["exception_id"] == f"exc-{order['id']}"
    assert [o["order_id"] for o in listed(service, client, status="on_hold")] == [order["id"]]
    assert listed(service, client, status="paid") == []
    assert client.get("/orders/counts").json() == {"on_hold": 1}

    risk.deliver(released(order["id"]))

    assert status_of(client, order["id"]) == "confirmed"
    assert client.get(f"/orders/{order['id']}").json()["hold"] is None
    assert listed(service, client, status="on_hold") == []
    assert "OrderHeld" in event_types(client, order["id"])


def test_the_device_and_client_ip_go_to_risk_and_the_ip_only_on_the_private_topic(
    service, client, order_body
):
    order = placed(client, order_body(device_id="dev-42", client_ip="203.0.113.7"))
    placed_event = next(e for e in history(client, order["id"]) if e["event_type"] == "OrderPlaced")
    assert placed_event["payload"]["device_id"] == "dev-42"
    assert "203.0.113.7" not in str(placed_event["payload"])
    first = next(iter(service.app.events.get(UUID(order["id"]))))
    messages = service.translation()(first)
    private = next(m for m in messages if m.topic == "orders.private.v1")
    public = next(m for m in messages if m.topic == "orders.v1")
    assert private.payload.ip_address == "203.0.113.7"
    assert "203.0.113.7" not in public.payload.model_dump_json()


def test_a_client_ip_that_is_no_ip_address_is_refused_naming_the_field(client, order_body):
    response = client.post("/orders", json=order_body(client_ip="300.1.2.3"))

    assert response.status_code == 422
    assert "client_ip" in response.text
    assert client.get("/orders").json() == []
