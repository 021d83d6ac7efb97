"""The fulfilment HTTP API on the real stores (SQLite and PostgreSQL): a confirmed order
through its wave, scans, pack check, dispatch and tracking; the read models behind the
lists; and the errors a user sees."""

from __future__ import annotations

from datetime import timedelta

import pytest

BINS = {"warehouses": {"WH-BER": {"bins": {"TEE-M": "B-01-3"}}, "WH-AMS": {}}}


@pytest.fixture
def rules_settings():
    return {**BINS, "merge": False}


def released(service, service_feed, clock, n=1):
    orders = [service_feed.confirmed_order({"TEE-M": 2}) for _ in range(n)]
    clock.advance(timedelta(minutes=5))
    service.tick()
    service.catch_up()
    return orders


def test_an_order_goes_from_wave_to_delivered_through_the_api(service, service_feed, client, clock):
    order = released(service, service_feed, clock)[0]
    [shipment] = client.get("/shipments", params={"order": order.order_id}).json()
    assert shipment["status"] == "in_wave"
    assert shipment["warehouses"][0]["chosen"] is True
    waves = client.get("/waves", params={"status": "released", "warehouse": "WH-BER"}).json()
    assert [w["wave_id"] for w in waves] == [shipment["wave_id"]]

    wave_id = shipment["wave_id"]
    wrong = client.post(
        f"/waves/{wave_id}/picks", json={"picker": "p1", "bin": "A-01-1", "sku": "TEE-M", "qty": 1}
    )
    assert wrong.status_code == 409
    assert "does not hold TEE-M" in wrong.json()["detail"]
    ok = client.post(
        f"/waves/{wave_id}/picks", json={"picker": "p1", "bin": "B-01-3", "sku": "TEE-M", "qty": 2}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "picked"

    sid = shipment["shipment_id"]
    heavy = client.post(
        f"/shipments/{sid}/pack", json={"weight_grams": 1500, "items": [{"sku": "TEE-M", "qty": 2}]}
    )
    assert heavy.status_code == 409 and "flagged for a supervisor" in heavy.json()["detail"]
    packed = client.post(
        f"/shipments/{sid}/pack", json={"weight_grams": 1010, "items": [{"sku": "TEE-M", "qty": 2}]}
    )
    assert packed.status_code == 200, packed.text
    body = packed.json()
    assert body["status"] == "dispatched" and body["tracking_number"]
    assert len(body["flags"]) == 1

    hook = {"milestone": "delivered", "time": clock.now().isoformat(), "place": "Berlin"}
    first = client.post(f"/shipments/{sid}/tracking", json=hook)
    again = client.post(f"/shipments/{sid}/tracking", json=hook)
    assert first.json()["changed"] is True and again.json()["changed"] is False
    assert again.json()["shipment"]["status"] == "delivered"

    service.catch_up()
    stats = client.get("/pickers/stats").json()
    assert stats == [
        {**stats[0], "picker": "p1", "picks": 1, "units": 2, "refused_scans": 1, "accuracy": 0.5}
    ]
    assert client.get("/waves", params={"status": "picked"}).json()[0]["wave_id"] == wave_id


def test_capacity_shows_used_and_left(service, service_feed, client, clock):
    service_feed.confirmed_order({"TEE-M": 1})
    body = client.get("/warehouses/WH-BER/capacity").json()
    assert body == {
        "warehouse": "WH-BER",
        "day": clock.now().date().isoformat(),
        "used": 1,
        "limit": 400,
        "left": 399,
    }
    assert client.get("/warehouses/WH-XX/capacity").status_code == 404


def test_delays_fire_from_the_tick_on_the_shared_clock(service, service_feed, client, clock):
    order = released(service, service_feed, clock)[0]
    clock.advance(timedelta(days=5))
    service.catch_up()
    service.tick()
    [shipment] = client.get("/shipments", params={"order": order.order_id}).json()
    assert shipment["delayed"] is True


def test_unknown_ids_are_404_and_bad_input_names_the_field(client):
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/shipments/{missing}").status_code == 404
    assert client.get(f"/waves/{missing}").status_code == 404
    bad = client.post(
        f"/waves/{missing}/picks", json={"picker": "p", "bin": "B", "sku": "S", "qty": 0}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][-1] == "qty"
    hook = client.post(
        f"/shipments/{missing}/tracking",
        json={"milestone": "teleported", "time": "2026-01-01T00:00:00Z"},
    )
    assert hook.status_code == 422 and hook.json()["detail"][0]["loc"][-1] == "milestone"
    naive = client.post(
        f"/shipments/{missing}/tracking",
        json={"milestone": "delivered", "time": "2026-01-01T00:00:00"},
    )
    assert naive.status_code == 422


def test_packing_before_picking_is_refused(service, service_feed, client, clock):
    order = released(service, service_feed, clock)[0]
    [shipment] = client.get("/shipments", params={"order": order.order_id}).json()
    early = client.post(
        f"/shipments/{shipment['shipment_id']}/pack",
        json={"weight_grams": 1000, "items": [{"sku": "TEE-M", "qty": 2}]},
    )
    assert early.status_code == 409 and "not picked yet" in early.json()["detail"]
    track = client.post(
        f"/shipments/{shipment['shipment_id']}/tracking",
        json={"milestone": "picked_up", "time": clock.now().isoformat()},
    )
    assert track.status_code == 409


def test_rebuilt_read_models_match(service, service_feed, client, clock):
    released(service, service_feed, clock, n=3)
    before = client.get("/waves").json()
    service.rebuild()
    assert client.get("/waves").json() == before


def test_an_order_cancelled_in_a_wave_leaves_the_wave_list_right(
    service, service_feed, client, clock
):
    orders = released(service, service_feed, clock, n=2)
    [wave] = client.get("/waves").json()
    assert (wave["orders"], wave["units"]) == (2, 4)
    service_feed.cancelled(orders[0])
    service.catch_up()
    [wave] = client.get("/waves").json()
    assert (wave["orders"], wave["units"], wave["status"]) == (1, 2, "released")
    detail = client.get(f"/waves/{wave['wave_id']}").json()
    assert detail["cancelled_orders"] == [orders[0].order_id]


@pytest.mark.parametrize(
    "rules_settings", [{**BINS, "merge": False, "fast_movers": {"min_picks": 2, "slots": 4}}]
)
def test_the_velocity_rule_reads_recent_picks(service, service_feed, client, clock):
    orders = released(service, service_feed, clock, n=2)
    for order in orders:
        [shipment] = client.get("/shipments", params={"order": order.order_id}).json()
        picked = client.post(
            f"/waves/{shipment['wave_id']}/picks",
            json={"picker": "p1", "bin": "B-01-3", "sku": "TEE-M", "qty": 2},
        )
        assert picked.status_code == 200, picked.text
    service.catch_up()
    assert client.get("/warehouses/WH-BER/fast-movers").json() == {}
    assert service.reslot() == 1
    assert client.get("/warehouses/WH-BER/fast-movers").json() == {"TEE-M": "A-01-1"}
    clock.advance(timedelta(hours=25))  # out of the window: no longer fast
    service.reslot()
    assert client.get("/warehouses/WH-BER/fast-movers").json() == {}
