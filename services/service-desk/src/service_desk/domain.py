"""The service desk's aggregates: tickets (messages, SLA deadlines, levels), threads (the
one open ticket per customer, order and type, and the events already turned into
tickets), what the desk knows of each order and customer (for tiers, templates and
returns), and returns. Pure: no I/O; ids derive from their cause (uuid5), times come in
as arguments, so a replay finds the same state."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from shopfloor_runtime.aggregates import CheapCopy
from shopfloor_runtime.errors import DomainError, RuleBroken

from service_desk.rules import LEVELS, DeskRules

NAMESPACE = uuid5(NAMESPACE_URL, "urn:shopfloor:service-desk")
OPEN, WAITING, RESOLVED = "open", "waiting_customer", "resolved"
#: an order's statuses in the order they come; cancelled can follow any open one
STATUS_RANK = {
    "unknown": 0,
    "awaiting_payment": 1,
    "paid": 2,
    "confirmed": 3,
    "shipped": 4,
    "delivered": 5,
    "completed": 6,
    "cancelled": 7,
}


def thread_id(customer: str, order_id: str | None, kind: str) -> UUID:
    return uuid5(NAMESPACE, f"thread:{customer}:{order_id or '-'}:{kind}")


def ticket_id_for(thread: UUID, n: int) -> UUID:
    return uuid5(NAMESPACE, f"ticket:{thread}:{n}")


def customer_key(customer: str) -> UUID:
    return uuid5(NAMESPACE, f"customer:{customer}")


def order_key(order_id: str) -> UUID:
    return uuid5(NAMESPACE, f"order:{order_id}")


def replacement_id(return_id: UUID) -> str:
    return str(uuid5(NAMESPACE, f"replacement:{return_id}"))


class TicketNotFound(DomainError):
    def __init__(self, ticket: UUID | str) -> None:
        super().__init__(f"ticket {ticket} not found")


class ReturnNotFound(DomainError):
    def __init__(self, found: UUID | str) -> None:
        super().__init__(f"return {found} not found")


class OrderUnknown(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} is not known to the service desk")


class Refused(DomainError):
    """A step the ticket or return is not in a state for (HTTP 409)."""


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


# -- tickets ------------------------------------------------------------------------------


class Ticket(CheapCopy, Aggregate):
    """Copied by rule: `messages` and `seen` are replaced by their events, never changed
    in place. Deadlines: the first response is due by `first_response_due` until an
    agent answers; resolution by `resolution_due`, pushed back by the time spent waiting
    for the customer. Each missed deadline escalates one level, once."""

    @staticmethod
    def create_id(ticket: UUID) -> UUID:
        return ticket

    @event("Opened")
    def __init__(
        self,
        *,
        ticket: UUID,
        thread: UUID,
        channel: str,
        kind: str,
        customer_id: str,
        order_id: str | None,
        tier: str,
        queue: str,
        route: str,
        subject: str,
        source: str | None,
        first_response_due: datetime,
        resolution_due: datetime,
        at: datetime,
    ) -> None:
        self.thread, self.channel, self.kind = str(thread), channel, kind
        self.customer_id, self.order_id, self.tier = customer_id, order_id, tier
        self.level: str = LEVELS[0]
        self.queue, self.route = queue, route
        self.subject, self.source = subject, source
        self.first_response_due, self.resolution_due = first_response_due, resolution_due
        self.opened_at = at
        self.status = OPEN
        self.messages: list[dict[str, Any]] = []
        self.seen: list[str] = []  # message ids and event sources taken in already
        self.answered_at: datetime | None = None
        self.first_agent: str | None = None
        self.first_missed = self.resolution_missed = False
        self.paused_at: datetime | None = None
        self.paused_s = 0.0
        self.specialist: str | None = None
        self.resolved_at: datetime | None = None
        self.resolved_by: str | None = None
        self.rating: int | None = None

    # -- messages ------------------------------------------------------------------------

    def customer_wrote(self, message_id: str | None, body: str, at: datetime) -> bool:
        """The customer writes (a new contact threaded in, or a reply); a ticket waiting
        for them resumes, its resolution deadline pushed back by the wait. False if this
        message id was taken in already."""
        self._writable()
        if message_id is not None and message_id in self.seen:
            return False
        waited = max((at - self.paused_at).total_seconds(), 0.0) if self.paused_at else 0.0
        due = self.resolution_due + timedelta(seconds=waited)
        self._customer_wrote(
            message_id=message_id, body=body, waited_s=waited, resolution_due=due, at=at
        )
        return True

    def contacted_through(self, channel: str, due: datetime, at: datetime) -> bool:
        """The customer's own contact on `channel` threaded into this ticket (one the
        system opened from an event, say): until the first answer, the first response is
        owed by that channel's target when it is sooner. False if nothing changes."""
        if self.status == RESOLVED or self.answered_at is not None or self.first_missed:
            return False
        if due >= self.first_response_due:
            return False
        self._first_response_moved(channel=channel, due=due, at=at)
        return True

    @event("FirstResponseMoved")
    def _first_response_moved(self, channel: str, due: datetime, at: datetime) -> None:
        self.first_response_due = due

    @event("CustomerWrote")
    def _customer_wrote(
        self,
        message_id: str | None,
        body: str,
        waited_s: float,
        resolution_due: datetime,
        at: datetime,
    ) -> None:
        self.messages = [*self.messages, {"author": "customer", "body": body, "at": at}]
        if message_id is not None:
            self.seen = [*self.seen, message_id]
        if self.status == WAITING:
            self.status, self.paused_at = OPEN, None
            self.paused_s += waited_s
        self.resolution_due = resolution_due

    def agent_replied(
        self,
        message_id: str | None,
        agent: str,
        body: str,
        template: str | None,
        waiting: bool,
        at: datetime,
    ) -> bool:
        """An agent answers; the first answer stops the first-response timer. `waiting`:
        the ball is in the customer's court, the resolution timer pauses. A first answer
        after the target is a missed deadline even if the timer has not ticked since (it
        counts as a breach; the answered ticket is not escalated)."""
        self._writable()
        if message_id is not None and message_id in self.seen:
            return False
        first = self.answered_at is None
        if first and not self.first_missed and at > self.first_response_due:
            self._first_missed(due=self.first_response_due, at=at)
        elapsed = max((at - self.opened_at).total_seconds(), 0.0)
        self._agent_replied(
            message_id=message_id,
            agent=agent,
            body=body,
            template=template,
            waiting=waiting,
            first=first,
            first_response_s=elapsed if first else None,
            breached=first and (self.first_missed or at > self.first_response_due),
            at=at,
        )
        return True

    @event("AgentReplied")
    def _agent_replied(
        self,
        message_id: str | None,
        agent: str,
        body: str,
        template: str | None,
        waiting: bool,
        first: bool,
        first_response_s: float | None,
        breached: bool,
        at: datetime,
    ) -> None:
        message = {"author": "agent", "agent": agent, "body": body, "at": at}
        if template:
            message["template"] = template
        self.messages = [*self.messages, message]
        if message_id is not None:
            self.seen = [*self.seen, message_id]
        if first:
            self.answered_at, self.first_agent = at, agent
        if waiting and self.status == OPEN:
            self.status, self.paused_at = WAITING, at

    def note(self, source: str, text: str, at: datetime) -> bool:
        """What happened, from another service's event, on a ticket open already."""
        self._writable()
        if source in self.seen:
            return False
        self._noted(source=source, text=text, at=at)
        return True

    @event("Noted")
    def _noted(self, source: str, text: str, at: datetime) -> None:
        self.messages = [*self.messages, {"author": "system", "body": text, "at": at}]
        self.seen = [*self.seen, source]

    def _writable(self) -> None:
        if self.status == RESOLVED:
            raise Refused(f"ticket {self.id} is resolved")

    # -- escalation and routing --------------------------------------------------------------

    def escalate(
        self, reason: str, automatic: bool, by: str, rules: DeskRules, at: datetime
    ) -> None:
        if self.status == RESOLVED:
            raise Refused(f"ticket {self.id} is resolved")
        step = LEVELS.index(self.level)  # type: ignore[arg-type]  # a Level by its events
        if step + 1 >= len(LEVELS):
            raise Refused(f"ticket {self.id} is at the last level ({self.level}) already")
        to = LEVELS[step + 1]
        extreme = to == LEVELS[-1]
        queue = "specialists" if extreme else rules.escalation.difficult_queue
        specialist = rules.escalation.specialist(self.kind) if extreme else None
        self._escalated(
            from_level=self.level,
            to_level=to,
            queue=queue,
            specialist=specialist,
            reason=reason,
            automatic=automatic,
            by=by,
            at=at,
        )

    @event("Escalated")
    def _escalated(
        self,
        from_level: str,
        to_level: str,
        queue: str,
        specialist: str | None,
        reason: str,
        automatic: bool,
        by: str,
        at: datetime,
    ) -> None:
        self.level, self.queue, self.specialist = to_level, queue, specialist

    def reroute(self, queue: str, reason: str, by: str, at: datetime) -> None:
        if self.status == RESOLVED:
            raise Refused(f"ticket {self.id} is resolved")
        if queue != self.queue:
            self._routed(queue=queue, rule=f"{by}: {reason}", at=at)

    @event("Routed")
    def _routed(self, queue: str, rule: str, at: datetime) -> None:
        self.queue, self.route = queue, rule

    def miss_deadlines(self, rules: DeskRules, now: datetime) -> int:
        """Every deadline passed and not yet missed is missed now, once, each escalating
        one level (as far as the last). How many were missed."""
        missed = 0
        if self.status == RESOLVED:
            return 0
        if self.answered_at is None and not self.first_missed and now >= self.first_response_due:
            self._first_missed(due=self.first_response_due, at=now)
            missed += 1
            self._escalate_missed("first response", self.first_response_due, rules, now)
        if self.status == OPEN and not self.resolution_missed and now >= self.resolution_due:
            self._resolution_missed(due=self.resolution_due, at=now)
            missed += 1
            self._escalate_missed("resolution", self.resolution_due, rules, now)
        return missed

    def _escalate_missed(self, what: str, due: datetime, rules: DeskRules, now: datetime) -> None:
        if self.level != LEVELS[-1]:
            reason = f"{what} SLA missed (due {due.isoformat(timespec='seconds')})"
            self.escalate(reason, True, "sla", rules, now)

    @event("FirstResponseMissed")
    def _first_missed(self, due: datetime, at: datetime) -> None:
        self.first_missed = True

    @event("ResolutionMissed")
    def _resolution_missed(self, due: datetime, at: datetime) -> None:
        self.resolution_missed = True

    def next_due(self) -> datetime | None:
        """The next deadline that can still be missed, if any."""
        due = []
        if self.status != RESOLVED and self.answered_at is None and not self.first_missed:
            due.append(self.first_response_due)
        if self.status == OPEN and not self.resolution_missed:
            due.append(self.resolution_due)
        return min(due) if due else None

    # -- resolution and rating --------------------------------------------------------------

    def resolve(self, agent: str, note: str, at: datetime) -> None:
        """Resolved. Later than the target (pushed back by a wait for the customer
        still going on) is a missed deadline even if the timer has not ticked since."""
        if self.status == RESOLVED:
            raise Refused(f"ticket {self.id} is resolved already")
        waiting = max((at - self.paused_at).total_seconds(), 0.0) if self.paused_at else 0.0
        spent = (at - self.opened_at).total_seconds() - self.paused_s - waiting
        due = self.resolution_due + timedelta(seconds=waiting)
        if not self.resolution_missed and at > due:
            self._resolution_missed(due=due, at=at)
        self._resolved(
            agent=agent,
            note=note,
            resolution_s=max(spent, 0.0),
            breached=self.breached,
            at=at,
        )

    @event("Resolved")
    def _resolved(
        self, agent: str, note: str, resolution_s: float, breached: bool, at: datetime
    ) -> None:
        self.status, self.resolved_at, self.resolved_by, self.paused_at = RESOLVED, at, agent, None

    def rate(self, score: int, at: datetime) -> None:
        if self.rating is not None:
            raise Refused(f"ticket {self.id} is rated already ({self.rating})")
        if not 1 <= score <= 5:
            raise RuleBroken("score", "must be 1 to 5")
        self._rated(score=score, at=at)

    @event("Rated")
    def _rated(self, score: int, at: datetime) -> None:
        self.rating = score

    @property
    def breached(self) -> bool:
        return self.first_missed or self.resolution_missed


