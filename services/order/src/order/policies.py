"""How the order service reacts to other services' events: one function per contract
event, each an idempotent call of an application use case."""

from __future__ import annotations

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.inventory import ReservationRejected, StockReserved
from shopfloor_runtime.edge import Handler, Handlers, UnitOfWork

from order.application import OrderApplication


def handlers(app: OrderApplication) -> Handlers:
    return {
        StockReserved: stock_reserved(app),
        ReservationRejected: reservation_rejected(app),
    }


def stock_reserved(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: StockReserved, uow: UnitOfWork) -> None:
        detail = {
            "reservation_id": event.reservation_id,
            "lines": [line.model_dump() for line in event.lines],
        }
        app.pass_check(uow, event.order_id, "inventory", str(envelope.event_id), detail)

    return handle


def reservation_rejected(app: OrderApplication) -> Handler:
    def handle(envelope: InboundEnvelope, event: ReservationRejected, uow: UnitOfWork) -> None:
        shorts = [line.model_dump() for line in event.short_lines]
        app.reject_reservation(uow, event.order_id, shorts, str(envelope.event_id))

    return handle
