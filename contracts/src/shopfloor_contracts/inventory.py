"""Events on `inventory.v1`, produced by the inventory service. Reservation events are
keyed by order id (one order's story stays in order); stock events by SKU."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shopfloor_contracts.envelope import Money, Strict


class ReservedLine(Strict):
    sku: str
    qty: int = Field(gt=0)
    warehouse: str = Field(description='a warehouse code, or "presale" for presold units')
    serials: list[str] = Field(default_factory=list)


class WarehouseAvailability(Strict):
    sku: str
    warehouse: str
    available: int = Field(description="free units there right after this decision")


class StockReserved(Strict):
    order_id: str
    reservation_id: str
    lines: list[ReservedLine]
    availability: list[WarehouseAvailability] = Field(
        default_factory=list,
        description="for each of the order's SKUs, what every warehouse still had free "
        "after the reservation: a hint for fulfilment's warehouse choice (inventory "
        "decides a move for good, see ReservationMoved)",
    )
    replaces: str | None = Field(
        None,
        description="set when order_id is a service desk replacement (a re-ship or exchange), "
        "not an order: the order it replaces goods of (added later)",
    )


class ReservationMoved(Strict):
    """Fulfilment chose a shipping warehouse (ShipmentAllocated): every unit the order
    holds is now held there. Sent also when the units were there already."""

    order_id: str
    reservation_id: str
    shipment_id: str
    warehouse: str
    lines: list[ReservedLine] = Field(description="the whole reservation afterwards")


class ReservationMoveRefused(Strict):
    """The chosen warehouse cannot hold every unit of the order: nothing moved."""

    order_id: str
    shipment_id: str
    warehouse: str
    short_lines: list[RejectedLine] = Field(min_length=1)


class RejectedLine(Strict):
    sku: str
    requested: int
    available: int
    reason: Literal["insufficient_stock", "purchase_limit", "unknown_sku"] = "insufficient_stock"


class ReservationRejected(Strict):
    order_id: str
    short_lines: list[RejectedLine] = Field(min_length=1)
    replaces: str | None = Field(
        None,
        description="set when order_id is a service desk replacement (a re-ship or exchange), "
        "not an order: the order it replaces goods of (added later)",
    )


class ReservationReleased(Strict):
    order_id: str
    reservation_id: str
    lines: list[ReservedLine]
    reason: str


class StockCommitted(Strict):
    order_id: str
    reservation_id: str
    lines: list[ReservedLine]


class StockReceived(Strict):
    sku: str
    warehouse: str
    qty: int = Field(gt=0)
    serials: list[str] = Field(default_factory=list)
    on_hand: int = Field(description="on hand in this warehouse afterwards")
    received_at: AwareDatetime
    unit_cost: Money | None = Field(
        None, description="what one unit cost to buy, when the receipt said (added later)"
    )


class StockReturned(Strict):
    sku: str
    warehouse: str
    qty: int = Field(gt=0)
    serials: list[str] = Field(default_factory=list)
    order_id: str | None = None


class StockAdjusted(Strict):
    sku: str
    warehouse: str
    counted: int = Field(ge=0)
    delta: int
    reason: str
    on_hand: int


class StockTransferred(Strict):
    transfer_id: str
    sku: str
    from_warehouse: str
    to_warehouse: str
    qty: int = Field(gt=0)


class TransferReceived(Strict):
    transfer_id: str
    sku: str
    to_warehouse: str
    qty: int = Field(gt=0)


class LowStockDetected(Strict):
    sku: str
    available: int
    safety_stock: int


class ReorderSuggested(Strict):
    sku: str
    quantity: int = Field(gt=0)
    available: int
    daily_velocity: float
    lead_time_days: int
    safety_stock: int
