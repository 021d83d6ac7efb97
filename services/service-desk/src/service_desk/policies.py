"""How the service desk reacts to orders and fulfilment: one function per contract event,
each an idempotent call of an application use case. What it learns (customers, orders,
shipping) feeds tiers, templates and returns; risk holds, late shipments, failed
deliveries and large refunds open tickets, once each."""

from __future__ import annotations

from decimal import Decimal

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.fulfilment import DeliveryFailed, ShipmentDelayed, ShipmentDispatched
from shopfloor_contracts.orders import (
    OrderCancelled,
    OrderCompleted,
    OrderConfirmed,
    OrderDelivered,
    OrderHeld,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    RefundIssued,
    RefundRefused,
)
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork

from service_desk.application import DeskApplication


def handlers(app: DeskApplication) -> Handlers:
    return {
        OrderPlaced: order_placed(app),
        OrderPaid: order_paid(app),
        OrderConfirmed: status(app, "confirmed"),
        OrderCancelled: status(app, "cancelled"),
        OrderCompleted: status(app, "completed"),
        OrderHeld: order_held(app),
        OrderShipped: order_shipped(app),
        OrderDelivered: order_delivered(app),
        RefundIssued: refund_issued(app),
        RefundRefused: refund_refused(app),
        ShipmentDispatched: shipment_dispatched(app),
        ShipmentDelayed: shipment_delayed(app),
        DeliveryFailed: delivery_failed(app),
    }


def order_placed(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderPlaced, uow: UnitOfWork) -> None:
        # list prices, and the share the order's discount leaves of them: a return
        # refunds its units' list prices times the share, rounded once
        share = event.total / event.subtotal if event.subtotal else Decimal(1)
        lines: dict[str, list[str | int]] = {}
        for ln in event.lines:
            qty = int(lines.get(ln.sku, [0])[0]) + ln.qty
            lines[ln.sku] = [qty, str(ln.unit_price)]
        app.order_placed(
            uow, event.order_id, event.customer_id, lines, event.total, event.placed_at, share
        )

    return handle


def order_paid(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderPaid, uow: UnitOfWork) -> None:
        app.order_paid(uow, event.order_id, event.amount)

    return handle


def status(app: DeskApplication, name: str) -> Handler:
    def handle(
        envelope: InboundEnvelope,
        event: OrderConfirmed | OrderCancelled | OrderCompleted,
        uow: UnitOfWork,
    ) -> None:
        app.order_status(uow, event.order_id, name)

    return handle


def order_held(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderHeld, uow: UnitOfWork) -> None:
        text = (
            f"Order {event.order_id} is held by risk ({event.reason}); exception "
            f"{event.exception_id}. The customer may ask why it has not shipped."
        )
        app.ticket_from_event(
            uow, event.order_id, "risk_hold", f"risk-hold:{event.exception_id}", text
        )

    return handle


def order_shipped(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderShipped, uow: UnitOfWork) -> None:
        app.order_shipped(uow, event.order_id, event.carrier, event.tracking_number)

    return handle


def order_delivered(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderDelivered, uow: UnitOfWork) -> None:
        app.order_delivered(uow, event.order_id, event.delivered_at)

    return handle


def refund_issued(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: RefundIssued, uow: UnitOfWork) -> None:
        app.refund_issued(uow, event.order_id, event.refund_id, event.amount, event.refunded_total)

    return handle


def refund_refused(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: RefundRefused, uow: UnitOfWork) -> None:
        app.refund_refused(uow, event.order_id, event.refund_id, event.refundable, event.reason)

    return handle


def shipment_dispatched(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ShipmentDispatched, uow: UnitOfWork) -> None:
        for order_id in event.order_ids:
            if order_id in event.replaces:  # a re-ship or exchange, no order
                original, tracking = event.replaces[order_id], event.tracking_number
                app.replacement_shipped(uow, original, order_id, event.carrier, tracking)
                continue
            warehouses = {ln.sku: event.warehouse for ln in event.lines if ln.order_id == order_id}
            app.order_shipped(uow, order_id, event.carrier, event.tracking_number, warehouses)
            app.shipment_promised(uow, order_id, event.promised_by)

    return handle


def shipment_delayed(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ShipmentDelayed, uow: UnitOfWork) -> None:
        last = event.last_milestone or "none yet"
        for shipped in event.order_ids:
            order_id = event.replaces.get(shipped, shipped)  # a replacement: its order
            text = (
                f"Shipment {event.shipment_id} of order {order_id} is late: promised by "
                f"{event.promised_by.isoformat(timespec='minutes')}, last milestone {last}."
            )
            source = f"delayed:{event.shipment_id}:{shipped}"
            app.ticket_from_event(uow, order_id, "delivery", source, text)

    return handle


def delivery_failed(app: DeskApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: DeliveryFailed, uow: UnitOfWork) -> None:
        where = f" at {event.place}" if event.place else ""
        for shipped in event.order_ids:
            order_id = event.replaces.get(shipped, shipped)  # a replacement: its order
            text = (
                f"Delivery attempt {event.attempt} of shipment {event.shipment_id} "
                f"(tracking {event.tracking_number}) failed{where}."
            )
            source = f"delivery-failed:{event.shipment_id}:{event.attempt}:{shipped}"
            app.ticket_from_event(uow, order_id, "delivery", source, text)

    return handle
