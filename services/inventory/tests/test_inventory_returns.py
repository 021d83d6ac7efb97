"""Customer returns the service desk received (inventory.policies on service-desk.v1):
resellable units go back on hand in the warehouse that received them, serial numbers back
on the shelf with a `returned` history entry; damaged units are set aside (recorded, never
on hand); all of it once per return id, however often and with whatever positions the
receipt arrives. Every test runs on SQLite and PostgreSQL (`store`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.persistence import RecordConflictError
from inventory import translation
from inventory.bootstrap import InventoryService
from inventory.domain import InvalidStock, Reservation, Sku, reservation_id, return_key, sku_id
from shopfloor_contracts import inventory as contract
from shopfloor_contracts.service_desk import ReceivedLine, ReplacementRequested, ReturnLine
from shopfloor_contracts.topics import INVENTORY
from shopfloor_runtime.edge import UnitOfWork

from .test_inventory_api import read, receive, stock_of


def line(sku: str, qty: int, condition: str = "resellable", **extra: Any) -> ReceivedLine:
    return ReceivedLine(
        sku=sku,
        qty=qty,
        condition=condition,  # type: ignore[arg-type]
        warehouse=extra.pop("warehouse", "berlin"),
        **extra,
    )


def shipped(feed: Any, sku: str, qty: int) -> str:
    """An order of `qty` units of `sku`, reserved and dispatched from berlin."""
    order_id = feed.place({sku: qty})
    feed.ship(order_id, {sku: qty})
    return str(order_id)


def sku_events(service: InventoryService, sku: str) -> list[Any]:
    return list(service.app.events.get(sku_id(sku)))


def returns_published(service: InventoryService, sku: str) -> list[Any]:
    """The StockReturned messages the relay publishes for the SKU's stored events."""
    messages = [out for e in sku_events(service, sku) for out in translation.to_outbound(e)]
    return [out for out in messages if isinstance(out.payload, contract.StockReturned)]


def test_a_resellable_return_goes_back_on_hand_where_it_was_received(service, client, feed, sku):
    receive(client, sku, 5)
    order_id = shipped(feed, sku, 3)

    envelope = feed.deliver(feed.returned(order_id, line(sku, 2, warehouse="hamburg")))

    stock = stock_of(client, sku)
    assert (stock["on_hand"], stock["available"], stock["reserved"]) == (4, 4, 0)
    assert {w["warehouse"]: w["on_hand"] for w in stock["warehouses"]} == {
        "berlin": 2,
        "hamburg": 2,
    }
    [returned] = returns_published(service, sku)
    assert returned.payload == contract.StockReturned(
        sku=sku, warehouse="hamburg", qty=2, serials=[], order_id=order_id
    )
    assert (returned.topic, returned.key) == (INVENTORY.name, sku)
    assert returned.causation_id == str(envelope.event_id)


def test_the_same_return_arriving_again_with_new_positions_changes_no_stock(
    service, client, feed, sku
):
    receive(client, sku, 5)
    order_id = shipped(feed, sku, 3)
    event = feed.returned(order_id, line(sku, 2))
    feed.deliver(event)
    version = service.app.read_sku(sku).version

    for _ in range(3):  # redelivered, re-published, refilled after a broker loss
        feed.deliver(event)

    assert service.app.read_sku(sku).version == version
    assert stock_of(client, sku)["on_hand"] == 4
    assert sum(isinstance(e, Sku.Returned) for e in sku_events(service, sku)) == 1


def test_a_repeat_applied_as_if_new_is_found_by_the_careful_retry(service, client, feed, sku):
    """The tracked consumer's first try and a concurrent worker's both think the return
    new: the second save fails on the record's version and its retry finds the record."""
    receive(client, sku, 5)
    order_id = shipped(feed, sku, 3)
    event = feed.returned(order_id, line(sku, 2))
    first, second = UnitOfWork(service.app), UnitOfWork(service.app)
    feed.apply(event, first)
    feed.apply(event, second)
    service.app.record(first.aggregates)

    with pytest.raises(RecordConflictError):
        service.app.record(second.aggregates)
    service.app.forget(second.ids)
    feed.deliver(event)  # as the consumer retries

    assert stock_of(client, sku)["on_hand"] == 4


def test_damaged_units_are_set_aside_never_on_hand_and_the_return_says_so(
    service, client, feed, sku
):
    receive(client, sku, 5)
    order_id = shipped(feed, sku, 3)
    event = feed.returned(order_id, line(sku, 1), line(sku, 2, "damaged"))

    feed.deliver(event)

    assert stock_of(client, sku)["on_hand"] == 3  # 2 left on the shelf + 1 resellable
    damaged = [e for e in sku_events(service, sku) if isinstance(e, Sku.ReturnedDamaged)]
    assert [(e.qty, e.order_id, e.return_id) for e in damaged] == [(2, order_id, event.return_id)]
    assert [m.payload.qty for m in returns_published(service, sku)] == [1]  # damaged: kept inside
    record = client.get(f"/returns/{event.return_id}")
    assert record.status_code == 200, record.text
    assert (record.json()["restocked"], record.json()["set_aside"]) == (1, 2)
    assert record.json()["order_id"] == order_id
    assert [(ln["qty"], ln["condition"]) for ln in record.json()["lines"]] == [
        (1, "resellable"),
        (2, "damaged"),
    ]


