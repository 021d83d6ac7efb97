"""Contracts: exported schemas are current, producers are strict, consumers tolerant,
and a non-aiokafka client (confluent-kafka / librdkafka) can read orders.v1."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError
from shopfloor_contracts import orders
from shopfloor_contracts.export import DEFAULT_DIR, rendered, stale_files
from shopfloor_contracts.privacy import personal_fields
from shopfloor_contracts.registry import EVENTS, read_payload
from shopfloor_contracts.topics import ANALYSTS, TOPICS

from tests.support import order_service, place_paid_orders

SCHEMAS = Path(DEFAULT_DIR)


def test_checked_in_schemas_match_the_event_models():
    assert stale_files(SCHEMAS) == [], "run `make contracts` and commit contracts/schemas"


def test_a_changed_schema_file_is_reported_stale(tmp_path):
    for path, text in rendered().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "orders.v1/OrderPaid.v1.json").write_text("{}")
    assert stale_files(tmp_path) == ["orders.v1/OrderPaid.v1.json"]


def test_every_event_has_a_schema_and_an_asyncapi_entry():
    asyncapi = json.loads((SCHEMAS / "asyncapi.json").read_text())
    for name, spec in EVENTS.items():
        assert (SCHEMAS / spec.topic / f"{name}.v{spec.version}.json").is_file()
        assert name in asyncapi["channels"][spec.topic]["messages"]


def test_no_event_on_a_topic_analysts_may_read_carries_a_personal_field():
    leaks = {
        f"{spec.topic}/{name}": sorted(personal_fields(spec.model))
        for name, spec in EVENTS.items()
        if not TOPICS[spec.topic].private
    }
    assert {event: fields for event, fields in leaks.items() if fields} == {}


def test_personal_fields_are_found_however_deeply_they_are_nested():
    class Contact(BaseModel):
        phone: str

    class Parcel(BaseModel):
        contacts: list[Contact | None]

    class Leaky(BaseModel):
        order_id: str
        email: str | None = None
        parcels: dict[str, Parcel]

    assert sorted(personal_fields(Leaky)) == ["email", "parcels.contacts.phone"]


def test_the_recipient_travels_only_on_the_private_topic_which_analysts_cannot_read():
    private = {name for name, spec in EVENTS.items() if TOPICS[spec.topic].private}
    assert private == {"OrderRecipientRecorded"}
    recipient = set(personal_fields(EVENTS["OrderRecipientRecorded"].model))
    assert {"shipping_address.name", "shipping_address.phone", "email"} <= recipient
    channel = json.loads((SCHEMAS / "asyncapi.json").read_text())["channels"]["orders.private.v1"]
    assert channel["x-private"] is True and ANALYSTS not in channel["x-readers"]
    assert set(channel["x-readers"]) == {"fulfilment", "service-desk"}
    assert TOPICS["orders.private.v1"].partitions == TOPICS["orders.v1"].partitions


def test_producer_models_refuse_unknown_fields():
    with pytest.raises(ValidationError):
        orders.OrderConfirmed(
            order_id="o", checks=[], confirmed_at="2026-01-01T00:00:00Z", surprise=1
        )


def test_consumers_ignore_fields_added_by_a_newer_producer():
    payload = {
        "order_id": "o",
        "checks": ["inventory"],
        "confirmed_at": "2026-01-01T00:00:00Z",
        "added_in_a_later_version": True,
    }
    assert read_payload("OrderConfirmed", payload).order_id == "o"


@pytest.mark.integration
def test_an_analyst_with_confluent_kafka_reads_orders_and_every_message_fits_its_schema(
    own_broker, tmp_path
):
    import asyncio

    from confluent_kafka import Consumer

    service = order_service(own_broker, tmp_path)
    ids = place_paid_orders(service, 20)
    service.app.cancel_order(uuid.UUID(ids[0]), "operator", "test")

    async def publish() -> int:
        await service.relay.start()
        while await service.relay.publish_once():
            pass
        await service.relay.stop()
        return service.relay.published

    asyncio.run(publish())
    published = len(_expected_on_orders(service))
    consumer = Consumer(
        {
            "bootstrap.servers": own_broker.bootstrap_servers,
            "group.id": f"analyst-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["orders.v1"])
    messages, deadline = [], time.monotonic() + 60
    try:
        while len(messages) < published and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()

    assert len(messages) == published
    types = set()
    for message in messages:
        body = json.loads(message.value())
        spec = EVENTS[body["event_type"]]
        assert spec.topic == "orders.v1" and body["schema_version"] == spec.version
        schema = json.loads(
            (SCHEMAS / spec.topic / f"{spec.event_type}.v{spec.version}.json").read_text()
        )
        jsonschema.validate(body, schema)
        assert message.key().decode() == body["aggregate_id"]
        types.add(body["event_type"])
    assert {"OrderPlaced", "OrderPaid", "OrderConfirmed", "OrderCancelled", "RefundIssued"} <= types


def _expected_on_orders(service) -> list[int]:
    notifications = service.app.recorder.select_notifications(start=1, limit=100_000)
    events = (service.app.mapper.to_domain_event(n) for n in notifications)
    return [1 for e in events for out in service.relay.translate(e) if out.topic == "orders.v1"]


def test_an_order_placed_of_schema_version_1_is_still_read_across_the_upgrade():
    """A consumer behind on orders.v1 when OrderPlaced went to version 2 meets version 1
    messages (full address, no destination): it reads them, never dead-letters them."""
    version_1 = {
        "order_id": "o-1",
        "customer_id": "c-1",
        "channel": "shop",
        "lines": [{"sku": "SKU-1", "qty": 2, "unit_price": "12.50"}],
        "currency": "EUR",
        "subtotal": "25.00",
        "discount": "0.00",
        "total": "25.00",
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "Hauptstrasse 1",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "placed_at": "2026-11-20T10:00:00Z",
        "payment_reminder_at": "2026-11-20T10:15:00Z",
        "payment_due_at": "2026-11-20T10:30:00Z",
        "required_checks": ["inventory"],
    }
    placed = read_payload("OrderPlaced", version_1)
    assert placed.destination is None and placed.lines[0].qty == 2
    assert not hasattr(placed, "shipping_address")  # the person is not carried on
