"""How fulfilment reacts to orders and inventory: one function per contract event, each
an idempotent call of an application use case. An order's facts arrive on three topics
in any order; allocation waits until it has them all (see OrderFile.ready)."""

from __future__ import annotations

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.inventory import ReservationMoved, ReservationMoveRefused, StockReserved
from shopfloor_contracts.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderHeld,
    OrderPlaced,
    OrderReleased,
)
from shopfloor_contracts.orders_private import OrderRecipientRecorded
from shopfloor_contracts.service_desk import ReplacementRequested
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork

from fulfilment.application import FulfilmentApplication

DEFAULT_SERVICE_LEVEL = "standard"


def handlers(app: FulfilmentApplication) -> Handlers:
    return {
        OrderPlaced: order_placed(app),
        OrderRecipientRecorded: recipient_recorded(app),
        StockReserved: stock_reserved(app),
        OrderConfirmed: order_confirmed(app),
        OrderCancelled: order_cancelled(app),
        OrderHeld: order_held(app),
        OrderReleased: order_released(app),
        ReservationMoved: reservation_moved(app),
        ReservationMoveRefused: reservation_move_refused(app),
        ReplacementRequested: replacement_requested(app),
    }


def order_placed(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderPlaced, uow: UnitOfWork) -> None:
        where = event.destination
        placed = {
            "customer_id": event.customer_id,
            "region": where.region if where else "*",
            "fingerprint": where.address_fingerprint if where else None,
            "lines": [{"sku": ln.sku, "qty": ln.qty} for ln in event.lines],
            "value": str(event.total),
            "service_level": event.service_level or DEFAULT_SERVICE_LEVEL,
        }
        app.order_placed(uow, event.order_id, placed)

    return handle


def recipient_recorded(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderRecipientRecorded, uow: UnitOfWork) -> None:
        recipient = event.shipping_address.model_dump()
        app.recipient_recorded(uow, event.order_id, recipient)

    return handle


def stock_reserved(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: StockReserved, uow: UnitOfWork) -> None:
        lines = [ln.model_dump() for ln in event.lines]
        free = [hint.model_dump() for hint in event.availability]
        app.stock_reserved(uow, event.order_id, lines, free)

    return handle


def order_confirmed(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderConfirmed, uow: UnitOfWork) -> None:
        app.order_confirmed(uow, event.order_id, event.confirmed_at)

    return handle


def order_cancelled(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderCancelled, uow: UnitOfWork) -> None:
        app.order_cancelled(uow, event.order_id)

    return handle


def order_held(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderHeld, uow: UnitOfWork) -> None:
        app.order_held(uow, event.order_id, event.exception_id)

    return handle


def order_released(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderReleased, uow: UnitOfWork) -> None:
        app.order_released(uow, event.order_id)

    return handle


def reservation_moved(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReservationMoved, uow: UnitOfWork) -> None:
        lines = [ln.model_dump() for ln in event.lines]
        app.reservation_moved(uow, event.order_id, event.shipment_id, event.warehouse, lines)

    return handle


def reservation_move_refused(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReservationMoveRefused, uow: UnitOfWork) -> None:
        short = ", ".join(
            f"{s.sku} ({s.requested} needed, {s.available} free)" for s in event.short_lines
        )
        app.reservation_move_refused(
            uow, event.order_id, event.shipment_id, event.warehouse, f"not enough stock: {short}"
        )

    return handle


def replacement_requested(app: FulfilmentApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReplacementRequested, uow: UnitOfWork) -> None:
        lines = [{"sku": ln.sku, "qty": ln.qty} for ln in event.lines]
        app.replacement_requested(
            uow, event.replacement_id, event.order_id, lines, event.requested_at
        )

    return handle
