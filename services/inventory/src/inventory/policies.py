"""How inventory reacts to orders, their shipments and their returns: reserve on
placement, release on cancellation, hold the units where fulfilment allocated the
shipment, commit on dispatch, take a received return back (resellable units on hand,
damaged ones set aside); one function per contract event, each an idempotent use case
(the reservation's id derives from the order, the return's record from the return).

Stock is committed when fulfilment dispatches the shipment (`ShipmentDispatched`), not on
the order service's `OrderShipped` any more: the parcel leaving the warehouse is what takes
the units off the shelf, and fulfilment is the one who sees it."""

from __future__ import annotations

from collections import Counter

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.fulfilment import ShipmentAllocated, ShipmentDispatched
from shopfloor_contracts.orders import OrderCancelled, OrderPlaced
from shopfloor_contracts.service_desk import ReplacementRequested, ReturnReceived
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork

from inventory.application import InventoryApplication
from inventory.domain import ReturnedLine


def handlers(app: InventoryApplication) -> Handlers:
    return {
        OrderPlaced: order_placed(app),
        OrderCancelled: order_cancelled(app),
        ShipmentAllocated: shipment_allocated(app),
        ShipmentDispatched: shipment_dispatched(app),
        ReturnReceived: return_received(app),
        ReplacementRequested: replacement_requested(app),
    }


def order_placed(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderPlaced, uow: UnitOfWork) -> None:
        wanted = Counter[str]()
        for line in event.lines:
            wanted[line.sku] += line.qty
        app.reserve_stock(uow, event.order_id, event.customer_id, wanted, str(envelope.event_id))

    return handle


def replacement_requested(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReplacementRequested, uow: UnitOfWork) -> None:
        wanted = Counter[str]()
        for line in event.lines:
            wanted[line.sku] += line.qty
        app.reserve_stock(
            uow,
            event.replacement_id,
            event.customer_id,
            wanted,
            str(envelope.event_id),
            replaces=event.order_id,
        )

    return handle


def order_cancelled(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderCancelled, uow: UnitOfWork) -> None:
        app.release_stock(uow, event.order_id, f"order cancelled: {event.reason}")

    return handle


def shipment_allocated(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ShipmentAllocated, uow: UnitOfWork) -> None:
        # only the order this allocation is for: a merged shipment's other orders were
        # moved by their own allocations
        app.move_stock(
            uow, event.order_id, event.shipment_id, event.warehouse, str(envelope.event_id)
        )

    return handle


def shipment_dispatched(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ShipmentDispatched, uow: UnitOfWork) -> None:
        for order_id in event.order_ids:  # a merged shipment: every order's units left
            app.commit_stock(uow, order_id)

    return handle


def return_received(app: InventoryApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReturnReceived, uow: UnitOfWork) -> None:
        lines = [
            ReturnedLine(ln.sku, ln.qty, ln.condition, ln.warehouse, tuple(ln.serials))
            for ln in event.lines
        ]
        app.take_back_return(uow, event.return_id, event.order_id, lines, str(envelope.event_id))

    return handle
