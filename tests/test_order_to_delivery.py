"""One order's whole story across the three services, end to end on the real broker and
PostgreSQL, each service its own process: placed and paid at the order API, reserved by
inventory, confirmed, allocated and waved by fulfilment, picked, packed and dispatched
through fulfilment's API (the order becomes shipped, inventory's on hand goes down),
tracked to delivered (the order becomes delivered), completed after the return window;
and a cancel after dispatch refused with the reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from shopfloor_devstack.launcher import EmbeddedBroker
from shopfloor_runtime.testing import postgres_database

from tests.processes import ServiceProcess, prefixed, until

pytestmark = pytest.mark.integration

SKU = "TEE-M"


@contextlib.asynccontextmanager
async def three_services(broker: EmbeddedBroker, logs: Path) -> AsyncIterator[dict[str, str]]:
    with (
        postgres_database("sf_order") as order_dsn,
        postgres_database("sf_inventory") as inventory_dsn,
        postgres_database("sf_fulfilment") as fulfilment_dsn,
    ):
        common = {"BROKER__BOOTSTRAP_SERVERS": broker.bootstrap_servers}
        processes = [
            ServiceProcess(
                "order",
                {
                    **prefixed("ORDER", common),
                    "ORDER_STORE__DSN": order_dsn,
                    # risk's part of the story is tests/test_risk_holds.py
                    "ORDER_RULES__REQUIRED_CHECKS": '["inventory"]',
                    "ORDER_RULES__RETURN_WINDOW_S": "3",
                    "ORDER_DEADLINE_TICK_S": "0.5",
                },
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
        ]
        try:
            for process in processes:
                process.start()
            await asyncio.gather(*(process.ready() for process in processes))
            yield {process.module: process.url for process in processes}
        finally:
            for process in processes:
                process.stop()


async def test_an_order_is_shipped_delivered_and_completed_by_fulfilment(own_broker, tmp_path):
    async with three_services(own_broker, tmp_path) as url, httpx.AsyncClient(timeout=30) as http:
        stock = await http.post(
            f"{url['inventory']}/stock/receipts",
            json={"sku": SKU, "warehouse": "WH-BER", "qty": 10},
        )
        assert stock.status_code == 201, stock.text
        body = {
            "customer_id": "cust-e2e",
            "channel": "shop",
            "lines": [{"sku": SKU, "qty": 2, "unit_price": "19.00"}],
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "Hauptstr. 1",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
        }
        placed = await http.post(
            f"{url['order']}/orders", json=body, headers={"Idempotency-Key": str(uuid4())}
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        order_id = order["id"]
        paid = await http.post(
            f"{url['order']}/orders/{order_id}/payments",
            json={"amount": order["total"], "method": "card", "reference": "pay-1"},
        )
        assert paid.status_code == 200, paid.text

        async def waved() -> dict[str, Any] | None:
            found = (
                await http.get(f"{url['fulfilment']}/shipments", params={"order": order_id})
            ).json()
            return found[0] if found and found[0]["wave_id"] else None

        shipment = await until("the order in a wave", waved)
        assert shipment["warehouse"] == "WH-BER" and shipment["zone"] in ("B", "C")
        wave = (await http.get(f"{url['fulfilment']}/waves/{shipment['wave_id']}")).json()
        [line] = wave["pick_list"]
        pick = await http.post(
            f"{url['fulfilment']}/waves/{wave['wave_id']}/picks",
            json={"picker": "p1", "bin": line["bin"], "sku": SKU, "qty": 2},
        )
        assert pick.status_code == 200, pick.text
        sid = shipment["shipment_id"]
        packed = await http.post(
            f"{url['fulfilment']}/shipments/{sid}/pack",
            json={"weight_grams": 1000, "items": [{"sku": SKU, "qty": 2}]},
        )
        assert packed.status_code == 200, packed.text

        async def status(wanted: str) -> Any:
            found = (await http.get(f"{url['order']}/orders/{order_id}")).json()
            return found if found["status"] == wanted else None

        await until("the order shipped", lambda: status("shipped"))

        async def committed() -> Any:
            item = (await http.get(f"{url['inventory']}/stock/{SKU}")).json()
            return item if item["on_hand"] == 8 else None

        item = await until("the units gone from the shelf", committed)
        assert (item["reserved"], item["available"]) == (0, 8)

        cancel = await http.post(
            f"{url['order']}/orders/{order_id}/cancel",
            json={"reason": "customer", "detail": "too late"},
        )
        assert cancel.status_code == 409 and "shipped" in cancel.json()["detail"]

        hook = {"milestone": "delivered", "time": datetime.now(UTC).isoformat(), "place": "Berlin"}
        tracked = await http.post(f"{url['fulfilment']}/shipments/{sid}/tracking", json=hook)
        assert tracked.status_code == 200 and tracked.json()["changed"] is True
        await until("the order delivered", lambda: status("delivered"))
        await until("the order completed after the return window", lambda: status("completed"))
