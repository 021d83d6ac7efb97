"""Shipments, waves and what they are made of. Pure: no I/O, no contracts, no settings.

- `OrderFile`: what fulfilment has heard of one order (placed, recipient, reserved,
  confirmed, cancelled) and the shipment it got; allocation waits for the facts.
- `Shipment`: one parcel of one or more orders (merged), from one warehouse, by one
  carrier service; allocated -> waiting (in a lane) -> in a wave -> picked -> packed
  and dispatched -> tracked to delivered (or failed), delayed once when late.
- `Lane`: the wave being filled for one warehouse and zone; released by size or window
  as the `sequence`-th wave of that lane, so a wave's id follows from (warehouse, zone,
  sequence) and a replay, restart or rebalance can only ever build the same wave.
- `Wave`: a released pick list, and the picks against it.
- `Capacity`: shipments a warehouse took on one day. `Picker`: a picker's scans.
- `MergeSlot`: a customer's last shipment to one address, for merging.

Every id derives from its cause (uuid5), so a message applied again finds what it made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from shopfloor_runtime.aggregates import CheapCopy
from shopfloor_runtime.errors import DomainError, RuleBroken

from fulfilment.rules import OrderFacts, Rules

NAMESPACE = uuid5(NAMESPACE_URL, "urn:shopfloor:fulfilment")
MILESTONES = {"picked_up": 1, "in_transit": 2, "out_for_delivery": 3, "failed": 3, "delivered": 4}
OPEN = ("awaiting_stock", "waiting", "in_wave", "picked")  # before dispatch
DONE = ("delivered", "pulled", "reallocated")


def file_id(order_id: str) -> UUID:
    return uuid5(NAMESPACE, f"order:{order_id}")


def shipment_id(order_id: str, attempt: int = 0, warehouse: str | None = None) -> UUID:
    tail = f":{attempt}" if attempt else ""
    tail += f"@{warehouse}" if warehouse else ""
    return uuid5(NAMESPACE, f"shipment:{order_id}{tail}")


def lane_id(warehouse: str, zone: str, shard: int) -> UUID:
    return uuid5(NAMESPACE, f"lane:{warehouse}:{zone}:{shard}")


def wave_id(warehouse: str, zone: str, shard: int, sequence: int) -> UUID:
    return uuid5(NAMESPACE, f"wave:{warehouse}:{zone}:{shard}:{sequence}")


def capacity_id(warehouse: str, day: str, shard: int) -> UUID:
    return uuid5(NAMESPACE, f"capacity:{warehouse}:{day}:{shard}")


def picker_id(picker: str) -> UUID:
    return uuid5(NAMESPACE, f"picker:{picker}")


def slotting_id(warehouse: str) -> UUID:
    return uuid5(NAMESPACE, f"slotting:{warehouse}")


def merge_id(customer_id: str, fingerprint: str) -> UUID:
    return uuid5(NAMESPACE, f"merge:{customer_id}:{fingerprint}")


class ShipmentNotFound(DomainError):
    def __init__(self, shipment: UUID | str) -> None:
        super().__init__(f"shipment {shipment} not found")


class WaveNotFound(DomainError):
    def __init__(self, wave: UUID | str) -> None:
        super().__init__(f"wave {wave} not found")


class UnknownWarehouse(DomainError):
    def __init__(self, code: str) -> None:
        super().__init__(f"warehouse {code!r} is not configured")


class Refused(DomainError):
    """A scan, a pack check or a step the shipment is not ready for (HTTP 409)."""


class InvalidStep(RuleBroken):
    """Well-formed input that breaks a rule (HTTP 422)."""


# -- what fulfilment knows of an order ------------------------------------------------


class OrderFile(CheapCopy, Aggregate):
    @staticmethod
    def create_id(order_id: str) -> UUID:
        return file_id(order_id)

    @event("Opened")
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.placed: dict[str, Any] | None = None
        self.recipient: dict[str, Any] | None = None  # personal: stays in this store
        self.held: list[dict[str, Any]] | None = None  # reserved lines, by warehouse
        self.free: list[dict[str, Any]] = []  # inventory's availability hint
        self.confirmed_at: datetime | None = None
        self.cancelled = False
        self.hold: str | None = None  # the risk exception holding it, while held
        self.replaces: str | None = None  # a service desk replacement: the order it replaces
        self.shipments: list[str] = []  # current shipment ids (several when split)
        self.refused: dict[str, str] = {}  # warehouse -> inventory's refusal
        self.attempts = 0
        self.unallocated: str | None = None  # why it waits, while it waits

    # facts, each recorded once

    def record_placed(self, **placed: Any) -> None:
        if self.placed is None:
            self._placed(placed=placed)

    @event("Placed")
    def _placed(self, placed: dict[str, Any]) -> None:
        self.placed = placed

    def record_recipient(self, recipient: dict[str, Any]) -> None:
        if self.recipient is None:
            self._recipient(recipient=recipient)

    @event("RecipientRecorded")
    def _recipient(self, recipient: dict[str, Any]) -> None:
        self.recipient = recipient

    def record_reserved(self, lines: list[dict[str, Any]], free: list[dict[str, Any]]) -> None:
        if self.held is None:
            self._reserved(lines=lines, free=free)

    @event("Reserved")
    def _reserved(self, lines: list[dict[str, Any]], free: list[dict[str, Any]]) -> None:
        self.held, self.free = lines, free

    def record_moved(self, lines: list[dict[str, Any]]) -> None:
        if lines != self.held:
            self._moved(lines=lines)

    @event("Moved")
    def _moved(self, lines: list[dict[str, Any]]) -> None:
        self.held = lines

    def record_confirmed(self, at: datetime) -> None:
        if self.confirmed_at is None:
            self._confirmed(at=at)

    @event("Confirmed")
    def _confirmed(self, at: datetime) -> None:
        self.confirmed_at = at

    def record_cancelled(self) -> bool:
        if self.cancelled:
            return False
        self._cancelled(order_id=self.order_id)
        return True

    @event("Cancelled")
    def _cancelled(self, order_id: str) -> None:
        self.cancelled = True

    def record_replacement(
        self,
        original: str,
        placed: dict[str, Any],
        recipient: dict[str, Any] | None,
        at: datetime,
    ) -> None:
        """A re-ship or exchange the service desk asked for: the original order's
        customer and destination, other lines, nothing to pay, confirmed at once (it
        waits only for inventory's reservation)."""
        if self.replaces is None:
            self._replacement(original=original)
            self.record_placed(**placed)
            if recipient is not None:
                self.record_recipient(recipient)
            self.record_confirmed(at)

    @event("ReplacementOf")
    def _replacement(self, original: str) -> None:
        self.replaces = original

    def record_held(self, exception_id: str) -> bool:
        """Risk holds the order; True if it was not held before (so it must be pulled)."""
        if self.cancelled or self.hold == exception_id:
            return False
        was = self.hold
        self._held(exception_id=exception_id)
        return was is None

    @event("Held")
    def _held(self, exception_id: str) -> None:
        self.hold = exception_id

    def record_released(self) -> bool:
        if self.hold is None:
            return False
        self._released(exception_id=self.hold)
        return True

    @event("Released")
    def _released(self, exception_id: str) -> None:
        self.hold = None

    def pulled_for_hold(self, shipment: str) -> None:
        """A held order left this shipment: on release it gets a new one."""
        if shipment in self.shipments:
            self._pulled_for_hold(shipment=shipment)

    @event("PulledForHold")
    def _pulled_for_hold(self, shipment: str) -> None:
        self.shipments = [s for s in self.shipments if s != shipment]

    # allocation

    @property
    def ready(self) -> bool:
        """Every fact allocation needs is in, it is not held, and it has no shipment yet."""
        return (
            bool(self.placed and self.held is not None and self.confirmed_at and not self.cancelled)
            and self.hold is None
            and not self.shipments
        )

    def facts(self) -> OrderFacts:
        assert self.placed is not None and self.held is not None
        held: dict[str, dict[str, int]] = {}
        for line in self.held:
            by_wh = held.setdefault(line["sku"], {})
            by_wh[line["warehouse"]] = by_wh.get(line["warehouse"], 0) + line["qty"]
        free: dict[str, dict[str, int]] = {}
        for hint in self.free:
            free.setdefault(hint["sku"], {})[hint["warehouse"]] = hint["available"]
        return OrderFacts(
            order_id=self.order_id,
            customer_id=self.placed["customer_id"],
            region=self.placed["region"],
            lines=tuple((ln["sku"], ln["qty"]) for ln in self.placed["lines"]),
            value=_decimal(self.placed["value"]),
            service_level=self.placed["service_level"],
            held=held,
            free=free,
        )

    def lines_held_in(self, warehouse: str) -> list[dict[str, Any]]:
        return [dict(ln) for ln in self.held or [] if ln["warehouse"] == warehouse]

    def allocated(self, shipments: list[str]) -> None:
        self._allocated(shipments=shipments)

    @event("Allocated")
    def _allocated(self, shipments: list[str]) -> None:
        self.shipments, self.unallocated = shipments, None
        self.attempts += 1

    def wait_unallocated(
        self, reason: str, warehouses: list[dict[str, Any]], shipment: str, at: datetime
    ) -> None:
        if reason != self.unallocated:
            self._unallocated(
                order_id=self.order_id,
                reason=reason,
                warehouses=warehouses,
                shipment=shipment,
                at=at,
            )

    @event("Unallocated")
    def _unallocated(
        self,
        order_id: str,
        reason: str,
        warehouses: list[dict[str, Any]],
        shipment: str,
        at: datetime,
    ) -> None:
        self.unallocated = reason

    def forget_refusals(self) -> None:
        """Before another try: stock may have arrived where inventory refused."""
        if self.refused:
            self._refusals_forgotten()

    @event("RefusalsForgotten")
    def _refusals_forgotten(self) -> None:
        self.refused = {}

    def move_refused(self, shipment: str, warehouse: str, reason: str) -> None:
        if shipment in self.shipments:
            self._move_refused(shipment=shipment, warehouse=warehouse, reason=reason)

    @event("MoveRefused")
    def _move_refused(self, shipment: str, warehouse: str, reason: str) -> None:
        self.refused = {**self.refused, warehouse: reason}
        self.shipments = [s for s in self.shipments if s != shipment]


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


# -- the shipment -----------------------------------------------------------------------


class Shipment(CheapCopy, Aggregate):
    """Copied by rule for the cache: `orders` entries and `tracking` are replaced by
    events, never changed in place."""

    @staticmethod
    def create_id(shipment: UUID) -> UUID:
        return shipment

    @event("Allocated")
    def __init__(
        self,
        *,
        shipment: UUID,
        first_order_id: str,
        order_id: str,
        customer_id: str,
        fingerprint: str | None,
        warehouse: str,
        zone: str,
        carrier: str,
        service: str,
        service_level: str,
        promised_by: datetime,
        lines: list[dict[str, Any]],
        value: str,
        weight_grams: int,
        in_place: bool,
        warehouses: list[dict[str, Any]],
        carriers: list[dict[str, Any]],
        allocated_at: datetime,
        replaces: dict[str, str] | None = None,  # eventsourcing: pass it (keyword-only)
    ) -> None:
        self.first_order_id, self.customer_id = first_order_id, customer_id
        # replacement id -> the order it replaces goods of (older events: none)
        self.replaces: dict[str, str] = replaces or {}
        self.fingerprint, self.warehouse, self.zone = fingerprint, warehouse, zone
        self.carrier, self.service, self.service_level = carrier, service, service_level
        self.promised_by, self.allocated_at = promised_by, allocated_at
        self.orders: dict[str, dict[str, Any]] = {
            order_id: {
                "lines": lines,
                "value": value,
                "in_place": in_place,
                "weight_grams": weight_grams,
            }
        }
        self.warehouses, self.carriers = warehouses, carriers
        self.status = "waiting" if in_place else "awaiting_stock"
        self.wave_id: str | None = None
        self.flags: list[dict[str, Any]] = []
        self.packed_grams: int | None = None
        self.label: dict[str, Any] | None = None  # personal: stays in this store
        self.tracking_number: str | None = None
        self.dispatched_at: datetime | None = None
        self.tracking: list[dict[str, Any]] = []
        self.milestone: str | None = None
        self.failed_attempts = 0
        self.delayed = False

    @property
    def order_ids(self) -> list[str]:
        return list(self.orders)

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [{"order_id": o, **ln} for o, part in self.orders.items() for ln in part["lines"]]

    @property
    def weight_grams(self) -> int:
        return sum(int(part["weight_grams"]) for part in self.orders.values())

    @property
    def units(self) -> int:
        return sum(ln["qty"] for ln in self.lines)

    # before a wave

    def can_merge(self, zone: str) -> bool:
        return self.status == "waiting" and self.zone == zone

    def join(
        self,
        order_id: str,
        lines: list[dict[str, Any]],
        value: str,
        weight_grams: int,
        at: datetime,
    ) -> None:
        self._joined(
            order_id=order_id,
            lines=lines,
            value=value,
            weight_grams=weight_grams,
            order_ids=[*self.orders, order_id],
            shipment_grams=self.weight_grams + weight_grams,
            first_order_id=self.first_order_id,
            customer_id=self.customer_id,
            warehouse=self.warehouse,
            zone=self.zone,
            carrier=self.carrier,
            service=self.service,
            service_level=self.service_level,
            promised_by=self.promised_by,
            at=at,
        )

    @event("Joined")
    def _joined(
        self,
        order_id: str,
        lines: list[dict[str, Any]],
        value: str,
        weight_grams: int,
        order_ids: list[str],
        shipment_grams: int,
        first_order_id: str,
        customer_id: str,
        warehouse: str,
        zone: str,
        carrier: str,
        service: str,
        service_level: str,
        promised_by: datetime,
        at: datetime,
    ) -> None:
        part = {"lines": lines, "value": value, "in_place": True, "weight_grams": weight_grams}
        self.orders = {**self.orders, order_id: part}

    def stock_in_place(self, order_id: str, lines: list[dict[str, Any]]) -> bool:
        """Inventory holds the order's units here now (with these serials); True when
        this made the shipment ready for a wave."""
        part = self.orders.get(order_id)
        if part is None or part["in_place"] or self.status != "awaiting_stock":
            return False
        self._in_place(order_id=order_id, lines=lines)
        return self.status == "waiting"

    @event("StockInPlace")
    def _in_place(self, order_id: str, lines: list[dict[str, Any]]) -> None:
        part = {**self.orders[order_id], "lines": lines, "in_place": True}
        self.orders = {**self.orders, order_id: part}
        if all(p["in_place"] for p in self.orders.values()):
            self.status = "waiting"

    def reallocate(self, reason: str) -> None:
        """Inventory refused to hold the units here: this shipment is given up."""
        if self.status == "awaiting_stock":
            self._reallocated(reason=reason)

    @event("Reallocated")
    def _reallocated(self, reason: str) -> None:
        self.status = "reallocated"

    def in_wave(self, wave: str) -> None:
        self._in_wave(wave_id=wave)

    @event("InWave")
    def _in_wave(self, wave_id: str) -> None:
        self.status, self.wave_id = "in_wave", wave_id

    def all_picked(self) -> None:
        if self.status == "in_wave":
            self._picked()

    @event("Picked")
    def _picked(self) -> None:
        self.status = "picked"

    def pull(
        self, order_id: str, returned: list[dict[str, Any]], at: datetime, reason: str
    ) -> bool:
        """Take a cancelled or held order out; True if the shipment is now empty."""
        if order_id not in self.orders or self.status not in OPEN:
            return False
        left = [o for o in self.orders if o != order_id]
        self._pulled(
            order_id=order_id,
            order_ids=list(self.orders),
            wave_id=self.wave_id,
            returned=returned,
            empty=not left,
            at=at,
            reason=reason,
        )
        return not left

    @event("Pulled")
    def _pulled(
        self,
        order_id: str,
        order_ids: list[str],
        wave_id: str | None,
        returned: list[dict[str, Any]],
        empty: bool,
        at: datetime,
        reason: str = "cancelled",  # added with holds; older Pulled events were cancels
    ) -> None:
        self.orders = {o: p for o, p in self.orders.items() if o != order_id}
        if empty:
            self.status = "pulled"

    # packing and dispatch

    def expected_grams(self, rules: Rules) -> int:
        return sum(rules.weight(ln["sku"]) * ln["qty"] for ln in self.lines)

    def pack(
        self,
        measured_grams: int,
        items: list[dict[str, Any]],
        recipient: Mapping[str, Any] | None,
        rules: Rules,
        at: datetime,
    ) -> str | None:
        """The pack check. Returns the refusal (the shipment is then flagged for a
        supervisor), or None: packed, labelled and dispatched."""
        if self.status in ("in_wave", "awaiting_stock", "waiting"):
            raise Refused(f"shipment {self.id} is not picked yet ({self.status})")
        if self.status != "picked":
            raise Refused(f"shipment {self.id} is {self.status}: nothing to pack")
        expected = self.expected_grams(rules)
        missing, extra = _compare(self.lines, items)
        reason = None
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(f"{m['qty']}x {m['sku']}" for m in missing))
            if extra:
                parts.append("not in the shipment " + ", ".join(extra))
            reason = "rescan does not match: " + "; ".join(parts)
        elif abs(measured_grams - expected) > expected * rules.pack_tolerance:
            reason = (
                f"weight {measured_grams} g is outside {rules.pack_tolerance:.0%} of the "
                f"expected {expected} g"
            )
        if reason is not None:
            self._flagged(
                reason=reason,
                order_ids=self.order_ids,
                expected_grams=expected,
                measured_grams=measured_grams,
                missing=missing,
                at=at,
            )
            return reason
        if recipient is None:
            raise Refused("no recipient on file yet for this shipment's label; try again")
        tracking = tracking_number(self.carrier, self.id)
        self._packed(order_ids=self.order_ids, weight_grams=measured_grams, at=at)
        self._dispatched(
            replaces=self.replaces,
            order_ids=self.order_ids,
            warehouse=self.warehouse,
            carrier=self.carrier,
            service=self.service,
            tracking_number=tracking,
            lines=self.lines,
            promised_by=self.promised_by,
            label={**recipient, "carrier": self.carrier, "service": self.service},
            at=at,
        )
        return None

    @event("Flagged")
    def _flagged(
        self,
        reason: str,
        order_ids: list[str],
        expected_grams: int,
        measured_grams: int,
        missing: list[dict[str, Any]],
        at: datetime,
    ) -> None:
        self.flags = [*self.flags, {"reason": reason, "at": at, "measured_grams": measured_grams}]

    @event("Packed")
    def _packed(self, order_ids: list[str], weight_grams: int, at: datetime) -> None:
        self.packed_grams = weight_grams

    @event("Dispatched")
    def _dispatched(
        self,
        order_ids: list[str],
        warehouse: str,
        carrier: str,
        service: str,
        tracking_number: str,
        lines: list[dict[str, Any]],
        promised_by: datetime,
        label: dict[str, Any],
        at: datetime,
        replaces: dict[str, str] | None = None,  # added with replacements
    ) -> None:
        self.status, self.tracking_number, self.dispatched_at = "dispatched", tracking_number, at
        self.label = label

    # tracking

    def track(self, milestone: str, at: datetime, place: str | None) -> bool:
        """A carrier webhook. Repeated or out-of-order milestones change nothing; a
        failed attempt can be followed by another delivery round. True if it counted."""
        if (
            self.status not in ("dispatched", "in_transit", "failed")
            or self.tracking_number is None
        ):
            if self.status == "delivered":
                return False
            raise Refused(f"shipment {self.id} is {self.status}: not with a carrier yet")
        seen = {(t["milestone"], t["at"]) for t in self.tracking}
        if (milestone, at) in seen:
            return False
        rank, current = MILESTONES[milestone], MILESTONES.get(self.milestone or "", 0)
        retry = self.milestone == "failed" and milestone in ("out_for_delivery", "delivered")
        if rank <= current and not (retry or (milestone == "failed" and rank == current)):
            return False
        self._tracked(
            replaces=self.replaces,
            milestone=milestone,
            at=at,
            place=place,
            order_ids=self.order_ids,
            tracking_number=self.tracking_number,
        )
        if milestone == "failed":
            self._delivery_failed(
                replaces=self.replaces,
                order_ids=self.order_ids,
                tracking_number=self.tracking_number,
                place=place,
                attempt=self.failed_attempts + 1,
                at=at,
            )
        return True

    @event("Tracked")
    def _tracked(
        self,
        milestone: str,
        at: datetime,
        place: str | None,
        order_ids: list[str],
        tracking_number: str,
        replaces: dict[str, str] | None = None,  # added with replacements
    ) -> None:
        self.tracking = [*self.tracking, {"milestone": milestone, "at": at, "place": place}]
        self.milestone = milestone
        self.status = {"delivered": "delivered", "failed": "failed"}.get(milestone, "in_transit")

    @event("DeliveryFailed")
    def _delivery_failed(
        self,
        order_ids: list[str],
        tracking_number: str,
        place: str | None,
        attempt: int,
        at: datetime,
        replaces: dict[str, str] | None = None,  # added with replacements
    ) -> None:
        self.failed_attempts = attempt

    def check_delay(self, now: datetime) -> bool:
        """Past its promised date and not delivered: flagged once."""
        if self.delayed or self.status in DONE or now <= self.promised_by:
            return False
        self._delayed(
            replaces=self.replaces,
            order_ids=self.order_ids,
            promised_by=self.promised_by,
            last_milestone=self.milestone,
            at=now,
        )
        return True

    @event("Delayed")
    def _delayed(
        self,
        order_ids: list[str],
        promised_by: datetime,
        last_milestone: str | None,
        at: datetime,
        replaces: dict[str, str] | None = None,  # added with replacements
    ) -> None:
        self.delayed = True


