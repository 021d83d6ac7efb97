"""Returns: authorised within the window under the reason's published standard or refused
with the rule, on the customer's return ticket; received once with an inspection per
line; the refund never more than is left to refund; what goes on the topic."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from service_desk.domain import (
    OrderRecord,
    OrderUnknown,
    Refused,
    Return,
    Thread,
    order_key,
    thread_id,
)
from service_desk.translation import to_outbound
from shopfloor_contracts import fulfilment as ful
from shopfloor_contracts import service_desk as contract
from shopfloor_contracts.orders import (
    OrderLine,
    OrderPaid,
    OrderPlaced,
    RefundIssued,
    RefundRefused,
)
from shopfloor_runtime.errors import RuleBroken


def ask(app, order, lines=None, reason="damaged"):
    return app.request_return(
        uuid4(), order.order_id, lines or {"TEE-M": 1}, reason, ["photo:1"], "email"
    )


def receive(app, ret, condition="resellable", qty=1, sku="TEE-M"):
    return app.receive_return(
        ret.id, [{"sku": sku, "qty": qty, "condition": condition, "serials": []}]
    )


def test_a_return_within_the_window_is_authorised_under_its_standard_on_a_return_ticket(
    feed, clock
):
    order = feed.delivered_order()
    clock.advance(timedelta(days=6))
    ret = ask(feed.app, order)
    assert (ret.status, ret.standard) == ("authorized", "damaged-in-transit")
    assert ret.offer == "re-ship or full refund, the customer's choice"
    ticket = feed.app.get_ticket(UUID(ret.ticket))
    assert (ticket.kind, ticket.queue, ticket.customer_id) == (
        "return",
        "after-sales",
        order.customer_id,
    )
    assert "authorised (damaged-in-transit)" in ticket.messages[-1]["body"]


def test_two_customers_in_the_same_case_get_the_same_offer(feed):
    offers = {ask(feed.app, feed.delivered_order(), reason="wrong_item").offer for _ in range(2)}
    assert offers == {"the right item re-shipped, or a full refund"}


def test_a_return_after_the_window_is_refused_with_the_rule(feed, clock):
    order = feed.delivered_order()
    clock.advance(timedelta(days=7, seconds=1))
    ret = ask(feed.app, order)
    assert ret.status == "refused" and ret.refused["rule"] == "return.window"
    assert "return window of 7 days closed on" in ret.refused["detail"]


def test_a_return_of_an_undelivered_order_or_more_than_bought_is_refused(feed):
    shipped = feed.dispatched(feed.paid(feed.placed(feed.order())))
    assert ask(feed.app, shipped).refused["rule"] == "return.not_delivered"
    order = feed.delivered_order()
    assert ask(feed.app, order, {"TEE-M": 2}).status == "authorized"
    again = ask(feed.app, order, {"TEE-M": 1})
    assert again.refused == {
        "rule": "return.quantity",
        "detail": "1x TEE-M asked, 0 of 2 can still be returned",
    }


def test_a_return_naming_an_unknown_order_or_sku_is_refused_and_changes_nothing(feed):
    with pytest.raises(OrderUnknown):
        feed.app.request_return(uuid4(), "order-nobody", {"TEE-M": 1}, "damaged", [], "email")
    order = feed.delivered_order()
    with pytest.raises(RuleBroken, match="not on order .*: CAP-RED"):
        ask(feed.app, order, {"CAP-RED": 1})
    assert ask(feed.app, order, {"TEE-M": 2}).status == "authorized"  # nothing was counted


def test_a_received_return_refunds_its_lines_once(feed):
    order = feed.delivered_order()
    ret = ask(feed.app, order, {"TEE-M": 2}, reason="changed_mind")
    received = feed.app.receive_return(
        ret.id,
        [
            {"sku": "TEE-M", "qty": 1, "condition": "resellable", "serials": []},
            {"sku": "TEE-M", "qty": 1, "condition": "damaged", "serials": []},
        ],
    )
    assert received.status == "received" and received.refund_amount == "20.00"  # damaged: not paid
    assert received.received[0]["warehouse"] == "WH-BER"  # where it shipped from
    again = feed.app.receive_return(ret.id, [dict(x) for x in received.received])
    assert again.refund_amount == "20.00"
    notes = [m["body"] for m in feed.app.get_ticket(UUID(ret.ticket)).messages]
    assert [n for n in notes if "received" in n] == [
        f"Return {ret.id} received (1x TEE-M resellable, 1x TEE-M damaged); refund 20.00."
    ]  # what is paid back, noted once
    payloads = [p.payload for e in feed.app.events.get(ret.id) for p in to_outbound(e)]
    assert [type(p).__name__ for p in payloads] == ["ReturnAuthorized", "ReturnReceived"]


def test_a_damaged_item_under_a_transit_standard_is_refunded(feed):
    order = feed.delivered_order()
    ret = receive(feed.app, ask(feed.app, order, {"MUG-WHITE": 1}), "damaged", sku="MUG-WHITE")
    assert ret.refund_amount == "10.00"


def test_a_different_second_receipt_and_a_receipt_of_a_refused_return_are_refused(feed, clock):
    order = feed.delivered_order()
    ret = ask(feed.app, order, {"TEE-M": 2})
    receive(feed.app, ret)
    with pytest.raises(Refused, match="received already"):
        receive(feed.app, ret, qty=2)
    late = feed.delivered_order()
    clock.advance(timedelta(days=8))
    refused = ask(feed.app, late)
    with pytest.raises(Refused, match="is refused, not authorised"):
        receive(feed.app, refused)


def test_receiving_more_than_authorised_is_refused_and_changes_nothing(feed):
    ret = ask(feed.app, feed.delivered_order(), {"TEE-M": 1})
    with pytest.raises(RuleBroken, match="TEE-M: 2 received, 1 authorised"):
        receive(feed.app, ret, qty=2)
    assert feed.app.get_return(ret.id).status == "authorized"


def test_a_refund_beyond_what_is_left_to_refund_is_refused(feed):
    order = feed.delivered_order()
    feed.refunded(order, "45.00")  # of 50.00 paid
    ret = ask(feed.app, order, {"TEE-M": 1})
    with pytest.raises(Refused, match="refund of 20.00 is more than the 5.00 left"):
        receive(feed.app, ret)
    assert feed.app.get_return(ret.id).status == "authorized"


def test_return_events_are_keyed_by_ticket_and_correlated_by_order_and_carry_no_words(feed):
    order = feed.delivered_order()
    ret = receive(feed.app, ask(feed.app, order))
    [received] = [
        out
        for e in feed.app.events.get(ret.id)
        if type(e) is Return.Received
        for out in to_outbound(e)
    ]
    assert (received.key, received.correlation_id) == (ret.ticket, order.order_id)
    assert isinstance(received.payload, contract.ReturnReceived)
    assert received.payload.refund_amount == Decimal("20.00")
    assert [(ln.sku, ln.qty, ln.condition) for ln in received.payload.lines] == [
        ("TEE-M", 1, "resellable")
    ]
    assert "photo" not in received.payload.model_dump_json()


def test_a_damaged_item_is_reshipped_instead_of_refunded(feed):
    order = feed.delivered_order()
    ret = feed.app.request_return(
        uuid4(), order.order_id, {"MUG-WHITE": 1}, "damaged", [], "email", "reship"
    )
    received = receive(feed.app, ret, "damaged", sku="MUG-WHITE")
    assert received.refund_amount == "0.00" and received.replacement is not None
    out = [o for e in feed.app.events.get(ret.id) for o in to_outbound(e)]
    [asked] = [o for o in out if isinstance(o.payload, contract.ReplacementRequested)]
    assert (asked.key, asked.correlation_id) == (ret.ticket, order.order_id)
    assert asked.payload.kind == "reship" and asked.payload.replacement_id == received.replacement
    assert [(ln.sku, ln.qty) for ln in asked.payload.lines] == [("MUG-WHITE", 1)]
    assert asked.payload.customer_id == order.customer_id


def test_an_exchange_ships_other_items_and_a_standard_without_goods_refuses_one(feed):
    order = feed.delivered_order()
    ret = feed.app.request_return(
        uuid4(), order.order_id, {"TEE-M": 1}, "changed_mind", [], "email", "exchange", {"TEE-L": 1}
    )
    receive(feed.app, ret)
    [asked] = [
        o.payload
        for e in feed.app.events.get(ret.id)
        for o in to_outbound(e)
        if isinstance(o.payload, contract.ReplacementRequested)
    ]
    assert asked.kind == "exchange" and [(ln.sku, ln.qty) for ln in asked.lines] == [("TEE-L", 1)]
    with pytest.raises(RuleBroken, match="not-as-described offers full refund: no reship"):
        feed.app.request_return(
            uuid4(), order.order_id, {"TEE-M": 1}, "not_as_described", [], "email", "reship"
        )
    with pytest.raises(RuleBroken, match="names what the customer gets instead"):
        feed.app.request_return(
            uuid4(), order.order_id, {"TEE-M": 1}, "changed_mind", [], "email", "exchange"
        )


def test_a_replacement_shipped_is_noted_on_its_return_ticket_and_its_trouble_on_the_order(feed):
    order = feed.delivered_order()
    ret = feed.app.request_return(
        uuid4(), order.order_id, {"TEE-M": 1}, "damaged", [], "email", "reship"
    )
    replacement = receive(feed.app, ret).replacement
    now = feed.app.clock.now()
    feed.deliver(
        ful.ShipmentDispatched(
            shipment_id="shp-r1",
            order_ids=[replacement],
            warehouse="WH-BER",
            carrier="DPD",
            service="parcel",
            tracking_number="DPD-9",
            lines=[ful.ShipmentLine(order_id=replacement, sku="TEE-M", qty=1)],
            promised_by=now + timedelta(days=2),
            dispatched_at=now,
            replaces={replacement: order.order_id},
        )
    )
    ticket = feed.app.get_ticket(UUID(ret.ticket))
    assert (
        ticket.messages[-1]["body"]
        == f"Replacement {replacement} shipped with DPD, tracking DPD-9."
    )
    feed.deliver(
        ful.DeliveryFailed(
            shipment_id="shp-r1",
            order_ids=[replacement],
            tracking_number="DPD-9",
            attempt=1,
            at=now,
            replaces={replacement: order.order_id},
        )
    )
    thread = feed.app.find(thread_id(order.customer_id, order.order_id, "delivery"), Thread)
    assert thread is not None and thread.open_ticket is not None


def test_a_refund_owed_counts_against_what_is_left_until_the_order_service_answers(feed):
    order = feed.delivered_order()  # 2x TEE-M at 20.00 and a MUG-WHITE at 10.00: 50.00 paid
    feed.refunded(order, "5.00")  # goodwill: 45.00 left
    first = ask(feed.app, order, {"TEE-M": 2})
    receive(feed.app, first, qty=2)  # 40.00 owed, not yet issued: 5.00 left
    second = ask(feed.app, order, {"MUG-WHITE": 1})
    with pytest.raises(Refused, match="refund of 10.00 is more than the 5.00 left"):
        receive(feed.app, second, sku="MUG-WHITE")
    feed.deliver(
        RefundIssued(
            order_id=order.order_id,
            refund_id=f"return:{first.id}",
            amount=Decimal("40.00"),
            reason="return",
            refunded_total=Decimal("45.00"),
            fully_refunded=False,
        )
    )  # issued: refunded now, no longer owed, still 5.00 left
    with pytest.raises(Refused, match="more than the 5.00 left"):
        receive(feed.app, second, sku="MUG-WHITE")


def test_a_refund_the_order_service_refused_shows_on_the_return_and_its_ticket(feed):
    order = feed.delivered_order()
    ret = receive(feed.app, ask(feed.app, order, {"TEE-M": 1}))
    refused = RefundRefused(
        order_id=order.order_id,
        refund_id=f"return:{ret.id}",
        amount=Decimal("20.00"),
        refundable=Decimal("5.00"),
        reason="exceeds_refundable",
    )
    feed.deliver(refused)
    feed.deliver(refused)  # once
    after = feed.app.get_return(ret.id)
    assert after.refund_refused == {"refundable": "5.00", "reason": "exceeds_refundable"}
    notes = [m["body"] for m in feed.app.get_ticket(UUID(ret.ticket)).messages]
    assert sum("refused the refund of 20.00" in n for n in notes) == 1
    record = feed.app.find(order_key(order.order_id), OrderRecord, fresh=True)
    assert record.refundable() == Decimal("50.00")  # nothing owed any more


def test_a_whole_discounted_order_returned_refunds_exactly_its_total(feed):
    order = feed.order(lines={"PEN": (3, "1.00")})
    now = feed.app.clock.now()
    feed.deliver(
        OrderPlaced(
            order_id=order.order_id,
            customer_id=order.customer_id,
            channel="shop",
            lines=[OrderLine(sku="PEN", qty=3, unit_price=Decimal("1.00"))],
            currency="EUR",
            subtotal=Decimal("3.00"),
            discount=Decimal("0.01"),
            total=Decimal("2.99"),
            payment_method="card",
            placed_at=now,
            payment_reminder_at=now,
            payment_due_at=now,
            required_checks=["inventory"],
        )
    )
    feed.deliver(
        OrderPaid(
            order_id=order.order_id,
            amount=Decimal("2.99"),
            method="card",
            reference="p",
            paid_at=now,
        )
    )
    feed.delivered(feed.dispatched(order))
    ret = ask(feed.app, order, {"PEN": 3})
    assert receive(feed.app, ret, sku="PEN", qty=3).refund_amount == "2.99"


def test_a_receipt_refused_for_money_can_be_received_with_what_is_left(feed):
    order = feed.delivered_order()
    feed.refunded(order, "45.00")
    ret = ask(feed.app, order, {"TEE-M": 1})
    with pytest.raises(Refused, match="receive it with a refund of at most that"):
        receive(feed.app, ret)
    line = [{"sku": "TEE-M", "qty": 1, "condition": "resellable", "serials": []}]
    with pytest.raises(RuleBroken, match="more than the 20.00 the standard pays"):
        feed.app.receive_return(ret.id, line, Decimal("25.00"))
    assert feed.app.receive_return(ret.id, line, Decimal("5")).refund_amount == "5.00"
    note = feed.app.get_ticket(UUID(ret.ticket)).messages[-1]["body"]
    assert note == f"Return {ret.id} received (1x TEE-M resellable); refund 5.00."
