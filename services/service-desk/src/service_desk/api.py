"""HTTP API of the service desk: tickets from every channel and their messages, agents'
replies (templates), escalation, routing, resolution and satisfaction; the queue views
and KPIs; returns and their receipt at the warehouse; the compensation standards and
templates in force. Thin routes over the application and read models."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request, Response
from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)
from shopfloor_runtime.errors import RuleBroken
from shopfloor_runtime.web import (
    MAX_OFFSET,
    Body,
    Code,
    Day,
    ErrorTable,
    Text,
    error_responses,
    rule_broken,
)

from service_desk.application import DeskApplication
from service_desk.domain import (
    OrderUnknown,
    Refused,
    Return,
    ReturnNotFound,
    Ticket,
    TicketNotFound,
)
from service_desk.projection import DeskQueries
from service_desk.rules import ReturnReason, TicketType

Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
Photo = Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"^[\w.:/?=&%-]+$")]
Queue = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z0-9-]+$")]


class TicketIn(Body):
    channel: Literal["chat", "phone", "email", "marketplace"]
    customer_id: Code
    order_id: Code | None = None
    type: TicketType
    subject: Text
    message: Message
    message_id: Code | None = Field(None, description="the channel's id: sent twice, taken once")


class MessageIn(Body):
    author: Literal["customer", "agent"]
    agent: Code | None = Field(None, description="who answers (agent messages)")
    body: Message | None = None
    template_id: Code | None = Field(None, description="fill a template from the order")
    waiting_for_customer: bool = Field(
        False, description="an agent's question: the resolution timer pauses until the answer"
    )
    message_id: Code | None = None

    @model_validator(mode="after")
    def _complete(self) -> MessageIn:
        if self.author == "agent" and self.agent is None:
            raise ValueError("agent: an agent message names its agent")
        if self.body is None and (self.author == "customer" or self.template_id is None):
            raise ValueError("body: a message needs a body (or, from an agent, a template_id)")
        if self.author == "customer" and (self.template_id or self.waiting_for_customer):
            raise ValueError("template_id: templates and waiting are for agents")
        return self


class EscalateIn(Body):
    agent: Code
    reason: Text


class RouteIn(Body):
    agent: Code
    queue: Queue
    reason: Text


class ResolveIn(Body):
    agent: Code
    note: Text | None = None


class RatingIn(Body):
    score: int = Field(ge=1, le=5)


class ReturnLineIn(Body):
    sku: Code
    qty: int = Field(gt=0, le=1000)


class ReturnIn(Body):
    order_id: Code
    lines: list[ReturnLineIn] = Field(min_length=1, max_length=100)
    reason: ReturnReason
    photos: list[Photo] = Field(default_factory=list, max_length=10, description="references")
    channel: Literal["chat", "phone", "email", "marketplace"] = "email"
    resolution: Literal["refund", "reship", "exchange"] = Field(
        "refund", description="money back, the same items again, or others (exchange_for)"
    )
    exchange_for: list[ReturnLineIn] = Field(default_factory=list, max_length=100)


class ReceivedLineIn(Body):
    sku: Code
    qty: int = Field(gt=0, le=1000)
    condition: Literal["resellable", "damaged"]
    warehouse: Code | None = Field(None, description="default: where it shipped from")
    serials: list[Code] = Field(default_factory=list, max_length=1000)


class ReceiptIn(Body):
    lines: list[ReceivedLineIn] = Field(min_length=1, max_length=100)
    refund: Decimal | None = Field(
        None,
        ge=0,
        max_digits=14,
        decimal_places=2,
        description="pay less than the standard does (e.g. what is left after a refund)",
    )


class TicketOut(BaseModel):
    ticket_id: str
    channel: str
    type: str
    customer_id: str
    order_id: str | None
    tier: str
    level: str
    queue: str
    route: str
    specialist: str | None
    status: str
    subject: str
    source: str | None
    opened_at: datetime
    first_response_due: datetime
    answered_at: datetime | None
    resolution_due: datetime
    resolved_at: datetime | None
    breached: bool
    rating: int | None
    messages: list[dict[str, Any]]
    threaded: bool = False

    @classmethod
    def of(cls, t: Ticket, threaded: bool = False) -> TicketOut:
        return cls(
            ticket_id=str(t.id),
            channel=t.channel,
            type=t.kind,
            customer_id=t.customer_id,
            order_id=t.order_id,
            tier=t.tier,
            level=t.level,
            queue=t.queue,
            route=t.route,
            specialist=t.specialist,
            status=t.status,
            subject=t.subject,
            source=t.source,
            opened_at=t.opened_at,
            first_response_due=t.first_response_due,
            answered_at=t.answered_at,
            resolution_due=t.resolution_due,
            resolved_at=t.resolved_at,
            breached=t.breached,
            rating=t.rating,
            messages=t.messages,
            threaded=threaded,
        )


class TicketRow(BaseModel):
    """One ticket in a queue view (from the read model)."""

    ticket_id: str
    channel: str
    type: str
    customer_id: str
    order_id: str | None
    tier: str
    level: str
    queue: str
    specialist: str | None
    status: str
    source: str | None
    opened_at: str
    first_response_due: str
    answered_at: str | None
    first_agent: str | None
    first_response_s: float | None
    resolution_due: str
    resolved_at: str | None
    resolved_by: str | None
    resolution_s: float | None
    rating: int | None
    breached: bool


class ReturnOut(BaseModel):
    return_id: str
    order_id: str
    ticket_id: str
    status: str
    reason: str
    lines: dict[str, int]
    photos: list[str] = Field(description="the references the customer sent")
    compensation: str | None
    offer: str | None
    refused: dict[str, str] | None
    received: list[dict[str, Any]] | None
    refund_amount: str | None
    resolution: str
    replacement_id: str | None
    refund_refused: dict[str, str] | None

    @classmethod
    def of(cls, r: Return) -> ReturnOut:
        return cls(
            return_id=str(r.id),
            order_id=r.order_id,
            ticket_id=r.ticket,
            status=r.status,
            reason=r.reason,
            lines=r.lines,
            photos=list(r.photos),
            compensation=r.standard,
            offer=r.offer,
            refused=r.refused,
            received=r.received,
            refund_amount=r.refund_amount,
            resolution=r.resolution,
            replacement_id=r.replacement,
            refund_refused=r.refund_refused,
        )


def app(request: Request) -> DeskApplication:
    found: DeskApplication = request.app.state.desk
    return found


def queries(request: Request) -> DeskQueries:
    found: DeskQueries = request.app.state.queries
    return found


def router() -> APIRouter:
    api = APIRouter()

    @api.post(
        "/tickets",
        response_model=TicketOut,
        status_code=201,
        responses={
            200: {"model": TicketOut, "description": "threaded into the customer's open ticket"},
            **error_responses(409, 422),
        },
    )
    def open_ticket(body: TicketIn, request: Request, response: Response) -> TicketOut:
        """A contact from any channel: a new ticket (201), or threaded into the customer's
        open ticket about the same order and type (200, `threaded: true`)."""
        ticket, threaded = app(request).open_ticket(
            body.channel,
            body.customer_id,
            body.order_id,
            body.type,
            body.subject,
            body.message,
            body.message_id,
        )
        if threaded:
            response.status_code = 200
        return TicketOut.of(ticket, threaded)

    @api.get("/tickets", response_model=list[TicketRow], responses=error_responses(422))
    def list_tickets(
        request: Request,
        queue: Queue | None = None,
        level: Literal["ordinary", "difficult", "extreme"] | None = None,
        status: Literal["open", "waiting_customer", "resolved"] | None = None,
        customer: Code | None = None,
        breached: bool | None = None,
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> list[dict[str, Any]]:
        """The queue views, newest first (an indexed read model: eventually current)."""
        return queries(request).tickets(queue, level, status, customer, breached, limit, offset)

    @api.get("/tickets/counts")
    def counts(request: Request) -> dict[str, int]:
        """Tickets per status, and how many breached an SLA or were escalated."""
        return queries(request).counts()

    @api.get("/tickets/{ticket_id}", responses=error_responses(404, 422))
    def get_ticket(ticket_id: UUID, request: Request) -> dict[str, Any]:
        """One ticket with its messages, its whole timeline, and the customer's tier and
        order history."""
        desk = app(request)
        ticket = desk.get_ticket(ticket_id)
        customer = desk.customer(ticket.customer_id)
        now = desk.clock.now()
        return {
            **TicketOut.of(ticket).model_dump(mode="json"),
            "timeline": _jsonable(desk.timeline(ticket_id)),
            "customer": {
                "customer_id": ticket.customer_id,
                "tier": customer.tier(desk.rules, now) if customer else "new",
                "orders": desk.order_history(ticket.customer_id),
            },
        }

    @api.post(
        "/tickets/{ticket_id}/messages",
        response_model=TicketOut,
        responses=error_responses(404, 409, 422),
    )
    def add_message(ticket_id: UUID, body: MessageIn, request: Request) -> TicketOut:
        """A customer's or an agent's message; an agent's first stops the first-response
        timer, `waiting_for_customer` pauses the resolution timer."""
        return TicketOut.of(
            app(request).add_message(
                ticket_id,
                body.author,
                body.agent,
                body.body,
                body.template_id,
                body.waiting_for_customer,
                body.message_id,
            )
        )

    @api.post(
        "/tickets/{ticket_id}/escalate",
        response_model=TicketOut,
        responses=error_responses(404, 409, 422),
    )
    def escalate(ticket_id: UUID, body: EscalateIn, request: Request) -> TicketOut:
        """One level up: ordinary -> difficult -> extreme (a named specialist)."""
        return TicketOut.of(app(request).escalate_ticket(ticket_id, body.agent, body.reason))

    @api.post(
        "/tickets/{ticket_id}/route",
        response_model=TicketOut,
        responses=error_responses(404, 409, 422),
    )
    def route(ticket_id: UUID, body: RouteIn, request: Request) -> TicketOut:
        """Send the ticket to another queue, with the reason."""
        return TicketOut.of(
            app(request).route_ticket(ticket_id, body.queue, body.agent, body.reason)
        )

    @api.post(
        "/tickets/{ticket_id}/resolve",
        response_model=TicketOut,
        responses=error_responses(404, 409, 422),
    )
    def resolve(ticket_id: UUID, body: ResolveIn, request: Request) -> TicketOut:
        """Resolved: its timers stop; a new contact opens a new ticket."""
        return TicketOut.of(app(request).resolve_ticket(ticket_id, body.agent, body.note or ""))

    @api.post(
        "/tickets/{ticket_id}/satisfaction",
        response_model=TicketOut,
        responses=error_responses(404, 409, 422),
    )
    def rate(ticket_id: UUID, body: RatingIn, request: Request) -> TicketOut:
        """The customer's rating, 1-5, once per ticket."""
        return TicketOut.of(app(request).rate_ticket(ticket_id, body.score))

    @api.get("/kpis", responses=error_responses(422))
    def kpis(
        request: Request,
        since: Annotated[Day | None, Query(alias="from")] = None,
        until: Annotated[Day | None, Query(alias="to")] = None,
    ) -> dict[str, Any]:
        """KPIs of the tickets opened from `from` to `to` (days, inclusive; default the
        last 7 days): first response and resolution p50/p90 (s), resolution rate, SLA
        breach rate, satisfaction; overall and per channel, type and agent."""
        today = app(request).clock.now().date()
        last = until or today
        first = since or last - timedelta(days=6)
        if first > last:
            raise RuleBroken("from", f"{first} is after to ({last})")
        start = datetime.combine(first, time(), UTC)
        end = datetime.combine(last + timedelta(days=1), time(), UTC)
        return queries(request).kpis(start, end)

    @api.get("/templates")
    def templates(
        request: Request,
        type: TicketType | None = None,  # noqa: A002 - the query parameter's name
        q: Annotated[str | None, Query(max_length=100)] = None,
    ) -> list[dict[str, Any]]:
        """Answers to frequent questions; placeholders like {order_id} are filled from the
        ticket's order when an agent replies with `template_id`."""
        words = (q or "").lower().split()
        found = []
        for template in app(request).rules.templates:
            text = f"{template.title} {template.text}".lower()
            if (type is None or template.type == type) and all(w in text for w in words):
                found.append({**template.model_dump(), "placeholders": sorted(template.needs())})
        return found

    @api.get("/compensation-standards")
    def standards(request: Request) -> dict[str, Any]:
        """The published standards: the same case gets the same offer."""
        rules = app(request).rules
        return {
            "return_window_days": rules.return_window_days,
            "standards": [c.model_dump() for c in rules.compensation],
            "late_delivery": rules.late_delivery.model_dump(),
        }

    @api.post(
        "/returns", response_model=ReturnOut, status_code=201, responses=error_responses(404, 422)
    )
    def request_return(body: ReturnIn, request: Request) -> ReturnOut:
        """Authorised within the return window under the reason's standard, or refused
        with the rule that refused it (`refused.rule`); on the customer's return ticket."""
        lines: dict[str, int] = {}
        for line in body.lines:
            lines[line.sku] = lines.get(line.sku, 0) + line.qty
        instead: dict[str, int] = {}
        for line in body.exchange_for:
            instead[line.sku] = instead.get(line.sku, 0) + line.qty
        found = app(request).request_return(
            uuid4(),
            body.order_id,
            lines,
            body.reason,
            body.photos,
            body.channel,
            body.resolution,
            instead,
        )
        return ReturnOut.of(found)

    @api.get("/returns", responses=error_responses(422))
    def list_returns(request: Request, order_id: Code) -> list[dict[str, Any]]:
        """An order's returns."""
        return queries(request).returns(order_id)

    @api.get("/returns/{return_id}", response_model=ReturnOut, responses=error_responses(404, 422))
    def get_return(return_id: UUID, request: Request) -> ReturnOut:
        return ReturnOut.of(app(request).get_return(return_id))

    @api.post(
        "/returns/{return_id}/receipt",
        response_model=ReturnOut,
        responses=error_responses(404, 409, 422),
    )
    def receive(return_id: UUID, body: ReceiptIn, request: Request) -> ReturnOut:
        """The warehouse received it, each line inspected: resellable units go back on
        hand (inventory), the refund is issued once (order service). The same receipt
        again changes nothing; a refund beyond what is left to refund is refused (409)."""
        lines = [ln.model_dump() for ln in body.lines]
        return ReturnOut.of(app(request).receive_return(return_id, lines, body.refund))

    @api.get("/rules")
    def rules(request: Request) -> dict[str, Any]:
        """The rules in force (defaults, or SERVICE_DESK_RULES_FILE)."""
        return app(request).rules.model_dump(mode="json")

    return api


def _jsonable(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return [plain(step) for step in steps]


ERRORS: ErrorTable = {
    TicketNotFound: 404,
    ReturnNotFound: 404,
    OrderUnknown: 404,
    Refused: 409,
    RuleBroken: (422, rule_broken),
}