def test_returned_serial_numbers_go_back_on_the_shelf_as_returned(
    service, client, feed, sku, new_id
):
    good, broken, kept = new_id("SN"), new_id("SN"), new_id("SN")
    receive(client, sku, 3, serials=[good, broken, kept])
    order_id = feed.place({sku: 2})
    held = service.app.find_reservation(order_id).lines[0]["serials"]
    feed.ship(order_id, {sku: 2})
    back, hurt = held

    feed.deliver(
        feed.returned(
            order_id, line(sku, 1, serials=[back]), line(sku, 1, "damaged", serials=[hurt])
        )
    )

    item = service.app.read_sku(sku)
    assert sorted(item.stock["berlin"]["serials"]) == sorted({back, good, broken, kept} - {hurt})
    back_story = [(e["event"], e["order_id"]) for e in read(service, client, f"/serials/{back}")]
    hurt_story = [(e["event"], e["order_id"]) for e in read(service, client, f"/serials/{hurt}")]
    assert back_story[-2:] == [("shipped", order_id), ("returned", order_id)]
    assert hurt_story[-2:] == [("shipped", order_id), ("returned damaged", order_id)]
    again = feed.place({sku: 2})  # the returned unit can be sold again, the damaged one not
    assert back in service.app.find_reservation(again).lines[0]["serials"]


def test_a_return_whose_serial_numbers_do_not_fit_takes_back_none_of_its_lines(
    service, client, feed, sku, new_id
):
    other = new_id("SKU")
    receive(client, sku, 2, serials=[new_id("SN"), new_id("SN")])
    receive(client, other, 5)
    order_id = feed.place({sku: 1, other: 2})
    feed.ship(order_id, {sku: 1, other: 2})
    event = feed.returned(order_id, line(other, 2), line(sku, 1, serials=[new_id("SN")]))

    with pytest.raises(InvalidStock, match="never received"):  # the consumer dead-letters it
        feed.deliver(event)

    assert (stock_of(client, sku)["on_hand"], stock_of(client, other)["on_hand"]) == (1, 3)
    assert service.app.find(return_key(event.return_id)) is None


def test_a_return_of_several_skus_takes_each_back_in_one_go(service, client, feed, new_id):
    shirts, mugs = new_id("SKU"), new_id("SKU")
    receive(client, shirts, 4)
    receive(client, mugs, 4)
    order_id = feed.place({shirts: 2, mugs: 2})
    feed.ship(order_id, {shirts: 2, mugs: 2})

    feed.deliver(feed.returned(order_id, line(shirts, 2), line(mugs, 1), line(mugs, 1, "damaged")))

    assert (stock_of(client, shirts)["on_hand"], stock_of(client, mugs)["on_hand"]) == (4, 3)


def test_a_return_never_received_is_not_found(client, new_id):
    assert client.get(f"/returns/{new_id('return')}").status_code == 404


def test_a_replacement_is_reserved_under_its_own_id_and_says_what_it_replaces(
    service, client, feed, sku
):
    receive(client, sku, 5)
    order_id = shipped(feed, sku, 1)
    replacement = f"rep-{order_id}"
    asked = ReplacementRequested(
        replacement_id=replacement,
        return_id="ret-1",
        ticket_id="tic-1",
        order_id=order_id,
        customer_id=feed.customers[order_id],
        kind="reship",
        lines=[ReturnLine(sku=sku, qty=2)],
        requested_at=service.app.clock.now(),
    )
    feed.deliver(asked)
    feed.deliver(asked)  # redelivered: decided once
    stock = stock_of(client, sku)
    assert (stock["on_hand"], stock["reserved"]) == (4, 2)
    reservation = service.app.find(reservation_id(replacement), Reservation, fresh=True)
    [out] = [o for e in service.app.events.get(reservation.id) for o in translation.to_outbound(e)]
    assert isinstance(out.payload, contract.StockReserved)
    assert (out.payload.order_id, out.payload.replaces) == (replacement, order_id)
    feed.ship(replacement, {sku: 2})  # fulfilment dispatched it: the units leave
    stock = stock_of(client, sku)
    assert (stock["on_hand"], stock["reserved"]) == (2, 0)


def test_a_receipt_s_unit_cost_is_published_and_a_bad_one_is_refused(service, client, sku):
    """Analytics' margin needs what goods cost: optional on a receipt, on StockReceived."""
    assert (
        client.post(
            "/stock/receipts",
            json={"sku": sku, "warehouse": "berlin", "qty": 4, "unit_cost": "7.35"},
        ).status_code
        == 201
    )
    receive(client, sku, 2)  # no cost given
    refused = client.post(
        "/stock/receipts", json={"sku": sku, "warehouse": "berlin", "qty": 1, "unit_cost": "-1"}
    )
    assert refused.status_code == 422 and "unit_cost" in refused.text
    messages = [out for e in sku_events(service, sku) for out in translation.to_outbound(e)]
    received = [m.payload for m in messages if isinstance(m.payload, contract.StockReceived)]
    assert [(r.qty, r.unit_cost) for r in received] == [(4, Decimal("7.35")), (2, None)]
