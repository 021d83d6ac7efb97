"""Placing orders in groups (one transaction for many requests): every request still
gets the answer it would get alone; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID

import httpx
import pytest
from order.application import PlacementRequest
from order.bootstrap import OrderService
from order.domain import Address, IdempotencyConflict, Line, Placement, PlacementResult, price
from shopfloor_runtime.testing import fresh

from .conftest import ServiceFactory


def placement(customer: str | None = None, qty: int = 1) -> Placement:
    return Placement(
        customer_id=customer or fresh("customer"),
        channel="shop",
        lines=(Line("SKU-G", qty, Decimal("5.00")),),
        address=Address("Ada", "1 Main St", "Berlin", "10115", "DE"),
    )


def request(service: OrderService, p: Placement, key: str | None = None) -> PlacementRequest:
    return PlacementRequest(p, price(p, service.app.rules), key)


def placed(outcome: PlacementResult | Exception) -> PlacementResult:
    assert isinstance(outcome, PlacementResult), outcome
    return outcome


def stored_orders(service: OrderService, results: list[PlacementResult]) -> set[UUID]:
    return {r.order.id for r in results if service.app.get_order(r.order.id)}


def test_a_group_of_new_orders_is_saved_and_each_request_gets_its_own(
    service: OrderService,
) -> None:
    requests = [request(service, placement()) for _ in range(20)]
    results = [placed(o) for o in service.app.place_orders(requests)]
    assert [r.order.customer_id for r in results] == [r.placement.customer_id for r in requests]
    assert not any(r.duplicate for r in results)
    assert len(stored_orders(service, results)) == 20


def test_the_same_order_twice_in_one_group_is_folded_into_the_first(
    service: OrderService,
) -> None:
    same = placement()
    first, again, other = (
        placed(o)
        for o in service.app.place_orders(
            [request(service, same), request(service, same), request(service, placement())]
        )
    )
    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.order.id == first.order.id


def test_a_key_used_before_this_process_started_returns_the_first_order(
    build_service: ServiceFactory,
) -> None:
    before = build_service()
    first = before.app.place_order(placement("kim"), "key-1").order
    after = build_service()  # a new process: nothing cached
    newcomer = placement()
    results = after.app.place_orders(
        [request(after, newcomer), request(after, placement("kim"), "key-1")]
    )
    fresh_order, repeat = placed(results[0]), placed(results[1])
    assert repeat.duplicate and repeat.order.id == first.id
    assert not fresh_order.duplicate
    assert after.app.get_order(fresh_order.order.id).customer_id == newcomer.customer_id


def test_a_refused_request_fails_alone_and_the_rest_of_its_group_is_placed(
    service: OrderService,
) -> None:
    service.app.place_order(placement("lee", qty=1), "key-2")
    results = service.app.place_orders(
        [
            request(service, placement()),
            request(service, placement("lee", qty=3), "key-2"),  # same key, other request
            request(service, placement()),
        ]
    )
    assert isinstance(results[1], IdempotencyConflict)
    assert len(stored_orders(service, [placed(results[0]), placed(results[2])])) == 2


async def test_concurrent_api_requests_are_grouped_and_all_answered(
    service: OrderService, order_body
) -> None:
    transport = httpx.ASGITransport(app=service.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        bodies = [order_body(customer_id=fresh("c")) for _ in range(40)]
        bodies.append(order_body(customer_id=bodies[0]["customer_id"]))  # a resubmission
        responses = await asyncio.gather(*(client.post("/orders", json=b) for b in bodies))
    assert sorted(r.status_code for r in responses) == [200] + [201] * 40
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 40
    assert all(service.app.get_order(UUID(i)).status == "awaiting_payment" for i in ids)


@pytest.mark.parametrize("bad", [{"channel": "nowhere"}])
async def test_a_request_breaking_a_rule_is_refused_before_it_is_queued(
    service: OrderService, order_body, bad
) -> None:
    transport = httpx.ASGITransport(app=service.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/orders", json=order_body(**bad))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "channel"]


async def test_an_order_arriving_while_the_service_stops_is_refused_with_503(
    service: OrderService, order_body
) -> None:
    service.placer.stop()
    transport = httpx.ASGITransport(app=service.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/orders", json=order_body())
    assert response.status_code == 503
    assert "stopping" in response.json()["detail"]
