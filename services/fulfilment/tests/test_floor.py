"""The warehouse floor: waves by size or window with deterministic ids, pick lists along
the route, scans that refuse wrong items, pack checks, dispatch, tracking, delays, and
cancellations pulled from their wave."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from fulfilment.application import PackRefused
from fulfilment.domain import Lane, Refused, Wave, lane_id, wave_id
from fulfilment.translation import to_contract
from shopfloor_contracts import fulfilment as contract

BER = "WH-BER"
BINS = {
    "warehouses": {
        BER: {
            "bins": {
                "TEE-M": "B-01-3",
                "MUG-WHITE": "A-02-1",
                "CAP-RED": "B-02-5",
                "CAM-1": "B-01-1",
            }
        },
        "WH-AMS": {},
    }
}


def released_waves(app):
    return [
        e
        for n in app.recorder.select_notifications(start=1, limit=100_000)
        for e in [app.domain_event(n)]
        if type(e) is Wave.Released
    ]


def wave_of(feed, order) -> Wave:
    shipment = feed.shipment_of(order)
    assert shipment.wave_id, f"{order.order_id} is in no wave ({shipment.status})"
    return feed.app.get_wave(UUID(shipment.wave_id))


def pick_all(app, wave: Wave, picker: str = "picker-1") -> None:
    for line in wave.live_lines():
        if line["serials"]:
            for serial in line["serials"]:
                app.pick(wave.id, picker, line["bin"], line["sku"], 1, serial)
        else:
            app.pick(wave.id, picker, line["bin"], line["sku"], line["qty"], None)


@pytest.fixture
def rules_settings():
    return {**BINS, "wave_size": 3, "merge": False}


def test_a_lane_releases_its_wave_when_it_reaches_the_size_limit(feed):
    orders = [feed.confirmed_order({"TEE-M": 1}) for _ in range(3)]
    waves = released_waves(feed.app)
    assert len(waves) == 1
    wave = wave_of(feed, orders[0])
    assert wave.id == wave_id(BER, "B", 0, 1)  # the lane's first wave, by construction
    assert sorted(wave.order_ids) == sorted(o.order_id for o in orders)
    assert wave.trigger == "size"
    assert {ln["zone"] for ln in wave.pick_list} == {"B"}


def test_a_lane_releases_by_window_when_it_does_not_fill(feed, clock):
    order = feed.confirmed_order({"TEE-M": 1})
    assert feed.app.release_due_waves() == 0
    clock.advance(timedelta(minutes=5))
    assert feed.app.release_due_waves() == 1
    assert feed.app.release_due_waves() == 0  # once
    wave = wave_of(feed, order)
    assert wave.trigger == "window" and wave.sequence == 1


def test_shipments_of_different_zones_never_share_a_wave(feed, clock):
    b = feed.confirmed_order({"TEE-M": 1})
    a = feed.confirmed_order({"MUG-WHITE": 1})
    both = feed.confirmed_order({"TEE-M": 1, "MUG-WHITE": 1})
    clock.advance(timedelta(minutes=5))
    feed.app.release_due_waves()
    zones = {o.order_id: wave_of(feed, o).zone for o in (a, b, both)}
    assert zones == {a.order_id: "A", b.order_id: "B", both.order_id: "multi"}


def test_the_pick_list_follows_the_walking_route(feed, clock):
    order = feed.confirmed_order({"CAP-RED": 1, "TEE-M": 1, "CAM-1": 1})
    clock.advance(timedelta(minutes=5))
    feed.app.release_due_waves()
    bins = [ln["bin"] for ln in wave_of(feed, order).pick_list]
    assert bins == ["B-01-1", "B-01-3", "B-02-5"]  # aisle 1 upwards, then aisle 2 down


def test_a_released_wave_is_published_with_its_pick_list(feed):
    for _ in range(3):
        feed.confirmed_order({"TEE-M": 1})
    event = released_waves(feed.app)[0]
    key, payload = to_contract(event)
    assert isinstance(payload, contract.WaveReleased)
    assert key == payload.wave_id == str(wave_id(BER, "B", 0, 1))
    assert [ln.sequence for ln in payload.pick_list] == [1, 2, 3]


def test_scans_refuse_wrong_items_bins_and_quantities_and_count_against_accuracy(feed):
    orders = [feed.confirmed_order({"TEE-M": 1}) for _ in range(3)]
    wave = wave_of(feed, orders[0])
    app = feed.app
    with pytest.raises(Refused, match="wrong item: CAP-RED is not on the pick list"):
        app.pick(wave.id, "picker-1", "B-02-5", "CAP-RED", 1, None)
    with pytest.raises(Refused, match="bin B-09-9 does not hold TEE-M"):
        app.pick(wave.id, "picker-1", "B-09-9", "TEE-M", 1, None)
    with pytest.raises(Refused, match="quantity 4 is more than the 3 of TEE-M left"):
        app.pick(wave.id, "picker-1", "B-01-3", "TEE-M", 4, None)
    app.pick(wave.id, "picker-1", "B-01-3", "TEE-M", 3, None)
    assert app.get_wave(wave.id).status == "picked"
    assert all(feed.shipment_of(o).status == "picked" for o in orders)
    # published with the wave's picks (same key): analytics' picking accuracy, 3 of 4 wrong
    published = [p for e in app.events.get(wave.id) if (p := to_contract(e))]
    refused = [p for key, p in published if isinstance(p, contract.ScanRefused)]
    assert {key for key, p in published} == {str(wave.id)}
    assert [p.reason[:12] for p in refused] == ["wrong item: ", "bin B-09-9 d", "quantity 4 i"]
    assert (refused[0].picker, refused[0].sku, refused[0].warehouse) == ("picker-1", "CAP-RED", BER)
    picked = [p for _, p in published if isinstance(p, contract.ItemPicked)]
    assert len(picked) == 3 and len({p.picked_at for p in picked}) == 1  # one scan, 3 lines


def test_serialized_units_are_picked_by_their_reserved_serial(feed):
    order = feed.order({"CAM-1": 2})
    feed.placed(order)
    feed.recipient(order)
    feed.reserved(order, {"CAM-1": BER}, serials={"CAM-1": ["S1", "S2"]})
    feed.confirmed(order)
    feed.app.clock.advance(timedelta(minutes=5))
    feed.app.release_due_waves()
    wave = wave_of(feed, order)
    app = feed.app
    with pytest.raises(Refused, match="serialized"):
        app.pick(wave.id, "p", "B-01-1", "CAM-1", 1, None)
    with pytest.raises(Refused, match="serial S9 is not reserved"):
        app.pick(wave.id, "p", "B-01-1", "CAM-1", 1, "S9")
    app.pick(wave.id, "p", "B-01-1", "CAM-1", 1, "S1")
    with pytest.raises(Refused, match="serial S1 was picked already"):
        app.pick(wave.id, "p", "B-01-1", "CAM-1", 1, "S1")
    app.pick(wave.id, "p", "B-01-1", "CAM-1", 1, "S2")
    assert feed.shipment_of(order).status == "picked"


def packed_wave(feed):
    orders = [feed.confirmed_order({"TEE-M": 1}) for _ in range(3)]
    pick_all(feed.app, wave_of(feed, orders[0]))
    return orders


def test_a_pack_check_outside_the_weight_tolerance_is_refused_and_flagged(feed):
    order = packed_wave(feed)[0]
    shipment = feed.shipment_of(order)
    items = [{"sku": "TEE-M", "qty": 1, "serials": []}]
    with pytest.raises(PackRefused, match="weight 600 g is outside 5% of the expected 500 g"):
        feed.app.pack(shipment.id, 600, items)
    flagged = feed.shipment_of(order)
    assert flagged.status == "picked" and len(flagged.flags) == 1
    with pytest.raises(PackRefused, match="missing 1x TEE-M"):
        feed.app.pack(shipment.id, 500, [])
    dispatched = feed.app.pack(shipment.id, 510, items)
    assert dispatched.status == "dispatched"
    assert dispatched.tracking_number.startswith("DPD")
    assert dispatched.label["name"] == "Ada Lovelace"


def test_dispatch_is_published_without_the_label(feed):
    order = packed_wave(feed)[0]
    shipment = feed.app.pack(feed.shipment_of(order).id, 500, [{"sku": "TEE-M", "qty": 1}])
    payloads = [p for e in feed.app.events.get(shipment.id) if (p := to_contract(e))]
    dispatched = next(p for _, p in payloads if isinstance(p, contract.ShipmentDispatched))
    assert dispatched.order_ids == [order.order_id]
    assert "Ada" not in dispatched.model_dump_json()


def dispatched(feed):
    order = packed_wave(feed)[0]
    return order, feed.app.pack(feed.shipment_of(order).id, 500, [{"sku": "TEE-M", "qty": 1}])


def test_tracking_ignores_repeats_and_out_of_order_milestones(feed, clock):
    _, shipment = dispatched(feed)
    now = clock.now()
    app = feed.app
    assert app.track(shipment.id, "in_transit", now, "Berlin hub")[1]
    assert not app.track(shipment.id, "in_transit", now, "Berlin hub")[1]  # repeated
    assert not app.track(shipment.id, "picked_up", now - timedelta(hours=1), None)[1]  # late
    assert app.track(shipment.id, "delivered", now + timedelta(hours=5), None)[1]
    assert not app.track(shipment.id, "delivered", now + timedelta(hours=6), None)[1]
    found = app.get_shipment(shipment.id)
    assert found.status == "delivered"
    assert [t["milestone"] for t in found.tracking] == ["in_transit", "delivered"]


def test_a_failed_delivery_is_reported_and_a_second_round_can_deliver(feed, clock):
    _, shipment = dispatched(feed)
    app, now = feed.app, clock.now()
    app.track(shipment.id, "out_for_delivery", now, None)
    app.track(shipment.id, "failed", now + timedelta(hours=1), "Berlin")
    events = [type(e).__name__ for e in app.events.get(shipment.id)]
    assert "DeliveryFailed" in events
    assert app.track(shipment.id, "out_for_delivery", now + timedelta(days=1), None)[1]
    assert app.track(shipment.id, "delivered", now + timedelta(days=1, hours=2), None)[1]


def test_a_shipment_past_its_promise_is_flagged_delayed_once(feed, clock):
    _, shipment = dispatched(feed)
    app = feed.app
    assert app.fire_delays([shipment.id]) == 0
    clock.advance(timedelta(days=4, seconds=1))
    assert app.fire_delays([shipment.id]) == 1
    assert app.fire_delays([shipment.id]) == 0
    assert app.get_shipment(shipment.id).delayed


def test_an_order_cancelled_in_its_lane_leaves_it_and_gives_capacity_back(feed):
    order = feed.confirmed_order({"TEE-M": 1})
    shipment = feed.shipment_of(order)
    feed.cancelled(order)
    assert feed.app.get_shipment(shipment.id).status == "pulled"
    lane = feed.app.find(lane_id(BER, "B", 0), Lane, fresh=True)
    assert lane.waiting == {}
    assert feed.app.capacity(BER, feed.app.clock.now().date().isoformat())[0] == 0


def test_an_order_cancelled_in_a_wave_is_pulled_and_its_picks_go_back(feed):
    orders = [feed.confirmed_order({"TEE-M": 1}) for _ in range(3)]
    wave = wave_of(feed, orders[0])
    feed.app.pick(wave.id, "p", "B-01-3", "TEE-M", 1, None)  # the first line in route order
    first = wave.pick_list[0]["order_id"]
    cancelled = next(o for o in orders if o.order_id == first)
    feed.cancelled(cancelled)
    wave = feed.app.get_wave(wave.id)
    assert wave.pulled == [first]
    events = [to_contract(e) for e in feed.app.events.get(feed.shipment_of(cancelled).id)]
    pulled = next(p for k, p in filter(None, events) if isinstance(p, contract.ShipmentPulled))
    assert [(r.sku, r.qty) for r in pulled.returned_picks] == [("TEE-M", 1)]
    pick_all(feed.app, wave)
    assert feed.app.get_wave(wave.id).status == "picked"


def test_fast_movers_are_slotted_into_the_zone_nearest_packing(feed):
    before = feed.confirmed_order({"TEE-M": 1})
    assert feed.shipment_of(before).zone == "B"
    assert feed.app.reslot({BER: ["TEE-M", "CAP-RED"]}) == 1
    assert feed.app.reslot({BER: ["TEE-M", "CAP-RED"]}) == 0  # no change, no event
    after = feed.confirmed_order({"TEE-M": 1})
    shipment = feed.shipment_of(after)
    assert shipment.zone == "A" and shipment.lines[0]["bin"] == "A-01-1"
    assert feed.shipment_of(before).lines[0]["bin"] == "B-01-3"  # bins fixed at allocation
    # a SKU that stays fast keeps its bin; one that drops out frees its slot
    feed.app.reslot({BER: ["MUG-WHITE", "TEE-M"]})
    assert feed.app.fast_movers(BER) == {"TEE-M": "A-01-1", "MUG-WHITE": "A-01-2"}
