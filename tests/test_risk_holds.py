"""Risk holds end to end on the real broker and PostgreSQL, each service its own process
(order with risk among its required checks, inventory, fulfilment, risk): a held order is
never confirmed or shipped until an operator releases it, and then goes all the way;
an operator's cancel cancels it and frees its stock; a hold that arrives after
confirmation (the customer blacklisted meanwhile) pulls the order from fulfilment before
dispatch, and its release gives it a new shipment.

Risk runs without its velocity worker here (assessing after RISK_VELOCITY_WAIT_S without
counts); the worker's own tests are services/risk/tests/test_windows*.py and the whole
stack with it is tests/test_stack.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime.testing import free_port, postgres_database

from tests.processes import ServiceProcess, prefixed, stays, until

pytestmark = pytest.mark.integration

WAREHOUSE = "WH-BER"
OPERATOR = {"operator": "ops-anna", "comment": "checked with the customer"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The four services on a broker of their own, for the whole module."""
    logs = tmp_path_factory.mktemp("risk-holds")
    with (
        EmbeddedBroker(port=free_port(), log_path=logs / "tansu.log") as broker,
        postgres_database("sf_order") as order_dsn,
        postgres_database("sf_inventory") as inventory_dsn,
        postgres_database("sf_fulfilment") as fulfilment_dsn,
        postgres_database("sf_risk") as risk_dsn,
    ):
        common = {"BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers}
        processes = [
            ServiceProcess(
                "order",
                {**prefixed("ORDER", common), "ORDER_STORE__DSN": order_dsn},  # default checks
                logs,
            ),
            ServiceProcess(
                "inventory",
                {**prefixed("INVENTORY", common), "INVENTORY_STORE__DSN": inventory_dsn},
                logs,
            ),
            ServiceProcess(
                "fulfilment",
                {
                    **prefixed("FULFILMENT", common),
                    "FULFILMENT_STORE__DSN": fulfilment_dsn,
                    "FULFILMENT_RULES__WAVE_WINDOW_S": "1",
                    "FULFILMENT_TICK_S": "0.3",
                },
                logs,
            ),
            ServiceProcess(
                "risk",
                {
                    **prefixed("RISK", common),
                    "RISK_STORE__DSN": risk_dsn,
                    "RISK_VELOCITY_WAIT_S": "0.5",
                    "RISK_TICK_S": "0.3",
                },
                logs,
            ),
        ]
        try:
            for process in processes:
                process.start()

            async def all_ready() -> None:
                await asyncio.gather(*(process.ready() for process in processes))

            asyncio.run(all_ready())
            yield {process.module: process.url for process in processes}
        finally:
            for process in processes:
                process.stop()


class Shop:
    """The operator's and the shop's side, through the services' HTTP APIs."""

    def __init__(self, http: httpx.AsyncClient, url: dict[str, str]) -> None:
        self.http, self.url = http, url

    async def stock(self, sku: str, qty: int) -> None:
        received = await self.http.post(
            f"{self.url['inventory']}/stock/receipts",
            json={"sku": sku, "warehouse": WAREHOUSE, "qty": qty},
        )
        assert received.status_code == 201, received.text

    async def paid_order(self, customer: str, sku: str, qty: int, unit_price: str) -> str:
        body = {
            "customer_id": customer,
            "channel": "shop",
            "lines": [{"sku": sku, "qty": qty, "unit_price": unit_price}],
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": f"Hauptstr. {uuid4().int % 200 + 1}",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
        }
        placed = await self.http.post(
            f"{self.url['order']}/orders", json=body, headers={"Idempotency-Key": str(uuid4())}
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        paid = await self.http.post(
            f"{self.url['order']}/orders/{order['id']}/payments",
            json={"amount": order["total"], "method": "card", "reference": f"pay-{uuid4()}"},
        )
        assert paid.status_code == 200, paid.text
        return str(order["id"])

    async def order(self, order_id: str) -> dict[str, Any]:
        found = await self.http.get(f"{self.url['order']}/orders/{order_id}")
        assert found.status_code == 200, found.text
        return dict(found.json())

    async def status(self, order_id: str, wanted: str) -> dict[str, Any] | None:
        found = await self.order(order_id)
        return found if found["status"] == wanted else None

    async def assessment(self, order_id: str) -> dict[str, Any] | None:
        found = await self.http.get(f"{self.url['risk']}/orders/{order_id}/assessment")
        return dict(found.json()) if found.status_code == 200 else None

    async def held_case(self, order_id: str) -> dict[str, Any]:
        async def held() -> dict[str, Any] | None:
            case = await self.assessment(order_id)
            return case if case and case["hold"] else None

        return dict(await until(f"risk holding {order_id}", held))

    async def shipments(self, order_id: str) -> list[dict[str, Any]]:
        found = await self.http.get(
            f"{self.url['fulfilment']}/shipments", params={"order": order_id}
        )
        assert found.status_code == 200, found.text
        return list(found.json())

    async def stock_of(self, sku: str) -> dict[str, Any]:
        return dict((await self.http.get(f"{self.url['inventory']}/stock/{sku}")).json())

    async def ship(self, order_id: str, sku: str, qty: int) -> None:
        """Pick the order's wave line and pack it: dispatched."""

        async def waved() -> dict[str, Any] | None:
            live = [s for s in await self.shipments(order_id) if s["status"] != "pulled"]
            return live[0] if live and live[0]["wave_id"] else None

        shipment = await until(f"{order_id} in a wave", waved)
        wave = (await self.http.get(f"{self.url['fulfilment']}/waves/{shipment['wave_id']}")).json()
        line = next(ln for ln in wave["pick_list"] if ln["order_id"] == order_id)
        picked = await self.http.post(
            f"{self.url['fulfilment']}/waves/{wave['wave_id']}/picks",
            json={"picker": "p1", "bin": line["bin"], "sku": sku, "qty": qty},
        )
        assert picked.status_code == 200, picked.text
        packed = await self.http.post(
            f"{self.url['fulfilment']}/shipments/{shipment['shipment_id']}/pack",
            json={"weight_grams": 500 * qty, "items": [{"sku": sku, "qty": qty}]},
        )
        assert packed.status_code == 200, packed.text


@contextlib.asynccontextmanager
async def shop(url: dict[str, str]) -> Any:
    async with httpx.AsyncClient(timeout=30) as http:
        yield Shop(http, url)


async def test_a_held_order_is_never_confirmed_until_released_then_ships(url):
    async with shop(url) as s:
        await s.stock("TEE-HELD", 10)
        order_id = await s.paid_order("cust-big", "TEE-HELD", 2, "600.00")  # 1200 > 1000
        case = await s.held_case(order_id)
        assert [r["rule"] for r in case["reasons"]] == ["large.amount"]
        assert case["queue"] == "specialist" and case["level"] == "serious"
        await until("the order on hold", lambda: s.status(order_id, "on_hold"))

        async def still_held() -> bool:
            order = await s.order(order_id)
            return order["status"] == "on_hold" and not await s.shipments(order_id)

        await stays("a held, paid, reserved order is neither confirmed nor allocated", still_held)
        assert (await s.stock_of("TEE-HELD"))["reserved"] == 2

        released = await s.http.post(
            f"{url['risk']}/exceptions/{case['exception_id']}/release", json=OPERATOR
        )
        assert released.status_code == 200, released.text
        await until("the released order confirmed", lambda: s.status(order_id, "confirmed"))
        await s.ship(order_id, "TEE-HELD", 2)
        await until("the released order shipped", lambda: s.status(order_id, "shipped"))


async def test_cancelling_a_held_order_cancels_it_and_frees_its_stock(url):
    async with shop(url) as s:
        await s.stock("MUG-HELD", 10)
        order_id = await s.paid_order("cust-bigger", "MUG-HELD", 3, "400.00")
        case = await s.held_case(order_id)

        async def reserved() -> bool:
            return (await s.stock_of("MUG-HELD"))["reserved"] == 3

        await until("the held order's units reserved", reserved)
        cancelled = await s.http.post(
            f"{url['risk']}/exceptions/{case['exception_id']}/cancel",
            json={**OPERATOR, "fraud": True},
        )
        assert cancelled.status_code == 200, cancelled.text
        order = await until("the order cancelled", lambda: s.status(order_id, "cancelled"))
        assert order["cancel_reason"] == "operator"

        async def freed() -> dict[str, Any] | None:
            item = await s.stock_of("MUG-HELD")
            return item if item["reserved"] == 0 else None

        item = await until("the stock freed", freed)
        assert (item["on_hand"], item["available"]) == (10, 10)
        assert await s.shipments(order_id) == []


async def test_a_hold_after_confirmation_pulls_the_order_before_dispatch(url):
    async with shop(url) as s:
        await s.stock("CAP-LATE", 10)
        customer = f"cust-{uuid4().hex[:8]}"
        order_id = await s.paid_order(customer, "CAP-LATE", 1, "20.00")
        await until("the clear order confirmed", lambda: s.status(order_id, "confirmed"))

        async def allocated() -> list[dict[str, Any]]:
            return await s.shipments(order_id)

        [first] = await until("the order allocated", allocated)
        entry = await s.http.post(
            f"{url['risk']}/blacklist",
            json={
                "kind": "customer",
                "value": customer,
                "reason": "chargebacks",
                "added_by": "ops",
            },
        )
        assert entry.status_code == 201, entry.text
        case = await s.held_case(order_id)
        assert [r["rule"] for r in case["reasons"]] == ["blacklist.customer"]
        await until("the order on hold", lambda: s.status(order_id, "on_hold"))

        async def pulled() -> bool:
            return [x["status"] for x in await s.shipments(order_id)] == ["pulled"]

        await until("the shipment pulled from fulfilment", pulled)
        refused = await s.http.post(
            f"{url['fulfilment']}/shipments/{first['shipment_id']}/pack",
            json={"weight_grams": 500, "items": [{"sku": "CAP-LATE", "qty": 1}]},
        )
        assert refused.status_code == 409, refused.text

        released = await s.http.post(
            f"{url['risk']}/exceptions/{case['exception_id']}/release", json=OPERATOR
        )
        assert released.status_code == 200, released.text
        await s.ship(order_id, "CAP-LATE", 1)
        await until("the order shipped after its release", lambda: s.status(order_id, "shipped"))
        statuses = sorted(x["status"] for x in await s.shipments(order_id))
        assert statuses == ["dispatched", "pulled"]