# -- threads -------------------------------------------------------------------------------


class Thread(CheapCopy, Aggregate):
    """One customer's contacts about one order and type: at most one open ticket, and
    the events already taken in (so a redelivered or re-published event opens nothing
    twice, even after its ticket was resolved)."""

    @staticmethod
    def create_id(customer: str, order_id: str | None, kind: str) -> UUID:
        return thread_id(customer, order_id, kind)

    @event("Started")
    def __init__(self, customer: str, order_id: str | None, kind: str) -> None:
        self.customer, self.order_id, self.kind = customer, order_id, kind
        self.open_ticket: str | None = None
        self.tickets = 0
        self.sources: list[str] = []

    def next_ticket(self) -> UUID:
        return ticket_id_for(self.id, self.tickets + 1)

    def opened(self, ticket: UUID) -> None:
        self._opened(ticket=str(ticket))

    @event("TicketOpened")
    def _opened(self, ticket: str) -> None:
        self.open_ticket, self.tickets = ticket, self.tickets + 1

    def closed(self, ticket: UUID) -> None:
        if self.open_ticket == str(ticket):
            self._closed(ticket=str(ticket))

    @event("TicketClosed")
    def _closed(self, ticket: str) -> None:
        self.open_ticket = None

    def take_in(self, source: str) -> bool:
        """Remember an event turned into a ticket or note; False if it was already."""
        if source in self.sources:
            return False
        self._took_in(source=source)
        return True

    @event("TookIn")
    def _took_in(self, source: str) -> None:
        self.sources = [*self.sources, source]


