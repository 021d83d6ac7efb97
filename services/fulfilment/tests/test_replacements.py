"""Replacements: a re-ship or exchange the service desk asks for (ReplacementRequested on
service-desk.v1) ships like an order to the original order's customer and address once
inventory holds its lines, never merged, its id named in every event's `replaces`."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from fulfilment.translation import to_contract
from shopfloor_contracts import fulfilment as contract
from shopfloor_contracts.service_desk import ReplacementRequested, ReturnLine

from .conftest import Order
from .test_floor import BINS, pick_all, wave_of

BER = "WH-BER"


@pytest.fixture
def rules_settings():
    return {**BINS, "wave_size": 1}


def ask(feed, order: Order, lines: dict[str, int]) -> Order:
    replacement = Order(f"rep-{uuid4().hex[:8]}", order.customer_id, lines)
    feed.deliver(
        ReplacementRequested(
            replacement_id=replacement.order_id,
            return_id=str(uuid4()),
            ticket_id=str(uuid4()),
            order_id=order.order_id,
            customer_id=order.customer_id,
            kind="reship",
            lines=[ReturnLine(sku=s, qty=q) for s, q in lines.items()],
            requested_at=datetime.now(UTC),
        )
    )
    return replacement


def published(feed, shipment_id: UUID, kind: type) -> list:
    payloads = [p for e in feed.app.events.get(shipment_id) if (p := to_contract(e))]
    return [p for _, p in payloads if isinstance(p, kind)]


def test_a_replacement_ships_to_the_original_address_once_its_stock_is_held(feed):
    order = feed.confirmed_order({"TEE-M": 1})
    replacement = ask(feed, order, {"MUG-WHITE": 1})
    assert feed.file_of(replacement).shipments == []  # waits for inventory
    feed.reserved(replacement, {"MUG-WHITE": BER})
    shipment = feed.shipment_of(replacement)
    assert shipment.orders.keys() == {replacement.order_id}  # never merged
    assert shipment.replaces == {replacement.order_id: order.order_id}
    assert feed.file_of(replacement).recipient == feed.file_of(order).recipient
    [allocated] = published(feed, shipment.id, contract.ShipmentAllocated)
    assert allocated.replaces == {replacement.order_id: order.order_id}
    assert allocated.customer_id == order.customer_id
    wave = wave_of(feed, replacement)
    pick_all(feed.app, wave)
    feed.app.pack(shipment.id, 500, [{"sku": "MUG-WHITE", "qty": 1}])
    [dispatched] = published(feed, shipment.id, contract.ShipmentDispatched)
    assert dispatched.order_ids == [replacement.order_id]
    assert dispatched.replaces == {replacement.order_id: order.order_id}


def test_a_replacement_asked_twice_ships_once(feed):
    order = feed.confirmed_order({"TEE-M": 1})
    replacement = ask(feed, order, {"TEE-M": 1})
    feed.deliver(
        ReplacementRequested(
            replacement_id=replacement.order_id,
            return_id=str(uuid4()),
            ticket_id=str(uuid4()),
            order_id=order.order_id,
            customer_id=order.customer_id,
            kind="reship",
            lines=[ReturnLine(sku="TEE-M", qty=1)],
            requested_at=datetime.now(UTC),
        )
    )
    feed.reserved(replacement, {"TEE-M": BER})
    feed.reserved(replacement, {"TEE-M": BER})
    assert len(feed.file_of(replacement).shipments) == 1


def test_a_replacement_of_an_order_fulfilment_never_saw_ships_nothing(feed):
    stranger = feed.order({"TEE-M": 1})
    replacement = ask(feed, stranger, {"TEE-M": 1})
    feed.reserved(replacement, {"TEE-M": BER})
    assert feed.file_of(replacement).shipments == []
