"""Inventory use cases: commands for the API, and the reactions to orders, shipments
and customer returns that policies.py hands in with the consumer's unit of work."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any
from uuid import uuid4

from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.store import ServiceApplication

from inventory.domain import (
    Reservation,
    Return,
    ReturnedLine,
    Sku,
    UnknownSku,
    decide,
    move,
    reservation_id,
    return_key,
    sku_id,
    take_back,
)

log = logging.getLogger(__name__)


class InventoryApplication(ServiceApplication):
    name = "inventory"
    snapshotting_intervals = {Sku: 200}  # hot SKUs collect thousands of events
    cache_size = 5000  # SKUs and reservations

    # -- commands ---------------------------------------------------------------------

    def receive_stock(
        self,
        sku: str,
        warehouse: str,
        qty: int,
        serials: list[str],
        unit_cost: Decimal | None = None,
    ) -> Sku:
        now = self.clock.now()
        cost = None if unit_cost is None else f"{unit_cost:.2f}"
        return self._change(
            sku, lambda item: item.receive(warehouse, qty, serials, now, cost), new=True
        )

    def return_stock(
        self, sku: str, warehouse: str, qty: int, serials: list[str], order_id: str | None
    ) -> Sku:
        now = self.clock.now()
        return self._change(
            sku, lambda item: item.accept_return(warehouse, qty, serials, order_id, now)
        )

    def adjust_stock(self, sku: str, warehouse: str, counted: int, reason: str) -> Sku:
        now = self.clock.now()
        return self._change(sku, lambda item: item.adjust(warehouse, counted, reason, now))

    def transfer_stock(self, sku: str, source: str, target: str, qty: int) -> tuple[Sku, str]:
        transfer_id, now = str(uuid4()), self.clock.now()
        item = self._change(sku, lambda it: it.transfer(transfer_id, source, target, qty, now))
        return item, transfer_id

    def receive_transfer(self, sku: str, transfer_id: str) -> Sku:
        now = self.clock.now()
        return self._change(sku, lambda item: item.receive_transfer(transfer_id, now))

    def set_policy(self, sku: str, **policy: Any) -> Sku:
        now = self.clock.now()
        return self._change(sku, lambda item: item.set_policy(now=now, **policy), new=True)

    def _change(self, sku: str, act: Callable[[Sku], object], new: bool = False) -> Sku:
        return self.change(
            sku_id(sku),
            act,
            kind=Sku,
            missing=lambda: UnknownSku(sku),
            new=(lambda: Sku(sku)) if new else None,
        )

    # -- reactions to orders (policies.py calls these) ----------------------------------

    def reserve_stock(
        self,
        uow: UnitOfWork,
        order_id: str,
        customer_id: str,
        wanted: Mapping[str, int],
        caused_by: str,
        replaces: str | None = None,
    ) -> None:
        """Decide an order's reservation once: every line held, or none (see `decide`).
        A service desk replacement (`replaces`: the order it replaces goods of) is
        reserved like an order, under its own id."""
        if uow.get_new(reservation_id(order_id)) is not None:
            return  # already decided
        items = {sku: uow.get(sku_id(sku)) for sku in sorted(wanted)}
        now = self.clock.now()
        uow.add(decide(order_id, customer_id, wanted, items, now, caused_by, replaces))

    def release_stock(self, uow: UnitOfWork, order_id: str, reason: str) -> None:
        """Give back what an order holds; nothing if it holds nothing (any more)."""
        reservation = uow.get(reservation_id(order_id))
        if reservation is None or not reservation.release(reason):
            return  # never reserved, rejected, or already finished
        now = self.clock.now()
        for sku in reservation.skus:
            _sku(uow, sku).release(order_id, reservation.customer_id, now)

    def move_stock(
        self, uow: UnitOfWork, order_id: str, shipment_id: str, warehouse: str, caused_by: str
    ) -> None:
        """Fulfilment allocated the order's shipment to `warehouse`: hold every unit the
        order has there, on every SKU or on none (see `move`). A reservation that holds
        nothing (never made, rejected, released, committed) has nothing to move and says
        nothing."""
        reservation = uow.get(reservation_id(order_id), Reservation)
        if reservation is None or reservation.status != "held":
            return
        items = {sku: _sku(uow, sku) for sku in reservation.skus}
        move(reservation, items, shipment_id, warehouse, self.clock.now(), caused_by)

    def commit_stock(self, uow: UnitOfWork, order_id: str) -> None:
        """The order's shipment was dispatched: its held units leave the shelves."""
        reservation = uow.get(reservation_id(order_id))
        if reservation is None or not reservation.commit():
            return
        now = self.clock.now()
        for sku in reservation.skus:
            _sku(uow, sku).commit(order_id, now)

    def take_back_return(
        self,
        uow: UnitOfWork,
        return_id: str,
        order_id: str,
        lines: Sequence[ReturnedLine],
        caused_by: str,
    ) -> None:
        """The service desk received a customer return: resellable units back on hand,
        damaged ones set aside (see `take_back`), once per return id. Looked for first,
        not assumed new: the same return may come again with positions the tracking has
        not seen (re-published from a rebuilt store, a refilled topic)."""
        if uow.get(return_key(return_id)) is not None:
            return  # taken in already
        items = {}
        for sku in sorted({line.sku for line in lines}):
            item = uow.get(sku_id(sku), Sku)
            if item is None:
                raise UnknownSku(sku)
            items[sku] = item
        uow.add(take_back(return_id, order_id, list(lines), items, self.clock.now(), caused_by))
        for line in lines:
            if not line.resellable:
                log.warning(
                    "return %s of order %s: %d x %s came back %s to %s; set aside, not on hand",
                    return_id,
                    order_id,
                    line.qty,
                    line.sku,
                    line.condition,
                    line.warehouse,
                )

    # -- queries --------------------------------------------------------------------

    def find_sku(self, sku: str) -> Sku | None:
        return self.find(sku_id(sku), Sku)

    def get_sku(self, sku: str) -> Sku:
        item = self.find_sku(sku)
        if item is None:
            raise UnknownSku(sku)
        return item

    def read_sku(self, sku: str) -> Sku:
        """The SKU as stored now, not as this process last cached it (another worker
        may have changed it since)."""
        item = self.find(sku_id(sku), Sku, fresh=True)
        if item is None:
            raise UnknownSku(sku)
        return item

    def find_reservation(self, order_id: str) -> Reservation | None:
        return self.find(reservation_id(order_id), Reservation)

    def find_return(self, return_id: str) -> Return | None:
        return self.find(return_key(return_id), Return, fresh=True)


def _sku(uow: UnitOfWork, sku: str) -> Sku:
    item = uow.get(sku_id(sku), Sku)
    if item is None:  # a held reservation names only SKUs that exist
        raise LookupError(f"SKU {sku!r} of a held reservation is missing")
    return item
