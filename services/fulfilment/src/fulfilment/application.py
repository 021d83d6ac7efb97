"""Fulfilment use cases: the reactions to orders and inventory that policies.py hands in
with the consumer's unit of work, the commands of the API (picks, packing, tracking)
and the timers (waves by window, delays, allocation retries).

Where the warehouse choice lives: here, once, at confirmation. Inventory places a
reservation provisionally (most available first) when the order is placed, before it is
paid; fulfilment then chooses the shipping warehouse with what only it knows (distance
to the destination, today's shipping capacity, carriers), publishes ShipmentAllocated,
and inventory moves the order's hold there inside its per-SKU aggregates (all lines or
none) -> ReservationMoved, or refuses -> ReservationMoveRefused and fulfilment takes the
next candidate. A shipment whose units are not all held where it ships from never enters
a wave, so the one decision is fulfilment's and inventory only ever carries it out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from shopfloor_runtime.clock import Clock
from shopfloor_runtime.edge import UnitOfWork, command
from shopfloor_runtime.store import ServiceApplication

from fulfilment.domain import (
    OPEN,
    Capacity,
    Lane,
    MergeSlot,
    OrderFile,
    Picker,
    Refused,
    Shipment,
    ShipmentNotFound,
    Slotting,
    UnknownWarehouse,
    Wave,
    WaveNotFound,
    capacity_id,
    file_id,
    lane_id,
    merge_id,
    pick_list,
    picker_id,
    shipment_id,
    slotting_id,
)
from fulfilment.rules import MULTI_ZONE, Rules, all_held_in, rank_carriers, rank_warehouses, zone_of

T = TypeVar("T")


class PackRefused(Refused):
    """The pack check failed; the shipment is flagged for a supervisor."""


log = logging.getLogger(__name__)


class FulfilmentApplication(ServiceApplication):
    name = "fulfilment"
    cache_size = 20_000  # order files, shipments, lanes, waves
    # Lanes, capacities and pickers live long and take an event per shipment or scan: a
    # restarted worker loads them from a snapshot, not from a day's worth of events.
    snapshotting_intervals = {Lane: 100, Capacity: 100, Picker: 200, Slotting: 20}

    def __init__(
        self, rules: Rules, env: dict[str, str] | None = None, clock: Clock | None = None
    ) -> None:
        super().__init__(env, clock)
        self.rules = rules

    # -- reactions to orders and inventory (policies.py calls these) ---------------------

    def order_placed(self, uow: UnitOfWork, order_id: str, placed: dict[str, Any]) -> None:
        file = self._file(uow, order_id)
        file.record_placed(**placed)
        self._allocate(uow, file)

    def recipient_recorded(self, uow: UnitOfWork, order_id: str, recipient: dict[str, Any]) -> None:
        self._file(uow, order_id).record_recipient(recipient)

    def stock_reserved(
        self,
        uow: UnitOfWork,
        order_id: str,
        lines: list[dict[str, Any]],
        free: list[dict[str, Any]],
    ) -> None:
        file = self._file(uow, order_id)
        file.record_reserved(lines, free)
        self._allocate(uow, file)

    def order_confirmed(self, uow: UnitOfWork, order_id: str, at: datetime) -> None:
        file = self._file(uow, order_id)
        file.record_confirmed(at)
        self._allocate(uow, file)

    def order_cancelled(self, uow: UnitOfWork, order_id: str) -> None:
        """Pull the order from its shipment (and wave) unless it left already."""
        file = self._file(uow, order_id)
        if not file.record_cancelled():
            return
        for shipment in file.shipments:
            self._pull(uow, UUID(shipment), order_id, "cancelled")

    def replacement_requested(
        self,
        uow: UnitOfWork,
        replacement: str,
        order_id: str,
        lines: list[dict[str, Any]],
        at: datetime,
    ) -> None:
        """A re-ship or exchange: shipped like an order to the original order's customer
        and address once inventory holds its lines (StockReserved names the replacement
        id). It is never merged with other orders (no address fingerprint)."""
        original = uow.get(file_id(order_id), OrderFile)
        if original is None or original.placed is None:
            log.warning(
                "replacement %s: order %s unknown here, nothing shipped", replacement, order_id
            )
            return
        placed = {**original.placed, "lines": lines, "value": "0.00", "fingerprint": None}
        file = self._file(uow, replacement)
        file.record_replacement(order_id, placed, original.recipient, at)
        self._allocate(uow, file)

    def order_held(self, uow: UnitOfWork, order_id: str, exception_id: str) -> None:
        """Risk holds the order: it leaves every shipment (lane, wave) that has not been
        dispatched yet, giving its capacity back; it waits for OrderReleased."""
        file = self._file(uow, order_id)
        if not file.record_held(exception_id):
            return
        for shipment in list(file.shipments):
            if self._pull(uow, UUID(shipment), order_id, "held"):
                file.pulled_for_hold(shipment)

    def order_released(self, uow: UnitOfWork, order_id: str) -> None:
        """The hold ends: an order pulled for it (or confirmed while held) is allocated
        again, once; one that left before the hold arrived stays where it is."""
        file = self._file(uow, order_id)
        if file.record_released():
            self._allocate(uow, file)

    def reservation_moved(
        self,
        uow: UnitOfWork,
        order_id: str,
        shipment: str,
        warehouse: str,
        lines: list[dict[str, Any]],
    ) -> None:
        """Inventory holds the order's units where the shipment ships from."""
        file = self._file(uow, order_id)
        file.record_moved(lines)
        found = uow.get(UUID(shipment), Shipment)
        if found is None or found.warehouse != warehouse:
            return
        part = found.orders.get(order_id)
        if part is None:
            return
        bins = {ln["sku"]: ln["bin"] for ln in part["lines"]}  # fixed at allocation
        here = [
            {
                **self._line(warehouse, ln, {}),
                "bin": bins.get(ln["sku"]) or self.rules.bin_for(warehouse, ln["sku"]),
            }
            for ln in lines
            if ln["warehouse"] == warehouse
        ]
        if found.stock_in_place(order_id, here):
            self._to_lane(uow, found)

    def reservation_move_refused(
        self, uow: UnitOfWork, order_id: str, shipment: str, warehouse: str, reason: str
    ) -> None:
        """The chosen warehouse cannot hold the units after all: try the next one."""
        found = uow.get(UUID(shipment), Shipment)
        if found is None or found.status != "awaiting_stock":
            return
        found.reallocate(reason)
        self._give_back(uow, found, warehouse)
        file = self._file(uow, order_id)
        file.move_refused(shipment, warehouse, f"inventory refused: {reason}")
        self._allocate(uow, file)

    # -- allocation -------------------------------------------------------------------

    def _allocate(self, uow: UnitOfWork, file: OrderFile) -> None:
        if not file.ready:
            return
        assert file.placed is not None
        facts, now = file.facts(), self.clock.now()
        if self._merge(uow, file):
            return
        shard = self.rules.shard_of(file.order_id)
        over = {
            code: self._used(uow, code, now)
            for code in self.rules.warehouses
            if not self._has_room(uow, code, now, shard)
        }
        ranked = rank_warehouses(facts, self.rules, over, file.refused)
        sid = shipment_id(file.order_id, file.attempts)
        best = next((r for r in ranked if r["chosen"]), None)
        if best is None and self.rules.split and not file.refused and self._split(uow, file, over):
            return
        if best is None:
            ranked = rank_warehouses(facts, self.rules, over, file.refused, ask_inventory=True)
            best = next((r for r in ranked if r["chosen"]), None)
        if best is None:
            file.wait_unallocated("no warehouse can take the whole order", ranked, str(sid), now)
            return
        warehouse = best["warehouse"]
        weight = sum(self.rules.weight(sku) * qty for sku, qty in facts.lines)
        carriers = rank_carriers(facts.region, weight, facts.value, facts.service_level, self.rules)
        carrier = next((c for c in carriers if c["chosen"]), None)
        if carrier is None:
            file.wait_unallocated(f"no carrier serves {facts.region}", ranked, str(sid), now)
            return
        in_place = all_held_in(facts, warehouse)
        lines = self._order_lines(uow, file, warehouse, in_place)
        fingerprint = file.placed.get("fingerprint")
        shipment = self._open(
            uow, file, sid, warehouse, lines, ranked, carriers, in_place, fingerprint
        )
        file.allocated([str(sid)])
        self._point_merge(uow, shipment)

    def _open(
        self,
        uow: UnitOfWork,
        file: OrderFile,
        sid: UUID,
        warehouse: str,
        lines: list[dict[str, Any]],
        ranked: list[dict[str, Any]],
        carriers: list[dict[str, Any]],
        in_place: bool,
        fingerprint: str | None,
    ) -> Shipment:
        """A new shipment of one order: it takes a capacity slot, and goes to its lane
        at once if its units are held where it ships from."""
        facts, now = file.facts(), self.clock.now()
        carrier = next(c for c in carriers if c["chosen"])
        shipment = Shipment(
            shipment=sid,
            first_order_id=file.order_id,
            order_id=file.order_id,
            customer_id=facts.customer_id,
            fingerprint=fingerprint,
            warehouse=warehouse,
            zone=_zone(lines),
            carrier=carrier["carrier"],
            service=carrier["service"],
            service_level=facts.service_level,
            promised_by=self.rules.promise(facts.service_level, file.confirmed_at or now),
            lines=lines,
            value=str(facts.value),
            weight_grams=self._weight(lines),
            in_place=in_place,
            warehouses=ranked,
            carriers=[{**c, "cost": str(c["cost"])} for c in carriers],
            allocated_at=now,
            replaces={file.order_id: file.replaces} if file.replaces else None,
        )
        uow.add(shipment)
        self._take_capacity(uow, warehouse, now, self.rules.shard_of(file.order_id), str(sid))
        if in_place:
            self._to_lane(uow, shipment)
        return shipment

    def _weight(self, lines: list[dict[str, Any]]) -> int:
        return sum(self.rules.weight(ln["sku"]) * ln["qty"] for ln in lines)

    def _merge(self, uow: UnitOfWork, file: OrderFile) -> bool:
        """Join the customer's shipment to the same address if it still waits for a wave,
        ships from where this order's units are held, and stays in its zone."""
        assert file.placed is not None
        fingerprint = file.placed.get("fingerprint")
        if not self.rules.merge or not fingerprint:
            return False
        slot = uow.get(merge_id(file.placed["customer_id"], fingerprint), MergeSlot)
        if slot is None:
            return False
        facts = file.facts()
        shipment = uow.get(UUID(slot.shipment), Shipment)
        if shipment is None or not all_held_in(facts, shipment.warehouse):
            return False
        lines = self._order_lines(uow, file, shipment.warehouse, True)
        if not shipment.can_merge(_zone(lines)):
            return False
        shipment.join(file.order_id, lines, str(facts.value), self._weight(lines), self.clock.now())
        file.allocated([str(shipment.id)])
        self._to_lane(uow, shipment)
        return True

    def _split(self, uow: UnitOfWork, file: OrderFile, over: dict[str, int]) -> bool:
        """Splits allowed: one shipment per warehouse the order is held in, each from
        where its units already are (no moves), if every one has capacity."""
        assert file.placed is not None and file.held is not None
        facts = file.facts()
        warehouses = sorted({ln["warehouse"] for ln in file.held})
        if any(code not in self.rules.warehouses or code in over for code in warehouses):
            return False
        parts = []
        for code in warehouses:  # every part must have a carrier before any is opened
            lines = self._order_lines(uow, file, code, True)
            carriers = rank_carriers(
                facts.region, self._weight(lines), facts.value, facts.service_level, self.rules
            )
            if not any(c["chosen"] for c in carriers):
                return False
            parts.append((code, lines, carriers))
        sids = []
        for code, lines, carriers in parts:
            sid = shipment_id(file.order_id, file.attempts, code)
            distance = self.rules.distance(facts.region, code)
            ranked = [
                {
                    "warehouse": code,
                    "rank": 1,
                    "chosen": True,
                    "distance_km": distance,
                    "reason": "split: no warehouse holds the whole order",
                }
            ]
            # split parts are not merged with other orders
            self._open(uow, file, sid, code, lines, ranked, carriers, True, None)
            sids.append(str(sid))
        file.allocated(sids)
        return True

    def _order_lines(
        self, uow: UnitOfWork, file: OrderFile, warehouse: str, in_place: bool
    ) -> list[dict[str, Any]]:
        slotting = uow.get(slotting_id(warehouse), Slotting)
        fast = slotting.fast if slotting is not None else {}
        if in_place:
            return [self._line(warehouse, ln, fast) for ln in file.lines_held_in(warehouse)]
        facts = file.facts()
        return [
            self._line(warehouse, {"sku": sku, "qty": qty, "serials": []}, fast)
            for sku, qty in facts.lines
        ]

    def _line(self, warehouse: str, line: dict[str, Any], fast: dict[str, str]) -> dict[str, Any]:
        return {
            "sku": line["sku"],
            "qty": line["qty"],
            "serials": list(line.get("serials") or []),
            "bin": self.rules.bin_for(warehouse, line["sku"], fast),
        }

    def _point_merge(self, uow: UnitOfWork, shipment: Shipment) -> None:
        if not self.rules.merge or not shipment.fingerprint:
            return
        slot_id = merge_id(shipment.customer_id, shipment.fingerprint)
        slot = uow.get(slot_id, MergeSlot)
        if slot is None:
            uow.add(MergeSlot(shipment.customer_id, shipment.fingerprint, str(shipment.id)))
        else:
            slot.point(str(shipment.id))

    # -- lanes and waves ----------------------------------------------------------------

    def _to_lane(self, uow: UnitOfWork, shipment: Shipment) -> None:
        now = self.clock.now()
        lane = self._lane(uow, shipment)
        lane.add(str(shipment.id), len(shipment.orders), now)
        if lane.due(now, self.rules) == "size":
            self._release(uow, lane, "size", now)

    def _release(self, uow: UnitOfWork, lane: Lane, trigger: str, now: datetime) -> Wave | None:
        sequence, sids, opened = lane.release(trigger, now)
        shipments = [uow.get(UUID(sid), Shipment) for sid in sids]
        live = [s for s in shipments if s is not None and s.status == "waiting"]
        if not live:
            return None
        wave = Wave(
            warehouse=lane.warehouse,
            zone=lane.zone,
            shard=lane.shard,
            sequence=sequence,
            shipment_ids=[str(s.id) for s in live],
            order_ids=[o for s in live for o in s.order_ids],
            pick_list=pick_list(lane.warehouse, live, self.rules),
            trigger=trigger,
            opened_at=opened,
            released_at=now,
        )
        uow.add(wave)
        for shipment in live:
            shipment.in_wave(str(wave.id))
        return wave

    def lanes(self) -> list[UUID]:
        return [
            lane_id(code, zone, shard)
            for code, rule in self.rules.warehouses.items()
            for zone in (*rule.zones, MULTI_ZONE)
            for shard in range(self.rules.shards)
        ]

    def release_due_waves(self, fresh: bool = False) -> int:
        """Release every wave whose window has passed (sizes release as they fill).
        `fresh`: judge each lane as stored, not as this worker last cached it: after a
        rebalance another worker may have filled a lane this one still holds empty."""
        released = 0
        for lane in self.lanes():

            def release(uow: UnitOfWork, lane: UUID = lane) -> bool:
                found = self.find(lane, Lane, fresh=True) if fresh else uow.get(lane, Lane)
                if found is None:
                    return False
                uow.add(found)
                now = self.clock.now()
                trigger = found.due(now, self.rules)
                return trigger is not None and self._release(uow, found, trigger, now) is not None

            released += self.command(release)
        return released

    # -- cancellations and holds ------------------------------------------------------

    def _pull(self, uow: UnitOfWork, sid: UUID, order_id: str, reason: str) -> bool:
        """Take the order out of its shipment; False if it left already (dispatched)."""
        shipment = uow.get(sid, Shipment)
        if shipment is None or shipment.status not in OPEN:
            return False  # dispatched already (the order service refuses that cancel) or gone
        if order_id not in shipment.orders:
            return True
        was = shipment.status
        returned: list[dict[str, Any]] = []
        wave = None
        if shipment.wave_id is not None:
            wave = uow.get(UUID(shipment.wave_id), Wave)
            if wave is not None:
                returned = wave.pull(order_id)
        empty = shipment.pull(order_id, returned, self.clock.now(), reason)
        if was == "waiting":
            lane = self._lane(uow, shipment)
            if empty:
                lane.remove(str(sid))
            else:
                lane.add(str(sid), len(shipment.orders), self.clock.now())
        if empty:
            self._give_back(uow, shipment, shipment.warehouse)
        elif wave is not None and str(sid) in wave.complete_shipments():
            shipment.all_picked()
        return True

    # -- commands (the API) ------------------------------------------------------------

    def command(self, act: Callable[[UnitOfWork], T], attempts: int = 8) -> T:
        """Run `act` on a unit of work, saved in one transaction (edge.command)."""
        return command(self, act, attempts)

    def pick(
        self, wave: UUID, picker: str, bin_code: str, sku: str, qty: int, serial: str | None
    ) -> Wave:
        """A picker's scan. A refused scan is still recorded (accuracy), then raised."""

        def act(uow: UnitOfWork) -> tuple[Wave, Refused | None]:
            found = uow.get(wave, Wave)
            if found is None:
                raise WaveNotFound(wave)
            who = uow.get(picker_id(picker), Picker)
            if who is None:
                who = Picker(picker)
                uow.add(who)
            now = self.clock.now()
            try:
                done = found.pick(picker, bin_code, sku, qty, serial, now)
            except Refused as refusal:
                who.scan_refused(str(refusal), now)
                found.refuse_scan(picker, bin_code, sku, qty, serial, str(refusal), now)
                return found, refusal
            who.scanned(qty, now)
            for sid in done:
                shipment = uow.get(UUID(sid), Shipment)
                if shipment is not None:
                    shipment.all_picked()
            return found, None

        found, refusal = self.command(act)
        if refusal is not None:
            raise refusal
        return found

    def pack(self, shipment: UUID, measured_grams: int, items: list[dict[str, Any]]) -> Shipment:
        """The pack check, then label and dispatch; a failed check flags the shipment
        (saved) and is raised."""

        def act(uow: UnitOfWork) -> tuple[Shipment, str | None]:
            found = uow.get(shipment, Shipment)
            if found is None:
                raise ShipmentNotFound(shipment)
            recipient = None
            for order_id in found.order_ids:
                file = uow.get(file_id(order_id), OrderFile)
                if file is not None and file.recipient is not None:
                    recipient = file.recipient
                    break
            refusal = found.pack(measured_grams, items, recipient, self.rules, self.clock.now())
            return found, refusal

        found, refusal = self.command(act)
        if refusal is not None:
            raise PackRefused(f"pack check failed, flagged for a supervisor: {refusal}")
        return found

    def track(
        self, shipment: UUID, milestone: str, at: datetime, place: str | None
    ) -> tuple[Shipment, bool]:
        def act(uow: UnitOfWork) -> tuple[Shipment, bool]:
            found = uow.get(shipment, Shipment)
            if found is None:
                raise ShipmentNotFound(shipment)
            return found, found.track(milestone, at, place)

        return self.command(act)

    def fire_delays(self, due: list[UUID]) -> int:
        """Flag shipments past their promised date; each flags itself once."""
        fired = 0
        for sid in due:

            def act(uow: UnitOfWork, sid: UUID = sid) -> bool:
                found = uow.get(sid, Shipment)
                return found is not None and found.check_delay(self.clock.now())

            fired += self.command(act)
        return fired

    def reslot(self, velocity: dict[str, list[str]]) -> int:
        """Apply the velocity rule: `velocity` is, per warehouse, its SKUs picked often
        enough over the rule's window, fastest first. Returns warehouses reslotted."""
        changed = 0
        for warehouse in self.rules.warehouses:

            def act(uow: UnitOfWork, warehouse: str = warehouse) -> bool:
                slotting = uow.get(slotting_id(warehouse), Slotting)
                if slotting is None:
                    if not velocity.get(warehouse):
                        return False
                    slotting = Slotting(warehouse)
                    uow.add(slotting)
                return slotting.reslot(velocity.get(warehouse, []), self.rules, self.clock.now())

            changed += self.command(act)
        return changed

    def fast_movers(self, warehouse: str) -> dict[str, str]:
        if warehouse not in self.rules.warehouses:
            raise UnknownWarehouse(warehouse)
        found = self.find(slotting_id(warehouse), Slotting, fresh=True)
        return {} if found is None else dict(found.fast)

    def retry_unallocated(self, order_ids: list[str]) -> int:
        """Try orders that found no warehouse again (stock may have arrived)."""
        done = 0
        for order_id in order_ids:

            def act(uow: UnitOfWork, order_id: str = order_id) -> bool:
                file = uow.get(file_id(order_id), OrderFile)
                if file is None or not file.ready:
                    return False
                file.forget_refusals()
                self._allocate(uow, file)
                return bool(file.shipments)

            done += self.command(act)
        return done

    # -- queries ----------------------------------------------------------------------

    def get_shipment(self, shipment: UUID) -> Shipment:
        found = self.find(shipment, Shipment, fresh=True)
        if found is None:
            raise ShipmentNotFound(shipment)
        return found

    def get_wave(self, wave: UUID) -> Wave:
        found = self.find(wave, Wave, fresh=True)
        if found is None:
            raise WaveNotFound(wave)
        return found

    def capacity(self, warehouse: str, day: str) -> tuple[int, int]:
        """(used, limit) of a warehouse's shipping capacity on a day, every shard's."""
        rule = self.rules.warehouses.get(warehouse)
        if rule is None:
            raise UnknownWarehouse(warehouse)
        used = 0
        for shard in range(self.rules.shards):
            found = self.find(capacity_id(warehouse, day, shard), Capacity, fresh=True)
            used += 0 if found is None else found.used
        return used, rule.daily_capacity

    # -- finding or starting aggregates -------------------------------------------------

    def _file(self, uow: UnitOfWork, order_id: str) -> OrderFile:
        file = uow.get(file_id(order_id), OrderFile)
        if file is None:
            file = OrderFile(order_id)
            uow.add(file)
        return file

    def _lane(self, uow: UnitOfWork, shipment: Shipment) -> Lane:
        """The lane a shipment waits in: its warehouse and zone, in its shard."""
        warehouse, zone = shipment.warehouse, shipment.zone
        shard = self.rules.shard_of(shipment.first_order_id)
        lane = uow.get(lane_id(warehouse, zone, shard), Lane)
        if lane is None:
            lane = Lane(warehouse, zone, shard)
            uow.add(lane)
        return lane

    # -- capacity, per shard ----------------------------------------------------------

    def _capacity(self, uow: UnitOfWork, warehouse: str, at: datetime, shard: int) -> Capacity:
        """A shard's capacity of a warehouse on a day (this worker's shard: its copy)."""
        day = at.date().isoformat()
        found = uow.get(capacity_id(warehouse, day, shard), Capacity)
        if found is None:
            found = Capacity(warehouse, day, shard)
            uow.add(found)
        return found

    def _peek(self, uow: UnitOfWork, warehouse: str, at: datetime, shard: int) -> Capacity:
        """Another shard's capacity as stored now (another worker may own it), or as
        this unit of work holds it; not added to the unit of work until changed."""
        day = at.date().isoformat()
        cid = capacity_id(warehouse, day, shard)
        if cid in uow.ids:
            held = uow.get(cid, Capacity)
            assert held is not None
            return held
        found = self.find(cid, Capacity, fresh=True)
        return found if found is not None else Capacity(warehouse, day, shard)

    def _room(self, capacity: Capacity) -> int:
        return capacity.room(self.rules.share(capacity.warehouse, capacity.shard))

    def _lender(self, uow: UnitOfWork, warehouse: str, at: datetime, shard: int) -> Capacity | None:
        """The other shard with the most room left."""
        others = [
            self._peek(uow, warehouse, at, other)
            for other in range(self.rules.shards)
            if other != shard
        ]
        best = max(others, key=self._room, default=None)
        return best if best is not None and self._room(best) > 0 else None

    def _has_room(self, uow: UnitOfWork, warehouse: str, at: datetime, shard: int) -> bool:
        own = self._capacity(uow, warehouse, at, shard)
        if self._room(own) <= 0 and not own.pending_events:  # full, or a stale copy?
            stored = self.find(own.id, Capacity, fresh=True)
            if stored is not None:
                uow.add(own := stored)
        if self._room(own) > 0:
            return True
        return self._lender(uow, warehouse, at, shard) is not None

    def _used(self, uow: UnitOfWork, warehouse: str, at: datetime) -> int:
        return sum(self._peek(uow, warehouse, at, s).used for s in range(self.rules.shards))

    def _take_capacity(
        self, uow: UnitOfWork, warehouse: str, at: datetime, shard: int, shipment: str
    ) -> None:
        """A slot for a new shipment, borrowed from another shard when this one ran out
        (half the lender's room, so the next orders need not borrow again)."""
        own = self._capacity(uow, warehouse, at, shard)
        if self._room(own) <= 0:
            lender = self._lender(uow, warehouse, at, shard)
            if lender is None:  # allocation checked the room in this unit of work
                raise RuntimeError(f"{warehouse} has no capacity left on {own.day}")
            slots = max(self._room(lender) // 2, 1)
            uow.add(lender)  # saved with this change: its version guards the loan
            lender.lend(to=shard, slots=slots)
            own.borrow(lender=lender.shard, slots=slots)
        own.take(shipment)

    def _give_back(self, uow: UnitOfWork, shipment: Shipment, warehouse: str) -> None:
        """The slot goes back to the shard that took it (the shipment's first order's)."""
        shard = self.rules.shard_of(shipment.first_order_id)
        self._capacity(uow, warehouse, shipment.allocated_at, shard).give_back(str(shipment.id))


def _zone(lines: list[dict[str, Any]]) -> str:
    zones = {zone_of(ln["bin"]) for ln in lines}
    return zones.pop() if len(zones) == 1 else MULTI_ZONE
