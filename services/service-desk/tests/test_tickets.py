"""Tickets: one queue for every channel, threading, tickets from events exactly once,
routing by type and tier, SLA timers on the test clock with escalation by one level per
missed deadline, pauses while waiting for the customer, templates and ratings."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from service_desk.domain import OrderRecord, Refused, Thread, Ticket, order_key, thread_id
from shopfloor_runtime.errors import RuleBroken


def contact(app, customer="cust-1", order_id=None, kind="order_status", channel="chat", **kw):
    return app.open_ticket(
        channel,
        customer,
        order_id,
        kind,
        "Where is it?",
        "Hello, where is my order?",
        kw.get("message_id"),
    )


def tickets_of(app, customer, order_id, kind) -> int:
    thread = app.find(thread_id(customer, order_id, kind), Thread, fresh=True)
    return thread.tickets if thread else 0


def reply(app, ticket, agent="ana", body="On its way.", waiting=False, template=None):
    return app.add_message(ticket.id, "agent", agent, body, template, waiting, None)


def test_a_second_contact_about_the_same_order_and_type_threads_into_the_open_ticket(feed):
    app = feed.app
    order = feed.placed(feed.order("cust-1"))
    first, threaded = contact(app, order_id=order.order_id)
    assert not threaded
    again, threaded = contact(app, order_id=order.order_id, channel="email")
    assert threaded and again.id == first.id and len(again.messages) == 2
    other_type, threaded = contact(app, order_id=order.order_id, kind="payment")
    assert not threaded and other_type.id != first.id


def test_a_contact_after_resolution_opens_a_new_ticket(feed):
    app = feed.app
    first, _ = contact(app)
    app.resolve_ticket(first.id, "ana", "answered")
    second, threaded = contact(app)
    assert not threaded and second.id != first.id
    assert tickets_of(app, "cust-1", None, "order_status") == 2


def test_a_message_sent_twice_with_its_channel_id_is_taken_once(feed):
    app = feed.app
    ticket, _ = contact(app, message_id="mail-1")
    again, _ = contact(app, message_id="mail-1")
    assert again.id == ticket.id and len(again.messages) == 1


@pytest.mark.parametrize(
    ("deliver", "kind"),
    [
        (lambda feed, o: feed.delayed(o), "delivery"),
        (lambda feed, o: feed.delivery_failed(o), "delivery"),
        (lambda feed, o: feed.held(o), "risk_hold"),
        (lambda feed, o: feed.refunded(o, "150.00", "refund-9"), "refund"),
    ],
    ids=["delayed", "delivery_failed", "risk_hold", "large_refund"],
)
def test_an_event_opens_one_ticket_however_often_it_arrives(feed, deliver, kind):
    order = feed.dispatched(feed.paid(feed.placed(feed.order(lines={"CAM-1": (1, "300.00")}))))
    for _ in range(3):
        deliver(feed, order)
    assert tickets_of(feed.app, order.customer_id, order.order_id, kind) == 1
    thread = feed.app.find(thread_id(order.customer_id, order.order_id, kind), Thread, fresh=True)
    ticket = feed.app.get_ticket(UUID(thread.open_ticket))
    assert ticket.channel == "system" and ticket.order_id == order.order_id
    assert order.order_id in ticket.messages[0]["body"]


def test_a_redelivered_event_opens_nothing_after_its_ticket_was_resolved(feed):
    order = feed.dispatched(feed.paid(feed.placed(feed.order())))
    feed.delivery_failed(order)
    thread = feed.app.find(thread_id(order.customer_id, order.order_id, "delivery"), Thread)
    feed.app.resolve_ticket(UUID(thread.open_ticket), "ana", "re-delivery booked")
    feed.delivery_failed(order)
    assert tickets_of(feed.app, order.customer_id, order.order_id, "delivery") == 1
    feed.delivery_failed(order, attempt=2)  # a new failure is a new story
    assert tickets_of(feed.app, order.customer_id, order.order_id, "delivery") == 2


def test_an_event_about_an_order_not_placed_yet_opens_its_ticket_once_it_is(feed):
    order = feed.order()
    feed.delayed(order)
    assert tickets_of(feed.app, order.customer_id, order.order_id, "delivery") == 0
    feed.placed(order)
    feed.delayed(order)
    assert tickets_of(feed.app, order.customer_id, order.order_id, "delivery") == 1


def test_small_refunds_and_the_desks_own_return_refunds_open_no_ticket(feed):
    order = feed.paid(feed.placed(feed.order(lines={"CAM-1": (1, "300.00")})))
    feed.refunded(order, "20.00")
    feed.refunded(order, "280.00", "return:0d9c")
    assert tickets_of(feed.app, order.customer_id, order.order_id, "refund") == 0


def test_routing_by_type_and_tier_names_its_rule(feed):
    app = feed.app
    delivery, _ = contact(app, kind="delivery", customer="cust-r1")
    assert (delivery.queue, delivery.route) == ("logistics", "type delivery -> logistics")
    vip = "cust-vip"
    feed.paid(feed.placed(feed.order(vip, lines={"CAM-1": (1, "1200.00")})))
    vip_ticket, _ = contact(app, kind="delivery", customer=vip)
    assert (vip_ticket.tier, vip_ticket.queue) == ("vip", "vip")


def test_tiers_new_returning_vip(feed, clock):
    app = feed.app
    feed.placed(feed.order("cust-new"))
    assert contact(app, customer="cust-new")[0].tier == "new"
    for _ in range(2):
        feed.paid(feed.placed(feed.order("cust-back")))
    assert contact(app, customer="cust-back")[0].tier == "returning"
    for _ in range(10):
        feed.paid(feed.placed(feed.order("cust-many")))
    assert contact(app, customer="cust-many")[0].tier == "vip"  # 10 paid orders
    feed.paid(feed.placed(feed.order("cust-old", lines={"CAM-1": (1, "1500.00")})))
    clock.advance(timedelta(days=366))
    feed.placed(feed.order("cust-old"))
    assert contact(app, customer="cust-old")[0].tier == "returning"  # spend outside the window


def test_a_retried_contact_is_answered_as_the_first_time_and_taken_in_once(feed):
    first, threaded = contact(feed.app, customer="cust-retry", message_id="m-1")
    again, threaded_again = contact(feed.app, customer="cust-retry", message_id="m-1")
    assert (again.id, threaded, threaded_again) == (first.id, False, False)
    more, threaded_more = contact(feed.app, customer="cust-retry", message_id="m-2")
    retried, threaded_retried = contact(feed.app, customer="cust-retry", message_id="m-2")
    assert (threaded_more, threaded_retried) == (True, True)
    assert len(feed.app.get_ticket(first.id).messages) == 2


def test_money_refunded_is_no_spend_toward_the_vip_tier(feed):
    order = feed.paid(feed.placed(feed.order("cust-back", lines={"CAM-1": (1, "1000.00")})))
    assert contact(feed.app, customer="cust-back")[0].tier == "vip"
    feed.refunded(order, "400.00")  # 600.00 spent: under the VIP spend
    ticket, _ = contact(feed.app, customer="cust-back", kind="payment")
    assert ticket.tier == "new"


def test_orders_refunded_in_full_do_not_count_toward_the_vip_orders(feed):
    orders = [
        feed.paid(feed.placed(feed.order("cust-ten", lines={"TEE-M": (1, "20.00")})))
        for _ in range(10)
    ]
    assert contact(feed.app, customer="cust-ten")[0].tier == "vip"  # 10 paid orders
    feed.refunded(orders[0], "20.00")  # one given back whole: 9 orders
    assert contact(feed.app, customer="cust-ten", kind="payment")[0].tier == "returning"


def test_a_chat_without_a_reply_escalates_exactly_when_its_sla_passes(feed, clock):
    app = feed.app
    ticket, _ = contact(app, customer="cust-slow")
    clock.advance(timedelta(seconds=89))
    assert app.miss_deadlines([str(ticket.id)]) == 0
    clock.advance(timedelta(seconds=1))
    assert app.miss_deadlines([str(ticket.id)]) == 1
    assert app.miss_deadlines([str(ticket.id)]) == 0  # once
    escalated = app.get_ticket(ticket.id)
    assert (escalated.level, escalated.queue, escalated.breached) == (
        "difficult",
        "escalations",
        True,
    )


def test_a_chat_into_a_ticket_the_system_opened_is_owed_a_chat_s_first_response(feed, clock):
    order = feed.dispatched(feed.paid(feed.placed(feed.order("cust-chats"))))
    feed.delayed(order)  # the system's ticket: first response within the system's hour
    ticket, threaded = contact(feed.app, "cust-chats", order.order_id, kind="delivery")
    assert threaded
    clock.advance(timedelta(seconds=89))
    assert feed.app.miss_deadlines([str(ticket.id)]) == 0
    clock.advance(timedelta(seconds=1))  # chat's 90 s, not the hour
    assert feed.app.miss_deadlines([str(ticket.id)]) == 1


def test_a_vip_chat_escalates_sooner(feed, clock):
    app = feed.app
    feed.paid(feed.placed(feed.order("cust-gold", lines={"CAM-1": (1, "1000.00")})))
    ticket, _ = contact(app, customer="cust-gold")
    assert ticket.tier == "vip"
    clock.advance(timedelta(seconds=45))
    assert app.miss_deadlines([str(ticket.id)]) == 1


def test_an_answered_chat_does_not_escalate(feed, clock):
    app = feed.app
    ticket, _ = contact(app, customer="cust-quick")
    clock.advance(timedelta(seconds=30))
    answered = reply(app, ticket)
    assert answered.answered_at is not None and answered.first_agent == "ana"
    clock.advance(timedelta(seconds=120))
    assert app.miss_deadlines([str(ticket.id)]) == 0
    assert app.get_ticket(ticket.id).level == "ordinary"


def test_waiting_for_the_customer_pauses_the_resolution_timer(feed, clock):
    app = feed.app
    ticket, _ = contact(app, customer="cust-wait", kind="order_status")  # resolution 4 h
    reply(app, ticket, body="Which order do you mean?", waiting=True)
    clock.advance(timedelta(hours=5))
    assert app.miss_deadlines([str(ticket.id)]) == 0  # paused
    app.add_message(ticket.id, "customer", None, "Order 42.", None, False, None)
    resumed = app.get_ticket(ticket.id)
    assert resumed.status == "open"
    assert resumed.resolution_due == ticket.resolution_due + timedelta(hours=5)
    clock.advance(timedelta(hours=4))
    assert app.miss_deadlines([str(ticket.id)]) == 1
    assert app.get_ticket(ticket.id).resolution_missed


def test_each_missed_deadline_escalates_one_level_up_to_a_named_specialist(feed, clock):
    app = feed.app
    ticket, _ = contact(app, customer="cust-angry", kind="complaint")
    clock.advance(timedelta(days=3))
    assert app.miss_deadlines([str(ticket.id)]) == 2  # no answer, not resolved
    extreme = app.get_ticket(ticket.id)
    assert (extreme.level, extreme.queue, extreme.specialist) == (
        "extreme",
        "specialists",
        "mira.complaints",
    )
    with pytest.raises(Refused, match="last level"):
        app.escalate_ticket(ticket.id, "ana", "more")


def test_an_agent_escalates_by_hand_with_a_reason(feed):
    app = feed.app
    ticket, _ = contact(app, customer="cust-hand")
    up = app.escalate_ticket(ticket.id, "ana", "threatens legal action")
    assert up.level == "difficult"
    escalated = [e for e in app.events.get(ticket.id) if type(e) is Ticket.Escalated]
    assert escalated[0].reason == "threatens legal action" and not escalated[0].automatic


def test_a_template_reply_is_filled_from_the_order(feed):
    app = feed.app
    order = feed.dispatched(feed.paid(feed.placed(feed.order("cust-t"))))
    ticket, _ = contact(app, customer="cust-t", order_id=order.order_id)
    answered = reply(app, ticket, body=None, template="where-is-my-order")
    text = answered.messages[-1]["body"]
    assert text == (
        f"Your order {order.order_id} is shipped. It travels with DHL, tracking number "
        f"DHL-{order.order_id}."
    )
    assert answered.messages[-1]["template"] == "where-is-my-order"


def test_a_template_that_needs_an_order_is_refused_on_a_ticket_without_one(feed):
    app = feed.app
    ticket, _ = contact(app, customer="cust-t2")
    with pytest.raises(RuleBroken, match="needs .*order_id"):
        reply(app, ticket, body=None, template="where-is-my-order")
    with pytest.raises(RuleBroken, match="no template"):
        reply(app, ticket, body=None, template="nope")
    assert app.get_ticket(ticket.id).answered_at is None  # nothing changed


def test_a_ticket_is_rated_once_and_a_resolved_ticket_takes_no_messages(feed):
    app = feed.app
    ticket, _ = contact(app, customer="cust-rate")
    app.resolve_ticket(ticket.id, "ana", "done")
    assert app.rate_ticket(ticket.id, 5).rating == 5
    with pytest.raises(Refused, match="rated already"):
        app.rate_ticket(ticket.id, 1)
    with pytest.raises(Refused, match="resolved"):
        reply(app, ticket)


def resolved_event(app, ticket):
    [resolved] = [e for e in app.events.get(ticket.id) if type(e) is Ticket.Resolved]
    return resolved


def test_resolution_time_leaves_out_the_wait_for_the_customer(feed, clock):
    app = feed.app
    ticket, _ = contact(app, customer="cust-time")  # order_status: resolved within 4 h
    clock.advance(timedelta(minutes=1))
    reply(app, ticket, waiting=True)
    clock.advance(timedelta(hours=5))
    app.add_message(ticket.id, "customer", None, "Here it is.", None, False, None)
    clock.advance(timedelta(minutes=14))
    app.resolve_ticket(ticket.id, "ana", "sorted")
    resolved = resolved_event(app, ticket)
    assert resolved.resolution_s == 15 * 60 and not resolved.breached


def test_a_ticket_resolved_while_waiting_for_the_customer_is_not_late_for_the_wait(feed, clock):
    app = feed.app
    ticket, _ = contact(app, customer="cust-gone")  # order_status: resolved within 4 h
    clock.advance(timedelta(minutes=1))
    reply(app, ticket, body="Which order do you mean?", waiting=True)
    clock.advance(timedelta(hours=5))  # no answer: the agent closes it
    app.resolve_ticket(ticket.id, "ana", "no answer")
    resolved = resolved_event(app, ticket)
    assert resolved.resolution_s == 60 and not resolved.breached
    assert not app.get_ticket(ticket.id).breached


def test_a_late_answer_or_resolution_is_a_breach_even_before_the_timer_ticks(feed, clock):
    app = feed.app
    ticket, _ = contact(app, customer="cust-late-reply")  # chat: answered within 90 s
    clock.advance(timedelta(seconds=91))
    answered = reply(app, ticket)  # the timer has not ticked since the deadline
    assert answered.breached and answered.level == "ordinary"  # answered: not escalated
    assert app.miss_deadlines([str(ticket.id)]) == 0
    clock.advance(timedelta(hours=4))  # order_status: 4 h, not ticked either
    app.resolve_ticket(ticket.id, "ana", "sorted")
    assert resolved_event(app, ticket).breached
    steps = [type(e).__name__ for e in app.events.get(ticket.id)]
    assert steps == [
        "Opened",
        "CustomerWrote",
        "FirstResponseMissed",
        "AgentReplied",
        "ResolutionMissed",
        "Resolved",
    ]


def test_an_orders_status_never_goes_back_when_the_topics_interleave(feed):
    order = feed.dispatched(feed.placed(feed.order("cust-late-confirm")))
    feed.paid(order)  # orders.v1 behind fulfilment.v1
    record = feed.app.find(order_key(order.order_id), OrderRecord, fresh=True)
    assert record.status == "shipped"


def test_a_late_delivery_read_before_its_promise_opens_its_ticket_when_the_promise_arrives(
    feed, clock
):
    """orders.v1 and fulfilment.v1 are read independently: the delivery may come first,
    the dispatch with its promise later. The ticket opens then, once."""
    order = feed.paid(feed.placed(feed.order("cust-ahead")))
    dispatched_at = clock.now()
    clock.advance(timedelta(days=5))
    feed.delivered(order)  # three days after a promise not known yet
    assert tickets_of(feed.app, "cust-ahead", order.order_id, "delivery") == 0
    feed.dispatched(order, at=dispatched_at)  # promised by dispatched_at + 2 days
    feed.dispatched(order, at=dispatched_at)  # redelivered: still one ticket
    assert tickets_of(feed.app, "cust-ahead", order.order_id, "delivery") == 1


def test_a_parcel_delivered_past_the_late_standard_opens_a_ticket_with_its_offer(feed, clock):
    late = feed.dispatched(feed.paid(feed.placed(feed.order("cust-waited"))))  # promised +2 d
    on_time = feed.dispatched(feed.paid(feed.placed(feed.order("cust-fine"))))
    clock.advance(timedelta(days=3, hours=23))
    feed.delivered(on_time)  # 1.96 days after the promise: within the standard
    clock.advance(timedelta(hours=2))
    feed.delivered(late)
    feed.delivered(late)  # reported twice: one ticket
    assert tickets_of(feed.app, "cust-fine", on_time.order_id, "delivery") == 0
    assert tickets_of(feed.app, "cust-waited", late.order_id, "delivery") == 1
    thread = feed.app.find(thread_id("cust-waited", late.order_id, "delivery"), Thread)
    [note] = feed.app.get_ticket(UUID(thread.open_ticket)).messages
    assert "delivered 2.0 days after the promised" in note["body"]
    assert note["body"].endswith("standard late-2-days offers a 10.00 coupon for the next order.")
