"""Orders: the aggregate, its rules and its errors. Pure: no I/O, no contracts, no settings."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from shopfloor_runtime.aggregates import CheapCopy
from shopfloor_runtime.errors import DomainError, RuleBroken

CENT = Decimal("0.01")
#: The most an order may come to: what every consumer's money field holds (12 digits
#: before the point). A bigger one was stored, then could never be published.
MAX_TOTAL = Decimal("9999999999.99")
NAMESPACE = uuid5(NAMESPACE_URL, "urn:shopfloor:order")


def money(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# -- errors -------------------------------------------------------------------------


class InvalidOrder(RuleBroken):
    """Input that is well-formed but breaks an order rule (HTTP 422)."""


class OrderNotFound(DomainError):
    def __init__(self, order_id: UUID | str) -> None:
        super().__init__(f"order {order_id} not found")


class IllegalTransition(DomainError):
    def __init__(self, order_id: UUID, action: str, status: str) -> None:
        super().__init__(f"cannot {action} order {order_id}: it is {status}")
        self.status = status


class IdempotencyConflict(DomainError):
    pass


class PaymentRefused(DomainError):
    def __init__(self, reason: str, detail: str, field: str = "amount") -> None:
        super().__init__(detail)
        self.reason, self.detail, self.field = reason, detail, field


class PaymentConflict(PaymentRefused):
    """A payment the order's state refuses (cancelled, already paid)."""


_CONFLICTS = ("order_cancelled", "already_paid")


# -- rules given by configuration ---------------------------------------------------


@dataclass(frozen=True)
class Coupon:
    percent_off: int = 0
    amount_off: Decimal = Decimal(0)
    min_subtotal: Decimal = Decimal(0)
    channels: frozenset[str] = frozenset()  # empty: every channel


@dataclass(frozen=True)
class OrderRules:
    channels: frozenset[str]
    payment_methods: frozenset[str]
    coupons: dict[str, Coupon]
    required_checks: tuple[str, ...]
    payment_reminder_after: timedelta
    payment_timeout: timedelta
    duplicate_window: timedelta
    return_window: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    unit_price: Decimal


#: Fields added after orders were stored, with the value that means "not asked for":
#: left out of the text that request hashes and fingerprints are made from while they
#: hold it, so a request repeated across an upgrade hashes as it did before (an
#: Idempotency-Key retry still finds its order).
ADDED_LATER: dict[str, Any] = {
    "phone": None,
    "customer_email": None,
    "service_level": "standard",
    "device_id": None,
    "client_ip": None,
}


def _stable_repr(self: Any) -> str:
    shown = ", ".join(
        f"{f.name}={getattr(self, f.name)!r}"
        for f in fields(self)
        if f.name not in ADDED_LATER or getattr(self, f.name) != ADDED_LATER[f.name]
    )
    return f"{type(self).__qualname__}({shown})"


@dataclass(frozen=True, repr=False)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    phone: str | None = None  # for the carrier

    __repr__ = _stable_repr


@dataclass(frozen=True, repr=False)
class Placement:
    """A request to place an order, already shape-checked."""

    customer_id: str
    channel: str
    lines: tuple[Line, ...]
    address: Address
    currency: str = "EUR"
    coupon: str | None = None
    payment_method: str | None = None
    customer_email: str | None = None
    service_level: str = "standard"  # the delivery promise: "standard" or "express"
    device_id: str | None = None  # the shop's opaque device id, for risk's velocity rules
    client_ip: str | None = None  # the buyer's address as the shop saw it (personal data)

    __repr__ = _stable_repr

    def fingerprint(self) -> UUID:
        """Same customer, same lines, same address: the same fingerprint."""
        lines = sorted((ln.sku, ln.qty, str(money(ln.unit_price))) for ln in self.lines)
        return uuid5(NAMESPACE, repr((self.customer_id, lines, self.address)))

    def request_hash(self) -> str:
        return str(uuid5(NAMESPACE, repr(self)))


