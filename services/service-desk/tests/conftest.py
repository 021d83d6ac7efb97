"""Fixtures for the service desk's tests: a feed that delivers upstream events (orders.v1,
fulfilment.v1) to the desk's handlers the way the tracked consumer does, the application
on the in-memory store, and the service. Clock, ids, stores and the client come from
shopfloor_runtime.testing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from pydantic import BaseModel
from service_desk.application import DeskApplication
from service_desk.bootstrap import DeskService
from service_desk.policies import handlers
from service_desk.rules import DeskRules
from shopfloor_contracts import fulfilment as ful
from shopfloor_contracts.orders import (
    OrderCancelled,
    OrderDelivered,
    OrderHeld,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    RefundIssued,
)
from shopfloor_runtime.applier import by_event_type
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.testing import MakeService, apply_inbound, fresh, inbound

WAREHOUSE = "WH-BER"


@dataclass
class Order:
    order_id: str
    customer_id: str
    lines: dict[str, tuple[int, str]] = field(
        default_factory=lambda: {"TEE-M": (2, "20.00"), "MUG-WHITE": (1, "10.00")}
    )
    shipment_id: str = field(default_factory=lambda: fresh("shp"))

    @property
    def total(self) -> Decimal:
        return sum((Decimal(p) * q for q, p in self.lines.values()), Decimal("0.00"))


class Feed:
    """Upstream payloads applied to the desk's handlers: one unit of work per message,
    then one `record`, as the tracked consumer does."""

    def __init__(self, app: DeskApplication) -> None:
        self.app = app
        self.handlers = by_event_type(handlers(app))
        self._positions = count(1)

    def deliver(self, payload: BaseModel) -> None:
        envelope = inbound(payload, "upstream", next(self._positions), self.app.clock.now())
        apply_inbound(self.app, self.handlers, envelope, payload)

    def order(self, customer_id: str | None = None, **kwargs: Any) -> Order:
        return Order(fresh("order"), customer_id or fresh("customer"), **kwargs)

    def placed(self, order: Order) -> Order:
        now = self.app.clock.now()
        self.deliver(
            OrderPlaced(
                order_id=order.order_id,
                customer_id=order.customer_id,
                channel="shop",
                lines=[
                    OrderLine(sku=sku, qty=qty, unit_price=Decimal(price))
                    for sku, (qty, price) in order.lines.items()
                ],
                currency="EUR",
                subtotal=order.total,
                discount=Decimal("0.00"),
                total=order.total,
                payment_method="card",
                placed_at=now,
                payment_reminder_at=now + timedelta(minutes=15),
                payment_due_at=now + timedelta(minutes=30),
                required_checks=["inventory"],
            )
        )
        return order

    def paid(self, order: Order) -> Order:
        self.deliver(
            OrderPaid(
                order_id=order.order_id,
                amount=order.total,
                method="card",
                reference=fresh("pay"),
                paid_at=self.app.clock.now(),
            )
        )
        return order

    def dispatched(self, order: Order, at: datetime | None = None) -> Order:
        now = at or self.app.clock.now()
        lines = [
            ful.ShipmentLine(order_id=order.order_id, sku=sku, qty=qty)
            for sku, (qty, _) in order.lines.items()
        ]
        self.deliver(
            ful.ShipmentDispatched(
                shipment_id=order.shipment_id,
                order_ids=[order.order_id],
                warehouse=WAREHOUSE,
                carrier="DHL",
                service="parcel",
                tracking_number=f"DHL-{order.order_id}",
                lines=lines,
                promised_by=now + timedelta(days=2),
                dispatched_at=now,
            )
        )
        self.deliver(
            OrderShipped(
                order_id=order.order_id,
                carrier="DHL",
                tracking_number=f"DHL-{order.order_id}",
                lines=[],
                shipped_at=now,
            )
        )
        return order

    def delivered(self, order: Order) -> Order:
        now = self.app.clock.now()
        self.deliver(
            OrderDelivered(
                order_id=order.order_id, delivered_at=now, completes_at=now + timedelta(days=7)
            )
        )
        return order

    def delivered_order(self, customer_id: str | None = None, **kwargs: Any) -> Order:
        order = self.order(customer_id, **kwargs)
        return self.delivered(self.dispatched(self.paid(self.placed(order))))

    def delayed(self, order: Order) -> None:
        now = self.app.clock.now()
        self.deliver(
            ful.ShipmentDelayed(
                shipment_id=order.shipment_id,
                order_ids=[order.order_id],
                promised_by=now - timedelta(hours=1),
                last_milestone="in_transit",
                detected_at=now,
            )
        )

    def delivery_failed(self, order: Order, attempt: int = 1) -> None:
        self.deliver(
            ful.DeliveryFailed(
                shipment_id=order.shipment_id,
                order_ids=[order.order_id],
                tracking_number=f"DHL-{order.order_id}",
                place="Berlin depot",
                attempt=attempt,
                at=self.app.clock.now(),
            )
        )

    def held(self, order: Order, exception_id: str = "exc-1") -> None:
        self.deliver(
            OrderHeld(
                order_id=order.order_id,
                exception_id=exception_id,
                reason="velocity.customer",
                held_at=self.app.clock.now(),
            )
        )

    def refunded(self, order: Order, amount: str, refund_id: str | None = None) -> None:
        self.deliver(
            RefundIssued(
                order_id=order.order_id,
                refund_id=refund_id or fresh("refund"),
                amount=Decimal(amount),
                reason="goodwill",
                refunded_total=Decimal(amount),
                fully_refunded=Decimal(amount) >= order.total,
            )
        )

    def cancelled(self, order: Order) -> None:
        self.deliver(
            OrderCancelled(
                order_id=order.order_id, reason="customer", detail="", paid_amount=Decimal(0)
            )
        )


@pytest.fixture
def rules() -> DeskRules:
    return DeskRules()


@pytest.fixture
def memory_app(clock: ManualClock, rules: DeskRules) -> Iterator[DeskApplication]:
    app = DeskApplication(rules, {"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock)
    yield app
    app.close()


@pytest.fixture
def feed(memory_app: DeskApplication) -> Feed:
    return Feed(memory_app)


@pytest.fixture
def service(make_service: MakeService) -> DeskService:
    return make_service(DeskService)  # type: ignore[no-any-return]


@pytest.fixture
def service_feed(service: DeskService) -> Feed:
    return Feed(service.app)
