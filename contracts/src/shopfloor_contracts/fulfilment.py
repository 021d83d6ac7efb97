"""Events on `fulfilment.v1`, produced by the fulfilment service. Shipment events are
keyed by the shipment's first order id (a merged shipment carries several orders, and
its story stays on one partition); wave events by wave id. Analysts read this topic:
the label (recipient, street) stays inside fulfilment; nothing here names a person."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shopfloor_contracts.envelope import Money, Strict

Milestone = Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "failed"]


class ShipmentLine(Strict):
    order_id: str
    sku: str
    qty: int = Field(gt=0)
    serials: list[str] = Field(default_factory=list)


class WarehouseCandidate(Strict):
    """One warehouse considered for a shipment, best first; `reason` says why it was
    not chosen ("WH-AMS: over today's capacity 400/400"), or is null for the winner."""

    warehouse: str
    rank: int = Field(ge=1)
    distance_km: float | None = Field(None, description="from the destination region")
    chosen: bool
    reason: str | None = None


class CarrierCandidate(Strict):
    carrier: str
    service: str
    cost: Money
    transit_days: int
    chosen: bool
    reason: str | None = None


class ShipmentAllocated(Strict):
    """An order got its shipment: a warehouse (where inventory must hold every unit) and
    a carrier service. A merged order names the shipment it joined (`merged`)."""

    shipment_id: str
    order_id: str = Field(description="the order this allocation is for")
    order_ids: list[str] = Field(description="every order in the shipment so far")
    customer_id: str
    warehouse: str
    zone: str = Field(description="the wave lane it waits in (a zone, or 'multi')")
    carrier: str
    service: str
    service_level: str
    promised_by: AwareDatetime
    lines: list[ShipmentLine] = Field(description="this order's lines")
    weight_grams: int = Field(ge=0, description="expected, the whole shipment")
    declared_value: Money
    merged: bool = False
    warehouses: list[WarehouseCandidate]
    carriers: list[CarrierCandidate]
    allocated_at: AwareDatetime
    replaces: dict[str, str] = Field(
        default_factory=dict,
        description="replacement id -> the order it replaces goods of (a service desk "
        "re-ship or exchange): these ids in order_ids are no orders (added later)",
    )


class ShipmentUnallocated(Strict):
    """No warehouse could take the order (stock, capacity, or splits not allowed): it
    waits, with every candidate's reason, and is tried again."""

    shipment_id: str
    order_id: str
    warehouses: list[WarehouseCandidate]
    reason: str
    at: AwareDatetime


class PickLine(Strict):
    sequence: int = Field(ge=1, description="position along the walking route")
    bin: str
    zone: str
    sku: str
    qty: int = Field(gt=0)
    shipment_id: str
    order_id: str
    serials: list[str] = Field(default_factory=list)


class WaveReleased(Strict):
    wave_id: str = Field(description="derived from warehouse, zone and sequence number")
    warehouse: str
    zone: str
    sequence: int = Field(ge=1, description="the lane's n-th wave")
    shipment_ids: list[str]
    order_ids: list[str]
    pick_list: list[PickLine]
    trigger: Literal["size", "window"]
    opened_at: AwareDatetime
    released_at: AwareDatetime


class ItemPicked(Strict):
    wave_id: str
    shipment_id: str
    order_id: str
    picker: str
    bin: str
    sku: str
    qty: int = Field(gt=0)
    serial: str | None = None
    picked_at: AwareDatetime


class ScanRefused(Strict):
    """A picker's scan the service refused: a wrong item, a bin that does not hold it, a
    serial not reserved for the wave or picked already, more than is left to pick. A
    picking mistake the scanner caught; with ItemPicked it gives the picking accuracy
    (accepted scans / all scans). Keyed by wave id, like ItemPicked. Added in issue #11:
    scans refused before then were never published."""

    wave_id: str
    warehouse: str
    picker: str
    bin: str
    sku: str
    qty: int = Field(gt=0)
    serial: str | None = None
    reason: str = Field(description="the refusal the scanner showed")
    refused_at: AwareDatetime


class ShipmentPulled(Strict):
    """An order cancelled or held by risk before dispatch left its shipment (and wave):
    picked units go back to their bins. A held order gets a new shipment when released."""

    shipment_id: str
    order_id: str
    wave_id: str | None = None
    returned_picks: list[ShipmentLine] = Field(default_factory=list)
    at: AwareDatetime
    reason: Literal["cancelled", "held"] = Field(
        "cancelled", description="why it left: cancelled, or held by risk (added later)"
    )


class ShipmentFlagged(Strict):
    """The pack check failed: a supervisor must look at the shipment."""

    shipment_id: str
    order_ids: list[str]
    reason: str
    expected_grams: int
    measured_grams: int
    missing: list[ShipmentLine] = Field(default_factory=list)
    at: AwareDatetime


class ShipmentPacked(Strict):
    shipment_id: str
    order_ids: list[str]
    weight_grams: int
    packed_at: AwareDatetime


class ShipmentDispatched(Strict):
    shipment_id: str
    order_ids: list[str]
    warehouse: str
    carrier: str
    service: str
    tracking_number: str
    lines: list[ShipmentLine]
    promised_by: AwareDatetime
    dispatched_at: AwareDatetime
    replaces: dict[str, str] = Field(
        default_factory=dict,
        description="replacement id -> the order it replaces goods of (a service desk "
        "re-ship or exchange): these ids in order_ids are no orders (added later)",
    )


class TrackingUpdated(Strict):
    shipment_id: str
    order_ids: list[str]
    tracking_number: str
    milestone: Milestone
    place: str | None = Field(None, description="a depot or town, as the carrier says")
    at: AwareDatetime
    replaces: dict[str, str] = Field(
        default_factory=dict,
        description="replacement id -> the order it replaces goods of (a service desk "
        "re-ship or exchange): these ids in order_ids are no orders (added later)",
    )


class ShipmentDelayed(Strict):
    shipment_id: str
    order_ids: list[str]
    promised_by: AwareDatetime
    last_milestone: str | None
    detected_at: AwareDatetime
    replaces: dict[str, str] = Field(
        default_factory=dict,
        description="replacement id -> the order it replaces goods of (a service desk "
        "re-ship or exchange): these ids in order_ids are no orders (added later)",
    )


class DeliveryFailed(Strict):
    shipment_id: str
    order_ids: list[str]
    tracking_number: str
    place: str | None = None
    attempt: int = Field(ge=1)
    at: AwareDatetime
    replaces: dict[str, str] = Field(
        default_factory=dict,
        description="replacement id -> the order it replaces goods of (a service desk "
        "re-ship or exchange): these ids in order_ids are no orders (added later)",
    )