@dataclass(frozen=True)
class Pricing:
    subtotal: Decimal
    discount: Decimal
    total: Decimal


def price(placement: Placement, rules: OrderRules) -> Pricing:
    """Check the business rules of a placement and work out what it costs."""
    if placement.channel not in rules.channels:
        raise InvalidOrder(
            "channel",
            f"unknown channel {placement.channel!r}; expected one of {sorted(rules.channels)}",
        )
    if placement.payment_method and placement.payment_method not in rules.payment_methods:
        raise InvalidOrder(
            "payment_method",
            f"payment method {placement.payment_method!r} "
            f"is not available; expected one of {sorted(rules.payment_methods)}",
        )
    skus = [line.sku for line in placement.lines]
    if len(set(skus)) != len(skus):
        raise InvalidOrder("lines", "each sku may appear on one line only")
    subtotal = money(sum((line.unit_price * line.qty for line in placement.lines), Decimal(0)))
    if subtotal > MAX_TOTAL:
        raise InvalidOrder("lines", f"the order comes to {subtotal}, more than {MAX_TOTAL}")
    discount = _discount(placement, rules, subtotal)
    return Pricing(subtotal, discount, money(subtotal - discount))


def _discount(placement: Placement, rules: OrderRules, subtotal: Decimal) -> Decimal:
    if placement.coupon is None:
        return money(0)
    coupon = rules.coupons.get(placement.coupon.upper())
    if coupon is None:
        raise InvalidOrder("coupon", f"unknown coupon {placement.coupon!r}")
    if coupon.channels and placement.channel not in coupon.channels:
        raise InvalidOrder(
            "coupon", f"coupon {placement.coupon!r} is not valid on channel {placement.channel!r}"
        )
    if subtotal < coupon.min_subtotal:
        raise InvalidOrder(
            "coupon",
            f"coupon {placement.coupon!r} needs a subtotal of at "
            f"least {money(coupon.min_subtotal)}",
        )
    off = subtotal * coupon.percent_off / 100 + coupon.amount_off
    return money(min(off, subtotal))


# -- aggregates ---------------------------------------------------------------------

AWAITING_PAYMENT, PAID, CONFIRMED, SHIPPED = "awaiting_payment", "paid", "confirmed", "shipped"
DELIVERED, COMPLETED = "delivered", "completed"
CANCELLED, REFUNDED = "cancelled", "refunded"
OPEN = (AWAITING_PAYMENT, PAID, CONFIRMED)
ON_HOLD = "on_hold"  # not a status of its own: an open order risk holds (Order.state)
SHORT_OF_STOCK = "reservation_rejected"  # the cancel reason when inventory could not reserve
RISK = "risk"  # the check the risk service passes, and the reason it cancels with


def order_id_for_key(idempotency_key: str) -> UUID:
    return uuid5(NAMESPACE, f"idempotency-key:{idempotency_key}")


#: The refund ids of received returns: `return:<return id>` (the service desk opens no
#: ticket for these; an operator's refund may not take such a reference).
RETURN_REFUND = "return:"


def return_refund_id(return_id: str) -> str:
    return f"{RETURN_REFUND}{return_id}"


