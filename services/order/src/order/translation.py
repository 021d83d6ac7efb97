"""The only module that knows both the order's domain events and the contracts."""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from shopfloor_contracts import orders as contract
from shopfloor_contracts.topics import ORDERS
from shopfloor_runtime.edge import Outbound

from order.domain import Order


def _order_placed(e: Any) -> contract.OrderPlaced:
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
        shipping_address=contract.ShippingAddress(**e.shipping_address),
        placed_at=e.placed_at,
        payment_reminder_at=e.payment_reminder_at,
        payment_due_at=e.payment_due_at,
        required_checks=e.required_checks,
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


_BUILDERS: dict[type, Any] = {
    Order.Placed: _order_placed,
    Order.PaymentReminderSent: _simple(
        contract.PaymentReminderSent, "customer_id", "payment_due_at"
    ),
    Order.Paid: _simple(contract.OrderPaid, "amount", "method", "reference", "paid_at"),
    Order.PaymentRejected: _simple(
        contract.PaymentRejected, "amount", "method", "reference", "reason", "detail"
    ),
    Order.Confirmed: _simple(contract.OrderConfirmed, "checks", "confirmed_at"),
    Order.Cancelled: _cancelled,
    Order.Refunded: _simple(
        contract.RefundIssued, "refund_id", "amount", "reason", "refunded_total", "fully_refunded"
    ),
    Order.Shipped: _shipped,
}


def to_contract(domain_event: Any) -> Any | None:
    """The contract payload for a domain event, or None for events kept inside."""
    build = _BUILDERS.get(type(domain_event))
    return None if build is None else build(domain_event)


def to_outbound(domain_event: Any) -> Outbound | None:
    payload = to_contract(domain_event)
    if payload is None:
        return None
    order_id = str(domain_event.originator_id)
    return Outbound(
        topic=ORDERS.name,
        key=order_id,
        payload=payload,
        correlation_id=order_id,
        causation_id=getattr(domain_event, "caused_by", None),
    )


_HIDDEN = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def describe(domain_event: Any) -> tuple[str, dict[str, Any]]:
    """How an event appears in an order's history: its contract form when it has one,
    otherwise its own name and fields (events that stay inside the service)."""
    payload = to_contract(domain_event)
    if payload is not None:
        return type(payload).__name__, payload.model_dump(mode="json")
    fields = {k: v for k, v in vars(domain_event).items() if k not in _HIDDEN}
    return type(domain_event).__name__, jsonable_encoder(fields)
