"""Risk's tracked consumer on the real broker: an order's facts from orders.v1 and
orders.private.v1 (chained, as the order service's relay writes them) and the stream
processor's counts on risk.velocity.v1, which is unchained (every message carries
position 1): each count is applied, a repeat changes nothing, and the burst's order is
held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from risk.bootstrap import RiskService
from risk.domain import case_id
from risk.settings import Settings
from shopfloor_contracts.envelope import Envelope
from shopfloor_contracts.orders import Destination, OrderLine, OrderPlaced
from shopfloor_contracts.orders_private import OrderRecipientRecorded, RecipientAddress
from shopfloor_contracts.risk import VelocityObserved, WindowCount
from shopfloor_contracts.topics import RISK_VELOCITY
from shopfloor_runtime.testing import broker_settings

from tests.support import ContractProducer

pytestmark = pytest.mark.integration


def facts(order_id: str, customer: str) -> list[tuple[object, str]]:
    now = datetime.now(UTC)
    total = Decimal("20.00")
    placed = OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        channel="shop",
        lines=[OrderLine(sku="TEE-M", qty=1, unit_price=total)],
        currency="EUR",
        subtotal=total,
        discount=Decimal(0),
        total=total,
        destination=Destination(
            country="DE", postal_prefix="10", region="DE-1", address_fingerprint="fp-1"
        ),
        placed_at=now,
        payment_reminder_at=now + timedelta(minutes=15),
        payment_due_at=now + timedelta(minutes=30),
        required_checks=["risk"],
    )
    recipient = OrderRecipientRecorded(
        order_id=order_id,
        customer_id=customer,
        shipping_address=RecipientAddress(
            name="Ada", line1="Hauptstr. 1", city="Berlin", postal_code="10115", country="DE"
        ),
        address_fingerprint="fp-1",
        placed_at=now,
    )
    return [(placed, order_id), (recipient, order_id)]


def counted(order_id: str, customer: str, dimension: str, key: str, n: int) -> bytes:
    payload = VelocityObserved(
        order_id=order_id,
        customer_id=customer,
        placed_at=datetime.now(UTC),
        counts=[
            WindowCount(dimension=dimension, key=key, window_s=600, count=n, order_ids=[order_id])
        ],
    )
    message = Envelope[VelocityObserved](
        event_id=uuid4(),
        event_type="VelocityObserved",
        schema_version=1,
        occurred_at=payload.placed_at,
        producer="risk-windows",
        aggregate_id=order_id,
        aggregate_version=1,
        correlation_id=order_id,
        position=1,
        previous_position=0,
        payload=payload,
    )
    return message.model_dump_json().encode()


async def test_unchained_counts_are_each_applied_and_repeats_change_nothing(own_broker, tmp_path):
    service = RiskService(
        Settings(
            broker=broker_settings(own_broker),
            store={"data_dir": tmp_path},
            relay={"enabled": False},
            velocity_wait_s=3600,  # assessed only once the counts are in
        )
    )
    calm, burst = "order-calm", "order-burst"
    await ContractProducer(own_broker, producer="order").publish(
        [*facts(calm, "cust-1"), *facts(burst, "cust-2")]
    )
    producer = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap_servers)
    await producer.start()
    try:
        for order_id, customer, n in ((calm, "cust-1", 1), (burst, "cust-2", 5)):
            for dimension, key in (("customer", customer), ("address", "fp-1")):
                value = counted(order_id, customer, dimension, key, n)
                for _ in range(2):  # the stream processor repeated itself
                    await producer.send_and_wait(RISK_VELOCITY.name, value, key=order_id.encode())
    finally:
        await producer.stop()

    consumer = service.consumer
    await consumer.start()
    try:
        for _ in range(200):
            cases = [service.app.find(case_id(o)) for o in (calm, burst)]
            if all(c is not None and c.assessments for c in cases):
                break
            await consumer.poll_once()
    finally:
        await consumer.stop()
        service.close()
    calm_case, burst_case = cases
    assert calm_case.assessments == 1 and calm_case.reasons == []
    assert [r["rule"] for r in burst_case.reasons] == ["velocity.address", "velocity.customer"]
    assert burst_case.hold and burst_case.assessments == 1