# -- what the desk knows of customers and orders ------------------------------------------


class Customer(CheapCopy, Aggregate):
    """The customer's orders: when, how much, whether paid (for the tier)."""

    @staticmethod
    def create_id(customer: str) -> UUID:
        return customer_key(customer)

    @event("Registered")
    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.orders: dict[str, list[Any]] = {}  # order id -> [placed_at, total, paid]
        self.refunds: dict[str, str] = {}  # order id -> refunded so far

    def placed(self, order_id: str, at: datetime, total: Decimal) -> None:
        if order_id not in self.orders:
            self._placed(order_id=order_id, at=at, total=str(total))

    @event("OrderPlaced")
    def _placed(self, order_id: str, at: datetime, total: str) -> None:
        self.orders = {**self.orders, order_id: [at, total, False]}

    def paid(self, order_id: str, paid: bool) -> None:
        known = self.orders.get(order_id)
        if known is not None and known[2] != paid:
            self._paid(order_id=order_id, paid=paid)

    @event("OrderPaid")
    def _paid(self, order_id: str, paid: bool) -> None:
        at, total, _ = self.orders[order_id]
        self.orders = {**self.orders, order_id: [at, total, paid]}

    def refunded(self, order_id: str, total: Decimal) -> None:
        """The order's refunds so far (all of them: `RefundIssued.refunded_total`)."""
        if order_id in self.orders and self.refunds.get(order_id) != str(total):
            self._refunded(order_id=order_id, total=str(total))

    @event("Refunded")
    def _refunded(self, order_id: str, total: str) -> None:
        self.refunds = {**self.refunds, order_id: total}

    def tier(self, rules: DeskRules, now: datetime) -> str:
        """vip: paid at least the VIP spend (or orders) over the window, less what was
        refunded; returning: has ordered more than once; new otherwise."""
        since = now - timedelta(days=rules.tiers.window_days)
        kept = [
            Decimal(t) - Decimal(self.refunds.get(order, "0"))
            for order, (at, t, ok) in self.orders.items()
            if ok and at >= since
        ]
        paid = [net for net in kept if net > 0]  # an order refunded in full is no order
        if paid and (sum(paid) >= rules.tiers.vip_spend or len(paid) >= rules.tiers.vip_orders):
            return "vip"
        return "returning" if len(self.orders) > 1 else "new"

    def history(self) -> list[dict[str, Any]]:
        return [
            {"order_id": o, "placed_at": at.isoformat(), "total": t, "paid": ok}
            for o, (at, t, ok) in sorted(self.orders.items(), key=lambda kv: kv[1][0])
        ]


