"""The service desk's use cases: tickets from customers and from other services' events,
replies (with templates), escalation, routing, resolution and rating, the SLA timers,
and returns. Reactions to other services' events take the consumer's unit of work;
commands run in their own (`command`: one transaction, retried on a conflict)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate
from shopfloor_runtime.clock import Clock
from shopfloor_runtime.edge import UnitOfWork, command
from shopfloor_runtime.errors import RuleBroken
from shopfloor_runtime.store import ServiceApplication

from service_desk.domain import (
    Customer,
    OrderRecord,
    OrderUnknown,
    Refused,
    Return,
    ReturnNotFound,
    Thread,
    Ticket,
    TicketNotFound,
    customer_key,
    judge_return,
    order_key,
    thread_id,
)
from service_desk.rules import PLACEHOLDER, DeskRules

T = TypeVar("T")
#: refunds the desk itself caused (a received return) open no ticket
RETURN_REFUND = "return:"


class DeskApplication(ServiceApplication):
    name = "service-desk"
    cache_size = 20_000  # tickets, threads, customers, orders, returns

    def __init__(
        self, rules: DeskRules, env: dict[str, str] | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(env, clock)
        self.rules = rules

    # -- what the desk learns of orders (policies.py calls these) -------------------------

    def order_placed(
        self,
        uow: UnitOfWork,
        order_id: str,
        customer_id: str,
        lines: dict[str, list[str | int]],
        total: Decimal,
        at: datetime,
        share: Decimal = Decimal(1),
    ) -> None:
        record = self._order_record(uow, order_id, likely_new=True)
        deferred = record.record_placed(customer_id, lines, total, at, share)
        self._customer(uow, customer_id).placed(order_id, at, total)
        for ticket in deferred:
            self._open_from_event(
                uow, customer_id, order_id, ticket["kind"], ticket["source"], ticket["text"]
            )

    def order_paid(self, uow: UnitOfWork, order_id: str, amount: Decimal) -> None:
        record = self._order_record(uow, order_id)
        record.record_paid(amount)
        record.record_status("paid")
        if record.customer_id:
            self._customer(uow, record.customer_id).paid(order_id, True)

    def order_status(self, uow: UnitOfWork, order_id: str, status: str) -> None:
        record = self._order_record(uow, order_id)
        record.record_status(status)
        if status == "cancelled" and record.customer_id:
            self._customer(uow, record.customer_id).paid(order_id, False)

    def order_shipped(
        self,
        uow: UnitOfWork,
        order_id: str,
        carrier: str,
        tracking_number: str,
        warehouses: dict[str, str] | None = None,
    ) -> None:
        record = self._order_record(uow, order_id)
        record.record_shipped(carrier, tracking_number, warehouses)
        if record.status not in ("delivered", "completed"):
            record.record_status("shipped")

    def order_delivered(self, uow: UnitOfWork, order_id: str, at: datetime) -> None:
        """Delivered; later than the late-delivery standard allows, a ticket with its
        offer (the same for everyone in that case)."""
        record = self._order_record(uow, order_id)
        record.record_delivered(at)
        self._if_delivered_late(uow, order_id, record)

    def shipment_promised(self, uow: UnitOfWork, order_id: str, promised_by: datetime) -> None:
        record = self._order_record(uow, order_id)
        record.record_promise(promised_by)
        # orders.v1 and fulfilment.v1 are read independently: the delivery may be known
        # before the promise it is measured against
        self._if_delivered_late(uow, order_id, record)

    def _if_delivered_late(self, uow: UnitOfWork, order_id: str, record: OrderRecord) -> None:
        """Both the delivery and the promise known: a late delivery opens its ticket
        (once: the ticket's source is the order)."""
        late = self.rules.late_delivery
        if record.promised_by is None or record.delivered_at is None:
            return
        days = (record.delivered_at - record.promised_by).total_seconds() / 86_400
        if days > late.after_days:
            text = (
                f"Order {order_id} was delivered {days:.1f} days after the promised "
                f"{record.promised_by.date().isoformat()}: standard {late.id} offers {late.offer}."
            )
            self.ticket_from_event(uow, order_id, "delivery", f"late:{order_id}", text)

    def refund_issued(
        self, uow: UnitOfWork, order_id: str, refund_id: str, amount: Decimal, total: Decimal
    ) -> None:
        record = self._order_record(uow, order_id)
        record.record_refunded(total, refund_id)
        if record.customer_id:  # money given back is no spend (the VIP tier)
            # the most refunded so far: a refund reported late never lowers it
            self._customer(uow, record.customer_id).refunded(order_id, Decimal(record.refunded))
        if amount > self.rules.refund_ticket_over and not refund_id.startswith(RETURN_REFUND):
            text = f"A refund of {amount} was issued on order {order_id} (refund {refund_id})."
            self.ticket_from_event(uow, order_id, "refund", f"refund:{refund_id}", text)

    def replacement_shipped(
        self, uow: UnitOfWork, order_id: str, replacement: str, carrier: str, tracking: str
    ) -> None:
        """A re-ship or exchange left the warehouse: noted on its return's ticket."""
        record = self._order_record(uow, order_id)
        ticket_id = record.replacements.get(replacement)
        if ticket_id is None:
            return
        ticket = uow.get(UUID(ticket_id), Ticket)
        if ticket is not None and ticket.status != "resolved":
            text = f"Replacement {replacement} shipped with {carrier}, tracking {tracking}."
            ticket.note(f"replacement:{replacement}:shipped", text, self.clock.now())

    def refund_refused(
        self, uow: UnitOfWork, order_id: str, refund_id: str, refundable: Decimal, reason: str
    ) -> None:
        """The order service did not refund a received return: the return and its ticket
        say so, and the refund no longer counts as owed."""
        if not refund_id.startswith(RETURN_REFUND):
            return
        return_id = refund_id.removeprefix(RETURN_REFUND)
        self._order_record(uow, order_id).settle(return_id)
        found = uow.get(UUID(return_id), Return)
        now = self.clock.now()
        if found is None or not found.refused_refund(refundable, reason, now):
            return
        ticket = uow.get(UUID(found.ticket), Ticket)
        if ticket is not None and ticket.status != "resolved":
            text = (
                f"The order service refused the refund of {found.refund_amount} for return "
                f"{return_id} ({reason.replace('_', ' ')}; {refundable} was left to refund)."
            )
            ticket.note(f"return:{return_id}:refund-refused", text, now)

    # -- tickets from events -----------------------------------------------------------------

    def ticket_from_event(
        self, uow: UnitOfWork, order_id: str, kind: str, source: str, text: str
    ) -> None:
        """Open a ticket (or note it on the open one) for what happened to an order,
        once per `source`; an event about an order not placed yet waits for it."""
        record = self._order_record(uow, order_id)
        if record.customer_id is None:
            record.defer({"kind": kind, "source": source, "text": text})
            return
        self._open_from_event(uow, record.customer_id, order_id, kind, source, text)

    def _open_from_event(
        self, uow: UnitOfWork, customer: str, order_id: str, kind: str, source: str, text: str
    ) -> None:
        thread = self._thread(uow, customer, order_id, kind, likely_new=True)
        if not thread.take_in(source):
            return
        now = self.clock.now()
        if thread.open_ticket is not None:
            self._ticket(uow, UUID(thread.open_ticket)).note(source, text, now)
            return
        ticket = self._open(uow, thread, "system", text, source, now)
        ticket.note(source, text, now)

    def _open(
        self,
        uow: UnitOfWork,
        thread: Thread,
        channel: str,
        subject: str,
        source: str | None,
        at: datetime,
    ) -> Ticket:
        customer = uow.get(customer_key(thread.customer), Customer)
        tier = customer.tier(self.rules, at) if customer is not None else "new"
        route = self.rules.route(thread.kind, tier)
        sla = self.rules.sla
        ticket = Ticket(
            ticket=thread.next_ticket(),
            thread=thread.id,
            channel=channel,
            kind=thread.kind,
            customer_id=thread.customer,
            order_id=thread.order_id,
            tier=tier,
            queue=route.queue,
            route=route.describe(),
            subject=subject,
            source=source,
            first_response_due=at + timedelta(seconds=sla.first_response(channel, tier)),
            resolution_due=at + timedelta(seconds=sla.resolution(thread.kind, tier)),
            at=at,
        )
        uow.add(ticket)
        thread.opened(ticket.id)
        return ticket

    # -- tickets from people -----------------------------------------------------------------

    def open_ticket(
        self,
        channel: str,
        customer: str,
        order_id: str | None,
        kind: str,
        subject: str,
        body: str,
        message_id: str | None,
    ) -> tuple[Ticket, bool]:
        """A contact: a new ticket, or (True) threaded into the customer's open ticket
        about the same order and type."""

        def act(uow: UnitOfWork) -> tuple[Ticket, bool]:
            now = self.clock.now()
            thread = self._thread(uow, customer, order_id, kind)
            if thread.open_ticket is not None:
                ticket = self._ticket(uow, UUID(thread.open_ticket))
                if message_id is not None and message_id in ticket.seen:
                    # the same contact again (a client's retry): answered as the first time
                    return ticket, ticket.seen[0] != message_id
                ticket.customer_wrote(message_id, body, now)
                # a chat into a ticket the system opened is owed a chat's first response
                target = self.rules.sla.first_response(channel, ticket.tier)
                ticket.contacted_through(channel, now + timedelta(seconds=target), now)
                return ticket, True
            ticket = self._open(uow, thread, channel, subject, None, now)
            ticket.customer_wrote(message_id, body, now)
            return ticket, False

        return self.command(act)

    def add_message(
        self,
        ticket: UUID,
        author: str,
        agent: str | None,
        body: str | None,
        template_id: str | None,
        waiting: bool,
        message_id: str | None,
    ) -> Ticket:
        def act(uow: UnitOfWork) -> Ticket:
            found = self._existing(uow, ticket)
            now = self.clock.now()
            if author == "customer":
                found.customer_wrote(message_id, body or "", now)
                return found
            text = self._reply_text(uow, found, body, template_id)
            found.agent_replied(message_id, agent or "", text, template_id, waiting, now)
            return found

        return self.command(act)

    def _reply_text(
        self, uow: UnitOfWork, ticket: Ticket, body: str | None, template_id: str | None
    ) -> str:
        if template_id is None:
            assert body is not None  # the API asks for one or the other
            return body
        template = self.rules.template(template_id)
        if template is None:
            raise RuleBroken("template_id", f"no template {template_id!r}")
        facts = {"ticket_id": str(ticket.id), "customer_id": ticket.customer_id}
        if ticket.order_id:
            record = uow.get(order_key(ticket.order_id), OrderRecord)
            facts |= record.facts() if record is not None else {"order_id": ticket.order_id}
        missing = sorted(n for n in template.needs() if not facts.get(n))
        if missing:
            raise RuleBroken(
                "template_id",
                f"{template_id} needs {', '.join(missing)}, not known for this ticket",
            )
        text = PLACEHOLDER.sub(lambda m: facts[m[1]], template.text)
        return f"{text}\n\n{body}" if body else text

    def escalate_ticket(self, ticket: UUID, agent: str, reason: str) -> Ticket:
        return self._change(
            ticket, lambda t, now: t.escalate(reason, False, agent, self.rules, now)
        )

    def route_ticket(self, ticket: UUID, queue: str, agent: str, reason: str) -> Ticket:
        return self._change(ticket, lambda t, now: t.reroute(queue, reason, agent, now))

    def resolve_ticket(self, ticket: UUID, agent: str, note: str) -> Ticket:
        def act(uow: UnitOfWork) -> Ticket:
            found = self._existing(uow, ticket)
            found.resolve(agent, note, self.clock.now())
            thread = uow.get(UUID(found.thread), Thread)
            if thread is not None:
                thread.closed(found.id)
            return found

        return self.command(act)

    def rate_ticket(self, ticket: UUID, score: int) -> Ticket:
        return self._change(ticket, lambda t, now: t.rate(score, now))

    def _change(self, ticket: UUID, step: Callable[[Ticket, datetime], None]) -> Ticket:
        def act(uow: UnitOfWork) -> Ticket:
            found = self._existing(uow, ticket)
            step(found, self.clock.now())
            return found

        return self.command(act)

    # -- timers ----------------------------------------------------------------------------

    def miss_deadlines(self, tickets: list[str]) -> int:
        """Tickets whose deadline passed: each missed deadline escalates, once."""
        done = 0
        for ticket in tickets:

            def act(uow: UnitOfWork, ticket: str = ticket) -> int:
                found = uow.get(UUID(ticket), Ticket)
                return found.miss_deadlines(self.rules, self.clock.now()) if found else 0

            done += self.command(act)
        return done

    # -- returns ---------------------------------------------------------------------------

    def request_return(
        self,
        return_id: UUID,
        order_id: str,
        lines: dict[str, int],
        reason: str,
        photos: list[str],
        channel: str,
        resolution: str = "refund",
        exchange_for: dict[str, int] | None = None,
    ) -> Return:
        """Authorised within the window under the reason's compensation standard, or
        refused with the rule; either way on the customer's return ticket. `resolution`:
        money back (refund), the same items again (reship) or others (exchange), as far
        as the standard offers goods instead of money."""
        standard = self.rules.standard_for(reason)
        if resolution != "refund" and not standard.replacement:
            raise RuleBroken(
                "resolution", f"{standard.id} offers {standard.offer}: no {resolution}"
            )
        if resolution == "exchange" and not exchange_for:
            raise RuleBroken("exchange_for", "an exchange names what the customer gets instead")
        replacement_lines = (exchange_for or {}) if resolution == "exchange" else dict(lines)

        def act(uow: UnitOfWork) -> Return:
            record = uow.get(order_key(order_id), OrderRecord)
            if record is None or record.customer_id is None:
                raise OrderUnknown(order_id)
            unknown = sorted(sku for sku in lines if sku not in record.lines)
            if unknown:
                raise RuleBroken("lines", f"not on order {order_id}: {', '.join(unknown)}")
            now = self.clock.now()
            thread = self._thread(uow, record.customer_id, order_id, "return")
            summary = ", ".join(f"{q}x {s}" for s, q in lines.items())
            ticket = (
                self._ticket(uow, UUID(thread.open_ticket))
                if thread.open_ticket
                else self._open(uow, thread, channel, f"return of {summary}", None, now)
            )
            found = Return(
                return_id=return_id,
                order_id=order_id,
                ticket=str(ticket.id),
                customer_id=record.customer_id,
                lines=lines,
                reason=reason,
                photos=photos,
                resolution=resolution,
                replacement_lines=replacement_lines if resolution != "refund" else {},
                at=now,
            )
            uow.add(found)
            refused = judge_return(record, lines, self.rules, now)
            if refused:
                found.refuse(*refused, now)
                text = f"Return {return_id} of {summary} refused ({refused[0]}): {refused[1]}."
            else:
                found.authorize(standard.id, standard.offer, now)
                record.count_returned(lines)
                text = (
                    f"Return {return_id} of {summary} authorised ({standard.id}): {standard.offer}."
                )
            ticket.note(f"return:{return_id}:decided", text, now)
            return found

        return self.command(act)

    def receive_return(
        self, return_id: UUID, lines: list[dict[str, Any]], refund: Decimal | None = None
    ) -> Return:
        """The warehouse's inspection: the refund is what the standard pays for the
        received lines, never more than is left to refund on the order; `refund`, when
        given, pays less than that (e.g. what is left after a refund meanwhile)."""

        def act(uow: UnitOfWork) -> Return:
            found = uow.get(return_id, Return)
            if found is None:
                raise ReturnNotFound(return_id)
            record = uow.get(order_key(found.order_id), OrderRecord)
            assert record is not None  # a return exists only for a known order
            received = [self._with_warehouse(record, line) for line in lines]
            due = self._refund(found, record, received)
            if refund is not None and refund > due:
                raise RuleBroken("refund", f"more than the {due} the standard pays for these lines")
            paid_back = due if refund is None else refund
            if found.status == "authorized" and paid_back > record.refundable():
                raise Refused(
                    f"a refund of {paid_back} is more than the {record.refundable()} left to "
                    f"refund on order {found.order_id}; receive it with a refund of at most that"
                )
            now = self.clock.now()
            if found.receive(received, paid_back, now):
                record.owe(str(found.id), paid_back)
                if found.replacement is not None:
                    record.replacement(found.replacement, found.ticket)
                ticket = uow.get(UUID(found.ticket), Ticket)
                if ticket is not None and ticket.status != "resolved":
                    kept = ", ".join(
                        f"{ln['qty']}x {ln['sku']} {ln['condition']}" for ln in received
                    )
                    text = f"Return {return_id} received ({kept}); refund {found.refund_amount}."
                    ticket.note(f"return:{return_id}:received", text, now)
            return found

        return self.command(act)

    def _with_warehouse(self, record: OrderRecord, line: dict[str, Any]) -> dict[str, Any]:
        warehouse = line.get("warehouse") or record.warehouses.get(line["sku"])
        if not warehouse:
            raise RuleBroken("lines.warehouse", f"{line['sku']}: say which warehouse received it")
        return {**line, "warehouse": warehouse}

    def _refund(self, found: Return, record: OrderRecord, lines: list[dict[str, Any]]) -> Decimal:
        standard = self.rules.standard_for(found.reason)
        if not standard.refund or found.resolution != "refund":
            return Decimal("0.00")
        paid_for: dict[str, int] = {}
        for ln in lines:
            if ln["condition"] == "resellable" or standard.refund_damaged:
                paid_for[ln["sku"]] = paid_for.get(ln["sku"], 0) + ln["qty"]
        return record.price_of(paid_for)

    # -- reads -------------------------------------------------------------------------------

    def get_ticket(self, ticket: UUID) -> Ticket:
        found = self.find(ticket, Ticket, fresh=True)
        if found is None:
            raise TicketNotFound(ticket)
        return found  # type: ignore[no-any-return]

    def get_return(self, found: UUID) -> Return:
        ret = self.find(found, Return, fresh=True)
        if ret is None:
            raise ReturnNotFound(found)
        return ret  # type: ignore[no-any-return]

    def customer(self, customer: str) -> Customer | None:
        return self.find(customer_key(customer), Customer, fresh=True)  # type: ignore[no-any-return]

    def order_history(self, customer: str, last: int = 20) -> list[dict[str, Any]]:
        """The customer's latest orders as the desk knows them: placed, total, status,
        carrier and tracking, delivered."""
        known = self.customer(customer)
        if known is None:
            return []
        rows = known.history()[-last:]
        for row in rows:
            record = self.find(order_key(row["order_id"]), OrderRecord)
            if record is not None:
                row |= {
                    "status": record.status,
                    "carrier": record.carrier,
                    "tracking_number": record.tracking_number,
                    "delivered_at": record.delivered_at.isoformat()
                    if record.delivered_at
                    else None,
                    "refunded": record.refunded,
                }
        return rows

    def timeline(self, ticket: UUID) -> list[dict[str, Any]]:
        """Every step of the ticket's story, in order."""
        steps = []
        for e in self.events.get(ticket):
            state = {
                k: v
                for k, v in e.__dict__.items()
                if k not in ("originator_id", "originator_version", "timestamp")
            }
            steps.append({"event": type(e).__name__, **state})
        return steps

    # -- helpers ------------------------------------------------------------------------------

    def command(self, act: Callable[[UnitOfWork], T], attempts: int = 8) -> T:
        return command(self, act, attempts)

    def _existing(self, uow: UnitOfWork, ticket: UUID) -> Ticket:
        found = uow.get(ticket, Ticket)
        if found is None:
            raise TicketNotFound(ticket)
        return found

    def _ticket(self, uow: UnitOfWork, ticket: UUID) -> Ticket:
        found = uow.get(ticket, Ticket)
        assert found is not None, f"thread names ticket {ticket}, which is not stored"
        return found

    def _thread(
        self,
        uow: UnitOfWork,
        customer: str,
        order_id: str | None,
        kind: str,
        likely_new: bool = False,
    ) -> Thread:
        found = _load(uow, thread_id(customer, order_id, kind), Thread, likely_new)
        if found is None:
            found = Thread(customer, order_id, kind)
            uow.add(found)
        return found

    def _customer(self, uow: UnitOfWork, customer: str) -> Customer:
        found = uow.get(customer_key(customer), Customer)
        if found is None:
            found = Customer(customer)
            uow.add(found)
        return found

    def _order_record(
        self, uow: UnitOfWork, order_id: str, likely_new: bool = False
    ) -> OrderRecord:
        found = _load(uow, order_key(order_id), OrderRecord, likely_new)
        if found is None:
            found = OrderRecord(order_id)
            uow.add(found)
        return found


A = TypeVar("A", bound=Aggregate)


def _load(uow: UnitOfWork, aggregate_id: UUID, kind: type[A], likely_new: bool) -> A | None:
    """`likely_new`: the message normally creates it (an order's placement, a thread's
    first event), so the first try does not look (`UnitOfWork.get_new`); if it exists
    after all, the save conflicts and the careful retry finds it."""
    found = uow.get_new(aggregate_id) if likely_new else uow.get(aggregate_id, kind)
    return found if found is None or isinstance(found, kind) else None
