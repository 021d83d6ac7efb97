"""The only module that knows both fulfilment's domain events and the contracts. The
label (recipient, street) and the order files stay inside: nothing personal is
published on fulfilment.v1."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from shopfloor_contracts import fulfilment as contract
from shopfloor_contracts.topics import FULFILMENT
from shopfloor_runtime.edge import on_topic

from fulfilment.domain import OrderFile, Shipment, Wave


def _lines(lines: list[dict[str, Any]], order_id: str | None = None) -> list[contract.ShipmentLine]:
    return [
        contract.ShipmentLine(
            order_id=ln.get("order_id") or order_id or "",
            sku=ln["sku"],
            qty=ln["qty"],
            serials=list(ln.get("serials") or []),
        )
        for ln in lines
    ]


def _warehouses(rows: list[dict[str, Any]]) -> list[contract.WarehouseCandidate]:
    return [
        contract.WarehouseCandidate(
            warehouse=r["warehouse"],
            rank=r["rank"],
            distance_km=r["distance_km"],
            chosen=r["chosen"],
            reason=r["reason"],
        )
        for r in rows
    ]


def _carriers(rows: list[dict[str, Any]]) -> list[contract.CarrierCandidate]:
    return [
        contract.CarrierCandidate(
            carrier=r["carrier"],
            service=r["service"],
            cost=Decimal(str(r["cost"])),
            transit_days=r["transit_days"],
            chosen=r["chosen"],
            reason=r["reason"],
        )
        for r in rows
    ]


def _allocated(e: Any) -> contract.ShipmentAllocated:
    return contract.ShipmentAllocated(
        shipment_id=str(e.originator_id),
        order_id=e.order_id,
        order_ids=[e.order_id],
        customer_id=e.customer_id,
        warehouse=e.warehouse,
        zone=e.zone,
        carrier=e.carrier,
        service=e.service,
        service_level=e.service_level,
        promised_by=e.promised_by,
        lines=_lines(e.lines, e.order_id),
        weight_grams=e.weight_grams,
        declared_value=Decimal(e.value),
        warehouses=_warehouses(e.warehouses),
        carriers=_carriers(e.carriers),
        allocated_at=e.allocated_at,
        replaces=_replaces(e),
    )


def _replaces(e: Any) -> dict[str, str]:
    """Replacement ids among the event's orders (events stored before there were
    replacements have no `replaces`)."""
    return dict(getattr(e, "replaces", None) or {})


def to_contract(e: Any) -> tuple[str, BaseModel] | None:
    """(key, contract payload) for a domain event, or None for events kept inside."""
    build = _EVENTS.get(type(e))
    return None if build is None else build(e)


def _joined(e: Any) -> tuple[str, BaseModel]:
    """A merge: the order joins a shipment that still waits for its wave."""
    return e.first_order_id, contract.ShipmentAllocated(
        shipment_id=str(e.originator_id),
        order_id=e.order_id,
        order_ids=e.order_ids,
        customer_id=e.customer_id,
        warehouse=e.warehouse,
        zone=e.zone,
        carrier=e.carrier,
        service=e.service,
        service_level=e.service_level,
        promised_by=e.promised_by,
        lines=_lines(e.lines, e.order_id),
        weight_grams=e.shipment_grams,
        declared_value=Decimal(e.value),
        merged=True,
        warehouses=[
            contract.WarehouseCandidate(
                warehouse=e.warehouse,
                rank=1,
                chosen=True,
                reason=f"merged: same customer and address as order {e.first_order_id}, "
                "whose shipment still waits for its wave",
            )
        ],
        carriers=[],
        allocated_at=e.at,
    )


_EVENTS: dict[type, Callable[[Any], tuple[str, BaseModel]]] = {
    Shipment.Allocated: lambda e: (e.first_order_id, _allocated(e)),
    Shipment.Joined: _joined,
    OrderFile.Unallocated: lambda e: (
        e.order_id,
        contract.ShipmentUnallocated(
            shipment_id=e.shipment,
            order_id=e.order_id,
            warehouses=_warehouses(e.warehouses),
            reason=e.reason,
            at=e.at,
        ),
    ),
    Wave.Released: lambda e: (
        str(e.originator_id),
        contract.WaveReleased(
            wave_id=str(e.originator_id),
            warehouse=e.warehouse,
            zone=e.zone,
            sequence=e.sequence,
            shipment_ids=e.shipment_ids,
            order_ids=e.order_ids,
            pick_list=[contract.PickLine(**ln) for ln in e.pick_list],
            trigger=e.trigger,
            opened_at=e.opened_at,
            released_at=e.released_at,
        ),
    ),
    Wave.Picked: lambda e: (
        str(e.originator_id),
        contract.ItemPicked(
            wave_id=str(e.originator_id),
            shipment_id=e.shipment_id,
            order_id=e.order_id,
            picker=e.picker,
            bin=e.bin,
            sku=e.sku,
            qty=e.qty,
            serial=e.serial,
            picked_at=e.at,
        ),
    ),
    Wave.ScanRefused: lambda e: (
        str(e.originator_id),
        contract.ScanRefused(
            wave_id=str(e.originator_id),
            warehouse=e.warehouse,
            picker=e.picker,
            bin=e.bin,
            sku=e.sku,
            qty=e.qty,
            serial=e.serial,
            reason=e.reason,
            refused_at=e.at,
        ),
    ),
    Shipment.Pulled: lambda e: (
        e.order_ids[0],
        contract.ShipmentPulled(
            shipment_id=str(e.originator_id),
            order_id=e.order_id,
            wave_id=e.wave_id,
            returned_picks=_lines(e.returned, e.order_id),
            at=e.at,
            reason=getattr(e, "reason", "cancelled"),
        ),
    ),
    Shipment.Flagged: lambda e: (
        e.order_ids[0],
        contract.ShipmentFlagged(
            shipment_id=str(e.originator_id),
            order_ids=e.order_ids,
            reason=e.reason,
            expected_grams=e.expected_grams,
            measured_grams=e.measured_grams,
            missing=_lines(e.missing),
            at=e.at,
        ),
    ),
    Shipment.Packed: lambda e: (
        e.order_ids[0],
        contract.ShipmentPacked(
            shipment_id=str(e.originator_id),
            order_ids=e.order_ids,
            weight_grams=e.weight_grams,
            packed_at=e.at,
        ),
    ),
    Shipment.Dispatched: lambda e: (
        e.order_ids[0],
        contract.ShipmentDispatched(
            shipment_id=str(e.originator_id),
            order_ids=e.order_ids,
            warehouse=e.warehouse,
            carrier=e.carrier,
            service=e.service,
            tracking_number=e.tracking_number,
            lines=_lines(e.lines),
            promised_by=e.promised_by,
            dispatched_at=e.at,
            replaces=_replaces(e),
        ),
    ),
    Shipment.Tracked: lambda e: (
        e.order_ids[0],
        contract.TrackingUpdated(
            shipment_id=str(e.originator_id),
            order_ids=e.order_ids,
            tracking_number=e.tracking_number,
            milestone=e.milestone,
            place=e.place,
            at=e.at,
            replaces=_replaces(e),
        ),
    ),
    Shipment.DeliveryFailed: lambda e: (
        e.order_ids[0],
        contract.DeliveryFailed(
            shipment_id=str(e.originator_id),
            order_ids=e.order_ids,
            tracking_number=e.tracking_number,
            place=e.place,
            attempt=e.attempt,
            at=e.at,
            replaces=_replaces(e),
        ),
    ),
    Shipment.Delayed: lambda e: (
        e.order_ids[0],
        contract.ShipmentDelayed(
            shipment_id=str(e.originator_id),
            order_ids=e.order_ids,
            promised_by=e.promised_by,
            last_milestone=e.last_milestone,
            detected_at=e.at,
            replaces=_replaces(e),
        ),
    ),
}


#: One message on fulfilment.v1 for each published event, none for events kept inside.
to_outbound = on_topic(FULFILMENT.name, to_contract)
