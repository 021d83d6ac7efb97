"""What a ticket's life puts on service-desk.v1: the contract events in order (messages
other than an agent's first reply, notes and missed-deadline marks stay inside), each
keyed and correlated by its ticket id, and nothing anybody wrote (subjects, message
bodies, notes, names, e-mail addresses) on a topic that is not private."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from service_desk.domain import Thread, thread_id
from service_desk.translation import BY_HAND, to_outbound
from shopfloor_contracts import service_desk as contract
from shopfloor_contracts.privacy import personal_fields
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import TOPICS
from shopfloor_runtime.edge import Outbound

NAME, EMAIL = "Jane Roe", "jane.roe@example.com"
WRITTEN = (
    f"Parcel for {NAME} never came",  # the subject
    f"I am {NAME}, write to {EMAIL}",
    f"Still nothing here. {EMAIL}",
    f"Sorry {NAME}, we are looking into it.",
    "Please check with the neighbours at Hauptstr. 5",
    f"Refunded after a call with {NAME}",  # the resolving note
)


def published(app, ticket: UUID) -> list[Outbound]:
    return [out for e in app.events.get(ticket) for out in to_outbound(e)]


def assert_keyed_by_ticket_and_private_free(out: list[Outbound], ticket: UUID) -> None:
    for message in out:
        assert (message.topic, message.key, message.correlation_id, message.causation_id) == (
            "service-desk.v1",
            str(ticket),
            str(ticket),
            None,
        )
        assert EVENTS[type(message.payload).__name__].topic == message.topic
        if not TOPICS[message.topic].private:
            assert list(personal_fields(type(message.payload))) == []
            text = message.payload.model_dump_json()
            leaked = [w for w in (*WRITTEN, NAME, EMAIL) if w in text]
            assert leaked == [], f"{type(message.payload).__name__} carries {leaked}"


def test_a_tickets_life_is_published_keyed_by_ticket_without_what_anybody_wrote(feed, clock):
    app = feed.app
    order = feed.dispatched(feed.paid(feed.placed(feed.order())))
    subject, first, again, answer, question, note = WRITTEN
    opened_at = clock.now()
    ticket, _ = app.open_ticket(
        "chat", order.customer_id, order.order_id, "delivery", subject, first, "chat-1"
    )
    clock.advance(timedelta(seconds=60))
    app.add_message(ticket.id, "customer", None, again, None, False, "chat-2")
    clock.advance(timedelta(seconds=35))
    assert app.miss_deadlines([str(ticket.id)]) == 1  # chat: 90 s
    app.add_message(ticket.id, "agent", "ana", answer, None, False, None)
    app.add_message(ticket.id, "agent", "ben", question, None, True, None)
    clock.advance(timedelta(minutes=5))
    app.add_message(ticket.id, "customer", None, again, None, False, None)
    feed.delivery_failed(order)  # noted on the open delivery ticket
    app.escalate_ticket(ticket.id, "ben", "customer threatens a chargeback")
    app.route_ticket(ticket.id, "after-sales", "ben", "a refund is due")
    clock.advance(timedelta(minutes=10))
    app.resolve_ticket(ticket.id, "ben", note)
    app.rate_ticket(ticket.id, 2)
    assert len(app.get_ticket(ticket.id).messages) == 6  # all of it kept inside

    out = published(app, ticket.id)
    opened, auto, answered, by_hand, routed, resolved, rated = (m.payload for m in out)
    assert opened == contract.TicketOpened(
        ticket_id=str(ticket.id),
        channel="chat",
        type="delivery",
        customer_id=order.customer_id,
        order_id=order.order_id,
        tier="new",
        level="ordinary",
        queue="logistics",
        source=None,
        first_response_due=opened_at + timedelta(seconds=90),
        resolution_due=opened_at + timedelta(hours=24),
        opened_at=opened_at,
    )
    assert (auto.from_level, auto.to_level, auto.queue, auto.automatic) == (
        "ordinary",
        "difficult",
        "escalations",
        True,
    )
    assert auto.reason.startswith("first response SLA missed") and auto.specialist is None
    assert isinstance(answered, contract.TicketAnswered)  # the first reply only
    assert (answered.agent, answered.first_response_s, answered.breached) == ("ana", 95.0, True)
    assert (by_hand.from_level, by_hand.to_level, by_hand.automatic) == (
        "difficult",
        "extreme",
        False,
    )
    # an agent's reasons are their own words (they may quote the customer): kept on the
    # ticket, never on the topic analysts read
    assert (by_hand.reason, by_hand.queue, by_hand.specialist) == (
        BY_HAND,
        "specialists",
        "lena.logistics",
    )
    assert (routed.queue, routed.rule) == ("after-sales", f"ben: {BY_HAND}")
    assert "chargeback" not in str(out) and "refund is due" not in str(out)
    timeline = str(app.timeline(ticket.id))
    assert "customer threatens a chargeback" in timeline and "a refund is due" in timeline
    assert isinstance(resolved, contract.TicketResolved)
    assert (resolved.resolved_by, resolved.breached) == ("ben", True)
    assert resolved.resolution_s == 95 + 10 * 60  # the wait for the customer left out
    assert isinstance(rated, contract.TicketRated) and rated.score == 2
    assert_keyed_by_ticket_and_private_free(out, ticket.id)


def test_a_ticket_opened_from_an_event_says_which_kind_of_event_not_what_it_said(feed):
    order = feed.dispatched(feed.paid(feed.placed(feed.order())))
    feed.delivery_failed(order)
    thread = feed.app.find(thread_id(order.customer_id, order.order_id, "delivery"), Thread)
    ticket = feed.app.get_ticket(UUID(thread.open_ticket))
    [note] = ticket.messages
    assert "Berlin depot" in note["body"]
    out = published(feed.app, ticket.id)
    [opened] = [m.payload for m in out]
    assert (opened.channel, opened.type, opened.source, opened.order_id) == (
        "system",
        "delivery",
        "delivery-failed",
        order.order_id,
    )
    assert note["body"] not in opened.model_dump_json()
    assert "Berlin depot" not in opened.model_dump_json()
    assert_keyed_by_ticket_and_private_free(out, ticket.id)
