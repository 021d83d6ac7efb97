"""Fixtures for the order service's tests: order bodies, the order service on its own
(no checking service answers here), and a feed that hands it other services' events the
way its tracked consumer does. Clock, ids, stores and the client come from
shopfloor_runtime.testing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from order import policies
from order.application import OrderApplication
from order.bootstrap import OrderService
from pydantic import BaseModel
from shopfloor_contracts.envelope import InboundEnvelope
from shopfloor_contracts.fulfilment import (
    Milestone,
    ShipmentDispatched,
    ShipmentLine,
    TrackingUpdated,
)
from shopfloor_contracts.registry import EVENTS
from shopfloor_contracts.topics import TOPICS
from shopfloor_runtime.applier import by_event_type
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.edge import UnitOfWork
from shopfloor_runtime.testing import MakeService, fresh, inbound

OrderBody = Callable[..., dict[str, Any]]
ServiceFactory = Callable[..., OrderService]


class Feed:
    """Other services' events applied to the order service's policies as its tracked
    consumer applies them: one unit of work per message, then one `record`; each
    producer's messages numbered in a chain of their own."""

    def __init__(self, app: OrderApplication) -> None:
        self.app = app
        self.handlers = by_event_type(policies.handlers(app))
        self._positions: Counter[str] = Counter()

    def deliver(self, payload: BaseModel) -> InboundEnvelope:
        producer = TOPICS[EVENTS[type(payload).__name__].topic].producer
        self._positions[producer] += 1
        envelope = inbound(payload, producer, self._positions[producer], self.app.clock.now())
        uow = UnitOfWork(self.app)
        self.handlers[envelope.event_type](envelope, payload, uow)
        self.app.record(uow.aggregates)
        return envelope

    # -- fulfilment's side ----------------------------------------------------------------

    def dispatched(self, *order_ids: UUID | str, shipment_id: str | None = None) -> Any:
        """A ShipmentDispatched for the orders, each with its own lines, leaving now."""
        ids = [str(order_id) for order_id in order_ids]
        now = self.app.clock.now()
        lines = [
            ShipmentLine(order_id=order_id, sku=line["sku"], qty=line["qty"])
            for order_id in ids
            for line in self.app.get_order(UUID(order_id)).lines
        ]
        return ShipmentDispatched(
            shipment_id=shipment_id or fresh("shipment"),
            order_ids=ids,
            warehouse="WH-BER",
            carrier="dhl",
            service="parcel",
            tracking_number=fresh("T"),
            lines=lines,
            promised_by=now + timedelta(days=3),
            dispatched_at=now,
        )

    def tracked(
        self,
        dispatch: ShipmentDispatched,
        milestone: Milestone = "delivered",
        order_ids: list[str] | None = None,
    ) -> TrackingUpdated:
        return TrackingUpdated(
            shipment_id=dispatch.shipment_id,
            order_ids=order_ids or dispatch.order_ids,
            tracking_number=dispatch.tracking_number,
            milestone=milestone,
            place="Berlin",
            at=self.app.clock.now(),
        )

    def ship(self, *order_ids: UUID | str) -> ShipmentDispatched:
        """Fulfilment dispatches the orders in one shipment."""
        dispatch = self.dispatched(*order_ids)
        self.deliver(dispatch)
        return dispatch

    def hand_over(self, *order_ids: UUID | str) -> ShipmentDispatched:
        """Dispatched, then delivered by the carrier."""
        dispatch = self.ship(*order_ids)
        self.deliver(self.tracked(dispatch))
        return dispatch


@pytest.fixture
def order_body(customer_id: str, sku: str) -> OrderBody:
    """A valid POST /orders body (2 x 12.50 = 25.00 on the shop); keywords replace fields."""

    def make(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "customer_id": customer_id,
            "channel": "shop",
            "lines": [{"sku": sku, "qty": 2, "unit_price": "12.50"}],
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "Hauptstrasse 1",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
            "payment_method": "card",
        }
        body.update(overrides)
        return body

    return make


@pytest.fixture
def build_service(make_service: MakeService, clock: ManualClock) -> ServiceFactory:
    """Order services on the test's store; `rules` are merged over confirming on
    payment alone."""

    def make(rules: dict[str, Any] | None = None, clock: ManualClock = clock) -> OrderService:
        rules = {"required_checks": [], **(rules or {})}
        return make_service(OrderService, clock=clock, rules=rules)  # type: ignore[no-any-return]

    return make


@pytest.fixture
def service(build_service: ServiceFactory) -> OrderService:
    return build_service()


@pytest.fixture
def feed_for() -> Callable[[OrderApplication], Feed]:
    return Feed


@pytest.fixture
def fulfilment(service: OrderService) -> Feed:
    """Fulfilment's events for the service under test, through its consumer's path."""
    return Feed(service.app)
