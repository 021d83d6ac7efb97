"""Events on `orders.v1`, produced by the order service, keyed by order id. Analysts
read this topic: nothing here names or reaches a person (the recipient's name, street,
phone and e-mail travel on `orders.private.v1`, see `orders_private`)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shopfloor_contracts.envelope import Money, Strict


class OrderLine(Strict):
    sku: str
    qty: int = Field(gt=0)
    unit_price: Money


class Destination(Strict):
    """Where an order goes, coarse enough to name no one: what analysis (sales by
    region) and risk (velocity per address, blacklists) need."""

    country: str = Field(description="ISO 3166-1 alpha-2")
    postal_prefix: str = Field(
        description="the first two characters of the postal code, upper case, spaces "
        'removed ("10115" -> "10", "SW1A 1AA" -> "SW")'
    )
    region: str = Field(
        description='country, a dash, and the postal code\'s first character ("DE-1")'
    )
    address_fingerprint: str = Field(
        description="HMAC-SHA256 (hex) of the normalised street address under the order "
        "service's secret key: the same address typed twice gives the same value, and "
        "nobody without the key can tell the address from it"
    )


class OrderPlaced(Strict):
    """Schema version 2: version 1 carried the full shipping address (name, street)."""

    order_id: str
    customer_id: str
    channel: str
    lines: list[OrderLine]
    currency: str
    subtotal: Money
    discount: Money
    total: Money
    coupon: str | None = None
    payment_method: str | None = None
    destination: Destination | None = Field(
        None,
        description="always set by schema version 2; absent on version 1 messages, which "
        "carried the full address instead (readers skip it), so a consumer still behind "
        "on the topic across the upgrade reads both",
    )
    service_level: str | None = Field(
        None, description='delivery promise the customer chose ("standard", "express")'
    )
    placed_at: AwareDatetime
    payment_reminder_at: AwareDatetime
    payment_due_at: AwareDatetime
    required_checks: list[str] = Field(description="Checks that must pass to confirm")
    device_id: str | None = Field(
        None, description="the shop's id of the device the order came from (risk velocity)"
    )


class PaymentReminderSent(Strict):
    order_id: str
    customer_id: str
    payment_due_at: AwareDatetime


class OrderPaid(Strict):
    order_id: str
    amount: Money
    method: str
    reference: str
    paid_at: AwareDatetime


class PaymentRejected(Strict):
    order_id: str
    amount: Money
    method: str
    reference: str
    reason: Literal["amount_mismatch", "order_cancelled", "already_paid", "method_unavailable"]
    detail: str


class OrderHeld(Strict):
    """Risk flagged the order as serious: it is not confirmed, or if confirmed already
    not shipped, until released (`OrderReleased`) or cancelled."""

    order_id: str
    exception_id: str
    reason: str = Field(description="the rules that held it")
    held_at: AwareDatetime


class OrderReleased(Strict):
    order_id: str
    exception_id: str
    released_by: str
    released_at: AwareDatetime


class OrderConfirmed(Strict):
    order_id: str
    checks: list[str]
    confirmed_at: AwareDatetime


class ShortLine(Strict):
    sku: str
    requested: int
    available: int
    reason: str = Field("insufficient_stock", description="why inventory was short")


class OrderCancelled(Strict):
    order_id: str
    reason: Literal["customer", "operator", "payment_timeout", "reservation_rejected"]
    detail: str = Field(
        description="the order service's words, never a person's: what ran out or timed "
        "out, or who cancelled (\"cancelled by the customer (the words are in the order's "
        "history)\"); what a person typed stays in the order's history"
    )
    short_lines: list[ShortLine] = Field(default_factory=list)
    paid_amount: Money = Field(description="Paid so far; refunds are separate events")


class RefundIssued(Strict):
    order_id: str
    refund_id: str
    amount: Money
    reason: str = Field(
        description='the order service\'s words: "order cancelled: customer", "return <id> '
        'received", or for a refund given by hand "by hand (the reason is in the order\'s '
        'history)"'
    )
    refunded_total: Money
    fully_refunded: bool


class RefundRefused(Strict):
    """A refund another service asked for (the service desk, for a received return) that
    the order service did not issue: it was more than is left to refund. Nothing was
    refunded; the same request again is not decided again."""

    order_id: str
    refund_id: str = Field(description='the refund asked for, e.g. "return:<return id>"')
    amount: Money = Field(description="what was asked")
    refundable: Money = Field(description="paid and not yet refunded when it was refused")
    reason: Literal["exceeds_refundable", "not_paid"]


class ShippedLine(Strict):
    sku: str
    qty: int = Field(gt=0)


class OrderShipped(Strict):
    order_id: str
    carrier: str
    tracking_number: str
    lines: list[ShippedLine]
    shipped_at: AwareDatetime


class OrderDelivered(Strict):
    order_id: str
    delivered_at: AwareDatetime
    completes_at: AwareDatetime = Field(description="when the return window closes")


class OrderCompleted(Strict):
    order_id: str
    completed_at: AwareDatetime
