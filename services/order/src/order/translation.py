"""The only module that knows both the order's domain events and the contracts.

A placement becomes two messages: `OrderPlaced` on `orders.v1` (what analysts and every
consumer may see: a destination without a person in it) and `OrderRecipientRecorded` on
`orders.private.v1` (name, street, phone, e-mail: for fulfilment and the service desk).

Words people typed stay off `orders.v1` too: the detail of a cancellation by the customer
or an operator and the reason given for a refund by hand may quote anyone. On the topic
they are replaced by the service's own words; the order's history keeps what was typed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from shopfloor_contracts import orders as contract
from shopfloor_contracts import orders_private as private
from shopfloor_contracts.topics import ORDERS, ORDERS_PRIVATE
from shopfloor_runtime.edge import Outbound

from order.domain import RETURN_REFUND, Order
from order.privacy import AddressFingerprints, postal_prefix, region


def _destination(
    address: dict[str, Any], fingerprints: AddressFingerprints
) -> contract.Destination:
    return contract.Destination(
        country=address["country"],
        postal_prefix=postal_prefix(address["postal_code"]),
        region=region(address["country"], address["postal_code"]),
        address_fingerprint=fingerprints.of(address),
    )


def _order_placed(e: Any, fingerprints: AddressFingerprints) -> contract.OrderPlaced:
    return contract.OrderPlaced(
        order_id=str(e.originator_id),
        customer_id=e.customer_id,
        channel=e.channel,
        lines=[contract.OrderLine(**line) for line in e.lines],
        currency=e.currency,
        subtotal=e.subtotal,
        discount=e.discount,
        total=e.total,
        coupon=e.coupon,
        payment_method=e.payment_method,
        destination=_destination(e.shipping_address, fingerprints),
        service_level=getattr(e, "service_level", "standard"),  # stored before it existed
        placed_at=e.placed_at,
        payment_reminder_at=e.payment_reminder_at,
        payment_due_at=e.payment_due_at,
        required_checks=e.required_checks,
        device_id=getattr(e, "device_id", None),  # stored before it existed
    )


def _recipient(e: Any, fingerprints: AddressFingerprints) -> private.OrderRecipientRecorded:
    address = e.shipping_address
    return private.OrderRecipientRecorded(
        order_id=str(e.originator_id),
        customer_id=e.customer_id,
        shipping_address=private.RecipientAddress(
            **{k: address.get(k) for k in private.RecipientAddress.model_fields if k in address}
        ),
        email=getattr(e, "customer_email", None),
        address_fingerprint=fingerprints.of(address),
        placed_at=e.placed_at,
        ip_address=getattr(e, "client_ip", None),  # stored before it existed
    )


def _simple(model: Any, *fields: str) -> Any:
    def build(e: Any) -> Any:
        return model(order_id=str(e.originator_id), **{f: getattr(e, f) for f in fields})

    return build


def _cancelled(e: Any) -> contract.OrderCancelled:
    return contract.OrderCancelled(
        order_id=str(e.originator_id),
        reason=e.reason,
        detail=e.detail,
        short_lines=[contract.ShortLine(**s) for s in e.short_lines],
        paid_amount=e.paid_amount,
    )


def _shipped(e: Any) -> contract.OrderShipped:
    return contract.OrderShipped(
        order_id=str(e.originator_id),
        carrier=e.carrier,
        tracking_number=e.tracking_number,
        lines=[contract.ShippedLine(**line) for line in e.lines],
        shipped_at=e.shipped_at,
    )


# Cancellations whose detail a person typed (`POST /orders/{id}/cancel`, or risk's
# operator), as they read on the topic; payment timeouts and shortages keep the
# service's own detail.
TYPED_CANCELS = {"customer": "cancelled by the customer", "operator": "cancelled by an operator"}
BY_RISK = "cancelled by a risk operator (risk.v1 has the exception)"
WORDS_KEPT = " (the words are in the order's history)"
# Refunds the service words itself: a cancelled order's, a received return's.
SERVICE_REFUNDS = ("cancellation-", RETURN_REFUND)
REFUND_BY_HAND = "by hand (the reason is in the order's history)"


def _without_typed_words(domain_event: Any, payload: Any) -> Any:
    """The payload as it goes on the public topic: what a person typed replaced."""
    if isinstance(payload, contract.OrderCancelled) and payload.reason in TYPED_CANCELS:
        if getattr(domain_event, "caused_by", None):  # risk's request, not the API
            return payload.model_copy(update={"detail": BY_RISK})
        said = TYPED_CANCELS[payload.reason]
        typed = payload.detail not in ("", f"cancelled by {payload.reason}")
        return payload.model_copy(update={"detail": said + (WORDS_KEPT if typed else "")})
    if isinstance(payload, contract.RefundIssued) and not payload.refund_id.startswith(
        SERVICE_REFUNDS
    ):
        return payload.model_copy(update={"reason": REFUND_BY_HAND})
    return payload


_BUILDERS: dict[type, Any] = {
    Order.PaymentReminderSent: _simple(
        contract.PaymentReminderSent, "customer_id", "payment_due_at"
    ),
    Order.Paid: _simple(contract.OrderPaid, "amount", "method", "reference", "paid_at"),
    Order.PaymentRejected: _simple(
        contract.PaymentRejected, "amount", "method", "reference", "reason", "detail"
    ),
    Order.Confirmed: _simple(contract.OrderConfirmed, "checks", "confirmed_at"),
    Order.Cancelled: _cancelled,
    Order.Held: _simple(contract.OrderHeld, "exception_id", "reason", "held_at"),
    Order.Released: _simple(contract.OrderReleased, "exception_id", "released_by", "released_at"),
    Order.Refunded: _simple(
        contract.RefundIssued, "refund_id", "amount", "reason", "refunded_total", "fully_refunded"
    ),
    Order.RefundRefused: _simple(
        contract.RefundRefused, "refund_id", "amount", "refundable", "reason"
    ),
    Order.Shipped: _shipped,
    Order.Delivered: _simple(contract.OrderDelivered, "delivered_at", "completes_at"),
    Order.Completed: _simple(contract.OrderCompleted, "completed_at"),
}


class Translation:
    """The order service's translation, with the key its address fingerprints need."""

    def __init__(self, fingerprints: AddressFingerprints) -> None:
        self.fingerprints = fingerprints

    def to_contract(self, domain_event: Any, *, typed_words: bool = False) -> Any | None:
        """The public contract payload for a domain event, or None for events kept inside;
        with `typed_words`, what people typed is left in (for the order's own history)."""
        if isinstance(domain_event, Order.Placed):
            return _order_placed(domain_event, self.fingerprints)
        build: Callable[[Any], Any] | None = _BUILDERS.get(type(domain_event))
        if build is None:
            return None
        payload = build(domain_event)
        return payload if typed_words else _without_typed_words(domain_event, payload)

    def to_outbound(self, domain_event: Any) -> list[Outbound]:
        """What the relay publishes for a stored event: nothing, one message, or (a
        placement) the public one first and the private one beside it."""
        payload = self.to_contract(domain_event)
        if payload is None:
            return []
        order_id = str(domain_event.originator_id)
        caused_by = getattr(domain_event, "caused_by", None)
        messages = [Outbound(ORDERS.name, order_id, payload, order_id, caused_by)]
        if isinstance(domain_event, Order.Placed):
            recipient = _recipient(domain_event, self.fingerprints)
            messages.append(Outbound(ORDERS_PRIVATE.name, order_id, recipient, order_id, caused_by))
        return messages

    def describe(self, domain_event: Any) -> tuple[str, dict[str, Any]]:
        """How an event appears in an order's history: its public contract form when it
        has one (the full address is on the order itself), otherwise its own name and
        fields (events that stay inside the service)."""
        payload = self.to_contract(domain_event, typed_words=True)
        if payload is not None:
            return type(payload).__name__, payload.model_dump(mode="json")
        fields = {k: v for k, v in vars(domain_event).items() if k not in _HIDDEN}
        return type(domain_event).__name__, jsonable_encoder(fields)


_HIDDEN = {"originator_id", "originator_version", "timestamp", "originator_topic"}
