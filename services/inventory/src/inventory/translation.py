"""The only module that knows both inventory's domain events and the contracts."""

from __future__ import annotations

from typing import Any

from shopfloor_contracts import inventory as contract
from shopfloor_contracts.topics import INVENTORY
from shopfloor_runtime.edge import on_topic

from inventory.domain import Reservation, Sku


def _lines(lines: list[dict[str, Any]]) -> list[contract.ReservedLine]:
    return [contract.ReservedLine(**line) for line in lines]


def _decided(e: Any) -> Any:
    if e.short_lines:
        return contract.ReservationRejected(
            order_id=e.order_id,
            short_lines=[contract.RejectedLine(**s) for s in e.short_lines],
            replaces=getattr(e, "replaces", None),
        )
    return contract.StockReserved(
        order_id=e.order_id,
        reservation_id=str(e.originator_id),
        lines=_lines(e.lines),
        # decisions stored before the hint existed have none
        availability=[
            contract.WarehouseAvailability(**a) for a in getattr(e, "availability", None) or []
        ],
        replaces=getattr(e, "replaces", None),
    )


def to_contract(e: Any) -> tuple[str, Any] | None:
    """(key, contract payload) for a domain event, or None for events kept inside."""
    kind = type(e)
    if kind is Reservation.Decided:
        return e.order_id, _decided(e)
    if kind is Reservation.Released:
        return e.order_id, contract.ReservationReleased(
            order_id=e.order_id,
            reservation_id=str(e.originator_id),
            lines=_lines(e.lines),
            reason=e.reason,
        )
    if kind is Reservation.Committed:
        return e.order_id, contract.StockCommitted(
            order_id=e.order_id, reservation_id=str(e.originator_id), lines=_lines(e.lines)
        )
    if kind is Reservation.Moved:
        return e.order_id, contract.ReservationMoved(
            order_id=e.order_id,
            reservation_id=str(e.originator_id),
            shipment_id=e.shipment_id,
            warehouse=e.warehouse,
            lines=_lines(e.lines),
        )
    if kind is Reservation.MoveRefused:
        return e.order_id, contract.ReservationMoveRefused(
            order_id=e.order_id,
            shipment_id=e.shipment_id,
            warehouse=e.warehouse,
            short_lines=[contract.RejectedLine(**s) for s in e.short_lines],
        )
    builder = _SKU_EVENTS.get(kind)
    return None if builder is None else (e.sku, builder(e))


_SKU_EVENTS: dict[type, Any] = {
    Sku.Received: lambda e: contract.StockReceived(
        sku=e.sku,
        warehouse=e.warehouse,
        qty=e.qty,
        serials=e.serials,
        on_hand=e.on_hand,
        received_at=e.received_at,
        unit_cost=getattr(e, "unit_cost", None),
    ),
    Sku.Adjusted: lambda e: contract.StockAdjusted(
        sku=e.sku,
        warehouse=e.warehouse,
        counted=e.counted,
        delta=e.delta,
        reason=e.reason,
        on_hand=e.counted,
    ),
    Sku.Returned: lambda e: contract.StockReturned(
        sku=e.sku, warehouse=e.warehouse, qty=e.qty, serials=e.serials, order_id=e.order_id
    ),
    Sku.Transferred: lambda e: contract.StockTransferred(
        transfer_id=e.transfer_id,
        sku=e.sku,
        from_warehouse=e.source,
        to_warehouse=e.target,
        qty=e.qty,
    ),
    Sku.TransferReceived: lambda e: contract.TransferReceived(
        transfer_id=e.transfer_id, sku=e.sku, to_warehouse=e.target, qty=e.qty
    ),
    Sku.LowStockDetected: lambda e: contract.LowStockDetected(
        sku=e.sku, available=e.available, safety_stock=e.safety_stock
    ),
    Sku.ReorderSuggested: lambda e: contract.ReorderSuggested(
        sku=e.sku,
        quantity=e.quantity,
        available=e.available,
        daily_velocity=e.daily_velocity,
        lead_time_days=e.lead_time_days,
        safety_stock=e.safety_stock,
    ),
}


#: One message on inventory.v1 for each published event, none for events kept inside.
to_outbound = on_topic(INVENTORY.name, to_contract)
