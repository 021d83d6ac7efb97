"""How the order service reacts to other services' events: one function per contract
event, each an idempotent call of an application use case.

Inventory's decisions confirm or cancel an order, and so do risk's (an assessment
without a hold passes the risk check, a serious one holds the order until an operator
releases or cancels it); fulfilment's dispatch ships it and the
carrier's delivery starts its return window; a return the service desk received is
refunded once, or refused (RefundRefused) when it asks more than is left to refund.
A shipment may carry several orders (merged), and they need not live on this partition
of `orders.v1`: each is loaded on its own (`uow.get`) and saved with the rest of the
batch; so is a return's order (`service-desk.v1` is keyed by ticket, not order)."""

from __future__ import annotations

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.fulfilment import ShipmentDispatched, TrackingUpdated
from shopfloor_contracts.inventory import ReservationRejected, StockReserved
from shopfloor_contracts.risk import HoldReleased, OrderAssessed, OrderCancellationRequested
from shopfloor_contracts.service_desk import ReturnReceived
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork

from order.application import Dispatch, OrderApplication


def handlers(app: OrderApplication) -> Handlers:
    return {
        StockReserved: stock_reserved(app),
        ReservationRejected: reservation_rejected(app),
        ShipmentDispatched: shipment_dispatched(app),
        TrackingUpdated: tracking_updated(app),
        OrderAssessed: order_assessed(app),
        HoldReleased: hold_released(app),
        OrderCancellationRequested: cancellation_requested(app),
        ReturnReceived: return_received(app),
    }


def stock_reserved(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: StockReserved, uow: UnitOfWork) -> None:
        if event.replaces:
            return  # a service desk replacement's stock: no order of ours
        detail = {
            "reservation_id": event.reservation_id,
            "lines": [line.model_dump() for line in event.lines],
        }
        app.pass_check(uow, event.order_id, "inventory", str(envelope.event_id), detail)

    return handle


def reservation_rejected(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReservationRejected, uow: UnitOfWork) -> None:
        if event.replaces:
            return  # a service desk replacement: no order of ours
        shorts = [line.model_dump() for line in event.short_lines]
        app.reject_reservation(uow, event.order_id, shorts, str(envelope.event_id))

    return handle


def shipment_dispatched(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ShipmentDispatched, uow: UnitOfWork) -> None:
        dispatch = Dispatch(
            shipment_id=event.shipment_id,
            carrier=event.carrier,
            tracking_number=event.tracking_number,
            dispatched_at=event.dispatched_at,
            lines=tuple((line.order_id, line.sku, line.qty) for line in event.lines),
        )
        for order_id in event.order_ids:
            if order_id not in event.replaces:  # a service desk replacement is no order
                app.ship_order(uow, order_id, dispatch, str(envelope.event_id))

    return handle


def tracking_updated(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: TrackingUpdated, uow: UnitOfWork) -> None:
        if event.milestone != "delivered":
            return  # on its way: nothing changes for the order
        for order_id in event.order_ids:
            if order_id not in event.replaces:
                app.deliver_order(
                    uow, order_id, event.shipment_id, event.at, str(envelope.event_id)
                )

    return handle


def order_assessed(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: OrderAssessed, uow: UnitOfWork) -> None:
        serious = [r.rule for r in event.reasons if r.level == "serious"]
        reason = ", ".join(serious) or "flagged"
        app.risk_assessed(
            uow, event.order_id, event.hold, event.exception_id, reason, str(envelope.event_id)
        )

    return handle


def hold_released(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: HoldReleased, uow: UnitOfWork) -> None:
        app.release_hold(
            uow, event.order_id, event.exception_id, event.operator, str(envelope.event_id)
        )

    return handle


def cancellation_requested(app: OrderApplication) -> Handler:
    def handle(
        envelope: InboundEnvelope, event: OrderCancellationRequested, uow: UnitOfWork
    ) -> None:
        fraud = " (fraud)" if event.fraud else ""
        detail = f"risk exception {event.exception_id}, {event.operator}{fraud}"
        app.risk_cancel(uow, event.order_id, detail[:500], str(envelope.event_id))

    return handle


def return_received(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReturnReceived, uow: UnitOfWork) -> None:
        if event.refund_amount <= 0:
            return  # the standard pays nothing for what came back: no refund to decide
        app.refund_return(
            uow, event.order_id, event.return_id, event.refund_amount, str(envelope.event_id)
        )

    return handle
