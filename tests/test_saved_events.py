"""The relay and the projectors take the domain events this process saved lately instead
of decoding them again: each must be the very event that was stored under that
notification id, equal to what decoding the stored record gives."""

from __future__ import annotations

from decimal import Decimal

from inventory.bootstrap import InventoryService
from order.bootstrap import OrderService
from order.domain import Address, Line, Placement
from shopfloor_runtime import store


def _log(app):
    return list(app.recorder.select_notifications(start=0, limit=1000, inclusive_of_start=False))


def test_saved_events_are_handed_back_by_their_notification_id(make_service, customer_id):
    orders = make_service(OrderService, rules={"required_checks": []})
    stock = make_service(InventoryService)
    order = orders.app.place_order(_placement(customer_id), None).order
    orders.app.pay_order(order.id, order.total, "card", "psp-1")
    stock.app.receive_stock("SKU-1", "WH-BER", 5, [])
    stock.app.adjust_stock("SKU-1", "WH-BER", 3, "count")
    for app in (orders.app, stock.app):
        notifications = _log(app)
        assert notifications, "nothing was saved"
        for notification in notifications:
            kept = app.domain_event(notification)
            assert kept is app._recent[notification.id]  # not decoded again
            assert kept == app.mapper.to_domain_event(notification)


def test_older_events_are_decoded_from_the_store(make_service, monkeypatch):
    monkeypatch.setattr(store, "RECENT_EVENTS", 2)
    stock = make_service(InventoryService)
    for qty in (1, 2, 3, 4):
        stock.app.receive_stock("SKU-1", "WH-BER", qty, [])
    notifications = _log(stock.app)
    assert len(stock.app._recent) == 2
    first = notifications[0]
    assert first.id not in stock.app._recent
    assert stock.app.domain_event(first) == stock.app.mapper.to_domain_event(first)


def _placement(customer_id: str) -> Placement:
    return Placement(
        customer_id=customer_id,
        channel="shop",
        lines=(Line("SKU-1", 2, Decimal("12.50")),),
        address=Address("Ada Lovelace", "Hauptstrasse 1", "Berlin", "10115", "DE"),
        payment_method="card",
    )