class Order(CheapCopy, Aggregate):
    """Copied by rule for the cache (shopfloor_runtime.aggregates): lines, address and
    payment are replaced by events, never changed in place."""

    @staticmethod
    def create_id(order_id: UUID) -> UUID:
        return order_id

    @event("Placed")
    def __init__(
        self,
        *,
        order_id: UUID,
        customer_id: str,
        channel: str,
        lines: list[dict[str, Any]],
        currency: str,
        subtotal: Decimal,
        discount: Decimal,
        total: Decimal,
        coupon: str | None,
        payment_method: str | None,
        shipping_address: dict[str, Any],
        placed_at: datetime,
        payment_reminder_at: datetime,
        payment_due_at: datetime,
        required_checks: list[str],
        request_hash: str,
        customer_email: str | None = None,  # events stored before it existed lack it
        service_level: str = "standard",  # likewise
        device_id: str | None = None,  # likewise
        client_ip: str | None = None,  # likewise
    ) -> None:
        self.customer_id, self.channel, self.lines = customer_id, channel, lines
        self.currency, self.subtotal, self.discount, self.total = (
            currency,
            subtotal,
            discount,
            total,
        )
        self.coupon, self.payment_method = coupon, payment_method
        self.shipping_address = shipping_address
        self.placed_at, self.payment_reminder_at = placed_at, payment_reminder_at
        self.payment_due_at, self.required_checks = payment_due_at, required_checks
        self.request_hash, self.customer_email = request_hash, customer_email
        self.service_level, self.device_id, self.client_ip = service_level, device_id, client_ip
        self.status = AWAITING_PAYMENT
        #: risk's hold (exception id, reason, when), while there is one: never confirmed
        self.held: dict[str, Any] | None = None
        self.passed_checks: dict[str, str | None] = {}  # check -> causing event id
        self.payment: dict[str, Any] | None = None
        self.rejected_payments: dict[str, tuple[str, str, str]] = {}
        self.refunds: dict[str, Decimal] = {}
        #: refunds asked for by other services and refused: refund id -> amount asked
        self.refused_refunds: dict[str, Decimal] = {}
        self.reminded = False
        self.cancel_reason: str | None = None
        self.shipment: dict[str, Any] | None = None  # carrier, tracking, when shipped
        self.delivered_at: datetime | None = None
        self.completes_at: datetime | None = None  # the end of the return window

    @classmethod
    def place(
        cls,
        placement: Placement,
        pricing: Pricing,
        rules: OrderRules,
        now: datetime,
        order_id: UUID,
    ) -> Order:
        return cls(
            order_id=order_id,
            customer_id=placement.customer_id,
            channel=placement.channel,
            lines=[
                {"sku": ln.sku, "qty": ln.qty, "unit_price": money(ln.unit_price)}
                for ln in placement.lines
            ],
            currency=placement.currency,
            subtotal=pricing.subtotal,
            discount=pricing.discount,
            total=pricing.total,
            coupon=placement.coupon.upper() if placement.coupon else None,
            payment_method=placement.payment_method,
            shipping_address=placement.address.__dict__.copy(),
            placed_at=now,
            payment_reminder_at=now + rules.payment_reminder_after,
            payment_due_at=now + rules.payment_timeout,
            required_checks=list(rules.required_checks),
            request_hash=placement.request_hash(),
            customer_email=placement.customer_email,
            service_level=placement.service_level,
            device_id=placement.device_id,
            client_ip=placement.client_ip,
        )

    # -- reading --------------------------------------------------------------------

    @property
    def paid_amount(self) -> Decimal:
        return self.payment["amount"] if self.payment else money(0)

    @property
    def refunded_total(self) -> Decimal:
        return money(sum(self.refunds.values(), Decimal(0)))

    @property
    def state(self) -> str:
        """The status as people see it: `on_hold` while risk holds an open order."""
        return ON_HOLD if self.held and self.status in OPEN else self.status

    def _require(self, action: str, *allowed: str) -> None:
        if self.status not in allowed:
            raise IllegalTransition(self.id, action, self.status)

    # -- payment --------------------------------------------------------------------

    def pay(
        self, amount: Decimal, method: str, reference: str, now: datetime, methods: frozenset[str]
    ) -> PaymentRefused | None:
        """Record a payment result. A refused payment is still an event (risk wants to
        see it); the refusal is returned for the caller to raise once it is saved."""
        if self.payment and self.payment["reference"] == reference:
            return None  # the same payment reported again changes nothing
        if reference in self.rejected_payments:  # providers resend until they get a 2xx
            reason, detail, field = self.rejected_payments[reference]
            refused = PaymentConflict if reason in _CONFLICTS else PaymentRefused
            return refused(reason, detail, field)
        refusal = self._payment_refusal(money(amount), method, methods)
        if refusal:
            self._payment_rejected(
                amount=money(amount),
                method=method,
                reference=reference,
                reason=refusal.reason,
                detail=refusal.detail,
                field=refusal.field,
            )
            return refusal
        self._paid(amount=money(amount), method=method, reference=reference, paid_at=now)
        self._confirm_if_ready(now)
        return None

    def _payment_refusal(
        self, amount: Decimal, method: str, methods: frozenset[str]
    ) -> PaymentRefused | None:
        if self.status == CANCELLED:
            return PaymentConflict(
                "order_cancelled", f"order {self.id} is cancelled; payment refused", "order"
            )
        if self.payment is not None:
            return PaymentConflict(
                "already_paid",
                f"order {self.id} is already paid (reference {self.payment['reference']!r})",
                "reference",
            )
        if method not in methods:
            return PaymentRefused(
                "method_unavailable", f"payment method {method!r} is not available", "method"
            )
        if amount != self.total:
            return PaymentRefused(
                "amount_mismatch", f"amount {amount} does not match the order total {self.total}"
            )
        return None

    @event("PaymentRejected")
    def _payment_rejected(
        self,
        amount: Decimal,
        method: str,
        reference: str,
        reason: str,
        detail: str,
        field: str = "amount",
    ) -> None:
        self.rejected_payments[reference] = (reason, detail, field)

    @event("Paid")
    def _paid(self, amount: Decimal, method: str, reference: str, paid_at: datetime) -> None:
        self.payment = {
            "amount": amount,
            "method": method,
            "reference": reference,
            "paid_at": paid_at,
        }
        self.status = PAID

    def send_payment_reminder(self, now: datetime) -> bool:
        if self.status != AWAITING_PAYMENT or self.reminded or now < self.payment_reminder_at:
            return False
        self._reminded(
            sent_at=now, customer_id=self.customer_id, payment_due_at=self.payment_due_at
        )
        return True

    @event("PaymentReminderSent")
    def _reminded(self, sent_at: datetime, customer_id: str, payment_due_at: datetime) -> None:
        self.reminded = True

    def expire_payment(self, now: datetime) -> bool:
        if self.status != AWAITING_PAYMENT or now < self.payment_due_at:
            return False
        self._cancelled(
            reason="payment_timeout",
            detail=f"no payment arrived before {self.payment_due_at.isoformat()}",
            short_lines=[],
            caused_by=None,
            paid_amount=self.paid_amount,
        )
        return True

    # -- checks and confirmation ----------------------------------------------------

    def pass_check(
        self, check: str, caused_by: str, now: datetime, detail: dict[str, Any] | None = None
    ) -> None:
        if check in self.passed_checks or self.status not in OPEN:
            return  # already known, or too late to matter
        self._check_passed(check=check, caused_by=caused_by, detail=detail or {})
        self._confirm_if_ready(now, caused_by)

    @event("CheckPassed")
    def _check_passed(self, check: str, caused_by: str, detail: dict[str, Any]) -> None:
        self.passed_checks[check] = caused_by

    def _confirm_if_ready(self, now: datetime, caused_by: str | None = None) -> None:
        if (
            self.status == PAID
            and not self.held
            and all(c in self.passed_checks for c in self.required_checks)
        ):
            self._confirmed(
                confirmed_at=now, checks=list(self.required_checks), caused_by=caused_by
            )

    @event("Confirmed")
    def _confirmed(self, confirmed_at: datetime, checks: list[str], caused_by: str | None) -> None:
        self.status = CONFIRMED

    # -- risk's holds ---------------------------------------------------------------

    def hold(self, exception_id: str, reason: str, now: datetime, caused_by: str) -> bool:
        """Risk flagged the order as serious: it is not confirmed (or, confirmed already,
        fulfilment pulls it) until released. False, nothing recorded, if it is held for
        this exception already or is past holding (shipped, cancelled)."""
        if self.status not in OPEN or (self.held and self.held["exception_id"] == exception_id):
            return False
        self._held(exception_id=exception_id, reason=reason, held_at=now, caused_by=caused_by)
        return True

    @event("Held")
    def _held(self, exception_id: str, reason: str, held_at: datetime, caused_by: str) -> None:
        self.held = {"exception_id": exception_id, "reason": reason, "held_at": held_at}

    def release(self, exception_id: str, released_by: str, now: datetime, caused_by: str) -> None:
        """Risk lets the order go on: its hold ends (if it had one) and the risk check
        passes, so a paid order with its other checks confirms."""
        if self.held and self.status in OPEN:
            self._released(
                exception_id=exception_id,
                released_by=released_by,
                released_at=now,
                caused_by=caused_by,
            )
        self.pass_check(RISK, caused_by, now, {"exception_id": exception_id})
        self._confirm_if_ready(now, caused_by)

    @event("Released")
    def _released(
        self, exception_id: str, released_by: str, released_at: datetime, caused_by: str
    ) -> None:
        self.held = None

    # -- cancellation and refunds -------------------------------------------------

    def cancel(
        self,
        reason: str,
        detail: str,
        now: datetime,
        short_lines: list[dict[str, Any]] | None = None,
        caused_by: str | None = None,
    ) -> None:
        self._require("cancel", *OPEN)
        self._cancelled(
            reason=reason,
            detail=detail,
            short_lines=short_lines or [],
            caused_by=caused_by,
            paid_amount=self.paid_amount,
        )
        if self.paid_amount > 0:
            self.refund(f"cancellation-{self.id}", self.paid_amount, f"order cancelled: {reason}")

    def reject_reservation(
        self, short_lines: list[dict[str, Any]], caused_by: str, now: datetime
    ) -> None:
        if self.status not in OPEN:
            return  # already cancelled or shipped: nothing left to reject
        shorts = ", ".join(
            f"{s['sku']} (wanted {s['requested']}, {s['available']} available)" for s in short_lines
        )
        self.cancel(SHORT_OF_STOCK, f"not enough stock: {shorts}", now, short_lines, caused_by)

    @event("Cancelled")
    def _cancelled(
        self,
        reason: str,
        detail: str,
        short_lines: list[dict[str, Any]],
        caused_by: str | None,
        paid_amount: Decimal,
    ) -> None:
        self.status = CANCELLED
        self.cancel_reason = reason

    def refund(
        self, refund_id: str, amount: Decimal, reason: str, caused_by: str | None = None
    ) -> bool:
        """Refund part or all of what was paid; False if this refund id is already done."""
        if refund_id in self.refunds:
            return False
        amount = money(amount)
        if self.paid_amount == 0:
            raise IllegalTransition(self.id, "refund", f"{self.status} and unpaid")
        if amount <= 0:
            raise InvalidOrder("amount", "a refund must be positive")
        left = self.paid_amount - self.refunded_total
        if amount > left:
            raise InvalidOrder(
                "amount", f"refund {amount} is more than the {left} paid and not yet refunded"
            )
        total = self.refunded_total + amount
        self._refunded(
            refund_id=refund_id,
            amount=amount,
            reason=reason,
            refunded_total=total,
            fully_refunded=total >= self.paid_amount,
            caused_by=caused_by,
        )
        return True

    @event("Refunded")
    def _refunded(
        self,
        refund_id: str,
        amount: Decimal,
        reason: str,
        refunded_total: Decimal,
        fully_refunded: bool,
        caused_by: str | None = None,  # refunds stored before it existed lack it
    ) -> None:
        self.refunds[refund_id] = amount
        if self.refunded_total >= self.paid_amount and self.status != CANCELLED:
            self.status = REFUNDED

    def refund_return(self, return_id: str, amount: Decimal, caused_by: str) -> str:
        """The refund of a received return (id `return:<return id>`), decided once: issued
        if it is no more than is left to refund, otherwise refused and recorded (nothing
        refunded). Returns "issued", "refused", or "repeat" when this return's refund was
        decided before (issued or refused), whatever is left now."""
        refund_id = return_refund_id(return_id)
        if refund_id in self.refunds or refund_id in self.refused_refunds:
            return "repeat"
        amount, left = money(amount), self.paid_amount - self.refunded_total
        if amount > left or self.paid_amount == 0:
            self._refund_refused(
                refund_id=refund_id,
                amount=amount,
                refundable=left,
                reason="not_paid" if self.paid_amount == 0 else "exceeds_refundable",
                caused_by=caused_by,
            )
            return "refused"
        self.refund(refund_id, amount, f"return {return_id} received", caused_by)
        return "issued"

    @event("RefundRefused")
    def _refund_refused(
        self, refund_id: str, amount: Decimal, refundable: Decimal, reason: str, caused_by: str
    ) -> None:
        self.refused_refunds[refund_id] = amount

    # -- the parcel's way: fulfilment reports, the order follows ---------------------

    def ship(
        self,
        shipment_id: str,
        carrier: str,
        tracking_number: str,
        lines: list[dict[str, Any]],
        shipped_at: datetime,
        caused_by: str | None = None,
    ) -> bool:
        """Fulfilment dispatched the order (`lines`: what left for it). False, nothing
        recorded, if it was shipped already (whatever became of it since); otherwise
        only a confirmed order can be shipped."""
        if self.shipment is not None:
            return False
        self._require("ship", CONFIRMED)
        self._shipped(
            shipment_id=shipment_id,
            carrier=carrier,
            tracking_number=tracking_number,
            shipped_at=shipped_at,
            lines=lines,
            caused_by=caused_by,
        )
        return True

    @event("Shipped")
    def _shipped(
        self,
        carrier: str,
        tracking_number: str,
        shipped_at: datetime,
        lines: list[dict[str, Any]],
        shipment_id: str | None = None,  # shipped through the order API before fulfilment
        caused_by: str | None = None,
    ) -> None:
        self.status = SHIPPED
        self.shipment = {
            "shipment_id": shipment_id,
            "carrier": carrier,
            "tracking_number": tracking_number,
            "shipped_at": shipped_at,
        }

    def deliver(
        self, delivered_at: datetime, return_window: timedelta, caused_by: str | None = None
    ) -> bool:
        """The carrier delivered it: the return window starts. False, nothing recorded,
        if it was delivered already; otherwise only a shipped order can be delivered."""
        if self.delivered_at is not None:
            return False
        self._require("deliver", SHIPPED)
        self._delivered(
            delivered_at=delivered_at,
            completes_at=delivered_at + return_window,
            caused_by=caused_by,
        )
        return True

    @event("Delivered")
    def _delivered(
        self, delivered_at: datetime, completes_at: datetime, caused_by: str | None
    ) -> None:
        self.status = DELIVERED
        self.delivered_at, self.completes_at = delivered_at, completes_at

    def complete(self, now: datetime) -> bool:
        """Close a delivered order once its return window has passed; False if it is
        not due (or no longer delivered: refunded, completed)."""
        if self.status != DELIVERED or self.completes_at is None or now < self.completes_at:
            return False
        self._completed(completed_at=now)
        return True

    @event("Completed")
    def _completed(self, completed_at: datetime) -> None:
        self.status = COMPLETED


class Fingerprint(Aggregate):
    """The last order placed with one fingerprint, to fold keyless resubmissions."""

    @staticmethod
    def create_id(fingerprint: UUID) -> UUID:
        return fingerprint

    @event("Recorded")
    def __init__(self, fingerprint: UUID, order_id: UUID, at: datetime) -> None:
        self.order_id, self.at = order_id, at

    def within(self, now: datetime, window: timedelta) -> bool:
        return now - self.at < window

    def record(self, order_id: UUID, at: datetime) -> None:
        self._rerecorded(order_id=order_id, at=at)

    @event("Rerecorded")
    def _rerecorded(self, order_id: UUID, at: datetime) -> None:
        self.order_id, self.at = order_id, at


@dataclass
class PlacementResult:
    order: Order
    duplicate: bool = False
    notes: list[str] = field(default_factory=list)
