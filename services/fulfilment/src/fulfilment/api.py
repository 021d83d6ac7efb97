"""HTTP API of the fulfilment service: scans, pack checks, carrier webhooks, and the
shipments, waves, pickers and capacity behind them. Thin routes over the application
and read models."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field
from shopfloor_runtime.web import (
    MAX_OFFSET,
    Body,
    Code,
    ErrorTable,
    Text,
    Whole,
    error_responses,
)

from fulfilment.application import FulfilmentApplication, PackRefused
from fulfilment.domain import (
    Refused,
    Shipment,
    ShipmentNotFound,
    UnknownWarehouse,
    Wave,
    WaveNotFound,
)
from fulfilment.projection import FulfilmentQueries

WaveStatus = Literal["released", "picking", "picked", "cancelled"]


class PickIn(Body):
    picker: Code
    bin: Code
    sku: Code
    qty: Whole = Field(1, ge=1, le=10_000)
    serial: Code | None = Field(None, description="for serialized goods: the unit's serial")
    barcode: Code | None = Field(
        None, description="the scanned item barcode, if the scanner sends one: must be the SKU"
    )


class PackedItemIn(Body):
    sku: Code
    qty: Whole = Field(ge=1, le=10_000)
    serials: list[Code] = Field(default_factory=list, max_length=10_000)


class PackIn(Body):
    weight_grams: Whole = Field(ge=1, le=1_000_000, description="as the scale measured it")
    items: list[PackedItemIn] = Field(max_length=1000, description="the rescan at the station")
    station: Code | None = None


class TrackingIn(Body):
    """A carrier webhook."""

    milestone: Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "failed"]
    time: AwareDatetime
    place: Text | None = None


class ShipmentOut(BaseModel):
    shipment_id: str
    status: str
    order_ids: list[str]
    customer_id: str
    warehouse: str
    zone: str
    carrier: str
    service: str
    service_level: str
    promised_by: str
    allocated_at: str
    wave_id: str | None
    lines: list[dict[str, Any]]
    weight_grams: int
    warehouses: list[dict[str, Any]] = Field(description="ranked, with each rejection's reason")
    carriers: list[dict[str, Any]]
    flags: list[dict[str, Any]]
    tracking_number: str | None
    tracking: list[dict[str, Any]]
    delayed: bool

    @classmethod
    def of(cls, s: Shipment) -> ShipmentOut:
        return cls(
            shipment_id=str(s.id),
            status=s.status,
            order_ids=s.order_ids,
            customer_id=s.customer_id,
            warehouse=s.warehouse,
            zone=s.zone,
            carrier=s.carrier,
            service=s.service,
            service_level=s.service_level,
            promised_by=s.promised_by.isoformat(),
            allocated_at=s.allocated_at.isoformat(),
            wave_id=s.wave_id,
            lines=s.lines,
            weight_grams=s.weight_grams,
            warehouses=s.warehouses,
            carriers=s.carriers,
            flags=[{**f, "at": f["at"].isoformat()} for f in s.flags],
            tracking_number=s.tracking_number,
            tracking=[{**t, "at": t["at"].isoformat()} for t in s.tracking],
            delayed=s.delayed,
        )


class WaveOut(BaseModel):
    wave_id: str
    warehouse: str
    zone: str
    sequence: int
    status: str
    trigger: str
    opened_at: str
    released_at: str
    shipment_ids: list[str]
    order_ids: list[str]
    cancelled_orders: list[str]
    pick_list: list[dict[str, Any]] = Field(description="in walking order, with picked units")

    @classmethod
    def of(cls, w: Wave) -> WaveOut:
        return cls(
            wave_id=str(w.id),
            warehouse=w.warehouse,
            zone=w.zone,
            sequence=w.sequence,
            status=w.status,
            trigger=w.trigger,
            opened_at=w.opened_at.isoformat(),
            released_at=w.released_at.isoformat(),
            shipment_ids=w.shipment_ids,
            order_ids=w.order_ids,
            cancelled_orders=w.pulled,
            pick_list=[
                {
                    **ln,
                    "picked": w.picked.get(ln["sequence"], 0),
                    "cancelled": ln["order_id"] in w.pulled,
                }
                for ln in w.pick_list
            ],
        )


class TrackingOut(BaseModel):
    changed: bool = Field(description="false: a repeated or out-of-order webhook, ignored")
    shipment: ShipmentOut


class CapacityOut(BaseModel):
    warehouse: str
    day: str
    used: int
    limit: int
    left: int


def app(request: Request) -> FulfilmentApplication:
    found: FulfilmentApplication = request.app.state.fulfilment
    return found


def queries(request: Request) -> FulfilmentQueries:
    found: FulfilmentQueries = request.app.state.queries
    return found


def router() -> APIRouter:
    api = APIRouter()

    @api.post(
        "/waves/{wave_id}/picks", response_model=WaveOut, responses=error_responses(404, 409, 422)
    )
    def pick(wave_id: UUID, body: PickIn, request: Request) -> WaveOut:
        """A picker scanned an item at a bin. A wrong item, a bin that does not hold it,
        a serial not reserved for this wave, or more than is left is refused (409, with
        the reason), and counts against the picker's accuracy."""
        if body.barcode is not None and body.barcode != body.sku:
            raise Refused(f"wrong item: barcode {body.barcode} is not {body.sku}")
        wave = app(request).pick(wave_id, body.picker, body.bin, body.sku, body.qty, body.serial)
        return WaveOut.of(wave)

    @api.post(
        "/shipments/{shipment_id}/pack",
        response_model=ShipmentOut,
        responses=error_responses(404, 409, 422),
    )
    def pack(shipment_id: UUID, body: PackIn, request: Request) -> ShipmentOut:
        """The pack check: the rescanned items must be the shipment's, and the weight
        within tolerance of the expected; then label, tracking number, dispatch. A failed
        check is refused (409) and flags the shipment for a supervisor."""
        items = [item.model_dump() for item in body.items]
        return ShipmentOut.of(app(request).pack(shipment_id, body.weight_grams, items))

    @api.post(
        "/shipments/{shipment_id}/tracking",
        response_model=TrackingOut,
        responses=error_responses(404, 409, 422),
    )
    def tracking(shipment_id: UUID, body: TrackingIn, request: Request) -> TrackingOut:
        """A carrier's milestone. Repeated and out-of-order webhooks change nothing."""
        found, changed = app(request).track(shipment_id, body.milestone, body.time, body.place)
        return TrackingOut(changed=changed, shipment=ShipmentOut.of(found))

    @api.get(
        "/shipments/{shipment_id}", response_model=ShipmentOut, responses=error_responses(404, 422)
    )
    def get_shipment(shipment_id: UUID, request: Request) -> ShipmentOut:
        """One shipment: its orders, lines, the ranked warehouses and carriers with the
        reason each lost, its wave, flags and tracking."""
        return ShipmentOut.of(app(request).get_shipment(shipment_id))

    @api.get("/shipments", response_model=list[ShipmentOut], responses=error_responses(422))
    def shipments_of_order(request: Request, order: Code) -> list[ShipmentOut]:
        """The shipments an order is in (one, or several when split)."""
        found = [app(request).get_shipment(s) for s in queries(request).shipments_of(order)]
        return [ShipmentOut.of(s) for s in found]

    @api.get("/waves", responses=error_responses(422))
    def list_waves(
        request: Request,
        status: WaveStatus | None = None,
        warehouse: Code | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> list[dict[str, Any]]:
        """Released waves, newest first."""
        return queries(request).waves(status, warehouse, limit, offset)

    @api.get("/waves/{wave_id}", response_model=WaveOut, responses=error_responses(404, 422))
    def get_wave(wave_id: UUID, request: Request) -> WaveOut:
        """One wave's pick list along the walking route, with what is picked."""
        return WaveOut.of(app(request).get_wave(wave_id))

    @api.get("/pickers/stats")
    def picker_stats(request: Request) -> list[dict[str, Any]]:
        """Per picker: picks, units, refused scans, accuracy, picks per hour."""
        return queries(request).picker_stats()

    @api.get(
        "/warehouses/{code}/capacity",
        response_model=CapacityOut,
        responses=error_responses(404, 422),
    )
    def capacity(code: Code, request: Request, day: date | None = None) -> CapacityOut:
        """Shipments a warehouse took on a day (today by default) against its limit."""
        fulfilment = app(request)
        when = (day or fulfilment.clock.now().date()).isoformat()
        used, limit = fulfilment.capacity(code, when)
        return CapacityOut(
            warehouse=code, day=when, used=used, limit=limit, left=max(limit - used, 0)
        )

    @api.get("/warehouses/{code}/fast-movers", responses=error_responses(404, 422))
    def fast_movers(code: Code, request: Request) -> dict[str, str]:
        """The SKUs slotted as fast movers in the zone nearest packing, with their bins."""
        return app(request).fast_movers(code)

    return api


ERRORS: ErrorTable = {
    ShipmentNotFound: 404,
    WaveNotFound: 404,
    UnknownWarehouse: 404,
    PackRefused: 409,
    Refused: 409,
}
