"""How risk reacts to orders, inventory and its stream processor's counts: one function
per contract event, each an idempotent call of one use case. The address arrives on the
private topic: only what the rules need is kept (which fields are filled, the postal
code, the country), in risk's own store."""

from __future__ import annotations

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.inventory import ReservationRejected
from shopfloor_contracts.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderShipped,
    PaymentRejected,
)
from shopfloor_contracts.orders_private import OrderRecipientRecorded
from shopfloor_contracts.risk import VelocityObserved
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork

from risk.application import RiskApplication


def handlers(app: RiskApplication) -> Handlers:
    return {
        OrderPlaced: order_placed(app),
        OrderRecipientRecorded: recipient_recorded(app),
        PaymentRejected: payment_rejected(app),
        OrderConfirmed: order_confirmed(app),
        OrderShipped: order_shipped(app),
        OrderCancelled: order_cancelled(app),
        ReservationRejected: reservation_rejected(app),
        VelocityObserved: velocity_observed(app),
    }


def order_placed(app: RiskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderPlaced, uow: UnitOfWork) -> None:
        where = event.destination
        placed = {
            "customer_id": event.customer_id,
            "total": str(event.total),
            "fingerprint": where.address_fingerprint if where else None,
            "country": where.country if where else None,
            "device_id": event.device_id,
            "channel": event.channel,
            "placed_at": event.placed_at.isoformat(),
        }
        app.order_placed(uow, event.order_id, placed)

    return handle


def recipient_recorded(app: RiskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderRecipientRecorded, uow: UnitOfWork) -> None:
        a = event.shipping_address
        address = {
            "name": a.name,
            "line1": a.line1,
            "city": a.city,
            "postal_code": a.postal_code,
            "country": a.country,
        }
        app.address_recorded(uow, event.order_id, address)

    return handle


def payment_rejected(app: RiskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: PaymentRejected, uow: UnitOfWork) -> None:
        app.payment_rejected(uow, event.order_id, event.reason, event.detail, event.reference)

    return handle


def order_confirmed(app: RiskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderConfirmed, uow: UnitOfWork) -> None:
        app.order_confirmed(uow, event.order_id, event.confirmed_at)

    return handle


def order_shipped(app: RiskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderShipped, uow: UnitOfWork) -> None:
        app.order_shipped(uow, event.order_id)

    return handle


def order_cancelled(app: RiskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderCancelled, uow: UnitOfWork) -> None:
        app.order_cancelled(uow, event.order_id)

    return handle


def reservation_rejected(app: RiskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReservationRejected, uow: UnitOfWork) -> None:
        if event.replaces:
            return  # a service desk replacement, no order: nothing to assess
        lines = [
            f"{s.sku} ({s.requested} requested, {s.available} available)" for s in event.short_lines
        ]
        app.stock_short(uow, event.order_id, lines)

    return handle


def velocity_observed(app: RiskApplication) -> Handler:
    """Unchained (the stream processor's output): repeats are dropped by the case, which
    keeps one count per dimension."""

    def handle(envelope: InboundEnvelope, event: VelocityObserved, uow: UnitOfWork) -> None:
        for count in event.counts:
            seen = {
                "key": count.key,
                "count": count.count,
                "window_s": count.window_s,
                "order_ids": list(count.order_ids),
            }
            app.velocity_observed(uow, event.order_id, count.dimension, seen)

    return handle
