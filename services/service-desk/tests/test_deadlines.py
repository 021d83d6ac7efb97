"""SLA deadlines on the real stores (SQLite and PostgreSQL): durable in the ticket's events
and fired once, however often the timer ticks, across restarts of the desk, a read model
behind the log, and one rebuilt from the events."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from service_desk.bootstrap import DeskService
from service_desk.domain import Ticket
from shopfloor_contracts import service_desk as contract
from shopfloor_runtime.testing import fresh


def chat(desk: DeskService) -> UUID:
    ticket, _ = desk.app.open_ticket(
        "chat", fresh("cust"), None, "order_status", "Where is it?", "Hello?", None
    )
    return ticket.id


def published(desk: DeskService, ticket: UUID) -> list[type]:
    translate = desk.translation()
    return [type(o.payload) for e in desk.app.events.get(ticket) for o in translate(e)]


def test_a_missed_first_response_escalates_once_across_restarts_and_a_rebuilt_read_model(
    make_service, clock
):
    desk = make_service(DeskService)
    ticket = chat(desk)  # chat: first response in 90 s, order_status: resolved in 4 h
    desk.catch_up()
    desk.close()  # restarted before the deadline: it lives in the ticket's events
    desk = make_service(DeskService)
    clock.advance(timedelta(seconds=90))
    assert desk.tick() == 1
    desk.close()  # restarted before its read model saw the escalation: still due there

    desk = make_service(DeskService)
    clock.advance(timedelta(minutes=5))
    assert desk.queries.due(clock.now()) == [str(ticket)]
    assert desk.tick() == 0
    desk.catch_up()
    assert desk.queries.due(clock.now()) == []
    desk.rebuild()  # the read model again from the whole log
    assert desk.tick() == 0 and desk.queries.due(clock.now()) == []

    replayed = desk.app.get_ticket(ticket)  # a new application: rebuilt from its events
    assert (replayed.level, replayed.queue, replayed.first_missed) == (
        "difficult",
        "escalations",
        True,
    )
    assert published(desk, ticket).count(contract.TicketEscalated) == 1
    [row] = desk.queries.tickets(None, None, None, None, None, 10, 0)
    assert (row["level"], row["breached"]) == ("difficult", True)
    assert desk.queries.counts()["escalated"] == 1

    clock.advance(timedelta(hours=4))  # the resolution deadline still fires, once
    assert desk.tick() == 1
    desk.close()
    desk = make_service(DeskService)
    assert desk.tick() == 0
    desk.rebuild()
    assert desk.tick() == 0
    levels = [
        (e.from_level, e.to_level, e.automatic)
        for e in desk.app.events.get(ticket)
        if type(e) is Ticket.Escalated
    ]
    assert levels == [("ordinary", "difficult", True), ("difficult", "extreme", True)]
    assert published(desk, ticket).count(contract.TicketEscalated) == 2


def test_a_chat_threaded_into_an_e_mail_ticket_brings_its_deadline_forward_in_the_read_model(
    make_service, clock
):
    desk = make_service(DeskService)
    customer = fresh("cust")
    mailed, _ = desk.app.open_ticket("email", customer, None, "order_status", "Hi", "Hi", None)
    chatted, threaded = desk.app.open_ticket(
        "chat", customer, None, "order_status", "Hi", "Still there?", None
    )
    assert threaded and chatted.id == mailed.id
    desk.catch_up()
    clock.advance(timedelta(seconds=90))  # chat's first response, not e-mail's 4 hours
    assert desk.queries.due(clock.now()) == [str(mailed.id)]
    assert desk.tick() == 1
    assert desk.app.get_ticket(mailed.id).first_missed
