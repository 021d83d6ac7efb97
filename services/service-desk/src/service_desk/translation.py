"""The only module that knows both the service desk's domain events and the contracts.
Subjects, message bodies, notes and photos stay inside: the topic says what kind of
ticket, where it is and how it went, never what anybody wrote. Ticket events are keyed
and correlated by ticket id; return events are keyed by their ticket and correlated by
the order, so the order's trace shows its returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from shopfloor_contracts import service_desk as contract
from shopfloor_contracts.topics import SERVICE_DESK
from shopfloor_runtime.edge import Outbound

from service_desk.domain import Return, Ticket


def _ticket(e: Any) -> BaseModel | None:
    kind, ticket = type(e), str(e.originator_id)
    if kind is Ticket.Opened:
        return contract.TicketOpened(
            ticket_id=ticket,
            channel=e.channel,
            type=e.kind,
            customer_id=e.customer_id,
            order_id=e.order_id,
            tier=e.tier,
            level="ordinary",
            queue=e.queue,
            source=e.source.split(":", 1)[0] if e.source else None,
            first_response_due=e.first_response_due,
            resolution_due=e.resolution_due,
            opened_at=e.at,
        )
    if kind is Ticket.AgentReplied and e.first:
        return contract.TicketAnswered(
            ticket_id=ticket,
            agent=e.agent,
            first_response_s=e.first_response_s,
            breached=e.breached,
            answered_at=e.at,
        )
    if kind is Ticket.Escalated:
        return contract.TicketEscalated(
            ticket_id=ticket,
            from_level=e.from_level,
            to_level=e.to_level,
            queue=e.queue,
            specialist=e.specialist,
            # an agent's own words stay in the desk's store (the ticket's timeline): they
            # may quote the customer, and service-desk.v1 is read by analysts
            reason=e.reason if e.automatic else BY_HAND,
            automatic=e.automatic,
            escalated_at=e.at,
        )
    if kind is Ticket.Routed:
        return contract.TicketRouted(
            ticket_id=ticket, queue=e.queue, rule=_public_rule(e.rule), routed_at=e.at
        )
    if kind is Ticket.Resolved:
        return contract.TicketResolved(
            ticket_id=ticket,
            resolved_by=e.agent,
            resolution_s=e.resolution_s,
            breached=e.breached,
            resolved_at=e.at,
        )
    if kind is Ticket.Rated:
        return contract.TicketRated(ticket_id=ticket, score=e.score, rated_at=e.at)
    return None


def to_outbound(e: Any) -> list[Outbound]:
    if isinstance(e, Ticket.Event):
        payload = _ticket(e)
        if payload is None:
            return []
        ticket = str(e.originator_id)
        return [Outbound(SERVICE_DESK.name, ticket, payload, ticket, None)]
    if isinstance(e, Return.Event):
        return _return_outbound(e)
    return []


def _return_outbound(e: Any) -> list[Outbound]:
    """A return's events need its ticket and order: `Requested` carries both; the
    later ones carry them too (see Return's events), so each is translated alone."""
    payload = _return_payload(e)
    if payload is None:
        return []
    return [Outbound(SERVICE_DESK.name, payload.ticket_id, payload, payload.order_id, None)]


def _return_payload(e: Any) -> Any:
    kind, ret = type(e), str(e.originator_id)
    if kind is Return.Authorized:
        return contract.ReturnAuthorized(
            return_id=ret,
            ticket_id=e.ticket,
            order_id=e.order_id,
            lines=[contract.ReturnLine(sku=s, qty=q) for s, q in e.lines.items()],
            reason=e.reason,
            compensation=e.standard,
            offer=e.offer,
            authorized_at=e.at,
        )
    if kind is Return.Refused:
        return contract.ReturnRefused(
            return_id=ret,
            ticket_id=e.ticket,
            order_id=e.order_id,
            rule=e.rule,
            detail=e.detail,
            refused_at=e.at,
        )
    if kind is Return.ReplacementRequested:
        return contract.ReplacementRequested(
            replacement_id=e.replacement,
            return_id=ret,
            ticket_id=e.ticket,
            order_id=e.order_id,
            customer_id=e.customer_id,
            kind=e.kind,
            lines=[contract.ReturnLine(sku=s, qty=q) for s, q in e.lines.items()],
            requested_at=e.at,
        )
    if kind is Return.Received:
        return contract.ReturnReceived(
            return_id=ret,
            ticket_id=e.ticket,
            order_id=e.order_id,
            lines=[contract.ReceivedLine(**ln) for ln in e.lines],
            refund_amount=e.refund_amount,
            received_at=e.at,
        )
    return None


#: what service-desk.v1 says of an agent's reason for escalating or rerouting by hand
BY_HAND = "by hand (the reason is on the ticket)"


def _public_rule(rule: str) -> str:
    """A reroute as published (every `Routed` is an agent's, stored as "agent: reason"):
    the agent without the reason."""
    by, sep, _reason = rule.partition(": ")
    return f"{by}: {BY_HAND}" if sep else BY_HAND
