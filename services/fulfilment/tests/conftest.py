"""Fixtures for the fulfilment service's tests: a feed that delivers the upstream events
(orders.v1, orders.private.v1, inventory.v1) to fulfilment's handlers the way the
tracked consumer does, the application on the in-memory store, and the service. Clock,
ids, stores and the client come from shopfloor_runtime.testing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any
from uuid import UUID

import pytest
from fulfilment.application import FulfilmentApplication
from fulfilment.bootstrap import FulfilmentService, rules_from
from fulfilment.domain import OrderFile, Shipment, file_id
from fulfilment.policies import handlers
from fulfilment.settings import Settings
from pydantic import BaseModel
from shopfloor_contracts import inventory as inv
from shopfloor_contracts.orders import (
    Destination,
    OrderCancelled,
    OrderConfirmed,
    OrderHeld,
    OrderLine,
    OrderPlaced,
    OrderReleased,
)
from shopfloor_contracts.orders_private import OrderRecipientRecorded, RecipientAddress
from shopfloor_runtime.applier import by_event_type
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.testing import MakeService, apply_inbound, fresh, inbound

REGIONS = {"DE": ("10115", "DE-1"), "NL": ("1016", "NL-1"), "FR": ("75004", "FR-7")}


@dataclass
class Order:
    order_id: str
    customer_id: str
    lines: dict[str, int]
    country: str = "DE"
    fingerprint: str = field(default_factory=lambda: fresh("addr"))
    service_level: str = "standard"


class Feed:
    """Upstream payloads applied to fulfilment's handlers: one unit of work per message,
    then one `record`, as the tracked consumer does (careful retry on a conflict)."""

    def __init__(self, app: FulfilmentApplication) -> None:
        self.app = app
        self.handlers = by_event_type(handlers(app))
        self._positions = count(1)

    def deliver(self, payload: BaseModel) -> None:
        envelope = inbound(payload, "upstream", next(self._positions), self.app.clock.now())
        apply_inbound(self.app, self.handlers, envelope, payload)

    # -- one order's facts ---------------------------------------------------------------

    def order(
        self,
        lines: dict[str, int],
        customer_id: str | None = None,
        country: str = "DE",
        fingerprint: str | None = None,
        service_level: str = "standard",
    ) -> Order:
        return Order(
            fresh("order"),
            customer_id or fresh("customer"),
            lines,
            country,
            fingerprint or fresh("addr"),
            service_level,
        )

    def placed(self, order: Order) -> None:
        now = self.app.clock.now()
        postal, region = REGIONS[order.country]
        total = Decimal("10.00") * sum(order.lines.values())
        self.deliver(
            OrderPlaced(
                order_id=order.order_id,
                customer_id=order.customer_id,
                channel="shop",
                lines=[
                    OrderLine(sku=sku, qty=qty, unit_price=Decimal("10.00"))
                    for sku, qty in order.lines.items()
                ],
                currency="EUR",
                subtotal=total,
                discount=Decimal("0.00"),
                total=total,
                payment_method="card",
                destination=Destination(
                    country=order.country,
                    postal_prefix=postal[:2],
                    region=region,
                    address_fingerprint=order.fingerprint,
                ),
                service_level=order.service_level,
                placed_at=now,
                payment_reminder_at=now + timedelta(minutes=15),
                payment_due_at=now + timedelta(minutes=30),
                required_checks=["inventory"],
            )
        )

    def recipient(self, order: Order) -> None:
        postal, _ = REGIONS[order.country]
        self.deliver(
            OrderRecipientRecorded(
                order_id=order.order_id,
                customer_id=order.customer_id,
                shipping_address=RecipientAddress(
                    name="Ada Lovelace",
                    line1="Hauptstr. 1",
                    city="Berlin",
                    postal_code=postal,
                    country=order.country,
                ),
                address_fingerprint=order.fingerprint,
                placed_at=self.app.clock.now(),
            )
        )

    def reserved(
        self,
        order: Order,
        held: dict[str, str] | list[tuple[str, str, int]],
        free: dict[tuple[str, str], int] | None = None,
        serials: dict[str, list[str]] | None = None,
    ) -> None:
        """`held`: sku -> warehouse holding all its units, or (sku, warehouse, qty) parts."""
        parts = (
            [(sku, wh, order.lines[sku]) for sku, wh in held.items()]
            if isinstance(held, dict)
            else held
        )
        serials = serials or {}
        self.deliver(
            inv.StockReserved(
                order_id=order.order_id,
                reservation_id=fresh("res"),
                lines=[
                    inv.ReservedLine(sku=sku, qty=qty, warehouse=wh, serials=serials.get(sku, []))
                    for sku, wh, qty in parts
                ],
                availability=[
                    inv.WarehouseAvailability(sku=sku, warehouse=wh, available=n)
                    for (sku, wh), n in (free or {}).items()
                ],
            )
        )

    def confirmed(self, order: Order) -> None:
        self.deliver(
            OrderConfirmed(
                order_id=order.order_id, checks=["inventory"], confirmed_at=self.app.clock.now()
            )
        )

    def cancelled(self, order: Order) -> None:
        self.deliver(
            OrderCancelled(
                order_id=order.order_id,
                reason="customer",
                detail="changed my mind",
                paid_amount=Decimal("0.00"),
            )
        )

    def held(self, order: Order, exception_id: str = "exc-1") -> None:
        self.deliver(
            OrderHeld(
                order_id=order.order_id,
                exception_id=exception_id,
                reason="velocity.customer: 5 orders in 10 min, limit 4",
                held_at=self.app.clock.now(),
            )
        )

    def released(self, order: Order, exception_id: str = "exc-1") -> None:
        self.deliver(
            OrderReleased(
                order_id=order.order_id,
                exception_id=exception_id,
                released_by="ops-anna",
                released_at=self.app.clock.now(),
            )
        )

    def moved(
        self,
        order: Order,
        shipment: str,
        warehouse: str,
        serials: dict[str, list[str]] | None = None,
    ) -> None:
        serials = serials or {}
        self.deliver(
            inv.ReservationMoved(
                order_id=order.order_id,
                reservation_id=fresh("res"),
                shipment_id=shipment,
                warehouse=warehouse,
                lines=[
                    inv.ReservedLine(
                        sku=sku, qty=qty, warehouse=warehouse, serials=serials.get(sku, [])
                    )
                    for sku, qty in order.lines.items()
                ],
            )
        )

    def move_refused(self, order: Order, shipment: str, warehouse: str) -> None:
        sku, qty = next(iter(order.lines.items()))
        self.deliver(
            inv.ReservationMoveRefused(
                order_id=order.order_id,
                shipment_id=shipment,
                warehouse=warehouse,
                short_lines=[inv.RejectedLine(sku=sku, requested=qty, available=0)],
            )
        )

    def confirmed_order(
        self,
        lines: dict[str, int],
        warehouse: str = "WH-BER",
        **kwargs: Any,
    ) -> Order:
        """An order placed, held entirely in `warehouse`, confirmed, with its recipient."""
        order = self.order(lines, **kwargs)
        self.placed(order)
        self.recipient(order)
        self.reserved(order, dict.fromkeys(lines, warehouse))
        self.confirmed(order)
        return order

    # -- reading ---------------------------------------------------------------------

    def file_of(self, order: Order) -> OrderFile:
        file = self.app.find(file_id(order.order_id), OrderFile, fresh=True)
        assert file is not None, f"nothing known of order {order.order_id}"
        return file

    def shipment_of(self, order: Order) -> Shipment:
        file = self.file_of(order)
        assert file.shipments, f"order {order.order_id} has no shipment"
        return self.app.get_shipment(UUID(file.shipments[0]))


def settings(shards: int = 1, **rules: Any) -> Settings:
    return Settings(rules=rules, shards=shards) if rules else Settings(shards=shards)


@pytest.fixture
def rules_settings() -> dict[str, Any]:
    """Rules the test overrides (merged into the defaults)."""
    return {}


@pytest.fixture
def shards() -> int:
    """One shard: every lane and capacity in one aggregate, so the floor tests can name
    a warehouse's and zone's waves 1, 2, 3... (test_shards.py covers several)."""
    return 1


@pytest.fixture
def memory_app(
    clock: ManualClock, rules_settings: dict[str, Any], shards: int
) -> Iterator[FulfilmentApplication]:
    """The application on eventsourcing's in-memory store."""
    app = FulfilmentApplication(
        rules_from(settings(shards, **rules_settings)),
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        clock,
    )
    yield app
    app.close()


@pytest.fixture
def feed(memory_app: FulfilmentApplication) -> Feed:
    return Feed(memory_app)


@pytest.fixture
def service(
    make_service: MakeService, rules_settings: dict[str, Any], shards: int
) -> FulfilmentService:
    return make_service(  # type: ignore[no-any-return]
        FulfilmentService, rules=rules_settings, shards=shards
    )


@pytest.fixture
def service_feed(service: FulfilmentService) -> Feed:
    return Feed(service.app)
