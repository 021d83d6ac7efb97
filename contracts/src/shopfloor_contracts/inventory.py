"""Events on `inventory.v1` that other services consume (the producer is the inventory
service). Reservations are keyed by order id."""

from __future__ import annotations

from pydantic import Field

from shopfloor_contracts.envelope import Strict


class ReservedLine(Strict):
    sku: str
    qty: int = Field(gt=0)
    warehouse: str


class StockReserved(Strict):
    order_id: str
    reservation_id: str
    lines: list[ReservedLine]


class RejectedLine(Strict):
    sku: str
    requested: int
    available: int


class ReservationRejected(Strict):
    order_id: str
    short_lines: list[RejectedLine] = Field(min_length=1)