class OrderRecord(CheapCopy, Aggregate):
    """One order as the desk needs it: its customer, lines and money (returns never
    refund more than was paid), its shipping (templates, the return window), and
    tickets from events that arrived before the order did."""

    @staticmethod
    def create_id(order_id: str) -> UUID:
        return order_key(order_id)

    @event("Started")
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.customer_id: str | None = None
        self.lines: dict[str, list[str | int]] = {}  # sku -> [qty, list unit price]
        self.share = "1"  # total / subtotal: what the order's discount leaves of a price
        self.pending: dict[str, str] = {}  # return id -> refund the order service owes
        self.total = self.paid = self.refunded = "0.00"
        self.status = "unknown"
        self.placed_at: datetime | None = None
        self.delivered_at: datetime | None = None
        self.promised_by: datetime | None = None  # fulfilment's promise at dispatch
        self.carrier: str | None = None
        self.tracking_number: str | None = None
        self.warehouses: dict[str, str] = {}  # sku -> warehouse it shipped from
        self.returned: dict[str, int] = {}  # sku -> units in authorised returns
        self.deferred: list[dict[str, Any]] = []  # tickets waiting for the placement
        self.replacements: dict[str, str] = {}  # replacement id -> its return's ticket

    def record_placed(
        self,
        customer_id: str,
        lines: dict[str, list[str | int]],
        total: Decimal,
        at: datetime,
        share: Decimal = Decimal(1),
    ) -> list[dict[str, Any]]:
        """The placement; returns the deferred tickets to open now."""
        if self.customer_id is not None:
            return []
        deferred = self.deferred
        self._placed(
            customer_id=customer_id, lines=lines, total=str(total), at=at, share=str(share)
        )
        return deferred

    @event("Placed")
    def _placed(
        self,
        customer_id: str,
        lines: dict[str, list[str | int]],
        total: str,
        at: datetime,
        share: str = "1",
    ) -> None:
        self.customer_id, self.lines, self.total, self.placed_at = customer_id, lines, total, at
        self.share = share
        self.status = "awaiting_payment" if self.status == "unknown" else self.status
        self.deferred = []

    def record_status(self, status: str) -> None:
        """Statuses only move forward: the topics interleave (a dispatch on
        fulfilment.v1 can arrive before the confirmation on orders.v1)."""
        if STATUS_RANK.get(status, 0) > STATUS_RANK.get(self.status, 0):
            self._status(status=status)

    @event("StatusChanged")
    def _status(self, status: str) -> None:
        self.status = status

    def record_paid(self, amount: Decimal) -> None:
        if _money(amount) != _money(self.paid):
            self._paid(amount=str(_money(amount)))

    @event("Paid")
    def _paid(self, amount: str) -> None:
        self.paid = amount

    def record_refunded(self, refunded_total: Decimal, refund_id: str = "") -> None:
        settled = refund_id.removeprefix("return:") if refund_id.startswith("return:") else None
        if _money(refunded_total) > _money(self.refunded) or settled in self.pending:
            self._refunded(refunded_total=str(_money(refunded_total)), settled=settled)

    @event("Refunded")
    def _refunded(self, refunded_total: str, settled: str | None = None) -> None:
        self.refunded = max(refunded_total, self.refunded, key=_money)
        if settled is not None:
            self.pending = {k: v for k, v in self.pending.items() if k != settled}

    def owe(self, return_id: str, amount: Decimal) -> None:
        """A received return's refund, until the order service says it issued (or
        refused) it: counted against what is left, so two receipts cannot both take it."""
        if amount > 0 and return_id not in self.pending:
            self._owed(return_id=return_id, amount=str(_money(amount)))

    @event("Owed")
    def _owed(self, return_id: str, amount: str) -> None:
        self.pending = {**self.pending, return_id: amount}

    def settle(self, return_id: str) -> None:
        if return_id in self.pending:
            self._settled(return_id=return_id)

    @event("Settled")
    def _settled(self, return_id: str) -> None:
        self.pending = {k: v for k, v in self.pending.items() if k != return_id}

    def record_shipped(
        self, carrier: str, tracking_number: str, warehouses: dict[str, str] | None = None
    ) -> None:
        known = {**self.warehouses, **(warehouses or {})}
        if (carrier, tracking_number, known) != (
            self.carrier,
            self.tracking_number,
            self.warehouses,
        ):
            self._shipped(carrier=carrier, tracking_number=tracking_number, warehouses=known)

    @event("Shipped")
    def _shipped(self, carrier: str, tracking_number: str, warehouses: dict[str, str]) -> None:
        self.carrier, self.tracking_number, self.warehouses = carrier, tracking_number, warehouses

    def record_promise(self, promised_by: datetime) -> None:
        if self.promised_by is None:
            self._promised(promised_by=promised_by)

    @event("Promised")
    def _promised(self, promised_by: datetime) -> None:
        self.promised_by = promised_by

    def record_delivered(self, at: datetime) -> None:
        if self.delivered_at is None:
            self._delivered(at=at)

    @event("Delivered")
    def _delivered(self, at: datetime) -> None:
        self.delivered_at = at
        if STATUS_RANK.get(self.status, 0) < STATUS_RANK["delivered"]:
            self.status = "delivered"

    def defer(self, ticket: dict[str, Any]) -> None:
        if all(d["source"] != ticket["source"] for d in self.deferred):
            self._deferred(ticket=ticket)

    @event("TicketDeferred")
    def _deferred(self, ticket: dict[str, Any]) -> None:
        self.deferred = [*self.deferred, ticket]

    def count_returned(self, lines: dict[str, int]) -> None:
        self._returned(lines=lines)

    @event("ReturnCounted")
    def _returned(self, lines: dict[str, int]) -> None:
        self.returned = {
            sku: self.returned.get(sku, 0) + lines.get(sku, 0) for sku in {*self.returned, *lines}
        }

    def replacement(self, replacement: str, ticket: str) -> None:
        if replacement not in self.replacements:
            self._replacement(replacement=replacement, ticket=ticket)

    @event("ReplacementRecorded")
    def _replacement(self, replacement: str, ticket: str) -> None:
        self.replacements = {**self.replacements, replacement: ticket}

    def price_of(self, lines: dict[str, int]) -> Decimal:
        """What these units were paid: list prices less the order's discount, rounded
        once (a whole order comes to its total, not a cent more)."""
        listed = sum((Decimal(str(self.lines[s][1])) * q for s, q in lines.items()), Decimal(0))
        return _money(listed * Decimal(self.share))

    def refundable(self) -> Decimal:
        owed = sum((Decimal(v) for v in self.pending.values()), Decimal(0))
        return _money(self.paid) - _money(self.refunded) - owed

    def facts(self) -> dict[str, str]:
        """What a reply template may fill in."""
        return {
            "order_id": self.order_id,
            "order_status": self.status.replace("_", " "),
            "carrier": self.carrier or "",
            "tracking_number": self.tracking_number or "",
        }


