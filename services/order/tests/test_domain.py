"""The order aggregate and its rules, without I/O: every moment is an explicit datetime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from order.domain import (
    Address,
    Coupon,
    Fingerprint,
    IllegalTransition,
    InvalidOrder,
    Line,
    Order,
    OrderRules,
    PaymentConflict,
    Placement,
    order_id_for_key,
    price,
)
from shopfloor_runtime.aggregates import copy_isolates

PLACED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def make_rules(**changes: Any) -> OrderRules:
    values: dict[str, Any] = {
        "channels": frozenset({"shop", "marketplace-a"}),
        "payment_methods": frozenset({"card", "paypal"}),
        "coupons": {
            "WELCOME10": Coupon(percent_off=10, min_subtotal=Decimal(20)),
            "SHOP5": Coupon(amount_off=Decimal(5), channels=frozenset({"shop"})),
        },
        "required_checks": (),
        "payment_reminder_after": timedelta(minutes=15),
        "payment_timeout": timedelta(minutes=30),
        "duplicate_window": timedelta(seconds=60),
    }
    values.update(changes)
    return OrderRules(**values)


def make_address(**changes: Any) -> Address:
    values = {
        "name": "Ada Lovelace",
        "line1": "Hauptstrasse 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    }
    values.update(changes)
    return Address(**values)


def make_placement(*lines: Line, **changes: Any) -> Placement:
    values: dict[str, Any] = {
        "customer_id": f"customer-{uuid4().hex[:8]}",
        "channel": "shop",
        "lines": lines or (Line("SKU-MUG", 2, Decimal("12.50")),),
        "address": make_address(),
        "payment_method": "card",
    }
    values.update(changes)
    return Placement(**values)


def place(
    placement: Placement | None = None, rules: OrderRules | None = None, at: datetime = PLACED_AT
) -> Order:
    placement = placement or make_placement()
    rules = rules or make_rules()
    return Order.place(placement, price(placement, rules), rules, at, uuid4())


def ship(order: Order, at: datetime = PLACED_AT) -> bool:
    lines = [{"sku": ln["sku"], "qty": ln["qty"]} for ln in order.lines]
    return order.ship("S-1", "dhl", "T1", lines, at, "evt-dispatch")


def new_event_names(order: Order) -> list[str]:
    return [type(e).__name__ for e in order.collect_events()]


def paid_order(rules: OrderRules | None = None) -> Order:
    rules = rules or make_rules()
    order = place(rules=rules)
    assert order.pay(order.total, "card", "psp-1", PLACED_AT, rules.payment_methods) is None
    order.collect_events()
    return order


def replayed(order: Order) -> Order:
    """The order as it is rebuilt from its stored events."""
    copy = None
    for domain_event in order.collect_events():
        copy = domain_event.mutate(copy)
    assert copy is not None
    return copy


# -- pricing ------------------------------------------------------------------------


def test_the_subtotal_is_the_sum_of_the_lines():
    pricing = price(
        make_placement(Line("A", 2, Decimal("12.50")), Line("B", 3, Decimal("1.99"))), make_rules()
    )

    assert (pricing.subtotal, pricing.discount, pricing.total) == (
        Decimal("30.97"),
        Decimal("0.00"),
        Decimal("30.97"),
    )


def test_welcome10_takes_ten_percent_off_rounded_half_up():
    pricing = price(
        make_placement(Line("A", 1, Decimal("33.35")), coupon="WELCOME10"), make_rules()
    )

    assert pricing.discount == Decimal("3.34")
    assert pricing.total == Decimal("30.01")


def test_welcome10_applies_at_exactly_the_minimum_subtotal():
    pricing = price(
        make_placement(Line("A", 2, Decimal("10.00")), coupon="welcome10"), make_rules()
    )

    assert pricing.total == Decimal("18.00")


def test_welcome10_below_the_minimum_subtotal_is_refused():
    with pytest.raises(InvalidOrder) as refused:
        price(make_placement(Line("A", 1, Decimal("19.99")), coupon="WELCOME10"), make_rules())

    assert refused.value.field == "coupon"
    assert "20.00" in refused.value.reason


def test_shop5_takes_five_off_on_the_shop():
    assert price(make_placement(coupon="SHOP5"), make_rules()).total == Decimal("20.00")


def test_shop5_is_refused_on_another_channel():
    with pytest.raises(InvalidOrder) as refused:
        price(make_placement(coupon="SHOP5", channel="marketplace-a"), make_rules())

    assert refused.value.field == "coupon"


def test_a_discount_never_makes_the_total_negative():
    pricing = price(make_placement(Line("A", 1, Decimal("3.00")), coupon="SHOP5"), make_rules())

    assert (pricing.discount, pricing.total) == (Decimal("3.00"), Decimal("0.00"))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": "marketplace-z"}, "channel"),
        ({"coupon": "FREESTUFF"}, "coupon"),
        ({"payment_method": "cash"}, "payment_method"),
        ({"lines": (Line("A", 1, Decimal(1)), Line("A", 2, Decimal(1)))}, "lines"),
    ],
    ids=["unknown channel", "unknown coupon", "unknown payment method", "duplicate sku"],
)
def test_a_placement_breaking_a_rule_is_refused_naming_the_field(changes, field):
    with pytest.raises(InvalidOrder) as refused:
        price(make_placement(**changes), make_rules())

    assert refused.value.field == field


def test_no_payment_method_yet_is_allowed():
    assert price(make_placement(payment_method=None), make_rules()).total == Decimal("25.00")


# -- fingerprints and idempotency keys ----------------------------------------------


def test_the_fingerprint_ignores_line_order_and_price_formatting():
    one = make_placement(
        Line("A", 1, Decimal("2.5")), Line("B", 2, Decimal("1")), customer_id="c-1"
    )
    same = make_placement(
        Line("B", 2, Decimal("1.00")), Line("A", 1, Decimal("2.50")), customer_id="c-1"
    )

    assert one.fingerprint() == same.fingerprint()


@pytest.mark.parametrize(
    "changes",
    [
        {"customer_id": "c-2"},
        {"address": make_address(line1="Hauptstrasse 2")},
        {"lines": (Line("A", 2, Decimal("2.50")),)},
        {"lines": (Line("A", 1, Decimal("2.49")),)},
        {"lines": (Line("Z", 1, Decimal("2.50")),)},
    ],
    ids=["customer", "address", "qty", "price", "sku"],
)
def test_another_customer_address_or_line_is_another_fingerprint(changes):
    base = make_placement(Line("A", 1, Decimal("2.50")), customer_id="c-1")
    other = make_placement(**{"lines": base.lines, "customer_id": "c-1", **changes})

    assert other.fingerprint() != base.fingerprint()


def test_the_fingerprint_ignores_channel_coupon_and_payment_method():
    base = make_placement(customer_id="c-1")
    other = make_placement(
        customer_id="c-1", channel="marketplace-a", coupon="WELCOME10", payment_method="paypal"
    )

    assert other.fingerprint() == base.fingerprint()
    assert other.request_hash() != base.request_hash()


def test_an_idempotency_key_always_names_the_same_order():
    assert order_id_for_key("k-1") == order_id_for_key("k-1")
    assert order_id_for_key("k-1") != order_id_for_key("k-2")


def test_a_fingerprint_folds_only_within_its_window():
    recorded = Fingerprint(uuid4(), uuid4(), PLACED_AT)
    window = timedelta(seconds=60)

    assert recorded.within(PLACED_AT + timedelta(seconds=59), window)
    assert not recorded.within(PLACED_AT + timedelta(seconds=60), window)


# -- placing ------------------------------------------------------------------------


def test_a_placed_order_awaits_payment_with_its_deadlines():
    order = place(make_placement(coupon="welcome10"))

    assert order.status == "awaiting_payment"
    assert order.coupon == "WELCOME10"
    assert order.total == Decimal("22.50")
    assert order.payment_reminder_at == PLACED_AT + timedelta(minutes=15)
    assert order.payment_due_at == PLACED_AT + timedelta(minutes=30)
    assert new_event_names(order) == ["Placed"]


def test_an_order_rebuilt_from_its_events_is_the_same_order():
    rules = make_rules()
    order = place(rules=rules)
    order.pay(Decimal("1.00"), "card", "psp-0", PLACED_AT, rules.payment_methods)
    order.pay(order.total, "card", "psp-1", PLACED_AT, rules.payment_methods)
    order.refund("r-1", Decimal("5"), "scratched")
    expected = (order.status, order.payment, order.refunds, order.version)

    copy = replayed(order)

    assert (copy.status, copy.payment, copy.refunds, copy.version) == expected


# -- payment ------------------------------------------------------------------------


def test_a_payment_of_the_total_confirms_an_order_needing_no_checks():
    order = place()

    refusal = order.pay(Decimal("25.00"), "card", "psp-1", PLACED_AT, frozenset({"card"}))

    assert refusal is None
    assert order.status == "confirmed"
    assert order.paid_amount == Decimal("25.00")
    assert new_event_names(order) == ["Placed", "Paid", "Confirmed"]


def test_a_paid_order_waits_for_its_required_checks():
    order = place(rules=make_rules(required_checks=("inventory",)))

    order.pay(Decimal("25.00"), "card", "psp-1", PLACED_AT, frozenset({"card"}))

    assert order.status == "paid"


def test_a_payment_of_another_amount_is_refused_and_recorded():
    order = place()

    refusal = order.pay(Decimal("24.99"), "card", "psp-1", PLACED_AT, frozenset({"card"}))

    assert refusal is not None and refusal.reason == "amount_mismatch"
    assert not isinstance(refusal, PaymentConflict)
    assert order.status == "awaiting_payment"
    assert order.payment is None
    assert new_event_names(order) == ["Placed", "PaymentRejected"]


def test_a_payment_by_an_unavailable_method_is_refused():
    order = place()

    refusal = order.pay(Decimal("25.00"), "cash", "psp-1", PLACED_AT, frozenset({"card"}))

    assert refusal is not None and refusal.reason == "method_unavailable"
    assert order.status == "awaiting_payment"


def test_the_same_payment_reported_again_changes_nothing():
    order = paid_order()

    assert order.pay(order.total, "card", "psp-1", PLACED_AT, frozenset({"card"})) is None
    assert new_event_names(order) == []


def test_a_second_payment_is_a_conflict():
    order = paid_order()

    refusal = order.pay(order.total, "card", "psp-2", PLACED_AT, frozenset({"card"}))

    assert isinstance(refusal, PaymentConflict)
    assert refusal.reason == "already_paid"
    assert order.payment is not None and order.payment["reference"] == "psp-1"


def test_a_payment_for_a_cancelled_order_is_a_conflict():
    order = place()
    order.cancel("customer", "changed my mind", PLACED_AT)

    refusal = order.pay(order.total, "card", "psp-1", PLACED_AT, frozenset({"card"}))

    assert isinstance(refusal, PaymentConflict)
    assert refusal.reason == "order_cancelled"
    assert order.status == "cancelled"


# -- payment deadlines --------------------------------------------------------------


def test_no_reminder_before_it_is_due():
    order = place()

    assert not order.send_payment_reminder(PLACED_AT + timedelta(minutes=14, seconds=59))
    assert not order.reminded


def test_an_unpaid_order_is_reminded_once():
    order = place()

    first = order.send_payment_reminder(PLACED_AT + timedelta(minutes=15))
    second = order.send_payment_reminder(PLACED_AT + timedelta(minutes=20))

    assert (first, second) == (True, False)
    assert new_event_names(order).count("PaymentReminderSent") == 1


def test_a_paid_order_is_not_reminded():
    order = paid_order()

    assert not order.send_payment_reminder(PLACED_AT + timedelta(minutes=15))


def test_an_unpaid_order_expires_at_its_due_time():
    order = place()

    assert not order.expire_payment(PLACED_AT + timedelta(minutes=29, seconds=59))
    assert order.expire_payment(PLACED_AT + timedelta(minutes=30))

    assert order.status == "cancelled"
    assert order.cancel_reason == "payment_timeout"
    assert not order.expire_payment(PLACED_AT + timedelta(minutes=31))


def test_a_paid_order_never_expires():
    order = paid_order()

    assert not order.expire_payment(PLACED_AT + timedelta(days=1))
    assert order.status == "confirmed"


def test_the_deadlines_follow_the_rules():
    rules = make_rules(
        payment_reminder_after=timedelta(minutes=1), payment_timeout=timedelta(minutes=2)
    )
    order = place(rules=rules)

    assert order.send_payment_reminder(PLACED_AT + timedelta(minutes=1))
    assert order.expire_payment(PLACED_AT + timedelta(minutes=2))


# -- cancelling ---------------------------------------------------------------------


def test_cancelling_an_unpaid_order_refunds_nothing():
    order = place()

    order.cancel("customer", "changed my mind", PLACED_AT)

    assert order.status == "cancelled"
    assert order.refunds == {}
    assert new_event_names(order) == ["Placed", "Cancelled"]


def test_cancelling_a_paid_order_refunds_what_was_paid():
    order = paid_order()

    order.cancel("operator", "out of stock", PLACED_AT)

    assert order.status == "cancelled"
    assert order.refunded_total == order.total
    assert new_event_names(order) == ["Cancelled", "Refunded"]


@pytest.mark.parametrize("state", ["shipped", "delivered", "completed", "cancelled"])
def test_an_order_that_shipped_or_was_cancelled_cannot_be_cancelled(state):
    order = paid_order()
    if state == "cancelled":
        order.cancel("customer", "", PLACED_AT)
    else:
        ship(order)
    if state in ("delivered", "completed"):
        order.deliver(PLACED_AT, timedelta(days=7))
    if state == "completed":
        order.complete(PLACED_AT + timedelta(days=7))
    assert order.status == state

    with pytest.raises(IllegalTransition) as refused:
        order.cancel("operator", "", PLACED_AT)

    assert refused.value.status == state
    assert state in str(refused.value)


# -- refunds ------------------------------------------------------------------------


def test_partial_refunds_add_up_to_at_most_what_was_paid():
    order = paid_order()  # 25.00

    assert order.refund("r-1", Decimal("10"), "scratched")
    assert order.refund("r-2", Decimal("10"), "scratched")
    with pytest.raises(InvalidOrder) as refused:
        order.refund("r-3", Decimal("5.01"), "scratched")

    assert refused.value.field == "amount"
    assert order.refunded_total == Decimal("20.00")
    assert order.status == "confirmed"


def test_refunding_everything_makes_the_order_refunded():
    order = paid_order()

    order.refund("r-1", Decimal("25.00"), "lost parcel")

    assert order.status == "refunded"


def test_a_refund_with_a_known_id_changes_nothing():
    order = paid_order()
    order.refund("r-1", Decimal("5"), "scratched")
    order.collect_events()

    assert order.refund("r-1", Decimal("5"), "scratched") is False
    assert order.refunded_total == Decimal("5.00")
    assert new_event_names(order) == []


@pytest.mark.parametrize("amount", [Decimal(0), Decimal("-1")])
def test_a_refund_must_be_positive(amount):
    with pytest.raises(InvalidOrder):
        paid_order().refund("r-1", amount, "nothing")


def test_an_unpaid_order_cannot_be_refunded():
    with pytest.raises(IllegalTransition):
        place().refund("r-1", Decimal("1"), "goodwill")


def test_a_return_is_refunded_once_under_its_return_refund_id():
    order = paid_order()  # 25.00

    assert order.refund_return("ret-1", Decimal("10"), "event-1") == "issued"
    assert order.refund_return("ret-1", Decimal("10"), "event-2") == "repeat"

    assert order.refunds == {"return:ret-1": Decimal("10.00")}
    assert [e.caused_by for e in order.collect_events() if type(e).__name__ == "Refunded"] == [
        "event-1"
    ]


def test_a_return_asking_more_than_is_left_is_refused_once_and_refunds_nothing():
    order = paid_order()
    order.refund("r-1", Decimal("20"), "goodwill")
    order.collect_events()

    assert order.refund_return("ret-1", Decimal("5.01"), "event-1") == "refused"
    assert order.refund("r-2", Decimal("5"), "the rest")  # the refusal took nothing
    assert order.refund_return("ret-1", Decimal("0.01"), "event-2") == "repeat"

    assert order.refunded_total == Decimal("25.00")
    assert order.refused_refunds == {"return:ret-1": Decimal("5.01")}
    [refused, _] = order.collect_events()
    assert (refused.refund_id, refused.amount, refused.refundable, refused.reason) == (
        "return:ret-1",
        Decimal("5.01"),
        Decimal("5.00"),
        "exceeds_refundable",
    )


def test_a_return_on_an_unpaid_order_is_refused_as_not_paid():
    order = place()

    assert order.refund_return("ret-1", Decimal("1"), "event-1") == "refused"

    [*_, refused] = order.collect_events()
    assert (refused.refundable, refused.reason) == (Decimal("0.00"), "not_paid")


# -- checks, shipping, reservations -------------------------------------------------


def test_passing_the_last_required_check_confirms_a_paid_order():
    rules = make_rules(required_checks=("inventory", "risk"))
    order = place(rules=rules)
    order.pay(order.total, "card", "psp-1", PLACED_AT, rules.payment_methods)

    order.pass_check("inventory", "evt-1", PLACED_AT)
    assert order.status == "paid"
    order.pass_check("risk", "evt-2", PLACED_AT)

    assert order.status == "confirmed"
    assert order.passed_checks == {"inventory": "evt-1", "risk": "evt-2"}


def test_a_check_passed_twice_is_recorded_once():
    order = place(rules=make_rules(required_checks=("inventory",)))
    order.pass_check("inventory", "evt-1", PLACED_AT)
    order.collect_events()

    order.pass_check("inventory", "evt-1", PLACED_AT)

    assert new_event_names(order) == []


def test_a_check_passing_after_cancellation_changes_nothing():
    order = place(rules=make_rules(required_checks=("inventory",)))
    order.cancel("customer", "", PLACED_AT)
    order.collect_events()

    order.pass_check("inventory", "evt-1", PLACED_AT)

    assert order.passed_checks == {}
    assert new_event_names(order) == []


def test_only_a_confirmed_order_can_be_shipped():
    rules = make_rules(required_checks=("inventory",))
    order = place(rules=rules)
    with pytest.raises(IllegalTransition):
        ship(order)
    order.pay(order.total, "card", "psp-1", PLACED_AT, rules.payment_methods)
    with pytest.raises(IllegalTransition):
        ship(order)
    order.pass_check("inventory", "evt-1", PLACED_AT)

    assert ship(order) is True

    assert order.status == "shipped"
    assert order.shipment == {
        "shipment_id": "S-1",
        "carrier": "dhl",
        "tracking_number": "T1",
        "shipped_at": PLACED_AT,
    }


def test_a_cancelled_order_cannot_be_shipped():
    order = paid_order()
    order.cancel("customer", "", PLACED_AT)
    order.collect_events()

    with pytest.raises(IllegalTransition) as refused:
        ship(order)

    assert refused.value.status == "cancelled"
    assert new_event_names(order) == []


def test_an_order_is_shipped_once_whatever_it_became_since():
    order = paid_order()
    ship(order)
    order.refund("r-1", order.total, "lost parcel")  # refunded in full
    order.collect_events()

    assert ship(order) is False

    assert (order.status, new_event_names(order)) == ("refunded", [])


def test_the_shipped_lines_are_what_fulfilment_sent():
    order = paid_order()

    order.ship("S-1", "ups", "1Z9", [{"sku": "SKU-MUG", "qty": 1}], PLACED_AT, "evt-1")

    (shipped,) = [e for e in order.collect_events() if type(e).__name__ == "Shipped"]
    assert shipped.lines == [{"sku": "SKU-MUG", "qty": 1}]
    assert (shipped.carrier, shipped.tracking_number, shipped.caused_by) == ("ups", "1Z9", "evt-1")


def test_a_shipped_order_is_delivered_once_and_its_return_window_starts():
    order = paid_order()
    ship(order)
    at = PLACED_AT + timedelta(days=2)

    assert order.deliver(at, timedelta(days=7), "evt-1") is True
    assert order.deliver(at + timedelta(hours=1), timedelta(days=7), "evt-2") is False

    assert order.status == "delivered"
    assert (order.delivered_at, order.completes_at) == (at, at + timedelta(days=7))
    assert new_event_names(order) == ["Shipped", "Delivered"]


@pytest.mark.parametrize("state", ["confirmed", "cancelled"])
def test_only_a_shipped_order_can_be_delivered(state):
    order = paid_order()
    if state == "cancelled":
        order.cancel("customer", "", PLACED_AT)
    order.collect_events()

    with pytest.raises(IllegalTransition) as refused:
        order.deliver(PLACED_AT, timedelta(days=7))

    assert refused.value.status == state
    assert new_event_names(order) == []


def test_a_delivered_order_completes_once_when_the_return_window_has_passed():
    order = paid_order()
    ship(order)
    order.deliver(PLACED_AT, timedelta(days=7))
    order.collect_events()

    assert order.complete(PLACED_AT + timedelta(days=7) - timedelta(microseconds=1)) is False
    assert order.complete(PLACED_AT + timedelta(days=7)) is True
    assert order.complete(PLACED_AT + timedelta(days=8)) is False

    assert order.status == "completed"
    assert new_event_names(order) == ["Completed"]


@pytest.mark.parametrize("state", ["confirmed", "shipped", "refunded"])
def test_an_order_that_is_not_delivered_does_not_complete(state):
    order = paid_order()
    if state != "confirmed":
        ship(order)
    if state == "refunded":
        order.deliver(PLACED_AT, timedelta(days=7))
        order.refund("r-1", order.total, "returned")
    order.collect_events()

    assert order.complete(PLACED_AT + timedelta(days=30)) is False

    assert (order.status, new_event_names(order)) == (state, [])


def test_a_rejected_reservation_cancels_with_the_short_lines():
    order = paid_order()
    shorts = [{"sku": "SKU-MUG", "requested": 2, "available": 1}]

    order.reject_reservation(shorts, "evt-1", PLACED_AT)

    assert order.status == "cancelled"
    assert order.cancel_reason == "reservation_rejected"
    assert order.refunded_total == order.total
    cancelled = [e for e in order.collect_events() if type(e).__name__ == "Cancelled"]
    assert "SKU-MUG (wanted 2, 1 available)" in cancelled[0].detail
    assert cancelled[0].short_lines == shorts


def test_a_rejected_reservation_after_cancellation_changes_nothing():
    order = place()
    order.cancel("customer", "", PLACED_AT)
    order.collect_events()

    order.reject_reservation([{"sku": "A", "requested": 1, "available": 0}], "e", PLACED_AT)

    assert order.cancel_reason == "customer"
    assert new_event_names(order) == []


# -- copies for the cache ---------------------------------------------------------------


def test_every_command_on_a_cached_copy_leaves_the_cached_order_untouched():
    """The repository's cache hands out cheap copies; each step of an order's life is
    taken on one, and the order it was copied from must not change."""
    rules = make_rules(required_checks=("inventory",))
    order = place(rules=rules)
    now = PLACED_AT + timedelta(minutes=20)
    steps = [
        lambda o: o.send_payment_reminder(now),
        lambda o: o.pay(Decimal("1.00"), "card", "psp-wrong", now, rules.payment_methods),
        lambda o: o.pay(o.total, "card", "psp-1", now, rules.payment_methods),
        lambda o: o.pass_check("inventory", "event-1", now, {"lines": [{"sku": "SKU-MUG"}]}),
        lambda o: o.refund("refund-1", Decimal("5.00"), "damaged"),
        lambda o: ship(o, now),
        lambda o: o.deliver(now, timedelta(days=7), "event-2"),
        lambda o: o.refund_return("ret-1", Decimal("3.00"), "event-3"),
        lambda o: o.refund_return("ret-2", o.total, "event-4"),  # refused: too much
        lambda o: o.complete(now + timedelta(days=7)),
    ]
    for act in steps:
        order = copy_isolates(order, act)
    assert order.status == "completed" and order.refunded_total == Decimal("8.00")
    assert order.refused_refunds == {"return:ret-2": order.total}
    assert replayed(order).__dict__ == {**order.__dict__, "_pending_events": []}


def test_request_hashes_and_fingerprints_are_those_of_orders_stored_before_phone_and_email():
    """Values computed by the code before `phone`, `customer_email` and `service_level`
    existed: a client retrying a pre-upgrade request with its Idempotency-Key must find
    its order (a standard delivery is what every order had then)."""
    plain = Placement(
        customer_id="c-1",
        channel="shop",
        lines=(Line("SKU-1", 2, Decimal("12.50")),),
        address=Address("Ada Lovelace", "Hauptstrasse 1", "Berlin", "10115", "DE"),
        payment_method="card",
    )
    assert plain.request_hash() == "3b5ca258-4a3f-5f39-9be0-10a03030af85"
    assert str(plain.fingerprint()) == "1e01f558-87d3-5b51-b6a8-18becb128817"
    fuller = Placement(
        customer_id="c-1",
        channel="shop",
        lines=(Line("SKU-1", 2, Decimal("12.50")), Line("SKU-2", 1, Decimal("3"))),
        address=Address("Ada Lovelace", "Hauptstrasse 1", "Berlin", "10115", "DE", line2="c/o B"),
        coupon="WELCOME10",
    )
    assert fuller.request_hash() == "3c95bd38-122a-5b41-af5e-185a34d9ea3a"
    assert str(fuller.fingerprint()) == "2e075d3e-33ea-5c76-add8-761108a63990"
    with_phone = Placement(
        **{**vars(plain), "address": Address(**{**vars(plain.address), "phone": "+49 30 1"})}
    )
    assert with_phone.request_hash() != plain.request_hash()  # a new field set is a new request
    express = Placement(**{**vars(plain), "service_level": "express"})
    assert express.request_hash() != plain.request_hash()
    assert Placement(**{**vars(plain), "service_level": "standard"}) == plain


def test_an_order_keeps_the_service_level_it_was_placed_with():
    assert place(make_placement(service_level="express")).service_level == "express"
    assert place().service_level == "standard"


def test_an_order_stored_before_service_levels_existed_loads_as_standard():
    order = place(make_placement(service_level="express"))
    (placed,) = order.collect_events()
    del placed.__dict__["service_level"]  # as an event stored by the older code reads back

    assert placed.mutate(None).service_level == "standard"
