"""How the order service reacts to other services' events: one function per event."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.inventory import ReservationRejected, StockReserved
from shopfloor_runtime.edge import Handler, UnitOfWork

from order.application import OrderApplication
from order.domain import Order, OrderNotFound


def _order(uow: UnitOfWork, order_id: str) -> Order:
    order = uow.get(UUID(order_id))
    if not isinstance(order, Order):
        raise OrderNotFound(order_id)
    return order


def handlers(app: OrderApplication) -> dict[str, Handler]:
    def stock_reserved(envelope: InboundEnvelope, event: StockReserved, uow: UnitOfWork) -> None:
        order = _order(uow, event.order_id)
        detail: dict[str, Any] = {
            "reservation_id": event.reservation_id,
            "lines": [line.model_dump() for line in event.lines],
        }
        order.pass_check("inventory", str(envelope.event_id), app.clock.now(), detail)

    def reservation_rejected(
        envelope: InboundEnvelope, event: ReservationRejected, uow: UnitOfWork
    ) -> None:
        order = _order(uow, event.order_id)
        shorts = [line.model_dump() for line in event.short_lines]
        order.reject_reservation(shorts, str(envelope.event_id), app.clock.now())

    return {"StockReserved": stock_reserved, "ReservationRejected": reservation_rejected}