# -- returns ---------------------------------------------------------------------------------


def judge_return(
    record: OrderRecord, lines: dict[str, int], rules: DeskRules, now: datetime
) -> tuple[str, str] | None:
    """(rule, why) that refuses the return, or None: it may be authorised."""
    if record.delivered_at is None:
        return (
            "return.not_delivered",
            f"order {record.order_id} is not delivered (it is {record.status})",
        )
    closes = record.delivered_at + timedelta(days=rules.return_window_days)
    if now > closes:
        return (
            "return.window",
            f"the return window of {rules.return_window_days} days closed on "
            f"{closes.date().isoformat()} (delivered {record.delivered_at.date().isoformat()})",
        )
    for sku, qty in lines.items():
        bought = int(record.lines[sku][0])
        left = bought - record.returned.get(sku, 0)
        if qty > left:
            return (
                "return.quantity",
                f"{qty}x {sku} asked, {left} of {bought} can still be returned",
            )
    return None


class Return(CheapCopy, Aggregate):
    """A return request: authorised under a compensation standard or refused with the
    rule, then received (once) with each line's inspection result and the refund."""

    @staticmethod
    def create_id(return_id: UUID) -> UUID:
        return return_id

    @event("Requested")
    def __init__(
        self,
        *,
        return_id: UUID,
        order_id: str,
        ticket: str,
        customer_id: str,
        lines: dict[str, int],
        reason: str,
        photos: list[str],
        resolution: str,
        replacement_lines: dict[str, int],
        at: datetime,
    ) -> None:
        self.order_id, self.ticket, self.customer_id = order_id, ticket, customer_id
        self.lines, self.reason, self.photos = lines, reason, photos
        self.resolution = resolution  # refund, reship or exchange
        self.replacement_lines = replacement_lines
        self.requested_at = at
        self.status = "requested"
        self.standard: str | None = None
        self.offer: str | None = None
        self.refused: dict[str, str] | None = None
        self.received: list[dict[str, Any]] | None = None
        self.refund_amount: str | None = None
        self.replacement: str | None = None
        self.refund_refused: dict[str, str] | None = None  # the order service's answer

    # The later events repeat the order, ticket, lines and reason: each is published on
    # its own (translation.py), and a message must say which order and ticket it is about.

    def refused_refund(self, refundable: Decimal, reason: str, at: datetime) -> bool:
        if self.refund_refused is not None or self.status != "received":
            return False
        self._refund_refused(refundable=str(_money(refundable)), reason=reason, at=at)
        return True

    @event("RefundRefused")
    def _refund_refused(self, refundable: str, reason: str, at: datetime) -> None:
        self.refund_refused = {"refundable": refundable, "reason": reason}

    def authorize(self, standard: str, offer: str, at: datetime) -> None:
        self._authorized(**self._about(), standard=standard, offer=offer, at=at)

    @event("Authorized")
    def _authorized(
        self,
        order_id: str,
        ticket: str,
        lines: dict[str, int],
        reason: str,
        standard: str,
        offer: str,
        at: datetime,
    ) -> None:
        self.status, self.standard, self.offer = "authorized", standard, offer

    def refuse(self, rule: str, detail: str, at: datetime) -> None:
        self._refused(**self._about(), rule=rule, detail=detail, at=at)

    @event("Refused")
    def _refused(
        self,
        order_id: str,
        ticket: str,
        lines: dict[str, int],
        reason: str,
        rule: str,
        detail: str,
        at: datetime,
    ) -> None:
        self.status, self.refused = "refused", {"rule": rule, "detail": detail}

    def _about(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "ticket": self.ticket,
            "lines": self.lines,
            "reason": self.reason,
        }

    def receive(self, lines: list[dict[str, Any]], refund: Decimal, at: datetime) -> bool:
        """False if received already with the same lines (a retry); Refused otherwise."""
        if self.status == "received":
            if lines == self.received:
                return False
            raise Refused(f"return {self.id} was received already")
        if self.status != "authorized":
            raise Refused(f"return {self.id} is {self.status}, not authorised")
        got: dict[str, int] = {}
        for line in lines:
            got[line["sku"]] = got.get(line["sku"], 0) + line["qty"]
        for sku, qty in got.items():
            if qty > self.lines.get(sku, 0):
                raise RuleBroken(
                    "lines", f"{sku}: {qty} received, {self.lines.get(sku, 0)} authorised"
                )
        about = {"order_id": self.order_id, "ticket": self.ticket}
        self._received(**about, lines=lines, refund_amount=str(_money(refund)), at=at)
        if self.resolution != "refund":
            self._replacement_requested(
                **about,
                replacement=replacement_id(self.id),
                customer_id=self.customer_id,
                kind=self.resolution,
                lines=self.replacement_lines,
                at=at,
            )
        return True

    @event("ReplacementRequested")
    def _replacement_requested(
        self,
        order_id: str,
        ticket: str,
        replacement: str,
        customer_id: str,
        kind: str,
        lines: dict[str, int],
        at: datetime,
    ) -> None:
        self.replacement = replacement

    @event("Received")
    def _received(
        self,
        order_id: str,
        ticket: str,
        lines: list[dict[str, Any]],
        refund_amount: str,
        at: datetime,
    ) -> None:
        self.status, self.received, self.refund_amount = "received", lines, refund_amount
