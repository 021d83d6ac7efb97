"""Stock and reservations. Pure: no I/O, no contracts, no settings.

One `Sku` aggregate holds a SKU's stock in every warehouse. Every decision that can take
the SKU's last unit is a change to that one aggregate, saved with an optimistic version
check, so two decisions on one SKU can never both succeed on stale numbers; an order's
lines on several SKUs are saved in one transaction, so its reservation is all or nothing,
and so is moving it to the warehouse fulfilment ships from (`move`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from shopfloor_runtime.aggregates import CheapCopy
from shopfloor_runtime.errors import DomainError, RuleBroken

NAMESPACE = uuid5(NAMESPACE_URL, "urn:shopfloor:inventory")
PRESALE = "presale"
VELOCITY_DAYS = 28


def sku_id(sku: str) -> UUID:
    return uuid5(NAMESPACE, f"sku:{sku}")


def reservation_id(order_id: str) -> UUID:
    return uuid5(NAMESPACE, f"reservation:{order_id}")


def return_key(return_id: str) -> UUID:
    """Inventory's record of a customer return: one per return id (the service desk's)."""
    return uuid5(NAMESPACE, f"return:{return_id}")


RESELLABLE = "resellable"  # a returned unit's condition; any other ("damaged") is not sold


class InvalidStock(RuleBroken):
    """Well-formed input that breaks a stock rule (HTTP 422)."""


class UnknownSku(DomainError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"SKU {sku!r} has never been received")


class UnknownTransfer(DomainError):
    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"transfer {transfer_id!r} not found or already received")


class SerialNotFound(DomainError):
    def __init__(self, serial: str) -> None:
        super().__init__(f"serial number {serial!r} has never been received")


class ReservationNotFound(DomainError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no reservation decision for order {order_id!r} (yet)")


class ReturnNotFound(DomainError):
    def __init__(self, return_id: str) -> None:
        super().__init__(f"return {return_id!r} has not been received (yet)")


@dataclass(frozen=True)
class Shortfall:
    sku: str
    requested: int
    available: int
    reason: str = "insufficient_stock"


class Sku(CheapCopy, Aggregate):
    # Copied by rule for the cache (shopfloor_runtime.aggregates): a hot SKU holds
    # thousands of open reservations, and a full deep copy per batch was the consumer's
    # biggest cost. Allocations and serial lists are replaced by events, never changed in
    # place; only the per-warehouse counters are, so those are copied one level deeper.
    deep_copies = {"stock": lambda stock: {code: dict(w) for code, w in stock.items()}}

    @staticmethod
    def create_id(sku: str) -> UUID:
        return sku_id(sku)

    @event("Registered")
    def __init__(self, sku: str) -> None:
        self.sku = sku
        self.stock: dict[str, dict[str, Any]] = {}  # warehouse -> on_hand, reserved, serials
        self.holds: dict[str, list[dict[str, Any]]] = {}  # order id -> allocation
        self.customers: dict[str, int] = {}  # units held or shipped, for purchase limits
        self.safety_stock, self.lead_time_days = 0, 7
        self.purchase_limit: int | None = None
        self.presale_allowance, self.presold = 0, 0  # presold: promised, not yet arrived
        self.presale_taken = 0  # of the allowance: presold plus presales since filled
        self.below_safety = False
        self.demand: dict[str, int] = {}  # ISO day -> units reserved that day
        self.transfers: dict[str, dict[str, Any]] = {}
        self.known_serials: dict[str, str] = {}  # serial -> warehouse it was received in

    # -- reading --------------------------------------------------------------------

    def warehouse(self, code: str) -> dict[str, Any]:
        return self.stock.get(code) or {"on_hand": 0, "reserved": 0, "serials": []}

    @property
    def on_hand(self) -> int:
        return sum(w["on_hand"] for w in self.stock.values())

    @property
    def reserved(self) -> int:
        return sum(w["reserved"] for w in self.stock.values())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def free(self, code: str) -> int:
        """Units on hand in one warehouse that no order holds."""
        stock = self.warehouse(code)
        return int(stock["on_hand"] - stock["reserved"])

    def free_by_warehouse(self) -> dict[str, int]:
        """Free units in every warehouse this SKU has stock records in (not presale)."""
        return {code: self.free(code) for code in sorted(self.stock)}

    @property
    def presale_left(self) -> int:
        return max(self.presale_allowance - self.presale_taken, 0)

    @property
    def in_transit(self) -> int:
        return sum(t["qty"] for t in self.transfers.values())

    def daily_velocity(self, now: datetime) -> float:
        since = (now - timedelta(days=VELOCITY_DAYS)).date().isoformat()
        return sum(n for day, n in self.demand.items() if day > since) / VELOCITY_DAYS

    def reorder_quantity(self, now: datetime) -> int:
        """Enough to cover demand over the lead time and refill safety stock, less what
        is on the way: velocity x lead time + safety stock - available - in transit."""
        need = self.daily_velocity(now) * self.lead_time_days + self.safety_stock
        return max(math.ceil(need - self.available - self.in_transit), 1)

    # -- receiving, counting, moving ------------------------------------------------

    def receive(
        self,
        warehouse: str,
        qty: int,
        serials: list[str],
        now: datetime,
        unit_cost: str | None = None,
    ) -> None:
        if serials and len(serials) != qty:
            raise InvalidStock("serials", f"{len(serials)} serial numbers for {qty} units")
        repeated = sorted(set(serials) & set(self.known_serials)) or _repeats(serials)
        if repeated:
            raise InvalidStock("serials", f"serial numbers already known: {repeated[:5]}")
        on_hand = self.warehouse(warehouse)["on_hand"] + qty
        self._received(
            sku=self.sku,
            warehouse=warehouse,
            qty=qty,
            serials=serials,
            received_at=now,
            on_hand=on_hand,
            unit_cost=unit_cost,
        )
        self._fill_presale(warehouse)
        self._check_safety(now)

    @event("Received")
    def _received(
        self,
        sku: str,
        warehouse: str,
        qty: int,
        serials: list[str],
        received_at: datetime,
        on_hand: int,
        unit_cost: str | None = None,  # added later: receipts stored before have none
    ) -> None:
        stock = self.stock.setdefault(warehouse, {"on_hand": 0, "reserved": 0, "serials": []})
        stock["on_hand"] += qty
        stock["serials"] = stock["serials"] + serials
        self.known_serials.update(dict.fromkeys(serials, warehouse))

    def accept_return(
        self,
        warehouse: str,
        qty: int,
        serials: list[str],
        order_id: str | None,
        now: datetime,
        return_id: str | None = None,
        caused_by: str | None = None,
    ) -> None:
        """Units a customer sent back go on hand again (serialized ones by serial)."""
        self._check_coming_back(qty, serials)
        self._returned(
            sku=self.sku,
            warehouse=warehouse,
            qty=qty,
            serials=serials,
            order_id=order_id,
            return_id=return_id,
            caused_by=caused_by,
        )
        self._fill_presale(warehouse)
        self._check_safety(now)

    def _check_coming_back(self, qty: int, serials: list[str]) -> None:
        """Serial numbers of returned units: one per unit, each received once and not
        on a shelf now (it must have left with an order)."""
        if serials and len(serials) != qty:
            raise InvalidStock("serials", f"{len(serials)} serial numbers for {qty} units")
        unknown = sorted(set(serials) - set(self.known_serials))
        if unknown:
            raise InvalidStock("serials", f"serial numbers never received: {unknown[:5]}")
        on_shelf = {s for w in self.stock.values() for s in w["serials"]} & set(serials)
        if on_shelf:
            raise InvalidStock("serials", f"still in stock, not shipped: {sorted(on_shelf)[:5]}")

    @event("Returned")
    def _returned(
        self,
        sku: str,
        warehouse: str,
        qty: int,
        serials: list[str],
        order_id: str | None,
        return_id: str | None = None,  # returns stored before it existed lack it
        caused_by: str | None = None,  # likewise
    ) -> None:
        stock = self.stock.setdefault(warehouse, {"on_hand": 0, "reserved": 0, "serials": []})
        stock["on_hand"] += qty
        stock["serials"] = stock["serials"] + serials

    def set_aside_damaged(
        self,
        warehouse: str,
        qty: int,
        serials: list[str],
        order_id: str,
        return_id: str,
        caused_by: str | None = None,
    ) -> None:
        """Units a customer sent back damaged: recorded (their serial numbers' history
        says so), never on hand, so never sold again."""
        self._check_coming_back(qty, serials)
        self._returned_damaged(
            sku=self.sku,
            warehouse=warehouse,
            qty=qty,
            serials=serials,
            order_id=order_id,
            return_id=return_id,
            caused_by=caused_by,
        )

    @event("ReturnedDamaged")
    def _returned_damaged(
        self,
        sku: str,
        warehouse: str,
        qty: int,
        serials: list[str],
        order_id: str,
        return_id: str,
        caused_by: str | None,
    ) -> None:
        pass  # the units came back, but not onto a shelf: stock does not change

    def adjust(self, warehouse: str, counted: int, reason: str, now: datetime) -> None:
        stock = self.warehouse(warehouse)
        if counted < stock["reserved"]:
            raise InvalidStock(
                "counted",
                f"{stock['reserved']} units in {warehouse} are "
                f"reserved for orders; release them before counting {counted}",
            )
        self._adjusted(
            sku=self.sku,
            warehouse=warehouse,
            counted=counted,
            delta=counted - stock["on_hand"],
            reason=reason,
        )
        self._fill_presale(warehouse)
        self._check_safety(now)

    @event("Adjusted")
    def _adjusted(self, sku: str, warehouse: str, counted: int, delta: int, reason: str) -> None:
        stock = self.stock.setdefault(warehouse, {"on_hand": 0, "reserved": 0, "serials": []})
        stock["on_hand"] = counted

    def transfer(self, transfer_id: str, source: str, target: str, qty: int, now: datetime) -> None:
        if source == target:
            raise InvalidStock("to_warehouse", "a transfer needs two different warehouses")
        free = self.warehouse(source)["on_hand"] - self.warehouse(source)["reserved"]
        if qty > free:
            raise InvalidStock("qty", f"only {free} units of {self.sku} are available in {source}")
        serials = self._free_serials(self.warehouse(source))[:qty]
        self._transferred(
            sku=self.sku,
            transfer_id=transfer_id,
            source=source,
            target=target,
            qty=qty,
            serials=serials,
        )
        self._check_safety(now)

    @event("Transferred")
    def _transferred(
        self,
        sku: str,
        transfer_id: str,
        source: str,
        target: str,
        qty: int,
        serials: list[str],
    ) -> None:
        stock = self.stock[source]
        stock["on_hand"] -= qty
        stock["serials"] = [s for s in stock["serials"] if s not in serials]
        self.transfers[transfer_id] = {"from": source, "to": target, "qty": qty, "serials": serials}

    def receive_transfer(self, transfer_id: str, now: datetime) -> None:
        if transfer_id not in self.transfers:
            raise UnknownTransfer(transfer_id)
        moving = self.transfers[transfer_id]
        self._transfer_received(
            sku=self.sku,
            transfer_id=transfer_id,
            target=moving["to"],
            qty=moving["qty"],
            serials=moving["serials"],
        )
        self._fill_presale(moving["to"])
        self._check_safety(now)

    @event("TransferReceived")
    def _transfer_received(
        self, sku: str, transfer_id: str, target: str, qty: int, serials: list[str]
    ) -> None:
        del self.transfers[transfer_id]
        stock = self.stock.setdefault(target, {"on_hand": 0, "reserved": 0, "serials": []})
        stock["on_hand"] += qty
        stock["serials"] = stock["serials"] + serials

    def _fill_presale(self, warehouse: str) -> None:
        """Units arriving serve presold orders first, oldest first: their presale holds
        become holds on this warehouse, so the units cannot be sold twice."""
        stock = self.warehouse(warehouse)
        free, serials = stock["on_hand"] - stock["reserved"], self._free_serials(stock)
        fills = []
        for order_id, parts in self.holds.items():
            waiting = sum(p["qty"] for p in parts if p["warehouse"] == PRESALE)
            take = min(waiting, free)
            if take > 0:
                fills.append({"order_id": order_id, "qty": take, "serials": serials[:take]})
                free, serials = free - take, serials[take:]
        if fills:
            self._presale_filled(sku=self.sku, warehouse=warehouse, fills=fills)

    @event("PresaleFilled")
    def _presale_filled(self, sku: str, warehouse: str, fills: list[dict[str, Any]]) -> None:
        for fill in fills:
            parts = [dict(p) for p in self.holds[fill["order_id"]]]  # events keep their data
            presale = next(p for p in parts if p["warehouse"] == PRESALE)
            presale["qty"] -= fill["qty"]
            here = next((p for p in parts if p["warehouse"] == warehouse), None)
            if here is None:
                parts.append({"warehouse": warehouse, "qty": 0, "serials": []})
                here = parts[-1]
            here["qty"] += fill["qty"]
            here["serials"] = here["serials"] + fill["serials"]
            self.holds[fill["order_id"]] = [p for p in parts if p["qty"] > 0]
            self.stock[warehouse]["reserved"] += fill["qty"]
            self.presold -= fill["qty"]

    def set_policy(
        self,
        safety_stock: int,
        lead_time_days: int,
        purchase_limit: int | None,
        presale_allowance: int,
        now: datetime,
    ) -> None:
        if presale_allowance < self.presold:
            raise InvalidStock("presale_allowance", f"{self.presold} units are already presold")
        self._policy_set(
            sku=self.sku,
            safety_stock=safety_stock,
            lead_time_days=lead_time_days,
            purchase_limit=purchase_limit,
            presale_allowance=presale_allowance,
        )
        self._check_safety(now)

    @event("PolicySet")
    def _policy_set(
        self,
        sku: str,
        safety_stock: int,
        lead_time_days: int,
        purchase_limit: int | None,
        presale_allowance: int,
    ) -> None:
        self.safety_stock, self.lead_time_days = safety_stock, lead_time_days
        self.purchase_limit, self.presale_allowance = purchase_limit, presale_allowance

    # -- reservations -----------------------------------------------------------------

    def shortfall(self, customer_id: str, qty: int) -> Shortfall | None:
        """Why this SKU cannot give `qty` units to this customer now, if it cannot."""
        if self.purchase_limit is not None:
            allowed = self.purchase_limit - self.customers.get(customer_id, 0)
            if qty > allowed:
                return Shortfall(self.sku, qty, max(allowed, 0), "purchase_limit")
        can = self.available + self.presale_left
        return Shortfall(self.sku, qty, can) if qty > can else None

    def reserve(self, order_id: str, customer_id: str, qty: int, now: datetime) -> list[dict]:
        """Hold `qty` units for the order: warehouses with most available first, then
        presale. Call `shortfall` first; this refuses rather than oversell."""
        if order_id in self.holds:
            return self.holds[order_id]
        if self.shortfall(customer_id, qty) is not None:
            raise InvalidStock("qty", f"cannot reserve {qty} of {self.sku}")
        allocation = self._allocate(qty)
        self._reserved(
            sku=self.sku,
            order_id=order_id,
            customer_id=customer_id,
            allocation=allocation,
            day=now.date().isoformat(),
        )
        self._check_safety(now)
        return allocation

    def _allocate(self, qty: int) -> list[dict[str, Any]]:
        allocation, left = [], qty
        by_free = sorted(
            self.stock.items(), key=lambda kv: (kv[1]["reserved"] - kv[1]["on_hand"], kv[0])
        )
        for code, stock in by_free:
            take = min(left, stock["on_hand"] - stock["reserved"])
            if take > 0:
                allocation.append(
                    {"warehouse": code, "qty": take, "serials": self._free_serials(stock)[:take]}
                )
                left -= take
        if left:
            allocation.append({"warehouse": PRESALE, "qty": left, "serials": []})
        return allocation

    def _free_serials(self, stock: dict[str, Any]) -> list[str]:
        if not stock["serials"]:
            return []
        held = {s for hold in self.holds.values() for part in hold for s in part["serials"]}
        return [s for s in stock["serials"] if s not in held]

    @event("Reserved")
    def _reserved(
        self, sku: str, order_id: str, customer_id: str, allocation: list[dict[str, Any]], day: str
    ) -> None:
        self.holds[order_id] = allocation
        for part in allocation:
            if part["warehouse"] == PRESALE:
                self.presold += part["qty"]
                self.presale_taken += part["qty"]
            else:
                self.stock[part["warehouse"]]["reserved"] += part["qty"]
        qty = sum(part["qty"] for part in allocation)
        self.customers[customer_id] = self.customers.get(customer_id, 0) + qty
        self.demand[day] = self.demand.get(day, 0) + qty
        self.demand = {d: n for d, n in self.demand.items() if d >= _days_before(day)}

    def release(self, order_id: str, customer_id: str, now: datetime) -> bool:
        if order_id not in self.holds:
            return False  # unknown or already finished: nothing to give back
        self._released(
            sku=self.sku,
            order_id=order_id,
            customer_id=customer_id,
            allocation=self.holds[order_id],
        )
        self._check_safety(now)
        return True

    @event("Released")
    def _released(
        self, sku: str, order_id: str, customer_id: str, allocation: list[dict[str, Any]]
    ) -> None:
        for part in self.holds.pop(order_id):
            if part["warehouse"] == PRESALE:
                self.presold -= part["qty"]
                self.presale_taken -= part["qty"]  # an unfilled presale gives its quota back
            else:
                self.stock[part["warehouse"]]["reserved"] -= part["qty"]
            left = self.customers.get(customer_id, 0) - part["qty"]
            self.customers[customer_id] = max(left, 0)

    def commit(self, order_id: str, now: datetime) -> bool:
        if order_id not in self.holds:
            return False
        self._committed(sku=self.sku, order_id=order_id, allocation=self.holds[order_id])
        self._check_safety(now)
        return True

    @event("Committed")
    def _committed(self, sku: str, order_id: str, allocation: list[dict[str, Any]]) -> None:
        for part in self.holds.pop(order_id):
            if part["warehouse"] == PRESALE:
                self.presold -= part["qty"]  # a presold unit ships once it arrived
                continue
            stock = self.stock[part["warehouse"]]
            stock["on_hand"] -= part["qty"]
            stock["reserved"] -= part["qty"]
            stock["serials"] = [s for s in stock["serials"] if s not in part["serials"]]

    # -- holding an order's units where it ships from ---------------------------------

    def move_shortfall(self, order_id: str, warehouse: str) -> Shortfall | None:
        """Why the order's units of this SKU cannot all be held in `warehouse`, if they
        cannot: the units it holds elsewhere (or presold) need as many free units there."""
        moving = sum(p["qty"] for p in self._held(order_id) if p["warehouse"] != warehouse)
        free = self.free(warehouse)
        return Shortfall(self.sku, moving, free) if moving > free else None

    def move_hold(self, order_id: str, warehouse: str, now: datetime) -> list[dict[str, Any]]:
        """Hold every unit the order has of this SKU in `warehouse`: units there stay; the
        others (presold ones too) take free units there, with free serial numbers there,
        and free theirs where they were. Call `move_shortfall` first: this refuses rather
        than oversell. Returns the allocation afterwards (as it was if all were there)."""
        parts = self._held(order_id)
        moved = [p for p in parts if p["warehouse"] != warehouse]
        if not moved:
            return parts
        if self.move_shortfall(order_id, warehouse) is not None:
            raise InvalidStock("warehouse", f"cannot hold order {order_id} in {warehouse}")
        qty = sum(p["qty"] for p in moved)
        serials = self._free_serials(self.warehouse(warehouse))[:qty]
        here = [p for p in parts if p["warehouse"] == warehouse]
        allocation = [
            {
                "warehouse": warehouse,
                "qty": qty + sum(p["qty"] for p in here),
                "serials": [s for p in here for s in p["serials"]] + serials,
            }
        ]
        self._hold_moved(
            sku=self.sku,
            order_id=order_id,
            warehouse=warehouse,
            moved=moved,
            serials=serials,
            allocation=allocation,
        )
        self._check_safety(now)  # presold units taken from the shelf lower what is free
        return allocation

    def _held(self, order_id: str) -> list[dict[str, Any]]:
        if order_id not in self.holds:
            raise LookupError(f"order {order_id!r} holds no units of {self.sku}")
        return self.holds[order_id]

    @event("HoldMoved")
    def _hold_moved(
        self,
        sku: str,
        order_id: str,
        warehouse: str,
        moved: list[dict[str, Any]],
        serials: list[str],
        allocation: list[dict[str, Any]],
    ) -> None:
        for part in moved:
            if part["warehouse"] == PRESALE:
                self.presold -= part["qty"]  # served from the shelf, as a presale fill is
            else:
                self.stock[part["warehouse"]]["reserved"] -= part["qty"]
        self.stock[warehouse]["reserved"] += sum(part["qty"] for part in moved)
        self.holds[order_id] = allocation

    # -- safety stock ---------------------------------------------------------------

    def _check_safety(self, now: datetime) -> None:
        """Alert once per crossing below safety stock, with a reorder suggestion."""
        below = self.available < self.safety_stock
        if below and not self.below_safety:
            self._low_stock(sku=self.sku, available=self.available, safety_stock=self.safety_stock)
            velocity = self.daily_velocity(now)
            quantity = self.reorder_quantity(now)
            self._reorder_suggested(
                sku=self.sku,
                quantity=quantity,
                available=self.available,
                daily_velocity=round(velocity, 3),
                lead_time_days=self.lead_time_days,
                safety_stock=self.safety_stock,
            )
        elif not below and self.below_safety:
            self._recovered(sku=self.sku, available=self.available)

    @event("LowStockDetected")
    def _low_stock(self, sku: str, available: int, safety_stock: int) -> None:
        self.below_safety = True

    @event("ReorderSuggested")
    def _reorder_suggested(
        self,
        sku: str,
        quantity: int,
        available: int,
        daily_velocity: float,
        lead_time_days: int,
        safety_stock: int,
    ) -> None:
        pass  # advice for purchasing; the stock itself does not change

    @event("Recovered")
    def _recovered(self, sku: str, available: int) -> None:
        self.below_safety = False


def decide(
    order_id: str,
    customer_id: str,
    wanted: Mapping[str, int],
    items: Mapping[str, Sku | None],
    now: datetime,
    caused_by: str | None,
    replaces: str | None = None,
) -> Reservation:
    """All or nothing: if every SKU can give its quantity, hold all of them, and note what
    every warehouse of those SKUs still has free (a hint for fulfilment's choice);
    otherwise hold none and say which lines were short and why. `items` are the order's
    SKUs as loaded (None: never received)."""
    shorts = [_shortfall(items[sku], sku, qty, customer_id) for sku, qty in wanted.items()]
    short = [asdict(s) for s in shorts if s is not None]
    lines, availability = [], []
    if not short:
        for sku, qty in sorted(wanted.items()):
            item = items[sku]
            assert item is not None  # no shortfall: it exists
            for part in item.reserve(order_id, customer_id, qty, now):
                lines.append({"sku": sku, **part})
            # a few counters per warehouse, never the holds: this is the hot path
            for code, free in item.free_by_warehouse().items():
                availability.append({"sku": sku, "warehouse": code, "available": free})
    return Reservation(order_id, customer_id, lines, short, caused_by, availability, replaces)


def move(
    reservation: Reservation,
    items: Mapping[str, Sku],
    shipment_id: str,
    warehouse: str,
    now: datetime,
    caused_by: str | None = None,
) -> bool:
    """All or nothing: if every SKU of a held reservation can hold the order's units in
    `warehouse`, move them there (units there already stay) and record the reservation's
    lines afterwards; otherwise move none and record which SKUs fell short there. Moving
    to where everything is already records the lines again: a repeated allocation gets
    its answer again, and changes no stock. `items` are the reservation's SKUs."""
    order_id = reservation.order_id
    shorts = [items[sku].move_shortfall(order_id, warehouse) for sku in reservation.skus]
    short = [asdict(s) for s in shorts if s is not None]
    if short:
        reservation.refuse_move(shipment_id, warehouse, short, caused_by)
        return False
    lines = [
        {"sku": sku, **part}
        for sku in reservation.skus
        for part in items[sku].move_hold(order_id, warehouse, now)
    ]
    reservation.move(shipment_id, warehouse, lines, caused_by)
    return True


@dataclass(frozen=True)
class ReturnedLine:
    """One line of a customer return as the warehouse inspected it."""

    sku: str
    qty: int
    condition: str  # RESELLABLE, or e.g. "damaged"
    warehouse: str
    serials: tuple[str, ...] = ()

    @property
    def resellable(self) -> bool:
        return self.condition == RESELLABLE


def take_back(
    return_id: str,
    order_id: str,
    lines: list[ReturnedLine],
    items: Mapping[str, Sku],
    now: datetime,
    caused_by: str | None = None,
) -> Return:
    """A customer return received by the warehouse, taken in: resellable units go back
    on hand where they were received (serial numbers back on the shelf), damaged ones
    are set aside on their SKU, never on hand. Returns the record that makes this happen
    once per return id. `items` are the lines' SKUs; a line refused (its serial numbers)
    raises, and the caller saves none of it."""
    for line in lines:
        item, serials = items[line.sku], list(line.serials)
        if line.resellable:
            item.accept_return(
                line.warehouse, line.qty, serials, order_id, now, return_id, caused_by
            )
        else:
            item.set_aside_damaged(
                line.warehouse, line.qty, serials, order_id, return_id, caused_by
            )
    kept = [{**asdict(line), "serials": list(line.serials)} for line in lines]
    return Return(return_id, order_id, kept, caused_by)


def _shortfall(item: Sku | None, sku: str, qty: int, customer_id: str) -> Shortfall | None:
    if item is None:
        return Shortfall(sku, qty, 0, "unknown_sku")
    return item.shortfall(customer_id, qty)


class Reservation(Aggregate):
    """The inventory decision for one order: what is held where, or what was short."""

    @staticmethod
    def create_id(order_id: str) -> UUID:
        return reservation_id(order_id)

    @event("Decided")
    def __init__(
        self,
        order_id: str,
        customer_id: str,
        lines: list[dict[str, Any]],
        short_lines: list[dict[str, Any]],
        caused_by: str | None = None,
        availability: list[dict[str, Any]] | None = None,  # published, not kept
        replaces: str | None = None,  # a service desk replacement: the order it replaces
    ) -> None:
        self.order_id, self.customer_id = order_id, customer_id
        self.lines, self.short_lines = lines, short_lines
        self.status = "rejected" if short_lines else "held"
        self.warehouse: str | None = None  # where fulfilment ships it from, once moved
        self.shipment_id: str | None = None

    @property
    def skus(self) -> list[str]:
        """The SKUs it holds units of, each once."""
        return sorted({line["sku"] for line in self.lines})

    def move(
        self, shipment_id: str, warehouse: str, lines: list[dict[str, Any]], caused_by: str | None
    ) -> None:
        """Every unit is now held in `warehouse` (see `move`): `lines` afterwards."""
        if self.status != "held":
            raise DomainError(f"the reservation of order {self.order_id} is {self.status}")
        self._moved(
            shipment_id=shipment_id,
            warehouse=warehouse,
            order_id=self.order_id,
            lines=lines,
            caused_by=caused_by,
        )

    @event("Moved")
    def _moved(
        self,
        shipment_id: str,
        warehouse: str,
        order_id: str,
        lines: list[dict[str, Any]],
        caused_by: str | None,
    ) -> None:
        self.lines, self.warehouse, self.shipment_id = lines, warehouse, shipment_id

    def refuse_move(
        self,
        shipment_id: str,
        warehouse: str,
        short_lines: list[dict[str, Any]],
        caused_by: str | None,
    ) -> None:
        """`warehouse` cannot hold every unit: nothing moved, and fulfilment must hear it."""
        self._move_refused(
            shipment_id=shipment_id,
            warehouse=warehouse,
            order_id=self.order_id,
            short_lines=short_lines,
            caused_by=caused_by,
        )

    @event("MoveRefused")
    def _move_refused(
        self,
        shipment_id: str,
        warehouse: str,
        order_id: str,
        short_lines: list[dict[str, Any]],
        caused_by: str | None,
    ) -> None:
        pass  # the units stay where they are held

    def release(self, reason: str) -> bool:
        if self.status != "held":
            return False
        self._released(reason=reason, order_id=self.order_id, lines=self.lines)
        return True

    @event("Released")
    def _released(self, reason: str, order_id: str, lines: list[dict[str, Any]]) -> None:
        self.status = "released"

    def commit(self) -> bool:
        if self.status != "held":
            return False
        self._committed(order_id=self.order_id, lines=self.lines)
        return True

    @event("Committed")
    def _committed(self, order_id: str, lines: list[dict[str, Any]]) -> None:
        self.status = "committed"


def _repeats(serials: list[str]) -> list[str]:
    seen: set[str] = set()
    return sorted({s for s in serials if s in seen or seen.add(s)})  # type: ignore[func-returns-value]


def _days_before(day: str) -> str:
    return (datetime.fromisoformat(day) - timedelta(days=VELOCITY_DAYS)).date().isoformat()


class Return(Aggregate):
    """A customer return as inventory took it in (see `take_back`): its id derives from
    the return's, so a receipt that arrives again, however it arrives (redelivered,
    re-published, refilled with new positions), finds it and changes no stock."""

    @staticmethod
    def create_id(return_id: str) -> UUID:
        return return_key(return_id)

    @event("Received")
    def __init__(
        self,
        return_id: str,
        order_id: str,
        lines: list[dict[str, Any]],
        caused_by: str | None = None,
    ) -> None:
        self.return_id, self.order_id, self.lines = return_id, order_id, lines

    def units(self, resellable: bool) -> int:
        """Units back on hand (True) or set aside (False)."""
        return sum(ln["qty"] for ln in self.lines if (ln["condition"] == RESELLABLE) == resellable)
