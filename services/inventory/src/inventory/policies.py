"""How inventory reacts to orders: reserve on placement, release on cancellation, commit
on shipment; one function per contract event, each an idempotent use case (the
reservation's id derives from the order)."""

from __future__ import annotations

from collections import Counter

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.orders import OrderCancelled, OrderPlaced, OrderShipped
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork

from inventory.application import InventoryApplication


def handlers(app: InventoryApplication) -> Handlers:
    return {
        OrderPlaced: order_placed(app),
        OrderCancelled: order_cancelled(app),
        OrderShipped: order_shipped(app),
    }


def order_placed(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderPlaced, uow: UnitOfWork) -> None:
        wanted = Counter[str]()
        for line in event.lines:
            wanted[line.sku] += line.qty
        app.reserve_stock(uow, event.order_id, event.customer_id, wanted, str(envelope.event_id))

    return handle


def order_cancelled(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderCancelled, uow: UnitOfWork) -> None:
        app.release_stock(uow, event.order_id, f"order cancelled: {event.reason}")

    return handle


def order_shipped(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderShipped, uow: UnitOfWork) -> None:
        app.commit_stock(uow, event.order_id)

    return handle
