"""How inventory reacts to orders: reserve on placement, release on cancellation, commit
on shipment. Each reaction is idempotent: the reservation's id derives from the order."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict

from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.orders import OrderCancelled, OrderPlaced, OrderShipped
from shopfloor_runtime.edge import Handler, UnitOfWork

from inventory.application import InventoryApplication
from inventory.domain import Reservation, Shortfall, Sku, reservation_id, sku_id


def handlers(app: InventoryApplication) -> dict[str, Handler]:
    def order_placed(envelope: InboundEnvelope, event: OrderPlaced, uow: UnitOfWork) -> None:
        if uow.get_new(reservation_id(event.order_id)) is not None:
            return  # already decided
        wanted = Counter[str]()
        for line in event.lines:
            wanted[line.sku] += line.qty
        items = {sku: uow.get(sku_id(sku)) for sku in sorted(wanted)}
        shorts = [
            _shortfall(items[sku], sku, qty, event.customer_id) for sku, qty in wanted.items()
        ]
        shorts = [s for s in shorts if s is not None]
        lines = []
        if not shorts:  # all or nothing: every line fits, so every line is held
            now = app.clock.now()
            for sku, qty in sorted(wanted.items()):
                item = items[sku]
                assert item is not None
                for part in item.reserve(event.order_id, event.customer_id, qty, now):
                    lines.append({"sku": sku, **part})
        uow.add(
            Reservation(
                event.order_id,
                event.customer_id,
                lines,
                [asdict(s) for s in shorts if s is not None],
                str(envelope.event_id),
            )
        )

    def order_cancelled(envelope: InboundEnvelope, event: OrderCancelled, uow: UnitOfWork) -> None:
        reservation = uow.get(reservation_id(event.order_id))
        if reservation is None or not reservation.release(f"order cancelled: {event.reason}"):
            return  # nothing held: never reserved, rejected, or already finished
        for sku in {line["sku"] for line in reservation.lines}:
            _sku(uow, sku).release(event.order_id, reservation.customer_id, app.clock.now())

    def order_shipped(envelope: InboundEnvelope, event: OrderShipped, uow: UnitOfWork) -> None:
        reservation = uow.get(reservation_id(event.order_id))
        if reservation is None or not reservation.commit():
            return
        for sku in {line["sku"] for line in reservation.lines}:
            _sku(uow, sku).commit(event.order_id, app.clock.now())

    return {
        "OrderPlaced": order_placed,
        "OrderCancelled": order_cancelled,
        "OrderShipped": order_shipped,
    }


def _shortfall(item: Sku | None, sku: str, qty: int, customer_id: str) -> Shortfall | None:
    if item is None:
        return Shortfall(sku, qty, 0, "unknown_sku")
    return item.shortfall(customer_id, qty)


def _sku(uow: UnitOfWork, sku: str) -> Sku:
    item = uow.get(sku_id(sku))
    if item is None:  # a held reservation names only SKUs that exist
        raise LookupError(f"SKU {sku!r} of a held reservation is missing")
    return item  # type: ignore[no-any-return]