def tracking_number(carrier: str, shipment: UUID) -> str:
    digest = hashlib.sha256(f"{carrier}:{shipment}".encode()).hexdigest()
    return f"{carrier.upper()[:3]}{int(digest[:12], 16) % 10**12:012d}"


def _compare(
    lines: list[dict[str, Any]], items: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """What the rescan lacks (by SKU and serial) and what it has that is not packed."""
    want: dict[str, int] = {}
    want_serials: set[str] = set()
    for ln in lines:
        want[ln["sku"]] = want.get(ln["sku"], 0) + ln["qty"]
        want_serials.update(ln.get("serials") or [])
    got: dict[str, int] = {}
    got_serials: set[str] = set()
    for item in items:
        got[item["sku"]] = got.get(item["sku"], 0) + item["qty"]
        got_serials.update(item.get("serials") or [])
    missing = [
        {"order_id": "", "sku": sku, "qty": qty - got.get(sku, 0), "serials": []}
        for sku, qty in sorted(want.items())
        if got.get(sku, 0) < qty
    ]
    for serial in sorted(want_serials - got_serials):
        sku = next(ln["sku"] for ln in lines if serial in (ln.get("serials") or []))
        missing.append({"order_id": "", "sku": sku, "qty": 1, "serials": [serial]})
    extra = [
        f"{qty - want.get(sku, 0)}x {sku}"
        for sku, qty in sorted(got.items())
        if qty > want.get(sku, 0)
    ]
    extra += [f"serial {s}" for s in sorted(got_serials - want_serials)]
    return missing, extra


# -- lanes and waves ------------------------------------------------------------------


class Lane(CheapCopy, Aggregate):
    """Shipments of one warehouse and zone waiting for their wave, in one shard (see
    Rules.shard_of): the waves of a warehouse and zone are numbered per shard."""

    @staticmethod
    def create_id(warehouse: str, zone: str, shard: int) -> UUID:
        return lane_id(warehouse, zone, shard)

    @event("Opened")
    def __init__(self, warehouse: str, zone: str, shard: int) -> None:
        self.warehouse, self.zone, self.shard = warehouse, zone, shard
        self.released = 0  # waves released so far: the next is released + 1
        self.waiting: dict[str, int] = {}  # shipment id -> orders in it
        self.opened_at: datetime | None = None

    @property
    def orders(self) -> int:
        return sum(self.waiting.values())

    def add(self, shipment: str, orders: int, now: datetime) -> None:
        if self.waiting.get(shipment) != orders:
            self._added(shipment=shipment, orders=orders, at=now)

    @event("Added")
    def _added(self, shipment: str, orders: int, at: datetime) -> None:
        if not self.waiting:
            self.opened_at = at
        self.waiting = {**self.waiting, shipment: orders}

    def remove(self, shipment: str) -> None:
        if shipment in self.waiting:
            self._removed(shipment=shipment)

    @event("Removed")
    def _removed(self, shipment: str) -> None:
        self.waiting = {s: n for s, n in self.waiting.items() if s != shipment}
        if not self.waiting:
            self.opened_at = None

    def due(self, now: datetime, rules: Rules) -> str | None:
        if not self.waiting or self.opened_at is None:
            return None
        if self.orders >= rules.wave_size:
            return "size"
        if now >= self.opened_at + rules.wave_window:
            return "window"
        return None

    def release(self, trigger: str, now: datetime) -> tuple[int, list[str], datetime]:
        """Close the wave being filled: (its sequence number, shipments, opened at)."""
        assert self.opened_at is not None
        sequence, shipments, opened = self.released + 1, list(self.waiting), self.opened_at
        self._released(sequence=sequence, shipments=shipments, trigger=trigger, at=now)
        return sequence, shipments, opened

    @event("Released")
    def _released(self, sequence: int, shipments: list[str], trigger: str, at: datetime) -> None:
        self.released, self.waiting, self.opened_at = sequence, {}, None


class Wave(CheapCopy, Aggregate):
    """Copied by rule: picks are replaced per event, lines never change."""

    @staticmethod
    def create_id(warehouse: str, zone: str, shard: int, sequence: int) -> UUID:
        return wave_id(warehouse, zone, shard, sequence)

    @event("Released")
    def __init__(
        self,
        warehouse: str,
        zone: str,
        shard: int,
        sequence: int,
        shipment_ids: list[str],
        order_ids: list[str],
        pick_list: list[dict[str, Any]],
        trigger: str,
        opened_at: datetime,
        released_at: datetime,
    ) -> None:
        self.warehouse, self.zone, self.sequence = warehouse, zone, sequence
        self.shard = shard
        self.shipment_ids, self.order_ids, self.pick_list = shipment_ids, order_ids, pick_list
        self.trigger, self.opened_at, self.released_at = trigger, opened_at, released_at
        self.picked: dict[int, int] = {}  # line sequence -> units picked
        self.picked_serials: dict[int, list[str]] = {}
        self.pulled: list[str] = []  # orders taken out

    def live_lines(self) -> list[dict[str, Any]]:
        return [ln for ln in self.pick_list if ln["order_id"] not in self.pulled]

    def left(self, line: dict[str, Any]) -> int:
        return int(line["qty"]) - self.picked.get(line["sequence"], 0)

    @property
    def status(self) -> str:
        lines = self.live_lines()
        if not lines:
            return "cancelled"
        if all(self.left(ln) == 0 for ln in lines):
            return "picked"
        return "picking" if self.picked else "released"

    def pick(
        self, picker: str, bin_code: str, sku: str, qty: int, serial: str | None, at: datetime
    ) -> list[str]:
        """A scan: refused with the reason if wrong, else picked into the lines that
        still need it, in route order. Returns the shipments it completed."""
        lines = [ln for ln in self.live_lines() if ln["sku"] == sku]
        if not lines:
            raise Refused(f"wrong item: {sku} is not on the pick list of wave {self.id}")
        bins = sorted({ln["bin"] for ln in lines})
        if bin_code not in bins:
            raise Refused(f"bin {bin_code} does not hold {sku} for this wave (its bin: {bins[0]})")
        lines = [ln for ln in lines if ln["bin"] == bin_code]
        if any(ln["serials"] for ln in lines):
            if serial is None:
                raise Refused(f"{sku} is serialized: scan the unit's serial number")
            owner = next((ln for ln in lines if serial in ln["serials"]), None)
            if owner is None:
                raise Refused(f"serial {serial} is not reserved for an order of this wave")
            if serial in self.picked_serials.get(owner["sequence"], []):
                raise Refused(f"serial {serial} was picked already")
            if qty != 1:
                raise Refused("a serial number is one unit: pick qty 1")
            lines = [owner]
        left = sum(self.left(ln) for ln in lines)
        if qty > left:
            raise Refused(f"quantity {qty} is more than the {left} of {sku} left to pick here")
        done_before = self.complete_shipments()
        need = qty
        for line in lines:
            take = min(need, self.left(line))
            if take <= 0:
                continue
            self._picked(
                warehouse=self.warehouse,
                line=line["sequence"],
                shipment_id=line["shipment_id"],
                order_id=line["order_id"],
                picker=picker,
                bin=bin_code,
                sku=sku,
                qty=take,
                serial=serial,
                at=at,
            )
            need -= take
            if need == 0:
                break
        return sorted(self.complete_shipments() - done_before)

    @event("Picked")
    def _picked(
        self,
        warehouse: str,
        line: int,
        shipment_id: str,
        order_id: str,
        picker: str,
        bin: str,
        sku: str,
        qty: int,
        serial: str | None,
        at: datetime,
    ) -> None:
        self.picked = {**self.picked, line: self.picked.get(line, 0) + qty}
        if serial is not None:
            have = self.picked_serials.get(line, [])
            self.picked_serials = {**self.picked_serials, line: [*have, serial]}

    def refuse_scan(
        self,
        picker: str,
        bin_code: str,
        sku: str,
        qty: int,
        serial: str | None,
        reason: str,
        at: datetime,
    ) -> None:
        """Record a scan `pick` refused, to be published: the wave itself is unchanged."""
        self._scan_refused(
            warehouse=self.warehouse,
            picker=picker,
            bin=bin_code,
            sku=sku,
            qty=qty,
            serial=serial,
            reason=reason,
            at=at,
        )

    @event("ScanRefused")
    def _scan_refused(
        self,
        warehouse: str,
        picker: str,
        bin: str,
        sku: str,
        qty: int,
        serial: str | None,
        reason: str,
        at: datetime,
    ) -> None:
        pass  # a fact for analysts (picking accuracy); the picker counts it too

    def complete_shipments(self) -> set[str]:
        by_shipment: dict[str, bool] = {}
        for ln in self.live_lines():
            done = self.left(ln) == 0
            by_shipment[ln["shipment_id"]] = by_shipment.get(ln["shipment_id"], True) and done
        return {s for s, done in by_shipment.items() if done}

    def pull(self, order_id: str) -> list[dict[str, Any]]:
        """Take a cancelled or held order's lines out; returns what had been picked of them
        (to go back to its bins)."""
        if order_id in self.pulled or order_id not in self.order_ids:
            return []
        returned = [
            {
                "order_id": order_id,
                "sku": ln["sku"],
                "qty": self.picked[ln["sequence"]],
                "serials": self.picked_serials.get(ln["sequence"], []),
                "bin": ln["bin"],
            }
            for ln in self.pick_list
            if ln["order_id"] == order_id and self.picked.get(ln["sequence"])
        ]
        units = sum(ln["qty"] for ln in self.pick_list if ln["order_id"] == order_id)
        self._pulled(order_id=order_id, returned=returned, units=units)
        return returned

    @event("Pulled")
    def _pulled(self, order_id: str, returned: list[dict[str, Any]], units: int) -> None:
        self.pulled = [*self.pulled, order_id]


def pick_list(warehouse: str, shipments: list[Shipment], rules: Rules) -> list[dict[str, Any]]:
    """The wave's lines along the walking route; one line per order and SKU, so a
    serialized unit is named once."""
    lines = [
        {
            "bin": ln["bin"],
            "zone": ln["bin"].split("-")[0],
            "sku": ln["sku"],
            "qty": ln["qty"],
            "shipment_id": str(s.id),
            "order_id": ln["order_id"],
            "serials": list(ln.get("serials") or []),
        }
        for s in shipments
        for ln in s.lines
    ]
    lines.sort(key=lambda ln: (rules.route_position(warehouse, ln["bin"]), ln["order_id"]))
    return [{"sequence": n, **ln} for n, ln in enumerate(lines, 1)]


# -- capacity, pickers, merging ----------------------------------------------------------


class Capacity(CheapCopy, Aggregate):
    """One shard's part of a warehouse's shipping capacity on a day: its share of the
    daily limit (Rules.share), plus what it borrowed from other shards, less what it
    lent them. A shard that runs out borrows from one with room, both changed in one
    transaction, so the shards together never take more than the limit and no slot is
    stranded in a quiet shard."""

    @staticmethod
    def create_id(warehouse: str, day: str, shard: int) -> UUID:
        return capacity_id(warehouse, day, shard)

    @event("Opened")
    def __init__(self, warehouse: str, day: str, shard: int) -> None:
        self.warehouse, self.day, self.shard = warehouse, day, shard
        self.shipments: list[str] = []
        self.moved_in = 0  # borrowed less lent

    @property
    def used(self) -> int:
        return len(self.shipments)

    def room(self, share: int) -> int:
        return share + self.moved_in - self.used

    def lend(self, to: int, slots: int) -> None:
        self._lent(to=to, slots=slots)

    @event("Lent")
    def _lent(self, to: int, slots: int) -> None:
        self.moved_in -= slots

    def borrow(self, lender: int, slots: int) -> None:
        self._borrowed(lender=lender, slots=slots)

    @event("Borrowed")
    def _borrowed(self, lender: int, slots: int) -> None:
        self.moved_in += slots

    def take(self, shipment: str) -> None:
        if shipment not in self.shipments:
            self._taken(shipment=shipment)

    @event("Taken")
    def _taken(self, shipment: str) -> None:
        self.shipments = [*self.shipments, shipment]

    def give_back(self, shipment: str) -> None:
        if shipment in self.shipments:
            self._given_back(shipment=shipment)

    @event("GivenBack")
    def _given_back(self, shipment: str) -> None:
        self.shipments = [s for s in self.shipments if s != shipment]


class Picker(Aggregate):
    @staticmethod
    def create_id(picker: str) -> UUID:
        return picker_id(picker)

    @event("Registered")
    def __init__(self, picker: str) -> None:
        self.picker = picker
        self.picks, self.units, self.refused = 0, 0, 0

    def scanned(self, units: int, at: datetime) -> None:
        self._scanned(picker=self.picker, units=units, at=at)

    @event("Scanned")
    def _scanned(self, picker: str, units: int, at: datetime) -> None:
        self.picks += 1
        self.units += units

    def scan_refused(self, reason: str, at: datetime) -> None:
        self._scan_refused(picker=self.picker, reason=reason, at=at)

    @event("ScanRefused")
    def _scan_refused(self, picker: str, reason: str, at: datetime) -> None:
        self.refused += 1


class Slotting(Aggregate):
    """Which SKUs are fast movers in a warehouse, and the bin each has in the zone
    nearest packing. Decided from recent picks (the velocity rule); a shipment takes its
    bins when it is allocated, so a later reslotting never moves a line between zones."""

    @staticmethod
    def create_id(warehouse: str) -> UUID:
        return slotting_id(warehouse)

    @event("Opened")
    def __init__(self, warehouse: str) -> None:
        self.warehouse = warehouse
        self.fast: dict[str, str] = {}  # SKU -> bin

    def reslot(self, fastest: list[str], rules: Rules, at: datetime) -> bool:
        """Give the fastest SKUs (best first, at most the rule's slots) fast bins; a SKU
        that stays fast keeps its bin, so its goods do not move for nothing."""
        wanted = fastest[: rules.fast_movers.slots]
        keep = {sku: b for sku, b in self.fast.items() if sku in wanted}
        free = (
            rules.fast_bin(self.warehouse, rank)
            for rank in range(rules.fast_movers.slots)
            if rules.fast_bin(self.warehouse, rank) not in keep.values()
        )
        fast = {**keep, **{sku: next(free) for sku in wanted if sku not in keep}}
        if fast == self.fast:
            return False
        self._reslotted(
            fast=fast,
            added=sorted(set(fast) - set(self.fast)),
            removed=sorted(set(self.fast) - set(fast)),
            at=at,
        )
        return True

    @event("Reslotted")
    def _reslotted(
        self, fast: dict[str, str], added: list[str], removed: list[str], at: datetime
    ) -> None:
        self.fast = fast


class MergeSlot(Aggregate):
    """A customer's latest shipment to one address (by its fingerprint)."""

    @staticmethod
    def create_id(customer_id: str, fingerprint: str) -> UUID:
        return merge_id(customer_id, fingerprint)

    @event("Pointed")
    def __init__(self, customer_id: str, fingerprint: str, shipment: str) -> None:
        self.shipment = shipment

    def point(self, shipment: str) -> None:
        if shipment != self.shipment:
            self._pointed(shipment=shipment)

    @event("Repointed")
    def _pointed(self, shipment: str) -> None:
        self.shipment = shipment
