"""Fixtures for the risk service's tests: a feed that delivers upstream events (orders.v1,
orders.private.v1, inventory.v1, risk.velocity.v1) to risk's handlers the way the
tracked consumer does, the application on the in-memory store, and the service. Clock,
ids, stores and the client come from shopfloor_runtime.testing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from pydantic import BaseModel
from risk.application import RiskApplication
from risk.bootstrap import RiskService
from risk.domain import Case, case_id
from risk.policies import handlers
from risk.rules import RiskRules
from shopfloor_contracts.inventory import RejectedLine, ReservationRejected
from shopfloor_contracts.orders import (
    Destination,
    OrderCancelled,
    OrderConfirmed,
    OrderLine,
    OrderPlaced,
    OrderShipped,
    PaymentRejected,
)
from shopfloor_contracts.orders_private import OrderRecipientRecorded, RecipientAddress
from shopfloor_contracts.risk import VelocityObserved, WindowCount
from shopfloor_runtime.applier import by_event_type
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.testing import MakeService, apply_inbound, fresh, inbound

GOOD_ADDRESS = {
    "name": "Ada Example",
    "line1": "Hauptstr. 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


@dataclass
class Order:
    order_id: str
    customer_id: str
    total: Decimal = Decimal("49.90")
    fingerprint: str = field(default_factory=lambda: fresh("addr"))
    device_id: str | None = None
    address: dict[str, Any] = field(default_factory=lambda: dict(GOOD_ADDRESS))


class Feed:
    """Upstream payloads applied to risk's handlers: one unit of work per message, then
    one `record`, as the tracked consumer does (careful retry on a conflict)."""

    def __init__(self, app: RiskApplication) -> None:
        self.app = app
        self.handlers = by_event_type(handlers(app))
        self._positions = count(1)

    def deliver(self, payload: BaseModel) -> None:
        envelope = inbound(payload, "upstream", next(self._positions), self.app.clock.now())
        apply_inbound(self.app, self.handlers, envelope, payload)

    def order(self, customer_id: str | None = None, **kwargs: Any) -> Order:
        return Order(fresh("order"), customer_id or fresh("customer"), **kwargs)

    def placed(self, order: Order) -> None:
        now = self.app.clock.now()
        self.deliver(
            OrderPlaced(
                order_id=order.order_id,
                customer_id=order.customer_id,
                channel="shop",
                lines=[OrderLine(sku="TEE-M", qty=1, unit_price=order.total)],
                currency="EUR",
                subtotal=order.total,
                discount=Decimal(0),
                total=order.total,
                destination=Destination(
                    country=order.address.get("country") or "DE",
                    postal_prefix="10",
                    region="DE-1",
                    address_fingerprint=order.fingerprint,
                ),
                placed_at=now,
                payment_reminder_at=now + timedelta(minutes=15),
                payment_due_at=now + timedelta(minutes=30),
                required_checks=["inventory", "risk"],
                device_id=order.device_id,
            )
        )

    def recipient(self, order: Order) -> None:
        a = order.address
        self.deliver(
            OrderRecipientRecorded(
                order_id=order.order_id,
                customer_id=order.customer_id,
                shipping_address=RecipientAddress(
                    name=a.get("name", ""),
                    line1=a.get("line1", ""),
                    city=a.get("city", ""),
                    postal_code=a.get("postal_code", ""),
                    country=a.get("country", ""),
                ),
                address_fingerprint=order.fingerprint,
                placed_at=self.app.clock.now(),
            )
        )

    def velocity(self, order: Order, dimension: str, n: int, key: str | None = None) -> None:
        keys = {
            "customer": order.customer_id,
            "address": order.fingerprint,
            "device": order.device_id,
        }
        self.deliver(
            VelocityObserved(
                order_id=order.order_id,
                customer_id=order.customer_id,
                placed_at=self.app.clock.now(),
                counts=[
                    WindowCount(
                        dimension=dimension,  # type: ignore[arg-type]
                        key=key or str(keys[dimension]),
                        window_s=600,
                        count=n,
                        order_ids=[f"o-{i}" for i in range(n - 1)] + [order.order_id],
                    )
                ],
            )
        )

    def counted(self, order: Order, n: int = 1) -> None:
        """The stream processor's counts for every dimension the order has."""
        self.velocity(order, "customer", n)
        self.velocity(order, "address", n)
        if order.device_id:
            self.velocity(order, "device", n)

    def assessed_order(self, order: Order | None = None, **kwargs: Any) -> Order:
        """Placed, address known, counted once everywhere: assessed."""
        order = order or self.order(**kwargs)
        self.placed(order)
        self.recipient(order)
        self.counted(order)
        return order

    def payment_rejected(self, order: Order, reason: str, reference: str = "pay-1") -> None:
        self.deliver(
            PaymentRejected(
                order_id=order.order_id,
                amount=order.total,
                method="card",
                reference=reference,
                reason=reason,  # type: ignore[arg-type]
                detail=f"refused: {reason}",
            )
        )

    def short(self, order: Order) -> None:
        self.deliver(
            ReservationRejected(
                order_id=order.order_id,
                short_lines=[RejectedLine(sku="TEE-M", requested=3, available=1)],
            )
        )

    def confirmed(self, order: Order) -> None:
        self.deliver(
            OrderConfirmed(
                order_id=order.order_id,
                checks=["inventory", "risk"],
                confirmed_at=self.app.clock.now(),
            )
        )

    def shipped(self, order: Order) -> None:
        self.deliver(
            OrderShipped(
                order_id=order.order_id,
                carrier="DHL",
                tracking_number="T1",
                lines=[],
                shipped_at=self.app.clock.now(),
            )
        )

    def cancelled(self, order: Order) -> None:
        self.deliver(
            OrderCancelled(
                order_id=order.order_id, reason="customer", detail="", paid_amount=Decimal(0)
            )
        )

    def case(self, order: Order) -> Case:
        return self.app.get_case(case_id(order.order_id))

    def rules(self, order: Order) -> list[str]:
        return [r["rule"] for r in self.case(order).reasons]


@pytest.fixture
def rules() -> RiskRules:
    return RiskRules()


@pytest.fixture
def memory_app(clock: ManualClock, rules: RiskRules) -> Iterator[RiskApplication]:
    app = RiskApplication(rules, {"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock)
    yield app
    app.close()


@pytest.fixture
def feed(memory_app: RiskApplication) -> Feed:
    return Feed(memory_app)


@pytest.fixture
def service(make_service: MakeService) -> RiskService:
    return make_service(RiskService)  # type: ignore[no-any-return]


@pytest.fixture
def service_feed(service: RiskService) -> Feed:
    return Feed(service.app)
