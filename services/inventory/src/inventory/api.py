"""HTTP API of the inventory service: thin routes over the application and read models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, StringConstraints
from shopfloor_runtime.web import (
    MAX_OFFSET,
    Body,
    Code,
    ErrorTable,
    PositiveAmount,
    Text,
    Whole,
    error_responses,
    rule_broken,
)

from inventory.application import InventoryApplication
from inventory.domain import (
    InvalidStock,
    ReservationNotFound,
    ReturnNotFound,
    SerialNotFound,
    Sku,
    UnknownSku,
    UnknownTransfer,
)
from inventory.projection import InventoryQueries

#: A SKU: a code without "/", since it is a path segment (GET /stock/{sku}; "/stock/%2F"
#: would reach the list route)
SkuCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
]


class ReceiptIn(Body):
    sku: SkuCode
    warehouse: Code
    qty: Whole = Field(gt=0, le=1_000_000)
    serials: list[Code] = Field(
        default_factory=list, max_length=10_000, description="one per unit, for serialized goods"
    )
    unit_cost: PositiveAmount | None = Field(
        None, description="what one unit cost to buy (analytics' margin: weighted average)"
    )


class ReturnIn(Body):
    sku: SkuCode
    warehouse: Code
    qty: Whole = Field(gt=0, le=1_000_000)
    serials: list[Code] = Field(default_factory=list, max_length=10_000)
    order_id: Code | None = Field(None, description="the order the units came back from")


class AdjustmentIn(Body):
    sku: SkuCode
    warehouse: Code
    counted: Whole = Field(ge=0, le=10_000_000, description="units found by the count")
    reason: Text


class TransferIn(Body):
    sku: SkuCode
    from_warehouse: Code
    to_warehouse: Code
    qty: Whole = Field(gt=0, le=1_000_000)


class TransferReceiptIn(Body):
    sku: SkuCode


class PolicyIn(Body):
    safety_stock: Whole = Field(0, ge=0, le=10_000_000)
    lead_time_days: Whole = Field(7, ge=0, le=365)
    purchase_limit: Whole | None = Field(
        None, ge=1, le=10_000_000, description="units per customer"
    )
    presale_allowance: Whole = Field(
        0, ge=0, le=10_000_000, description="units sellable before they arrive"
    )


class WarehouseOut(BaseModel):
    warehouse: str
    on_hand: int
    reserved: int
    available: int


class StockOut(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    in_transit: int
    presale_allowance: int
    presold: int
    safety_stock: int
    lead_time_days: int
    purchase_limit: int | None
    below_safety: bool
    warehouses: list[WarehouseOut]
    version: int

    @classmethod
    def of(cls, item: Sku) -> StockOut:
        return cls(
            sku=item.sku,
            on_hand=item.on_hand,
            reserved=item.reserved,
            available=item.available,
            in_transit=item.in_transit,
            presale_allowance=item.presale_allowance,
            presold=item.presold,
            safety_stock=item.safety_stock,
            lead_time_days=item.lead_time_days,
            purchase_limit=item.purchase_limit,
            below_safety=item.below_safety,
            warehouses=[
                WarehouseOut(
                    warehouse=code,
                    on_hand=w["on_hand"],
                    reserved=w["reserved"],
                    available=w["on_hand"] - w["reserved"],
                )
                for code, w in sorted(item.stock.items())
            ],
            version=item.version,
        )


class TransferOut(BaseModel):
    transfer_id: str
    stock: StockOut


class ReservationOut(BaseModel):
    order_id: str
    status: str
    lines: list[dict[str, Any]]
    short_lines: list[dict[str, Any]]
    warehouse: str | None = Field(
        description="where fulfilment ships it from, once every unit was moved there"
    )
    shipment_id: str | None


class ReturnOut(BaseModel):
    return_id: str
    order_id: str
    lines: list[dict[str, Any]] = Field(
        description="as the warehouse inspected them: sku, qty, condition, warehouse, serials"
    )
    restocked: int = Field(description="resellable units put back on hand")
    set_aside: int = Field(description="units that came back damaged: not on hand")


def router() -> APIRouter:
    api = APIRouter(tags=["stock"])

    def app(request: Request) -> InventoryApplication:
        return request.app.state.inventory  # type: ignore[no-any-return]

    def queries(request: Request) -> InventoryQueries:
        return request.app.state.queries  # type: ignore[no-any-return]

    @api.post(
        "/stock/receipts", status_code=201, response_model=StockOut, responses=error_responses(422)
    )
    def receive_stock(body: ReceiptIn, request: Request) -> StockOut:
        """Goods arrived in a warehouse (with serial numbers for serialized goods)."""
        item = app(request).receive_stock(
            body.sku, body.warehouse, body.qty, body.serials, body.unit_cost
        )
        return StockOut.of(item)

    @api.post("/stock/returns", response_model=StockOut, responses=error_responses(404, 422))
    def return_stock(body: ReturnIn, request: Request) -> StockOut:
        """Units a customer sent back go on hand again."""
        item = app(request).return_stock(
            body.sku, body.warehouse, body.qty, body.serials, body.order_id
        )
        return StockOut.of(item)

    @api.post("/stock/adjustments", response_model=StockOut, responses=error_responses(404, 422))
    def adjust_stock(body: AdjustmentIn, request: Request) -> StockOut:
        """A stock count: on hand becomes the counted quantity."""
        item = app(request).adjust_stock(body.sku, body.warehouse, body.counted, body.reason)
        return StockOut.of(item)

    @api.post(
        "/stock/transfers",
        status_code=201,
        response_model=TransferOut,
        responses=error_responses(404, 422),
    )
    def transfer_stock(body: TransferIn, request: Request) -> TransferOut:
        """Send units to another warehouse; they are in transit until received."""
        item, transfer_id = app(request).transfer_stock(
            body.sku, body.from_warehouse, body.to_warehouse, body.qty
        )
        return TransferOut(transfer_id=transfer_id, stock=StockOut.of(item))

    @api.post(
        "/stock/transfers/{transfer_id}/receipt",
        response_model=StockOut,
        responses=error_responses(404, 422),
    )
    def receive_transfer(transfer_id: Code, body: TransferReceiptIn, request: Request) -> StockOut:
        """The transferred units arrived."""
        return StockOut.of(app(request).receive_transfer(body.sku, transfer_id))

    @api.get("/stock/reconciliation", responses=error_responses(422))
    def reconciliation(request: Request, only_differences: bool = False) -> list[dict[str, Any]]:
        """Each SKU's reserved total next to the sum of its open reservations."""
        rows = queries(request).reconciliation()
        return [r for r in rows if r["difference"]] if only_differences else rows

    @api.get("/stock/{sku}", response_model=StockOut, responses=error_responses(404, 422))
    def get_stock(sku: SkuCode, request: Request) -> StockOut:
        """Totals and per-warehouse stock of one SKU, as of now."""
        return StockOut.of(app(request).read_sku(sku))

    @api.get("/stock", responses=error_responses(422))
    def list_stock(
        request: Request,
        below_safety: bool = False,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> list[dict[str, Any]]:
        """SKUs with their totals; `below_safety=true`: only those under safety stock."""
        if below_safety:
            return queries(request).below_safety()
        return queries(request).all_stock(limit, offset)

    @api.put("/stock/{sku}/policy", response_model=StockOut, responses=error_responses(404, 422))
    def set_policy(sku: SkuCode, body: PolicyIn, request: Request) -> StockOut:
        """Safety stock, lead time, per-customer purchase limit, presale allowance."""
        return StockOut.of(app(request).set_policy(sku, **body.model_dump()))

    @api.get("/reorder-suggestions")
    def reorder_suggestions(request: Request) -> list[dict[str, Any]]:
        """What to reorder now: SKUs below safety stock, with a quantity from recent sales
        (worked out afresh on every call; the ReorderSuggested event is the first one)."""
        inventory, now = app(request), app(request).clock.now()
        fresh = []
        for row in queries(request).reorder_suggestions():
            item, first = inventory.read_sku(row["sku"]), row.pop("suggested_at")
            fresh.append(
                {
                    **row,
                    "quantity": item.reorder_quantity(now),
                    "daily_velocity": round(item.daily_velocity(now), 3),
                    "available": item.available,
                    "in_transit": item.in_transit,
                    "first_suggested_at": first,
                }
            )
        return fresh

    @api.get("/serials/{serial}", responses=error_responses(404, 422))
    def serial_history(serial: Code, request: Request) -> list[dict[str, Any]]:
        """One unit's history: received, reserved, released, shipped."""
        history = queries(request).serial_history(serial)
        if not history:
            raise SerialNotFound(serial)
        return history

    @api.get(
        "/reservations/{order_id}",
        response_model=ReservationOut,
        responses=error_responses(404, 422),
    )
    def get_reservation(order_id: Code, request: Request) -> ReservationOut:
        """The inventory decision for one order."""
        found = app(request).find_reservation(order_id)
        if found is None:
            raise ReservationNotFound(order_id)
        return ReservationOut(
            order_id=found.order_id,
            status=found.status,
            lines=found.lines,
            short_lines=found.short_lines,
            warehouse=found.warehouse,
            shipment_id=found.shipment_id,
        )

    @api.get("/returns/{return_id}", response_model=ReturnOut, responses=error_responses(404, 422))
    def get_return(return_id: Code, request: Request) -> ReturnOut:
        """A customer return as inventory took it in (from the service desk's receipt)."""
        found = app(request).find_return(return_id)
        if found is None:
            raise ReturnNotFound(return_id)
        return ReturnOut(
            return_id=found.return_id,
            order_id=found.order_id,
            lines=found.lines,
            restocked=found.units(resellable=True),
            set_aside=found.units(resellable=False),
        )

    return api


ERRORS: ErrorTable = {
    InvalidStock: (422, rule_broken),
    UnknownSku: 404,
    UnknownTransfer: 404,
    SerialNotFound: 404,
    ReservationNotFound: 404,
    ReturnNotFound: 404,
}
