"""Inventory use cases for the API; the reactions to orders live in policies.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from shopfloor_runtime.clock import Clock, SystemClock
from shopfloor_runtime.store import ServiceApplication

from inventory.domain import Reservation, Sku, UnknownSku, reservation_id, sku_id


class InventoryApplication(ServiceApplication):
    name = "inventory"
    snapshotting_intervals = {Sku: 200}  # hot SKUs collect thousands of events

    def __init__(self, clock: Clock | None = None, env: dict[str, str] | None = None) -> None:
        # Cached aggregates are not re-read before use (no fast-forward): every decision
        # is saved with a version check, and a conflict drops the stale copies.
        cache = {"AGGREGATE_CACHE_MAXSIZE": "5000", "AGGREGATE_CACHE_FASTFORWARD": "n"}
        super().__init__({**cache, **(env or {})})
        self.clock = clock or SystemClock()

    def receive_stock(self, sku: str, warehouse: str, qty: int, serials: list[str]) -> Sku:
        def receive() -> Sku:
            item = self.find_sku(sku) or Sku(sku)
            item.receive(warehouse, qty, serials, self.clock.now())
            self.save(item)
            return item

        return self.retry([sku_id(sku)], receive)

    def return_stock(
        self, sku: str, warehouse: str, qty: int, serials: list[str], order_id: str | None
    ) -> Sku:
        return self._change(
            sku,
            lambda item: item.accept_return(warehouse, qty, serials, order_id, self.clock.now()),
        )

    def adjust_stock(self, sku: str, warehouse: str, counted: int, reason: str) -> Sku:
        return self._change(
            sku, lambda item: item.adjust(warehouse, counted, reason, self.clock.now())
        )

    def transfer_stock(self, sku: str, source: str, target: str, qty: int) -> tuple[Sku, str]:
        transfer_id = str(uuid4())
        item = self._change(
            sku, lambda it: it.transfer(transfer_id, source, target, qty, self.clock.now())
        )
        return item, transfer_id

    def receive_transfer(self, sku: str, transfer_id: str) -> Sku:
        return self._change(sku, lambda item: item.receive_transfer(transfer_id, self.clock.now()))

    def set_policy(self, sku: str, **policy: Any) -> Sku:
        def change() -> Sku:
            item = self.find_sku(sku) or Sku(sku)
            item.set_policy(now=self.clock.now(), **policy)
            self.save(item)
            return item

        return self.retry([sku_id(sku)], change)

    def _change(self, sku: str, action: Callable[[Sku], Any]) -> Sku:
        def attempt() -> Sku:
            item = self.get_sku(sku)
            action(item)
            self.save(item)
            return item

        return self.retry([sku_id(sku)], attempt)

    # -- queries --------------------------------------------------------------------

    def find_sku(self, sku: str) -> Sku | None:
        return self._find(sku_id(sku))

    def get_sku(self, sku: str) -> Sku:
        item = self.find_sku(sku)
        if item is None:
            raise UnknownSku(sku)
        return item

    def read_sku(self, sku: str) -> Sku:
        """The SKU as stored now, not as this process last cached it (another worker
        may have changed it since)."""
        try:
            return self.read(sku_id(sku))  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            raise UnknownSku(sku) from None

    def find_reservation(self, order_id: str) -> Reservation | None:
        return self._find(reservation_id(order_id))

    def _find(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
