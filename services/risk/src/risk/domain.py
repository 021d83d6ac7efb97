"""Risk's aggregates: the case of each order (what risk knows of it, its assessments,
and the exception an operator works), the customer's history, and blacklist entries.
Pure: no I/O; ids derive from their cause (uuid5), so a replay finds the same ones."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from shopfloor_runtime.aggregates import CheapCopy
from shopfloor_runtime.errors import DomainError

from risk.assess import Facts
from risk.rules import RiskRules

NAMESPACE = uuid5(NAMESPACE_URL, "urn:shopfloor:risk")
DIMENSIONS = ("customer", "address", "device")
#: exception statuses: none (never flagged), open, released, cancelled, closed
WORKED = ("released", "cancelled", "closed")


def case_id(order_id: str) -> UUID:
    return uuid5(NAMESPACE, f"case:{order_id}")


def customer_id_of(customer: str) -> UUID:
    return uuid5(NAMESPACE, f"customer:{customer}")


def entry_id(kind: str, value: str) -> UUID:
    return uuid5(NAMESPACE, f"blacklist:{kind}:{value}")


class CaseNotFound(DomainError):
    def __init__(self, case: UUID | str) -> None:
        super().__init__(f"exception {case} not found")


class EntryNotFound(DomainError):
    def __init__(self, entry: UUID | str) -> None:
        super().__init__(f"blacklist entry {entry} not found")


class Refused(DomainError):
    """A step the exception is not in a state for (HTTP 409)."""


# -- the case of one order --------------------------------------------------------------


class Case(CheapCopy, Aggregate):
    """Copied by rule: every container is replaced by its events, never changed in place."""

    @staticmethod
    def create_id(order_id: str) -> UUID:
        return case_id(order_id)

    @event("Opened")
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.placed: dict[str, Any] | None = None
        self.address: dict[str, Any] | None = None
        self.payments: list[list[str]] = []  # [reason, detail, reference]
        self.velocity: dict[str, dict[str, Any]] = {}
        self.shortage: list[str] = []
        self.confirmed_at: datetime | None = None
        self.shipped = False
        self.cancelled = False
        self.not_shipped_since: datetime | None = None
        # assessments and the exception
        self.assessments = 0
        self.reasons: list[dict[str, Any]] = []
        self.hold = False
        self.status = "none"
        self.queue: str | None = None
        self.opened_at: datetime | None = None
        self.released_rules: list[str] = []
        self.history: list[dict[str, Any]] = []  # operator actions, oldest first

    # -- facts ------------------------------------------------------------------------

    def record_placed(self, **placed: Any) -> None:
        if self.placed is None:
            self._placed(placed=placed)

    @event("Placed")
    def _placed(self, placed: dict[str, Any]) -> None:
        self.placed = placed

    def record_address(self, address: dict[str, Any]) -> None:
        if self.address is None:
            self._address_recorded(address=address)

    @event("AddressRecorded")
    def _address_recorded(self, address: dict[str, Any]) -> None:
        self.address = address

    def record_payment_rejected(self, why: str, detail: str, reference: str) -> None:
        if not any(p[2] == reference and p[0] == why for p in self.payments):
            self._payment_rejected(why=why, detail=detail, reference=reference)

    @event("PaymentRejected")
    def _payment_rejected(self, why: str, detail: str, reference: str) -> None:
        self.payments = [*self.payments, [why, detail, reference]]

    def record_velocity(self, dimension: str, seen: dict[str, Any]) -> bool:
        """The stream processor's count for one dimension; the same count again (a
        repeat) changes nothing, and neither does a smaller one (a telling delayed past a
        later one: an order's window only ever gains orders, as late ones arrive)."""
        known = self.velocity.get(dimension)
        if known == seen or (known is not None and seen["count"] < known["count"]):
            return False
        self._velocity_observed(dimension=dimension, seen=seen)
        return True

    @event("VelocityObserved")
    def _velocity_observed(self, dimension: str, seen: dict[str, Any]) -> None:
        self.velocity = {**self.velocity, dimension: seen}

    def record_shortage(self, lines: list[str]) -> None:
        if not self.shortage:
            self._short(lines=lines)

    @event("ShortageReported")
    def _short(self, lines: list[str]) -> None:
        self.shortage = list(lines)

    def record_confirmed(self, at: datetime) -> None:
        if self.confirmed_at is None:
            self._confirmed(at=at)

    @event("Confirmed")
    def _confirmed(self, at: datetime) -> None:
        self.confirmed_at = at

    def record_shipped(self) -> None:
        if not self.shipped:
            self._shipped()

    @event("Shipped")
    def _shipped(self) -> None:
        self.shipped = True

    def record_cancelled(self) -> None:
        if not self.cancelled:
            self._cancelled()

    @event("Cancelled")
    def _cancelled(self) -> None:
        self.cancelled, self.hold = True, False

    def flag_not_shipped(self, now: datetime, after_s: float) -> bool:
        """Fired once: confirmed, not shipped nor cancelled, and `after_s` gone by."""
        if self.not_shipped_since is not None or self.shipped or self.cancelled:
            return False
        if self.confirmed_at is None or (now - self.confirmed_at).total_seconds() < after_s:
            return False
        self._not_shipped(at=now)
        return True

    @event("NotShipped")
    def _not_shipped(self, at: datetime) -> None:
        self.not_shipped_since = at

    # -- assessing ----------------------------------------------------------------------

    @property
    def expected_dimensions(self) -> list[str]:
        if self.placed is None:
            return []
        keys = {
            "customer": self.placed.get("customer_id"),
            "address": self.placed.get("fingerprint"),
            "device": self.placed.get("device_id"),
        }
        return [d for d in DIMENSIONS if keys[d]]

    def ready(self, now: datetime, velocity_wait_s: float, address_wait_s: float) -> bool:
        """First assessed once placement and address are known, and the counts of every
        window or `velocity_wait_s` after placement without them (0: at once; a stalled
        stream processor delays no order for long; a late count assesses it again). An
        address that does not come within `address_wait_s` is assessed without (the
        order is never left unassessed); when it comes, the order is assessed again."""
        if self.placed is None:
            return False
        seen_at = datetime.fromisoformat(self.placed["seen_at"])
        waited = (now - seen_at).total_seconds()
        if self.address is None:
            return bool(self.assessments) or waited >= address_wait_s
        if self.assessments or all(d in self.velocity for d in self.expected_dimensions):
            return True
        return waited >= velocity_wait_s

    def facts(self, history: tuple[int, Decimal], blacklisted: dict[str, str]) -> Facts:
        assert self.placed is not None
        return Facts(
            customer_id=self.placed["customer_id"],
            total=Decimal(self.placed["total"]),
            fingerprint=self.placed.get("fingerprint"),
            device_id=self.placed.get("device_id"),
            address=self.address,
            payments=tuple((p[0], p[1]) for p in self.payments),
            velocity=self.velocity,
            history=history,
            blacklisted=blacklisted,
            shortage=tuple(self.shortage),
            not_shipped_since=self.not_shipped_since,
        )

    def assess(self, reasons: list[dict[str, Any]], rules: RiskRules, now: datetime) -> bool:
        """Record an assessment if the picture changed; returns whether it did. A serious
        reason holds the order, unless an operator released it with that reason already
        (a new serious reason holds it again); a shipped or cancelled order is not held.
        An open exception left without reasons closes (and lets its order go)."""
        serious = sorted({r["rule"] for r in reasons if r["level"] == "serious"})
        hold = (
            bool(set(serious) - set(self.released_rules))
            and not self.shipped
            and not self.cancelled
            and self.status != "cancelled"
        )
        if self.assessments and reasons == self.reasons and hold == self.hold:
            return False
        level = "serious" if serious else ("ordinary" if reasons else None)
        status, queue, opened_at = self.status, self.queue, self.opened_at
        fresh = {r["rule"] for r in reasons} - {r["rule"] for r in self.reasons}
        fresh -= set(self.released_rules)  # seen when it was released: not new
        if (reasons and status in ("none", "closed")) or (
            status == "released" and (hold or fresh)  # a reason the operator has not seen
        ):
            status, opened_at = "open", now
        if not reasons and status == "open":
            status = "closed"  # nothing left to look at (looser rules, say): off the queue
        if reasons and queue != "specialist":
            queue = "specialist" if serious else "front_line"
        assert self.placed is not None
        self._assessed(
            order_id=self.order_id,
            customer_id=self.placed["customer_id"],
            assessment=self.assessments + 1,
            reasons=reasons,
            level=level,
            hold=hold,
            status=status,
            queue=queue,
            opened_at=opened_at,
            at=now,
        )
        return True

    @event("Assessed")
    def _assessed(
        self,
        order_id: str,
        customer_id: str,
        assessment: int,
        reasons: list[dict[str, Any]],
        level: str | None,
        hold: bool,
        status: str,
        queue: str | None,
        opened_at: datetime | None,
        at: datetime,
    ) -> None:
        if self.status == "open" and status == "closed":  # closed by the rules, not by hand
            entry = {"action": "closed", "operator": "risk", "comment": "no reasons left", "at": at}
            self.history = [*self.history, entry]
        self.assessments, self.reasons, self.hold = assessment, reasons, hold
        self.status, self.queue, self.opened_at = status, queue, opened_at

    @property
    def level(self) -> str | None:
        if not self.reasons:
            return None
        return "serious" if any(r["level"] == "serious" for r in self.reasons) else "ordinary"

    # -- the exception, worked by operators -----------------------------------------------

    def escalate(self, reason: str, now: datetime) -> bool:
        if self.status != "open" or self.queue != "front_line":
            return False
        self._escalated(
            order_id=self.order_id,
            from_queue="front_line",
            to_queue="specialist",
            reason=reason,
            at=now,
        )
        return True

    @event("Escalated")
    def _escalated(
        self, order_id: str, from_queue: str, to_queue: str, reason: str, at: datetime
    ) -> None:
        self.queue = to_queue
        self.history = [*self.history, {"action": "escalated", "reason": reason, "at": at}]

    def release(self, operator: str, comment: str, now: datetime) -> None:
        self._check_open("release")
        if not self.hold:
            raise Refused("the order is not held: close the exception instead")
        # every reason the operator saw: the serious ones hold no more, and none of them
        # opens the exception again (a new one does)
        rules = sorted({r["rule"] for r in self.reasons})
        self._released(
            order_id=self.order_id, operator=operator, comment=comment, rules=rules, at=now
        )

    @event("Released")
    def _released(
        self, order_id: str, operator: str, comment: str, rules: list[str], at: datetime
    ) -> None:
        self.status, self.hold = "released", False
        self.released_rules = sorted({*self.released_rules, *rules})
        self.history = [
            *self.history,
            {"action": "released", "operator": operator, "comment": comment, "at": at},
        ]

    def cancel(self, operator: str, comment: str, fraud: bool, now: datetime) -> None:
        self._check_open("cancel")
        if self.shipped:
            raise Refused("the order is shipped: it can no longer be cancelled")
        self._cancel_requested(
            order_id=self.order_id, operator=operator, comment=comment, fraud=fraud, at=now
        )

    @event("CancelRequested")
    def _cancel_requested(
        self, order_id: str, operator: str, comment: str, fraud: bool, at: datetime
    ) -> None:
        self.status, self.hold = "cancelled", False
        self.history = [
            *self.history,
            {
                "action": "cancelled",
                "operator": operator,
                "comment": comment,
                "fraud": fraud,
                "at": at,
            },
        ]

    def close(self, operator: str, comment: str, now: datetime) -> None:
        self._check_open("close")
        if self.hold:
            raise Refused("the order is held: release or cancel it")
        self._closed(order_id=self.order_id, operator=operator, comment=comment, at=now)

    @event("Closed")
    def _closed(self, order_id: str, operator: str, comment: str, at: datetime) -> None:
        self.status = "closed"
        self.history = [
            *self.history,
            {"action": "closed", "operator": operator, "comment": comment, "at": at},
        ]

    def _check_open(self, step: str) -> None:
        if self.status != "open":
            state = "was never flagged" if self.status == "none" else f"is {self.status}"
            raise Refused(f"cannot {step}: the exception {state}")


# -- the customer's history -----------------------------------------------------------------


class Customer(CheapCopy, Aggregate):
    """A customer's orders (placed time and total) and fraud cancellations."""

    @staticmethod
    def create_id(customer: str) -> UUID:
        return customer_id_of(customer)

    @event("Registered")
    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.orders: dict[str, list[str]] = {}  # order id -> [placed_at iso, total]
        self.fraud: list[str] = []  # orders cancelled for fraud

    def placed(self, order_id: str, placed_at: datetime, total: Decimal) -> None:
        if order_id not in self.orders:
            self._order_placed(order_id=order_id, placed_at=placed_at, total=str(total))

    @event("OrderPlaced")
    def _order_placed(self, order_id: str, placed_at: datetime, total: str) -> None:
        self.orders = {**self.orders, order_id: [placed_at.isoformat(), total]}

    def history_before(self, order_id: str) -> tuple[int, Decimal]:
        """Orders placed before this one (by placing time, then id), and their average
        total: the same answer whichever order the events arrived in. Orders cancelled
        for fraud are no history to compare with (large ones would raise the average)."""
        mine = self.orders.get(order_id)
        if mine is None:
            return 0, Decimal(0)
        before = [
            Decimal(total)
            for other, (at, total) in self.orders.items()
            if (at, other) < (mine[0], order_id) and other not in self.fraud
        ]
        if not before:
            return 0, Decimal(0)
        average = sum(before, Decimal(0)) / len(before)
        return len(before), average.quantize(Decimal("0.01"))

    def cancelled_for_fraud(self, order_id: str) -> int:
        if order_id not in self.fraud:
            self._fraud(order_id=order_id)
        return len(self.fraud)

    @event("FraudCancelled")
    def _fraud(self, order_id: str) -> None:
        self.fraud = [*self.fraud, order_id]


# -- the blacklist --------------------------------------------------------------------------


class BlacklistEntry(CheapCopy, Aggregate):
    @staticmethod
    def create_id(kind: str, value: str) -> UUID:
        return entry_id(kind, value)

    @event("Added")
    def __init__(
        self, kind: str, value: str, reason: str, added_by: str, automatic: bool, at: datetime
    ) -> None:
        self.kind, self.value = kind, value
        self.reason, self.added_by, self.automatic, self.added_at = reason, added_by, automatic, at
        self.active = True
        self.removed: dict[str, Any] | None = None

    def add_again(self, reason: str, added_by: str, automatic: bool, at: datetime) -> bool:
        if self.active:
            return False
        self._readded(
            kind=self.kind,
            value=self.value,
            reason=reason,
            added_by=added_by,
            automatic=automatic,
            at=at,
        )
        return True

    @event("Readded")
    def _readded(
        self, kind: str, value: str, reason: str, added_by: str, automatic: bool, at: datetime
    ) -> None:
        self.reason, self.added_by, self.automatic, self.added_at = reason, added_by, automatic, at
        self.active, self.removed = True, None

    def remove(self, removed_by: str, reason: str, at: datetime) -> None:
        if not self.active:
            raise Refused(f"blacklist entry {self.id} was removed already")
        self._removed(kind=self.kind, value=self.value, removed_by=removed_by, reason=reason, at=at)

    @event("Removed")
    def _removed(self, kind: str, value: str, removed_by: str, reason: str, at: datetime) -> None:
        self.active = False
        self.removed = {"by": removed_by, "reason": reason, "at": at}
