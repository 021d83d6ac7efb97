"""Events on `service-desk.v1`, produced by the service desk, keyed by ticket id. Ticket
events carry the ticket id as their correlation id; return events the order id, so an
order's trace shows its returns. Analysts read this topic: no message body, subject or
contact detail is on it (those stay in the service desk's store); a ticket is described
by its channel, type, tier, queue and level, a return by codes and quantities."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shopfloor_contracts.envelope import Money, Strict

Channel = Literal["chat", "phone", "email", "marketplace", "system"]
TicketType = Literal[
    "order_status",
    "delivery",
    "return",
    "refund",
    "payment",
    "product",
    "complaint",
    "risk_hold",
    "other",
]
Tier = Literal["new", "returning", "vip"]
Level = Literal["ordinary", "difficult", "extreme"]
Condition = Literal["resellable", "damaged"]
ReturnReason = Literal["damaged", "wrong_item", "not_as_described", "changed_mind", "late"]


class TicketOpened(Strict):
    ticket_id: str
    channel: Channel = Field(description="system: opened by the service desk from an event")
    type: TicketType
    customer_id: str
    order_id: str | None = None
    tier: Tier
    level: Level
    queue: str
    source: str | None = Field(
        None, description="for a ticket opened from an event: that event's type"
    )
    first_response_due: AwareDatetime
    resolution_due: AwareDatetime
    opened_at: AwareDatetime


class TicketRouted(Strict):
    ticket_id: str
    queue: str
    rule: str = Field(description='why this queue, e.g. "type delivery -> logistics"')
    routed_at: AwareDatetime


class TicketAnswered(Strict):
    """An agent's first reply: the first-response timer stops."""

    ticket_id: str
    agent: str
    first_response_s: float = Field(ge=0)
    breached: bool = Field(description="answered after the first-response target")
    answered_at: AwareDatetime


class TicketEscalated(Strict):
    ticket_id: str
    from_level: Level
    to_level: Level
    queue: str
    specialist: str | None = Field(None, description="the named specialist, at extreme")
    reason: str
    automatic: bool = Field(description="true when a missed SLA escalated it")
    escalated_at: AwareDatetime


class TicketResolved(Strict):
    ticket_id: str
    resolved_by: str
    resolution_s: float = Field(ge=0, description="open time, less time waiting for the customer")
    breached: bool = Field(description="resolved after the resolution target")
    resolved_at: AwareDatetime


class TicketRated(Strict):
    ticket_id: str
    score: int = Field(ge=1, le=5)
    rated_at: AwareDatetime


class ReturnLine(Strict):
    sku: str
    qty: int = Field(gt=0)


class ReturnAuthorized(Strict):
    return_id: str
    ticket_id: str
    order_id: str
    lines: list[ReturnLine]
    reason: ReturnReason
    compensation: str = Field(description="the compensation standard applied, by id")
    offer: str = Field(description='what the standard offers, e.g. "full refund"')
    authorized_at: AwareDatetime


class ReturnRefused(Strict):
    return_id: str
    ticket_id: str
    order_id: str
    rule: str = Field(description='the rule that refused it, e.g. "return.window"')
    detail: str
    refused_at: AwareDatetime


class ReceivedLine(Strict):
    sku: str
    qty: int = Field(gt=0)
    condition: Condition
    warehouse: str
    serials: list[str] = Field(default_factory=list)


class ReturnReceived(Strict):
    """The warehouse received the return: inventory puts resellable units back on hand
    (serials back to `returned`), the order service refunds `refund_amount` once."""

    return_id: str
    ticket_id: str
    order_id: str
    lines: list[ReceivedLine]
    refund_amount: Money = Field(description="what the order service refunds, at most what is left")
    received_at: AwareDatetime


class ReplacementRequested(Strict):
    """A received return is made good with goods, not money: the same items again
    (`reship`, e.g. damaged in transit) or others (`exchange`). Inventory reserves the
    lines for `replacement_id` and fulfilment ships them to the original order's
    address; `replacement_id` is no order id (fulfilment's events name it in
    `replaces`)."""

    replacement_id: str
    return_id: str
    ticket_id: str
    order_id: str = Field(description="the order it replaces goods of")
    customer_id: str
    kind: Literal["reship", "exchange"]
    lines: list[ReturnLine]
    requested_at: AwareDatetime
