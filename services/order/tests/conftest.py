"""Fixtures for the order service's tests: a manual clock, fresh customers and order
bodies, and whole services on SQLite or PostgreSQL (the latter marked `integration`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from order.bootstrap import OrderService, build
from order.settings import Settings
from shopfloor_runtime.clock import ManualClock

OrderBody = Callable[..., dict[str, Any]]
ServiceFactory = Callable[..., OrderService]


def fresh(prefix: str) -> str:
    """An id no other test uses."""
    return f"{prefix}-{uuid4().hex[:12]}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def customer_id() -> str:
    return fresh("customer")


@pytest.fixture
def sku() -> str:
    return fresh("SKU")


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


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Store settings: a SQLite file in the test's own directory, or a fresh PostgreSQL
    database. Every service-level test runs on both."""
    if request.param == "postgres":
        return {"dsn": request.getfixturevalue("pg_dsn")}
    return {"data_dir": str(tmp_path / "data")}


@pytest.fixture
def build_service(store: dict[str, Any], clock: ManualClock) -> Iterator[ServiceFactory]:
    """Builds order services on the test's store, without relay or consumer; every
    service built is closed at teardown (closing twice is harmless)."""
    built: list[OrderService] = []

    def make(rules: dict[str, Any] | None = None, clock: ManualClock = clock) -> OrderService:
        settings = Settings(
            store=store,
            relay={"enabled": False},
            consumer={"enabled": False},
            # the order service on its own: no checking service answers here
            rules={"required_checks": [], **(rules or {})},
        )
        service = build(settings, clock=clock)
        built.append(service)
        return service

    yield make
    for service in reversed(built):
        service.close()


@pytest.fixture
def service(build_service: ServiceFactory) -> OrderService:
    return build_service()


@pytest.fixture
def client(service: OrderService) -> TestClient:
    # Not entered as a context manager: the lifespan's background projector and
    # deadline loop stay off, so tests drive both themselves, deterministically.
    return TestClient(service.http)
