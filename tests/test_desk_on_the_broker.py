"""The service desk on the real broker and PostgreSQL.

- Tickets from events, exactly once: a late shipment and a failed delivery each open one
  ticket, also when every upstream event is published a second time (new positions, as
  after a broker loss) and the desk, a separate process, is SIGKILLed and restarted in
  the middle.
- SLA timers on the test clock: the customers' tiers come from orders.v1 through the
  desk's consumer; an unanswered chat escalates exactly when its SLA passes, a VIP's
  sooner, an answered one not at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import BaseModel
from service_desk.bootstrap import DeskService
from service_desk.settings import Settings
from shopfloor_contracts import fulfilment as ful
from shopfloor_contracts.orders import OrderLine, OrderPaid, OrderPlaced
from shopfloor_runtime.clock import ManualClock
from shopfloor_runtime.testing import broker_settings, postgres_database

from tests.processes import ServiceProcess, until
from tests.support import ContractProducer

pytestmark = pytest.mark.integration


def placed(order_id: str, customer: str, total: str = "40.00") -> tuple[BaseModel, str]:
    now = datetime.now(UTC)
    amount = Decimal(total)
    event = OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        channel="shop",
        lines=[OrderLine(sku="TEE-M", qty=1, unit_price=amount)],
        currency="EUR",
        subtotal=amount,
        discount=Decimal("0.00"),
        total=amount,
        payment_method="card",
        placed_at=now,
        payment_reminder_at=now + timedelta(minutes=15),
        payment_due_at=now + timedelta(minutes=30),
        required_checks=["inventory"],
    )
    return event, order_id


def paid(order_id: str, total: str) -> tuple[BaseModel, str]:
    event = OrderPaid(
        order_id=order_id,
        amount=Decimal(total),
        method="card",
        reference=f"pay-{order_id}",
        paid_at=datetime.now(UTC),
    )
    return event, order_id


def delayed(order_id: str) -> tuple[BaseModel, str]:
    now = datetime.now(UTC)
    event = ful.ShipmentDelayed(
        shipment_id=f"shp-{order_id}",
        order_ids=[order_id],
        promised_by=now - timedelta(hours=2),
        last_milestone="in_transit",
        detected_at=now,
    )
    return event, order_id


def failed(order_id: str) -> tuple[BaseModel, str]:
    event = ful.DeliveryFailed(
        shipment_id=f"shp-{order_id}",
        order_ids=[order_id],
        tracking_number=f"T-{order_id}",
        place="Berlin depot",
        attempt=1,
        at=datetime.now(UTC),
    )
    return event, order_id


async def test_a_late_shipment_and_a_failed_delivery_each_open_one_ticket_across_republish_and_kill(
    own_broker, tmp_path
):
    late, lost, third = (f"order-{uuid4().hex[:8]}" for _ in range(3))
    orders = ContractProducer(own_broker, "order")
    fulfilment = ContractProducer(own_broker, "fulfilment")
    story = [placed(late, "cust-late"), placed(lost, "cust-lost"), placed(third, "cust-third")]
    trouble = [delayed(late), failed(lost)]
    with postgres_database("sf_desk") as dsn:
        desk = ServiceProcess(
            "service_desk",
            {
                "SERVICE_DESK_BROKER__BOOTSTRAP_SERVERS": own_broker.bootstrap_servers,
                "SERVICE_DESK_STORE__DSN": dsn,
            },
            tmp_path,
        )
        async with httpx.AsyncClient(timeout=10) as http:

            async def tickets() -> list[dict[str, Any]]:
                found = await http.get(f"{desk.url}/tickets", params={"limit": 100})
                return list(found.json()) if found.status_code == 200 else []

            async def opened_for(*order_ids: str) -> list[dict[str, Any]] | None:
                found = await tickets()
                have = {t["order_id"] for t in found}
                return found if have >= set(order_ids) else None

            try:
                await orders.publish(story)
                await fulfilment.publish(trouble)
                desk.start()
                await desk.ready()
                await until("the first two tickets", lambda: opened_for(late, lost))
                desk.kill()  # SIGKILL: no clean-up
                await orders.publish(story)  # everything again, with new positions
                await fulfilment.publish([*trouble, failed(third)])
                desk.start()
                await desk.ready()
                found = await until(
                    "the third order's ticket", lambda: opened_for(late, lost, third)
                )
                await asyncio.sleep(2)  # anything doubled would show by now
                found = await tickets()
            finally:
                desk.stop()
    by_order = sorted((t["order_id"], t["type"], t["channel"]) for t in found)
    assert by_order == sorted(
        [(late, "delivery", "system"), (lost, "delivery", "system"), (third, "delivery", "system")]
    )


async def test_an_unanswered_chat_escalates_when_its_sla_passes_a_vips_sooner(own_broker, tmp_path):
    clock = ManualClock(datetime.now(UTC))
    vip_order = f"order-{uuid4().hex[:8]}"
    await ContractProducer(own_broker, "order").publish(
        [placed(vip_order, "cust-gold", "1500.00"), paid(vip_order, "1500.00")]
    )
    settings = Settings(
        broker=broker_settings(own_broker),
        store={"data_dir": tmp_path / "desk"},
        relay={"enabled": False},
    )
    service = DeskService(settings, clock=clock)
    try:
        await service.consumer.start()
        for _ in range(200):
            customer = service.app.customer("cust-gold")
            if customer is not None and customer.tier(service.app.rules, clock.now()) == "vip":
                break
            await service.consumer.poll_once()
        else:
            raise AssertionError("the VIP's paid order never reached the desk")
        app = service.app
        vip, _ = app.open_ticket("chat", "cust-gold", None, "other", "Hi", "Hello?", None)
        plain, _ = app.open_ticket("chat", "cust-plain", None, "other", "Hi", "Hello?", None)
        answered, _ = app.open_ticket("chat", "cust-happy", None, "other", "Hi", "Hello?", None)
        app.add_message(answered.id, "agent", "ana", "Hi there!", None, False, None)
        assert vip.tier == "vip" and plain.tier == "new"

        def levels() -> dict[str, str]:
            service.catch_up()
            service.tick()
            return {
                name: app.get_ticket(t.id).level
                for name, t in (("vip", vip), ("plain", plain), ("answered", answered))
            }

        clock.advance(timedelta(seconds=44))
        assert levels() == {"vip": "ordinary", "plain": "ordinary", "answered": "ordinary"}
        clock.advance(timedelta(seconds=1))  # 45 s: half of chat's 90 s
        assert levels() == {"vip": "difficult", "plain": "ordinary", "answered": "ordinary"}
        clock.advance(timedelta(seconds=44))
        assert levels()["plain"] == "ordinary"
        clock.advance(timedelta(seconds=1))  # 90 s
        assert levels() == {"vip": "difficult", "plain": "difficult", "answered": "ordinary"}
    finally:
        await service.consumer.stop()
        service.close()
