"""Fixtures for the order service's tests: order bodies and the order service on its
own (no checking service answers here). Clock, ids, stores and the client come from
shopfloor_runtime.testing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from order.bootstrap import OrderService
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.testing import MakeService

OrderBody = Callable[..., dict[str, Any]]
ServiceFactory = Callable[..., OrderService]


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
